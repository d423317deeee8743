//! librdkafka (through the rdkafka crate) against a real broker: metadata, produce and
//! consume with every compression codec, keys and headers, and every acks setting.

mod common;

use std::collections::BTreeMap;

use common::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;

const PARTITIONS: i32 = 3;

#[test]
fn metadata_lists_broker_1_and_topic_partitions_led_by_it() {
    let broker = Broker::start(&["num.partitions=3", "auto.create.topics.enable=true"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("metadata");
    // Auto-create the topic by producing one message to it.
    let producer = create_producer(&producer_config(&bootstrap));
    produce_values(&producer, &topic, None, &["hello".to_string()]);

    let client: BaseConsumer = client_config(&bootstrap).create().expect("client");
    let metadata = client
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("fetch metadata");

    let port: i32 = bootstrap
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in bootstrap");
    let brokers: Vec<(i32, String, i32)> = metadata
        .brokers()
        .iter()
        .map(|b| (b.id(), b.host().to_string(), b.port()))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), port)],
        "brokers in metadata (advertised address = bound address)"
    );

    let topics: Vec<_> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .collect();
    assert_eq!(topics.len(), 1, "topic {topic} in metadata");
    let metadata_topic = topics[0];
    assert!(
        metadata_topic.error().is_none(),
        "topic error: {:?}",
        metadata_topic.error()
    );
    let mut partitions: Vec<_> = metadata_topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    assert_eq!(
        partitions.iter().map(|p| p.id()).collect::<Vec<_>>(),
        vec![0, 1, 2],
        "partition ids (num.partitions=3)"
    );
    for partition in partitions {
        assert_eq!(
            partition.leader(),
            1,
            "leader of partition {}",
            partition.id()
        );
        assert_eq!(
            partition.replicas(),
            &[1],
            "replicas of partition {}",
            partition.id()
        );
        assert_eq!(partition.isr(), &[1], "ISR of partition {}", partition.id());
        assert!(
            partition.error().is_none(),
            "partition error: {:?}",
            partition.error()
        );
    }

    // The full metadata (all topics) lists the topic too.
    let all = client
        .fetch_metadata(None, TIMEOUT)
        .expect("fetch all metadata");
    assert!(
        all.topics().iter().any(|t| t.name() == topic),
        "topic {topic} missing from the full metadata listing"
    );
}

/// Produces 10 000 messages spread over three partitions with `codec`, then reads every
/// partition back from the beginning: same values, same order, offsets 0, 1, 2, ...
fn round_trip_with_compression(codec: &str) {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic(&format!("compression-{codec}"));
    create_topic(&bootstrap, &topic, PARTITIONS);

    let mut config = producer_config(&bootstrap);
    config
        .set("compression.type", codec)
        .set("linger.ms", "20")
        .set("batch.num.messages", "1000");
    let producer = create_producer(&config);

    let count = 10_000usize;
    let mut expected: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for i in 0..count {
        let partition = (i % PARTITIONS as usize) as i32;
        // Values of varying size with repetition, so that every codec has work to do.
        let value = format!("{codec}-{i}-{}", "abcdefgh".repeat(i % 17));
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(&topic)
                .partition(partition)
                .payload(value.as_str()),
        );
        expected.entry(partition).or_default().push(value);
    }
    flush_and_check(&producer);

    for (partition, values) in &expected {
        let received = consume_partition(&bootstrap, &topic, *partition, values.len());
        assert_values_in_order(&received, values);
        assert_eq!(
            high_watermark(&bootstrap, &topic, *partition),
            values.len() as i64,
            "high watermark of partition {partition}"
        );
    }
}

#[test]
fn produce_consume_10k_uncompressed() {
    round_trip_with_compression("none");
}

#[test]
fn produce_consume_10k_gzip() {
    round_trip_with_compression("gzip");
}

#[test]
fn produce_consume_10k_snappy() {
    round_trip_with_compression("snappy");
}

#[test]
fn produce_consume_10k_lz4() {
    round_trip_with_compression("lz4");
}

#[test]
fn produce_consume_10k_zstd() {
    round_trip_with_compression("zstd");
}

#[test]
fn keys_headers_and_null_values_are_preserved() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("headers");
    create_topic(&bootstrap, &topic, 1);
    let producer = create_producer(&producer_config(&bootstrap));

    let key = b"key-\x00\xff-binary".to_vec();
    let value = b"value with \x00 and \xfe bytes".to_vec();
    send_with_retry(
        &producer,
        BaseRecord::to(&topic)
            .partition(0)
            .key(&key)
            .payload(&value)
            .headers(
                OwnedHeaders::new()
                    .insert(Header {
                        key: "trace-id",
                        value: Some("abc123"),
                    })
                    .insert(Header {
                        key: "empty",
                        value: Some(""),
                    })
                    .insert(Header::<&[u8]> {
                        key: "null",
                        value: None,
                    })
                    .insert(Header {
                        key: "trace-id",
                        value: Some("duplicate keys are kept in order"),
                    }),
            ),
    );
    // A tombstone: key, no value.
    send_with_retry(
        &producer,
        BaseRecord::<str, [u8]>::to(&topic)
            .partition(0)
            .key("tombstone"),
    );
    // No key, empty value.
    send_with_retry(
        &producer,
        BaseRecord::<(), str>::to(&topic).partition(0).payload(""),
    );
    flush_and_check(&producer);

    let received = consume_partition(&bootstrap, &topic, 0, 3);
    assert_eq!(received[0].key.as_deref(), Some(&key[..]), "binary key");
    assert_eq!(
        received[0].value.as_deref(),
        Some(&value[..]),
        "binary value"
    );
    assert_eq!(
        received[0].headers,
        vec![
            ("trace-id".to_string(), Some(b"abc123".to_vec())),
            ("empty".to_string(), Some(Vec::new())),
            ("null".to_string(), None),
            (
                "trace-id".to_string(),
                Some(b"duplicate keys are kept in order".to_vec())
            ),
        ],
        "headers, in order"
    );
    assert_eq!(received[1].key.as_deref(), Some(&b"tombstone"[..]));
    assert_eq!(
        received[1].value, None,
        "a null value stays null (tombstone)"
    );
    assert!(received[1].headers.is_empty(), "no headers");
    assert_eq!(received[2].key, None, "a null key stays null");
    assert_eq!(received[2].value.as_deref(), Some(&b""[..]), "empty value");
    assert_eq!(
        received.iter().map(|m| m.offset).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
}

fn produce_with_acks(acks: &str) {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic(&format!("acks-{}", acks.replace('-', "minus")));
    create_topic(&bootstrap, &topic, 1);
    let mut config = producer_config(&bootstrap);
    config.set("acks", acks);
    let producer = create_producer(&config);
    let values = produce_numbered(&producer, &topic, 0, &format!("acks={acks}"), 1000);
    // With acks=0 the producer does not know whether the broker appended; everything
    // must still arrive eventually, which consume_partition waits for.
    let received = consume_partition(&bootstrap, &topic, 0, values.len());
    assert_values_in_order(&received, &values);
}

#[test]
fn produce_with_acks_0() {
    produce_with_acks("0");
}

#[test]
fn produce_with_acks_1() {
    produce_with_acks("1");
}

#[test]
fn produce_with_acks_all() {
    produce_with_acks("all");
}

#[test]
fn consumer_on_two_partitions_at_once_sees_both() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("two-partitions");
    create_topic(&bootstrap, &topic, 2);
    let producer = create_producer(&producer_config(&bootstrap));
    let zero = produce_numbered(&producer, &topic, 0, "p0", 500);
    let one = produce_numbered(&producer, &topic, 1, "p1", 700);

    let consumer = assigned_consumer(
        &bootstrap,
        &topic,
        &[(0, Offset::Beginning), (1, Offset::Beginning)],
    );
    let received = consume_n(&consumer, zero.len() + one.len());
    let by_partition = |p: i32| -> Vec<Received> {
        received
            .iter()
            .filter(|m| m.partition == p)
            .cloned()
            .collect()
    };
    assert_values_in_order(&by_partition(0), &zero);
    assert_values_in_order(&by_partition(1), &one);
}

#[test]
fn idempotent_producer_round_trip() {
    // enable.idempotence=true: InitProducerId, then batches with producer id, epoch and
    // sequence numbers, as the Java client and kafka-python 3 send by default.
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("idempotent");
    create_topic(&bootstrap, &topic, 2);
    let mut config = producer_config(&bootstrap);
    config.set("enable.idempotence", "true");
    let producer = create_producer(&config);
    let zero = produce_numbered(&producer, &topic, 0, "idempotent-p0", 2000);
    let one = produce_numbered(&producer, &topic, 1, "idempotent-p1", 500);
    assert_values_in_order(&consume_partition(&bootstrap, &topic, 0, zero.len()), &zero);
    assert_values_in_order(&consume_partition(&bootstrap, &topic, 1, one.len()), &one);
}

#[test]
fn a_message_just_under_the_default_max_message_bytes_round_trips() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("one-megabyte");
    create_topic(&bootstrap, &topic, 1);
    // librdkafka's own limit (1000000) is lower than the broker's default (1048588).
    let mut config = producer_config(&bootstrap);
    config.set("message.max.bytes", "1048588");
    let producer = create_producer(&config);
    // 1 040 000 bytes of value plus batch and record overhead stays under 1048588.
    let big: String = (0..1_040_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    produce_values(&producer, &topic, Some(0), std::slice::from_ref(&big));
    produce_values(&producer, &topic, Some(0), &["small".to_string()]);
    let received = consume_partition(&bootstrap, &topic, 0, 2);
    assert_eq!(
        received[0].value.as_deref(),
        Some(big.as_bytes()),
        "1 MB value"
    );
    assert_eq!(received[1].value_str(), "small");
}

/// acks=all needs `min.insync.replicas` in sync: with one replica and a
/// topic asking for two, Kafka's answer NOT_ENOUGH_REPLICAS (and nothing
/// appended); acks=1 is not held to it; lowered to 1, acks=all succeeds.
/// librdkafka retries NOT_ENOUGH_REPLICAS until it gives up: the wire
/// answer is read here with the raw client.
#[test]
fn acks_all_needs_min_insync_replicas() {
    use kafka_protocol::error::ResponseError;
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("min-isr");
    create_topic_with(&bootstrap, &topic, 1, &[("min.insync.replicas", "2")]);
    let mut client = RawClient::connect(&bootstrap);
    let batch = || encode_batch(&[b"v"], now_ms()).freeze();
    let (error, offset) = client.produce(&topic, 0, batch());
    assert_eq!(
        (error, offset),
        (ResponseError::NotEnoughReplicas.code(), -1)
    );
    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");

    let producer = create_producer(&producer_config(&bootstrap).set("acks", "1").clone());
    produce_values(&producer, &topic, Some(0), &["acks-1".to_string()]);

    let admin = admin_client(&bootstrap);
    let lowered =
        rdkafka::admin::AlterConfig::new(rdkafka::admin::ResourceSpecifier::Topic(&topic))
            .set("min.insync.replicas", "1");
    block_on(admin.alter_configs([&lowered], &admin_options())).expect("AlterConfigs");
    let (error, offset) = client.produce(&topic, 0, batch());
    assert_eq!((error, offset), (0, 1));
}
