//! One log segment: a `.log` file of record batches plus its two sparse indexes.
//!
//! A segment knows how to append validated batches, find the batch holding an offset,
//! hand out whole batches as file slices, and rebuild its own indexes by scanning
//! (recovery). All file reads and writes are positioned (`read_exact_at` /
//! `write_all_at`), so readers never disturb a shared file cursor.
//!
//! A segment holds no open file: its `.log` file and index files come from the
//! process-wide [`fd_cache`](crate::fd_cache) when needed, so 10,000 idle partitions
//! hold no descriptors. The active segment keeps its index entries in memory
//! (see [`crate::index`]); an older one maps its indexes read-only on first use and
//! checks them then, rebuilding them from the log if they do not fit it.
//!
//! An append either lands whole or leaves nothing: if writing the batches or their
//! index entries fails (a full disk, an I/O error), the files are cut back to their
//! old lengths and the in-memory state is restored, so the partition keeps working
//! once the disk has room again.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::batch::{self, BatchHeader, TimestampType, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::io_error;
use crate::fd_cache::{self, FileKind, Handle};
use crate::index::{self, OffsetIndex, TimeIndex};
use crate::{FileSlice, LogConfig, StorageError};

mod load;

/// Kafka's "no timestamp" value; the max timestamp of a segment without timestamps.
const NO_TIMESTAMP: i64 = -1;

/// File name of a segment file: the base offset zero-padded to 20 digits.
pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// Where indexing stands after the last batch: what Kafka's per-batch index rule
/// needs to decide the next entry.
#[derive(Clone, Copy, Debug)]
struct IndexCursor {
    /// Last offset + 1 of the last batch, or the base offset when empty.
    next_offset: i64,
    /// Largest batch maxTimestamp seen, and the last offset of the first batch that
    /// reached it (what the time index records).
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Bytes appended since the last index entry (Kafka's `bytesSinceLastIndexEntry`).
    bytes_since_last_index_entry: u64,
}

impl IndexCursor {
    fn new(base_offset: i64) -> IndexCursor {
        IndexCursor {
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
        }
    }

    /// Kafka's per-batch index rule: track the max timestamp, and once more than
    /// `index.interval.bytes` were appended since the last entry, index this batch
    /// (its last offset at its start position) and the max timestamp so far.
    /// Returns the entries to add: ((offset, position), (timestamp, offset)).
    fn advance(
        &mut self,
        position: u64,
        header: &BatchHeader,
        index_interval_bytes: u32,
    ) -> Option<((i64, u32), (i64, i64))> {
        let last_offset = header.last_offset();
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        let mut entries = None;
        if self.bytes_since_last_index_entry > u64::from(index_interval_bytes) {
            // Positions fit in u32: segments are capped at i32::MAX bytes.
            entries = Some((
                (last_offset, position as u32),
                (self.max_timestamp, self.offset_of_max_timestamp),
            ));
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size() as u64;
        self.next_offset = last_offset + 1;
        entries
    }
}

/// A segment of the partition log.
pub(crate) struct Segment {
    /// Process-unique: the key of this segment's files in the file cache.
    id: u64,
    base_offset: i64,
    log_path: PathBuf,
    /// Bytes of valid batches; the file is never longer once loaded.
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    cursor: IndexCursor,
    /// `index.interval.bytes` when the segment was loaded: a lazy index rebuild of an
    /// older segment uses it.
    index_interval_bytes: u32,
    /// Whether the indexes are known to fit the log. Older segments are checked on
    /// first use rather than at open (10,000 partitions start without reading them).
    indexes_checked: AtomicBool,
    /// Wall-clock time of the first append to this segment, for `segment.ms` rolls.
    pub first_append_ms: Option<i64>,
}

impl Drop for Segment {
    fn drop(&mut self) {
        fd_cache::global().forget_segment(self.id);
    }
}

impl Segment {
    /// Creates a fresh, empty segment (replacing any leftover files of that name):
    /// it becomes the active segment. If any file cannot be created, none is left.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<Segment, StorageError> {
        let paths = ["log", "index", "timeindex"].map(|ext| dir.join(file_name(base_offset, ext)));
        for path in &paths {
            remove_if_exists(path)?;
        }
        let created = paths
            .iter()
            .try_for_each(|path| File::create(path).map(drop).map_err(io_error(path)));
        let segment = created.and_then(|()| {
            let mut segment = Segment::open(dir, base_offset)?.0;
            segment.activate(config)?;
            Ok(segment)
        });
        if segment.is_err() {
            for path in &paths {
                let _ = fs::remove_file(path);
            }
        }
        segment
    }

    /// Describes the files of an existing segment without opening them (its size
    /// comes from the directory entry). The caller then runs one of the load paths
    /// ([`Segment::recover`], [`Segment::recover_from`], [`Segment::load_clean`]).
    /// The flag says whether an index file is missing.
    pub fn open(dir: &Path, base_offset: i64) -> Result<(Segment, bool), StorageError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_index_path = dir.join(file_name(base_offset, "timeindex"));
        let index_missing = !index_path.exists() || !time_index_path.exists();
        let size = fs::metadata(&log_path).map_err(io_error(&log_path))?.len();
        let id = fd_cache::next_segment_id();
        let segment = Segment {
            id,
            base_offset,
            offset_index: OffsetIndex::new(&index_path, base_offset, (id, FileKind::OffsetIndex)),
            time_index: TimeIndex::new(&time_index_path, base_offset, (id, FileKind::TimeIndex)),
            log_path,
            size,
            cursor: IndexCursor::new(base_offset),
            index_interval_bytes: LogConfig::default().index_interval_bytes,
            indexes_checked: AtomicBool::new(false),
            first_append_ms: None,
        };
        Ok((segment, index_missing))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.cursor.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn max_timestamp(&self) -> i64 {
        self.cursor.max_timestamp
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The `.log` file, from the file cache (opened again if it was closed). The
    /// handle stays usable after eviction or deletion for as long as it is held.
    pub fn log_file(&self) -> Result<Arc<File>, StorageError> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.log_path)
                .map(|file| Handle::File(Arc::new(file)))
                .map_err(io_error(&self.log_path))
        };
        match fd_cache::global().get_or_open((self.id, FileKind::Log), open)? {
            Handle::File(file) => Ok(file),
            Handle::Map(_) => Err(StorageError::Io {
                path: self.log_path.clone(),
                source: std::io::Error::other("segment file cached as a mapping"),
            }),
        }
    }

    /// Whether an index has no room left: Kafka rolls the segment then.
    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Writes already validated and offset-patched batches at the end of the segment
    /// and indexes them. `batches` holds each batch's position in `records` and its
    /// (patched) header. All or nothing: on a write error (ENOSPC, EIO) the log and
    /// index files are cut back and the segment is as before the call.
    pub fn append(
        &mut self,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let log = self.log_file()?;
        let before = (
            self.size,
            self.cursor,
            self.offset_index.entries(),
            self.time_index.entries(),
        );
        if let Err(source) = log.write_all_at(records, self.size) {
            // Leave no partial batch behind the valid data, and reopen the file next
            // time rather than trust a descriptor that failed.
            let _ = log.set_len(self.size);
            fd_cache::global().forget((self.id, FileKind::Log));
            return Err(StorageError::Io {
                path: self.log_path.clone(),
                source,
            });
        }
        let start = self.size;
        for (position, header) in batches {
            self.index_batch(
                start + *position as u64,
                header,
                config.index_interval_bytes,
            );
        }
        self.size += records.len() as u64;
        let written = self
            .offset_index
            .write_pending()
            .and_then(|()| self.time_index.write_pending());
        if let Err(error) = written {
            let (size, cursor, offset_entries, time_entries) = before;
            let _ = self.offset_index.truncate_entries(offset_entries);
            let _ = self.time_index.truncate_entries(time_entries);
            let _ = log.set_len(size);
            self.size = size;
            self.cursor = cursor;
            return Err(error);
        }
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Applies Kafka's per-batch index rule ([`IndexCursor::advance`]) to the
    /// in-memory indexes of the active segment.
    fn index_batch(&mut self, position: u64, header: &BatchHeader, index_interval_bytes: u32) {
        if let Some(((offset, position), (timestamp, time_offset))) =
            self.cursor.advance(position, header, index_interval_bytes)
        {
            self.offset_index.append(offset, position);
            self.time_index.maybe_append(timestamp, time_offset);
        }
    }

    /// Reads and sanity-checks the header of the batch at `position`.
    fn read_header_at(&self, position: u64) -> Result<BatchHeader, StorageError> {
        self.read_header_in(&*self.log_file()?, position)
    }

    fn read_header_in(&self, log: &File, position: u64) -> Result<BatchHeader, StorageError> {
        let corrupt = |reason: String| StorageError::CorruptBatch {
            segment: Some(self.log_path.clone()),
            position,
            reason,
        };
        if position + HEADER_SIZE as u64 > self.size {
            return Err(corrupt(
                "batch header runs past the segment end".to_string(),
            ));
        }
        let mut raw = [0u8; HEADER_SIZE];
        log.read_exact_at(&mut raw, position)
            .map_err(io_error(&self.log_path))?;
        let header = BatchHeader::parse(&raw).ok_or_else(|| corrupt("short header".into()))?;
        if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
            || position + header.size() as u64 > self.size
        {
            return Err(corrupt(format!("bad batch length {}", header.batch_length)));
        }
        Ok(header)
    }

    /// The position and header of the batch holding `offset`, or of the first batch
    /// after it; `None` when the segment ends before `offset`.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        self.ensure_indexes_checked()?;
        let (_, position) = self.offset_index.lookup(offset)?;
        let log = self.log_file()?;
        let mut position = u64::from(position);
        while position < self.size {
            let header = self.read_header_in(&log, position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Calls `visit` with the header of every batch in the segment, in order,
    /// reading only the headers (one small positioned read each).
    pub fn for_each_batch_header(
        &self,
        visit: &mut impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        self.for_each_batch_header_from(0, visit)
    }

    /// Like [`Segment::for_each_batch_header`], from the batch at `position`.
    pub fn for_each_batch_header_from(
        &self,
        mut position: u64,
        visit: &mut impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let log = self.log_file()?;
        while position < self.size {
            let header = self.read_header_in(&log, position)?;
            visit(&header);
            position += header.size() as u64;
        }
        Ok(())
    }

    /// The whole batches from `position` on that fit in `max_bytes`, as a slice
    /// of the file (nothing is copied); with `min_one_batch` the first batch is
    /// included even when larger. Only batch headers are read: the offset index
    /// (whose entries are batch start positions) skips the walk to the last
    /// indexed batch that starts within the limit.
    pub fn slice_batches(
        &self,
        position: u64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<FileSlice, StorageError> {
        self.ensure_indexes_checked()?;
        let log = self.log_file()?;
        let limit = position.saturating_add(max_bytes as u64).min(self.size);
        let mut end = position.max(self.offset_index.position_at_or_below(limit)?);
        while end < limit {
            let header = self.read_header_in(&log, end)?;
            let next = end + header.size() as u64;
            if next > limit {
                break;
            }
            end = next;
        }
        if end == position && min_one_batch && position < self.size {
            end = position + self.read_header_in(&log, position)?.size() as u64;
        }
        Ok(FileSlice::new(log, position, (end - position) as usize))
    }

    /// Removes everything at and above `offset` (the segment must be active). The cut
    /// is at the start of the batch holding `offset` (a batch is never split), so the
    /// new next offset may be below `offset`. Index entries past the cut are dropped
    /// and the last few batches rescanned to restore the max timestamp.
    pub fn truncate_to(&mut self, offset: i64, config: &LogConfig) -> Result<(), StorageError> {
        let Some((cut, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.log_file()?
            .set_len(cut)
            .map_err(io_error(&self.log_path))?;
        self.size = cut;
        self.offset_index.truncate_to_position(cut)?;
        let next_offset_bound = match self.offset_index.last_entry()? {
            // Batches up to the last kept offset index entry survive.
            Some((offset, _)) => offset + 1,
            None => self.base_offset,
        };
        // The time index may hold entries (e.g. a roll's final entry) beyond the last
        // offset index entry; the tail scan recomputes what they summarised.
        self.time_index.truncate_to_offset(next_offset_bound)?;
        self.cursor = IndexCursor::new(self.base_offset);
        if let Some((timestamp, offset)) = self.time_index.last_entry()? {
            self.cursor.max_timestamp = timestamp;
            self.cursor.offset_of_max_timestamp = offset;
        }
        self.load_tail(config)?;
        Ok(())
    }

    /// The first record with timestamp `>= timestamp` in this segment, as
    /// (offset, timestamp). The time index gives a start, batch headers narrow it to
    /// one batch, and only that batch is decoded.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if self.cursor.max_timestamp < timestamp {
            return Ok(None);
        }
        self.ensure_indexes_checked()?;
        let start_offset = self
            .time_index
            .lookup_below(timestamp)?
            .map_or(self.base_offset, |(_, offset)| offset);
        let (_, position) = self.offset_index.lookup(start_offset)?;
        let log = self.log_file()?;
        let mut position = u64::from(position);
        while position < self.size {
            let header = self.read_header_in(&log, position)?;
            if header.max_timestamp >= timestamp {
                let found = self.first_record_at_or_after(&log, position, &header, timestamp)?;
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// The record holding this segment's max timestamp (the first one, when several
    /// share it), as (offset, timestamp) — KIP-734. `None` without timestamps.
    pub fn max_timestamp_record(&self) -> Result<Option<(i64, i64)>, StorageError> {
        if self.cursor.max_timestamp == NO_TIMESTAMP {
            return Ok(None);
        }
        let Some((position, header)) = self.find_batch(self.cursor.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        let log = self.log_file()?;
        self.first_record_at_or_after(&log, position, &header, header.max_timestamp)
    }

    /// Within the batch at `position`, the first record with timestamp `>= timestamp`.
    /// LogAppendTime batches stamp every record with the batch's maxTimestamp. If the
    /// batch cannot be decoded (an unknown codec), the batch's first offset and max
    /// timestamp are the best answer left.
    fn first_record_at_or_after(
        &self,
        log: &File,
        position: u64,
        header: &BatchHeader,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            return Ok((header.max_timestamp >= timestamp)
                .then_some((header.base_offset, header.max_timestamp)));
        }
        let mut raw = vec![0u8; header.size()];
        log.read_exact_at(&mut raw, position)
            .map_err(io_error(&self.log_path))?;
        match RecordBatchDecoder::decode(&mut Bytes::from(raw)) {
            Ok(set) => Ok(set
                .records
                .iter()
                .find(|record| record.timestamp >= timestamp)
                .map(|record| (record.offset, record.timestamp))),
            Err(error) => {
                tracing::warn!(segment = %self.log_path.display(), position, %error, "cannot decode batch for a timestamp lookup");
                Ok(Some((header.base_offset, header.max_timestamp)))
            }
        }
    }

    /// Makes this the active segment: its index entries are loaded into memory to be
    /// appended to, up to `segment.index.bytes`. Indexes not yet checked against the
    /// log are checked now and rebuilt by a full scan if they do not fit.
    pub fn activate(&mut self, config: &LogConfig) -> Result<(), StorageError> {
        self.index_interval_bytes = config.index_interval_bytes;
        self.offset_index.activate(config.segment_index_bytes)?;
        self.time_index.activate(config.segment_index_bytes)?;
        if self.indexes_checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let check = self
            .offset_index
            .sanity_check(i64::MAX, self.size)
            .and_then(|()| self.time_index.sanity_check(i64::MAX));
        match check {
            Ok(()) => self.indexes_checked.store(true, Ordering::Release),
            Err(reason) => {
                tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding inconsistent index");
                self.recover(config)?;
            }
        }
        Ok(())
    }

    /// Drops the in-memory index entries of a segment that is no longer active (all
    /// of them are written); reads map the index files from now on.
    pub fn deactivate(&mut self) {
        self.offset_index.deactivate();
        self.time_index.deactivate();
    }

    /// Ends this segment's active life (roll, close): records the final max timestamp
    /// entry, fsyncs everything and drops the in-memory index entries. On failure
    /// the segment stays active and usable.
    pub fn finalize(&mut self) -> Result<(), StorageError> {
        let time_entries = self.time_index.entries();
        self.time_index.append_final(
            self.cursor.max_timestamp,
            self.cursor.offset_of_max_timestamp,
        );
        if let Err(error) = self.time_index.write_pending() {
            let _ = self.time_index.truncate_entries(time_entries);
            return Err(error);
        }
        self.flush()?;
        self.deactivate();
        Ok(())
    }

    /// fsyncs the log file and the index files written while active.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.log_file()?
            .sync_data()
            .map_err(io_error(&self.log_path))?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Closes and removes the segment's files.
    pub fn delete(self) -> Result<(), StorageError> {
        let paths = [
            self.log_path.clone(),
            self.offset_index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        drop(self);
        for path in paths {
            remove_if_exists(&path)?;
        }
        Ok(())
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Io {
            path: path.to_path_buf(),
            source: error,
        }),
        _ => Ok(()),
    }
}
