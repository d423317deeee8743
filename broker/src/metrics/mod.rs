//! Prometheus metrics, served on their own HTTP port (`strata serve
//! --metrics-listen`), in the OpenMetrics text format that the
//! `prometheus-client` crate writes and Prometheus scrapes.
//!
//! Two kinds of metrics live here:
//!
//! - **Live counters and gauges** that the request path updates: requests,
//!   latency and errors per API ([`requests`]), bytes and messages per topic
//!   ([`TopicMetrics`]), connections and waiting fetches. The hot path holds
//!   handles to them (an array indexed by API key, per-topic handles cloned
//!   into each partition), so counting a request or a batch is an atomic add,
//!   not a label lookup.
//! - **Scrape-time snapshots**: per-partition offsets and sizes
//!   ([`partitions`]), the process ([`process`]) and consumer groups
//!   ([`groups`]) are read when Prometheus asks, so they cost nothing in
//!   between and a deleted topic's partitions simply stop being reported.
//!
//! Module map:
//! - [`requests`]: per-API counters, the latency histogram, and the walk over
//!   a response that counts its error codes.
//! - [`partitions`]: log end offset, log start offset, high watermark, size
//!   and segment count of every partition.
//! - [`process`]: resident memory, CPU time and open descriptors from
//!   `/proc/self`, and build info.
//! - [`groups`]: the hook a group coordinator implements to report groups,
//!   members and committed offsets (lag is computed here).
//! - [`metadata`]: the metadata log and image: controller, brokers, offline
//!   partitions.
//! - [`http`]: the tiny HTTP server for `/metrics` and `/health`.
//! - `labels`: label values that are numbers in memory and names on the wire.

pub mod groups;
pub mod http;
mod labels;
pub mod metadata;
pub mod partitions;
pub mod process;
pub mod requests;

use std::sync::{Arc, PoisonError, RwLock};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

pub use groups::{CommittedOffset, GroupMetricsSource, GroupSnapshot};
pub use metadata::MetadataSnapshot;
pub use partitions::{LeaderSnapshot, PartitionSnapshot};
pub use requests::RequestTimer;

/// What a scrape reads besides the live metrics, at scrape time: the broker
/// implements it, and this module knows nothing else of the broker.
pub trait ScrapeSource: Send + Sync + 'static {
    /// The live metrics (and the group source registered with them).
    fn metrics(&self) -> &BrokerMetrics;
    /// Every partition this broker holds.
    fn partitions(&self) -> Vec<PartitionSnapshot>;
    /// The metadata image and quorum as this node sees them.
    fn metadata(&self) -> MetadataSnapshot;
}

/// Every Strata metric name starts with this (`strata_...`); the process
/// metrics keep the standard `process_` names that every Prometheus client
/// library exports and existing dashboards expect.
const PREFIX: &str = "strata";

/// The `topic` label of the per-topic families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// The `operation` label of the purgatory gauge (Kafka's name for the place
/// where delayed produce and fetch requests wait).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PurgatoryLabels {
    operation: &'static str,
}

/// The broker's metrics: the registry that `/metrics` encodes and the handles
/// the request path updates. One per [`crate::Broker`].
pub struct BrokerMetrics {
    registry: Registry,
    requests: requests::RequestMetrics,
    bytes_in: Family<TopicLabels, Counter>,
    messages_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    connections_active: Gauge,
    connections_accepted: Counter,
    fetch_waiting: Gauge,
    produce_waiting: Gauge,
    isr_shrinks: Counter,
    isr_expands: Counter,
    groups: RwLock<Option<Arc<dyn GroupMetricsSource>>>,
}

impl std::fmt::Debug for BrokerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerMetrics").finish_non_exhaustive()
    }
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        BrokerMetrics::new()
    }
}

impl BrokerMetrics {
    /// A registry with every family registered and nothing counted yet.
    pub fn new() -> BrokerMetrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix(PREFIX);
        registry.register_collector(Box::new(process::BuildInfoCollector));

        let requests = requests::RequestMetrics::register(registry);
        let bytes_in = Family::default();
        registry.register_with_unit(
            "topic_produced",
            "Record batch bytes appended by produce requests, per topic",
            Unit::Bytes,
            bytes_in.clone(),
        );
        let messages_in = Family::default();
        registry.register(
            "topic_produced_messages",
            "Records appended by produce requests, per topic (retried duplicates of idempotent producers are not counted)",
            messages_in.clone(),
        );
        let bytes_out = Family::default();
        registry.register_with_unit(
            "topic_fetched",
            "Record batch bytes returned by fetch responses, per topic",
            Unit::Bytes,
            bytes_out.clone(),
        );
        let connections_active = Gauge::default();
        registry.register(
            "connections_active",
            "Kafka client connections open now",
            connections_active.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "connections_accepted",
            "Kafka client connections accepted since the broker started",
            connections_accepted.clone(),
        );
        let purgatory = Family::<PurgatoryLabels, Gauge>::default();
        registry.register(
            "purgatory_requests",
            "Requests waiting in purgatory: fetches long-polling for min_bytes, acks=all produces waiting for the high watermark",
            purgatory.clone(),
        );
        let fetch_waiting = purgatory
            .get_or_create(&PurgatoryLabels { operation: "fetch" })
            .clone();
        let produce_waiting = purgatory
            .get_or_create(&PurgatoryLabels {
                operation: "produce",
            })
            .clone();

        let isr_shrinks = Counter::default();
        registry.register(
            "isr_shrinks",
            "In-sync replica sets of partitions this broker leads that the controller shrank at its request (Kafka's IsrShrinksPerSec)",
            isr_shrinks.clone(),
        );
        let isr_expands = Counter::default();
        registry.register(
            "isr_expands",
            "In-sync replica sets of partitions this broker leads that the controller grew at its request (Kafka's IsrExpandsPerSec)",
            isr_expands.clone(),
        );

        BrokerMetrics {
            registry: root,
            requests,
            bytes_in,
            messages_in,
            bytes_out,
            connections_active,
            connections_accepted,
            fetch_waiting,
            produce_waiting,
            isr_shrinks,
            isr_expands,
            groups: RwLock::new(None),
        }
    }

    /// Per-API request metrics; see [`requests::RequestMetrics`].
    pub fn requests(&self) -> &requests::RequestMetrics {
        &self.requests
    }

    /// The per-topic handles for `topic`, created at 0 if new. Partitions keep
    /// a clone so that produce and fetch count without a lookup.
    pub fn topic(&self, topic: &str) -> TopicMetrics {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        TopicMetrics {
            bytes_in: self.bytes_in.get_or_create(&labels).clone(),
            messages_in: self.messages_in.get_or_create(&labels).clone(),
            bytes_out: self.bytes_out.get_or_create(&labels).clone(),
        }
    }

    /// Drops a deleted topic's series. Handles still held by in-flight
    /// requests keep working but are no longer reported; a topic created
    /// again under the name starts from 0.
    pub fn remove_topic(&self, topic: &str) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.bytes_in.remove(&labels);
        self.messages_in.remove(&labels);
        self.bytes_out.remove(&labels);
    }

    /// Counts an accepted connection; the returned guard counts it as active
    /// until dropped.
    pub fn connection_opened(&self) -> ActiveGuard {
        self.connections_accepted.inc();
        ActiveGuard::new(&self.connections_active)
    }

    /// Counts a fetch as waiting in purgatory until the guard is dropped.
    pub fn fetch_waiting(&self) -> ActiveGuard {
        ActiveGuard::new(&self.fetch_waiting)
    }

    /// Counts an acks=all produce as waiting in purgatory until the guard is
    /// dropped.
    pub fn produce_waiting(&self) -> ActiveGuard {
        ActiveGuard::new(&self.produce_waiting)
    }

    /// The controller took this broker's proposal to shrink a partition's ISR.
    pub fn isr_shrunk(&self) {
        self.isr_shrinks.inc();
    }

    /// The controller took this broker's proposal to grow a partition's ISR.
    pub fn isr_expanded(&self) {
        self.isr_expands.inc();
    }

    /// Registers what reports consumer groups at scrape time (the group
    /// coordinator). Replaces any earlier source. If the source holds an
    /// `Arc<Broker>`, hand over a wrapper around a `Weak` instead, or the
    /// broker and the source keep each other alive.
    pub fn set_group_source(&self, source: Arc<dyn GroupMetricsSource>) {
        *self.groups.write().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    /// The whole exposition: live metrics, then the scrape-time snapshots
    /// (the partitions and metadata given, and the groups of the registered
    /// source).
    pub fn encode(
        &self,
        partitions: Vec<PartitionSnapshot>,
        metadata: Option<MetadataSnapshot>,
    ) -> String {
        let groups = self
            .groups
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|source| source.groups());
        let mut scraped = Registry::with_prefix(PREFIX);
        scraped.register_collector(Box::new(groups::GroupCollector::new(groups, &partitions)));
        scraped.register_collector(Box::new(partitions::PartitionCollector(partitions)));
        if let Some(metadata) = metadata {
            scraped.register_collector(Box::new(metadata::MetadataCollector(metadata)));
        }
        let mut out = String::with_capacity(16 << 10);
        // Writing to a String cannot fail; the encoders only pass on the
        // writer's errors.
        let _ = encode_registry(&mut out, &self.registry);
        let _ = encode_registry(&mut out, &scraped);
        let _ = encode_eof(&mut out);
        out
    }
}

/// A topic's counters, shared by all its partitions. Cloning shares them.
#[derive(Clone, Debug, Default)]
pub struct TopicMetrics {
    bytes_in: Counter,
    messages_in: Counter,
    bytes_out: Counter,
}

impl TopicMetrics {
    /// Counts one appended batch of `records` records.
    pub fn record_produce(&self, bytes: usize, records: u64) {
        self.bytes_in.inc_by(bytes as u64);
        self.messages_in.inc_by(records);
    }

    /// Counts record bytes sent in a fetch response.
    pub fn record_fetch(&self, bytes: usize) {
        self.bytes_out.inc_by(bytes as u64);
    }
}

/// Holds one unit of a gauge (an open connection, a waiting fetch) and gives
/// it back when dropped, however the holder ends.
#[derive(Debug)]
pub struct ActiveGuard(Gauge);

impl ActiveGuard {
    fn new(gauge: &Gauge) -> ActiveGuard {
        gauge.inc();
        ActiveGuard(gauge.clone())
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Writes one unlabelled gauge of a scrape-time value.
fn encode_gauge<V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: V,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

/// Writes one gauge family of scrape-time values: a descriptor, then a
/// sample per `(labels, value)` row. For the collectors, which have no live
/// metric objects to register.
fn encode_gauge_family<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
