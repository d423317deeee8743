//! What `/metrics` reads from the broker at scrape time
//! ([`ScrapeSource`]): every hosted partition's offsets and sizes, and the
//! metadata image and quorum.

use crate::metrics::{
    BrokerMetrics, LeaderSnapshot, MetadataSnapshot, PartitionSnapshot, ScrapeSource,
};

use super::Broker;

impl ScrapeSource for Broker {
    fn metrics(&self) -> &BrokerMetrics {
        &self.metrics
    }

    /// Reads every partition of every topic. Each log is locked only long
    /// enough to read four numbers, one partition at a time.
    fn partitions(&self) -> Vec<PartitionSnapshot> {
        let mut snapshots = Vec::new();
        for topic in self.topics() {
            let min_insync = self.min_insync_replicas(&topic);
            for partition in &topic.partitions {
                let high_watermark = partition.high_watermark();
                // Before the log lock below: it takes the log lock itself.
                let leader = partition.replication().map(|r| LeaderSnapshot {
                    replicas: r.replicas,
                    in_sync: r.in_sync,
                    min_insync,
                    followers: r.followers,
                });
                let log = partition.log();
                snapshots.push(PartitionSnapshot {
                    topic: topic.name().to_string(),
                    partition: partition.index,
                    log_end_offset: log.log_end_offset(),
                    log_start_offset: log.log_start_offset(),
                    high_watermark,
                    size_bytes: log.size_bytes(),
                    segments: log.segment_count(),
                    leader,
                });
            }
        }
        snapshots
    }

    /// Reads the numbers from the broker's image and its quorum.
    fn metadata(&self) -> MetadataSnapshot {
        let image = self.image();
        let live: Vec<i32> = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect();
        let fenced = image.brokers().filter(|b| b.fenced).count();
        let offline = image
            .topics()
            .flat_map(|t| t.partitions.values())
            .filter(|p| !live.contains(&p.leader))
            .count();
        let quorum = self.quorum().status();
        let last = quorum.last_index.map_or(-1, |i| i as i64);
        let applied = quorum.applied_index.map_or(-1, |i| i as i64);
        let max_follower_lag = quorum
            .matched
            .iter()
            .filter(|(id, _)| **id != quorum.node_id)
            .map(|(_, matched)| last - matched.map_or(-1, |i| i as i64))
            .max()
            .unwrap_or(0)
            .max(0);
        MetadataSnapshot {
            log_end_offset: self.metadata_end_offset(),
            last_applied_offset: applied,
            term: i64::try_from(quorum.term).unwrap_or(i64::MAX),
            apply_lag: (last - applied).max(0),
            max_follower_lag,
            active_controller: i64::from(quorum.active),
            voters: quorum.voters.len() as i64,
            brokers_active: live.len() as i64,
            brokers_fenced: fenced as i64,
            offline_partitions: offline as i64,
        }
    }
}
