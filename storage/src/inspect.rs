//! Read-only views of segment files, for tools (`strata dump-log`) rather than
//! for the broker.
//!
//! The broker's own readers (`segment`, `index`) assume a log directory that one
//! `Log` owns: they map index files read-write, trust the recovery checkpoint and
//! fix what they find. A tool looking at a file must do none of that — the file
//! may belong to a running broker, be a copy, or be damaged — so this module opens
//! files read-only, reads them front to back and reports where they stop making
//! sense instead of repairing them:
//!
//! * [`LogBatches`] walks the record batches of a `.log` file and validates each
//!   one as recovery would ([`batch::validate`]: framing, magic, offsets, CRC32C).
//!   A batch with a bad CRC is still framed, so the walk continues after it; broken
//!   framing (a torn tail) ends the walk with [`InspectError::Corrupt`].
//! * [`OffsetIndexEntries`] and [`TimeIndexEntries`] walk `.index` and
//!   `.timeindex` entries (formats in the `index` module) and stop, as Kafka's
//!   dump tool does, at the zero-filled tail that preallocation leaves in the
//!   index of an active segment.
//!
//! Segment files are named by their base offset (20 digits); index entries hold
//! offsets relative to it, so [`base_offset_from_file_name`] recovers it.

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::batch::{self, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::StorageError;

/// Size of one `.index` entry: relative offset u32 BE, position u32 BE.
pub const OFFSET_INDEX_ENTRY_SIZE: usize = 8;
/// Size of one `.timeindex` entry: timestamp i64 BE, relative offset u32 BE.
pub const TIME_INDEX_ENTRY_SIZE: usize = 12;

/// Why a walk over a segment file stopped early.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes from `position` on cannot be split into batches or entries: a torn
    /// write, a truncated copy, garbage. Everything before `position` was returned.
    #[error("{} is corrupt from position {position}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> InspectError + '_ {
    move |source| InspectError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a segment file holds, from its extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentFileKind {
    /// `.log`: record batches.
    Log,
    /// `.index`: sparse offset index.
    OffsetIndex,
    /// `.timeindex`: sparse time index.
    TimeIndex,
}

impl SegmentFileKind {
    /// The kind of `path` by its extension, `None` for anything else.
    pub fn of(path: &Path) -> Option<SegmentFileKind> {
        match path.extension()?.to_str()? {
            "log" => Some(SegmentFileKind::Log),
            "index" => Some(SegmentFileKind::OffsetIndex),
            "timeindex" => Some(SegmentFileKind::TimeIndex),
            _ => None,
        }
    }
}

/// The base offset a segment file is named after (`00000000000000001234.log` →
/// 1234); `None` unless the file stem is exactly 20 ASCII digits that fit an i64.
pub fn base_offset_from_file_name(path: &Path) -> Option<i64> {
    let stem = path.file_stem()?.to_str()?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// One record batch of a `.log` file, as stored.
#[derive(Debug)]
pub struct LogBatch {
    /// Byte position of the batch in the file.
    pub position: u64,
    /// Its fixed header, as stored (not checked: see `problem`).
    pub header: BatchHeader,
    /// The whole batch, log overhead included, for decoding its records.
    pub bytes: Vec<u8>,
    /// What [`batch::validate`] finds wrong with it (bad magic, inconsistent
    /// offsets, CRC mismatch); `None` for a batch recovery would keep.
    pub problem: Option<StorageError>,
}

impl LogBatch {
    /// Whether the batch passes the checks recovery applies (Kafka's `isvalid`,
    /// which is the CRC check, plus magic and offset sanity).
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }

    /// The CRC32C of the batch's bytes as computed now (the header holds the
    /// stored one).
    pub fn computed_crc(&self) -> u32 {
        batch::compute_crc(&self.bytes)
    }
}

/// Iterator over the batches of a `.log` file, front to back. Yields an `Err` at
/// most once, as its last item: an I/O error, or a [`InspectError::Corrupt`] tail
/// whose framing cannot be followed.
pub struct LogBatches {
    path: PathBuf,
    file: File,
    file_len: u64,
    position: u64,
    finished: bool,
}

impl LogBatches {
    /// Opens `path` read-only. Its length is taken now: bytes appended later (a
    /// running broker) are not read.
    pub fn open(path: &Path) -> Result<LogBatches, InspectError> {
        let file = File::open(path).map_err(io_error(path))?;
        let file_len = file.metadata().map_err(io_error(path))?.len();
        Ok(LogBatches {
            path: path.to_path_buf(),
            file,
            file_len,
            position: 0,
            finished: false,
        })
    }

    /// Length of the file when it was opened.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }

    fn corrupt(&mut self, reason: String) -> Option<Result<LogBatch, InspectError>> {
        self.finished = true;
        Some(Err(InspectError::Corrupt {
            path: self.path.clone(),
            position: self.position,
            reason,
        }))
    }

    fn read_at(&mut self, buf: &mut [u8]) -> Result<(), InspectError> {
        self.file
            .read_exact_at(buf, self.position)
            .map_err(io_error(&self.path))
    }
}

impl Iterator for LogBatches {
    type Item = Result<LogBatch, InspectError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished || self.position >= self.file_len {
            return None;
        }
        let remaining = self.file_len - self.position;
        if remaining < HEADER_SIZE as u64 {
            return self.corrupt(format!(
                "only {remaining} bytes left, a batch header needs {HEADER_SIZE}"
            ));
        }
        let mut overhead = [0u8; LOG_OVERHEAD];
        if let Err(error) = self.read_at(&mut overhead) {
            self.finished = true;
            return Some(Err(error));
        }
        let batch_length =
            i32::from_be_bytes([overhead[8], overhead[9], overhead[10], overhead[11]]);
        let minimum = (HEADER_SIZE - LOG_OVERHEAD) as i32;
        if batch_length < minimum {
            return self.corrupt(format!(
                "batch length {batch_length} is below the minimum {minimum}"
            ));
        }
        let size = batch_length as u64 + LOG_OVERHEAD as u64;
        if size > remaining {
            return self.corrupt(format!(
                "batch of {size} bytes runs past the end of the file ({remaining} bytes left)"
            ));
        }
        let mut bytes = vec![0u8; size as usize];
        if let Err(error) = self.read_at(&mut bytes) {
            self.finished = true;
            return Some(Err(error));
        }
        let Some(header) = BatchHeader::parse(&bytes) else {
            return self.corrupt(format!("{size} bytes cannot hold a batch header"));
        };
        let problem = batch::validate(&bytes, self.position)
            .err()
            .map(|error| error.in_segment(&self.path));
        let position = self.position;
        self.position += size;
        Some(Ok(LogBatch {
            position,
            header,
            bytes,
            problem,
        }))
    }
}

/// One `.index` entry: the batch starting at byte `position` ends at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetIndexEntry {
    /// Absolute offset (base offset + the stored relative offset).
    pub offset: i64,
    pub position: u32,
}

/// One `.timeindex` entry: the largest timestamp so far, and the offset of the
/// batch where it was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeIndexEntry {
    pub timestamp: i64,
    /// Absolute offset (base offset + the stored relative offset).
    pub offset: i64,
}

/// Reads fixed-size entries front to back until the end of the file or the first
/// all-zero entry (the preallocated tail of an active segment's index).
struct EntryReader<const N: usize> {
    path: PathBuf,
    reader: BufReader<File>,
    file_len: u64,
    position: u64,
    finished: bool,
}

impl<const N: usize> EntryReader<N> {
    fn open(path: &Path) -> Result<Self, InspectError> {
        let file = File::open(path).map_err(io_error(path))?;
        let file_len = file.metadata().map_err(io_error(path))?.len();
        Ok(EntryReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            file_len,
            position: 0,
            finished: false,
        })
    }

    fn next_entry(&mut self) -> Option<Result<[u8; N], InspectError>> {
        if self.finished || self.position >= self.file_len {
            return None;
        }
        let remaining = self.file_len - self.position;
        if remaining < N as u64 {
            self.finished = true;
            return Some(Err(InspectError::Corrupt {
                path: self.path.clone(),
                position: self.position,
                reason: format!("{remaining} trailing bytes do not make a whole {N}-byte entry"),
            }));
        }
        let mut entry = [0u8; N];
        if let Err(source) = self.reader.read_exact(&mut entry) {
            self.finished = true;
            return Some(Err(InspectError::Io {
                path: self.path.clone(),
                source,
            }));
        }
        if entry.iter().all(|&b| b == 0) {
            // Preallocated space: a written entry is never all zeros, because the
            // first batch of a segment (position 0) is never indexed and a time
            // index entry has a timestamp.
            self.finished = true;
            return None;
        }
        self.position += N as u64;
        Some(Ok(entry))
    }
}

/// Iterator over the entries of a `.index` file (see [`OffsetIndexEntry`]).
pub struct OffsetIndexEntries {
    base_offset: i64,
    entries: EntryReader<OFFSET_INDEX_ENTRY_SIZE>,
}

impl OffsetIndexEntries {
    /// Opens the offset index of the segment starting at `base_offset` read-only.
    pub fn open(path: &Path, base_offset: i64) -> Result<OffsetIndexEntries, InspectError> {
        Ok(OffsetIndexEntries {
            base_offset,
            entries: EntryReader::open(path)?,
        })
    }
}

impl Iterator for OffsetIndexEntries {
    type Item = Result<OffsetIndexEntry, InspectError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.entries.next_entry()? {
            Ok(raw) => raw,
            Err(error) => return Some(Err(error)),
        };
        let relative = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let position = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        Some(Ok(OffsetIndexEntry {
            offset: self.base_offset + i64::from(relative),
            position,
        }))
    }
}

/// Iterator over the entries of a `.timeindex` file (see [`TimeIndexEntry`]).
pub struct TimeIndexEntries {
    base_offset: i64,
    entries: EntryReader<TIME_INDEX_ENTRY_SIZE>,
}

impl TimeIndexEntries {
    /// Opens the time index of the segment starting at `base_offset` read-only.
    pub fn open(path: &Path, base_offset: i64) -> Result<TimeIndexEntries, InspectError> {
        Ok(TimeIndexEntries {
            base_offset,
            entries: EntryReader::open(path)?,
        })
    }
}

impl Iterator for TimeIndexEntries {
    type Item = Result<TimeIndexEntry, InspectError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = match self.entries.next_entry()? {
            Ok(raw) => raw,
            Err(error) => return Some(Err(error)),
        };
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&raw[..8]);
        let relative = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        Some(Ok(TimeIndexEntry {
            timestamp: i64::from_be_bytes(timestamp),
            offset: self.base_offset + i64::from(relative),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::batch;
    use crate::{Log, LogConfig};

    /// A closed log in a fresh directory with `batches` batches of 3 records each,
    /// indexed after every batch (interval of 1 byte).
    fn closed_log(batches: usize) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config, 0, false, 0).expect("open");
        for i in 0..batches {
            let mut records = batch(3, 1_000 + 10 * i as i64);
            log.append(&mut records, 5, 0).expect("append");
        }
        log.close().expect("close");
        dir
    }

    fn segment_path(dir: &Path, extension: &str) -> PathBuf {
        dir.join(format!("{:020}.{extension}", 0))
    }

    fn all_batches(path: &Path) -> (Vec<LogBatch>, Option<InspectError>) {
        let mut batches = Vec::new();
        for item in LogBatches::open(path).expect("open") {
            match item {
                Ok(batch) => batches.push(batch),
                Err(error) => return (batches, Some(error)),
            }
        }
        (batches, None)
    }

    #[test]
    fn walks_the_batches_a_log_wrote() {
        let dir = closed_log(4);
        let (batches, stop) = all_batches(&segment_path(dir.path(), "log"));
        assert!(stop.is_none(), "{stop:?}");
        assert_eq!(batches.len(), 4);
        let mut position = 0;
        for (i, found) in batches.iter().enumerate() {
            assert_eq!(found.position, position);
            assert_eq!(found.header.base_offset, 3 * i as i64);
            assert_eq!(found.header.last_offset(), 3 * i as i64 + 2);
            assert_eq!(found.header.partition_leader_epoch, 5);
            assert!(found.is_valid(), "{:?}", found.problem);
            assert_eq!(found.computed_crc(), found.header.crc);
            position += found.bytes.len() as u64;
        }
    }

    #[test]
    fn a_flipped_byte_marks_one_batch_invalid_and_the_walk_goes_on() {
        let dir = closed_log(3);
        let path = segment_path(dir.path(), "log");
        let mut bytes = std::fs::read(&path).expect("read");
        let second = all_batches(&path).0[1].position as usize;
        bytes[second + HEADER_SIZE + 2] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let (batches, stop) = all_batches(&path);
        assert!(stop.is_none());
        let valid: Vec<bool> = batches.iter().map(LogBatch::is_valid).collect();
        assert_eq!(valid, [true, false, true]);
        assert!(matches!(
            batches[1].problem,
            Some(StorageError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn a_torn_tail_ends_the_walk_with_its_position() {
        let dir = closed_log(3);
        let path = segment_path(dir.path(), "log");
        let (batches, _) = all_batches(&path);
        let len = std::fs::metadata(&path).expect("metadata").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(len - 7).expect("cut");
        let (kept, stop) = all_batches(&path);
        assert_eq!(kept.len(), 2);
        match stop {
            Some(InspectError::Corrupt { position, .. }) => {
                assert_eq!(position, batches[2].position)
            }
            other => panic!("expected a corrupt tail, got {other:?}"),
        }

        // Zeros after the last batch (a preallocated or torn write) are a tail too.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_len(batches[2].position).expect("cut");
        file.set_len(batches[2].position + 100)
            .expect("extend with zeros");
        let (kept, stop) = all_batches(&path);
        assert_eq!(kept.len(), 2);
        assert!(
            matches!(stop, Some(InspectError::Corrupt { ref reason, .. }) if reason.contains("batch length 0")),
            "{stop:?}"
        );
    }

    #[test]
    fn index_entries_match_the_batches_and_stop_at_the_zero_tail() {
        let dir = closed_log(4);
        let (batches, _) = all_batches(&segment_path(dir.path(), "log"));
        let index_path = segment_path(dir.path(), "index");
        let entries: Vec<OffsetIndexEntry> = OffsetIndexEntries::open(&index_path, 0)
            .expect("open")
            .collect::<Result<_, _>>()
            .expect("whole entries");
        assert!(!entries.is_empty());
        for entry in &entries {
            assert!(
                batches
                    .iter()
                    .any(|b| b.header.last_offset() == entry.offset
                        && b.position == u64::from(entry.position)),
                "{entry:?} points at no batch"
            );
        }
        let time_path = segment_path(dir.path(), "timeindex");
        let times: Vec<TimeIndexEntry> = TimeIndexEntries::open(&time_path, 0)
            .expect("open")
            .collect::<Result<_, _>>()
            .expect("whole entries");
        assert_eq!(
            times.last(),
            Some(&TimeIndexEntry {
                timestamp: 1_032,
                offset: 11
            }),
            "the final entry holds the max timestamp"
        );

        // Preallocation (as in an active segment) adds zeros that are not entries.
        for path in [&index_path, &time_path] {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .expect("open");
            file.set_len(4096 * 12).expect("preallocate");
        }
        assert_eq!(
            OffsetIndexEntries::open(&index_path, 0)
                .expect("open")
                .count(),
            entries.len()
        );
        assert_eq!(
            TimeIndexEntries::open(&time_path, 0).expect("open").count(),
            times.len()
        );
    }

    #[test]
    fn index_offsets_are_relative_to_the_base_and_partial_entries_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000001000.index");
        let mut raw = Vec::new();
        raw.extend_from_slice(&7u32.to_be_bytes());
        raw.extend_from_slice(&300u32.to_be_bytes());
        raw.extend_from_slice(&[0, 0, 0, 9, 0]);
        std::fs::write(&path, &raw).expect("write");
        let base = base_offset_from_file_name(&path).expect("20 digits");
        assert_eq!(base, 1000);
        let mut entries = OffsetIndexEntries::open(&path, base).expect("open");
        assert_eq!(
            entries.next().map(|e| e.ok()),
            Some(Some(OffsetIndexEntry {
                offset: 1007,
                position: 300
            }))
        );
        assert!(matches!(
            entries.next(),
            Some(Err(InspectError::Corrupt { position: 8, .. }))
        ));
        assert!(entries.next().is_none());
    }

    #[test]
    fn file_names_and_kinds() {
        let path = Path::new("/d/t-0/00000000000000000042.timeindex");
        assert_eq!(base_offset_from_file_name(path), Some(42));
        assert_eq!(SegmentFileKind::of(path), Some(SegmentFileKind::TimeIndex));
        assert_eq!(
            SegmentFileKind::of(Path::new("a.log")),
            Some(SegmentFileKind::Log)
        );
        assert_eq!(SegmentFileKind::of(Path::new("a.snapshot")), None);
        assert_eq!(base_offset_from_file_name(Path::new("a.log")), None);
        assert_eq!(
            base_offset_from_file_name(Path::new("99999999999999999999.log")),
            None,
            "does not fit an i64"
        );
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let error = LogBatches::open(Path::new("/nonexistent/0.log"))
            .err()
            .expect("missing file");
        assert!(matches!(error, InspectError::Io { .. }));
        assert!(error.to_string().contains("/nonexistent/0.log"));
    }
}
