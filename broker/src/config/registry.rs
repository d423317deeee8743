//! The static registry of Kafka configuration properties that Strata knows.
//!
//! Two tables: [`TOPIC_CONFIGS`] (what CreateTopics / AlterConfigs may set per topic) and
//! [`BROKER_CONFIGS`] (what `--config FILE` / `--set` may set for the broker). Names, types,
//! defaults and valid ranges are Kafka's, so that a Kafka user's knowledge and tools apply.
//!
//! Sources for the facts in these tables:
//! - Kafka broker configs: <https://kafka.apache.org/documentation/#brokerconfigs>
//! - Kafka topic configs (with the "Server Default Property" column that gives each topic
//!   config's broker synonym): <https://kafka.apache.org/documentation/#topicconfigs>
//! - KIP-1030 (Kafka 4.0 changed defaults: `message.timestamp.after.max.ms` is 1 hour):
//!   <https://cwiki.apache.org/confluence/display/KAFKA/KIP-1030%3A+Change+constraints+and+default+values+for+various+configurations>
//!
//! One deliberate difference: Kafka 4.0 (KIP-1030) raised the minimum of `segment.bytes` /
//! `log.segment.bytes` from 14 bytes to 1 MiB. Strata keeps Kafka 3.x's minimum of 14 bytes
//! (the size of the smallest legacy record) so that tests can exercise segment rolling with
//! tiny segments.

/// The data type of a property, as Kafka's `ConfigDef.Type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// The id DescribeConfigs v3+ puts in `config_type` (KIP-569: BOOLEAN=1, STRING=2, INT=3,
    /// SHORT=4, LONG=5, DOUBLE=6, LIST=7, CLASS=8, PASSWORD=9; 0 is UNKNOWN).
    pub fn describe_id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }

    /// Kafka's upper-case name of the type, used in error messages.
    pub fn kafka_name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// The valid values of a property (Kafka's "Valid Values" column).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Validator {
    /// Anything that parses as the property's type.
    Any,
    /// An integer no smaller than this (`[min,...]`).
    AtLeast(i64),
    /// A number in this closed range (`[min,...,max]`).
    Between(f64, f64),
    /// One of these strings, case-sensitive as in Kafka.
    OneOf(&'static [&'static str]),
    /// A non-empty comma-separated list whose every item is one of these strings.
    ListOf(&'static [&'static str]),
}

/// Whether Strata acts on a property today, or only stores and describes it.
///
/// Being honest about this matters: a user who sets `retention.ms` expects data to go away,
/// and `docs/configuration.md` must say that it does not yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The broker or the storage layer acts on the value.
    Enforced,
    /// Accepted, validated, stored and described; nothing acts on it yet.
    Stored,
}

/// A broker property that supplies the value of a topic property when the topic has no
/// override of its own, with the factor that converts the broker value into the topic unit
/// (`log.retention.hours` is in hours, `retention.ms` in milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synonym {
    pub name: &'static str,
    pub multiplier: i64,
}

/// One known property.
#[derive(Clone, Copy, Debug)]
pub struct ConfigKey {
    /// Kafka's name for it.
    pub name: &'static str,
    pub config_type: ConfigType,
    /// The default as Kafka documents it, in Kafka's string form; `None` when Kafka has none
    /// (e.g. `log.roll.ms`, which falls back to `log.roll.hours`).
    pub default: Option<&'static str>,
    pub validator: Validator,
    /// For a topic property: the broker properties that supply its value, in Kafka's
    /// precedence order (`log.retention.ms`, then `.minutes`, then `.hours`).
    /// For a broker property: the group of broker properties that set the same thing, in
    /// precedence order (DescribeConfigs lists them as synonyms); empty if it stands alone.
    pub synonyms: &'static [Synonym],
    pub status: Status,
    /// One sentence for DescribeConfigs `documentation` and `docs/configuration.md`.
    pub doc: &'static str,
}

impl ConfigKey {
    /// True for values that must never be echoed back (DescribeConfigs `is_sensitive`).
    pub fn is_sensitive(&self) -> bool {
        self.config_type == ConfigType::Password
    }
}

/// Kafka's `Long.MAX_VALUE`, the documented default of the "never" settings.
const LONG_MAX: &str = "9223372036854775807";
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

const COMPRESSION_TYPES: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];

const fn same(name: &'static str) -> Synonym {
    Synonym {
        name,
        multiplier: 1,
    }
}

const fn scaled(name: &'static str, multiplier: i64) -> Synonym {
    Synonym { name, multiplier }
}

#[allow(clippy::too_many_arguments)]
const fn key(
    name: &'static str,
    config_type: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    synonyms: &'static [Synonym],
    status: Status,
    doc: &'static str,
) -> ConfigKey {
    ConfigKey {
        name,
        config_type,
        default,
        validator,
        synonyms,
        status,
        doc,
    }
}

use ConfigType::{Boolean, Double, Int, List, Long, Short, String as Str};
use Status::{Enforced, Stored};
use Validator::{Any, AtLeast, Between, ListOf, OneOf};

const SEGMENT_MS_SYNONYMS: &[Synonym] = &[same("log.roll.ms"), scaled("log.roll.hours", HOUR_MS)];
const RETENTION_MS_SYNONYMS: &[Synonym] = &[
    same("log.retention.ms"),
    scaled("log.retention.minutes", MINUTE_MS),
    scaled("log.retention.hours", HOUR_MS),
];
const FLUSH_MS_SYNONYMS: &[Synonym] = &[
    same("log.flush.interval.ms"),
    same("log.flush.scheduler.interval.ms"),
];

/// Topic-level properties, sorted by name. Defaults and ranges from Kafka's "Topic Configs"
/// documentation (<https://kafka.apache.org/documentation/#topicconfigs>).
#[rustfmt::skip]
pub static TOPIC_CONFIGS: &[ConfigKey] = &[
    key("cleanup.policy", List, Some("delete"), ListOf(CLEANUP_POLICIES),
        &[same("log.cleanup.policy")], Enforced,
        "Retention policy for old segments: delete (by time/size), compact (keep the latest value per key), or both."),
    key("compression.type", Str, Some("producer"), OneOf(COMPRESSION_TYPES),
        &[same("compression.type")], Stored,
        "Final compression of stored batches; producer keeps whatever codec the producer used."),
    key("delete.retention.ms", Long, Some("86400000"), AtLeast(0),
        &[same("log.cleaner.delete.retention.ms")], Enforced,
        "How long tombstones are kept in a compacted topic once the cleaner has first kept them."),
    key("file.delete.delay.ms", Long, Some("60000"), AtLeast(0),
        &[same("log.segment.delete.delay.ms")], Stored,
        "Delay before a deleted segment's files are removed from the file system."),
    key("flush.messages", Long, Some(LONG_MAX), AtLeast(1),
        &[same("log.flush.interval.messages")], Enforced,
        "Force an fsync after this many messages; the default leaves durability to replication and the page cache."),
    key("flush.ms", Long, Some(LONG_MAX), AtLeast(0),
        FLUSH_MS_SYNONYMS, Enforced,
        "Force an fsync when the oldest unflushed message is this old (milliseconds)."),
    key("index.interval.bytes", Int, Some("4096"), AtLeast(0),
        &[same("log.index.interval.bytes")], Enforced,
        "Bytes of log between two entries of the sparse offset and time indexes."),
    key("max.compaction.lag.ms", Long, Some(LONG_MAX), AtLeast(1),
        &[same("log.cleaner.max.compaction.lag.ms")], Enforced,
        "Longest time a record may stay uncompacted."),
    key("max.message.bytes", Int, Some("1048588"), AtLeast(0),
        &[same("message.max.bytes")], Enforced,
        "Largest record batch accepted (after compression)."),
    key("message.timestamp.after.max.ms", Long, Some("3600000"), AtLeast(0),
        &[same("log.message.timestamp.after.max.ms")], Stored,
        "How far a CreateTime timestamp may lie in the future of the broker's clock."),
    key("message.timestamp.before.max.ms", Long, Some(LONG_MAX), AtLeast(0),
        &[same("log.message.timestamp.before.max.ms")], Stored,
        "How far a CreateTime timestamp may lie in the past of the broker's clock."),
    key("message.timestamp.type", Str, Some("CreateTime"), OneOf(TIMESTAMP_TYPES),
        &[same("log.message.timestamp.type")], Enforced,
        "Whether record timestamps are the producer's (CreateTime) or the broker's append time (LogAppendTime)."),
    key("min.cleanable.dirty.ratio", Double, Some("0.5"), Between(0.0, 1.0),
        &[same("log.cleaner.min.cleanable.ratio")], Enforced,
        "Share of uncompacted log above which the compactor cleans a log."),
    key("min.compaction.lag.ms", Long, Some("0"), AtLeast(0),
        &[same("log.cleaner.min.compaction.lag.ms")], Enforced,
        "Shortest time a record stays uncompacted."),
    key("min.insync.replicas", Int, Some("1"), AtLeast(1),
        &[same("min.insync.replicas")], Enforced,
        "Replicas that must acknowledge an acks=all write."),
    key("preallocate", Boolean, Some("false"), Any,
        &[same("log.preallocate")], Stored,
        "Preallocate segment files to their full size when they are created."),
    key("retention.bytes", Long, Some("-1"), Any,
        &[same("log.retention.bytes")], Enforced,
        "Largest size of a partition before old segments are deleted; -1 means no limit."),
    key("retention.ms", Long, Some("604800000"), AtLeast(-1),
        RETENTION_MS_SYNONYMS, Enforced,
        "Age after which old segments are deleted; -1 means no limit."),
    key("segment.bytes", Int, Some("1073741824"), AtLeast(14),
        &[same("log.segment.bytes")], Enforced,
        "Size at which the active segment is rolled."),
    key("segment.index.bytes", Int, Some("10485760"), AtLeast(4),
        &[same("log.index.size.max.bytes")], Enforced,
        "Size preallocated for each segment's offset and time index."),
    key("segment.ms", Long, Some("604800000"), AtLeast(1),
        SEGMENT_MS_SYNONYMS, Enforced,
        "Age at which the active segment is rolled even if it is not full."),
    key("unclean.leader.election.enable", Boolean, Some("false"), Any,
        &[same("unclean.leader.election.enable")], Enforced,
        "Allow an out-of-sync replica to become leader, at the price of losing data."),
];

/// Whether broker property `name` can be changed at run time with AlterConfigs
/// on the broker resources (stored in the metadata log): the broker defaults of
/// topic configs, which Kafka updates cluster-wide too (its "Dynamic Update
/// Mode: cluster-wide"). Everything else needs a restart (Kafka's read-only).
pub fn is_dynamic(name: &str) -> bool {
    TOPIC_CONFIGS
        .iter()
        .any(|key| key.synonyms.iter().any(|synonym| synonym.name == name))
}

/// Broker properties, sorted by name. Defaults and ranges from Kafka's "Broker Configs"
/// documentation (<https://kafka.apache.org/documentation/#brokerconfigs>), except
/// `node.id`, which Kafka requires and Strata defaults to 1.
#[rustfmt::skip]
pub static BROKER_CONFIGS: &[ConfigKey] = &[
    key("advertised.listeners", Str, None, Any, &[], Enforced,
        "NAME://HOST:PORT given to clients for a listener (default: the bound address); --advertise overrides it."),
    key("auto.create.topics.enable", Boolean, Some("true"), Any, &[], Enforced,
        "Create a topic when a client asks for metadata of, or produces to, a topic that does not exist."),
    key("auto.leader.rebalance.enable", Boolean, Some("true"), Any, &[], Enforced,
        "The active controller moves leadership back to preferred leaders (first replicas) when a broker's share of partitions led by others passes leader.imbalance.per.broker.percentage."),
    key("broker.heartbeat.interval.ms", Int, Some("2000"), AtLeast(1), &[], Enforced,
        "How often a broker tells the active controller it is alive."),
    key("broker.id", Int, None, AtLeast(0), &[], Enforced,
        "Legacy name of node.id; if both are set they must be equal."),
    key("broker.rack", Str, None, Any, &[], Enforced,
        "The rack (or zone) of this broker, given to clients in Metadata and DescribeCluster."),
    key("broker.session.timeout.ms", Int, Some("9000"), AtLeast(1), &[], Enforced,
        "A broker the active controller has not heard from for this long is fenced: left out of Metadata, its partitions without a leader."),
    key("compression.type", Str, Some("producer"), OneOf(COMPRESSION_TYPES), &[], Stored,
        "Broker default of the topic config compression.type."),
    key("controller.listener.names", Str, None, Any, &[], Enforced,
        "Names of the listeners the controllers use; left out of the client listeners."),
    key("controller.quorum.election.timeout.ms", Int, Some("1000"), AtLeast(10), &[], Enforced,
        "A voter that hears nothing from the quorum leader for this long (up to twice it, at random) starts an election; the leader's heartbeats come five times as often."),
    key("controller.quorum.voters", Str, None, Any, &[], Enforced,
        "ID@HOST:PORT of each controller voter (its controller listener); a broker-only node names the voters it follows."),
    key("default.replication.factor", Int, Some("1"), AtLeast(1), &[], Enforced,
        "Replication factor of automatically created topics and of CreateTopics requests that ask for the default (-1)."),
    key("delete.topic.enable", Boolean, Some("true"), Any, &[], Enforced,
        "Allow DeleteTopics; when false it fails with TOPIC_DELETION_DISABLED."),
    key("group.initial.rebalance.delay.ms", Int, Some("3000"), AtLeast(0), &[], Enforced,
        "How long the group coordinator waits for more members before the first rebalance of an empty group (KIP-134)."),
    key("group.max.session.timeout.ms", Int, Some("1800000"), AtLeast(1), &[], Enforced,
        "Longest session timeout a JoinGroup may ask for; longer gets INVALID_SESSION_TIMEOUT."),
    key("group.max.size", Int, Some("2147483647"), AtLeast(1), &[], Enforced,
        "Most members a group may have; more joins get GROUP_MAX_SIZE_REACHED."),
    key("group.min.session.timeout.ms", Int, Some("6000"), AtLeast(1), &[], Enforced,
        "Shortest session timeout a JoinGroup may ask for; shorter gets INVALID_SESSION_TIMEOUT."),
    key("leader.imbalance.check.interval.seconds", Long, Some("300"), AtLeast(1), &[], Enforced,
        "How often the active controller checks for leader imbalance (auto.leader.rebalance.enable)."),
    key("leader.imbalance.per.broker.percentage", Int, Some("10"), AtLeast(0), &[], Enforced,
        "The share of a broker's preferred partitions that others may lead before leadership is moved back."),
    key("listeners", Str, Some("PLAINTEXT://127.0.0.1:9092"), Any, &[], Enforced,
        "NAME://HOST:PORT to bind: one PLAINTEXT client listener, plus the controller listener of controller.listener.names (bound when there are several voters, and on a broker-only node); --listen overrides it."),
    key("log.cleaner.backoff.ms", Long, Some("15000"), AtLeast(0), &[], Enforced,
        "Pause between two rounds of the log cleaner over the compacted logs."),
    key("log.cleaner.delete.retention.ms", Long, Some("86400000"), AtLeast(0), &[], Enforced,
        "Broker default of delete.retention.ms."),
    key("log.cleaner.enable", Boolean, Some("true"), Any, &[], Enforced,
        "Run the log cleaner that compacts topics with cleanup.policy=compact."),
    key("log.cleaner.max.compaction.lag.ms", Long, Some(LONG_MAX), AtLeast(1), &[], Enforced,
        "Broker default of max.compaction.lag.ms."),
    key("log.cleaner.min.cleanable.ratio", Double, Some("0.5"), Between(0.0, 1.0), &[], Enforced,
        "Broker default of min.cleanable.dirty.ratio."),
    key("log.cleaner.min.compaction.lag.ms", Long, Some("0"), AtLeast(0), &[], Enforced,
        "Broker default of min.compaction.lag.ms."),
    key("log.cleaner.threads", Int, Some("1"), AtLeast(0), &[], Stored,
        "Number of cleaner threads; Strata cleans one log at a time on one thread."),
    key("log.cleanup.policy", List, Some("delete"), ListOf(CLEANUP_POLICIES), &[], Enforced,
        "Broker default of cleanup.policy."),
    key("log.dir", Str, Some("/tmp/kafka-logs"), Any, &[], Enforced,
        "Data directory when neither --data-dir nor log.dirs is given (Kafka's default is not used: Strata defaults to ./strata-data)."),
    key("log.dirs", List, None, Any, &[], Enforced,
        "Data directory when --data-dir is not given; only the first entry is used today."),
    key("log.flush.interval.messages", Long, Some(LONG_MAX), AtLeast(1), &[], Enforced,
        "Broker default of flush.messages."),
    key("log.flush.interval.ms", Long, None, AtLeast(0), FLUSH_MS_SYNONYMS, Enforced,
        "Broker default of flush.ms; falls back to log.flush.scheduler.interval.ms."),
    key("log.flush.scheduler.interval.ms", Long, Some(LONG_MAX), AtLeast(0), FLUSH_MS_SYNONYMS, Enforced,
        "Second-choice broker default of flush.ms."),
    key("log.index.interval.bytes", Int, Some("4096"), AtLeast(0), &[], Enforced,
        "Broker default of index.interval.bytes."),
    key("log.index.size.max.bytes", Int, Some("10485760"), AtLeast(4), &[], Enforced,
        "Broker default of segment.index.bytes."),
    key("log.message.timestamp.after.max.ms", Long, Some("3600000"), AtLeast(0), &[], Stored,
        "Broker default of message.timestamp.after.max.ms."),
    key("log.message.timestamp.before.max.ms", Long, Some(LONG_MAX), AtLeast(0), &[], Stored,
        "Broker default of message.timestamp.before.max.ms."),
    key("log.message.timestamp.type", Str, Some("CreateTime"), OneOf(TIMESTAMP_TYPES), &[], Enforced,
        "Broker default of message.timestamp.type."),
    key("log.preallocate", Boolean, Some("false"), Any, &[], Stored,
        "Broker default of preallocate."),
    key("log.retention.bytes", Long, Some("-1"), Any, &[], Enforced,
        "Broker default of retention.bytes."),
    key("log.retention.check.interval.ms", Long, Some("300000"), AtLeast(1), &[], Enforced,
        "How often the broker looks for segments to delete under the retention settings."),
    key("log.retention.hours", Int, Some("168"), Any, RETENTION_MS_SYNONYMS, Enforced,
        "Third-choice broker default of retention.ms, in hours."),
    key("log.retention.minutes", Int, None, Any, RETENTION_MS_SYNONYMS, Enforced,
        "Second-choice broker default of retention.ms, in minutes."),
    key("log.retention.ms", Long, None, AtLeast(-1), RETENTION_MS_SYNONYMS, Enforced,
        "Broker default of retention.ms; falls back to log.retention.minutes, then log.retention.hours."),
    key("log.roll.hours", Int, Some("168"), AtLeast(1), SEGMENT_MS_SYNONYMS, Enforced,
        "Second-choice broker default of segment.ms, in hours."),
    key("log.roll.ms", Long, None, AtLeast(1), SEGMENT_MS_SYNONYMS, Enforced,
        "Broker default of segment.ms; falls back to log.roll.hours."),
    key("log.segment.bytes", Int, Some("1073741824"), AtLeast(14), &[], Enforced,
        "Broker default of segment.bytes."),
    key("log.segment.delete.delay.ms", Long, Some("60000"), AtLeast(0), &[], Stored,
        "Broker default of file.delete.delay.ms."),
    key("message.max.bytes", Int, Some("1048588"), AtLeast(0), &[], Enforced,
        "Broker default of max.message.bytes."),
    key("min.insync.replicas", Int, Some("1"), AtLeast(1), &[], Enforced,
        "Broker default of the topic config min.insync.replicas."),
    key("node.id", Int, Some("1"), AtLeast(0), &[], Enforced,
        "This broker's id in metadata responses (Kafka requires it; Strata defaults to 1)."),
    key("num.partitions", Int, Some("1"), AtLeast(1), &[], Enforced,
        "Partition count of automatically created topics and of CreateTopics requests that ask for the default (-1)."),
    key("offset.metadata.max.bytes", Int, Some("4096"), AtLeast(0), &[], Enforced,
        "Longest metadata string an OffsetCommit may carry; longer gets OFFSET_METADATA_TOO_LARGE."),
    key("offsets.commit.timeout.ms", Int, Some("5000"), AtLeast(1), &[], Enforced,
        "How long an offset commit or a group's new assignment waits for every in-sync replica of its __consumer_offsets partition; COORDINATOR_NOT_AVAILABLE (SyncGroup: REBALANCE_IN_PROGRESS) after."),
    key("offsets.retention.check.interval.ms", Long, Some("600000"), AtLeast(1), &[], Enforced,
        "How often the group coordinator looks for committed offsets to expire."),
    key("offsets.retention.minutes", Int, Some("10080"), AtLeast(1), &[], Enforced,
        "How long committed offsets of an empty group are kept (from when the group became empty, or from the commit for groups without members ever)."),
    key("offsets.topic.num.partitions", Int, Some("50"), AtLeast(1), &[], Enforced,
        "Partition count of the internal __consumer_offsets topic, fixed when it is created; do not change it once groups exist."),
    key("offsets.topic.replication.factor", Short, Some("3"), AtLeast(1), &[], Stored,
        "Replication factor of __consumer_offsets when it is created: this many, or every registered broker when there are fewer."),
    key("offsets.topic.segment.bytes", Int, Some("104857600"), AtLeast(1), &[], Enforced,
        "segment.bytes of __consumer_offsets, kept small so that compaction can run."),
    key("process.roles", Str, Some("broker,controller"), Any, &[], Enforced,
        "What this node is; this release runs broker,controller (a combined single node)."),
    key("replica.fetch.backoff.ms", Int, Some("1000"), AtLeast(0), &[], Enforced,
        "How long a replica fetcher waits after an error from the leader or a failed connection."),
    key("replica.fetch.max.bytes", Int, Some("1048576"), AtLeast(0), &[], Enforced,
        "Record bytes a follower asks for per partition in one fetch (a larger first batch still comes whole)."),
    key("replica.fetch.response.max.bytes", Int, Some("10485760"), AtLeast(0), &[], Enforced,
        "Record bytes a follower asks for in one fetch over all partitions."),
    key("replica.fetch.wait.max.ms", Int, Some("500"), AtLeast(0), &[], Enforced,
        "How long a follower's fetch waits at the leader for new records; at most replica.socket.timeout.ms."),
    key("replica.lag.time.max.ms", Long, Some("30000"), AtLeast(1), &[], Enforced,
        "A follower that has not caught up with its leader for this long leaves the in-sync replicas."),
    key("replica.socket.timeout.ms", Int, Some("30000"), AtLeast(1), &[], Enforced,
        "A replica fetcher waiting this long for the leader's answer drops the connection and opens another."),
    key("socket.request.max.bytes", Int, Some("104857600"), AtLeast(1), &[], Enforced,
        "Largest request frame accepted; a larger frame closes the connection."),
    key("unclean.leader.election.enable", Boolean, Some("false"), Any, &[], Enforced,
        "Broker default of the topic config unclean.leader.election.enable (the active controller's counts)."),
];

/// The topic property called `name`, if Strata knows it.
pub fn topic_key(name: &str) -> Option<&'static ConfigKey> {
    TOPIC_CONFIGS.iter().find(|key| key.name == name)
}

/// The broker property called `name`, if Strata knows it.
pub fn broker_key(name: &str) -> Option<&'static ConfigKey> {
    BROKER_CONFIGS.iter().find(|key| key.name == name)
}

/// A parsed property value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    /// Int, Short and Long, all widened to i64.
    Integer(i64),
    Double(f64),
    /// String, Class and Password.
    Text(String),
    List(Vec<String>),
}

/// Parse `raw` as `key`'s type and check it against `key`'s valid values.
///
/// The error is the reason only (the caller knows the key and value), worded like Kafka's
/// `ConfigException` messages so that users can search for them.
pub fn parse_value(key: &ConfigKey, raw: &str) -> Result<Value, String> {
    let trimmed = raw.trim();
    let not_a = || format!("Not a number of type {}", key.config_type.kafka_name());
    let value = match key.config_type {
        ConfigType::Boolean => {
            if trimmed.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if trimmed.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                return Err("Expected value to be either true or false".to_string());
            }
        }
        ConfigType::Int => Value::Integer(trimmed.parse::<i32>().map_err(|_| not_a())?.into()),
        ConfigType::Short => Value::Integer(trimmed.parse::<i16>().map_err(|_| not_a())?.into()),
        ConfigType::Long => Value::Integer(trimmed.parse::<i64>().map_err(|_| not_a())?),
        ConfigType::Double => {
            let number = trimmed.parse::<f64>().map_err(|_| not_a())?;
            if !number.is_finite() {
                return Err(not_a());
            }
            Value::Double(number)
        }
        ConfigType::String | ConfigType::Class | ConfigType::Password => {
            Value::Text(trimmed.to_string())
        }
        ConfigType::List => Value::List(split_list(trimmed)),
    };
    check(key.validator, &value)?;
    Ok(value)
}

/// Split a Kafka LIST value: comma-separated, items trimmed, the empty string is no items.
pub fn split_list(raw: &str) -> Vec<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(',').map(|item| item.trim().to_string()).collect()
}

fn check(validator: Validator, value: &Value) -> Result<(), String> {
    match (validator, value) {
        (Validator::Any, _) => Ok(()),
        (Validator::AtLeast(min), Value::Integer(number)) if *number < min => {
            Err(format!("Value must be at least {min}"))
        }
        (Validator::Between(min, max), Value::Double(number)) if *number < min || *number > max => {
            Err(format!("Value must be between {min} and {max}"))
        }
        (Validator::OneOf(allowed), Value::Text(text)) if !allowed.contains(&text.as_str()) => {
            Err(format!("String must be one of: {}", allowed.join(", ")))
        }
        (Validator::ListOf(allowed), Value::List(items)) => {
            if items.is_empty() {
                return Err(format!(
                    "List must not be empty; valid items: {}",
                    allowed.join(", ")
                ));
            }
            match items.iter().find(|item| !allowed.contains(&item.as_str())) {
                Some(item) => Err(format!(
                    "Invalid value {item}; list items must be one of: {}",
                    allowed.join(", ")
                )),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_is_valid() {
        for key in TOPIC_CONFIGS.iter().chain(BROKER_CONFIGS) {
            if let Some(default) = key.default {
                assert!(
                    parse_value(key, default).is_ok(),
                    "default of {} is invalid",
                    key.name
                );
            }
        }
    }

    #[test]
    fn tables_are_sorted_and_unique() {
        for table in [TOPIC_CONFIGS, BROKER_CONFIGS] {
            for pair in table.windows(2) {
                assert!(pair[0].name < pair[1].name, "{} out of order", pair[1].name);
            }
        }
    }

    #[test]
    fn every_topic_synonym_is_a_known_broker_property() {
        for key in TOPIC_CONFIGS {
            assert!(
                !key.synonyms.is_empty(),
                "{} has no broker synonym",
                key.name
            );
            for synonym in key.synonyms {
                let broker = broker_key(synonym.name);
                assert!(
                    broker.is_some(),
                    "{} is not a broker property",
                    synonym.name
                );
            }
        }
        for key in BROKER_CONFIGS {
            for synonym in key.synonyms {
                assert!(broker_key(synonym.name).is_some(), "{}", synonym.name);
            }
        }
    }

    #[test]
    fn topic_default_equals_converted_broker_default() {
        // The topic default must agree with what the broker synonyms give when nothing is set,
        // or DescribeConfigs and log_config() would disagree about the default.
        for key in TOPIC_CONFIGS {
            let from_broker = key.synonyms.iter().find_map(|synonym| {
                let broker = broker_key(synonym.name)?;
                let default = broker.default?;
                if synonym.multiplier == 1 {
                    Some(default.to_string())
                } else {
                    let number: i64 = default.parse().ok()?;
                    Some((number * synonym.multiplier).to_string())
                }
            });
            assert_eq!(from_broker.as_deref(), key.default, "{}", key.name);
        }
    }

    #[test]
    fn parse_errors_are_worded_like_kafka() {
        let segment_bytes = topic_key("segment.bytes").expect("known");
        assert_eq!(
            parse_value(segment_bytes, "abc"),
            Err("Not a number of type INT".to_string())
        );
        assert_eq!(
            parse_value(segment_bytes, "13"),
            Err("Value must be at least 14".to_string())
        );
        assert_eq!(
            parse_value(segment_bytes, "3000000000"),
            Err("Not a number of type INT".to_string())
        );
        assert_eq!(parse_value(segment_bytes, " 14 "), Ok(Value::Integer(14)));
        let ratio = topic_key("min.cleanable.dirty.ratio").expect("known");
        assert!(parse_value(ratio, "1.5").is_err());
        assert!(parse_value(ratio, "NaN").is_err());
        let policy = topic_key("cleanup.policy").expect("known");
        assert_eq!(
            parse_value(policy, "compact, delete"),
            Ok(Value::List(vec!["compact".into(), "delete".into()]))
        );
        assert!(parse_value(policy, "").is_err());
        assert!(parse_value(policy, "compact,forever").is_err());
        let preallocate = topic_key("preallocate").expect("known");
        assert_eq!(parse_value(preallocate, "TRUE"), Ok(Value::Bool(true)));
        assert!(parse_value(preallocate, "yes").is_err());
    }
}
