//! The plain data that goes in and out of a [`Group`](super::Group): requests
//! with the fields the state machine needs, responses shaped like the wire
//! responses, and the members themselves.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// The broker settings that shape a group's behaviour, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// Empty group waits for more members before it completes (KIP-134).
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`: JoinGroup with a shorter session timeout
    /// gets INVALID_SESSION_TIMEOUT.
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`: JoinGroup with a longer session timeout
    /// gets INVALID_SESSION_TIMEOUT.
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: joins beyond it get GROUP_MAX_SIZE_REACHED.
    pub max_size: usize,
    /// How long a brand-new member's parked JoinGroup may wait before the member
    /// is dropped. Its session timer cannot run (it has no id to heartbeat
    /// with), so this bounds defunct members left by clients that gave up on a
    /// long rebalance and retried. Kafka fixes it at five minutes.
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// The classic group states, named as DescribeGroups and ListGroups report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members (the group may still own committed offsets).
    Empty,
    /// Waiting for members to (re)join before a new generation.
    PreparingRebalance,
    /// The new generation is chosen; waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment for the current generation.
    Stable,
    /// Deleted or unloaded; requests must find the coordinator again.
    Dead,
}

impl GroupState {
    /// The name on the wire (DescribeGroups `group_state`, ListGroups filters).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// One protocol a member supports (for consumers: an assignor name such as
/// `range` or `cooperative-sticky`) with its opaque subscription metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// The fields of a JoinGroup request the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// Empty on a member's first join.
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345, JoinGroup v5+).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// JoinGroup v0 has none: the caller passes the session timeout, as Kafka does.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// True for JoinGroup v4+: a dynamic member's first join gets
    /// MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response, field for field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResponse {
    pub error: Option<ResponseError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    /// The member's id: the generated one on MEMBER_ID_REQUIRED or a first join.
    pub member_id: String,
    /// Every member with its metadata, for the leader only; empty for followers.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// A failed join: generation -1 and no leader, as Kafka answers.
    pub fn error(error: ResponseError, member_id: impl Into<String>) -> Self {
        JoinResponse {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// The fields of a SyncGroup request the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+; checked against the group's when present.
    pub protocol_name: Option<String>,
    /// From the leader: member id and that member's assignment. Followers send none.
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response, field for field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResponse {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    /// A failed sync: no assignment.
    pub fn error(error: ResponseError) -> Self {
        SyncResponse {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a LeaveGroup request (v3+ leaves in batches; v0–2 is a
/// batch of one without an instance id). An empty member id with an instance id
/// removes that static member (the admin "remove members" path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

/// A LeaveGroup response: a top-level error, or one result per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResponse {
    pub error: Option<ResponseError>,
    pub members: Vec<(LeaveMember, Option<ResponseError>)>,
}

/// How a request that may wait is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// Answer the request with this now.
    Now(T),
    /// The request waits; its answer will come in a later [`Outcome::deliveries`]
    /// under this member id (which is generated for a static member's first join).
    /// A new parked request for the same member replaces the old one.
    Parked { member_id: String },
}

/// An answer owed to a request parked earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Join {
        member_id: String,
        response: JoinResponse,
    },
    Sync {
        member_id: String,
        response: SyncResponse,
    },
}

impl Delivery {
    /// The member whose parked request this answers.
    pub fn member_id(&self) -> &str {
        match self {
            Delivery::Join { member_id, .. } | Delivery::Sync { member_id, .. } => member_id,
        }
    }
}

/// What one event produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<T> {
    /// The answer to the request that caused the event.
    pub reply: T,
    /// Answers to parked JoinGroup/SyncGroup requests of other members (never
    /// the caller's own request: that one is in `reply`).
    pub deliveries: Vec<Delivery>,
    /// The group's metadata (generation, protocol, members, assignments)
    /// changed in a way Kafka records in `__consumer_offsets`; write it before
    /// sending `reply` and `deliveries`.
    pub persist: bool,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    /// Set for static members (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// In the member's order of preference.
    pub protocols: Vec<Protocol>,
    /// This member's assignment in the current generation (empty until the
    /// leader's SyncGroup).
    pub assignment: Bytes,
    /// A JoinGroup of this member is parked.
    pub awaiting_join: bool,
    /// A SyncGroup of this member is parked.
    pub awaiting_sync: bool,
    /// Joined but not yet through a completed join phase: it has no session
    /// yet, so only `new_member_join_timeout_ms` bounds its wait.
    pub is_new: bool,
    /// When the member is dropped unless it heartbeats (or joins or syncs).
    pub session_deadline_ms: i64,
    /// When a new member's parked join gives up (see `is_new`).
    pub new_member_deadline_ms: i64,
}

impl Member {
    /// The member's metadata for `protocol`, if it supports it.
    pub fn metadata(&self, protocol: &str) -> Option<&Bytes> {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| &p.metadata)
    }

    /// Whether it supports `protocol`.
    pub fn supports(&self, protocol: &str) -> bool {
        self.protocols.iter().any(|p| p.name == protocol)
    }
}
