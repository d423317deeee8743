//! The group coordinator: the async shell around the pure [`Group`] state
//! machine, and the keeper of committed offsets.
//!
//! - Each group is one [`GroupEntry`] behind its own mutex, so a slow or
//!   dead member of one group never holds up another group, nor produce and
//!   fetch (which never take these locks). A lock is held only while an
//!   event is applied and its record written.
//! - A JoinGroup or SyncGroup the state machine parks waits on a oneshot
//!   channel, outside every lock; the event that completes the phase sends
//!   the answers ([`Outcome::deliveries`]).
//! - Each group with a pending deadline (session, rebalance, initial delay)
//!   has one timer task sleeping until its earliest deadline; it ticks the
//!   group and schedules the next one.
//! - Group metadata and committed offsets are written to `__consumer_offsets`
//!   ([`store`]) before the answers that depend on them are sent (the
//!   handlers wait for the write to be replicated, Kafka's
//!   `offsets.commit.timeout.ms`). The broker coordinates the groups of the
//!   partitions it leads: it loads a partition's groups when it becomes its
//!   leader ([`GroupCoordinator::load_partition`]) and forgets them when
//!   another broker does ([`GroupCoordinator::unload_partition`]); timers of
//!   loaded groups start once the broker serves
//!   ([`GroupCoordinator::start_timers`]). Offsets of empty groups expire
//!   after `offsets.retention.minutes` ([`offsets`]).
//!
//! Lock order: the map of groups before a group; a group before what writing
//! its records takes (the topic set and admin locks when `__consumer_offsets`
//! is created, a partition's log). Nothing holding one of those may take a
//! group's lock: `Broker::delete_topic` lets go of its admin lock before it
//! deletes the topic's offsets.
//!
//! Group timers run on a monotonic clock (milliseconds since the coordinator
//! was created); the timestamps written to the log are wall-clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::group::{encode_group_value, encode_key, OffsetValue, OffsetsKey, RecordError};
use crate::group::{
    Delivery, Group, GroupConfig, GroupState, JoinRequest, JoinResponse, LeaveMember,
    LeaveResponse, Outcome, Reply, SyncRequest, SyncResponse,
};

pub mod offsets;
pub mod store;
#[cfg(test)]
mod tests;

pub use store::{OffsetsLog, OFFSETS_TOPIC};

/// One group: its membership state machine, its committed offsets and the
/// requests waiting for it.
pub struct GroupEntry {
    pub group: Group,
    /// The last committed offset per (topic, partition).
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
    /// Wall-clock time the group entered its current state (Kafka's
    /// `currentStateTimestamp`), -1 when unknown (loaded without metadata).
    pub state_timestamp_ms: i64,
    joins: HashMap<String, oneshot::Sender<JoinResponse>>,
    syncs: HashMap<String, oneshot::Sender<SyncResponse>>,
    /// The deadline a timer task is sleeping until, if any.
    timer_at: Option<i64>,
}

impl GroupEntry {
    fn new(group: Group) -> Self {
        GroupEntry {
            group,
            offsets: BTreeMap::new(),
            state_timestamp_ms: now_ms(),
            joins: HashMap::new(),
            syncs: HashMap::new(),
            timer_at: None,
        }
    }
}

type SharedEntry = Arc<Mutex<GroupEntry>>;

/// All groups of this broker (on a single broker it coordinates every group).
pub struct GroupCoordinator {
    config: GroupConfig,
    offsets_retention_ms: i64,
    offset_metadata_max_bytes: usize,
    origin: Instant,
    groups: Mutex<HashMap<String, SharedEntry>>,
    /// The `__consumer_offsets` partitions this broker leads and has loaded
    /// the groups of (taken after `groups` when both are).
    loaded: Mutex<BTreeSet<i32>>,
    /// Whether the broker serves: timers of loaded groups start at once.
    serving: std::sync::atomic::AtomicBool,
    /// Where group records go: the broker's `__consumer_offsets`.
    log: Arc<dyn OffsetsLog>,
    /// This coordinator, for the timer tasks it spawns.
    this: Weak<GroupCoordinator>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupCoordinator {
    /// A coordinator writing its groups to `log`.
    pub fn new(config: &BrokerConfig, log: Arc<dyn OffsetsLog>) -> Arc<Self> {
        Arc::new_cyclic(|this| GroupCoordinator {
            config: GroupConfig {
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms(),
                min_session_timeout_ms: config.group_min_session_timeout_ms(),
                max_session_timeout_ms: config.group_max_session_timeout_ms(),
                max_size: config.group_max_size(),
                ..GroupConfig::default()
            },
            offsets_retention_ms: config.offsets_retention_ms(),
            offset_metadata_max_bytes: config.offset_metadata_max_bytes(),
            origin: Instant::now(),
            groups: Mutex::new(HashMap::new()),
            loaded: Mutex::new(BTreeSet::new()),
            serving: std::sync::atomic::AtomicBool::new(false),
            log,
            this: this.clone(),
        })
    }

    /// Takes over the groups of `__consumer_offsets` partition `index`,
    /// which this broker now leads: reads them back from `partition` (the
    /// local replica) and starts their timers once the broker serves. Groups
    /// already here (a write under way created the topic) are kept as they
    /// are. Until this is done their requests get
    /// COORDINATOR_LOAD_IN_PROGRESS.
    pub fn load_partition(
        &self,
        index: i32,
        partition: &crate::partition::Partition,
    ) -> Result<(), crate::error::BrokerError> {
        let loaded = store::load(partition)?;
        let now = self.now();
        let mut fresh = Vec::new();
        {
            let mut groups = lock(&self.groups);
            for (group_id, loaded) in loaded {
                if groups.contains_key(&group_id) {
                    continue;
                }
                let (group, state_timestamp_ms) = match &loaded.metadata {
                    Some(value) => (
                        Group::from_value(group_id.clone(), self.config.clone(), now, value),
                        value.current_state_timestamp_ms,
                    ),
                    None => (Group::new(group_id.clone(), self.config.clone()), -1),
                };
                let mut entry = GroupEntry::new(group);
                entry.offsets = loaded.offsets;
                entry.state_timestamp_ms = state_timestamp_ms;
                let entry = Arc::new(Mutex::new(entry));
                groups.insert(group_id.clone(), entry.clone());
                fresh.push((group_id, entry));
            }
            lock(&self.loaded).insert(index);
        }
        tracing::info!(
            partition = index,
            groups = fresh.len(),
            "loaded consumer groups of {OFFSETS_TOPIC}"
        );
        if self.serving.load(std::sync::atomic::Ordering::SeqCst) {
            for (group_id, entry) in fresh {
                self.schedule_timer(&group_id, &mut lock(&entry));
            }
        }
        Ok(())
    }

    /// Gives up the groups of `__consumer_offsets` partition `index` (of
    /// `partitions`), which another broker leads now: they are forgotten
    /// here, and their parked requests answered NOT_COORDINATOR so that the
    /// clients find the new coordinator.
    pub fn unload_partition(&self, index: i32, partitions: i32) {
        let gone: Vec<SharedEntry> = {
            let mut groups = lock(&self.groups);
            lock(&self.loaded).remove(&index);
            let ids: Vec<String> = groups
                .keys()
                .filter(|id| crate::group::partition_for(id, partitions) == index)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| groups.remove(id)).collect()
        };
        tracing::info!(
            partition = index,
            groups = gone.len(),
            "unloaded consumer groups of {OFFSETS_TOPIC}: another broker leads it"
        );
        // Not here: the caller may be acting on metadata that a write holding
        // one of these groups' locks is waiting for.
        if !gone.is_empty() {
            std::thread::spawn(move || {
                for entry in gone {
                    let mut guard = lock(&entry);
                    let outcome = guard.group.unload(ResponseError::NotCoordinator);
                    deliver(&mut guard, outcome.deliveries);
                }
            });
        }
    }

    /// The `__consumer_offsets` partitions whose groups are loaded here.
    pub fn loaded_partitions(&self) -> BTreeSet<i32> {
        lock(&self.loaded).clone()
    }

    /// Whether the groups of `__consumer_offsets` partition `index` are
    /// loaded here.
    pub fn is_loaded(&self, index: i32) -> bool {
        lock(&self.loaded).contains(&index)
    }

    /// Starts the timers of the groups loaded at open, whose members' sessions
    /// run from the load: members that do not come back are expired as they
    /// would have been without the restart. Called once the broker serves (a
    /// timer needs the async runtime).
    pub fn start_timers(&self) {
        self.serving
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let entries = self.entries();
        for (group_id, entry) in entries {
            self.schedule_timer(&group_id, &mut lock(&entry));
        }
    }

    /// Milliseconds on the coordinator's monotonic clock.
    fn now(&self) -> i64 {
        self.origin.elapsed().as_millis() as i64
    }

    /// Every group with its id, taken from the map at once so that the
    /// caller can lock them one at a time without holding the map.
    fn entries(&self) -> Vec<(String, SharedEntry)> {
        lock(&self.groups)
            .iter()
            .map(|(id, entry)| (id.clone(), entry.clone()))
            .collect()
    }

    fn entry(&self, group_id: &str) -> Option<SharedEntry> {
        lock(&self.groups).get(group_id).cloned()
    }

    fn entry_or_create(&self, group_id: &str) -> SharedEntry {
        lock(&self.groups)
            .entry(group_id.to_string())
            .or_insert_with(|| {
                let group = Group::new(group_id, self.config.clone());
                Arc::new(Mutex::new(GroupEntry::new(group)))
            })
            .clone()
    }

    /// Forgets a group that is Dead (deleted, or expired), unless a new
    /// entry has taken its place meanwhile.
    fn forget_if_dead(&self, group_id: &str, entry: &SharedEntry) {
        let mut groups = lock(&self.groups);
        if groups.get(group_id).is_some_and(|e| Arc::ptr_eq(e, entry))
            && lock(entry).group.state() == GroupState::Dead
        {
            groups.remove(group_id);
        }
    }

    /// The ids of every group.
    pub fn group_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.groups).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Runs `read` on a group, if it exists.
    pub fn with_group<R>(&self, group_id: &str, read: impl FnOnce(&GroupEntry) -> R) -> Option<R> {
        let entry = self.entry(group_id)?;
        let entry = lock(&entry);
        (entry.group.state() != GroupState::Dead).then(|| read(&entry))
    }

    /// A JoinGroup. Waits (outside every lock) when the group parks it.
    pub async fn join(&self, group_id: &str, request: JoinRequest) -> JoinResponse {
        let member_id = request.member_id.clone();
        let entry = if member_id.is_empty() {
            self.entry_or_create(group_id)
        } else {
            match self.entry(group_id) {
                Some(entry) => entry,
                None => return JoinResponse::error(ResponseError::UnknownMemberId, member_id),
            }
        };
        let waiting = {
            let mut guard = lock(&entry);
            let before = guard.group.state();
            let outcome = guard.group.join(self.now(), request);
            match self.settle(group_id, &mut guard, before, outcome) {
                Reply::Now(response) => {
                    log_join(group_id, &response, "answered", None);
                    return response;
                }
                Reply::Parked { member_id } => {
                    let generation = guard.group.generation_id();
                    tracing::debug!(group = group_id, member = %member_id, generation, "JoinGroup parked");
                    let (sender, receiver) = oneshot::channel();
                    if guard.joins.insert(member_id.clone(), sender).is_some() {
                        tracing::debug!(group = group_id, member = %member_id, "an earlier parked JoinGroup of this member is dropped");
                    }
                    (receiver, member_id)
                }
            }
        };
        let (receiver, member_id) = waiting;
        let parked_at = Instant::now();
        // The sender goes away when a newer JoinGroup of the same member
        // replaced this one: the member is told to find the coordinator and
        // try again.
        let response = receiver.await.unwrap_or_else(|_| {
            JoinResponse::error(ResponseError::CoordinatorNotAvailable, member_id)
        });
        log_join(
            group_id,
            &response,
            "answered after parking",
            Some(parked_at),
        );
        response
    }

    /// A SyncGroup. A follower's waits for the leader's.
    pub async fn sync(&self, group_id: &str, request: SyncRequest) -> SyncResponse {
        let Some(entry) = self.entry(group_id) else {
            return SyncResponse::error(ResponseError::UnknownMemberId);
        };
        let member_id = request.member_id.clone();
        let generation = request.generation_id;
        let receiver = {
            let mut guard = lock(&entry);
            let before = guard.group.state();
            let outcome = guard.group.sync(self.now(), request);
            match self.settle(group_id, &mut guard, before, outcome) {
                Reply::Now(response) => {
                    log_sync(group_id, &member_id, generation, &response, None);
                    return response;
                }
                Reply::Parked { member_id } => {
                    tracing::debug!(group = group_id, member = %member_id, generation, "SyncGroup parked");
                    let (sender, receiver) = oneshot::channel();
                    if guard.syncs.insert(member_id, sender).is_some() {
                        tracing::debug!(
                            group = group_id,
                            "an earlier parked SyncGroup of this member is dropped"
                        );
                    }
                    receiver
                }
            }
        };
        let parked_at = Instant::now();
        let response = receiver
            .await
            .unwrap_or_else(|_| SyncResponse::error(ResponseError::CoordinatorNotAvailable));
        log_sync(group_id, &member_id, generation, &response, Some(parked_at));
        response
    }

    /// A Heartbeat: None when all is well.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        let Some(entry) = self.entry(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        let mut guard = lock(&entry);
        let before = guard.group.state();
        let outcome =
            guard
                .group
                .heartbeat(self.now(), member_id, group_instance_id, generation_id);
        let error = self.settle(group_id, &mut guard, before, outcome);
        tracing::debug!(
            group = group_id,
            member = member_id,
            generation = generation_id,
            error = error_label(error),
            "Heartbeat answered"
        );
        error
    }

    /// A LeaveGroup for one or more members.
    pub fn leave(&self, group_id: &str, members: Vec<LeaveMember>) -> LeaveResponse {
        let Some(entry) = self.entry(group_id) else {
            return LeaveResponse {
                error: Some(ResponseError::UnknownMemberId),
                members: Vec::new(),
            };
        };
        let mut guard = lock(&entry);
        let before = guard.group.state();
        let outcome = guard.group.leave(self.now(), members);
        let response = self.settle(group_id, &mut guard, before, outcome);
        for (member, error) in &response.members {
            tracing::debug!(
                group = group_id,
                member = %member.member_id,
                error = error_label(*error),
                "LeaveGroup answered"
            );
        }
        response
    }

    /// DeleteGroups for one group: only an Empty group can go. Its offsets
    /// and metadata are deleted from `__consumer_offsets` (tombstones).
    pub fn delete(&self, group_id: &str) -> Result<(), ResponseError> {
        let entry = self.entry(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let result = {
            let mut guard = lock(&entry);
            let before = guard.group.state();
            let outcome = guard.group.delete();
            self.settle(group_id, &mut guard, before, outcome)
        };
        self.forget_if_dead(group_id, &entry);
        result
    }

    /// Answers every parked request with NOT_COORDINATOR, so that clients
    /// look for the coordinator again; for a broker that is shutting down.
    pub fn shutdown(&self) {
        let entries: Vec<SharedEntry> = lock(&self.groups).values().cloned().collect();
        for entry in entries {
            let mut guard = lock(&entry);
            let outcome = guard.group.unload(ResponseError::NotCoordinator);
            deliver(&mut guard, outcome.deliveries);
        }
    }

    /// Applies what an event produced: records the state change time,
    /// writes the group's record if the event changed what is stored, sends
    /// the answers owed to parked requests and makes sure a timer will wake
    /// the group at its next deadline.
    fn settle<T>(
        &self,
        group_id: &str,
        entry: &mut GroupEntry,
        before: GroupState,
        outcome: Outcome<T>,
    ) -> T {
        if entry.group.state() != before {
            entry.state_timestamp_ms = now_ms();
            // Kafka logs these transitions at INFO too: rare, and what an
            // operator needs to follow a rebalance.
            tracing::info!(
                group = group_id,
                from = before.as_str(),
                to = entry.group.state().as_str(),
                generation = entry.group.generation_id(),
                members = entry.group.members().count(),
                "group state changed"
            );
        }
        if outcome.persist {
            self.store_group(group_id, entry);
        }
        deliver(entry, outcome.deliveries);
        self.schedule_timer(group_id, entry);
        outcome.reply
    }

    /// Writes the group's metadata record; for a deleted (Dead) group,
    /// tombstones for it and for each of its offsets.
    fn store_group(&self, group_id: &str, entry: &mut GroupEntry) {
        let records = match group_records(group_id, entry) {
            Ok(records) => records,
            // A string a record cannot hold (flexible requests allow longer
            // ones): nothing is written, as if the write failed.
            Err(error) => {
                tracing::error!(group = group_id, %error, "could not store group metadata");
                return;
            }
        };
        // Kafka sends the members an error and rebalances again when this
        // write fails; Strata logs it and goes on (the in-memory state stays
        // right, a restart would reload the previous generation).
        if let Err(error) = store::append(self.log.as_ref(), group_id, records) {
            tracing::error!(group = group_id, %error, "could not store group metadata");
        }
    }

    /// Makes sure a timer task will tick the group at its next deadline. A
    /// timer already due at or before it is enough: when it fires it
    /// schedules the next one.
    fn schedule_timer(&self, group_id: &str, entry: &mut GroupEntry) {
        let Some(deadline) = entry.group.next_deadline() else {
            return;
        };
        if entry.timer_at.is_some_and(|at| at <= deadline) {
            return;
        }
        entry.timer_at = Some(deadline);
        let wake = self.origin + Duration::from_millis(deadline.max(0) as u64);
        let this = self.this.clone();
        let group_id = group_id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep_until(wake).await;
            if let Some(coordinator) = this.upgrade() {
                coordinator.on_timer(&group_id, deadline);
            }
        });
    }

    fn on_timer(&self, group_id: &str, deadline: i64) {
        let Some(entry) = self.entry(group_id) else {
            return;
        };
        let mut guard = lock(&entry);
        if guard.timer_at == Some(deadline) {
            guard.timer_at = None;
        }
        let before = guard.group.state();
        let outcome = guard.group.tick(self.now());
        self.settle(group_id, &mut guard, before, outcome);
    }
}

/// The records that store a group: its metadata, or for a deleted (Dead)
/// group tombstones for it and each of its offsets.
fn group_records(
    group_id: &str,
    entry: &mut GroupEntry,
) -> Result<Vec<(Bytes, Option<Bytes>)>, RecordError> {
    let group_key = encode_key(&OffsetsKey::Group {
        group: group_id.to_string(),
    })?;
    if entry.group.state() != GroupState::Dead {
        let value = entry.group.to_value(entry.state_timestamp_ms);
        return Ok(vec![(group_key, Some(encode_group_value(&value)?))]);
    }
    let offsets = std::mem::take(&mut entry.offsets);
    offsets
        .into_keys()
        .map(|(topic, partition)| {
            let key = OffsetsKey::Offset {
                group: group_id.to_string(),
                topic,
                partition,
            };
            Ok((encode_key(&key)?, None))
        })
        .chain(std::iter::once(Ok((group_key, None))))
        .collect()
}

/// What `/metrics` shows of the groups: state, member count and committed
/// offsets of each (the metrics layer computes the lag).
impl crate::metrics::GroupMetricsSource for GroupCoordinator {
    fn groups(&self) -> Vec<crate::metrics::GroupSnapshot> {
        let entries: Vec<SharedEntry> = lock(&self.groups).values().cloned().collect();
        entries
            .iter()
            .filter_map(|entry| {
                let entry = lock(entry);
                (entry.group.state() != GroupState::Dead).then(|| crate::metrics::GroupSnapshot {
                    group_id: entry.group.group_id().to_string(),
                    state: entry.group.state().as_str().to_string(),
                    members: entry.group.members().count(),
                    committed_offsets: entry
                        .offsets
                        .iter()
                        .map(
                            |((topic, partition), value)| crate::metrics::CommittedOffset {
                                topic: topic.clone(),
                                partition: *partition,
                                offset: value.offset,
                            },
                        )
                        .collect(),
                })
            })
            .collect()
    }
}

/// Sends answers to parked requests. A request whose client went away has
/// no receiver any more; its answer is dropped. An answer with no parked
/// request to take it means the state machine and the parked requests
/// disagree (a request answered twice, or never parked): logged, as that
/// is how a member ends up waiting forever.
fn deliver(entry: &mut GroupEntry, deliveries: Vec<Delivery>) {
    let group_id = entry.group.group_id().to_string();
    for delivery in deliveries {
        let (kind, member_id, sent) = match delivery {
            Delivery::Join {
                member_id,
                response,
            } => {
                let sent = entry
                    .joins
                    .remove(&member_id)
                    .map(|s| s.send(response).is_ok());
                ("JoinGroup", member_id, sent)
            }
            Delivery::Sync {
                member_id,
                response,
            } => {
                let sent = entry
                    .syncs
                    .remove(&member_id)
                    .map(|s| s.send(response).is_ok());
                ("SyncGroup", member_id, sent)
            }
        };
        match sent {
            Some(true) => {}
            Some(false) => {
                tracing::debug!(group = %group_id, member = %member_id, "{kind} answer dropped: the client is gone");
            }
            None => {
                tracing::warn!(group = %group_id, member = %member_id, "{kind} answer with no parked request to take it");
            }
        }
    }
}

/// An error code's name for the logs ("NONE" for success).
fn error_label(error: Option<ResponseError>) -> String {
    error
        .and_then(strata_protocol::error_name)
        .unwrap_or_else(|| "NONE".to_string())
}

fn log_join(group_id: &str, response: &JoinResponse, how: &str, parked_at: Option<Instant>) {
    tracing::debug!(
        group = group_id,
        member = %response.member_id,
        generation = response.generation_id,
        leader = response.leader == response.member_id,
        error = error_label(response.error),
        waited_ms = parked_at.map(|at| at.elapsed().as_millis() as u64),
        "JoinGroup {how}"
    );
}

fn log_sync(
    group_id: &str,
    member_id: &str,
    generation: i32,
    response: &SyncResponse,
    parked_at: Option<Instant>,
) {
    tracing::debug!(
        group = group_id,
        member = member_id,
        generation,
        error = error_label(response.error),
        waited_ms = parked_at.map(|at| at.elapsed().as_millis() as u64),
        "SyncGroup {}",
        if parked_at.is_some() {
            "answered after parking"
        } else {
            "answered"
        }
    );
}
