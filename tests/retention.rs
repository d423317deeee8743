//! Retention and DeleteRecords as librdkafka sees them: old segments go away in the
//! background, consumers find the new earliest offset, and a log start offset moved by
//! DeleteRecords survives restarts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;

/// Retention runs every 100 ms instead of every 5 minutes.
const FAST_RETENTION: &str = "log.retention.check.interval.ms=100";

/// The (low, high) watermarks a client sees.
fn watermarks(bootstrap: &str, topic: &str) -> (i64, i64) {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .create()
        .expect("create an rdkafka consumer");
    consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .expect("fetch_watermarks")
}

/// Polls the low watermark until `done` holds for it; fails after [`TIMEOUT`].
fn wait_for_low_watermark(bootstrap: &str, topic: &str, done: impl Fn(i64) -> bool) -> i64 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (low, _) = watermarks(bootstrap, topic);
        if done(low) {
            return low;
        }
        assert!(
            Instant::now() < deadline,
            "low watermark stuck at {low} for {TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Produces `count` single-record batches of about 600 bytes, stamped `timestamp`:
/// with `segment.bytes=1024` each lands in a segment of its own.
fn produce_batches(client: &mut RawClient, topic: &str, count: usize, timestamp: i64) {
    for i in 0..count {
        let value = format!("{i:04}-{}", "x".repeat(590));
        let (error_code, _) = client.produce(
            topic,
            0,
            encode_batch(&[value.as_bytes()], timestamp).freeze(),
        );
        assert_eq!(error_code, 0, "produce error code of batch {i}");
    }
}

#[test]
fn retention_ms_deletes_old_segments_and_consumers_see_the_new_start() {
    let mut broker = Broker::start(&[FAST_RETENTION]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("retention-ms");
    create_topic_with(
        &bootstrap,
        &topic,
        1,
        &[("segment.bytes", "1024"), ("retention.ms", "600000")],
    );
    let mut client = RawClient::connect(&bootstrap);
    // Five records from two hours ago, then three from now.
    produce_batches(&mut client, &topic, 5, now_ms() - 7_200_000);
    produce_batches(&mut client, &topic, 3, now_ms());

    let low = wait_for_low_watermark(&bootstrap, &topic, |low| low > 0);
    assert_eq!(low, 5, "exactly the two-hour-old segments are deleted");
    // From the beginning: the first record is offset 5.
    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, 3);
    let offsets: Vec<i64> = received.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [5, 6, 7]);
    assert!(received[0].value_str().starts_with("0000-"));

    // A fetch below the start offset is OFFSET_OUT_OF_RANGE (seen with reset=error).
    let mut config = consumer_config(&bootstrap);
    config.set("auto.offset.reset", "error");
    let strict = assigned_consumer_with(&config, &topic, &[(0, Offset::Offset(2))]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no out-of-range error");
        match strict.poll(Duration::from_millis(200)) {
            Some(Err(KafkaError::MessageConsumption(code)))
                if code == RDKafkaErrorCode::AutoOffsetReset
                    || code == RDKafkaErrorCode::OffsetOutOfRange =>
            {
                break
            }
            Some(Ok(message)) => panic!("read offset {} below the start", message.offset()),
            _ => {}
        }
    }

    // The start offset survives a clean restart and a crash.
    broker.stop_sigterm();
    broker.restart();
    assert_eq!(watermarks(&broker.bootstrap(), &topic), (5, 8));
    broker.kill9();
    broker.restart();
    assert_eq!(watermarks(&broker.bootstrap(), &topic), (5, 8));
}

#[test]
fn retention_bytes_keeps_the_newest_segments() {
    let broker = Broker::start(&[FAST_RETENTION]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("retention-bytes");
    create_topic_with(
        &bootstrap,
        &topic,
        1,
        &[("segment.bytes", "1024"), ("retention.bytes", "2000")],
    );
    let mut client = RawClient::connect(&bootstrap);
    produce_batches(&mut client, &topic, 10, now_ms());
    // Each segment holds one batch of a bit over 600 bytes: deleting the oldest
    // while at least 2000 bytes remain leaves the newest three or four.
    let low = wait_for_low_watermark(&bootstrap, &topic, |low| low >= 6);
    assert!(low <= 7, "too much deleted: start offset {low}");
    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, (10 - low) as usize);
    assert_eq!(received[0].offset, low);
    assert!(received[0].value_str().starts_with(&format!("{low:04}-")));
}

/// DeleteRecords sent raw: the (error code, low watermark) of the one partition.
fn raw_delete_records(
    client: &mut RawClient,
    topic: &str,
    partition: i32,
    offset: i64,
    version: i16,
) -> (i16, i64) {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{
        ApiKey, DeleteRecordsRequest, DeleteRecordsResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(partition)
                .with_offset(offset)])]);
    let response: DeleteRecordsResponse = client.request(ApiKey::DeleteRecords, version, &request);
    let result = &response.topics[0].partitions[0];
    (result.error_code, result.low_watermark)
}

fn partition_error(result: &TopicPartitionList, topic: &str, partition: i32) -> Option<KafkaError> {
    result
        .find_partition(topic, partition)
        .expect("partition in the result")
        .error()
        .err()
}

#[test]
fn delete_records_moves_the_low_watermark_for_good() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("delete-records");
    create_topic_with(&bootstrap, &topic, 1, &[("segment.bytes", "1024")]);
    let mut client = RawClient::connect(&bootstrap);
    produce_batches(&mut client, &topic, 10, now_ms());

    let result = delete_records(&bootstrap, &topic, 0, Offset::Offset(4));
    assert_eq!(partition_error(&result, &topic, 0), None);
    let low_watermark = result.find_partition(&topic, 0).map(|p| p.offset());
    assert_eq!(low_watermark, Some(Offset::Offset(4)));
    assert_eq!(watermarks(&bootstrap, &topic), (4, 10));
    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, 6);
    assert_eq!(received[0].offset, 4);
    assert!(received[0].value_str().starts_with("0004-"));

    // Past the high watermark: OFFSET_OUT_OF_RANGE, nothing moves.
    let result = delete_records(&bootstrap, &topic, 0, Offset::Offset(11));
    assert!(
        matches!(
            partition_error(&result, &topic, 0),
            Some(KafkaError::OffsetFetch(RDKafkaErrorCode::OffsetOutOfRange))
                | Some(KafkaError::AdminOp(RDKafkaErrorCode::OffsetOutOfRange))
        ),
        "{:?}",
        partition_error(&result, &topic, 0)
    );
    // Partitions and topics that do not exist (librdkafka refuses to send these, so
    // the request goes raw), each version: UNKNOWN_TOPIC_OR_PARTITION.
    for version in 0..=2 {
        assert_eq!(
            raw_delete_records(&mut client, &topic, 7, 1, version),
            (3, -1),
            "v{version}"
        );
        assert_eq!(
            raw_delete_records(&mut client, "no-such-topic", 0, 1, version),
            (3, -1),
            "v{version}"
        );
    }
    // Offsets below -1 are out of range; -1 and moving backwards are fine.
    assert_eq!(raw_delete_records(&mut client, &topic, 0, -2, 2), (1, -1));
    assert_eq!(raw_delete_records(&mut client, &topic, 0, 2, 2), (0, 4));
    assert_eq!(watermarks(&bootstrap, &topic), (4, 10));

    // The moved start offset is checkpointed at once: it survives a crash.
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(watermarks(&bootstrap, &topic), (4, 10));
    // Offset::End (-1) means the high watermark: everything goes.
    let result = delete_records(&bootstrap, &topic, 0, Offset::End);
    assert_eq!(partition_error(&result, &topic, 0), None);
    assert_eq!(watermarks(&bootstrap, &topic), (10, 10));
    // And the partition still takes writes.
    let mut client = RawClient::connect(&bootstrap);
    produce_batches(&mut client, &topic, 1, now_ms());
    assert_eq!(watermarks(&bootstrap, &topic), (10, 11));
}

#[test]
fn compacted_topics_refuse_delete_records_and_keyless_records() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("delete-records-compacted");
    create_topic_with(&bootstrap, &topic, 1, &[("cleanup.policy", "compact")]);
    let producer = create_producer(&producer_config(&bootstrap));
    send_with_retry(
        &producer,
        rdkafka::producer::BaseRecord::to(&topic)
            .key("k")
            .payload("v"),
    );
    flush_and_check(&producer);
    // Records without a key have no place in a compacted topic: INVALID_RECORD.
    let mut client = RawClient::connect(&bootstrap);
    let (error_code, _) = client.produce(&topic, 0, encode_batch(&[b"no key"], now_ms()).freeze());
    assert_eq!(error_code, 87, "INVALID_RECORD for a keyless record");
    let result = delete_records(&bootstrap, &topic, 0, Offset::Offset(1));
    let error = partition_error(&result, &topic, 0);
    assert!(
        format!("{error:?}").contains("PolicyViolation"),
        "expected POLICY_VIOLATION, got {error:?}"
    );
    assert_eq!(watermarks(&bootstrap, &topic), (0, 1));
}
