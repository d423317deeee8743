//! `strata produce TOPIC`: one record per input line (stdin or `--file`), sent in
//! record batches to each partition's leader.
//!
//! - **Partitioning.** `--partition N` sends everything to N. Otherwise a keyed
//!   record goes where Kafka's default partitioner puts it (murmur2 of the key,
//!   see [`crate::partitioner`]); keyless records stick to one partition per
//!   batch and move on to the next partition after each request, so they spread
//!   evenly without splitting batches.
//! - **Batching.** Records gather per partition until one partition's batch
//!   reaches `--batch-size` bytes, `--linger-ms` passes since the first pending
//!   record, or the input ends; then every pending batch goes out, one Produce
//!   request per leader. Reading happens on its own thread so that the linger
//!   deadline holds while stdin is idle (an interactive session sees each line
//!   sent within `--linger-ms`).
//! - **Encoding.** Batches are built by `kafka-protocol`'s
//!   [`RecordBatchEncoder`] (magic v2), compressed with `--compression`.
//!
//! The helpers [`encode_batch`], [`produce_request`] and [`partition_failures`]
//! are shared with `strata perf produce`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record};
use strata_storage::{encode_plain_batch, plain_record};

use crate::client::{error_name, finish, REQUEST_TIMEOUT_MS};
use crate::leaders::{Leaders, TopicLayout};
use crate::partitioner::partition_for_key;

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// The topic to write to (it must exist).
    topic: String,
    /// Read records from this file instead of stdin, one per line.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,
    /// Split each line at the first SEP: the text before it is the key, the rest
    /// the value. A line without SEP is an error. Without this flag records have no key.
    #[arg(long, value_name = "SEP", value_parser = parse_separator)]
    key_separator: Option<String>,
    /// A header KEY=VALUE added to every record; may be repeated.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Send every record to this partition instead of choosing by key.
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    #[command(flatten)]
    send: SendOptions,
    /// Send a partition's batch once it holds this many bytes of records.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Send pending records at the latest this long after the first of them was read.
    #[arg(long, value_name = "MS", default_value_t = 50)]
    linger_ms: u64,
}

/// How records are sent: shared by `produce` and `perf produce`.
#[derive(clap::Args, Clone, Copy)]
pub struct SendOptions {
    /// Which acknowledgement to wait for: 0 (none; errors go unseen), 1 (the
    /// leader's) or all (every in-sync replica's).
    #[arg(long, value_name = "0|1|all", default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Compression codec of the record batches.
    #[arg(long, value_enum, default_value_t = Codec::None)]
    pub compression: Codec,
}

/// A record batch compression codec, as `compression.type` names them.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn compression(self) -> Compression {
        match self {
            Codec::None => Compression::None,
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            Codec::Zstd => Compression::Zstd,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }
}

/// Runs `strata produce`; the summary goes to stderr, errors as one line.
pub fn run(bootstrap: &str, args: &ProduceArgs) -> ExitCode {
    finish(execute(bootstrap, args).map(|summary| {
        eprintln!("{summary}");
        String::new()
    }))
}

fn execute(bootstrap: &str, args: &ProduceArgs) -> Result<String> {
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut bootstrap_client = crate::client::connect(bootstrap)?;
    let layout = TopicLayout::fetch(&mut bootstrap_client, &args.topic)?;
    if let Some(partition) = args.partition {
        layout.leader(partition)?;
    }
    let mut producer = LineProducer {
        layout: &layout,
        leaders: Leaders::new(&layout),
        args,
        pending: BTreeMap::new(),
        sticky_partition: initial_sticky_partition(layout.partition_count()),
        sent: 0,
        failures: BTreeMap::new(),
    };
    let lines = spawn_line_reader(input);
    let linger = Duration::from_millis(args.linger_ms);
    let mut deadline: Option<Instant> = None;
    let mut line_number = 0u64;
    loop {
        let next = match deadline {
            Some(deadline) => {
                lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => lines
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(Ok(line)) => {
                line_number += 1;
                let batch_full = producer.add_line(line, line_number)?;
                if batch_full {
                    producer.flush()?;
                    deadline = None;
                } else if deadline.is_none() {
                    deadline = Some(Instant::now() + linger);
                }
            }
            Ok(Err(error)) => return Err(error).context("reading the input"),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                producer.flush()?;
                deadline = None;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    producer.flush()?;
    producer.summary()
}

/// Reads lines (without their `\n` or `\r\n`) on a thread of their own.
fn spawn_line_reader(
    mut input: Box<dyn BufRead + Send>,
) -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::sync_channel(1024);
    std::thread::spawn(move || loop {
        let mut line = Vec::new();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                if sender.send(Ok(line)).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = sender.send(Err(error));
                return;
            }
        }
    });
    receiver
}

/// Records waiting to be sent to one partition.
#[derive(Default)]
struct PendingBatch {
    records: Vec<Record>,
    bytes: usize,
}

struct LineProducer<'a> {
    layout: &'a TopicLayout,
    leaders: Leaders,
    args: &'a ProduceArgs,
    pending: BTreeMap<i32, PendingBatch>,
    /// Where the next keyless record goes (without `--partition`).
    sticky_partition: i32,
    /// Records sent (and acknowledged, unless acks=0).
    sent: u64,
    /// Partition → (error, records it refused).
    failures: BTreeMap<i32, (String, u64)>,
}

impl LineProducer<'_> {
    /// Turns a line into a record and queues it; true when its batch is full.
    fn add_line(&mut self, line: Vec<u8>, line_number: u64) -> Result<bool> {
        let line = Bytes::from(line);
        let (key, value) = match &self.args.key_separator {
            None => (None, line),
            Some(separator) => {
                let Some(at) = find(&line, separator.as_bytes()) else {
                    bail!("line {line_number} has no key separator {separator:?}");
                };
                (Some(line.slice(..at)), line.slice(at + separator.len()..))
            }
        };
        let partition = match (self.args.partition, &key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, self.layout.partition_count()),
            (None, None) => self.sticky_partition,
        };
        let headers = self
            .args
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    StrBytes::from_string(k.clone()),
                    Some(Bytes::from(v.clone().into_bytes())),
                )
            })
            .collect();
        let record = new_record(key, Some(value), headers, now_ms());
        let batch = self.pending.entry(partition).or_default();
        batch.bytes += record_size(&record);
        batch.records.push(record);
        Ok(batch.bytes >= self.args.batch_size as usize)
    }

    /// Sends every pending batch: one Produce request per leader.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut by_leader: BTreeMap<i32, Vec<(i32, Vec<Record>)>> = BTreeMap::new();
        for (partition, batch) in std::mem::take(&mut self.pending) {
            let leader = self.layout.leader(partition)?;
            by_leader
                .entry(leader)
                .or_default()
                .push((partition, batch.records));
        }
        let codec = self.args.send.compression;
        for (leader, batches) in by_leader {
            let mut encoded = Vec::with_capacity(batches.len());
            let mut counts = BTreeMap::new();
            for (partition, records) in &batches {
                encoded.push((*partition, encode_batch(records, codec)?));
                counts.insert(*partition, records.len() as u64);
            }
            let request = produce_request(self.layout, encoded, self.args.send.acks);
            let client = self.leaders.client(leader)?;
            if self.args.send.acks == 0 {
                // Kafka sends no response to acks=0; nothing to wait for.
                let _unanswered = client.start(&request)?;
                self.sent += counts.values().sum::<u64>();
                continue;
            }
            let response = client.send(&request)?;
            let failed = partition_failures(&response, &counts)?;
            for (partition, count) in &counts {
                match failed.get(partition) {
                    Some(error) => {
                        let entry = self
                            .failures
                            .entry(*partition)
                            .or_insert_with(|| (error.clone(), 0));
                        entry.1 += count;
                    }
                    None => self.sent += count,
                }
            }
        }
        if self.args.partition.is_none() {
            self.sticky_partition =
                (self.sticky_partition + 1) % self.layout.partition_count() as i32;
        }
        Ok(())
    }

    fn summary(&self) -> Result<String> {
        let topic = &self.layout.name;
        if !self.failures.is_empty() {
            let failed: u64 = self.failures.values().map(|(_, n)| n).sum();
            let causes: Vec<String> = self
                .failures
                .iter()
                .map(|(partition, (error, count))| {
                    format!("partition {partition}: {error} ({count} records)")
                })
                .collect();
            bail!(
                "{failed} of {} records were not produced to {topic}: {}",
                failed + self.sent,
                causes.join("; ")
            );
        }
        if self.args.send.acks == 0 {
            return Ok(format!(
                "sent {} records to {topic} (acks=0: not confirmed by the broker)",
                self.sent
            ));
        }
        Ok(format!("produced {} records to {topic}", self.sent))
    }
}

/// A record for [`encode_batch`]: a plain (non-idempotent) producer's, with
/// CreateTime `timestamp`. Offsets and sequences are filled in by `encode_batch`.
pub fn new_record(
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: IndexMap<StrBytes, Option<Bytes>>,
    timestamp: i64,
) -> Record {
    Record {
        headers,
        ..plain_record(key, value, timestamp)
    }
}

/// Roughly the bytes a record adds to a batch, for the `--batch-size` limit.
pub fn record_size(record: &Record) -> usize {
    // Length, attributes, timestamp and offset deltas, key and value lengths.
    const OVERHEAD: usize = 21;
    let headers: usize = record
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 10)
        .sum();
    OVERHEAD
        + record.key.as_ref().map_or(0, Bytes::len)
        + record.value.as_ref().map_or(0, Bytes::len)
        + headers
}

/// Encodes `records` as exactly one v2 record batch with relative offsets 0..n.
pub fn encode_batch(records: &[Record], codec: Codec) -> Result<Bytes> {
    let batch = encode_plain_batch(records, codec.compression())
        .with_context(|| format!("encoding a record batch ({})", codec.name()))?;
    Ok(batch.freeze())
}

/// A Produce request carrying one encoded batch per listed partition. Both the
/// topic's name (v3–12) and its id (v13+, KIP-516) are set; the encoder writes
/// the one the negotiated version uses.
pub fn produce_request(
    layout: &TopicLayout,
    batches: Vec<(i32, Bytes)>,
    acks: i16,
) -> ProduceRequest {
    let partitions = batches
        .into_iter()
        .map(|(partition, records)| {
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))
        })
        .collect();
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(REQUEST_TIMEOUT_MS)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(layout.topic_name())
            .with_topic_id(layout.topic_id)
            .with_partition_data(partitions)])
}

/// The partitions of `expected` that the broker refused, each with its error
/// (Kafka's name for it, code and message). A partition missing from the answer
/// is an error of the whole response.
pub fn partition_failures(
    response: &ProduceResponse,
    expected: &BTreeMap<i32, u64>,
) -> Result<BTreeMap<i32, String>> {
    let mut failures = BTreeMap::new();
    let mut answered = 0;
    // One topic per request, so every partition answer belongs to it.
    for partition in response
        .responses
        .iter()
        .flat_map(|t| &t.partition_responses)
    {
        if !expected.contains_key(&partition.index) {
            continue;
        }
        answered += 1;
        if let Some(error) = ResponseError::try_from_code(partition.error_code) {
            let mut text = format!(
                "{} (error code {})",
                error_name(error),
                partition.error_code
            );
            if let Some(message) = partition.error_message.as_ref().filter(|m| !m.is_empty()) {
                text.push_str(&format!(": {}", message.as_str()));
            }
            failures.insert(partition.index, text);
        }
    }
    if answered != expected.len() {
        bail!(
            "the broker answered for {answered} of {} partitions",
            expected.len()
        );
    }
    Ok(failures)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A start for keyless records that differs between runs, so that many short
/// runs do not all fill partition 0.
fn initial_sticky_partition(partitions: usize) -> i32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize);
    (nanos % partitions) as i32
}

/// `0`, `1`, `all` (or its synonym `-1`) → the Produce request's `acks`.
pub fn parse_acks(text: &str) -> Result<i16, String> {
    match text {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        _ => Err(format!("expected 0, 1 or all, got {text:?}")),
    }
}

fn parse_separator(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("the key separator cannot be empty".to_string());
    }
    Ok(text.to_string())
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn one_batch_per_call_for_every_codec() {
        let records: Vec<Record> = (0..5)
            .map(|i| {
                new_record(
                    Some(Bytes::from(format!("k{i}"))),
                    Some(Bytes::from(format!("v{i}"))),
                    IndexMap::new(),
                    1_700_000_000_000 + i,
                )
            })
            .collect();
        for codec in [
            Codec::None,
            Codec::Gzip,
            Codec::Snappy,
            Codec::Lz4,
            Codec::Zstd,
        ] {
            let mut encoded = encode_batch(&records, codec).expect("encode");
            let sets = RecordBatchDecoder::decode_all(&mut encoded).expect("decode");
            assert_eq!(sets.len(), 1, "{codec:?}: exactly one batch");
            let decoded = &sets[0].records;
            assert_eq!(decoded.len(), 5);
            for (i, record) in decoded.iter().enumerate() {
                assert_eq!(record.offset, i as i64);
                assert_eq!(record.key.as_deref(), Some(format!("k{i}").as_bytes()));
                assert_eq!(record.producer_id, -1);
            }
        }
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("-1"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert_eq!(parse_acks("0"), Ok(0));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn separator_splits_at_the_first_occurrence() {
        assert_eq!(find(b"a::b::c", b"::"), Some(1));
        assert_eq!(find(b"abc", b"::"), None);
    }
}
