//! The data commands — `strata produce`, `strata consume`, `strata perf` — run as
//! the real binary against a real broker. What they write is read back with
//! librdkafka, what librdkafka writes is read back with them, and keys must land
//! on the partition librdkafka's murmur2 partitioner (Kafka's default) picks.
//! No assertion depends on timing: perf numbers are only checked to be present.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::cli::*;
use common::*;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;
use serde_json::Value;

/// `strata consume TOPIC --json --from beginning --count N` → the parsed records.
fn consume_json(bootstrap: &str, topic: &str, count: usize) -> Vec<Value> {
    let count_text = count.to_string();
    let stdout = success_with(
        strata(
            bootstrap,
            &[
                "consume",
                topic,
                "--from",
                "beginning",
                "--count",
                &count_text,
                "--json",
            ],
        ),
        &format!("consumed {count} records from {topic}\n"),
    );
    json_lines(&stdout)
}

#[test]
fn produced_lines_come_back_with_every_field() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("lines");
    create_topic(&bootstrap, &topic, 3);

    // A key with the separator in its value, an empty value, a non-UTF-8 value,
    // and a CRLF line ending (stripped like the LF).
    let input = b"alpha::one\nbeta::two::2\ngamma::\ndelta::\xff\xfe\r\nepsilon::five\n";
    let before = now_ms();
    let stdout = success_with(
        strata_with_input(
            &bootstrap,
            &[
                "produce",
                &topic,
                "--key-separator",
                "::",
                "--header",
                "source=cli",
                "--header",
                "empty=",
            ],
            input,
        ),
        &format!("produced 5 records to {topic}\n"),
    );
    assert_eq!(stdout, "");
    let after = now_ms();

    let records = consume_json(&bootstrap, &topic, 5);
    let mut by_key: BTreeMap<String, &Value> = BTreeMap::new();
    for record in &records {
        assert_eq!(record["topic"], topic.as_str(), "{record}");
        assert_eq!(record["timestamp_type"], "CreateTime", "{record}");
        let timestamp = record["timestamp"].as_i64().expect("a timestamp");
        assert!((before..=after).contains(&timestamp), "{record}");
        assert_eq!(
            record["headers"],
            serde_json::json!([{"key": "source", "value": "cli"}, {"key": "empty", "value": ""}]),
            "{record}"
        );
        let key = record["key"].as_str().expect("a key").to_string();
        by_key.insert(key, record);
    }
    assert_eq!(by_key["alpha"]["value"], "one");
    assert_eq!(by_key["beta"]["value"], "two::2");
    assert_eq!(by_key["gamma"]["value"], "");
    assert_eq!(by_key["delta"]["value"], "//4=");
    assert_eq!(by_key["delta"]["value_encoding"], "base64");
    assert_eq!(by_key["epsilon"]["value"], "five");
    assert!(by_key["alpha"].get("value_encoding").is_none());

    // librdkafka reads the same records at the same partitions and offsets.
    for partition in 0..3 {
        let expected: Vec<&Value> = records
            .iter()
            .filter(|r| r["partition"] == partition)
            .collect();
        let received = consume_partition(&bootstrap, &topic, partition, expected.len());
        for (json, message) in expected.iter().zip(&received) {
            assert_eq!(json["offset"].as_i64(), Some(message.offset));
            assert_eq!(json["timestamp"].as_i64(), message.timestamp);
            let key = json["key"].as_str().expect("a key");
            assert_eq!(message.key.as_deref(), Some(key.as_bytes()));
            let value = match key {
                "delta" => b"\xff\xfe".to_vec(),
                _ => json["value"].as_str().expect("text").as_bytes().to_vec(),
            };
            assert_eq!(message.value.as_deref(), Some(&value[..]));
            assert_eq!(
                message.headers,
                vec![
                    ("source".to_string(), Some(b"cli".to_vec())),
                    ("empty".to_string(), Some(Vec::new())),
                ]
            );
        }
    }
}

#[test]
fn keys_land_on_the_partition_librdkafka_murmur2_chooses() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let ours = unique_topic("keys-strata");
    let theirs = unique_topic("keys-rdkafka");
    create_topic(&bootstrap, &ours, 7);
    create_topic(&bootstrap, &theirs, 7);
    // Keys of every length modulo 4, so each murmur2 tail case is covered.
    let keys: Vec<String> = (0..60)
        .map(|i| format!("{}{i}", "k".repeat(i % 5)))
        .collect();

    let input: String = keys.iter().map(|k| format!("{k}\t{k}\n")).collect();
    success_with(
        strata_with_input(
            &bootstrap,
            &[
                "produce",
                &ours,
                "--key-separator",
                "\t",
                "--batch-size",
                "100",
            ],
            input.as_bytes(),
        ),
        &format!("produced {} records to {ours}\n", keys.len()),
    );
    let mut config = producer_config(&bootstrap);
    config.set("partitioner", "murmur2_random");
    let producer = create_producer(&config);
    for key in &keys {
        send_with_retry(&producer, BaseRecord::to(&theirs).key(key).payload(key));
    }
    flush_and_check(&producer);

    let partitions = |topic: &str| -> BTreeMap<String, i64> {
        consume_json(&bootstrap, topic, keys.len())
            .iter()
            .map(|r| {
                (
                    r["key"].as_str().expect("a key").to_string(),
                    r["partition"].as_i64().expect("a partition"),
                )
            })
            .collect()
    };
    let ours = partitions(&ours);
    let theirs = partitions(&theirs);
    assert_eq!(ours.len(), keys.len());
    assert_eq!(ours, theirs);
    let used: std::collections::BTreeSet<_> = ours.values().collect();
    assert!(used.len() > 3, "keys spread over partitions: {used:?}");
}

#[test]
fn every_codec_round_trips_through_librdkafka() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("codec-{codec}"));
        create_topic(&bootstrap, &topic, 1);
        let values: Vec<String> = (0..50)
            .map(|i| format!("{codec} record {i} {}", "x".repeat(i)))
            .collect();
        let input: String = values.iter().map(|v| format!("{v}\n")).collect();
        success_with(
            strata_with_input(
                &bootstrap,
                &["produce", &topic, "--compression", codec, "--acks", "1"],
                input.as_bytes(),
            ),
            &format!("produced 50 records to {topic}\n"),
        );
        // The batch on disk carries the codec asked for.
        let segment = active_segment(&broker.partition_dir(&topic, 0));
        let mut dump = Command::new(env!("CARGO_BIN_EXE_strata"));
        dump.arg("dump-log").arg(&segment).env("RUST_LOG", "warn");
        let dumped = run_command(&mut dump, b"");
        assert!(
            dumped.stdout.contains(&format!("compresscodec: {codec} ")),
            "{codec}: {}",
            dumped.describe()
        );
        let received = consume_partition(&bootstrap, &topic, 0, values.len());
        assert_values_in_order(&received, &values);
        let ours: Vec<String> = consume_json(&bootstrap, &topic, values.len())
            .iter()
            .map(|r| r["value"].as_str().expect("text").to_string())
            .collect();
        assert_eq!(ours, values, "{codec}");
    }
}

#[test]
fn consume_starts_at_an_offset_or_a_time_and_stops_at_a_count() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("positions");
    // The timestamps below lie in the past: keep them from time-based retention.
    create_topic_with(&bootstrap, &topic, 2, &[("retention.ms", "-1")]);
    // 2026-11-21T09:30:00Z, then one record a second, all in partition 1.
    let base = 1_795_253_400_000i64;
    let producer = create_producer(&producer_config(&bootstrap));
    for i in 0..10 {
        let value = format!("v{i}");
        let headers = OwnedHeaders::new().insert(Header {
            key: "i",
            value: Some(&value),
        });
        send_with_retry(
            &producer,
            BaseRecord::<(), _>::to(&topic)
                .partition(1)
                .payload(&value)
                .timestamp(base + i * 1000)
                .headers(headers),
        );
    }
    flush_and_check(&producer);

    // An offset, with --count.
    let stdout = success_with(
        strata(
            &bootstrap,
            &[
                "consume",
                &topic,
                "--partition",
                "1",
                "--from",
                "4",
                "--count",
                "3",
                "--print-offset",
                "--print-timestamp",
                "--print-headers",
                "--print-key",
            ],
        ),
        &format!("consumed 3 records from {topic}\n"),
    );
    let expected: String = (4..7)
        .map(|i| format!("{}\t1:{i}\ti=v{i}\tnull\tv{i}\n", base + i * 1000))
        .collect();
    assert_eq!(stdout, expected);

    // A time: the first record at or after it, in every partition (partition 0
    // is empty, so it contributes nothing).
    for (from, first) in [
        (format!("@{}", base + 4000), 4),
        ("2026-11-21T10:30:05.500+01:00".to_string(), 6),
        ("2026-11-21T09:30:00Z".to_string(), 0),
        ("beginning".to_string(), 0),
    ] {
        let stdout = success_with(
            strata(
                &bootstrap,
                &["consume", &topic, "--from", &from, "--timeout-ms", "1500"],
            ),
            &format!("consumed {} records from {topic}\n", 10 - first),
        );
        let expected: String = (first..10).map(|i| format!("v{i}\n")).collect();
        assert_eq!(stdout, expected, "--from {from}");
    }
    // After the last record, and at the end: nothing, until the idle timeout.
    for from in [format!("@{}", base + 60_000), "end".to_string()] {
        let stdout = success_with(
            strata(
                &bootstrap,
                &["consume", &topic, "--from", &from, "--timeout-ms", "500"],
            ),
            &format!("consumed 0 records from {topic}\n"),
        );
        assert_eq!(stdout, "", "--from {from}");
    }
    // --count not reached before the idle timeout is a failure, after printing
    // what there was.
    let output = strata(
        &bootstrap,
        &[
            "consume",
            &topic,
            "--from",
            "8",
            "--partition",
            "1",
            "--count",
            "5",
            "--timeout-ms",
            "500",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert_eq!(output.stdout, "v8\nv9\n", "{}", output.describe());
    assert_eq!(
        output.stderr,
        format!("error: no record for 500 ms after 2 of 5 records from {topic}\n")
    );
    // An offset past the end is the broker's OFFSET_OUT_OF_RANGE.
    failure(
        strata(
            &bootstrap,
            &["consume", &topic, "--partition", "1", "--from", "11"],
        ),
        &["partition 1 at offset 11", "OFFSET_OUT_OF_RANGE"],
    );
}

/// The one JSON line `perf ... --json` prints on success.
fn perf_report(output: CommandOutput) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", output.describe());
    assert_eq!(output.stdout.lines().count(), 1, "{}", output.describe());
    serde_json::from_str(output.stdout.trim()).expect("one JSON object")
}

/// Asserts the report has a number at each of `keys` of its `latency_ms`.
fn assert_latencies(report: &Value, keys: &[&str]) {
    for key in keys {
        assert!(
            report["latency_ms"][key].as_f64().is_some(),
            "{key}: {report}"
        );
    }
}

#[test]
fn perf_produce_and_consume_report_json() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("perf");

    // --partitions creates the missing topic.
    let output = strata(
        &bootstrap,
        &[
            "perf",
            "produce",
            &topic,
            "--num-records",
            "3000",
            "--record-size",
            "50",
            "--partitions",
            "3",
            "--batch-size",
            "4096",
            "--compression",
            "lz4",
            "--json",
        ],
    );
    let report = perf_report(output);
    assert_eq!(report["operation"], "produce");
    assert_eq!(report["records"], 3000);
    assert_eq!(report["bytes"], 150_000);
    assert_eq!(report["partitions"], 3);
    assert_eq!(report["compression"], "lz4");
    assert_eq!(report["acks"], "all");
    assert!(report["requests"].as_u64().expect("requests") > 1);
    for key in ["elapsed_s", "mb_per_s", "records_per_s"] {
        assert!(report[key].as_f64().is_some(), "{key}: {report}");
    }
    assert_latencies(&report, &["p50", "p99", "p99_9", "max", "mean"]);
    let total: i64 = (0..3).map(|p| high_watermark(&bootstrap, &topic, p)).sum();
    assert_eq!(total, 3000);

    // acks=0 with a rate limit: no latency to report, every record still arrives.
    let output = strata(
        &bootstrap,
        &[
            "perf",
            "produce",
            &topic,
            "--num-records",
            "200",
            "--record-size",
            "10",
            "--acks",
            "0",
            "--throughput",
            "2000",
            "--json",
        ],
    );
    let report = perf_report(output);
    assert_eq!(report["records"], 200);
    assert_eq!(report["acks"], "0");
    assert!(report["latency_ms"].is_null(), "{report}");

    let output = strata(
        &bootstrap,
        &["perf", "consume", &topic, "--num-records", "3200", "--json"],
    );
    let report = perf_report(output);
    assert_eq!(report["operation"], "consume");
    assert_eq!(report["records"], 3200);
    assert_eq!(report["bytes"], 150_000 + 2_000);
    assert!(report["fetches"].as_u64().expect("fetches") >= 1);
    assert_latencies(&report, &["p50", "p99", "p99_9", "max"]);

    // Asking for more than there is ends with the idle timeout, as an error.
    failure(
        strata(
            &bootstrap,
            &[
                "perf",
                "consume",
                &topic,
                "--num-records",
                "5000",
                "--timeout-ms",
                "500",
            ],
        ),
        &["only 3200 of 5000 records", "none arrived for 500 ms"],
    );
}

/// Each data command on `topic`, with the fewest arguments it accepts.
fn each_data_command(topic: &str) -> [Vec<&str>; 4] {
    [
        vec!["produce", topic],
        vec!["consume", topic],
        vec![
            "perf",
            "produce",
            topic,
            "--num-records",
            "1",
            "--record-size",
            "1",
        ],
        vec!["perf", "consume", topic, "--num-records", "1"],
    ]
}

#[test]
fn unreachable_broker_and_unknown_topic_are_one_line_errors() {
    let closed = closed_port();
    let reach = format!("cannot reach broker at {closed}");
    for args in each_data_command("t") {
        failure(strata(&closed, &args), &[&reach, "refused"]);
    }

    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let missing = unique_topic("missing");
    let unknown = format!("topic {missing:?}: UNKNOWN_TOPIC_OR_PARTITION (error code 3)");
    for args in each_data_command(&missing) {
        failure(strata_with_input(&bootstrap, &args, b"a\n"), &[&unknown]);
    }
    // Nothing above created the topic.
    let listed = strata(&bootstrap, &["topic", "list"]);
    assert_eq!(listed.stdout, "no topics\n", "{}", listed.describe());
}

#[test]
fn bad_values_are_refused_with_the_cause() {
    // Refused while parsing the command line: nothing is contacted.
    let nowhere = "127.0.0.1:1";
    for (args, expected) in [
        (&["produce", "t", "--acks", "2"][..], "expected 0, 1 or all"),
        (&["produce", "t", "--compression", "brotli"], "brotli"),
        (
            &["produce", "t", "--header", "novalue"],
            "expected KEY=VALUE",
        ),
        (&["produce", "t", "--key-separator", ""], "cannot be empty"),
        (&["consume", "t", "--from", "soon"], "RFC 3339"),
        (&["consume", "t", "--from=-3"], "--from"),
        (&["consume", "t", "--count", "0"], "--count"),
        (&["consume", "t", "--json", "--print-key"], "--print-key"),
        (
            &["perf", "produce", "t", "--num-records", "10"],
            "--record-size",
        ),
        (
            &[
                "perf",
                "produce",
                "t",
                "--num-records",
                "1",
                "--record-size",
                "0",
            ],
            "--record-size",
        ),
    ] {
        usage_error(strata(nowhere, args), expected);
    }

    // Refused once the topic is known.
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("bad");
    create_topic(&bootstrap, &topic, 2);
    failure(
        strata_with_input(&bootstrap, &["produce", &topic, "--partition", "2"], b"a\n"),
        &[&format!("topic {topic:?} has no partition 2")],
    );
    failure(
        strata(&bootstrap, &["consume", &topic, "--partition=-1"]),
        &["has no partition -1"],
    );
    failure(
        strata_with_input(
            &bootstrap,
            &[
                "produce",
                &topic,
                "--key-separator",
                ":",
                "--partition",
                "0",
            ],
            b"k:v\nno separator\n",
        ),
        &["line 2 has no key separator \":\""],
    );
    failure(
        strata(
            &bootstrap,
            &["produce", &topic, "--file", "/nonexistent/lines"],
        ),
        &["cannot open /nonexistent/lines"],
    );
}
