//! One log segment: a `.log` file of record batches plus its two sparse indexes.
//!
//! A segment knows how to append validated batches, find the batch holding an offset,
//! copy whole batches out, and rebuild its own indexes by scanning (recovery). All file
//! reads and writes are positioned (`read_exact_at` / `write_all_at`), so readers never
//! disturb a shared file cursor.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use crate::batch::{self, BatchHeader, TimestampType, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::io_error;
use crate::index::{OffsetIndex, TimeIndex};
use crate::{FileSlice, LogConfig, StorageError};

/// Kafka's "no timestamp" value; the max timestamp of a segment without timestamps.
const NO_TIMESTAMP: i64 = -1;

/// File name of a segment file: the base offset zero-padded to 20 digits.
pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// A segment of the partition log.
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with the [`FileSlice`]s of reads in progress, which may outlive a
    /// deletion of the segment (the open file keeps the data readable).
    log: Arc<File>,
    /// Bytes of valid batches; the file is never longer once loaded.
    size: u64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// Last offset + 1 of the last batch, or `base_offset` when empty.
    next_offset: i64,
    /// Largest batch maxTimestamp seen, and the last offset of the first batch that
    /// reached it (what the time index records).
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    /// Bytes appended since the last index entry (Kafka's `bytesSinceLastIndexEntry`).
    bytes_since_last_index_entry: u64,
    /// Wall-clock time of the first append to this segment, for `segment.ms` rolls.
    pub first_append_ms: Option<i64>,
}

impl Segment {
    /// Creates a fresh, empty segment (replacing any leftover files of that name) with
    /// preallocated indexes: it becomes the active segment.
    pub fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<Segment, StorageError> {
        for extension in ["log", "index", "timeindex"] {
            remove_if_exists(&dir.join(file_name(base_offset, extension)))?;
        }
        let mut segment = Segment::open(dir, base_offset)?.0;
        segment.activate(config)?;
        Ok(segment)
    }

    /// Opens the files of an existing segment without reading them. The caller then
    /// runs one of the load paths ([`Segment::recover`], [`Segment::load_clean`]).
    /// The flag says whether an index file was missing (it is created empty).
    pub fn open(dir: &Path, base_offset: i64) -> Result<(Segment, bool), StorageError> {
        let log_path = dir.join(file_name(base_offset, "log"));
        let index_path = dir.join(file_name(base_offset, "index"));
        let time_index_path = dir.join(file_name(base_offset, "timeindex"));
        let index_missing = !index_path.exists() || !time_index_path.exists();
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&log_path)
            .map_err(io_error(&log_path))?;
        let size = log.metadata().map_err(io_error(&log_path))?.len();
        let segment = Segment {
            base_offset,
            offset_index: OffsetIndex::open(&index_path, base_offset)?,
            time_index: TimeIndex::open(&time_index_path, base_offset)?,
            log_path,
            log: Arc::new(log),
            size,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            bytes_since_last_index_entry: 0,
            first_append_ms: None,
        };
        Ok((segment, index_missing))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether an index has no room left: Kafka rolls the segment then.
    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Writes already validated and offset-patched batches at the end of the segment
    /// and indexes them. `batches` holds each batch's position in `records` and its
    /// (patched) header. On a write error the file is cut back to the old size.
    pub fn append(
        &mut self,
        records: &[u8],
        batches: &[(usize, BatchHeader)],
        config: &LogConfig,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        if let Err(source) = self.log.write_all_at(records, self.size) {
            // Best effort: leave no partial batch behind the valid data.
            let _ = self.log.set_len(self.size);
            return Err(StorageError::Io {
                path: self.log_path.clone(),
                source,
            });
        }
        let start = self.size;
        for (position, header) in batches {
            self.index_batch(start + *position as u64, header, config);
        }
        self.size += records.len() as u64;
        self.first_append_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Kafka's per-batch index rule: track the max timestamp, and once more than
    /// `index.interval.bytes` were appended since the last entry, index this batch
    /// (its last offset at its start position) and the max timestamp so far.
    fn index_batch(&mut self, position: u64, header: &BatchHeader, config: &LogConfig) {
        let last_offset = header.last_offset();
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_last_index_entry > u64::from(config.index_interval_bytes) {
            // Positions fit in u32: segments are capped at i32::MAX bytes.
            self.offset_index.append(last_offset, position as u32);
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += header.size() as u64;
        self.next_offset = last_offset + 1;
    }

    /// Reads and sanity-checks the header of the batch at `position`.
    fn read_header_at(&self, position: u64) -> Result<BatchHeader, StorageError> {
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
        self.log
            .read_exact_at(&mut raw, position)
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
        let (_, position) = self.offset_index.lookup(offset);
        let mut position = u64::from(position);
        while position < self.size {
            let header = self.read_header_at(position)?;
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
        let mut position = 0;
        while position < self.size {
            let header = self.read_header_at(position)?;
            visit(&header);
            position += header.size() as u64;
        }
        Ok(())
    }

    /// Walks the batches from `position` to the end of the file, checking framing,
    /// magic, offsets and CRC32C, and indexes each valid one. Stops at the first bad
    /// batch and returns its error; `self.size` ends at the last valid batch.
    fn scan_from(
        &mut self,
        mut position: u64,
        config: &LogConfig,
    ) -> Result<Option<StorageError>, StorageError> {
        let file_len = self.log.metadata().map_err(io_error(&self.log_path))?.len();
        let mut batch_bytes = Vec::new();
        let mut problem = None;
        while position < file_len {
            let remaining = (file_len - position).min(usize::MAX as u64) as usize;
            let mut raw = [0u8; HEADER_SIZE];
            let header_len = remaining.min(HEADER_SIZE);
            self.log
                .read_exact_at(&mut raw[..header_len], position)
                .map_err(io_error(&self.log_path))?;
            if header_len < HEADER_SIZE {
                problem = Some(torn(
                    position,
                    format!("only {header_len} bytes left for a batch header"),
                ));
                break;
            }
            let length = i32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
            if length < (HEADER_SIZE - LOG_OVERHEAD) as i32 {
                problem = Some(torn(position, format!("bad batch length {length}")));
                break;
            }
            let size = length as usize + LOG_OVERHEAD;
            if size > remaining {
                problem = Some(torn(
                    position,
                    format!("batch of {size} bytes runs past the end of the file"),
                ));
                break;
            }
            batch_bytes.resize(size, 0);
            self.log
                .read_exact_at(&mut batch_bytes, position)
                .map_err(io_error(&self.log_path))?;
            let header = match batch::validate(&batch_bytes, position) {
                Ok(header) if header.base_offset < self.next_offset => {
                    problem = Some(StorageError::InvalidBatch {
                        position,
                        reason: format!(
                            "base offset {} is below the previous batch's next offset {}",
                            header.base_offset, self.next_offset
                        ),
                    });
                    break;
                }
                Ok(header) => header,
                Err(error) => {
                    problem = Some(error);
                    break;
                }
            };
            self.index_batch(position, &header, config);
            position += size as u64;
        }
        self.size = position;
        Ok(problem.map(|error| error.in_segment(&self.log_path)))
    }

    /// Full recovery: forgets the indexes, rescans every batch (CRC included),
    /// rebuilds both indexes and truncates the file at the first torn or corrupt
    /// batch. Returns `true` if the file was truncated.
    pub fn recover(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        self.offset_index.reset();
        self.time_index.reset();
        self.offset_index.preallocate(config.segment_index_bytes)?;
        self.time_index.preallocate(config.segment_index_bytes)?;
        self.next_offset = self.base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        let problem = self.scan_from(0, config)?;
        self.cut_at_problem(problem)
    }

    /// Truncates the file at `self.size` if a scan found a bad batch, logging it.
    fn cut_at_problem(&mut self, problem: Option<StorageError>) -> Result<bool, StorageError> {
        let Some(error) = problem else {
            return Ok(false);
        };
        tracing::warn!(
            segment = %self.log_path.display(),
            position = self.size,
            %error,
            "truncating segment at the first torn or corrupt batch"
        );
        self.log
            .set_len(self.size)
            .map_err(io_error(&self.log_path))?;
        Ok(true)
    }

    /// Clean-open path. For an inactive segment `next_offset` is the next segment's
    /// base offset and nothing is scanned; for the last segment (`None`) only the
    /// batches after the last offset index entry are scanned. Indexes that fail their
    /// sanity check are rebuilt with [`Segment::recover`]. Returns `true` if the file
    /// was truncated.
    pub fn load_clean(
        &mut self,
        next_offset: Option<i64>,
        config: &LogConfig,
    ) -> Result<bool, StorageError> {
        let check = self
            .offset_index
            .sanity_check(next_offset.unwrap_or(i64::MAX), self.size)
            .and_then(|()| {
                self.time_index
                    .sanity_check(next_offset.unwrap_or(i64::MAX))
            });
        if let Err(reason) = check {
            tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding inconsistent index");
            return self.recover(config);
        }
        if let Some((timestamp, offset)) = self.time_index.last_entry() {
            self.max_timestamp = timestamp;
            self.offset_of_max_timestamp = offset;
        }
        match next_offset {
            Some(next_offset) => {
                self.next_offset = next_offset;
                Ok(false)
            }
            None => {
                // The last segment becomes active (after the checks, which must see
                // the file as it was); its tail rescan may add index entries.
                self.activate(config)?;
                self.load_tail(config)
            }
        }
    }

    /// Rescans the batches after the last offset index entry to learn the next offset
    /// (and to index what came after that entry). Falls back to a full recovery if the
    /// entry does not point at a batch ending at its offset.
    fn load_tail(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        self.next_offset = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        let start = match self.offset_index.last_entry() {
            None => 0,
            Some((offset, position)) => {
                let position = u64::from(position);
                match self.read_header_at(position) {
                    Ok(header) if header.last_offset() == offset => position,
                    _ => {
                        tracing::warn!(segment = %self.log_path.display(), "offset index does not match the log; rebuilding");
                        return self.recover(config);
                    }
                }
            }
        };
        self.size = self.log.metadata().map_err(io_error(&self.log_path))?.len();
        let problem = self.scan_from(start, config)?;
        let truncated = self.cut_at_problem(problem)?;
        if let Some((_, offset)) = self.time_index.last_entry() {
            if offset >= self.next_offset {
                tracing::warn!(segment = %self.log_path.display(), "time index points past the log; rebuilding");
                return self.recover(config);
            }
        }
        Ok(truncated)
    }

    /// Removes everything at and above `offset`. The cut is at the start of the batch
    /// holding `offset` (a batch is never split), so the new next offset may be below
    /// `offset`. Index entries past the cut are dropped and the last few batches
    /// rescanned to restore the max timestamp.
    pub fn truncate_to(&mut self, offset: i64, config: &LogConfig) -> Result<(), StorageError> {
        let Some((cut, _)) = self.find_batch(offset)? else {
            return Ok(());
        };
        self.log.set_len(cut).map_err(io_error(&self.log_path))?;
        self.size = cut;
        self.offset_index.truncate_to_position(cut);
        let next_offset_bound = match self.offset_index.last_entry() {
            // Batches up to the last kept offset index entry survive.
            Some((offset, _)) => offset + 1,
            None => self.base_offset,
        };
        // The time index may hold entries (e.g. a roll's final entry) beyond the last
        // offset index entry; the tail scan recomputes what they summarised.
        self.time_index.truncate_to_offset(next_offset_bound);
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = self.base_offset;
        if let Some((timestamp, offset)) = self.time_index.last_entry() {
            self.max_timestamp = timestamp;
            self.offset_of_max_timestamp = offset;
        }
        self.load_tail(config)?;
        Ok(())
    }

    /// The first record with timestamp `>= timestamp` in this segment, as
    /// (offset, timestamp). The time index gives a start, batch headers narrow it to
    /// one batch, and only that batch is decoded.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .lookup_below(timestamp)
            .map_or(self.base_offset, |(_, offset)| offset);
        let (_, position) = self.offset_index.lookup(start_offset);
        let mut position = u64::from(position);
        while position < self.size {
            let header = self.read_header_at(position)?;
            if header.max_timestamp >= timestamp {
                let found = self.first_record_at_or_after(position, &header, timestamp)?;
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
        if self.max_timestamp == NO_TIMESTAMP {
            return Ok(None);
        }
        let Some((position, header)) = self.find_batch(self.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        self.first_record_at_or_after(position, &header, header.max_timestamp)
    }

    /// Within the batch at `position`, the first record with timestamp `>= timestamp`.
    /// LogAppendTime batches stamp every record with the batch's maxTimestamp. If the
    /// batch cannot be decoded (an unknown codec), the batch's first offset and max
    /// timestamp are the best answer left.
    fn first_record_at_or_after(
        &self,
        position: u64,
        header: &BatchHeader,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, StorageError> {
        if header.timestamp_type() == TimestampType::LogAppendTime {
            return Ok((header.max_timestamp >= timestamp)
                .then_some((header.base_offset, header.max_timestamp)));
        }
        let mut raw = vec![0u8; header.size()];
        self.log
            .read_exact_at(&mut raw, position)
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

    /// Makes this the active segment: indexes preallocated to `segment.index.bytes`.
    pub fn activate(&mut self, config: &LogConfig) -> Result<(), StorageError> {
        self.offset_index.preallocate(config.segment_index_bytes)?;
        self.time_index.preallocate(config.segment_index_bytes)
    }

    /// Cuts the index files to their real size (no longer active, or loaded as an
    /// older segment). A no-op for files already trimmed.
    pub fn trim_indexes(&mut self) -> Result<(), StorageError> {
        self.offset_index.trim()?;
        self.time_index.trim()
    }

    /// Ends this segment's active life (roll, close): records the final max timestamp
    /// entry, trims the indexes and fsyncs everything.
    pub fn finalize(&mut self) -> Result<(), StorageError> {
        self.time_index
            .append_final(self.max_timestamp, self.offset_of_max_timestamp)?;
        self.trim_indexes()?;
        self.flush()
    }

    /// fsyncs the log file and both indexes.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.log.sync_data().map_err(io_error(&self.log_path))?;
        self.offset_index.flush()?;
        self.time_index.flush()
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
        let limit = position.saturating_add(max_bytes as u64).min(self.size);
        let mut end = position.max(self.indexed_position_at_or_below(limit));
        while end < limit {
            let header = self.read_header_at(end)?;
            let next = end + header.size() as u64;
            if next > limit {
                break;
            }
            end = next;
        }
        if end == position && min_one_batch && position < self.size {
            end = position + self.read_header_at(position)?.size() as u64;
        }
        Ok(FileSlice::new(
            self.log.clone(),
            position,
            (end - position) as usize,
        ))
    }

    /// The position of the last offset index entry at or below `position`
    /// (0 when none): a batch boundary.
    fn indexed_position_at_or_below(&self, position: u64) -> u64 {
        let entries = self.offset_index.entries();
        let (mut low, mut high) = (0, entries);
        while low < high {
            let middle = (low + high) / 2;
            if u64::from(self.offset_index.entry(middle).1) <= position {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        match low {
            0 => 0,
            n => u64::from(self.offset_index.entry(n - 1).1),
        }
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

fn torn(position: u64, reason: String) -> StorageError {
    StorageError::CorruptBatch {
        segment: None,
        position,
        reason,
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
