//! Consumer groups with librdkafka (the rdkafka crate): subscribe-style consumers
//! sharing a topic, members leaving and crashing, committed offsets across broker
//! restarts, the cooperative-sticky assignor and static membership.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;

/// Broker settings for group tests: no initial-rebalance delay, and session
/// timeouts short enough for a crashed member to be noticed quickly.
const GROUP_SETTINGS: &[&str] = &[
    "group.initial.rebalance.delay.ms=0",
    "group.min.session.timeout.ms=1000",
];

/// The environment variable that turns the ignored test `child_group_consumer`
/// into a consumer process that the tests can kill.
const CHILD_ENV: &str = "STRATA_CHILD_CONSUMER";

/// A subscribe-style consumer: auto commit every 200 ms of what poll returned,
/// and on every revocation (librdkafka commits stored offsets when it loses
/// partitions), 3 s sessions.
fn group_config(bootstrap: &str, group: &str) -> rdkafka::ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "300")
        .set("enable.partition.eof", "false");
    config
}

/// Produces `per_key` values for each of `keys` keys, interleaved, as
/// `"<key>:<phase>:<seq>"`; returns them.
fn produce_keyed(
    bootstrap: &str,
    topic: &str,
    phase: &str,
    keys: usize,
    per_key: usize,
) -> Vec<String> {
    let producer = create_producer(&producer_config(bootstrap));
    let mut values = Vec::new();
    for seq in 0..per_key {
        for key in 0..keys {
            let key = format!("key-{key}");
            let value = format!("{key}:{phase}:{seq}");
            send_with_retry(&producer, BaseRecord::to(topic).key(&key).payload(&value));
            values.push(value);
        }
    }
    flush_and_check(&producer);
    values
}

/// A received message, tagged with the consumer that got it.
#[derive(Clone, Debug)]
struct Got {
    consumer: usize,
    partition: i32,
    offset: i64,
    value: String,
}

type Log = Arc<Mutex<Vec<Got>>>;

/// A consumer polling on its own thread until told to stop; dropping the
/// consumer at the end closes it (commit, then LeaveGroup).
struct Member {
    stop: Arc<AtomicBool>,
    assignment: Arc<Mutex<BTreeSet<i32>>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    fn start(id: usize, config: rdkafka::ClientConfig, topic: &str, log: Log) -> Member {
        let stop = Arc::new(AtomicBool::new(false));
        let assignment = Arc::new(Mutex::new(BTreeSet::new()));
        let consumer: BaseConsumer = config.create().expect("create a group consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let thread = {
            let (stop, assignment) = (stop.clone(), assignment.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                        log.lock().unwrap().push(Got {
                            consumer: id,
                            partition: message.partition(),
                            offset: message.offset(),
                            value: String::from_utf8_lossy(message.payload().unwrap_or_default())
                                .into_owned(),
                        });
                    }
                    if let Ok(list) = consumer.assignment() {
                        *assignment.lock().unwrap() =
                            list.elements().iter().map(|e| e.partition()).collect();
                    }
                }
            })
        };
        Member {
            stop,
            assignment,
            thread: Some(thread),
        }
    }

    fn assignment(&self) -> BTreeSet<i32> {
        self.assignment.lock().unwrap().clone()
    }

    /// Stops polling and closes the consumer (a clean LeaveGroup).
    fn leave(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("consumer thread");
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A consumer in a child process (this test binary running the ignored test
/// `child_group_consumer`), so that a test can kill -9 it. Its messages go
/// into `log` under consumer id `id`.
struct ChildMember {
    child: Child,
}

impl ChildMember {
    fn start(id: usize, bootstrap: &str, group: &str, topic: &str, log: Log) -> ChildMember {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "child_group_consumer",
                "--include-ignored",
                "--nocapture",
            ])
            .env(CHILD_ENV, format!("{bootstrap} {group} {topic}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the child consumer");
        let stdout = child.stdout.take().expect("child stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Some(rest) = line.strip_prefix("MSG ") else {
                    continue;
                };
                let mut fields = rest.splitn(3, ' ');
                let (Some(partition), Some(offset), Some(value)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                log.lock().unwrap().push(Got {
                    consumer: id,
                    partition: partition.parse().expect("partition"),
                    offset: offset.parse().expect("offset"),
                    value: value.to_string(),
                });
            }
        });
        ChildMember { child }
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Not a test on its own: the consumer process of [`ChildMember`].
#[test]
#[ignore = "run by the group tests as a child process"]
fn child_group_consumer() {
    let Ok(args) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [bootstrap, group, topic]: [&str; 3] = args
        .split(' ')
        .collect::<Vec<_>>()
        .try_into()
        .expect("bootstrap group topic");
    let consumer: BaseConsumer = group_config(bootstrap, group)
        .create()
        .expect("create the child consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    loop {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default());
            println!("MSG {} {} {value}", message.partition(), message.offset());
        }
    }
}

/// Waits until `done` holds for the log, or fails with what arrived.
fn wait_for(log: &Log, what: &str, done: impl Fn(&[Got]) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        {
            let got = log.lock().unwrap();
            if done(&got) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; received {} messages",
                    got.len()
                );
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn values_of(got: &[Got]) -> BTreeSet<String> {
    got.iter().map(|g| g.value.clone()).collect()
}

/// Every value of `expected` received exactly once.
fn assert_exactly_once(got: &[Got], expected: &[String]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for g in got {
        *counts.entry(g.value.as_str()).or_default() += 1;
    }
    for value in expected {
        assert_eq!(
            counts.get(value.as_str()).copied().unwrap_or(0),
            1,
            "{value} should be received exactly once"
        );
    }
}

/// Each consumer saw each partition's offsets increasing, and each key's
/// values of a phase in sequence.
fn assert_ordered(got: &[Got]) {
    let mut last_offset: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    let mut last_seq: BTreeMap<(usize, String), i64> = BTreeMap::new();
    for g in got {
        if let Some(&previous) = last_offset.get(&(g.consumer, g.partition)) {
            assert!(
                g.offset > previous,
                "consumer {} got partition {} offset {} after {previous}",
                g.consumer,
                g.partition,
                g.offset
            );
        }
        last_offset.insert((g.consumer, g.partition), g.offset);
        let mut fields = g.value.rsplitn(2, ':');
        let seq: i64 = fields.next().unwrap().parse().unwrap();
        let key_phase = fields.next().unwrap().to_string();
        if let Some(&previous) = last_seq.get(&(g.consumer, key_phase.clone())) {
            assert!(seq > previous, "{} after seq {previous}", g.value);
        }
        last_seq.insert((g.consumer, key_phase), seq);
    }
}

fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_consumers_share_a_keyed_stream_then_one_leaves_and_one_crashes() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("group-share");
    let group = unique_topic("group");
    create_topic(&bootstrap, &topic, 6);
    let log: Log = Arc::default();

    let first = Member::start(0, group_config(&bootstrap, &group), &topic, log.clone());
    let second = Member::start(1, group_config(&bootstrap, &group), &topic, log.clone());
    let mut third = ChildMember::start(2, &bootstrap, &group, &topic, log.clone());
    // Range assignment of 6 partitions to 3 members: 2 each, so the child has
    // the 2 the others lack.
    wait_until("three members to share the partitions", || {
        let (a, b) = (first.assignment(), second.assignment());
        a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
    });
    let phase1 = produce_keyed(&bootstrap, &topic, "p1", 24, 10);
    wait_for(&log, "phase 1 consumed", |got| {
        values_of(got).is_superset(&phase1.iter().cloned().collect())
    });
    {
        let got = log.lock().unwrap();
        assert_exactly_once(&got, &phase1);
        assert_ordered(&got);
        let consumers: BTreeSet<usize> = got.iter().map(|g| g.consumer).collect();
        assert_eq!(consumers.len(), 3, "all three members got partitions");
        // One owner per partition.
        let mut owners: BTreeMap<i32, BTreeSet<usize>> = BTreeMap::new();
        for g in got.iter() {
            owners.entry(g.partition).or_default().insert(g.consumer);
        }
        assert!(owners.values().all(|o| o.len() == 1), "owners: {owners:?}");
    }

    // A member leaves cleanly: its partitions move, nothing is read twice.
    second.leave();
    wait_until("the leaver's partitions to move", || {
        first.assignment().len() == 3
    });
    let phase2 = produce_keyed(&bootstrap, &topic, "p2", 24, 10);
    wait_for(&log, "phase 2 consumed", |got| {
        values_of(got).is_superset(&phase2.iter().cloned().collect())
    });
    {
        let got = log.lock().unwrap();
        assert_exactly_once(&got, &phase1);
        assert_exactly_once(&got, &phase2);
        assert!(got
            .iter()
            .all(|g| g.consumer != 1 || g.value.contains(":p1:")));
    }

    // A member crashes: after its session times out, the survivor gets all.
    thread::sleep(Duration::from_millis(500)); // let its auto commit go out
    third.kill9();
    wait_until("the crashed member's partitions to move", || {
        first.assignment().len() == 6
    });
    let phase3 = produce_keyed(&bootstrap, &topic, "p3", 24, 10);
    wait_for(&log, "phase 3 consumed", |got| {
        values_of(got).is_superset(&phase3.iter().cloned().collect())
    });
    let got = log.lock().unwrap();
    assert_exactly_once(&got, &phase3);
    assert!(got
        .iter()
        .filter(|g| g.value.contains(":p3:"))
        .all(|g| g.consumer == 0));
    assert_ordered(&got);
    drop(got);
    first.leave();
}

/// Consumes from `group` until `count` messages arrived, commits synchronously,
/// and returns what it got with the committed offsets.
fn consume_and_commit(
    bootstrap: &str,
    group: &str,
    topic: &str,
    count: usize,
) -> (Vec<Got>, BTreeMap<i32, i64>) {
    let mut config = group_config(bootstrap, group);
    config.set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "got only {} of {count}",
            got.len()
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            got.push(Got {
                consumer: 0,
                partition: message.partition(),
                offset: message.offset(),
                value: String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            });
        }
    }
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let committed = consumer
        .committed(TIMEOUT)
        .expect("committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
        .collect();
    (got, committed)
}

#[test]
fn committed_offsets_survive_sigterm_and_kill9() {
    let mut broker = Broker::start(GROUP_SETTINGS);
    let topic = unique_topic("group-resume");
    let group = unique_topic("group");
    create_topic(&broker.bootstrap(), &topic, 3);
    let producer = create_producer(&producer_config(&broker.bootstrap()));
    for partition in 0..3 {
        produce_numbered(&producer, &topic, partition, &format!("p{partition}"), 30);
    }
    drop(producer);

    let (first, committed) = consume_and_commit(&broker.bootstrap(), &group, &topic, 40);
    // The commit is each partition's next offset after what was consumed.
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for g in &first {
        next.insert(g.partition, g.offset + 1);
    }
    assert_eq!(committed, next, "committed offsets");

    broker.stop_sigterm();
    broker.restart();
    let rest = 90 - first.len();
    let (second, committed) = consume_and_commit(&broker.bootstrap(), &group, &topic, rest);
    let mut firsts: BTreeMap<i32, i64> = BTreeMap::new();
    for g in &second {
        firsts.entry(g.partition).or_insert(g.offset);
    }
    for (partition, offset) in &firsts {
        assert_eq!(
            next.get(partition).copied().unwrap_or(0),
            *offset,
            "partition {partition} resumed at its committed offset"
        );
    }
    let all: BTreeSet<(i32, i64)> = first
        .iter()
        .chain(&second)
        .map(|g| (g.partition, g.offset))
        .collect();
    assert_eq!(all.len(), 90, "every message once across the restart");
    assert_eq!(committed, BTreeMap::from([(0, 30), (1, 30), (2, 30)]));

    broker.kill9();
    broker.restart();
    let consumer: BaseConsumer = group_config(&broker.bootstrap(), &group)
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    for partition in 0..3 {
        wanted.add_partition(&topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, TIMEOUT)
        .expect("committed offsets after kill -9");
    for element in committed.elements() {
        assert_eq!(
            element.offset(),
            Offset::Offset(30),
            "partition {}",
            element.partition()
        );
    }
}

#[test]
fn cooperative_sticky_members_split_partitions_without_duplicates() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("group-coop");
    let group = unique_topic("group");
    create_topic(&bootstrap, &topic, 4);
    let log: Log = Arc::default();
    let config = || {
        let mut config = group_config(&bootstrap, &group);
        config.set("partition.assignment.strategy", "cooperative-sticky");
        config
    };
    let first = Member::start(0, config(), &topic, log.clone());
    let phase1 = produce_keyed(&bootstrap, &topic, "p1", 16, 5);
    wait_for(&log, "phase 1", |got| {
        values_of(got).is_superset(&phase1.iter().cloned().collect())
    });
    assert_eq!(first.assignment().len(), 4);

    let second = Member::start(1, config(), &topic, log.clone());
    wait_until("an incremental rebalance to split the partitions", || {
        let (a, b) = (first.assignment(), second.assignment());
        a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
    });
    let phase2 = produce_keyed(&bootstrap, &topic, "p2", 16, 5);
    wait_for(&log, "phase 2", |got| {
        values_of(got).is_superset(&phase2.iter().cloned().collect())
    });
    let got = log.lock().unwrap();
    assert_exactly_once(&got, &phase1);
    assert_exactly_once(&got, &phase2);
    assert_ordered(&got);
    let consumers: BTreeSet<usize> = got
        .iter()
        .filter(|g| g.value.contains(":p2:"))
        .map(|g| g.consumer)
        .collect();
    assert_eq!(consumers.len(), 2, "both members consumed phase 2");
}

/// Counts completed rebalances (assignments) of a consumer.
#[derive(Clone, Default)]
struct RebalanceCounter {
    assigns: Arc<AtomicUsize>,
}

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.assigns.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Polls `consumer` (and, through `poll_others`, the group's other members,
/// which must serve their rebalances too) until its assignment is not empty;
/// returns it.
fn await_assignment<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    poll_others: impl Fn(),
) -> BTreeSet<i32> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let _ = consumer.poll(Duration::from_millis(50));
        poll_others();
        let assigned: BTreeSet<i32> = consumer
            .assignment()
            .expect("assignment")
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect();
        if !assigned.is_empty() {
            return assigned;
        }
        assert!(Instant::now() < deadline, "no assignment");
    }
}

#[test]
fn static_member_restart_gets_its_assignment_back_without_a_rebalance() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("group-static");
    let group = unique_topic("group");
    create_topic(&bootstrap, &topic, 4);
    let config = |instance: Option<&str>| {
        let mut config = group_config(&bootstrap, &group);
        config.set("session.timeout.ms", "30000");
        if let Some(instance) = instance {
            config.set("group.instance.id", instance);
        }
        config
    };
    let counter = RebalanceCounter::default();
    let dynamic: BaseConsumer<RebalanceCounter> = config(None)
        .create_with_context(counter.clone())
        .expect("dynamic consumer");
    dynamic.subscribe(&[&topic]).expect("subscribe");
    await_assignment(&dynamic, || {});
    let poll_dynamic = || {
        let _ = dynamic.poll(Duration::from_millis(50));
    };

    let member: BaseConsumer = config(Some("static-1")).create().expect("static consumer");
    member.subscribe(&[&topic]).expect("subscribe");
    let before = await_assignment(&member, poll_dynamic);
    // Wait for the dynamic member to settle into the two-member generation.
    wait_until("the dynamic member to give up partitions", || {
        let _ = dynamic.poll(Duration::from_millis(50));
        dynamic.assignment().map(|a| a.count()).unwrap_or(0) == 4 - before.len()
    });
    let assigns = counter.assigns.load(Ordering::SeqCst);

    // Closing a static member sends no LeaveGroup (KIP-345); a new instance
    // with the same group.instance.id takes its place.
    drop(member);
    let member: BaseConsumer = config(Some("static-1")).create().expect("static consumer");
    member.subscribe(&[&topic]).expect("subscribe");
    let after = await_assignment(&member, poll_dynamic);
    assert_eq!(after, before, "the restarted static member's assignment");
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        let _ = dynamic.poll(Duration::from_millis(50));
        let _ = member.poll(Duration::from_millis(50));
    }
    assert_eq!(
        counter.assigns.load(Ordering::SeqCst),
        assigns,
        "the other member saw no rebalance"
    );
}

/// A consumer whose `client.id` is 32,740 bytes long (Kafka's member id is
/// the client id, a dash and a UUID: too long for the group's record) joins a
/// group, consumes and commits; the broker cut the member id's client id part
/// and nothing panicked. (Issue: "Hostile and heavy clients".)
#[test]
fn a_consumer_with_a_32740_byte_client_id_joins_consumes_and_commits() {
    let broker = Broker::start(GROUP_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("long-client-id");
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 0, "v", 5);
    let mut config = group_config(&bootstrap, &unique_topic("long-client-id-group"));
    config
        .set("client.id", "c".repeat(32_740))
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while got.len() < values.len() {
        assert!(Instant::now() < deadline, "got only {got:?}");
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            got.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got, values);
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");
    let stderr = broker.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
