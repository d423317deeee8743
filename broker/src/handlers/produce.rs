//! Produce: append each partition's record batches, answer per partition.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::broker::{now_ms, Broker};
use crate::coordinator::OFFSETS_TOPIC;
use crate::error::ApiError;
use crate::metrics::BrokerMetrics;
use crate::partition::{Partition, Replicated};
use crate::partitions::partition_of;
use tokio::time::Instant;

/// The client id with which Kafka's own tools may write to internal topics.
const ADMIN_CLIENT_ID: &str = "__admin_client";

/// Appends every partition's batches and answers per partition. acks=1
/// answers once the leader has appended; acks=-1 (all) once the high
/// watermark has passed the batch (every in-sync replica holds it), waiting
/// on the partitions' high watermark watches up to the request's
/// `timeout_ms` (REQUEST_TIMED_OUT after), and only if the partition had
/// `min.insync.replicas` in sync before the append (NOT_ENOUGH_REPLICAS)
/// and still has after it (NOT_ENOUGH_REPLICAS_AFTER_APPEND). acks=0 gets no
/// response at all, as in Kafka. Clients cannot write to
/// `__consumer_offsets` (INVALID_TOPIC_EXCEPTION, as Kafka answers), except
/// Kafka's admin tools' client id.
///
/// The appends happen here, in request order; the wait for the replicas is
/// [`Produced::finish`], which the connection may run while it appends the
/// next requests (their responses still go out in order), so a producer with
/// several requests in flight has them replicated together rather than one
/// replication round trip after another.
pub fn handle(
    broker: &Broker,
    request: ProduceRequest,
    client_id: Option<&str>,
) -> Option<Produced> {
    let internal_allowed = client_id == Some(ADMIN_CLIENT_ID);
    let acks = request.acks;
    let invalid_acks = !matches!(acks, -1..=1);
    let now = now_ms();
    let mut waiting = Vec::new();
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (t, topic_data) in request.topic_data.into_iter().enumerate() {
        let topic = broker.topic(&topic_data.name);
        let min_insync = topic
            .as_deref()
            .map_or(1, |topic| broker.min_insync_replicas(topic));
        let mut partition_responses = Vec::new();
        for (p, data) in topic_data.partition_data.into_iter().enumerate() {
            let response = PartitionProduceResponse::default().with_index(data.index);
            let result = if invalid_acks {
                Err(ApiError::from(ResponseError::InvalidRequiredAcks))
            } else if topic_data.name.as_str() == OFFSETS_TOPIC && !internal_allowed {
                Err(ApiError::new(
                    ResponseError::InvalidTopicException,
                    format!("Cannot append to internal topic {OFFSETS_TOPIC}"),
                ))
            } else {
                let required = (acks == -1).then_some(min_insync);
                append(topic.as_deref(), data.index, data.records, required, now)
            };
            partition_responses.push(match result {
                Ok((partition, leader_epoch, info, log_start_offset)) => {
                    if acks == -1 {
                        waiting.push(Waiting {
                            at: (t, p),
                            partition,
                            offset: info.last_offset + 1,
                            leader_epoch,
                            min_insync,
                        });
                    }
                    response
                        .with_base_offset(info.base_offset)
                        .with_log_append_time_ms(info.log_append_time)
                        .with_log_start_offset(log_start_offset)
                }
                Err(error) => failed(response, &error),
            });
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id)
                .with_partition_responses(partition_responses),
        );
    }
    if acks == 0 {
        return None;
    }
    Some(Produced {
        responses,
        waiting,
        deadline: Instant::now() + Duration::from_millis(request.timeout_ms.max(0) as u64),
    })
}

/// A produce request whose batches are appended, its answer to come once the
/// acks=all ones are replicated.
pub struct Produced {
    responses: Vec<TopicProduceResponse>,
    waiting: Vec<Waiting>,
    deadline: Instant,
}

impl Produced {
    /// Whether the answer is ready now: no acks=all append waits for replicas.
    pub fn is_ready(&self) -> bool {
        self.waiting.iter().all(Waiting::reached)
    }

    /// The answer, once every acks=all append is replicated or the request's
    /// timeout has passed.
    pub async fn finish(mut self, metrics: &BrokerMetrics) -> ProduceResponse {
        for (at, error) in wait_for_replicas(metrics, self.waiting, self.deadline).await {
            let response = &mut self.responses[at.0].partition_responses[at.1];
            *response = failed(std::mem::take(response), &error);
        }
        ProduceResponse::default().with_responses(self.responses)
    }
}

/// An acks=all append waiting for the high watermark to reach `offset`.
struct Waiting {
    /// Where its answer is: topic and partition position in the response.
    at: (usize, usize),
    partition: Arc<Partition>,
    offset: i64,
    /// The leader epoch it was appended under.
    leader_epoch: i32,
    min_insync: usize,
}

impl Waiting {
    fn reached(&self) -> bool {
        self.partition.high_watermark() >= self.offset
            && self.partition.leader_epoch() == self.leader_epoch
    }
}

/// Waits until every append's partition has its high watermark at or past
/// the append (or the deadline passes, or this broker stops leading it);
/// the errors of those that did not make it, by position in the response:
/// REQUEST_TIMED_OUT, NOT_LEADER_OR_FOLLOWER (as Kafka's delayed produce
/// answers once the partition has another leader), or
/// NOT_ENOUGH_REPLICAS_AFTER_APPEND.
async fn wait_for_replicas(
    metrics: &BrokerMetrics,
    waiting: Vec<Waiting>,
    deadline: Instant,
) -> Vec<((usize, usize), ApiError)> {
    let mut outcomes = vec![Replicated::Yes; waiting.len()];
    // Mostly already there (one replica): nothing to wait for then.
    if !waiting.iter().all(Waiting::reached) {
        let _parked = metrics.produce_waiting();
        outcomes = join_all(waiting.iter().map(|w| {
            w.partition
                .replicated_to(w.offset, w.leader_epoch, deadline)
        }))
        .await;
    }
    waiting
        .into_iter()
        .zip(outcomes)
        .filter_map(|(w, outcome)| {
            let error = match outcome {
                Replicated::TimedOut => ApiError::from(ResponseError::RequestTimedOut),
                Replicated::LeaderChanged => ApiError::from(ResponseError::NotLeaderOrFollower),
                Replicated::Yes if w.partition.isr_size() < w.min_insync => {
                    ApiError::from(ResponseError::NotEnoughReplicasAfterAppend)
                }
                Replicated::Yes => return None,
            };
            Some((w.at, error))
        })
        .collect()
}

fn failed(response: PartitionProduceResponse, error: &ApiError) -> PartitionProduceResponse {
    response
        .with_error_code(error.code())
        .with_error_message(error.message_str())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
}

/// Appends one partition's records; with `min_insync` (acks=all), only if
/// that many replicas are in sync.
fn append(
    topic: Option<&crate::partitions::Topic>,
    index: i32,
    records: Option<bytes::Bytes>,
    min_insync: Option<usize>,
    now: i64,
) -> Result<(Arc<Partition>, i32, strata_storage::AppendInfo, i64), ApiError> {
    let partition = partition_of(topic, index)?;
    if let Some(required) = min_insync {
        let in_sync = partition.isr_size();
        if in_sync < required {
            return Err(ApiError::new(
                ResponseError::NotEnoughReplicas,
                format!(
                    "The size of the current ISR ({in_sync}) is insufficient to satisfy the min.isr requirement of {required} for partition {}-{index}",
                    partition.topic
                ),
            ));
        }
    }
    let records = records.ok_or_else(|| {
        ApiError::new(
            ResponseError::CorruptMessage,
            "produce request without records",
        )
    })?;
    // The one copy of the batch on the way to the log: the request frame is
    // shared and immutable, and the base offset must be patched in place.
    let mut batch = records.to_vec();
    // The leadership the append happens under (read first: should it end
    // in between, the wait for replicas says so).
    let leader_epoch = partition.leader_epoch();
    let (info, log_start_offset) = partition.append(&mut batch, now)?;
    // A retried duplicate of an idempotent producer appends nothing.
    if info.record_count > 0 {
        partition
            .metrics
            .record_produce(batch.len(), info.record_count);
    }
    Ok((partition.clone(), leader_epoch, info, log_start_offset))
}
