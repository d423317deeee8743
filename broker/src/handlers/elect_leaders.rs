//! ElectLeaders (KIP-460): preferred or unclean leader election for the
//! partitions named, or for all of them, written through the controller at
//! once. Errors per partition as Kafka answers them: ELECTION_NOT_NEEDED
//! where the partition already has the leader the election would give it,
//! PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE where no
//! replica can lead by the election's rules, UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::metadata::election::{self, Election};

/// `election_type` of a preferred leader election (the only kind of v0).
const PREFERRED: i8 = 0;
/// `election_type` of an unclean leader election.
const UNCLEAN: i8 = 1;

pub fn handle(broker: &Broker, request: ElectLeadersRequest) -> ElectLeadersResponse {
    let response = ElectLeadersResponse::default();
    let (elect, not_available): (election::Elect, _) = match request.election_type {
        PREFERRED => (
            election::preferred,
            ResponseError::PreferredLeaderNotAvailable,
        ),
        UNCLEAN => (
            election::unclean,
            ResponseError::EligibleLeadersNotAvailable,
        ),
        _ => return response.with_error_code(ResponseError::InvalidRequest.code()),
    };
    let wanted = request.topic_partitions.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
            .collect()
    });
    let outcomes = match broker.elect_leaders(wanted, elect) {
        Ok(outcomes) => outcomes,
        Err(error) => return response.with_error_code(error.code()),
    };
    let mut topics: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), outcome) in outcomes {
        let error = match outcome {
            None => Some(ResponseError::UnknownTopicOrPartition),
            Some(Election::Elect(_)) => None,
            Some(Election::NotNeeded) => Some(ResponseError::ElectionNotNeeded),
            Some(Election::NotAvailable) => Some(not_available),
        };
        topics.entry(topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(partition)
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_error_message(error.map(|e| str_bytes(e.to_string()))),
        );
    }
    response.with_replica_election_results(
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(topic)))
                    .with_partition_result(partitions)
            })
            .collect(),
    )
}
