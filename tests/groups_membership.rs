//! The consumer group membership APIs on the wire, request by request, with the raw
//! client: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups
//! and DescribeGroups, at old and new versions. Every answer is checked against what
//! Kafka's classic group coordinator gives, error codes included
//! (`tests/groups_offsets.rs` does the offset APIs; `tests/groups.rs` drives the same
//! coordinator with librdkafka consumers).
//!
//! Members use long session timeouts so that nothing expires while a test runs: no
//! test depends on timing. A JoinGroup that has to wait for another member runs on
//! its own connection and thread.

mod common;

use common::groups::*;
use common::*;

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

/// A group stuck in a rebalance (its old member never rejoins) holds up nobody
/// else: while the newcomer's JoinGroup waits, another group forms and produce
/// and fetch work. Nothing here is timed: the waiting join is simply still
/// unanswered when the rest is done.
#[test]
fn a_group_waiting_for_a_slow_member_blocks_no_one_else() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic_name = unique_topic("slow-member");
    create_topic(&bootstrap, &topic_name, 1);
    let metadata = subscription(&[&topic_name]);

    let mut slow_client = RawClient::connect(&bootstrap);
    let slow = stable_group(
        &mut slow_client,
        "stuck",
        &metadata,
        &assignment(&topic_name, &[0]),
    );
    let mut newcomer_client = RawClient::connect(&bootstrap);
    let newcomer_metadata = metadata.clone();
    let newcomer =
        thread::spawn(move || join_with_new_id(&mut newcomer_client, "stuck", &newcomer_metadata));
    heartbeat_until_rebalance(&mut slow_client, "stuck", &slow);

    let mut other_client = RawClient::connect(&bootstrap);
    let other = stable_group(
        &mut other_client,
        "free",
        &metadata,
        &assignment(&topic_name, &[0]),
    );
    assert_eq!(
        heartbeat(&mut other_client, "free", &other.id, other.generation),
        NONE
    );
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic_name, 0, "while-stuck", 5);
    assert_values_in_order(&consume_partition(&bootstrap, &topic_name, 0, 5), &values);
    assert!(
        !newcomer.is_finished(),
        "the newcomer still waits for the slow member"
    );
    assert_eq!(
        group_state(&mut other_client, "stuck"),
        "PreparingRebalance"
    );

    // The slow member leaves: the rebalance completes without it.
    assert_eq!(leave_one(&mut slow_client, "stuck", &slow.id), NONE);
    let joined = newcomer.join().expect("newcomer's thread");
    assert_eq!(joined.error_code, NONE, "{joined:?}");
    assert_eq!(joined.generation_id, 2);
    assert_eq!(joined.leader, joined.member_id, "the newcomer leads alone");
}
