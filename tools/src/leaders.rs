//! Where a topic's partitions live, and one connection to each partition leader.
//!
//! Produce and Fetch requests must go to the leader of each partition; Metadata
//! names it. [`TopicLayout`] is that answer for one topic, and [`Leaders`] keeps a
//! [`Client`] per leader broker, opened on first use, so the data commands work
//! against a multi-broker Kafka cluster as well as a single Strata node.
//!
//! No retries on leader changes yet: a NOT_LEADER_OR_FOLLOWER answer ends the
//! command with that error.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::client::{broker_error, Client};

/// A topic's partitions and their leaders, as one Metadata answer described them.
pub struct TopicLayout {
    pub name: String,
    /// Nil when the broker is older than Metadata v10 (KIP-516).
    pub topic_id: Uuid,
    /// Partition index → leader's node id, in partition order.
    pub leaders: BTreeMap<i32, i32>,
    /// Node id → HOST:PORT of every broker in the answer.
    pub brokers: HashMap<i32, String>,
}

impl TopicLayout {
    /// Asks `client` for `topic`'s layout. An unknown topic is an error (the
    /// request does not auto-create it), as is a partition without a leader.
    pub fn fetch(client: &mut Client, topic: &str) -> Result<TopicLayout> {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
            ]))
            .with_allow_auto_topic_creation(false);
        let response = client.send(&request)?;
        let Some(answer) = response
            .topics
            .iter()
            .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
        else {
            bail!("topic {topic:?}: the broker's Metadata answer does not mention it");
        };
        broker_error(answer.error_code, None).with_context(|| format!("topic {topic:?}"))?;
        let mut leaders = BTreeMap::new();
        for partition in &answer.partitions {
            broker_error(partition.error_code, None).with_context(|| {
                format!("topic {topic:?} partition {}", partition.partition_index)
            })?;
            if partition.leader_id.0 < 0 {
                bail!(
                    "topic {topic:?} partition {} has no leader",
                    partition.partition_index
                );
            }
            leaders.insert(partition.partition_index, partition.leader_id.0);
        }
        if leaders.is_empty() {
            bail!("topic {topic:?} has no partitions");
        }
        let brokers = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        Ok(TopicLayout {
            name: topic.to_string(),
            topic_id: answer.topic_id,
            leaders,
            brokers,
        })
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> usize {
        self.leaders.len()
    }

    /// The leader of `partition`, or an error naming the valid range.
    pub fn leader(&self, partition: i32) -> Result<i32> {
        match self.leaders.get(&partition) {
            Some(&leader) => Ok(leader),
            None => bail!(
                "topic {:?} has no partition {partition} (it has partitions 0..{})",
                self.name,
                self.leaders.len()
            ),
        }
    }

    /// The topic's name as the protocol types want it.
    pub fn topic_name(&self) -> TopicName {
        topic_name(&self.name)
    }
}

/// One [`Client`] per leader broker, opened when first needed.
pub struct Leaders {
    brokers: HashMap<i32, String>,
    clients: HashMap<i32, Client>,
}

impl Leaders {
    pub fn new(layout: &TopicLayout) -> Leaders {
        Leaders {
            brokers: layout.brokers.clone(),
            clients: HashMap::new(),
        }
    }

    /// The connection to broker `node_id`, connecting on first use.
    pub fn client(&mut self, node_id: i32) -> Result<&mut Client> {
        if !self.clients.contains_key(&node_id) {
            let Some(address) = self.brokers.get(&node_id) else {
                bail!("broker {node_id} leads a partition but is missing from metadata");
            };
            let client = crate::client::connect(address)?;
            self.clients.insert(node_id, client);
        }
        Ok(self
            .clients
            .get_mut(&node_id)
            .expect("inserted above when missing"))
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
