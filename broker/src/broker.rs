//! The broker's shared state: its identity, configuration and topics, and
//! the operations that change them (create, delete, add partitions, alter
//! configs). Handlers hold an `Arc<Broker>`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use strata_storage::{checkpoint, Log, CLEAN_SHUTDOWN_FILE};
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::coordinator::GroupCoordinator;
use crate::error::{ApiError, BrokerError};
use crate::metadata_store::{self, StoredTopic};
use crate::metrics::BrokerMetrics;
use crate::partition::Partition;

/// Kafka's file of per-partition recovery points (offsets below which the log
/// is known to be on disk), in the data directory.
const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// Kafka's file of per-partition log start offsets: where DeleteRecords and
/// retention left each log's first readable offset.
const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";

/// The end of the range of producer ids handed out so far. Ids are taken in
/// blocks (Kafka's controller allocates blocks of 1000 too) and the block's
/// end is persisted before any id of it is used, so no id is reused after a
/// restart.
const PRODUCER_ID_FILE: &str = "strata-producer-id-block";
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The next producer id and the end of the block it comes from.
#[derive(Debug)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Where clients reach this broker.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

/// A topic: its persisted description and its open partitions.
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
    pub fn partition(&self, index: i32) -> Option<&Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.get(i))
    }
}

/// Partition `index` of a topic a handler looked up once per request topic
/// (`None`: no such topic); UNKNOWN_TOPIC_OR_PARTITION if either is missing.
pub fn partition_of(topic: Option<&Topic>, index: i32) -> Result<&Arc<Partition>, ApiError> {
    topic
        .and_then(|t| t.partition(index))
        .ok_or_else(|| ApiError::from(ResponseError::UnknownTopicOrPartition))
}

/// The broker: identity, configuration and topics.
pub struct Broker {
    pub config: BrokerConfig,
    pub node_id: i32,
    pub cluster_id: String,
    pub endpoint: Endpoint,
    /// What `/metrics` reports; partitions hold handles into it.
    pub metrics: Arc<BrokerMetrics>,
    data_dir: PathBuf,
    /// Topics by name. Readers clone the `Arc<Topic>` they need and let go of
    /// the lock at once; changes replace a topic's `Arc` whole.
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Serialises changes to the topic set and the metadata file.
    admin: std::sync::Mutex<()>,
    producer_ids: std::sync::Mutex<ProducerIdBlock>,
    /// Consumer groups and their committed offsets.
    pub groups: Arc<GroupCoordinator>,
}

/// Milliseconds since the Unix epoch, as Kafka timestamps are.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Broker {
    /// Opens the data directory: reads the topic metadata, recovers every
    /// partition's log (only past its recovery point after an unclean stop),
    /// and removes what deleted topics left behind.
    pub fn open(
        config: BrokerConfig,
        data_dir: &Path,
        endpoint: Endpoint,
    ) -> Result<Broker, BrokerError> {
        fs::create_dir_all(data_dir)
            .map_err(|e| BrokerError::io(format!("creating {}", data_dir.display()), e))?;
        let node_id = config.node_id();
        let cluster_id = metadata_store::load_or_create_cluster_id(data_dir, node_id)?;
        let clean_marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean_shutdown = clean_marker.exists();
        let recovery_points = checkpoint::read(&data_dir.join(RECOVERY_POINT_FILE))?;
        let log_start_offsets = checkpoint::read(&data_dir.join(LOG_START_OFFSET_FILE))?;
        if !clean_shutdown {
            tracing::info!("no clean-shutdown marker: recovering logs past their recovery points");
        }

        let stored = metadata_store::load_topics(data_dir)?;
        remove_orphaned_partition_dirs(data_dir, &stored);
        let now = now_ms();
        let metrics = Arc::new(BrokerMetrics::new());
        let mut topics = BTreeMap::new();
        for stored_topic in stored {
            let log_config = config.log_config(&stored_topic.configs);
            let mut partitions = Vec::new();
            for index in 0..stored_topic.partitions {
                let dir = metadata_store::partition_dir(data_dir, &stored_topic.name, index);
                let recovery_point = recovery_points
                    .get(&(stored_topic.name.clone(), index))
                    .copied()
                    .unwrap_or(0);
                let mut log = Log::open(
                    &dir,
                    log_config.clone(),
                    recovery_point,
                    clean_shutdown,
                    now,
                )?;
                if let Some(&start) = log_start_offsets.get(&(stored_topic.name.clone(), index)) {
                    log.restore_log_start_offset(start);
                }
                partitions.push(Arc::new(Partition::new(
                    stored_topic.name.clone(),
                    index,
                    log,
                    metrics.topic(&stored_topic.name),
                )));
            }
            topics.insert(
                stored_topic.name.clone(),
                Arc::new(Topic {
                    stored: stored_topic,
                    partitions,
                }),
            );
        }
        // From here on the directory is in use: a crash must be recovered.
        if clean_shutdown {
            fs::remove_file(&clean_marker)
                .map_err(|e| BrokerError::io("removing the clean-shutdown marker", e))?;
        }
        let allocated = read_producer_id_block_end(data_dir)?;
        let broker = Broker {
            producer_ids: std::sync::Mutex::new(ProducerIdBlock {
                next: allocated,
                end: allocated,
            }),
            groups: Arc::new(GroupCoordinator::new(&config)),
            config,
            node_id,
            cluster_id,
            endpoint,
            metrics,
            data_dir: data_dir.to_path_buf(),
            topics: RwLock::new(topics),
            admin: std::sync::Mutex::new(()),
        };
        broker.write_checkpoints()?;
        broker
            .groups
            .restore(crate::coordinator::store::load(&broker)?);
        broker.metrics.set_group_source(broker.groups.clone());
        tracing::info!(
            topics = broker.topics().len(),
            data_dir = %data_dir.display(),
            "broker opened"
        );
        Ok(broker)
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

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Topic>>> {
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_admin(&self) -> std::sync::MutexGuard<'_, ()> {
        self.admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be).
    /// `partitions` and `replication_factor` of -1 take the broker defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config.num_partitions()
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let replication_factor = if replication_factor == -1 {
            self.config.default_replication_factor()
        } else {
            replication_factor
        };
        if replication_factor != 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "Replication factor: {replication_factor} larger than available brokers: 1."
                ),
            ));
        }
        crate::config::validate_topic_configs(&configs)
            .map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        let _admin = self.lock_admin();
        if self.topic(name).is_some() {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        if let Some(clash) = self.colliding_topic(name) {
            return Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {clash}"),
            ));
        }
        let stored = StoredTopic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            configs,
        };
        let topic = Arc::new(Topic {
            partitions: if validate_only {
                Vec::new()
            } else {
                self.open_partitions(&stored, 0..partitions)?
            },
            stored,
        });
        if validate_only {
            return Ok(topic);
        }
        self.commit_topic_change(|topics| {
            topics.insert(name.to_string(), topic.clone());
        })?;
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and its logs.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        if !self.config.delete_topic_enable() {
            return Err(ResponseError::TopicDeletionDisabled.into());
        }
        let admin = self.lock_admin();
        let topic = self
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        // Metadata first: a crash before the directories go leaves orphans
        // that the next start removes (their topic id is no longer known).
        self.commit_topic_change(|topics| {
            topics.remove(name);
        })?;
        self.metrics.remove_topic(name);
        for partition in &topic.partitions {
            let dir = partition.log().dir().to_path_buf();
            if let Err(error) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), %error, "could not remove partition directory");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        // Not under the admin lock: a group's lock is taken before it when
        // a commit creates __consumer_offsets.
        drop(admin);
        // Kafka deletes the committed offsets of a deleted topic, so that a
        // topic created again under the name starts without them.
        self.groups.forget_topic(self, name);
        Ok(topic.id())
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let _admin = self.lock_admin();
        let topic = self
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let current = topic.stored.partitions;
        if total <= current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {total}."
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let mut stored = topic.stored.clone();
        stored.partitions = total;
        let mut partitions = topic.partitions.clone();
        partitions.extend(self.open_partitions(&stored, current..total)?);
        let updated = Arc::new(Topic { stored, partitions });
        self.commit_topic_change(|topics| {
            topics.insert(name.to_string(), updated);
        })?;
        Ok(())
    }

    /// Replaces a topic's config overrides (already validated by the caller)
    /// and applies them to its logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let _admin = self.lock_admin();
        let topic = self
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let mut stored = topic.stored.clone();
        stored.configs = configs;
        let log_config = self.config.log_config(&stored.configs);
        let updated = Arc::new(Topic {
            stored,
            partitions: topic.partitions.clone(),
        });
        self.commit_topic_change(|topics| {
            topics.insert(name.to_string(), updated);
        })?;
        for partition in &topic.partitions {
            partition.set_config(log_config.clone());
        }
        Ok(())
    }

    /// Applies a change to the topic map and persists the result; the map is
    /// only changed when the metadata file was written.
    fn commit_topic_change(
        &self,
        change: impl FnOnce(&mut BTreeMap<String, Arc<Topic>>),
    ) -> Result<(), ApiError> {
        let mut next = self.read_topics().clone();
        change(&mut next);
        metadata_store::save_topics(&self.data_dir, next.values().map(|t| &t.stored)).map_err(
            |e| {
                tracing::error!(error = %e, "could not persist topic metadata");
                ApiError::new(ResponseError::KafkaStorageError, e.to_string())
            },
        )?;
        *self.write_topics() = next;
        Ok(())
    }

    fn open_partitions(
        &self,
        topic: &StoredTopic,
        range: std::ops::Range<i32>,
    ) -> Result<Vec<Arc<Partition>>, ApiError> {
        let log_config = self.config.log_config(&topic.configs);
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
                self.metrics.topic(&topic.name),
            )));
        }
        Ok(opened)
    }

    /// Kafka refuses topic names that differ only by '.' versus '_', since
    /// both map to the same metric names.
    fn colliding_topic(&self, name: &str) -> Option<String> {
        let normalized = name.replace('.', "_");
        self.read_topics()
            .keys()
            .find(|existing| existing.replace('.', "_") == normalized)
            .cloned()
    }

    /// A producer id never handed out before, for InitProducerId.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if block.next == block.end {
            let end = block.end + PRODUCER_ID_BLOCK;
            metadata_store::write_atomically(
                &self.data_dir.join(PRODUCER_ID_FILE),
                end.to_string().as_bytes(),
            )
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            block.end = end;
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
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
        let recovery_points = self.per_partition(Log::recovery_point);
        checkpoint::write(&self.data_dir.join(RECOVERY_POINT_FILE), &recovery_points)?;
        self.checkpoint_log_start_offsets()
    }

    /// Persists every partition's log start offset, so that records deleted
    /// by DeleteRecords or retention stay deleted after a restart.
    pub fn checkpoint_log_start_offsets(&self) -> Result<(), BrokerError> {
        let entries = self.per_partition(Log::log_start_offset);
        checkpoint::write(&self.data_dir.join(LOG_START_OFFSET_FILE), &entries)?;
        Ok(())
    }

    /// `(topic, partition, value)` for every partition, as checkpoints hold.
    fn per_partition(&self, value: impl Fn(&Log) -> i64) -> Vec<(String, i32, i64)> {
        let mut entries = Vec::new();
        for topic in self.topics() {
            for partition in &topic.partitions {
                entries.push((
                    topic.name().to_string(),
                    partition.index,
                    value(&partition.log()),
                ));
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

    /// Clean shutdown: flush every log, record recovery points, then leave
    /// the marker that lets the next start skip recovery.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        let _admin = self.lock_admin();
        for topic in self.topics() {
            for partition in &topic.partitions {
                partition.log().flush()?;
                partition.write_producer_snapshot();
            }
        }
        self.write_checkpoints()?;
        metadata_store::write_atomically(&self.data_dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn read_producer_id_block_end(data_dir: &Path) -> Result<i64, BrokerError> {
    let path = data_dir.join(PRODUCER_ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => text.trim().parse().map_err(|_| BrokerError::Metadata {
            path: path.display().to_string(),
            reason: format!("not a producer id: {text:?}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(BrokerError::io(format!("reading {}", path.display()), e)),
    }
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and
/// not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Removes partition directories whose `partition.metadata` names a topic id
/// that the metadata no longer has: the remains of a deletion interrupted by
/// a crash. Directories without that file are left alone, with a warning.
fn remove_orphaned_partition_dirs(data_dir: &Path, topics: &[StoredTopic]) {
    let known: HashMap<String, ()> = topics
        .iter()
        .map(|t| (metadata_store::encode_uuid(t.id), ()))
        .collect();
    let Ok(entries) = fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        match metadata_store::read_partition_topic_id(&path) {
            Some(id) if known.contains_key(&id) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "my-topic", "my_topic.v2", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "bad/name",
            "space name",
            "ü",
            &"x".repeat(250),
        ] {
            let error = validate_topic_name(bad).unwrap_err();
            assert_eq!(error.code, ResponseError::InvalidTopicException, "{bad}");
        }
    }
}
