//! The `strata` client commands' connection to brokers: the blocking
//! [`Client`] of the `strata-client` crate (which the tests and, for
//! broker-to-broker traffic, the brokers use too), plus how a command reports
//! what the broker said.
//!
//! Why our own client rather than rdkafka: it keeps the `strata` binary free of
//! librdkafka and a C toolchain, and since it only speaks the Kafka protocol
//! the commands work against Apache Kafka too.

use anyhow::{bail, Result};
use kafka_protocol::error::ResponseError;
use kafka_protocol::protocol::StrBytes;
pub use strata_client::blocking::Client;
pub use strata_client::InFlight;

/// The `timeout_ms` given to the broker in admin requests (the client waits
/// 45 s for any answer, which leaves it room).
pub const REQUEST_TIMEOUT_MS: i32 = 30_000;
const CLIENT_ID: &str = "strata-cli";

/// Connects to `bootstrap` (HOST:PORT) and asks which API versions it speaks.
pub fn connect(bootstrap: &str) -> Result<Client> {
    let options = strata_client::Options {
        client_id: CLIENT_ID.to_string(),
        ..Default::default()
    };
    Ok(Client::connect(bootstrap, options)?)
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
