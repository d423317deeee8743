//! Idempotent producers (KIP-98): per partition, each producer id's epoch
//! and its last few batches' sequence numbers, so that a retried batch is
//! answered with its original offset instead of being appended twice, and a
//! batch that skips sequence numbers is refused.
//!
//! A plain state machine: the partition asks [`ProducerStates::check`]
//! before an append and calls [`ProducerStates::record`] after it.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use strata_storage::{snapshot, Log};

/// How many recent batches per producer are remembered for duplicate
/// detection: Kafka's limit, matching `max.in.flight.requests.per.connection`
/// of at most 5 for idempotent producers.
const REMEMBERED_BATCHES: usize = 5;

/// The producer fields of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_sequence: i32,
    pub last_sequence: i32,
}

impl ProducerBatch {
    /// The producer fields of a batch header, or `None` for a batch from a
    /// producer that is not idempotent (producer id -1).
    pub fn from_header(header: &strata_storage::batch::BatchHeader) -> Option<Self> {
        (header.producer_id >= 0).then(|| ProducerBatch {
            producer_id: header.producer_id,
            epoch: header.producer_epoch,
            first_sequence: header.base_sequence,
            last_sequence: add_sequence(header.base_sequence, header.last_offset_delta),
        })
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New and in sequence: append it.
    Append,
    /// A retry of a batch already in the log at this base offset: answer
    /// with that offset and append nothing.
    Duplicate { base_offset: i64 },
}

#[derive(Debug, Clone)]
struct RememberedBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Debug, Clone)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<RememberedBatch>,
}

/// The idempotence state of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Decides whether `batch` may be appended.
    ///
    /// An unknown producer may start at any sequence: its state may have been
    /// lost (a snapshot and log both gone), as it is in Kafka once it expires.
    pub fn check(&self, batch: &ProducerBatch) -> Result<Verdict, ResponseError> {
        let Some(entry) = self.producers.get(&batch.producer_id) else {
            return Ok(Verdict::Append);
        };
        if batch.epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if batch.epoch > entry.epoch {
            // A bumped epoch (KIP-360) restarts the sequence at 0.
            return if batch.first_sequence == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(seen) = entry.batches.iter().find(|b| {
            b.first_sequence == batch.first_sequence && b.last_sequence == batch.last_sequence
        }) {
            return Ok(Verdict::Duplicate {
                base_offset: seen.base_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if batch.first_sequence != add_sequence(last.last_sequence, 1) => {
                Err(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => Ok(Verdict::Append),
        }
    }

    /// Remembers an appended batch.
    pub fn record(&mut self, batch: &ProducerBatch, base_offset: i64) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: batch.epoch,
                batches: VecDeque::new(),
            });
        if batch.epoch != entry.epoch {
            entry.epoch = batch.epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == REMEMBERED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(RememberedBatch {
            first_sequence: batch.first_sequence,
            last_sequence: batch.last_sequence,
            base_offset,
        });
    }
}

/// Version of the snapshot payload written by [`ProducerStates::encode`].
const SNAPSHOT_PAYLOAD_VERSION: u8 = 1;

impl ProducerStates {
    /// The payload of a producer-state snapshot (framed, CRC-checked and named
    /// by `strata_storage::snapshot`). Big endian:
    /// `version u8 (= 1) | producer count u32 | per producer: producer id i64,
    /// epoch i16, batch count u8, per batch (oldest first): first sequence i32,
    /// last sequence i32, base offset i64`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.producers.len() * (11 + 16 * REMEMBERED_BATCHES));
        out.push(SNAPSHOT_PAYLOAD_VERSION);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            // At most REMEMBERED_BATCHES (5), so it fits a byte.
            out.push(entry.batches.len() as u8);
            for batch in &entry.batches {
                out.extend_from_slice(&batch.first_sequence.to_be_bytes());
                out.extend_from_slice(&batch.last_sequence.to_be_bytes());
                out.extend_from_slice(&batch.base_offset.to_be_bytes());
            }
        }
        out
    }

    /// Decodes [`ProducerStates::encode`]'s payload; `None` if it is malformed.
    pub fn decode(payload: &[u8]) -> Option<ProducerStates> {
        let mut reader = Reader(payload);
        if reader.u8()? != SNAPSHOT_PAYLOAD_VERSION {
            return None;
        }
        let count = reader.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(reader.array()?);
            let epoch = i16::from_be_bytes(reader.array()?);
            let batch_count = reader.u8()? as usize;
            if batch_count > REMEMBERED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(batch_count);
            for _ in 0..batch_count {
                batches.push_back(RememberedBatch {
                    first_sequence: i32::from_be_bytes(reader.array()?),
                    last_sequence: i32::from_be_bytes(reader.array()?),
                    base_offset: i64::from_be_bytes(reader.array()?),
                });
            }
            producers.insert(id, ProducerEntry { epoch, batches });
        }
        reader.0.is_empty().then_some(ProducerStates { producers })
    }

    /// Rebuilds a partition's producer state at start-up: the newest snapshot at
    /// or below the log end offset, then the batch headers after it (only the tail
    /// written since the snapshot). Without a usable snapshot every batch header of
    /// the log is read. Returns the state and the offset the walk started at.
    pub fn load(log: &Log) -> (ProducerStates, i64) {
        let dir = log.dir();
        // `from`: the snapshot's offset (a batch boundary), or 0 for the whole log.
        let (mut states, from) = match snapshot::read_latest(dir, log.log_end_offset()) {
            Ok(Some((offset, payload))) => match ProducerStates::decode(&payload) {
                Some(states) => (states, offset),
                None => {
                    tracing::warn!(dir = %dir.display(), offset, "undecodable producer snapshot; reading the whole log");
                    (ProducerStates::default(), 0)
                }
            },
            Ok(None) => (ProducerStates::default(), 0),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "cannot read producer snapshots; reading the whole log");
                (ProducerStates::default(), 0)
            }
        };
        if from < log.log_end_offset() {
            let walked = log.for_each_batch_header_from(from, |header| {
                if header.base_offset >= from {
                    if let Some(batch) = ProducerBatch::from_header(header) {
                        states.record(&batch, header.base_offset);
                    }
                }
            });
            if let Err(error) = walked {
                tracing::warn!(dir = %dir.display(), %error, "could not rebuild producer state");
            }
        }
        (states, from)
    }

    /// Writes a snapshot of this state as of the log end offset. Failure only
    /// costs a longer walk at the next start, so it is logged, not returned.
    pub fn write_snapshot(&self, log: &Log) {
        // State only changes with the log end offset: a snapshot there is current.
        if snapshot::exists(log.dir(), log.log_end_offset()) {
            return;
        }
        if let Err(error) = snapshot::write(log.dir(), log.log_end_offset(), &self.encode()) {
            tracing::warn!(dir = %log.dir().display(), %error, "could not write a producer snapshot");
        }
    }
}

/// A cursor over a snapshot payload.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[byte]| byte)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
}

/// Sequence numbers wrap from `i32::MAX` to 0 (KIP-98).
fn add_sequence(sequence: i32, delta: i32) -> i32 {
    ((i64::from(sequence) + i64::from(delta)) % (i64::from(i32::MAX) + 1)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(epoch: i16, first: i32, count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 7,
            epoch,
            first_sequence: first,
            last_sequence: add_sequence(first, count - 1),
        }
    }

    #[test]
    fn in_sequence_batches_append_and_retries_are_duplicates() {
        let mut states = ProducerStates::default();
        assert_eq!(states.check(&batch(0, 0, 10)), Ok(Verdict::Append));
        states.record(&batch(0, 0, 10), 100);
        assert_eq!(states.check(&batch(0, 10, 5)), Ok(Verdict::Append));
        states.record(&batch(0, 10, 5), 110);
        assert_eq!(
            states.check(&batch(0, 0, 10)),
            Ok(Verdict::Duplicate { base_offset: 100 })
        );
        assert_eq!(
            states.check(&batch(0, 10, 5)),
            Ok(Verdict::Duplicate { base_offset: 110 })
        );
    }

    #[test]
    fn gaps_and_stale_epochs_are_refused() {
        let mut states = ProducerStates::default();
        states.record(&batch(1, 0, 10), 0);
        assert_eq!(
            states.check(&batch(1, 11, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            states.check(&batch(0, 10, 1)),
            Err(ResponseError::InvalidProducerEpoch)
        );
        // A new epoch must start over at sequence 0.
        assert_eq!(
            states.check(&batch(2, 10, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(states.check(&batch(2, 0, 1)), Ok(Verdict::Append));
        states.record(&batch(2, 0, 1), 10);
        assert_eq!(
            states.check(&batch(1, 10, 1)),
            Err(ResponseError::InvalidProducerEpoch)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut states = ProducerStates::default();
        for i in 0..6 {
            states.record(&batch(0, i, 1), i64::from(i));
        }
        // Sequence 0 was forgotten: it is neither a duplicate nor next.
        assert_eq!(
            states.check(&batch(0, 0, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            states.check(&batch(0, 1, 1)),
            Ok(Verdict::Duplicate { base_offset: 1 })
        );
    }

    #[test]
    fn snapshot_payload_round_trips_and_rejects_garbage() {
        let mut states = ProducerStates::default();
        for i in 0..7 {
            states.record(&batch(3, i * 2, 2), 100 + i64::from(i));
        }
        let mut other = batch(0, 5, 1);
        other.producer_id = 42;
        states.record(&other, 7);
        let payload = states.encode();
        let decoded = ProducerStates::decode(&payload).expect("decodes");
        assert_eq!(decoded.encode(), payload);
        assert_eq!(
            decoded.check(&batch(3, 12, 2)),
            Ok(Verdict::Duplicate { base_offset: 106 })
        );
        assert_eq!(decoded.check(&batch(3, 14, 1)), Ok(Verdict::Append));
        for cut in 0..payload.len() {
            assert!(
                ProducerStates::decode(&payload[..cut]).is_none(),
                "cut {cut}"
            );
        }
        let mut extra = payload.clone();
        extra.push(0);
        assert!(ProducerStates::decode(&extra).is_none());
    }

    /// One batch of `count` records from producer 7 at `epoch`, starting at
    /// sequence `first`.
    fn encoded_batch(epoch: i16, first: i32, count: i32) -> Vec<u8> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: 7,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i64::from(i),
                sequence: first + i,
                timestamp: 0,
                key: None,
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    #[test]
    fn load_reads_the_newest_snapshot_and_only_the_batches_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open =
            || strata_storage::Log::open(dir.path(), Default::default(), 0, true, 0).expect("open");
        let mut log = open();
        for first in [0, 2, 4] {
            log.append(&mut encoded_batch(0, first, 2), 0, 0)
                .expect("append");
        }
        let (states, from) = ProducerStates::load(&log);
        assert_eq!(from, 0, "no snapshot yet: the whole log");
        states.write_snapshot(&log);
        for first in [6, 8] {
            log.append(&mut encoded_batch(0, first, 2), 0, 0)
                .expect("append");
        }
        let expect_full_state = |states: &ProducerStates| {
            assert_eq!(
                states.check(&batch(0, 2, 2)),
                Ok(Verdict::Duplicate { base_offset: 2 })
            );
            assert_eq!(
                states.check(&batch(0, 8, 2)),
                Ok(Verdict::Duplicate { base_offset: 8 })
            );
            assert_eq!(states.check(&batch(0, 10, 1)), Ok(Verdict::Append));
        };
        let (states, from) = ProducerStates::load(&log);
        assert_eq!(from, 6, "started from the snapshot");
        expect_full_state(&states);

        // A corrupt snapshot is dropped and the whole log read instead.
        let snapshot =
            dir.path()
                .join(format!("{:020}.{}", 6, strata_storage::snapshot::EXTENSION));
        let mut bytes = std::fs::read(&snapshot).expect("snapshot exists");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&snapshot, bytes).expect("corrupt it");
        let (states, from) = ProducerStates::load(&log);
        assert_eq!(from, 0);
        expect_full_state(&states);
        assert!(!snapshot.exists());
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(&batch(0, i32::MAX - 1, 2), 0);
        assert_eq!(states.check(&batch(0, 0, 1)), Ok(Verdict::Append));
    }
}
