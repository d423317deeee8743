//! Produce: append each partition's record batches, answer per partition.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::broker::{now_ms, Broker};
use crate::coordinator::OFFSETS_TOPIC;
use crate::error::ApiError;
use crate::partitions::partition_of;

/// The client id with which Kafka's own tools may write to internal topics.
const ADMIN_CLIENT_ID: &str = "__admin_client";

/// Appends every partition's batches. acks 1 and -1 both answer once the
/// append is done: on a single broker the high watermark moves with the log
/// end offset, so "all in-sync replicas" is this one. acks=0 gets no
/// response at all, as in Kafka. Clients cannot write to `__consumer_offsets`
/// (INVALID_TOPIC_EXCEPTION, as Kafka answers), except Kafka's admin tools'
/// client id.
pub fn handle(
    broker: &Broker,
    request: ProduceRequest,
    client_id: Option<&str>,
) -> Option<ProduceResponse> {
    let internal_allowed = client_id == Some(ADMIN_CLIENT_ID);
    let acks = request.acks;
    let invalid_acks = !matches!(acks, -1..=1);
    let now = now_ms();
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic = broker.topic(&topic_data.name);
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let response = PartitionProduceResponse::default().with_index(data.index);
                    let result = if invalid_acks {
                        Err(ApiError::from(ResponseError::InvalidRequiredAcks))
                    } else if topic_data.name.as_str() == OFFSETS_TOPIC && !internal_allowed {
                        Err(ApiError::new(
                            ResponseError::InvalidTopicException,
                            format!("Cannot append to internal topic {OFFSETS_TOPIC}"),
                        ))
                    } else {
                        append(topic.as_deref(), data.index, data.records, now)
                    };
                    match result {
                        Ok((info, log_start_offset)) => response
                            .with_base_offset(info.base_offset)
                            .with_log_append_time_ms(info.log_append_time)
                            .with_log_start_offset(log_start_offset),
                        Err(error) => response
                            .with_error_code(error.code())
                            .with_error_message(error.message_str())
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1),
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

fn append(
    topic: Option<&crate::partitions::Topic>,
    index: i32,
    records: Option<bytes::Bytes>,
    now: i64,
) -> Result<(strata_storage::AppendInfo, i64), ApiError> {
    let partition = partition_of(topic, index)?;
    let records = records.ok_or_else(|| {
        ApiError::new(
            ResponseError::CorruptMessage,
            "produce request without records",
        )
    })?;
    // The one copy of the batch on the way to the log: the request frame is
    // shared and immutable, and the base offset must be patched in place.
    let mut batch = records.to_vec();
    let (info, log_start_offset) = partition.append(&mut batch, now)?;
    // A retried duplicate of an idempotent producer appends nothing.
    if info.record_count > 0 {
        partition
            .metrics
            .record_produce(batch.len(), info.record_count);
    }
    Ok((info, log_start_offset))
}
