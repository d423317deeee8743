//! The committed-offset and group admin APIs on the wire, with the raw client:
//! OffsetCommit, OffsetFetch, DeleteGroups and OffsetDelete at old and new versions,
//! and what survives a broker restart. Every answer is checked against what Kafka's
//! classic group coordinator gives, error codes included
//! (`tests/groups_membership.rs` does the membership APIs).
//!
//! Members use long session timeouts so that nothing expires while a test runs: no
//! test depends on timing.

mod common;

use common::groups::*;
use common::*;

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

/// A group loaded at start whose member never comes back loses it when the
/// member's session runs out, as it would have without the restart: the group
/// empties and its offsets stay.
#[test]
fn a_restored_member_that_never_returns_expires() {
    let mut broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    let mut client = RawClient::connect(&bootstrap);
    let metadata = subscription(&["orders"]);
    let short_session = |member_id: &str| {
        consumer_join(5, "gone", member_id, &metadata)
            .with_session_timeout_ms(1_500)
            .with_rebalance_timeout_ms(1_500)
    };
    let first = join(&mut client, 5, &short_session(""));
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "{first:?}");
    let joined = join(&mut client, 5, &short_session(&first.member_id));
    assert_eq!(joined.error_code, NONE, "{joined:?}");
    let member = Member::from_join(&joined);
    let assigned = assignment("orders", &[0]);
    let synced = sync(&mut client, 3, "gone", &member, &[(&member.id, &assigned)]);
    assert_eq!(synced.error_code, NONE, "{synced:?}");
    let results = commit(
        &mut client,
        8,
        "gone",
        &member.id,
        member.generation,
        &[at("orders", 0, 5)],
    );
    assert_eq!(results, errors(&[("orders", 0, NONE)]));
    drop(client);

    broker.stop_sigterm();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        group_state(&mut client, "gone"),
        "Stable",
        "loaded with its member"
    );
    let deadline = Instant::now() + TIMEOUT;
    while group_state(&mut client, "gone") != "Empty" {
        assert!(
            Instant::now() < deadline,
            "the member's session never expired after the restart"
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        committed_offsets(&mut client, "gone", "orders", &[0]),
        vec![5],
        "the offsets stay"
    );
}

/// Clients cannot write into `__consumer_offsets` (a forged record would move a
/// group's offsets) nor delete records from it: INVALID_TOPIC_EXCEPTION, as
/// Kafka answers.
#[test]
fn clients_cannot_produce_to_or_delete_from_the_offsets_topic() {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

    const INVALID_TOPIC_EXCEPTION: i16 = 17;
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 1);
    let mut client = RawClient::connect(&bootstrap);
    // A commit creates the topic.
    let results = commit(&mut client, 8, "g", "", -1, &[at("orders", 0, 3)]);
    assert_eq!(results, errors(&[("orders", 0, NONE)]));
    let batch = encode_batch(&[b"forged"], 0).freeze();
    let (error_code, _) = client.produce("__consumer_offsets", 0, batch);
    assert_eq!(error_code, INVALID_TOPIC_EXCEPTION);
    let offsets_topic = kafka_protocol::messages::TopicName(text("__consumer_offsets"));
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(offsets_topic)
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(-1)])])
        .with_timeout_ms(30_000);
    let response: DeleteRecordsResponse = client.request(ApiKey::DeleteRecords, 2, &request);
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );
    assert_eq!(committed_offsets(&mut client, "g", "orders", &[0]), vec![3]);
}
