//! `strata topic ...`: create, list, describe, delete, alter the configs of and
//! add partitions to topics on any Kafka-compatible broker, through
//! [`crate::client::Client`].
//!
//! Output is a table (or one confirmation line) on stdout; a failure is one
//! `error: ...` line on stderr naming the cause — the broker's error code name
//! and message when the broker refused — and exit code 1.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{broker_error, finish, Client, REQUEST_TIMEOUT_MS};

/// ConfigResource type of a topic (KIP-133).
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs `config_source`: set on the topic itself (not a default).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
/// IncrementalAlterConfigs operations (KIP-339).
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

#[derive(clap::Args)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand)]
enum TopicCommand {
    /// Create a topic.
    ///
    /// Example: strata topic create orders --partitions 3 --config retention.ms=86400000
    Create {
        /// The topic's name.
        name: String,
        /// Number of partitions; the broker's num.partitions when omitted.
        #[arg(long)]
        partitions: Option<i32>,
        /// Replicas per partition; the broker's default.replication.factor when omitted.
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config KEY=VALUE; may be repeated.
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics with their partition counts.
    ///
    /// Example: strata topic list --bootstrap kafka-1:9092
    List,
    /// Show a topic's partitions (leader, replicas, ISR) and its non-default configs.
    ///
    /// Example: strata topic describe orders
    Describe {
        /// The topic's name.
        name: String,
    },
    /// Delete a topic and all its data.
    ///
    /// Example: strata topic delete orders
    Delete {
        /// The topic's name.
        name: String,
    },
    /// Set or remove topic configs (removed ones fall back to the broker default).
    ///
    /// Example: strata topic alter-config orders --set retention.ms=3600000 --delete cleanup.policy
    AlterConfig {
        /// The topic's name.
        name: String,
        /// Set KEY to VALUE; may be repeated.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove KEY's topic-level value; may be repeated.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Grow a topic to a total number of partitions (Kafka cannot shrink one).
    ///
    /// Example: strata topic add-partitions orders --total 6
    AddPartitions {
        /// The topic's name.
        name: String,
        /// The partition count the topic should have afterwards.
        #[arg(long)]
        total: i32,
    },
}

/// Runs one `strata topic` command against `bootstrap`; errors become one line on stderr.
pub fn run(bootstrap: &str, args: &TopicArgs) -> ExitCode {
    finish(execute(bootstrap, &args.command))
}

/// Carries out a command and returns what it prints on success.
fn execute(bootstrap: &str, command: &TopicCommand) -> Result<String> {
    // Arguments that need no broker are checked before connecting.
    if let TopicCommand::AlterConfig { set, delete, .. } = command {
        if set.is_empty() && delete.is_empty() {
            bail!("alter-config needs at least one --set KEY=VALUE or --delete KEY");
        }
    }
    let mut client = crate::client::connect(bootstrap)?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => create(&mut client, name, *partitions, *replication_factor, configs),
        TopicCommand::List => list(&mut client),
        TopicCommand::Describe { name } => describe(&mut client, name),
        TopicCommand::Delete { name } => delete(&mut client, name),
        TopicCommand::AlterConfig { name, set, delete } => {
            alter_config(&mut client, name, set, delete)
        }
        TopicCommand::AddPartitions { name, total } => add_partitions(&mut client, name, *total),
    }
}

fn create(
    client: &mut Client,
    name: &str,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    configs: &[(String, String)],
) -> Result<String> {
    let topic = CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions.unwrap_or(-1))
        .with_replication_factor(replication_factor.unwrap_or(-1))
        .with_configs(
            configs
                .iter()
                .map(|(key, value)| {
                    CreatableTopicConfig::default()
                        .with_name(StrBytes::from_string(key.clone()))
                        .with_value(Some(StrBytes::from_string(value.clone())))
                })
                .collect(),
        );
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(REQUEST_TIMEOUT_MS);
    let response = client.send(&request)?;
    let result = response
        .topics
        .iter()
        .find(|t| t.name.as_str() == name)
        .with_context(|| format!("the broker's CreateTopics answer has no topic {name:?}"))?;
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("cannot create topic {name:?}"))?;
    // v5+ answers report what the broker chose for defaults; older ones -1.
    let partitions = Some(result.num_partitions)
        .filter(|&n| n > 0)
        .or(partitions)
        .map_or_else(|| "default".to_string(), |n| n.to_string());
    let replication = Some(result.replication_factor)
        .filter(|&n| n > 0)
        .or(replication_factor)
        .map_or_else(|| "default".to_string(), |n| n.to_string());
    Ok(format!(
        "created topic {name} (partitions: {partitions}, replication factor: {replication})\n"
    ))
}

fn list(client: &mut Client) -> Result<String> {
    let request = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    let response = client.send(&request)?;
    let mut rows: Vec<Vec<String>> = response
        .topics
        .iter()
        .filter_map(|topic| {
            let name = topic.name.as_ref()?.as_str().to_string();
            Some(vec![
                name,
                topic.partitions.len().to_string(),
                replication_factor(topic).to_string(),
            ])
        })
        .collect();
    rows.sort();
    if rows.is_empty() {
        return Ok("no topics\n".to_string());
    }
    Ok(render_table(&["TOPIC", "PARTITIONS", "REPLICATION"], &rows))
}

fn describe(client: &mut Client, name: &str) -> Result<String> {
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(name)))
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.send(&request)?;
    let topic = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(name))
        .with_context(|| format!("unknown topic {name:?}"))?;
    broker_error(topic.error_code, None)
        .with_context(|| format!("cannot describe topic {name:?}"))?;

    let request =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configuration_keys(None)]);
    let response = client.send(&request)?;
    let result = response
        .results
        .first()
        .context("the broker's DescribeConfigs answer is empty")?;
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("configs of topic {name:?}"))?;
    let mut configs: Vec<Vec<String>> = result
        .configs
        .iter()
        .filter(|c| c.config_source == DYNAMIC_TOPIC_CONFIG)
        .map(|c| {
            let value = if c.is_sensitive {
                "(sensitive)".to_string()
            } else {
                c.value
                    .as_ref()
                    .map_or("(null)", |v| v.as_str())
                    .to_string()
            };
            vec![c.name.as_str().to_string(), value]
        })
        .collect();
    configs.sort();

    let mut partitions: Vec<_> = topic.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition_index);
    let rows: Vec<Vec<String>> = partitions
        .iter()
        .map(|p| {
            let leader = if p.leader_id.0 < 0 {
                "none".to_string()
            } else {
                p.leader_id.0.to_string()
            };
            // What needs an operator: no leader (offline: no reads or
            // writes), or fewer in-sync replicas than replicas.
            let status = if p.leader_id.0 < 0 {
                "offline"
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                "under-replicated"
            } else {
                "in-sync"
            };
            vec![
                p.partition_index.to_string(),
                leader,
                join_ids(&p.replica_nodes),
                join_ids(&p.isr_nodes),
                status.to_string(),
            ]
        })
        .collect();

    let mut out = format!(
        "topic:              {name}\ntopic id:           {}\npartitions:         {}\nreplication factor: {}\n\n",
        topic.topic_id,
        topic.partitions.len(),
        replication_factor(topic)
    );
    out.push_str(&render_table(
        &["PARTITION", "LEADER", "REPLICAS", "ISR", "STATUS"],
        &rows,
    ));
    out.push('\n');
    if configs.is_empty() {
        out.push_str("configs: all defaults\n");
    } else {
        out.push_str(&render_table(&["CONFIG", "VALUE"], &configs));
    }
    Ok(out)
}

fn delete(client: &mut Client, name: &str) -> Result<String> {
    let version = client.version_for::<DeleteTopicsRequest>()?;
    let request = DeleteTopicsRequest::default().with_timeout_ms(REQUEST_TIMEOUT_MS);
    // v6 (KIP-516) names topics in `topics`, older versions in `topic_names`.
    let request = if version >= 6 {
        request.with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name)))
        ])
    } else {
        request.with_topic_names(vec![topic_name(name)])
    };
    let response = client.send(&request)?;
    let result = response
        .responses
        .first()
        .context("the broker's DeleteTopics answer is empty")?;
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("cannot delete topic {name:?}"))?;
    Ok(format!("deleted topic {name}\n"))
}

fn alter_config(
    client: &mut Client,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> Result<String> {
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(key, value)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(key.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(value.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|key| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(key.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let response = client.send(&request)?;
    let result = response
        .responses
        .first()
        .context("the broker's IncrementalAlterConfigs answer is empty")?;
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("cannot alter configs of topic {name:?}"))?;
    let mut out = String::new();
    for (key, value) in set {
        out.push_str(&format!("set {key}={value} on topic {name}\n"));
    }
    for key in delete {
        out.push_str(&format!("deleted {key} from topic {name}\n"));
    }
    Ok(out)
}

fn add_partitions(client: &mut Client, name: &str, total: i32) -> Result<String> {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(total)
            .with_assignments(None)])
        .with_timeout_ms(REQUEST_TIMEOUT_MS);
    let response = client.send(&request)?;
    let result = response
        .results
        .first()
        .context("the broker's CreatePartitions answer is empty")?;
    broker_error(result.error_code, result.error_message.as_ref())
        .with_context(|| format!("cannot add partitions to topic {name:?}"))?;
    Ok(format!("topic {name} now has {total} partitions\n"))
}

/// Replicas of the first partition: Kafka gives every partition of a topic the
/// same replication factor.
fn replication_factor(topic: &MetadataResponseTopic) -> usize {
    topic
        .partitions
        .iter()
        .min_by_key(|p| p.partition_index)
        .map_or(0, |p| p.replica_nodes.len())
}

fn join_ids(ids: &[kafka_protocol::messages::BrokerId]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter()
        .map(|id| id.0.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Parses `KEY=VALUE` for `--config` and `--set`.
fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Left-aligned columns two spaces apart, headers first, no trailing spaces.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(&widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_align() {
        let rows = vec![
            vec!["orders".to_string(), "3".to_string()],
            vec!["a".to_string(), "12".to_string()],
        ];
        assert_eq!(
            render_table(&["TOPIC", "PARTITIONS"], &rows),
            "TOPIC   PARTITIONS\norders  3\na       12\n"
        );
    }

    #[test]
    fn key_value_needs_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_key_value("retention.ms=1=2"),
            Ok(("retention.ms".to_string(), "1=2".to_string()))
        );
        assert!(parse_key_value("retention.ms").is_err());
        assert!(parse_key_value("=1").is_err());
    }
}
