//! Shared harness for the end-to-end tests: start a real `strata serve` process on a
//! private data directory, and talk to it with real clients.
//!
//! - [`Broker`] spawns the binary Cargo built for this test run, waits for the
//!   `listening on 127.0.0.1:PORT` line the process contract promises on stdout (after
//!   `metrics listening on 127.0.0.1:PORT` for the metrics endpoint), and can stop it
//!   cleanly (SIGTERM), crash it (SIGKILL) and start it again on the same data
//!   directory.
//! - [`rdkafka`-based helpers](producer_config) build client configurations and
//!   produce/consume whole topics with generous timeouts (only to avoid hangs; the
//!   tests never assert on timing).
//! - [`RawClient`] speaks the Kafka wire protocol over a plain TCP socket for the
//!   bad-input tests, which need to send frames no well-behaved client would.
//!
//! Every test binary includes this module with `mod common;` and uses a subset of it.
#![allow(dead_code)]

pub mod checker;
pub mod cli;
pub mod cluster;
pub mod groups;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};

// The traits whose methods every test calls on rdkafka clients.
pub use rdkafka::consumer::Consumer;
pub use rdkafka::message::Message;
pub use rdkafka::producer::Producer;

/// How long the broker may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for any single client operation; only there so a broken broker fails
/// the test instead of hanging it.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A `strata serve` child process and the temporary directory it owns.
///
/// Layout of the temporary directory: `data/` is the broker's `--data-dir`, and
/// `stderr-<run>.log` holds the log output of each run of the process (stderr goes to a
/// file so that a chatty broker can never block on a full pipe).
pub struct Broker {
    root: tempfile::TempDir,
    settings: Vec<String>,
    /// Further `strata serve` arguments, e.g. `--config FILE`.
    extra_args: Vec<String>,
    child: Option<Child>,
    /// The started process's stdout lines, until it printed `listening on`.
    lines: Option<mpsc::Receiver<String>>,
    address: String,
    metrics_address: String,
    run: u32,
}

impl Broker {
    /// Starts a broker on a fresh temporary data directory. Each element of `settings`
    /// is a Kafka property `key=value`, passed as `--set key=value`.
    pub fn start(settings: &[&str]) -> Broker {
        let root = tempfile::Builder::new()
            .prefix("strata-e2e-")
            .tempdir()
            .expect("create a temporary directory for the broker");
        Broker::start_in(root, settings)
    }

    /// Starts a broker on an existing temporary directory, e.g. one handed back by
    /// [`Broker::into_dir`], so a test can restart with different settings.
    pub fn start_in(root: tempfile::TempDir, settings: &[&str]) -> Broker {
        Broker::start_with_args(root, settings, &[])
    }

    /// Like [`Broker::start_in`], with further command-line arguments for `strata serve`.
    pub fn start_with_args(root: tempfile::TempDir, settings: &[&str], args: &[&str]) -> Broker {
        let mut broker = Broker {
            root,
            extra_args: args.iter().map(|s| s.to_string()).collect(),
            settings: settings.iter().map(|s| s.to_string()).collect(),
            child: None,
            lines: None,
            address: String::new(),
            metrics_address: String::new(),
            run: 0,
        };
        broker.spawn();
        broker
    }

    /// Starts one broker per element of `nodes` (the settings of each) and
    /// only then waits for each to serve: the nodes of one cluster wait for
    /// each other before they print `listening on`.
    pub fn start_together(nodes: &[Vec<String>]) -> Vec<Broker> {
        let mut brokers: Vec<Broker> = nodes
            .iter()
            .map(|settings| {
                let root = tempfile::Builder::new()
                    .prefix("strata-e2e-")
                    .tempdir()
                    .expect("create a temporary directory for the broker");
                Broker::launch_in(root, settings)
            })
            .collect();
        for broker in &mut brokers {
            broker.wait_listening();
        }
        brokers
    }

    /// Starts a broker on `root` without waiting for it to serve (a node
    /// that waits for others); [`Broker::wait_listening`] waits.
    pub fn launch_in(root: tempfile::TempDir, settings: &[String]) -> Broker {
        let mut broker = Broker {
            root,
            extra_args: Vec::new(),
            settings: settings.to_vec(),
            child: None,
            lines: None,
            address: String::new(),
            metrics_address: String::new(),
            run: 0,
        };
        broker.launch();
        broker
    }

    /// Starts the process again on the same data directory with the same settings
    /// (after [`Broker::stop_sigterm`] or [`Broker::kill9`]). The port changes: create
    /// new clients from [`Broker::bootstrap`].
    pub fn restart(&mut self) {
        assert!(
            self.child.is_none(),
            "restart() called while the broker runs"
        );
        self.spawn();
    }

    /// Stops every node of a cluster (SIGTERM) and starts them all again,
    /// waiting for each to serve only once all are started.
    pub fn restart_together(brokers: &mut [Broker]) {
        for broker in brokers.iter_mut() {
            broker.stop_sigterm();
        }
        for broker in brokers.iter_mut() {
            broker.launch_again();
        }
        for broker in brokers.iter_mut() {
            broker.wait_listening();
        }
    }

    /// Starts the stopped process again without waiting for it to serve;
    /// [`Broker::wait_listening`] waits (the nodes of a cluster restart
    /// together).
    pub fn launch_again(&mut self) {
        assert!(self.child.is_none(), "the broker runs");
        self.launch();
    }

    /// Stops the process (SIGKILL if it still runs) and returns its directory.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        if self.child.is_some() {
            self.kill9();
        }
        let root = tempfile::Builder::new()
            .prefix("strata-e2e-swap-")
            .tempdir()
            .expect("create a placeholder temporary directory");
        std::mem::replace(&mut self.root, root)
    }

    /// `127.0.0.1:PORT`, as printed by the broker.
    pub fn bootstrap(&self) -> String {
        assert!(self.child.is_some(), "the broker is not running");
        self.address.clone()
    }

    /// `127.0.0.1:PORT` of the metrics endpoint (`/metrics`, `/health`), as printed by
    /// the broker.
    pub fn metrics_address(&self) -> String {
        assert!(self.child.is_some(), "the broker is not running");
        self.metrics_address.clone()
    }

    /// The `--data-dir` of the broker.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The directory of one partition's log: `<data-dir>/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.data_dir().join(format!("{topic}-{partition}"))
    }

    /// The log output (stderr) of the current or last run.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    /// Sends SIGTERM, waits for the process and asserts that it exited with status 0,
    /// as the process contract promises for a clean shutdown.
    pub fn stop_sigterm(&mut self) {
        self.stop_with(libc::SIGTERM, "SIGTERM");
    }

    /// Like [`Broker::stop_sigterm`], with SIGINT (Ctrl-C).
    pub fn stop_sigint(&mut self) {
        self.stop_with(libc::SIGINT, "SIGINT");
    }

    fn stop_with(&mut self, signal_number: libc::c_int, name: &str) {
        let mut child = self.child.take().expect("the broker is not running");
        signal(&child, signal_number);
        let status = wait_with_timeout(&mut child, TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "broker did not exit within {TIMEOUT:?} after {name}\n{}",
                self.stderr_tail()
            )
        });
        assert!(
            status.success(),
            "broker exited with {status} after {name} (expected status 0)\n{}",
            self.stderr_tail()
        );
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed by the broker) and
    /// reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the broker is not running");
        signal(&child, libc::SIGKILL);
        let _ = child.wait();
    }

    /// Stops the process where it is (SIGSTOP), as a long GC pause or a
    /// stalled VM would: connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(
            self.child.as_ref().expect("the broker is not running"),
            libc::SIGSTOP,
        );
    }

    /// Lets a paused process go on (SIGCONT).
    pub fn resume(&self) {
        signal(
            self.child.as_ref().expect("the broker is not running"),
            libc::SIGCONT,
        );
    }

    /// The broker's process id (for looking at it in /proc).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker is not running").id()
    }

    /// Whether the process is still running (used after bad input: it must not die).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.root.path().join(format!("stderr-{}.log", self.run))
    }

    /// The last lines of the broker's log, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let log = self.stderr();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(200);
        format!(
            "---- broker stderr ({}, last {} lines) ----\n{}\n---- end of broker stderr ----",
            self.stderr_path().display(),
            lines.len() - start,
            lines[start..].join("\n")
        )
    }

    fn spawn(&mut self) {
        self.launch();
        self.wait_listening();
    }

    fn launch(&mut self) {
        self.run += 1;
        let data_dir = self.data_dir();
        std::fs::create_dir_all(&data_dir).expect("create the data directory");
        let stderr = File::create(self.stderr_path()).expect("create the broker's stderr file");

        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command.arg("serve");
        // A test that sets Kafka's `listeners` tests that property instead.
        if !self.settings.iter().any(|s| s.starts_with("listeners=")) {
            command.arg("--listen").arg("127.0.0.1:0");
        }
        command
            .arg("--metrics-listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data_dir);
        for setting in &self.settings {
            command.arg("--set").arg(setting);
        }
        command.args(&self.extra_args);
        // The log goes to a file: no colour escape codes.
        command.env("NO_COLOR", "1");
        if std::env::var_os("RUST_LOG").is_none() {
            // Group requests and their answers at DEBUG: a stalled consumer
            // group is explained by the kept log of the failing test.
            command.env(
                "RUST_LOG",
                "info,openraft=warn,strata_broker::coordinator=debug",
            );
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn the strata binary");

        // Read stdout on a thread that keeps draining it for the life of the process, so
        // the broker never blocks (or gets EPIPE) writing to it.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (lines_tx, lines_rx) = mpsc::channel::<String>();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        self.child = Some(child);
        self.lines = Some(lines_rx);
    }

    /// Waits for the launched process to print `listening on`.
    pub fn wait_listening(&mut self) {
        let mut child = self.child.take().expect("launched");
        let lines_rx = self.lines.take().expect("launched");

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut seen = Vec::new();
        let mut metrics_address = None;
        let address = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match lines_rx.recv_timeout(remaining.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(address) = line.trim().strip_prefix("metrics listening on ") {
                        metrics_address = Some(address.to_string());
                    } else if let Some(address) = line.trim().strip_prefix("listening on ") {
                        break address.to_string();
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = wait_with_timeout(&mut child, Duration::from_secs(5));
                    panic!(
                        "broker closed stdout before printing `listening on` (exit status {status:?}); \
                         stdout so far: {seen:?}\n{}",
                        self.stderr_tail()
                    );
                }
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not print `listening on 127.0.0.1:PORT` within {STARTUP_TIMEOUT:?}; \
                     stdout so far: {seen:?}\n{}",
                    self.stderr_tail()
                );
            }
        };
        assert!(
            address.starts_with("127.0.0.1:")
                && address["127.0.0.1:".len()..].parse::<u16>().is_ok(),
            "unexpected listening line `listening on {address}`"
        );
        let Some(metrics_address) = metrics_address else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no `metrics listening on` line before `listening on`; stdout: {seen:?}");
        };
        self.address = address;
        self.metrics_address = metrics_address;
        self.child = Some(child);
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("{}", self.stderr_tail());
            self.keep_logs();
        }
    }
}

impl Broker {
    /// Copies every run's log of a failing test to
    /// `target/tmp/failed-broker-logs/<test>-<pid>-<dir>/`, which outlives the
    /// temporary directory, and says where.
    fn keep_logs(&self) {
        let test = thread::current()
            .name()
            .unwrap_or("unnamed")
            .replace("::", "-");
        let dir_name = self.root.path().file_name().unwrap_or_default();
        let kept = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("failed-broker-logs")
            .join(format!(
                "{test}-{}-{}",
                std::process::id(),
                dir_name.to_string_lossy()
            ));
        if std::fs::create_dir_all(&kept).is_err() {
            return;
        }
        for run in 1..=self.run {
            let name = format!("stderr-{run}.log");
            let _ = std::fs::copy(self.root.path().join(&name), kept.join(&name));
        }
        eprintln!("broker logs kept in {}", kept.display());
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits in pid_t");
    // SAFETY: kill(2) with the pid of a child we have not reaped yet: the pid cannot have
    // been reused by another process.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The repository root (where Cargo.toml of the root package lives).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A topic name unique within this test process, so tests sharing a broker never collide.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------------
// rdkafka helpers
// ---------------------------------------------------------------------------------------

/// A client configuration every test client shares.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "30000");
    config
}

/// A producer configuration: acks=all, idempotence off (so the tests do not depend on
/// InitProducerId), a one minute delivery timeout.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5");
    config
}

/// A consumer configuration for [`assign`](Consumer::assign)-based consumption: librdkafka
/// needs a group.id for assign(), but nothing is committed and no group is joined.
pub fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", unique_topic("e2e-group"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    config
}

/// A message as the tests compare it: partition, offset, key, value, headers, timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Received {
    pub fn from_message<M: Message>(message: &M) -> Received {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Received {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            headers,
            timestamp: message.timestamp().to_millis(),
        }
    }

    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// Delivery reports collected by a [`TestProducer`]: librdkafka reports failed
/// deliveries only there, so the tests check them after every flush.
#[derive(Clone, Default)]
pub struct DeliveryLog {
    reports: Arc<Mutex<DeliveryReports>>,
}

#[derive(Clone, Debug, Default)]
pub struct DeliveryReports {
    /// (partition, offset) of each acknowledged message, in report order.
    pub delivered: Vec<(i32, i64)>,
    /// The error of each failed delivery.
    pub errors: Vec<String>,
}

impl DeliveryLog {
    pub fn reports(&self) -> DeliveryReports {
        self.reports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl ClientContext for DeliveryLog {}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut reports = self
            .reports
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match result {
            Ok(message) => reports
                .delivered
                .push((message.partition(), message.offset())),
            Err((error, _)) => reports.errors.push(error.to_string()),
        }
    }
}

/// A producer that polls its own delivery reports on a background thread.
pub type TestProducer = ThreadedProducer<DeliveryLog>;

pub fn create_producer(config: &ClientConfig) -> TestProducer {
    config
        .create_with_context(DeliveryLog::default())
        .expect("create an rdkafka producer")
}

/// Flushes and asserts that no delivery failed so far.
pub fn flush_and_check(producer: &TestProducer) {
    producer
        .flush(TIMEOUT)
        .expect("flush: every message should be acknowledged");
    assert_eq!(
        producer.in_flight_count(),
        0,
        "messages still in flight after flush"
    );
    let errors = producer.context().reports().errors;
    assert!(
        errors.is_empty(),
        "{} deliveries failed, first ones: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
}

/// Sends `values` to `topic` (partition `partition`, or the partitioner's choice when
/// `None`), then flushes and asserts that every message was acknowledged.
pub fn produce_values(
    producer: &TestProducer,
    topic: &str,
    partition: Option<i32>,
    values: &[String],
) {
    for value in values {
        let mut record = BaseRecord::<(), str>::to(topic).payload(value.as_str());
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        send_with_retry(producer, record);
    }
    flush_and_check(producer);
}

/// Enqueues a record, waiting while the local producer queue is full.
pub fn send_with_retry<'a, K, P>(producer: &TestProducer, mut record: BaseRecord<'a, K, P>)
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                r,
            )) if Instant::now() < deadline => {
                record = r;
                thread::sleep(Duration::from_millis(10));
            }
            Err((error, _)) => panic!("producer.send failed: {error}"),
        }
    }
}

/// Produces `count` messages `"<prefix>-<i>"` to one partition and flushes.
pub fn produce_numbered(
    producer: &TestProducer,
    topic: &str,
    partition: i32,
    prefix: &str,
    count: usize,
) -> Vec<String> {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    produce_values(producer, topic, Some(partition), &values);
    values
}

/// Creates an assign()-based consumer positioned at `offset` of each listed partition.
pub fn assigned_consumer(
    bootstrap: &str,
    topic: &str,
    partitions: &[(i32, Offset)],
) -> BaseConsumer {
    assigned_consumer_with(&consumer_config(bootstrap), topic, partitions)
}

pub fn assigned_consumer_with(
    config: &ClientConfig,
    topic: &str,
    partitions: &[(i32, Offset)],
) -> BaseConsumer {
    let consumer: BaseConsumer = config.create().expect("create an rdkafka consumer");
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in partitions {
        assignment
            .add_partition_offset(topic, *partition, *offset)
            .expect("valid partition offset");
    }
    consumer.assign(&assignment).expect("assign partitions");
    consumer
}

/// Polls until `count` messages arrived (or fails after [`TIMEOUT`] with what it got).
pub fn consume_n(consumer: &BaseConsumer, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + TIMEOUT;
    let mut received = Vec::with_capacity(count);
    let mut errors = Vec::new();
    while received.len() < count {
        if Instant::now() >= deadline {
            panic!(
                "consumed only {} of {count} messages within {TIMEOUT:?}; last: {:?}; errors: {errors:?}",
                received.len(),
                received.last()
            );
        }
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => received.push(Received::from_message(&message)),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(error)) => {
                if errors.len() < 20 {
                    errors.push(error.to_string());
                }
            }
        }
    }
    received
}

/// Reads `count` messages of one partition from the beginning.
pub fn consume_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    count: usize,
) -> Vec<Received> {
    let consumer = assigned_consumer(bootstrap, topic, &[(partition, Offset::Beginning)]);
    consume_n(&consumer, count)
}

/// Asserts that `received` holds exactly `expected` in order, at offsets 0, 1, 2, ...
pub fn assert_values_in_order(received: &[Received], expected: &[String]) {
    assert_eq!(received.len(), expected.len(), "number of messages");
    for (i, (message, value)) in received.iter().zip(expected).enumerate() {
        assert_eq!(
            message.value.as_deref(),
            Some(value.as_bytes()),
            "value of message #{i} (offset {})",
            message.offset
        );
        assert_eq!(message.offset, i as i64, "offset of message #{i}");
    }
}

/// The high watermark of a partition, as a client sees it.
pub fn high_watermark(bootstrap: &str, topic: &str, partition: i32) -> i64 {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .create()
        .expect("create an rdkafka consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .expect("fetch_watermarks");
    high
}

/// Waits until the broker reports the topic in metadata with `partitions` partitions.
pub fn wait_for_topic(bootstrap: &str, topic: &str, partitions: usize) {
    let consumer: BaseConsumer = client_config(bootstrap)
        .create()
        .expect("create an rdkafka client");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10));
        if let Ok(metadata) = &metadata {
            if let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) {
                if t.error().is_none() && t.partitions().len() == partitions {
                    return;
                }
            }
        }
        if Instant::now() >= deadline {
            panic!("topic {topic} with {partitions} partitions not in metadata: {metadata:?}");
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that a freshly created rdkafka client can fetch cluster metadata listing
/// broker 1 (used after bad input: the broker must keep serving other clients).
pub fn assert_serves_metadata(bootstrap: &str) {
    let consumer: BaseConsumer = client_config(bootstrap)
        .create()
        .expect("create an rdkafka client");
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata request from a new client");
    assert!(
        metadata.brokers().iter().any(|b| b.id() == 1),
        "broker 1 missing from metadata"
    );
}

// ---------------------------------------------------------------------------------------
// Raw wire-protocol client
// ---------------------------------------------------------------------------------------

/// A Kafka client for tests, over `strata-client`'s connection: sends
/// requests at any version, or frames and bytes of any shape, and panics on
/// what a test does not expect.
pub struct RawClient {
    client: strata_client::blocking::Client,
}

pub use strata_client::RawReply;

impl RawClient {
    /// Connects without sending anything (the test sends what it wants
    /// first).
    pub fn connect(bootstrap: &str) -> RawClient {
        let options = strata_client::Options {
            client_id: "strata-e2e".to_string(),
            io_timeout: TIMEOUT,
            ..Default::default()
        };
        let client = strata_client::blocking::Client::connect_raw(bootstrap, options)
            .expect("connect to the broker");
        RawClient { client }
    }

    /// Encodes a request header (the version the API key and version demand) followed
    /// by `body` encoded at `version`.
    pub fn encode_request<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> (i32, BytesMut) {
        self.client
            .encode(api_key, version, body)
            .expect("encode the request")
    }

    /// Sends a request and decodes the response as `R` at `version`.
    pub fn request<T: Encodable, R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> R {
        self.client
            .request_at(api_key, version, body)
            .unwrap_or_else(|e| panic!("{api_key:?} v{version}: {e}"))
    }

    /// Writes a 4-byte big-endian size followed by `frame`. A write error (the
    /// broker already closed) is ignored: the reply tells what happened.
    pub fn send_frame(&mut self, frame: &[u8]) {
        let _ = self.client.send_frame(frame);
    }

    /// Writes bytes as they are; a write error is ignored, as above.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.client.send_raw(bytes);
    }

    /// Reads one size-prefixed response, or notices that the connection was closed.
    pub fn read_reply(&mut self, response_header_version: i16) -> RawReply {
        self.client
            .read_reply(response_header_version)
            .unwrap_or_else(|e| panic!("reading a response: {e}"))
    }

    /// Asserts that the broker closes the connection (possibly after answering with
    /// nothing): reads until EOF.
    pub fn assert_closed(&mut self, what: &str) {
        if let Err(error) = self.client.read_until_closed() {
            panic!("{what}: {error}; Kafka closes the connection");
        }
    }
}

/// A request header with client id `strata-e2e`.
pub fn request_header(api_key: i16, version: i16, correlation_id: i32) -> RequestHeader {
    let mut header = RequestHeader::default();
    header.request_api_key = api_key;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("strata-e2e"));
    header.unknown_tagged_fields = BTreeMap::new();
    header
}

/// Reads an i16 error code at the front of a buffer (ApiVersions v0 responses).
pub fn peek_i16(body: &Bytes) -> i16 {
    let mut b = body.clone();
    b.get_i16()
}

/// Truncates a file by `bytes` bytes at its end.
pub fn cut_tail(path: &Path, bytes: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let length = file.metadata().expect("metadata").len();
    assert!(length > bytes, "{} has only {length} bytes", path.display());
    file.set_len(length - bytes).expect("truncate the segment");
}

/// Appends `bytes` to a file.
pub fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.write_all(bytes).expect("append to the segment");
}

/// The segment `.log` files (`NNNNNNNNNNNNNNNNNNNN.log`) of a partition directory, in
/// base offset order.
pub fn segment_files(partition_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(partition_dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", partition_dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "log")
                && path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| s.len() == 20 && s.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    segments.sort();
    segments
}

/// The active (highest base offset) segment `.log` file of a partition directory.
pub fn active_segment(partition_dir: &Path) -> PathBuf {
    segment_files(partition_dir).pop().unwrap_or_else(|| {
        panic!(
            "no NNNNNNNNNNNNNNNNNNNN.log segment in {}",
            partition_dir.display()
        )
    })
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Admin helpers
// ---------------------------------------------------------------------------------------

pub type TestAdmin = rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext>;

pub fn admin_client(bootstrap: &str) -> TestAdmin {
    client_config(bootstrap)
        .create()
        .expect("create an rdkafka admin client")
}

/// Admin options with a request and operation timeout of [`TIMEOUT`].
pub fn admin_options() -> rdkafka::admin::AdminOptions {
    rdkafka::admin::AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// Runs an rdkafka admin future to completion on a private single-threaded runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a tokio runtime")
        .block_on(future)
}

/// DeleteRecords through rdkafka's admin client; the per-partition results.
pub fn delete_records(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> TopicPartitionList {
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(topic, partition, offset)
        .expect("valid partition offset");
    block_on(admin_client(bootstrap).delete_records(&offsets, &admin_options()))
        .expect("DeleteRecords request")
}

/// Creates a topic (replication factor 1) with topic configs, asserts success, and waits
/// until metadata shows it.
pub fn create_topic_with(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    use rdkafka::admin::{NewTopic, TopicReplication};
    let admin = admin_client(bootstrap);
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = block_on(admin.create_topics([&new_topic], &admin_options()))
        .expect("CreateTopics request");
    assert_eq!(results.len(), 1);
    if let Err((name, code)) = &results[0] {
        panic!("creating topic {name} failed: {code:?}");
    }
    wait_for_topic(bootstrap, topic, partitions as usize);
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    create_topic_with(bootstrap, topic, partitions, &[]);
}

// ---------------------------------------------------------------------------------------
// Clusters of several nodes
// ---------------------------------------------------------------------------------------

/// Ports for the controller listeners, which every node must know before
/// any starts (their client ports are picked by the kernel).
pub fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The settings of `count` combined nodes of one quorum, node ids 1..=count.
pub fn cluster_settings(count: usize) -> Vec<Vec<String>> {
    let ports = free_ports(count);
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            vec![
                format!("node.id={}", i + 1),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!("listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{port}"),
                "controller.listener.names=CONTROLLER".to_string(),
                "controller.quorum.election.timeout.ms=300".to_string(),
            ]
        })
        .collect()
}

/// The settings of `count` combined nodes whose controller listeners are
/// `ports`, node `i` reaching voter `v` at `address(i, v)` (node ids from 1).
pub fn cluster_settings_via(
    ports: &[u16],
    address: impl Fn(usize, usize) -> String,
) -> Vec<Vec<String>> {
    (1..=ports.len())
        .map(|node| {
            let voters: Vec<String> = (1..=ports.len())
                .map(|voter| format!("{voter}@{}", address(node, voter)))
                .collect();
            vec![
                format!("node.id={node}"),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!(
                    "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                    ports[node - 1]
                ),
                "controller.listener.names=CONTROLLER".to_string(),
                "controller.quorum.election.timeout.ms=300".to_string(),
            ]
        })
        .collect()
}

/// A fault-injecting TCP proxy on loopback: forwards every connection to a
/// port, or, once told to, swallows every byte in both directions while
/// keeping the connections open (a black hole: peers time out rather than
/// being refused). Stops with its value.
pub struct FaultProxy {
    pub port: u16,
    black_hole: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FaultProxy {
    pub fn start(target: u16) -> FaultProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let black_hole = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (hole, stopped) = (black_hole.clone(), stop.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (hole, stopped) = (hole.clone(), stopped.clone());
                    thread::spawn(move || pump(from, to, &hole, &stopped));
                }
            }
        });
        FaultProxy {
            port,
            black_hole,
            stop,
        }
    }

    /// From now on every byte either way is dropped.
    pub fn black_hole(&self) {
        self.black_hole
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Forwards again.
    pub fn heal(&self) {
        self.black_hole
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wakes the accepting thread so that it sees the stop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until either closes or the proxy stops; drops what
/// it reads while `black_hole` is set.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    black_hole: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buffer = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) if !black_hole.load(Ordering::Relaxed) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(std::net::Shutdown::Both);
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// InitProducerId without a transactional id: a fresh producer id and epoch.
pub fn init_producer_id(client: &mut RawClient) -> (i64, i16) {
    let version = client.negotiate(kafka_protocol::messages::ApiKey::InitProducerId, 5);
    let request = kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(kafka_protocol::messages::ProducerId(-1))
        .with_producer_epoch(-1);
    let response: kafka_protocol::messages::InitProducerIdResponse = client.request(
        kafka_protocol::messages::ApiKey::InitProducerId,
        version,
        &request,
    );
    assert_eq!(response.error_code, 0, "InitProducerId error code");
    assert!(
        response.producer_id.0 >= 0,
        "producer id {:?}",
        response.producer_id
    );
    (response.producer_id.0, response.producer_epoch)
}

// ---------------------------------------------------------------------------------------
// HTTP (the metrics endpoint)
// ---------------------------------------------------------------------------------------

/// An HTTP response: status code and body.
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 GET (or another method) to `address`, `Connection: close`, read to the
/// end. Enough for the broker's endpoint and Prometheus' API; no client crate needed.
pub fn http(address: &str, method: &str, target: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(address)
        .unwrap_or_else(|e| panic!("connect to {address} for {method} {target}: {e}"));
    stream.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read the response to {method} {target}: {e}"));
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in the response to {target}: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    HttpResponse {
        status,
        body: body.to_string(),
    }
}

pub fn get_ok(address: &str, target: &str) -> String {
    let response = http(address, "GET", target);
    assert_eq!(response.status, 200, "GET {target}: {}", response.body);
    response.body
}

/// The value of the sample whose line starts with `series` (name and labels exactly as
/// the broker writes them).
pub fn sample(exposition: &str, series: &str) -> Option<f64> {
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

// ---------------------------------------------------------------------------------------
// Raw requests
// ---------------------------------------------------------------------------------------

/// Encodes exactly one uncompressed v2 record batch (magic 2) holding `values`, with
/// relative offsets 0.. and the given timestamp for every record.
pub fn encode_batch(values: &[&[u8]], timestamp: i64) -> BytesMut {
    encode_idempotent_batch(values, timestamp, -1, -1, -1)
}

/// Like [`encode_batch`], with an idempotent producer's id, epoch and base sequence
/// (all -1 for a plain producer).
pub fn encode_idempotent_batch(
    values: &[&[u8]],
    timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> BytesMut {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // kafka-protocol starts a new batch whenever `offset - sequence` changes;
            // this keeps it constant, and the batch's base sequence is `base_sequence`.
            sequence: base_sequence.wrapping_add(i as i32),
            timestamp,
            key: None,
            value: Some(Bytes::copy_from_slice(value)),
            headers: Default::default(),
        })
        .collect();
    let mut buffer = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buffer,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode a record batch");
    let batch_length = i32::from_be_bytes([buffer[8], buffer[9], buffer[10], buffer[11]]);
    assert_eq!(
        batch_length as usize + 12,
        buffer.len(),
        "encode_batch must produce exactly one batch"
    );
    buffer
}

/// The current time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

impl RawClient {
    /// ApiVersions v3 (what librdkafka sends first).
    pub fn api_versions(&mut self) -> kafka_protocol::messages::ApiVersionsResponse {
        use kafka_protocol::messages::ApiVersionsRequest;
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strata-e2e"))
            .with_client_software_version(StrBytes::from_static_str("0.1.0"));
        self.request(ApiKey::ApiVersions, 3, &request)
    }

    /// The highest version of `api_key` both the broker (per ApiVersions) and the
    /// kafka-protocol crate support, capped at `cap`.
    pub fn negotiate(&mut self, api_key: ApiKey, cap: i16) -> i16 {
        let response = self.api_versions();
        assert_eq!(response.error_code, 0, "ApiVersions error code");
        let advertised = response
            .api_keys
            .iter()
            .find(|k| k.api_key == api_key as i16)
            .unwrap_or_else(|| panic!("the broker does not advertise {api_key:?}"));
        let ours = api_key.valid_versions();
        let version = advertised.max_version.min(ours.max).min(cap);
        assert!(
            version >= advertised.min_version.max(ours.min),
            "no common version for {api_key:?}: broker {}..={}, kafka-protocol {}..={}",
            advertised.min_version,
            advertised.max_version,
            ours.min,
            ours.max
        );
        version
    }

    /// Sends a Produce request (acks=all) with `records` for one partition and returns
    /// that partition's (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
        self.produce_with(topic, partition, records, -1, 30_000)
    }

    /// [`produce`](Self::produce) with the given acks and timeout.
    pub fn produce_with(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
        acks: i16,
        timeout_ms: i32,
    ) -> (i16, i64) {
        use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
        use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
        // v13 names topics by id; the tests name them.
        let version = self.negotiate(ApiKey::Produce, 12);
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(records))])]);
        let response: ProduceResponse = self.request(ApiKey::Produce, version, &request);
        let partition_response = response
            .responses
            .iter()
            .find(|t| t.name.0.as_str() == topic)
            .and_then(|t| t.partition_responses.iter().find(|p| p.index == partition))
            .unwrap_or_else(|| panic!("no response for {topic}-{partition}: {response:?}"));
        (
            partition_response.error_code,
            partition_response.base_offset,
        )
    }
}

// ---------------------------------------------------------------------------------------
// External client programs (kcat, kafka-python)
// ---------------------------------------------------------------------------------------

/// What an external command did.
#[derive(Debug)]
pub struct CommandOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CommandOutput {
    /// A description for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit status: {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs a command with `stdin` as its standard input, killing it after [`TIMEOUT`].
pub fn run_command(command: &mut Command, stdin: &[u8]) -> CommandOutput {
    run_command_within(command, stdin, TIMEOUT)
}

/// [`run_command`] with its own deadline, for commands that wait on several
/// [`TIMEOUT`]-bounded steps of their own and should report which one failed.
pub fn run_command_within(command: &mut Command, stdin: &[u8], timeout: Duration) -> CommandOutput {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let out_reader = thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stdout.read_to_end(&mut buffer);
        buffer
    });
    let err_reader = thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr.read_to_end(&mut buffer);
        buffer
    });
    let status = match wait_with_timeout(&mut child, timeout) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed command");
            let stdout = out_reader.join().unwrap_or_default();
            let stderr = err_reader.join().unwrap_or_default();
            panic!(
                "{command:?} did not finish within {timeout:?} ({status})\n---- stdout ----\n{}\n---- stderr ----\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    };
    let _ = writer.join();
    CommandOutput {
        status,
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Consumer groups through librdkafka
// ---------------------------------------------------------------------------------------

/// A subscribe-style librdkafka consumer in `group` (client id `client_id`) that
/// commits only when told to and starts from the earliest offset.
pub fn group_member(bootstrap: &str, group: &str, client_id: &str, topic: &str) -> BaseConsumer {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer = config.create().expect("create a group consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    consumer
}

/// Polls `consumer` until it holds `partitions` partitions.
pub fn poll_until_assigned(consumer: &BaseConsumer, partitions: usize) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let _ = consumer.poll(Duration::from_millis(100));
        let assignment = consumer.assignment().expect("assignment");
        if assignment.count() == partitions {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no assignment of {partitions} partitions within {TIMEOUT:?}: {assignment:?}"
        );
    }
}

/// Commits partition → offset of `topic` for `group` from outside the group
/// (an assign()-style consumer: no member id, no generation).
pub fn commit_outside_group(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    use rdkafka::consumer::CommitMode;
    let mut config = consumer_config(bootstrap);
    config.set("group.id", group);
    let consumer: BaseConsumer = config.create().expect("create a consumer");
    let list = partition_offsets(topic, offsets);
    consumer.assign(&list).expect("assign");
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

/// Commits partition → offset of `topic` as `member`, a consumer in the group
/// that holds those partitions (OffsetCommit with its member id and generation).
pub fn commit_as_member(member: &BaseConsumer, topic: &str, offsets: &[(i32, i64)]) {
    member
        .commit(
            &partition_offsets(topic, offsets),
            rdkafka::consumer::CommitMode::Sync,
        )
        .expect("commit as a member");
}

/// partition → offset of `topic` as a librdkafka partition list.
pub fn partition_offsets(topic: &str, offsets: &[(i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .expect("valid offset");
    }
    list
}

/// `group`'s committed offset of each of `partitions` of `topic`, as librdkafka's
/// OffsetFetch reads it (`Offset::Invalid` where there is none).
pub fn committed_offsets_of(
    bootstrap: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Vec<Offset> {
    let mut config = consumer_config(bootstrap);
    config.set("group.id", group);
    let consumer: BaseConsumer = config.create().expect("create a consumer");
    let mut wanted = TopicPartitionList::new();
    for &partition in partitions {
        wanted.add_partition(topic, partition);
    }
    let list = consumer
        .committed_offsets(wanted, TIMEOUT)
        .expect("committed_offsets");
    partitions
        .iter()
        .map(|&partition| {
            list.find_partition(topic, partition)
                .unwrap_or_else(|| panic!("{topic}-{partition} missing from {list:?}"))
                .offset()
        })
        .collect()
}
