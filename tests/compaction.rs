//! Log compaction as librdkafka sees it: a compacted topic read from the beginning
//! yields exactly the latest value per key at increasing offsets, tombstoned keys are
//! gone once `delete.retention.ms` has passed, and all of it survives restarts.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;

/// The cleaner looks at the logs every 100 ms instead of every 15 s.
const FAST_CLEANER: &str = "log.cleaner.backoff.ms=100";

/// Small segments, every dirty byte worth cleaning, tombstones kept for one second,
/// and the active segment rolled (and so cleanable) once it is a second old.
const COMPACTED_TOPIC: &[(&str, &str)] = &[
    ("cleanup.policy", "compact"),
    ("segment.bytes", "4096"),
    ("min.cleanable.dirty.ratio", "0.01"),
    ("delete.retention.ms", "1000"),
    ("max.compaction.lag.ms", "1000"),
];

const KEYS: usize = 10;
const ROUNDS: usize = 30;
/// Keys whose last record is a tombstone.
const DELETED: [&str; 2] = ["key-3", "key-7"];

/// Every record of partition 0 up to the high watermark, as (offset, key, value).
fn read_from_beginning(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let mut config = consumer_config(bootstrap);
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = assigned_consumer_with(&config, topic, &[(0, Offset::Beginning)]);
    let deadline = Instant::now() + TIMEOUT;
    let mut records = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no end of partition within {TIMEOUT:?}"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                let received = Received::from_message(&message);
                let key = String::from_utf8_lossy(received.key.as_deref().unwrap_or_default())
                    .into_owned();
                let value = received
                    .value
                    .as_deref()
                    .map(|value| String::from_utf8_lossy(value).into_owned());
                records.push((received.offset, key, value));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return records,
            Some(Err(error)) => panic!("consume error: {error}"),
            None => {}
        }
    }
}

/// The latest value of each key still alive after producing `ROUNDS` rounds and
/// deleting `DELETED`.
fn expected_latest() -> BTreeMap<String, String> {
    (0..KEYS)
        .map(|k| format!("key-{k}"))
        .filter(|key| !DELETED.contains(&key.as_str()))
        .map(|key| {
            let value = value_of(&key, ROUNDS - 1);
            (key, value)
        })
        .collect()
}

fn value_of(key: &str, round: usize) -> String {
    format!("{key}-round-{round}-{}", "x".repeat(80))
}

/// Whether a read shows a fully compacted topic: each live key once with its latest
/// value, no tombstone left. Offsets must increase in any case.
fn is_compacted(records: &[(i64, String, Option<String>)]) -> bool {
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "offsets must strictly increase"
    );
    let live: BTreeMap<String, String> = records
        .iter()
        .filter_map(|(_, key, value)| Some((key.clone(), value.clone()?)))
        .collect();
    records.len() == live.len() && live == expected_latest()
}

/// Reads the topic until it is compacted; fails after [`TIMEOUT`].
fn wait_until_compacted(bootstrap: &str, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let records = read_from_beginning(bootstrap, topic);
        if is_compacted(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted within {TIMEOUT:?}: {} records, e.g. {:?}",
            records.len(),
            records.first()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Produces `ROUNDS` values for each of `KEYS` keys (zstd-compressed batches), then a
/// tombstone for each key of `DELETED`. Returns the high watermark.
fn produce_updates_and_tombstones(bootstrap: &str, topic: &str) -> i64 {
    let mut config = producer_config(bootstrap);
    config.set("compression.type", "zstd");
    let producer = create_producer(&config);
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            let key = format!("key-{k}");
            let value = value_of(&key, round);
            send_with_retry(
                &producer,
                BaseRecord::to(topic).partition(0).key(&key).payload(&value),
            );
        }
    }
    for key in DELETED {
        send_with_retry(
            &producer,
            BaseRecord::<str, ()>::to(topic).partition(0).key(key),
        );
    }
    flush_and_check(&producer);
    high_watermark(bootstrap, topic, 0)
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_per_key_across_restarts() {
    let mut broker = Broker::start(&[FAST_CLEANER]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("compaction");
    create_topic_with(&bootstrap, &topic, 1, COMPACTED_TOPIC);
    let log_end_offset = produce_updates_and_tombstones(&bootstrap, &topic);
    assert_eq!(log_end_offset, (KEYS * ROUNDS + DELETED.len()) as i64);

    let compacted = wait_until_compacted(&bootstrap, &topic);
    // Offsets are those the records were produced at: the last round of each key.
    for (offset, key, _) in &compacted {
        let k: i64 = key.trim_start_matches("key-").parse().expect("key number");
        assert_eq!(*offset, ((ROUNDS - 1) * KEYS) as i64 + k, "{key}");
    }
    // The log end offset does not move: compaction leaves gaps, it does not renumber.
    assert_eq!(high_watermark(&bootstrap, &topic, 0), log_end_offset);
    let checkpoint = std::fs::read_to_string(broker.data_dir().join("cleaner-offset-checkpoint"))
        .expect("the cleaner checkpoints its first dirty offsets");
    assert!(checkpoint.contains(&format!("{topic} 0 ")), "{checkpoint}");

    assert!(
        !broker.stderr().contains("log cleaning failed"),
        "{}",
        broker.stderr()
    );
    // A clean restart and a crash keep the compacted log as it is.
    broker.stop_sigterm();
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(read_from_beginning(&bootstrap, &topic), compacted);
    broker.kill9();
    broker.restart();
    let bootstrap = broker.bootstrap();
    assert_eq!(read_from_beginning(&bootstrap, &topic), compacted);
    assert_eq!(high_watermark(&bootstrap, &topic, 0), log_end_offset);

    // New updates after the restart are compacted too.
    let producer = create_producer(&producer_config(&bootstrap));
    let value = value_of("key-0", ROUNDS);
    send_with_retry(
        &producer,
        BaseRecord::to(&topic)
            .partition(0)
            .key("key-0")
            .payload(&value),
    );
    flush_and_check(&producer);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let records = read_from_beginning(&bootstrap, &topic);
        let key_0: Vec<_> = records
            .iter()
            .filter(|(_, key, _)| key == "key-0")
            .collect();
        if key_0.len() == 1 {
            assert_eq!(key_0[0].2.as_deref(), Some(value.as_str()));
            assert_eq!(records.len(), compacted.len());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new update was not compacted"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn log_cleaner_enable_false_leaves_compacted_topics_alone() {
    let broker = Broker::start(&[FAST_CLEANER, "log.cleaner.enable=false"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("no-cleaner");
    create_topic_with(&bootstrap, &topic, 1, COMPACTED_TOPIC);
    let high_watermark = produce_updates_and_tombstones(&bootstrap, &topic);
    // Long enough for many cleaner rounds and past both lags, had it been enabled.
    std::thread::sleep(Duration::from_millis(2_500));
    let records = read_from_beginning(&bootstrap, &topic);
    assert_eq!(
        records.len() as i64,
        high_watermark,
        "every record is still there"
    );
    assert!(broker.stderr().contains("log cleaner disabled"));
}
