//! How the broker's changes become metadata records, and how the metadata
//! is read back at start: the glue between [`Broker`](super::Broker) and
//! [`crate::metadata`].

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::Path;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::{migrate, now_ms, LOCAL_TERM};
use crate::config::BrokerConfig;
use crate::error::{ApiError, BrokerError};
use crate::metadata::{
    ApplyError, ConfigResource, MetadataImage, MetadataLog, MetadataRecord, PartitionRegistration,
    TopicImage, METADATA_LOG_DIR,
};
use crate::metadata_store::{self, StoredTopic};

/// Removes partition directories whose `partition.metadata` names a topic id
/// that the metadata no longer has: the remains of a deletion interrupted by
/// a crash. Directories without that file are left alone, with a warning.
pub(super) fn remove_orphaned_partition_dirs(data_dir: &Path, image: &MetadataImage) {
    let known: HashSet<String> = image
        .topics()
        .map(|t| metadata_store::encode_uuid(t.id))
        .collect();
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() || entry.file_name() == METADATA_LOG_DIR {
            continue;
        }
        match metadata_store::read_partition_topic_id(&path) {
            Some(id) if known.contains(&id) => {}
            Some(_) => {
                tracing::warn!(dir = %path.display(), "removing the directory of a deleted topic");
                if let Err(error) = fs::remove_dir_all(&path) {
                    tracing::warn!(dir = %path.display(), %error, "could not remove");
                }
            }
            None => tracing::warn!(dir = %path.display(), "unknown directory in the data dir"),
        }
    }
}

/// Opens the metadata log and replays it. The files of an earlier release
/// are moved into a log that is still empty first.
pub(super) fn open_metadata(
    data_dir: &Path,
    node_id: i32,
) -> Result<(MetadataLog, MetadataImage), BrokerError> {
    let (mut log, batches) = MetadataLog::open(data_dir, now_ms())?;
    let mut image = MetadataImage::default();
    for batch in &batches {
        image = image.apply(batch)?.0;
    }
    if log.end_offset() == 0 {
        let legacy = migrate::legacy_records(data_dir, node_id)?;
        if !legacy.is_empty() {
            image = image.apply(&legacy)?.0;
            log.append(&legacy, LOCAL_TERM, now_ms())?;
            tracing::info!(
                topics = image.topics().count(),
                "moved the topics of an earlier release into the metadata log"
            );
        }
    }
    migrate::retire_legacy_files(data_dir);
    Ok((log, image))
}

/// The record of a new partition on `replicas`, all in sync, led by the
/// first from leader epoch 0.
pub(super) fn partition_record(topic_id: Uuid, index: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRegistration {
        topic_id,
        partition_id: index,
        leader: replicas.first().copied().unwrap_or(-1),
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// The config records that turn a resource's overrides `current` into `next`.
pub(super) fn config_records(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &String, value: Option<&String>| MetadataRecord::Config {
        resource: resource.clone(),
        name: name.clone(),
        value: value.cloned(),
    };
    let removed = current
        .keys()
        .filter(|name| !next.contains_key(*name))
        .map(|name| record(name, None));
    let set = next
        .iter()
        .filter(|(name, value)| current.get(*name) != Some(*value))
        .map(|(name, value)| record(name, Some(value)));
    removed.chain(set).collect()
}

/// A topic as the handlers see it: name, id, partition count and overrides.
pub(super) fn stored_topic(image: &MetadataImage, topic: &TopicImage) -> StoredTopic {
    StoredTopic {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        configs: image.configs(&ConfigResource::Topic(topic.name.clone())),
    }
}

/// The Kafka error for a change the metadata refuses.
pub(super) fn apply_error(error: ApplyError) -> ApiError {
    let code = match &error {
        ApplyError::TopicExists { name } => {
            return ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            )
        }
        ApplyError::UnknownTopic { .. } | ApplyError::UnknownTopicId { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        ApplyError::PartitionOutOfOrder { .. } | ApplyError::InvalidPartition { .. } => {
            ResponseError::InvalidPartitions
        }
        ApplyError::TopicIdExists { .. } | ApplyError::ProducerIdsBackwards { .. } => {
            ResponseError::UnknownServerError
        }
    };
    ApiError::new(code, error.to_string())
}

/// The static configuration with the dynamic broker configs of the image over
/// it: the cluster-wide defaults (resource ""), then this broker's own.
pub(super) fn effective_config(
    static_config: &BrokerConfig,
    image: &MetadataImage,
    node_id: i32,
) -> BrokerConfig {
    static_config.with_dynamic(
        image.configs(&ConfigResource::Broker(String::new())),
        image.configs(&ConfigResource::Broker(node_id.to_string())),
    )
}
