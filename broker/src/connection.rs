//! One client connection: frames in, responses out, in request order.
//!
//! A reader task reads size-prefixed frames ahead of processing into a
//! bounded queue (pipelining: a client may send [`MAX_IN_FLIGHT`] requests
//! without waiting), while this task decodes and handles them one at a time,
//! in order, and writes the responses in that order. Handling in order is
//! what clients rely on: two pipelined produce requests to one partition
//! append in the order they were sent. Kafka goes further and takes no
//! request before the previous response is sent; here an acks=all produce
//! request that has appended waits for its replicas while the next requests
//! are handled (up to [`MAX_IN_FLIGHT`] responses pending), so pipelined
//! acks=all requests are replicated together instead of one replication
//! round trip after another.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesOrdered, StreamExt};
use strata_protocol::{check_frame_size, decode_request, encode_unsupported_api_versions};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::frame::Frame;
use crate::handlers::{self, HandleError, Reply};
use crate::metrics::RequestTimer;

/// A response on its way, with what is held until it is written.
type PendingReply<'a> = Pin<
    Box<
        dyn Future<
                Output = (
                    Result<Frame, HandleError>,
                    (OwnedSemaphorePermit, Option<RequestTimer<'a>>),
                ),
            > + Send
            + 'a,
    >,
>;

/// Requests read ahead of the one being handled, per connection.
pub const MAX_IN_FLIGHT: usize = 16;
/// Bytes of requests read ahead of the one being handled, per connection: a
/// client pipelining large produce requests waits for the broker instead of
/// making it buffer up to `MAX_IN_FLIGHT` frames of `socket.request.max.bytes`
/// each. A single frame larger than this is still read (taking the whole
/// budget), as its size was already checked against the frame limit.
pub const READ_AHEAD_BYTES: usize = 16 << 20;

/// Serves one connection until the client closes it, sends something that
/// is not a Kafka request, or the broker shuts down.
pub async fn serve(broker: Arc<Broker>, stream: TcpStream, mut shutdown: watch::Receiver<bool>) {
    let peer = stream.peer_addr().ok();
    let _active = broker.metrics.connection_opened();
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let max_frame = broker.config().socket_request_max_bytes();
    let (frames, mut queue) = mpsc::channel::<(Bytes, OwnedSemaphorePermit)>(MAX_IN_FLIGHT);
    let budget = std::sync::Arc::new(Semaphore::new(READ_AHEAD_BYTES));

    let read_ahead = tokio::spawn(async move {
        loop {
            let mut prefix = [0u8; 4];
            if reader.read_exact(&mut prefix).await.is_err() {
                return; // closed by the client
            }
            let len = match check_frame_size(prefix, max_frame) {
                Ok(len) => len,
                Err(error) => {
                    tracing::info!(?peer, %error, "closing connection");
                    return;
                }
            };
            let permits = len.clamp(1, READ_AHEAD_BYTES) as u32;
            let Ok(reserved) = budget.clone().acquire_many_owned(permits).await else {
                return;
            };
            let mut frame = BytesMut::zeroed(len);
            if reader.read_exact(&mut frame).await.is_err() {
                return;
            }
            if frames.send((frame.freeze(), reserved)).await.is_err() {
                return;
            }
        }
    });

    // Responses still to come (acks=all produce waiting for its replicas),
    // in request order, each with its read-ahead permit and timer.
    let mut pending = FuturesOrdered::new();
    // Whether the client may still send requests (it has not closed its
    // side): the responses still to come are written either way.
    let mut reading = true;
    loop {
        if !reading && pending.is_empty() {
            break;
        }
        let (frame, reserved) = tokio::select! {
            biased;
            Some((answer, _held)) = pending.next(), if !pending.is_empty() => {
                let answer: Result<Frame, HandleError> = answer;
                let written = match answer {
                    Ok(response) => send(response, &mut writer, peer).await,
                    Err(error) => {
                        tracing::error!(?peer, %error, "closing connection");
                        false
                    }
                };
                match written {
                    true => continue,
                    false => break,
                }
            }
            queued = queue.recv(), if reading && pending.len() < MAX_IN_FLIGHT => match queued {
                Some(queued) => queued,
                None => {
                    reading = false;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // The permit is held until the response is written: the budget
        // covers requests being handled too. The timer times the request
        // until then (however it ends).
        let timer;
        let reply = match decode_request(frame) {
            Ok(request) => {
                let version = request.header.request_api_version;
                timer = Some(broker.metrics.requests().start(request.api_key, version));
                match handlers::handle(&broker, request, peer).await {
                    Ok(Some(reply)) => reply,
                    Ok(None) => continue, // acks=0 produce: Kafka sends nothing back
                    Err(error) => {
                        tracing::error!(?peer, %error, "closing connection");
                        break;
                    }
                }
            }
            Err(strata_protocol::DecodeError::UnsupportedApiVersionsVersion {
                correlation_id,
                ..
            }) => {
                timer = None;
                Reply::Now(Frame::from_bytes(encode_unsupported_api_versions(
                    correlation_id,
                    &handlers::supported_versions(),
                )))
            }
            Err(error) => {
                tracing::info!(?peer, %error, "closing connection");
                break;
            }
        };
        let held = (reserved, timer);
        let later: PendingReply<'_> = match reply {
            Reply::Now(response) if pending.is_empty() => {
                if !send(response, &mut writer, peer).await {
                    break;
                }
                drop(held);
                continue;
            }
            Reply::Now(response) => Box::pin(async move { (Ok(response), held) }),
            Reply::Later(response) => Box::pin(async move { (response.await, held) }),
        };
        pending.push_back(later);
    }
    read_ahead.abort();
}

/// Writes one response; false when the connection is to close.
async fn send(
    response: Frame,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    peer: Option<std::net::SocketAddr>,
) -> bool {
    match response.write_to(writer).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(?peer, %error, "closing connection: response not sent");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use strata_client::{Connection, Options};

    use super::*;
    use crate::clock::now_ms;
    use crate::config::BrokerConfig;
    use crate::test_support::{broker_with_follower, produce_request};

    /// Two pipelined produce requests on one connection: the acks=all one,
    /// waiting for its follower, does not hold up the next one's append, and
    /// the answers still come in request order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acks_all_request_waiting_for_its_replicas_lets_the_next_one_append() {
        let dir = tempfile::tempdir().unwrap();
        let (broker, partition) = broker_with_follower(dir.path(), BrokerConfig::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (_stop, stopped) = watch::channel(false);
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(broker, stream, stopped).await;
        });
        let mut client = Connection::connect(&address, Options::default())
            .await
            .unwrap();

        let all = client
            .start(&produce_request("r", 0, -1, 60_000))
            .await
            .unwrap();
        let one = client
            .start(&produce_request("r", 0, 1, 60_000))
            .await
            .unwrap();
        // Both appended while the first waits (the deadline only turns a
        // broker that serializes them into a failure instead of a hang).
        let mut log_end = partition.subscribe_log_end();
        let appended =
            tokio::time::timeout(Duration::from_secs(30), log_end.wait_for(|end| *end >= 2));
        assert!(
            appended.await.is_ok(),
            "the second request was not appended"
        );
        assert_eq!(partition.high_watermark(), 0, "follower 2 holds nothing");

        // Follower 2 fetches from 2: it holds both, the high watermark passes them.
        partition
            .read_for_follower(2, 2, 1 << 20, false, now_ms())
            .unwrap();
        let first = client.receive(all).await.unwrap();
        let second = client.receive(one).await.unwrap();
        let answer = |response: &kafka_protocol::messages::ProduceResponse| {
            let p = &response.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        };
        assert_eq!((answer(&first), answer(&second)), ((0, 0), (0, 1)));
    }
}
