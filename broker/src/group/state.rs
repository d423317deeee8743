//! [`Group`]: one group id's members, generation and rebalance timers, and the
//! events that move it between Kafka's classic states.
//!
//! The rules follow the Kafka protocol guide's description of the group
//! membership protocol and the classic coordinator's documented behaviour:
//! a rebalance starts when membership or a member's protocols change; it
//! completes (a new generation) when every member has rejoined or the
//! rebalance timeout passes, dropping dynamic members that did not rejoin;
//! the leader then sends everyone's assignment in its SyncGroup.

use std::collections::HashMap;

use bytes::Bytes;
use indexmap::{IndexMap, IndexSet};
use kafka_protocol::error::ResponseError;

mod join;
mod stored;

use super::types::{
    Delivery, GroupConfig, GroupState, JoinRequest, JoinResponse, LeaveMember, LeaveResponse,
    Member, Outcome, Reply, SyncRequest, SyncResponse,
};

/// Every public event first catches the timers up to `now_ms`, then applies
/// itself, then fires timers that became due at `now_ms` (a zero initial
/// delay). Cascades are short; this bound only guards against a bug looping.
const MAX_TIMER_FIRINGS: usize = 10_000;

/// The timer of the PreparingRebalance phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinTimer {
    /// The first rebalance of an Empty group (KIP-134): waits the whole delay
    /// even when everyone has joined; extends by another delay, up to `cap_ms`,
    /// while new members keep arriving in a brand-new group.
    InitialDelay { deadline_ms: i64, cap_ms: i64 },
    /// An ordinary rebalance: completes as soon as all members have rejoined,
    /// or at the rebalance timeout.
    RebalanceTimeout { deadline_ms: i64 },
}

impl JoinTimer {
    fn deadline_ms(self) -> i64 {
        match self {
            JoinTimer::InitialDelay { deadline_ms, .. }
            | JoinTimer::RebalanceTimeout { deadline_ms } => deadline_ms,
        }
    }
}

/// The state of one consumer group (or any group using the classic protocol,
/// e.g. Kafka Connect workers: the protocol type is opaque here).
///
/// Every event method first fires the timers due at its `now_ms` (so a caller
/// late with [`tick`](Group::tick) sees what a punctual one would: a heartbeat
/// exactly at its session deadline is too late), then applies the event.
#[derive(Debug, Clone)]
pub struct Group {
    group_id: String,
    config: GroupConfig,
    state: GroupState,
    generation_id: i32,
    /// Set by the first member; kept while Empty so the group keeps its kind.
    protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    protocol_name: Option<String>,
    leader_id: Option<String>,
    /// In join order: the first member leads a fresh group and breaks ties in
    /// protocol selection.
    members: IndexMap<String, Member>,
    /// `group.instance.id` → member id of the static members.
    static_members: HashMap<String, String>,
    /// KIP-394: ids handed out with MEMBER_ID_REQUIRED, with the deadline by
    /// which the member must rejoin with it. A rebalance waits for them.
    pending_members: IndexMap<String, i64>,
    join_timer: Option<JoinTimer>,
    /// A member joined a brand-new group during its initial delay.
    new_member_added: bool,
    /// Members that got the new generation but have not sent SyncGroup yet;
    /// those still missing at `sync_deadline_ms` are dropped.
    pending_sync: IndexSet<String>,
    sync_deadline_ms: Option<i64>,
    /// Answers owed to parked requests, drained by every public method.
    deliveries: Vec<Delivery>,
    /// Drained with `deliveries`; see [`Outcome::persist`].
    persist: bool,
}

impl Group {
    /// A new, Empty group at generation 0.
    pub fn new(group_id: impl Into<String>, config: GroupConfig) -> Self {
        Group {
            group_id: group_id.into(),
            config,
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: IndexMap::new(),
            join_timer: None,
            new_member_added: false,
            pending_sync: IndexSet::new(),
            sync_deadline_ms: None,
            deliveries: Vec::new(),
            persist: false,
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    /// The protocol chosen for the current generation (None while Empty).
    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    /// The members in join order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used.
    pub fn pending_member_ids(&self) -> impl Iterator<Item = &str> {
        self.pending_members.keys().map(String::as_str)
    }

    /// When [`tick`](Self::tick) next has work: a session, rebalance, sync or
    /// initial-delay timer. None when nothing is scheduled.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self.members.values().filter_map(Self::member_deadline);
        let pending = self.pending_members.values().copied();
        let join = match self.state {
            GroupState::PreparingRebalance => self.join_timer.map(JoinTimer::deadline_ms),
            _ => None,
        };
        let sync = self
            .sync_deadline_ms
            .filter(|_| !self.pending_sync.is_empty());
        members.chain(pending).chain(join).chain(sync).min()
    }

    /// Lets time pass: expires sessions, pending member ids, the join phase and
    /// the sync phase that are due at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Outcome<()> {
        self.fire_timers(now_ms);
        self.finish(())
    }

    /// A JoinGroup request. A first join of a dynamic member with
    /// `require_known_member_id` gets MEMBER_ID_REQUIRED and an id at once;
    /// otherwise the member usually waits for the join phase to complete.
    pub fn join(&mut self, now_ms: i64, request: JoinRequest) -> Outcome<Reply<JoinResponse>> {
        self.fire_timers(now_ms);
        let reply = match self.join_inner(now_ms, &request) {
            Reply::Now(response) => Reply::Now(response),
            Reply::Parked { member_id } => {
                self.fire_timers(now_ms);
                self.take_join_reply(member_id)
            }
        };
        self.finish(reply)
    }

    /// A SyncGroup request. The leader's completes the rebalance and answers
    /// every waiting member; a follower's waits for the leader's, or is
    /// answered at once when the group is already Stable.
    pub fn sync(&mut self, now_ms: i64, request: SyncRequest) -> Outcome<Reply<SyncResponse>> {
        self.fire_timers(now_ms);
        let reply = match self.sync_inner(now_ms, request) {
            Reply::Now(response) => Reply::Now(response),
            Reply::Parked { member_id } => self.take_sync_reply(member_id),
        };
        self.finish(reply)
    }

    /// A Heartbeat request: keeps the member's session alive, and tells it
    /// (REBALANCE_IN_PROGRESS) when it must rejoin.
    pub fn heartbeat(
        &mut self,
        now_ms: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Outcome<Option<ResponseError>> {
        self.fire_timers(now_ms);
        let reply = self.heartbeat_inner(now_ms, member_id, group_instance_id, generation_id);
        self.finish(reply)
    }

    /// A LeaveGroup request for one or more members (KIP-345 batch form).
    pub fn leave(&mut self, now_ms: i64, leaving: Vec<LeaveMember>) -> Outcome<LeaveResponse> {
        self.fire_timers(now_ms);
        let reply = if self.state == GroupState::Dead {
            LeaveResponse {
                error: Some(ResponseError::CoordinatorNotAvailable),
                members: Vec::new(),
            }
        } else {
            let members = leaving
                .into_iter()
                .map(|member| {
                    let error = self.leave_one(now_ms, &member);
                    (member, error)
                })
                .collect();
            LeaveResponse {
                error: None,
                members,
            }
        };
        self.finish(reply)
    }

    /// DeleteGroups: only an Empty group can be deleted; it becomes Dead.
    pub fn delete(&mut self) -> Outcome<Result<(), ResponseError>> {
        let reply = match self.state {
            GroupState::Empty => {
                self.state = GroupState::Dead;
                self.persist = true;
                Ok(())
            }
            GroupState::Dead => Err(ResponseError::GroupIdNotFound),
            _ => Err(ResponseError::NonEmptyGroup),
        };
        self.finish(reply)
    }

    /// This broker stops being the group's coordinator: the group becomes
    /// Dead and every parked request is answered with `error` (NOT_COORDINATOR)
    /// so that clients look for the new coordinator.
    pub fn unload(&mut self, error: ResponseError) -> Outcome<()> {
        for member in self.members.values_mut() {
            if std::mem::take(&mut member.awaiting_join) {
                self.deliveries.push(Delivery::Join {
                    member_id: member.member_id.clone(),
                    response: JoinResponse::error(error, member.member_id.clone()),
                });
            }
            if std::mem::take(&mut member.awaiting_sync) {
                self.deliveries.push(Delivery::Sync {
                    member_id: member.member_id.clone(),
                    response: SyncResponse::error(error),
                });
            }
        }
        self.state = GroupState::Dead;
        self.join_timer = None;
        self.sync_deadline_ms = None;
        self.finish(())
    }

    // ----- Rebalance phases -----

    /// Starts a rebalance if one is not already under way, then completes the
    /// join phase if nothing is left to wait for.
    fn rebalance(&mut self, now_ms: i64) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.prepare_rebalance(now_ms);
        }
        self.try_complete_join(now_ms);
    }

    fn prepare_rebalance(&mut self, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being completed is void: members waiting for it
            // must rejoin.
            for member in self.members.values_mut() {
                member.assignment = Bytes::new();
                if std::mem::take(&mut member.awaiting_sync) {
                    self.deliveries.push(Delivery::Sync {
                        member_id: member.member_id.clone(),
                        response: SyncResponse::error(ResponseError::RebalanceInProgress),
                    });
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout = self.rebalance_timeout_ms();
        self.join_timer = Some(if self.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay_ms.max(0);
            self.new_member_added = false;
            JoinTimer::InitialDelay {
                deadline_ms: now_ms + delay,
                cap_ms: now_ms + rebalance_timeout.max(delay),
            }
        } else {
            JoinTimer::RebalanceTimeout {
                deadline_ms: now_ms + rebalance_timeout,
            }
        });
        self.state = GroupState::PreparingRebalance;
    }

    /// The longest rebalance timeout among the members: how long the join
    /// phase waits for all of them.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    /// Completes the join phase early when every member has rejoined and no
    /// KIP-394 member is still on its way. The initial delay never completes
    /// early: waiting for more members is its point.
    fn try_complete_join(&mut self, now_ms: i64) {
        let all_joined =
            self.members.values().all(|m| m.awaiting_join) && self.pending_members.is_empty();
        if self.state == GroupState::PreparingRebalance
            && matches!(self.join_timer, Some(JoinTimer::RebalanceTimeout { .. }))
            && all_joined
        {
            self.complete_join(now_ms);
        }
    }

    /// The join phase ends: drop dynamic members that did not rejoin, choose
    /// the protocol and start the next generation, and answer every parked
    /// JoinGroup (the leader's with the member list).
    fn complete_join(&mut self, now_ms: i64) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            self.remove_member(&member_id);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait
            // another rebalance timeout for them (or for their sessions to end).
            self.join_timer = Some(JoinTimer::RebalanceTimeout {
                deadline_ms: now_ms + self.rebalance_timeout_ms().max(1),
            });
            return;
        }
        self.generation_id += 1;
        self.join_timer = None;
        self.new_member_added = false;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.state = GroupState::Empty;
            self.sync_deadline_ms = None;
            self.persist = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        let leader = self.leader_id.clone().unwrap_or_default();
        let member_ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in member_ids {
            let response = self.join_success(&member_id, member_id == leader);
            if let Some(member) = self.members.get_mut(&member_id) {
                if std::mem::take(&mut member.awaiting_join) {
                    self.deliveries.push(Delivery::Join {
                        member_id: member_id.clone(),
                        response,
                    });
                }
                member.is_new = false;
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            }
            self.pending_sync.insert(member_id);
        }
        self.sync_deadline_ms = Some(now_ms + self.rebalance_timeout_ms());
    }

    /// Keeps the leader if it rejoined, else hands leadership to any member
    /// that did. False when no member has rejoined.
    fn elect_joined_leader(&mut self) -> bool {
        let leader_joined = self
            .leader_id
            .as_ref()
            .and_then(|id| self.members.get(id))
            .is_some_and(|m| m.awaiting_join);
        if leader_joined {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join) {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    // ----- SyncGroup -----

    fn sync_inner(&mut self, now_ms: i64, request: SyncRequest) -> Reply<SyncResponse> {
        let error = |error| Reply::Now(SyncResponse::error(error));
        if self.state == GroupState::Dead {
            return error(ResponseError::CoordinatorNotAvailable);
        }
        let member_id = request.member_id.as_str();
        if let Some(e) = self.validate_member(member_id, request.group_instance_id.as_deref()) {
            return error(e);
        }
        if request.generation_id != self.generation_id {
            return error(ResponseError::IllegalGeneration);
        }
        let type_differs = request
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_ref());
        let name_differs = request
            .protocol_name
            .as_ref()
            .is_some_and(|n| Some(n) != self.protocol_name.as_ref());
        if type_differs || name_differs {
            return error(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => error(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => error(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                self.synced(now_ms, member_id);
                if let Some(member) = self.members.get_mut(member_id) {
                    member.awaiting_sync = true;
                }
                if self.leader_id.as_deref() == Some(member_id) {
                    self.complete_sync(request.assignments);
                }
                Reply::Parked {
                    member_id: request.member_id,
                }
            }
            GroupState::Stable => {
                self.synced(now_ms, member_id);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Reply::Now(self.sync_success(assignment))
            }
        }
    }

    /// The member has sent its SyncGroup for this generation.
    fn synced(&mut self, now_ms: i64, member_id: &str) {
        self.pending_sync.shift_remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
    }

    /// The leader's assignment arrived: store it (members it forgot get an
    /// empty one; ids not in the group are ignored), become Stable, answer the
    /// parked SyncGroups.
    fn complete_sync(&mut self, assignments: Vec<(String, Bytes)>) {
        let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
        let mut parked = Vec::new();
        for member in self.members.values_mut() {
            member.assignment = assignments.remove(&member.member_id).unwrap_or_default();
            if std::mem::take(&mut member.awaiting_sync) {
                parked.push((member.member_id.clone(), member.assignment.clone()));
            }
        }
        for (member_id, assignment) in parked {
            let response = self.sync_success(assignment);
            self.deliveries.push(Delivery::Sync {
                member_id,
                response,
            });
        }
        self.state = GroupState::Stable;
        self.persist = true;
    }

    fn sync_success(&self, assignment: Bytes) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    // ----- Heartbeat and LeaveGroup -----

    fn heartbeat_inner(
        &mut self,
        now_ms: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Option<ResponseError> {
        if self.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(error) = self.validate_member(member_id, group_instance_id) {
            return Some(error);
        }
        if generation_id != self.generation_id {
            return Some(ResponseError::IllegalGeneration);
        }
        if self.state == GroupState::Empty {
            return Some(ResponseError::UnknownMemberId);
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
        match self.state {
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            // CompletingRebalance too: clients heartbeat between their
            // JoinGroup answer and their SyncGroup.
            _ => None,
        }
    }

    fn leave_one(&mut self, now_ms: i64, leaving: &LeaveMember) -> Option<ResponseError> {
        if leaving.member_id.is_empty() {
            // Removal by instance id alone (AdminClient removeMembersFromConsumerGroup).
            let current = leaving
                .group_instance_id
                .as_ref()
                .and_then(|id| self.static_members.get(id).cloned());
            return match current {
                Some(member_id) => {
                    self.remove_member_and_update(now_ms, &member_id);
                    None
                }
                None => Some(ResponseError::UnknownMemberId),
            };
        }
        if self
            .pending_members
            .shift_remove(&leaving.member_id)
            .is_some()
        {
            self.try_complete_join(now_ms);
            return None;
        }
        if let Some(error) =
            self.validate_member(&leaving.member_id, leaving.group_instance_id.as_deref())
        {
            return Some(error);
        }
        self.remove_member_and_update(now_ms, &leaving.member_id);
        None
    }

    /// A member is gone (left, expired, fenced by the sync timeout): the rest
    /// must rebalance, or the rebalance under way may now be complete.
    fn remove_member_and_update(&mut self, now_ms: i64, member_id: &str) {
        self.remove_member(member_id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.rebalance(now_ms),
            GroupState::PreparingRebalance => self.try_complete_join(now_ms),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID
    /// and passing leadership on to the earliest remaining member.
    fn remove_member(&mut self, member_id: &str) {
        let Some(member) = self.members.shift_remove(member_id) else {
            return;
        };
        if member.awaiting_join {
            self.deliveries.push(Delivery::Join {
                member_id: member.member_id.clone(),
                response: JoinResponse::error(ResponseError::UnknownMemberId, member_id),
            });
        }
        if member.awaiting_sync {
            self.deliveries.push(Delivery::Sync {
                member_id: member.member_id.clone(),
                response: SyncResponse::error(ResponseError::UnknownMemberId),
            });
        }
        if let Some(instance_id) = &member.group_instance_id {
            if self.static_members.get(instance_id).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance_id);
            }
        }
        self.pending_sync.shift_remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    // ----- Timers -----

    /// When this member's timer matters: a parked join keeps a known member
    /// alive (the rebalance timeout governs it) but not a new one forever; a
    /// parked sync keeps it alive (the sync timeout governs it).
    fn member_deadline(member: &Member) -> Option<i64> {
        if member.awaiting_join {
            member.is_new.then_some(member.new_member_deadline_ms)
        } else if member.awaiting_sync {
            None
        } else {
            Some(member.session_deadline_ms)
        }
    }

    /// Fires every timer due at `now_ms`, earliest first.
    fn fire_timers(&mut self, now_ms: i64) {
        for _ in 0..MAX_TIMER_FIRINGS {
            match self.next_deadline() {
                Some(deadline) if deadline <= now_ms => self.fire_one(now_ms),
                _ => return,
            }
        }
        tracing::error!(group = %self.group_id, "group timers did not settle");
    }

    fn fire_one(&mut self, now_ms: i64) {
        let pending = self
            .pending_members
            .iter()
            .find(|(_, deadline)| **deadline <= now_ms)
            .map(|(id, _)| id.clone());
        if let Some(member_id) = pending {
            self.pending_members.shift_remove(&member_id);
            self.try_complete_join(now_ms);
            return;
        }
        let expired = self
            .members
            .values()
            .find(|m| Self::member_deadline(m).is_some_and(|d| d <= now_ms))
            .map(|m| m.member_id.clone());
        if let Some(member_id) = expired {
            tracing::debug!(group = %self.group_id, member = %member_id, "member session expired");
            self.remove_member_and_update(now_ms, &member_id);
            return;
        }
        if self.state == GroupState::PreparingRebalance {
            match self.join_timer {
                Some(JoinTimer::InitialDelay {
                    deadline_ms,
                    cap_ms,
                }) if deadline_ms <= now_ms => {
                    let delay = self.config.initial_rebalance_delay_ms;
                    if self.new_member_added && delay > 0 && deadline_ms < cap_ms {
                        self.new_member_added = false;
                        self.join_timer = Some(JoinTimer::InitialDelay {
                            deadline_ms: (deadline_ms + delay).min(cap_ms),
                            cap_ms,
                        });
                    } else {
                        self.complete_join(now_ms);
                    }
                    return;
                }
                Some(JoinTimer::RebalanceTimeout { deadline_ms }) if deadline_ms <= now_ms => {
                    self.complete_join(now_ms);
                    return;
                }
                _ => {}
            }
        }
        if self.sync_deadline_ms.is_some_and(|d| d <= now_ms) {
            self.sync_deadline_ms = None;
            let missing: Vec<String> = self.pending_sync.drain(..).collect();
            for member_id in missing {
                tracing::debug!(group = %self.group_id, member = %member_id, "no SyncGroup within the rebalance timeout");
                self.remove_member_and_update(now_ms, &member_id);
            }
        }
    }

    // ----- Answers -----

    /// The caller's own JoinGroup answer, if the event produced one.
    fn take_join_reply(&mut self, member_id: String) -> Reply<JoinResponse> {
        let position = self
            .deliveries
            .iter()
            .position(|d| matches!(d, Delivery::Join { member_id: id, .. } if *id == member_id));
        match position.map(|i| self.deliveries.remove(i)) {
            Some(Delivery::Join { response, .. }) => Reply::Now(response),
            _ if self
                .members
                .get(&member_id)
                .is_some_and(|m| m.awaiting_join) =>
            {
                Reply::Parked { member_id }
            }
            _ => Reply::Now(JoinResponse::error(
                ResponseError::UnknownMemberId,
                member_id,
            )),
        }
    }

    /// The caller's own SyncGroup answer, if the event produced one.
    fn take_sync_reply(&mut self, member_id: String) -> Reply<SyncResponse> {
        let position = self
            .deliveries
            .iter()
            .position(|d| matches!(d, Delivery::Sync { member_id: id, .. } if *id == member_id));
        match position.map(|i| self.deliveries.remove(i)) {
            Some(Delivery::Sync { response, .. }) => Reply::Now(response),
            _ if self
                .members
                .get(&member_id)
                .is_some_and(|m| m.awaiting_sync) =>
            {
                Reply::Parked { member_id }
            }
            _ => Reply::Now(SyncResponse::error(ResponseError::UnknownMemberId)),
        }
    }

    fn finish<T>(&mut self, reply: T) -> Outcome<T> {
        Outcome {
            reply,
            deliveries: std::mem::take(&mut self.deliveries),
            persist: std::mem::take(&mut self.persist),
        }
    }
}
