//! Committed offsets: OffsetCommit, OffsetFetch, OffsetDelete and the
//! expiry of offsets of groups that have been empty for
//! `offsets.retention.minutes` (KIP-211).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

use super::{lock, store, GroupCoordinator, GroupEntry};
use crate::clock::now_ms;
use crate::group::GroupState;
use crate::group::{encode_key, encode_offset_value, OffsetValue, OffsetsKey, RecordError};

/// Who commits: a member of the group, or (member id empty, generation -1)
/// a consumer that manages its partitions itself.
#[derive(Debug, Clone)]
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    pub generation_id: i32,
    /// OffsetCommit v2–v4 `retention_time_ms`; -1 for the broker's default.
    pub retention_time_ms: i64,
}

/// One partition's offset in an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetFetch answer for one partition: offset -1 when nothing is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl FetchedOffset {
    pub fn none() -> Self {
        FetchedOffset {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
        }
    }
}

impl GroupCoordinator {
    /// An OffsetCommit: one result per requested partition, in order.
    pub fn commit_offsets(
        &self,
        group_id: &str,
        committer: &Committer<'_>,
        offsets: Vec<CommitOffset>,
    ) -> Vec<Result<(), ResponseError>> {
        let entry = match self.entry(group_id) {
            Some(entry) => entry,
            // A group Kafka does not manage (no member, no generation) is
            // created by its first commit; anything else is too late.
            None if committer.generation_id < 0 && committer.member_id.is_empty() => {
                self.entry_or_create(group_id)
            }
            None => return vec![Err(ResponseError::IllegalGeneration); offsets.len()],
        };
        let mut guard = lock(&entry);
        let before = guard.group.state();
        let outcome = guard.group.validate_offset_commit(
            self.now(),
            committer.member_id,
            committer.group_instance_id,
            committer.generation_id,
        );
        if let Err(error) = self.settle(group_id, &mut guard, before, outcome) {
            return vec![Err(error); offsets.len()];
        }
        let now = now_ms();
        let expire_timestamp_ms =
            (committer.retention_time_ms >= 0).then(|| now + committer.retention_time_ms);
        let mut results = Vec::with_capacity(offsets.len());
        let mut accepted: Vec<((String, i32), OffsetValue)> = Vec::new();
        let mut records = Vec::new();
        for commit in offsets {
            let metadata = commit.metadata.unwrap_or_default();
            let known = self.log.has_partition(&commit.topic, commit.partition);
            if !known {
                results.push(Err(ResponseError::UnknownTopicOrPartition));
            } else if metadata.len() > self.offset_metadata_max_bytes {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
            } else {
                let value = OffsetValue {
                    offset: commit.offset,
                    leader_epoch: commit.leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                    expire_timestamp_ms,
                };
                // What a record cannot hold is refused, not written.
                let key = offset_key(group_id, &commit.topic, commit.partition);
                match (key, encode_offset_value(&value)) {
                    (Ok(key), Ok(encoded)) => {
                        results.push(Ok(()));
                        records.push((key, Some(encoded)));
                        accepted.push(((commit.topic, commit.partition), value));
                    }
                    (Err(_), _) => results.push(Err(ResponseError::InvalidGroupId)),
                    (_, Err(_)) => results.push(Err(ResponseError::OffsetMetadataTooLarge)),
                }
            }
        }
        match store::append(self.log.as_ref(), group_id, records) {
            Ok(()) => guard.offsets.extend(accepted),
            Err(error) => {
                for result in results.iter_mut().filter(|r| r.is_ok()) {
                    *result = Err(error.code);
                }
            }
        }
        results
    }

    /// An OffsetFetch for one group: the requested partitions, or every
    /// partition with a committed offset when `partitions` is None. A group
    /// that does not exist has no offsets (not an error, as in Kafka).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Vec<((String, i32), FetchedOffset)> {
        let fetched = |value: &OffsetValue| FetchedOffset {
            offset: value.offset,
            leader_epoch: value.leader_epoch,
            metadata: value.metadata.clone(),
        };
        // Looked up under the group's lock: only what was asked for is copied.
        let answer = |committed: Option<&BTreeMap<(String, i32), OffsetValue>>| match &partitions {
            None => committed
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), fetched(v)))
                .collect(),
            Some(wanted) => wanted
                .iter()
                .map(|key| {
                    let value = committed.and_then(|c| c.get(key)).map(fetched);
                    (key.clone(), value.unwrap_or_else(FetchedOffset::none))
                })
                .collect(),
        };
        match self.with_group(group_id, |entry| answer(Some(&entry.offsets))) {
            Some(offsets) => offsets,
            None => answer(None),
        }
    }

    /// An OffsetDelete: Err is the top-level error; otherwise one result per
    /// partition. A group with members keeps the offsets of topics it is
    /// subscribed to (GROUP_SUBSCRIBED_TO_TOPIC); only consumer groups can
    /// say what they subscribe to, so other non-empty groups refuse.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let entry = self.entry(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        let mut guard = lock(&entry);
        let subscribed = match guard.group.state() {
            GroupState::Dead => return Err(ResponseError::GroupIdNotFound),
            GroupState::Empty => BTreeSet::new(),
            _ if guard.group.protocol_type() == Some("consumer") => subscribed_topics(&guard),
            _ => return Err(ResponseError::NonEmptyGroup),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        for (topic, partition) in partitions {
            if subscribed.contains(&topic) {
                results.push(Err(ResponseError::GroupSubscribedToTopic));
                continue;
            }
            results.push(Ok(()));
            if guard.offsets.contains_key(&(topic.clone(), partition)) {
                deleted.push((topic, partition));
            }
        }
        let records = deleted
            .iter()
            .map(|(topic, partition)| Ok((offset_key(group_id, topic, *partition)?, None)))
            .collect::<Result<Vec<_>, RecordError>>()
            .map_err(|_| ResponseError::InvalidGroupId)?;
        store::append(self.log.as_ref(), group_id, records).map_err(|error| error.code)?;
        for key in &deleted {
            guard.offsets.remove(key);
        }
        Ok(results)
    }

    /// Deletes the offsets of groups that have been Empty for the retention
    /// time (an offset committed with an explicit retention expires at its
    /// own time; a group that never had members counts from each commit, as
    /// in Kafka), and then forgets Empty groups that have nothing left.
    /// Returns how many offsets expired. `now` is wall-clock milliseconds.
    pub fn expire_offsets(&self, now: i64) -> usize {
        let entries = self.entries();
        let mut expired_total = 0;
        for (group_id, entry) in entries {
            let mut guard = lock(&entry);
            if guard.group.state() != GroupState::Empty {
                continue;
            }
            let empty_since = (guard.group.protocol_type().is_some())
                .then_some(guard.state_timestamp_ms)
                .filter(|&t| t >= 0);
            let expired: Vec<(String, i32)> = guard
                .offsets
                .iter()
                .filter(|(_, value)| {
                    let expires_at = value.expire_timestamp_ms.unwrap_or_else(|| {
                        empty_since.unwrap_or(value.commit_timestamp_ms) + self.offsets_retention_ms
                    });
                    now >= expires_at
                })
                .map(|(key, _)| key.clone())
                .collect();
            let records = tombstones(&group_id, &expired);
            if let Err(error) = store::append(self.log.as_ref(), &group_id, records) {
                tracing::warn!(group = group_id, %error, "could not expire offsets");
                continue;
            }
            for key in &expired {
                guard.offsets.remove(key);
            }
            expired_total += expired.len();
            // A group whose first member holds a MEMBER_ID_REQUIRED id is
            // being formed, not abandoned.
            if guard.offsets.is_empty() && guard.group.pending_member_ids().next().is_none() {
                // Nothing left: the group goes, and with it its metadata.
                let before = guard.group.state();
                let outcome = guard.group.delete();
                let _ = self.settle(&group_id, &mut guard, before, outcome);
                drop(guard);
                self.forget_if_dead(&group_id, &entry);
            }
        }
        if expired_total > 0 {
            tracing::info!(offsets = expired_total, "expired committed offsets");
        }
        expired_total
    }
}

impl GroupCoordinator {
    /// Deletes every group's committed offsets of `topic` (a deleted topic).
    pub fn forget_topic(&self, topic: &str) {
        let entries = self.entries();
        for (group_id, entry) in entries {
            let mut guard = lock(&entry);
            let gone: Vec<(String, i32)> = guard
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            let records = tombstones(&group_id, &gone);
            if let Err(error) = store::append(self.log.as_ref(), &group_id, records) {
                tracing::warn!(group = group_id, %error, "could not delete offsets of {topic}");
                continue;
            }
            for key in &gone {
                guard.offsets.remove(key);
            }
        }
    }
}

/// The topics the members of a consumer group subscribe to, read from their
/// ConsumerProtocolSubscription metadata (undecodable metadata counts as none).
fn subscribed_topics(entry: &GroupEntry) -> BTreeSet<String> {
    let protocol = entry.group.protocol_name().unwrap_or_default().to_string();
    entry
        .group
        .members()
        .filter_map(|member| member.metadata(&protocol).cloned())
        .filter_map(decode_subscription)
        .flatten()
        .collect()
}

fn decode_subscription(mut metadata: Bytes) -> Option<Vec<String>> {
    use bytes::Buf;
    if metadata.remaining() < 2 {
        return None;
    }
    let version = metadata.get_i16();
    let version = version.clamp(0, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut metadata, version).ok()?;
    Some(
        subscription
            .topics
            .into_iter()
            .map(|topic| topic.to_string())
            .collect(),
    )
}

fn offset_key(group_id: &str, topic: &str, partition: i32) -> Result<Bytes, RecordError> {
    encode_key(&OffsetsKey::Offset {
        group: group_id.to_string(),
        topic: topic.to_string(),
        partition,
    })
}

/// Deletions of committed offsets, each written when it was committed (so
/// its key encodes).
fn tombstones(group_id: &str, offsets: &[(String, i32)]) -> Vec<(Bytes, Option<Bytes>)> {
    offsets
        .iter()
        .filter_map(|(topic, partition)| offset_key(group_id, topic, *partition).ok())
        .map(|key| (key, None))
        .collect()
}
