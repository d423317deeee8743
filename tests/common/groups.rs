//! Helpers for the wire-level consumer group tests (`tests/groups_membership.rs`,
//! `tests/groups_offsets.rs`): request builders for every group API, Kafka's error
//! codes, and small flows (join with a new member id, a one-member Stable group).
//! The kafka-protocol types they use are re-exported for the tests.

#[allow(unused_imports)] // re-exported for the group tests
pub use std::collections::BTreeSet;
#[allow(unused_imports)] // re-exported for the group tests
pub use std::thread;
#[allow(unused_imports)] // re-exported for the group tests
pub use std::time::{Duration, Instant};

use super::*;
#[allow(unused_imports)] // re-exported for the group tests
pub use bytes::{BufMut, Bytes, BytesMut};
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::describe_groups_response::DescribedGroup;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::leave_group_request::MemberIdentity;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::list_groups_response::ListedGroup;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
#[allow(unused_imports)] // re-exported for the group tests
pub use kafka_protocol::protocol::{Encodable, StrBytes};

/// No initial-rebalance delay, so that a first JoinGroup is answered at once, and a
/// minimum session timeout the INVALID_SESSION_TIMEOUT test can go below.
pub const GROUP_SETTINGS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
];

/// Session and rebalance timeout of every member: far longer than any test runs.
pub const SESSION_TIMEOUT_MS: i32 = 120_000;

// Kafka's error codes (org.apache.kafka.common.protocol.Errors).
pub const NONE: i16 = 0;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const INVALID_REQUEST: i16 = 42;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// DescribeGroups `authorized_operations` when they were not asked for.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

// ---------------------------------------------------------------------------------------
// Building requests
// ---------------------------------------------------------------------------------------

pub fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

pub fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

pub fn topic(name: &str) -> TopicName {
    TopicName(text(name))
}

/// A consumer-protocol struct as Kafka clients put it in JoinGroup metadata and
/// SyncGroup assignments: an i16 version, then the struct at that version.
pub fn versioned<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    message
        .encode(&mut buffer, version)
        .expect("encode a consumer protocol struct");
    buffer.freeze()
}

/// The JoinGroup metadata of a consumer subscribed to `topics`.
pub fn subscription(topics: &[&str]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| text(t)).collect());
    versioned(&subscription, 1)
}

/// The SyncGroup assignment of `partitions` of one topic.
pub fn assignment(topic_name: &str, partitions: &[i32]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(topic(topic_name))
            .with_partitions(partitions.to_vec()),
    ]);
    versioned(&assignment, 1)
}

/// A JoinGroup of protocol type `protocol_type` offering `protocols` (name,
/// metadata) in order of preference.
pub fn join_request(
    version: i16,
    group_id: &str,
    member_id: &str,
    protocol_type: &str,
    protocols: &[(&str, &Bytes)],
) -> JoinGroupRequest {
    let protocols = protocols
        .iter()
        .map(|(name, metadata)| {
            JoinGroupRequestProtocol::default()
                .with_name(text(name))
                .with_metadata((*metadata).clone())
        })
        .collect();
    let request = JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(SESSION_TIMEOUT_MS)
        .with_member_id(text(member_id))
        .with_protocol_type(text(protocol_type))
        .with_protocols(protocols);
    // v0 has no rebalance timeout (the session timeout stands in).
    if version >= 1 {
        request.with_rebalance_timeout_ms(SESSION_TIMEOUT_MS)
    } else {
        request
    }
}

/// A consumer's JoinGroup: protocol type "consumer", the "range" assignor.
pub fn consumer_join(
    version: i16,
    group_id: &str,
    member_id: &str,
    metadata: &Bytes,
) -> JoinGroupRequest {
    join_request(
        version,
        group_id,
        member_id,
        "consumer",
        &[("range", metadata)],
    )
}

pub fn join(client: &mut RawClient, version: i16, request: &JoinGroupRequest) -> JoinGroupResponse {
    client.request(ApiKey::JoinGroup, version, request)
}

/// A member as the tests track it.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub generation: i32,
}

impl Member {
    pub fn from_join(response: &JoinGroupResponse) -> Member {
        Member {
            id: response.member_id.to_string(),
            generation: response.generation_id,
        }
    }
}

/// A first JoinGroup (v5) as modern clients make it: without a member id it gets
/// MEMBER_ID_REQUIRED and an id (KIP-394); the second join, with that id, is the
/// real one. Returns the second join's answer.
pub fn join_with_new_id(
    client: &mut RawClient,
    group_id: &str,
    metadata: &Bytes,
) -> JoinGroupResponse {
    let first = join(client, 5, &consumer_join(5, group_id, "", metadata));
    assert_eq!(
        first.error_code, MEMBER_ID_REQUIRED,
        "JoinGroup v5 without a member id to {group_id}: {first:?}"
    );
    assert!(
        !first.member_id.is_empty(),
        "MEMBER_ID_REQUIRED comes with a member id: {first:?}"
    );
    join(
        client,
        5,
        &consumer_join(5, group_id, &first.member_id, metadata),
    )
}

pub fn sync(
    client: &mut RawClient,
    version: i16,
    group_id: &str,
    member: &Member,
    assignments: &[(&str, &Bytes)],
) -> SyncGroupResponse {
    let assignments = assignments
        .iter()
        .map(|(member_id, assignment)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(text(member_id))
                .with_assignment((*assignment).clone())
        })
        .collect();
    let request = SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id(member.generation)
        .with_member_id(text(&member.id))
        .with_assignments(assignments);
    client.request(ApiKey::SyncGroup, version, &request)
}

/// A group whose only member has joined and synced with `assigned`: Stable at
/// generation 1, the member its leader.
pub fn stable_group(
    client: &mut RawClient,
    group_id: &str,
    metadata: &Bytes,
    assigned: &Bytes,
) -> Member {
    let joined = join_with_new_id(client, group_id, metadata);
    assert_eq!(
        joined.error_code, NONE,
        "JoinGroup to {group_id}: {joined:?}"
    );
    assert_eq!(joined.generation_id, 1, "first generation of {group_id}");
    let member = Member::from_join(&joined);
    let synced = sync(client, 3, group_id, &member, &[(&member.id, assigned)]);
    assert_eq!(
        synced.error_code, NONE,
        "SyncGroup to {group_id}: {synced:?}"
    );
    assert_eq!(synced.assignment, *assigned, "the leader's own assignment");
    member
}

/// Heartbeat v4; returns its error code.
pub fn heartbeat(client: &mut RawClient, group_id: &str, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.request(ApiKey::Heartbeat, 4, &request);
    response.error_code
}

/// One partition of an OffsetCommit: topic, partition, offset, leader epoch, metadata.
pub type Commit<'a> = (&'a str, i32, i64, i32, &'a str);

/// A partition's offset without leader epoch or metadata.
pub fn at(topic_name: &str, partition: i32, offset: i64) -> Commit<'_> {
    (topic_name, partition, offset, -1, "")
}

/// An OffsetCommit of `offsets` (consecutive partitions of a topic go in one topic
/// entry). Returns (topic, partition, error code) per partition, in order.
pub fn commit(
    client: &mut RawClient,
    version: i16,
    group_id: &str,
    member_id: &str,
    generation: i32,
    offsets: &[Commit<'_>],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for &(name, partition, offset, leader_epoch, metadata) in offsets {
        let mut entry = OffsetCommitRequestPartition::default()
            .with_partition_index(partition)
            .with_committed_offset(offset)
            .with_committed_metadata(Some(text(metadata)));
        // The leader epoch is on the wire from v6.
        if version >= 6 {
            entry = entry.with_committed_leader_epoch(leader_epoch);
        }
        match topics.last_mut() {
            Some(last) if last.name.as_str() == name => last.partitions.push(entry),
            _ => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(topics);
    let response: OffsetCommitResponse = client.request(ApiKey::OffsetCommit, version, &request);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// What OffsetFetch answers for one partition: topic, partition, committed offset,
/// leader epoch, metadata.
pub type Fetched = (String, i32, i64, i32, String);

pub fn fetched(
    topic_name: &str,
    partition: i32,
    offset: i64,
    epoch: i32,
    metadata: &str,
) -> Fetched {
    (
        topic_name.to_string(),
        partition,
        offset,
        epoch,
        metadata.to_string(),
    )
}

/// An OffsetFetch (v1–v7 form) of `topics` (None: every committed offset, v2+).
/// Kafka answers every partition, known or not, without an error.
pub fn fetch(
    client: &mut RawClient,
    version: i16,
    group_id: &str,
    topics: Option<&[(&str, &[i32])]>,
) -> Vec<Fetched> {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|(name, partitions)| {
                OffsetFetchRequestTopic::default()
                    .with_name(topic(name))
                    .with_partition_indexes(partitions.to_vec())
            })
            .collect()
    });
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(topics);
    let response: OffsetFetchResponse = client.request(ApiKey::OffsetFetch, version, &request);
    assert_eq!(
        response.error_code, NONE,
        "OffsetFetch v{version} of {group_id}: {response:?}"
    );
    let mut offsets = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            assert_eq!(
                p.error_code,
                NONE,
                "OffsetFetch v{version} of {group_id}, {}-{}: {response:?}",
                t.name.as_str(),
                p.partition_index
            );
            offsets.push((
                t.name.to_string(),
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.metadata.as_deref().unwrap_or_default().to_string(),
            ));
        }
    }
    offsets
}

/// Fetches the committed offset of each of `partitions` of one topic (v1 form).
pub fn committed_offsets(
    client: &mut RawClient,
    group_id: &str,
    topic_name: &str,
    partitions: &[i32],
) -> Vec<i64> {
    fetch(client, 1, group_id, Some(&[(topic_name, partitions)]))
        .into_iter()
        .map(|(_, _, offset, _, _)| offset)
        .collect()
}

pub fn describe(
    client: &mut RawClient,
    version: i16,
    groups: &[&str],
    include_authorized_operations: bool,
) -> Vec<DescribedGroup> {
    let request = DescribeGroupsRequest::default()
        .with_groups(groups.iter().map(|g| group(g)).collect())
        .with_include_authorized_operations(include_authorized_operations);
    let response: DescribeGroupsResponse =
        client.request(ApiKey::DescribeGroups, version, &request);
    assert_eq!(
        response.groups.len(),
        groups.len(),
        "one description per group: {response:?}"
    );
    response.groups
}

/// The state DescribeGroups (v5) reports for `group_id`.
pub fn group_state(client: &mut RawClient, group_id: &str) -> String {
    describe(client, 5, &[group_id], false)[0]
        .group_state
        .to_string()
}

pub fn list_groups(
    client: &mut RawClient,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> Vec<ListedGroup> {
    let request = ListGroupsRequest::default()
        .with_states_filter(states.iter().map(|s| text(s)).collect())
        .with_types_filter(types.iter().map(|t| text(t)).collect());
    let response: ListGroupsResponse = client.request(ApiKey::ListGroups, version, &request);
    assert_eq!(
        response.error_code, NONE,
        "ListGroups v{version}: {response:?}"
    );
    response.groups
}

pub fn listed_ids(groups: &[ListedGroup]) -> BTreeSet<String> {
    groups.iter().map(|g| g.group_id.to_string()).collect()
}

pub fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// LeaveGroup v0 of one member; returns the error code.
pub fn leave_one(client: &mut RawClient, group_id: &str, member_id: &str) -> i16 {
    let request = LeaveGroupRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id));
    let response: LeaveGroupResponse = client.request(ApiKey::LeaveGroup, 0, &request);
    response.error_code
}

/// LeaveGroup v3+ of a batch of members (KIP-345).
pub fn leave_batch(
    client: &mut RawClient,
    version: i16,
    group_id: &str,
    member_ids: &[&str],
) -> LeaveGroupResponse {
    let members = member_ids
        .iter()
        .map(|id| MemberIdentity::default().with_member_id(text(id)))
        .collect();
    let request = LeaveGroupRequest::default()
        .with_group_id(group(group_id))
        .with_members(members);
    client.request(ApiKey::LeaveGroup, version, &request)
}

/// DeleteGroups v2; returns (group id, error code) per group.
pub fn delete_groups(client: &mut RawClient, groups: &[&str]) -> Vec<(String, i16)> {
    let request =
        DeleteGroupsRequest::default().with_groups_names(groups.iter().map(|g| group(g)).collect());
    let response: DeleteGroupsResponse = client.request(ApiKey::DeleteGroups, 2, &request);
    response
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect()
}

/// OffsetDelete v0 of `topics`; returns the top-level error code and (topic,
/// partition, error code) per partition.
pub fn delete_offsets(
    client: &mut RawClient,
    group_id: &str,
    topics: &[(&str, &[i32])],
) -> (i16, Vec<(String, i32, i16)>) {
    let topics = topics
        .iter()
        .map(|(name, partitions)| {
            OffsetDeleteRequestTopic::default()
                .with_name(topic(name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                        .collect(),
                )
        })
        .collect();
    let request = OffsetDeleteRequest::default()
        .with_group_id(group(group_id))
        .with_topics(topics);
    let response: OffsetDeleteResponse = client.request(ApiKey::OffsetDelete, 0, &request);
    let partitions = response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    (response.error_code, partitions)
}

/// Errors per partition, for comparing with what a commit or delete answered.
pub fn errors(expected: &[(&str, i32, i16)]) -> Vec<(String, i32, i16)> {
    expected
        .iter()
        .map(|&(t, p, e)| (t.to_string(), p, e))
        .collect()
}

/// Sends heartbeats until the broker answers one with REBALANCE_IN_PROGRESS: the
/// JoinGroup of another member, sent from another thread, has arrived.
pub fn heartbeat_until_rebalance(client: &mut RawClient, group_id: &str, member: &Member) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let error = heartbeat(client, group_id, &member.id, member.generation);
        if error == REBALANCE_IN_PROGRESS {
            return;
        }
        assert_eq!(error, NONE, "heartbeat while a rebalance is awaited");
        assert!(
            Instant::now() < deadline,
            "no REBALANCE_IN_PROGRESS within {TIMEOUT:?} after a second member joined"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
