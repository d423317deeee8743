//! OffsetForLeaderEpoch (API 23): where a leader epoch's records end in a
//! partition's log, from its leader epoch cache. Clients ask it to tell
//! whether the log was truncated under their position (KIP-320); followers
//! will ask it before fetching after a leader change.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::broker::Broker;
use crate::partitions::partition_of;

pub fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let resolved = broker.topic(&topic.topic);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let answer = EpochEndOffset::default().with_partition(wanted.partition);
                    let found = partition_of(resolved.as_deref(), wanted.partition)
                        .and_then(|p| {
                            p.check_leader_epoch(wanted.current_leader_epoch)
                                .map(|()| p)
                        })
                        .map(|p| p.log().end_offset_for_epoch(wanted.leader_epoch));
                    match found {
                        Ok((epoch, end_offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(error) => answer
                            .with_error_code(error.code.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
