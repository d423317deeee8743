//! JoinGroup: validation, KIP-394 member ids, KIP-345 static members taking
//! over their old member, and protocol selection.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::Group;
use crate::group::types::{
    Delivery, GroupState, JoinRequest, JoinResponse, JoinedMember, Member, Reply, SyncResponse,
};

impl Group {
    pub(super) fn join_inner(&mut self, now_ms: i64, request: &JoinRequest) -> Reply<JoinResponse> {
        let timeout = request.session_timeout_ms;
        if timeout < self.config.min_session_timeout_ms
            || timeout > self.config.max_session_timeout_ms
        {
            return self.join_error(ResponseError::InvalidSessionTimeout, &request.member_id);
        }
        if self.state == GroupState::Dead {
            // Someone deleted or unloaded the group under us: the client
            // finds the coordinator again and retries.
            return self.join_error(ResponseError::CoordinatorNotAvailable, &request.member_id);
        }
        if !self.supports_protocols(request) {
            return self.join_error(ResponseError::InconsistentGroupProtocol, &request.member_id);
        }
        if !self.accepts_joining_member(&request.member_id) {
            return self.join_error(ResponseError::GroupMaxSizeReached, "");
        }
        if request.member_id.is_empty() {
            self.join_new_member(now_ms, request)
        } else {
            self.join_known_member(now_ms, request)
        }
    }

    fn join_error(&self, error: ResponseError, member_id: &str) -> Reply<JoinResponse> {
        Reply::Now(JoinResponse::error(error, member_id))
    }

    /// An Empty group takes any non-empty protocol type and list; otherwise the
    /// type must match and the member must support a protocol every current
    /// member supports.
    fn supports_protocols(&self, request: &JoinRequest) -> bool {
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(request.protocol_type.as_str())
            && request
                .protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    /// `group.max.size`: while preparing, count the members that already
    /// rejoined (the size is enforced when the phase completes); afterwards,
    /// the members. Known members are always let back in.
    fn accepts_joining_member(&self, member_id: &str) -> bool {
        let known = self.members.get(member_id);
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                known.is_some_and(|m| m.awaiting_join)
                    || self.members.values().filter(|m| m.awaiting_join).count()
                        < self.config.max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                known.is_some() || self.members.len() < self.config.max_size
            }
        }
    }

    fn join_new_member(&mut self, now_ms: i64, request: &JoinRequest) -> Reply<JoinResponse> {
        // Kafka's form: the client id then a random UUID, unique per join.
        let member_id = format!(
            "{}-{}",
            member_id_prefix(&request.client_id),
            uuid::Uuid::new_v4()
        );
        if let Some(instance_id) = &request.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance_id).cloned() {
                return self.replace_static_member(now_ms, &old_id, member_id, request);
            }
            // Static members need no KIP-394 round trip: the instance id
            // already identifies them.
            return self.add_member_and_rebalance(now_ms, member_id, request);
        }
        if request.require_known_member_id {
            let deadline = now_ms + i64::from(request.session_timeout_ms);
            self.pending_members.insert(member_id.clone(), deadline);
            return self.join_error(ResponseError::MemberIdRequired, &member_id);
        }
        self.add_member_and_rebalance(now_ms, member_id, request)
    }

    fn join_known_member(&mut self, now_ms: i64, request: &JoinRequest) -> Reply<JoinResponse> {
        let member_id = request.member_id.as_str();
        if self.pending_members.contains_key(member_id) {
            if request.group_instance_id.is_some() {
                // Pending ids are only handed to dynamic members.
                return self.join_error(ResponseError::UnknownMemberId, member_id);
            }
            return self.add_member_and_rebalance(now_ms, member_id.to_owned(), request);
        }
        if let Some(error) = self.validate_member(member_id, request.group_instance_id.as_deref()) {
            return self.join_error(error, member_id);
        }
        let Some(member) = self.members.get(member_id) else {
            return self.join_error(ResponseError::UnknownMemberId, member_id);
        };
        let same_protocols = member.protocols == request.protocols;
        let is_leader = self.leader_id.as_deref() == Some(member_id);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(now_ms, member_id, request)
            }
            // The member lost our JoinGroup answer: send it again.
            GroupState::CompletingRebalance if same_protocols => {
                Reply::Now(self.join_success(member_id, is_leader))
            }
            // A follower rejoining with nothing new needs no rebalance; the
            // leader rejoining is how a client asks for one (e.g. new topics).
            GroupState::Stable if same_protocols && !is_leader => {
                Reply::Now(self.join_success(member_id, false))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(now_ms, member_id, request)
            }
            GroupState::Empty | GroupState::Dead => {
                self.join_error(ResponseError::UnknownMemberId, member_id)
            }
        }
    }

    /// The current generation as this member's JoinGroup answer.
    pub(super) fn join_success(&self, member_id: &str, with_members: bool) -> JoinResponse {
        let members = match (&self.protocol_name, with_members) {
            (Some(protocol), true) => self
                .members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata(protocol).cloned().unwrap_or_default(),
                })
                .collect(),
            _ => Vec::new(),
        };
        JoinResponse {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members,
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        now_ms: i64,
        member_id: String,
        request: &JoinRequest,
    ) -> Reply<JoinResponse> {
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance_id) = &request.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), member_id.clone());
        }
        self.pending_members.shift_remove(&member_id);
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocols: request.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: true,
            awaiting_sync: false,
            is_new: true,
            session_deadline_ms: now_ms + i64::from(request.session_timeout_ms),
            new_member_deadline_ms: now_ms + self.config.new_member_join_timeout_ms,
        };
        self.members.insert(member_id.clone(), member);
        self.rebalance(now_ms);
        Reply::Parked { member_id }
    }

    fn update_member_and_rebalance(
        &mut self,
        now_ms: i64,
        member_id: &str,
        request: &JoinRequest,
    ) -> Reply<JoinResponse> {
        if let Some(member) = self.members.get_mut(member_id) {
            Self::update_member(member, now_ms, request);
        }
        self.rebalance(now_ms);
        Reply::Parked {
            member_id: member_id.to_owned(),
        }
    }

    fn update_member(member: &mut Member, now_ms: i64, request: &JoinRequest) {
        member.protocols = request.protocols.clone();
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id = request.client_id.clone();
        member.client_host = request.client_host.clone();
        member.awaiting_join = true;
        member.session_deadline_ms = now_ms + i64::from(request.session_timeout_ms);
    }

    /// KIP-345: a known `group.instance.id` joined without a member id — the
    /// same instance restarted. The new member id takes over the old member
    /// (assignment included); the old id's parked requests are fenced. In a
    /// Stable group whose protocol would not change, that is all: no
    /// rebalance, and the member syncs to get its assignment back.
    fn replace_static_member(
        &mut self,
        now_ms: i64,
        old_id: &str,
        new_id: String,
        request: &JoinRequest,
    ) -> Reply<JoinResponse> {
        let previous_leader = self.leader_id.clone().unwrap_or_default();
        let Some(index) = self.members.get_index_of(old_id) else {
            return self.join_error(ResponseError::UnknownMemberId, "");
        };
        let Some(mut member) = self.members.shift_remove(old_id) else {
            return self.join_error(ResponseError::UnknownMemberId, "");
        };
        self.fence_parked_requests(&mut member);
        member.member_id = new_id.clone();
        member.is_new = false;
        Self::update_member(&mut member, now_ms, request);
        self.members.shift_insert(index, new_id.clone(), member);
        if let Some(instance_id) = &request.group_instance_id {
            self.static_members
                .insert(instance_id.clone(), new_id.clone());
        }
        if self.pending_sync.shift_remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        // In a Stable group nothing else changes unless the new protocols
        // would change the group's protocol; mid-rebalance, the rebalance
        // simply goes on with the new member id.
        let stays_stable =
            self.state == GroupState::Stable && self.select_protocol() == self.protocol_name;
        if !stays_stable {
            self.rebalance(now_ms);
            return Reply::Parked { member_id: new_id };
        }
        if let Some(member) = self.members.get_mut(&new_id) {
            member.awaiting_join = false;
        }
        self.persist = true;
        let mut response = self.join_success(&new_id, false);
        // The previous leader id, even when this member was the leader: a
        // Stable group would not pass on a new assignment, so the restarted
        // leader must not compute one.
        response.leader = previous_leader;
        Reply::Now(response)
    }

    /// Answers an old member's parked requests with FENCED_INSTANCE_ID.
    fn fence_parked_requests(&mut self, member: &mut Member) {
        let fenced = ResponseError::FencedInstanceId;
        if std::mem::take(&mut member.awaiting_join) {
            self.deliveries.push(Delivery::Join {
                member_id: member.member_id.clone(),
                response: JoinResponse::error(fenced, member.member_id.clone()),
            });
        }
        if std::mem::take(&mut member.awaiting_sync) {
            self.deliveries.push(Delivery::Sync {
                member_id: member.member_id.clone(),
                response: SyncResponse::error(fenced),
            });
        }
    }

    /// The member id must be in the group, and a static member's instance id
    /// must map to it (otherwise a newer instance has fenced this one).
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        match group_instance_id {
            Some(instance_id) => match self.static_members.get(instance_id) {
                None => Some(ResponseError::UnknownMemberId),
                Some(current) if current != member_id => Some(ResponseError::FencedInstanceId),
                Some(_) => None,
            },
            None if !self.members.contains_key(member_id) => Some(ResponseError::UnknownMemberId),
            None => None,
        }
    }

    /// The protocol for the next generation: among those every member
    /// supports, each member votes for the first in its own preference order;
    /// most votes wins, ties go to the earliest-joined member's preference.
    /// None when there are no members or nothing in common.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes = vec![0usize; candidates.len()];
        for member in self.members.values() {
            let vote = member
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| *c == p.name));
            if let Some(index) = vote {
                votes[index] += 1;
            }
        }
        // `max_by_key` keeps the last maximum; reversed, that is the earliest.
        let (winner, _) = votes
            .iter()
            .enumerate()
            .rev()
            .max_by_key(|(_, count)| **count)?;
        candidates.get(winner).map(|name| (*name).to_owned())
    }
}

/// The client id part of a new member id (Kafka's `client.id-UUID`), cut
/// (at a character boundary) so that the whole id fits the INT16-length
/// string the group's record stores it in: a client id can be as long as
/// that itself.
fn member_id_prefix(client_id: &str) -> &str {
    // A dash and a UUID's 36 characters follow.
    let room = i16::MAX as usize - 37;
    if client_id.len() <= room {
        return client_id;
    }
    let cut = (0..=room)
        .rev()
        .find(|i| client_id.is_char_boundary(*i))
        .unwrap_or(0);
    &client_id[..cut]
}
