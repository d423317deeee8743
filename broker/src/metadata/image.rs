//! [`MetadataImage`]: the cluster metadata as of some point of the metadata
//! log, and [`MetadataDelta`]: what one batch of records changed in it, which
//! is what brokers act on (open a partition's log, delete a removed topic's
//! data, apply new configs).
//!
//! Applying is all or nothing: a batch that breaks a rule (a second topic of
//! one name, a partition of an unknown topic, ...) leaves the image as it was
//! and is never written. No I/O here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use super::records::{
    BrokerRegistration, ConfigResource, MetadataRecord, PartitionChange, PartitionRegistration,
};

/// One topic: its id, name and partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    /// By partition id; ids run from 0 without gaps.
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

/// The cluster metadata at one point of the log. Cheap to clone: topics are
/// shared until one changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids: BTreeMap<String, Uuid>,
    configs: BTreeMap<ConfigResource, BTreeMap<String, String>>,
    /// The end of the producer ids handed out so far.
    next_producer_id: i64,
    cluster_id: Option<String>,
}

/// What one applied batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    pub created_topics: Vec<Uuid>,
    /// Removed topics as they were before removal (brokers need their
    /// partitions to delete the data).
    pub removed_topics: Vec<Arc<TopicImage>>,
    /// New partitions of topics that existed before the batch.
    pub new_partitions: Vec<(Uuid, i32)>,
    /// Partitions whose leader or in-sync replicas changed.
    pub changed_partitions: Vec<(Uuid, i32)>,
    pub changed_configs: BTreeSet<ConfigResource>,
}

/// Why a batch cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ApplyError {
    #[error("topic {name} already exists")]
    TopicExists { name: String },
    #[error("topic id {topic_id} is already used")]
    TopicIdExists { topic_id: Uuid },
    #[error("no topic with id {topic_id}")]
    UnknownTopicId { topic_id: Uuid },
    #[error("no topic named {name}")]
    UnknownTopic { name: String },
    #[error("partition {partition} of topic {topic_id}: expected partition {expected} next")]
    PartitionOutOfOrder {
        topic_id: Uuid,
        partition: i32,
        expected: i32,
    },
    #[error("partition {partition} of topic {topic_id}: {reason}")]
    InvalidPartition {
        topic_id: Uuid,
        partition: i32,
        reason: String,
    },
    #[error("producer ids would not move forward from {current} to {next}")]
    ProducerIdsBackwards { current: i64, next: i64 },
    #[error("no broker {broker_id} is registered")]
    UnknownBroker { broker_id: i32 },
    #[error(
        "node.id {broker_id} is registered by a running node with data directory {registered}, not this one's ({directory}): two nodes have the same node.id"
    )]
    DuplicateBrokerRegistration {
        broker_id: i32,
        registered: Uuid,
        directory: Uuid,
    },
    #[error(
        "partition {partition} of topic {topic_id} is at partition epoch {current}, not {expected}"
    )]
    StalePartitionEpoch {
        topic_id: Uuid,
        partition: i32,
        expected: i32,
        current: i32,
    },
    #[error("the cluster id is {current} already, not {proposed}")]
    ClusterIdSet { current: String, proposed: String },
    #[error("broker {broker_id} cannot join the in-sync replicas of partition {partition} of topic {topic_id}: it is fenced or not registered")]
    IneligibleReplica {
        topic_id: Uuid,
        partition: i32,
        broker_id: i32,
    },
}

impl MetadataImage {
    /// The image after `records`, and what they changed; `self` is untouched.
    pub fn apply(
        &self,
        records: &[MetadataRecord],
    ) -> Result<(MetadataImage, MetadataDelta), ApplyError> {
        let mut next = self.clone();
        let mut delta = MetadataDelta::default();
        for record in records {
            next.apply_one(record, &mut delta)?;
        }
        // A topic created and removed in one batch leaves no trace to act on.
        delta
            .created_topics
            .retain(|id| next.topics.contains_key(id));
        delta
            .changed_partitions
            .retain(|(id, _)| next.topics.contains_key(id));
        Ok((next, delta))
    }

    fn apply_one(
        &mut self,
        record: &MetadataRecord,
        delta: &mut MetadataDelta,
    ) -> Result<(), ApplyError> {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                if let Some(directory) = registration.directory_id {
                    self.check_not_taken(registration.broker_id, directory)?;
                }
                self.brokers
                    .insert(registration.broker_id, registration.clone());
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topic_ids.contains_key(name) {
                    return Err(ApplyError::TopicExists { name: name.clone() });
                }
                if self.topics.contains_key(topic_id) {
                    return Err(ApplyError::TopicIdExists {
                        topic_id: *topic_id,
                    });
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    Arc::new(TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: BTreeMap::new(),
                    }),
                );
                delta.created_topics.push(*topic_id);
            }
            MetadataRecord::Partition(partition) => self.add_partition(partition, delta)?,
            MetadataRecord::PartitionChange(change) => self.change_partition(change, delta)?,
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                if let ConfigResource::Topic(topic) = resource {
                    if !self.topic_ids.contains_key(topic) {
                        return Err(ApplyError::UnknownTopic {
                            name: topic.clone(),
                        });
                    }
                }
                let configs = self.configs.entry(resource.clone()).or_default();
                match value {
                    Some(value) => {
                        configs.insert(name.clone(), value.clone());
                    }
                    None => {
                        configs.remove(name);
                    }
                }
                if configs.is_empty() {
                    self.configs.remove(resource);
                }
                delta.changed_configs.insert(resource.clone());
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ApplyError::UnknownTopicId {
                        topic_id: *topic_id,
                    })?;
                self.topic_ids.remove(&topic.name);
                let resource = ConfigResource::Topic(topic.name.clone());
                if self.configs.remove(&resource).is_some() {
                    delta.changed_configs.insert(resource);
                }
                delta.new_partitions.retain(|(id, _)| id != topic_id);
                if !delta.created_topics.contains(topic_id) {
                    delta.removed_topics.push(topic);
                }
            }
            MetadataRecord::FenceBroker { broker_id }
            | MetadataRecord::UnfenceBroker { broker_id } => {
                let registration =
                    self.brokers
                        .get_mut(broker_id)
                        .ok_or(ApplyError::UnknownBroker {
                            broker_id: *broker_id,
                        })?;
                registration.fenced = matches!(record, MetadataRecord::FenceBroker { .. });
            }
            MetadataRecord::ClusterId { cluster_id } => match &self.cluster_id {
                Some(current) if current != cluster_id => {
                    return Err(ApplyError::ClusterIdSet {
                        current: current.clone(),
                        proposed: cluster_id.clone(),
                    })
                }
                _ => self.cluster_id = Some(cluster_id.clone()),
            },
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                // Strictly forward: two brokers that claim the same block
                // from the same image cannot both have it.
                if *next_producer_id <= self.next_producer_id {
                    return Err(ApplyError::ProducerIdsBackwards {
                        current: self.next_producer_id,
                        next: *next_producer_id,
                    });
                }
                self.next_producer_id = *next_producer_id;
            }
        }
        Ok(())
    }

    fn add_partition(
        &mut self,
        partition: &PartitionRegistration,
        delta: &mut MetadataDelta,
    ) -> Result<(), ApplyError> {
        let topic_id = partition.topic_id;
        let invalid = |reason: &str| ApplyError::InvalidPartition {
            topic_id,
            partition: partition.partition_id,
            reason: reason.to_string(),
        };
        if partition.replicas.is_empty() {
            return Err(invalid("no replicas"));
        }
        let distinct: BTreeSet<i32> = partition.replicas.iter().copied().collect();
        if distinct.len() != partition.replicas.len() {
            return Err(invalid("a broker holds two replicas"));
        }
        if partition.isr.iter().any(|id| !distinct.contains(id)) {
            return Err(invalid("an in-sync replica is not a replica"));
        }
        if partition.leader != -1 && !partition.isr.contains(&partition.leader) {
            return Err(invalid("the leader is not in sync"));
        }
        let topic = self
            .topics
            .get_mut(&topic_id)
            .ok_or(ApplyError::UnknownTopicId { topic_id })?;
        let expected = topic.partitions.len() as i32;
        if partition.partition_id != expected {
            return Err(ApplyError::PartitionOutOfOrder {
                topic_id,
                partition: partition.partition_id,
                expected,
            });
        }
        Arc::make_mut(topic)
            .partitions
            .insert(partition.partition_id, partition.clone());
        if !delta.created_topics.contains(&topic_id) {
            delta
                .new_partitions
                .push((topic_id, partition.partition_id));
        }
        Ok(())
    }

    fn change_partition(
        &mut self,
        change: &PartitionChange,
        delta: &mut MetadataDelta,
    ) -> Result<(), ApplyError> {
        let topic_id = change.topic_id;
        let eligible = |id: i32| self.brokers.get(&id).is_some_and(|b| !b.fenced);
        let ineligible: Vec<i32> = match (&change.isr, change.expected_partition_epoch) {
            (Some(isr), Some(_)) => isr.iter().copied().filter(|id| !eligible(*id)).collect(),
            _ => Vec::new(),
        };
        let invalid = |reason: &str| ApplyError::InvalidPartition {
            topic_id,
            partition: change.partition_id,
            reason: reason.to_string(),
        };
        let topic = self
            .topics
            .get_mut(&topic_id)
            .ok_or(ApplyError::UnknownTopicId { topic_id })?;
        let current = topic
            .partitions
            .get(&change.partition_id)
            .ok_or_else(|| invalid("no such partition"))?;
        if let Some(expected) = change.expected_partition_epoch {
            if expected != current.partition_epoch {
                return Err(ApplyError::StalePartitionEpoch {
                    topic_id,
                    partition: change.partition_id,
                    expected,
                    current: current.partition_epoch,
                });
            }
        }
        // A leader's proposal (Kafka's AlterPartition) adds only brokers that
        // are registered and unfenced (KIP-841): a fenced one would hold the
        // high watermark back until it is dropped again.
        if let Some(&broker_id) = ineligible.iter().find(|id| !current.isr.contains(id)) {
            return Err(ApplyError::IneligibleReplica {
                topic_id,
                partition: change.partition_id,
                broker_id,
            });
        }
        let mut next = current.clone();
        if let Some(isr) = &change.isr {
            let distinct: BTreeSet<i32> = isr.iter().copied().collect();
            if distinct.len() != isr.len() || isr.iter().any(|id| !next.replicas.contains(id)) {
                return Err(invalid("the in-sync replicas are not distinct replicas"));
            }
            next.isr = isr.clone();
        }
        if let Some(leader) = change.leader {
            if leader != next.leader {
                next.leader = leader;
                next.leader_epoch += 1;
            }
        }
        if next.leader != -1 && !next.isr.contains(&next.leader) {
            return Err(invalid("the leader is not in sync"));
        }
        next.partition_epoch += 1;
        Arc::make_mut(topic)
            .partitions
            .insert(change.partition_id, next);
        delta
            .changed_partitions
            .push((topic_id, change.partition_id));
        Ok(())
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics.get(&id)
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> {
        self.topic_ids.values().filter_map(|id| self.topics.get(id))
    }

    pub fn broker(&self, id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> {
        self.brokers.values()
    }

    /// Refuses node `node_id` on data directory `directory` while another
    /// directory's node holds that id unfenced (Kafka's
    /// DUPLICATE_BROKER_REGISTRATION): two nodes were given one `node.id`.
    /// Once the other is fenced (silent for a session) the id is free, so a
    /// node whose directory was replaced can come back.
    pub fn check_not_taken(&self, node_id: i32, directory: Uuid) -> Result<(), ApplyError> {
        match self.brokers.get(&node_id) {
            Some(registered) if !registered.fenced => match registered.directory_id {
                Some(registered) if registered != directory => {
                    Err(ApplyError::DuplicateBrokerRegistration {
                        broker_id: node_id,
                        registered,
                        directory,
                    })
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The config overrides of a resource (empty when it has none).
    pub fn configs(&self, resource: &ConfigResource) -> BTreeMap<String, String> {
        self.configs.get(resource).cloned().unwrap_or_default()
    }

    /// The end of the producer ids handed out so far.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// The cluster's id, once a node has written it.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// What changed from `old` to this image, as one delta: what a broker
    /// acts on when a snapshot replaces the entries between the two.
    pub fn delta_from(&self, old: &MetadataImage) -> MetadataDelta {
        let created_topics = self
            .topics
            .keys()
            .filter(|id| !old.topics.contains_key(id))
            .copied()
            .collect();
        let removed_topics = old
            .topics
            .iter()
            .filter(|(id, _)| !self.topics.contains_key(id))
            .map(|(_, topic)| topic.clone())
            .collect();
        let new_partitions = self
            .topics
            .iter()
            .filter_map(|(id, topic)| Some((id, topic, old.topics.get(id)?)))
            .flat_map(|(id, topic, before)| {
                let known = before.partitions.len() as i32;
                topic
                    .partitions
                    .keys()
                    .filter(move |p| **p >= known)
                    .map(move |p| (*id, *p))
            })
            .collect();
        let changed_partitions = self
            .topics
            .iter()
            .filter_map(|(id, topic)| Some((id, topic, old.topics.get(id)?)))
            .flat_map(|(id, topic, before)| {
                topic
                    .partitions
                    .iter()
                    .filter(move |(p, now)| {
                        before
                            .partitions
                            .get(p)
                            .is_some_and(|then| then.partition_epoch != now.partition_epoch)
                    })
                    .map(move |(p, _)| (*id, *p))
            })
            .collect();
        let changed_configs = self
            .configs
            .keys()
            .chain(old.configs.keys())
            .filter(|resource| self.configs.get(*resource) != old.configs.get(*resource))
            .cloned()
            .collect();
        MetadataDelta {
            created_topics,
            removed_topics,
            new_partitions,
            changed_partitions,
            changed_configs,
        }
    }

    /// Records that rebuild this image when applied to an empty one: what a
    /// snapshot of the metadata log holds (KRaft's snapshots are records too).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let brokers = self
            .brokers
            .values()
            .cloned()
            .map(MetadataRecord::RegisterBroker);
        let topics = self.topics().flat_map(|topic| {
            let created = MetadataRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.id,
            };
            let partitions = topic
                .partitions
                .values()
                .cloned()
                .map(MetadataRecord::Partition);
            std::iter::once(created).chain(partitions)
        });
        let configs = self.configs.iter().flat_map(|(resource, configs)| {
            configs.iter().map(|(name, value)| MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                value: Some(value.clone()),
            })
        });
        let producer_ids = (self.next_producer_id > 0).then_some(MetadataRecord::ProducerIds {
            broker_id: -1,
            next_producer_id: self.next_producer_id,
        });
        let cluster_id = self
            .cluster_id
            .clone()
            .map(|cluster_id| MetadataRecord::ClusterId { cluster_id });
        cluster_id
            .into_iter()
            .chain(brokers)
            .chain(topics)
            .chain(configs)
            .chain(producer_ids)
            .collect()
    }
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
