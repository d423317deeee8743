//! The data directory's small metadata files.
//!
//! Files in the data directory:
//! - `meta.properties`: Kafka's format (`version`, `node.id`, `cluster.id`),
//!   written once when the directory is first used.
//! - `strata-topics.json`: where releases before the metadata log kept every
//!   topic's name, id, partition count and config overrides; read once, to
//!   move them into the metadata log (`crate::metadata`).
//! - `<topic>-<partition>/partition.metadata`: Kafka's per-partition file
//!   naming the topic id, so a directory left over from a deleted topic can be
//!   told apart from one of a topic of the same name created later.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::BrokerError;

/// Where releases before the metadata log kept their topics.
pub const TOPICS_FILE: &str = "strata-topics.json";
const META_PROPERTIES: &str = "meta.properties";
pub const PARTITION_METADATA: &str = "partition.metadata";

/// One topic as persisted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredTopic {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<StoredTopic>,
}

/// Reads the topics file; a data directory without one has no topics.
pub fn load_topics(data_dir: &Path) -> Result<Vec<StoredTopic>, BrokerError> {
    let path = data_dir.join(TOPICS_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(BrokerError::io(format!("reading {}", path.display()), e)),
    };
    let file: TopicsFile = serde_json::from_str(&text).map_err(|e| BrokerError::Metadata {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(file.topics)
}

/// Replaces the topics file atomically, as releases before the metadata log
/// did (the migration's tests write one).
#[cfg(test)]
pub fn save_topics<'a>(
    data_dir: &Path,
    topics: impl IntoIterator<Item = &'a StoredTopic>,
) -> Result<(), BrokerError> {
    let file = TopicsFile {
        topics: topics.into_iter().cloned().collect(),
    };
    let text = serde_json::to_string_pretty(&file).map_err(|e| BrokerError::Metadata {
        path: TOPICS_FILE.into(),
        reason: e.to_string(),
    })?;
    write_atomically(&data_dir.join(TOPICS_FILE), text.as_bytes())
}

/// The cluster id in the data directory's `meta.properties` (Kafka's file),
/// `None` for a new directory. A file of another node is refused.
pub fn read_cluster_id(data_dir: &Path, node_id: i32) -> Result<Option<String>, BrokerError> {
    let path = data_dir.join(META_PROPERTIES);
    match fs::read_to_string(&path) {
        Ok(text) => {
            let properties = parse_simple_properties(&text);
            if let Some(stored) = properties.get("node.id") {
                if stored != &node_id.to_string() {
                    return Err(BrokerError::Metadata {
                        path: path.display().to_string(),
                        reason: format!(
                            "data directory belongs to node.id {stored}, not {node_id}"
                        ),
                    });
                }
            }
            properties
                .get("cluster.id")
                .cloned()
                .map(Some)
                .ok_or_else(|| BrokerError::Metadata {
                    path: path.display().to_string(),
                    reason: "no cluster.id".into(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BrokerError::io(format!("reading {}", path.display()), e)),
    }
}

/// Writes `meta.properties` for a directory that joined cluster `cluster_id`.
pub fn write_meta_properties(
    data_dir: &Path,
    node_id: i32,
    cluster_id: &str,
) -> Result<(), BrokerError> {
    let text = format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n");
    write_atomically(&data_dir.join(META_PROPERTIES), text.as_bytes())
}

/// Writes `partition.metadata` (Kafka's format) into a partition directory.
pub fn write_partition_metadata(partition_dir: &Path, topic_id: Uuid) -> Result<(), BrokerError> {
    let text = format!("version: 0\ntopic_id: {}\n", encode_uuid(topic_id));
    write_atomically(&partition_dir.join(PARTITION_METADATA), text.as_bytes())
}

/// The topic id named by a partition directory's `partition.metadata`.
pub fn read_partition_topic_id(partition_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(partition_dir.join(PARTITION_METADATA)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
}

/// Kafka prints topic and cluster ids as URL-safe base64 without padding.
pub fn encode_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let mut group = [0u8; 3];
        group[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, group[0], group[1], group[2]]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The directory of one partition's log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

fn parse_simple_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Write to a temporary file, fsync it, rename over the target, fsync the
/// directory: readers see the old or the new content, never a torn one.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), BrokerError> {
    let tmp = path.with_extension("tmp");
    let context = || format!("writing {}", path.display());
    let mut file = fs::File::create(&tmp).map_err(|e| BrokerError::io(context(), e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| BrokerError::io(context(), e))?;
    fs::rename(&tmp, path).map_err(|e| BrokerError::io(context(), e))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| BrokerError::io(context(), e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_encoding_matches_kafka_base64() {
        // 16 zero bytes encode to 22 'A's in URL-safe base64 without padding.
        assert_eq!(encode_uuid(Uuid::nil()), "A".repeat(22));
        let id = Uuid::from_bytes([0xff; 16]);
        assert_eq!(encode_uuid(id), format!("{}w", "_".repeat(21)));
    }

    #[test]
    fn topics_round_trip_and_cluster_id_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_topics(dir.path()).unwrap().is_empty());
        let topic = StoredTopic {
            name: "a".into(),
            id: Uuid::new_v4(),
            partitions: 3,
            configs: [("segment.bytes".to_string(), "1024".to_string())].into(),
        };
        save_topics(dir.path(), [&topic]).unwrap();
        assert_eq!(load_topics(dir.path()).unwrap(), vec![topic]);

        assert_eq!(read_cluster_id(dir.path(), 1).unwrap(), None);
        write_meta_properties(dir.path(), 1, "abc").unwrap();
        assert_eq!(
            read_cluster_id(dir.path(), 1).unwrap().as_deref(),
            Some("abc")
        );
        assert!(read_cluster_id(dir.path(), 2).is_err());
    }

    #[test]
    fn partition_metadata_names_the_topic_id() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        write_partition_metadata(dir.path(), id).unwrap();
        assert_eq!(read_partition_topic_id(dir.path()), Some(encode_uuid(id)));
    }
}
