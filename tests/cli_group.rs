//! The consumer group commands — `strata group list|describe|delete|reset-offsets`
//! and `strata consume --group` — run as the real binary against a real broker.
//! Offsets and memberships they report or change are set up and checked with
//! librdkafka. No assertion depends on timing: waits poll the group's state.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use common::cli::*;
use common::*;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;
use serde_json::Value;

/// No initial-rebalance delay: a lone member gets its assignment at once.
const GROUP_SETTINGS: &[&str] = &["group.initial.rebalance.delay.ms=0"];

/// `strata group describe GROUP --json`, parsed.
fn describe_json(bootstrap: &str, group: &str) -> Value {
    let stdout = success(strata(bootstrap, &["group", "describe", group, "--json"]));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Polls `describe --json` until `done` holds of it; returns that description.
fn wait_for_group(
    bootstrap: &str,
    group: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // A group that does not exist yet counts as not done.
        let output = strata(bootstrap, &["group", "describe", group, "--json"]);
        let described = if output.status.success() {
            serde_json::from_str(&output.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", output.stdout))
        } else {
            assert!(
                output.stderr.contains("does not exist"),
                "{}",
                output.describe()
            );
            Value::Null
        };
        if done(&described) {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "group {group}: {what} not reached within {TIMEOUT:?}: {described}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |described| described["state"] == state
}

/// Stable, with exactly `members` members.
fn stable_with_members(members: usize) -> impl Fn(&Value) -> bool {
    move |described| {
        described["state"] == "Stable"
            && described["members"]
                .as_array()
                .is_some_and(|m| m.len() == members)
    }
}

/// Produces `count` records `p<partition>-<i>` to each of `partitions` partitions
/// of `topic`; returns every value produced.
fn produce_to_each_partition(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
) -> BTreeSet<String> {
    let producer = create_producer(&producer_config(bootstrap));
    let mut values = BTreeSet::new();
    for partition in 0..partitions {
        values.extend(produce_numbered(
            &producer,
            topic,
            partition,
            &format!("p{partition}"),
            count,
        ));
    }
    values
}

/// The committed offsets of `partitions`, as numbers (-1 for none).
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: &[i32]) -> Vec<i64> {
    committed_offsets_of(bootstrap, group, topic, partitions)
        .into_iter()
        .map(|offset| match offset {
            Offset::Offset(offset) => offset,
            _ => -1,
        })
        .collect()
}

#[test]
fn list_describe_and_delete_groups_with_lag_and_errors() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("lag");
    create_topic(&bootstrap, &topic, 2);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "a", 10);
    produce_numbered(&producer, &topic, 1, "b", 10);

    assert_eq!(
        success(strata(&bootstrap, &["group", "list"])),
        "no groups\n"
    );
    failure(
        strata(&bootstrap, &["group", "describe", "nobody"]),
        &["group \"nobody\" does not exist"],
    );
    failure(
        strata(&bootstrap, &["group", "delete", "nobody"]),
        &["nobody", "GROUP_ID_NOT_FOUND (error code 69)"],
    );

    // A librdkafka member commits part of what it holds.
    let group = unique_topic("billing");
    let consumer = group_member(&bootstrap, &group, "lag-client", &topic);
    poll_until_assigned(&consumer, 2);
    commit_as_member(&consumer, &topic, &[(0, 3), (1, 7)]);

    let described = wait_for_group(&bootstrap, &group, "Stable", state_is("Stable"));
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{described}");
    let member_id = members[0]["member_id"].as_str().expect("member id");
    assert_eq!(members[0]["client_id"], "lag-client", "{described}");
    assert_eq!(
        members[0]["assignment"],
        serde_json::json!([{"topic": topic, "partitions": [0, 1]}]),
        "{described}"
    );
    assert_eq!(described["protocol_type"], "consumer", "{described}");
    assert_eq!(
        described["offsets"],
        serde_json::json!([
            {"topic": topic, "partition": 0, "committed_offset": 3, "log_end_offset": 10,
             "lag": 7, "member_id": member_id},
            {"topic": topic, "partition": 1, "committed_offset": 7, "log_end_offset": 10,
             "lag": 3, "member_id": member_id},
        ]),
        "{described}"
    );

    let table = cells(&success(strata(&bootstrap, &["group", "describe", &group])));
    assert_eq!(table[0], row(&["group:", &group]));
    assert_eq!(table[1], row(&["state:", "Stable"]));
    assert_eq!(table[2], row(&["protocol", "type:", "consumer"]));
    assert_eq!(table[4], row(&["members:", "1"]));
    assert_eq!(
        table[6],
        row(&["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"])
    );
    assert_eq!(table[7][0], member_id);
    assert_eq!(table[7][1], "lag-client");
    assert_eq!(table[7][3], format!("{topic}:0,1"));
    assert_eq!(
        table[9..],
        [
            row(&[
                "TOPIC",
                "PARTITION",
                "COMMITTED-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "MEMBER-ID"
            ]),
            row(&[&topic, "0", "3", "10", "7", member_id]),
            row(&[&topic, "1", "7", "10", "3", member_id]),
        ]
    );

    let listed = cells(&success(strata(&bootstrap, &["group", "list"])));
    assert_eq!(
        listed,
        [
            row(&["GROUP", "STATE", "PROTOCOL-TYPE"]),
            row(&[&group, "Stable", "consumer"]),
        ]
    );
    let stable = success(strata(&bootstrap, &["group", "list", "--state", "stable"]));
    assert_eq!(cells(&stable).len(), 2, "{stable}");
    assert_eq!(
        success(strata(&bootstrap, &["group", "list", "--state", "Empty"])),
        "no groups\n"
    );
    failure(
        strata(&bootstrap, &["group", "delete", &group]),
        &["NON_EMPTY_GROUP (error code 68)"],
    );

    // Once the member has left, the offsets stay and the lag is still shown.
    drop(consumer);
    let described = wait_for_group(&bootstrap, &group, "Empty", state_is("Empty"));
    assert_eq!(described["members"], serde_json::json!([]), "{described}");
    assert_eq!(described["offsets"][0]["lag"], 7, "{described}");
    assert_eq!(described["offsets"][1]["member_id"], Value::Null);

    // Several groups: each result reported, exit code 1 if any failed.
    let output = strata(&bootstrap, &["group", "delete", &group, "nobody"]);
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert_eq!(output.stdout, format!("deleted group {group}\n"));
    let errors: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{}", output.describe());
    assert!(
        errors[0].starts_with("error: cannot delete group \"nobody\": GROUP_ID_NOT_FOUND"),
        "{}",
        output.describe()
    );
    assert_eq!(
        success(strata(&bootstrap, &["group", "list"])),
        "no groups\n"
    );
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [-1, -1]);
}

/// Runs `group reset-offsets GROUP --topic TOPIC ARGS...`.
fn reset_offsets(bootstrap: &str, group: &str, topic: &str, args: &[&str]) -> CommandOutput {
    let mut full = vec!["group", "reset-offsets", group, "--topic", topic];
    full.extend_from_slice(args);
    strata(bootstrap, &full)
}

/// Runs `group reset-offsets GROUP --topic TOPIC ARGS... --execute` and returns
/// its plan's rows (partition, current, new).
fn reset(bootstrap: &str, group: &str, topic: &str, args: &[&str]) -> Vec<Vec<String>> {
    let mut full = args.to_vec();
    full.push("--execute");
    let table = cells(&success(reset_offsets(bootstrap, group, topic, &full)));
    assert_eq!(
        table[0],
        row(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"])
    );
    table[1..].iter().map(|r| r[1..].to_vec()).collect()
}

#[test]
fn reset_offsets_plans_by_default_and_commits_each_mode() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("reset");
    create_topic(&bootstrap, &topic, 2);
    // Partition 0: ten records one second apart, an hour ago; partition 1: four now.
    let producer = create_producer(&producer_config(&bootstrap));
    let base = now_ms() - 3_600_000;
    for i in 0..10 {
        let value = format!("old-{i}");
        let record = BaseRecord::<(), str>::to(&topic)
            .partition(0)
            .payload(value.as_str())
            .timestamp(base + i * 1000);
        send_with_retry(&producer, record);
    }
    flush_and_check(&producer);
    produce_numbered(&producer, &topic, 1, "new", 4);
    let group = unique_topic("resetting");
    commit_outside_group(&bootstrap, &group, &topic, &[(0, 5), (1, 2)]);

    // A dry run prints the plan and changes nothing.
    let output = reset_offsets(&bootstrap, &group, &topic, &["--to-earliest"]);
    let stdout = success_with(
        output,
        "dry run: nothing was committed; add --execute to commit these offsets\n",
    );
    assert_eq!(
        cells(&stdout),
        [
            row(&["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]),
            row(&[&topic, "0", "5", "0"]),
            row(&[&topic, "1", "2", "0"]),
        ]
    );
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [5, 2]);
    assert_eq!(
        describe_json(&bootstrap, &group)["offsets"][0]["committed_offset"],
        5
    );

    let rows = reset(&bootstrap, &group, &topic, &["--to-earliest"]);
    assert_eq!(rows, [row(&["0", "5", "0"]), row(&["1", "2", "0"])]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [0, 0]);

    reset(&bootstrap, &group, &topic, &["--to-latest"]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [10, 4]);

    // An offset past a partition's end is clamped to it.
    let rows = reset(&bootstrap, &group, &topic, &["--to-offset", "7"]);
    assert_eq!(rows, [row(&["0", "10", "7"]), row(&["1", "4", "4"])]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [7, 4]);

    // Shifting back past the start stops at the start; --partition limits it.
    reset(&bootstrap, &group, &topic, &["--shift-by", "-5"]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [2, 0]);
    let rows = reset(
        &bootstrap,
        &group,
        &topic,
        &["--shift-by", "100", "--partition", "1"],
    );
    assert_eq!(rows, [row(&["1", "0", "4"])]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [2, 4]);

    // A time: the first record at or after it (partition 1's are all newer).
    let time = format!("@{}", base + 3500);
    reset(&bootstrap, &group, &topic, &["--to-datetime", &time]);
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [4, 0]);
    // A time after every record: the log end.
    reset(
        &bootstrap,
        &group,
        &topic,
        &["--to-datetime", "2999-01-01T00:00:00Z"],
    );
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [10, 4]);

    // While a member is active the commit is refused; the dry run still plans.
    let consumer = group_member(&bootstrap, &group, "holder", &topic);
    poll_until_assigned(&consumer, 2);
    wait_for_group(&bootstrap, &group, "Stable", state_is("Stable"));
    failure(
        reset_offsets(&bootstrap, &group, &topic, &["--to-earliest", "--execute"]),
        &["is Stable", "only be reset while it has no members"],
    );
    let output = reset_offsets(&bootstrap, &group, &topic, &["--to-earliest"]);
    assert_eq!(output.status.code(), Some(0), "{}", output.describe());
    assert_eq!(committed(&bootstrap, &group, &topic, &[0, 1]), [10, 4]);
    drop(consumer);

    // Nothing to shift from, and an unknown topic.
    failure(
        reset_offsets(&bootstrap, "fresh", &topic, &["--shift-by", "1"]),
        &["partition 0", "no committed offset to shift"],
    );
    failure(
        reset_offsets(&bootstrap, &group, "missing", &["--to-latest"]),
        &["UNKNOWN_TOPIC_OR_PARTITION"],
    );
}

/// `consume --group` arguments for `topic`, printing PARTITION:OFFSET and the value.
fn consume_group(bootstrap: &str, topic: &str, group: &str, extra: &[&str]) -> CommandOutput {
    let mut args = vec!["consume", topic, "--group", group, "--print-offset"];
    args.extend_from_slice(extra);
    strata(bootstrap, &args)
}

/// Starts `consume --group` from the beginning in a thread, to read `count`
/// records while other members join (a long idle timeout: only a hang ends it).
fn spawn_group_consumer(
    bootstrap: &str,
    topic: &str,
    group: &str,
    count: usize,
) -> thread::JoinHandle<CommandOutput> {
    let (bootstrap, topic, group) = (bootstrap.to_string(), topic.to_string(), group.to_string());
    thread::spawn(move || {
        consume_group(
            &bootstrap,
            &topic,
            &group,
            &[
                "--from",
                "beginning",
                "--count",
                &count.to_string(),
                "--timeout-ms",
                "45000",
            ],
        )
    })
}

/// The `PARTITION:OFFSET\tVALUE` lines of a consume, parsed.
fn records(stdout: &str) -> Vec<(i32, i64, String)> {
    stdout
        .lines()
        .map(|line| {
            let (position, value) = line.split_once('\t').expect("offset TAB value");
            let (partition, offset) = position.split_once(':').expect("P:O");
            (
                partition.parse().expect("partition"),
                offset.parse().expect("offset"),
                value.to_string(),
            )
        })
        .collect()
}

#[test]
fn consume_group_resumes_where_the_last_run_committed() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("resume");
    create_topic(&bootstrap, &topic, 3);
    let expected = produce_to_each_partition(&bootstrap, &topic, 3, 10);
    let group = unique_topic("resumer");
    let summary = |n: usize| format!("consumed {n} records from {topic}\n");

    let first = success_with(
        consume_group(
            &bootstrap,
            &topic,
            &group,
            &["--from", "beginning", "--count", "12"],
        ),
        &summary(12),
    );
    // No --from: the committed offsets decide where the second run starts.
    let second = success_with(
        consume_group(&bootstrap, &topic, &group, &["--count", "18"]),
        &summary(18),
    );
    let mut seen = BTreeSet::new();
    for (partition, offset, value) in records(&first).into_iter().chain(records(&second)) {
        assert!(value.starts_with(&format!("p{partition}-")), "{value}");
        assert!(
            seen.insert((partition, offset)),
            "{partition}:{offset} read twice"
        );
    }
    let values: BTreeSet<String> = records(&first)
        .into_iter()
        .chain(records(&second))
        .map(|(_, _, value)| value)
        .collect();
    assert_eq!(values, expected);

    // Everything is committed: a third run finds nothing and there is no lag.
    let third = success_with(
        consume_group(&bootstrap, &topic, &group, &["--timeout-ms", "2000"]),
        &summary(0),
    );
    assert_eq!(third, "");
    assert_eq!(
        committed(&bootstrap, &group, &topic, &[0, 1, 2]),
        [10, 10, 10]
    );
    let described = describe_json(&bootstrap, &group);
    assert_eq!(described["state"], "Empty", "{described}");
    for partition in described["offsets"].as_array().expect("offsets") {
        assert_eq!(partition["lag"], 0, "{described}");
    }
}

#[test]
fn concurrent_group_consumers_split_the_partitions() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("split");
    create_topic(&bootstrap, &topic, 4);
    let group = unique_topic("splitters");
    const PER_PARTITION: usize = 5;
    // Range over 4 partitions and 2 members: two partitions each.
    let count = 2 * PER_PARTITION;
    let members: Vec<_> = (0..2)
        .map(|_| spawn_group_consumer(&bootstrap, &topic, &group, count))
        .collect();
    // Produce only once both hold their share, so neither reads the other's.
    wait_for_group(
        &bootstrap,
        &group,
        "two members with partitions",
        |described| {
            stable_with_members(2)(described)
                && described["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|m| m["assignment"].as_array().is_some_and(|a| !a.is_empty()))
        },
    );
    let expected = produce_to_each_partition(&bootstrap, &topic, 4, PER_PARTITION);
    let mut all = Vec::new();
    let mut partitions_of: Vec<BTreeSet<i32>> = Vec::new();
    for member in members {
        let output = member.join().expect("consumer thread");
        let stdout = success_with(output, &format!("consumed {count} records from {topic}\n"));
        let got = records(&stdout);
        partitions_of.push(got.iter().map(|(p, _, _)| *p).collect());
        all.extend(got);
    }
    assert_eq!(partitions_of[0].len(), 2, "{partitions_of:?}");
    assert!(
        partitions_of[0].is_disjoint(&partitions_of[1]),
        "{partitions_of:?}"
    );
    let mut by_value: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, value) in &all {
        *by_value.entry(value.clone()).or_default() += 1;
    }
    assert!(
        by_value.values().all(|&n| n == 1),
        "duplicates: {by_value:?}"
    );
    assert_eq!(by_value.into_keys().collect::<BTreeSet<_>>(), expected);
}

#[test]
fn consume_group_shares_a_topic_with_a_librdkafka_leader() {
    share_a_topic_with_librdkafka(false);
}

#[test]
fn consume_group_leads_a_group_with_a_librdkafka_member() {
    share_a_topic_with_librdkafka(true);
}

/// A strata member and a librdkafka member (which offers range and roundrobin,
/// so the group agrees on range) split a two-partition topic. The first to join
/// stays the leader through the rebalance: with `strata_first` strata decodes
/// librdkafka's subscription and assigns, otherwise librdkafka assigns to strata.
fn share_a_topic_with_librdkafka(strata_first: bool) {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("mixed");
    create_topic(&bootstrap, &topic, 2);
    let group = unique_topic("mixed-group");
    const PER_PARTITION: usize = 6;
    let start_strata = || spawn_group_consumer(&bootstrap, &topic, &group, PER_PARTITION);
    let (consumer, strata_member) = if strata_first {
        let strata_member = start_strata();
        wait_for_group(
            &bootstrap,
            &group,
            "Stable with one member",
            stable_with_members(1),
        );
        let consumer = group_member(&bootstrap, &group, "rdkafka-member", &topic);
        (consumer, strata_member)
    } else {
        let consumer = group_member(&bootstrap, &group, "rdkafka-member", &topic);
        poll_until_assigned(&consumer, 2);
        (consumer, start_strata())
    };
    // After the rebalance librdkafka holds one partition.
    poll_until_assigned(&consumer, 1);
    wait_for_group(
        &bootstrap,
        &group,
        "Stable with two members",
        stable_with_members(2),
    );
    let expected = produce_to_each_partition(&bootstrap, &topic, 2, PER_PARTITION);
    let by_rdkafka = consume_n(&consumer, PER_PARTITION);
    let output = strata_member.join().expect("consumer thread");
    let stdout = success_with(
        output,
        &format!("consumed {PER_PARTITION} records from {topic}\n"),
    );
    let by_strata = records(&stdout);
    let rdkafka_partition = by_rdkafka[0].partition;
    assert!(by_rdkafka.iter().all(|r| r.partition == rdkafka_partition));
    assert!(by_strata.iter().all(|(p, _, _)| *p != rdkafka_partition));
    let mut values: Vec<String> = by_rdkafka.iter().map(Received::value_str).collect();
    values.extend(by_strata.into_iter().map(|(_, _, value)| value));
    values.sort();
    assert_eq!(values, expected.into_iter().collect::<Vec<_>>());
}
