//! The consumer group APIs on the wire, request by request, with the raw client:
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
//! OffsetFetch, ListGroups, DescribeGroups, DeleteGroups and OffsetDelete, at old and
//! new versions. Every answer is checked against what Kafka's classic group
//! coordinator gives, error codes included. (`tests/groups.rs` drives the same
//! coordinator with librdkafka consumers.)
//!
//! Members use long session timeouts so that nothing expires while a test runs: no
//! test depends on timing. A JoinGroup that has to wait for another member runs on
//! its own connection and thread.

mod common;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartitions;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ConsumerProtocolAssignment, ConsumerProtocolSubscription, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

/// No initial-rebalance delay, so that a first JoinGroup is answered at once, and a
/// minimum session timeout the INVALID_SESSION_TIMEOUT test can go below.
const GROUP_SETTINGS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
];

/// Session and rebalance timeout of every member: far longer than any test runs.
const SESSION_TIMEOUT_MS: i32 = 120_000;

// Kafka's error codes (org.apache.kafka.common.protocol.Errors).
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_METADATA_TOO_LARGE: i16 = 12;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const INVALID_REQUEST: i16 = 42;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// DescribeGroups `authorized_operations` when they were not asked for.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

// ---------------------------------------------------------------------------------------
// Building requests
// ---------------------------------------------------------------------------------------

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

fn topic(name: &str) -> TopicName {
    TopicName(text(name))
}

/// A consumer-protocol struct as Kafka clients put it in JoinGroup metadata and
/// SyncGroup assignments: an i16 version, then the struct at that version.
fn versioned<T: Encodable>(message: &T, version: i16) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    message
        .encode(&mut buffer, version)
        .expect("encode a consumer protocol struct");
    buffer.freeze()
}

/// The JoinGroup metadata of a consumer subscribed to `topics`.
fn subscription(topics: &[&str]) -> Bytes {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| text(t)).collect());
    versioned(&subscription, 1)
}

/// The SyncGroup assignment of `partitions` of one topic.
fn assignment(topic_name: &str, partitions: &[i32]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
        AssignedPartitions::default()
            .with_topic(topic(topic_name))
            .with_partitions(partitions.to_vec()),
    ]);
    versioned(&assignment, 1)
}

/// A JoinGroup of protocol type `protocol_type` offering `protocols` (name,
/// metadata) in order of preference.
fn join_request(
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
fn consumer_join(
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

fn join(client: &mut RawClient, version: i16, request: &JoinGroupRequest) -> JoinGroupResponse {
    client.request(ApiKey::JoinGroup, version, request)
}

/// A member as the tests track it.
#[derive(Debug, Clone)]
struct Member {
    id: String,
    generation: i32,
}

impl Member {
    fn from_join(response: &JoinGroupResponse) -> Member {
        Member {
            id: response.member_id.to_string(),
            generation: response.generation_id,
        }
    }
}

/// A first JoinGroup (v5) as modern clients make it: without a member id it gets
/// MEMBER_ID_REQUIRED and an id (KIP-394); the second join, with that id, is the
/// real one. Returns the second join's answer.
fn join_with_new_id(client: &mut RawClient, group_id: &str, metadata: &Bytes) -> JoinGroupResponse {
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

fn sync(
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
fn stable_group(
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
fn heartbeat(client: &mut RawClient, group_id: &str, member_id: &str, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_generation_id(generation);
    let response: HeartbeatResponse = client.request(ApiKey::Heartbeat, 4, &request);
    response.error_code
}

/// One partition of an OffsetCommit: topic, partition, offset, leader epoch, metadata.
type Commit<'a> = (&'a str, i32, i64, i32, &'a str);

/// A partition's offset without leader epoch or metadata.
fn at(topic_name: &str, partition: i32, offset: i64) -> Commit<'_> {
    (topic_name, partition, offset, -1, "")
}

/// An OffsetCommit of `offsets` (consecutive partitions of a topic go in one topic
/// entry). Returns (topic, partition, error code) per partition, in order.
fn commit(
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
type Fetched = (String, i32, i64, i32, String);

fn fetched(topic_name: &str, partition: i32, offset: i64, epoch: i32, metadata: &str) -> Fetched {
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
fn fetch(
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
fn committed_offsets(
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

fn describe(
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
fn group_state(client: &mut RawClient, group_id: &str) -> String {
    describe(client, 5, &[group_id], false)[0]
        .group_state
        .to_string()
}

fn list_groups(
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

fn listed_ids(groups: &[ListedGroup]) -> BTreeSet<String> {
    groups.iter().map(|g| g.group_id.to_string()).collect()
}

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

/// LeaveGroup v0 of one member; returns the error code.
fn leave_one(client: &mut RawClient, group_id: &str, member_id: &str) -> i16 {
    let request = LeaveGroupRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id));
    let response: LeaveGroupResponse = client.request(ApiKey::LeaveGroup, 0, &request);
    response.error_code
}

/// LeaveGroup v3+ of a batch of members (KIP-345).
fn leave_batch(
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
fn delete_groups(client: &mut RawClient, groups: &[&str]) -> Vec<(String, i16)> {
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
fn delete_offsets(
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
fn errors(expected: &[(&str, i32, i16)]) -> Vec<(String, i32, i16)> {
    expected
        .iter()
        .map(|&(t, p, e)| (t.to_string(), p, e))
        .collect()
}

/// Sends heartbeats until the broker answers one with REBALANCE_IN_PROGRESS: the
/// JoinGroup of another member, sent from another thread, has arrived.
fn heartbeat_until_rebalance(client: &mut RawClient, group_id: &str, member: &Member) {
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

// ---------------------------------------------------------------------------------------
// FindCoordinator
// ---------------------------------------------------------------------------------------

#[test]
fn find_coordinator_names_this_broker_and_creates_the_offsets_topic() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let port: i32 = bootstrap["127.0.0.1:".len()..].parse().expect("port");
    let mut client = RawClient::connect(&bootstrap);
    let metadata_request = MetadataRequest::default().with_topics(None);
    let metadata: MetadataResponse = client.request(ApiKey::Metadata, 12, &metadata_request);
    let node_id = metadata
        .brokers
        .first()
        .expect("one broker in metadata")
        .node_id;

    let single = |key_type: i8, key: &str| {
        FindCoordinatorRequest::default()
            .with_key_type(key_type)
            .with_key(text(key))
    };
    let response: FindCoordinatorResponse =
        client.request(ApiKey::FindCoordinator, 0, &single(0, "group-a"));
    assert_eq!(
        response.error_code, NONE,
        "FindCoordinator v0: {response:?}"
    );
    assert_eq!(response.node_id, node_id, "v0 coordinator node id");
    assert_eq!(response.host.as_str(), "127.0.0.1", "v0 coordinator host");
    assert_eq!(response.port, port, "v0 coordinator port");

    let response: FindCoordinatorResponse =
        client.request(ApiKey::FindCoordinator, 3, &single(0, "group-a"));
    assert_eq!(
        response.error_code, NONE,
        "FindCoordinator v3: {response:?}"
    );
    assert_eq!(
        (response.node_id, response.host.as_str(), response.port),
        (node_id, "127.0.0.1", port),
        "v3 coordinator"
    );
    let response: FindCoordinatorResponse =
        client.request(ApiKey::FindCoordinator, 3, &single(1, "transactional-id"));
    assert_eq!(
        response.error_code, COORDINATOR_NOT_AVAILABLE,
        "v3 transaction coordinator (transactions are not implemented): {response:?}"
    );
    let response: FindCoordinatorResponse =
        client.request(ApiKey::FindCoordinator, 3, &single(7, "group-a"));
    assert_eq!(
        response.error_code, INVALID_REQUEST,
        "v3 with an unknown key type: {response:?}"
    );

    for version in [4, 6] {
        let batched = |key_type: i8| {
            FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![text("group-a"), text("group-b")])
        };
        let response: FindCoordinatorResponse =
            client.request(ApiKey::FindCoordinator, version, &batched(0));
        let keys: Vec<&str> = response
            .coordinators
            .iter()
            .map(|c| c.key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["group-a", "group-b"],
            "v{version} keys: {response:?}"
        );
        for coordinator in &response.coordinators {
            assert_eq!(
                (
                    coordinator.error_code,
                    coordinator.node_id,
                    coordinator.host.as_str(),
                    coordinator.port
                ),
                (NONE, node_id, "127.0.0.1", port),
                "v{version} coordinator of {}",
                coordinator.key.as_str()
            );
        }
        for (key_type, expected) in [(1, COORDINATOR_NOT_AVAILABLE), (7, INVALID_REQUEST)] {
            let response: FindCoordinatorResponse =
                client.request(ApiKey::FindCoordinator, version, &batched(key_type));
            let codes: Vec<i16> = response.coordinators.iter().map(|c| c.error_code).collect();
            assert_eq!(
                codes,
                [expected, expected],
                "v{version} with key type {key_type}: {response:?}"
            );
        }
    }

    let metadata: MetadataResponse = client.request(ApiKey::Metadata, 12, &metadata_request);
    let offsets_topic = metadata
        .topics
        .iter()
        .find(|t| t.name.as_deref().map(|n| n.as_str()) == Some("__consumer_offsets"))
        .unwrap_or_else(|| panic!("__consumer_offsets not in metadata: {metadata:?}"));
    assert!(offsets_topic.is_internal, "__consumer_offsets is internal");
    assert_eq!(
        offsets_topic.error_code, NONE,
        "__consumer_offsets error code"
    );
    assert_eq!(
        offsets_topic.partitions.len(),
        50,
        "__consumer_offsets has offsets.topic.num.partitions (50) partitions"
    );
}

// ---------------------------------------------------------------------------------------
// JoinGroup, SyncGroup, Heartbeat
// ---------------------------------------------------------------------------------------

#[test]
fn first_member_gets_an_id_then_leads_generation_one() {
    let broker = Broker::start(GROUP_SETTINGS);
    let mut client = RawClient::connect(&broker.bootstrap());
    let metadata = subscription(&["orders"]);
    let assigned = assignment("orders", &[0, 1]);

    for version in [4, 7, 9] {
        let group_id = format!("kip-394-v{version}");
        let first = join(
            &mut client,
            version,
            &consumer_join(version, &group_id, "", &metadata),
        );
        assert_eq!(
            first.error_code, MEMBER_ID_REQUIRED,
            "JoinGroup v{version} without a member id: {first:?}"
        );
        assert!(
            first.member_id.starts_with("strata-e2e-"),
            "the member id starts with the client id: {first:?}"
        );
        let joined = join(
            &mut client,
            version,
            &consumer_join(version, &group_id, &first.member_id, &metadata),
        );
        assert_eq!(
            joined.error_code, NONE,
            "JoinGroup v{version} with the id: {joined:?}"
        );
        assert_eq!(
            joined.member_id, first.member_id,
            "v{version} member id kept"
        );
        assert_eq!(joined.generation_id, 1, "v{version} generation");
        assert_eq!(
            joined.leader, joined.member_id,
            "v{version}: the only member leads"
        );
        assert_eq!(joined.protocol_name.as_deref(), Some("range"));
        if version >= 7 {
            assert_eq!(
                joined.protocol_type.as_deref(),
                Some("consumer"),
                "v{version} protocol type"
            );
        }
        let members: Vec<(&str, &Bytes)> = joined
            .members
            .iter()
            .map(|m| (m.member_id.as_str(), &m.metadata))
            .collect();
        assert_eq!(
            members,
            [(joined.member_id.as_str(), &metadata)],
            "v{version}: the leader gets the member list with metadata"
        );

        let member = Member::from_join(&joined);
        let mut request = SyncGroupRequest::default()
            .with_group_id(group(&group_id))
            .with_generation_id(member.generation)
            .with_member_id(text(&member.id))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(text(&member.id))
                .with_assignment(assigned.clone())]);
        let sync_version = if version >= 7 { 5 } else { 3 };
        if sync_version >= 5 {
            request = request
                .with_protocol_type(Some(text("consumer")))
                .with_protocol_name(Some(text("range")));
        }
        let synced: SyncGroupResponse = client.request(ApiKey::SyncGroup, sync_version, &request);
        assert_eq!(
            synced.error_code, NONE,
            "SyncGroup v{sync_version}: {synced:?}"
        );
        assert_eq!(
            synced.assignment, assigned,
            "the leader gets its assignment back"
        );
        assert_eq!(
            heartbeat(&mut client, &group_id, &member.id, member.generation),
            NONE,
            "heartbeat of the member of a Stable group"
        );
        assert_eq!(group_state(&mut client, &group_id), "Stable");
    }

    // Before KIP-394 (v0–v3) a first join is a real join and gets its id at once.
    for version in [0, 3] {
        let group_id = format!("direct-v{version}");
        let joined = join(
            &mut client,
            version,
            &consumer_join(version, &group_id, "", &metadata),
        );
        assert_eq!(joined.error_code, NONE, "JoinGroup v{version}: {joined:?}");
        assert!(
            !joined.member_id.is_empty(),
            "v{version} member id: {joined:?}"
        );
        assert_eq!(joined.generation_id, 1, "v{version} generation");
        assert_eq!(joined.leader, joined.member_id, "v{version} leader");
        assert_eq!(joined.members.len(), 1, "v{version} members: {joined:?}");
    }
}

#[test]
fn second_member_joins_and_both_get_generation_two() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let mut first_client = RawClient::connect(&bootstrap);
    let first_metadata = subscription(&["orders"]);
    let second_metadata = subscription(&["orders", "payments"]);
    let first = stable_group(
        &mut first_client,
        "pair",
        &first_metadata,
        &assignment("orders", &[0, 1]),
    );

    // The second member's join waits for the first to rejoin: it runs on its own
    // connection and thread.
    let mut second_client = RawClient::connect(&bootstrap);
    let joining_metadata = second_metadata.clone();
    let second_join = thread::spawn(move || {
        let joined = join_with_new_id(&mut second_client, "pair", &joining_metadata);
        (second_client, joined)
    });
    heartbeat_until_rebalance(&mut first_client, "pair", &first);
    assert_eq!(group_state(&mut first_client, "pair"), "PreparingRebalance");

    let rejoined = join(
        &mut first_client,
        5,
        &consumer_join(5, "pair", &first.id, &first_metadata),
    );
    let (mut second_client, second_joined) = second_join.join().expect("second member's thread");
    assert_eq!(
        rejoined.error_code, NONE,
        "first member's rejoin: {rejoined:?}"
    );
    assert_eq!(
        second_joined.error_code, NONE,
        "second member's join: {second_joined:?}"
    );
    assert_eq!(rejoined.generation_id, 2, "first member's generation");
    assert_eq!(second_joined.generation_id, 2, "second member's generation");
    assert_eq!(
        rejoined.leader.as_str(),
        first.id,
        "the first member stays leader"
    );
    assert_eq!(
        second_joined.leader.as_str(),
        first.id,
        "the follower learns the leader"
    );
    assert!(
        second_joined.members.is_empty(),
        "a follower gets no member list"
    );
    let second = Member::from_join(&second_joined);
    let mut members: Vec<(String, Bytes)> = rejoined
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), m.metadata.clone()))
        .collect();
    members.sort();
    let mut expected = vec![
        (first.id.clone(), first_metadata.clone()),
        (second.id.clone(), second_metadata.clone()),
    ];
    expected.sort();
    assert_eq!(
        members, expected,
        "the leader's member list, with each one's metadata"
    );

    // The follower's SyncGroup waits for the leader's.
    let first = Member::from_join(&rejoined);
    let first_assignment = assignment("orders", &[0]);
    let second_assignment = assignment("orders", &[1]);
    let follower = second.clone();
    let second_sync = thread::spawn(move || {
        let synced = sync(&mut second_client, 4, "pair", &follower, &[]);
        (second_client, synced)
    });
    let synced = sync(
        &mut first_client,
        4,
        "pair",
        &first,
        &[
            (&first.id, &first_assignment),
            (&second.id, &second_assignment),
        ],
    );
    let (mut second_client, second_synced) = second_sync.join().expect("follower's thread");
    assert_eq!(synced.error_code, NONE, "leader's SyncGroup: {synced:?}");
    assert_eq!(synced.assignment, first_assignment, "leader's assignment");
    assert_eq!(
        second_synced.error_code, NONE,
        "follower's SyncGroup: {second_synced:?}"
    );
    assert_eq!(
        second_synced.assignment, second_assignment,
        "follower's assignment"
    );

    assert_eq!(heartbeat(&mut first_client, "pair", &first.id, 2), NONE);
    assert_eq!(heartbeat(&mut second_client, "pair", &second.id, 2), NONE);
    assert_eq!(
        heartbeat(&mut first_client, "pair", &first.id, 1),
        ILLEGAL_GENERATION,
        "heartbeat with the previous generation"
    );
    assert_eq!(group_state(&mut first_client, "pair"), "Stable");
}

#[test]
fn membership_errors_have_kafkas_codes() {
    let broker = Broker::start(GROUP_SETTINGS);
    let mut client = RawClient::connect(&broker.bootstrap());
    let metadata = subscription(&["orders"]);
    let member = stable_group(
        &mut client,
        "errors",
        &metadata,
        &assignment("orders", &[0]),
    );

    assert_eq!(
        heartbeat(&mut client, "errors", "no-such-member", member.generation),
        UNKNOWN_MEMBER_ID,
        "heartbeat of a member the group does not have"
    );
    assert_eq!(
        heartbeat(&mut client, "errors", &member.id, member.generation - 1),
        ILLEGAL_GENERATION,
        "heartbeat with a stale generation"
    );
    assert_eq!(
        heartbeat(&mut client, "errors", &member.id, member.generation + 1),
        ILLEGAL_GENERATION,
        "heartbeat with a generation the group has not reached"
    );

    let other_type = join(
        &mut client,
        5,
        &join_request(5, "errors", "", "connect", &[("range", &metadata)]),
    );
    assert_eq!(
        other_type.error_code, INCONSISTENT_GROUP_PROTOCOL,
        "a second member with another protocol type: {other_type:?}"
    );
    let no_common = join(
        &mut client,
        5,
        &join_request(5, "errors", "", "consumer", &[("roundrobin", &metadata)]),
    );
    assert_eq!(
        no_common.error_code, INCONSISTENT_GROUP_PROTOCOL,
        "a second member with no protocol in common: {no_common:?}"
    );

    let mut short_session = consumer_join(5, "short-session", "", &metadata);
    short_session.session_timeout_ms = 500;
    let response = join(&mut client, 5, &short_session);
    assert_eq!(
        response.error_code, INVALID_SESSION_TIMEOUT,
        "session timeout below group.min.session.timeout.ms: {response:?}"
    );

    let wrong_generation = Member {
        id: member.id.clone(),
        generation: member.generation + 5,
    };
    let response = sync(&mut client, 3, "errors", &wrong_generation, &[]);
    assert_eq!(
        response.error_code, ILLEGAL_GENERATION,
        "SyncGroup with a wrong generation: {response:?}"
    );
    let stranger = Member {
        id: "no-such-member".to_string(),
        generation: member.generation,
    };
    let response = sync(&mut client, 3, "errors", &stranger, &[]);
    assert_eq!(
        response.error_code, UNKNOWN_MEMBER_ID,
        "SyncGroup of a member the group does not have: {response:?}"
    );

    let response = join(
        &mut client,
        5,
        &consumer_join(5, "never-created", "ghost", &metadata),
    );
    assert_eq!(
        response.error_code, UNKNOWN_MEMBER_ID,
        "JoinGroup with a member id to a group that does not exist: {response:?}"
    );

    // None of this disturbed the member.
    assert_eq!(
        heartbeat(&mut client, "errors", &member.id, member.generation),
        NONE
    );
    assert_eq!(group_state(&mut client, "errors"), "Stable");
}

#[test]
fn empty_group_id_is_invalid_for_membership_apis() {
    let broker = Broker::start(GROUP_SETTINGS);
    let mut client = RawClient::connect(&broker.bootstrap());
    let metadata = subscription(&["orders"]);

    let response = join(&mut client, 5, &consumer_join(5, "", "", &metadata));
    assert_eq!(
        response.error_code, INVALID_GROUP_ID,
        "JoinGroup: {response:?}"
    );
    assert_eq!(
        heartbeat(&mut client, "", "some-member", 1),
        INVALID_GROUP_ID,
        "Heartbeat"
    );
    let member = Member {
        id: "some-member".to_string(),
        generation: 1,
    };
    let response = sync(&mut client, 3, "", &member, &[]);
    assert_eq!(
        response.error_code, INVALID_GROUP_ID,
        "SyncGroup: {response:?}"
    );
    assert_eq!(
        leave_one(&mut client, "", "some-member"),
        INVALID_GROUP_ID,
        "LeaveGroup"
    );
}

// ---------------------------------------------------------------------------------------
// OffsetCommit and OffsetFetch
// ---------------------------------------------------------------------------------------

#[test]
fn offset_commit_checks_member_generation_partitions_and_metadata() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 2);
    let mut client = RawClient::connect(&bootstrap);
    let member = stable_group(
        &mut client,
        "committer",
        &subscription(&["orders"]),
        &assignment("orders", &[0, 1]),
    );
    let (id, generation) = (member.id.as_str(), member.generation);

    for (version, offset) in [(2, 10), (8, 11), (9, 12)] {
        let results = commit(
            &mut client,
            version,
            "committer",
            id,
            generation,
            &[at("orders", 0, offset)],
        );
        assert_eq!(
            results,
            errors(&[("orders", 0, NONE)]),
            "OffsetCommit v{version} by the member"
        );
        assert_eq!(
            committed_offsets(&mut client, "committer", "orders", &[0]),
            [offset]
        );
    }

    let stale = commit(
        &mut client,
        8,
        "committer",
        id,
        generation - 1,
        &[at("orders", 0, 99)],
    );
    assert_eq!(
        stale,
        errors(&[("orders", 0, ILLEGAL_GENERATION)]),
        "stale generation"
    );
    let unknown = commit(
        &mut client,
        8,
        "committer",
        "no-such-member",
        generation,
        &[at("orders", 0, 99)],
    );
    assert_eq!(
        unknown,
        errors(&[("orders", 0, UNKNOWN_MEMBER_ID)]),
        "unknown member"
    );
    let standalone = commit(&mut client, 8, "committer", "", -1, &[at("orders", 0, 99)]);
    assert_eq!(
        standalone,
        errors(&[("orders", 0, UNKNOWN_MEMBER_ID)]),
        "a commit without member id and generation to a group with members"
    );
    assert_eq!(
        committed_offsets(&mut client, "committer", "orders", &[0]),
        [12],
        "refused commits change nothing"
    );

    let mixed = commit(
        &mut client,
        8,
        "committer",
        id,
        generation,
        &[
            at("orders", 0, 20),
            at("orders", 7, 20),
            at("no-such-topic", 0, 20),
        ],
    );
    assert_eq!(
        mixed,
        errors(&[
            ("orders", 0, NONE),
            ("orders", 7, UNKNOWN_TOPIC_OR_PARTITION),
            ("no-such-topic", 0, UNKNOWN_TOPIC_OR_PARTITION),
        ]),
        "unknown partitions fail alone"
    );
    assert_eq!(
        committed_offsets(&mut client, "committer", "orders", &[0]),
        [20]
    );

    // offset.metadata.max.bytes is 4096 by default.
    let longest = "m".repeat(4096);
    let too_long = "m".repeat(4097);
    let results = commit(
        &mut client,
        8,
        "committer",
        id,
        generation,
        &[
            ("orders", 0, 30, -1, &longest),
            ("orders", 1, 30, -1, &too_long),
        ],
    );
    assert_eq!(
        results,
        errors(&[
            ("orders", 0, NONE),
            ("orders", 1, OFFSET_METADATA_TOO_LARGE)
        ]),
        "metadata of 4096 and 4097 bytes"
    );
    let offsets = fetch(&mut client, 1, "committer", Some(&[("orders", &[0, 1])]));
    assert_eq!(
        offsets,
        [
            fetched("orders", 0, 30, -1, &longest),
            fetched("orders", 1, -1, -1, "")
        ],
        "the partition with too much metadata keeps no offset"
    );

    let results = commit(&mut client, 8, "standalone", "", -1, &[at("orders", 1, 5)]);
    assert_eq!(
        results,
        errors(&[("orders", 1, NONE)]),
        "a commit without member id and generation creates a new group"
    );
    assert_eq!(
        committed_offsets(&mut client, "standalone", "orders", &[1]),
        [5]
    );
    assert_eq!(group_state(&mut client, "standalone"), "Empty");
}

/// Kafka keeps the empty group id usable where older clients and tools used it:
/// its coordinator's `isValidGroupId` exempts OffsetCommit, OffsetFetch,
/// DescribeGroups and DeleteGroups from the non-empty rule ("for backwards
/// compatibility"), so "" is an ordinary group id there. Every check is made before
/// the test fails, so that one failure names all the differences.
#[test]
fn empty_group_id_is_an_ordinary_group_for_offsets_and_admin_apis() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    let mut client = RawClient::connect(&bootstrap);
    let mut differences: Vec<String> = Vec::new();
    let mut check = |what: &str, expected: String, actual: String| {
        if expected != actual {
            differences.push(format!("{what}: expected {expected}, got {actual}"));
        }
    };

    let before = &describe(&mut client, 5, &[""], false)[0];
    check(
        "DescribeGroups v5 of \"\" before any commit (error, state)",
        format!("{:?}", (NONE, "Dead")),
        format!("{:?}", (before.error_code, before.group_state.as_str())),
    );
    check(
        "DeleteGroups of \"\" that does not exist",
        format!("{:?}", [("".to_string(), GROUP_ID_NOT_FOUND)]),
        format!("{:?}", delete_groups(&mut client, &[""])),
    );
    check(
        "standalone OffsetCommit v8 to \"\"",
        format!("{:?}", errors(&[("orders", 0, NONE)])),
        format!(
            "{:?}",
            commit(&mut client, 8, "", "", -1, &[at("orders", 0, 3)])
        ),
    );
    check(
        "OffsetFetch v1 of \"\" after the commit",
        format!("{:?}", [3]),
        format!("{:?}", committed_offsets(&mut client, "", "orders", &[0])),
    );
    let after = &describe(&mut client, 5, &[""], false)[0];
    check(
        "DescribeGroups v5 of \"\" after the commit (error, state)",
        format!("{:?}", (NONE, "Empty")),
        format!("{:?}", (after.error_code, after.group_state.as_str())),
    );
    assert!(
        differences.is_empty(),
        "the empty group id differs from Kafka:\n{}",
        differences.join("\n")
    );
}

#[test]
fn offset_fetch_answers_every_version_and_form() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 3);
    create_topic(&bootstrap, "payments", 1);
    let mut client = RawClient::connect(&bootstrap);
    let results = commit(
        &mut client,
        8,
        "reader",
        "",
        -1,
        &[
            ("orders", 0, 5, 3, "at five"),
            ("orders", 1, 6, 4, "at six"),
            ("payments", 0, 7, 1, ""),
        ],
    );
    assert_eq!(
        results,
        errors(&[
            ("orders", 0, NONE),
            ("orders", 1, NONE),
            ("payments", 0, NONE)
        ])
    );

    let asked: &[(&str, &[i32])] = &[("orders", &[0, 1, 2, 9]), ("no-such-topic", &[0])];
    assert_eq!(
        fetch(&mut client, 1, "reader", Some(asked)),
        [
            fetched("orders", 0, 5, -1, "at five"),
            fetched("orders", 1, 6, -1, "at six"),
            fetched("orders", 2, -1, -1, ""),
            fetched("orders", 9, -1, -1, ""),
            fetched("no-such-topic", 0, -1, -1, ""),
        ],
        "OffsetFetch v1: listed partitions, -1 where nothing is committed"
    );
    assert_eq!(
        fetch(&mut client, 5, "reader", Some(&[("orders", &[0, 1, 2])])),
        [
            fetched("orders", 0, 5, 3, "at five"),
            fetched("orders", 1, 6, 4, "at six"),
            fetched("orders", 2, -1, -1, ""),
        ],
        "OffsetFetch v5 returns the committed leader epoch"
    );
    let mut all = fetch(&mut client, 7, "reader", None);
    all.sort();
    assert_eq!(
        all,
        [
            fetched("orders", 0, 5, 3, "at five"),
            fetched("orders", 1, 6, 4, "at six"),
            fetched("payments", 0, 7, 1, ""),
        ],
        "OffsetFetch v7 with null topics: every committed offset"
    );
    assert!(
        fetch(&mut client, 7, "never-committed", None).is_empty(),
        "every committed offset of a group that has none"
    );

    // v8: several groups in one request.
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group("reader"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0, 2])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(group("never-committed"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(topic("orders"))
                .with_partition_indexes(vec![0])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(group("reader"))
            .with_topics(None),
    ]);
    let response: OffsetFetchResponse = client.request(ApiKey::OffsetFetch, 8, &request);
    let groups: Vec<(String, i16, Vec<Fetched>)> = response
        .groups
        .iter()
        .map(|g| {
            let mut offsets: Vec<Fetched> = g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        assert_eq!(p.error_code, NONE, "v8 partition error: {response:?}");
                        fetched(
                            t.name.as_str(),
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.as_deref().unwrap_or_default(),
                        )
                    })
                })
                .collect();
            offsets.sort();
            (g.group_id.to_string(), g.error_code, offsets)
        })
        .collect();
    assert_eq!(
        groups,
        [
            (
                "reader".to_string(),
                NONE,
                vec![
                    fetched("orders", 0, 5, 3, "at five"),
                    fetched("orders", 2, -1, -1, ""),
                ]
            ),
            (
                "never-committed".to_string(),
                NONE,
                vec![fetched("orders", 0, -1, -1, "")]
            ),
            (
                "reader".to_string(),
                NONE,
                vec![
                    fetched("orders", 0, 5, 3, "at five"),
                    fetched("orders", 1, 6, 4, "at six"),
                    fetched("payments", 0, 7, 1, ""),
                ]
            ),
        ],
        "OffsetFetch v8 with three groups"
    );
}

// ---------------------------------------------------------------------------------------
// ListGroups and DescribeGroups
// ---------------------------------------------------------------------------------------

#[test]
fn list_groups_filters_by_state_and_type() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    let mut client = RawClient::connect(&bootstrap);
    stable_group(
        &mut client,
        "busy",
        &subscription(&["orders"]),
        &assignment("orders", &[0]),
    );
    let results = commit(&mut client, 8, "idle", "", -1, &[at("orders", 0, 1)]);
    assert_eq!(results, errors(&[("orders", 0, NONE)]));

    let all = list_groups(&mut client, 0, &[], &[]);
    assert_eq!(
        listed_ids(&all),
        ids(&["busy", "idle"]),
        "ListGroups v0: {all:?}"
    );
    let busy = all
        .iter()
        .find(|g| g.group_id.as_str() == "busy")
        .expect("busy listed");
    assert_eq!(
        busy.protocol_type.as_str(),
        "consumer",
        "protocol type of busy"
    );

    let stable = list_groups(&mut client, 4, &["stable"], &[]);
    assert_eq!(
        listed_ids(&stable),
        ids(&["busy"]),
        "states [stable]: {stable:?}"
    );
    assert_eq!(
        stable[0].group_state.as_str(),
        "Stable",
        "v4 reports the state"
    );
    let empty = list_groups(&mut client, 4, &["Empty"], &[]);
    assert_eq!(
        listed_ids(&empty),
        ids(&["idle"]),
        "states [Empty]: {empty:?}"
    );
    assert_eq!(empty[0].group_state.as_str(), "Empty");
    let both = list_groups(&mut client, 4, &["STABLE", "empty"], &[]);
    assert_eq!(
        listed_ids(&both),
        ids(&["busy", "idle"]),
        "states [STABLE, empty]"
    );
    let none = list_groups(&mut client, 4, &["PreparingRebalance"], &[]);
    assert!(none.is_empty(), "states [PreparingRebalance]: {none:?}");

    let classic = list_groups(&mut client, 5, &[], &["classic"]);
    assert_eq!(
        listed_ids(&classic),
        ids(&["busy", "idle"]),
        "types [classic]"
    );
    assert!(
        classic.iter().all(|g| g.group_type.as_str() == "classic"),
        "v5 group types: {classic:?}"
    );
    let consumer = list_groups(&mut client, 5, &[], &["consumer"]);
    assert!(
        consumer.is_empty(),
        "types [consumer] (KIP-848 groups) lists no classic group: {consumer:?}"
    );
}

#[test]
fn describe_groups_shows_members_and_unknown_groups() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 2);
    let mut client = RawClient::connect(&bootstrap);
    let metadata = subscription(&["orders"]);
    let assigned = assignment("orders", &[0, 1]);
    let member = stable_group(&mut client, "described", &metadata, &assigned);
    let results = commit(&mut client, 8, "idle", "", -1, &[at("orders", 0, 1)]);
    assert_eq!(results, errors(&[("orders", 0, NONE)]));

    for version in [0, 3, 5] {
        let groups = describe(
            &mut client,
            version,
            &["described", "idle", "unknown"],
            false,
        );
        let described = &groups[0];
        assert_eq!(described.error_code, NONE, "v{version}: {described:?}");
        assert_eq!(described.group_id.as_str(), "described");
        assert_eq!(described.group_state.as_str(), "Stable", "v{version} state");
        assert_eq!(
            described.protocol_type.as_str(),
            "consumer",
            "v{version} protocol type"
        );
        assert_eq!(
            described.protocol_data.as_str(),
            "range",
            "v{version} protocol"
        );
        assert_eq!(
            described.members.len(),
            1,
            "v{version} members: {described:?}"
        );
        let described_member = &described.members[0];
        assert_eq!(
            described_member.member_id.as_str(),
            member.id,
            "v{version} member id"
        );
        assert_eq!(
            described_member.client_id.as_str(),
            "strata-e2e",
            "v{version} client id"
        );
        assert_eq!(
            described_member.client_host.as_str(),
            "/127.0.0.1",
            "v{version} client host"
        );
        assert_eq!(
            described_member.member_metadata, metadata,
            "v{version} metadata"
        );
        assert_eq!(
            described_member.member_assignment, assigned,
            "v{version} assignment"
        );

        let idle = &groups[1];
        assert_eq!(
            (
                idle.error_code,
                idle.group_state.as_str(),
                idle.members.len()
            ),
            (NONE, "Empty", 0),
            "v{version} group with offsets only: {idle:?}"
        );
        let unknown = &groups[2];
        assert_eq!(
            (
                unknown.error_code,
                unknown.group_state.as_str(),
                unknown.members.len()
            ),
            (NONE, "Dead", 0),
            "v{version} unknown group: Dead without error before v6: {unknown:?}"
        );
        if version >= 3 {
            assert!(
                groups
                    .iter()
                    .all(|g| g.authorized_operations == OPERATIONS_NOT_REQUESTED),
                "v{version} authorized operations not asked for: {groups:?}"
            );
            let asked = describe(&mut client, version, &["described"], true);
            assert_ne!(
                asked[0].authorized_operations, OPERATIONS_NOT_REQUESTED,
                "v{version} authorized operations asked for: {asked:?}"
            );
        }
    }

    let groups = describe(&mut client, 6, &["described", "unknown"], false);
    assert_eq!(groups[0].error_code, NONE, "v6 known group: {groups:?}");
    assert_eq!(groups[0].group_state.as_str(), "Stable");
    assert_eq!(
        groups[1].error_code, GROUP_ID_NOT_FOUND,
        "v6 unknown group (KIP-1043): {groups:?}"
    );
}

// ---------------------------------------------------------------------------------------
// LeaveGroup, DeleteGroups, OffsetDelete
// ---------------------------------------------------------------------------------------

#[test]
fn leave_group_single_and_batched() {
    let broker = Broker::start(GROUP_SETTINGS);
    let mut client = RawClient::connect(&broker.bootstrap());
    let metadata = subscription(&["orders"]);
    let assigned = assignment("orders", &[0]);

    let single = stable_group(&mut client, "single", &metadata, &assigned);
    assert_eq!(
        leave_one(&mut client, "single", "no-such-member"),
        UNKNOWN_MEMBER_ID,
        "LeaveGroup v0 of an unknown member"
    );
    assert_eq!(group_state(&mut client, "single"), "Stable", "still Stable");
    assert_eq!(
        leave_one(&mut client, "single", &single.id),
        NONE,
        "LeaveGroup v0"
    );
    assert_eq!(
        group_state(&mut client, "single"),
        "Empty",
        "after its only member left"
    );
    assert_eq!(
        heartbeat(&mut client, "single", &single.id, single.generation),
        UNKNOWN_MEMBER_ID,
        "heartbeat of the member that left"
    );

    for version in [3, 5] {
        let group_id = format!("batch-v{version}");
        let member = stable_group(&mut client, &group_id, &metadata, &assigned);
        let response = leave_batch(
            &mut client,
            version,
            &group_id,
            &[&member.id, "no-such-member"],
        );
        assert_eq!(
            response.error_code, NONE,
            "v{version} top-level error: {response:?}"
        );
        let results: Vec<(&str, i16)> = response
            .members
            .iter()
            .map(|m| (m.member_id.as_str(), m.error_code))
            .collect();
        assert_eq!(
            results,
            [
                (member.id.as_str(), NONE),
                ("no-such-member", UNKNOWN_MEMBER_ID)
            ],
            "LeaveGroup v{version} per-member errors"
        );
        assert_eq!(
            group_state(&mut client, &group_id),
            "Empty",
            "v{version} group after leave"
        );
    }
}

#[test]
fn delete_groups_only_deletes_empty_groups() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    let mut client = RawClient::connect(&bootstrap);
    let member = stable_group(
        &mut client,
        "busy",
        &subscription(&["orders"]),
        &assignment("orders", &[0]),
    );
    let results = commit(
        &mut client,
        8,
        "busy",
        &member.id,
        member.generation,
        &[at("orders", 0, 4)],
    );
    assert_eq!(results, errors(&[("orders", 0, NONE)]));
    let results = commit(&mut client, 8, "idle", "", -1, &[at("orders", 0, 9)]);
    assert_eq!(results, errors(&[("orders", 0, NONE)]));

    assert_eq!(
        delete_groups(&mut client, &["busy", "idle", "unknown"]),
        [
            ("busy".to_string(), NON_EMPTY_GROUP),
            ("idle".to_string(), NONE),
            ("unknown".to_string(), GROUP_ID_NOT_FOUND),
        ],
        "DeleteGroups of a group with a member, an empty one and an unknown one"
    );
    assert_eq!(
        committed_offsets(&mut client, "idle", "orders", &[0]),
        [-1],
        "the deleted group's offsets are gone"
    );
    assert_eq!(
        listed_ids(&list_groups(&mut client, 0, &[], &[])),
        ids(&["busy"]),
        "ListGroups after the delete"
    );
    assert_eq!(group_state(&mut client, "idle"), "Dead");

    assert_eq!(leave_one(&mut client, "busy", &member.id), NONE);
    assert_eq!(
        delete_groups(&mut client, &["busy"]),
        [("busy".to_string(), NONE)],
        "DeleteGroups once the member left"
    );
    assert_eq!(committed_offsets(&mut client, "busy", "orders", &[0]), [-1]);
    assert!(
        list_groups(&mut client, 0, &[], &[]).is_empty(),
        "no group left"
    );
}

#[test]
fn offset_delete_keeps_offsets_of_subscribed_topics() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "subscribed", 2);
    create_topic(&bootstrap, "other", 1);
    let mut client = RawClient::connect(&bootstrap);
    let member = stable_group(
        &mut client,
        "pruned",
        &subscription(&["subscribed"]),
        &assignment("subscribed", &[0, 1]),
    );
    let results = commit(
        &mut client,
        8,
        "pruned",
        &member.id,
        member.generation,
        &[
            at("subscribed", 0, 10),
            at("subscribed", 1, 11),
            at("other", 0, 12),
        ],
    );
    assert_eq!(
        results,
        errors(&[
            ("subscribed", 0, NONE),
            ("subscribed", 1, NONE),
            ("other", 0, NONE)
        ])
    );

    let (error, partitions) = delete_offsets(
        &mut client,
        "pruned",
        &[("subscribed", &[0, 1]), ("other", &[0])],
    );
    assert_eq!(error, NONE, "OffsetDelete top-level error");
    assert_eq!(
        partitions,
        errors(&[
            ("subscribed", 0, GROUP_SUBSCRIBED_TO_TOPIC),
            ("subscribed", 1, GROUP_SUBSCRIBED_TO_TOPIC),
            ("other", 0, NONE),
        ]),
        "OffsetDelete while a member subscribes to one of the topics"
    );
    assert_eq!(
        committed_offsets(&mut client, "pruned", "subscribed", &[0, 1]),
        [10, 11]
    );
    assert_eq!(
        committed_offsets(&mut client, "pruned", "other", &[0]),
        [-1],
        "the unsubscribed topic's offset is gone"
    );

    let (error, _) = delete_offsets(&mut client, "unknown", &[("other", &[0])]);
    assert_eq!(
        error, GROUP_ID_NOT_FOUND,
        "OffsetDelete of an unknown group"
    );

    assert_eq!(leave_one(&mut client, "pruned", &member.id), NONE);
    let (error, partitions) = delete_offsets(&mut client, "pruned", &[("subscribed", &[0])]);
    assert_eq!(error, NONE, "OffsetDelete of the Empty group");
    assert_eq!(partitions, errors(&[("subscribed", 0, NONE)]));
    assert_eq!(
        committed_offsets(&mut client, "pruned", "subscribed", &[0, 1]),
        [-1, 11],
        "only the deleted partition's offset is gone"
    );
}

// ---------------------------------------------------------------------------------------
// Restarts
// ---------------------------------------------------------------------------------------

/// What the tests expect of the groups after each restart.
fn assert_groups_restored(
    broker: &Broker,
    member: &Member,
    metadata: &Bytes,
    assigned: &Bytes,
    busy_offset: i64,
    after: &str,
) -> RawClient {
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        fetch(&mut client, 5, "busy", Some(&[("orders", &[0, 1])])),
        [
            fetched("orders", 0, busy_offset, 2, "before restart"),
            fetched("orders", 1, -1, -1, ""),
        ],
        "busy's offsets after {after}"
    );
    assert_eq!(
        committed_offsets(&mut client, "idle", "orders", &[1]),
        [7],
        "idle's offset after {after}"
    );

    let groups = describe(&mut client, 5, &["busy", "idle"], false);
    let busy = &groups[0];
    assert_eq!(
        busy.group_state.as_str(),
        "Stable",
        "busy after {after}: {busy:?}"
    );
    assert_eq!(
        busy.protocol_type.as_str(),
        "consumer",
        "busy's protocol type after {after}"
    );
    assert_eq!(
        busy.protocol_data.as_str(),
        "range",
        "busy's protocol after {after}"
    );
    let members: Vec<(&str, &str, &Bytes, &Bytes)> = busy
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.as_str(),
                m.client_host.as_str(),
                &m.member_metadata,
                &m.member_assignment,
            )
        })
        .collect();
    assert_eq!(
        members,
        [(member.id.as_str(), "/127.0.0.1", metadata, assigned)],
        "busy's member after {after}"
    );
    let idle = &groups[1];
    assert_eq!(
        (idle.group_state.as_str(), idle.members.len()),
        ("Empty", 0),
        "idle after {after}: {idle:?}"
    );
    assert_eq!(
        heartbeat(&mut client, "busy", &member.id, member.generation),
        NONE,
        "the member heartbeats on with its generation after {after}"
    );
    client
}

#[test]
fn committed_offsets_and_groups_survive_sigterm_and_kill9() {
    let mut broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 2);
    let mut client = RawClient::connect(&bootstrap);
    let metadata = subscription(&["orders"]);
    let assigned = assignment("orders", &[0, 1]);
    let member = stable_group(&mut client, "busy", &metadata, &assigned);
    let results = commit(
        &mut client,
        8,
        "busy",
        &member.id,
        member.generation,
        &[("orders", 0, 42, 2, "before restart")],
    );
    assert_eq!(results, errors(&[("orders", 0, NONE)]));
    let results = commit(&mut client, 8, "idle", "", -1, &[at("orders", 1, 7)]);
    assert_eq!(results, errors(&[("orders", 1, NONE)]));
    drop(client);

    broker.stop_sigterm();
    broker.restart();
    let mut client = assert_groups_restored(&broker, &member, &metadata, &assigned, 42, "SIGTERM");

    let results = commit(
        &mut client,
        8,
        "busy",
        &member.id,
        member.generation,
        &[("orders", 0, 43, 2, "before restart")],
    );
    assert_eq!(
        results,
        errors(&[("orders", 0, NONE)]),
        "commit after the restart"
    );
    drop(client);

    broker.kill9();
    broker.restart();
    assert_groups_restored(&broker, &member, &metadata, &assigned, 43, "kill -9");
}
