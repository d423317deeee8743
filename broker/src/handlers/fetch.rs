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
use tokio::time::Instant;

use crate::broker::Broker;
use crate::partition::Partition;

/// `isolation_level` 1: only committed (transactionally) records. Without
/// transactions every record below the high watermark is committed, so the
/// only difference is that the response carries an (empty) aborted list.
const READ_COMMITTED: i8 = 1;

/// One requested partition, resolved once per request.
struct Target {
    request: FetchPartition,
    partition: Option<Arc<Partition>>,
}

/// Answers at once when `min_bytes` are available, a partition has an error,
/// or `max_wait_ms` is 0; otherwise waits for appends to any requested
/// partition (its log-end-offset watch), re-reading after each, and answers
/// with what there is when the wait runs out. Fetch sessions (KIP-227) are
/// not kept: session id 0 tells the client every fetch is a full one.
pub async fn handle(broker: &Broker, request: FetchRequest) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let read_committed = request.isolation_level == READ_COMMITTED;
    let topics: Vec<(TopicName, Vec<Target>)> = request
        .topics
        .into_iter()
        .map(|topic| {
            let resolved = broker.topic(&topic.topic);
            let targets = topic
                .partitions
                .into_iter()
                .map(|request| Target {
                    partition: resolved
                        .as_ref()
                        .and_then(|t| t.partition(request.partition))
                        .cloned(),
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
        .filter_map(|t| t.partition.as_ref().map(|p| p.subscribe()))
        .collect();

    let mut timed_out = false;
    loop {
        let (responses, bytes, errored) = read_all(&topics, request.max_bytes, read_committed);
        let enough = bytes >= request.min_bytes.max(0) as usize;
        if enough || errored || timed_out || watches.is_empty() || request.max_wait_ms <= 0 {
            return FetchResponse::default().with_responses(responses);
        }
        let any_append = select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        timed_out = tokio::time::timeout_at(deadline, any_append).await.is_err();
    }
}

/// Reads every target once. Returns the topic responses, the record bytes
/// they carry, and whether any partition answered with an error.
fn read_all(
    topics: &[(TopicName, Vec<Target>)],
    max_bytes: i32,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut remaining = max_bytes.max(0) as usize;
    let mut total = 0;
    let mut errored = false;
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
                    let data = read_partition(target, limit, total == 0, read_committed);
                    let len = data.records.as_ref().map_or(0, Bytes::len);
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
    (responses, total, errored)
}

fn read_partition(
    target: &Target,
    limit: usize,
    min_one_batch: bool,
    read_committed: bool,
) -> PartitionData {
    // librdkafka needs an empty, never null, record set to see the end of a
    // partition.
    let response = PartitionData::default()
        .with_partition_index(target.request.partition)
        .with_records(Some(Bytes::new()))
        .with_aborted_transactions(read_committed.then(Vec::new));
    let Some(partition) = &target.partition else {
        return response
            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
            .with_high_watermark(-1);
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
        return with_offsets(response, high_watermark, log_start_offset);
    }
    match partition.read(target.request.fetch_offset, limit, min_one_batch) {
        Ok(read) => with_offsets(response, read.high_watermark, read.log_start_offset)
            .with_records(Some(read.records)),
        Err((error, high_watermark, log_start_offset)) => {
            with_offsets(response, high_watermark, log_start_offset)
                .with_error_code(error.kafka_error_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::messages::fetch_request::FetchTopic;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::broker::{now_ms, Endpoint};
    use crate::config::BrokerConfig;

    fn one_record_batch() -> BytesMut {
        let record = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now_ms(),
            key: None,
            value: Some(Bytes::from_static(b"wake up")),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("encode a batch");
        buf
    }

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
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let broker = Broker::open(BrokerConfig::new(), dir, endpoint).expect("open broker");
        broker
            .create_topic("t", 1, 1, BTreeMap::new(), false)
            .expect("create topic");
        Arc::new(broker)
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
            async move { handle(&broker, fetch_at_tail(60_000)).await }
        });
        tokio::task::yield_now().await;
        let partition = broker.topic("t").expect("topic").partitions[0].clone();
        partition
            .append(&mut one_record_batch(), now_ms())
            .expect("append");
        let response = waiting.await.expect("fetch task");
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
        let response = handle(&broker, fetch_at_tail(500)).await;
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
