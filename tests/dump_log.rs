//! `strata dump-log` against segment files a real broker wrote: the batch lines
//! carry the offsets, sizes, CRCs and timestamps of what was produced, `--records`
//! decodes keys, values and headers, index entries point at batches, and damaged
//! copies or missing paths are reported the way the command promises.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use strata_storage::{encode_plain_batch, plain_record};

/// The producer's timestamp of the first record.
const TIMESTAMP: i64 = 1_700_000_000_000;
/// Small enough that every batch after the first gets an index entry.
const INDEX_INTERVAL: &str = "log.index.interval.bytes=100";

/// One record: key `key` (or none), value, headers, at `TIMESTAMP + index`.
struct Spec {
    key: Option<String>,
    value: String,
    headers: Vec<(&'static str, Option<&'static str>)>,
}

/// The batches the tests produce, in order: 3 plain records; 2 records with
/// headers and a value that needs escaping; 4 gzip-compressed records without keys.
fn batch_specs() -> Vec<(Vec<Spec>, Compression)> {
    let plain = (0..3)
        .map(|i| Spec {
            key: Some(format!("key-{i}")),
            value: format!("value-{i}-{}", "x".repeat(60)),
            headers: vec![],
        })
        .collect();
    let with_headers = (3..5)
        .map(|i| Spec {
            key: Some(format!("key-{i}")),
            value: format!("line\nbreak-{i}"),
            headers: vec![("trace", Some("t-1")), ("empty", None)],
        })
        .collect();
    let gzip = (5..9)
        .map(|i| Spec {
            key: None,
            value: format!("zipped-{i}"),
            headers: vec![],
        })
        .collect();
    vec![
        (plain, Compression::None),
        (with_headers, Compression::None),
        (gzip, Compression::Gzip),
    ]
}

/// Encodes one batch with kafka-protocol, as a client would send it.
fn encode(specs: &[Spec], compression: Compression) -> Bytes {
    let records: Vec<Record> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| Record {
            headers: spec
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        StrBytes::from_static_str(k),
                        v.map(|v| Bytes::from_static(v.as_bytes())),
                    )
                })
                .collect(),
            ..plain_record(
                spec.key.clone().map(Bytes::from),
                Some(Bytes::from(spec.value.clone())),
                TIMESTAMP + i as i64,
            )
        })
        .collect();
    encode_plain_batch(&records, compression)
        .expect("encode a record batch")
        .freeze()
}

/// A stopped broker whose topic holds the three batches of [`batch_specs`], and
/// the encoded batches (their CRCs are what the log must keep).
struct Produced {
    broker: Broker,
    topic: String,
    batches: Vec<Bytes>,
}

impl Produced {
    fn new(topic_configs: &[(&str, &str)]) -> Produced {
        let mut broker = Broker::start(&[INDEX_INTERVAL]);
        let bootstrap = broker.bootstrap();
        let topic = unique_topic("dump-log");
        create_topic_with(&bootstrap, &topic, 1, topic_configs);
        let mut client = RawClient::connect(&bootstrap);
        let mut batches = Vec::new();
        let mut next_offset = 0;
        for (specs, compression) in batch_specs() {
            let batch = encode(&specs, compression);
            let (error, base_offset) = client.produce(&topic, 0, batch.clone());
            assert_eq!((error, base_offset), (0, next_offset), "produce");
            next_offset += specs.len() as i64;
            batches.push(batch);
        }
        broker.stop_sigterm();
        Produced {
            broker,
            topic,
            batches,
        }
    }

    fn segment(&self, extension: &str) -> PathBuf {
        self.broker
            .partition_dir(&self.topic, 0)
            .join(format!("{:020}.{extension}", 0))
    }

    /// Positions of the batches in the segment (they are stored back to back).
    fn positions(&self) -> Vec<usize> {
        let mut position = 0;
        self.batches
            .iter()
            .map(|batch| {
                let at = position;
                position += batch.len();
                at
            })
            .collect()
    }
}

fn dump(args: &[&Path]) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.arg("dump-log").args(args).env("RUST_LOG", "warn");
    run_command(&mut command, b"")
}

fn dump_records(flag: &str, path: &Path) -> CommandOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command
        .arg("dump-log")
        .arg(flag)
        .arg(path)
        .env("RUST_LOG", "warn");
    run_command(&mut command, b"")
}

/// `name: value name: value ...` as a map (batch and index lines have no spaces
/// inside values).
fn fields(line: &str) -> BTreeMap<String, String> {
    let tokens: Vec<&str> = line.split_whitespace().collect();
    let mut map = BTreeMap::new();
    for pair in tokens.chunks(2) {
        let name = pair[0]
            .strip_suffix(':')
            .unwrap_or_else(|| panic!("`{}` is not `name:` in {line:?}", pair[0]));
        map.insert(name.to_string(), pair.get(1).unwrap_or(&"").to_string());
    }
    map
}

fn batch_lines(output: &CommandOutput) -> Vec<BTreeMap<String, String>> {
    output
        .stdout
        .lines()
        .filter(|line| line.starts_with("baseOffset: "))
        .map(fields)
        .collect()
}

fn assert_success(output: &CommandOutput) {
    assert!(output.status.success(), "{}", output.describe());
    assert!(output.stderr.is_empty(), "{}", output.describe());
}

fn copy_to(dir: &Path, file: &Path) -> PathBuf {
    let target = dir.join(file.file_name().expect("a file name"));
    std::fs::copy(file, &target).expect("copy a segment file");
    target
}

#[test]
fn batches_records_and_index_entries_of_a_broker_segment() {
    let produced = Produced::new(&[]);
    let log = produced.segment("log");
    let output = dump(&[&log]);
    assert_success(&output);
    let lines: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(lines[0], format!("Dumping {}", log.display()));
    assert_eq!(lines[1], "Log starting offset: 0");
    assert_eq!(lines.len(), 5, "{}", output.stdout);

    let batches = batch_lines(&output);
    let positions = produced.positions();
    let expected = [(0, 2, 3, "none"), (3, 4, 2, "none"), (5, 8, 4, "gzip")];
    for (i, (base, last, count, codec)) in expected.into_iter().enumerate() {
        let line = &batches[i];
        let sent = &produced.batches[i];
        let crc = u32::from_be_bytes([sent[17], sent[18], sent[19], sent[20]]);
        let want = [
            ("baseOffset", base.to_string()),
            ("lastOffset", last.to_string()),
            ("count", count.to_string()),
            ("baseSequence", "-1".to_string()),
            ("lastSequence", "-1".to_string()),
            ("producerId", "-1".to_string()),
            ("producerEpoch", "-1".to_string()),
            ("isTransactional", "false".to_string()),
            ("isControl", "false".to_string()),
            ("position", positions[i].to_string()),
            ("CreateTime", (TIMESTAMP + count - 1).to_string()),
            ("size", sent.len().to_string()),
            ("magic", "2".to_string()),
            ("compresscodec", codec.to_string()),
            ("crc", crc.to_string()),
            ("isvalid", "true".to_string()),
        ];
        for (name, value) in want {
            assert_eq!(
                line.get(name),
                Some(&value),
                "{name} of batch {i}: {line:?}"
            );
        }
        assert!(line.contains_key("partitionLeaderEpoch"), "{line:?}");
    }

    // --records decodes every record; --print-data-log is Kafka's name for it.
    let records = dump_records("--records", &log);
    assert_success(&records);
    let record_lines: Vec<&str> = records
        .stdout
        .lines()
        .filter(|line| line.starts_with("| "))
        .collect();
    let x60 = "x".repeat(60);
    let expected_records = [
        format!("| offset: 0 CreateTime: {TIMESTAMP} keySize: 5 valueSize: 68 sequence: -1 headerKeys: [] key: key-0 payload: value-0-{x60}"),
        format!("| offset: 1 CreateTime: {} keySize: 5 valueSize: 68 sequence: -1 headerKeys: [] key: key-1 payload: value-1-{x60}", TIMESTAMP + 1),
        format!("| offset: 2 CreateTime: {} keySize: 5 valueSize: 68 sequence: -1 headerKeys: [] key: key-2 payload: value-2-{x60}", TIMESTAMP + 2),
        format!("| offset: 3 CreateTime: {TIMESTAMP} keySize: 5 valueSize: 12 sequence: -1 headerKeys: [trace,empty] key: key-3 payload: line\\nbreak-3"),
        format!("| offset: 4 CreateTime: {} keySize: 5 valueSize: 12 sequence: -1 headerKeys: [trace,empty] key: key-4 payload: line\\nbreak-4", TIMESTAMP + 1),
        format!("| offset: 5 CreateTime: {TIMESTAMP} keySize: -1 valueSize: 8 sequence: -1 headerKeys: [] payload: zipped-5"),
        format!("| offset: 6 CreateTime: {} keySize: -1 valueSize: 8 sequence: -1 headerKeys: [] payload: zipped-6", TIMESTAMP + 1),
        format!("| offset: 7 CreateTime: {} keySize: -1 valueSize: 8 sequence: -1 headerKeys: [] payload: zipped-7", TIMESTAMP + 2),
        format!("| offset: 8 CreateTime: {} keySize: -1 valueSize: 8 sequence: -1 headerKeys: [] payload: zipped-8", TIMESTAMP + 3),
    ];
    assert_eq!(record_lines, expected_records, "{}", records.stdout);
    // Each batch line comes right before its records.
    let all: Vec<&str> = records.stdout.lines().collect();
    assert!(all[2].starts_with("baseOffset: 0 "), "{}", records.stdout);
    assert!(all[6].starts_with("baseOffset: 3 "), "{}", records.stdout);
    let kafka_flag = dump_records("--print-data-log", &log);
    assert_eq!(kafka_flag.stdout, records.stdout);

    // Index entries: each names a batch by its last offset and its position.
    let batch_at: Vec<(i64, usize, i64)> = batches
        .iter()
        .map(|b| {
            (
                b["lastOffset"].parse().expect("offset"),
                b["position"].parse().expect("position"),
                b["CreateTime"].parse().expect("timestamp"),
            )
        })
        .collect();
    let index = produced.segment("index");
    let index_output = dump(&[&index]);
    assert_success(&index_output);
    let index_lines: Vec<&str> = index_output.stdout.lines().skip(1).collect();
    assert!(
        !index_lines.is_empty(),
        "with {INDEX_INTERVAL}, batches after the first are indexed"
    );
    for line in &index_lines {
        let entry = fields(line);
        let (offset, position) = (&entry["offset"], &entry["position"]);
        assert!(
            batch_at
                .iter()
                .any(|(o, p, _)| o.to_string() == *offset && p.to_string() == *position),
            "index entry `{line}` points at no batch: {batch_at:?}"
        );
    }
    let time_index = produced.segment("timeindex");
    let time_output = dump(&[&time_index]);
    assert_success(&time_output);
    let time_lines: Vec<&str> = time_output.stdout.lines().skip(1).collect();
    assert!(!time_lines.is_empty(), "a closed segment has a final entry");
    for line in &time_lines {
        let entry = fields(line);
        assert!(
            batch_at
                .iter()
                .any(|(o, _, t)| o.to_string() == entry["offset"]
                    && t.to_string() == entry["timestamp"]),
            "time index entry `{line}` is no batch's (last offset, max timestamp): {batch_at:?}"
        );
    }

    // An active segment's indexes are preallocated with zeros: not entries.
    let copies = tempfile::tempdir().expect("tempdir");
    for (original, lines) in [(&index, &index_lines), (&time_index, &time_lines)] {
        let copy = copy_to(copies.path(), original);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .and_then(|file| file.set_len(10 * 1024 * 1024))
            .expect("preallocate the copy");
        let output = dump(&[&copy]);
        assert_success(&output);
        let copied: Vec<&str> = output.stdout.lines().skip(1).collect();
        assert_eq!(&copied, lines, "the zero tail adds no entries");
    }
}

#[test]
fn log_append_time_batches_are_labelled_with_the_broker_time() {
    let before = now_ms();
    let produced = Produced::new(&[("message.timestamp.type", "LogAppendTime")]);
    let after = now_ms();
    let output = dump_records("--records", &produced.segment("log"));
    assert_success(&output);
    let batches = batch_lines(&output);
    assert_eq!(batches.len(), 3, "{}", output.stdout);
    for batch in &batches {
        assert!(!batch.contains_key("CreateTime"), "{batch:?}");
        let stamped: i64 = batch["LogAppendTime"].parse().expect("a timestamp");
        assert!((before..=after).contains(&stamped), "{batch:?}");
        assert_eq!(batch["isvalid"], "true", "the CRC was recomputed");
    }
    let first_batch_time = &batches[0]["LogAppendTime"];
    let first_record = output
        .stdout
        .lines()
        .find(|line| line.starts_with("| offset: 0 "))
        .expect("a record line");
    assert!(
        first_record.starts_with(&format!("| offset: 0 LogAppendTime: {first_batch_time} ")),
        "records carry the batch's append time: {first_record}"
    );
}

#[test]
fn damaged_copies_are_reported_and_missing_paths_fail() {
    let produced = Produced::new(&[]);
    let log = produced.segment("log");
    let positions = produced.positions();
    let copies = tempfile::tempdir().expect("tempdir");

    // A flipped byte inside the second batch's records: its CRC no longer matches,
    // and the batches around it are still dumped.
    let flipped = copy_to(copies.path(), &log);
    let mut bytes = std::fs::read(&flipped).expect("read the copy");
    bytes[positions[1] + 70] ^= 0x01;
    std::fs::write(&flipped, &bytes).expect("write the copy");
    let output = dump_records("--records", &flipped);
    assert_success(&output);
    let valid: Vec<String> = batch_lines(&output)
        .iter()
        .map(|b| b["isvalid"].clone())
        .collect();
    assert_eq!(valid, ["true", "false", "true"], "{}", output.stdout);
    assert!(
        output.stdout.contains("| records not decoded: "),
        "{}",
        output.stdout
    );
    assert_eq!(
        output
            .stdout
            .lines()
            .filter(|l| l.starts_with("| offset: "))
            .count(),
        3 + 4,
        "the valid batches' records are decoded"
    );

    // A torn tail: the last batch is cut short. What comes before is dumped, then one
    // line says where and why, and the exit code is still 0.
    let torn_dir = tempfile::tempdir().expect("tempdir");
    let torn = copy_to(torn_dir.path(), &log);
    cut_tail(&torn, 10);
    let output = dump(&[&torn]);
    assert_success(&output);
    assert_eq!(batch_lines(&output).len(), 2, "{}", output.stdout);
    let last = output.stdout.lines().last().expect("output");
    assert!(
        last.starts_with(&format!("Corrupt tail at position {}: ", positions[2]))
            && last.contains("runs past the end of the file"),
        "{last}"
    );

    // A missing path: one line on stderr naming it, exit code 1.
    let missing = copies.path().join("00000000000000000042.log");
    let output = dump(&[&missing]);
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert!(output.stdout.is_empty(), "{}", output.describe());
    let stderr: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(stderr.len(), 1, "{}", output.describe());
    assert!(
        stderr[0].starts_with("error: ") && stderr[0].contains(&missing.display().to_string()),
        "{}",
        output.describe()
    );

    // Other paths are still dumped, but the exit code reports the failure.
    let output = dump(&[&missing, &log]);
    assert_eq!(output.status.code(), Some(1), "{}", output.describe());
    assert_eq!(batch_lines(&output).len(), 3, "{}", output.describe());

    // Not a segment file, and a directory: the same kind of failure.
    for path in [copies.path().to_path_buf(), copies.path().join("notes.txt")] {
        std::fs::write(copies.path().join("notes.txt"), "hello").expect("write");
        let output = dump(&[&path]);
        assert_eq!(output.status.code(), Some(1), "{}", output.describe());
        assert_eq!(output.stderr.lines().count(), 1, "{}", output.describe());
    }
}
