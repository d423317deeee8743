//! Timestamps as Kafka defines them: a LogAppendTime topic stamps the broker's clock
//! over the producer's, and ListOffsets answers the max-timestamp query (KIP-734).

mod common;

use common::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;

#[test]
fn log_append_time_topic_replaces_the_producer_timestamps() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("append-time");
    create_topic_with(
        &bootstrap,
        &topic,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );

    let before = now_ms();
    let producer = create_producer(&producer_config(&bootstrap));
    for i in 0..5i64 {
        let value = format!("stamped-{i}");
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(0)
                .payload(value.as_str())
                .timestamp(1_000 + i),
        );
    }
    flush_and_check(&producer);
    let after = now_ms();

    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, 5);
    for message in &received {
        let timestamp = message.timestamp.expect("a timestamp");
        assert!(
            (before..=after).contains(&timestamp),
            "offset {}: timestamp {timestamp} is the broker's append time, not the producer's \
             (expected within {before}..={after})",
            message.offset
        );
    }
}

/// ListOffsets at v7 for one partition of `topic` and one special or real timestamp.
fn list_offset(client: &mut RawClient, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(timestamp)])]);
    let response: ListOffsetsResponse = client.request(ApiKey::ListOffsets, 7, &request);
    let partition = &response.topics[0].partitions[0];
    (partition.error_code, partition.offset, partition.timestamp)
}

#[test]
fn list_offsets_answers_earliest_latest_and_max_timestamp() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("max-ts");
    create_topic(&bootstrap, &topic, 1);

    let mut client = RawClient::connect(&bootstrap);
    // An empty log has no max-timestamp record: Kafka answers -1, -1.
    assert_eq!(list_offset(&mut client, &topic, -3), (0, -1, -1));

    let base = now_ms() - 60_000;
    for (i, delta) in [5_000, 9_000, 7_000].into_iter().enumerate() {
        let value = format!("m{i}");
        let (error_code, offset) = client.produce(
            &topic,
            0,
            encode_batch(&[value.as_bytes()], base + delta).freeze(),
        );
        assert_eq!((error_code, offset), (0, i as i64), "produce {i}");
    }
    assert_eq!(
        list_offset(&mut client, &topic, -3),
        (0, 1, base + 9_000),
        "the record with the largest timestamp is at offset 1"
    );
    assert_eq!(list_offset(&mut client, &topic, -2).1, 0, "earliest");
    assert_eq!(list_offset(&mut client, &topic, -1).1, 3, "latest");
    assert_eq!(
        list_offset(&mut client, &topic, base + 8_000),
        (0, 1, base + 9_000),
        "first record at or after the timestamp"
    );
}
