//! Replication of a partition among its replicas, Kafka's leader/follower
//! protocol. [`ReplicaState`] is the leader's bookkeeping as plain logic: events
//! in (appends, follower fetches, time, metadata), effects out (a new high
//! watermark, an in-sync replica set to propose), no I/O and no clock, so a
//! seeded simulation can drive it.

pub mod fetcher;
#[cfg(test)]
mod simulation;
mod state;

pub use fetcher::ReplicaFetchers;
pub use state::{Effect, ReplicaState};
