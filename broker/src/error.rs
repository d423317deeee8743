//! Errors at the handler edge: every failure a client can see becomes one
//! Kafka error code here, in one place.

use kafka_protocol::error::ResponseError;
use strata_storage::StorageError;

/// A failure to report to a client as a Kafka error code (plus an optional
/// message for the APIs whose responses carry one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {}", message.as_deref().unwrap_or(""))]
pub struct ApiError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl ApiError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: Some(message.into()),
        }
    }

    pub fn code(&self) -> i16 {
        self.code.code()
    }

    /// The message as the protocol's nullable string.
    pub fn message_str(&self) -> Option<kafka_protocol::protocol::StrBytes> {
        self.message
            .clone()
            .map(kafka_protocol::protocol::StrBytes::from_string)
    }
}

/// The error code and message of a response entry: `(0, None)` on success.
pub fn error_fields(
    outcome: &Result<(), ApiError>,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(error) => (error.code(), error.message_str()),
    }
}

impl From<ResponseError> for ApiError {
    fn from(code: ResponseError) -> Self {
        ApiError {
            code,
            message: None,
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        let code = ResponseError::try_from_code(error.kafka_error_code())
            .unwrap_or(ResponseError::UnknownServerError);
        if code == ResponseError::KafkaStorageError {
            tracing::error!(%error, "storage error");
        }
        ApiError::new(code, error.to_string())
    }
}

/// Failures that stop the broker from starting or that end it.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata file {path}: {reason}")]
    Metadata { path: String, reason: String },
    #[error("metadata log: {0}")]
    MetadataLog(#[from] crate::metadata::MetadataLogError),
    #[error("metadata log does not replay: {0}")]
    MetadataReplay(#[from] crate::metadata::ApplyError),
    #[error(transparent)]
    Quorum(#[from] crate::quorum::QuorumError),
}

impl BrokerError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BrokerError::Io {
            context: context.into(),
            source,
        }
    }
}
