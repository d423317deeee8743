//! DescribeQuorum (KIP-595, API 55): the metadata quorum's leader, epoch,
//! high watermark and voters, for operators (Kafka's
//! `kafka-metadata-quorum.sh describe --status`).
//!
//! A single node is a quorum of one: it leads at epoch 0 (the term written
//! with every metadata batch until Raft elects leaders), and every batch it
//! wrote is committed (each is fsynced before it is published), so the high
//! watermark is the metadata log's end offset and the voter's lag is 0.
//! v2's `nodes` (the voters' controller listeners) is empty: a single node
//! binds no controller listener. v2 is offered because kafka-python 3.0's
//! `describe_metadata_quorum` reads v2's per-partition `error_message` and
//! fails on a v0 or v1 answer.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};

use crate::broker::{now_ms, Broker};

/// KRaft's name for the metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn describe(broker: &Broker, request: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let is_metadata = topic.topic_name.as_str() == METADATA_TOPIC;
            let partitions = topic
                .partitions
                .into_iter()
                .map(|partition| {
                    let data =
                        PartitionData::default().with_partition_index(partition.partition_index);
                    if is_metadata && partition.partition_index == 0 {
                        describe_metadata_partition(broker, data)
                    } else {
                        data.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_id(BrokerId(-1))
                            .with_leader_epoch(-1)
                            .with_high_watermark(-1)
                    }
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeQuorumResponse::default().with_topics(topics)
}

/// The quorum as this node sees it: voters, and broker-only nodes as
/// observers. Offsets are Raft indexes plus one (the log's end offsets); a
/// follower's end offset is known only on the leader.
fn describe_metadata_partition(broker: &Broker, data: PartitionData) -> PartitionData {
    let status = broker.quorum().status();
    let now = now_ms();
    let end_of = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
    let replica = |id: &i32| {
        let id = *id;
        let end = if id == status.node_id {
            end_of(status.last_index)
        } else {
            status.matched.get(&id).map_or(-1, |index| end_of(*index))
        };
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(if end >= 0 { now } else { -1 })
            .with_last_caught_up_timestamp(if end >= 0 { now } else { -1 })
    };
    data.with_leader_id(BrokerId(status.leader.unwrap_or(-1)))
        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
        .with_high_watermark(end_of(status.applied_index))
        .with_current_voters(status.voters.iter().map(replica).collect())
        .with_observers(status.learners.iter().map(replica).collect())
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_quorum_request::{
        PartitionData as RequestPartition, TopicData as RequestTopic,
    };
    use kafka_protocol::messages::TopicName;

    use super::*;
    use crate::test_support::open_broker;

    fn request(topic: &str, partitions: &[i32]) -> RequestTopic {
        RequestTopic::default()
            .with_topic_name(TopicName(topic.to_string().into()))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&p| RequestPartition::default().with_partition_index(p))
                    .collect(),
            )
    }

    #[test]
    fn a_single_node_leads_a_quorum_of_one_and_other_partitions_are_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open_broker(dir.path());
        broker
            .create_topic("t", 2, -1, Default::default(), false)
            .unwrap();
        let response = describe(
            &broker,
            DescribeQuorumRequest::default()
                .with_topics(vec![request(METADATA_TOPIC, &[0, 1]), request("t", &[0])]),
        );
        let metadata = &response.topics[0].partitions;
        assert_eq!(metadata[0].error_code, 0);
        assert_eq!(metadata[0].leader_id, BrokerId(broker.node_id));
        // The voters, the leader's blank entry, the cluster id, the
        // registration and the topic: one entry a change.
        assert_eq!(metadata[0].high_watermark, 5);
        assert_eq!(metadata[0].leader_epoch, 1);
        assert_eq!(metadata[0].current_voters.len(), 1);
        assert_eq!(metadata[0].current_voters[0].log_end_offset, 5);
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(metadata[1].error_code, unknown);
        assert_eq!(response.topics[1].partitions[0].error_code, unknown);
    }
}
