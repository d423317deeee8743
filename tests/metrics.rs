//! The metrics endpoint end to end: a real broker, real librdkafka clients, and a real
//! Prometheus server (Debian's `prometheus` package, which tools/test.sh installs)
//! scraping it.
//!
//! - Prometheus, started on a private data directory with a generated scrape config
//!   (1 s interval), must see the exact count of the messages produced to a topic, under
//!   that topic's label, through its own query API.
//! - `/metrics` read directly has the families operators rely on; `/health` answers;
//!   garbage sent to the endpoint neither crashes the broker nor stops the endpoint.
//! - Deleting a topic removes every series that names it.
//!
//! No assertion is about time: every wait polls until a generous deadline.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;

/// How long Prometheus may take to start, scrape and answer with the expected value.
const PROMETHEUS_DEADLINE: Duration = Duration::from_secs(120);

/// Produces `count` keyed messages to `topic` with librdkafka and waits for every ack.
fn produce_keyed(bootstrap: &str, topic: &str, count: usize) {
    let producer = create_producer(&producer_config(bootstrap));
    for i in 0..count {
        let key = format!("key-{}", i % 7);
        let value = format!("value-{i}");
        send_with_retry(
            &producer,
            BaseRecord::to(topic)
                .key(key.as_str())
                .payload(value.as_str()),
        );
    }
    flush_and_check(&producer);
}

// ---------------------------------------------------------------------------------------
// A real Prometheus server
// ---------------------------------------------------------------------------------------

/// A `prometheus` process on 127.0.0.1 (a port it picks itself), with its config, TSDB
/// and log in a temporary directory. Killed, and the directory removed, on drop.
struct Prometheus {
    child: Child,
    root: tempfile::TempDir,
    address: String,
}

/// The `prometheus` binary on PATH; a clear failure where it is missing.
fn prometheus_binary() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("prometheus"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the `prometheus` binary is not on PATH: these tests scrape the broker with a \
                 real Prometheus server. Run tools/test.sh (it installs the Debian package \
                 `prometheus`) or `apt-get install prometheus`."
            )
        })
}

impl Prometheus {
    /// Starts `binary` scraping `target` (HOST:PORT) every second.
    fn start(binary: PathBuf, target: &str) -> Prometheus {
        let root = tempfile::Builder::new()
            .prefix("strata-prometheus-")
            .tempdir()
            .expect("a temporary directory for Prometheus");
        let config = root.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: strata\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write the scrape config");
        let log = File::create(root.path().join("prometheus.log")).expect("create the log file");
        // Our own process and flags: the Debian package's service (if any runs) and its
        // /etc/prometheus config play no part.
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                root.path().join("tsdb").display()
            ))
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn prometheus");
        let mut prometheus = Prometheus {
            child,
            root,
            address: String::new(),
        };
        prometheus.address = prometheus.wait_for_address();
        prometheus.wait_until_ready();
        prometheus
    }

    /// Polls `/-/ready`: the web listener is up (and answers 503) before the TSDB is.
    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + PROMETHEUS_DEADLINE;
        while http(&self.address, "GET", "/-/ready").status != 200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status} before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready within {PROMETHEUS_DEADLINE:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bound address from the log line `msg="Listening on" address=127.0.0.1:PORT`.
    fn wait_for_address(&mut self) -> String {
        let deadline = Instant::now() + PROMETHEUS_DEADLINE;
        loop {
            let log = self.log();
            let address = log
                .lines()
                .filter(|line| line.contains("msg=\"Listening on\""))
                .find_map(|line| line.split("address=").nth(1))
                .map(|rest| {
                    rest.split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string()
                });
            if let Some(address) = address {
                return address;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("prometheus exited with {status} before listening\n{log}");
            }
            assert!(
                Instant::now() < deadline,
                "prometheus did not log its address within {PROMETHEUS_DEADLINE:?}\n{log}"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant PromQL query and returns the JSON answer.
    fn query(&self, promql: &str) -> serde_json::Value {
        let target = format!("/api/v1/query?query={}", percent_encode(promql));
        let response = http(&self.address, "GET", &target);
        serde_json::from_str(&response.body).unwrap_or_else(|e| {
            panic!(
                "Prometheus answered {} with non-JSON ({e}): {}",
                response.status, response.body
            )
        })
    }

    /// The value of the single series `promql` selects, once there is one.
    fn single_value(&self, promql: &str) -> Option<f64> {
        let answer = self.query(promql);
        let results = answer["data"]["result"].as_array()?;
        match results.as_slice() {
            [series] => series["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// Polls `promql` until `accept` takes its value; the last value seen otherwise.
    fn wait_for(&self, promql: &str, accept: impl Fn(f64) -> bool) -> Result<f64, Option<f64>> {
        let deadline = Instant::now() + PROMETHEUS_DEADLINE;
        let mut last = None;
        while Instant::now() < deadline {
            last = self.single_value(promql);
            if let Some(value) = last.filter(|&v| accept(v)) {
                return Ok(value);
            }
            thread::sleep(Duration::from_millis(250));
        }
        Err(last)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- prometheus log ----\n{}", self.log());
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn prometheus_scrapes_the_messages_produced_to_a_topic() {
    let binary = prometheus_binary();
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("scraped");
    create_topic(&bootstrap, &topic, 3);
    const MESSAGES: usize = 250;
    produce_keyed(&bootstrap, &topic, MESSAGES);

    let prometheus = Prometheus::start(binary, &broker.metrics_address());
    let up = prometheus.wait_for(r#"up{job="strata"}"#, |v| v == 1.0);
    assert_eq!(
        up,
        Ok(1.0),
        "Prometheus never scraped the broker successfully"
    );

    let messages = format!(r#"strata_topic_produced_messages_total{{topic="{topic}"}}"#);
    let seen = prometheus.wait_for(&messages, |v| v >= MESSAGES as f64);
    assert_eq!(
        seen,
        Ok(MESSAGES as f64),
        "{messages} in Prometheus: every produced message, exactly once"
    );
    let bytes = format!(r#"strata_topic_produced_bytes_total{{topic="{topic}"}}"#);
    let seen = prometheus.wait_for(&bytes, |v| v > 0.0);
    assert!(seen.is_ok(), "{bytes} in Prometheus: {seen:?}");
    // The partitions' offsets add up to the same count.
    let end_offsets = format!(r#"sum(strata_partition_log_end_offset{{topic="{topic}"}})"#);
    let seen = prometheus.wait_for(&end_offsets, |v| v >= MESSAGES as f64);
    assert_eq!(seen, Ok(MESSAGES as f64), "{end_offsets}");
}

#[test]
fn the_endpoint_serves_metrics_and_health_and_survives_garbage() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let metrics = broker.metrics_address();
    let topic = unique_topic("direct");
    create_topic(&bootstrap, &topic, 2);
    produce_keyed(&bootstrap, &topic, 20);
    let consumer = assigned_consumer(
        &bootstrap,
        &topic,
        &[(0, Offset::Beginning), (1, Offset::Beginning)],
    );
    assert_eq!(consume_n(&consumer, 20).len(), 20);
    // A produce to a partition that does not exist: an error code to count.
    let mut raw = RawClient::connect(&bootstrap);
    let (code, _) = raw.produce(
        &topic,
        99,
        Bytes::from(encode_batch(&[b"x"], now_ms()).to_vec()),
    );
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let text = get_ok(&metrics, "/metrics");
    assert_eq!(
        sample(
            &text,
            &format!(r#"strata_topic_produced_messages_total{{topic="{topic}"}}"#)
        ),
        Some(20.0),
        "{text}"
    );
    let fetched = sample(
        &text,
        &format!(r#"strata_topic_fetched_bytes_total{{topic="{topic}"}}"#),
    );
    assert!(
        fetched.is_some_and(|b| b > 0.0),
        "bytes out: {fetched:?}\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"strata_request_errors_total{api="Produce",error="UNKNOWN_TOPIC_OR_PARTITION"}"#
        ),
        Some(1.0),
        "{text}"
    );
    for family in [
        "strata_requests_total{api=\"Produce\",version=",
        "strata_requests_total{api=\"Fetch\",version=",
        "strata_request_duration_seconds_bucket{le=\"+Inf\",api=\"Produce\"}",
        &format!("strata_partition_log_end_offset{{topic=\"{topic}\",partition=\"1\"}}"),
        &format!("strata_partition_log_start_offset{{topic=\"{topic}\",partition=\"0\"}}"),
        &format!("strata_partition_high_watermark{{topic=\"{topic}\",partition=\"0\"}}"),
        &format!("strata_partition_size_bytes{{topic=\"{topic}\",partition=\"0\"}}"),
        &format!("strata_partition_segments{{topic=\"{topic}\",partition=\"0\"}}"),
        "strata_connections_active ",
        "strata_connections_accepted_total ",
        "strata_purgatory_requests{operation=\"fetch\"}",
        "strata_build_info{version=",
        "process_resident_memory_bytes ",
        "process_cpu_seconds_total ",
        "process_open_fds ",
    ] {
        assert!(text.contains(family), "no {family} in /metrics:\n{text}");
    }
    // The metadata log and image: this node is the active controller of a
    // quorum of one, and its registration and the topic are in the log.
    assert_eq!(
        sample(&text, "strata_controller_active"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "strata_brokers_active"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "strata_offline_partitions"),
        Some(0.0),
        "{text}"
    );
    let metadata_end = sample(&text, "strata_metadata_log_end_offset");
    assert!(metadata_end.is_some_and(|end| end >= 4.0), "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    assert_eq!(get_ok(&metrics, "/health"), "ok\n");
    assert_eq!(get_ok(&metrics, "/health/ready"), "ok\n");
    assert_eq!(get_ok(&metrics, "/health/live"), "ok\n");
    assert_eq!(http(&metrics, "GET", "/nope").status, 404);
    assert_eq!(http(&metrics, "POST", "/metrics").status, 405);

    // Garbage: binary junk, a request line without a version, a head that never ends,
    // and a connection closed half-way through a request.
    for junk in [
        b"\x00\xff\x13\x37 not http at all\r\n\r\n".to_vec(),
        b"GET /metrics\r\n\r\n".to_vec(),
        vec![b'A'; 64 << 10],
        b"GET /metr".to_vec(),
    ] {
        let mut stream = TcpStream::connect(&metrics).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("set timeout");
        let _ = stream.write_all(&junk);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "junk gets 400 or a closed connection, not {answer:?}"
        );
    }
    assert!(broker.is_running(), "the broker survived the garbage");
    assert_eq!(get_ok(&metrics, "/health"), "ok\n");
    assert_serves_metadata(&bootstrap);
}

#[test]
fn deleting_a_topic_removes_its_series() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let metrics = broker.metrics_address();
    let kept = unique_topic("kept");
    let deleted = unique_topic("deleted");
    create_topic(&bootstrap, &kept, 1);
    create_topic(&bootstrap, &deleted, 2);
    produce_keyed(&bootstrap, &kept, 5);
    produce_keyed(&bootstrap, &deleted, 5);
    let label = format!("topic=\"{deleted}\"");
    let text = get_ok(&metrics, "/metrics");
    assert!(
        text.contains(&label),
        "{label} before the deletion:\n{text}"
    );

    let admin = admin_client(&bootstrap);
    let results = block_on(admin.delete_topics(&[deleted.as_str()], &admin_options()))
        .expect("DeleteTopics request");
    assert_eq!(results, vec![Ok(deleted.clone())]);

    let text = get_ok(&metrics, "/metrics");
    let left: Vec<&str> = text.lines().filter(|l| l.contains(&label)).collect();
    assert!(
        left.is_empty(),
        "series of the deleted topic remain: {left:#?}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"strata_topic_produced_messages_total{{topic="{kept}"}}"#)
        ),
        Some(5.0),
        "the other topic is untouched\n{text}"
    );
}

#[test]
fn group_members_committed_offsets_and_lag_are_exported() {
    let broker = Broker::start(&["group.initial.rebalance.delay.ms=0"]);
    let bootstrap = broker.bootstrap();
    let metrics = broker.metrics_address();
    let topic = unique_topic("lagging");
    let active = unique_topic("active-group");
    let idle = unique_topic("idle-group");
    create_topic(&bootstrap, &topic, 2);
    let producer = create_producer(&producer_config(&bootstrap));
    produce_numbered(&producer, &topic, 0, "p0", 10);
    produce_numbered(&producer, &topic, 1, "p1", 4);
    // One group with a member, one with only committed offsets.
    let member = group_member(&bootstrap, &active, "metrics-test", &topic);
    poll_until_assigned(&member, 2);
    commit_outside_group(&bootstrap, &idle, &topic, &[(0, 3), (1, 4)]);

    let text = get_ok(&metrics, "/metrics");
    let members = format!("strata_consumer_group_members{{group=\"{active}\"}}");
    assert_eq!(sample(&text, &members), Some(1.0), "{members} in:\n{text}");
    assert_eq!(
        sample(
            &text,
            &format!("strata_consumer_group_members{{group=\"{idle}\"}}")
        ),
        Some(0.0)
    );
    let series = |name: &str, partition: i32| {
        let labels = format!("{{group=\"{idle}\",topic=\"{topic}\",partition=\"{partition}\"}}");
        sample(&text, &format!("{name}{labels}"))
    };
    assert_eq!(
        series("strata_consumer_group_committed_offset", 0),
        Some(3.0)
    );
    assert_eq!(series("strata_consumer_group_lag", 0), Some(7.0), "10 - 3");
    assert_eq!(series("strata_consumer_group_lag", 1), Some(0.0));
    assert!(
        sample(&text, "strata_consumer_groups{state=\"Stable\"}").is_some_and(|n| n >= 1.0),
        "a Stable group counted:\n{text}"
    );
}
