//! `__consumer_offsets`: where groups and their committed offsets live.
//!
//! The topic is created on first use (a FindCoordinator for a group, or the
//! first write), compacted, with `offsets.topic.num.partitions` partitions;
//! a group's records go to partition `abs(hashCode(group id)) % partitions`,
//! as in Kafka, so a data directory's groups can be read by Kafka's tools
//! and vice versa. Keys and values use Kafka's schemas
//! (Kafka's key and value schemas, `group/records.rs`); a null value deletes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::records::{Compression, Record};
use strata_storage::{encode_plain_batch, for_each_decoded_batch, plain_record};

use crate::clock::now_ms;
use crate::error::{ApiError, BrokerError};
use crate::group::{
    decode_group_value, decode_key, decode_offset_value, GroupValue, OffsetValue, OffsetsKey,
    RecordError,
};
use crate::partition::Partition;

/// The internal topic's name, as Kafka's.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// What the coordinator needs of the broker, and all it knows of it: the
/// partitions of `__consumer_offsets` and which partitions exist.
pub trait OffsetsLog: Send + Sync {
    /// The partition holding `group_id`'s records (Kafka's
    /// `abs(hashCode(group id)) % partitions`), the topic created first if
    /// `create`; `Ok(None)` when the topic does not exist and `create` is
    /// false. COORDINATOR_NOT_AVAILABLE when it cannot be had here.
    fn group_partition(
        &self,
        group_id: &str,
        create: bool,
    ) -> Result<Option<Arc<Partition>>, ApiError>;

    /// Whether `topic` has partition `partition` (offsets are committed for
    /// existing partitions only).
    fn has_partition(&self, topic: &str, partition: i32) -> bool;
}

/// Appends `records` (key, value or None to delete) for `group_id` as one
/// batch to the group's partition. The error is the one an OffsetCommit
/// carries when its write fails, mapped as Kafka maps log errors for it.
pub fn append(
    log: &dyn OffsetsLog,
    group_id: &str,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<(), ApiError> {
    if records.is_empty() {
        return Ok(());
    }
    // Deleting from a topic that does not exist yet: nothing to delete.
    let create = records.iter().any(|(_, value)| value.is_some());
    let Some(partition) = log.group_partition(group_id, create)? else {
        return Ok(());
    };
    let now = now_ms();
    let records: Vec<Record> = records
        .into_iter()
        .map(|(key, value)| plain_record(Some(key), value, now))
        .collect();
    let mut batch = encode_plain_batch(&records, Compression::None)
        .map_err(|error| ApiError::new(ResponseError::UnknownServerError, error.to_string()))?;
    partition
        .append(&mut batch, now)
        .map(|_| ())
        .map_err(|error| {
            tracing::error!(group = group_id, %error, "could not write to {OFFSETS_TOPIC}");
            if matches!(
                error.code,
                ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge
            ) {
                ApiError::from(ResponseError::InvalidCommitOffsetSize)
            } else {
                ApiError::from(ResponseError::CoordinatorNotAvailable)
            }
        })
}

/// One group as read back from the topic.
#[derive(Debug, Default)]
pub struct LoadedGroup {
    /// The last group metadata record, unless deleted.
    pub metadata: Option<GroupValue>,
    /// The last committed offset per (topic, partition), unless deleted.
    pub offsets: BTreeMap<(String, i32), OffsetValue>,
}

/// Reads one partition of the topic from its start: the last record per
/// key wins and a null value deletes, which is what compaction keeps too.
/// Records the broker cannot decode (a newer Kafka's group types) are
/// skipped with a warning.
pub fn load(partition: &Partition) -> Result<BTreeMap<String, LoadedGroup>, BrokerError> {
    let mut groups: BTreeMap<String, LoadedGroup> = BTreeMap::new();
    let mut skipped = 0usize;
    let log = partition.log();
    for_each_decoded_batch(&log, |_, records| {
        let Ok(records) = records else {
            skipped += 1;
            return Ok::<(), BrokerError>(());
        };
        for record in records {
            if apply(&mut groups, record.key.as_deref(), record.value.as_deref()).is_err() {
                skipped += 1;
            }
        }
        Ok(())
    })?;
    drop(log);
    if skipped > 0 {
        tracing::warn!(skipped, "{OFFSETS_TOPIC}: skipped records of unknown kinds");
    }
    groups.retain(|_, group| group.metadata.is_some() || !group.offsets.is_empty());
    Ok(groups)
}

/// Applies one record to the groups being loaded.
fn apply(
    groups: &mut BTreeMap<String, LoadedGroup>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), RecordError> {
    let key = decode_key(key.unwrap_or_default())?;
    match key {
        OffsetsKey::Offset {
            group,
            topic,
            partition,
        } => {
            let offsets = &mut groups.entry(group).or_default().offsets;
            match value {
                Some(value) => {
                    offsets.insert((topic, partition), decode_offset_value(value)?);
                }
                None => {
                    offsets.remove(&(topic, partition));
                }
            }
        }
        OffsetsKey::Group { group } => {
            groups.entry(group).or_default().metadata =
                value.map(decode_group_value).transpose()?;
        }
    }
    Ok(())
}
