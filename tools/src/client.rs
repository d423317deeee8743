//! A small blocking Kafka client for the `strata` client commands (`topic`,
//! `cluster`, `produce`, `consume`, `perf`): one TCP connection per broker,
//! ApiVersions first, then typed requests — one at a time, or several in flight
//! ([`Client::start`] / [`Client::receive`]) where throughput matters.
//!
//! Why our own client rather than rdkafka: it keeps the `strata` binary free of
//! librdkafka and a C toolchain, and since it only speaks the Kafka protocol
//! (every message type comes from the `kafka-protocol` crate; nothing here
//! hand-writes a codec) the commands work against Apache Kafka too.
//!
//! Each request goes out at the highest version that both this client's codec
//! and the broker (per its ApiVersions answer) support, so one binary talks to
//! old and new brokers alike. See
//! <https://kafka.apache.org/protocol.html#api_versions>.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

/// How long connecting to the bootstrap broker may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may wait for its answer; admin requests ask the broker
/// for at most [`REQUEST_TIMEOUT_MS`], so this leaves it room to answer.
const IO_TIMEOUT: Duration = Duration::from_secs(45);
/// The `timeout_ms` given to the broker in admin requests.
pub const REQUEST_TIMEOUT_MS: i32 = 30_000;
/// A response larger than this is treated as a broken connection, not allocated.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;
/// ApiVersions v3 (Kafka 2.4+, KIP-511) is the first request: flexible, and
/// it names this client to the broker.
const API_VERSIONS_VERSION: i16 = 3;
const CLIENT_ID: &str = "strata-cli";

/// A request written to the broker whose response has not been read yet.
#[must_use = "the response must be read with Client::receive, in order"]
pub struct InFlight<R> {
    correlation_id: i32,
    version: i16,
    api_key: ApiKey,
    response: PhantomData<fn() -> R>,
}

/// A connection to one broker, with the API versions it supports.
pub struct Client {
    stream: TcpStream,
    bootstrap: String,
    /// API key → (min, max) version the broker supports.
    broker_versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: i32,
}

impl Client {
    /// Connects to `bootstrap` (HOST:PORT) and asks which API versions it speaks.
    pub fn connect(bootstrap: &str) -> Result<Client> {
        let addresses: Vec<_> = bootstrap
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve broker address {bootstrap:?}"))?
            .collect();
        let mut last_error = None;
        let mut connected = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    connected = Some(stream);
                    break;
                }
                Err(error) => last_error = Some(error),
            }
        }
        let stream = match (connected, last_error) {
            (Some(stream), _) => stream,
            (None, Some(error)) => {
                return Err(error).with_context(|| format!("cannot reach broker at {bootstrap}"))
            }
            (None, None) => bail!("broker address {bootstrap:?} resolves to no address"),
        };
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
            .and_then(|()| stream.set_nodelay(true))
            .with_context(|| format!("configuring the connection to {bootstrap}"))?;
        let mut client = Client {
            stream,
            bootstrap: bootstrap.to_string(),
            broker_versions: HashMap::new(),
            next_correlation_id: 1,
        };
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strata"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let response: ApiVersionsResponse = client
            .round_trip(&request, API_VERSIONS_VERSION)
            .context("ApiVersions (is this a Kafka broker, version 2.4 or later?)")?;
        broker_error(response.error_code, None).context("ApiVersions")?;
        client.broker_versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        Ok(client)
    }

    /// Whether the broker supports `R` at a version this client can send.
    pub fn supports<R: Request>(&self) -> bool {
        self.version_for::<R>().is_ok()
    }

    /// Sends one request at the highest version both sides support and returns
    /// its typed response. Error codes inside the response are the caller's to check.
    pub fn send<R: Request>(&mut self, request: &R) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.round_trip(request, version)
            .with_context(|| format!("{} request to {}", api_name(R::KEY), self.bootstrap))
    }

    /// The highest version of `R` that the broker and our codec share.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        let ours = R::VERSIONS;
        let ours_min = ours.min.max(minimum_version(R::KEY));
        let Some(&(theirs_min, theirs_max)) = self.broker_versions.get(&R::KEY) else {
            bail!(
                "the broker at {} does not support {}",
                self.bootstrap,
                api_name(R::KEY)
            );
        };
        let version = ours.max.min(theirs_max);
        if version < ours_min.max(theirs_min) {
            bail!(
                "no common version of {}: the broker speaks {theirs_min}..={theirs_max}, strata {ours_min}..={}",
                api_name(R::KEY),
                ours.max
            );
        }
        Ok(version)
    }

    /// Writes one request frame at `version` and reads its response.
    fn round_trip<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response> {
        let in_flight = self.write_request(request, version)?;
        self.read_response(in_flight)
    }

    /// Writes a request without waiting for its answer, so several can be in
    /// flight on this connection at once (a broker answers the requests of one
    /// connection in the order it received them). Each [`InFlight`] must be passed
    /// to [`Client::receive`] in the order the requests were started — except
    /// for a Produce with acks=0, which Kafka never answers.
    pub fn start<R: Request>(&mut self, request: &R) -> Result<InFlight<R>> {
        let version = self.version_for::<R>()?;
        self.write_request(request, version)
            .with_context(|| format!("{} request to {}", api_name(R::KEY), self.bootstrap))
    }

    /// Reads the response to a request sent with [`Client::start`].
    pub fn receive<R: Request>(&mut self, in_flight: InFlight<R>) -> Result<R::Response> {
        self.read_response(in_flight)
            .with_context(|| format!("{} request to {}", api_name(R::KEY), self.bootstrap))
    }

    fn write_request<R: Request>(&mut self, request: &R, version: i16) -> Result<InFlight<R>> {
        let api_key = ApiKey::try_from(R::KEY)
            .map_err(|()| anyhow!("api key {} is not a Kafka API", R::KEY))?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]); // size, patched below
        header
            .encode(&mut frame, api_key.request_header_version(version))
            .context("encoding the request header")?;
        request
            .encode(&mut frame, version)
            .with_context(|| format!("encoding {} v{version}", api_name(R::KEY)))?;
        let size = i32::try_from(frame.len() - 4).context("request too large")?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        self.stream
            .write_all(&frame)
            .with_context(|| format!("sending to {}", self.bootstrap))?;
        Ok(InFlight {
            correlation_id,
            version,
            api_key,
            response: PhantomData,
        })
    }

    fn read_response<R: Request>(&mut self, in_flight: InFlight<R>) -> Result<R::Response> {
        let InFlight {
            correlation_id,
            version,
            api_key,
            ..
        } = in_flight;
        let mut body = self.read_frame()?;
        let response_header =
            ResponseHeader::decode(&mut body, api_key.response_header_version(version))
                .context("decoding the response header")?;
        if response_header.correlation_id != correlation_id {
            bail!(
                "the broker answered correlation id {} to request {correlation_id}",
                response_header.correlation_id
            );
        }
        R::Response::decode(&mut body, version)
            .with_context(|| format!("decoding the {} v{version} response", api_name(R::KEY)))
    }

    /// Reads one size-prefixed frame and returns it without the prefix.
    fn read_frame(&mut self) -> Result<Bytes> {
        let closed = || format!("reading from {} (connection closed?)", self.bootstrap);
        let mut prefix = [0u8; 4];
        self.stream.read_exact(&mut prefix).with_context(closed)?;
        let size = i32::from_be_bytes(prefix);
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= MAX_RESPONSE_BYTES)
            .ok_or_else(|| anyhow!("the broker sent a frame of invalid size {size}"))?;
        let mut body = vec![0u8; size];
        self.stream.read_exact(&mut body).with_context(closed)?;
        Ok(Bytes::from(body))
    }
}

/// Versions below which a request lacks what the commands need.
fn minimum_version(api_key: i16) -> i16 {
    match ApiKey::try_from(api_key) {
        // v1: a null topic list means "all topics"; controller id.
        Ok(ApiKey::Metadata) => 1,
        // v1: config sources, so non-default configs can be told apart.
        Ok(ApiKey::DescribeConfigs) => 1,
        // v2: a null topic list means "every committed offset of the group".
        Ok(ApiKey::OffsetFetch) => 2,
        _ => 0,
    }
}

/// The API's name as Kafka's documentation spells it, e.g. `CreateTopics`.
fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(key) => format!("{key:?}"),
        Err(()) => format!("api key {api_key}"),
    }
}

/// Ends a command: its output on stdout and success, or its error as one line
/// on stderr and a failure exit code.
pub fn finish(result: Result<String>) -> std::process::ExitCode {
    match result {
        Ok(output) => {
            print!("{output}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `Ok` for error code 0; otherwise an error naming the code the way Kafka's
/// documentation does (`UNKNOWN_TOPIC_OR_PARTITION`), with the broker's message.
pub fn broker_error(error_code: i16, message: Option<&StrBytes>) -> Result<()> {
    let Some(error) = ResponseError::try_from_code(error_code) else {
        return Ok(());
    };
    let name = error_name(error);
    // Kafka leaves the message empty for the commonest error; say what it means.
    let fallback = (error == ResponseError::UnknownTopicOrPartition).then_some("no such topic");
    match message
        .map(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .or(fallback)
    {
        Some(message) => bail!("{name} (error code {error_code}): {message}"),
        None => bail!("{name} (error code {error_code})"),
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`, the name in Kafka's
/// protocol guide and in its own tools' messages.
pub fn error_name(error: ResponseError) -> String {
    strata_protocol::error_name(error)
        .unwrap_or_else(|| format!("UNKNOWN_ERROR_CODE_{}", error.code()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_follow_kafka_spelling() {
        assert_eq!(
            error_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            error_name(ResponseError::InvalidPartitions),
            "INVALID_PARTITIONS"
        );
        assert_eq!(
            error_name(ResponseError::Unknown(999)),
            "UNKNOWN_ERROR_CODE_999"
        );
    }

    #[test]
    fn broker_error_carries_the_message() {
        assert!(broker_error(0, None).is_ok());
        let message = StrBytes::from_static_str("bad value");
        let error = broker_error(40, Some(&message)).expect_err("40 is INVALID_CONFIG");
        assert_eq!(
            error.to_string(),
            "INVALID_CONFIG (error code 40): bad value"
        );
    }
}
