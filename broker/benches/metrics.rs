//! What the metrics cost: the per-request and per-batch updates on the hot
//! path, and one scrape of a broker with many partitions.
//!
//! - `request`: counting a request and timing it (a cached counter, a clock
//!   read at start and end, one histogram observation) — once per request.
//! - `errors`: walking a one-partition produce response for error codes
//!   (none set) — once per request.
//! - `produce_counters`: a topic's bytes-in and messages-in — once per
//!   appended batch.
//! - `scrape`: encoding everything with 1,000 partitions in the snapshot.
//!
//! Run: `cargo bench -p strata-broker --bench metrics`

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ApiKey, ProduceResponse, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_broker::metrics::{BrokerMetrics, LeaderSnapshot, PartitionSnapshot};

fn hot_path(c: &mut Criterion) {
    let metrics = BrokerMetrics::new();
    let mut group = c.benchmark_group("metrics");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    group.bench_function("request", |b| {
        b.iter(|| drop(metrics.requests().start(ApiKey::Produce, 9)))
    });

    let response = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
        TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("orders")))
            .with_partition_responses(vec![PartitionProduceResponse::default()]),
    ]));
    group.bench_function("errors", |b| {
        b.iter(|| metrics.requests().count_errors(ApiKey::Produce, &response))
    });

    let topic = metrics.topic("orders");
    group.bench_function("produce_counters", |b| {
        b.iter(|| topic.record_produce(16 << 10, 16))
    });

    let partitions: Vec<PartitionSnapshot> = (0..1000)
        .map(|i| PartitionSnapshot {
            topic: format!("topic-{}", i / 10),
            partition: i % 10,
            log_end_offset: 1_000_000 + i64::from(i),
            log_start_offset: 0,
            high_watermark: 1_000_000 + i64::from(i),
            size_bytes: 1 << 30,
            segments: 1,
            // Led here with two followers, as with replication factor 3.
            leader: Some(LeaderSnapshot {
                replicas: 3,
                in_sync: 3,
                min_insync: 2,
                followers: vec![(2, 0, 0), (3, 10, 10_240)],
            }),
        })
        .collect();
    for t in 0..100 {
        metrics.topic(&format!("topic-{t}")).record_produce(100, 1);
    }
    group.bench_function("scrape_1000_partitions", |b| {
        b.iter_batched(
            || partitions.clone(),
            |snapshot| metrics.encode(snapshot, None),
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
