//! Request dispatch: one module per API family, one table of what is
//! advertised. A handler takes the typed request and returns the typed
//! response; it never sees the socket.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use strata_protocol::{encode_response, encode_response_with_holes, EncodeError, Request};

use crate::broker::Broker;
use crate::frame::Frame;
use crate::metrics::BrokerMetrics;
use fetch::FetchReply;

mod admin;
mod api_versions;
mod cluster;
mod configs;
mod delete_records;
mod elect_leaders;
mod fetch;
mod groups;
mod leader_epoch;
mod list_offsets;
mod log_dirs;
mod metadata;
mod offsets;
mod produce;
mod producer_id;
mod quorum;

/// Every API Strata implements, with the version range it is tested at.
/// Nothing else is advertised in ApiVersions; a request for anything else
/// closes the connection, as Kafka does for a version it cannot parse.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::ElectLeaders, 0, 2),
];

/// The advertised version ranges, as ApiVersions carries them.
pub fn supported_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

fn is_supported(api_key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|&(key, min, max)| key == api_key && (min..=max).contains(&version))
}

/// Why a request gets no answer and its connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("{api_key:?} v{version} is not supported")]
    Unsupported { api_key: ApiKey, version: i16 },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Runs a handler that may wait for the metadata quorum to commit a change
/// (an admin request, an auto-created topic, a producer id block) without
/// holding up the other connections served by this worker thread: on the
/// multi-threaded runtime the worker hands its other tasks on meanwhile.
fn off_worker<T>(handler: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(handler),
        _ => handler(),
    }
}

/// Handles one request from the client at `peer` and encodes its response
/// (size prefix included), now or later; `None` when the request gets no
/// response (produce with acks=0).
pub async fn handle(
    broker: &Arc<Broker>,
    request: Request,
    peer: Option<SocketAddr>,
) -> Result<Option<Reply>, HandleError> {
    let Request {
        header,
        api_key,
        body,
    } = request;
    let version = header.request_api_version;
    if !is_supported(api_key, version) {
        return Err(HandleError::Unsupported { api_key, version });
    }
    let response = match body {
        RequestKind::ApiVersions(request) => {
            ResponseKind::ApiVersions(api_versions::handle(&request))
        }
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(off_worker(|| metadata::handle(broker, request, version)))
        }
        RequestKind::Produce(request) => {
            let Some(produced) = produce::handle(broker, request, header.client_id.as_deref())
            else {
                return Ok(None);
            };
            if !produced.is_ready() {
                let metrics = broker.metrics.clone();
                let correlation_id = header.correlation_id;
                return Ok(Some(Reply::Later(Box::pin(async move {
                    let response = ResponseKind::Produce(produced.finish(&metrics).await);
                    encode_reply(&metrics, api_key, version, correlation_id, &response)
                }))));
            }
            ResponseKind::Produce(produced.finish(&broker.metrics).await)
        }
        RequestKind::Fetch(request) => {
            let reply = fetch::handle(broker, request).await;
            broker
                .metrics
                .requests()
                .count_fetch_errors(&reply.response);
            return Ok(Some(Reply::Now(encode_fetch(
                reply,
                version,
                header.correlation_id,
            )?)));
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, request, version))
        }
        RequestKind::OffsetForLeaderEpoch(request) => {
            ResponseKind::OffsetForLeaderEpoch(leader_epoch::handle(broker, request))
        }
        RequestKind::CreateTopics(request) => ResponseKind::CreateTopics(off_worker(|| {
            admin::create_topics(broker, request, version)
        })),
        RequestKind::DeleteTopics(request) => ResponseKind::DeleteTopics(off_worker(|| {
            admin::delete_topics(broker, request, version)
        })),
        RequestKind::CreatePartitions(request) => {
            ResponseKind::CreatePartitions(off_worker(|| admin::create_partitions(broker, request)))
        }
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, request))
        }
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(off_worker(|| configs::alter(broker, request)))
        }
        RequestKind::IncrementalAlterConfigs(request) => {
            ResponseKind::IncrementalAlterConfigs(off_worker(|| {
                configs::incremental_alter(broker, request)
            }))
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(off_worker(|| producer_id::init(broker, &request)))
        }
        RequestKind::DeleteRecords(request) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, request))
        }
        RequestKind::DescribeLogDirs(request) => {
            ResponseKind::DescribeLogDirs(log_dirs::describe(broker, request))
        }
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(cluster::describe(broker, &request))
        }
        RequestKind::FindCoordinator(request) => ResponseKind::FindCoordinator(off_worker(|| {
            groups::find_coordinator(broker, request, version)
        })),
        RequestKind::JoinGroup(request) => {
            let client_id = header.client_id.as_deref().unwrap_or_default();
            // Written as Java's InetAddress prints it, as Kafka reports it.
            let client_host = peer.map(|p| format!("/{}", p.ip())).unwrap_or_default();
            let response =
                groups::join_group(broker, request, version, client_id, &client_host).await;
            ResponseKind::JoinGroup(response)
        }
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(groups::sync_group(broker, request).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(groups::heartbeat(broker, request))
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(groups::leave_group(broker, request, version))
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(groups::list_groups(broker, request))
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(groups::describe_groups(broker, request, version))
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(groups::delete_groups(broker, request))
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(offsets::commit(broker, request).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offsets::fetch(broker, request, version))
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(offsets::delete(broker, request))
        }
        RequestKind::DescribeQuorum(request) => {
            ResponseKind::DescribeQuorum(quorum::describe(broker, request))
        }
        RequestKind::ElectLeaders(request) => {
            ResponseKind::ElectLeaders(off_worker(|| elect_leaders::handle(broker, request)))
        }
        _ => return Err(HandleError::Unsupported { api_key, version }),
    };
    let frame = encode_reply(
        &broker.metrics,
        api_key,
        version,
        header.correlation_id,
        &response,
    )?;
    Ok(Some(Reply::Now(frame)))
}

/// A response, or one still to come.
pub enum Reply {
    Now(Frame),
    /// Answered when the future completes (an acks=all produce waiting for
    /// its replicas); the connection handles later requests meanwhile and
    /// keeps the responses in request order.
    Later(Pin<Box<dyn Future<Output = Result<Frame, HandleError>> + Send>>),
}

/// Counts the response's errors and encodes it (size prefix included).
fn encode_reply(
    metrics: &BrokerMetrics,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    response: &ResponseKind,
) -> Result<Frame, HandleError> {
    metrics.requests().count_errors(api_key, response);
    Ok(Frame::from_bytes(encode_response(
        api_key,
        version,
        correlation_id,
        response,
    )?))
}

/// Encodes a fetch response without copying its records: the placeholders
/// become holes that the connection fills from the segment files.
fn encode_fetch(
    reply: FetchReply,
    version: i16,
    correlation_id: i32,
) -> Result<Frame, HandleError> {
    let holes: Vec<&[u8]> = reply
        .response
        .responses
        .iter()
        .flat_map(|topic| topic.partitions.iter())
        .filter_map(|partition| partition.records.as_deref())
        .filter(|records| crate::frame::is_placeholder_slice(records))
        .collect();
    let frame = encode_response_with_holes(
        ApiKey::Fetch,
        version,
        correlation_id,
        &reply.response,
        &holes,
    )?;
    Ok(Frame::from_holes(frame, reply.holes))
}

/// A protocol string from a Rust one.
fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
