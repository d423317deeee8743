//! Kafka configuration properties: what Strata honours, how it reads them, and how it
//! answers the admin APIs about them.
//!
//! Module map:
//! - [`registry`]: the static table of known broker and topic properties (Kafka's names,
//!   types, defaults, valid ranges, topic-to-broker synonyms) and value parsing.
//! - [`properties`]: the Java `.properties` reader behind `--config FILE`.
//! - [`topic`]: validation of topic configs for CreateTopics / AlterConfigs, and the
//!   IncrementalAlterConfigs operations.
//! - [`describe`]: DescribeConfigs answers for topics and the broker, as `kafka-protocol`
//!   structs.
//! - this file: [`BrokerConfig`], the broker's static configuration, and [`ConfigError`].
//!
//! A topic setting resolves as in Kafka: the topic's own override, else the first broker
//! synonym that is set explicitly (e.g. `log.roll.ms` before `log.roll.hours`), else the
//! documented default. See `docs/configuration.md` for the user-facing table.

pub mod describe;
pub mod listeners;
pub mod properties;
pub mod registry;
pub mod topic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use strata_storage::{LogConfig, TimestampType};

pub use describe::{describe_broker, describe_broker_defaults, describe_topic, ConfigSource};
pub use listeners::NodeRoles;
pub use registry::{ConfigKey, ConfigType, Status, Value, BROKER_CONFIGS, TOPIC_CONFIGS};
pub use topic::{
    apply_incremental, apply_incremental_broker, validate_topic_config, validate_topic_configs,
    AlterConfigOp,
};

/// Kafka's INVALID_CONFIG error code.
pub const INVALID_CONFIG: i16 = 40;
/// Kafka's INVALID_REQUEST error code.
pub const INVALID_REQUEST: i16 = 42;

/// Everything that can be wrong with a configuration: a file that cannot be read or parsed,
/// an unknown topic property, a value of the wrong type or out of range, an operation that
/// does not apply.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("invalid --set argument {argument:?}: expected key=value")]
    InvalidSetArgument { argument: String },
    #[error("Unknown topic config name: {name}")]
    UnknownTopicConfig { name: String },
    #[error("Invalid value {value} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
    #[error("Null value not supported for {name} with operation {operation}")]
    MissingValue { name: String, operation: String },
    #[error("Config value append/subtract is not allowed for config {name} of type {config_type}")]
    NotAList {
        name: String,
        config_type: &'static str,
    },
    #[error("Unknown alter configs operation type {operation}")]
    UnknownOperation { operation: i8 },
    /// Kafka's message for broker properties that need a restart.
    #[error("Cannot update these configs dynamically: {names:?}")]
    NotDynamic { names: Vec<String> },
}

impl ConfigError {
    /// The Kafka error code the broker should answer with: INVALID_REQUEST for an unknown
    /// IncrementalAlterConfigs operation (as Kafka does), INVALID_CONFIG for the rest.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            ConfigError::UnknownOperation { .. } | ConfigError::NotDynamic { .. } => {
                INVALID_REQUEST
            }
            _ => INVALID_CONFIG,
        }
    }

    fn invalid(name: &str, value: &str, reason: impl Into<String>) -> Self {
        ConfigError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// The broker's configuration: every property set by `--config FILE` and `--set`
/// (static), validated, with typed getters for what the broker uses; and, layered
/// over it, the dynamic broker configs kept in the metadata log (the cluster-wide
/// default, then this broker's own), in Kafka's precedence.
///
/// Values are kept as the strings the user wrote, because DescribeConfigs reports them
/// that way; known properties are checked when set, so the getters cannot fail.
#[derive(Clone, Debug, Default)]
pub struct BrokerConfig {
    /// Explicitly set properties, known and unknown, by name.
    explicit: BTreeMap<String, String>,
    /// Dynamic cluster-wide defaults (AlterConfigs on the broker resource "").
    dynamic_default: BTreeMap<String, String>,
    /// Dynamic configs of this broker (AlterConfigs on its id).
    dynamic_broker: BTreeMap<String, String>,
}

impl BrokerConfig {
    /// A configuration with nothing set: every property has its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Build from `--config FILE` (if any), then the `--set key=value` arguments in order,
    /// so that `--set` wins over the file.
    pub fn load(file: Option<&Path>, set_arguments: &[String]) -> Result<Self, ConfigError> {
        let mut config = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                })?;
                Self::from_properties(&text)?
            }
            None => Self::new(),
        };
        for argument in set_arguments {
            config.apply_set_argument(argument)?;
        }
        config.check_consistency()?;
        Ok(config)
    }

    /// Build from the text of a `.properties` file.
    pub fn from_properties(text: &str) -> Result<Self, ConfigError> {
        let mut config = Self::new();
        for (name, value) in properties::parse(text)? {
            config.set(&name, &value)?;
        }
        config.check_consistency()?;
        Ok(config)
    }

    /// Apply one `--set key=value` argument.
    pub fn apply_set_argument(&mut self, argument: &str) -> Result<(), ConfigError> {
        match argument.split_once('=') {
            Some((name, value)) if !name.trim().is_empty() => self.set(name.trim(), value.trim()),
            _ => Err(ConfigError::InvalidSetArgument {
                argument: argument.to_string(),
            }),
        }
    }

    /// Set one property. A known property with an invalid value is an error naming the key;
    /// an unknown property is kept (so `get` still sees it) with a warning, as Kafka does,
    /// because a server.properties written for Kafka is full of settings Strata does not
    /// need, and refusing to start over them would help nobody.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ConfigError> {
        match registry::broker_key(name) {
            Some(key) => validate_broker_value(key, value)?,
            None => match registry::topic_key(name).and_then(|key| key.synonyms.first()) {
                Some(synonym) => tracing::warn!(
                    property = name,
                    broker_property = synonym.name,
                    "{name} is a topic config; the broker-wide default is {}, ignoring",
                    synonym.name
                ),
                None => tracing::warn!(
                    property = name,
                    "unknown configuration property {name} is ignored"
                ),
            },
        }
        self.explicit.insert(name.to_string(), value.to_string());
        Ok(())
    }

    /// Cross-property rules, checked once everything is set.
    fn check_consistency(&self) -> Result<(), ConfigError> {
        if let (Some(node), Some(broker)) =
            (self.get_integer("node.id"), self.get_integer("broker.id"))
        {
            if node != broker {
                return Err(ConfigError::invalid(
                    "broker.id",
                    &broker.to_string(),
                    format!("broker.id must be equal to node.id ({node})"),
                ));
            }
        }
        let fetch = self.replica_fetch();
        if fetch.socket_timeout < fetch.max_wait {
            return Err(ConfigError::invalid(
                "replica.socket.timeout.ms",
                &fetch.socket_timeout.as_millis().to_string(),
                "replica.socket.timeout.ms must be at least replica.fetch.wait.max.ms",
            ));
        }
        Ok(())
    }

    /// How this broker's replica fetchers fetch (`replica.fetch.*`,
    /// `replica.socket.timeout.ms`; Kafka's defaults).
    pub fn replica_fetch(&self) -> ReplicaFetchSettings {
        let ms = |name| Duration::from_millis(u64::try_from(self.int(name)).unwrap_or(0));
        ReplicaFetchSettings {
            max_wait: ms("replica.fetch.wait.max.ms"),
            partition_max_bytes: self.int("replica.fetch.max.bytes"),
            max_bytes: self.int("replica.fetch.response.max.bytes"),
            backoff: ms("replica.fetch.backoff.ms"),
            socket_timeout: ms("replica.socket.timeout.ms"),
        }
    }

    /// The value of `name` as explicitly set (dynamically, or in the file or `--set`),
    /// known or not; `None` when the property was left at its default.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.lookup(name).map(|(value, _)| value)
    }

    /// The value of `name` with where it was set, in Kafka's precedence: this
    /// broker's dynamic config, the dynamic cluster default, the static config.
    pub fn lookup(&self, name: &str) -> Option<(&str, ConfigSource)> {
        let layers = [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.explicit, ConfigSource::StaticBroker),
        ];
        layers
            .into_iter()
            .find_map(|(layer, source)| layer.get(name).map(|value| (value.as_str(), source)))
    }

    /// Every layer that sets `name`, highest precedence first.
    pub fn lookup_all(&self, name: &str) -> Vec<(&str, ConfigSource)> {
        [
            (&self.dynamic_broker, ConfigSource::DynamicBroker),
            (&self.dynamic_default, ConfigSource::DynamicDefaultBroker),
            (&self.explicit, ConfigSource::StaticBroker),
        ]
        .into_iter()
        .filter_map(|(layer, source)| layer.get(name).map(|value| (value.as_str(), source)))
        .collect()
    }

    /// This static configuration with the dynamic configs of the metadata log
    /// over it: the cluster-wide defaults, then this broker's own.
    pub fn with_dynamic(
        &self,
        default: BTreeMap<String, String>,
        broker: BTreeMap<String, String>,
    ) -> BrokerConfig {
        BrokerConfig {
            explicit: self.explicit.clone(),
            dynamic_default: default,
            dynamic_broker: broker,
        }
    }

    /// The dynamic cluster-wide defaults in force.
    pub fn dynamic_defaults(&self) -> &BTreeMap<String, String> {
        &self.dynamic_default
    }

    /// This broker's id: `node.id`, else `broker.id`, else 1.
    pub fn node_id(&self) -> i32 {
        self.get_integer("node.id")
            .or_else(|| self.get_integer("broker.id"))
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(1)
    }

    /// `broker.heartbeat.interval.ms` (Kafka's default 2000; at least 1).
    pub fn broker_heartbeat_interval_ms(&self) -> u64 {
        self.millis("broker.heartbeat.interval.ms")
    }

    /// `replica.lag.time.max.ms` (Kafka's default 30000).
    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.millis("replica.lag.time.max.ms") as i64
    }

    /// `broker.session.timeout.ms` (Kafka's default 9000).
    pub fn broker_session_timeout_ms(&self) -> u64 {
        self.millis("broker.session.timeout.ms")
    }

    /// `controller.quorum.election.timeout.ms` (Kafka's default 1000).
    pub fn controller_election_timeout_ms(&self) -> u64 {
        self.millis("controller.quorum.election.timeout.ms")
    }

    /// A duration property the registry keeps at least 1, in ms.
    fn millis(&self, name: &str) -> u64 {
        u64::try_from(self.integer(name)).unwrap_or(1).max(1)
    }

    /// `broker.rack`: this broker's rack, if set (an empty value is none).
    pub fn broker_rack(&self) -> Option<String> {
        self.get("broker.rack")
            .filter(|rack| !rack.is_empty())
            .map(str::to_string)
    }

    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub fn num_partitions(&self) -> i32 {
        self.int("num.partitions")
    }

    /// `default.replication.factor`, as the i16 that CreateTopics and metadata carry.
    pub fn default_replication_factor(&self) -> i16 {
        i16::try_from(self.integer("default.replication.factor")).unwrap_or(i16::MAX)
    }

    /// `auto.create.topics.enable`.
    pub fn auto_create_topics_enable(&self) -> bool {
        self.boolean("auto.create.topics.enable")
    }

    /// `delete.topic.enable`.
    pub fn delete_topic_enable(&self) -> bool {
        self.boolean("delete.topic.enable")
    }

    /// `socket.request.max.bytes`: the largest request frame the connection accepts.
    pub fn socket_request_max_bytes(&self) -> usize {
        usize::try_from(self.integer("socket.request.max.bytes")).unwrap_or(usize::MAX)
    }

    /// `offsets.topic.num.partitions`: partitions of `__consumer_offsets`.
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.int("offsets.topic.num.partitions")
    }

    /// `group.initial.rebalance.delay.ms`.
    pub fn group_initial_rebalance_delay_ms(&self) -> i64 {
        self.integer("group.initial.rebalance.delay.ms")
    }

    /// `group.min.session.timeout.ms`.
    pub fn group_min_session_timeout_ms(&self) -> i32 {
        self.int("group.min.session.timeout.ms")
    }

    /// `group.max.session.timeout.ms`.
    pub fn group_max_session_timeout_ms(&self) -> i32 {
        self.int("group.max.session.timeout.ms")
    }

    /// `group.max.size`.
    pub fn group_max_size(&self) -> usize {
        usize::try_from(self.integer("group.max.size")).unwrap_or(usize::MAX)
    }

    /// `unclean.leader.election.enable`: the broker default of the topic config.
    pub fn unclean_leader_election_enable(&self) -> bool {
        self.boolean("unclean.leader.election.enable")
    }

    /// With `auto.leader.rebalance.enable`: how often to check, and the
    /// largest share of a broker's preferred partitions others may lead.
    pub fn auto_leader_rebalance(&self) -> Option<(Duration, f64)> {
        self.boolean("auto.leader.rebalance.enable").then(|| {
            let seconds = u64::try_from(self.integer("leader.imbalance.check.interval.seconds"));
            (
                Duration::from_secs(seconds.unwrap_or(300).max(1)),
                f64::from(self.int("leader.imbalance.per.broker.percentage")) / 100.0,
            )
        })
    }

    /// `offsets.commit.timeout.ms` (Kafka's default 5000).
    pub fn offsets_commit_timeout(&self) -> Duration {
        Duration::from_millis(self.millis("offsets.commit.timeout.ms"))
    }

    /// `offsets.topic.replication.factor` (Kafka's default 3).
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        i16::try_from(self.integer("offsets.topic.replication.factor")).unwrap_or(3)
    }

    /// `offsets.retention.minutes`, in milliseconds.
    pub fn offsets_retention_ms(&self) -> i64 {
        self.integer("offsets.retention.minutes")
            .saturating_mul(60_000)
    }

    /// `offsets.retention.check.interval.ms`.
    pub fn offsets_retention_check_interval_ms(&self) -> i64 {
        self.integer("offsets.retention.check.interval.ms")
    }

    /// `offset.metadata.max.bytes`.
    pub fn offset_metadata_max_bytes(&self) -> usize {
        usize::try_from(self.integer("offset.metadata.max.bytes")).unwrap_or(usize::MAX)
    }

    /// `offsets.topic.segment.bytes`.
    pub fn offsets_topic_segment_bytes(&self) -> i64 {
        self.integer("offsets.topic.segment.bytes")
    }

    /// `log.retention.check.interval.ms`.
    pub fn log_retention_check_interval_ms(&self) -> i64 {
        self.integer("log.retention.check.interval.ms")
    }

    /// `log.dirs` if set, else `log.dir` (Kafka's rule). Strata's data directory comes from
    /// `--data-dir`; this exists so the binary can warn when they disagree.
    pub fn log_dirs(&self) -> Vec<String> {
        match self.get("log.dirs") {
            Some(dirs) => registry::split_list(dirs),
            None => vec![self.text("log.dir")],
        }
    }

    /// The effective value of topic property `name` for a topic with these overrides, as a
    /// string in the topic property's unit (e.g. `retention.ms` from `log.retention.hours`
    /// is in milliseconds), with the [`ConfigSource`] it came from. `None` for an unknown
    /// topic property.
    pub fn topic_config_value(
        &self,
        topic_overrides: &BTreeMap<String, String>,
        name: &str,
    ) -> Option<(String, ConfigSource)> {
        let key = registry::topic_key(name)?;
        Some(self.resolve_topic(key, topic_overrides))
    }

    /// Resolve a topic property: topic override, else the first explicitly set broker
    /// synonym (converted to the topic unit), else the default.
    pub(crate) fn resolve_topic(
        &self,
        key: &ConfigKey,
        topic_overrides: &BTreeMap<String, String>,
    ) -> (String, ConfigSource) {
        if let Some(value) = topic_overrides.get(key.name) {
            if registry::parse_value(key, value).is_ok() {
                return (value.trim().to_string(), ConfigSource::DynamicTopic);
            }
            tracing::warn!(
                property = key.name,
                value = value.as_str(),
                "ignoring invalid topic override"
            );
        }
        // Kafka's order: every layer of the first synonym before the next one
        // (log.retention.ms set statically wins over a dynamic log.retention.hours).
        for synonym in key.synonyms {
            if let Some((value, source)) = self.lookup(synonym.name) {
                if let Some(converted) = convert_synonym(value, synonym.multiplier) {
                    return (converted, source);
                }
            }
        }
        (
            key.default.unwrap_or_default().to_string(),
            ConfigSource::Default,
        )
    }

    /// The storage settings of a topic with these overrides: each from the topic override,
    /// else the broker synonyms in Kafka's precedence, else Kafka's default.
    ///
    /// Starts from `LogConfig::default()` and assigns field by field, so that a setting the
    /// storage layer adds later keeps its default instead of breaking this function.
    #[allow(clippy::field_reassign_with_default)]
    pub fn log_config(&self, topic_overrides: &BTreeMap<String, String>) -> LogConfig {
        let resolved = |name: &str| -> Value {
            let key = registry::topic_key(name).expect("storage settings are in TOPIC_CONFIGS");
            let (value, _) = self.resolve_topic(key, topic_overrides);
            registry::parse_value(key, &value)
                .expect("resolve_topic returns only values that passed validation")
        };
        let integer = |name: &str| match resolved(name) {
            Value::Integer(number) => number,
            other => unreachable!("{name} is an integer property, got {other:?}"),
        };
        // Kafka's "never" is Long.MAX_VALUE; the storage layer spells it u64::MAX.
        let never_or = |number: i64| {
            if number == i64::MAX {
                u64::MAX
            } else {
                u64::try_from(number).unwrap_or(0)
            }
        };
        let mut config = LogConfig::default();
        config.segment_bytes = u64::try_from(integer("segment.bytes")).unwrap_or(0);
        config.segment_ms = integer("segment.ms");
        config.segment_index_bytes = u32::try_from(integer("segment.index.bytes")).unwrap_or(0);
        config.index_interval_bytes = u32::try_from(integer("index.interval.bytes")).unwrap_or(0);
        config.max_message_bytes = u32::try_from(integer("max.message.bytes")).unwrap_or(0);
        config.message_timestamp_type = match resolved("message.timestamp.type") {
            Value::Text(text) if text == "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        };
        config.flush_messages = never_or(integer("flush.messages"));
        config.flush_ms = never_or(integer("flush.ms"));
        config.retention_ms = integer("retention.ms");
        config.retention_bytes = integer("retention.bytes");
        if let Value::List(policies) = resolved("cleanup.policy") {
            config.cleanup_delete = policies.iter().any(|p| p == "delete");
            config.cleanup_compact = policies.iter().any(|p| p == "compact");
        }
        config.delete_retention_ms = integer("delete.retention.ms");
        if let Value::Double(ratio) = resolved("min.cleanable.dirty.ratio") {
            config.min_cleanable_dirty_ratio = ratio;
        }
        config.min_compaction_lag_ms = integer("min.compaction.lag.ms");
        config.max_compaction_lag_ms = integer("max.compaction.lag.ms");
        config
    }

    /// The parsed explicit value of a known broker property, if set.
    fn explicit_value(&self, name: &str) -> Option<Value> {
        let key = registry::broker_key(name)?;
        registry::parse_value(key, self.get(name)?).ok()
    }

    /// The parsed value of a known broker property: explicit, else its default.
    fn value(&self, name: &str) -> Value {
        self.explicit_value(name).unwrap_or_else(|| {
            let key = registry::broker_key(name).expect("getters name known broker properties");
            let default = key.default.expect("getters name properties with a default");
            registry::parse_value(key, default).expect("defaults are valid (registry tests)")
        })
    }

    fn get_integer(&self, name: &str) -> Option<i64> {
        match self.explicit_value(name)? {
            Value::Integer(number) => Some(number),
            _ => None,
        }
    }

    fn integer(&self, name: &str) -> i64 {
        match self.value(name) {
            Value::Integer(number) => number,
            other => unreachable!("{name} is an integer property, got {other:?}"),
        }
    }

    fn int(&self, name: &str) -> i32 {
        // INT properties are parsed as i32, so this conversion cannot fail.
        i32::try_from(self.integer(name)).unwrap_or(i32::MAX)
    }

    fn boolean(&self, name: &str) -> bool {
        match self.value(name) {
            Value::Bool(flag) => flag,
            other => unreachable!("{name} is a boolean property, got {other:?}"),
        }
    }

    fn text(&self, name: &str) -> String {
        match self.value(name) {
            Value::Text(text) => text,
            other => unreachable!("{name} is a string property, got {other:?}"),
        }
    }
}

/// Check a broker property's value against its own type and range and, when it supplies a
/// topic property, against the topic property's range after unit conversion (so that a
/// broker default can never produce a topic setting that fails validation later).
/// Check one dynamic broker config (AlterConfigs on a broker resource): a
/// property that can change at run time, with a valid value.
pub fn validate_dynamic_broker_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let key = registry::broker_key(name)
        .filter(|_| registry::is_dynamic(name))
        .ok_or_else(|| ConfigError::NotDynamic {
            names: vec![name.to_string()],
        })?;
    validate_broker_value(key, value)
}

fn validate_broker_value(key: &ConfigKey, value: &str) -> Result<(), ConfigError> {
    registry::parse_value(key, value)
        .map_err(|reason| ConfigError::invalid(key.name, value, reason))?;
    for topic_key in TOPIC_CONFIGS {
        for synonym in topic_key.synonyms.iter().filter(|s| s.name == key.name) {
            let converted = convert_synonym(value, synonym.multiplier)
                .ok_or_else(|| ConfigError::invalid(key.name, value, "Value out of range"))?;
            registry::parse_value(topic_key, &converted).map_err(|reason| {
                ConfigError::invalid(key.name, value, format!("as {}: {reason}", topic_key.name))
            })?;
        }
    }
    Ok(())
}

/// Convert a broker synonym's value into the topic property's unit; `None` if it is not a
/// number or overflows. Values that need no conversion are passed through trimmed.
fn convert_synonym(value: &str, multiplier: i64) -> Option<String> {
    if multiplier == 1 {
        return Some(value.trim().to_string());
    }
    let number: i64 = value.trim().parse().ok()?;
    // Kafka treats any negative retention time as -1, "no limit", whatever the unit.
    if number < 0 {
        return Some("-1".to_string());
    }
    number.checked_mul(multiplier).map(|ms| ms.to_string())
}

/// The replica fetchers' settings, from [`BrokerConfig::replica_fetch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaFetchSettings {
    /// How long a fetch waits at the leader for records.
    pub max_wait: Duration,
    /// Record bytes per partition and per fetch.
    pub partition_max_bytes: i32,
    pub max_bytes: i32,
    /// The pause after an error or a failed connection.
    pub backoff: Duration,
    /// How long an answer may take before the connection is dropped.
    pub socket_timeout: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replica_fetch_settings_take_kafka_s_defaults_and_the_socket_timeout_covers_the_wait() {
        let defaults = config("").replica_fetch();
        assert_eq!(
            defaults,
            ReplicaFetchSettings {
                max_wait: Duration::from_millis(500),
                partition_max_bytes: 1_048_576,
                max_bytes: 10_485_760,
                backoff: Duration::from_millis(1000),
                socket_timeout: Duration::from_millis(30_000),
            }
        );
        let error = BrokerConfig::from_properties(
            "replica.fetch.wait.max.ms=5000\nreplica.socket.timeout.ms=3000\n",
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("replica.socket.timeout.ms"),
            "{error}"
        );
    }

    #[test]
    fn dynamic_broker_configs_layer_over_the_static_ones_in_kafka_s_order() {
        let static_config = config("log.retention.ms=1000\nlog.segment.bytes=2000000\n");
        let config = static_config.with_dynamic(
            map(&[
                ("log.segment.bytes", "3000000"),
                ("log.retention.hours", "5"),
            ]),
            map(&[("log.segment.bytes", "4000000")]),
        );
        assert_eq!(
            config.lookup("log.segment.bytes"),
            Some(("4000000", ConfigSource::DynamicBroker))
        );
        assert_eq!(config.lookup_all("log.segment.bytes").len(), 3);
        // The first synonym wins whatever its layer: a static log.retention.ms
        // beats a dynamic log.retention.hours, as in Kafka.
        assert_eq!(
            config.topic_config_value(&BTreeMap::new(), "retention.ms"),
            Some(("1000".to_string(), ConfigSource::StaticBroker))
        );
        assert_eq!(
            config.topic_config_value(&BTreeMap::new(), "segment.bytes"),
            Some(("4000000".to_string(), ConfigSource::DynamicBroker))
        );
        // The cluster-wide default resource lists only its own entries.
        let defaults = describe_broker_defaults(&config, None, false, false);
        let names: Vec<&str> = defaults.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["log.retention.hours", "log.segment.bytes"]);
        assert!(defaults
            .iter()
            .all(|e| e.config_source == ConfigSource::DynamicDefaultBroker.id()));
    }

    #[test]
    fn only_the_broker_defaults_of_topic_configs_are_dynamic() {
        assert!(validate_dynamic_broker_config("log.retention.ms", "60000").is_ok());
        assert!(validate_dynamic_broker_config("log.retention.ms", "soon").is_err());
        for name in ["num.partitions", "node.id", "listeners", "no.such.property"] {
            let error = validate_dynamic_broker_config(name, "1").unwrap_err();
            assert_eq!(error.kafka_error_code(), INVALID_REQUEST, "{name}");
        }
    }

    fn config(text: &str) -> BrokerConfig {
        BrokerConfig::from_properties(text).expect("valid config")
    }

    fn no_overrides() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn defaults_without_any_setting() {
        let config = BrokerConfig::new();
        assert_eq!(config.node_id(), 1);
        assert_eq!(config.num_partitions(), 1);
        assert_eq!(config.default_replication_factor(), 1);
        assert!(config.auto_create_topics_enable());
        assert!(config.delete_topic_enable());
        assert_eq!(config.socket_request_max_bytes(), 104_857_600);
        assert_eq!(config.offsets_topic_num_partitions(), 50);
        assert_eq!(config.group_initial_rebalance_delay_ms(), 3000);
        assert_eq!(config.log_retention_check_interval_ms(), 300_000);
        assert_eq!(config.log_dirs(), vec!["/tmp/kafka-logs".to_string()]);
        assert_eq!(config.get("num.partitions"), None);
        let log = config.log_config(&no_overrides());
        assert_eq!(log.segment_bytes, 1_073_741_824);
        assert_eq!(log.segment_ms, 604_800_000);
        assert_eq!(log.segment_index_bytes, 10_485_760);
        assert_eq!(log.index_interval_bytes, 4096);
        assert_eq!(log.max_message_bytes, 1_048_588);
        assert_eq!(log.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(log.flush_messages, u64::MAX);
        assert_eq!(log.flush_ms, u64::MAX);
    }

    #[test]
    fn file_then_set_arguments() {
        let dir = std::env::temp_dir().join(format!("strata-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("server.properties");
        std::fs::write(
            &path,
            "num.partitions=3\nnode.id=7\nauto.create.topics.enable=false\n",
        )
        .expect("write");
        let sets = vec![
            "num.partitions=6".to_string(),
            "socket.request.max.bytes = 1024".to_string(),
        ];
        let config = BrokerConfig::load(Some(&path), &sets).expect("load");
        assert_eq!(config.num_partitions(), 6);
        assert_eq!(config.node_id(), 7);
        assert!(!config.auto_create_topics_enable());
        assert_eq!(config.socket_request_max_bytes(), 1024);
        assert_eq!(config.get("num.partitions"), Some("6"));
        let _ = std::fs::remove_dir_all(&dir);

        let missing = BrokerConfig::load(Some(Path::new("/nonexistent/strata.properties")), &[]);
        assert!(matches!(missing, Err(ConfigError::Io { .. })));
        let bad_set = BrokerConfig::load(None, &["num.partitions".to_string()]);
        assert!(matches!(
            bad_set,
            Err(ConfigError::InvalidSetArgument { .. })
        ));
    }

    #[test]
    fn unknown_properties_are_kept_and_invalid_known_ones_rejected() {
        let config = config("zookeeper.connect=localhost:2181\nsegment.bytes=100\n");
        assert_eq!(config.get("zookeeper.connect"), Some("localhost:2181"));
        // A topic config at broker level is not the broker default: it changes nothing.
        assert_eq!(
            config.log_config(&no_overrides()).segment_bytes,
            1_073_741_824
        );

        let error = BrokerConfig::from_properties("num.partitions=abc").expect_err("invalid");
        assert!(error.to_string().contains("num.partitions"), "{error}");
        assert!(
            matches!(error, ConfigError::InvalidValue { ref name, .. } if name == "num.partitions")
        );
        assert!(BrokerConfig::from_properties("num.partitions=0").is_err());
        assert!(BrokerConfig::from_properties("auto.create.topics.enable=yes").is_err());
        assert!(BrokerConfig::from_properties("log.retention.ms=-5").is_err());
        assert!(BrokerConfig::from_properties("log.roll.hours=0").is_err());
        assert!(BrokerConfig::from_properties("node.id=2\nbroker.id=3").is_err());
        assert_eq!(config_node("broker.id=4"), 4);
    }

    fn config_node(text: &str) -> i32 {
        config(text).node_id()
    }

    #[test]
    fn synonym_precedence() {
        let hours = config("log.roll.hours=2\nlog.retention.hours=1");
        let overrides = no_overrides();
        assert_eq!(hours.log_config(&overrides).segment_ms, 2 * 3_600_000);
        assert_eq!(
            hours.topic_config_value(&overrides, "retention.ms"),
            Some(("3600000".to_string(), ConfigSource::StaticBroker))
        );

        let both = config("log.roll.hours=2\nlog.roll.ms=5000");
        assert_eq!(both.log_config(&overrides).segment_ms, 5000);

        let retention = config("log.retention.hours=1\nlog.retention.minutes=3\n");
        assert_eq!(
            retention
                .topic_config_value(&overrides, "retention.ms")
                .map(|(v, _)| v),
            Some("180000".to_string())
        );
        let retention =
            config("log.retention.hours=1\nlog.retention.minutes=3\nlog.retention.ms=42");
        assert_eq!(
            retention
                .topic_config_value(&overrides, "retention.ms")
                .map(|(v, _)| v),
            Some("42".to_string())
        );
        for unlimited in ["log.retention.hours=-1", "log.retention.minutes=-5"] {
            assert_eq!(
                config(unlimited)
                    .topic_config_value(&overrides, "retention.ms")
                    .map(|(v, _)| v),
                Some("-1".to_string()),
                "{unlimited}"
            );
        }

        let flush = config("log.flush.scheduler.interval.ms=900");
        assert_eq!(flush.log_config(&overrides).flush_ms, 900);
        let flush = config("log.flush.scheduler.interval.ms=900\nlog.flush.interval.ms=100");
        assert_eq!(flush.log_config(&overrides).flush_ms, 100);
    }

    #[test]
    fn topic_override_beats_broker_setting() {
        let broker = config(
            "log.segment.bytes=1048576\nmessage.max.bytes=2000\nlog.message.timestamp.type=LogAppendTime\n\
             log.flush.interval.messages=10\nlog.index.interval.bytes=100\nlog.index.size.max.bytes=4096",
        );
        let mut overrides = BTreeMap::new();
        let log = broker.log_config(&overrides);
        assert_eq!(log.segment_bytes, 1_048_576);
        assert_eq!(log.max_message_bytes, 2000);
        assert_eq!(log.message_timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(log.flush_messages, 10);
        assert_eq!(log.index_interval_bytes, 100);
        assert_eq!(log.segment_index_bytes, 4096);

        overrides.insert("segment.bytes".to_string(), "4096".to_string());
        overrides.insert(
            "message.timestamp.type".to_string(),
            "CreateTime".to_string(),
        );
        overrides.insert("segment.ms".to_string(), "1000".to_string());
        let log = broker.log_config(&overrides);
        assert_eq!(log.segment_bytes, 4096);
        assert_eq!(log.message_timestamp_type, TimestampType::CreateTime);
        assert_eq!(log.segment_ms, 1000);
        assert_eq!(log.max_message_bytes, 2000);

        // An invalid stored override (never accepted by validation) falls back, not panics.
        overrides.insert("segment.bytes".to_string(), "-1".to_string());
        assert_eq!(broker.log_config(&overrides).segment_bytes, 1_048_576);
    }
}
