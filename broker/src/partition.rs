//! One partition this broker hosts: its log behind a lock, the leader epoch
//! under which it leads it with the replica state of that leadership, and a
//! watch of its high watermark that waiting fetches subscribe to.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kafka_protocol::error::ResponseError;

use strata_storage::batch::BatchHeader;
use strata_storage::{AppendInfo, FileSlice, Log, LogConfig, StorageError};
use tokio::sync::watch;

use crate::error::ApiError;
use crate::metadata::PartitionRegistration;
use crate::metrics::TopicMetrics;
use crate::producer_state::{ProducerBatch, ProducerStates, Verdict};
use crate::replication::{Effect, ReplicaState};

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
    /// The high watermark: consumers read below it, and fetches waiting for
    /// `min_bytes` wake on its changes instead of polling.
    high_watermark: watch::Sender<i64>,
    /// The log end offset: followers' fetches wait on it.
    log_end_offset: watch::Sender<i64>,
    /// While this broker leads: the replicas' state (high watermark, ISR).
    /// Locked only while `log` is held.
    replica: Mutex<Option<ReplicaState>>,
    /// The leader epoch under which this broker leads the partition, as the
    /// metadata says; -1 while it does not lead it (another broker does, or
    /// none).
    leader_epoch: AtomicI32,
    /// The topic's produce and fetch counters, shared by its partitions.
    pub metrics: TopicMetrics,
    /// Where ISR proposals go (`None`: nowhere, they are logged).
    proposals: Option<IsrProposals>,
}

/// An ISR change a partition's leader proposes to the controller (Kafka's
/// AlterPartition), valid only at the partition epoch it was based on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub topic: String,
    pub partition: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

/// How a led partition's replicas stand: how many there are, how many are
/// in sync, and how far each follower is behind the leader's log end, in
/// offsets and in bytes (as of its last fetch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    pub replicas: usize,
    pub in_sync: usize,
    pub followers: Vec<(i32, i64, u64)>,
}

/// How a wait for replication ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    Yes,
    TimedOut,
    /// This broker stopped leading the partition (or leads it under another
    /// epoch) before the high watermark got there.
    LeaderChanged,
}

/// Where a broker's partitions send their ISR proposals.
pub type IsrProposals = tokio::sync::mpsc::UnboundedSender<IsrProposal>;

/// What a fetch read from one partition: whole batches as ranges of the
/// segment files (not yet copied), and the offsets at the time of the read.
#[derive(Debug)]
pub struct ReadResult {
    pub records: Vec<FileSlice>,
    /// Total bytes of `records`.
    pub len: usize,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl Partition {
    /// Wraps an opened log. Idempotent producers' sequence state is restored
    /// from the newest producer snapshot and the batch headers after it, so
    /// that a retry arriving after a restart is still recognised as a
    /// duplicate; if batches had to be read, a snapshot at the log end offset
    /// spares the next start from reading them again.
    /// `high_watermark` is the checkpointed one (`replication-offset-checkpoint`).
    pub fn new(
        topic: String,
        index: i32,
        log: Log,
        high_watermark: i64,
        metrics: TopicMetrics,
        proposals: Option<IsrProposals>,
    ) -> Self {
        let (high_watermark, _) = watch::channel(high_watermark.clamp(0, log.log_end_offset()));
        let (log_end_offset, _) = watch::channel(log.log_end_offset());
        let (producers, walked_from) = ProducerStates::load(&log);
        if walked_from < log.log_end_offset() {
            producers.write_snapshot(&log);
        }
        Partition {
            topic,
            index,
            log: Mutex::new(log),
            producers: Mutex::new(producers),
            high_watermark,
            log_end_offset,
            replica: Mutex::new(None),
            leader_epoch: AtomicI32::new(-1),
            metrics,
            proposals,
        }
    }

    /// Follows the metadata's `registration` of this partition: leads it
    /// when `node_id` is its leader (a new leader epoch starts the replica
    /// state afresh; the same one takes a new ISR in), stops leading it
    /// otherwise.
    pub fn follow(
        &self,
        registration: Option<&PartitionRegistration>,
        node_id: i32,
        max_lag_ms: i64,
        now_ms: i64,
    ) {
        let log = self.log();
        let mut replica = self.lock_replica();
        let leading = registration.filter(|p| p.leader == node_id);
        let effects = match (leading, replica.as_mut()) {
            (Some(p), Some(state)) if state.leader_epoch() == p.leader_epoch => {
                state.on_metadata(p.partition_epoch, &p.isr)
            }
            (Some(p), _) => {
                let (state, effects) = ReplicaState::lead(
                    node_id,
                    p.leader_epoch,
                    p.partition_epoch,
                    &p.replicas,
                    &p.isr,
                    log.log_end_offset(),
                    *self.high_watermark.borrow(),
                    max_lag_ms,
                    now_ms,
                );
                *replica = Some(state);
                effects
            }
            (None, _) => {
                *replica = None;
                Vec::new()
            }
        };
        let epoch = leading.map_or(-1, |p| p.leader_epoch);
        let changed = self.leader_epoch.swap(epoch, Ordering::AcqRel) != epoch;
        drop(replica);
        if changed {
            // Wakes whoever waits for the high watermark under the old
            // leadership (acks=all produce): their wait is over.
            self.high_watermark.send_modify(|_| {});
        }
        self.take_effects(effects);
    }

    /// Time passed: followers that stopped keeping up are proposed out of
    /// the ISR (while this broker leads).
    pub fn tick(&self, now_ms: i64) {
        let effects = self
            .lock_replica()
            .as_mut()
            .map(|state| state.on_tick(now_ms))
            .unwrap_or_default();
        self.take_effects(effects);
    }

    /// The controller refused this leader's last ISR proposal (stale): the
    /// next event may propose again.
    pub fn proposal_refused(&self) {
        if let Some(state) = self.lock_replica().as_mut() {
            state.on_proposal_refused();
        }
    }

    fn lock_replica(&self) -> MutexGuard<'_, Option<ReplicaState>> {
        self.replica.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Carries out what the replica state asks for (not under its lock).
    fn take_effects(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::HighWatermark(offset) => {
                    self.high_watermark.send_replace(offset);
                }
                Effect::AlterIsr {
                    isr,
                    partition_epoch,
                } => {
                    tracing::info!(topic = %self.topic, partition = self.index, ?isr, partition_epoch, "proposing an ISR change");
                    let proposal = IsrProposal {
                        topic: self.topic.clone(),
                        partition: self.index,
                        isr,
                        partition_epoch,
                    };
                    let sent = self.proposals.as_ref().map(|to| to.send(proposal));
                    if !matches!(sent, Some(Ok(()))) {
                        tracing::warn!(topic = %self.topic, partition = self.index, "no one takes ISR proposals (shutting down?)");
                    }
                }
            }
        }
    }

    /// The leader epoch this broker leads under; -1 if it does not lead.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.leader_epoch() >= 0
    }

    /// How many replicas are in sync (0 while this broker does not lead).
    pub fn isr_size(&self) -> usize {
        self.lock_replica()
            .as_ref()
            .map_or(0, |state| state.isr().len())
    }

    /// Kafka's check of a request's `current_leader_epoch` (KIP-320): -1
    /// skips it; an older epoch than this leader's is FENCED_LEADER_EPOCH
    /// (the client's metadata is stale), a newer one UNKNOWN_LEADER_EPOCH
    /// (this broker has not learnt of it yet).
    pub fn check_leader_epoch(&self, current: i32) -> Result<(), ApiError> {
        let ours = self.leader_epoch();
        match current {
            -1 => Ok(()),
            theirs if theirs < ours => Err(ResponseError::FencedLeaderEpoch.into()),
            theirs if theirs > ours => Err(ResponseError::UnknownLeaderEpoch.into()),
            _ => Ok(()),
        }
    }

    /// The log, locked. A panic while the lock was held cannot leave the log
    /// half-written (storage validates before it writes), so a poisoned lock
    /// is taken over rather than propagated.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a produce request's record batch and wakes waiting fetches.
    /// Kafka allows exactly one batch per partition in a request (v3+). A
    /// batch of an idempotent producer is checked against its sequence state
    /// first: a retry gets its original offset back and is not appended again.
    /// Returns the append's result and the log start offset read under the
    /// same lock, which the produce response carries.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> Result<(AppendInfo, i64), ApiError> {
        let producer_batch = match peek_batch_headers(records).as_slice() {
            [] => None, // not even a header: the log refuses it as corrupt
            [header] => ProducerBatch::from_header(header).map(|b| (b, header.last_offset_delta)),
            _ => {
                return Err(ApiError::new(
                    ResponseError::InvalidRecord,
                    "Produce requests with version 3 and above are only allowed to contain exactly one record batch per partition",
                ))
            }
        };
        let mut log = self.log();
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((batch, last_offset_delta)) = &producer_batch {
            if let Verdict::Duplicate { base_offset } = producers.check(batch)? {
                let duplicate = AppendInfo {
                    base_offset,
                    last_offset: base_offset + i64::from(*last_offset_delta),
                    log_append_time: -1,
                    record_count: 0,
                };
                return Ok((duplicate, log.log_start_offset()));
            }
        }
        let segments_before = log.segment_count();
        // Each batch carries the epoch of the leader that appended it.
        let info = log.append(records, self.leader_epoch().max(0), now_ms)?;
        if let Some((batch, _)) = &producer_batch {
            producers.record(batch, info.base_offset);
        }
        if log.segment_count() != segments_before {
            // Rolled: snapshot producer state, as Kafka does, so a start after
            // a crash reads only the batches since.
            producers.write_snapshot(&log);
        }
        self.log_end_offset.send_replace(log.log_end_offset());
        let effects = self
            .lock_replica()
            .as_mut()
            .map(|state| state.on_append(log.log_end_offset()))
            .unwrap_or_default();
        self.take_effects(effects);
        Ok((info, log.log_start_offset()))
    }

    /// A follower's side: appends batches fetched from the leader as they
    /// are, their producers' state too.
    pub fn append_as_follower(&self, records: &[u8], now_ms: i64) -> Result<AppendInfo, ApiError> {
        let mut log = self.log();
        let info = log.append_as_follower(records, now_ms)?;
        let mut producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for header in peek_batch_headers(records) {
            if let Some(batch) = ProducerBatch::from_header(&header) {
                producers.record(&batch, header.base_offset);
            }
        }
        self.log_end_offset.send_replace(log.log_end_offset());
        Ok(info)
    }

    /// A follower's side: cuts the log at `offset` (where its leader's log
    /// diverges from it) or, with `restart`, empties it to start again at
    /// `offset` (the leader's log starts past it). The producers' state is
    /// rebuilt from what is left.
    pub fn truncate_as_follower(&self, offset: i64, restart: bool) -> Result<(), ApiError> {
        let mut log = self.log();
        if restart {
            log.truncate_fully_and_start_at(offset)?;
        } else {
            log.truncate_to(offset)?;
        }
        let (producers, _) = ProducerStates::load(&log);
        *self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = producers;
        let end = log.log_end_offset();
        self.log_end_offset.send_replace(end);
        self.high_watermark.send_if_modified(|current| {
            let cut = *current > end || restart;
            if cut {
                *current = end;
            }
            cut
        });
        Ok(())
    }

    /// A follower's side: the leader's high watermark, as far as this log
    /// reaches; it never moves back.
    /// A follower's side of the leader's log start offset (moved by
    /// DeleteRecords or retention there): its own moves up to it, as far as
    /// its high watermark, and the segments below go, so that every replica
    /// keeps the same records. Whether it moved.
    pub fn follow_log_start(&self, leader_log_start: i64) -> Result<bool, ApiError> {
        let mut log = self.log();
        let target = leader_log_start.min(self.high_watermark());
        if target <= log.log_start_offset() {
            return Ok(false);
        }
        log.delete_records_before(target)?;
        Ok(true)
    }

    pub fn follow_high_watermark(&self, leader_high_watermark: i64) {
        let log = self.log();
        let high_watermark = leader_high_watermark.min(log.log_end_offset());
        self.high_watermark.send_if_modified(|current| {
            let moved = high_watermark > *current;
            if moved {
                *current = high_watermark;
            }
            moved
        });
    }

    /// Whether `replica_id` follows this partition, which this broker leads.
    pub fn is_follower(&self, replica_id: i32) -> bool {
        self.lock_replica()
            .as_ref()
            .is_some_and(|state| state.has_follower(replica_id))
    }

    /// The leader's side of a follower's fetch from `offset`: the follower
    /// holds everything below it (its replica state moves on, and with it
    /// perhaps the high watermark), and reads whole batches up to the log end.
    pub fn read_for_follower(
        &self,
        replica_id: i32,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        now_ms: i64,
    ) -> Result<ReadResult, (StorageError, i64, i64)> {
        let log = self.log();
        let effects = self
            .lock_replica()
            .as_mut()
            .map(|state| state.on_follower_fetch(replica_id, offset, now_ms))
            .unwrap_or_default();
        self.take_effects(effects);
        self.read_below(&log, offset, i64::MAX, max_bytes, min_one_batch)
    }

    /// Locates whole batches from `offset` on, below the high watermark (a
    /// consumer's view). The lock is held only to find them (batch headers
    /// and the index); the record bytes are copied or sent by the caller
    /// afterwards.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, (StorageError, i64, i64)> {
        let log = self.log();
        self.read_below(
            &log,
            offset,
            self.high_watermark(),
            max_bytes,
            min_one_batch,
        )
    }

    /// The batches from `offset` wholly below `max_offset`, with the offsets
    /// a fetch answers (or the error with them).
    fn read_below(
        &self,
        log: &Log,
        offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, (StorageError, i64, i64)> {
        let high_watermark = self.high_watermark();
        let log_start_offset = log.log_start_offset();
        match log.read_slices_below(offset, max_offset, max_bytes, min_one_batch) {
            Ok(records) => Ok(ReadResult {
                len: records.iter().map(FileSlice::len).sum(),
                records,
                high_watermark,
                log_start_offset,
            }),
            Err(error) => Err((error, high_watermark, log_start_offset)),
        }
    }

    /// DeleteRecords: makes `offset` (-1: the high watermark) the log start
    /// offset, deleting the segments wholly below it, and returns the new log
    /// start offset (the response's low watermark). As in Kafka, a topic
    /// without `cleanup.policy=delete` refuses with POLICY_VIOLATION, and an
    /// offset past the high watermark is OFFSET_OUT_OF_RANGE.
    pub fn delete_records(&self, offset: i64) -> Result<i64, ApiError> {
        let mut log = self.log();
        if !log.config().cleanup_delete {
            return Err(ApiError::new(
                ResponseError::PolicyViolation,
                format!(
                    "Records of partition {}-{} can not be deleted due to the configured policy",
                    self.topic, self.index
                ),
            ));
        }
        let high_watermark = self.high_watermark();
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset > high_watermark {
            return Err(ResponseError::OffsetOutOfRange.into());
        }
        Ok(log.delete_records_before(offset)?)
    }

    /// Writes a producer-state snapshot at the log end offset (clean shutdown),
    /// so the next start reads no batch header at all.
    pub fn write_producer_snapshot(&self) {
        let log = self.log();
        let producers = self
            .producers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        producers.write_snapshot(&log);
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// While this broker leads: how the replicas stand, for the metrics.
    pub fn replication(&self) -> Option<Replication> {
        let log = self.log();
        let state = self.lock_replica();
        let state = state.as_ref()?;
        let log_end = log.log_end_offset();
        let followers = state
            .follower_log_ends()
            .into_iter()
            .map(|(id, end)| {
                let end = end.max(log.log_start_offset());
                let bytes = log.bytes_from(end).unwrap_or(0);
                (id, (log_end - end).max(0), bytes)
            })
            .collect();
        Some(Replication {
            replicas: state.replica_count(),
            in_sync: state.isr().len(),
            followers,
        })
    }

    /// A receiver that sees every move of the high watermark.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Waits until the high watermark reaches `offset` (every in-sync
    /// replica holds what lies below it) while this broker leads under
    /// `leader_epoch` (the epoch the records were appended under), or until
    /// `deadline` passes.
    pub async fn replicated_to(
        &self,
        offset: i64,
        leader_epoch: i32,
        deadline: tokio::time::Instant,
    ) -> Replicated {
        let mut high_watermark = self.subscribe();
        let led = || leader_epoch >= 0 && self.leader_epoch() == leader_epoch;
        let waited = tokio::time::timeout_at(
            deadline,
            high_watermark.wait_for(|hw| *hw >= offset || !led()),
        )
        .await;
        // Leadership first: past a change, this broker's high watermark says
        // nothing about records it appended as leader.
        if !led() {
            Replicated::LeaderChanged
        } else if waited.is_ok_and(|seen| seen.is_ok()) {
            Replicated::Yes
        } else {
            Replicated::TimedOut
        }
    }

    /// A receiver that sees every append (followers wait on it).
    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end_offset.subscribe()
    }

    pub fn set_config(&self, config: LogConfig) {
        self.log().set_config(config);
    }
}

/// The headers of the batches in a produce request's records. Framing is
/// only peeked at here; the log validates it fully on append.
fn peek_batch_headers(records: &[u8]) -> Vec<BatchHeader> {
    let mut headers = Vec::new();
    let mut position = 0;
    while let Some(header) = records.get(position..).and_then(BatchHeader::parse) {
        // A length too small to hold even a header is garbage the log will
        // refuse; stop here rather than loop on it.
        if header.size() < strata_storage::batch::HEADER_SIZE {
            break;
        }
        position += header.size();
        headers.push(header);
    }
    headers
}

#[cfg(test)]
mod tests {
    use strata_storage::LogConfig;

    use super::*;
    use crate::metrics::BrokerMetrics;
    use crate::test_support::one_record_batch;

    fn partition(dir: &std::path::Path, metrics: &BrokerMetrics) -> Partition {
        let log = Log::open(dir, LogConfig::default(), 0, true, 0).unwrap();
        Partition::new("t".into(), 0, log, 0, metrics.topic("t"), None)
    }

    fn registration(isr: &[i32]) -> PartitionRegistration {
        PartitionRegistration {
            topic_id: uuid::Uuid::nil(),
            partition_id: 0,
            replicas: vec![1, 2],
            isr: isr.to_vec(),
            leader: 1,
            leader_epoch: 3,
            partition_epoch: 0,
        }
    }

    /// The data path of replication in process: the leader's batches reach
    /// the follower unchanged through a follower fetch, and the high
    /// watermark (what acks=all and consumers wait for) moves only once the
    /// follower's next fetch shows it holds them.
    #[test]
    fn a_follower_s_fetches_carry_the_log_and_move_the_high_watermark() {
        let metrics = BrokerMetrics::new();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (leader, follower) = (partition(a.path(), &metrics), partition(b.path(), &metrics));
        leader.follow(Some(&registration(&[1, 2])), 1, 30_000, 0);
        follower.follow(Some(&registration(&[1, 2])), 2, 30_000, 0);
        assert!(leader.is_leader() && leader.is_follower(2));
        assert!(!follower.is_leader() && !leader.is_follower(3));

        for value in ["a", "b", "c"] {
            let mut batch = one_record_batch(None, Some(value), 10);
            leader.append(&mut batch, 10).unwrap();
        }
        assert_eq!(leader.high_watermark(), 0, "the follower holds nothing yet");
        assert_eq!(
            leader.read(0, 1 << 20, true).unwrap().len,
            0,
            "consumers see nothing"
        );

        let fetched = leader.read_for_follower(2, 0, 1 << 20, true, 20).unwrap();
        let bytes = strata_storage::read_slices(&fetched.records).unwrap();
        follower.append_as_follower(&bytes, 20).unwrap();
        follower.follow_high_watermark(fetched.high_watermark);
        assert_eq!(follower.log().log_end_offset(), 3);
        assert_eq!(follower.log().latest_epoch(), Some(3), "the leader's epoch");
        assert_eq!(leader.high_watermark(), 0);

        let next = leader.read_for_follower(2, 3, 1 << 20, true, 30).unwrap();
        assert_eq!((next.len, next.high_watermark), (0, 3));
        follower.follow_high_watermark(next.high_watermark);
        assert_eq!(follower.high_watermark(), 3);
        assert_eq!(leader.read(0, 1 << 20, true).unwrap().len, bytes.len());
    }
}
