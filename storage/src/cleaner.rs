//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! The log is split as Kafka splits it (see the "Log Compaction" section of
//! <https://kafka.apache.org/documentation/#compaction>): the *clean* section (already
//! compacted, below the broker's checkpointed *first dirty offset*), the *dirty* section
//! (appended since), and the uncleanable tail — the active segment and every segment
//! holding records younger than `min.compaction.lag.ms`. A cleaning builds a map of
//! key -> latest offset over the dirty section, then rewrites every segment below the
//! uncleanable tail, keeping a record unless a later record has the same key.
//!
//! A cleaning has three phases, so that the partition lock is held only briefly:
//! 1. [`Log::plan_cleaning`] (under the lock, cheap): decides whether the log is worth
//!    cleaning (`min.cleanable.dirty.ratio`, `max.compaction.lag.ms` per KIP-354) and
//!    records which inactive segments to clean and how to recognise them later.
//! 2. [`CleaningJob::clean_next_group`] (no lock): inactive segments never change, so
//!    they are read through their own file handles; the offset map is built, and one
//!    group of consecutive segments at a time is rewritten into `<base>.log.cleaned`
//!    (with its `.index.cleaned` / `.timeindex.cleaned`), written and indexed by the
//!    ordinary segment code in a scratch directory and then renamed next to the log.
//! 3. [`CleaningJob::swap`] (under the lock): checks that the replaced segments are
//!    still there unchanged (retention or truncation may have removed them), then swaps
//!    the cleaned segment in crash-safely (see `swap.rs`); otherwise the group is
//!    abandoned and its files deleted.
//!
//! Batches keep their boundaries: a batch whose records all stay is copied byte for
//! byte; one that loses records is decoded and re-encoded with the same codec by the
//! `kafka-protocol` crate, keeping its producer id, epoch, sequence numbers, leader
//! epoch, timestamp type and last offset (so offsets keep their gaps exactly as in
//! Kafka). A batch that loses every record disappears, except the last batch of a
//! cleaned segment, which stays as an empty batch (header only, as Kafka writes them)
//! so that the segment's offset range survives on disk — a crash in the middle of a
//! swap is finished from that range.
//!
//! Tombstones (a key with a null value) are removed once they have been in the clean
//! section for `delete.retention.ms` (KIP-534's rule: the clock starts at the first
//! cleaning that keeps the tombstone). `kafka-protocol` cannot write KIP-534's
//! delete-horizon batches (its encoder derives the base timestamp from the records), so
//! the start of the clock is kept as the modification time of the cleaned segment file,
//! as Kafka before KIP-534 kept it. See [`CleanStats::next_tombstone_expiry_ms`].
//!
//! Records without a key (Kafka refuses them on produce to a compacted topic) are kept.
//! Control batches are copied unchanged.

mod batches;
mod swap;
#[cfg(test)]
mod tests;

pub(crate) use swap::finish_interrupted_swaps;

use batches::{filter_batch, BatchReader, GroupWriter, Kept, Rules, Tally};

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kafka_protocol::records::RecordBatchDecoder;

use crate::batch::TimestampType;
use crate::error::io_error;
use crate::log::Log;
use crate::segment::{self, Segment};
use crate::{LogConfig, StorageError};

/// Directory inside the partition directory where cleaned segments are written before
/// they are renamed to `<base>.log.cleaned`; removed whenever a log is opened.
const SCRATCH_DIR: &str = "cleaner-scratch";

/// Upper bound for the key -> offset map of one cleaning, in (estimated) bytes. When
/// the dirty section holds more distinct keys, only its first segments are cleaned this
/// time, as Kafka does when its dedupe buffer is full
/// (`log.cleaner.dedupe.buffer.size`, default 128 MiB).
const OFFSET_MAP_MAX_BYTES: usize = 128 << 20;

/// Per-entry overhead assumed by the map's size estimate (the key's `Vec`, the offset
/// and the hash table's slack).
const OFFSET_MAP_ENTRY_OVERHEAD: usize = 48;

/// Output batches are handed to the segment writer in chunks of about this size.
pub(super) const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Kafka caps segments at `Int.MaxValue` bytes; index positions are 32-bit.
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// What a cleaning did. The broker checkpoints [`CleanStats::first_dirty_offset`] and
/// cleans again at [`CleanStats::next_tombstone_expiry_ms`] even if the log is not
/// dirty enough then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments replaced by cleaned ones.
    pub segments_cleaned: usize,
    /// Cleaned segments swapped in.
    pub segments_written: usize,
    /// Groups not swapped in because their segments changed meanwhile.
    pub groups_abandoned: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    /// Records removed because a later record has the same key, plus expired tombstones.
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Where the dirty section starts now: the end of what was cleaned (or the first
    /// dirty offset given, if any group had to be abandoned). The broker checkpoints it
    /// in `cleaner-offset-checkpoint`.
    pub first_dirty_offset: i64,
    /// The earliest wall-clock time at which a tombstone kept by this cleaning may be
    /// removed; `None` when no tombstone was kept.
    pub next_tombstone_expiry_ms: Option<i64>,
}

impl CleanStats {
    fn nothing(first_dirty_offset: i64) -> CleanStats {
        CleanStats {
            segments_cleaned: 0,
            segments_written: 0,
            groups_abandoned: 0,
            bytes_read: 0,
            bytes_written: 0,
            records_read: 0,
            records_removed: 0,
            tombstones_removed: 0,
            first_dirty_offset,
            next_tombstone_expiry_ms: None,
        }
    }
}

/// How an inactive segment looked when the cleaning was planned. A segment is only
/// replaced if it still looks exactly like this at swap time.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SegmentIdentity {
    base_offset: i64,
    next_offset: i64,
    size: u64,
    device: u64,
    inode: u64,
    modified: Option<SystemTime>,
}

impl SegmentIdentity {
    /// One `stat` of the segment's `.log` file plus what the segment knows about itself.
    fn of(segment: &Segment) -> Result<SegmentIdentity, StorageError> {
        let path = segment.log_path();
        let metadata = fs::metadata(path).map_err(io_error(path))?;
        Ok(SegmentIdentity {
            base_offset: segment.base_offset(),
            next_offset: segment.next_offset(),
            size: segment.size(),
            device: metadata.dev(),
            inode: metadata.ino(),
            modified: metadata.modified().ok(),
        })
    }
}

/// One inactive segment to clean.
struct Source {
    identity: SegmentIdentity,
    path: PathBuf,
    /// In the dirty section (at or above the first dirty offset).
    dirty: bool,
    /// The segment file's modification time in ms: for a cleaned segment, when its
    /// oldest kept tombstone was first kept (the tombstone clock).
    clock_ms: i64,
}

/// Key -> offset of its latest record in the dirty section.
#[derive(Default)]
struct OffsetMap {
    latest: HashMap<Vec<u8>, i64>,
    estimated_bytes: usize,
}

impl OffsetMap {
    fn insert(&mut self, key: &[u8], offset: i64) {
        match self.latest.get_mut(key) {
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                self.estimated_bytes += key.len() + OFFSET_MAP_ENTRY_OVERHEAD;
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    /// Whether a record with `key` at `offset` is superseded by a later one.
    fn supersedes(&self, key: &[u8], offset: i64) -> bool {
        self.latest.get(key).is_some_and(|&latest| latest > offset)
    }
}

/// A planned cleaning of one log: phase 2 runs on it without the partition lock.
pub struct CleaningJob {
    dir: PathBuf,
    config: LogConfig,
    now_ms: i64,
    /// The first dirty offset the plan started from.
    first_dirty_offset: i64,
    /// Every segment from the first one up to the uncleanable tail.
    sources: Vec<Source>,
    /// `sources[..end_index]` are cleaned (the offset map may shrink it).
    end_index: usize,
    /// The base offset of the first segment not cleaned.
    end_offset: i64,
    offset_map: Option<OffsetMap>,
    /// The first source not yet grouped.
    next_source: usize,
    stats: CleanStats,
}

/// A cleaned segment written as `<base>.log.cleaned` (and indexes), waiting to be
/// swapped in. Dropping it without a swap deletes its files.
pub struct CleanedGroup {
    dir: PathBuf,
    base_offset: i64,
    /// The segments it replaces, as planned.
    replaces: Vec<SegmentIdentity>,
    /// Whether the `.cleaned` files are still this group's to delete.
    owns_files: bool,
    bytes_read: u64,
    bytes_written: u64,
    records_removed: u64,
    tombstones_removed: u64,
}

impl CleanedGroup {
    /// The path of one of this group's files with a cleaner suffix (`cleaned`, `swap`).
    fn path(&self, extension: &str, suffix: &str) -> PathBuf {
        suffixed(&self.dir, self.base_offset, extension, suffix)
    }
}

impl Drop for CleanedGroup {
    fn drop(&mut self) {
        if self.owns_files {
            for extension in SEGMENT_EXTENSIONS {
                let _ = fs::remove_file(self.path(extension, "cleaned"));
            }
        }
    }
}

/// The three files of a segment, `.log` first.
const SEGMENT_EXTENSIONS: [&str; 3] = ["log", "index", "timeindex"];

/// `<dir>/<base>.<extension>.<suffix>`.
fn suffixed(dir: &Path, base_offset: i64, extension: &str, suffix: &str) -> PathBuf {
    dir.join(format!(
        "{}.{suffix}",
        segment::file_name(base_offset, extension)
    ))
}

impl Log {
    /// Phase 1 of a cleaning, under the partition lock: decides whether the log needs
    /// cleaning and plans it. Returns `None` when the topic is not compacted or there is
    /// nothing worth cleaning.
    ///
    /// `first_dirty_offset` is the broker's checkpoint (the log start offset when it has
    /// none; out-of-range values fall back to it, as in Kafka). The log is cleaned when
    /// the dirty share of the cleanable bytes is above `min.cleanable.dirty.ratio`, when
    /// its oldest dirty record is older than `max.compaction.lag.ms`, or when `force` is
    /// set (the broker forces a cleaning when a kept tombstone expires). Segments holding
    /// records younger than `min.compaction.lag.ms` and the active segment are never
    /// cleaned; an active segment older than `max.compaction.lag.ms` is rolled first so
    /// that it can be (KIP-354).
    pub fn plan_cleaning(
        &mut self,
        first_dirty_offset: i64,
        now_ms: i64,
        force: bool,
    ) -> Result<Option<CleaningJob>, StorageError> {
        if !self.config.cleanup_compact {
            return Ok(None);
        }
        self.roll_for_max_compaction_lag(now_ms)?;
        let first_dirty_offset = self.clamp_first_dirty_offset(first_dirty_offset);
        let first_dirty_index = self
            .segments
            .partition_point(|segment| segment.base_offset() <= first_dirty_offset)
            .saturating_sub(1);
        let end_index = self.first_uncleanable_index(first_dirty_index, now_ms);
        if end_index == 0 {
            return Ok(None);
        }
        let dirty_start = first_dirty_index.min(end_index);
        let clean_bytes: u64 = self.segments[..dirty_start].iter().map(Segment::size).sum();
        let dirty_bytes: u64 = self.segments[dirty_start..end_index]
            .iter()
            .map(Segment::size)
            .sum();
        let ratio = if dirty_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / (clean_bytes + dirty_bytes) as f64
        };
        let dirty_enough = dirty_bytes > 0 && ratio > self.config.min_cleanable_dirty_ratio;
        let overdue = self.dirty_records_overdue(dirty_start..end_index, now_ms)?;
        if !(dirty_enough || overdue || force) {
            return Ok(None);
        }
        let mut sources = Vec::with_capacity(end_index);
        for (index, segment) in self.segments[..end_index].iter().enumerate() {
            let identity = SegmentIdentity::of(segment)?;
            let clock_ms = identity.modified.map_or(0, millis_since_epoch);
            sources.push(Source {
                identity,
                path: segment.log_path().to_path_buf(),
                dirty: index >= dirty_start,
                clock_ms,
            });
        }
        let end_offset = self.segments[end_index].base_offset();
        tracing::debug!(
            dir = %self.dir.display(),
            first_dirty_offset,
            end_offset,
            ratio,
            overdue,
            force,
            "planned log cleaning"
        );
        Ok(Some(CleaningJob {
            dir: self.dir.clone(),
            config: self.config.clone(),
            now_ms,
            first_dirty_offset,
            end_index,
            end_offset,
            sources,
            offset_map: None,
            next_source: 0,
            stats: CleanStats::nothing(first_dirty_offset),
        }))
    }

    /// Runs a whole cleaning at once (all three phases, holding `&mut self`) with no
    /// first dirty offset checkpointed: the whole cleanable log counts as dirty and is
    /// cleaned regardless of the dirty ratio. Superseded records go; tombstones stay
    /// (they are only removed from the clean section, see [`Log::compact_from`]).
    /// For tests and tools; the broker uses the phases separately.
    pub fn compact_now(&mut self, now_ms: i64) -> Result<CleanStats, StorageError> {
        let first_segment = self.segments[0].base_offset();
        self.compact_from(first_segment, now_ms, true)
    }

    /// Runs a whole cleaning at once from a known first dirty offset (the value the
    /// previous cleaning returned in [`CleanStats::first_dirty_offset`]); `force` as in
    /// [`Log::plan_cleaning`]. Returns empty stats when nothing was cleaned.
    pub fn compact_from(
        &mut self,
        first_dirty_offset: i64,
        now_ms: i64,
        force: bool,
    ) -> Result<CleanStats, StorageError> {
        let Some(mut job) = self.plan_cleaning(first_dirty_offset, now_ms, force)? else {
            return Ok(CleanStats::nothing(
                self.clamp_first_dirty_offset(first_dirty_offset),
            ));
        };
        while let Some(group) = job.clean_next_group()? {
            job.swap(self, group)?;
        }
        Ok(job.finish())
    }

    /// A checkpointed first dirty offset outside the log means the checkpoint is stale
    /// (truncation, a recreated topic): start from the log start offset, as Kafka does.
    fn clamp_first_dirty_offset(&self, first_dirty_offset: i64) -> i64 {
        if first_dirty_offset < self.log_start_offset()
            || first_dirty_offset > self.log_end_offset()
        {
            self.log_start_offset()
        } else {
            first_dirty_offset
        }
    }

    /// KIP-354: a compacted log's active segment is rolled once its first append is
    /// older than `max.compaction.lag.ms`, so that its records become cleanable.
    fn roll_for_max_compaction_lag(&mut self, now_ms: i64) -> Result<(), StorageError> {
        let max_lag = self.config.max_compaction_lag_ms;
        if max_lag == i64::MAX {
            return Ok(());
        }
        let active = self.active();
        let overdue = active
            .first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) > max_lag);
        if active.size() > 0 && overdue {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// The index of the first segment that must not be cleaned: the active segment, or
    /// an earlier dirty one holding records younger than `min.compaction.lag.ms`.
    fn first_uncleanable_index(&self, first_dirty_index: usize, now_ms: i64) -> usize {
        let active_index = self.segments.len() - 1;
        let min_lag = self.config.min_compaction_lag_ms;
        if min_lag <= 0 {
            return active_index;
        }
        let youngest_allowed = now_ms.saturating_sub(min_lag);
        (first_dirty_index..active_index)
            .find(|&i| self.segments[i].max_timestamp() > youngest_allowed)
            .unwrap_or(active_index)
    }

    /// Whether the oldest record of the dirty segments is older than
    /// `max.compaction.lag.ms` (KIP-354), judged by the first batch's timestamp.
    fn dirty_records_overdue(
        &self,
        dirty: std::ops::Range<usize>,
        now_ms: i64,
    ) -> Result<bool, StorageError> {
        let max_lag = self.config.max_compaction_lag_ms;
        if max_lag == i64::MAX {
            return Ok(false);
        }
        for segment in &self.segments[dirty] {
            if let Some((_, header)) = segment.find_batch(segment.base_offset())? {
                let first_timestamp = match header.timestamp_type() {
                    TimestampType::LogAppendTime => header.max_timestamp,
                    TimestampType::CreateTime => header.base_timestamp,
                };
                return Ok(first_timestamp >= 0 && now_ms.saturating_sub(first_timestamp) > max_lag);
            }
        }
        Ok(false)
    }
}

impl CleaningJob {
    /// The first dirty offset this cleaning started from.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset
    }

    /// The base offset of the first segment this cleaning leaves alone.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Phase 2, without the partition lock: writes the next group of consecutive
    /// segments (at most `segment.bytes` together, offsets within an i32 of the base)
    /// as one cleaned segment. Groups whose content would not change are skipped.
    /// Returns `None` when every group is done. The first call builds the offset map.
    pub fn clean_next_group(&mut self) -> Result<Option<CleanedGroup>, StorageError> {
        if self.offset_map.is_none() {
            self.build_offset_map()?;
        }
        while self.next_source < self.end_index {
            let start = self.next_source;
            let end = self.group_end(start);
            self.next_source = end;
            if let Some(group) = self.clean_group(start..end)? {
                return Ok(Some(group));
            }
        }
        Ok(None)
    }

    /// Phase 3, under the partition lock: swaps `group` into `log` if the segments it
    /// replaces are still there unchanged, else deletes it. Returns whether it was
    /// swapped in.
    pub fn swap(&mut self, log: &mut Log, group: CleanedGroup) -> Result<bool, StorageError> {
        let replaced = group.replaces.len();
        let (bytes_read, bytes_written) = (group.bytes_read, group.bytes_written);
        let (records_removed, tombstones_removed) =
            (group.records_removed, group.tombstones_removed);
        let swapped = log.swap_in(group, None)?;
        if swapped {
            self.stats.segments_cleaned += replaced;
            self.stats.segments_written += 1;
            self.stats.bytes_read += bytes_read;
            self.stats.bytes_written += bytes_written;
            self.stats.records_removed += records_removed;
            self.stats.tombstones_removed += tombstones_removed;
        } else {
            self.stats.groups_abandoned += 1;
        }
        Ok(swapped)
    }

    /// The result; the first dirty offset moves to the end of what was cleaned unless a
    /// group had to be abandoned.
    pub fn finish(mut self) -> CleanStats {
        self.stats.first_dirty_offset = if self.stats.groups_abandoned == 0 {
            self.end_offset
        } else {
            self.first_dirty_offset
        };
        self.stats
    }

    /// Reads every dirty segment and records the latest offset of each key. Stops after
    /// the segment that fills the map; the cleaning then ends there.
    fn build_offset_map(&mut self) -> Result<(), StorageError> {
        let mut map = OffsetMap::default();
        let first_dirty = self
            .sources
            .iter()
            .position(|source| source.dirty)
            .unwrap_or(self.end_index);
        for index in first_dirty..self.end_index {
            let source = &self.sources[index];
            let mut reader = BatchReader::open(source)?;
            while let Some((_, header, bytes)) = reader.next()? {
                self.stats.records_read += u64::try_from(header.record_count).unwrap_or(0);
                if header.is_control() {
                    continue;
                }
                match RecordBatchDecoder::decode(&mut bytes.clone()) {
                    Ok(set) => {
                        for record in &set.records {
                            if let Some(key) = &record.key {
                                map.insert(key, record.offset);
                            }
                        }
                    }
                    // Its keys stay unknown, so nothing older is removed because of it.
                    Err(error) => {
                        tracing::warn!(segment = %source.path.display(), offset = header.base_offset, %error, "cannot decode batch; its keys do not supersede older records")
                    }
                }
            }
            if map.estimated_bytes > OFFSET_MAP_MAX_BYTES && index + 1 < self.end_index {
                tracing::info!(dir = %self.dir.display(), keys = map.latest.len(), "offset map full; cleaning part of the dirty section");
                self.end_index = index + 1;
                self.end_offset = self.sources[index + 1].identity.base_offset;
                break;
            }
        }
        self.offset_map = Some(map);
        Ok(())
    }

    /// The end (exclusive) of the group starting at `start`: consecutive sources while
    /// their sizes add up to at most `segment.bytes` and their offsets fit the 32-bit
    /// relative offsets of one segment's index.
    fn group_end(&self, start: usize) -> usize {
        let max_bytes = self.config.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        let base = self.sources[start].identity.base_offset;
        let mut bytes = 0u64;
        let mut end = start;
        while end < self.end_index {
            let source = &self.sources[end].identity;
            let fits = bytes + source.size <= max_bytes
                && source.next_offset - 1 - base <= i64::from(i32::MAX);
            if end > start && !fits {
                break;
            }
            bytes += source.size;
            end += 1;
        }
        end
    }

    /// Writes the cleaned form of `sources[range]`; `None` if it would equal the single
    /// source segment it replaces.
    fn clean_group(
        &mut self,
        range: std::ops::Range<usize>,
    ) -> Result<Option<CleanedGroup>, StorageError> {
        let map = self
            .offset_map
            .as_ref()
            .expect("built before the first group");
        let base_offset = self.sources[range.start].identity.base_offset;
        let scratch = self.dir.join(SCRATCH_DIR);
        // Not create_dir_all: a partition directory deleted meanwhile (topic deletion)
        // must not come back.
        match fs::create_dir(&scratch) {
            Err(error) if error.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(io_error(&scratch)(error));
            }
            _ => {}
        }
        let mut writer = GroupWriter::new(Segment::create(&scratch, base_offset, &self.config)?);
        let last_with_batches = range
            .clone()
            .rev()
            .find(|&i| self.sources[i].identity.size > 0);
        let delete_retention_ms = self.config.delete_retention_ms;
        let mut tally = Tally::default();
        let mut bytes_read = 0;
        for index in range.clone() {
            let source = &self.sources[index];
            bytes_read += source.identity.size;
            let tombstones_expire =
                !source.dirty && source.clock_ms.saturating_add(delete_retention_ms) <= self.now_ms;
            let mut reader = BatchReader::open(source)?;
            while let Some((position, header, bytes)) = reader.next()? {
                let ends_group = Some(index) == last_with_batches
                    && position + bytes.len() as u64 == source.identity.size;
                let rules = Rules {
                    map,
                    tombstones_expire,
                    ends_group,
                };
                let kept_tombstones = tally.kept_tombstones;
                match filter_batch(&header, bytes, &rules, &mut tally) {
                    Kept::Verbatim(bytes) => writer.push(&bytes, header, &self.config)?,
                    Kept::Rewritten(bytes) => {
                        tally.changed = true;
                        writer.push_new(&bytes, &self.config)?
                    }
                    Kept::Dropped => tally.changed = true,
                }
                if tally.kept_tombstones > kept_tombstones {
                    // The clock of a kept tombstone starts at its first cleaning.
                    let clock = if source.dirty {
                        self.now_ms
                    } else {
                        source.clock_ms
                    };
                    tally.tombstone_clock_ms = tally.tombstone_clock_ms.max(Some(clock));
                }
            }
        }
        if let Some(clock) = tally.tombstone_clock_ms {
            let expiry = clock.saturating_add(delete_retention_ms);
            let next = &mut self.stats.next_tombstone_expiry_ms;
            *next = Some(next.map_or(expiry, |next| next.min(expiry)));
        }
        let replaces: Vec<SegmentIdentity> = self.sources[range.clone()]
            .iter()
            .map(|source| source.identity.clone())
            .collect();
        if range.len() == 1 && !tally.changed {
            writer.output.delete()?;
            let source = &self.sources[range.start];
            if source.dirty && tally.tombstone_clock_ms.is_some() {
                // Unchanged but newly clean: its tombstones' clock starts now.
                set_modified(&source.path, self.now_ms)?;
            }
            return Ok(None);
        }
        let clock_ms = tally.tombstone_clock_ms.unwrap_or_else(|| {
            self.sources[range.clone()]
                .iter()
                .map(|source| source.clock_ms)
                .max()
                .unwrap_or(self.now_ms)
        });
        let bytes_written = writer.finish(&self.config)?;
        let group = CleanedGroup {
            dir: self.dir.clone(),
            base_offset,
            replaces,
            owns_files: true,
            bytes_read,
            bytes_written,
            records_removed: tally.records_removed,
            tombstones_removed: tally.tombstones_removed,
        };
        set_modified(
            &scratch.join(segment::file_name(base_offset, "log")),
            clock_ms,
        )?;
        for extension in SEGMENT_EXTENSIONS {
            let from = scratch.join(segment::file_name(base_offset, extension));
            let to = group.path(extension, "cleaned");
            fs::rename(&from, &to).map_err(io_error(&to))?;
        }
        Ok(Some(group))
    }
}

fn millis_since_epoch(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    })
}

/// Sets a file's modification time (the tombstone clock) and makes it durable.
fn set_modified(path: &Path, millis: i64) -> Result<(), StorageError> {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    file.set_modified(time).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))
}
