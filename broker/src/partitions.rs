//! The partition manager: the logs of the partitions this broker hosts,
//! kept in line with the metadata image. It opens (and recovers) them at
//! start, opens, reconfigures and deletes them as metadata changes arrive,
//! and does the periodic log work: flush, retention, checkpoints. It knows
//! nothing of consumer groups, and of metrics only the handle each topic's
//! partitions count into ([`TopicMetricsSource`]).

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kafka_protocol::error::ResponseError;
use strata_storage::{checkpoint, Log, CLEAN_SHUTDOWN_FILE};
use uuid::Uuid;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::error::{ApiError, BrokerError};
use crate::metadata::{ConfigResource, MetadataDelta, MetadataImage, TopicImage, METADATA_LOG_DIR};
use crate::metadata_store::{self, StoredTopic};
use crate::metrics::TopicMetrics;
use crate::partition::{IsrProposals, Partition};
use crate::replication::ReplicaFetchers;

/// Kafka's file of per-partition recovery points (offsets below which the log
/// is known to be on disk), in the data directory.
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Kafka's file of per-partition log start offsets: where DeleteRecords and
/// retention left each log's first readable offset.
const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// Kafka's file of per-partition high watermarks.
const REPLICATION_OFFSET_FILE: &str = "replication-offset-checkpoint";

/// A topic: its persisted description and the partitions this broker hosts
/// (all of them on a single node), in index order.
pub struct Topic {
    pub stored: StoredTopic,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.stored.name
    }
    pub fn id(&self) -> Uuid {
        self.stored.id
    }
    pub fn partition_count(&self) -> i32 {
        self.stored.partitions
    }

    /// Whether the topic has partition `index`, on this broker or another.
    pub fn has_partition(&self, index: i32) -> bool {
        (0..self.partition_count()).contains(&index)
    }

    /// Partition `index` if this broker hosts it.
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        self.partitions
            .binary_search_by_key(&index, |p| p.index)
            .ok()
            .map(|i| &self.partitions[i])
    }
}

/// Partition `index` of a topic a handler looked up once per request topic
/// (`None`: no such topic): UNKNOWN_TOPIC_OR_PARTITION if either does not
/// exist, NOT_LEADER_OR_FOLLOWER if this broker does not lead it.
pub fn partition_of(topic: Option<&Topic>, index: i32) -> Result<&Arc<Partition>, ApiError> {
    let topic = topic.ok_or(ResponseError::UnknownTopicOrPartition)?;
    match topic.partition(index) {
        Some(partition) if partition.is_leader() => Ok(partition),
        Some(_) => Err(ResponseError::NotLeaderOrFollower.into()),
        None if topic.has_partition(index) => Err(ResponseError::NotLeaderOrFollower.into()),
        None => Err(ResponseError::UnknownTopicOrPartition.into()),
    }
}

/// The partitions of a topic that `node_id` holds a replica of, in order.
pub(crate) fn hosted(topic: &TopicImage, node_id: i32) -> impl Iterator<Item = i32> + '_ {
    topic
        .partitions
        .values()
        .filter(move |p| p.replicas.contains(&node_id))
        .map(|p| p.partition_id)
}

/// Has each hosted partition of `topic` follow the image: lead under its
/// leader epoch where `node_id` is the leader, not lead elsewhere.
/// Where another broker leads, the partition is handed to the replica
/// fetchers.
fn follow_leadership(
    node_id: i32,
    topic: &Topic,
    image: &TopicImage,
    config: &BrokerConfig,
    fetchers: &ReplicaFetchers,
) {
    let now = now_ms();
    for partition in &topic.partitions {
        let registered = image.partitions.get(&partition.index);
        partition.follow(registered, node_id, config.replica_lag_time_max_ms(), now);
        match registered.filter(|p| p.leader >= 0 && p.leader != node_id) {
            Some(p) => fetchers.follow(partition, p.leader, p.leader_epoch),
            None => fetchers.unfollow(&partition.topic, partition.index),
        }
    }
}

/// A topic as the handlers see it: name, id, partition count and overrides.
pub(crate) fn stored_topic(image: &MetadataImage, topic: &TopicImage) -> StoredTopic {
    StoredTopic {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        configs: image.configs(&ConfigResource::Topic(topic.name.clone())),
    }
}

/// Removes partition directories whose `partition.metadata` names a topic id
/// that the metadata no longer has: the remains of a deletion interrupted by
/// a crash. Directories without that file are left alone, with a warning.
fn remove_orphaned_partition_dirs(data_dir: &Path, image: &MetadataImage) {
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

/// Where a topic's partitions count what they do: the broker's metrics.
pub trait TopicMetricsSource: Send + Sync {
    /// The handle the partitions of topic `name` count into.
    fn topic(&self, name: &str) -> TopicMetrics;
    /// Forgets a deleted topic's series.
    fn remove_topic(&self, name: &str);
}

/// The hosted partitions of every topic, by topic name.
pub struct PartitionManager {
    node_id: i32,
    data_dir: PathBuf,
    /// Topics by name. Readers clone the `Arc<Topic>` they need and let go of
    /// the lock at once; changes replace a topic's `Arc` whole.
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    metrics: Arc<dyn TopicMetricsSource>,
    /// Where the partitions this broker leads send their ISR proposals.
    proposals: Option<IsrProposals>,
    /// The partitions this broker follows, for the replica fetchers.
    fetchers: Arc<ReplicaFetchers>,
}

impl PartitionManager {
    /// Opens the logs of the partitions `image` places on node `node_id`
    /// (recovering each past its recovery point after an unclean stop) and
    /// removes what deleted topics left behind. From its return the
    /// directory is in use: the clean-shutdown marker is gone.
    pub fn open(
        node_id: i32,
        data_dir: &Path,
        image: &MetadataImage,
        config: &BrokerConfig,
        metrics: Arc<dyn TopicMetricsSource>,
        proposals: Option<IsrProposals>,
    ) -> Result<PartitionManager, BrokerError> {
        let clean_marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = clean_marker.exists();
        let recovery_points = checkpoint::read(&data_dir.join(RECOVERY_POINT_FILE))?;
        let log_start_offsets = checkpoint::read(&data_dir.join(LOG_START_OFFSET_FILE))?;
        let high_watermarks = checkpoint::read(&data_dir.join(REPLICATION_OFFSET_FILE))?;
        if !clean_shutdown {
            tracing::info!("no clean-shutdown marker: recovering logs past their recovery points");
        }
        remove_orphaned_partition_dirs(data_dir, image);
        let fetchers = Arc::new(ReplicaFetchers::new(node_id, config.replica_fetch()));
        let now = now_ms();
        let mut topics = BTreeMap::new();
        for topic_image in image.topics() {
            let stored = stored_topic(image, topic_image);
            let log_config = config.log_config(&stored.configs);
            let mut partitions = Vec::new();
            for index in hosted(topic_image, node_id) {
                let dir = metadata_store::partition_dir(data_dir, &stored.name, index);
                let key = (stored.name.clone(), index);
                let recovery_point = recovery_points.get(&key).copied().unwrap_or(0);
                let mut log = Log::open(
                    &dir,
                    log_config.clone(),
                    recovery_point,
                    clean_shutdown,
                    now,
                )?;
                if let Some(&start) = log_start_offsets.get(&key) {
                    log.restore_log_start_offset(start);
                }
                // Missing after a crash between the metadata and the directory.
                if metadata_store::read_partition_topic_id(&dir).is_none() {
                    metadata_store::write_partition_metadata(&dir, stored.id)?;
                }
                let high_watermark = high_watermarks.get(&key).copied().unwrap_or(0);
                partitions.push(Arc::new(Partition::new(
                    stored.name.clone(),
                    index,
                    log,
                    high_watermark,
                    metrics.topic(&stored.name),
                    proposals.clone(),
                )));
            }
            let topic = Topic { stored, partitions };
            follow_leadership(node_id, &topic, topic_image, config, &fetchers);
            topics.insert(topic.stored.name.clone(), Arc::new(topic));
        }
        if clean_shutdown {
            fs::remove_file(&clean_marker)
                .map_err(|e| BrokerError::io("removing the clean-shutdown marker", e))?;
        }
        Ok(PartitionManager {
            node_id,
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(topics),
            metrics,
            proposals,
            fetchers,
        })
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_topics().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.read_topics().values().find(|t| t.id() == id).cloned()
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.read_topics().values().cloned().collect()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// What this broker follows, for the replica fetchers to run on.
    pub fn fetchers(&self) -> Arc<ReplicaFetchers> {
        self.fetchers.clone()
    }

    fn read_topics(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_topics(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Brings the topics and their logs in line with the image after a
    /// change, under `config` (the broker's, new broker configs applied):
    /// new topics and partitions get their logs, removed topics lose theirs,
    /// changed configs reach the logs.
    pub fn apply_delta(
        &self,
        image: &MetadataImage,
        delta: &MetadataDelta,
        config: &BrokerConfig,
    ) -> Result<(), ApiError> {
        let broker_configs_changed = delta
            .changed_configs
            .iter()
            .any(|resource| matches!(resource, ConfigResource::Broker(_)));
        let mut next = self.read_topics().clone();
        let mut result = Ok(());
        let removed: Vec<Arc<Topic>> = delta
            .removed_topics
            .iter()
            .filter_map(|gone| next.remove(&gone.name))
            .collect();
        // New broker defaults reach every topic that does not override them.
        let every_topic = broker_configs_changed.then(|| image.topics().map(|t| t.id));
        let changed: HashSet<String> = delta
            .created_topics
            .iter()
            .copied()
            .chain(delta.new_partitions.iter().map(|(id, _)| *id))
            .chain(delta.changed_partitions.iter().map(|(id, _)| *id))
            .chain(every_topic.into_iter().flatten())
            .filter_map(|id| image.topic_by_id(id).map(|t| t.name.clone()))
            .chain(delta.changed_configs.iter().filter_map(|r| match r {
                ConfigResource::Topic(name) => Some(name.clone()),
                ConfigResource::Broker(_) => None,
            }))
            .collect();
        for name in changed {
            let Some(topic_image) = image.topic(&name) else {
                continue;
            };
            let stored = stored_topic(image, topic_image);
            let mut partitions = next
                .get(&name)
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            let opened = partitions.last().map_or(0, |p| p.index + 1);
            let new: Vec<i32> = hosted(topic_image, self.node_id)
                .filter(|index| *index >= opened)
                .collect();
            let log_config = config.log_config(&stored.configs);
            if !new.is_empty() {
                match self.open_partitions(&stored, new, &log_config) {
                    Ok(new) => partitions.extend(new),
                    Err(error) => result = Err(error),
                }
            }
            for partition in &partitions {
                partition.set_config(log_config.clone());
            }
            let topic = Topic { stored, partitions };
            follow_leadership(self.node_id, &topic, topic_image, config, &self.fetchers);
            next.insert(name, Arc::new(topic));
        }
        *self.write_topics() = next;
        // Only once no look-up finds them: a removed topic's data.
        for topic in removed {
            self.metrics.remove_topic(topic.name());
            for partition in &topic.partitions {
                self.fetchers.unfollow(&partition.topic, partition.index);
                let dir = partition.log().dir().to_path_buf();
                if let Err(error) = fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), %error, "could not remove partition directory");
                }
            }
        }
        result
    }

    fn open_partitions(
        &self,
        topic: &StoredTopic,
        range: Vec<i32>,
        log_config: &strata_storage::LogConfig,
    ) -> Result<Vec<Arc<Partition>>, ApiError> {
        let now = now_ms();
        let mut opened = Vec::new();
        for index in range {
            let dir = metadata_store::partition_dir(&self.data_dir, &topic.name, index);
            // A directory here is a leftover of a deleted topic of this name.
            if dir.exists() {
                let _ = fs::remove_dir_all(&dir);
            }
            let log = Log::open(&dir, log_config.clone(), 0, true, now).map_err(ApiError::from)?;
            metadata_store::write_partition_metadata(&dir, topic.id)
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            opened.push(Arc::new(Partition::new(
                topic.name.clone(),
                index,
                log,
                0,
                self.metrics.topic(&topic.name),
                self.proposals.clone(),
            )));
        }
        Ok(opened)
    }

    /// Kafka refuses topic names that differ only by '.' versus '_', since
    /// both map to the same metric names.
    pub fn colliding_topic(&self, name: &str) -> Option<String> {
        let normalized = name.replace('.', "_");
        self.read_topics()
            .keys()
            .find(|existing| existing.replace('.', "_") == normalized)
            .cloned()
    }

    /// Has every partition this broker leads check its followers' lag
    /// (Kafka's ISR expiration, every half `replica.lag.time.max.ms`).
    pub fn tick_replicas(&self, now_ms: i64) {
        for topic in self.topics() {
            for partition in &topic.partitions {
                partition.tick(now_ms);
            }
        }
    }

    /// Flushes logs whose `flush.ms` is due; run periodically.
    pub fn flush_due_logs(&self) {
        let now = now_ms();
        for topic in self.topics() {
            for partition in &topic.partitions {
                if let Err(error) = partition.log().flush_if_due(now) {
                    tracing::error!(topic = topic.name(), partition = partition.index, %error, "flush failed");
                }
            }
        }
    }

    /// Persists every partition's recovery point, so that recovery after a
    /// crash scans only what was not yet flushed, and its log start offset.
    pub fn write_checkpoints(&self) -> Result<(), BrokerError> {
        let recovery_points = self.per_partition(|p| p.log().recovery_point());
        checkpoint::write(&self.data_dir.join(RECOVERY_POINT_FILE), &recovery_points)?;
        let high_watermarks = self.per_partition(Partition::high_watermark);
        checkpoint::write(
            &self.data_dir.join(REPLICATION_OFFSET_FILE),
            &high_watermarks,
        )?;
        self.checkpoint_log_start_offsets()
    }

    /// Persists every partition's log start offset, so that records deleted
    /// by DeleteRecords or retention stay deleted after a restart.
    pub fn checkpoint_log_start_offsets(&self) -> Result<(), BrokerError> {
        let entries = self.per_partition(|p| p.log().log_start_offset());
        checkpoint::write(&self.data_dir.join(LOG_START_OFFSET_FILE), &entries)?;
        Ok(())
    }

    /// `(topic, partition, value)` for every partition, as checkpoints hold.
    fn per_partition(&self, value: impl Fn(&Partition) -> i64) -> Vec<(String, i32, i64)> {
        let mut entries = Vec::new();
        for topic in self.topics() {
            for partition in &topic.partitions {
                entries.push((topic.name().to_string(), partition.index, value(partition)));
            }
        }
        entries
    }

    /// One retention pass (`log.retention.check.interval.ms`): deletes the
    /// segments each log's retention settings and start offset let go, then
    /// persists the start offsets if any moved.
    pub fn apply_retention(&self) {
        let now = now_ms();
        let mut deleted = 0;
        for topic in self.topics() {
            for partition in &topic.partitions {
                match partition.log().apply_retention(now) {
                    Ok(count) => deleted += count,
                    Err(error) => {
                        tracing::error!(topic = topic.name(), partition = partition.index, %error, "retention failed")
                    }
                }
            }
        }
        if deleted > 0 {
            if let Err(error) = self.checkpoint_log_start_offsets() {
                tracing::error!(%error, "could not write log start offsets");
            }
        }
    }

    /// Flushes every log and its producer state and writes the checkpoints:
    /// the logs' part of a clean shutdown.
    pub fn flush_all(&self) -> Result<(), BrokerError> {
        for topic in self.topics() {
            for partition in &topic.partitions {
                partition.log().flush()?;
                partition.write_producer_snapshot();
            }
        }
        self.write_checkpoints()
    }

    /// Leaves the marker that lets the next start skip recovery; last thing
    /// of a clean shutdown.
    pub fn mark_clean_shutdown(&self) -> Result<(), BrokerError> {
        metadata_store::write_atomically(&self.data_dir.join(CLEAN_SHUTDOWN_FILE), b"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::{MetadataRecord, PartitionRegistration};
    use crate::metrics::BrokerMetrics;

    fn partition(topic_id: Uuid, partition_id: i32, replica: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRegistration {
            topic_id,
            partition_id,
            replicas: vec![replica],
            isr: vec![replica],
            leader: replica,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    /// Driven by images and deltas alone: node 1 opens the logs of the
    /// partitions placed on it, not the others', keeps them across a
    /// reopen, and deletes them with the topic.
    #[test]
    fn the_manager_follows_the_image_for_its_own_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::new();
        let metrics: Arc<dyn TopicMetricsSource> = Arc::new(BrokerMetrics::new());
        let empty = MetadataImage::default();
        let manager = PartitionManager::open(1, dir.path(), &empty, &config, metrics.clone(), None)
            .expect("open an empty directory");
        let id = Uuid::from_u128(9);
        let records = [
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            partition(id, 0, 1),
            partition(id, 1, 2),
            partition(id, 2, 1),
        ];
        let (image, delta) = empty.apply(&records).unwrap();
        manager.apply_delta(&image, &delta, &config).unwrap();
        let hosted: Vec<i32> = manager
            .topic("t")
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.index)
            .collect();
        assert_eq!(hosted, [0, 2]);
        assert!(!dir.path().join("t-1").exists());
        // Its leadership follows the image: stopped, then under a new epoch.
        let topic = manager.topic("t").unwrap();
        assert_eq!(partition_of(Some(&topic), 0).unwrap().leader_epoch(), 0);
        let change = |leader| {
            MetadataRecord::PartitionChange(crate::metadata::PartitionChange {
                topic_id: id,
                partition_id: 0,
                leader: Some(leader),
                isr: None,
                expected_partition_epoch: None,
            })
        };
        let (leaderless, delta) = image.apply(&[change(-1)]).unwrap();
        manager.apply_delta(&leaderless, &delta, &config).unwrap();
        let topic = manager.topic("t").unwrap();
        let refused = partition_of(Some(&topic), 0).map(|_| ()).unwrap_err();
        assert_eq!(refused.code, ResponseError::NotLeaderOrFollower);
        let (image, delta) = leaderless.apply(&[change(1)]).unwrap();
        manager.apply_delta(&image, &delta, &config).unwrap();
        let topic = manager.topic("t").unwrap();
        assert_eq!(partition_of(Some(&topic), 0).unwrap().leader_epoch(), 2);
        manager.flush_all().unwrap();
        manager.mark_clean_shutdown().unwrap();
        drop(manager);

        let manager =
            PartitionManager::open(1, dir.path(), &image, &config, metrics, None).unwrap();
        assert_eq!(manager.topic("t").unwrap().partitions.len(), 2);
        assert!(!dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
        let (gone, delta) = image
            .apply(&[MetadataRecord::RemoveTopic { topic_id: id }])
            .unwrap();
        manager.apply_delta(&gone, &delta, &config).unwrap();
        assert!(manager.topic("t").is_none());
        assert!(!dir.path().join("t-0").exists() && !dir.path().join("t-2").exists());
    }
}
