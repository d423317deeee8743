//! [`Log`]: the partition log — an ordered list of segments, the last one active.
//!
//! Appends go to the active segment (rolled by size, age or full index as Kafka does);
//! reads find the segment by base offset and copy whole batches; durability is explicit
//! (`flush.messages`, `flush.ms`, [`Log::flush`]) and tracked by the recovery point:
//! every offset below it is fsynced, so recovery after a crash only scans from there.
//!
//! Invariants: there is always at least one segment; segments are contiguous (each
//! starts where the previous ends); every segment but the active one is fsynced and
//! has trimmed indexes.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::batch::{self, BatchHeader};
use crate::error::io_error;
use crate::leader_epoch::LeaderEpochCache;
use crate::segment::Segment;
use crate::{read_slices, FileSlice, StorageError};

pub use crate::batch::TimestampType;

/// Per-partition log settings, named after Kafka's topic configs.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is older than this.
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index of the active segment.
    pub segment_index_bytes: u32,
    /// `index.interval.bytes`: log bytes between two sparse index entries.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`: largest accepted batch, log overhead included.
    pub max_message_bytes: u32,
    /// `message.timestamp.type`.
    pub message_timestamp_type: TimestampType,
    /// `flush.messages`: fsync once this many messages are unflushed.
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last flush is this old ([`Log::flush_if_due`]).
    pub flush_ms: u64,
    /// `retention.ms`: delete segments whose newest record is older; -1 = keep forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete the oldest segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `cleanup.policy` holds `delete`: retention applies.
    pub cleanup_delete: bool,
    /// `cleanup.policy` holds `compact`: the cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `delete.retention.ms`: how long tombstones survive once compacted.
    pub delete_retention_ms: i64,
    /// `min.cleanable.dirty.ratio`: dirty share of the log that makes it worth cleaning.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a dirty record older than this forces a cleaning.
    pub max_compaction_lag_ms: i64,
}

impl Default for LogConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1_073_741_824,
            segment_ms: 604_800_000,
            segment_index_bytes: 10_485_760,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            retention_ms: 604_800_000,
            retention_bytes: -1,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 86_400_000,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
        }
    }
}

/// What an append did, for the produce response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the first record.
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker time stamped on the batches of a LogAppendTime topic, else -1.
    pub log_append_time: i64,
    /// Records appended (sum of the batches' record counts).
    pub record_count: u64,
}

/// Kafka caps segments at `Int.MaxValue` bytes; index positions are 32-bit.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// The log of one partition, stored in one directory.
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset, never empty; the last one is active.
    pub(crate) segments: Vec<Segment>,
    /// The first offset readers may fetch: at least the first segment's base
    /// offset, and beyond it after DeleteRecords (it may then fall inside a
    /// batch, which is still returned whole, as Kafka does).
    pub(crate) log_start_offset: i64,
    pub(crate) recovery_point: i64,
    /// Messages appended since the last flush (for `flush.messages`).
    pub(crate) unflushed_messages: u64,
    /// When `flush_if_due` last saw nothing to flush or flushed.
    pub(crate) last_flush_ms: i64,
    /// A segment file was created or deleted since the directory was last fsynced.
    pub(crate) dir_dirty: bool,
    /// Where each leader epoch's appends start (`leader-epoch-checkpoint`).
    pub(crate) epochs: LeaderEpochCache,
}

impl Log {
    /// Appends a produce request's `records` (one or more v2 batches back to back).
    ///
    /// Every batch is validated first (framing, magic, CRC32C, size limit, record
    /// count = lastOffsetDelta + 1 as Kafka demands of client batches, and for
    /// uncompressed batches that the records fill it exactly); if any is
    /// bad nothing is written. Then offsets are assigned from the log end offset by
    /// patching each batch's base offset and partition leader epoch in place (and, for
    /// LogAppendTime topics, its timestamp type and max timestamp), the active segment
    /// is rolled if needed and the bytes are written as they are. CreateTime batches
    /// keep the producer's timestamps unchanged.
    pub fn append(
        &mut self,
        records: &mut [u8],
        partition_leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let mut batches = batch::validate_all(records)?;
        for (position, header) in &batches {
            if header.size() > self.config.max_message_bytes as usize {
                return Err(StorageError::MessageTooLarge {
                    size: header.size(),
                    max: self.config.max_message_bytes,
                });
            }
            // Kafka's rule for batches from clients: one offset per record. (Stored
            // batches may have gaps after compaction, so recovery does not insist.)
            if header.record_count < 1
                || i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1
            {
                return Err(StorageError::InvalidBatch {
                    position: *position as u64,
                    reason: format!(
                        "record count {} does not match lastOffsetDelta {}",
                        header.record_count, header.last_offset_delta
                    ),
                });
            }
            batch::check_uncompressed_records(
                &records[*position..*position + header.size()],
                header,
                *position as u64,
            )?;
            if self.config.cleanup_compact {
                require_keys(&records[*position..*position + header.size()])?;
            }
        }
        let base_offset = self.log_end_offset();
        // Written before the data: a crash in between leaves an entry at the
        // log end, which the next open drops.
        if self.epochs.assign(partition_leader_epoch, base_offset) {
            self.epochs.write()?;
        }
        let offsets: i64 = batches
            .iter()
            .map(|(_, header)| i64::from(header.last_offset_delta) + 1)
            .sum();
        self.maybe_roll(records.len() as u64, base_offset + offsets - 1, now_ms)?;

        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let mut next_offset = base_offset;
        let mut record_count = 0u64;
        for (position, header) in &mut batches {
            let bytes = &mut records[*position..*position + header.size()];
            batch::set_base_offset(bytes, next_offset);
            batch::set_partition_leader_epoch(bytes, partition_leader_epoch);
            if log_append_time {
                batch::set_log_append_time(bytes, now_ms);
            }
            *header = BatchHeader::parse(bytes).expect("validated batches hold a full header");
            next_offset = header.next_offset();
            record_count += header.record_count as u64;
        }
        self.write_batches(records, &batches, record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            log_append_time: if log_append_time { now_ms } else { -1 },
            record_count,
        })
    }

    /// Appends batches a follower fetched from its leader, as they are: their
    /// offsets and leader epochs stay the leader's (no offset is assigned).
    /// They must be valid and continue the log exactly: the first batch at
    /// the log end offset, each next one where the previous ended; anything
    /// else is refused and nothing is written. Each leader epoch that starts
    /// in them is noted in the leader epoch cache first.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let batches = batch::validate_all(records)?;
        let base_offset = self.log_end_offset();
        let mut expected = base_offset;
        let mut record_count = 0u64;
        for (position, header) in &batches {
            if header.base_offset != expected {
                return Err(StorageError::InvalidBatch {
                    position: *position as u64,
                    reason: format!(
                        "a batch at offset {} does not continue the log at {expected}",
                        header.base_offset
                    ),
                });
            }
            expected = header.next_offset();
            record_count += header.record_count.max(0) as u64;
        }
        let mut changed = false;
        for (_, header) in &batches {
            changed |= self
                .epochs
                .assign(header.partition_leader_epoch, header.base_offset);
        }
        if changed {
            self.epochs.write()?;
        }
        self.maybe_roll(records.len() as u64, expected - 1, now_ms)?;
        self.write_batches(records, &batches, record_count, now_ms)?;
        Ok(AppendInfo {
            base_offset,
            last_offset: expected - 1,
            log_append_time: -1,
            record_count,
        })
    }

    /// Writes validated `batches` (holding `record_count` records) to the
    /// active segment, flushing when `flush.messages` says so.
    fn write_batches(
        &mut self,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        record_count: u64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self
            .segments
            .last_mut()
            .expect("the log always has a segment");
        active.append(records, batches, &self.config, now_ms)?;
        self.unflushed_messages = self.unflushed_messages.saturating_add(record_count);
        if self.unflushed_messages >= self.config.flush_messages {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Kafka's roll rule (without jitter), checked before each append of
    /// `append_bytes` bytes ending at `last_offset`. An empty segment is never rolled:
    /// an append larger than `segment.bytes` goes into one segment of its own.
    fn maybe_roll(
        &mut self,
        append_bytes: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let active = self.active();
        if active.size() == 0 {
            return Ok(());
        }
        let max_bytes = self.config.segment_bytes.min(MAX_SEGMENT_BYTES);
        let too_big = active.size() + append_bytes > max_bytes;
        // A compacted log also rolls by max.compaction.lag.ms, so that records
        // do not wait in the active segment, which is never cleaned (KIP-354).
        let roll_ms = if self.config.cleanup_compact {
            self.config
                .segment_ms
                .min(self.config.max_compaction_lag_ms)
        } else {
            self.config.segment_ms
        };
        let too_old = active
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) > roll_ms);
        let offsets_overflow = last_offset - active.base_offset() > i64::from(i32::MAX);
        if too_big || too_old || offsets_overflow || active.indexes_full() {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment (final time index entry, trimmed indexes, fsync) and
    /// starts a new one at the log end offset; the recovery point moves to it. A no-op
    /// when the active segment is empty.
    pub fn roll(&mut self, _now_ms: i64) -> Result<(), StorageError> {
        if self.active().size() == 0 {
            return Ok(());
        }
        // The new segment first: if it cannot be created (a full disk) or the old
        // one cannot be finalized, the old one stays the active segment, unchanged,
        // and the next append tries again.
        let log_end_offset = self.log_end_offset();
        let segment = Segment::create(&self.dir, log_end_offset, &self.config)?;
        if let Err(error) = self.active_mut().finalize() {
            if let Err(leftover) = segment.delete() {
                tracing::warn!(%leftover, "could not remove the segment of a failed roll");
            }
            return Err(error);
        }
        self.segments.push(segment);
        self.dir_dirty = true;
        self.sync_dir()?;
        self.recovery_point = log_end_offset;
        self.unflushed_messages = 0;
        tracing::debug!(dir = %self.dir.display(), base_offset = log_end_offset, "rolled segment");
        Ok(())
    }

    /// Whole batches from the one holding `offset`, at most `max_bytes` in total except
    /// that with `min_one_batch` the first batch is returned whole even if larger
    /// (without it, a first batch larger than `max_bytes` gives an empty result).
    /// Reads continue into the following segments while room remains.
    /// `offset == log_end_offset` gives empty bytes; outside
    /// `[log_start_offset, log_end_offset]` is `OffsetOutOfRange`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Bytes, StorageError> {
        let slices = self.read_slices(offset, max_bytes, min_one_batch)?;
        read_slices(&slices).map_err(io_error(&self.dir))
    }

    /// What [`Log::read`] returns, as ranges of segment files instead of bytes:
    /// only batch headers are read here (a few small reads), so a caller holding
    /// a lock around this call can copy or send the data after releasing it.
    pub fn read_slices(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Vec<FileSlice>, StorageError> {
        self.read_slices_below(offset, i64::MAX, max_bytes, min_one_batch)
    }

    /// [`Log::read_slices`] of the batches wholly below `max_offset` only
    /// (a consumer reads below the high watermark): the batch holding
    /// `max_offset` and everything after it are left out.
    pub fn read_slices_below(
        &self,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<Vec<FileSlice>, StorageError> {
        self.check_range(offset)?;
        let mut slices: Vec<FileSlice> = Vec::new();
        if offset >= self.log_end_offset().min(max_offset) {
            return Ok(slices);
        }
        let mut taken = 0;
        let mut index = self.segment_index_for(offset);
        let mut position = None;
        while index < self.segments.len() {
            let segment = &self.segments[index];
            if segment.base_offset() >= max_offset {
                break;
            }
            let start = match position {
                Some(start) => start,
                None => match segment.find_batch(offset)? {
                    Some((start, _)) => start,
                    None => {
                        index += 1;
                        continue;
                    }
                },
            };
            // Where the batch holding `max_offset` starts, if in this segment.
            let stop = match max_offset < segment.next_offset() {
                true => segment.find_batch(max_offset)?.map(|(at, _)| at),
                false => None,
            };
            let room = stop.map_or(usize::MAX, |stop| stop.saturating_sub(start) as usize);
            let first = taken == 0 && min_one_batch && room > 0;
            let budget = max_bytes.saturating_sub(taken).min(room);
            let slice = segment.slice_batches(start, budget, first)?;
            let end = start + slice.len() as u64;
            taken += slice.len();
            if !slice.is_empty() {
                slices.push(slice);
            }
            if stop.is_some() || end < segment.size() {
                break;
            }
            index += 1;
            position = Some(0);
        }
        Ok(slices)
    }

    fn check_range(&self, offset: i64) -> Result<(), StorageError> {
        if offset < self.log_start_offset() || offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        Ok(())
    }

    /// Index of the last segment whose base offset is `<= offset` (0 if none).
    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|segment| segment.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// The first offset of the log: fetches below it are out of range and
    /// ListOffsets EARLIEST answers it.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Restores the log start offset a broker checkpointed before a restart
    /// (Kafka's `log-start-offset-checkpoint`). It is kept within the log: never
    /// below the first segment, never past the log end offset.
    pub fn restore_log_start_offset(&mut self, checkpointed: i64) {
        let first = self.segments[0].base_offset();
        self.log_start_offset = checkpointed.clamp(first, self.log_end_offset().max(first));
        if let Err(error) = self.trim_epochs() {
            tracing::warn!(dir = %self.dir.display(), %error, "could not write the leader epoch checkpoint");
        }
    }

    /// Keeps the leader epoch cache within the log: no epoch starting at or
    /// past its end, none wholly below its start.
    pub(crate) fn trim_epochs(&mut self) -> Result<(), StorageError> {
        let cut_end = self.epochs.truncate_from_end(self.log_end_offset());
        let cut_start = self.epochs.truncate_from_start(self.log_start_offset);
        if cut_end || cut_start {
            self.epochs.write()?;
        }
        Ok(())
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` this log
    /// holds and where its records end; `(-1, -1)` if none.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.log_end_offset())
    }

    /// The epoch of the last append, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (never down)
    /// and deletes the segments that now lie wholly below it. `offset` must not
    /// pass the log end offset. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, StorageError> {
        if offset < 0 || offset > self.log_end_offset() {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset(),
            });
        }
        self.log_start_offset = self.log_start_offset.max(offset);
        let below_start = self.leading_segments(|log, i| {
            log.segments
                .get(i + 1)
                .is_some_and(|next| next.base_offset() <= log.log_start_offset)
        });
        self.delete_leading_segments(below_start)?;
        self.trim_epochs()?;
        Ok(self.log_start_offset)
    }

    /// Deletes whole segments from the front of the log as Kafka's retention
    /// does, and returns how many went:
    /// * always, segments wholly below the log start offset (after DeleteRecords);
    /// * with `cleanup.policy=delete`: segments whose newest record is older than
    ///   `retention.ms` (a segment without timestamps counts as written when it
    ///   was last modified), and the oldest segments while the log is larger than
    ///   `retention.bytes` by at least their size.
    ///
    /// Deletion stops at the first segment that must stay. The active segment
    /// may go too if it qualifies; a fresh empty one then takes over at the log
    /// end offset. The log start offset moves to the first remaining segment.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let below_start = self.leading_segments(|log, i| {
            log.segments
                .get(i + 1)
                .is_some_and(|next| next.base_offset() <= log.log_start_offset)
        });
        let (mut by_time, mut by_size) = (0, 0);
        if self.config.cleanup_delete {
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                by_time = self.leading_segments(|log, i| {
                    let segment = &log.segments[i];
                    segment.size() > 0
                        && now_ms.saturating_sub(largest_timestamp(segment)) > retention_ms
                });
            }
            let retention_bytes = self.config.retention_bytes;
            if retention_bytes >= 0 {
                let mut excess = self.size_bytes() as i64 - retention_bytes;
                by_size = self.leading_segments(|log, i| {
                    let size = log.segments[i].size() as i64;
                    if size > 0 && excess - size >= 0 {
                        excess -= size;
                        true
                    } else {
                        false
                    }
                });
            }
        }
        let count = below_start.max(by_time).max(by_size);
        self.delete_leading_segments(count)?;
        Ok(count)
    }

    /// How many segments from the front satisfy `deletable`, stopping at the
    /// first that does not.
    fn leading_segments(&self, mut deletable: impl FnMut(&Log, usize) -> bool) -> usize {
        (0..self.segments.len())
            .take_while(|&i| deletable(self, i))
            .count()
    }

    /// Deletes the first `count` segments (rolling first if that is all of
    /// them), fsyncs the directory, and moves the log start offset up to the
    /// first remaining segment.
    fn delete_leading_segments(&mut self, count: usize) -> Result<(), StorageError> {
        if count == 0 {
            return Ok(());
        }
        if count >= self.segments.len() {
            let now_ms = self.active().first_append_ms.unwrap_or(0);
            self.roll(now_ms)?;
        }
        let count = count.min(self.segments.len() - 1);
        for segment in self.segments.drain(..count) {
            tracing::info!(
                dir = %self.dir.display(),
                base_offset = segment.base_offset(),
                "deleting segment"
            );
            segment.delete()?;
            self.dir_dirty = true;
        }
        self.sync_dir()?;
        self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset());
        self.trim_epochs()
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Every offset below this one is on disk (fsynced).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Calls `visit` with the header of every batch in the log, oldest first,
    /// without reading record data: what a rebuild of per-producer state
    /// after a restart needs.
    pub fn for_each_batch_header(
        &self,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        for segment in &self.segments {
            segment.for_each_batch_header(&mut visit)?;
        }
        Ok(())
    }

    /// The first record at or after the log start offset whose timestamp is
    /// `>= timestamp`, as (offset, timestamp) (ListOffsets by timestamp); `None`
    /// when every such record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for segment in &self.segments {
            if segment.max_timestamp() >= timestamp {
                if let Some(found) = segment.offset_for_timestamp(timestamp)? {
                    if found.0 < self.log_start_offset {
                        // Deleted by DeleteRecords: look again from the start offset.
                        return self.scan_for_timestamp(self.log_start_offset, timestamp);
                    }
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// The first record at or after `offset` with timestamp `>= timestamp`,
    /// found by decoding batches from `offset` on: the slow path for a log
    /// start offset inside a segment.
    fn scan_for_timestamp(
        &self,
        mut offset: i64,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        const CHUNK: usize = 1 << 20;
        while offset < self.log_end_offset() {
            let mut chunk = self.read(offset, CHUNK, true)?;
            let batches = RecordBatchDecoder::decode_all(&mut chunk).map_err(|error| {
                StorageError::InvalidBatch {
                    position: 0,
                    reason: format!("cannot decode batch for a timestamp lookup: {error}"),
                }
            })?;
            let mut next = offset;
            for record in batches.iter().flat_map(|set| set.records.iter()) {
                if record.offset >= offset && record.timestamp >= timestamp {
                    return Ok(Some((record.offset, record.timestamp)));
                }
                next = next.max(record.offset + 1);
            }
            if next == offset {
                break;
            }
            offset = next;
        }
        Ok(None)
    }

    /// The record with the largest timestamp (the first one on ties), as
    /// (offset, timestamp): ListOffsets MAX_TIMESTAMP, KIP-734. A segment whose
    /// newest timestamp belongs to a batch emptied by compaction has no record
    /// to show for it; the next best segment answers then.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let mut candidates: Vec<&Segment> = self.segments.iter().collect();
        // Stable: among equal maxima the older segment comes first.
        candidates.sort_by_key(|segment| std::cmp::Reverse(segment.max_timestamp()));
        for segment in candidates {
            if let Some(found) = segment.max_timestamp_record()? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// fsyncs the active segment (older ones are fsynced when rolled) and the directory
    /// if segments came or went; the recovery point becomes the log end offset.
    pub fn flush(&mut self) -> Result<(), StorageError> {
        self.active().flush()?;
        self.sync_dir()?;
        self.recovery_point = self.log_end_offset();
        self.unflushed_messages = 0;
        Ok(())
    }

    /// Applies `flush.ms`: flushes when there are unflushed messages and the last
    /// flush is at least that old. Call it periodically.
    pub fn flush_if_due(&mut self, now_ms: i64) -> Result<(), StorageError> {
        if self.unflushed_messages == 0 {
            self.last_flush_ms = now_ms;
            return Ok(());
        }
        let flush_ms = i64::try_from(self.config.flush_ms).unwrap_or(i64::MAX);
        if now_ms.saturating_sub(self.last_flush_ms) >= flush_ms {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Removes everything at and above `offset` (a follower diverging from its
    /// leader). Whole segments above it are deleted and the segment holding it is cut
    /// at a batch boundary: if `offset` falls inside a batch, that whole batch goes, so
    /// the log end offset may end up below `offset`. Below the log start offset the
    /// log is emptied and restarts at `offset`. No-op at or past the log end offset.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        let keep = self
            .segments
            .partition_point(|segment| segment.base_offset() <= offset);
        for segment in self.segments.drain(keep.max(1)..).rev() {
            segment.delete()?;
            self.dir_dirty = true;
        }
        if keep == 0 {
            return self.truncate_fully_and_start_at(offset);
        } else {
            let config = self.config.clone();
            let active = self.active_mut();
            // Preallocate first: an older segment's trimmed index has no room for the
            // entries the tail rescan re-creates.
            active.activate(&config)?;
            active.truncate_to(offset, &config)?;
            active.first_append_ms = None;
            self.log_start_offset = self.log_start_offset.min(self.log_end_offset());
        }
        self.trim_epochs()?;
        self.flush()
    }

    /// Empties the log and starts it again at `offset`, which may lie past the
    /// log end offset (Kafka's `truncateFullyAndStartAt`: a replica whose log
    /// is replaced by a snapshot or lies wholly below its leader's start).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset(),
                log_end_offset: self.log_end_offset(),
            });
        }
        for segment in self.segments.drain(..).rev() {
            segment.delete()?;
        }
        self.segments
            .push(Segment::create(&self.dir, offset, &self.config)?);
        self.dir_dirty = true;
        self.log_start_offset = offset;
        if self.epochs.clear() {
            self.epochs.write()?;
        }
        self.flush()
    }

    /// Replaces the config; size and index settings apply from the next segment.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Bytes of record batches over all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Bytes of the batches from the one holding `offset` to the log end:
    /// how far behind, in bytes, a replica whose log ends at `offset` is.
    /// 0 at or past the log end; the whole log below its start.
    pub fn bytes_from(&self, offset: i64) -> Result<u64, StorageError> {
        if offset >= self.log_end_offset() {
            return Ok(0);
        }
        let index = self.segment_index_for(offset.max(self.log_start_offset));
        let segment = &self.segments[index];
        let position = match segment.find_batch(offset)? {
            Some((position, _)) => position,
            None => segment.size(),
        };
        let later: u64 = self.segments[index + 1..].iter().map(Segment::size).sum();
        Ok(segment.size().saturating_sub(position) + later)
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Flushes and finalizes the active segment (final time index entry, trimmed
    /// index files), so that a clean open can trust the indexes.
    pub fn close(mut self) -> Result<(), StorageError> {
        self.active_mut().finalize()?;
        self.sync_dir()
    }

    /// Removes the partition directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(io_error(&dir))
    }

    pub(crate) fn active(&self) -> &Segment {
        self.segments.last().expect("the log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("the log always has a segment")
    }

    /// fsyncs the directory so that created and deleted segment files are durable.
    pub(crate) fn sync_dir(&mut self) -> Result<(), StorageError> {
        if self.dir_dirty {
            File::open(&self.dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io_error(&self.dir))?;
            self.dir_dirty = false;
        }
        Ok(())
    }
}

/// Kafka's "largest timestamp" of a segment for `retention.ms`: its max record
/// timestamp, or the file's modification time when no record has one.
fn largest_timestamp(segment: &Segment) -> i64 {
    if segment.max_timestamp() >= 0 {
        return segment.max_timestamp();
    }
    std::fs::metadata(segment.log_path())
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(i64::MAX, |age| age.as_millis() as i64)
}

/// Kafka's rule for compacted topics: every record must have a key, or the
/// cleaner could not tell which one is the latest. Needs the records, so the
/// batch is decoded (and decompressed) — only for compacted topics.
fn require_keys(batch: &[u8]) -> Result<(), StorageError> {
    let mut bytes = Bytes::copy_from_slice(batch);
    let sets =
        RecordBatchDecoder::decode_all(&mut bytes).map_err(|error| StorageError::InvalidBatch {
            position: 0,
            reason: format!("cannot decode records: {error}"),
        })?;
    if sets
        .iter()
        .flat_map(|set| set.records.iter())
        .any(|record| record.key.is_none() && !record.control)
    {
        return Err(StorageError::InvalidRecord {
            reason: "Compacted topic cannot accept message without key".into(),
        });
    }
    Ok(())
}
