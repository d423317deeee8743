//! One async connection to a broker.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::{api_name, ClientError, Options};

/// ApiVersions v3 (Kafka 2.4+, KIP-511) opens a connection: flexible, and
/// it names the client to the broker.
const API_VERSIONS_VERSION: i16 = 3;

/// A request written to the broker whose response has not been read yet.
#[must_use = "the response must be read with receive, in order"]
pub struct InFlight<R> {
    correlation_id: i32,
    version: i16,
    api_key: ApiKey,
    response: PhantomData<fn() -> R>,
}

/// What came back for a request, read without decoding its body.
#[derive(Debug)]
pub enum RawReply {
    /// A size-prefixed response: its correlation id and the body after the
    /// response header.
    Response { correlation_id: i32, body: Bytes },
    /// The broker closed the connection (end of stream or reset) instead.
    Closed,
}

/// A connection to one broker, with the API versions it supports once
/// [`Connection::negotiate`]d. The broker answers a connection's requests in
/// the order it got them; so are they read here.
pub struct Connection {
    address: String,
    options: Options,
    reader: BufReader<OwnedReadHalf>,
    writer: BufWriter<OwnedWriteHalf>,
    next_correlation_id: i32,
    /// API key → (min, max) version the broker supports.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    /// Connects to `address` (HOST:PORT) and asks which API versions the
    /// broker speaks.
    pub async fn connect(address: &str, options: Options) -> Result<Connection, ClientError> {
        let mut connection = Connection::connect_raw(address, options).await?;
        connection.negotiate().await?;
        Ok(connection)
    }

    /// Connects to `address` and sends nothing.
    pub async fn connect_raw(address: &str, options: Options) -> Result<Connection, ClientError> {
        let resolved: Vec<_> = tokio::net::lookup_host(address)
            .await
            .map_err(|source| ClientError::Resolve {
                address: address.to_string(),
                source,
            })?
            .collect();
        let mut last_error = None;
        for candidate in resolved {
            let connecting = TcpStream::connect(candidate);
            match tokio::time::timeout(options.connect_timeout, connecting).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let (reader, writer) = stream.into_split();
                    return Ok(Connection {
                        address: address.to_string(),
                        options,
                        reader: BufReader::new(reader),
                        writer: BufWriter::new(writer),
                        next_correlation_id: 1,
                        versions: HashMap::new(),
                    });
                }
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => last_error = Some(io::ErrorKind::TimedOut.into()),
            }
        }
        Err(ClientError::Connect {
            address: address.to_string(),
            source: last_error
                .unwrap_or_else(|| io::Error::other("the address resolves to no address")),
        })
    }

    /// The `HOST:PORT` connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Sends ApiVersions and keeps the versions the broker names for
    /// [`Connection::send`].
    pub async fn negotiate(&mut self) -> Result<ApiVersionsResponse, ClientError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strata"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let answered: Result<ApiVersionsResponse, _> = self
            .request_at(ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)
            .await;
        let response = answered.map_err(|e| {
            ClientError::Protocol(format!(
                "ApiVersions to {} (is this a Kafka broker, version 2.4 or later?): {e}",
                self.address
            ))
        })?;
        if response.error_code != 0 {
            return Err(ClientError::Protocol(format!(
                "ApiVersions to {}: error code {}",
                self.address, response.error_code
            )));
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|api| (api.api_key, (api.min_version, api.max_version)))
            .collect();
        Ok(response)
    }

    /// Whether the broker supports `R` at a version this client can send.
    pub fn supports<R: Request>(&self) -> bool {
        self.version_for::<R>().is_ok()
    }

    /// The highest version of `R` that the broker and the codec share.
    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        let ours = R::VERSIONS;
        let ours_min = ours.min.max(minimum_version(R::KEY));
        let Some(&(theirs_min, theirs_max)) = self.versions.get(&R::KEY) else {
            return Err(ClientError::Unsupported {
                address: self.address.clone(),
                api: api_name(R::KEY),
            });
        };
        let version = ours.max.min(theirs_max);
        if version < ours_min.max(theirs_min) {
            return Err(ClientError::NoCommonVersion {
                address: self.address.clone(),
                api: api_name(R::KEY),
                theirs_min,
                theirs_max,
                ours_min,
                ours_max: ours.max,
            });
        }
        Ok(version)
    }

    /// Sends `request` at the highest version both sides support and reads
    /// its typed response. Error codes inside it are the caller's to check.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        let in_flight = self.start(request).await?;
        self.receive(in_flight).await
    }

    /// Writes `request` without waiting for its answer, so that several can
    /// be in flight. Each [`InFlight`] must be passed to
    /// [`Connection::receive`] in the order the requests were started, except
    /// a Produce with acks=0, which Kafka never answers.
    pub async fn start<R: Request>(&mut self, request: &R) -> Result<InFlight<R>, ClientError> {
        let version = self.version_for::<R>()?;
        self.start_at(request, version).await
    }

    /// [`Connection::start`] at `version`, whatever the broker said.
    pub async fn start_at<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<InFlight<R>, ClientError> {
        let api_key = ApiKey::try_from(R::KEY)
            .map_err(|()| ClientError::Protocol(format!("api key {} is not Kafka's", R::KEY)))?;
        let (correlation_id, frame) = self.encode_frame(api_key, version, request)?;
        self.write(&frame, "sending to").await?;
        Ok(InFlight {
            correlation_id,
            version,
            api_key,
            response: PhantomData,
        })
    }

    /// Reads the response to a request sent with [`Connection::start`].
    pub async fn receive<R: Request>(
        &mut self,
        in_flight: InFlight<R>,
    ) -> Result<R::Response, ClientError> {
        let InFlight {
            correlation_id,
            version,
            api_key,
            ..
        } = in_flight;
        self.read_decoded(api_key, version, correlation_id).await
    }

    /// Sends `body` as a request of `api_key` at `version`, whether or not
    /// the broker supports it, and decodes the answer as `R`.
    pub async fn request_at<T: Encodable, R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<R, ClientError> {
        let (correlation_id, frame) = self.encode_frame(api_key, version, body)?;
        self.write(&frame, "sending to").await?;
        self.read_decoded(api_key, version, correlation_id).await
    }

    /// A request (header of the version the API and version call for, then
    /// `body` at `version`), without the size prefix, and its correlation id.
    pub fn encode<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<(i32, BytesMut), ClientError> {
        let mut request = BytesMut::new();
        let correlation_id = self.encode_into(&mut request, api_key, version, body)?;
        Ok((correlation_id, request))
    }

    /// [`Connection::encode`] behind its size: a frame ready to send.
    fn encode_frame<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<(i32, BytesMut), ClientError> {
        let mut frame = BytesMut::new();
        frame.extend_from_slice(&[0; 4]);
        let correlation_id = self.encode_into(&mut frame, api_key, version, body)?;
        let size = i32::try_from(frame.len() - 4)
            .map_err(|_| ClientError::Protocol(format!("{api_key:?} request too large")))?;
        frame[..4].copy_from_slice(&size.to_be_bytes());
        Ok((correlation_id, frame))
    }

    fn encode_into<T: Encodable>(
        &mut self,
        out: &mut BytesMut,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<i32, ClientError> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.options.client_id.clone())));
        let encoding = |e| ClientError::Protocol(format!("encoding {api_key:?} v{version}: {e}"));
        header
            .encode(out, api_key.request_header_version(version))
            .map_err(encoding)?;
        body.encode(out, version).map_err(encoding)?;
        Ok(correlation_id)
    }

    /// Writes `frame` behind its 4-byte big-endian size.
    pub async fn send_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        let size = i32::try_from(frame.len())
            .map_err(|_| ClientError::Protocol("frame too large".into()))?;
        let mut framed = Vec::with_capacity(frame.len() + 4);
        framed.extend_from_slice(&size.to_be_bytes());
        framed.extend_from_slice(frame);
        self.write(&framed, "sending to").await
    }

    /// Writes bytes as they are.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.write(bytes, "sending to").await
    }

    /// Reads one size-prefixed response whose header is of
    /// `response_header_version`, or notices the connection was closed.
    pub async fn read_reply(
        &mut self,
        response_header_version: i16,
    ) -> Result<RawReply, ClientError> {
        let mut prefix = [0u8; 4];
        if !self.read_exact_or_closed(&mut prefix).await? {
            return Ok(RawReply::Closed);
        }
        let size = i32::from_be_bytes(prefix);
        let size = usize::try_from(size)
            .ok()
            .filter(|&size| size <= self.options.max_response_bytes)
            .ok_or_else(|| {
                ClientError::Protocol(format!(
                    "the broker at {} sent a frame of invalid size {size}",
                    self.address
                ))
            })?;
        let mut body = vec![0u8; size];
        if !self.read_exact_or_closed(&mut body).await? {
            return Ok(RawReply::Closed);
        }
        let mut body = Bytes::from(body);
        let header = ResponseHeader::decode(&mut body, response_header_version)
            .map_err(|e| ClientError::Protocol(format!("decoding a response header: {e}")))?;
        Ok(RawReply::Response {
            correlation_id: header.correlation_id,
            body,
        })
    }

    /// Reads and drops whatever comes until the broker closes the
    /// connection; the number of bytes that came. Times out (an error) if
    /// the broker keeps it open.
    pub async fn read_until_closed(&mut self) -> Result<usize, ClientError> {
        let mut buffer = [0u8; 4096];
        let mut received = 0;
        loop {
            let read = self.reader.read(&mut buffer);
            match timed(&self.address, self.options.io_timeout, read, "reading from").await {
                Ok(0) => return Ok(received),
                Ok(n) => received += n,
                Err(ClientError::Io { source, .. }) if is_closed(&source) => return Ok(received),
                Err(error) => return Err(error),
            }
        }
    }

    async fn read_decoded<R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Result<R, ClientError> {
        match self
            .read_reply(api_key.response_header_version(version))
            .await?
        {
            RawReply::Closed => Err(ClientError::Closed {
                address: self.address.clone(),
            }),
            RawReply::Response {
                correlation_id: answered,
                mut body,
            } => {
                if answered != correlation_id {
                    return Err(ClientError::Protocol(format!(
                        "the broker at {} answered correlation id {answered} to request {correlation_id}",
                        self.address
                    )));
                }
                R::decode(&mut body, version).map_err(|e| {
                    ClientError::Protocol(format!(
                        "decoding the {api_key:?} v{version} response from {}: {e}",
                        self.address
                    ))
                })
            }
        }
    }

    /// Fills `buffer`; `false` if the connection closed first.
    async fn read_exact_or_closed(&mut self, buffer: &mut [u8]) -> Result<bool, ClientError> {
        let read = self.reader.read_exact(buffer);
        match timed(&self.address, self.options.io_timeout, read, "reading from").await {
            Ok(_) => Ok(true),
            Err(ClientError::Io { source, .. }) if is_closed(&source) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn write(&mut self, bytes: &[u8], what: &'static str) -> Result<(), ClientError> {
        let writer = &mut self.writer;
        let written = async move {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        timed(&self.address, self.options.io_timeout, written, what).await
    }
}

/// `io` within `timeout`.
async fn timed<T>(
    address: &str,
    timeout: Duration,
    io: impl Future<Output = io::Result<T>>,
    what: &'static str,
) -> Result<T, ClientError> {
    match tokio::time::timeout(timeout, io).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(ClientError::Io {
            what,
            address: address.to_string(),
            source,
        }),
        Err(_) => Err(ClientError::TimedOut {
            address: address.to_string(),
            timeout,
        }),
    }
}

fn is_closed(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        error.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

/// Versions below which a request lacks what Strata's tools rely on.
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
