//! Jepsen-style checks of replication: a producer load that remembers what
//! the cluster acknowledged, and a checker that reads every partition back
//! and reports acknowledged records lost, records duplicated and records out
//! of order, and replicas whose logs differ.
//!
//! The load writes the numbers 0, 1, 2, ... as values (number `n` to
//! partition `n % partitions`) with acks=all and idempotence, so per
//! partition the values must appear in increasing order, each at most once,
//! and every acknowledged one exactly once at the offset it was
//! acknowledged with.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Offset;

use super::cluster::{log_end_offset, wait_until};
use super::*;

/// What the cluster acknowledged: value number → (partition, offset), and
/// how many deliveries failed (librdkafka gave up on them: they may or may
/// not be in the log).
#[derive(Clone, Default)]
pub struct Acks {
    inner: Arc<Mutex<AckLog>>,
}

#[derive(Clone, Debug, Default)]
pub struct AckLog {
    pub acked: BTreeMap<u64, (i32, i64)>,
    pub failed: BTreeMap<u64, String>,
}

impl AckLog {
    /// How many deliveries failed with each error.
    pub fn failures(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for error in self.failed.values() {
            *counts.entry(error.as_str()).or_default() += 1;
        }
        counts
    }
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, number: Box<u64>) {
        let mut log = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(message) => {
                log.acked
                    .insert(*number, (message.partition(), message.offset()));
            }
            Err((error, _)) => {
                log.failed.insert(*number, error.to_string());
            }
        }
    }
}

/// A producer thread writing numbered values as fast as `pace` allows,
/// until stopped.
pub struct Load {
    acks: Acks,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Load {
    /// Starts writing to `topic` (`partitions` of them) through `bootstrap`:
    /// acks=all, idempotence on, `burst` values at a time with `pause`
    /// between (waiting while librdkafka's queue is full).
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        burst: u64,
        pause: Duration,
    ) -> Load {
        let mut config = client_config(bootstrap);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", "120000")
            .set("linger.ms", "5");
        let acks = Acks::default();
        let producer: ThreadedProducer<Acks> = config
            .create_with_context(acks.clone())
            .expect("create an rdkafka producer");
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let topic = topic.to_string();
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            thread::spawn(move || {
                let mut next = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for _ in 0..burst {
                        let value = next.to_string();
                        let record = BaseRecord::with_opaque_to(&topic, Box::new(next))
                            .partition((next % partitions as u64) as i32)
                            .payload(&value);
                        match producer.send::<(), _>(record) {
                            Ok(()) => next += 1,
                            // As fast as the cluster takes them.
                            Err((
                                KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                                _,
                            )) => {
                                thread::sleep(Duration::from_millis(1));
                            }
                            Err((error, _)) => panic!("enqueue {next}: {error}"),
                        }
                    }
                    sent.store(next, Ordering::SeqCst);
                    thread::sleep(pause);
                }
                // Every message gets its report: acknowledged or failed.
                let _ = producer.flush(Duration::from_secs(150));
            })
        };
        Load {
            acks,
            stop,
            sent,
            thread: Some(thread),
        }
    }

    /// How many values were acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.acks.inner.lock().unwrap().acked.len()
    }

    /// Waits until `more` values beyond those acknowledged now are (the load
    /// makes progress again).
    pub fn wait_for_progress(&self, more: usize) {
        let target = self.acknowledged() + more;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acknowledged() < target {
            assert!(
                Instant::now() < deadline,
                "the load made no progress: {} acknowledged, {} sent, failures: {:?}",
                self.acknowledged(),
                self.sent.load(Ordering::SeqCst),
                self.acks
                    .inner
                    .lock()
                    .unwrap()
                    .failed
                    .values()
                    .take(3)
                    .collect::<Vec<_>>()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops sending, waits for every report, and returns them.
    pub fn stop(mut self) -> (u64, AckLog) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("the load thread");
        let log = self.acks.inner.lock().unwrap().clone();
        (self.sent.load(Ordering::SeqCst), log)
    }
}

/// What reading the partitions back found.
#[derive(Default, PartialEq, Eq)]
pub struct Verdict {
    pub acknowledged: usize,
    /// Acknowledged values that are not in the log.
    pub lost: Vec<u64>,
    /// Values found more than once.
    pub duplicated: Vec<u64>,
    /// Values found after a larger one in their partition.
    pub reordered: Vec<u64>,
    /// Acknowledged values found at another offset than acknowledged.
    pub moved: Vec<u64>,
    /// Values found whose delivery failed (allowed: not acknowledged is
    /// not a promise that it is absent).
    pub failed_but_present: usize,
}

/// Counts, and the first few values of each kind (a failed run may have
/// millions).
impl std::fmt::Debug for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let first =
            |values: &[u64]| format!("{} {:?}", values.len(), &values[..values.len().min(10)]);
        f.debug_struct("Verdict")
            .field("acknowledged", &self.acknowledged)
            .field("lost", &first(&self.lost))
            .field("duplicated", &first(&self.duplicated))
            .field("reordered", &first(&self.reordered))
            .field("moved", &first(&self.moved))
            .field("failed_but_present", &self.failed_but_present)
            .finish()
    }
}

impl Verdict {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.moved.is_empty()
    }
}

/// Reads every partition of `topic` from the beginning to its high
/// watermark and checks it against `log`.
pub fn check(bootstrap: &str, topic: &str, partitions: i32, log: &AckLog) -> Verdict {
    let mut found: BTreeMap<u64, Vec<(i32, i64)>> = BTreeMap::new();
    let mut verdict = Verdict {
        acknowledged: log.acked.len(),
        ..Verdict::default()
    };
    for partition in 0..partitions {
        let end = high_watermark(bootstrap, topic, partition);
        let consumer: BaseConsumer =
            assigned_consumer(bootstrap, topic, &[(partition, Offset::Beginning)]);
        let mut last = None;
        for message in consume_n(&consumer, end as usize) {
            let number: u64 = message.value_str().parse().expect("a numbered value");
            if last.is_some_and(|last| number < last) {
                verdict.reordered.push(number);
            }
            last = Some(number);
            found
                .entry(number)
                .or_default()
                .push((partition, message.offset));
        }
    }
    for (number, places) in &found {
        if places.len() > 1 {
            verdict.duplicated.push(*number);
        }
        if log.failed.contains_key(number) {
            verdict.failed_but_present += 1;
        }
    }
    for (number, place) in &log.acked {
        match found.get(number) {
            None => verdict.lost.push(*number),
            Some(places) if !places.contains(place) => verdict.moved.push(*number),
            Some(_) => {}
        }
    }
    verdict
}

/// Every record batch of one replica's log: (base offset, last offset,
/// leader epoch, CRC), in offset order, read from its segment files.
pub fn replica_batches(partition_dir: &Path) -> Vec<(i64, i64, i32, u32)> {
    let mut segments: Vec<_> = std::fs::read_dir(partition_dir)
        .expect("the partition directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segments.sort();
    segments
        .iter()
        .flat_map(|segment| {
            strata_storage::inspect::LogBatches::open(segment)
                .expect("open a segment")
                .map(|batch| {
                    let batch = batch.expect("a readable batch");
                    let h = batch.header;
                    let last = h.base_offset + i64::from(h.last_offset_delta);
                    (h.base_offset, last, h.partition_leader_epoch, h.crc)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Asserts that the replicas of a partition hold the same batches.
fn assert_replicas_identical(dirs: &[std::path::PathBuf]) {
    let logs: Vec<_> = dirs.iter().map(|d| replica_batches(d)).collect();
    let distinct: BTreeSet<_> = logs.iter().collect();
    assert_eq!(
        distinct.len(),
        1,
        "replicas differ: {:?}",
        dirs.iter()
            .zip(&logs)
            .map(|(d, l)| (d, l.len(), l.last()))
            .collect::<Vec<_>>()
    );
}

/// Waits until the replicas of every partition of `topic` on `brokers` have
/// the same log end offset, then checks that they hold the same batches.
pub fn assert_all_replicas_identical(brokers: &[Broker], topic: &str, partitions: i32) {
    for partition in 0..partitions {
        wait_until("every replica has the same log end offset", || {
            let ends: Vec<Option<f64>> = brokers
                .iter()
                .map(|b| log_end_offset(b, topic, partition))
                .collect();
            ends.iter().all(|e| e.is_some() && *e == ends[0])
        });
        let dirs: Vec<_> = brokers
            .iter()
            .map(|b| b.partition_dir(topic, partition))
            .collect();
        assert_replicas_identical(&dirs);
    }
}
