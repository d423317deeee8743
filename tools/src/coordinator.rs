//! Talking to a group's coordinator, shared by `strata group` and
//! `strata consume --group`: finding it (FindCoordinator), reading and
//! committing offsets (OffsetFetch, OffsetCommit), and the consumer protocol's
//! embedded formats (ConsumerProtocolSubscription / ConsumerProtocolAssignment,
//! each a `kafka-protocol` struct behind a leading i16 version).
//!
//! Every group request goes to the broker FindCoordinator names, as Kafka's
//! clients do; on a single Strata node that is the bootstrap broker itself.
//! See <https://kafka.apache.org/protocol.html#The_Messages_FindCoordinator>.

use std::collections::BTreeMap;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::client::{broker_error, error_name, Client};
use crate::leaders::topic_name;

/// FindCoordinator key type of a consumer group (KIP-98 added transactions as 1).
const GROUP_KEY_TYPE: i8 = 0;
/// How often a coordinator that is still starting (creating `__consumer_offsets`,
/// loading offsets) is asked again, and how long to wait between tries.
const COORDINATOR_TRIES: u32 = 20;
const COORDINATOR_RETRY_WAIT: Duration = Duration::from_millis(250);
/// The highest ConsumerProtocol version `kafka-protocol` decodes; Kafka reads a
/// newer version as this one, since versions only append fields.
const CONSUMER_PROTOCOL_MAX_VERSION: i16 = 3;

/// (topic, partition) → offset.
pub type Offsets = BTreeMap<(String, i32), i64>;

/// Finds `group`'s coordinator through `client` and connects to it, waiting
/// while the broker answers that it is not ready yet.
pub fn connect_coordinator(client: &mut Client, group: &str) -> Result<Client> {
    let version = client.version_for::<FindCoordinatorRequest>()?;
    let mut tries = 0;
    loop {
        tries += 1;
        let request = if version >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(GROUP_KEY_TYPE)
                .with_coordinator_keys(vec![str_bytes(group)])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(GROUP_KEY_TYPE)
                .with_key(str_bytes(group))
        };
        let response = client.send(&request)?;
        let (error_code, message, host, port) = coordinator_of(&response)?;
        let retriable = matches!(
            ResponseError::try_from_code(error_code),
            Some(ResponseError::CoordinatorNotAvailable | ResponseError::CoordinatorLoadInProgress)
        );
        if retriable && tries < COORDINATOR_TRIES {
            thread::sleep(COORDINATOR_RETRY_WAIT);
            continue;
        }
        broker_error(error_code, message.as_ref())
            .with_context(|| format!("finding the coordinator of group {group:?}"))?;
        let address = format!("{host}:{port}");
        return crate::client::connect(&address)
            .with_context(|| format!("connecting to the coordinator of group {group:?}"));
    }
}

/// Error code, message, host and port from either answer layout (v4+ batched).
fn coordinator_of(
    response: &FindCoordinatorResponse,
) -> Result<(i16, Option<StrBytes>, String, i32)> {
    if let Some(found) = response.coordinators.first() {
        return Ok((
            found.error_code,
            found.error_message.clone(),
            found.host.to_string(),
            found.port,
        ));
    }
    if response.error_code == 0 && response.host.is_empty() {
        bail!("the broker's FindCoordinator answer names no coordinator");
    }
    Ok((
        response.error_code,
        response.error_message.clone(),
        response.host.to_string(),
        response.port,
    ))
}

/// `group`'s committed offsets: of `wanted` (topic → partitions), or of every
/// partition it has committed when `wanted` is `None`. Partitions without a
/// committed offset are absent from the answer.
pub fn fetch_committed(
    coordinator: &mut Client,
    group: &str,
    wanted: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<Offsets> {
    let version = coordinator.version_for::<OffsetFetchRequest>()?;
    let context = || format!("reading the committed offsets of group {group:?}");
    let mut offsets = Offsets::new();
    let mut keep = |topic: &str, partition: i32, offset: i64, error_code: i16| -> Result<()> {
        broker_error(error_code, None)
            .with_context(|| format!("{topic} partition {partition}"))
            .with_context(context)?;
        if offset >= 0 {
            offsets.insert((topic.to_string(), partition), offset);
        }
        Ok(())
    };
    if version >= 8 {
        // v8 (KIP-709) moved the request into a list of groups.
        let topics = wanted.map(|wanted| {
            wanted
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let request =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(group_id(group))
                .with_topics(topics)]);
        let response = coordinator.send(&request)?;
        for answer in &response.groups {
            broker_error(answer.error_code, None).with_context(context)?;
            for topic in &answer.topics {
                for p in &topic.partitions {
                    keep(
                        &topic.name,
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )?;
                }
            }
        }
    } else {
        let topics = wanted.map(|wanted| {
            wanted
                .iter()
                .map(|(topic, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        });
        let request = OffsetFetchRequest::default()
            .with_group_id(group_id(group))
            .with_topics(topics);
        let response = coordinator.send(&request)?;
        broker_error(response.error_code, None).with_context(context)?;
        for topic in &response.topics {
            for p in &topic.partitions {
                keep(
                    &topic.name,
                    p.partition_index,
                    p.committed_offset,
                    p.error_code,
                )?;
            }
        }
    }
    Ok(offsets)
}

/// Who commits: a group member (its id and generation) or, with
/// [`Committer::STANDALONE`], a tool outside any generation — which Kafka only
/// accepts while the group has no members.
#[derive(Clone, Copy)]
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub generation_id: i32,
}

impl Committer<'_> {
    pub const STANDALONE: Committer<'static> = Committer {
        member_id: "",
        generation_id: -1,
    };
}

/// Commits `offsets` for `group`. `Ok` holds the partitions the broker refused,
/// with their errors (empty when all were committed).
pub fn commit(
    coordinator: &mut Client,
    group: &str,
    committer: Committer<'_>,
    offsets: &Offsets,
) -> Result<Vec<((String, i32), ResponseError)>> {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for ((topic, partition), &offset) in offsets {
        by_topic.entry(topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(*partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::default())),
        );
    }
    let request = OffsetCommitRequest::default()
        .with_group_id(group_id(group))
        .with_generation_id_or_member_epoch(committer.generation_id)
        .with_member_id(str_bytes(committer.member_id))
        // -1: the broker's offsets.retention.minutes (v2–4 only carry it).
        .with_retention_time_ms(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = coordinator.send(&request)?;
    let mut refused = Vec::new();
    for topic in &response.topics {
        for p in &topic.partitions {
            if let Some(error) = ResponseError::try_from_code(p.error_code) {
                refused.push(((topic.name.to_string(), p.partition_index), error));
            }
        }
    }
    Ok(refused)
}

/// A one-line description of refused commits: `t partition 0: NAME, ...`.
pub fn describe_refused(refused: &[((String, i32), ResponseError)]) -> String {
    refused
        .iter()
        .map(|((topic, partition), error)| {
            format!("{topic} partition {partition}: {}", error_name(*error))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A subscription as JoinGroup metadata: version 0 (topics, no user data).
pub fn encode_subscription(topics: &[&str]) -> Result<Bytes> {
    let subscription = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| str_bytes(t)).collect());
    encode_versioned(&subscription, 0)
}

/// An assignment as SyncGroup carries it: version 0, topic → partitions.
pub fn encode_assignment(assignment: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                TopicPartition::default()
                    .with_topic(topic_name(topic))
                    .with_partitions(partitions.clone())
            })
            .collect(),
    );
    encode_versioned(&assignment, 0)
}

/// The topics of a member's JoinGroup metadata.
pub fn decode_subscription(metadata: &Bytes) -> Result<Vec<String>> {
    let subscription: ConsumerProtocolSubscription =
        decode_versioned(metadata).context("decoding a ConsumerProtocolSubscription")?;
    Ok(subscription.topics.iter().map(|t| t.to_string()).collect())
}

/// Topic → partitions of a SyncGroup or DescribeGroups assignment; empty bytes
/// (a member given nothing) are an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<BTreeMap<String, Vec<i32>>> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let assignment: ConsumerProtocolAssignment =
        decode_versioned(bytes).context("decoding a ConsumerProtocolAssignment")?;
    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for assigned in assignment.assigned_partitions {
        topics
            .entry(assigned.topic.to_string())
            .or_default()
            .extend(assigned.partitions);
    }
    for partitions in topics.values_mut() {
        partitions.sort_unstable();
    }
    Ok(topics)
}

fn encode_versioned<T: Encodable>(value: &T, version: i16) -> Result<Bytes> {
    let mut buffer = BytesMut::new();
    buffer.put_i16(version);
    value
        .encode(&mut buffer, version)
        .context("encoding consumer protocol data")?;
    Ok(buffer.freeze())
}

fn decode_versioned<T: Decodable>(bytes: &Bytes) -> Result<T> {
    let mut buffer = bytes.clone();
    if buffer.remaining() < 2 {
        bail!("{} bytes, too short for a version", buffer.remaining());
    }
    let version = buffer.get_i16();
    if version < 0 {
        bail!("negative version {version}");
    }
    T::decode(&mut buffer, version.min(CONSUMER_PROTOCOL_MAX_VERSION))
}

pub fn group_id(group: &str) -> GroupId {
    GroupId(str_bytes(group))
}

pub fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_round_trip_with_their_version() {
        let mut assignment = BTreeMap::new();
        assignment.insert("orders".to_string(), vec![0, 2]);
        assignment.insert("events".to_string(), vec![1]);
        let bytes = encode_assignment(&assignment).expect("encode");
        assert_eq!(&bytes[..2], &[0, 0], "a leading i16 version 0");
        assert_eq!(decode_assignment(&bytes).expect("decode"), assignment);
        assert!(decode_assignment(&Bytes::new()).expect("empty").is_empty());
        assert!(decode_assignment(&Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn assignments_decode_after_their_version() {
        // Version 0: one topic "t" with partitions 0 and 2, null user data.
        let bytes = Bytes::from_static(&[
            0, 0, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 255, 255, 255, 255,
        ]);
        let expected = BTreeMap::from([("t".to_string(), vec![0, 2])]);
        assert_eq!(decode_assignment(&bytes).expect("decode"), expected);
        assert_eq!(encode_assignment(&expected).expect("encode"), bytes);
    }

    #[test]
    fn subscriptions_round_trip() {
        let bytes = encode_subscription(&["a", "b"]).expect("encode");
        assert_eq!(decode_subscription(&bytes).expect("decode"), ["a", "b"]);
    }
}
