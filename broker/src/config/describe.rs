//! DescribeConfigs answers, as pure functions from the configuration to `kafka-protocol`
//! structs. The handler wraps the entries in a `DescribeConfigsResult` with the resource
//! type and name; the encoder drops the fields a request version does not have.
//!
//! What Kafka reports, and so what we report (KIP-226 for sources and synonyms, KIP-569 for
//! types and documentation):
//! - `config_source` of each entry: where its value came from.
//! - `synonyms` (when asked for), highest precedence first: the topic override, then every
//!   broker property that could supply the value and is set, then the defaults of those
//!   broker properties.
//! - `read_only`: topic configs can be altered; broker configs cannot (no dynamic broker
//!   configs yet).
//! - A requested key that does not exist is left out, not an error.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsSynonym,
};
use kafka_protocol::protocol::StrBytes;

use super::registry::{self, ConfigKey, Synonym, BROKER_CONFIGS, TOPIC_CONFIGS};
use super::BrokerConfig;

/// Kafka's `ConfigSource` ids in DescribeConfigs responses (KIP-226). Strata produces only
/// the three that exist without dynamic broker configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    /// 1: set on the topic (CreateTopics / AlterConfigs).
    DynamicTopic,
    /// 2: set on this broker with AlterConfigs (kept in the metadata log).
    DynamicBroker,
    /// 3: set on the cluster-wide default broker resource with AlterConfigs.
    DynamicDefaultBroker,
    /// 4: set in the broker's static configuration (`--config FILE` / `--set`).
    StaticBroker,
    /// 5: the built-in default.
    Default,
}

impl ConfigSource {
    /// The id on the wire: UNKNOWN=0, DYNAMIC_TOPIC_CONFIG=1, DYNAMIC_BROKER_CONFIG=2,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG=3, STATIC_BROKER_CONFIG=4, DEFAULT_CONFIG=5.
    pub fn id(self) -> i8 {
        match self {
            ConfigSource::DynamicTopic => 1,
            ConfigSource::DynamicBroker => 2,
            ConfigSource::DynamicDefaultBroker => 3,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// DescribeConfigs entries for a topic with these overrides: every topic config Strata
/// knows (or only those in `keys`), with its effective value and where that came from.
pub fn describe_topic(
    broker: &BrokerConfig,
    topic_overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .filter(|key| is_requested(key, keys))
        .map(|key| {
            let (value, source) = broker.resolve_topic(key, topic_overrides);
            let synonyms = if include_synonyms {
                let mut synonyms = Vec::new();
                if let Some(value) = topic_overrides.get(key.name) {
                    if source == ConfigSource::DynamicTopic {
                        synonyms.push(synonym(key.name, Some(value), ConfigSource::DynamicTopic));
                    }
                }
                synonyms.extend(broker_synonyms(broker, key.synonyms));
                synonyms
            } else {
                Vec::new()
            };
            entry(
                key,
                Some(value),
                source,
                false,
                synonyms,
                include_documentation,
            )
        })
        .collect()
}

/// DescribeConfigs entries for this broker: every broker config Strata knows (or only
/// those in `keys`), as set in the static configuration or defaulted.
pub fn describe_broker(
    broker: &BrokerConfig,
    keys: Option<&[String]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    BROKER_CONFIGS
        .iter()
        .filter(|key| is_requested(key, keys))
        .map(|key| {
            let (value, source) = match broker.lookup(key.name) {
                Some((value, source)) => (Some(value.trim().to_string()), source),
                None => (key.default.map(str::to_string), ConfigSource::Default),
            };
            let synonyms = if include_synonyms {
                let alone = [Synonym {
                    name: key.name,
                    multiplier: 1,
                }];
                let group: &[Synonym] = if key.synonyms.is_empty() {
                    &alone
                } else {
                    key.synonyms
                };
                broker_synonyms(broker, group)
            } else {
                Vec::new()
            };
            // Dynamic ones can change with AlterConfigs; the rest need a restart.
            let read_only = !registry::is_dynamic(key.name);
            entry(
                key,
                value,
                source,
                read_only,
                synonyms,
                include_documentation,
            )
        })
        .collect()
}

/// DescribeConfigs of the cluster-wide default broker resource (name ""): only
/// the dynamic defaults that are set, with their own values, as Kafka lists
/// them (`kafka-configs.sh --entity-type brokers --entity-default --describe`).
pub fn describe_broker_defaults(
    broker: &BrokerConfig,
    keys: Option<&[String]>,
    include_synonyms: bool,
    include_documentation: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let defaults_only =
        BrokerConfig::new().with_dynamic(broker.dynamic_defaults().clone(), BTreeMap::new());
    describe_broker(
        &defaults_only,
        keys,
        include_synonyms,
        include_documentation,
    )
    .into_iter()
    .filter(|entry| entry.config_source == ConfigSource::DynamicDefaultBroker.id())
    .collect()
}

fn is_requested(key: &ConfigKey, keys: Option<&[String]>) -> bool {
    keys.is_none_or(|keys| keys.iter().any(|wanted| wanted == key.name))
}

/// The synonyms a group of broker properties contributes, in precedence order: those set
/// statically (in the group's order), then those with a default (in the group's order).
/// Values are as the broker property has them (hours stay hours), as Kafka reports them.
fn broker_synonyms(broker: &BrokerConfig, group: &[Synonym]) -> Vec<DescribeConfigsSynonym> {
    let set = group.iter().flat_map(|member| {
        broker
            .lookup_all(member.name)
            .into_iter()
            .map(|(value, source)| synonym(member.name, Some(value.trim()), source))
    });
    let defaults = group.iter().filter_map(|member| {
        let default = registry::broker_key(member.name)?.default?;
        Some(synonym(member.name, Some(default), ConfigSource::Default))
    });
    set.chain(defaults).collect()
}

fn synonym(
    name: &'static str,
    value: Option<&str>,
    source: ConfigSource,
) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(StrBytes::from_static_str(name))
        .with_value(value.map(|value| StrBytes::from_string(value.to_string())))
        .with_source(source.id())
}

fn entry(
    key: &ConfigKey,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<DescribeConfigsSynonym>,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    // Sensitive values are never sent back, as in Kafka.
    let value = if key.is_sensitive() { None } else { value };
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(key.name))
        .with_value(value.map(StrBytes::from_string))
        .with_read_only(read_only)
        .with_config_source(source.id())
        .with_is_sensitive(key.is_sensitive())
        .with_synonyms(synonyms)
        .with_config_type(key.config_type.describe_id())
        .with_documentation(include_documentation.then(|| StrBytes::from_static_str(key.doc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(
        entries: &'a [DescribeConfigsResourceResult],
        name: &str,
    ) -> &'a DescribeConfigsResourceResult {
        entries
            .iter()
            .find(|entry| entry.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} not described"))
    }

    fn value(entry: &DescribeConfigsResourceResult) -> Option<&str> {
        entry.value.as_ref().map(|value| value.as_str())
    }

    fn synonyms(entry: &DescribeConfigsResourceResult) -> Vec<(String, Option<String>, i8)> {
        entry
            .synonyms
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    s.value.as_ref().map(|v| v.to_string()),
                    s.source,
                )
            })
            .collect()
    }

    fn syn(name: &str, value: &str, source: i8) -> (String, Option<String>, i8) {
        (name.to_string(), Some(value.to_string()), source)
    }

    #[test]
    fn topic_sources_and_synonyms() {
        let broker = BrokerConfig::from_properties("log.roll.hours=2\nlog.segment.bytes=1048576")
            .expect("config");
        let mut overrides = BTreeMap::new();
        overrides.insert("segment.bytes".to_string(), "2097152".to_string());
        let entries = describe_topic(&broker, &overrides, None, true, true);
        assert_eq!(entries.len(), TOPIC_CONFIGS.len());

        let segment_bytes = find(&entries, "segment.bytes");
        assert_eq!(value(segment_bytes), Some("2097152"));
        assert_eq!(segment_bytes.config_source, 1);
        assert!(!segment_bytes.read_only);
        assert!(!segment_bytes.is_sensitive);
        assert_eq!(segment_bytes.config_type, 3);
        assert!(segment_bytes.documentation.is_some());
        assert_eq!(
            synonyms(segment_bytes),
            vec![
                syn("segment.bytes", "2097152", 1),
                syn("log.segment.bytes", "1048576", 4),
                syn("log.segment.bytes", "1073741824", 5),
            ]
        );

        let segment_ms = find(&entries, "segment.ms");
        assert_eq!(value(segment_ms), Some("7200000"));
        assert_eq!(segment_ms.config_source, 4);
        assert_eq!(segment_ms.config_type, 5);
        assert_eq!(
            synonyms(segment_ms),
            vec![
                syn("log.roll.hours", "2", 4),
                syn("log.roll.hours", "168", 5)
            ]
        );

        let retention = find(&entries, "retention.ms");
        assert_eq!(value(retention), Some("604800000"));
        assert_eq!(retention.config_source, 5);
        assert_eq!(
            synonyms(retention),
            vec![syn("log.retention.hours", "168", 5)]
        );

        let policy = find(&entries, "cleanup.policy");
        assert_eq!(policy.config_type, 7);
        assert_eq!(value(policy), Some("delete"));
    }

    #[test]
    fn topic_keys_filter_and_flags() {
        let broker = BrokerConfig::new();
        let keys = vec![
            "retention.ms".to_string(),
            "no.such.key".to_string(),
            "min.cleanable.dirty.ratio".to_string(),
        ];
        let entries = describe_topic(&broker, &BTreeMap::new(), Some(&keys), false, false);
        assert_eq!(entries.len(), 2);
        for entry in &entries {
            assert!(entry.synonyms.is_empty());
            assert!(entry.documentation.is_none());
            assert_eq!(entry.config_source, 5);
        }
        assert_eq!(find(&entries, "min.cleanable.dirty.ratio").config_type, 6);
    }

    #[test]
    fn broker_sources_and_synonyms() {
        let broker = BrokerConfig::from_properties("num.partitions=6\nlog.retention.minutes=30")
            .expect("config");
        let entries = describe_broker(&broker, None, true, false);
        assert_eq!(entries.len(), BROKER_CONFIGS.len());

        let partitions = find(&entries, "num.partitions");
        assert_eq!(value(partitions), Some("6"));
        assert_eq!(partitions.config_source, 4);
        assert!(partitions.read_only);
        assert_eq!(
            synonyms(partitions),
            vec![syn("num.partitions", "6", 4), syn("num.partitions", "1", 5)]
        );

        let auto_create = find(&entries, "auto.create.topics.enable");
        assert_eq!(value(auto_create), Some("true"));
        assert_eq!(auto_create.config_source, 5);
        assert_eq!(auto_create.config_type, 1);

        let retention_ms = find(&entries, "log.retention.ms");
        assert_eq!(value(retention_ms), None);
        assert_eq!(retention_ms.config_source, 5);
        assert_eq!(
            synonyms(retention_ms),
            vec![
                syn("log.retention.minutes", "30", 4),
                syn("log.retention.hours", "168", 5)
            ]
        );

        let node = find(&entries, "node.id");
        assert_eq!(value(node), Some("1"));

        // A topic config name is not a broker config: omitted.
        let keys = vec!["segment.bytes".to_string(), "node.id".to_string()];
        let entries = describe_broker(&broker, Some(&keys), false, false);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name.as_str(), "node.id");
    }

    #[test]
    fn encodes_at_every_supported_version() {
        use kafka_protocol::messages::describe_configs_response::{
            DescribeConfigsResponse, DescribeConfigsResult,
        };
        use kafka_protocol::protocol::Encodable;
        let broker = BrokerConfig::new();
        let configs = describe_topic(&broker, &BTreeMap::new(), None, true, true);
        let response =
            DescribeConfigsResponse::default().with_results(vec![DescribeConfigsResult::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(configs)]);
        for version in 1..=4 {
            let mut buffer = bytes::BytesMut::new();
            response.encode(&mut buffer, version).expect("encodes");
            assert!(!buffer.is_empty());
        }
    }
}
