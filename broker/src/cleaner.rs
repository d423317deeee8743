//! The log cleaner: a background task that compacts the logs of compacted topics
//! (`cleanup.policy` holding `compact`), as Kafka's log cleaner does.
//!
//! Every `log.cleaner.backoff.ms` it walks the partitions, one at a time, and asks
//! each log whether it needs cleaning ([`Log::plan_cleaning`]: dirty ratio,
//! `min.compaction.lag.ms`, `max.compaction.lag.ms`). A cleaning runs on a blocking
//! thread; the partition lock is taken only to plan it and to swap each cleaned
//! segment in, so produce and fetch wait at most for a swap (a few renames).
//!
//! Where each log's dirty section starts (its *first dirty offset*) is kept in Kafka's
//! `cleaner-offset-checkpoint` file in the data directory, written after every round
//! that cleaned something. A log that kept tombstones is cleaned again when the first
//! of them expires (`delete.retention.ms`), even if it is not dirty enough then; that
//! time is only kept in memory, so after a restart such tombstones wait for the next
//! cleaning the dirty ratio triggers. A log whose cleaning fails (a corrupt batch, an
//! I/O error) is left alone until the broker restarts, as Kafka marks it uncleanable.
//!
//! `log.cleaner.enable=false` turns the task off.
//!
//! [`Log::plan_cleaning`]: strata_storage::Log::plan_cleaning

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use strata_storage::{checkpoint, CleanStats, StorageError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::{now_ms, Broker};
use crate::config::registry::{self, Value};
use crate::config::BrokerConfig;
use crate::partition::Partition;

/// Kafka's name for the file of first dirty offsets, in the data directory.
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// A partition, as the checkpoint file names it.
type PartitionKey = (String, i32);

/// The cleaner's settings, from the broker configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanerSettings {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.backoff.ms`: the pause between two rounds.
    pub backoff: Duration,
}

impl CleanerSettings {
    pub fn from_config(config: &BrokerConfig) -> CleanerSettings {
        let enabled = matches!(setting(config, "log.cleaner.enable"), Value::Bool(true));
        let backoff_ms = match setting(config, "log.cleaner.backoff.ms") {
            Value::Integer(ms) => u64::try_from(ms).unwrap_or(0),
            _ => 15_000,
        };
        CleanerSettings {
            enabled,
            backoff: Duration::from_millis(backoff_ms),
        }
    }
}

/// A broker property's value: as set, else its registry default.
fn setting(config: &BrokerConfig, name: &str) -> Value {
    let key = registry::broker_key(name).expect("the cleaner's settings are in BROKER_CONFIGS");
    config
        .get(name)
        .and_then(|value| registry::parse_value(key, value).ok())
        .or_else(|| {
            key.default
                .and_then(|value| registry::parse_value(key, value).ok())
        })
        .expect("registry defaults parse (registry tests)")
}

/// Runs the cleaner until `stopped` turns true. A round in progress stops between two
/// segment groups; what it already swapped in stays (each swap is complete), and the
/// first dirty offset of that log is not moved.
pub async fn run(broker: Arc<Broker>, mut stopped: watch::Receiver<bool>) {
    let settings = CleanerSettings::from_config(&broker.config());
    if !settings.enabled {
        tracing::info!("log cleaner disabled (log.cleaner.enable=false)");
        return;
    }
    let data_dir = broker.data_dir().to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || LogCleaner::load(data_dir)).await;
    let mut cleaner = match loaded {
        Ok(cleaner) => cleaner,
        Err(error) => {
            tracing::error!(%error, "log cleaner did not start");
            return;
        }
    };
    loop {
        if *stopped.borrow() {
            return;
        }
        let round_broker = broker.clone();
        let round_stopped = stopped.clone();
        let round = tokio::task::spawn_blocking(move || {
            cleaner.clean_round(&round_broker, &round_stopped);
            cleaner
        })
        .await;
        cleaner = match round {
            Ok(cleaner) => cleaner,
            Err(error) => {
                tracing::error!(%error, "log cleaner round panicked; cleaner stopped");
                return;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(settings.backoff) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// What the cleaner remembers between rounds.
pub struct LogCleaner {
    checkpoint_path: PathBuf,
    /// The first dirty offset of each log cleaned so far (or checkpointed).
    first_dirty: HashMap<PartitionKey, i64>,
    /// The topic id each entry of `first_dirty` belongs to, once seen: a topic
    /// deleted and created again under its name starts over.
    topic_ids: HashMap<String, Uuid>,
    /// When the first tombstone kept in each log may go.
    tombstone_expiry: HashMap<PartitionKey, i64>,
    /// Logs whose cleaning failed; skipped until a restart.
    uncleanable: HashSet<PartitionKey>,
}

impl LogCleaner {
    /// Reads `cleaner-offset-checkpoint` from `data_dir`; an unreadable file is logged
    /// and ignored (every log then counts as dirty from its start, as in Kafka).
    pub fn load(data_dir: PathBuf) -> LogCleaner {
        let checkpoint_path = data_dir.join(CLEANER_CHECKPOINT_FILE);
        let first_dirty = checkpoint::read(&checkpoint_path).unwrap_or_else(|error| {
            tracing::warn!(%error, "ignoring unreadable cleaner checkpoint");
            HashMap::new()
        });
        LogCleaner {
            checkpoint_path,
            first_dirty,
            topic_ids: HashMap::new(),
            tombstone_expiry: HashMap::new(),
            uncleanable: HashSet::new(),
        }
    }

    /// The first dirty offset recorded for a partition, if any.
    pub fn first_dirty_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.first_dirty
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Cleans every log that needs it, one at a time, then writes the checkpoint if
    /// anything moved.
    pub fn clean_round(&mut self, broker: &Broker, stopped: &watch::Receiver<bool>) {
        let mut moved = false;
        for topic in broker.topics() {
            self.forget_if_recreated(topic.name(), topic.id());
            for partition in &topic.partitions {
                if *stopped.borrow() {
                    break;
                }
                let key = (topic.name().to_string(), partition.index);
                if self.uncleanable.contains(&key) {
                    continue;
                }
                match self.clean_partition(partition, &key, stopped) {
                    Ok(Some(stats)) => {
                        moved = true;
                        if stats.segments_written > 0 || stats.groups_abandoned > 0 {
                            tracing::info!(
                                topic = %key.0,
                                partition = key.1,
                                segments_cleaned = stats.segments_cleaned,
                                segments_written = stats.segments_written,
                                records_removed = stats.records_removed,
                                tombstones_removed = stats.tombstones_removed,
                                bytes_read = stats.bytes_read,
                                bytes_written = stats.bytes_written,
                                first_dirty_offset = stats.first_dirty_offset,
                                "cleaned log"
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(error) => {
                        tracing::error!(topic = %key.0, partition = key.1, %error, "log cleaning failed; leaving this log alone until restart");
                        self.uncleanable.insert(key);
                    }
                }
            }
        }
        if moved {
            self.write_checkpoint(broker);
        }
    }

    /// A topic deleted and created again under the same name while the broker ran
    /// starts without the old topic's first dirty offsets.
    fn forget_if_recreated(&mut self, name: &str, id: Uuid) {
        let previous = self.topic_ids.insert(name.to_string(), id);
        if previous.is_some_and(|previous| previous != id) {
            self.first_dirty.retain(|(topic, _), _| topic != name);
            self.tombstone_expiry.retain(|(topic, _), _| topic != name);
            self.uncleanable.retain(|(topic, _)| topic != name);
        }
    }

    /// Cleans one log if it needs it. `None` when it did not (or was interrupted).
    fn clean_partition(
        &mut self,
        partition: &Partition,
        key: &PartitionKey,
        stopped: &watch::Receiver<bool>,
    ) -> Result<Option<CleanStats>, StorageError> {
        let now = now_ms();
        // No entry: -1 is below every log start offset, so the log starts dirty.
        let first_dirty = self.first_dirty.get(key).copied().unwrap_or(-1);
        let force = self
            .tombstone_expiry
            .get(key)
            .is_some_and(|&expiry| expiry <= now);
        let plan = partition.log().plan_cleaning(first_dirty, now, force)?;
        let Some(mut job) = plan else {
            return Ok(None);
        };
        while let Some(group) = job.clean_next_group()? {
            if *stopped.borrow() {
                // Dropping the group deletes its files; the checkpoint stays put.
                return Ok(None);
            }
            job.swap(&mut partition.log(), group)?;
        }
        let stats = job.finish();
        self.first_dirty
            .insert(key.clone(), stats.first_dirty_offset);
        match stats.next_tombstone_expiry_ms {
            Some(expiry) => self.tombstone_expiry.insert(key.clone(), expiry),
            None => self.tombstone_expiry.remove(key),
        };
        Ok(Some(stats))
    }

    /// Writes the first dirty offsets of the partitions that still exist.
    fn write_checkpoint(&mut self, broker: &Broker) {
        let existing: HashMap<PartitionKey, ()> = broker
            .topics()
            .iter()
            .flat_map(|topic| {
                let name = topic.name().to_string();
                topic
                    .partitions
                    .iter()
                    .map(move |partition| ((name.clone(), partition.index), ()))
            })
            .collect();
        self.first_dirty.retain(|key, _| existing.contains_key(key));
        let mut entries: Vec<(String, i32, i64)> = self
            .first_dirty
            .iter()
            .map(|((topic, partition), offset)| (topic.clone(), *partition, *offset))
            .collect();
        entries.sort();
        if let Err(error) = checkpoint::write(&self.checkpoint_path, &entries) {
            tracing::error!(%error, "could not write the cleaner checkpoint");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::test_support::{one_record_batch, open_broker};

    #[test]
    fn settings_default_to_kafkas() {
        let defaults = CleanerSettings::from_config(&BrokerConfig::new());
        assert!(defaults.enabled);
        assert_eq!(defaults.backoff, Duration::from_millis(15_000));
        let mut config = BrokerConfig::new();
        config.set("log.cleaner.enable", "false").expect("valid");
        config.set("log.cleaner.backoff.ms", "100").expect("valid");
        let set = CleanerSettings::from_config(&config);
        assert!(!set.enabled);
        assert_eq!(set.backoff, Duration::from_millis(100));
        assert!(config.set("log.cleaner.backoff.ms", "-1").is_err());
    }

    #[test]
    fn a_round_cleans_compacted_logs_and_checkpoints_their_first_dirty_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = open_broker(dir.path());
        let compacted = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("min.cleanable.dirty.ratio".to_string(), "0.01".to_string()),
        ]);
        for (name, configs) in [("kept", compacted), ("plain", BTreeMap::new())] {
            let topic = broker
                .create_topic(name, 1, 1, configs, false)
                .expect("create");
            let partition = topic.partition(0).expect("partition 0");
            let now = now_ms();
            for value in ["1", "2", "3"] {
                partition
                    .append(&mut one_record_batch(Some("k"), Some(value), now), now)
                    .expect("append");
            }
            partition.log().roll(now).expect("roll");
        }
        let (_stop, stopped) = watch::channel(false);
        let mut cleaner = LogCleaner::load(dir.path().to_path_buf());
        cleaner.clean_round(&broker, &stopped);
        assert_eq!(cleaner.first_dirty_offset("kept", 0), Some(3));
        assert_eq!(cleaner.first_dirty_offset("plain", 0), None);
        let topic = broker.topic("kept").expect("topic");
        let partition = topic.partition(0).expect("partition 0");
        let read = partition.log().read(0, usize::MAX, true).expect("read");
        let records = strata_storage::batch::validate_all(&read).expect("valid");
        assert_eq!(records.len(), 1, "only the latest value of k is left");
        let plain = broker.topic("plain").expect("topic");
        let plain_read = plain
            .partition(0)
            .expect("partition 0")
            .log()
            .read(0, usize::MAX, true)
            .expect("read");
        assert_eq!(
            strata_storage::batch::validate_all(&plain_read)
                .expect("valid")
                .len(),
            3,
            "delete-policy topics are not compacted"
        );
        let saved = checkpoint::read(&dir.path().join(CLEANER_CHECKPOINT_FILE)).expect("read");
        assert_eq!(saved.get(&("kept".to_string(), 0)), Some(&3));
        // A restarted cleaner starts from the checkpoint: nothing dirty, nothing done.
        let mut restarted = LogCleaner::load(dir.path().to_path_buf());
        assert_eq!(restarted.first_dirty_offset("kept", 0), Some(3));
        restarted.clean_round(&broker, &stopped);
        assert_eq!(restarted.first_dirty_offset("kept", 0), Some(3));
    }
}
