//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};

use crate::broker::Broker;
use crate::error::{error_fields, ApiError};

/// Creates each topic of the request independently. Names that appear more
/// than once in one request are all refused with INVALID_REQUEST, as Kafka
/// does. From v5 the response carries each new topic's configs.
pub fn create_topics(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut seen: HashMap<TopicName, usize> = HashMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.clone()).or_default() += 1;
    }
    let validate_only = request.validate_only;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let name = topic.name.clone();
            let result = CreatableTopicResult::default().with_name(name.clone());
            let outcome = if seen.get(&name).copied().unwrap_or(0) > 1 {
                Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "Create topics request from client contains the topic {} more than once",
                        name.as_str()
                    ),
                ))
            } else {
                create_one(broker, topic, validate_only)
            };
            match outcome {
                Ok((created, replication_factor)) => {
                    let configs =
                        (version >= 5).then(|| topic_configs(broker, &created.stored.configs));
                    result
                        .with_topic_id(created.id())
                        .with_num_partitions(created.stored.partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(configs)
                }
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(error.message_str())
                    .with_num_partitions(-1)
                    .with_replication_factor(-1),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Creates one topic; returns it with its replication factor.
fn create_one(
    broker: &Broker,
    topic: CreatableTopic,
    validate_only: bool,
) -> Result<(std::sync::Arc<crate::partitions::Topic>, i16), ApiError> {
    let mut assignment = None;
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let in_order = topic
            .assignments
            .iter()
            .enumerate()
            .all(|(i, a)| a.partition_index == i as i32);
        if !in_order {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "replica assignments must name partitions 0..n in order",
            ));
        }
        assignment = Some(
            topic
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|id| id.0).collect::<Vec<i32>>())
                .collect::<Vec<_>>(),
        );
    }
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        let Some(value) = config.value else {
            return Err(ApiError::new(
                ResponseError::InvalidConfig,
                format!(
                    "Null value not supported for topic configs: {}",
                    config.name.as_str()
                ),
            ));
        };
        configs.insert(config.name.to_string(), value.to_string());
    }
    match assignment {
        Some(assignment) => {
            let replication_factor = assignment[0].len() as i16;
            let created =
                broker.create_topic_assigned(&topic.name, assignment, configs, validate_only)?;
            Ok((created, replication_factor))
        }
        None => {
            let replication_factor = match topic.replication_factor {
                -1 => broker.config().default_replication_factor(),
                given => given,
            };
            let created = broker.create_topic(
                &topic.name,
                topic.num_partitions,
                replication_factor,
                configs,
                validate_only,
            )?;
            Ok((created, replication_factor))
        }
    }
}

/// A topic's effective configs in the CreateTopics v5+ form.
fn topic_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    crate::config::describe_topic(&broker.config(), overrides, None, false, false)
        .into_iter()
        .map(|c| {
            CreatableTopicConfigs::default()
                .with_name(c.name)
                .with_value(c.value)
                .with_read_only(c.read_only)
                .with_config_source(c.config_source)
                .with_is_sensitive(c.is_sensitive)
        })
        .collect()
}

/// Deletes topics named (v1-v5) or named or identified (v6+).
pub fn delete_topics(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| (t.name, t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| (Some(n), uuid::Uuid::nil()))
            .collect()
    };
    let responses = wanted
        .into_iter()
        .map(|(name, id)| {
            let resolved = match &name {
                Some(name) => Ok(name.to_string()),
                None => broker
                    .topic_by_id(id)
                    .map(|t| t.name().to_string())
                    .ok_or_else(|| ApiError::from(ResponseError::UnknownTopicId)),
            };
            let result = DeletableTopicResult::default()
                .with_name(name)
                .with_topic_id(id);
            match resolved.and_then(|name| broker.delete_topic(&name).map(|id| (name, id))) {
                Ok((name, id)) => result
                    .with_name(Some(TopicName(super::str_bytes(name))))
                    .with_topic_id(id),
                Err(error) => result
                    .with_error_code(error.code())
                    .with_error_message(error.message_str()),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Grows topics to the requested partition counts. Manual assignments must
/// name only this broker.
pub fn create_partitions(
    broker: &Broker,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|topic| {
            let assignments_ok = topic.assignments.as_ref().is_none_or(|assignments| {
                assignments
                    .iter()
                    .all(|a| a.broker_ids.len() == 1 && *a.broker_ids[0] == broker.node_id)
            });
            let outcome = if assignments_ok {
                broker.create_partitions(&topic.name, topic.count, request.validate_only)
            } else {
                Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "replica assignments must name this broker only",
                ))
            };
            let (error_code, error_message) = error_fields(&outcome);
            CreatePartitionsTopicResult::default()
                .with_name(topic.name)
                .with_error_code(error_code)
                .with_error_message(error_message)
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
