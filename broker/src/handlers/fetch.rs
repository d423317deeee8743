//! Fetch: whole record batches from each requested partition, waiting up to
//! `max_wait_ms` for `min_bytes` to accumulate.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::select_all;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use strata_storage::FileSlice;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::clock::now_ms;
use crate::frame::placeholder;
use crate::partition::Partition;
use crate::partitions::partition_of;

/// `isolation_level` 1: only committed (transactionally) records. Without
/// transactions every record below the high watermark is committed, so the
/// only difference is that the response carries an (empty) aborted list.
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Target {
    request: FetchPartition,
    /// The partition, or why this broker cannot serve it.
    partition: Result<Arc<Partition>, ResponseError>,
    /// The follower fetching it (a replica fetch), or `None` for a consumer.
    follower: Option<i32>,
}

/// A fetch response whose record sets are [`placeholder`]s, and the file
/// ranges that replace them, in the order the encoder meets them.
pub struct FetchReply {
    pub response: FetchResponse,
    pub holes: Vec<Vec<FileSlice>>,
}

impl FetchReply {
    /// The response with every placeholder replaced by the bytes it stands
    /// for, for callers that need plain bytes.
    #[cfg(test)]
    pub fn into_response(mut self) -> std::io::Result<FetchResponse> {
        let mut holes = self.holes.into_iter();
        for partition in self
            .response
            .responses
            .iter_mut()
            .flat_map(|topic| topic.partitions.iter_mut())
        {
            if let Some(records) = partition
                .records
                .as_mut()
                .filter(|r| crate::frame::is_placeholder(r))
            {
                let slices = holes.next().unwrap_or_default();
                *records = strata_storage::read_slices(&slices)?;
            }
        }
        Ok(self.response)
    }
}

/// Answers at once when `min_bytes` are available, a partition has an error,
/// or `max_wait_ms` is 0; otherwise waits for any requested partition's
/// high watermark to move (a follower: its log end), re-reading after each, and answers
/// with what there is when the wait runs out. Fetch sessions (KIP-227) are
/// not kept: session id 0 tells the client every fetch is a full one.
pub async fn handle(broker: &Broker, request: FetchRequest) -> FetchReply {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let read_committed = request.isolation_level == READ_COMMITTED;
    // A broker fetching as a follower (replica id 0 or above): it reads up
    // to the log end and its fetch offset tells the leader what it holds; a
    // broker that does not follow the partition gets NOT_LEADER_OR_FOLLOWER,
    // as Kafka answers.
    let replica_id = request.replica_id.0;
    let follower = (replica_id >= 0).then_some(replica_id);
    let topics: Vec<(TopicName, Vec<Target>)> = request
        .topics
        .into_iter()
        .map(|topic| {
            let resolved = broker.topic(&topic.topic);
            let targets = topic
                .partitions
                .into_iter()
                .map(|request| Target {
                    partition: partition_of(resolved.as_deref(), request.partition)
                        .and_then(|p| {
                            p.check_leader_epoch(request.current_leader_epoch)?;
                            Ok(p)
                        })
                        .map_err(|e| e.code)
                        .and_then(|p| match follower {
                            Some(id) if !p.is_follower(id) => {
                                Err(ResponseError::NotLeaderOrFollower)
                            }
                            _ => Ok(p.clone()),
                        }),
                    follower,
                    request,
                })
                .collect();
            (topic.topic, targets)
        })
        .collect();
    // Subscribe before the first read so that no append in between is missed.
    let mut watches: Vec<_> = topics
        .iter()
        .flat_map(|(_, targets)| targets.iter())
        .filter_map(|t| {
            let partition = t.partition.as_ref().ok()?;
            Some(match t.follower {
                Some(_) => partition.subscribe_log_end(),
                None => partition.subscribe(),
            })
        })
        .collect();

    let mut timed_out = false;
    // Counts this fetch in purgatory from its first wait until it answers.
    let mut waiting = None;
    loop {
        let read = read_all(&topics, request.max_bytes, read_committed);
        let enough = read.bytes >= request.min_bytes.max(0) as usize;
        if enough || read.errored || timed_out || watches.is_empty() || request.max_wait_ms <= 0 {
            count_bytes_out(&topics, &read.responses);
            return FetchReply {
                response: FetchResponse::default().with_responses(read.responses),
                holes: read.holes,
            };
        }
        waiting.get_or_insert_with(|| broker.metrics.fetch_waiting());
        let any_append = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        timed_out = tokio::time::timeout_at(deadline, any_append).await.is_err();
    }
}

/// Adds the record bytes of the response to each topic's bytes-out counter.
fn count_bytes_out(topics: &[(TopicName, Vec<Target>)], responses: &[FetchableTopicResponse]) {
    for ((_, targets), response) in topics.iter().zip(responses) {
        for (target, data) in targets.iter().zip(&response.partitions) {
            let bytes = data.records.as_ref().map_or(0, Bytes::len);
            if let (Ok(partition), true) = (&target.partition, bytes > 0) {
                partition.metrics.record_fetch(bytes);
            }
        }
    }
}

/// One pass over every requested partition.
struct ReadAll {
    responses: Vec<FetchableTopicResponse>,
    holes: Vec<Vec<FileSlice>>,
    /// Record bytes the responses carry.
    bytes: usize,
    /// Whether any partition answered with an error.
    errored: bool,
}

/// Reads every target once, within the request's `max_bytes`.
fn read_all(topics: &[(TopicName, Vec<Target>)], max_bytes: i32, read_committed: bool) -> ReadAll {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0;
    let mut errored = false;
    let mut holes = Vec::new();
    let responses = topics
        .iter()
        .map(|(name, targets)| {
            let partitions = targets
                .iter()
                .map(|target| {
                    let limit = remaining.min(target.request.partition_max_bytes.max(0) as usize);
                    // KIP-74: the first batch of the response is returned whole
                    // even when larger than the limits, so a big batch can't
                    // stall a consumer.
                    let (data, len) =
                        read_partition(target, limit, total == 0, read_committed, &mut holes);
                    remaining = remaining.saturating_sub(len);
                    total += len;
                    errored |= data.error_code != 0;
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ReadAll {
        responses,
        holes,
        bytes: total,
        errored,
    }
}

/// One partition's answer and the record bytes it carries. Records up to
/// [`crate::frame::PLACEHOLDER_LEN`] become a placeholder plus an entry in
/// `holes`; a larger set (a single oversized batch) is copied in.
fn read_partition(
    target: &Target,
    limit: usize,
    min_one_batch: bool,
    read_committed: bool,
    holes: &mut Vec<Vec<FileSlice>>,
) -> (PartitionData, usize) {
    // librdkafka needs an empty, never null, record set to see the end of a
    // partition.
    let response = PartitionData::default()
        .with_partition_index(target.request.partition)
        .with_records(Some(Bytes::new()))
        .with_aborted_transactions(read_committed.then(Vec::new));
    let partition = match &target.partition {
        Ok(partition) => partition,
        Err(error) => {
            let response = response
                .with_error_code(error.code())
                .with_high_watermark(-1);
            return (response, 0);
        }
    };
    let with_offsets = |response: PartitionData, high_watermark: i64, log_start_offset: i64| {
        response
            .with_high_watermark(high_watermark)
            .with_last_stable_offset(high_watermark)
            .with_log_start_offset(log_start_offset)
    };
    if limit == 0 && !min_one_batch {
        let high_watermark = partition.high_watermark();
        let log_start_offset = partition.log().log_start_offset();
        return (with_offsets(response, high_watermark, log_start_offset), 0);
    }
    let offset = target.request.fetch_offset;
    let read = match target.follower {
        Some(id) => partition.read_for_follower(id, offset, limit, min_one_batch, now_ms()),
        None => partition.read(offset, limit, min_one_batch),
    };
    match read {
        Ok(read) => {
            let response = with_offsets(response, read.high_watermark, read.log_start_offset);
            if read.len == 0 {
                return (response, 0);
            }
            if let Some(stand_in) = placeholder(read.len) {
                holes.push(read.records);
                return (response.with_records(Some(stand_in)), read.len);
            }
            match strata_storage::read_slices(&read.records) {
                Ok(bytes) => (response.with_records(Some(bytes)), read.len),
                Err(error) => {
                    tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fetch read failed");
                    let code = ResponseError::KafkaStorageError.code();
                    (response.with_error_code(code), 0)
                }
            }
        }
        Err((error, high_watermark, log_start_offset)) => {
            let response = with_offsets(response, high_watermark, log_start_offset)
                .with_error_code(error.kafka_error_code());
            (response, 0)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kafka_protocol::messages::fetch_request::FetchTopic;
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::broker::now_ms;
    use crate::test_support::{one_record_batch, open_broker};

    fn fetch_at_tail(max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20)])])
    }

    fn broker_with_topic(dir: &std::path::Path) -> Arc<Broker> {
        let broker = open_broker(dir);
        broker
            .create_topic("t", 1, 1, BTreeMap::new(), false)
            .expect("create topic");
        broker
    }

    fn records_of(response: &FetchResponse) -> &Bytes {
        response.responses[0].partitions[0]
            .records
            .as_ref()
            .expect("never null records")
    }

    /// With the clock paused, time only moves when every task waits on a timer:
    /// a fetch that answers before 60 virtual seconds have passed was woken by
    /// the append, not by its timeout.
    #[tokio::test(start_paused = true)]
    async fn a_waiting_fetch_is_woken_by_an_append() {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = broker_with_topic(dir.path());
        let started = Instant::now();
        let waiting = tokio::spawn({
            let broker = broker.clone();
            async move { handle(&broker, fetch_at_tail(60_000)).await.into_response() }
        });
        tokio::task::yield_now().await;
        let partition = broker.topic("t").expect("topic").partitions[0].clone();
        partition
            .append(
                &mut one_record_batch(None, Some("wake up"), now_ms()),
                now_ms(),
            )
            .expect("append");
        let response = waiting.await.expect("fetch task").expect("read records");
        assert!(!records_of(&response).is_empty(), "the appended batch");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "woken after {:?} of virtual time",
            started.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_with_nothing_to_read_answers_empty_records_at_its_timeout() {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = broker_with_topic(dir.path());
        let started = Instant::now();
        let response = handle(&broker, fetch_at_tail(500))
            .await
            .into_response()
            .expect("read records");
        assert_eq!(started.elapsed(), Duration::from_millis(500));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        assert_eq!(partition.high_watermark, 0);
        assert!(
            records_of(&response).is_empty(),
            "empty, not null, at the tail"
        );
    }
}
