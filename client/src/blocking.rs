//! [`Client`]: a [`Connection`] for code that waits for each answer (the
//! command-line tools, tests), driven on a single-threaded runtime of its
//! own. Not for use inside an async runtime: use [`Connection`] there.

use bytes::BytesMut;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable, Request};
use tokio::runtime::Runtime;

use crate::{ClientError, Connection, InFlight, Options, RawReply};

/// A blocking connection to one broker; see [`Connection`] for each method.
pub struct Client {
    runtime: Runtime,
    connection: Connection,
}

impl Client {
    /// Connects to `address` (HOST:PORT) and negotiates API versions.
    pub fn connect(address: &str, options: Options) -> Result<Client, ClientError> {
        Client::open(options, |options| async move {
            Connection::connect(address, options).await
        })
    }

    /// Connects to `address` and sends nothing.
    pub fn connect_raw(address: &str, options: Options) -> Result<Client, ClientError> {
        Client::open(options, |options| async move {
            Connection::connect_raw(address, options).await
        })
    }

    fn open<F: std::future::Future<Output = Result<Connection, ClientError>>>(
        options: Options,
        connect: impl FnOnce(Options) -> F,
    ) -> Result<Client, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Protocol(format!("starting the client's runtime: {e}")))?;
        let connection = runtime.block_on(connect(options))?;
        Ok(Client {
            runtime,
            connection,
        })
    }

    pub fn address(&self) -> &str {
        self.connection.address()
    }

    pub fn negotiate(&mut self) -> Result<ApiVersionsResponse, ClientError> {
        self.runtime.block_on(self.connection.negotiate())
    }

    pub fn supports<R: Request>(&self) -> bool {
        self.connection.supports::<R>()
    }

    pub fn version_for<R: Request>(&self) -> Result<i16, ClientError> {
        self.connection.version_for::<R>()
    }

    pub fn send<R: Request>(&mut self, request: &R) -> Result<R::Response, ClientError> {
        self.runtime.block_on(self.connection.send(request))
    }

    pub fn start<R: Request>(&mut self, request: &R) -> Result<InFlight<R>, ClientError> {
        self.runtime.block_on(self.connection.start(request))
    }

    pub fn receive<R: Request>(
        &mut self,
        in_flight: InFlight<R>,
    ) -> Result<R::Response, ClientError> {
        self.runtime.block_on(self.connection.receive(in_flight))
    }

    pub fn request_at<T: Encodable, R: Decodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<R, ClientError> {
        self.runtime
            .block_on(self.connection.request_at(api_key, version, body))
    }

    pub fn encode<T: Encodable>(
        &mut self,
        api_key: ApiKey,
        version: i16,
        body: &T,
    ) -> Result<(i32, BytesMut), ClientError> {
        self.connection.encode(api_key, version, body)
    }

    pub fn send_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.runtime.block_on(self.connection.send_frame(frame))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        self.runtime.block_on(self.connection.send_raw(bytes))
    }

    pub fn read_reply(&mut self, response_header_version: i16) -> Result<RawReply, ClientError> {
        self.runtime
            .block_on(self.connection.read_reply(response_header_version))
    }

    pub fn read_until_closed(&mut self) -> Result<usize, ClientError> {
        self.runtime.block_on(self.connection.read_until_closed())
    }
}
