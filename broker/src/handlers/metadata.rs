//! Metadata: brokers, controller and topics, with auto-creation of unknown
//! topics when `auto.create.topics.enable` is on.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::str_bytes;
use crate::broker::{Broker, Topic};
use crate::partition::LEADER_EPOCH;

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list means every topic. v4+ lets the client
    // forbid auto-creation; before v4 it was always allowed.
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config.auto_create_topics_enable();
    let topics = match request.topics {
        None => broker
            .topics()
            .iter()
            .map(|t| describe_topic(broker, t))
            .collect(),
        Some(requested) if requested.is_empty() && version == 0 => broker
            .topics()
            .iter()
            .map(|t| describe_topic(broker, t))
            .collect(),
        Some(requested) => requested
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => lookup_or_create(broker, name, allow_auto_create),
                None => match broker.topic_by_id(wanted.topic_id) {
                    Some(topic) => describe_topic(broker, &topic),
                    None => MetadataResponseTopic::default()
                        .with_topic_id(wanted.topic_id)
                        .with_error_code(ResponseError::UnknownTopicId.code()),
                },
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(broker.node_id))
            .with_host(str_bytes(broker.endpoint.host.clone()))
            .with_port(broker.endpoint.port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.node_id))
        .with_topics(topics)
}

fn lookup_or_create(
    broker: &Broker,
    name: TopicName,
    allow_auto_create: bool,
) -> MetadataResponseTopic {
    if let Some(topic) = broker.topic(&name) {
        return describe_topic(broker, &topic);
    }
    let unknown = |code: ResponseError| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code.code())
    };
    if !allow_auto_create {
        return unknown(ResponseError::UnknownTopicOrPartition);
    }
    match broker.create_topic(&name, -1, -1, BTreeMap::new(), false) {
        Ok(topic) => describe_topic(broker, &topic),
        // Another request created it between our look-up and our create.
        Err(error) if error.code == ResponseError::TopicAlreadyExists => {
            match broker.topic(&name) {
                Some(topic) => describe_topic(broker, &topic),
                None => unknown(ResponseError::UnknownTopicOrPartition),
            }
        }
        Err(error) => unknown(error.code),
    }
}

fn describe_topic(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id);
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name()))))
        .with_topic_id(topic.id())
        // Clients leave internal topics out of pattern subscriptions.
        .with_is_internal(topic.name() == crate::coordinator::OFFSETS_TOPIC)
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(node)
                        .with_leader_epoch(LEADER_EPOCH)
                        .with_replica_nodes(vec![node])
                        .with_isr_nodes(vec![node])
                })
                .collect(),
        )
}
