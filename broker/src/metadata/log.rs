//! The metadata log as it was written before the Raft quorum
//! ([`crate::quorum`] writes it now), read once to move it into the quorum's
//! log: `<data-dir>/__cluster_metadata-0/`, where KRaft
//! keeps it, in Kafka's segment format (so `strata dump-log --records` reads
//! it). Each change is one record batch whose records are the JSON of
//! [`MetadataRecord`]s; a batch is appended and fsynced before its change is
//! applied, and a torn batch at the tail after a crash is cut off by the
//! log's recovery, so a change is either wholly there or not at all.
//!
//! The partition leader epoch of each batch is the term it was written in:
//! 0 until the Raft quorum writes the log.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use strata_storage::{
    encode_plain_batch, for_each_decoded_batch, plain_record, Log, LogConfig, StorageError,
};

use super::records::MetadataRecord;

/// The metadata log's directory in the data directory (KRaft's name).
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// Why the metadata log cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("metadata log batch at offset {offset}: {reason}")]
    Corrupt { offset: i64, reason: String },
    #[error("cannot encode a metadata batch: {0}")]
    Encode(String),
}

/// The open metadata log.
pub struct MetadataLog {
    log: Log,
}

impl MetadataLog {
    /// Opens (or creates) the log and reads back every batch in it, in order.
    pub fn open(
        data_dir: &Path,
        now_ms: i64,
    ) -> Result<(MetadataLog, Vec<Vec<MetadataRecord>>), MetadataLogError> {
        MetadataLog::open_dir(&data_dir.join(METADATA_LOG_DIR), now_ms)
    }

    /// [`MetadataLog::open`] of the log in `dir` itself.
    pub fn open_dir(
        dir: &Path,
        now_ms: i64,
    ) -> Result<(MetadataLog, Vec<Vec<MetadataRecord>>), MetadataLogError> {
        let config = LogConfig {
            // One change is one batch, whatever its size (a migration of many
            // topics, a CreateTopics of thousands of partitions).
            max_message_bytes: 1 << 30,
            ..LogConfig::default()
        };
        // No recovery point is kept: the whole log is checked at every start
        // (it is small, and read whole anyway).
        let log = Log::open(dir, config, 0, false, now_ms)?;
        let mut batches = Vec::new();
        for_each_decoded_batch(&log, |offset, records| {
            let corrupt = |reason: String| MetadataLogError::Corrupt { offset, reason };
            let records = records
                .map_err(corrupt)?
                .iter()
                .map(|record| {
                    let value = record.value.as_deref().unwrap_or_default();
                    serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))
                })
                .collect::<Result<Vec<MetadataRecord>, _>>()?;
            batches.push(records);
            Ok::<(), MetadataLogError>(())
        })?;
        Ok((MetadataLog { log }, batches))
    }

    /// Appends one change as one batch and fsyncs it; returns its first offset.
    pub fn append(
        &mut self,
        records: &[MetadataRecord],
        term: i32,
        now_ms: i64,
    ) -> Result<i64, MetadataLogError> {
        let encoded = records
            .iter()
            .map(|record| {
                let value = serde_json::to_vec(record)
                    .map_err(|e| MetadataLogError::Encode(e.to_string()))?;
                Ok(plain_record(None, Some(Bytes::from(value)), now_ms))
            })
            .collect::<Result<Vec<_>, MetadataLogError>>()?;
        let mut batch = encode_plain_batch(&encoded, Compression::None)
            .map_err(|e| MetadataLogError::Encode(e.to_string()))?;
        let info = self.log.append(&mut batch, term, now_ms)?;
        self.log.flush()?;
        Ok(info.base_offset)
    }

    /// The offset the next batch gets: how many records were ever written.
    pub fn end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::Topic {
            name: name.into(),
            topic_id: Uuid::new_v4(),
        }
    }

    #[test]
    fn batches_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, batches) = MetadataLog::open(dir.path(), 0).unwrap();
        assert!(batches.is_empty());
        let first = vec![topic("a"), topic("b")];
        let second = vec![topic("c")];
        assert_eq!(log.append(&first, 0, 1).unwrap(), 0);
        assert_eq!(log.append(&second, 0, 2).unwrap(), 2);
        assert_eq!(log.end_offset(), 3);
        drop(log);
        let (log, batches) = MetadataLog::open(dir.path(), 3).unwrap();
        assert_eq!(batches, vec![first, second]);
        assert_eq!(log.end_offset(), 3);
    }

    #[test]
    fn a_torn_last_batch_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path(), 0).unwrap();
        let kept = vec![topic("a")];
        log.append(&kept, 0, 1).unwrap();
        log.append(&[topic("b")], 0, 2).unwrap();
        drop(log);
        let segment = dir
            .path()
            .join(METADATA_LOG_DIR)
            .join("00000000000000000000.log");
        let length = std::fs::metadata(&segment).unwrap().len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        // A crash in the middle of the second batch.
        file.set_len(length - 10).unwrap();
        drop(file);
        let (mut log, batches) = MetadataLog::open(dir.path(), 3).unwrap();
        assert_eq!(batches, vec![kept]);
        // Appending goes on from the cut.
        assert_eq!(log.append(&[topic("c")], 0, 4).unwrap(), 1);
    }

    #[test]
    fn a_record_that_is_not_metadata_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path(), 0).unwrap();
        let record = plain_record(None, Some(Bytes::from_static(b"{\"type\":\"x\"}")), 0);
        let mut batch = encode_plain_batch(&[record], Compression::None).unwrap();
        log.log.append(&mut batch, 0, 0).unwrap();
        log.log.flush().unwrap();
        drop(log);
        let error = MetadataLog::open(dir.path(), 0).err().expect("refused");
        assert!(
            matches!(error, MetadataLogError::Corrupt { offset: 0, .. }),
            "{error}"
        );
    }
}
