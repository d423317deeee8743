//! Idempotent producers (KIP-98): per partition, each producer id's epoch
//! and its last few batches' sequence numbers, so that a retried batch is
//! answered with its original offset instead of being appended twice, and a
//! batch that skips sequence numbers is refused.
//!
//! A plain state machine: the partition asks [`ProducerStates::check`]
//! before an append and calls [`ProducerStates::record`] after it.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;

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
    /// lost (Strata does not yet snapshot producer state across restarts), as
    /// it is in Kafka once it expires.
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
    fn sequences_wrap_at_i32_max() {
        let mut states = ProducerStates::default();
        states.record(&batch(0, i32::MAX - 1, 2), 0);
        assert_eq!(states.check(&batch(0, 0, 1)), Ok(Verdict::Append));
    }
}
