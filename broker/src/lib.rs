//! The Strata broker: a single-node Kafka-compatible server.
//!
//! Module map:
//! - [`server`]: the listener, periodic work (flush.ms, recovery points) and
//!   clean shutdown.
//! - [`connection`]: one task per connection: framing, bounded read-ahead,
//!   responses in request order.
//! - [`frame`]: responses in pieces, fetched records sent from segment files
//!   with sendfile.
//! - `handlers`: one module per API family, and the table of what
//!   ApiVersions advertises.
//! - [`broker`]: shared state — identity, configuration, topics — and the
//!   operations that change topics; it owns the coordinator and the metrics,
//!   which do not reach back into it.
//! - [`cleaner`]: the log cleaner task that compacts compacted topics.
//! - [`group`]: the classic consumer-group state machine (pure logic, no I/O)
//!   and the `__consumer_offsets` record schemas.
//! - [`coordinator`]: the group coordinator around it: parked requests,
//!   timers, committed offsets. It knows the broker only as the
//!   [`coordinator::OffsetsLog`] it writes to (`__consumer_offsets`).
//! - [`partition`]: a partition's log and the watch that wakes fetches.
//! - [`partitions`]: the partition manager: the hosted partitions' logs,
//!   kept in line with the metadata image, and the periodic log work.
//! - [`metrics`]: Prometheus metrics and their HTTP endpoint; what a scrape
//!   reads of the broker comes through [`metrics::ScrapeSource`].
//! - [`producer_state`]: idempotent producers' sequence checks.
//! - [`metadata`]: the metadata log (KRaft-style records) and its image.
//! - [`replication`]: the leader's replica state (high watermark, ISR) as
//!   plain logic, driven by a seeded simulation.
//! - [`metadata_store`]: `meta.properties`, `partition.metadata` and the
//!   topics file of older releases.
//! - [`config`]: the Kafka properties Strata honours.
//! - [`clock`]: wall-clock milliseconds, as Kafka timestamps are.
//! - [`error`]: the one mapping of failures to Kafka error codes.

pub mod broker;
pub mod cleaner;
pub mod clock;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod error;
pub mod frame;
pub mod group;
mod handlers;
pub mod metadata;
pub mod metadata_store;
pub mod metrics;
pub mod partition;
pub mod partitions;
pub mod producer_state;
pub mod quorum;
pub mod replication;
pub mod server;
#[cfg(test)]
mod test_support;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use error::BrokerError;
pub use server::{Server, ServerOptions};
