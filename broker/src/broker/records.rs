//! How the broker's changes become metadata records, and how the metadata
//! is read back at start: the glue between [`Broker`](super::Broker) and
//! [`crate::metadata`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::migrate;
use crate::config::{BrokerConfig, NodeRoles};
use crate::error::{ApiError, BrokerError};
use crate::metadata::election;
use crate::metadata::{
    ApplyError, ConfigResource, MetadataImage, MetadataRecord, PartitionRegistration,
};
use crate::quorum::{Quorum, QuorumConfig, WriteError};

/// How long a sole voter waits at start to elect itself.
const QUORUM_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a node of several voters says it is still waiting for them.
const QUORUM_WAIT_REPORT: Duration = Duration::from_secs(10);
use crate::metadata_store::{self, MetaProperties};

/// Starts this node's metadata quorum and waits until it has a leader and
/// has applied its log: a quorum of one, or the voters of
/// `controller.quorum.voters` talking on `controller` (waiting for a
/// majority as long as it takes, saying so). What an earlier release or the
/// metadata log before Raft left in the data directory is written into a
/// new log first.
pub(super) fn open_quorum(
    data_dir: &Path,
    config: &BrokerConfig,
    controller: Option<std::net::TcpListener>,
    directory_id: Uuid,
) -> Result<Quorum, BrokerError> {
    let node_id = config.node_id();
    let roles = NodeRoles::from_config(config).map_err(|e| BrokerError::Config(e.to_string()))?;
    let pre_raft = migrate::take_pre_raft_log(data_dir)?;
    let voter = roles.voters.is_empty() || roles.voters.iter().any(|v| v.id == node_id);
    let sole_voter = voter && roles.voters.len() <= 1;
    // A broker-only node follows the log as a learner: the leader pushes the
    // entries to its controller listener, at the address it gives here.
    let mut learner_address = None;
    let quorum_config = if !sole_voter {
        let listener = controller.ok_or_else(|| {
            BrokerError::Config("a node of a cluster needs a bound controller listener".into())
        })?;
        if !voter {
            let configured = roles.controller_listener().map(|l| l.host.clone());
            let host = configured.filter(|h| !h.is_empty()).ok_or_else(|| {
                BrokerError::Config(
                    "a broker-only node needs a controller listener with a host the controllers can reach".into(),
                )
            })?;
            let port = listener
                .local_addr()
                .map_err(|e| BrokerError::io("reading the controller listener's address", e))?
                .port();
            learner_address = Some(format!("{host}:{port}"));
        }
        QuorumConfig {
            node_id,
            voters: roles
                .voters
                .iter()
                .map(|v| (v.id, format!("{}:{}", v.host, v.port)))
                .collect(),
            listener: Some(listener),
            election_timeout_ms: config.controller_election_timeout_ms(),
            snapshot_after_entries: QuorumConfig::single(node_id).snapshot_after_entries,
            directory_id,
        }
    } else {
        QuorumConfig {
            directory_id,
            ..QuorumConfig::single(node_id)
        }
    };
    let voters = quorum_config.voters.clone();
    let quorum = Quorum::open(data_dir, quorum_config)?;
    let grace = refusal_grace(config);
    if let Some(address) = learner_address {
        wait_reporting(
            &quorum,
            grace,
            || quorum.join(&address, Duration::from_secs(1)),
            || {
                tracing::warn!(
                    ?voters,
                    "waiting to join the controller quorum as a learner: no leader answers"
                )
            },
        )?;
        tracing::info!(%address, "following the metadata log as a learner");
    }
    if sole_voter {
        if !quorum.wait_ready(QUORUM_READY_TIMEOUT) {
            return Err(BrokerError::Config(format!(
                "the metadata quorum has no leader after {QUORUM_READY_TIMEOUT:?}"
            )));
        }
    } else {
        wait_reporting(
            &quorum,
            grace,
            || quorum.wait_ready(Duration::from_secs(1)),
            || {
                tracing::warn!(
                ?voters,
                "waiting for the controller quorum: no leader elected yet (a majority of the voters must be up and reachable)"
            )
            },
        )?;
    }
    let carried = match pre_raft {
        Some(records) => records,
        // Only into a log that holds no topics yet: the files are renamed
        // once moved, but a crash may come between.
        None if quorum.image().topics().next().is_none() => {
            migrate::legacy_records(data_dir, node_id)?
        }
        None => Vec::new(),
    };
    if !carried.is_empty() {
        quorum
            .write(carried)
            .map_err(|e| BrokerError::Config(format!("moving metadata into the log: {e}")))?;
        tracing::info!(
            topics = quorum.image().topics().count(),
            "moved the topics of an earlier version into the metadata log"
        );
    }
    migrate::retire_legacy_files(data_dir);
    migrate::remove_pre_raft_log(data_dir);
    Ok(quorum)
}

/// How long a node goes on while the others refuse it as a second node
/// with a running node's id: the other may be this node's own earlier run on
/// a directory since replaced, which the controller fences once it has been
/// silent for a session.
pub(super) fn refusal_grace(config: &BrokerConfig) -> Duration {
    Duration::from_millis(
        config
            .broker_session_timeout_ms()
            .saturating_add(config.broker_heartbeat_interval_ms().saturating_mul(2)),
    )
}

/// Tries `attempt` (about a second each) until it succeeds, calling `report`
/// every [`QUORUM_WAIT_REPORT`]; fails once the other nodes have refused
/// this one for longer than `grace`.
fn wait_reporting(
    quorum: &Quorum,
    grace: Duration,
    mut attempt: impl FnMut() -> bool,
    report: impl Fn(),
) -> Result<(), BrokerError> {
    let mut reported = Instant::now();
    while !attempt() {
        if let Some((lasting, reason)) = quorum.refusal() {
            if lasting > grace {
                return Err(BrokerError::Config(reason));
            }
        }
        if reported.elapsed() >= QUORUM_WAIT_REPORT {
            report();
            reported = Instant::now();
        }
    }
    Ok(())
}

/// Writes this broker's registration; while the controller refuses it as a
/// second node with a running node's id, tries again for `grace` (see
/// [`refusal_grace`]).
pub(super) fn register(
    quorum: &Quorum,
    registration: MetadataRecord,
    grace: Duration,
) -> Result<(), BrokerError> {
    let deadline = Instant::now() + grace;
    loop {
        // Leaderless partitions it holds in sync are its again.
        match quorum.write(with_elections_if_leading(quorum, registration.clone())) {
            Ok(()) => return Ok(()),
            Err(WriteError::Rejected(refused @ ApplyError::DuplicateBrokerRegistration { .. }))
                if Instant::now() < deadline =>
            {
                tracing::warn!("registering this broker: {refused}; trying again");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => return Err(BrokerError::Config(format!("registering this broker: {e}"))),
        }
    }
}

/// `record` (this broker's registration or fencing) with the leadership
/// changes it calls for when this node is the active controller, whose image
/// is current; elsewhere the record alone, and the active controller elects
/// within a heartbeat interval (`election::reconcile`): changes computed on
/// an image that is behind could undo newer ones.
pub(super) fn with_elections_if_leading(
    quorum: &Quorum,
    record: MetadataRecord,
) -> Vec<MetadataRecord> {
    if quorum.is_leader() {
        election::with_leadership_changes(&quorum.image(), record)
    } else {
        vec![record]
    }
}

/// The cluster id this node serves: the one in the metadata log, written
/// there by the first node that found none (with the id of its data
/// directory, or a new one). A data directory of another cluster is
/// refused; a new one takes the log's id.
pub(super) fn agree_on_cluster_id(
    quorum: &Quorum,
    data_dir: &Path,
    node_id: i32,
    meta: &MetaProperties,
) -> Result<String, BrokerError> {
    let stored = meta.cluster_id.clone();
    if quorum.image().cluster_id().is_none() {
        let proposed = stored
            .clone()
            .unwrap_or_else(|| metadata_store::encode_uuid(Uuid::new_v4()));
        let record = MetadataRecord::ClusterId {
            cluster_id: proposed,
        };
        match quorum.write(vec![record]) {
            // Another node's id got there first: checked below.
            Ok(()) | Err(WriteError::Rejected(ApplyError::ClusterIdSet { .. })) => {}
            Err(e) => return Err(BrokerError::Config(format!("writing the cluster id: {e}"))),
        }
    }
    let agreed = quorum
        .image()
        .cluster_id()
        .map(str::to_string)
        .ok_or_else(|| BrokerError::Config("the metadata log has no cluster id".into()))?;
    match stored {
        Some(stored) if stored != agreed => Err(BrokerError::Config(format!(
            "the data directory {} belongs to cluster {stored}, but the controller quorum is cluster {agreed}",
            data_dir.display()
        ))),
        Some(_) => Ok(agreed),
        None => {
            metadata_store::write_meta_properties(data_dir, node_id, &agreed, meta.directory_id)?;
            Ok(agreed)
        }
    }
}

/// The Kafka error for a change the quorum did not write.
pub(super) fn write_error(error: WriteError) -> ApiError {
    match error {
        WriteError::Rejected(error) => apply_error(error),
        WriteError::TimedOut(_) => ApiError::new(ResponseError::RequestTimedOut, error.to_string()),
        WriteError::Stopped(_) => {
            tracing::error!(%error, "could not write the metadata log");
            ApiError::new(ResponseError::KafkaStorageError, error.to_string())
        }
    }
}

/// The record of a new partition on `replicas`, all in sync, led by the
/// first from leader epoch 0.
pub(super) fn partition_record(topic_id: Uuid, index: i32, replicas: Vec<i32>) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRegistration {
        topic_id,
        partition_id: index,
        leader: replicas.first().copied().unwrap_or(-1),
        isr: replicas.clone(),
        replicas,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

/// The config records that turn a resource's overrides `current` into `next`.
pub(super) fn config_records(
    resource: &ConfigResource,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let record = |name: &String, value: Option<&String>| MetadataRecord::Config {
        resource: resource.clone(),
        name: name.clone(),
        value: value.cloned(),
    };
    let removed = current
        .keys()
        .filter(|name| !next.contains_key(*name))
        .map(|name| record(name, None));
    let set = next
        .iter()
        .filter(|(name, value)| current.get(*name) != Some(*value))
        .map(|(name, value)| record(name, Some(value)));
    removed.chain(set).collect()
}

/// The Kafka error for a change the metadata refuses.
pub(super) fn apply_error(error: ApplyError) -> ApiError {
    let code = match &error {
        ApplyError::TopicExists { name } => {
            return ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            )
        }
        ApplyError::UnknownTopic { .. } | ApplyError::UnknownTopicId { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        ApplyError::PartitionOutOfOrder { .. } | ApplyError::InvalidPartition { .. } => {
            ResponseError::InvalidPartitions
        }
        ApplyError::ClusterIdSet { .. } => ResponseError::InconsistentClusterId,
        ApplyError::UnknownBroker { .. } => ResponseError::BrokerIdNotRegistered,
        ApplyError::StalePartitionEpoch { .. } => ResponseError::InvalidUpdateVersion,
        ApplyError::IneligibleReplica { .. } => ResponseError::IneligibleReplica,
        ApplyError::DuplicateBrokerRegistration { .. } => {
            ResponseError::DuplicateBrokerRegistration
        }
        ApplyError::TopicIdExists { .. } | ApplyError::ProducerIdsBackwards { .. } => {
            ResponseError::UnknownServerError
        }
    };
    ApiError::new(code, error.to_string())
}

/// The static configuration with the dynamic broker configs of the image over
/// it: the cluster-wide defaults (resource ""), then this broker's own.
pub(super) fn effective_config(
    static_config: &BrokerConfig,
    image: &MetadataImage,
    node_id: i32,
) -> BrokerConfig {
    static_config.with_dynamic(
        image.configs(&ConfigResource::Broker(String::new())),
        image.configs(&ConfigResource::Broker(node_id.to_string())),
    )
}
