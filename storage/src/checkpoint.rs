//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint`, `log-start-offset-checkpoint`, ...):
//!
//! ```text
//! 0                      <- format version
//! 2                      <- number of entries
//! my-topic 0 1234        <- topic partition offset
//! my-topic 1 99
//! ```
//!
//! Writes are atomic: a temporary file is written and fsynced, renamed over the old
//! one, and the directory fsynced, so a crash leaves either the old or the new file.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::io_error;
use crate::StorageError;

const VERSION: &str = "0";

/// Reads a checkpoint file into `(topic, partition) -> offset`. A missing file is an
/// empty map (a fresh broker); a malformed one is `InvalidCheckpoint`.
pub fn read(path: &Path) -> Result<HashMap<(String, i32), i64>, StorageError> {
    let mut entries = HashMap::new();
    for (line_number, [topic, partition, offset]) in read_entries::<3>(path)? {
        let invalid = |reason: String| StorageError::InvalidCheckpoint {
            path: path.to_path_buf(),
            line: line_number,
            reason,
        };
        let partition = partition
            .parse()
            .map_err(|_| invalid(format!("bad partition {partition:?}")))?;
        let offset = offset
            .parse()
            .map_err(|_| invalid(format!("bad offset {offset:?}")))?;
        entries.insert((topic.to_string(), partition), offset);
    }
    Ok(entries)
}

/// Atomically replaces the checkpoint at `path` with `entries`.
pub fn write(path: &Path, entries: &[(String, i32, i64)]) -> Result<(), StorageError> {
    let lines: Vec<String> = entries
        .iter()
        .map(|(topic, partition, offset)| format!("{topic} {partition} {offset}"))
        .collect();
    write_entries(path, &lines)
}

/// The entries of a checkpoint file in Kafka's format (version 0, a count,
/// then one entry a line), each with its line number and its `N`
/// whitespace-separated fields. A missing file has none.
pub fn read_entries<const N: usize>(
    path: &Path,
) -> Result<Vec<(usize, [String; N])>, StorageError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source: error,
            })
        }
    };
    let invalid = |line: usize, reason: String| StorageError::InvalidCheckpoint {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(invalid(1, format!("unsupported version {other:?}"))),
    }
    let count: usize = lines
        .next()
        .and_then(|line| line.trim().parse().ok())
        .ok_or_else(|| invalid(2, "missing entry count".to_string()))?;
    let mut entries = Vec::with_capacity(count.min(1 << 16));
    for (n, line) in lines.enumerate() {
        let line_number = n + 3;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        let fields: [String; N] = fields
            .try_into()
            .map_err(|_| invalid(line_number, format!("expected {N} fields, got {line:?}")))?;
        entries.push((line_number, fields));
    }
    if entries.len() != count {
        return Err(invalid(
            2,
            format!("header says {count} entries, found {}", entries.len()),
        ));
    }
    Ok(entries)
}

/// Atomically replaces the checkpoint at `path` with `lines`, one entry
/// each, behind Kafka's version and count lines.
pub fn write_entries(path: &Path, lines: &[String]) -> Result<(), StorageError> {
    let mut text = format!("{VERSION}\n{}\n", lines.len());
    for line in lines {
        text.push_str(line);
        text.push('\n');
    }
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all(text.as_bytes()).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_error(path))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(dir))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("recovery-point-offset-checkpoint");
        assert!(read(&path).expect("missing is empty").is_empty());
        let entries = vec![("orders".to_string(), 0, 42), ("orders".to_string(), 3, 7)];
        write(&path, &entries).expect("write");
        assert_eq!(
            fs::read_to_string(&path).expect("read"),
            "0\n2\norders 0 42\norders 3 7\n"
        );
        let map = read(&path).expect("read back");
        assert_eq!(map.len(), 2);
        assert_eq!(map[&("orders".to_string(), 3)], 7);
        assert!(!tmp_path(&path).exists());
        write(&path, &[]).expect("overwrite");
        assert!(read(&path).expect("empty").is_empty());
    }

    #[test]
    fn malformed_files_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cp");
        for bad in [
            "1\n0\n",
            "0\nx\n",
            "0\n1\nt 0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt p 1\n",
        ] {
            fs::write(&path, bad).expect("write");
            let error = read(&path).expect_err(bad);
            assert!(
                matches!(error, StorageError::InvalidCheckpoint { .. }),
                "{bad}"
            );
            assert_eq!(error.kafka_error_code(), 56);
        }
    }
}
