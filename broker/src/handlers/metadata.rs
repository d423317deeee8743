//! Metadata: brokers, controller and topics, with auto-creation of unknown
//! topics when `auto.create.topics.enable` is on. Brokers and partitions
//! (leader, leader epoch, replicas, ISR) are read from the metadata image.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::metadata::MetadataImage;
use crate::partitions::Topic;

pub fn handle(broker: &Broker, request: MetadataRequest, version: i16) -> MetadataResponse {
    // v0 has no null: an empty list means every topic. v4+ lets the client
    // forbid auto-creation; before v4 it was always allowed.
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && broker.config().auto_create_topics_enable();
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
    let brokers = live_brokers(&broker.image())
        .into_iter()
        .map(|live| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(live.id))
                .with_host(str_bytes(live.host))
                .with_port(live.port)
                .with_rack(live.rack.map(str_bytes))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
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

/// A broker clients may use, as Metadata and DescribeCluster list it.
pub struct LiveBroker {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// Every registered broker with an endpoint, fenced or not.
pub fn registered_brokers(image: &MetadataImage) -> Vec<LiveBroker> {
    image
        .brokers()
        .filter_map(|registration| {
            let endpoint = registration.endpoints.first()?;
            Some(LiveBroker {
                id: registration.broker_id,
                host: endpoint.host.clone(),
                port: endpoint.port,
                rack: registration.rack.clone(),
                fenced: registration.fenced,
            })
        })
        .collect()
}

/// The brokers clients may use: registered, not fenced, with an endpoint.
pub fn live_brokers(image: &MetadataImage) -> Vec<LiveBroker> {
    registered_brokers(image)
        .into_iter()
        .filter(|broker| !broker.fenced)
        .collect()
}

fn describe_topic(broker: &Broker, topic: &Topic) -> MetadataResponseTopic {
    let image = broker.image();
    let live: Vec<i32> = live_brokers(&image).iter().map(|b| b.id).collect();
    let partitions = image
        .topic_by_id(topic.id())
        .map(|registered| {
            registered
                .partitions
                .values()
                .map(|p| {
                    let ids = |ids: &[i32]| ids.iter().copied().map(BrokerId).collect::<Vec<_>>();
                    // A leader that is fenced or gone leads nothing until
                    // it is back (KRaft writes leader -1 then; Strata,
                    // without other replicas to elect, answers it so).
                    let (leader, error) = if live.contains(&p.leader) {
                        (p.leader, 0)
                    } else {
                        (-1, ResponseError::LeaderNotAvailable.code())
                    };
                    MetadataResponsePartition::default()
                        .with_error_code(error)
                        .with_partition_index(p.partition_id)
                        .with_leader_id(BrokerId(leader))
                        .with_leader_epoch(p.leader_epoch)
                        .with_replica_nodes(ids(&p.replicas))
                        .with_isr_nodes(ids(&p.isr))
                })
                .collect()
        })
        .unwrap_or_default();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(topic.name()))))
        .with_topic_id(topic.id())
        // Clients leave internal topics out of pattern subscriptions.
        .with_is_internal(topic.name() == crate::coordinator::OFFSETS_TOPIC)
        .with_partitions(partitions)
}
