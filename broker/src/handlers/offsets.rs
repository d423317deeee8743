//! Committed offsets: OffsetCommit, OffsetFetch (the v8+ multi-group form
//! too) and OffsetDelete.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};

use super::str_bytes;
use crate::broker::Broker;
use crate::coordinator::offsets::{CommitOffset, Committer, FetchedOffset};

/// OffsetCommit: answered once the commit is replicated (every in-sync
/// replica of the group's `__consumer_offsets` partition holds it), or with
/// COORDINATOR_NOT_AVAILABLE after `offsets.commit.timeout.ms`, as Kafka
/// answers a commit its replicas did not take in time.
pub async fn commit(broker: &Arc<Broker>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = request.group_id.to_string();
    let committer = Committer {
        member_id: &request.member_id,
        group_instance_id: request.group_instance_id.as_deref(),
        generation_id: request.generation_id_or_member_epoch,
        retention_time_ms: request.retention_time_ms,
    };
    let offsets: Vec<CommitOffset> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(|p| CommitOffset {
                topic: topic.name.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: p.committed_leader_epoch,
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .collect();
    // An empty group id is a group like any other here (Kafka keeps it valid
    // for the offset and admin APIs, for old clients).
    let mut results = match super::groups::wrong_coordinator(broker, &group_id) {
        Some(error) => vec![Err(error); offsets.len()],
        None => broker.groups.commit_offsets(&group_id, &committer, offsets),
    };
    if results.iter().any(Result::is_ok) && !broker.group_writes_replicated(&group_id).await {
        for result in results.iter_mut().filter(|r| r.is_ok()) {
            *result = Err(ResponseError::CoordinatorNotAvailable);
        }
    }
    let mut results = results.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let error = results.next().and_then(Result::err);
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// OffsetFetch. Partitions without a committed offset answer -1. A null
/// topic list (v2+) asks for every committed offset of the group. The
/// `require_stable` flag (v7+) needs no waiting: there are no transactional
/// offset commits to be pending.
pub fn fetch(broker: &Broker, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|group| {
                let wanted = group.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect::<Vec<_>>()
                });
                let topics = fetch_group(broker, &group.group_id, wanted)
                    .into_iter()
                    .map(|(name, partitions)| {
                        let partitions = partitions
                            .into_iter()
                            .map(|(index, offset)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset.offset)
                                    .with_committed_leader_epoch(offset.leader_epoch)
                                    .with_metadata(Some(str_bytes(offset.metadata)))
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(name)
                            .with_partitions(partitions)
                    })
                    .collect();
                let error = super::groups::wrong_coordinator(broker, &group.group_id);
                OffsetFetchResponseGroup::default()
                    .with_error_code(error.map_or(0, |e| e.code()))
                    .with_topics(if error.is_some() { Vec::new() } else { topics })
                    .with_group_id(group.group_id)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect::<Vec<_>>()
    });
    let wrong = super::groups::wrong_coordinator(broker, &request.group_id);
    let topics = fetch_group(broker, &request.group_id, wanted)
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, offset)| {
                    // v0 and v1 have no top-level error: each partition says it.
                    let partition = OffsetFetchResponsePartition::default()
                        .with_error_code(wrong.map_or(0, |e| e.code()))
                        .with_partition_index(index)
                        .with_committed_offset(offset.offset)
                        .with_metadata(Some(str_bytes(offset.metadata)));
                    if version >= 5 {
                        partition.with_committed_leader_epoch(offset.leader_epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    match wrong {
        Some(error) if version >= 2 => OffsetFetchResponse::default().with_error_code(error.code()),
        _ => OffsetFetchResponse::default().with_topics(topics),
    }
}

/// One group's offsets, grouped by topic in request order (or name order
/// when every offset is asked for).
fn fetch_group(
    broker: &Broker,
    group_id: &str,
    wanted: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<(TopicName, Vec<(i32, FetchedOffset)>)> {
    let Some(wanted) = wanted else {
        let mut topics: Vec<(TopicName, Vec<(i32, FetchedOffset)>)> = Vec::new();
        for ((topic, partition), offset) in broker.groups.fetch_offsets(group_id, None) {
            match topics.last_mut() {
                Some((name, partitions)) if name.as_str() == topic => {
                    partitions.push((partition, offset));
                }
                _ => topics.push((TopicName(str_bytes(topic)), vec![(partition, offset)])),
            }
        }
        return topics;
    };
    let keys = wanted
        .iter()
        .flat_map(|(name, partitions)| partitions.iter().map(|&p| (name.to_string(), p)))
        .collect();
    let mut fetched = broker
        .groups
        .fetch_offsets(group_id, Some(keys))
        .into_iter()
        .map(|(_, offset)| offset);
    wanted
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|p| (p, fetched.next().unwrap_or_else(FetchedOffset::none)))
                .collect();
            (name, partitions)
        })
        .collect()
}

/// OffsetDelete. Partitions of topics that do not exist answer
/// UNKNOWN_TOPIC_OR_PARTITION, as in Kafka.
pub fn delete(broker: &Arc<Broker>, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = request.group_id.to_string();
    let exists = |topic: &str, partition: i32| {
        broker
            .topic(topic)
            .is_some_and(|t| t.has_partition(partition))
    };
    // Checked once: the answers below follow these flags.
    let checked: Vec<(String, i32, bool)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let topic = t.name.to_string();
                let known = exists(&topic, p.partition_index);
                (topic, p.partition_index, known)
            })
        })
        .collect();
    let known: Vec<(String, i32)> = checked
        .iter()
        .filter(|(_, _, known)| *known)
        .map(|(topic, partition, _)| (topic.clone(), *partition))
        .collect();
    let results = if group_id.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else {
        broker.groups.delete_offsets(&group_id, known)
    };
    let mut results = match results {
        Ok(results) => results.into_iter(),
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
    };
    let mut checked = checked.into_iter();
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let known = checked.next().is_some_and(|(_, _, known)| known);
                    let error = if known {
                        results.next().and_then(Result::err)
                    } else {
                        Some(ResponseError::UnknownTopicOrPartition)
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(error.map_or(0, |e| e.code()))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
