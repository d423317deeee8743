//! A group as `__consumer_offsets` stores it, and the group-side checks of
//! an offset commit.

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;

use super::Group;
use crate::group::types::{GroupConfig, GroupState, Member, Outcome, Protocol};
use crate::group::{GroupValue, MemberValue};

impl Group {
    /// The group metadata record of the group as it is now: generation,
    /// chosen protocol, leader and every member with its subscription (its
    /// metadata for the chosen protocol) and assignment. Kafka writes it when a
    /// generation's assignment is known and when the group empties.
    pub fn to_value(&self, current_state_timestamp_ms: i64) -> GroupValue {
        let protocol = self.protocol_name.as_deref();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader_id.clone(),
            current_state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|member| MemberValue {
                    member_id: member.member_id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout_ms,
                    session_timeout_ms: member.session_timeout_ms,
                    subscription: protocol
                        .and_then(|name| member.metadata(name))
                        .cloned()
                        .unwrap_or_default(),
                    assignment: member.assignment.clone(),
                })
                .collect(),
        }
    }

    /// A group loaded from its last metadata record, as Kafka loads one: Empty
    /// when it has no members, otherwise Stable with the stored generation and
    /// assignments, so that members that were consuming go on heartbeating
    /// without a rebalance. Every member's session starts at `now_ms`.
    pub fn from_value(
        group_id: impl Into<String>,
        config: GroupConfig,
        now_ms: i64,
        value: &GroupValue,
    ) -> Group {
        let mut group = Group::new(group_id, config);
        group.generation_id = value.generation;
        group.protocol_type = Some(value.protocol_type.clone()).filter(|t| !t.is_empty());
        if value.members.is_empty() {
            return group;
        }
        group.state = GroupState::Stable;
        group.protocol_name = value.protocol.clone();
        group.leader_id = value.leader.clone();
        let protocol = value.protocol.clone().unwrap_or_default();
        group.members = value
            .members
            .iter()
            .map(|stored| {
                let member = Member {
                    member_id: stored.member_id.clone(),
                    group_instance_id: stored.group_instance_id.clone(),
                    client_id: stored.client_id.clone(),
                    client_host: stored.client_host.clone(),
                    session_timeout_ms: stored.session_timeout_ms,
                    rebalance_timeout_ms: stored.rebalance_timeout_ms,
                    protocols: vec![Protocol {
                        name: protocol.clone(),
                        metadata: stored.subscription.clone(),
                    }],
                    assignment: stored.assignment.clone(),
                    awaiting_join: false,
                    awaiting_sync: false,
                    is_new: false,
                    session_deadline_ms: now_ms + i64::from(stored.session_timeout_ms),
                    new_member_deadline_ms: 0,
                };
                (member.member_id.clone(), member)
            })
            .collect::<IndexMap<_, _>>();
        group.static_members = group
            .members
            .values()
            .filter_map(|m| Some((m.group_instance_id.clone()?, m.member_id.clone())))
            .collect();
        group
    }

    /// Whether an OffsetCommit may go ahead, following Kafka's classic
    /// coordinator: a member of the group commits with its id and current
    /// generation (and the commit keeps its session alive, as a heartbeat
    /// would); a commit without member id and generation (a standalone
    /// consumer or an admin tool) is accepted only while the group is Empty.
    /// Commits are refused between a generation's JoinGroup answers and its
    /// assignment (REBALANCE_IN_PROGRESS), but accepted while a rebalance is
    /// being prepared, so that members can commit before they rejoin.
    pub fn validate_offset_commit(
        &mut self,
        now_ms: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Outcome<Result<(), ResponseError>> {
        self.fire_timers(now_ms);
        let verdict =
            self.offset_commit_verdict(now_ms, member_id, group_instance_id, generation_id);
        self.finish(verdict)
    }

    fn offset_commit_verdict(
        &mut self,
        now_ms: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            if let Some(error) = self.validate_member(member_id, group_instance_id) {
                return Err(error);
            }
            if generation_id != self.generation_id {
                return Err(ResponseError::IllegalGeneration);
            }
            if let Some(member) = self.members.get_mut(member_id) {
                member.session_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
            }
        } else if self.state != GroupState::Empty {
            return Err(ResponseError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        Ok(())
    }
}
