//! Durability across restarts on the same data directory: clean stop (SIGTERM), crash
//! (SIGKILL), and a crash that leaves a torn or garbage tail in the active segment.

mod common;

use common::*;
use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
use rdkafka::admin::{ConfigSource, ResourceSpecifier};
use rdkafka::topic_partition_list::Offset;

/// Creates a two-partition topic with a config override, produces acks=all to both
/// partitions, and returns the values per partition.
fn fill(bootstrap: &str, topic: &str) -> [Vec<String>; 2] {
    create_topic_with(bootstrap, topic, 2, &[("retention.ms", "3600000")]);
    let producer = create_producer(&producer_config(bootstrap));
    let zero = produce_numbered(&producer, topic, 0, "before-p0", 3000);
    let one = produce_numbered(&producer, topic, 1, "before-p1", 1000);
    [zero, one]
}

/// After a restart: topic, partitions and config override are still there, every
/// acknowledged message reads back, and new messages continue at the old end.
fn check_after_restart(broker: &Broker, topic: &str, before: &[Vec<String>; 2]) {
    let bootstrap = broker.bootstrap();
    wait_for_topic(&bootstrap, topic, 2);

    let admin = admin_client(&bootstrap);
    let described =
        block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options()))
            .expect("DescribeConfigs request");
    let resource = described[0].as_ref().expect("DescribeConfigs result");
    let retention = resource.get("retention.ms").expect("retention.ms");
    assert_eq!(
        retention.value.as_deref(),
        Some("3600000"),
        "topic config survives a restart"
    );
    assert_eq!(retention.source, ConfigSource::DynamicTopic);

    for (partition, values) in before.iter().enumerate() {
        let partition = partition as i32;
        assert_eq!(
            high_watermark(&bootstrap, topic, partition),
            values.len() as i64,
            "high watermark of partition {partition} after restart"
        );
        let received = consume_partition(&bootstrap, topic, partition, values.len());
        assert_values_in_order(&received, values);
    }

    let producer = create_producer(&producer_config(&bootstrap));
    let after = produce_numbered(&producer, topic, 0, "after", 100);
    let mut all = before[0].clone();
    all.extend(after);
    let received = consume_partition(&bootstrap, topic, 0, all.len());
    assert_values_in_order(&received, &all);
}

#[test]
fn acknowledged_messages_survive_a_clean_restart() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("sigterm");
    let before = fill(&broker.bootstrap(), &topic);
    broker.stop_sigterm();
    broker.restart();
    check_after_restart(&broker, &topic, &before);
    // And once more, with what was written after the first restart.
    broker.stop_sigterm();
    broker.restart();
    assert_eq!(high_watermark(&broker.bootstrap(), &topic, 0), 3100);
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("sigkill");
    let before = fill(&broker.bootstrap(), &topic);
    broker.kill9();
    broker.restart();
    check_after_restart(&broker, &topic, &before);
}

#[test]
fn cluster_id_is_stable_across_restarts() {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
    let mut broker = Broker::start(&[]);
    let cluster_id = |broker: &Broker| -> Option<String> {
        let mut client = RawClient::connect(&broker.bootstrap());
        let version = client.negotiate(ApiKey::Metadata, 12);
        assert!(version >= 2, "Metadata v2+ carries the cluster id");
        let response: MetadataResponse =
            client.request(ApiKey::Metadata, version, &MetadataRequest::default());
        response.cluster_id.map(|id| id.to_string())
    };
    let first = cluster_id(&broker);
    assert!(
        first.as_deref().is_some_and(|id| !id.is_empty()),
        "cluster id: {first:?}"
    );
    broker.stop_sigterm();
    broker.restart();
    assert_eq!(
        cluster_id(&broker),
        first,
        "cluster id after a clean restart"
    );
    broker.kill9();
    broker.restart();
    assert_eq!(cluster_id(&broker), first, "cluster id after SIGKILL");
}

const BATCHES: usize = 10;
const RECORDS_PER_BATCH: usize = 10;

/// Writes BATCHES raw batches of RECORDS_PER_BATCH records to partition 0 (so the
/// batch boundaries in the segment are known), crashes the broker, and returns the
/// values in offset order.
fn write_batches_and_crash(broker: &mut Broker, topic: &str) -> Vec<String> {
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let mut values = Vec::new();
    for batch in 0..BATCHES {
        let batch_values: Vec<String> = (0..RECORDS_PER_BATCH)
            .map(|i| format!("batch-{batch}-record-{i}"))
            .collect();
        let bytes: Vec<&[u8]> = batch_values.iter().map(|v| v.as_bytes()).collect();
        let (code, base_offset) = client.produce(topic, 0, encode_batch(&bytes, now_ms()).freeze());
        assert_eq!(code, 0, "produce error code");
        assert_eq!(
            base_offset,
            (batch * RECORDS_PER_BATCH) as i64,
            "base offset"
        );
        values.extend(batch_values);
    }
    broker.kill9();
    values
}

/// Restarts on the damaged directory and checks that exactly `intact` records
/// survived, that they read back in order, and that new produces continue after them.
fn restart_and_check(broker: &mut Broker, topic: &str, values: &[String], intact: usize) {
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(
        high_watermark(&bootstrap, topic, 0),
        intact as i64,
        "high watermark after recovery: the complete batches before the damage"
    );
    let producer = create_producer(&producer_config(&bootstrap));
    let new = produce_numbered(&producer, topic, 0, "after-recovery", 25);
    let mut expected = values[..intact].to_vec();
    expected.extend(new);
    let received = consume_partition(&bootstrap, topic, 0, expected.len());
    assert_values_in_order(&received, &expected);
    assert_eq!(
        high_watermark(&bootstrap, topic, 0),
        expected.len() as i64,
        "nothing but the expected messages in the log"
    );

    // And the repaired log survives another (clean) restart as it is.
    broker.stop_sigterm();
    broker.restart();
    let received = consume_partition(&broker.bootstrap(), topic, 0, expected.len());
    assert_values_in_order(&received, &expected);
}

#[test]
fn torn_tail_of_the_active_segment_is_truncated_on_recovery() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("torn");
    let values = write_batches_and_crash(&mut broker, &topic);
    let segment = active_segment(&broker.partition_dir(&topic, 0));
    // Less than one batch: the last batch is torn, the others are whole.
    cut_tail(&segment, 7);
    restart_and_check(
        &mut broker,
        &topic,
        &values,
        (BATCHES - 1) * RECORDS_PER_BATCH,
    );
}

#[test]
fn garbage_after_the_last_batch_is_dropped_on_recovery() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("garbage");
    let values = write_batches_and_crash(&mut broker, &topic);
    let segment = active_segment(&broker.partition_dir(&topic, 0));
    append_bytes(&segment, &pseudo_random_bytes(99, 300));
    restart_and_check(&mut broker, &topic, &values, BATCHES * RECORDS_PER_BATCH);
}

#[test]
fn torn_tail_followed_by_garbage_is_truncated_on_recovery() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("torn-garbage");
    let values = write_batches_and_crash(&mut broker, &topic);
    let segment = active_segment(&broker.partition_dir(&topic, 0));
    cut_tail(&segment, 30);
    append_bytes(&segment, &pseudo_random_bytes(5, 1000));
    restart_and_check(
        &mut broker,
        &topic,
        &values,
        (BATCHES - 1) * RECORDS_PER_BATCH,
    );
}

#[test]
fn zeroed_tail_is_truncated_on_recovery() {
    // A crash during a write can also leave zero-filled pages at the end of the file.
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("zeroes");
    let values = write_batches_and_crash(&mut broker, &topic);
    let segment = active_segment(&broker.partition_dir(&topic, 0));
    append_bytes(&segment, &[0u8; 4096]);
    restart_and_check(&mut broker, &topic, &values, BATCHES * RECORDS_PER_BATCH);
}

#[test]
fn data_dir_uses_kafka_layout() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("layout");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &topic, 3);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 2, "x", 5);
    broker.stop_sigterm();
    for partition in 0..3 {
        let dir = broker.partition_dir(&topic, partition);
        assert!(dir.is_dir(), "{} is missing", dir.display());
        let segment = active_segment(&dir);
        assert_eq!(
            segment.file_name().and_then(|n| n.to_str()),
            Some("00000000000000000000.log"),
            "first segment name"
        );
    }
    let written = active_segment(&broker.partition_dir(&topic, 2));
    let size = std::fs::metadata(&written)
        .map(|m| m.len())
        .unwrap_or_default();
    assert!(size > 0, "{} is empty after 5 messages", written.display());
}

#[test]
fn many_segments_survive_restarts_and_serve_reads_across_them() {
    // log.segment.bytes=1 MiB: about 6 MB of messages roll several segments.
    let mut broker = Broker::start(&["log.segment.bytes=1048576"]);
    let topic = unique_topic("segments");
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    let values: Vec<String> = (0..3000)
        .map(|i| format!("{i:05}-{}", "s".repeat(2000)))
        .collect();
    produce_values(&producer, &topic, Some(0), &values);
    drop(producer);

    let segments = |broker: &Broker| -> usize {
        std::fs::read_dir(broker.partition_dir(&topic, 0))
            .expect("partition dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .count()
    };
    assert!(
        segments(&broker) >= 4,
        "expected several segments, found {}",
        segments(&broker)
    );

    for stop in ["sigterm", "sigkill"] {
        match stop {
            "sigterm" => broker.stop_sigterm(),
            _ => broker.kill9(),
        }
        broker.restart();
        let bootstrap = broker.bootstrap();
        assert_eq!(
            high_watermark(&bootstrap, &topic, 0),
            values.len() as i64,
            "high watermark after {stop}"
        );
        // Start in the middle of the log (some later segment) and read to the end.
        let consumer = assigned_consumer(&bootstrap, &topic, &[(0, rdkafka::Offset::Offset(1777))]);
        let received = consume_n(&consumer, values.len() - 1777);
        for (i, message) in received.iter().enumerate() {
            assert_eq!(message.offset, 1777 + i as i64, "offset after {stop}");
            assert_eq!(
                message.value.as_deref(),
                Some(values[1777 + i].as_bytes()),
                "value at offset {} after {stop}",
                message.offset
            );
        }
    }
    // Everything from the start as well.
    let received = consume_partition(&broker.bootstrap(), &topic, 0, values.len());
    assert_values_in_order(&received, &values);
}

/// An upgrade from the release before the metadata log, whose data directory kept
/// the topics in `strata-topics.json` and the producer id block in
/// `strata-producer-id-block`. The directory is made from a running broker's by
/// putting those files, with what the broker reports of its topics, in place of its
/// metadata log. The first start moves them into the log: every topic with its
/// config, every acknowledged message and every committed offset is served, new
/// messages continue at the old end, and the old files are renamed `*.migrated`.
#[test]
fn a_data_dir_of_the_release_before_the_metadata_log_is_upgraded() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("upgrade");
    let before = fill(&bootstrap, &topic);
    let group = unique_topic("upgrade-group");
    commit_outside_group(&bootstrap, &group, &topic, &[(0, 1200), (1, 700)]);
    let legacy_topics = legacy_topics_file(&bootstrap);
    broker.stop_sigterm();

    let data_dir = broker.data_dir();
    std::fs::remove_dir_all(data_dir.join("__cluster_metadata-0")).expect("remove the log");
    std::fs::write(data_dir.join("strata-topics.json"), legacy_topics).expect("topics file");
    std::fs::write(data_dir.join("strata-producer-id-block"), "1000").expect("id block");
    broker.restart();

    check_after_restart(&broker, &topic, &before);
    let committed = committed_offsets_of(&broker.bootstrap(), &group, &topic, &[0, 1]);
    assert_eq!(committed, [Offset::Offset(1200), Offset::Offset(700)]);
    assert!(!data_dir.join("strata-topics.json").exists());
    assert!(data_dir.join("strata-topics.json.migrated").exists());
    assert!(data_dir.join("strata-producer-id-block.migrated").exists());
    assert!(data_dir.join("__cluster_metadata-0").is_dir());
}

/// `strata-topics.json` as the release before the metadata log wrote it, for every
/// topic the broker has: name, topic id (Metadata v12), partition count and the
/// overrides DescribeConfigs reports as set on the topic.
fn legacy_topics_file(bootstrap: &str) -> String {
    let metadata: MetadataResponse = RawClient::connect(bootstrap).request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(None),
    );
    let admin = admin_client(bootstrap);
    let topics: Vec<serde_json::Value> = metadata
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.as_ref().expect("named").to_string();
            let described = block_on(
                admin.describe_configs([&ResourceSpecifier::Topic(&name)], &admin_options()),
            )
            .expect("DescribeConfigs");
            let resource = described[0].as_ref().expect("DescribeConfigs result");
            let configs: serde_json::Map<String, serde_json::Value> = resource
                .entries
                .iter()
                .filter(|e| matches!(e.source, ConfigSource::DynamicTopic))
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default().into()))
                .collect();
            serde_json::json!({
                "name": name,
                "id": topic.topic_id.to_string(),
                "partitions": topic.partitions.len(),
                "configs": configs,
            })
        })
        .collect();
    serde_json::json!({ "topics": topics }).to_string()
}

/// Leader epochs across a clean restart (KIP-320): the restart leaves each
/// partition leaderless and then led again, two new epochs; batches carry
/// the epoch they were appended under; OffsetForLeaderEpoch says where each
/// epoch ends; a stale or unknown `current_leader_epoch` in Fetch, ListOffsets
/// or OffsetForLeaderEpoch is FENCED_LEADER_EPOCH or UNKNOWN_LEADER_EPOCH.
#[test]
fn leader_epochs_move_on_with_a_restart_and_clients_can_check_them() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{
        BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
        OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
    };

    let mut broker = Broker::start(&[]);
    let topic = unique_topic("epochs");
    create_topic(&broker.bootstrap(), &topic, 1);
    let name = || TopicName(topic.clone().into());
    let produce = |broker: &Broker, count: usize| {
        let mut client = RawClient::connect(&broker.bootstrap());
        for _ in 0..count {
            let (error, _) = client.produce(&topic, 0, encode_batch(&[b"v"], now_ms()).freeze());
            assert_eq!(error, 0);
        }
    };
    produce(&broker, 3);
    broker.stop_sigterm();
    broker.restart();
    produce(&broker, 2);

    let mut client = RawClient::connect(&broker.bootstrap());
    let end_of = |client: &mut RawClient, current: i32, epoch: i32| {
        let request = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(name())
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_leader_epoch(epoch)])]);
        let response: OffsetForLeaderEpochResponse =
            client.request(ApiKey::OffsetForLeaderEpoch, 4, &request);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    assert_eq!(end_of(&mut client, 2, 0), (0, 0, 3), "epoch 0 ended at 3");
    assert_eq!(
        end_of(&mut client, -1, 1),
        (0, 0, 3),
        "epoch 1 appended nothing"
    );
    assert_eq!(
        end_of(&mut client, 2, 2),
        (0, 2, 5),
        "the current epoch: the log end"
    );
    let fenced = ResponseError::FencedLeaderEpoch.code();
    let unknown = ResponseError::UnknownLeaderEpoch.code();
    assert_eq!(end_of(&mut client, 0, 0).0, fenced);
    assert_eq!(end_of(&mut client, 7, 0).0, unknown);

    let fetch = |client: &mut RawClient, current: i32| {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(current)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])]);
        let response: FetchResponse = client.request(ApiKey::Fetch, 12, &request);
        let p = response.responses[0].partitions[0].clone();
        (p.error_code, p.records.unwrap_or_default())
    };
    let (error, records) = fetch(&mut client, 2);
    assert_eq!(error, 0);
    let mut bytes = records.clone();
    let epochs: Vec<i32> = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut bytes)
        .expect("batches")
        .iter()
        .flat_map(|set| set.records.iter().map(|r| r.partition_leader_epoch))
        .collect();
    assert_eq!(
        epochs,
        [0, 0, 0, 2, 2],
        "each batch carries its leader's epoch"
    );
    assert_eq!(fetch(&mut client, 1).0, fenced);
    assert_eq!(fetch(&mut client, 3).0, unknown);

    let list = |client: &mut RawClient, current: i32| {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(name())
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(current)
                    .with_timestamp(-1)])]);
        let response: ListOffsetsResponse = client.request(ApiKey::ListOffsets, 7, &request);
        let p = &response.topics[0].partitions[0];
        (p.error_code, p.offset, p.leader_epoch)
    };
    assert_eq!(list(&mut client, 2), (0, 5, 2));
    assert_eq!(list(&mut client, 0).0, fenced);

    // Kafka's files: each epoch's first offset, and the high watermark.
    broker.stop_sigterm();
    let epochs = std::fs::read_to_string(
        broker
            .partition_dir(&topic, 0)
            .join("leader-epoch-checkpoint"),
    );
    assert_eq!(epochs.unwrap(), "0\n2\n0 0\n2 3\n");
    let high_watermarks =
        std::fs::read_to_string(broker.data_dir().join("replication-offset-checkpoint")).unwrap();
    assert!(
        high_watermarks
            .lines()
            .any(|line| line == format!("{topic} 0 5")),
        "{high_watermarks}"
    );
}
