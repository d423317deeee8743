//! Label values kept as numbers in memory and written as names on the wire:
//! hashing an `i16` per lookup is cheaper than building a string, and the
//! name is only needed when Prometheus scrapes.

use std::fmt::Write;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{EncodeLabelValue, LabelValueEncoder};

/// An API key, written as the API's name (`Produce`, `Fetch`, ...), as
/// Kafka's own request metrics name them.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ApiName(pub i16);

impl EncodeLabelValue for ApiName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match ApiKey::try_from(self.0) {
            Ok(key) => write!(encoder, "{key:?}"),
            Err(()) => write!(encoder, "Unknown{}", self.0),
        }
    }
}

/// A Kafka error code, written as its protocol name
/// (`UNKNOWN_TOPIC_OR_PARTITION`), as in the protocol guide's error table
/// (<https://kafka.apache.org/protocol#protocol_error_codes>).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ErrorName(pub i16);

impl EncodeLabelValue for ErrorName {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(&error_name(self.0))
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`; a code the
/// protocol crate does not know becomes `UNKNOWN_CODE_<code>`.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(error) => {
            strata_protocol::error_name(error).unwrap_or_else(|| format!("UNKNOWN_CODE_{code}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_get_their_protocol_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(56), "KAFKA_STORAGE_ERROR");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(30_000), "UNKNOWN_CODE_30000");
    }
}
