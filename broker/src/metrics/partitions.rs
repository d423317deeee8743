//! Per-partition metrics, read from the logs when Prometheus scrapes: the
//! offsets Kafka's `kafka.log:type=Log` MBeans report (log end offset, log
//! start offset, size, segment count) plus the high watermark. Nothing is
//! kept between scrapes, so a deleted topic's partitions disappear with it
//! and the series count is bounded by the partitions that exist.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::{encode_gauge, encode_gauge_family};

/// One partition's numbers at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub log_end_offset: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: usize,
    /// While this broker leads the partition: how its replicas stand.
    pub leader: Option<LeaderSnapshot>,
}

/// A led partition's replicas at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderSnapshot {
    pub replicas: usize,
    pub in_sync: usize,
    /// The topic's `min.insync.replicas`.
    pub min_insync: usize,
    /// Each follower: broker id, and how far it is behind the leader's log
    /// end in offsets and in bytes (as of its last fetch).
    pub followers: Vec<(i32, i64, u64)>,
}

impl LeaderSnapshot {
    fn under_replicated(&self) -> bool {
        self.in_sync < self.replicas
    }

    fn under_min_isr(&self) -> bool {
        self.in_sync < self.min_insync
    }
}

/// The `topic` and `partition` labels of one partition's series.
type PartitionLabels<'a> = ([(&'static str, &'a str); 1], [(&'static str, i32); 1]);

fn partition_labels(topic: &str, partition: i32) -> PartitionLabels<'_> {
    ([("topic", topic)], [("partition", partition)])
}

/// Encodes a snapshot taken for one scrape.
#[derive(Debug)]
pub(super) struct PartitionCollector(pub Vec<PartitionSnapshot>);

impl Collector for PartitionCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rows = |value: fn(&PartitionSnapshot) -> i64| {
            self.0
                .iter()
                .map(move |p| (partition_labels(&p.topic, p.partition), value(p)))
        };
        encode_gauge_family(
            &mut encoder,
            "partition_log_end_offset",
            "The offset the next appended record will get",
            None,
            rows(|p| p.log_end_offset),
        )?;
        encode_gauge_family(
            &mut encoder,
            "partition_log_start_offset",
            "The first offset still in the log (after retention and DeleteRecords)",
            None,
            rows(|p| p.log_start_offset),
        )?;
        encode_gauge_family(
            &mut encoder,
            "partition_high_watermark",
            "The offset up to which records are committed and readable by consumers",
            None,
            rows(|p| p.high_watermark),
        )?;
        encode_gauge_family(
            &mut encoder,
            "partition_size",
            "Bytes of the partition's segment files",
            Some(&Unit::Bytes),
            rows(|p| i64::try_from(p.size_bytes).unwrap_or(i64::MAX)),
        )?;
        encode_gauge_family(
            &mut encoder,
            "partition_segments",
            "Segments in the partition's log",
            None,
            rows(|p| i64::try_from(p.segments).unwrap_or(i64::MAX)),
        )?;
        self.encode_replication(&mut encoder)
    }
}

impl PartitionCollector {
    /// What the leader of each partition knows of its replicas (Kafka's
    /// `ReplicaManager` and `Partition` metrics); a follower reports none.
    fn encode_replication(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let led = || {
            self.0
                .iter()
                .filter_map(|p| p.leader.as_ref().map(|leader| (p, leader)))
        };
        let rows = |value: fn(&LeaderSnapshot) -> i64| {
            led().map(move |(p, leader)| (partition_labels(&p.topic, p.partition), value(leader)))
        };
        encode_gauge(
            encoder,
            "under_replicated_partitions",
            "Partitions this broker leads with fewer in-sync replicas than replicas (Kafka's UnderReplicatedPartitions)",
            None,
            led().filter(|(_, l)| l.under_replicated()).count() as i64,
        )?;
        encode_gauge(
            encoder,
            "under_min_isr_partitions",
            "Partitions this broker leads with fewer in-sync replicas than min.insync.replicas, where acks=all is refused (Kafka's UnderMinIsrPartitionCount)",
            None,
            led().filter(|(_, l)| l.under_min_isr()).count() as i64,
        )?;
        encode_gauge_family(
            encoder,
            "partition_replicas",
            "Replicas of a partition this broker leads",
            None,
            rows(|l| l.replicas as i64),
        )?;
        encode_gauge_family(
            encoder,
            "partition_in_sync_replicas",
            "In-sync replicas of a partition this broker leads",
            None,
            rows(|l| l.in_sync as i64),
        )?;
        encode_gauge_family(
            encoder,
            "partition_under_replicated",
            "1 if a partition this broker leads has fewer in-sync replicas than replicas",
            None,
            rows(|l| i64::from(l.under_replicated())),
        )?;
        let followers = |value: fn(&(i32, i64, u64)) -> i64| {
            led().flat_map(move |(p, leader)| {
                leader.followers.iter().map(move |f| {
                    let labels = (
                        [("topic", p.topic.as_str())],
                        [("partition", p.partition), ("replica", f.0)],
                    );
                    (labels, value(f))
                })
            })
        };
        encode_gauge_family(
            encoder,
            "partition_replica_lag_offsets",
            "How many offsets a follower is behind this leader's log end, as of its last fetch",
            None,
            followers(|f| f.1),
        )?;
        encode_gauge_family(
            encoder,
            "partition_replica_lag",
            "How many bytes of batches a follower is behind this leader's log end, as of its last fetch",
            Some(&Unit::Bytes),
            followers(|f| i64::try_from(f.2).unwrap_or(i64::MAX)),
        )?;
        Ok(())
    }
}
