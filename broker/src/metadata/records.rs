//! The records of the metadata log, modelled on KRaft's metadata records
//! (`RegisterBrokerRecord`, `TopicRecord`, `PartitionRecord`, `ConfigRecord`,
//! `RemoveTopicRecord`, `ProducerIdsRecord` in Kafka's `metadata/src/main/
//! resources/common/metadata/`): the same facts under the same names, stored
//! as JSON values of the records in Strata's metadata log.
//!
//! A record only states a fact; whether it may be written is decided by
//! [`MetadataImage::apply`](super::MetadataImage::apply), which every change
//! goes through before it is appended.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// A broker (re)registers: its endpoints and rack. A later registration of
    /// the same id replaces the earlier one.
    RegisterBroker(BrokerRegistration),
    /// A topic is created with a cluster-unique id.
    Topic { name: String, topic_id: Uuid },
    /// A partition of a topic is created.
    Partition(PartitionRegistration),
    /// A partition's leader or in-sync replicas change (KRaft's
    /// `PartitionChangeRecord`).
    PartitionChange(PartitionChange),
    /// A config override is set (`Some`) or removed (`None`).
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// A topic, its partitions and its config overrides are deleted.
    RemoveTopic { topic_id: Uuid },
    /// The controller fenced a broker whose heartbeats stopped, or that is
    /// shutting down: it is left out of Metadata and leads nothing until it
    /// is unfenced (KRaft's `FenceBrokerRecord`).
    FenceBroker { broker_id: i32 },
    /// A fenced broker heartbeats again and has caught up with the metadata
    /// (KRaft's `UnfenceBrokerRecord`).
    UnfenceBroker { broker_id: i32 },
    /// The cluster's id, written once by the first node that finds none
    /// (KRaft takes it from `kafka-storage format`; Strata's nodes agree on
    /// it through the log instead, so there is no format step).
    ClusterId { cluster_id: String },
    /// A block of producer ids up to (not including) `next_producer_id` is
    /// handed to `broker_id`; ids below it are never handed out again.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
}

/// What a broker told the controller about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// New at every start of the process, so that a restarted broker is told
    /// apart from the one that registered before it.
    pub incarnation_id: Uuid,
    /// The id of the broker's data directory (`directory.id`, Kafka's
    /// `LogDirs`): the same across restarts, so a second node started with
    /// a taken `node.id` is told apart. `None` in records of releases before
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// A fenced broker leads no partition and is not listed to clients.
    pub fenced: bool,
}

/// One listener of a broker, as clients and other brokers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener name, e.g. `PLAINTEXT`.
    pub listener: String,
    pub host: String,
    pub port: i32,
}

/// A partition's replicas and leadership, as Kafka's `PartitionRecord`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub topic_id: Uuid,
    pub partition_id: i32,
    /// The brokers holding a replica, the preferred leader first.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The leader's broker id, -1 when there is none.
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change of the partition (Kafka's partition epoch).
    pub partition_epoch: i32,
}

/// What changes in one partition: a new leader (-1 for none) bumps the
/// leader epoch; every change bumps the partition epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition_id: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isr: Option<Vec<i32>>,
    /// Applies only to the partition at this partition epoch (a leader's
    /// AlterPartition, proposed from what it knew); `None` for the
    /// controller's own changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_partition_epoch: Option<i32>,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum ConfigResource {
    /// A topic, by name (as Kafka's ConfigRecord names it).
    Topic(String),
    /// A broker by id, or the cluster-wide default when empty (Kafka's
    /// convention for DescribeConfigs and AlterConfigs).
    Broker(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_json() {
        let records = vec![
            MetadataRecord::RegisterBroker(BrokerRegistration {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(7),
                directory_id: Some(Uuid::from_u128(8)),
                endpoints: vec![BrokerEndpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: Some("r1".into()),
                fenced: false,
            }),
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: Uuid::from_u128(1),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: 1000,
            },
        ];
        for record in records {
            let json = serde_json::to_vec(&record).unwrap();
            assert_eq!(
                serde_json::from_slice::<MetadataRecord>(&json).unwrap(),
                record
            );
        }
    }
}
