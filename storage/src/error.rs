//! The one error type of the storage crate and its mapping to Kafka error codes.
//!
//! Variants are structured (segment, position, offsets) so that logs say exactly where
//! a problem is; the broker turns them into protocol error codes at the handler edge
//! with [`StorageError::kafka_error_code`].

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the partition log.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed. The broker answers KAFKA_STORAGE_ERROR: the log directory
    /// is in trouble, not the request.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A record batch whose framing is broken: too short, a length that does not fit
    /// the buffer, a torn tail. `segment` is `None` for batches from a produce request.
    #[error(
        "corrupt record batch in {} at position {position}: {reason}",
        describe(segment)
    )]
    CorruptBatch {
        segment: Option<PathBuf>,
        position: u64,
        reason: String,
    },

    /// A record batch whose stored CRC32C does not match its content.
    #[error(
        "CRC mismatch in {} at position {position}: stored {expected:#010x}, computed {actual:#010x}",
        describe(segment)
    )]
    CrcMismatch {
        segment: Option<PathBuf>,
        position: u64,
        expected: u32,
        actual: u32,
    },

    /// A well-framed batch whose header makes no sense: wrong magic, negative offset
    /// delta, more records than offsets.
    #[error("invalid record batch at position {position}: {reason}")]
    InvalidBatch { position: u64, reason: String },

    /// A record Kafka's validation refuses although its batch is well formed, e.g.
    /// a record without a key for a compacted topic. The broker answers
    /// INVALID_RECORD.
    #[error("invalid record: {reason}")]
    InvalidRecord { reason: String },

    /// A batch larger than `max.message.bytes` (size counts the 12-byte log overhead,
    /// as Kafka does).
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: u32 },

    /// A read (or truncation) outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },

    /// A checkpoint file that does not follow Kafka's text format.
    #[error("invalid checkpoint file {} line {line}: {reason}", path.display())]
    InvalidCheckpoint {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Kafka error code CORRUPT_MESSAGE.
const CORRUPT_MESSAGE: i16 = 2;
/// Kafka error code OFFSET_OUT_OF_RANGE.
const OFFSET_OUT_OF_RANGE: i16 = 1;
/// Kafka error code MESSAGE_TOO_LARGE.
const MESSAGE_TOO_LARGE: i16 = 10;
/// Kafka error code INVALID_RECORD.
const INVALID_RECORD: i16 = 87;
/// Kafka error code KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

impl StorageError {
    /// The Kafka protocol error code a broker answers with for this error.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::Io { .. } | StorageError::InvalidCheckpoint { .. } => KAFKA_STORAGE_ERROR,
            StorageError::CorruptBatch { .. }
            | StorageError::CrcMismatch { .. }
            | StorageError::InvalidBatch { .. } => CORRUPT_MESSAGE,
            StorageError::MessageTooLarge { .. } => MESSAGE_TOO_LARGE,
            StorageError::InvalidRecord { .. } => INVALID_RECORD,
            StorageError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        }
    }

    /// Attaches the segment file to a batch error found while reading a segment
    /// (the `batch` module does not know where its bytes came from).
    pub(crate) fn in_segment(self, path: &Path) -> StorageError {
        match self {
            StorageError::CorruptBatch {
                position, reason, ..
            } => StorageError::CorruptBatch {
                segment: Some(path.to_path_buf()),
                position,
                reason,
            },
            StorageError::CrcMismatch {
                position,
                expected,
                actual,
                ..
            } => StorageError::CrcMismatch {
                segment: Some(path.to_path_buf()),
                position,
                expected,
                actual,
            },
            other => other,
        }
    }
}

/// Wraps an `io::Error` with the path it concerns; used as `.map_err(io_error(path))`.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn describe(segment: &Option<PathBuf>) -> String {
    match segment {
        Some(path) => path.display().to_string(),
        None => "request".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_match_kafka() {
        let io = StorageError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::other("boom"),
        };
        assert_eq!(io.kafka_error_code(), 56);
        let crc = StorageError::CrcMismatch {
            segment: None,
            position: 0,
            expected: 1,
            actual: 2,
        };
        assert_eq!(crc.kafka_error_code(), 2);
        assert_eq!(
            StorageError::MessageTooLarge { size: 2, max: 1 }.kafka_error_code(),
            10
        );
        let range = StorageError::OffsetOutOfRange {
            offset: 5,
            log_start_offset: 0,
            log_end_offset: 3,
        };
        assert_eq!(range.kafka_error_code(), 1);
        assert!(range.to_string().contains("offset 5"));
        let located = crc.in_segment(Path::new("/d/0.log"));
        assert!(located.to_string().contains("/d/0.log"));
    }
}
