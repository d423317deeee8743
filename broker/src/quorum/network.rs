//! How the controllers talk Raft: on the controller listener, each message
//! is a 4-byte big-endian length and the JSON of a [`RaftRequest`] with its
//! [`Sender`]; the answer is framed the same way. One request is in flight
//! per connection; openraft keeps one client per peer and replication
//! stream.
//!
//! Every message names its sender's node id and data directory id. A node
//! refuses the messages of a second node given a running node's id
//! ([`MetadataImage::check_not_taken`](crate::metadata::MetadataImage::check_not_taken)),
//! before openraft sees them: such a node would otherwise vote and raise
//! terms under another node's name.
//!
//! This is not the Kafka protocol: openraft's messages (pushed AppendEntries,
//! Vote, whole snapshots) have no Kafka equivalent, KRaft's pull-based RPCs
//! do not fit openraft, and only controllers speak it (`decisions.md`). A
//! broken frame closes the connection.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use openraft::error::{
    ClientWriteError, Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, Raft, Snapshot, Vote};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufStream};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use super::liveness::Heartbeats;
use super::state_machine::{Published, StoredSnapshot};
use super::TypeConfig;
use crate::metadata::{ApplyError, MetadataRecord};

/// The largest message either side reads: a snapshot of a big cluster fits.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<u64>),
    Snapshot {
        vote: Vote<u64>,
        snapshot: StoredSnapshot,
    },
    /// A change from a voter that does not lead, for the leader to write.
    Propose(Vec<MetadataRecord>),
    /// The sending broker is alive and has applied the metadata up to
    /// `applied`.
    Heartbeat {
        applied: Option<u64>,
    },
    /// The sending broker-only node asks to follow the log as a learner,
    /// reached at `address`.
    Join {
        address: String,
    },
}

/// Who sends a message: a node id and the node's data directory id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sender {
    pub node_id: i32,
    pub directory_id: Uuid,
}

#[derive(Serialize)]
struct Outgoing<'a> {
    from: Sender,
    request: &'a RaftRequest,
}

#[derive(Deserialize)]
struct Incoming {
    from: Sender,
    request: RaftRequest,
}

/// What became of a forwarded change.
#[derive(Debug, Serialize, Deserialize)]
pub enum ProposeOutcome {
    /// Committed and applied at the leader as the entry of this index.
    Written {
        index: u64,
    },
    Rejected(ApplyError),
    NotLeader,
    Failed(String),
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<u64>, RaftError<u64>>),
    Vote(Result<VoteResponse<u64>, RaftError<u64>>),
    Snapshot(Result<SnapshotResponse<u64>, Fatal<u64>>),
    Propose(ProposeOutcome),
    /// Whether the heartbeat reached the leader.
    Heartbeat(bool),
    /// Whether the leader took the node in as a learner, or why not.
    Join(Result<(), String>),
    /// The sender's node id belongs to another running node.
    Refused(String),
}

/// Since when, and why, other nodes refuse this node's messages.
#[derive(Debug, Default)]
pub struct Refusal(Mutex<Option<(Instant, String)>>);

impl Refusal {
    fn note(&self, reason: &str) {
        let mut refused = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if refused.is_none() {
            tracing::warn!("another node refuses this one: {reason}");
            *refused = Some((Instant::now(), reason.to_string()));
        }
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// How long the refusals have gone on without an accepted message in
    /// between, and the latest reason.
    pub fn lasting(&self) -> Option<(Duration, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(since, reason)| (since.elapsed(), reason.clone()))
    }
}

async fn write_message<T: Serialize + ?Sized>(
    stream: &mut BufStream<TcpStream>,
    message: &T,
) -> io::Result<()> {
    let body = serde_json::to_vec(message).map_err(io::Error::other)?;
    let length = u32::try_from(body.len()).map_err(io::Error::other)?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await
}

/// Reads one message; `Ok(None)` when the peer closed between messages.
async fn read_message<T: DeserializeOwned>(
    stream: &mut BufStream<TcpStream>,
) -> io::Result<Option<T>> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_MESSAGE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a message of {length} bytes"),
        ));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// What answering a peer takes.
#[derive(Clone)]
pub struct Serving {
    pub raft: Raft<TypeConfig>,
    pub heartbeats: Arc<Heartbeats>,
    /// The image, to refuse a second node with a running node's id.
    pub published: Arc<Published>,
}

/// Answers the Raft messages of peers on `listener` until the quorum stops.
pub async fn serve(listener: TcpListener, serving: Serving) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "controller listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let serving = serving.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(BufStream::new(stream), serving).await {
                tracing::debug!(%peer, %error, "controller connection closed");
            }
        });
    }
}

async fn answer(mut stream: BufStream<TcpStream>, serving: Serving) -> io::Result<()> {
    let mut warned = false;
    while let Some(Incoming { from, request }) = read_message(&mut stream).await? {
        let image = serving.published.image();
        let response = match image.check_not_taken(from.node_id, from.directory_id) {
            Ok(()) => answer_one(&serving, from, request).await,
            Err(refused) => {
                if !std::mem::replace(&mut warned, true) {
                    tracing::warn!("refusing the messages of a node: {refused}");
                }
                RaftResponse::Refused(refused.to_string())
            }
        };
        write_message(&mut stream, &response).await?;
    }
    Ok(())
}

async fn answer_one(serving: &Serving, from: Sender, request: RaftRequest) -> RaftResponse {
    let raft = &serving.raft;
    match request {
        RaftRequest::AppendEntries(request) => {
            RaftResponse::AppendEntries(raft.append_entries(request).await)
        }
        RaftRequest::Vote(request) => RaftResponse::Vote(raft.vote(request).await),
        RaftRequest::Snapshot { vote, snapshot } => {
            let snapshot = Snapshot {
                meta: snapshot.meta,
                snapshot: Box::new(snapshot.records),
            };
            RaftResponse::Snapshot(raft.install_full_snapshot(vote, snapshot).await)
        }
        RaftRequest::Heartbeat { applied } => {
            RaftResponse::Heartbeat(record_heartbeat(raft, &serving.heartbeats, from, applied))
        }
        RaftRequest::Join { address } => match u64::try_from(from.node_id) {
            Ok(node_id) => {
                let added = raft
                    .add_learner(node_id, BasicNode { addr: address }, false)
                    .await;
                RaftResponse::Join(added.map(|_| ()).map_err(|e| e.to_string()))
            }
            Err(_) => RaftResponse::Join(Err(format!("node id {}", from.node_id))),
        },
        RaftRequest::Propose(records) => {
            RaftResponse::Propose(match raft.client_write(records).await {
                Ok(written) => match written.data {
                    Ok(()) => ProposeOutcome::Written {
                        index: written.log_id.index,
                    },
                    Err(error) => ProposeOutcome::Rejected(error),
                },
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    ProposeOutcome::NotLeader
                }
                Err(error) => ProposeOutcome::Failed(error.to_string()),
            })
        }
    }
}

/// Notes a broker's heartbeat if this node leads; returns whether it does.
pub fn record_heartbeat(
    raft: &Raft<TypeConfig>,
    heartbeats: &Heartbeats,
    from: Sender,
    applied: Option<u64>,
) -> bool {
    let metrics = raft.metrics().borrow().clone();
    let leads = metrics.state == openraft::ServerState::Leader;
    if leads {
        let leader_applied = metrics.last_applied.map(|l| l.index);
        heartbeats.record(
            (from.node_id, Some(from.directory_id)),
            applied,
            leader_applied,
            std::time::Instant::now(),
        );
    }
    leads
}

/// Makes a client per peer. A peer is reached at the address this node's
/// own `controller.quorum.voters` gives it (as KRaft's voters connect), not
/// the one in the log's voter set: each node may reach the others its own
/// way (another interface, a proxy).
#[derive(Clone)]
pub struct Network {
    pub addresses: Arc<BTreeMap<u64, String>>,
    /// This node, as its messages name it.
    pub identity: Sender,
    pub refusal: Arc<Refusal>,
}

impl Network {
    /// Sends `request` and reads the answer on `stream`; a refusal is noted
    /// and becomes an error.
    async fn exchange(
        &self,
        stream: &mut BufStream<TcpStream>,
        request: &RaftRequest,
    ) -> Result<RaftResponse, CallError> {
        let outgoing = Outgoing {
            from: self.identity,
            request,
        };
        write_message(stream, &outgoing)
            .await
            .map_err(CallError::Network)?;
        match read_message(stream).await {
            Ok(Some(RaftResponse::Refused(reason))) => {
                self.refusal.note(&reason);
                Err(CallError::Network(io::Error::other(reason)))
            }
            Ok(Some(response)) => {
                self.refusal.clear();
                Ok(response)
            }
            Ok(None) => Err(CallError::Network(io::ErrorKind::UnexpectedEof.into())),
            Err(error) => Err(CallError::Network(error)),
        }
    }

    /// Sends one request to `addr` on a connection of its own and reads the
    /// answer.
    async fn call_once(&self, addr: &str, request: &RaftRequest) -> io::Result<RaftResponse> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let mut stream = BufStream::new(stream);
        self.exchange(&mut stream, request)
            .await
            .map_err(|error| match error {
                CallError::Unreachable(e) | CallError::Network(e) => e,
                CallError::Timeout => io::ErrorKind::TimedOut.into(),
            })
    }

    /// Tells the leader at `addr` that this node's broker is alive.
    pub async fn heartbeat(&self, addr: String, applied: Option<u64>) -> io::Result<bool> {
        match self
            .call_once(&addr, &RaftRequest::Heartbeat { applied })
            .await?
        {
            RaftResponse::Heartbeat(accepted) => Ok(accepted),
            other => Err(wrong_kind(&other)),
        }
    }

    /// Asks the voter at `addr` to take this node in as a learner reached at
    /// `address`; the voter must be the leader for it to work.
    pub async fn join(&self, addr: String, address: String) -> io::Result<Result<(), String>> {
        match self
            .call_once(&addr, &RaftRequest::Join { address })
            .await?
        {
            RaftResponse::Join(outcome) => Ok(outcome),
            other => Err(wrong_kind(&other)),
        }
    }

    /// Sends a change to the leader at `addr` and waits for what became of
    /// it.
    pub async fn propose(
        &self,
        addr: String,
        records: Vec<MetadataRecord>,
    ) -> io::Result<ProposeOutcome> {
        match self
            .call_once(&addr, &RaftRequest::Propose(records))
            .await?
        {
            RaftResponse::Propose(outcome) => Ok(outcome),
            other => Err(wrong_kind(&other)),
        }
    }

    /// Where to reach `target`: this node's configured address for it, or
    /// the one in the voter set.
    pub fn address(&self, target: u64, node: &BasicNode) -> String {
        self.addresses
            .get(&target)
            .filter(|addr| !addr.is_empty())
            .cloned()
            .unwrap_or_else(|| node.addr.clone())
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            target,
            addr: self.address(target, node),
            stream: None,
            network: self.clone(),
        }
    }
}

pub struct PeerClient {
    target: u64,
    addr: String,
    stream: Option<BufStream<TcpStream>>,
    network: Network,
}

/// Why a call got no answer.
enum CallError {
    Unreachable(io::Error),
    Network(io::Error),
    Timeout,
}

impl PeerClient {
    async fn call(
        &mut self,
        request: &RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, CallError> {
        match tokio::time::timeout(ttl, self.exchange(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => {
                self.stream = None;
                Err(error)
            }
            Err(_) => {
                // The answer may still come: the connection cannot be reused.
                self.stream = None;
                Err(CallError::Timeout)
            }
        }
    }

    async fn exchange(&mut self, request: &RaftRequest) -> Result<RaftResponse, CallError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(CallError::Unreachable)?;
            let _ = stream.set_nodelay(true);
            self.stream = Some(BufStream::new(stream));
        }
        let stream = self.stream.as_mut().expect("connected above");
        self.network.exchange(stream, request).await
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        error: CallError,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<u64, BasicNode, E> {
        match error {
            CallError::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            CallError::Network(e) => RPCError::Network(NetworkError::new(&e)),
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: 0,
                target: self.target,
                timeout: ttl,
            }),
        }
    }
}

/// An answer that does not fit the request: a broken peer.
fn wrong_kind(response: &RaftResponse) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("an answer of the wrong kind: {response:?}"),
    )
}

fn unexpected<E: std::error::Error>(response: RaftResponse) -> RPCError<u64, BasicNode, E> {
    RPCError::Network(NetworkError::new(&wrong_kind(&response)))
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let ttl = option.hard_ttl();
        match self.call(&RaftRequest::AppendEntries(request), ttl).await {
            Ok(RaftResponse::AppendEntries(Ok(response))) => Ok(response),
            Ok(RaftResponse::AppendEntries(Err(error))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(self.rpc_error(error, RPCTypes::AppendEntries, ttl)),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let ttl = option.hard_ttl();
        match self.call(&RaftRequest::Vote(request), ttl).await {
            Ok(RaftResponse::Vote(Ok(response))) => Ok(response),
            Ok(RaftResponse::Vote(Err(error))) => {
                Err(RPCError::RemoteError(RemoteError::new(self.target, error)))
            }
            Ok(other) => Err(unexpected(other)),
            Err(error) => Err(self.rpc_error(error, RPCTypes::Vote, ttl)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl std::future::Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<TypeConfig, Fatal<u64>>> {
        let ttl = option.hard_ttl();
        let request = RaftRequest::Snapshot {
            vote,
            snapshot: StoredSnapshot {
                meta: snapshot.meta,
                records: *snapshot.snapshot,
            },
        };
        let outcome = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            outcome = self.call(&request, ttl) => outcome,
        };
        match outcome {
            Ok(RaftResponse::Snapshot(Ok(response))) => Ok(response),
            Ok(RaftResponse::Snapshot(Err(fatal))) => Err(StreamingError::RemoteError(
                RemoteError::new(self.target, fatal),
            )),
            Ok(other) => Err(StreamingError::Network(NetworkError::new(&wrong_kind(
                &other,
            )))),
            Err(CallError::Unreachable(e)) => {
                Err(StreamingError::Unreachable(Unreachable::new(&e)))
            }
            Err(CallError::Network(e)) => Err(StreamingError::Network(NetworkError::new(&e))),
            Err(CallError::Timeout) => Err(StreamingError::Timeout(Timeout {
                action: RPCTypes::InstallSnapshot,
                id: 0,
                target: self.target,
                timeout: ttl,
            })),
        }
    }
}
