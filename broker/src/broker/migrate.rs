//! The one-time move of a data directory written by an earlier release into
//! the metadata log: its topics (`strata-topics.json`) and the end of the
//! producer ids it handed out (`strata-producer-id-block`) become the log's
//! first batch, then both files are renamed with a `.migrated` suffix (kept,
//! not deleted, so that the move can be inspected or undone by hand).

use std::fs;
use std::path::Path;

use super::now_ms;
use super::records::{config_records, partition_record};
use crate::error::BrokerError;
use crate::metadata::{
    ConfigResource, MetadataImage, MetadataLog, MetadataRecord, METADATA_LOG_DIR,
};
use crate::metadata_store;
use crate::quorum::QUORUM_STATE_FILE;

/// Where an earlier release kept the end of the producer ids it handed out.
const PRODUCER_ID_FILE: &str = "strata-producer-id-block";
const MIGRATED_SUFFIX: &str = "migrated";

/// The records for what the earlier release's files hold (empty for a new
/// data directory).
pub(super) fn legacy_records(
    data_dir: &Path,
    node_id: i32,
) -> Result<Vec<MetadataRecord>, BrokerError> {
    let mut records = Vec::new();
    for topic in metadata_store::load_topics(data_dir)? {
        records.push(MetadataRecord::Topic {
            name: topic.name.clone(),
            topic_id: topic.id,
        });
        for index in 0..topic.partitions {
            records.push(partition_record(topic.id, index, vec![node_id]));
        }
        records.extend(config_records(
            &ConfigResource::Topic(topic.name.to_string()),
            &Default::default(),
            &topic.configs,
        ));
    }
    let producer_ids = read_producer_id_block_end(data_dir)?;
    if producer_ids > 0 {
        records.push(MetadataRecord::ProducerIds {
            broker_id: node_id,
            next_producer_id: producer_ids,
        });
    }
    Ok(records)
}

/// Where the metadata log written before Raft is kept while it is moved.
const PRE_RAFT_DIR: &str = "__cluster_metadata-0.pre-raft";

/// The records of a metadata log written before the Raft quorum (one batch
/// of records per change, no `quorum-state`), as the records of the image
/// it replays to; the log is moved aside for the quorum to start a new one.
/// A move cut short by a crash is started again from the moved-aside log.
pub(super) fn take_pre_raft_log(
    data_dir: &Path,
) -> Result<Option<Vec<MetadataRecord>>, BrokerError> {
    let current = data_dir.join(METADATA_LOG_DIR);
    let aside = data_dir.join(PRE_RAFT_DIR);
    let io = |what: &str, e| BrokerError::io(format!("{what} the metadata log before Raft"), e);
    if !aside.exists() {
        let unstarted = !current.join(QUORUM_STATE_FILE).exists();
        // A log of Raft entries does not read as metadata records.
        match unstarted.then(|| MetadataLog::open(data_dir, now_ms())) {
            Some(Ok((_, batches))) if !batches.is_empty() => {}
            _ => return Ok(None),
        }
        fs::rename(&current, &aside).map_err(|e| io("moving aside", e))?;
    } else if current.exists() {
        fs::remove_dir_all(&current).map_err(|e| io("starting again from", e))?;
    }
    let (_, batches) = MetadataLog::open_dir(&aside, now_ms())?;
    let mut image = MetadataImage::default();
    for batch in &batches {
        image = image.apply(batch)?.0;
    }
    Ok(Some(image.to_records()))
}

/// Deletes the log written before Raft once its records are in the new one.
pub(super) fn remove_pre_raft_log(data_dir: &Path) {
    let aside = data_dir.join(PRE_RAFT_DIR);
    if aside.exists() {
        if let Err(error) = fs::remove_dir_all(&aside) {
            tracing::warn!(dir = %aside.display(), %error, "could not remove");
        }
    }
}

/// Renames the earlier release's files once the log holds their content.
pub(super) fn retire_legacy_files(data_dir: &Path) {
    for name in [metadata_store::TOPICS_FILE, PRODUCER_ID_FILE] {
        let path = data_dir.join(name);
        if path.exists() {
            let retired = data_dir.join(format!("{name}.{MIGRATED_SUFFIX}"));
            match fs::rename(&path, &retired) {
                Ok(()) => {
                    tracing::info!(from = %path.display(), to = %retired.display(), "moved into the metadata log")
                }
                Err(error) => {
                    tracing::warn!(file = %path.display(), %error, "could not rename a migrated file")
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use uuid::Uuid;

    use crate::metadata_store::{self, StoredTopic};
    use crate::test_support::{one_record_batch, open_broker};

    /// A data directory of the release before the metadata log: topics in
    /// `strata-topics.json`, producer ids in `strata-producer-id-block`.
    fn legacy_dir() -> (tempfile::TempDir, StoredTopic) {
        let dir = tempfile::tempdir().unwrap();
        let topic = StoredTopic {
            name: "orders".into(),
            id: Uuid::new_v4(),
            partitions: 2,
            configs: BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
        };
        metadata_store::save_topics(dir.path(), [&topic]).unwrap();
        std::fs::write(dir.path().join("strata-producer-id-block"), "2000").unwrap();
        (dir, topic)
    }

    #[test]
    fn an_earlier_release_s_topics_move_into_the_metadata_log_once() {
        let (dir, legacy) = legacy_dir();
        // The earlier release wrote partition directories with data in them.
        for index in 0..legacy.partitions {
            let partition = metadata_store::partition_dir(dir.path(), &legacy.name, index);
            std::fs::create_dir_all(&partition).unwrap();
            metadata_store::write_partition_metadata(&partition, legacy.id).unwrap();
        }
        {
            let broker = open_broker(dir.path());
            let topic = broker.topic("orders").expect("migrated");
            assert_eq!(topic.stored, legacy);
            let partition = topic.partition(1).unwrap();
            partition
                .log()
                .append(&mut one_record_batch(None, Some("v"), 1), 0, 1)
                .unwrap();
            // Ids below the earlier release's block end are never handed out.
            assert_eq!(broker.allocate_producer_id().unwrap(), 2000);
            broker.shutdown().unwrap();
        }
        assert!(!dir.path().join(metadata_store::TOPICS_FILE).exists());
        assert!(dir.path().join("strata-topics.json.migrated").exists());
        assert!(dir
            .path()
            .join("strata-producer-id-block.migrated")
            .exists());
        let broker = open_broker(dir.path());
        let topic = broker.topic("orders").expect("kept after a restart");
        assert_eq!(topic.stored, legacy);
        assert_eq!(topic.partition(1).unwrap().log().log_end_offset(), 1);
        assert_eq!(broker.allocate_producer_id().unwrap(), 3000);
    }

    /// The metadata log before Raft: one batch of records per change.
    #[test]
    fn a_metadata_log_written_before_raft_moves_into_the_quorum_s_log() {
        use crate::metadata::{MetadataLog, MetadataRecord, METADATA_LOG_DIR};
        use crate::quorum::QUORUM_STATE_FILE;

        let dir = tempfile::tempdir().unwrap();
        let (kept, gone) = (Uuid::new_v4(), Uuid::new_v4());
        {
            let (mut log, _) = MetadataLog::open(dir.path(), 0).unwrap();
            let topic = |name: &str, topic_id| MetadataRecord::Topic {
                name: name.into(),
                topic_id,
            };
            let partition = |id| super::partition_record(id, 0, vec![1]);
            log.append(&[topic("kept", kept), partition(kept)], 0, 1)
                .unwrap();
            log.append(&[topic("gone", gone), partition(gone)], 0, 2)
                .unwrap();
            log.append(&[MetadataRecord::RemoveTopic { topic_id: gone }], 0, 3)
                .unwrap();
        }
        let metadata = dir.path().join(METADATA_LOG_DIR);
        assert!(!metadata.join(QUORUM_STATE_FILE).exists());
        {
            let broker = open_broker(dir.path());
            assert_eq!(broker.topic("kept").expect("moved").id(), kept);
            assert!(broker.topic("gone").is_none());
        }
        assert!(metadata.join(QUORUM_STATE_FILE).exists());
        assert!(!dir.path().join(super::PRE_RAFT_DIR).exists());
        let broker = open_broker(dir.path());
        assert_eq!(
            broker.topic("kept").expect("kept after a restart").id(),
            kept
        );
        assert_eq!(broker.topics().len(), 1);
    }

    #[test]
    fn changes_survive_a_restart_through_the_log() {
        let dir = tempfile::tempdir().unwrap();
        {
            let broker = open_broker(dir.path());
            broker
                .create_topic("a", 1, -1, BTreeMap::new(), false)
                .unwrap();
            broker
                .create_topic("b", 2, -1, BTreeMap::new(), false)
                .unwrap();
            broker.create_partitions("a", 3, false).unwrap();
            let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            broker.set_topic_configs("a", configs).unwrap();
            broker.delete_topic("b").unwrap();
        }
        let broker = open_broker(dir.path());
        assert!(broker.topic("b").is_none());
        assert!(!metadata_store::partition_dir(dir.path(), "b", 0).exists());
        let a = broker.topic("a").unwrap();
        assert_eq!(a.partition_count(), 3);
        assert_eq!(a.stored.configs["cleanup.policy"], "compact");
        let image = broker.image();
        let registered = image.broker(broker.node_id).expect("registered");
        assert_eq!(registered.endpoints[0].port, 9092);
        assert_eq!(
            image.topic("a").unwrap().partitions[&2].replicas,
            vec![broker.node_id]
        );
    }
}
