//! ListOffsets: earliest, latest, by timestamp, and max timestamp (KIP-734).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::error::ApiError;
use crate::partition::Partition;
use crate::partitions::partition_of;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

pub fn handle(broker: &Broker, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let resolved = broker.topic(&topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let response = ListOffsetsPartitionResponse::default()
                        .with_partition_index(wanted.partition_index);
                    let result = partition_of(resolved.as_deref(), wanted.partition_index)
                        .and_then(|p| {
                            p.check_leader_epoch(wanted.current_leader_epoch)?;
                            Ok((lookup(p, wanted.timestamp)?, p.leader_epoch()))
                        });
                    match result {
                        // The leader epoch field exists from v4 on, and the
                        // codec refuses to drop a non-default value silently.
                        Ok(((offset, timestamp), epoch)) => response
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(error) => response
                            .with_error_code(error.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The (offset, timestamp) answer for one partition, as a consumer sees
/// the log: below the high watermark (LATEST is the high watermark). Kafka
/// answers -1 for both when no record is at or after the timestamp, and
/// when the log is empty for the max-timestamp query.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), ApiError> {
    let high_watermark = partition.high_watermark();
    let visible = |found: Option<(i64, i64)>| found.filter(|(offset, _)| *offset < high_watermark);
    let log = partition.log();
    Ok(match timestamp {
        LATEST => (high_watermark, -1),
        EARLIEST => (log.log_start_offset(), -1),
        MAX_TIMESTAMP => visible(log.max_timestamp()?).unwrap_or((-1, -1)),
        t if t >= 0 => visible(log.offset_for_timestamp(t)?).unwrap_or((-1, -1)),
        _ => {
            return Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("unknown special timestamp {timestamp}"),
            ))
        }
    })
}
