//! The classic consumer-group state machine, as pure logic.
//!
//! A [`Group`] is one group id's membership and rebalance state: Empty,
//! PreparingRebalance, CompletingRebalance, Stable, Dead, exactly the states of
//! Kafka's classic group coordinator. It does no I/O and owns no clock: every
//! event (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, the passage of time)
//! takes `now_ms` and returns plain data — the answer to the request that
//! caused it, plus the answers owed to requests parked earlier. Tests drive it
//! with a fake clock (style rule 4).
//!
//! What the async coordinator around it does (not here): find the group for an
//! id, hold it behind a lock, park JoinGroup/SyncGroup requests that get
//! [`Reply::Parked`] on a channel keyed by member id and complete them from
//! [`Outcome::deliveries`], call [`Group::tick`] at [`Group::next_deadline`],
//! and write group metadata to `__consumer_offsets` when [`Outcome::persist`]
//! says so (before delivering, as Kafka does).
//!
//! Behaviours that come from KIPs:
//! - [KIP-134](https://cwiki.apache.org/confluence/display/KAFKA/KIP-134%3A+Delay+initial+consumer+group+rebalance):
//!   `group.initial.rebalance.delay.ms`.
//! - [KIP-394](https://cwiki.apache.org/confluence/display/KAFKA/KIP-394%3A+Require+member.id+for+initial+join+group+request):
//!   a first JoinGroup (v4+) without a member id gets MEMBER_ID_REQUIRED and
//!   an id to rejoin with.
//! - [KIP-345](https://cwiki.apache.org/confluence/display/KAFKA/KIP-345%3A+Introduce+static+membership+protocol+to+reduce+consumer+rebalances):
//!   static members (`group.instance.id`) that restart get their assignment
//!   back without a rebalance.
//! - [KIP-429](https://cwiki.apache.org/confluence/display/KAFKA/KIP-429%3A+Kafka+Consumer+Incremental+Rebalance+Protocol):
//!   cooperative rebalancing is entirely client-side; the broker runs ordinary
//!   rebalances (the clients just rejoin once more after revoking), so nothing
//!   here is specific to it.

mod records;
mod state;
mod types;

#[cfg(test)]
mod tests;

pub use records::{
    decode_group_value, decode_key, decode_offset_value, encode_group_value, encode_key,
    encode_offset_value, partition_for, GroupValue, MemberValue, OffsetValue, OffsetsKey,
    RecordError,
};
pub use state::Group;
pub use types::{
    Delivery, GroupConfig, GroupState, JoinRequest, JoinResponse, JoinedMember, LeaveMember,
    LeaveResponse, Member, Outcome, Protocol, Reply, SyncRequest, SyncResponse,
};
