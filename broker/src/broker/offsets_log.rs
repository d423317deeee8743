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
use crate::partition::{Partition, Replicated};
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
        // As many replicas as asked for, or every broker there is (Kafka
        // refuses to create it until there are enough; a cluster smaller
        // than the default 3 would then have no groups at all).
        let brokers = self.image().brokers().filter(|b| !b.fenced).count().max(1);
        let replication_factor = config
            .offsets_topic_replication_factor()
            .min(i16::try_from(brokers).unwrap_or(i16::MAX));
        match self.create_topic(
            OFFSETS_TOPIC,
            partitions,
            replication_factor,
            configs,
            false,
        ) {
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

impl Broker {
    /// Waits until everything written for `group_id` so far is replicated:
    /// the high watermark of its `__consumer_offsets` partition reaches that
    /// partition's log end, up to `offsets.commit.timeout.ms`; whether it
    /// did. Kafka writes group records with acks=all the same way.
    pub async fn group_writes_replicated(&self, group_id: &str) -> bool {
        let Some(topic) = self.topic(OFFSETS_TOPIC) else {
            return true;
        };
        let index = partition_for(group_id, topic.partition_count());
        let Some(partition) = topic.partition(index) else {
            return true;
        };
        let leader_epoch = partition.leader_epoch();
        let end = partition.log().log_end_offset();
        let deadline = tokio::time::Instant::now() + self.config().offsets_commit_timeout();
        partition.replicated_to(end, leader_epoch, deadline).await == Replicated::Yes
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

    fn has_partition(&self, topic: &str, partition: i32) -> bool {
        let topic = self.broker().ok().and_then(|b| b.topic(topic));
        topic.is_some_and(|t| t.has_partition(partition))
    }
}
