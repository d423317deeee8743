//! The broker's shared state: its identity, configuration and topics, and
//! the operations that change them (create, delete, add partitions, alter
//! configs). Handlers hold an `Arc<Broker>`.
//!
//! Every change is a batch of metadata records ([`crate::metadata`]): checked
//! against the current image, written through the metadata quorum
//! ([`crate::quorum`]), and acted on from its delta once applied (open the
//! logs of new partitions, delete a removed topic's, apply new configs).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::coordinator::GroupCoordinator;
use crate::error::{ApiError, BrokerError};
use crate::metadata::election;
use crate::metadata::placement::{self, PlacementBroker};
use crate::metadata::{
    ApplyError, BrokerEndpoint, BrokerRegistration, ConfigResource, MetadataDelta, MetadataImage,
    MetadataRecord, PartitionChange,
};
use crate::metadata_store;
use crate::metrics::BrokerMetrics;
use crate::partition::IsrProposal;
use crate::partitions::{stored_topic, PartitionManager, Topic, TopicMetricsSource};
use crate::quorum::{Quorum, WriteError};

mod migrate;
mod offsets_log;
mod records;
mod scrape;

use offsets_log::BrokerOffsetsLog;
use records::{
    agree_on_cluster_id, apply_error, config_records, effective_config, open_quorum,
    partition_record, refusal_grace, register, with_elections_if_leading, write_error,
};

/// Producer ids are taken in blocks (Kafka's controller allocates blocks of
/// 1000 too) and the block's end is in the metadata log before any id of it
/// is used, so no id is reused after a restart.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// How long a stopping broker waits for the controller to fence it.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// The next producer id and the end of the block it comes from.
#[derive(Debug)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

/// Where clients reach this broker.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
}

/// The broker: identity, configuration and topics.
pub struct Broker {
    /// `--config FILE` and `--set`, as started.
    static_config: BrokerConfig,
    /// The static configuration with the dynamic broker configs of the
    /// metadata log over it; replaced whole when those change.
    config: RwLock<Arc<BrokerConfig>>,
    pub node_id: i32,
    pub cluster_id: String,
    pub endpoint: Endpoint,
    /// What `/metrics` reports; partitions hold handles into it.
    pub metrics: Arc<BrokerMetrics>,
    /// The logs of the partitions this broker hosts.
    pub partitions: PartitionManager,
    /// The metadata this broker has acted on: the partitions match it.
    image: RwLock<Arc<MetadataImage>>,
    /// The metadata quorum; every change is written through it.
    quorum: Quorum,
    /// Serialises this broker's changes, so that each is checked against
    /// the image its predecessor left.
    admin: Mutex<()>,
    /// Why acting on the last applied change failed, for its writer.
    apply_failure: Mutex<Option<ApiError>>,
    producer_ids: std::sync::Mutex<ProducerIdBlock>,
    /// Consumer groups and their committed offsets.
    pub groups: Arc<GroupCoordinator>,
    /// The ISR proposals of the partitions this broker leads, until the
    /// server takes them to write ([`Broker::alter_isr`]).
    isr_proposals: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<IsrProposal>>>,
    /// When this node last checked for leader imbalance (as active controller).
    last_rebalance: Mutex<Option<std::time::Instant>>,
}

pub use crate::clock::now_ms;

impl Broker {
    /// Opens the data directory: replays the metadata log (moving an earlier
    /// release's topics file into it first), registers this broker, recovers
    /// every partition's log (only past its recovery point after an unclean
    /// stop), and removes what deleted topics left behind.
    pub fn open(
        config: BrokerConfig,
        data_dir: &Path,
        endpoint: Endpoint,
    ) -> Result<Arc<Broker>, BrokerError> {
        Broker::open_node(config, data_dir, endpoint, None)
    }

    /// [`Broker::open`] of a node of several controller voters, whose
    /// controller listener is `controller` (bound).
    pub fn open_node(
        config: BrokerConfig,
        data_dir: &Path,
        endpoint: Endpoint,
        controller: Option<std::net::TcpListener>,
    ) -> Result<Arc<Broker>, BrokerError> {
        fs::create_dir_all(data_dir)
            .map_err(|e| BrokerError::io(format!("creating {}", data_dir.display()), e))?;
        let node_id = config.node_id();
        // Refuses another node's directory before anything is written.
        let meta = metadata_store::read_meta_properties(data_dir, node_id)?;
        let quorum = open_quorum(data_dir, &config, controller, meta.directory_id)?;
        let cluster_id = agree_on_cluster_id(&quorum, data_dir, node_id, &meta)?;
        // Kafka registers a broker at every start, with a new incarnation id.
        let registration = MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: node_id,
            incarnation_id: Uuid::new_v4(),
            directory_id: Some(meta.directory_id),
            endpoints: vec![BrokerEndpoint {
                listener: "PLAINTEXT".to_string(),
                host: endpoint.host.clone(),
                port: endpoint.port,
            }],
            rack: config.broker_rack(),
            fenced: false,
        });
        // Heard from just before it registers: the controller gives a new
        // registration a whole session before its heartbeats must come
        // (they start once the logs are open).
        quorum.heartbeat(Duration::from_secs(1));
        register(&quorum, registration, refusal_grace(&config))?;
        let image = quorum.image();
        let static_config = config;
        let config = effective_config(&static_config, &image, node_id);

        let metrics = Arc::new(BrokerMetrics::new());
        let (proposals, isr_proposals) = tokio::sync::mpsc::unbounded_channel();
        let partitions = PartitionManager::open(
            node_id,
            data_dir,
            &image,
            &config,
            metrics.clone(),
            Some(proposals),
        )?;
        let allocated = image.next_producer_id();
        let broker = Arc::new_cyclic(|weak| Broker {
            producer_ids: std::sync::Mutex::new(ProducerIdBlock {
                next: allocated,
                end: allocated,
            }),
            groups: GroupCoordinator::new(&config, Arc::new(BrokerOffsetsLog(weak.clone()))),
            static_config,
            config: RwLock::new(Arc::new(config)),
            node_id,
            cluster_id,
            endpoint,
            metrics,
            partitions,
            image: RwLock::new(image),
            quorum,
            admin: Mutex::new(()),
            apply_failure: Mutex::new(None),
            isr_proposals: Mutex::new(Some(isr_proposals)),
            // The first check comes one interval after the start, as in Kafka.
            last_rebalance: Mutex::new(Some(std::time::Instant::now())),
        });
        // From here on the broker acts on every change the quorum applies,
        // starting from the image it was opened with.
        let weak = Arc::downgrade(&broker);
        let current = broker.quorum.subscribe(Box::new(move |image, delta| {
            if let Some(broker) = weak.upgrade() {
                broker.on_metadata(image, delta);
            }
        }));
        if current != broker.image() {
            let delta = current.delta_from(&broker.image());
            broker.on_metadata(&current, &delta);
        }
        broker.partitions.write_checkpoints()?;
        broker.sync_coordinator();
        broker.metrics.set_group_source(broker.groups.clone());
        tracing::info!(
            topics = broker.topics().len(),
            data_dir = %data_dir.display(),
            "broker opened"
        );
        Ok(broker)
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.partitions.topic(name)
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.partitions.topic_by_id(id)
    }

    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.partitions.topics()
    }

    /// The topic's `min.insync.replicas` (its own, or the broker's default).
    pub fn min_insync_replicas(&self, topic: &Topic) -> usize {
        self.config()
            .topic_config_value(&topic.stored.configs, "min.insync.replicas")
            .and_then(|(value, _)| value.parse::<usize>().ok())
            .unwrap_or(1)
    }

    /// The configuration in force: static, with the dynamic broker configs
    /// over it.
    pub fn config(&self) -> Arc<BrokerConfig> {
        self.config
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The metadata as of the last change.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The offset the next metadata record gets: the metadata log's end.
    pub fn metadata_end_offset(&self) -> i64 {
        self.quorum.end_offset()
    }

    /// The node clients are told is the controller: the quorum's leader
    /// (this node while none is known; every broker forwards changes anyway).
    pub fn controller_id(&self) -> i32 {
        self.quorum.leader().unwrap_or(self.node_id)
    }

    /// The metadata quorum this broker writes through.
    pub fn quorum(&self) -> &Quorum {
        &self.quorum
    }

    /// Takes the right to change the metadata: whoever holds it checks and
    /// writes one change at a time.
    pub(crate) fn lock_admin(&self) -> MutexGuard<'_, ()> {
        self.admin.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes one change (`_admin` is the held admin lock): checks it
    /// against the current image, for the error a client gets, then writes
    /// it through the quorum and returns once this broker has acted on it.
    /// Nothing is changed when the check or the write fails.
    pub(crate) fn commit(
        &self,
        _admin: &MutexGuard<'_, ()>,
        records: &[MetadataRecord],
    ) -> Result<(), ApiError> {
        if records.is_empty() {
            return Ok(());
        }
        self.image().apply(records).map_err(apply_error)?;
        self.quorum.write(records.to_vec()).map_err(write_error)?;
        match self
            .apply_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Acts on a change the quorum applied: publishes its image and brings
    /// the topics in line with it.
    fn on_metadata(&self, image: &Arc<MetadataImage>, delta: &MetadataDelta) {
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = image.clone();
        if let Err(error) = self.apply_delta(image, delta) {
            tracing::error!(%error, "could not act on a metadata change");
            *self
                .apply_failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(error);
        }
        self.sync_coordinator();
    }

    /// Has the group coordinator load the groups of every `__consumer_offsets`
    /// partition this broker has come to lead, and give up those of every
    /// partition it no longer leads (group coordinator failover, as Kafka's
    /// `onElection` / `onResignation`).
    fn sync_coordinator(&self) {
        let Some(topic) = self.topic(crate::coordinator::OFFSETS_TOPIC) else {
            return;
        };
        let loaded = self.groups.loaded_partitions();
        let leading: BTreeMap<i32, &Arc<crate::partition::Partition>> = topic
            .partitions
            .iter()
            .filter(|p| p.is_leader())
            .map(|p| (p.index, p))
            .collect();
        for (index, partition) in &leading {
            if !loaded.contains(index) {
                if let Err(error) = self.groups.load_partition(*index, partition) {
                    tracing::error!(partition = index, %error, "could not load consumer groups");
                }
            }
        }
        for index in loaded.iter().filter(|i| !leading.contains_key(i)) {
            self.groups
                .unload_partition(*index, topic.partition_count());
        }
    }

    /// Takes new dynamic broker configs in, then has the partition manager
    /// bring the logs in line with the image.
    fn apply_delta(&self, image: &MetadataImage, delta: &MetadataDelta) -> Result<(), ApiError> {
        let broker_configs_changed = delta
            .changed_configs
            .iter()
            .any(|resource| matches!(resource, ConfigResource::Broker(_)));
        if broker_configs_changed {
            let config = effective_config(&self.static_config, image, self.node_id);
            *self
                .config
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
        }
        self.partitions.apply_delta(image, delta, &self.config())
    }

    /// Creates a topic (or, with `validate_only`, checks that it could be).
    /// `partitions` and `replication_factor` of -1 take the broker defaults.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        validate_topic_name(name)?;
        let partitions = if partitions == -1 {
            self.config().num_partitions()
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                "Number of partitions must be larger than 0.",
            ));
        }
        let replication_factor = if replication_factor == -1 {
            self.config().default_replication_factor()
        } else {
            replication_factor
        };
        let placed = self.place_replicas(0, partitions, replication_factor)?;
        self.create_placed(name, placed, configs, validate_only)
    }

    /// Creates a topic whose partition `i` has the replicas
    /// `assignment[i]` (a request's manual assignment), checked as Kafka
    /// checks it: at least one partition, each with distinct registered
    /// brokers, all with as many replicas (INVALID_REPLICA_ASSIGNMENT).
    pub fn create_topic_assigned(
        &self,
        name: &str,
        assignment: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        validate_topic_name(name)?;
        let image = self.image();
        let invalid = |why: String| ApiError::new(ResponseError::InvalidReplicaAssignment, why);
        let count = assignment.first().map_or(0, Vec::len);
        if count == 0 {
            return Err(invalid(
                "Replica assignment must name at least one broker".into(),
            ));
        }
        for (index, replicas) in assignment.iter().enumerate() {
            let distinct: std::collections::BTreeSet<&i32> = replicas.iter().collect();
            if replicas.len() != count || distinct.len() != count {
                return Err(invalid(format!(
                    "Partition {index}: every partition needs {count} distinct replicas, got {replicas:?}"
                )));
            }
            if let Some(unknown) = replicas.iter().find(|id| image.broker(**id).is_none()) {
                return Err(invalid(format!(
                    "Partition {index}: broker {unknown} is not registered"
                )));
            }
        }
        self.create_placed(name, assignment, configs, validate_only)
    }

    /// Creates a topic with partition `i` on the replicas `placed[i]`.
    fn create_placed(
        &self,
        name: &str,
        placed: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, ApiError> {
        let partitions = placed.len() as i32;
        crate::config::validate_topic_configs(&configs)
            .map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        let admin = self.lock_admin();
        if self.image().topic(name).is_some() {
            return Err(apply_error(ApplyError::TopicExists {
                name: name.to_string(),
            }));
        }
        if let Some(clash) = self.partitions.colliding_topic(name) {
            return Err(ApiError::new(
                ResponseError::InvalidTopicException,
                format!("Topic '{name}' collides with existing topic: {clash}"),
            ));
        }
        let topic_id = Uuid::new_v4();
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            topic_id,
        }];
        records.extend(
            (0..partitions)
                .zip(placed)
                .map(|(index, replicas)| partition_record(topic_id, index, replicas)),
        );
        records.extend(config_records(
            &ConfigResource::Topic(name.to_string()),
            &BTreeMap::new(),
            &configs,
        ));
        if validate_only {
            let (image, _) = self.image().apply(&records).map_err(apply_error)?;
            let topic = image.topic(name).expect("the topic was just applied");
            return Ok(Arc::new(Topic {
                stored: stored_topic(&image, topic),
                partitions: Vec::new(),
            }));
        }
        self.commit(&admin, &records)?;
        tracing::info!(topic = name, partitions, "created topic");
        self.topic(name)
            .ok_or_else(|| ApiError::new(ResponseError::UnknownServerError, "topic vanished"))
    }

    /// Deletes a topic and its logs.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, ApiError> {
        if !self.config().delete_topic_enable() {
            return Err(ResponseError::TopicDeletionDisabled.into());
        }
        let admin = self.lock_admin();
        let topic_id = self
            .image()
            .topic(name)
            .map(|t| t.id)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        // Metadata first: a crash before the directories go leaves orphans
        // that the next start removes (their topic id is no longer known).
        self.commit(&admin, &[MetadataRecord::RemoveTopic { topic_id }])?;
        tracing::info!(topic = name, "deleted topic");
        // Not under the metadata lock: a group's lock is taken before it when
        // a commit creates __consumer_offsets.
        drop(admin);
        // Kafka deletes the committed offsets of a deleted topic, so that a
        // topic created again under the name starts without them.
        self.groups.forget_topic(name);
        Ok(topic_id)
    }

    /// Grows a topic to `total` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        total: i32,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let admin = self.lock_admin();
        let image = self.image();
        let topic = image
            .topic(name)
            .ok_or(ResponseError::UnknownTopicOrPartition)?;
        let current = topic.partitions.len() as i32;
        if total <= current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {current} partitions, which is higher than the requested {total}."
                ),
            ));
        }
        if validate_only {
            return Ok(());
        }
        let replication_factor = topic
            .partitions
            .values()
            .next()
            .map_or(1, |p| p.replicas.len() as i16);
        let placed = self.place_replicas(current, total - current, replication_factor)?;
        let records: Vec<MetadataRecord> = (current..total)
            .zip(placed)
            .map(|(index, replicas)| partition_record(topic.id, index, replicas))
            .collect();
        self.commit(&admin, &records)
    }

    /// The replicas of partitions `first..first + count` over the unfenced
    /// brokers, placed as Kafka places them from a random start.
    fn place_replicas(
        &self,
        first: i32,
        count: i32,
        replication_factor: i16,
    ) -> Result<Vec<Vec<i32>>, ApiError> {
        let image = self.image();
        let brokers: Vec<PlacementBroker> = image
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| PlacementBroker {
                id: b.broker_id,
                rack: b.rack.clone(),
            })
            .collect();
        let random = Uuid::new_v4().as_u128();
        let (start, shift) = (random as usize, (random >> 64) as usize);
        let placed = placement::place(&brokers, first, count, replication_factor, start, shift)
            .map_err(|e| ApiError::new(ResponseError::InvalidReplicationFactor, e.to_string()))?;
        Ok(placed)
    }

    /// Replaces a topic's config overrides (already validated by the caller)
    /// and applies them to its logs.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let admin = self.lock_admin();
        let image = self.image();
        if image.topic(name).is_none() {
            return Err(ResponseError::UnknownTopicOrPartition.into());
        }
        let current = image.configs(&ConfigResource::Topic(name.to_string()));
        let records = config_records(&ConfigResource::Topic(name.to_string()), &current, &configs);
        self.commit(&admin, &records)
    }

    /// Replaces the dynamic configs of a broker resource (this broker's id, or
    /// "" for the cluster-wide default; already validated by the caller). They
    /// take effect at once: topics without overrides follow new defaults.
    pub fn set_broker_configs(
        &self,
        resource_name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let admin = self.lock_admin();
        let resource = ConfigResource::Broker(resource_name.to_string());
        let current = self.image().configs(&resource);
        let records = config_records(&resource, &current, &configs);
        self.commit(&admin, &records)
    }

    /// A producer id never handed out before, for InitProducerId.
    pub fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self
            .producer_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A new block starts where the cluster's last one ended; a block
        // another broker claimed in between makes this claim fail (the end
        // must move forward), and the next try starts after that one.
        let mut tries = 0;
        while block.next == block.end {
            let start = self.image().next_producer_id();
            let end = start + PRODUCER_ID_BLOCK;
            let record = MetadataRecord::ProducerIds {
                broker_id: self.node_id,
                next_producer_id: end,
            };
            match self.quorum.write(vec![record]) {
                Ok(()) => *block = ProducerIdBlock { next: start, end },
                Err(WriteError::Rejected(ApplyError::ProducerIdsBackwards { .. }))
                    if tries < 10 =>
                {
                    tries += 1;
                }
                Err(error) => return Err(write_error(error)),
            }
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// The ISR proposals to carry out, once (the server's task takes them).
    pub fn take_isr_proposals(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<IsrProposal>> {
        self.isr_proposals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Writes a leader's ISR proposal as a `PartitionChange` that applies
    /// only at the partition epoch it was based on (Kafka's AlterPartition;
    /// a stale one is INVALID_UPDATE_VERSION there). A refused one lets the
    /// partition propose again.
    pub fn alter_isr(&self, proposal: &IsrProposal) {
        let Some(topic) = self.topic(&proposal.topic) else {
            return;
        };
        let change = MetadataRecord::PartitionChange(PartitionChange {
            topic_id: topic.id(),
            partition_id: proposal.partition,
            leader: None,
            isr: Some(proposal.isr.clone()),
            expected_partition_epoch: Some(proposal.partition_epoch),
        });
        let before = self
            .image()
            .topic_by_id(topic.id())
            .and_then(|t| t.partitions.get(&proposal.partition).map(|p| p.isr.len()));
        let admin = self.lock_admin();
        match self.commit(&admin, &[change]) {
            Ok(()) => match before.map(|before| proposal.isr.len().cmp(&before)) {
                Some(std::cmp::Ordering::Less) => self.metrics.isr_shrunk(),
                Some(std::cmp::Ordering::Greater) => self.metrics.isr_expanded(),
                _ => {}
            },
            Err(error) => {
                tracing::warn!(topic = %proposal.topic, partition = proposal.partition, %error, "ISR change refused");
                if let Some(partition) = topic.partition(proposal.partition) {
                    partition.proposal_refused();
                }
            }
        }
    }

    /// One heartbeat of this broker to the active controller, and, on the
    /// active controller, the fencing and unfencing the heartbeats call for
    /// (each its own change). Run every `broker.heartbeat.interval.ms`.
    pub fn lifecycle_tick(&self) {
        let config = self.config();
        let interval = Duration::from_millis(config.broker_heartbeat_interval_ms());
        self.quorum.heartbeat(interval);
        let session = Duration::from_millis(config.broker_session_timeout_ms());
        for record in self.quorum.fencing_changes(&self.image(), session) {
            let admin = self.lock_admin();
            let batch = election::with_leadership_changes(&self.image(), record.clone());
            match self.commit(&admin, &batch) {
                Ok(()) => tracing::info!(?record, "broker liveness changed"),
                Err(error) => tracing::warn!(?record, %error, "could not change broker liveness"),
            }
        }
        // The active controller's image is the one that counts: leadership
        // a change proposed from elsewhere missed is put right here.
        if self.quorum.is_leader() {
            let admin = self.lock_admin();
            let changes =
                election::reconcile(&self.image(), config.unclean_leader_election_enable());
            if !changes.is_empty() {
                match self.commit(&admin, &changes) {
                    Ok(()) => {
                        tracing::info!(partitions = changes.len(), "partition leaders elected")
                    }
                    Err(error) => tracing::warn!(%error, "could not elect partition leaders"),
                }
            }
            drop(admin);
            self.maybe_rebalance_leaders(&config);
        }
    }

    /// On the active controller, every `leader.imbalance.check.interval.seconds`
    /// (with `auto.leader.rebalance.enable`): leadership back to preferred
    /// leaders where a broker leads too few of its own.
    fn maybe_rebalance_leaders(&self, config: &BrokerConfig) {
        let Some((interval, max_imbalance)) = config.auto_leader_rebalance() else {
            return;
        };
        {
            let mut last = self
                .last_rebalance
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < interval) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let admin = self.lock_admin();
        let changes = election::rebalance(&self.image(), max_imbalance);
        if changes.is_empty() {
            return;
        }
        match self.commit(&admin, &changes) {
            Ok(()) => tracing::info!(
                partitions = changes.len(),
                "leadership moved back to preferred leaders"
            ),
            Err(error) => tracing::warn!(%error, "could not move leadership to preferred leaders"),
        }
    }

    /// ElectLeaders: `elect` for each named partition (every partition when
    /// `None`), the changes it calls for written at once; the outcome per
    /// partition, `None` for a topic or partition that does not exist.
    pub fn elect_leaders(
        &self,
        partitions: Option<Vec<(String, i32)>>,
        elect: election::Elect,
    ) -> Result<Vec<ElectionOutcome>, ApiError> {
        let admin = self.lock_admin();
        let image = self.image();
        let wanted = partitions.unwrap_or_else(|| {
            image
                .topics()
                .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
                .collect()
        });
        let outcomes: Vec<_> = wanted
            .into_iter()
            .map(|(topic, index)| {
                let outcome = image
                    .topic(&topic)
                    .and_then(|t| t.partitions.get(&index).map(|p| elect(&image, t.id, p)));
                ((topic, index), outcome)
            })
            .collect();
        let changes: Vec<MetadataRecord> = outcomes
            .iter()
            .filter_map(|(_, outcome)| match outcome {
                Some(election::Election::Elect(record)) => Some(record.clone()),
                _ => None,
            })
            .collect();
        self.commit(&admin, &changes)?;
        Ok(outcomes)
    }

    /// Clean shutdown: flush every log, record recovery points, then leave
    /// the marker that lets the next start skip recovery.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        // Controlled shutdown: the controller fences this broker before it
        // goes, so clients stop being sent here at once. The last node of a
        // quorum cannot commit it; it does not wait long for that.
        let fence = MetadataRecord::FenceBroker {
            broker_id: self.node_id,
        };
        let batch = with_elections_if_leading(&self.quorum, fence);
        if let Err(error) = self.quorum.write_within(batch, CONTROLLED_SHUTDOWN_TIMEOUT) {
            tracing::info!(%error, "controlled shutdown: the controller was not told");
        }
        let _admin = self.lock_admin();
        self.partitions.flush_all()?;
        self.quorum.shutdown();
        self.partitions.mark_clean_shutdown()?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        self.partitions.data_dir()
    }
}

/// Kafka's topic name rules: 1 to 249 characters of `[a-zA-Z0-9._-]`, and
/// not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let invalid = |why: String| Err(ApiError::new(ResponseError::InvalidTopicException, why));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// One partition (topic, index) of an ElectLeaders request and what the
/// election did there (`None`: no such partition).
pub type ElectionOutcome = ((String, i32), Option<election::Election>);

impl TopicMetricsSource for BrokerMetrics {
    fn topic(&self, name: &str) -> crate::metrics::TopicMetrics {
        BrokerMetrics::topic(self, name)
    }

    fn remove_topic(&self, name: &str) {
        BrokerMetrics::remove_topic(self, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{broker_with_follower, one_record_batch};

    /// A follower that never fetches leaves the ISR through the controller:
    /// the leader's tick proposes it (Kafka's AlterPartition), a proposal
    /// based on a stale partition epoch is refused, the right one is written,
    /// and the high watermark then moves without the follower.
    #[test]
    fn a_lagging_follower_leaves_the_isr_and_the_high_watermark_moves_on() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new();
        config.set("replica.lag.time.max.ms", "50").unwrap();
        let (broker, partition) = broker_with_follower(dir.path(), config);
        let mut batch = one_record_batch(None, Some("v"), now_ms());
        partition.append(&mut batch, now_ms()).unwrap();
        assert_eq!(partition.high_watermark(), 0, "follower 2 holds nothing");

        let mut proposals = broker.take_isr_proposals().unwrap();
        // A second past the 50 ms allowed: the follower never caught up.
        broker.partitions.tick_replicas(now_ms() + 1_000);
        let proposal = proposals.try_recv().expect("an ISR proposal");
        assert_eq!(
            (proposal.isr.clone(), proposal.partition_epoch),
            (vec![1], 0)
        );

        let stale = IsrProposal {
            partition_epoch: 7,
            ..proposal.clone()
        };
        broker.alter_isr(&stale);
        let isr = |broker: &Broker| {
            broker.image().topic("r").unwrap().partitions[&0]
                .isr
                .clone()
        };
        assert_eq!(isr(&broker), [1, 2], "a stale proposal changes nothing");
        broker.alter_isr(&proposal);
        assert_eq!(isr(&broker), [1]);
        assert_eq!(partition.high_watermark(), 1, "the ISR is the leader alone");
        assert_eq!(partition.isr_size(), 1);

        // A fenced broker cannot be proposed back in (KIP-841); unfenced, it can.
        let epoch =
            |broker: &Broker| broker.image().topic("r").unwrap().partitions[&0].partition_epoch;
        let back_in = |broker: &Broker| IsrProposal {
            isr: vec![1, 2],
            partition_epoch: epoch(broker),
            ..proposal.clone()
        };
        let fence = MetadataRecord::FenceBroker { broker_id: 2 };
        broker.commit(&broker.lock_admin(), &[fence]).unwrap();
        broker.alter_isr(&back_in(&broker));
        assert_eq!(isr(&broker), [1], "a fenced broker stays out");
        let unfence = MetadataRecord::UnfenceBroker { broker_id: 2 };
        broker.commit(&broker.lock_admin(), &[unfence]).unwrap();
        broker.alter_isr(&back_in(&broker));
        assert_eq!(isr(&broker), [1, 2]);
    }

    /// An acks=all wait for the followers ends as soon as another broker
    /// leads the partition: this broker's high watermark no longer says
    /// anything about what it appended (Kafka's delayed produce answers
    /// NOT_LEADER_OR_FOLLOWER then).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_for_replicas_ends_when_another_broker_leads() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, partition) = broker_with_follower(dir.path(), BrokerConfig::new());
        let mut batch = one_record_batch(None, Some("v"), now_ms());
        partition.append(&mut batch, now_ms()).unwrap();
        let epoch = partition.leader_epoch();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let waiting = {
            let partition = partition.clone();
            tokio::spawn(async move { partition.replicated_to(1, epoch, deadline).await })
        };
        let topic_id = broker.topic("r").unwrap().id();
        let moved = MetadataRecord::PartitionChange(PartitionChange {
            topic_id,
            partition_id: 0,
            leader: Some(2),
            isr: None,
            expected_partition_epoch: None,
        });
        tokio::task::block_in_place(|| broker.commit(&broker.lock_admin(), &[moved])).unwrap();
        assert_eq!(
            waiting.await.unwrap(),
            crate::partition::Replicated::LeaderChanged
        );
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "my-topic", "my_topic.v2", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "bad/name",
            "space name",
            "ü",
            &"x".repeat(250),
        ] {
            let error = validate_topic_name(bad).unwrap_err();
            assert_eq!(error.code, ResponseError::InvalidTopicException, "{bad}");
        }
    }
}
