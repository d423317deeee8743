//! One partition this broker leads: its log behind a lock, and a watch of its
//! log end offset that waiting fetches subscribe to.

use std::sync::{Mutex, MutexGuard, PoisonError};

use kafka_protocol::error::ResponseError;

use bytes::Bytes;
use strata_storage::batch::BatchHeader;
use strata_storage::{AppendInfo, Log, LogConfig, StorageError};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::producer_state::{ProducerBatch, ProducerStates, Verdict};

/// The leader epoch Strata reports for every partition. A single broker is
/// leader from creation on and never changes leader, so the epoch stays 0
/// until replication brings leader elections.
pub const LEADER_EPOCH: i32 = 0;

/// A partition and its log.
///
/// The log sits behind a std `Mutex` rather than a tokio one: appends and
/// reads are short page-cache operations that never await while holding it.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<Log>,
    /// Idempotent producers' sequence state. Only locked while `log` is held,
    /// so the two never deadlock and always change together.
    producers: Mutex<ProducerStates>,
    /// The log end offset after every append; fetches waiting for
    /// `min_bytes` wake on its changes instead of polling.
    log_end_offset: watch::Sender<i64>,
}

/// What a fetch read from one partition.
#[derive(Debug)]
pub struct ReadResult {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Partition {
    pub fn new(topic: String, index: i32, log: Log) -> Self {
        let (log_end_offset, _) = watch::channel(log.log_end_offset());
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            producers: Mutex::new(ProducerStates::default()),
            log_end_offset,
        }
    }

    /// The log, locked. A panic while the lock was held cannot leave the log
    /// half-written (storage validates before it writes), so a poisoned lock
    /// is taken over rather than propagated.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a produce request's record batches and wakes waiting fetches.
    /// Batches of idempotent producers are checked against their sequence
    /// state first: a retried batch gets its original offset back and is not
    /// appended again.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<AppendInfo, ApiError> {
        let mut log = self.log();
        let batches = producer_batches(records);
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let [(batch, offset_delta)] = batches.as_slice() {
            if let Verdict::Duplicate { base_offset } = producers.check(batch)? {
                return Ok(AppendInfo {
                    base_offset,
                    last_offset: base_offset + i64::from(*offset_delta),
                    log_append_time: -1,
                    record_count: 0,
                });
            }
        } else if !batches.is_empty() {
            // Several batches in one request (clients send one): each must
            // follow the one before it, and none may be a retry.
            let mut trial = producers.clone();
            for (batch, _) in &batches {
                if trial.check(batch)? != Verdict::Append {
                    return Err(ResponseError::OutOfOrderSequenceNumber.into());
                }
                trial.record(batch, 0);
            }
        }
        let info = log.append(records, LEADER_EPOCH, now_ms)?;
        let mut base_offset = info.base_offset;
        for (batch, offset_delta) in &batches {
            producers.record(batch, base_offset);
            base_offset += i64::from(*offset_delta) + 1;
        }
        self.log_end_offset.send_replace(log.log_end_offset());
        Ok(info)
    }

    /// Reads whole batches from `offset` on. On a single broker the high
    /// watermark is the log end offset: every appended batch is committed.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, (StorageError, i64, i64)> {
        let log = self.log();
        let high_watermark = log.log_end_offset();
        let log_start_offset = log.log_start_offset();
        match log.read(offset, max_bytes, min_one_batch) {
            Ok(records) => Ok(ReadResult {
                records,
                high_watermark,
                log_start_offset,
            }),
            Err(error) => Err((error, high_watermark, log_start_offset)),
        }
    }

    pub fn high_watermark(&self) -> i64 {
        *self.log_end_offset.borrow()
    }

    /// A receiver that sees every change of the log end offset.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.log_end_offset.subscribe()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }
}

/// The producer fields and last offset delta of each idempotent batch in a
/// produce request's records. Framing is only peeked at here; the log
/// validates it fully (and refuses the whole request) on append.
fn producer_batches(records: &[u8]) -> Vec<(ProducerBatch, i32)> {
    let mut batches = Vec::new();
    let mut position = 0;
    while let Some(header) = records.get(position..).and_then(BatchHeader::parse) {
        if let Some(batch) = ProducerBatch::from_header(&header) {
            batches.push((batch, header.last_offset_delta));
        }
        // A length too small to hold even a header is garbage the log will
        // refuse; stop here rather than loop on it.
        if header.size() < strata_storage::batch::HEADER_SIZE {
            break;
        }
        position += header.size();
    }
    batches
}
