//! Loading a segment: the clean-open path (trust checked indexes, rescan only the
//! tail), full recovery (rescan every batch, CRC included, and rebuild the
//! indexes), and truncation at the first torn or corrupt batch. Split from
//! `segment.rs`, whose other half serves the running log.

use std::os::unix::fs::FileExt;

use super::*;

impl Segment {
    /// Walks the batches from `position` to the end of the file, checking framing,
    /// magic, offsets and CRC32C, and indexes each valid one (in memory). Stops at the
    /// first bad batch and returns its error; `self.size` ends at the last valid batch.
    pub(super) fn scan_from(
        &mut self,
        mut position: u64,
        config: &LogConfig,
    ) -> Result<Option<StorageError>, StorageError> {
        let log = self.log_file()?;
        let file_len = log.metadata().map_err(io_error(&self.log_path))?.len();
        let mut batch_bytes = Vec::new();
        let mut problem = None;
        while position < file_len {
            let remaining = (file_len - position).min(usize::MAX as u64) as usize;
            let mut raw = [0u8; HEADER_SIZE];
            let header_len = remaining.min(HEADER_SIZE);
            log.read_exact_at(&mut raw[..header_len], position)
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
            log.read_exact_at(&mut batch_bytes, position)
                .map_err(io_error(&self.log_path))?;
            let header = match batch::validate(&batch_bytes, position) {
                Ok(header) if header.base_offset < self.cursor.next_offset => {
                    problem = Some(StorageError::InvalidBatch {
                        position,
                        reason: format!(
                            "base offset {} is below the previous batch's next offset {}",
                            header.base_offset, self.cursor.next_offset
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
            self.index_batch(position, &header, config.index_interval_bytes);
            position += size as u64;
        }
        self.size = position;
        Ok(problem.map(|error| error.in_segment(&self.log_path)))
    }

    /// Full recovery: forgets the indexes, rescans every batch (CRC included),
    /// rebuilds and rewrites both indexes and truncates the file at the first torn or
    /// corrupt batch. Returns `true` if the file was truncated.
    pub fn recover(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        self.index_interval_bytes = config.index_interval_bytes;
        self.offset_index.reset();
        self.time_index.reset();
        self.offset_index.activate(config.segment_index_bytes)?;
        self.time_index.activate(config.segment_index_bytes)?;
        self.cursor = IndexCursor::new(self.base_offset);
        let problem = self.scan_from(0, config)?;
        let truncated = self.cut_at_problem(problem)?;
        self.offset_index.rewrite()?;
        self.time_index.rewrite()?;
        self.indexes_checked.store(true, Ordering::Release);
        Ok(truncated)
    }

    /// Recovery of the segment holding the recovery point after an unclean stop:
    /// everything below the recovery point was fsynced, index entries included, so
    /// the index entries below it that pass the sanity checks are kept and only the
    /// batches from the last of them on are scanned (CRC included) and indexed.
    /// A segment with a gigabyte of flushed data and a few unflushed batches is thus
    /// recovered by reading those batches, not the gigabyte. Falls back to
    /// [`Segment::recover`] when nothing can be trusted. Returns `true` if the file
    /// was truncated.
    pub fn recover_from(
        &mut self,
        recovery_point: i64,
        config: &LogConfig,
    ) -> Result<bool, StorageError> {
        self.index_interval_bytes = config.index_interval_bytes;
        self.offset_index.activate(config.segment_index_bytes)?;
        self.time_index.activate(config.segment_index_bytes)?;
        let file_len = self
            .log_file()?
            .metadata()
            .map_err(io_error(&self.log_path))?
            .len();
        if self
            .offset_index
            .keep_trusted_prefix(recovery_point, file_len)?
            == 0
        {
            return self.recover(config);
        }
        let Some((last_offset, _)) = self.offset_index.last_entry()? else {
            return self.recover(config);
        };
        self.time_index.keep_trusted_prefix(last_offset + 1)?;
        self.cursor = IndexCursor::new(self.base_offset);
        if let Some((timestamp, offset)) = self.time_index.last_entry()? {
            self.cursor.max_timestamp = timestamp;
            self.cursor.offset_of_max_timestamp = offset;
        }
        let truncated = self.load_tail(config)?;
        self.indexes_checked.store(true, Ordering::Release);
        Ok(truncated)
    }

    /// Truncates the file at `self.size` if a scan found a bad batch, logging it.
    pub(super) fn cut_at_problem(
        &mut self,
        problem: Option<StorageError>,
    ) -> Result<bool, StorageError> {
        let Some(error) = problem else {
            return Ok(false);
        };
        tracing::warn!(
            segment = %self.log_path.display(),
            position = self.size,
            %error,
            "truncating segment at the first torn or corrupt batch"
        );
        self.log_file()?
            .set_len(self.size)
            .map_err(io_error(&self.log_path))?;
        Ok(true)
    }

    /// Clean-open path. For an older segment `next_offset` is the next segment's
    /// base offset and nothing is read but the last time index entry (its max
    /// timestamp); its indexes are checked on first use. For the last segment
    /// (`None`) the indexes are loaded and checked, and only the batches after the
    /// last offset index entry are scanned. Indexes that fail their checks are
    /// rebuilt with [`Segment::recover`]. Returns `true` if the file was truncated.
    pub fn load_clean(
        &mut self,
        next_offset: Option<i64>,
        config: &LogConfig,
    ) -> Result<bool, StorageError> {
        self.index_interval_bytes = config.index_interval_bytes;
        let Some(next_offset) = next_offset else {
            self.offset_index.activate(config.segment_index_bytes)?;
            self.time_index.activate(config.segment_index_bytes)?;
            let check = self
                .offset_index
                .sanity_check(i64::MAX, self.size)
                .and_then(|()| self.time_index.sanity_check(i64::MAX));
            if let Err(reason) = check {
                tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding inconsistent index");
                return self.recover(config);
            }
            self.indexes_checked.store(true, Ordering::Release);
            self.cursor = IndexCursor::new(self.base_offset);
            if let Some((timestamp, offset)) = self.time_index.last_entry()? {
                self.cursor.max_timestamp = timestamp;
                self.cursor.offset_of_max_timestamp = offset;
            }
            return self.load_tail(config);
        };
        self.cursor.next_offset = next_offset;
        let last_time_entry = self.time_index.last_entry();
        match last_time_entry {
            Ok(Some((timestamp, offset))) if offset >= self.base_offset && offset < next_offset => {
                self.cursor.max_timestamp = timestamp;
                self.cursor.offset_of_max_timestamp = offset;
                Ok(false)
            }
            Ok(None) => Ok(false),
            Ok(Some(entry)) => {
                tracing::warn!(segment = %self.log_path.display(), ?entry, "time index points outside the segment; rebuilding");
                self.recover_inactive(config)
            }
            Err(error) => {
                tracing::warn!(segment = %self.log_path.display(), %error, "unreadable time index; rebuilding");
                self.recover_inactive(config)
            }
        }
    }

    /// [`Segment::recover`] for an older segment, which ends inactive again.
    pub(super) fn recover_inactive(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        let truncated = self.recover(config)?;
        self.deactivate();
        Ok(truncated)
    }

    /// Rescans the batches after the last offset index entry to learn the next offset
    /// (and to index what came after that entry), writing the new entries. Falls back
    /// to a full recovery if the entry does not point at a batch ending at its offset.
    pub(super) fn load_tail(&mut self, config: &LogConfig) -> Result<bool, StorageError> {
        self.cursor.next_offset = self.base_offset;
        self.cursor.bytes_since_last_index_entry = 0;
        self.size = self
            .log_file()?
            .metadata()
            .map_err(io_error(&self.log_path))?
            .len();
        let start = match self.offset_index.last_entry()? {
            None => 0,
            Some((offset, position)) => {
                let position = u64::from(position);
                match self.read_header_at(position) {
                    Ok(header) if header.last_offset() == offset => {
                        // Batches before the entry are not rescanned; the scan must
                        // still see this one's offsets as new.
                        self.cursor.next_offset = header.base_offset;
                        position
                    }
                    _ => {
                        tracing::warn!(segment = %self.log_path.display(), "offset index does not match the log; rebuilding");
                        return self.recover(config);
                    }
                }
            }
        };
        let problem = self.scan_from(start, config)?;
        let truncated = self.cut_at_problem(problem)?;
        if let Some((_, offset)) = self.time_index.last_entry()? {
            if offset >= self.cursor.next_offset {
                tracing::warn!(segment = %self.log_path.display(), "time index points past the log; rebuilding");
                return self.recover(config);
            }
        }
        self.offset_index.write_pending()?;
        self.time_index.write_pending()?;
        Ok(truncated)
    }

    /// Checks an older segment's indexes against the segment the first time they
    /// are used, and rebuilds them from the log (headers only: the data below the
    /// recovery point is trusted) if they do not fit. The new files replace the old
    /// ones by rename, so concurrent readers never see a half-written index.
    pub(super) fn ensure_indexes_checked(&self) -> Result<(), StorageError> {
        if self.indexes_checked.load(Ordering::Acquire) || self.offset_index.is_active() {
            return Ok(());
        }
        let check = self
            .offset_index
            .sanity_check(self.cursor.next_offset, self.size)
            .and_then(|()| self.time_index.sanity_check(self.cursor.next_offset));
        if let Err(reason) = check {
            tracing::warn!(segment = %self.log_path.display(), %reason, "rebuilding inconsistent index");
            self.rebuild_inactive_indexes()?;
        }
        self.indexes_checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes fresh index files for an older segment from its batch headers.
    pub(super) fn rebuild_inactive_indexes(&self) -> Result<(), StorageError> {
        let mut cursor = IndexCursor::new(self.base_offset);
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        let mut last_timestamp = NO_TIMESTAMP;
        let mut push_time = |entries: &mut Vec<u8>, timestamp: i64, offset: i64| {
            if timestamp > last_timestamp {
                last_timestamp = timestamp;
                entries.extend_from_slice(&index::encode_time_entry(
                    self.base_offset,
                    timestamp,
                    offset,
                ));
            }
        };
        let log = self.log_file()?;
        let mut position = 0;
        while position < self.size {
            let header = self.read_header_in(&log, position)?;
            if let Some(((offset, at), (timestamp, time_offset))) =
                cursor.advance(position, &header, self.index_interval_bytes)
            {
                offset_entries.extend_from_slice(&index::encode_offset_entry(
                    self.base_offset,
                    offset,
                    at,
                ));
                push_time(&mut time_entries, timestamp, time_offset);
            }
            position += header.size() as u64;
        }
        push_time(
            &mut time_entries,
            cursor.max_timestamp,
            cursor.offset_of_max_timestamp,
        );
        index::replace_index_file(self.offset_index.path(), &offset_entries)?;
        index::replace_index_file(self.time_index.path(), &time_entries)?;
        fd_cache::global().forget((self.id, FileKind::OffsetIndex));
        fd_cache::global().forget((self.id, FileKind::TimeIndex));
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
