//! Several `strata serve` processes on loopback form one cluster: a Raft
//! quorum of three combined nodes, partitions spread over the brokers, and
//! clients (librdkafka) that find each partition's leader.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::Duration;

use common::cluster::*;
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;
use rdkafka::Offset;

/// Each partition's leader epoch as one broker's Metadata says.
fn leader_epochs(bootstrap: &str, topic: &str) -> BTreeMap<i32, i32> {
    partitions_of(bootstrap, topic)
        .iter()
        .map(|p| (p.partition_index, p.leader_epoch))
        .collect()
}

fn cluster_id(broker: &Broker) -> String {
    let text = std::fs::read_to_string(broker.data_dir().join("meta.properties")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("cluster.id="))
        .expect("cluster.id")
        .to_string()
}

#[test]
fn three_nodes_form_one_cluster_and_clients_follow_partition_leaders() {
    let brokers = Broker::start_together(&cluster_settings(3));
    let ids: BTreeSet<i32> = (1..=3).collect();
    for broker in &brokers {
        wait_until("every broker lists the three brokers", || {
            view(&broker.bootstrap(), "none").0 == ids
        });
    }
    let cluster = cluster_id(&brokers[0]);
    assert!(
        brokers.iter().all(|b| cluster_id(b) == cluster),
        "one cluster id"
    );

    // Created through the second broker, whichever leads the quorum.
    let topic = unique_topic("spread");
    create_topic(&brokers[1].bootstrap(), &topic, 12);
    for broker in &brokers {
        wait_until("every broker sees the topic on all three", || {
            let leaders = view(&broker.bootstrap(), &topic).1;
            leaders.len() == 12 && leaders.values().copied().collect::<BTreeSet<_>>() == ids
        });
    }
    // Each broker holds the data of its own partitions only.
    let mut hosted = BTreeSet::new();
    for broker in &brokers {
        for partition in 0..12 {
            if broker.partition_dir(&topic, partition).exists() {
                assert!(hosted.insert(partition), "partition {partition} twice");
            }
        }
    }
    assert_eq!(hosted, (0..12).collect());

    // librdkafka, bootstrapped from one broker, sends each record to its
    // partition's leader and reads every one back through another.
    let producer = create_producer(&producer_config(&brokers[2].bootstrap()));
    let mut expected = BTreeMap::new();
    for i in 0..120 {
        let partition = i % 12;
        let value = format!("v{i}");
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(partition)
                .payload(&value),
        );
        expected
            .entry(partition)
            .or_insert_with(Vec::new)
            .push(value);
    }
    flush_and_check(&producer);
    let assignment: Vec<(i32, Offset)> = (0..12).map(|p| (p, Offset::Beginning)).collect();
    let consumer = assigned_consumer(&brokers[0].bootstrap(), &topic, &assignment);
    let received = consume_n(&consumer, 120);
    let mut got: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for message in &received {
        got.entry(message.partition)
            .or_default()
            .push(message.value_str());
    }
    assert_eq!(got, expected);
}

/// "Voters pointing at nothing": a node whose quorum has no majority waits,
/// says why, and serves no client until the others come.
#[test]
fn a_node_waits_for_a_majority_of_its_voters_before_it_serves() {
    let settings = cluster_settings(3);
    let root = tempfile::Builder::new()
        .prefix("strata-e2e-")
        .tempdir()
        .unwrap();
    let mut first = Broker::launch_in(root, &settings[0]);
    wait_until("the lone node says it waits for its quorum", || {
        first.stderr().contains("waiting for the controller quorum")
    });
    assert!(first.is_running(), "{}", first.stderr_tail());
    assert!(!first.stderr().contains("strata is serving"));
    let others = Broker::start_together(&settings[1..]);
    first.wait_listening();
    for broker in others.iter().chain([&first]) {
        wait_until("every node lists the three brokers", || {
            view(&broker.bootstrap(), "none").0.len() == 3
        });
    }
}

/// Which brokers say they are the active controller (`/metrics`).
fn active_controllers(brokers: &mut [Broker]) -> Vec<usize> {
    let mut active = Vec::new();
    for (i, broker) in brokers.iter_mut().enumerate() {
        if broker.is_running() {
            let text = get_ok(&broker.metrics_address(), "/metrics");
            if sample(&text, "strata_controller_active") == Some(1.0) {
                active.push(i);
            }
        }
    }
    active
}

fn topics_seen(bootstrap: &str) -> BTreeSet<String> {
    let client: BaseConsumer = client_config(bootstrap).create().expect("client");
    client
        .fetch_metadata(None, Duration::from_secs(5))
        .map(|m| m.topics().iter().map(|t| t.name().to_string()).collect())
        .unwrap_or_default()
}

/// kill -9 of the active controller: the other two elect one of them and
/// topics are created again; the killed node comes back and catches up;
/// then every node restarts and the metadata is all there.
#[test]
fn the_killed_controller_is_replaced_and_catches_up_and_a_full_restart_keeps_the_metadata() {
    let mut brokers = Broker::start_together(&cluster_settings(3));
    let before = unique_topic("before");
    create_topic(&brokers[0].bootstrap(), &before, 3);
    let mut active = Vec::new();
    wait_until("one active controller", || {
        active = active_controllers(&mut brokers);
        active.len() == 1
    });
    let killed = active[0];
    brokers[killed].kill9();
    wait_until("another node becomes the active controller", || {
        active = active_controllers(&mut brokers);
        active.len() == 1 && active[0] != killed
    });
    let survivor = active[0];
    let after = unique_topic("after");
    create_topic(&brokers[survivor].bootstrap(), &after, 3);

    brokers[killed].restart();
    let back = brokers[killed].bootstrap();
    wait_until(
        "the restarted node sees the topic created without it",
        || topics_seen(&back).contains(&after),
    );

    Broker::restart_together(&mut brokers);
    for broker in &brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every node has both topics after a full restart", || {
            let seen = topics_seen(&bootstrap);
            seen.contains(&before) && seen.contains(&after)
        });
    }
}

/// The coordinator FindCoordinator names for `group`, asked of `bootstrap`.
/// A group coordinated by a broker other than the one the client was given
/// works, and its committed offsets survive a restart of the whole cluster.
#[test]
fn a_group_coordinated_elsewhere_works_and_its_offsets_survive_a_full_restart() {
    let mut brokers = Broker::start_together(&cluster_settings(3));
    let bootstrap = brokers[0].bootstrap();
    let topic = unique_topic("grouped");
    create_topic(&bootstrap, &topic, 6);
    let producer = create_producer(&producer_config(&bootstrap));
    let values: Vec<String> = (0..60).map(|i| format!("m{i}")).collect();
    produce_values(&producer, &topic, None, &values);
    flush_and_check(&producer);
    let group = (0..)
        .map(|i| format!("{}-{i}", unique_topic("group")))
        .find(|group| coordinator_of(&bootstrap, group) != 1)
        .unwrap();

    // Group requests sent to a broker that is not the coordinator are told
    // so, and the client asks FindCoordinator again.
    {
        use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
        let mut client = RawClient::connect(&bootstrap);
        let request = HeartbeatRequest::default()
            .with_group_id(kafka_protocol::messages::GroupId(
                kafka_protocol::protocol::StrBytes::from_string(group.clone()),
            ))
            .with_generation_id(1)
            .with_member_id(kafka_protocol::protocol::StrBytes::from_static_str("m"));
        let response: HeartbeatResponse = client.request(ApiKey::Heartbeat, 0, &request);
        assert_eq!(response.error_code, 16, "NOT_COORDINATOR: {response:?}");
    }

    let member = group_member(&bootstrap, &group, "member", &topic);
    poll_until_assigned(&member, 6);
    let received = consume_n(&member, 60);
    assert_eq!(received.len(), 60);
    let offsets: Vec<(i32, i64)> = (0..6).map(|p| (p, 10)).collect();
    commit_as_member(&member, &topic, &offsets);
    drop(member);
    let partitions: Vec<i32> = (0..6).collect();
    let expected = vec![Offset::Offset(10); 6];
    assert_eq!(
        committed_offsets_of(&bootstrap, &group, &topic, &partitions),
        expected
    );

    Broker::restart_together(&mut brokers);
    assert_eq!(
        committed_offsets_of(&brokers[1].bootstrap(), &group, &topic, &partitions),
        expected
    );
}

/// Producer ids come from blocks claimed through the metadata log: brokers
/// handing them out at once never hand out the same one.
#[test]
fn producer_ids_are_unique_across_brokers() {
    let brokers = Broker::start_together(&cluster_settings(3));
    let handed_out: Vec<i64> = thread::scope(|scope| {
        let askers: Vec<_> = brokers
            .iter()
            .map(|broker| {
                let bootstrap = broker.bootstrap();
                scope.spawn(move || {
                    let mut client = RawClient::connect(&bootstrap);
                    (0..5)
                        .map(|_| init_producer_id(&mut client).0)
                        .collect::<Vec<i64>>()
                })
            })
            .collect();
        askers
            .into_iter()
            .flat_map(|asker| asker.join().unwrap())
            .collect()
    });
    let distinct: BTreeSet<i64> = handed_out.iter().copied().collect();
    assert_eq!(distinct.len(), 15, "{handed_out:?}");
}

/// The active controller cut off from the other two by black-holing every
/// byte between them (fault-injecting proxies on loopback): the majority
/// elects another leader, the cut-off node stops acting as controller, and
/// once the network heals it follows the new leader and catches up.
#[test]
fn an_isolated_controller_is_replaced_and_stops_acting_until_the_network_heals() {
    let ports = free_ports(3);
    // proxies[a][b]: how node a+1 reaches node b+1.
    let proxies: Vec<Vec<Option<FaultProxy>>> = (0..3)
        .map(|a| {
            (0..3)
                .map(|b| (a != b).then(|| FaultProxy::start(ports[b])))
                .collect()
        })
        .collect();
    let settings =
        cluster_settings_via(&ports, |node, voter| match &proxies[node - 1][voter - 1] {
            Some(proxy) => format!("127.0.0.1:{}", proxy.port),
            None => format!("127.0.0.1:{}", ports[voter - 1]),
        });
    let mut brokers = Broker::start_together(&settings);
    let mut active = Vec::new();
    wait_until("one active controller", || {
        active = active_controllers(&mut brokers);
        active.len() == 1
    });
    let isolated = active[0];
    for other in (0..3).filter(|o| *o != isolated) {
        for (a, b) in [(isolated, other), (other, isolated)] {
            proxies[a][b].as_ref().unwrap().black_hole();
        }
    }
    wait_until(
        "the majority has its own active controller, the cut-off one none",
        || {
            active = active_controllers(&mut brokers);
            active.len() == 1 && active[0] != isolated
        },
    );
    let majority = active[0];
    let during = unique_topic("during-partition");
    // Through the CLI, which asks the broker it is given: the cut-off node
    // still serves clients its stale metadata (as a Kafka broker does until
    // it hears it is fenced), and librdkafka might ask it.
    let majority_bootstrap = brokers[majority].bootstrap();
    common::cli::success(common::cli::strata(
        &majority_bootstrap,
        &["topic", "create", &during, "--partitions", "2"],
    ));
    wait_until("the majority serves the new topic", || {
        topics_seen(&majority_bootstrap).contains(&during)
    });

    for row in &proxies {
        for proxy in row.iter().flatten() {
            proxy.heal();
        }
    }
    let healed = brokers[isolated].bootstrap();
    wait_until("the healed node catches up", || {
        topics_seen(&healed).contains(&during)
    });
    wait_until("still one active controller", || {
        active_controllers(&mut brokers).len() == 1
    });
}

/// A broker that stops heartbeating (kill -9) is fenced: Metadata leaves it
/// out and its partitions have no leader; back, it leads them again. A
/// broker stopped with SIGTERM has the controller fence it as it goes.
#[test]
fn a_silent_broker_is_fenced_and_its_partitions_come_back_with_it() {
    let mut brokers = Broker::start_together(&with_fast_fencing(cluster_settings(3)));
    let topic = unique_topic("fenced");
    create_topic(&brokers[0].bootstrap(), &topic, 6);
    let mut active = Vec::new();
    wait_until("one active controller", || {
        active = active_controllers(&mut brokers);
        active.len() == 1
    });
    let victim = (0..3).find(|i| *i != active[0]).unwrap();
    let victim_id = victim as i32 + 1;
    let watcher = brokers[active[0]].bootstrap();
    let led_by_victim =
        |leaders: &BTreeMap<i32, i32>| leaders.values().filter(|l| **l == victim_id).count();
    let mut before = BTreeMap::new();
    wait_until("the topic is led by all three", || {
        before = view(&watcher, &topic).1;
        before.len() == 6 && led_by_victim(&before) > 0
    });

    // A consumer of one of its partitions, which keeps running throughout.
    let (&watched, _) = before.iter().find(|(_, l)| **l == victim_id).unwrap();
    let producer = create_producer(&producer_config(&watcher));
    let first = produce_numbered(&producer, &topic, watched, "before", 5);
    let consumer = assigned_consumer(&watcher, &topic, &[(watched, Offset::Beginning)]);
    assert_values_in_order(&consume_n(&consumer, 5), &first);

    brokers[victim].kill9();
    wait_until(
        "the silent broker is fenced and its partitions have no leader",
        || {
            let (listed, leaders) = view(&watcher, &topic);
            !listed.contains(&victim_id)
                && leaders.len() == 6
                && leaders.iter().all(|(p, l)| {
                    if before[p] == victim_id {
                        *l == -1
                    } else {
                        *l == before[p]
                    }
                })
        },
    );
    let text = get_ok(&brokers[active[0]].metrics_address(), "/metrics");
    assert_eq!(sample(&text, "strata_brokers_fenced"), Some(1.0), "{text}");
    // `strata cluster info` lists it as fenced (DescribeCluster v2).
    let stdout = common::cli::success(common::cli::strata(&watcher, &["cluster", "info"]));
    let rows = common::cli::cells(&stdout);
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&victim_id.to_string())
                && r.last().map(String::as_str) == Some("yes")),
        "{stdout}"
    );
    assert!(
        sample(&text, "strata_offline_partitions").unwrap() >= 1.0,
        "{text}"
    );

    brokers[victim].restart();
    wait_until("the broker is back and leads its partitions again", || {
        let (listed, leaders) = view(&watcher, &topic);
        listed.len() == 3 && leaders == before
    });
    // Leaderless, then led again: each a new leader epoch (PartitionChange
    // records); the other partitions never changed leader.
    let epochs = leader_epochs(&watcher, &topic);
    for (partition, leader) in &before {
        let expected = if *leader == victim_id { 2 } else { 0 };
        assert_eq!(
            epochs[partition], expected,
            "partition {partition}: {epochs:?}"
        );
    }
    // The consumer follows the new epoch (librdkafka checks its position
    // with OffsetForLeaderEpoch) and reads on from where it was.
    let second: Vec<String> = (0..5).map(|i| format!("after-{i}")).collect();
    for value in &second {
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(watched)
                .payload(value.as_str()),
        );
    }
    flush_and_check(&producer);
    let received = consume_n(&consumer, 5);
    let offsets: Vec<i64> = received.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, [5, 6, 7, 8, 9]);
    let values: Vec<String> = received.iter().map(Received::value_str).collect();
    assert_eq!(values, second);

    brokers[victim].stop_sigterm();
    wait_until("the stopped broker was fenced", || {
        !view(&watcher, &topic).0.contains(&victim_id)
    });
}

/// Bad input on the controller listener (a Kafka request, a frame claiming
/// 4 GiB, a frame that is not JSON) closes that connection; the node keeps
/// its place in the quorum and the cluster keeps working.
#[test]
fn garbage_on_the_controller_listener_closes_the_connection_and_nothing_else() {
    use std::io::{Read, Write};
    let settings = cluster_settings(3);
    let controller_port = |node: &[String]| -> u16 {
        let listeners = node.iter().find(|s| s.starts_with("listeners=")).unwrap();
        listeners.rsplit(':').next().unwrap().parse().unwrap()
    };
    let port = controller_port(&settings[0]);
    let brokers = Broker::start_together(&settings);
    // ApiVersions v0: size, api key 18, version 0, correlation id 1, no client id.
    let api_versions: &[u8] = &[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    let huge: &[u8] = &[0xff, 0xff, 0xff, 0xff, b'{'];
    let not_json: &[u8] = &[0, 0, 0, 3, b'x', b'y', b'z'];
    for bytes in [api_versions, huge, not_json] {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.write_all(bytes).unwrap();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "the controller listener answered {answer:?}"
        );
    }
    let topic = unique_topic("after-garbage");
    create_topic(&brokers[0].bootstrap(), &topic, 3);
    for broker in &brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every node sees the topic", || {
            topics_seen(&bootstrap).contains(&topic)
        });
    }
}

/// A node whose data directory belongs to another cluster refuses to start
/// with one line that says so.
#[test]
fn a_data_directory_of_another_cluster_is_refused() {
    let mut brokers = Broker::start_together(&cluster_settings(3));
    brokers[2].stop_sigterm();
    let properties = brokers[2].data_dir().join("meta.properties");
    let text = std::fs::read_to_string(&properties).unwrap();
    let other: String = text
        .lines()
        .map(|line| match line.strip_prefix("cluster.id=") {
            Some(_) => "cluster.id=AnotherClusterAAAAAAAAAA".to_string(),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&properties, other).unwrap();
    brokers[2].launch_again();
    wait_until("the node gives up", || !brokers[2].is_running());
    let stderr = brokers[2].stderr();
    assert!(
        stderr.contains(
            "belongs to cluster AnotherClusterAAAAAAAAAA, but the controller quorum is cluster"
        ),
        "{stderr}"
    );
}

/// Launches a second node with `settings` (a running node's `node.id`, a
/// data directory and ports of its own) and checks that the others refuse
/// it: it gives up with one line naming the id, and never serves.
fn assert_second_node_refused(settings: Vec<String>, node_id: i32) {
    let root = tempfile::Builder::new()
        .prefix("strata-e2e-")
        .tempdir()
        .expect("a temporary directory");
    let mut second = Broker::launch_in(root, &settings);
    wait_until("the second node gives up", || !second.is_running());
    let stderr = second.stderr();
    assert!(
        stderr.contains(&format!(
            "node.id {node_id} is registered by a running node"
        )) && stderr.contains("two nodes have the same node.id"),
        "{stderr}"
    );
}

/// The settings of a node like `settings` on a new controller port.
fn on_new_controller_port(settings: &[String]) -> Vec<String> {
    let port = free_ports(1)[0];
    settings
        .iter()
        .map(|s| match s.strip_prefix("listeners=") {
            Some(_) => format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
            None => s.clone(),
        })
        .chain([
            "broker.heartbeat.interval.ms=200".to_string(),
            "broker.session.timeout.ms=2000".to_string(),
        ])
        .collect()
}

/// A second node started with a running voter's `node.id` (own directory,
/// own ports, the same voters) is refused by the quorum before it can vote
/// or register, gives up with one line, and the cluster is as before.
#[test]
fn a_second_node_with_a_running_voters_id_is_refused() {
    let settings = cluster_settings(3);
    let brokers = Broker::start_together(&settings);
    assert_second_node_refused(on_new_controller_port(&settings[1]), 2);
    // Node 2 is still the one that registered, and changes still commit.
    let topic = unique_topic("after-duplicate");
    create_topic(&brokers[1].bootstrap(), &topic, 3);
    let client: BaseConsumer = client_config(&brokers[0].bootstrap()).create().unwrap();
    let metadata = client
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let second = metadata.brokers().iter().find(|b| b.id() == 2).unwrap();
    assert_eq!(
        format!("{}:{}", second.host(), second.port()),
        brokers[1].bootstrap()
    );
    for broker in &brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every broker sees the new topic", || {
            view(&bootstrap, &topic).1.len() == 3
        });
    }
}

/// A broker-only node (`process.roles=broker`) joins three voters: it
/// follows the metadata log as a learner, is listed by every broker, new
/// topics are placed on it, and what is created through it is seen by all.
#[test]
fn a_broker_only_node_joins_and_new_topics_use_it() {
    let ports = free_ports(4);
    let mut settings = cluster_settings_via(&ports[..3], |_, voter| {
        format!("127.0.0.1:{}", ports[voter - 1])
    });
    let mut brokers = Broker::start_together(&settings);
    settings.push(broker_only_settings(&settings[0], 4, ports[3]));
    brokers.extend(Broker::start_together(&settings[3..]));
    let ids: BTreeSet<i32> = (1..=4).collect();
    for broker in &brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every broker lists four", || {
            view(&bootstrap, "none").0 == ids
        });
    }
    // Created through the broker-only node: the change goes to the leader.
    let topic = unique_topic("four");
    create_topic(&brokers[3].bootstrap(), &topic, 8);
    for broker in &brokers {
        let bootstrap = broker.bootstrap();
        wait_until("every broker sees the topic on all four", || {
            let leaders = view(&bootstrap, &topic).1;
            leaders.len() == 8 && leaders.values().copied().collect::<BTreeSet<_>>() == ids
        });
    }
    let hosted_by_four = (0..8)
        .filter(|p| brokers[3].partition_dir(&topic, *p).exists())
        .count();
    assert_eq!(hosted_by_four, 2);
    // Its partitions take records like any other's.
    let producer = create_producer(&producer_config(&brokers[0].bootstrap()));
    for partition in 0..8 {
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(partition)
                .payload("x"),
        );
    }
    flush_and_check(&producer);
    // The active controller is still one of the voters, and DescribeQuorum
    // there lists the fourth node as an observer.
    let mut active = Vec::new();
    wait_until("one active controller", || {
        active = active_controllers(&mut brokers);
        active.len() == 1
    });
    assert!(active[0] < 3, "{active:?}");
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{
        ApiKey, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
    };
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName("__cluster_metadata".into()))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let mut client = RawClient::connect(&brokers[active[0]].bootstrap());
    let response: DescribeQuorumResponse = client.request(ApiKey::DescribeQuorum, 1, &request);
    let partition = &response.topics[0].partitions[0];
    let ids = |replicas: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
        replicas.iter().map(|r| r.replica_id.0).collect::<Vec<_>>()
    };
    assert_eq!(ids(&partition.current_voters), [1, 2, 3], "{partition:?}");
    assert_eq!(ids(&partition.observers), [4], "{partition:?}");

    // A second broker-only node 4 is refused; the first keeps its place.
    assert_second_node_refused(on_new_controller_port(&settings[3]), 4);
    let topic = unique_topic("after-duplicate");
    create_topic(&brokers[0].bootstrap(), &topic, 8);
    wait_until("the first node 4 still hosts partitions", || {
        (0..8).any(|p| brokers[3].partition_dir(&topic, p).exists())
    });
}

/// Replication factor 3: acks=all writes reach all three replicas (the
/// followers fetch them); kill -9 the leader and another in-sync replica
/// leads, nothing acknowledged is lost, writes go on; the killed broker
/// comes back and catches up from the new leader.
#[test]
fn a_replicated_partition_loses_nothing_acknowledged_when_its_leader_dies() {
    use rdkafka::admin::{NewTopic, TopicReplication};
    let mut brokers = Broker::start_together(&with_fast_fencing(cluster_settings(3)));
    let bootstrap = brokers[0].bootstrap();
    let topic = unique_topic("replicated");
    let admin = admin_client(&bootstrap);
    let created = block_on(admin.create_topics(
        [&NewTopic::new(&topic, 1, TopicReplication::Fixed(3))],
        &admin_options(),
    ))
    .expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    wait_until("every broker sees the topic led", || {
        brokers.iter().all(|b| {
            view(&b.bootstrap(), &topic)
                .1
                .get(&0)
                .is_some_and(|l| *l > 0)
        })
    });
    // A manual assignment places replicas where it says, on registered
    // brokers only.
    let manual = unique_topic("assigned");
    let unknown = unique_topic("assigned-unknown");
    let created = block_on(admin.create_topics(
        [
            &NewTopic::new(&manual, 2, TopicReplication::Variable(&[&[3, 1], &[2, 3]])),
            &NewTopic::new(&unknown, 1, TopicReplication::Variable(&[&[1, 9]])),
        ],
        &admin_options(),
    ))
    .expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    assert_eq!(
        created[1],
        Err((
            unknown,
            rdkafka::types::RDKafkaErrorCode::InvalidReplicaAssignment
        ))
    );
    wait_until("the assigned leaders lead", || {
        view(&bootstrap, &manual).1 == BTreeMap::from([(0, 3), (1, 2)])
    });

    let producer = create_producer(&producer_config(&bootstrap));
    let first = produce_numbered(&producer, &topic, 0, "before", 100);
    wait_until("all three replicas hold every record", || {
        brokers
            .iter()
            .all(|b| log_end_offset(b, &topic, 0) == Some(100.0))
    });

    let leader = view(&bootstrap, &topic).1[&0];
    let killed = leader as usize - 1;
    brokers[killed].kill9();
    let survivor = brokers[(killed + 1) % 3].bootstrap();
    wait_until("another replica leads", || {
        view(&survivor, &topic)
            .1
            .get(&0)
            .is_some_and(|l| *l > 0 && *l != leader)
    });
    let producer = create_producer(&producer_config(&survivor));
    let second = produce_numbered(&producer, &topic, 0, "after", 100);
    let expected: Vec<String> = first.iter().chain(&second).cloned().collect();
    let received = consume_partition(&survivor, &topic, 0, 200);
    assert_values_in_order(&received, &expected);

    brokers[killed].restart();
    wait_until("the killed broker catches up", || {
        log_end_offset(&brokers[killed], &topic, 0) == Some(200.0)
    });
    // Caught up, it is back in sync (the leader's AlterPartition).
    wait_until("the killed broker is in sync again", || {
        in_sync_replicas(&survivor, &topic, 0).len() == 3
    });
}
