//! The leader's view of a partition's replicas (Kafka's `Partition` and
//! `Replica` state on the leader): each follower's log end offset and when it
//! was last caught up, the in-sync replicas (ISR), and the high watermark,
//! the offset below which every ISR member holds the log.
//!
//! Rules, after Kafka (`Partition.scala`, KIP-392, KIP-497):
//! - The high watermark is the smallest log end offset over the ISR (and,
//!   while a change to it is proposed, over the larger of the two sets); it
//!   never moves back.
//! - A follower fetching from offset `o` holds everything below `o`. It is
//!   caught up at the fetch's time if `o` reaches the leader's log end, or at
//!   its previous fetch's time if `o` reaches what the leader's log end was
//!   then.
//! - A follower in the ISR not caught up for `replica.lag.time.max.ms` is
//!   proposed out; one outside it that holds the high watermark and
//!   everything of the current leader epoch is proposed in. One proposal at a
//!   time; the controller's answer arrives as new metadata.

use std::collections::{BTreeMap, BTreeSet};

/// What the broker does after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The high watermark moved up to this offset.
    HighWatermark(i64),
    /// Propose this ISR to the controller (AlterPartition), based on the
    /// partition epoch given.
    AlterIsr { isr: Vec<i32>, partition_epoch: i32 },
}

/// One follower, as the leader knows it.
#[derive(Debug, Clone, Copy)]
struct Follower {
    /// -1 until it fetches under this leader.
    log_end_offset: i64,
    last_caught_up_ms: i64,
    /// When it last fetched, and the leader's log end offset then.
    last_fetch_ms: i64,
    leader_end_at_last_fetch: i64,
}

/// The leader's replication state of one partition.
#[derive(Debug)]
pub struct ReplicaState {
    local_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    isr: BTreeSet<i32>,
    /// An ISR proposed and not yet answered by metadata.
    proposed: Option<BTreeSet<i32>>,
    followers: BTreeMap<i32, Follower>,
    log_end_offset: i64,
    /// Where the current leader epoch's appends start.
    epoch_start_offset: i64,
    high_watermark: i64,
    max_lag_ms: i64,
}

impl ReplicaState {
    /// This broker (`local_id`) leads under `leader_epoch` with the given
    /// replicas and ISR, its log ending at `log_end_offset`, the high
    /// watermark at least `high_watermark` (from the checkpoint) as of
    /// `now_ms`. Followers in the ISR get a whole lag window from now.
    #[allow(clippy::too_many_arguments)]
    pub fn lead(
        local_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end_offset: i64,
        high_watermark: i64,
        max_lag_ms: i64,
        now_ms: i64,
    ) -> (ReplicaState, Vec<Effect>) {
        let followers = replicas
            .iter()
            .filter(|id| **id != local_id)
            .map(|id| {
                let follower = Follower {
                    log_end_offset: -1,
                    last_caught_up_ms: if isr.contains(id) { now_ms } else { 0 },
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: log_end_offset,
                };
                (*id, follower)
            })
            .collect();
        let mut state = ReplicaState {
            local_id,
            leader_epoch,
            partition_epoch,
            isr: isr.iter().copied().chain([local_id]).collect(),
            proposed: None,
            followers,
            log_end_offset,
            epoch_start_offset: log_end_offset,
            high_watermark: high_watermark.min(log_end_offset),
            max_lag_ms,
        };
        let effects = state.advance_high_watermark().into_iter().collect();
        (state, effects)
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn isr(&self) -> Vec<i32> {
        self.isr.iter().copied().collect()
    }

    /// How many replicas the partition has, this leader included.
    pub fn replica_count(&self) -> usize {
        self.followers.len() + 1
    }

    /// Each follower's log end offset as its last fetch told (-1 before its
    /// first fetch under this leader).
    pub fn follower_log_ends(&self) -> Vec<(i32, i64)> {
        self.followers
            .iter()
            .map(|(id, f)| (*id, f.log_end_offset))
            .collect()
    }

    /// Whether `replica_id` is one of this partition's followers.
    pub fn has_follower(&self, replica_id: i32) -> bool {
        self.followers.contains_key(&replica_id)
    }

    /// The leader appended: its log now ends at `log_end_offset`.
    pub fn on_append(&mut self, log_end_offset: i64) -> Vec<Effect> {
        self.log_end_offset = self.log_end_offset.max(log_end_offset);
        self.advance_high_watermark().into_iter().collect()
    }

    /// Follower `replica_id` fetched from `fetch_offset` at `now_ms`.
    /// Fetches of brokers that are not replicas are ignored.
    pub fn on_follower_fetch(
        &mut self,
        replica_id: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Vec<Effect> {
        let leader_end = self.log_end_offset;
        let Some(follower) = self.followers.get_mut(&replica_id) else {
            return Vec::new();
        };
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = now_ms;
        } else if fetch_offset >= follower.leader_end_at_last_fetch {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.log_end_offset = fetch_offset.min(leader_end);
        follower.last_fetch_ms = now_ms;
        follower.leader_end_at_last_fetch = leader_end;
        let mut effects: Vec<Effect> = self.advance_high_watermark().into_iter().collect();
        effects.extend(self.maybe_expand(replica_id));
        effects
    }

    /// Time passed: followers in the ISR that have not caught up for longer
    /// than the allowed lag are proposed out.
    pub fn on_tick(&mut self, now_ms: i64) -> Vec<Effect> {
        if self.proposed.is_some() {
            return Vec::new();
        }
        let lagging: BTreeSet<i32> = self
            .isr
            .iter()
            .filter(|id| **id != self.local_id)
            .filter(|id| {
                self.followers
                    .get(id)
                    .is_some_and(|f| now_ms - f.last_caught_up_ms > self.max_lag_ms)
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return Vec::new();
        }
        let isr = self.isr.difference(&lagging).copied().collect();
        self.propose(isr).into_iter().collect()
    }

    /// The metadata's ISR and partition epoch for this partition (the answer
    /// to a proposal, or any other change) under the same leader epoch.
    pub fn on_metadata(&mut self, partition_epoch: i32, isr: &[i32]) -> Vec<Effect> {
        if partition_epoch <= self.partition_epoch && self.proposed.is_none() {
            return Vec::new();
        }
        self.partition_epoch = self.partition_epoch.max(partition_epoch);
        self.isr = isr.iter().copied().chain([self.local_id]).collect();
        self.proposed = None;
        self.advance_high_watermark().into_iter().collect()
    }

    /// A proposal the controller refused (its partition epoch was stale):
    /// the next event may propose again.
    pub fn on_proposal_refused(&mut self) {
        self.proposed = None;
    }

    fn maybe_expand(&mut self, replica_id: i32) -> Option<Effect> {
        if self.proposed.is_some() || self.isr.contains(&replica_id) {
            return None;
        }
        let follower = self.followers.get(&replica_id)?;
        let caught_up = follower.log_end_offset >= self.high_watermark
            && follower.log_end_offset >= self.epoch_start_offset;
        if !caught_up {
            return None;
        }
        let isr = self.isr.iter().copied().chain([replica_id]).collect();
        self.propose(isr)
    }

    fn propose(&mut self, isr: BTreeSet<i32>) -> Option<Effect> {
        let effect = Effect::AlterIsr {
            isr: isr.iter().copied().collect(),
            partition_epoch: self.partition_epoch,
        };
        self.proposed = Some(isr);
        Some(effect)
    }

    /// The smallest log end offset over the ISR and any proposed members.
    fn advance_high_watermark(&mut self) -> Option<Effect> {
        let members = self.isr.iter().chain(self.proposed.iter().flatten());
        let lowest = members
            .map(|id| match id {
                id if *id == self.local_id => self.log_end_offset,
                id => self.followers.get(id).map_or(-1, |f| f.log_end_offset),
            })
            .min()
            .unwrap_or(self.log_end_offset);
        (lowest > self.high_watermark).then(|| {
            self.high_watermark = lowest;
            Effect::HighWatermark(lowest)
        })
    }
}
