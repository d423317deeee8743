//! The broker's side of the group coordinator's [`OffsetsLog`]:
//! `__consumer_offsets`, created on first use, compacted, with
//! `offsets.topic.num.partitions` partitions.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use kafka_protocol::error::ResponseError;

use super::Broker;
use crate::coordinator::{OffsetsLog, OFFSETS_TOPIC};
use crate::error::ApiError;
use crate::group::partition_for;
use crate::partition::Partition;
use crate::partitions::Topic;

impl Broker {
    /// `__consumer_offsets`, created if it does not exist yet.
    pub fn offsets_topic(&self) -> Result<Arc<Topic>, ApiError> {
        if let Some(topic) = self.topic(OFFSETS_TOPIC) {
            return Ok(topic);
        }
        let config = self.config();
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            (
                "segment.bytes".to_string(),
                config.offsets_topic_segment_bytes().to_string(),
            ),
            ("compression.type".to_string(), "producer".to_string()),
        ]);
        let partitions = config.offsets_topic_num_partitions();
        match self.create_topic(OFFSETS_TOPIC, partitions, 1, configs, false) {
            Ok(topic) => Ok(topic),
            // Created by a concurrent request in between.
            Err(error) if error.code == ResponseError::TopicAlreadyExists => self
                .topic(OFFSETS_TOPIC)
                .ok_or_else(|| ResponseError::CoordinatorNotAvailable.into()),
            Err(error) => {
                tracing::error!(%error, "could not create {OFFSETS_TOPIC}");
                Err(ResponseError::CoordinatorNotAvailable.into())
            }
        }
    }
}

/// The coordinator's handle on the broker that owns it: a `Weak`, so that
/// neither keeps the other alive.
pub(super) struct BrokerOffsetsLog(pub(super) Weak<Broker>);

impl BrokerOffsetsLog {
    fn broker(&self) -> Result<Arc<Broker>, ApiError> {
        self.0
            .upgrade()
            .ok_or_else(|| ResponseError::CoordinatorNotAvailable.into())
    }
}

impl OffsetsLog for BrokerOffsetsLog {
    fn group_partition(
        &self,
        group_id: &str,
        create: bool,
    ) -> Result<Option<Arc<Partition>>, ApiError> {
        let broker = self.broker()?;
        let topic = match broker.topic(OFFSETS_TOPIC) {
            Some(topic) => topic,
            None if !create => return Ok(None),
            None => broker.offsets_topic()?,
        };
        let index = partition_for(group_id, topic.partition_count());
        match topic.partition(index) {
            Some(partition) if partition.is_leader() => Ok(Some(partition.clone())),
            Some(_) => Err(ResponseError::NotCoordinator.into()),
            None => Err(ResponseError::CoordinatorNotAvailable.into()),
        }
    }

    fn hosted_partitions(&self) -> Vec<Arc<Partition>> {
        let topic = self.broker().ok().and_then(|b| b.topic(OFFSETS_TOPIC));
        topic.map(|t| t.partitions.clone()).unwrap_or_default()
    }

    fn has_partition(&self, topic: &str, partition: i32) -> bool {
        let topic = self.broker().ok().and_then(|b| b.topic(topic));
        topic.is_some_and(|t| t.has_partition(partition))
    }
}
