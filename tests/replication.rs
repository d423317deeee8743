//! Replication under failures, checked the way Jepsen would
//! (`common::checker`): a producer writes numbered values with acks=all and
//! idempotence while brokers are killed or cut off, then every partition is
//! read back: no acknowledged value lost, none twice, none out of order, and
//! every replica's log the same batches.

mod common;

use std::time::Duration;

use common::checker::{assert_all_replicas_identical, check, Load};
use common::cluster::*;
use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};

/// Creates `topic` with `replicas` (one list per partition) and topic
/// `configs`, and waits until every running broker sees every partition led.
fn create_replicated(
    brokers: &[&Broker],
    topic: &str,
    replicas: &[&[i32]],
    configs: &[(&str, &str)],
) {
    let admin = admin_client(&brokers[0].bootstrap());
    let mut new_topic = NewTopic::new(
        topic,
        replicas.len() as i32,
        TopicReplication::Variable(replicas),
    );
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let created =
        block_on(admin.create_topics([&new_topic], &admin_options())).expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    for broker in brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every broker sees every partition led", || {
            let leaders = view(&bootstrap, topic).1;
            leaders.len() == replicas.len() && leaders.values().all(|l| *l > 0)
        });
    }
}

/// Replicas 1, 2, 3 for each of `partitions`, leaders spread.
fn spread(partitions: usize) -> Vec<Vec<i32>> {
    (0..partitions)
        .map(|p| (0..3).map(|i| ((p + i) % 3) as i32 + 1).collect())
        .collect()
}

fn as_slices(replicas: &[Vec<i32>]) -> Vec<&[i32]> {
    replicas.iter().map(Vec::as_slice).collect()
}

fn bootstrap_all(brokers: &[Broker]) -> String {
    brokers
        .iter()
        .map(Broker::bootstrap)
        .collect::<Vec<_>>()
        .join(",")
}

/// Kill -9 the leader of a replication-factor-3 partition under acks=all
/// load, three times over, each time bringing it back. Before each kill its
/// followers are paused (SIGSTOP, a stalled process) for a moment, so the
/// leader surely holds records no follower has when it dies: a leader that
/// acknowledged those would lose them. Every acknowledged value is read
/// back exactly once, in order, at the offset it was acknowledged with, and
/// the three replicas end up with the same batches.
#[test]
fn acknowledged_writes_survive_repeated_leader_kills() {
    let mut brokers = Broker::start_together(&with_fast_fencing(cluster_settings(3)));
    let topic = unique_topic("kills");
    let replicas = spread(3);
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(
        &all,
        &topic,
        &as_slices(&replicas),
        &[("min.insync.replicas", "2")],
    );
    let load = Load::start(
        &bootstrap_all(&brokers),
        &topic,
        3,
        100,
        Duration::from_millis(5),
    );
    load.wait_for_progress(300);

    for _cycle in 0..3 {
        let leader = view(&brokers[0].bootstrap(), &topic).1[&0];
        let killed = leader as usize - 1;
        let followers: Vec<usize> = (0..3).filter(|b| *b != killed).collect();
        for &follower in &followers {
            brokers[follower].pause();
        }
        // The nemesis' length, not a wait for an effect: the load goes on
        // writing to the leader meanwhile.
        std::thread::sleep(Duration::from_millis(300));
        brokers[killed].kill9();
        for &follower in &followers {
            brokers[follower].resume();
        }
        let survivor = brokers[followers[0]].bootstrap();
        wait_until("another replica leads", || {
            view(&survivor, &topic)
                .1
                .get(&0)
                .is_some_and(|l| *l > 0 && *l != leader)
        });
        load.wait_for_progress(300);
        brokers[killed].restart();
        wait_until("the killed broker is in sync again everywhere", || {
            (0..3).all(|p| in_sync_replicas(&survivor, &topic, p).len() == 3)
        });
        load.wait_for_progress(300);
    }

    let (sent, acks) = load.stop();
    let verdict = check(&brokers[0].bootstrap(), &topic, 3, &acks);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert!(
        verdict.acknowledged >= 2_400,
        "{} of {sent} acknowledged",
        verdict.acknowledged
    );
    assert_all_replicas_identical(&brokers, &topic, 3);
}

/// min.insync.replicas=2 and two of a partition's three replicas down
/// (brokers 2 and 4 of three voters and one broker-only node, so the quorum
/// stays): acks=all gets NOT_ENOUGH_REPLICAS while acks=1 still works; the
/// two back, acks=all works again.
#[test]
fn acks_all_is_refused_below_min_insync_replicas_while_acks_one_works() {
    let mut brokers = four_nodes(&[]);
    let topic = unique_topic("min-insync");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &topic, &[&[1, 2, 4]], &[("min.insync.replicas", "2")]);
    let bootstrap = brokers[0].bootstrap();
    let batch = || encode_batch(&[b"v".as_slice()], now_ms()).freeze();
    let mut client = RawClient::connect(&bootstrap);
    assert_eq!(
        client.produce(&topic, 0, batch()).0,
        0,
        "acks=all, all in sync"
    );

    brokers[1].kill9();
    brokers[3].kill9();
    wait_until("the ISR is the leader alone", || {
        in_sync_replicas(&bootstrap, &topic, 0) == [1]
    });
    // Operators see it: the CLI flags the partition, the leader's metrics count it.
    let described = common::cli::success(common::cli::strata(
        &bootstrap,
        &["topic", "describe", &topic],
    ));
    let rows = common::cli::cells(&described);
    assert!(
        rows.contains(&common::cli::row(&[
            "0",
            "1",
            "1,2,4",
            "1",
            "under-replicated"
        ])),
        "{described}"
    );
    let metrics = get_ok(&brokers[0].metrics_address(), "/metrics");
    assert_eq!(
        sample(&metrics, "strata_under_replicated_partitions"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "strata_under_min_isr_partitions"),
        Some(1.0)
    );
    let (error, _) = client.produce_with(&topic, 0, batch(), -1, 30_000);
    assert_eq!(error, 19, "acks=all: NOT_ENOUGH_REPLICAS");
    let (error, offset) = client.produce_with(&topic, 0, batch(), 1, 30_000);
    assert_eq!((error, offset), (0, 1), "acks=1 still appends");

    brokers[1].restart();
    brokers[3].restart();
    wait_until("all three in sync again", || {
        in_sync_replicas(&bootstrap, &topic, 0).len() == 3
    });
    assert_eq!(client.produce(&topic, 0, batch()), (0, 2), "acks=all again");
}

/// The leader of a replicated partition cut off from everyone (clients,
/// followers and controllers reach each node through fault-injecting proxies
/// on loopback; the cut black-holes every proxy into and out of it) under
/// acks=all load. The majority fences it and another replica leads. Reached
/// directly meanwhile, the cut-off leader still takes an acks=1 write (it
/// cannot know better) but never acknowledges an acks=all one. When the
/// network heals it follows the new leader and cuts that write from its
/// log: nothing acknowledged with acks=all is lost and the replicas are the
/// same.
#[test]
fn a_leader_cut_off_from_the_others_truncates_what_only_it_took() {
    let cluster = ProxiedCluster::start();
    let brokers = &cluster.brokers;
    let topic = unique_topic("cut-off");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &topic, &[&[1, 2, 3]], &[("min.insync.replicas", "2")]);
    let load = Load::start(
        &cluster.bootstrap(),
        &topic,
        1,
        20,
        Duration::from_millis(10),
    );
    load.wait_for_progress(300);

    let leader = view(&cluster.address(0), &topic).1[&0];
    let cut = leader as usize - 1;
    cluster.cut_off(cut);
    let majority = &cluster.address((cut + 1) % 3);
    wait_until("another replica leads", || {
        view(majority, &topic)
            .1
            .get(&0)
            .is_some_and(|l| *l > 0 && *l != leader)
    });
    load.wait_for_progress(300);

    // Straight to the cut-off leader, past its proxy.
    let mut direct = RawClient::connect(&brokers[cut].bootstrap());
    let stray = encode_batch(&[b"stray".as_slice()], now_ms()).freeze();
    let (error, stray_offset) = direct.produce_with(&topic, 0, stray.clone(), 1, 30_000);
    assert_eq!(error, 0, "acks=1 on the cut-off leader");
    let (error, _) = direct.produce_with(&topic, 0, stray, -1, 2_000);
    assert_ne!(
        error, 0,
        "acks=all on the cut-off leader must not be acknowledged"
    );

    cluster.heal();
    wait_until("the healed broker is in sync again", || {
        in_sync_replicas(majority, &topic, 0).len() == 3
    });
    load.wait_for_progress(300);
    let (_, acks) = load.stop();
    let verdict = check(majority, &topic, 1, &acks);
    assert!(verdict.is_clean(), "{verdict:?}");
    assert_all_replicas_identical(brokers, &topic, 1);
    assert!(
        brokers[cut]
            .stderr()
            .contains("truncating to the leader's log"),
        "the old leader cut its stray write (offset {stray_offset})"
    );
}

/// The broker coordinating a consumer group is killed (kill -9): another
/// replica of the group's `__consumer_offsets` partition leads it and loads
/// the group. The offsets committed before are there, and the member
/// carries on: it finds the new coordinator, consumes what comes next and
/// commits again.
#[test]
fn a_consumer_group_carries_on_when_its_coordinator_dies() {
    use rdkafka::consumer::CommitMode;
    let mut brokers = Broker::start_together(&with_fast_fencing(cluster_settings(3)));
    let bootstrap = bootstrap_all(&brokers);
    let topic = unique_topic("coordinated");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &topic, &as_slices(&spread(3)), &[]);
    let producer = create_producer(&producer_config(&bootstrap));
    let first: Vec<String> = (0..90).map(|i| format!("first-{i}")).collect();
    for (i, value) in first.iter().enumerate() {
        produce_values(
            &producer,
            &topic,
            Some(i as i32 % 3),
            std::slice::from_ref(value),
        );
    }
    flush_and_check(&producer);

    let group = unique_topic("failover-group");
    let member = group_member(&bootstrap, &group, "member", &topic);
    poll_until_assigned(&member, 3);
    assert_eq!(consume_n(&member, 90).len(), 90);
    member
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit before the kill");
    let partitions = [0, 1, 2];
    let ends = vec![rdkafka::Offset::Offset(30); 3];
    assert_eq!(
        committed_offsets_of(&bootstrap, &group, &topic, &partitions),
        ends
    );

    let coordinator = coordinator_of(&brokers[0].bootstrap(), &group);
    let killed = coordinator as usize - 1;
    brokers[killed].kill9();
    let survivor = brokers[(killed + 1) % 3].bootstrap();
    wait_until("another broker coordinates the group", || {
        find_coordinator(&survivor, &group).is_ok_and(|c| c != coordinator)
    });
    assert_eq!(
        committed_offsets_of(&survivor, &group, &topic, &partitions),
        ends,
        "the offsets committed before the kill"
    );

    let second: Vec<String> = (0..30).map(|i| format!("second-{i}")).collect();
    let producer = create_producer(&producer_config(&survivor));
    for (i, value) in second.iter().enumerate() {
        produce_values(
            &producer,
            &topic,
            Some(i as i32 % 3),
            std::slice::from_ref(value),
        );
    }
    flush_and_check(&producer);
    let mut received: Vec<String> = consume_n(&member, 30)
        .iter()
        .map(Received::value_str)
        .collect();
    received.sort();
    let mut expected = second.clone();
    expected.sort();
    assert_eq!(received, expected, "the member goes on where it was");
    member
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit after the failover");
    assert_eq!(
        committed_offsets_of(&survivor, &group, &topic, &partitions),
        vec![rdkafka::Offset::Offset(40); 3]
    );
    brokers[killed].restart();
}

/// A consumer group member on its own thread: polls, remembers every value
/// it is given, commits its position now and then; on stop, commits once
/// more (retrying until the coordinator takes it).
struct GroupReader {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<std::collections::BTreeSet<u64>>,
}

impl GroupReader {
    fn start(bootstrap: &str, group: &str, topic: &str) -> GroupReader {
        use rdkafka::consumer::CommitMode;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (bootstrap, group, topic) =
            (bootstrap.to_string(), group.to_string(), topic.to_string());
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let member = group_member(&bootstrap, &group, "reader", &topic);
            let mut seen = std::collections::BTreeSet::new();
            let mut last_commit = std::time::Instant::now();
            while !stopped.load(Ordering::SeqCst) {
                if let Some(Ok(message)) = member.poll(Duration::from_millis(100)) {
                    let value = Received::from_message(&message).value_str();
                    seen.insert(value.parse::<u64>().expect("a numbered value"));
                }
                if last_commit.elapsed() > Duration::from_millis(500) {
                    // May fail while the coordinator moves: the next one counts.
                    let _ = member.commit_consumer_state(CommitMode::Async);
                    last_commit = std::time::Instant::now();
                }
            }
            wait_until("the last commit is taken", || {
                let _ = member.poll(Duration::from_millis(100));
                use rdkafka::error::{KafkaError, RDKafkaErrorCode};
                match member.commit_consumer_state(CommitMode::Sync) {
                    // Nothing new since the last commit that was taken.
                    Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => true,
                    Err(error) => {
                        eprintln!("the last commit: {error}");
                        false
                    }
                }
            });
            seen
        });
        GroupReader { stop, thread }
    }

    fn stop(self) -> std::collections::BTreeSet<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("the reader thread")
    }
}

/// Every broker restarted in turn (SIGTERM, which moves its leadership
/// away first, then started again) while a producer writes with acks=all
/// and a consumer group reads and commits: nothing acknowledged is lost,
/// the group reads every acknowledged value, and it keeps its offsets: its
/// last commit is the end of every partition.
#[test]
fn a_rolling_restart_under_load_loses_nothing_and_the_group_keeps_its_offsets() {
    let mut cluster = ProxiedCluster::start();
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("rolling");
    let all: Vec<&Broker> = cluster.brokers.iter().collect();
    create_replicated(
        &all,
        &topic,
        &as_slices(&spread(3)),
        &[("min.insync.replicas", "2")],
    );
    let group = unique_topic("rolling-group");
    let reader = GroupReader::start(&bootstrap, &group, &topic);
    let load = Load::start(&bootstrap, &topic, 3, 20, Duration::from_millis(10));
    load.wait_for_progress(300);

    for node in 0..3 {
        cluster.brokers[node].stop_sigterm();
        cluster.brokers[node].restart();
        let observer = cluster.address((node + 1) % 3);
        wait_until("every partition fully in sync again", || {
            (0..3).all(|p| in_sync_replicas(&observer, &topic, p).len() == 3)
        });
        load.wait_for_progress(300);
    }

    let (_, acks) = load.stop();
    let verdict = check(&bootstrap, &topic, 3, &acks);
    assert!(verdict.is_clean(), "{verdict:?}");
    let ends: Vec<rdkafka::Offset> = (0..3)
        .map(|p| rdkafka::Offset::Offset(high_watermark(&bootstrap, &topic, p)))
        .collect();
    // The reader catches up with the end, then stops with a last commit.
    wait_until("the group has read to the end", || {
        committed_offsets_of(&bootstrap, &group, &topic, &[0, 1, 2]) == ends
    });
    let seen = reader.stop();
    let missing: Vec<&u64> = acks.acked.keys().filter(|n| !seen.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged values never read by the group, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(
        committed_offsets_of(&bootstrap, &group, &topic, &[0, 1, 2]),
        ends,
        "the group's offsets"
    );
}

/// DeleteRecords at the leader reaches the followers (the log start offset
/// comes with every fetch): each replica starts at the new offset, and so
/// does the partition once another replica leads it.
#[test]
fn deleted_records_are_gone_from_every_replica() {
    let mut brokers = Broker::start_together(&with_fast_fencing(cluster_settings(3)));
    let bootstrap = bootstrap_all(&brokers);
    let topic = unique_topic("deleted");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &topic, &[&[1, 2, 3]], &[]);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "r", 100);
    flush_and_check(&producer);
    let results = delete_records(&bootstrap, &topic, 0, rdkafka::Offset::Offset(60));
    assert_eq!(
        results.elements()[0].error(),
        Ok(()),
        "DeleteRecords: {results:?}"
    );
    wait_until("every replica starts at 60", || {
        brokers
            .iter()
            .all(|b| log_start_offset(b, &topic, 0) == Some(60.0))
    });

    let leader = view(&brokers[0].bootstrap(), &topic).1[&0];
    brokers[leader as usize - 1].kill9();
    let survivor = brokers[leader as usize % 3].bootstrap();
    wait_until("another replica leads", || {
        view(&survivor, &topic)
            .1
            .get(&0)
            .is_some_and(|l| *l > 0 && *l != leader)
    });
    let received = consume_partition(&survivor, &topic, 0, 40);
    assert_eq!(received[0].offset, 60, "the first record left");
    assert_eq!(received[0].value_str(), "r-60");
}

/// After a failover the partition's first replica (its preferred leader)
/// is back in sync but does not lead: `strata cluster elect-leaders`
/// (ElectLeaders) gives it its leadership back, and a second time there is
/// nothing to do. A partition whose only in-sync replica is down stays
/// without a leader while an out-of-sync replica is alive, until an unclean
/// election makes that one leader; the old leader, back, cuts what only it
/// held.
#[test]
fn preferred_and_unclean_leader_elections() {
    let mut brokers = four_nodes(&["auto.leader.rebalance.enable=false"]);
    let bootstrap = brokers[0].bootstrap();
    let preferred = unique_topic("preferred");
    let unclean = unique_topic("unclean");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &preferred, &[&[4, 2, 3]], &[]);
    create_replicated(&all, &unclean, &[&[4, 3]], &[]);
    brokers[3].kill9();
    wait_until("2 leads", || {
        view(&bootstrap, &preferred).1.get(&0) == Some(&2)
    });
    brokers[3].restart();
    wait_until("4 is in sync again", || {
        in_sync_replicas(&bootstrap, &preferred, 0).len() == 3
    });
    assert_eq!(
        view(&bootstrap, &preferred).1[&0],
        2,
        "nothing moves it back by itself"
    );
    let elect = |args: &[&str]| {
        let mut all = vec!["cluster", "elect-leaders"];
        all.extend_from_slice(args);
        common::cli::cells(&common::cli::success(common::cli::strata(&bootstrap, &all)))
    };
    assert_eq!(
        elect(&["--topic", &preferred])[1],
        common::cli::row(&[&preferred, "0", "elected"])
    );
    wait_until("4 leads again", || {
        view(&bootstrap, &preferred).1.get(&0) == Some(&4)
    });
    assert_eq!(
        elect(&["--topic", &preferred, "--partition", "0"])[1],
        common::cli::row(&[&preferred, "0", "ElectionNotNeeded"])
    );

    // Unclean: 4 leads alone (3 is down), takes 5 writes, dies; 3 comes back.
    let producer = create_producer(&producer_config(&bootstrap));
    let kept = produce_numbered(&producer, &unclean, 0, "kept", 5);
    flush_and_check(&producer);
    brokers[2].kill9();
    wait_until("4 leads alone", || {
        in_sync_replicas(&bootstrap, &unclean, 0) == [4]
    });
    let mut client = RawClient::connect(&brokers[3].bootstrap());
    for _ in 0..5 {
        let batch = encode_batch(&[b"only-on-4".as_slice()], now_ms()).freeze();
        assert_eq!(client.produce_with(&unclean, 0, batch, 1, 30_000).0, 0);
    }
    brokers[3].kill9();
    brokers[2].restart();
    wait_until("3 is back, the partition has no leader", || {
        view(&bootstrap, &unclean).0.contains(&3)
            && view(&bootstrap, &unclean).1.get(&0) == Some(&-1)
    });
    assert_eq!(
        elect(&["--topic", &unclean])[1],
        common::cli::row(&[&unclean, "0", "PreferredLeaderNotAvailable"])
    );
    assert_eq!(
        elect(&["--unclean", "--topic", &unclean])[1],
        common::cli::row(&[&unclean, "0", "elected"])
    );
    wait_until("3 leads", || {
        view(&bootstrap, &unclean).1.get(&0) == Some(&3)
    });
    let received = consume_partition(&bootstrap, &unclean, 0, 5);
    assert_values_in_order(&received, &kept);
    brokers[3].restart();
    wait_until("4 follows 3 again", || {
        in_sync_replicas(&bootstrap, &unclean, 0).len() == 2
    });
    assert_all_replicas_identical(&brokers[2..], &unclean, 1);
    assert_eq!(
        high_watermark(&bootstrap, &unclean, 0),
        5,
        "4's writes are gone"
    );
}

/// With `auto.leader.rebalance.enable` (Kafka's default), the controller
/// gives a preferred leader its partition back by itself once it is in
/// sync again (checked every `leader.imbalance.check.interval.seconds`).
#[test]
fn the_controller_moves_leadership_back_to_preferred_leaders() {
    let mut brokers = Broker::start_together(
        &with_fast_fencing(cluster_settings(3))
            .into_iter()
            .map(|mut node| {
                node.push("leader.imbalance.check.interval.seconds=1".to_string());
                node
            })
            .collect::<Vec<_>>(),
    );
    let bootstrap = bootstrap_all(&brokers);
    let topic = unique_topic("rebalanced");
    let all: Vec<&Broker> = brokers.iter().collect();
    create_replicated(&all, &topic, &[&[3, 1, 2]], &[]);
    brokers[2].kill9();
    let survivor = brokers[0].bootstrap();
    wait_until("another broker leads", || {
        view(&survivor, &topic)
            .1
            .get(&0)
            .is_some_and(|l| *l > 0 && *l != 3)
    });
    brokers[2].restart();
    wait_until("3, in sync again, leads again", || {
        view(&survivor, &topic).1.get(&0) == Some(&3)
    });
    let _ = bootstrap;
}
