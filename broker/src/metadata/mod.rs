//! Cluster metadata as KRaft keeps it: a log of records ([`records`]) applied
//! to an immutable [`MetadataImage`] ([`image`]), stored in the data
//! directory's `__cluster_metadata-0` ([`log`]); [`placement`] decides where
//! the replicas of new partitions go.
//!
//! Every change to topics, partitions, configs, brokers and producer ids is a
//! batch of records: validated by applying it to the current image, appended
//! and fsynced, then published as the new image; the [`MetadataDelta`] tells
//! the broker what to act on. On a single node the broker writes the log
//! itself; the Raft quorum of the controllers will write it for a cluster.

pub mod election;
pub mod image;
pub mod log;
pub mod placement;
pub mod records;

pub use image::{ApplyError, MetadataDelta, MetadataImage, TopicImage};
pub use log::{MetadataLog, MetadataLogError, METADATA_LOG_DIR};
pub use records::{
    BrokerEndpoint, BrokerRegistration, ConfigResource, MetadataRecord, PartitionChange,
    PartitionRegistration,
};
