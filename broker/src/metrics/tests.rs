//! The metrics a broker reports, read back from its own exposition text.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use strata_protocol::Request;

use super::*;
use crate::broker::{now_ms, Broker};
use crate::test_support::{open_broker, produce_request};

/// The value of the sample whose line starts with `series` (name and
/// labels exactly as written), if there is one.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

fn scrape(broker: &Broker) -> String {
    broker
        .metrics
        .encode(broker.partitions(), Some(broker.metadata()))
}

fn produce(broker: &Arc<Broker>, topic: &str, partition: i32) {
    let request = produce_request(topic, partition, 1, 1000);
    let request = Request {
        header: RequestHeader::default().with_request_api_version(9),
        api_key: ApiKey::Produce,
        body: RequestKind::Produce(request),
    };
    let broker = broker.clone();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(async move {
            let _timer = broker.metrics.requests().start(ApiKey::Produce, 9);
            crate::handlers::handle(&broker, request, None)
                .await
                .expect("handled")
        });
}

#[test]
fn produce_counts_per_topic_and_partitions_report_their_offsets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    broker
        .create_topic("orders", 2, 1, BTreeMap::new(), false)
        .expect("create");
    produce(&broker, "orders", 1);
    produce(&broker, "orders", 1);

    let text = scrape(&broker);
    assert_eq!(
        sample(
            &text,
            r#"strata_topic_produced_messages_total{topic="orders"}"#
        ),
        Some(2.0),
        "{text}"
    );
    let bytes = sample(
        &text,
        r#"strata_topic_produced_bytes_total{topic="orders"}"#,
    );
    assert!(bytes.is_some_and(|b| b > 0.0), "{text}");
    assert_eq!(
        sample(&text, r#"strata_requests_total{api="Produce",version="9"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"strata_request_duration_seconds_count{api="Produce"}"#
        ),
        Some(2.0),
        "{text}"
    );
    for (series, value) in [
        (
            r#"strata_partition_log_end_offset{topic="orders",partition="1"}"#,
            2.0,
        ),
        (
            r#"strata_partition_high_watermark{topic="orders",partition="1"}"#,
            2.0,
        ),
        (
            r#"strata_partition_log_end_offset{topic="orders",partition="0"}"#,
            0.0,
        ),
        (
            r#"strata_partition_log_start_offset{topic="orders",partition="1"}"#,
            0.0,
        ),
        (
            r#"strata_partition_segments{topic="orders",partition="1"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn errors_are_counted_per_api_and_code() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    produce(&broker, "no-such-topic", 0);
    let text = scrape(&broker);
    assert_eq!(
        sample(
            &text,
            r#"strata_request_errors_total{api="Produce",error="UNKNOWN_TOPIC_OR_PARTITION"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn a_deleted_topic_leaves_no_series_and_a_new_one_starts_at_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    broker
        .create_topic("gone", 1, 1, BTreeMap::new(), false)
        .expect("create");
    produce(&broker, "gone", 0);
    assert!(scrape(&broker).contains(r#"topic="gone""#));

    broker.delete_topic("gone").expect("delete");
    let text = scrape(&broker);
    assert!(!text.contains(r#"topic="gone""#), "{text}");

    broker
        .create_topic("gone", 1, 1, BTreeMap::new(), false)
        .expect("create again");
    let text = scrape(&broker);
    assert_eq!(
        sample(
            &text,
            r#"strata_topic_produced_messages_total{topic="gone"}"#
        ),
        Some(0.0),
        "{text}"
    );
}

#[test]
fn the_metadata_log_and_image_are_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    let text = scrape(&broker);
    // The voters (0), the new leader's blank entry (1), the cluster id (2),
    // this broker's registration (3): one entry a change.
    assert_eq!(sample(&text, "strata_metadata_log_end_offset"), Some(4.0));
    assert_eq!(
        sample(&text, "strata_metadata_last_applied_offset"),
        Some(3.0)
    );
    assert_eq!(sample(&text, "strata_controller_active"), Some(1.0));
    assert_eq!(sample(&text, "strata_metadata_quorum_term"), Some(1.0));
    assert_eq!(sample(&text, "strata_metadata_apply_lag"), Some(0.0));
    assert_eq!(sample(&text, "strata_metadata_max_follower_lag"), Some(0.0));
    assert_eq!(sample(&text, "strata_controller_voters"), Some(1.0));
    assert_eq!(sample(&text, "strata_brokers_active"), Some(1.0));
    assert_eq!(sample(&text, "strata_brokers_fenced"), Some(0.0));
    broker
        .create_topic("t", 2, 1, BTreeMap::new(), false)
        .expect("create");
    let text = scrape(&broker);
    assert_eq!(sample(&text, "strata_metadata_log_end_offset"), Some(5.0));
    assert_eq!(
        sample(&text, "strata_metadata_last_applied_offset"),
        Some(4.0)
    );
    assert_eq!(sample(&text, "strata_offline_partitions"), Some(0.0));
}

#[test]
fn connections_and_waiting_fetches_are_gauges_held_by_guards() {
    let metrics = BrokerMetrics::new();
    let first = metrics.connection_opened();
    let second = metrics.connection_opened();
    let waiting = metrics.fetch_waiting();
    drop(first);
    let text = metrics.encode(Vec::new(), None);
    assert_eq!(sample(&text, "strata_connections_active"), Some(1.0));
    assert_eq!(
        sample(&text, "strata_connections_accepted_total"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, r#"strata_purgatory_requests{operation="fetch"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, r#"strata_purgatory_requests{operation="produce"}"#),
        Some(0.0)
    );
    drop((second, waiting));
    let text = metrics.encode(Vec::new(), None);
    assert_eq!(sample(&text, "strata_connections_active"), Some(0.0));
    assert_eq!(
        sample(&text, r#"strata_purgatory_requests{operation="fetch"}"#),
        Some(0.0)
    );
}

struct FixedGroups;

impl GroupMetricsSource for FixedGroups {
    fn groups(&self) -> Vec<GroupSnapshot> {
        vec![GroupSnapshot {
            group_id: "billing".into(),
            state: "Stable".into(),
            members: 3,
            committed_offsets: vec![
                CommittedOffset {
                    topic: "orders".into(),
                    partition: 0,
                    offset: 40,
                },
                CommittedOffset {
                    topic: "deleted".into(),
                    partition: 0,
                    offset: 7,
                },
            ],
        }]
    }
}

#[test]
fn groups_are_reported_with_lag_against_the_high_watermark() {
    let metrics = BrokerMetrics::new();
    let partition = PartitionSnapshot {
        topic: "orders".into(),
        partition: 0,
        log_end_offset: 100,
        log_start_offset: 0,
        high_watermark: 100,
        size_bytes: 4096,
        segments: 1,
        leader: None,
    };
    let text = metrics.encode(vec![partition.clone()], None);
    assert!(
        !text.contains("strata_consumer_group"),
        "no source, no group series"
    );

    metrics.set_group_source(Arc::new(FixedGroups));
    let text = metrics.encode(vec![partition], None);
    for (series, value) in [
        (r#"strata_consumer_groups{state="Stable"}"#, 1.0),
        (r#"strata_consumer_group_members{group="billing"}"#, 3.0),
        (
            r#"strata_consumer_group_committed_offset{group="billing",topic="orders",partition="0"}"#,
            40.0,
        ),
        (
            r#"strata_consumer_group_lag{group="billing",topic="orders",partition="0"}"#,
            60.0,
        ),
        (
            r#"strata_consumer_group_committed_offset{group="billing",topic="deleted",partition="0"}"#,
            7.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
    assert!(
        !text.contains(r#"strata_consumer_group_lag{group="billing",topic="deleted""#),
        "no lag for a partition that does not exist\n{text}"
    );
}

#[test]
fn build_info_names_the_version() {
    let text = BrokerMetrics::new().encode(Vec::new(), None);
    let expected = format!(
        r#"strata_build_info{{version="{}",revision="#,
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.contains(&expected), "{text}");
    assert!(text.contains("process_resident_memory_bytes "), "{text}");
}

/// The leader of a replicated partition reports its replicas, in-sync
/// replicas and each follower's lag; once the controller takes its proposal
/// to drop a follower that stopped fetching, the partition is under-replicated
/// and the shrink is counted.
#[test]
fn a_led_partition_reports_its_replicas_follower_lag_and_isr_shrinks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = crate::config::BrokerConfig::new();
    config.set("replica.lag.time.max.ms", "50").unwrap();
    let (broker, partition) = crate::test_support::broker_with_follower(dir.path(), config);
    let mut sizes = Vec::new();
    for _ in 0..3 {
        let mut batch = crate::test_support::one_record_batch(None, Some("v"), now_ms());
        sizes.push(batch.len() as f64);
        partition.append(&mut batch, now_ms()).unwrap();
    }
    // Follower 2 holds the first record.
    partition
        .read_for_follower(2, 1, 1 << 20, false, now_ms())
        .unwrap();
    let text = scrape(&broker);
    let series = |name: &str| format!("strata_{name}{{topic=\"r\",partition=\"0\"}}");
    let lag = |name: &str| format!("strata_{name}{{topic=\"r\",partition=\"0\",replica=\"2\"}}");
    assert_eq!(sample(&text, &series("partition_replicas")), Some(2.0));
    assert_eq!(
        sample(&text, &series("partition_in_sync_replicas")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &series("partition_under_replicated")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &lag("partition_replica_lag_offsets")),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, &lag("partition_replica_lag_bytes")),
        Some(sizes[1] + sizes[2])
    );
    assert_eq!(
        sample(&text, "strata_under_replicated_partitions"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "strata_isr_shrinks_total"), Some(0.0));

    let mut proposals = broker.take_isr_proposals().unwrap();
    broker.partitions.tick_replicas(now_ms() + 1_000);
    broker.alter_isr(&proposals.try_recv().expect("an ISR proposal"));
    let text = scrape(&broker);
    assert_eq!(
        sample(&text, &series("partition_in_sync_replicas")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &series("partition_under_replicated")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "strata_under_replicated_partitions"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "strata_under_min_isr_partitions"), Some(0.0));
    assert_eq!(sample(&text, "strata_isr_shrinks_total"), Some(1.0));
}
