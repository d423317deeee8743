//! Cluster metadata metrics, read from the metadata image when Prometheus
//! scrapes, named after Kafka's controller and broker-metadata MBeans
//! (`ActiveControllerCount`, `FencedBrokerCount`, `ActiveBrokerCount`,
//! `OfflinePartitionsCount`, `last-applied-record-offset`).

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::encode_gauge;

/// The metadata numbers at scrape time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataSnapshot {
    /// Records written to the metadata log.
    pub log_end_offset: i64,
    /// The offset of the last record applied to the image.
    pub last_applied_offset: i64,
    /// 1 if this node is the active controller.
    pub active_controller: i64,
    pub voters: i64,
    pub brokers_active: i64,
    pub brokers_fenced: i64,
    /// Partitions without a leader among the unfenced brokers.
    pub offline_partitions: i64,
    /// The Raft term this node knows (the metadata leader epoch).
    pub term: i64,
    /// Entries this node holds but has not applied yet.
    pub apply_lag: i64,
    /// On the leader: how far the furthest-behind voter or learner is.
    pub max_follower_lag: i64,
}

/// Encodes a snapshot taken for one scrape.
#[derive(Debug)]
pub(super) struct MetadataCollector(pub MetadataSnapshot);

impl Collector for MetadataCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let m = &self.0;
        for (name, help, value) in [
            (
                "metadata_log_end_offset",
                "Records written to the metadata log (__cluster_metadata-0)",
                m.log_end_offset,
            ),
            (
                "metadata_last_applied_offset",
                "Offset of the last metadata record applied to this node's image",
                m.last_applied_offset,
            ),
            (
                "controller_active",
                "1 if this node is the active controller (Kafka's ActiveControllerCount)",
                m.active_controller,
            ),
            (
                "metadata_quorum_term",
                "The Raft term this node knows: the metadata log's leader epoch",
                m.term,
            ),
            (
                "metadata_apply_lag",
                "Metadata entries this node holds but has not applied yet",
                m.apply_lag,
            ),
            (
                "metadata_max_follower_lag",
                "On the active controller: entries the furthest-behind follower lacks (0 elsewhere)",
                m.max_follower_lag,
            ),
            (
                "controller_voters",
                "Voters of the metadata quorum",
                m.voters,
            ),
            (
                "brokers_active",
                "Registered brokers that are not fenced",
                m.brokers_active,
            ),
            (
                "brokers_fenced",
                "Registered brokers that are fenced (Kafka's FencedBrokerCount)",
                m.brokers_fenced,
            ),
            (
                "offline_partitions",
                "Partitions whose leader is not an unfenced broker (Kafka's OfflinePartitionsCount)",
                m.offline_partitions,
            ),
        ] {
            encode_gauge(&mut encoder, name, help, None, value)?;
        }
        Ok(())
    }
}
