//! Consumer-group metrics: the hook a group coordinator implements.
//!
//! The coordinator implements [`GroupMetricsSource`] and registers itself
//! once with [`super::BrokerMetrics::set_group_source`]. At every scrape the
//! metrics layer asks it for plain [`GroupSnapshot`]s and turns them into
//! series; the coordinator keeps no metric objects and needs no cleanup when
//! a group goes away (it just stops being reported). Lag is computed here,
//! from the committed offsets the source reports and the high watermarks of
//! the same scrape's partition snapshot, so the source needs no access to
//! the logs.
//!
//! Series (all gauges):
//! - `strata_consumer_groups{state}`: groups per state (Kafka's names:
//!   `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`, `Dead`).
//! - `strata_consumer_group_members{group}`: members of each group.
//! - `strata_consumer_group_committed_offset{group,topic,partition}`.
//! - `strata_consumer_group_lag{group,topic,partition}`: high watermark minus
//!   committed offset, never below 0; absent for a partition that no longer
//!   exists.

use std::collections::{BTreeMap, HashMap};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::encode_gauge_family;
use super::partitions::PartitionSnapshot;

/// What reports consumer groups at scrape time. Called on a blocking
/// thread, once per scrape: copy the state out and return; do no I/O.
pub trait GroupMetricsSource: Send + Sync {
    /// Every group this broker coordinates, as it is now.
    fn groups(&self) -> Vec<GroupSnapshot>;
}

/// One group at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group_id: String,
    /// The state's name as Kafka spells it, e.g. `Stable`.
    pub state: String,
    pub members: usize,
    pub committed_offsets: Vec<CommittedOffset>,
}

/// A group's committed offset for one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// One committed offset and its lag, if the partition exists.
#[derive(Debug)]
struct OffsetRow {
    group: String,
    topic: String,
    partition: i32,
    offset: i64,
    lag: Option<i64>,
}

/// Encodes the groups reported for one scrape.
#[derive(Debug, Default)]
pub(super) struct GroupCollector {
    states: BTreeMap<String, i64>,
    members: Vec<(String, i64)>,
    offsets: Vec<OffsetRow>,
    /// Whether a source is registered: without one nothing is written, so
    /// that a broker without groups does not claim to have zero of them.
    reported: bool,
}

impl GroupCollector {
    /// `groups` is `None` when no source is registered.
    pub(super) fn new(
        groups: Option<Vec<GroupSnapshot>>,
        partitions: &[PartitionSnapshot],
    ) -> GroupCollector {
        let Some(groups) = groups else {
            return GroupCollector::default();
        };
        let high_watermarks: HashMap<(&str, i32), i64> = partitions
            .iter()
            .map(|p| ((p.topic.as_str(), p.partition), p.high_watermark))
            .collect();
        let mut collector = GroupCollector {
            reported: true,
            ..GroupCollector::default()
        };
        for group in groups {
            *collector.states.entry(group.state).or_default() += 1;
            collector
                .members
                .push((group.group_id.clone(), group.members as i64));
            for committed in group.committed_offsets {
                let lag = high_watermarks
                    .get(&(committed.topic.as_str(), committed.partition))
                    .map(|&high_watermark| (high_watermark - committed.offset).max(0));
                collector.offsets.push(OffsetRow {
                    group: group.group_id.clone(),
                    topic: committed.topic,
                    partition: committed.partition,
                    offset: committed.offset,
                    lag,
                });
            }
        }
        collector
    }
}

/// The labels of one committed offset's series.
fn offset_labels(row: &OffsetRow) -> [(&'static str, String); 3] {
    [
        ("group", row.group.clone()),
        ("topic", row.topic.clone()),
        ("partition", row.partition.to_string()),
    ]
}

impl Collector for GroupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if !self.reported {
            return Ok(());
        }
        encode_gauge_family(
            &mut encoder,
            "consumer_groups",
            "Consumer groups this broker coordinates, per group state",
            None,
            self.states
                .iter()
                .map(|(state, &count)| ([("state", state.as_str())], count)),
        )?;
        encode_gauge_family(
            &mut encoder,
            "consumer_group_members",
            "Members of each consumer group",
            None,
            self.members
                .iter()
                .map(|(group, count)| ([("group", group.as_str())], *count)),
        )?;
        encode_gauge_family(
            &mut encoder,
            "consumer_group_committed_offset",
            "The offset a consumer group committed for a partition",
            None,
            self.offsets
                .iter()
                .map(|row| (offset_labels(row), row.offset)),
        )?;
        encode_gauge_family(
            &mut encoder,
            "consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark",
            None,
            self.offsets
                .iter()
                .filter_map(|row| row.lag.map(|lag| (offset_labels(row), lag))),
        )?;
        Ok(())
    }
}
