//! DescribeLogDirs (API 35) against real brokers: the data directory is the
//! one log dir, each hosted replica's size is what its segment files hold on
//! disk, what a broker does not host is left out, and v4 carries the
//! volume's space (KIP-827).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::cluster::*;
use common::*;
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResult;
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use rdkafka::admin::{NewTopic, TopicReplication};

/// DescribeLogDirs at `version`: of every hosted replica when `topics` is
/// `None`, else of these (topic, partitions).
fn describe_log_dirs(
    bootstrap: &str,
    version: i16,
    topics: Option<&[(&str, &[i32])]>,
) -> DescribeLogDirsResponse {
    let topics = topics.map(|topics| {
        topics
            .iter()
            .map(|(name, partitions)| {
                DescribableLogDirTopic::default()
                    .with_topic(TopicName(name.to_string().into()))
                    .with_partitions(partitions.to_vec())
            })
            .collect()
    });
    let request = DescribeLogDirsRequest::default().with_topics(topics);
    RawClient::connect(bootstrap).request(ApiKey::DescribeLogDirs, version, &request)
}

/// The one log dir of a response, checked to be `data_dir` without error.
fn the_log_dir<'a>(
    response: &'a DescribeLogDirsResponse,
    data_dir: &Path,
) -> &'a DescribeLogDirsResult {
    assert_eq!(response.error_code, 0, "top-level error code");
    assert_eq!(response.throttle_time_ms, 0);
    assert_eq!(response.results.len(), 1, "one log dir: {response:?}");
    let result = &response.results[0];
    assert_eq!(result.error_code, 0, "log dir error code");
    assert_eq!(
        result.log_dir.as_str(),
        data_dir.to_str().expect("a UTF-8 data dir"),
        "the log dir is the broker's data dir"
    );
    result
}

/// Each described replica's size by (topic, partition); a replica listed
/// twice, with a lag or as a future replica fails the test.
fn sizes(result: &DescribeLogDirsResult) -> BTreeMap<(String, i32), i64> {
    let mut sizes = BTreeMap::new();
    for topic in &result.topics {
        assert!(
            !topic.partitions.is_empty(),
            "{} without partitions",
            topic.name.as_str()
        );
        for partition in &topic.partitions {
            assert_eq!(partition.offset_lag, 0, "offset lag of {partition:?}");
            assert!(!partition.is_future_key, "future replica {partition:?}");
            let key = (topic.name.to_string(), partition.partition_index);
            assert!(
                sizes.insert(key, partition.partition_size).is_none(),
                "{} {} described twice",
                topic.name.as_str(),
                partition.partition_index
            );
        }
    }
    sizes
}

/// The number of segment files of a partition and their total size.
fn segments_on_disk(partition_dir: &Path) -> (usize, i64) {
    let segments = segment_files(partition_dir);
    let bytes = segments
        .iter()
        .map(|path| std::fs::metadata(path).expect("segment metadata").len() as i64)
        .sum();
    (segments.len(), bytes)
}

/// Asserts that every described replica's size is the bytes of its segment
/// files in `broker`'s data dir.
fn assert_sizes_on_disk(broker: &Broker, sizes: &BTreeMap<(String, i32), i64>) {
    for ((topic, partition), size) in sizes {
        let (_, on_disk) = segments_on_disk(&broker.partition_dir(topic, *partition));
        assert_eq!(*size, on_disk, "size of {topic}-{partition}");
    }
}

#[test]
fn describe_log_dirs_reports_the_data_dir_and_each_replica_size_on_disk() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let advertised = RawClient::connect(&bootstrap)
        .api_versions()
        .api_keys
        .into_iter()
        .find(|k| k.api_key == ApiKey::DescribeLogDirs as i16)
        .expect("DescribeLogDirs advertised");
    assert_eq!((advertised.min_version, advertised.max_version), (1, 4));

    let topic = unique_topic("log-dirs");
    let quiet = unique_topic("log-dirs-quiet");
    // Small segments, so that partition 0's size spans several files.
    create_topic_with(&bootstrap, &topic, 2, &[("segment.bytes", "1024")]);
    create_topic(&bootstrap, &quiet, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    for round in 0..5 {
        produce_numbered(
            &producer,
            &topic,
            0,
            &format!("round-{round}-{}", "x".repeat(40)),
            20,
        );
    }
    produce_numbered(&producer, &topic, 1, "one", 3);
    let (segments, partition_0_bytes) = segments_on_disk(&broker.partition_dir(&topic, 0));
    assert!(segments > 1, "partition 0 rolled: {segments} segment(s)");

    for version in 1..=4 {
        let response = describe_log_dirs(&bootstrap, version, None);
        let result = the_log_dir(&response, &broker.data_dir());
        let replicas = sizes(result);
        assert_eq!(
            replicas.get(&(topic.clone(), 0)),
            Some(&partition_0_bytes),
            "v{version}"
        );
        assert!(
            replicas[&(topic.clone(), 1)] > 0,
            "v{version}: partition 1 holds records"
        );
        assert_eq!(
            replicas.get(&(quiet.clone(), 0)),
            Some(&0),
            "v{version}: empty log"
        );
        assert_sizes_on_disk(&broker, &replicas);
        if version >= 4 {
            assert!(result.total_bytes > 0, "total bytes {}", result.total_bytes);
            assert!(
                (0..=result.total_bytes).contains(&result.usable_bytes),
                "usable bytes {} of {}",
                result.usable_bytes,
                result.total_bytes
            );
        }
    }

    // A named partition: that one only; partitions and topics this broker
    // does not have are left out, and so is a topic none of whose asked
    // partitions it has.
    let unknown = unique_topic("log-dirs-unknown");
    let response = describe_log_dirs(
        &bootstrap,
        4,
        Some(&[(&topic, &[1, 5]), (&unknown, &[0]), (&quiet, &[2])]),
    );
    let result = the_log_dir(&response, &broker.data_dir());
    let replicas = sizes(result);
    assert_eq!(replicas.keys().collect::<Vec<_>>(), [&(topic.clone(), 1)]);
    assert_sizes_on_disk(&broker, &replicas);
    let names: Vec<&str> = result.topics.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [topic.as_str()],
        "only topics with a described replica"
    );

    // An empty list asks for nothing: the log dir, without replicas.
    let response = describe_log_dirs(&bootstrap, 4, Some(&[]));
    assert!(the_log_dir(&response, &broker.data_dir()).topics.is_empty());
}

/// Three brokers: each describes its own data dir and exactly the replicas
/// it holds, followers included, with the sizes of its own files.
#[test]
fn describe_log_dirs_on_three_brokers_reports_the_replicas_each_holds() {
    let brokers = Broker::start_together(&cluster_settings(3));
    let bootstrap = brokers[0].bootstrap();
    let replicated = unique_topic("log-dirs-rf3");
    let single = unique_topic("log-dirs-rf1");
    let admin = admin_client(&bootstrap);
    let created = block_on(admin.create_topics(
        [
            &NewTopic::new(&replicated, 1, TopicReplication::Fixed(3)),
            // Partition p on node p + 1 only.
            &NewTopic::new(&single, 3, TopicReplication::Variable(&[&[1], &[2], &[3]])),
        ],
        &admin_options(),
    ))
    .expect("CreateTopics");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    wait_until("every broker sees every partition led", || {
        brokers.iter().all(|b| {
            let bootstrap = b.bootstrap();
            view(&bootstrap, &replicated)
                .1
                .get(&0)
                .is_some_and(|l| *l > 0)
                && view(&bootstrap, &single)
                    .1
                    .values()
                    .filter(|l| **l > 0)
                    .count()
                    == 3
        })
    });

    // acks=all (the test configuration's).
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &replicated, 0, "replicated", 100);
    for partition in 0..3 {
        produce_numbered(&producer, &single, partition, "single", 10);
    }
    wait_until("all three replicas hold every record", || {
        brokers
            .iter()
            .all(|b| log_end_offset(b, &replicated, 0) == Some(100.0))
    });

    let mut replicated_sizes = Vec::new();
    for (index, broker) in brokers.iter().enumerate() {
        let node_id = index as i32 + 1;
        let response = describe_log_dirs(&broker.bootstrap(), 4, None);
        let result = the_log_dir(&response, &broker.data_dir());
        assert!(result.total_bytes > 0, "node {node_id}: total bytes");
        let replicas = sizes(result);
        assert_sizes_on_disk(broker, &replicas);
        let size = replicas[&(replicated.clone(), 0)];
        assert!(
            size > 0,
            "node {node_id}: the replicated partition's records"
        );
        replicated_sizes.push(size);
        let single_partitions: Vec<i32> = replicas
            .keys()
            .filter(|(topic, _)| *topic == single)
            .map(|(_, partition)| *partition)
            .collect();
        assert_eq!(
            single_partitions,
            [index as i32],
            "node {node_id} holds one"
        );
        assert!(replicas[&(single.clone(), index as i32)] > 0);

        // Asking for all three of the single-replica partitions by name
        // gets the one this broker holds.
        let response = describe_log_dirs(&broker.bootstrap(), 4, Some(&[(&single, &[0, 1, 2])]));
        let replicas = sizes(the_log_dir(&response, &broker.data_dir()));
        assert_eq!(
            replicas.keys().collect::<Vec<_>>(),
            [&(single.clone(), index as i32)]
        );
    }
    // Followers copy the leader's batches byte for byte.
    assert!(
        replicated_sizes.iter().all(|s| *s == replicated_sizes[0]),
        "replica sizes {replicated_sizes:?}"
    );
}
