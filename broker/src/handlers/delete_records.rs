//! DeleteRecords: moves partitions' log start offsets forward (the
//! "low watermark"), deleting whole segments that fall below them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::coordinator::OFFSETS_TOPIC;
use crate::partitions::partition_of;

/// Applies each partition's deletion and, if any log start offset moved,
/// persists the start offsets before answering, so that deleted records do
/// not come back after a restart.
pub fn handle(broker: &Broker, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let mut moved = false;
    let topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let resolved = broker.topic(&topic.name);
            let partitions = topic
                .partitions
                .into_iter()
                .map(|wanted| {
                    let result = if topic.name.as_str() == OFFSETS_TOPIC {
                        // Kafka refuses it for internal topics before anything else.
                        Err(ResponseError::InvalidTopicException.into())
                    } else {
                        partition_of(resolved.as_deref(), wanted.partition_index)
                            .and_then(|p| p.delete_records(wanted.offset))
                    };
                    let response = DeleteRecordsPartitionResult::default()
                        .with_partition_index(wanted.partition_index);
                    match result {
                        Ok(low_watermark) => {
                            moved = true;
                            response.with_low_watermark(low_watermark)
                        }
                        Err(error) => response
                            .with_low_watermark(-1)
                            .with_error_code(error.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    let mut response = DeleteRecordsResponse::default().with_topics(topics);
    if moved {
        if let Err(error) = broker.partitions.checkpoint_log_start_offsets() {
            tracing::error!(%error, "could not persist log start offsets");
            let code = ResponseError::KafkaStorageError.code();
            for partition in response
                .topics
                .iter_mut()
                .flat_map(|t| t.partitions.iter_mut())
                .filter(|p| p.error_code == 0)
            {
                partition.error_code = code;
            }
        }
    }
    response
}
