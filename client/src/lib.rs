//! Strata's Kafka client, for everything of Strata that talks to a broker:
//! the `strata` commands, the tests, and brokers talking to each other.
//!
//! - [`Connection`]: one TCP connection to a broker, async (tokio). Typed
//!   requests at the highest version both sides support (after
//!   [`Connection::negotiate`], ApiVersions), several in flight when asked
//!   ([`Connection::start`] / [`Connection::receive`]), and a raw level
//!   (any version, any bytes, a closed connection reported as such) for
//!   tests of what a broker does with bad input.
//! - [`blocking::Client`]: the same, for code that waits (the command-line
//!   tools), on a runtime of its own.
//!
//! Every message type comes from the `kafka-protocol` crate; nothing here
//! hand-writes a codec. Because it only speaks the Kafka protocol, what is
//! built on it works against Apache Kafka too.
//! See <https://kafka.apache.org/protocol.html>.

pub mod blocking;
mod connection;

use std::time::Duration;

pub use connection::{Connection, InFlight, RawReply};

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `client_id` of every request header.
    pub client_id: String,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// How long a read or a write may wait.
    pub io_timeout: Duration,
    /// A response frame larger than this is taken for a broken connection,
    /// not allocated.
    pub max_response_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            client_id: "strata".to_string(),
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(45),
            max_response_bytes: 100 << 20,
        }
    }
}

/// Why a request got no typed answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve broker address {address:?}: {source}")]
    Resolve {
        address: String,
        source: std::io::Error,
    },
    #[error("cannot reach broker at {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{what} {address}: {source}")]
    Io {
        what: &'static str,
        address: String,
        source: std::io::Error,
    },
    #[error("the broker at {address} closed the connection")]
    Closed { address: String },
    #[error("no answer from the broker at {address} within {timeout:?}")]
    TimedOut { address: String, timeout: Duration },
    #[error("the broker at {address} does not support {api}")]
    Unsupported { address: String, api: String },
    #[error(
        "no common version of {api}: the broker at {address} speaks {theirs_min}..={theirs_max}, this client {ours_min}..={ours_max}"
    )]
    NoCommonVersion {
        address: String,
        api: String,
        theirs_min: i16,
        theirs_max: i16,
        ours_min: i16,
        ours_max: i16,
    },
    /// An answer that cannot be read, or a request that cannot be written.
    #[error("{0}")]
    Protocol(String),
}

/// The API's name as Kafka's documentation spells it, e.g. `CreateTopics`.
pub fn api_name(api_key: i16) -> String {
    match kafka_protocol::messages::ApiKey::try_from(api_key) {
        Ok(key) => format!("{key:?}"),
        Err(()) => format!("api key {api_key}"),
    }
}
