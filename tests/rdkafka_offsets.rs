//! Offsets as librdkafka sees them: starting inside a batch, watermarks, lookups by
//! timestamp, and the end-of-partition event.

mod common;

use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

#[test]
fn consume_from_an_offset_in_the_middle_of_a_batch() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("mid-batch");
    create_topic(&bootstrap, &topic, 1);

    // One record batch of 100 records, sent raw so it is certainly a single batch: a
    // fetch at offset 37 returns the whole batch and the client skips offsets 0..37.
    let values: Vec<String> = (0..100).map(|i| format!("batch-record-{i}")).collect();
    let value_bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let mut client = RawClient::connect(&bootstrap);
    let (error_code, base_offset) =
        client.produce(&topic, 0, encode_batch(&value_bytes, now_ms()).freeze());
    assert_eq!(error_code, 0, "produce error code");
    assert_eq!(base_offset, 0, "base offset of the first batch");
    // A second batch gets the next offsets.
    let (error_code, base_offset) =
        client.produce(&topic, 0, encode_batch(&[b"after"], now_ms()).freeze());
    assert_eq!(error_code, 0, "produce error code");
    assert_eq!(base_offset, 100, "base offset of the second batch");

    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Offset(37))]);
    let received = consume_n(&consumer, 64);
    assert_eq!(
        received[0].offset, 37,
        "first message after assign at offset 37"
    );
    assert_eq!(received[0].value_str(), "batch-record-37");
    for (i, message) in received.iter().enumerate().take(63) {
        assert_eq!(message.offset, 37 + i as i64);
        assert_eq!(message.value_str(), values[37 + i]);
    }
    assert_eq!(received[63].offset, 100);
    assert_eq!(received[63].value_str(), "after");
}

#[test]
fn consume_from_the_middle_of_a_librdkafka_batch() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("mid-batch-linger");
    create_topic(&bootstrap, &topic, 1);

    // With a long linger the producer sends all 100 messages in one batch.
    let mut config = producer_config(&bootstrap);
    config
        .set("linger.ms", "1000")
        .set("batch.num.messages", "10000");
    let producer = create_producer(&config);
    let values = produce_numbered(&producer, &topic, 0, "lingered", 100);

    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Offset(37))]);
    let received = consume_n(&consumer, 63);
    assert_eq!(
        received[0].offset, 37,
        "first message after assign at offset 37"
    );
    for (i, message) in received.iter().enumerate() {
        assert_eq!(message.offset, 37 + i as i64);
        assert_eq!(message.value_str(), values[37 + i]);
    }
}

#[test]
fn watermarks_are_zero_and_message_count() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("watermarks");
    create_topic(&bootstrap, &topic, 2);

    let consumer: BaseConsumer = consumer_config(&bootstrap).create().expect("consumer");
    assert_eq!(
        consumer
            .fetch_watermarks(&topic, 0, TIMEOUT)
            .expect("watermarks"),
        (0, 0),
        "watermarks of an empty partition"
    );

    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "w", 1234);
    produce_numbered(&producer, &topic, 1, "w", 10);
    assert_eq!(
        consumer
            .fetch_watermarks(&topic, 0, TIMEOUT)
            .expect("watermarks"),
        (0, 1234),
        "watermarks of partition 0"
    );
    assert_eq!(
        consumer
            .fetch_watermarks(&topic, 1, TIMEOUT)
            .expect("watermarks"),
        (0, 10),
        "watermarks of partition 1"
    );
}

#[test]
fn offsets_for_times_finds_the_first_offset_at_or_after_a_timestamp() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("times");
    create_topic(&bootstrap, &topic, 1);

    // Recent timestamps (so no retention applies), one second apart, one per message.
    let base = now_ms() - 3_600_000;
    let producer = create_producer(&producer_config(&bootstrap));
    for i in 0..20i64 {
        let value = format!("t{i}");
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(0)
                .payload(value.as_str())
                .timestamp(base + i * 1000),
        );
        // Separate batches for the first half, so the lookup crosses batch boundaries.
        if i < 10 {
            flush_and_check(&producer);
        }
    }
    flush_and_check(&producer);

    let consumer: BaseConsumer = consumer_config(&bootstrap).create().expect("consumer");
    let lookup = |timestamp: i64| -> Offset {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset(&topic, 0, Offset::Offset(timestamp))
            .expect("add partition");
        let result = consumer
            .offsets_for_times(query, TIMEOUT)
            .expect("offsets_for_times");
        let element = result
            .find_partition(&topic, 0)
            .expect("partition 0 in the result");
        assert!(
            element.error().is_ok(),
            "offsets_for_times error: {:?}",
            element.error()
        );
        element.offset()
    };

    assert_eq!(lookup(base), Offset::Offset(0), "exact first timestamp");
    assert_eq!(
        lookup(base + 4000),
        Offset::Offset(4),
        "exact timestamp in its own batch"
    );
    assert_eq!(
        lookup(base + 4500),
        Offset::Offset(5),
        "between two timestamps"
    );
    assert_eq!(
        lookup(base + 13_000),
        Offset::Offset(13),
        "inside a multi-record batch"
    );
    assert_eq!(
        lookup(base + 12_999),
        Offset::Offset(13),
        "just before a timestamp"
    );
    assert_eq!(
        lookup(base - 100_000),
        Offset::Offset(0),
        "before everything"
    );
    assert_eq!(
        lookup(base + 100_000),
        Offset::End,
        "after the last timestamp: Kafka answers offset -1"
    );

    // The consumer sees the timestamps it produced.
    let received = consume_partition(&bootstrap, &topic, 0, 20);
    for (i, message) in received.iter().enumerate() {
        assert_eq!(
            message.timestamp,
            Some(base + i as i64 * 1000),
            "timestamp of offset {i}"
        );
    }
}

#[test]
fn partition_eof_is_reported_at_the_tail() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("eof");
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 0, "eof", 50);

    let mut config = consumer_config(&bootstrap);
    config.set("enable.partition.eof", "true");
    let consumer = assigned_consumer_with(&config, &topic, &[(0, Offset::Beginning)]);

    let deadline = Instant::now() + TIMEOUT;
    let mut received = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no PartitionEOF within {TIMEOUT:?}; received {} messages",
            received.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => received.push(Received::from_message(&message)),
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                assert_eq!(partition, 0, "EOF partition");
                if received.len() == values.len() {
                    break;
                }
                // An EOF before everything arrived would be a bug: the data was
                // acknowledged before the consumer started.
                panic!(
                    "PartitionEOF after only {} of {} messages",
                    received.len(),
                    values.len()
                );
            }
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => {}
        }
    }
    assert_values_in_order(&received, &values);

    // New data after EOF is delivered, followed by another EOF.
    produce_numbered(&producer, &topic, 0, "more", 1);
    let more = consume_n(&consumer, 1);
    assert_eq!(more[0].offset, 50);
    assert_eq!(more[0].value_str(), "more-0");
}

#[test]
fn consume_from_end_sees_only_new_messages() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("from-end");
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "old", 10);

    // The PartitionEOF event tells that the consumer resolved "end" and reached it.
    let mut config = consumer_config(&bootstrap);
    config.set("enable.partition.eof", "true");
    let consumer = assigned_consumer_with(&config, &topic, &[(0, Offset::End)]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no PartitionEOF within {TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => panic!(
                "consuming from the end returned an old message at offset {}",
                message.offset()
            ),
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => {}
        }
    }
    produce_numbered(&producer, &topic, 0, "new", 3);
    let received = consume_n(&consumer, 3);
    assert_eq!(
        received.iter().map(|m| m.value_str()).collect::<Vec<_>>(),
        vec!["new-0", "new-1", "new-2"]
    );
    assert_eq!(received[0].offset, 10);
}

#[test]
fn out_of_range_offset_resets_per_auto_offset_reset() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("out-of-range");
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));
    let values = produce_numbered(&producer, &topic, 0, "r", 10);

    // earliest: an assignment past the end (OFFSET_OUT_OF_RANGE) restarts at 0.
    let consumer = assigned_consumer(&bootstrap, &topic, &[(0, Offset::Offset(1000))]);
    let received = consume_n(&consumer, values.len());
    assert_values_in_order(&received, &values);

    // error: the consumer reports the out-of-range offset instead of silently moving.
    let mut config = consumer_config(&bootstrap);
    config.set("auto.offset.reset", "error");
    let consumer = assigned_consumer_with(&config, &topic, &[(0, Offset::Offset(1000))]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no out-of-range error within {TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => panic!(
                "auto.offset.reset=error delivered offset {} instead of an error",
                message.offset()
            ),
            Some(Err(error)) => {
                let text = error.to_string();
                assert!(
                    text.contains("out of range")
                        || text.contains("OffsetOutOfRange")
                        || text.contains("AutoOffsetReset")
                        || text.contains("offset reset"),
                    "unexpected consumer error: {text}"
                );
                break;
            }
            None => {}
        }
    }
}

#[test]
fn small_fetch_limits_still_make_progress_on_large_batches() {
    // Kafka returns at least one whole batch even when it exceeds the fetch limits
    // (KIP-74), so a consumer with tiny limits is never stuck.
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("small-fetch");
    create_topic(&bootstrap, &topic, 1);
    let mut config = producer_config(&bootstrap);
    config.set("linger.ms", "200").set("batch.size", "1000000");
    let producer = create_producer(&config);
    let values: Vec<String> = (0..40)
        .map(|i| format!("{i}-{}", "z".repeat(20_000)))
        .collect();
    produce_values(&producer, &topic, Some(0), &values);

    let mut config = consumer_config(&bootstrap);
    config
        .set("max.partition.fetch.bytes", "1024")
        .set("fetch.max.bytes", "1024")
        .set("message.max.bytes", "1024")
        .set("receive.message.max.bytes", "2000000");
    let consumer = assigned_consumer_with(&config, &topic, &[(0, Offset::Beginning)]);
    let received = consume_n(&consumer, values.len());
    assert_values_in_order(&received, &values);
}
