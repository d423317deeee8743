//! `strata perf produce|consume`: load generators measuring throughput and
//! latency against any Kafka-compatible broker with the `strata` client itself
//! (no librdkafka; `tools/bench.sh` is the librdkafka-based benchmark).
//!
//! - **produce** sends `--num-records` records of `--record-size` bytes in
//!   batches of about `--batch-size` bytes, one batch per partition per Produce
//!   request, partitions taken in turn. Up to `--max-in-flight` requests are
//!   pipelined on each leader's connection (a broker answers a connection's
//!   requests in order). Latency is request sent → response read, per request,
//!   so it includes waiting behind earlier requests on the same connection.
//!   With acks=0 there is no response and so no latency.
//! - **consume** reads the topic from the beginning of every partition until
//!   `--num-records` records arrived; latency is per Fetch request (a Fetch that
//!   has caught up waits for new data, so run it over a topic already filled).
//!
//! Every second a progress line goes to stderr (rates over the last second,
//! p99 so far); at the end the totals go to stderr, or as one JSON object to
//! stdout with `--json`. MB means 10^6 bytes of keys and values (batch and
//! record overhead not counted), as in docs/benchmarks.md. Percentiles come from an HdrHistogram with microsecond
//! resolution and 3 significant digits.

use std::collections::{BTreeMap, VecDeque};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use hdrhistogram::Histogram;
use kafka_protocol::error::ResponseError;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{CreateTopicsRequest, ProduceRequest};
use serde_json::{json, Value};

use crate::client::{broker_error, finish, Client, InFlight, REQUEST_TIMEOUT_MS};
use crate::fetcher::Fetcher;
use crate::leaders::{topic_name, Leaders, TopicLayout};
use crate::offsets::{resolve, StartPosition};
use crate::produce::{
    encode_batch, new_record, now_ms, partition_failures, produce_request, record_size, SendOptions,
};

/// How long `perf produce --partitions` waits for a topic it created to have leaders.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(10);
const BYTES_PER_MB: f64 = 1_000_000.0;

#[derive(clap::Args)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(clap::Subcommand)]
enum PerfCommand {
    /// Produce records as fast as allowed; report throughput and request latency.
    ///
    /// Example: strata perf produce bench --num-records 1000000 --record-size 100 --partitions 3
    Produce(PerfProduceArgs),
    /// Read records from the beginning; report throughput and Fetch latency.
    ///
    /// Example: strata perf consume bench --num-records 1000000
    Consume(PerfConsumeArgs),
}

#[derive(clap::Args)]
struct PerfProduceArgs {
    /// The topic to write to.
    topic: String,
    /// How many records to send.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_records: u64,
    /// Bytes of each record's value (no key, no headers).
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1..))]
    record_size: u32,
    #[command(flatten)]
    send: SendOptions,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(i32).range(1..))]
    partitions: Option<i32>,
    /// Send at most this many records per second (default: no limit).
    #[arg(long, value_name = "MSGS_PER_SEC", value_parser = clap::value_parser!(u64).range(1..))]
    throughput: Option<u64>,
    /// Bytes of records per batch (one batch per partition per request).
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024, value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: u32,
    /// Requests awaiting their response per broker connection.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_in_flight: u32,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct PerfConsumeArgs {
    /// The topic to read (from the beginning of every partition).
    topic: String,
    /// How many records to read.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    num_records: u64,
    /// Give up once no record arrived for this long.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print the results as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs one `strata perf` command; errors become one line on stderr.
pub fn run(bootstrap: &str, args: &PerfArgs) -> ExitCode {
    finish(match &args.command {
        PerfCommand::Produce(args) => produce(bootstrap, args),
        PerfCommand::Consume(args) => consume(bootstrap, args),
    })
}

/// A Produce request on its way, and what it carries.
struct Pending {
    in_flight: InFlight<ProduceRequest>,
    sent_at: Instant,
    /// Partition → records in this request.
    counts: BTreeMap<i32, u64>,
}

fn produce(bootstrap: &str, args: &PerfProduceArgs) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    if let Some(partitions) = args.partitions {
        create_topic_if_missing(&mut client, &args.topic, partitions)?;
    }
    let layout = wait_for_layout(&mut client, &args.topic, args.partitions.is_some())?;
    let mut leaders = Leaders::new(&layout);
    // Partitions grouped by leader; requests go to the leaders in turn.
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (&partition, &leader) in &layout.leaders {
        by_leader.entry(leader).or_default().push(partition);
    }
    let by_leader: Vec<(i32, Vec<i32>)> = by_leader.into_iter().collect();

    let value_size = args.record_size as usize;
    let payload = Payload::new(value_size);
    let sample = new_record(None, Some(payload.value(0)), IndexMap::new(), 0);
    let mut records_per_batch = (args.batch_size as usize / record_size(&sample)).max(1) as u64;
    if let Some(rate) = args.throughput {
        // About ten requests a second, so the rate limit is smooth.
        records_per_batch = records_per_batch.min((rate / 10).max(1));
    }
    let acks = args.send.acks;
    let mut meter = Meter::new("produce");
    let mut queues: BTreeMap<i32, VecDeque<Pending>> = BTreeMap::new();
    let mut requests = 0u64;
    let mut queued = 0u64;
    let mut turn = 0usize;
    while queued < args.num_records {
        let (leader, partitions) = &by_leader[turn % by_leader.len()];
        turn += 1;
        let mut batches = Vec::with_capacity(partitions.len());
        let mut counts = BTreeMap::new();
        for &partition in partitions {
            let count = records_per_batch.min(args.num_records - queued);
            if count == 0 {
                break;
            }
            let timestamp = now_ms();
            let records: Vec<_> = (queued..queued + count)
                .map(|i| new_record(None, Some(payload.value(i)), IndexMap::new(), timestamp))
                .collect();
            batches.push((partition, encode_batch(&records, args.send.compression)?));
            counts.insert(partition, count);
            queued += count;
        }
        if let Some(rate) = args.throughput {
            // Wait until sending these keeps the average at or below the rate.
            let due = Duration::from_secs_f64(queued as f64 / rate as f64);
            let elapsed = meter.start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
        let request = produce_request(&layout, batches, acks);
        let queue = queues.entry(*leader).or_default();
        let client = leaders.client(*leader)?;
        if queue.len() >= args.max_in_flight as usize {
            let oldest = queue.pop_front().expect("the queue is full");
            complete(client, oldest, &layout.name, &mut meter, value_size)?;
        }
        let sent_at = Instant::now();
        let in_flight = client.start(&request)?;
        requests += 1;
        if acks == 0 {
            let sent: u64 = counts.values().sum();
            meter.add(sent, sent * value_size as u64);
        } else {
            queue.push_back(Pending {
                in_flight,
                sent_at,
                counts,
            });
        }
        meter.maybe_report();
    }
    for (leader, queue) in &mut queues {
        let client = leaders.client(*leader)?;
        while let Some(pending) = queue.pop_front() {
            complete(client, pending, &layout.name, &mut meter, value_size)?;
            meter.maybe_report();
        }
    }
    let elapsed = meter.start.elapsed();
    meter.end_progress();
    let mut result = meter.summary(elapsed);
    let extra = json!({
        "topic": layout.name,
        "partitions": layout.partition_count(),
        "record_size": args.record_size,
        "acks": if acks == -1 { "all".to_string() } else { acks.to_string() },
        "compression": args.send.compression.name(),
        "requests": requests,
        "records_per_batch": records_per_batch,
        "max_in_flight": args.max_in_flight,
    });
    merge(&mut result, extra);
    Ok(report(&result, args.json, "request latency"))
}

/// Reads the response of a pipelined request, checks it and records its latency.
fn complete(
    client: &mut Client,
    pending: Pending,
    topic: &str,
    meter: &mut Meter,
    value_size: usize,
) -> Result<()> {
    let response = client.receive(pending.in_flight)?;
    meter.record_latency(pending.sent_at.elapsed());
    let failures = partition_failures(&response, &pending.counts)?;
    if let Some((partition, error)) = failures.into_iter().next() {
        bail!("producing to {topic} partition {partition}: {error}");
    }
    let records: u64 = pending.counts.values().sum();
    meter.add(records, records * value_size as u64);
    Ok(())
}

fn consume(bootstrap: &str, args: &PerfConsumeArgs) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let layout = TopicLayout::fetch(&mut client, &args.topic)?;
    let partitions: Vec<i32> = layout.leaders.keys().copied().collect();
    let mut leaders = Leaders::new(&layout);
    let positions = resolve(&mut leaders, &layout, &partitions, StartPosition::Beginning)?;
    let mut fetcher = Fetcher::new(&layout, leaders, positions);
    let idle_limit = Duration::from_millis(args.timeout_ms);
    let mut meter = Meter::new("consume");
    let mut fetches = 0u64;
    let mut last_record = Instant::now();
    while meter.records < args.num_records {
        let wait = idle_limit
            .saturating_sub(last_record.elapsed())
            .min(Duration::from_millis(500));
        let round = fetcher.fetch(wait)?;
        fetches += round.latencies.len() as u64;
        for latency in round.latencies {
            meter.record_latency(latency);
        }
        if !round.records.is_empty() {
            last_record = Instant::now();
        }
        let wanted = (args.num_records - meter.records) as usize;
        let mut bytes = 0u64;
        for (_, record) in round.records.iter().take(wanted) {
            bytes += (record.key.as_ref().map_or(0, Bytes::len)
                + record.value.as_ref().map_or(0, Bytes::len)) as u64;
        }
        meter.add(round.records.len().min(wanted) as u64, bytes);
        meter.maybe_report();
        if meter.records < args.num_records && last_record.elapsed() >= idle_limit {
            meter.end_progress();
            bail!(
                "only {} of {} records in {}: none arrived for {} ms",
                meter.records,
                args.num_records,
                layout.name,
                args.timeout_ms
            );
        }
    }
    let elapsed = meter.start.elapsed();
    meter.end_progress();
    let mut result = meter.summary(elapsed);
    merge(
        &mut result,
        json!({
            "topic": layout.name,
            "partitions": layout.partition_count(),
            "fetches": fetches,
        }),
    );
    Ok(report(&result, args.json, "fetch latency"))
}

/// Creates `topic` with `partitions` partitions; an existing topic is kept as it is.
fn create_topic_if_missing(client: &mut Client, topic: &str, partitions: i32) -> Result<()> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)])
        .with_timeout_ms(REQUEST_TIMEOUT_MS);
    let response = client.send(&request)?;
    let Some(result) = response.topics.first() else {
        bail!("the broker's CreateTopics answer is empty");
    };
    if ResponseError::try_from_code(result.error_code) == Some(ResponseError::TopicAlreadyExists) {
        return Ok(());
    }
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("cannot create topic {topic:?}"))
}

/// The topic's layout; right after creating it, waits (briefly) for a cluster
/// that propagates metadata asynchronously.
fn wait_for_layout(client: &mut Client, topic: &str, just_created: bool) -> Result<TopicLayout> {
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        match TopicLayout::fetch(client, topic) {
            Ok(layout) => return Ok(layout),
            Err(error) if !just_created || Instant::now() >= deadline => return Err(error),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Record values: windows of a pseudo-random block of letters, so compressed
/// runs compress about as much as text does, and not infinitely.
struct Payload {
    block: Bytes,
    size: usize,
}

impl Payload {
    const WINDOWS: usize = 4096;

    fn new(size: usize) -> Payload {
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let block: Vec<u8> = (0..size + Self::WINDOWS)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b'A' + (state % 26) as u8
            })
            .collect();
        Payload {
            block: Bytes::from(block),
            size,
        }
    }

    fn value(&self, index: u64) -> Bytes {
        let start = (index as usize).wrapping_mul(31) % Self::WINDOWS;
        self.block.slice(start..start + self.size)
    }
}

/// Counts, rates and the latency histogram of one run, with the progress line.
struct Meter {
    operation: &'static str,
    start: Instant,
    records: u64,
    bytes: u64,
    latencies_us: Histogram<u64>,
    last_report: Instant,
    reported_records: u64,
    reported_bytes: u64,
    terminal: bool,
}

impl Meter {
    fn new(operation: &'static str) -> Meter {
        let now = Instant::now();
        Meter {
            operation,
            start: now,
            records: 0,
            bytes: 0,
            latencies_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("1 µs to 1 h at 3 significant digits are valid bounds"),
            last_report: now,
            reported_records: 0,
            reported_bytes: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn add(&mut self, records: u64, bytes: u64) {
        self.records += records;
        self.bytes += bytes;
    }

    fn record_latency(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latencies_us.saturating_record(micros.max(1));
    }

    /// Prints the progress line when a second has passed since the last one.
    fn maybe_report(&mut self) {
        let since = self.last_report.elapsed();
        if since < Duration::from_secs(1) {
            return;
        }
        let seconds = since.as_secs_f64();
        let records_per_sec = (self.records - self.reported_records) as f64 / seconds;
        let mb_per_sec = (self.bytes - self.reported_bytes) as f64 / BYTES_PER_MB / seconds;
        let p99 = match self.latencies_us.len() {
            0 => "-".to_string(),
            _ => format!(
                "{:.1} ms",
                self.latencies_us.value_at_quantile(0.99) as f64 / 1000.0
            ),
        };
        let line = format!(
            "{} {} records, {mb_per_sec:.2} MB/s, {records_per_sec:.0} msgs/s, p99 {p99}",
            self.operation, self.records
        );
        if self.terminal {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
        self.last_report = Instant::now();
        self.reported_records = self.records;
        self.reported_bytes = self.bytes;
    }

    /// Ends a progress line left open on a terminal.
    fn end_progress(&self) {
        if self.terminal && self.reported_records > 0 {
            eprintln!();
        }
    }

    /// Totals and latency percentiles (null without any latency sample).
    fn summary(&self, elapsed: Duration) -> Value {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let millis = |quantile: f64| self.latencies_us.value_at_quantile(quantile) as f64 / 1000.0;
        let latency = if self.latencies_us.is_empty() {
            Value::Null
        } else {
            json!({
                "p50": millis(0.5),
                "p99": millis(0.99),
                "p99_9": millis(0.999),
                "max": self.latencies_us.max() as f64 / 1000.0,
                "mean": self.latencies_us.mean() / 1000.0,
                "samples": self.latencies_us.len(),
            })
        };
        json!({
            "operation": self.operation,
            "records": self.records,
            "bytes": self.bytes,
            "elapsed_s": seconds,
            "mb_per_s": self.bytes as f64 / BYTES_PER_MB / seconds,
            "records_per_s": self.records as f64 / seconds,
            "latency_ms": latency,
        })
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// What goes to stdout: the JSON object with `--json`; otherwise nothing, and
/// the human summary is printed on stderr beside the progress lines.
fn report(result: &Value, json: bool, latency_name: &str) -> String {
    if json {
        return format!("{result}\n");
    }
    let number = |key: &str| result[key].as_f64().unwrap_or_default();
    let mut text = format!(
        "{} {} records ({:.2} MB) in {:.2} s: {:.2} MB/s, {:.0} msgs/s",
        result["operation"].as_str().unwrap_or_default(),
        result["records"],
        number("bytes") / BYTES_PER_MB,
        number("elapsed_s"),
        number("mb_per_s"),
        number("records_per_s"),
    );
    let latency = &result["latency_ms"];
    if latency.is_null() {
        text.push_str(&format!("; no {latency_name} (acks=0)"));
    } else {
        let ms = |key: &str| latency[key].as_f64().unwrap_or_default();
        text.push_str(&format!(
            "; {latency_name} p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            ms("p50"),
            ms("p99"),
            ms("p99_9"),
            ms("max"),
        ));
    }
    eprintln!("{text}");
    String::new()
}
