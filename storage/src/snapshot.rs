//! Producer-state snapshot files, so that a broker restores idempotent producers'
//! state at start-up by reading one small file and the batches after it, instead of
//! every batch header of the log (O(tail), not O(data)).
//!
//! A snapshot `<offset>.producer-snapshot` (offset zero-padded to 20 digits, as
//! segment names) in the partition directory holds the state after every batch
//! below `offset`. Its content is opaque here (the broker encodes its producer
//! table); this module frames it:
//!
//! | bytes  | field                                        |
//! |--------|----------------------------------------------|
//! | 0..4   | magic `b"SPSN"`                              |
//! | 4..6   | format version u16 BE (= 1)                  |
//! | 6..10  | payload length u32 BE                        |
//! | 10..14 | CRC32C u32 BE of the payload                 |
//! | 14..   | payload                                      |
//!
//! Kafka names its own snapshots `<offset>.snapshot` in a different format; a
//! different extension keeps Kafka's tools from misreading ours.
//!
//! Files are written to a temporary name and renamed, without fsync: a snapshot
//! torn by a power failure fails its CRC and is ignored (the state is then rebuilt
//! from an older snapshot or the whole log), so durability costs nothing here.
//! Only the newest [`SNAPSHOTS_KEPT`] files are kept.

use std::fs;
use std::path::{Path, PathBuf};

use crate::batch::BatchHeader;
use crate::error::io_error;
use crate::{Log, StorageError};

/// File name extension of producer-state snapshots.
pub const EXTENSION: &str = "producer-snapshot";
/// How many snapshots stay in a partition directory.
pub const SNAPSHOTS_KEPT: usize = 2;

const MAGIC: &[u8; 4] = b"SPSN";
const VERSION: u16 = 1;
const HEADER_LEN: usize = 14;

fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{EXTENSION}"))
}

/// Offsets of the snapshot files in `dir`, newest first.
fn list(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let name = entry.file_name();
        let Some((stem, extension)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if extension == EXTENSION && stem.len() == 20 {
            if let Ok(offset) = stem.parse::<i64>() {
                offsets.push(offset);
            }
        }
    }
    offsets.sort_unstable_by(|a, b| b.cmp(a));
    Ok(offsets)
}

/// Whether a snapshot at `offset` exists (valid or not).
pub fn exists(dir: &Path, offset: i64) -> bool {
    snapshot_path(dir, offset).exists()
}

/// Writes the snapshot of the state after every batch below `offset`, then
/// removes all but the newest [`SNAPSHOTS_KEPT`] snapshots.
pub fn write(dir: &Path, offset: i64, payload: &[u8]) -> Result<(), StorageError> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_be_bytes());
    let len = u32::try_from(payload.len()).map_err(|_| StorageError::Io {
        path: snapshot_path(dir, offset),
        source: std::io::Error::other("producer snapshot larger than 4 GiB"),
    })?;
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    bytes.extend_from_slice(payload);
    let path = snapshot_path(dir, offset);
    let tmp = path.with_extension(format!("{EXTENSION}.tmp"));
    fs::write(&tmp, &bytes).map_err(io_error(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    for old in list(dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
        crate::segment::remove_if_exists(&snapshot_path(dir, old))?;
    }
    Ok(())
}

/// Checks a snapshot file's framing and CRC; returns its payload.
fn parse(bytes: &[u8]) -> Result<&[u8], String> {
    let header = bytes
        .get(..HEADER_LEN)
        .ok_or_else(|| format!("{} bytes cannot hold a header", bytes.len()))?;
    if &header[..4] != MAGIC {
        return Err("bad magic".to_string());
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
    let crc = u32::from_be_bytes([header[10], header[11], header[12], header[13]]);
    let payload = &bytes[HEADER_LEN..];
    if payload.len() != len {
        return Err(format!(
            "payload of {} bytes, header says {len}",
            payload.len()
        ));
    }
    let actual = crc32c::crc32c(payload);
    if actual != crc {
        return Err(format!(
            "CRC mismatch: stored {crc:#010x}, computed {actual:#010x}"
        ));
    }
    Ok(payload)
}

/// The newest valid snapshot at or below `log_end_offset`, as (offset, payload).
/// Snapshots above the log end offset describe batches the log no longer has
/// (recovery truncated it) and are deleted, as are corrupt ones (with a warning).
pub fn read_latest(
    dir: &Path,
    log_end_offset: i64,
) -> Result<Option<(i64, Vec<u8>)>, StorageError> {
    for offset in list(dir)? {
        let path = snapshot_path(dir, offset);
        if offset > log_end_offset {
            tracing::info!(path = %path.display(), log_end_offset, "removing producer snapshot past the log end");
            crate::segment::remove_if_exists(&path)?;
            continue;
        }
        let bytes = fs::read(&path).map_err(io_error(&path))?;
        match parse(&bytes) {
            Ok(payload) => return Ok(Some((offset, payload.to_vec()))),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "removing corrupt producer snapshot");
                crate::segment::remove_if_exists(&path)?;
            }
        }
    }
    Ok(None)
}

impl Log {
    /// Calls `visit` with the header of every batch from the one holding `offset`
    /// (or the first after it) to the end, reading only headers: what a rebuild of
    /// producer state after its snapshot needs.
    pub fn for_each_batch_header_from(
        &self,
        offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), StorageError> {
        let first = self
            .segments
            .partition_point(|segment| segment.base_offset() <= offset)
            .saturating_sub(1);
        for (i, segment) in self.segments.iter().enumerate().skip(first) {
            if i == first {
                if let Some((position, _)) = segment.find_batch(offset)? {
                    segment.for_each_batch_header_from(position, &mut visit)?;
                }
            } else {
                segment.for_each_batch_header(&mut visit)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::test_support::batch;
    use crate::LogConfig;

    #[test]
    fn newest_valid_snapshot_at_or_below_the_log_end_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(read_latest(dir.path(), 100).expect("read"), None);
        write(dir.path(), 10, b"ten").expect("write");
        write(dir.path(), 20, b"twenty").expect("write");
        assert_eq!(
            read_latest(dir.path(), 25).expect("read"),
            Some((20, b"twenty".to_vec()))
        );
        // Past the log end: deleted, the older one is used.
        assert_eq!(
            read_latest(dir.path(), 15).expect("read"),
            Some((10, b"ten".to_vec()))
        );
        assert!(!snapshot_path(dir.path(), 20).exists());
        // Corrupt: deleted, nothing left.
        let path = snapshot_path(dir.path(), 10);
        let mut bytes = fs::read(&path).expect("read");
        *bytes.last_mut().expect("payload") ^= 1;
        fs::write(&path, bytes).expect("write");
        assert_eq!(read_latest(dir.path(), 100).expect("read"), None);
        assert!(!path.exists());
        // Torn and empty files are corrupt too.
        write(dir.path(), 30, b"thirty").expect("write");
        fs::write(snapshot_path(dir.path(), 40), b"SPSN").expect("torn");
        assert_eq!(
            read_latest(dir.path(), 100).expect("read"),
            Some((30, b"thirty".to_vec()))
        );
    }

    #[test]
    fn only_the_newest_snapshots_are_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        for offset in [5, 1, 9, 7] {
            write(dir.path(), offset, &[offset as u8]).expect("write");
        }
        assert_eq!(list(dir.path()).expect("list"), vec![9, 7]);
        assert!(!dir
            .path()
            .join(format!("{:020}.{EXTENSION}.tmp", 7))
            .exists());
    }

    #[test]
    fn batch_headers_from_an_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = LogConfig {
            segment_bytes: batch(2, 0).len() as u64 * 2,
            index_interval_bytes: 0,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config, 0, true, 0).expect("open");
        for _ in 0..7 {
            log.append(&mut batch(2, 0), 0, 0).expect("append");
        }
        assert!(log.segment_count() > 2);
        for (from, expected_first) in [(0, 0), (3, 2), (4, 4), (5, 4), (13, 12), (14, -1)] {
            let mut seen = Vec::new();
            log.for_each_batch_header_from(from, |h| seen.push(h.base_offset))
                .expect("walk");
            let expected: Vec<i64> = if expected_first < 0 {
                Vec::new()
            } else {
                (expected_first..14).step_by(2).collect()
            };
            assert_eq!(seen, expected, "from {from}");
        }
    }
}
