//! Fetch responses carry the segment files' bytes exactly, whether they are
//! copied (small reads) or sent with sendfile (large ones), across segment
//! boundaries and partitions, at the oldest and newest Fetch versions.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

/// One fetch by `replica_id` (-1: a consumer) of `partitions` of `topic`
/// from offset 0, each up to `partition_max_bytes`.
fn fetch(
    client: &mut RawClient,
    topic: &str,
    partitions: i32,
    partition_max_bytes: i32,
    (version, replica_id): (i16, i32),
) -> FetchResponse {
    let request = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(replica_id))
        .with_max_wait_ms(0)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(partition_max_bytes)
                    })
                    .collect(),
            )]);
    client.request(ApiKey::Fetch, version, &request)
}

/// A consumer's fetch of `partitions` of `topic` from offset 0, each up to
/// `partition_max_bytes`; the records of each partition.
fn fetch_all(
    client: &mut RawClient,
    topic: &str,
    partitions: i32,
    partition_max_bytes: i32,
    version: i16,
) -> Vec<Bytes> {
    let response = fetch(
        client,
        topic,
        partitions,
        partition_max_bytes,
        (version, -1),
    );
    response.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            p.records.clone().expect("records are never null")
        })
        .collect()
}

/// The concatenated `.log` files of a partition, oldest first.
fn log_bytes(broker: &Broker, topic: &str, partition: i32) -> Vec<u8> {
    let dir = broker.partition_dir(topic, partition);
    let mut logs: Vec<_> = std::fs::read_dir(&dir)
        .expect("partition dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.iter()
        .flat_map(|p| std::fs::read(p).expect("read segment"))
        .collect()
}

#[test]
fn fetched_records_are_the_segment_bytes_for_small_and_large_reads() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("fetch-bytes");
    // Small segments: a large fetch spans several files.
    create_topic_with(&bootstrap, &topic, 2, &[("segment.bytes", "300000")]);
    let mut client = RawClient::connect(&bootstrap);
    for partition in 0..2 {
        for i in 0..12u64 {
            // 40 KiB of incompressible values per batch.
            let value = pseudo_random_bytes(i * 7 + partition as u64, 40 << 10);
            let batch = encode_batch(&[&value], now_ms()).freeze();
            let (error_code, _) = client.produce(&topic, partition, batch);
            assert_eq!(error_code, 0);
        }
    }
    for version in [4, 11, 12] {
        // Everything (well above the sendfile threshold, several segments) ...
        let whole = fetch_all(&mut client, &topic, 2, 8 << 20, version);
        for partition in 0..2 {
            let on_disk = log_bytes(&broker, &topic, partition);
            assert!(on_disk.len() > 12 * (40 << 10));
            assert_eq!(
                whole[partition as usize].len(),
                on_disk.len(),
                "v{version} partition {partition}: length"
            );
            assert!(
                whole[partition as usize][..] == on_disk[..],
                "v{version} partition {partition}: bytes differ"
            );
        }
        // ... and a read below the threshold: whole batches only.
        let small = fetch_all(&mut client, &topic, 2, 50 << 10, version);
        for (partition, records) in small.iter().enumerate() {
            let on_disk = log_bytes(&broker, &topic, partition as i32);
            assert!(!records.is_empty() && records.len() <= 50 << 10);
            assert!(records[..] == on_disk[..records.len()], "v{version}");
        }
    }
    // The broker still serves afterwards.
    assert_serves_metadata(&bootstrap);
}

/// A fetch as a follower (replica id 0 or above) from a broker that is no
/// replica of the partition (none is, before replication) gets
/// NOT_LEADER_OR_FOLLOWER and no records, as Kafka answers; consumers are
/// served as before.
#[test]
fn a_fetch_by_a_broker_that_is_not_a_replica_gets_not_leader_or_follower() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("not-a-follower");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let (error_code, _) = client.produce(&topic, 0, encode_batch(&[b"v"], now_ms()).freeze());
    assert_eq!(error_code, 0);
    for (version, replica_id) in [(4, 1), (12, 1), (12, 7)] {
        let response = fetch(&mut client, &topic, 1, 1 << 20, (version, replica_id));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(
            partition.error_code,
            ResponseError::NotLeaderOrFollower.code(),
            "v{version} replica {replica_id}"
        );
        assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    }
    assert!(!fetch_all(&mut client, &topic, 1, 1 << 20, 12)[0].is_empty());
}
