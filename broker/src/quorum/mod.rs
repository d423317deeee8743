//! The metadata quorum: the metadata log replicated by Raft among the
//! controller voters, KRaft's design on `openraft`. An entry is one change
//! (a batch of [`MetadataRecord`]s), its term is the batch's partition leader
//! epoch, and the state machine is the [`MetadataImage`]; a snapshot is the
//! image as records. A single node is a quorum of one.
//!
//! Raft runs on a small runtime of its own, so heartbeats and elections are
//! never starved by client work, and [`Quorum::write`] can be called from
//! plain code: it blocks the caller until the change is committed and
//! applied, as the metadata log's fsync did before.
//!
//! - [`log_store`]: the Raft log in `__cluster_metadata-0`, and the vote;
//! - [`state_machine`]: the image, its snapshots, and who is told of changes;
//! - [`network`]: the controllers' messages on the controller listener.

// openraft's StorageError is large, and it is what its storage traits
// return; the helpers here return it too rather than box and unbox it.
#![allow(clippy::result_large_err)]

pub mod liveness;
mod log_store;
mod network;
mod state_machine;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Raft, ServerState, SnapshotPolicy};
use uuid::Uuid;

use crate::metadata::{ApplyError, MetadataImage, MetadataRecord};
pub use log_store::QUORUM_STATE_FILE;
pub use state_machine::{MetadataListener, SNAPSHOT_FILE};

openraft::declare_raft_types!(
    /// The quorum's types: an entry's data is one change; applying it tells
    /// whether the image took it.
    pub TypeConfig:
        D = Vec<MetadataRecord>,
        R = Result<(), ApplyError>,
        NodeId = u64,
        Node = BasicNode,
        SnapshotData = Vec<MetadataRecord>,
);

/// The name of the quorum runtime's threads.
const RUNTIME_THREAD: &str = "strata-quorum";

/// How long a write waits to be committed before the writer is told it
/// timed out (the change may still commit later).
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a node needs to take part in the quorum.
pub struct QuorumConfig {
    pub node_id: i32,
    /// Every voter's node id and controller listener address (`host:port`);
    /// the address of a sole voter may be empty (nothing connects to it).
    pub voters: BTreeMap<i32, String>,
    /// This node's controller listener, bound; `None` for a sole voter.
    pub listener: Option<std::net::TcpListener>,
    /// KRaft's `controller.quorum.election.timeout.ms`: a follower that
    /// hears nothing from a leader for this long (up to twice it, picked at
    /// random) starts an election. The leader's heartbeats come five times
    /// as often.
    pub election_timeout_ms: u64,
    /// A snapshot is taken after this many entries, and all but a tenth of
    /// them are then dropped from the log.
    pub snapshot_after_entries: u64,
    /// This node's data directory id, named in its messages to the others.
    pub directory_id: Uuid,
}

impl QuorumConfig {
    /// A sole voter without a controller listener: a single node.
    pub fn single(node_id: i32) -> QuorumConfig {
        QuorumConfig {
            node_id,
            voters: BTreeMap::from([(node_id, String::new())]),
            listener: None,
            election_timeout_ms: 1000,
            snapshot_after_entries: 1000,
            directory_id: Uuid::nil(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("metadata quorum: {0}")]
    Storage(Box<openraft::StorageError<u64>>),
    #[error("metadata quorum: {0}")]
    Other(String),
}

impl From<openraft::StorageError<u64>> for QuorumError {
    fn from(error: openraft::StorageError<u64>) -> Self {
        QuorumError::Storage(Box::new(error))
    }
}

/// Why a change was not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Rejected(ApplyError),
    #[error("the metadata change was not committed within {0:?}")]
    TimedOut(Duration),
    #[error("the metadata quorum is not running: {0}")]
    Stopped(String),
}

/// The quorum as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: i32,
    pub leader: Option<i32>,
    pub term: u64,
    pub voters: BTreeSet<i32>,
    /// Broker-only nodes following the log (openraft learners; KRaft's
    /// observers).
    pub learners: BTreeSet<i32>,
    /// The index of this node's last entry (the metadata log end offset is
    /// one past it).
    pub last_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// On the leader: the last index each voter is known to hold.
    pub matched: BTreeMap<i32, Option<u64>>,
    /// Whether this node acts as the active controller: it leads and a
    /// majority confirmed that within twice the election timeout (a leader
    /// cut off from the others stops acting, as KRaft's does).
    pub active: bool,
}

/// A running member of the metadata quorum.
pub struct Quorum {
    node_id: i32,
    raft: Raft<TypeConfig>,
    published: Arc<state_machine::Published>,
    log: log_store::LogStore,
    /// `None` once stopped.
    runtime: std::sync::Mutex<Option<tokio::runtime::Runtime>>,
    /// When a majority last confirmed this node's leadership.
    confirmed: Arc<std::sync::Mutex<Option<Instant>>>,
    election_timeout: Duration,
    /// Where the other voters are reached.
    network: network::Network,
    /// Brokers' heartbeats, while this node leads.
    heartbeats: Arc<liveness::Heartbeats>,
    /// Since when this node leads (`None` while it does not).
    leader_since: Arc<std::sync::Mutex<Option<Instant>>>,
}

fn raft_node_id(node_id: i32) -> Result<u64, QuorumError> {
    u64::try_from(node_id).map_err(|_| QuorumError::Other(format!("node id {node_id} is negative")))
}

impl Quorum {
    /// Opens this node's log and state in `data_dir` and starts Raft. A node
    /// whose log is empty starts the quorum with the configured voters
    /// (every node may: they all write the same first entry).
    pub fn open(data_dir: &Path, config: QuorumConfig) -> Result<Quorum, QuorumError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(RUNTIME_THREAD)
            .enable_all()
            .build()
            .map_err(|e| QuorumError::Other(format!("starting its runtime: {e}")))?;
        let node_id = raft_node_id(config.node_id)?;
        let published = Arc::new(state_machine::Published::default());
        let log = log_store::LogStore::open(data_dir)?;
        let machine = state_machine::StateMachine::open(data_dir, published.clone())?;
        let timeout = config.election_timeout_ms.max(10);
        let raft_config = openraft::Config {
            cluster_name: "strata".to_string(),
            heartbeat_interval: timeout / 5,
            election_timeout_min: timeout,
            election_timeout_max: timeout * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries.max(1)),
            max_in_snapshot_log_to_keep: config.snapshot_after_entries / 10,
            ..Default::default()
        }
        .validate()
        .map_err(|e| QuorumError::Other(e.to_string()))?;
        let members = config
            .voters
            .iter()
            .map(|(id, addr)| Ok((raft_node_id(*id)?, BasicNode { addr: addr.clone() })))
            .collect::<Result<BTreeMap<u64, BasicNode>, QuorumError>>()?;
        let listener = config.listener;
        let store = log.clone();
        let network = network::Network {
            addresses: Arc::new(
                members
                    .iter()
                    .map(|(id, n)| (*id, n.addr.clone()))
                    .collect(),
            ),
            identity: network::Sender {
                node_id: config.node_id,
                directory_id: config.directory_id,
            },
            refusal: Arc::default(),
        };
        let routes = network.clone();
        let heartbeats = Arc::new(liveness::Heartbeats::default());
        let leader_since = Arc::new(std::sync::Mutex::new(None));
        let leading = leader_since.clone();
        let (serving_heartbeats, serving_image) = (heartbeats.clone(), published.clone());
        let election_timeout = Duration::from_millis(timeout);
        let confirmed = Arc::new(std::sync::Mutex::new(None));
        let confirming = confirmed.clone();
        let raft = run(runtime.handle(), async move {
            let raft = Raft::new(node_id, Arc::new(raft_config), network, store, machine)
                .await
                .map_err(|e| QuorumError::Other(e.to_string()))?;
            tokio::spawn(report_leadership(raft.metrics(), node_id, leading));
            tokio::spawn(confirm_leadership(
                raft.clone(),
                confirming,
                election_timeout,
            ));
            if let Some(listener) = listener {
                let listener = listener
                    .set_nonblocking(true)
                    .and_then(|()| tokio::net::TcpListener::from_std(listener))
                    .map_err(|e| QuorumError::Other(format!("controller listener: {e}")))?;
                let serving = network::Serving {
                    raft: raft.clone(),
                    heartbeats: serving_heartbeats,
                    published: serving_image,
                };
                tokio::spawn(network::serve(listener, serving));
            }
            let initialized = raft
                .is_initialized()
                .await
                .map_err(|e| QuorumError::Other(e.to_string()))?;
            if !initialized && members.contains_key(&node_id) {
                match raft.initialize(members).await {
                    Ok(()) | Err(RaftError::APIError(_)) => {}
                    Err(e) => return Err(QuorumError::Other(e.to_string())),
                }
            }
            Ok(raft)
        })??;
        Ok(Quorum {
            node_id: config.node_id,
            raft,
            published,
            log,
            runtime: std::sync::Mutex::new(Some(runtime)),
            confirmed,
            election_timeout,
            network: routes,
            heartbeats,
            leader_since,
        })
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The metadata as of the last applied change.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.image()
    }

    /// Has `listener` told of every image from now on; returns the image
    /// it starts from.
    pub fn subscribe(&self, listener: MetadataListener) -> Arc<MetadataImage> {
        self.published.subscribe(listener)
    }

    /// The metadata log's end offset on this node.
    pub fn end_offset(&self) -> i64 {
        self.log.end_offset()
    }

    /// Writes one change and returns once it is committed and applied on
    /// this node. The leader writes it; another voter forwards it to the
    /// leader (KRaft's brokers forward to the active controller likewise),
    /// waiting through an election. Blocks the calling thread.
    pub fn write(&self, records: Vec<MetadataRecord>) -> Result<(), WriteError> {
        self.write_within(records, WRITE_TIMEOUT)
    }

    /// [`Quorum::write`], giving up after `timeout`.
    pub fn write_within(
        &self,
        records: Vec<MetadataRecord>,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        let raft = self.raft.clone();
        let handle = self
            .handle()
            .map_err(|e| WriteError::Stopped(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let network = self.network.clone();
        run(
            &handle,
            write_through_leader(raft, network, records, deadline),
        )
        .map_err(|e| WriteError::Stopped(e.to_string()))?
    }

    /// A broker-only node: asks the voters, one after the other, until the
    /// leader takes it in as a learner reached at `address` (its controller
    /// listener). Returns whether that happened within `timeout`.
    pub fn join(&self, address: &str, timeout: Duration) -> bool {
        let Ok(handle) = self.handle() else {
            return false;
        };
        let voters: Vec<String> = self.network.addresses.values().cloned().collect();
        let network = self.network.clone();
        let address = address.to_string();
        run(&handle, async move {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                for voter in &voters {
                    let asked = network.join(voter.clone(), address.clone());
                    if let Ok(Ok(Ok(()))) = tokio::time::timeout(timeout, asked).await {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        })
        .unwrap_or(false)
    }

    /// How long the other nodes have been refusing this one's messages, and
    /// why (its node id belongs to another running node); `None` while they
    /// accept them.
    pub fn refusal(&self) -> Option<(Duration, String)> {
        self.network.refusal.lasting()
    }

    /// Waits until this node knows a leader and has applied every entry it
    /// holds, or `timeout` passes; returns whether it did. A sole voter is
    /// ready as soon as it has elected itself.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let mut metrics = self.raft.metrics();
        let Ok(handle) = self.handle() else {
            return false;
        };
        run(&handle, async move {
            let ready = metrics.wait_for(|m| {
                m.current_leader.is_some() && m.last_applied.map(|l| l.index) >= m.last_log_index
            });
            matches!(tokio::time::timeout(timeout, ready).await, Ok(Ok(_)))
        })
        .unwrap_or(false)
    }

    /// The leader this node knows, without the rest of [`Quorum::status`]
    /// (Metadata asks it on every request).
    pub fn leader(&self) -> Option<i32> {
        let leader = self.raft.metrics().borrow().current_leader;
        leader.and_then(|id| i32::try_from(id).ok())
    }

    pub fn status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let sole_voter = metrics.membership_config.membership().voter_ids().count() == 1;
        let confirmed = *self
            .confirmed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let recently = confirmed.is_some_and(|at| at.elapsed() <= self.election_timeout * 2);
        let active = metrics.state == ServerState::Leader && (sole_voter || recently);
        let to_i32 = |id: u64| i32::try_from(id).unwrap_or(i32::MAX);
        let matched = metrics
            .replication
            .iter()
            .flatten()
            .map(|(id, log_id)| (to_i32(*id), log_id.map(|l| l.index)))
            .collect();
        QuorumStatus {
            node_id: self.node_id,
            leader: metrics.current_leader.map(to_i32),
            term: metrics.current_term,
            voters: metrics
                .membership_config
                .membership()
                .voter_ids()
                .map(to_i32)
                .collect(),
            learners: metrics
                .membership_config
                .membership()
                .learner_ids()
                .map(to_i32)
                .collect(),
            last_index: metrics.last_log_index,
            applied_index: metrics.last_applied.map(|l| l.index),
            matched,
            active,
        }
    }

    /// Tells the leader that this node's broker is alive and how far it has
    /// applied the metadata; waits at most `timeout`.
    pub fn heartbeat(&self, timeout: Duration) {
        let metrics = self.raft.metrics().borrow().clone();
        let applied = metrics.last_applied.map(|l| l.index);
        if metrics.state == ServerState::Leader {
            network::record_heartbeat(&self.raft, &self.heartbeats, self.network.identity, applied);
            return;
        }
        let Some(leader) = metrics.current_leader else {
            return;
        };
        let Some(node) = metrics.membership_config.membership().get_node(&leader) else {
            return;
        };
        let address = self.network.address(leader, node);
        let Ok(handle) = self.handle() else {
            return;
        };
        let network = self.network.clone();
        let _ = run(&handle, async move {
            tokio::time::timeout(timeout, network.heartbeat(address, applied)).await
        });
    }

    /// On the active controller: the fencing and unfencing that brokers'
    /// heartbeats call for ([`liveness::fencing_changes`]); nothing elsewhere.
    pub fn fencing_changes(
        &self,
        image: &MetadataImage,
        session_timeout: Duration,
    ) -> Vec<MetadataRecord> {
        let since = *self
            .leader_since
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match since {
            Some(since) if self.is_leader() => liveness::fencing_changes(
                image,
                &self.heartbeats.snapshot(),
                Instant::now(),
                since,
                session_timeout,
            ),
            _ => Vec::new(),
        }
    }

    /// Whether this node is the active controller ([`QuorumStatus::active`]).
    pub fn is_leader(&self) -> bool {
        self.status().active
    }

    fn lock_runtime(&self) -> std::sync::MutexGuard<'_, Option<tokio::runtime::Runtime>> {
        self.runtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, QuorumError> {
        self.lock_runtime()
            .as_ref()
            .map(|runtime| runtime.handle().clone())
            .ok_or_else(|| QuorumError::Other("stopped".to_string()))
    }

    /// Stops Raft and its runtime; the log and vote are on disk already.
    pub fn shutdown(&self) {
        let Some(runtime) = self.lock_runtime().take() else {
            return;
        };
        // On the quorum's own thread (the last owner let go while a change
        // was applied) nothing can be waited for.
        if std::thread::current().name() != Some(RUNTIME_THREAD) {
            let raft = self.raft.clone();
            let _ = run(runtime.handle(), async move { raft.shutdown().await });
        }
        runtime.shutdown_background();
    }
}

impl Drop for Quorum {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn write_through_leader(
    raft: Raft<TypeConfig>,
    network: network::Network,
    records: Vec<MetadataRecord>,
    deadline: Instant,
) -> Result<(), WriteError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let timed_out = || WriteError::TimedOut(timeout);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let written = tokio::time::timeout(remaining, raft.client_write(records.clone())).await;
        let forward = match written {
            Err(_) => return Err(timed_out()),
            // The leader applies an entry before it answers.
            Ok(Ok(written)) => return written.data.map_err(WriteError::Rejected),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))) => forward,
            Ok(Err(error)) => return Err(WriteError::Stopped(error.to_string())),
        };
        if let (Some(id), Some(leader)) = (forward.leader_id, forward.leader_node) {
            let sent = network.propose(network.address(id, &leader), records.clone());
            match tokio::time::timeout(remaining, sent).await {
                Err(_) => return Err(timed_out()),
                Ok(Ok(network::ProposeOutcome::Written { index })) => {
                    // Read your writes: the change is applied here too.
                    let mut metrics = raft.metrics();
                    let applied =
                        metrics.wait_for(|m| m.last_applied.is_some_and(|l| l.index >= index));
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    return match tokio::time::timeout(remaining, applied).await {
                        Ok(Ok(_)) => Ok(()),
                        _ => Err(timed_out()),
                    };
                }
                Ok(Ok(network::ProposeOutcome::Rejected(error))) => {
                    return Err(WriteError::Rejected(error))
                }
                Ok(Ok(network::ProposeOutcome::Failed(error))) => {
                    return Err(WriteError::Stopped(error))
                }
                // Leadership is moving, or the leader is out of reach.
                Ok(Ok(network::ProposeOutcome::NotLeader)) | Ok(Err(_)) => {}
            }
        }
        if Instant::now() >= deadline {
            return Err(timed_out());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs each change of leader as this node learns of it.
async fn report_leadership(
    mut metrics: tokio::sync::watch::Receiver<openraft::RaftMetrics<u64, BasicNode>>,
    node_id: u64,
    leader_since: Arc<std::sync::Mutex<Option<Instant>>>,
) {
    let mut known = None;
    loop {
        let (leader, term) = {
            let m = metrics.borrow_and_update();
            (m.current_leader, m.current_term)
        };
        if leader != known {
            match leader {
                Some(leader) => tracing::info!(leader, term, "metadata quorum leader"),
                None => tracing::info!(term, "metadata quorum: no leader known"),
            }
            known = leader;
            *leader_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                (leader == Some(node_id)).then(Instant::now);
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// While this node leads, has a majority confirm it every half election
/// timeout (openraft's leader keeps leading when cut off; KRaft's resigns).
async fn confirm_leadership(
    raft: Raft<TypeConfig>,
    confirmed: Arc<std::sync::Mutex<Option<Instant>>>,
    election_timeout: Duration,
) {
    let mut tick = tokio::time::interval(election_timeout / 2);
    loop {
        tick.tick().await;
        if raft.metrics().borrow().state != ServerState::Leader {
            continue;
        }
        let started = Instant::now();
        match tokio::time::timeout(election_timeout, raft.ensure_linearizable()).await {
            Ok(Ok(_)) => {
                *confirmed
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(started)
            }
            // Cut off: asking every half timeout only repeats openraft's
            // error lines; the answer is no sooner known.
            _ => tokio::time::sleep(election_timeout).await,
        }
    }
}

/// Runs `future` on the quorum's runtime and blocks this thread until it is
/// done; usable from plain code and from inside another runtime alike.
fn run<F>(handle: &tokio::runtime::Handle, future: F) -> Result<F::Output, QuorumError>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, receiver) = std::sync::mpsc::channel();
    handle.spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver
        .recv()
        .map_err(|_| QuorumError::Other("the quorum's runtime stopped".to_string()))
}
