//! One client connection: frames in, responses out, in request order.
//!
//! A reader task reads size-prefixed frames ahead of processing into a
//! bounded queue (pipelining: a client may send [`MAX_IN_FLIGHT`] requests
//! without waiting), while this task decodes and handles them one at a time
//! and writes each response before taking the next request. Handling in order
//! is what Kafka does (it mutes a channel until its response is sent) and what
//! clients rely on: two pipelined produce requests to one partition append in
//! the order they were sent.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use strata_protocol::{check_frame_size, decode_request, encode_unsupported_api_versions};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use crate::broker::Broker;
use crate::frame::Frame;
use crate::handlers;

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

    loop {
        // The permit is held until the response is written: the budget
        // covers requests being handled too.
        let (frame, _reserved) = tokio::select! {
            queued = queue.recv() => match queued {
                Some(queued) => queued,
                None => break,
            },
            _ = shutdown.changed() => break,
        };
        // Times the request until its response is written (dropped at the
        // end of this iteration, however it ends).
        let _timer;
        let response = match decode_request(frame) {
            Ok(request) => {
                let version = request.header.request_api_version;
                _timer = broker.metrics.requests().start(request.api_key, version);
                match handlers::handle(&broker, request, peer).await {
                    Ok(Some(response)) => response,
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
            }) => Frame::from_bytes(encode_unsupported_api_versions(
                correlation_id,
                &handlers::supported_versions(),
            )),
            Err(error) => {
                tracing::info!(?peer, %error, "closing connection");
                break;
            }
        };
        if let Err(error) = response.write_to(&mut writer).await {
            tracing::debug!(?peer, %error, "closing connection: response not sent");
            break;
        }
    }
    read_ahead.abort();
}
