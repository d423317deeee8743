//! The data directory's small metadata files.
//!
//! Files in the data directory:
//! - `meta.properties`: Kafka's format (`version`, `node.id`, `cluster.id`,
//!   `directory.id`), written when the directory joins a cluster.
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

/// What a data directory's `meta.properties` (Kafka's file) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// `None` for a directory that has not joined a cluster yet.
    pub cluster_id: Option<String>,
    /// The directory's own id (KIP-858's `directory.id`): it tells a node
    /// restarting on its directory from another node given the same
    /// `node.id`.
    pub directory_id: Uuid,
}

/// Reads `meta.properties`, refusing a file of another node. A directory
/// without an id of its own (new, or of an earlier release) is given one;
/// an existing file is rewritten with it at once.
pub fn read_meta_properties(data_dir: &Path, node_id: i32) -> Result<MetaProperties, BrokerError> {
    let path = data_dir.join(META_PROPERTIES);
    let invalid = |reason: String| BrokerError::Metadata {
        path: path.display().to_string(),
        reason,
    };
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(MetaProperties {
                cluster_id: None,
                directory_id: Uuid::new_v4(),
            })
        }
        Err(e) => return Err(BrokerError::io(format!("reading {}", path.display()), e)),
    };
    let properties = parse_simple_properties(&text);
    if let Some(stored) = properties.get("node.id") {
        if stored != &node_id.to_string() {
            return Err(invalid(format!(
                "data directory belongs to node.id {stored}, not {node_id}"
            )));
        }
    }
    let cluster_id = properties
        .get("cluster.id")
        .cloned()
        .ok_or_else(|| invalid("no cluster.id".into()))?;
    let directory_id = match properties.get("directory.id") {
        Some(id) => decode_uuid(id).ok_or_else(|| invalid(format!("directory.id {id}")))?,
        None => {
            let id = Uuid::new_v4();
            write_meta_properties(data_dir, node_id, &cluster_id, id)?;
            id
        }
    };
    Ok(MetaProperties {
        cluster_id: Some(cluster_id),
        directory_id,
    })
}

/// Writes `meta.properties` for a directory that joined cluster `cluster_id`.
pub fn write_meta_properties(
    data_dir: &Path,
    node_id: i32,
    cluster_id: &str,
    directory_id: Uuid,
) -> Result<(), BrokerError> {
    let text = format!(
        "version=1\nnode.id={node_id}\ncluster.id={cluster_id}\ndirectory.id={}\n",
        encode_uuid(directory_id)
    );
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

/// The id [`encode_uuid`] printed; `None` for anything else.
pub fn decode_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, c) in text.bytes().enumerate() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        if i < 21 {
            bits = (bits << 6) | u128::from(value);
        } else {
            // 22 characters hold 132 bits: the last 4 are padding, zero.
            if value & 0xf != 0 {
                return None;
            }
            bits = (bits << 2) | u128::from(value >> 4);
        }
    }
    Some(Uuid::from_u128(bits))
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

        let new = read_meta_properties(dir.path(), 1).unwrap();
        assert_eq!(new.cluster_id, None);
        write_meta_properties(dir.path(), 1, "abc", new.directory_id).unwrap();
        let stored = read_meta_properties(dir.path(), 1).unwrap();
        assert_eq!(stored.cluster_id.as_deref(), Some("abc"));
        assert_eq!(stored.directory_id, new.directory_id);
        assert!(read_meta_properties(dir.path(), 2).is_err());
    }

    #[test]
    fn a_directory_of_an_earlier_release_is_given_an_id_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_PROPERTIES);
        fs::write(&path, "version=1\nnode.id=1\ncluster.id=abc\n").unwrap();
        let first = read_meta_properties(dir.path(), 1).unwrap();
        assert_eq!(first.cluster_id.as_deref(), Some("abc"));
        assert!(fs::read_to_string(&path).unwrap().contains("directory.id="));
        assert_eq!(read_meta_properties(dir.path(), 1).unwrap(), first);
    }

    #[test]
    fn uuids_decode_as_they_encode() {
        for id in [Uuid::nil(), Uuid::from_bytes([0xff; 16]), Uuid::new_v4()] {
            assert_eq!(decode_uuid(&encode_uuid(id)), Some(id));
        }
        assert_eq!(decode_uuid("short"), None);
        assert_eq!(decode_uuid(&format!("{}x", "A".repeat(21))), None);
        assert_eq!(decode_uuid(&format!("{}!", "A".repeat(21))), None);
    }

    #[test]
    fn partition_metadata_names_the_topic_id() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        write_partition_metadata(dir.path(), id).unwrap();
        assert_eq!(read_partition_topic_id(dir.path()), Some(encode_uuid(id)));
    }
}
