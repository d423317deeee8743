//! Kafka's names for its error codes, as the protocol guide and Kafka's own
//! tools and metrics spell them.

use kafka_protocol::error::ResponseError;

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`; `None` for a code
/// the protocol crate does not know (the caller says how to show it).
pub fn error_name(error: ResponseError) -> Option<String> {
    if let ResponseError::Unknown(_) = error {
        return None;
    }
    let camel = format!("{error:?}");
    let mut name = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    Some(name)
}
