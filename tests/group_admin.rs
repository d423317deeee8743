//! Group administration through librdkafka (the rdkafka crate): ListGroups and
//! DescribeGroups behind `fetch_group_list`, and DeleteGroups behind
//! `AdminClient::delete_groups`. OffsetDelete is not in rdkafka 0.39's API; the
//! kafka-python test `kafka_python_group_admin.py` covers it.

mod common;

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use common::*;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;
use rdkafka::consumer::BaseConsumer;
use rdkafka::groups::GroupInfo;
use rdkafka::topic_partition_list::Offset;
use rdkafka::types::RDKafkaErrorCode;

/// No initial-rebalance delay: a lone member gets its assignment at once.
const GROUP_SETTINGS: &[&str] = &["group.initial.rebalance.delay.ms=0"];

/// ListGroups + DescribeGroups through librdkafka: the description of `group`, or
/// `None` when ListGroups does not list it.
fn describe(bootstrap: &str, group: &str) -> Option<GroupSummary> {
    let client: BaseConsumer = client_config(bootstrap)
        .create()
        .expect("create an rdkafka client");
    let list = client
        .fetch_group_list(Some(group), TIMEOUT)
        .expect("fetch_group_list");
    let mut found: Vec<GroupSummary> = list
        .groups()
        .iter()
        .filter(|g| g.name() == group)
        .map(GroupSummary::from)
        .collect();
    assert!(found.len() <= 1, "{group} listed twice: {found:?}");
    found.pop()
}

/// What the tests check of a described group, copied out of librdkafka's list.
#[derive(Debug)]
struct GroupSummary {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberSummary>,
}

#[derive(Debug)]
struct MemberSummary {
    member_id: String,
    client_id: String,
    client_host: String,
    /// Topics of the member's subscription (its JoinGroup metadata).
    subscribed: Vec<String>,
    /// Topic → partitions of the member's assignment (its SyncGroup assignment).
    assigned: BTreeMap<String, Vec<i32>>,
}

impl From<&GroupInfo> for GroupSummary {
    fn from(group: &GroupInfo) -> GroupSummary {
        GroupSummary {
            state: group.state().to_string(),
            protocol_type: group.protocol_type().to_string(),
            protocol: group.protocol().to_string(),
            members: group
                .members()
                .iter()
                .map(|member| MemberSummary {
                    member_id: member.id().to_string(),
                    client_id: member.client_id().to_string(),
                    client_host: member.client_host().to_string(),
                    subscribed: decode_subscription(member.metadata().unwrap_or_default()),
                    assigned: decode_assignment(member.assignment().unwrap_or_default()),
                })
                .collect(),
        }
    }
}

/// Splits the consumer protocol's leading version off `bytes`. Versions newer than
/// kafka-protocol knows only append fields, so they decode as its newest one.
fn consumer_protocol_version(bytes: &mut Bytes, newest: i16) -> i16 {
    assert!(
        bytes.len() >= 2,
        "consumer protocol bytes too short: {bytes:?}"
    );
    bytes.get_i16().min(newest)
}

fn decode_subscription(bytes: &[u8]) -> Vec<String> {
    let mut bytes = Bytes::copy_from_slice(bytes);
    let version = consumer_protocol_version(&mut bytes, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut bytes, version)
        .expect("decode the member's subscription");
    subscription.topics.iter().map(|t| t.to_string()).collect()
}

fn decode_assignment(bytes: &[u8]) -> BTreeMap<String, Vec<i32>> {
    let mut bytes = Bytes::copy_from_slice(bytes);
    let version = consumer_protocol_version(&mut bytes, 3);
    let assignment = ConsumerProtocolAssignment::decode(&mut bytes, version)
        .expect("decode the member's assignment");
    assignment
        .assigned_partitions
        .iter()
        .map(|t| {
            let mut partitions = t.partitions.clone();
            partitions.sort_unstable();
            (t.topic.to_string(), partitions)
        })
        .collect()
}

#[test]
fn describe_groups_shows_members_subscriptions_and_assignments() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("describe");
    let group = unique_topic("describe-group");
    let simple_group = unique_topic("simple-group");
    create_topic(&bootstrap, &topic, 3);

    let consumer = group_member(&bootstrap, &group, "strata-e2e-describe", &topic);
    poll_until_assigned(&consumer, 3);

    let described = describe(&bootstrap, &group).expect("the active group is listed");
    assert_eq!(described.state, "Stable", "{described:?}");
    assert_eq!(described.protocol_type, "consumer", "{described:?}");
    // librdkafka's default partition.assignment.strategy is "range,roundrobin".
    assert_eq!(described.protocol, "range", "{described:?}");
    assert_eq!(described.members.len(), 1, "{described:?}");
    let member = &described.members[0];
    assert!(!member.member_id.is_empty(), "{member:?}");
    assert_eq!(member.client_id, "strata-e2e-describe", "{member:?}");
    assert_eq!(member.client_host, "/127.0.0.1", "{member:?}");
    assert_eq!(member.subscribed, vec![topic.clone()], "{member:?}");
    assert_eq!(
        member.assigned,
        BTreeMap::from([(topic.clone(), vec![0, 1, 2])]),
        "{member:?}"
    );

    // A group that only ever committed offsets (assign() style) has no protocol
    // type and no members, and is Empty.
    commit_outside_group(&bootstrap, &simple_group, &topic, &[(0, 5)]);
    let described = describe(&bootstrap, &simple_group).expect("the simple group is listed");
    assert_eq!(described.state, "Empty", "{described:?}");
    assert_eq!(described.protocol_type, "", "{described:?}");
    assert!(described.members.is_empty(), "{described:?}");

    // Without a group name, librdkafka lists and describes every group.
    let client: BaseConsumer = client_config(&bootstrap)
        .create()
        .expect("create an rdkafka client");
    let all = client
        .fetch_group_list(None, TIMEOUT)
        .expect("fetch_group_list");
    let mut names: Vec<&str> = all.groups().iter().map(|g| g.name()).collect();
    names.sort_unstable();
    let mut expected = vec![group.as_str(), simple_group.as_str()];
    expected.sort_unstable();
    assert_eq!(names, expected, "all groups");

    // Closing the consumer sends LeaveGroup: the group stays, Empty, still a
    // consumer group.
    drop(consumer);
    let described = describe(&bootstrap, &group).expect("the empty group is listed");
    assert_eq!(described.state, "Empty", "{described:?}");
    assert_eq!(described.protocol_type, "consumer", "{described:?}");
    assert!(described.members.is_empty(), "{described:?}");
}

#[test]
fn delete_groups_deletes_empty_groups_with_their_offsets_only() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("delete-groups");
    let empty_group = unique_topic("empty-group");
    let active_group = unique_topic("active-group");
    let missing_group = unique_topic("missing-group");
    create_topic(&bootstrap, &topic, 2);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "p0", 10);
    produce_numbered(&producer, &topic, 1, "p1", 10);

    commit_outside_group(&bootstrap, &empty_group, &topic, &[(0, 3), (1, 7)]);
    assert_eq!(
        committed_offsets_of(&bootstrap, &empty_group, &topic, &[0, 1]),
        vec![Offset::Offset(3), Offset::Offset(7)]
    );

    let member = group_member(&bootstrap, &active_group, "strata-e2e-active", &topic);
    poll_until_assigned(&member, 2);
    commit_as_member(&member, &topic, &[(0, 4), (1, 6)]);

    let admin = admin_client(&bootstrap);
    let results = block_on(admin.delete_groups(
        &[&empty_group, &active_group, &missing_group],
        &admin_options(),
    ))
    .expect("DeleteGroups");
    let mut by_group: BTreeMap<String, Result<(), RDKafkaErrorCode>> = results
        .into_iter()
        .map(|result| match result {
            Ok(name) => (name, Ok(())),
            Err((name, code)) => (name, Err(code)),
        })
        .collect();
    assert_eq!(by_group.remove(&empty_group), Some(Ok(())), "empty group");
    assert_eq!(
        by_group.remove(&active_group),
        Some(Err(RDKafkaErrorCode::NonEmptyGroup)),
        "group with an active member"
    );
    assert_eq!(
        by_group.remove(&missing_group),
        Some(Err(RDKafkaErrorCode::GroupIdNotFound)),
        "group that never existed"
    );
    assert!(
        by_group.is_empty(),
        "results for other groups: {by_group:?}"
    );

    // The deleted group's offsets are gone, and ListGroups no longer lists it.
    assert_eq!(
        committed_offsets_of(&bootstrap, &empty_group, &topic, &[0, 1]),
        vec![Offset::Invalid, Offset::Invalid]
    );
    assert!(
        describe(&bootstrap, &empty_group).is_none(),
        "the deleted group is still listed"
    );
    // The refused deletion left the active group alone.
    let described = describe(&bootstrap, &active_group).expect("the active group is listed");
    assert_eq!(described.state, "Stable", "{described:?}");
    assert_eq!(described.members.len(), 1, "{described:?}");
    assert_eq!(
        committed_offsets_of(&bootstrap, &active_group, &topic, &[0, 1]),
        vec![Offset::Offset(4), Offset::Offset(6)]
    );

    // Once its member left, that group can be deleted too.
    drop(member);
    let results =
        block_on(admin.delete_groups(&[&active_group], &admin_options())).expect("DeleteGroups");
    assert_eq!(results, vec![Ok(active_group.clone())]);
    assert_eq!(
        committed_offsets_of(&bootstrap, &active_group, &topic, &[0, 1]),
        vec![Offset::Invalid, Offset::Invalid]
    );
    assert!(
        describe(&bootstrap, &active_group).is_none(),
        "the deleted group is still listed"
    );

    // A new member of a deleted group starts over from auto.offset.reset.
    let consumer = group_member(&bootstrap, &active_group, "strata-e2e-after", &topic);
    let received = consume_n(&consumer, 20);
    let mut first_offsets = BTreeMap::new();
    for message in &received {
        first_offsets
            .entry(message.partition)
            .or_insert(message.offset);
    }
    assert_eq!(first_offsets, BTreeMap::from([(0, 0), (1, 0)]));
}
