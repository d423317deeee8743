//! Topic config validation (CreateTopics, AlterConfigs) and the IncrementalAlterConfigs
//! operations (KIP-339).
//!
//! A topic's overrides are a `BTreeMap<String, String>` of Kafka names to the strings the
//! client sent; everything in it has passed [`validate_topic_config`].

use std::collections::BTreeMap;

use super::registry::{self, ConfigKey, ConfigType, Value};
use super::ConfigError;

/// The IncrementalAlterConfigs operation types (`config_operation` in the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// 0: set the value.
    Set,
    /// 1: remove the override, reverting to the broker default.
    Delete,
    /// 2: add items to a list config.
    Append,
    /// 3: remove items from a list config.
    Subtract,
}

impl AlterConfigOp {
    /// The operation for a wire id; an unknown id is INVALID_REQUEST, as in Kafka.
    pub fn from_id(operation: i8) -> Result<Self, ConfigError> {
        match operation {
            0 => Ok(AlterConfigOp::Set),
            1 => Ok(AlterConfigOp::Delete),
            2 => Ok(AlterConfigOp::Append),
            3 => Ok(AlterConfigOp::Subtract),
            _ => Err(ConfigError::UnknownOperation { operation }),
        }
    }

    fn name(self) -> &'static str {
        match self {
            AlterConfigOp::Set => "SET",
            AlterConfigOp::Delete => "DELETE",
            AlterConfigOp::Append => "APPEND",
            AlterConfigOp::Subtract => "SUBTRACT",
        }
    }
}

/// Check one topic config: the name must be a topic config Strata knows and the value must
/// parse as its type and lie in Kafka's valid range. The broker answers an error with
/// INVALID_CONFIG and the error's message.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let key = registry::topic_key(name).ok_or_else(|| ConfigError::UnknownTopicConfig {
        name: name.to_string(),
    })?;
    registry::parse_value(key, value).map_err(|reason| ConfigError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    })?;
    Ok(())
}

/// Check a whole set of topic overrides (CreateTopics, AlterConfigs): each one, then the
/// rules between them (`min.compaction.lag.ms` may not exceed `max.compaction.lag.ms`).
pub fn validate_topic_configs(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in configs {
        validate_topic_config(name, value)?;
    }
    let lag = |name: &str| -> Option<i64> {
        let key = registry::topic_key(name)?;
        let raw = configs.get(name).map(String::as_str).or(key.default)?;
        match registry::parse_value(key, raw) {
            Ok(Value::Integer(number)) => Some(number),
            _ => None,
        }
    };
    if let (Some(min), Some(max)) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms")) {
        if min > max {
            return Err(ConfigError::InvalidValue {
                name: "min.compaction.lag.ms".to_string(),
                value: min.to_string(),
                reason: format!("must not be greater than max.compaction.lag.ms ({max})"),
            });
        }
    }
    Ok(())
}

/// Apply one IncrementalAlterConfigs operation to a topic's overrides: SET=0, DELETE=1,
/// APPEND=2, SUBTRACT=3. APPEND and SUBTRACT apply only to LIST configs (Kafka refuses them
/// for anything else with INVALID_CONFIG); they start from the current override, else the
/// config's default, as Kafka does. The new value is validated before `overrides` changes,
/// so a failed operation leaves it untouched. Rules between configs (compaction lags) are
/// not checked here, because a request's operations apply in order and only the end result
/// has to be consistent: call [`validate_topic_configs`] on the result of the whole request.
pub fn apply_incremental(
    overrides: &mut BTreeMap<String, String>,
    op: i8,
    name: &str,
    value: Option<&str>,
) -> Result<(), ConfigError> {
    let unknown = || ConfigError::UnknownTopicConfig {
        name: name.to_string(),
    };
    apply_incremental_to(
        overrides,
        op,
        name,
        value,
        registry::topic_key(name).ok_or_else(unknown),
        validate_topic_config,
    )
}

/// [`apply_incremental`] for the dynamic configs of a broker resource: only
/// the properties that [`registry::is_dynamic`] allows.
pub fn apply_incremental_broker(
    overrides: &mut BTreeMap<String, String>,
    op: i8,
    name: &str,
    value: Option<&str>,
) -> Result<(), ConfigError> {
    let key = registry::broker_key(name)
        .filter(|_| registry::is_dynamic(name))
        .ok_or_else(|| ConfigError::NotDynamic {
            names: vec![name.to_string()],
        });
    apply_incremental_to(
        overrides,
        op,
        name,
        value,
        key,
        super::validate_dynamic_broker_config,
    )
}

/// The operation itself, on any kind of resource: `key` is the property's
/// registry entry (or why it may not be set) and `validate` checks the result.
fn apply_incremental_to(
    overrides: &mut BTreeMap<String, String>,
    op: i8,
    name: &str,
    value: Option<&str>,
    key: Result<&ConfigKey, ConfigError>,
    validate: fn(&str, &str) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let operation = AlterConfigOp::from_id(op)?;
    if operation == AlterConfigOp::Delete {
        // Deleting an override that does not exist (or of a name Kafka would not know) is
        // not an error in Kafka: the result is simply "no override".
        overrides.remove(name);
        return Ok(());
    }
    let key = key?;
    let value = value.ok_or_else(|| ConfigError::MissingValue {
        name: name.to_string(),
        operation: operation.name().to_string(),
    })?;
    let new_value = match operation {
        AlterConfigOp::Set => value.to_string(),
        AlterConfigOp::Append | AlterConfigOp::Subtract => {
            if key.config_type != ConfigType::List {
                return Err(ConfigError::NotAList {
                    name: name.to_string(),
                    config_type: key.config_type.kafka_name(),
                });
            }
            let current = overrides
                .get(name)
                .map(String::as_str)
                .or(key.default)
                .unwrap_or_default();
            let mut items = registry::split_list(current);
            let changes = registry::split_list(value);
            if operation == AlterConfigOp::Append {
                for item in changes {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
            } else {
                items.retain(|item| !changes.contains(item));
            }
            items.join(",")
        }
        AlterConfigOp::Delete => unreachable!("handled above"),
    };
    validate(name, &new_value)?;
    overrides.insert(name.to_string(), new_value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors() {
        assert!(validate_topic_config("segment.bytes", "1048576").is_ok());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("compression.type", "zstd").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());

        let unknown = validate_topic_config("no.such.config", "1").expect_err("unknown");
        assert!(matches!(unknown, ConfigError::UnknownTopicConfig { .. }));
        assert_eq!(unknown.kafka_error_code(), 40);
        assert_eq!(
            unknown.to_string(),
            "Unknown topic config name: no.such.config"
        );

        for (name, value) in [
            ("segment.bytes", "-1"),
            ("segment.bytes", "13"),
            ("segment.bytes", "abc"),
            ("segment.ms", "0"),
            ("retention.ms", "-2"),
            ("cleanup.policy", "forever"),
            ("cleanup.policy", ""),
            ("message.timestamp.type", "createtime"),
            ("compression.type", "brotli"),
            ("min.insync.replicas", "0"),
            ("min.cleanable.dirty.ratio", "2"),
            ("preallocate", "maybe"),
            ("log.segment.bytes", "1048576"),
        ] {
            let error = validate_topic_config(name, value).expect_err(name);
            assert_eq!(error.kafka_error_code(), 40, "{name}={value}");
            assert!(error.to_string().contains(name), "{error}");
        }
        let message = validate_topic_config("segment.bytes", "10").expect_err("too small");
        assert_eq!(
            message.to_string(),
            "Invalid value 10 for configuration segment.bytes: Value must be at least 14"
        );
    }

    #[test]
    fn compaction_lags_must_be_ordered() {
        let mut configs = BTreeMap::new();
        configs.insert("min.compaction.lag.ms".to_string(), "100".to_string());
        assert!(validate_topic_configs(&configs).is_ok());
        configs.insert("max.compaction.lag.ms".to_string(), "50".to_string());
        assert!(validate_topic_configs(&configs).is_err());
    }

    #[test]
    fn set_and_delete() {
        let mut overrides = BTreeMap::new();
        apply_incremental(&mut overrides, 0, "retention.ms", Some("1000")).expect("set");
        assert_eq!(
            overrides.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        let error = apply_incremental(&mut overrides, 0, "retention.ms", Some("x"));
        assert!(error.is_err());
        assert_eq!(
            overrides.get("retention.ms").map(String::as_str),
            Some("1000")
        );
        assert!(apply_incremental(&mut overrides, 0, "retention.ms", None).is_err());
        assert!(apply_incremental(&mut overrides, 0, "bogus", Some("1")).is_err());
        apply_incremental(&mut overrides, 1, "retention.ms", None).expect("delete");
        assert!(overrides.is_empty());
        apply_incremental(&mut overrides, 1, "retention.ms", None).expect("delete again");
    }

    #[test]
    fn append_and_subtract_lists() {
        let mut overrides = BTreeMap::new();
        // APPEND starts from the default ("delete") when there is no override.
        apply_incremental(&mut overrides, 2, "cleanup.policy", Some("compact")).expect("append");
        assert_eq!(
            overrides.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        apply_incremental(&mut overrides, 2, "cleanup.policy", Some("compact")).expect("again");
        assert_eq!(
            overrides.get("cleanup.policy").map(String::as_str),
            Some("delete,compact")
        );
        apply_incremental(&mut overrides, 3, "cleanup.policy", Some("delete")).expect("subtract");
        assert_eq!(
            overrides.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        // Subtracting the last item leaves an invalid empty policy: refused, unchanged.
        assert!(apply_incremental(&mut overrides, 3, "cleanup.policy", Some("compact")).is_err());
        assert_eq!(
            overrides.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(apply_incremental(&mut overrides, 2, "cleanup.policy", Some("bogus")).is_err());
    }

    #[test]
    fn append_to_non_list_and_unknown_operation() {
        let mut overrides = BTreeMap::new();
        let error = apply_incremental(&mut overrides, 2, "retention.ms", Some("5"))
            .expect_err("not a list");
        assert!(matches!(error, ConfigError::NotAList { .. }));
        assert_eq!(error.kafka_error_code(), 40);
        let error = apply_incremental(&mut overrides, 3, "segment.bytes", Some("5"))
            .expect_err("not a list");
        assert_eq!(error.kafka_error_code(), 40);
        let error =
            apply_incremental(&mut overrides, 9, "segment.bytes", Some("5")).expect_err("op");
        assert_eq!(error.kafka_error_code(), 42);
        assert!(overrides.is_empty());
    }
}
