//! Per-partition metrics, read from the logs when Prometheus scrapes: the
//! offsets Kafka's `kafka.log:type=Log` MBeans report (log end offset, log
//! start offset, size, segment count) plus the high watermark. Nothing is
//! kept between scrapes, so a deleted topic's partitions disappear with it
//! and the series count is bounded by the partitions that exist.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;

use super::encode_gauge_family;

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
        Ok(())
    }
}
