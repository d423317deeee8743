//! `strata cluster info`: the cluster id, the controller and the brokers, as the
//! bootstrap broker reports them.
//!
//! DescribeCluster (KIP-700, Kafka 2.8+) is asked when the broker supports it;
//! older brokers get a Metadata request, which carries the same facts. The
//! metadata quorum (leader, epoch, voters and their lag) comes from
//! DescribeQuorum (KIP-595) where the broker answers it.

use std::process::ExitCode;

use anyhow::Result;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeQuorumRequest, MetadataRequest, TopicName,
};

use crate::client::{broker_error, finish, Client};
use crate::topic::render_table;

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, the controller and every broker's address.
    ///
    /// Example: strata cluster info --bootstrap 127.0.0.1:9092
    Info,
    /// Elect partition leaders (Kafka's kafka-leader-election.sh): give
    /// leadership back to preferred leaders (each partition's first replica,
    /// when it is in sync), or with --unclean elect an out-of-sync replica
    /// where no in-sync one is alive (what only the lost replicas held is
    /// lost). Every partition unless --topic is given.
    ///
    /// Example: strata cluster elect-leaders --topic orders --partition 0
    ElectLeaders(ElectArgs),
}

#[derive(clap::Args)]
struct ElectArgs {
    /// Only this topic's partitions.
    #[arg(long)]
    topic: Option<String>,
    /// Only this partition of --topic.
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
    /// Unclean election instead of preferred.
    #[arg(long)]
    unclean: bool,
}

/// What `cluster info` prints, from whichever request answered.
struct ClusterInfo {
    cluster_id: Option<String>,
    controller_id: i32,
    brokers: Vec<BrokerRow>,
    /// The metadata quorum, when the broker answers DescribeQuorum.
    quorum: Option<Quorum>,
}

/// One broker: node id, host, port, rack, fenced (`None`: the broker
/// cannot say).
type BrokerRow = (i32, String, i32, Option<String>, Option<bool>);

/// The metadata quorum as DescribeQuorum reports it.
struct Quorum {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    /// voter id, log end offset
    voters: Vec<(i32, i64)>,
}

/// Runs one `strata cluster` command against `bootstrap`; errors become one line on stderr.
pub fn run(bootstrap: &str, args: &ClusterArgs) -> ExitCode {
    let result = match &args.command {
        ClusterCommand::Info => info(bootstrap),
        ClusterCommand::ElectLeaders(elect) => elect_leaders(bootstrap, elect),
    };
    finish(result)
}

/// Every partition index of `topic`, led or not.
fn partitions_of(client: &mut Client, topic: &str) -> Result<Vec<i32>> {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let request = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(topic.to_string().into())))
        ]))
        .with_allow_auto_topic_creation(false);
    let response = client.send(&request)?;
    let found = response
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
        .ok_or_else(|| anyhow::anyhow!("unknown topic {topic:?}"))?;
    broker_error(found.error_code, None)?;
    Ok(found.partitions.iter().map(|p| p.partition_index).collect())
}

/// One row per partition: what the election did there.
fn elect_leaders(bootstrap: &str, args: &ElectArgs) -> Result<String> {
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::messages::ElectLeadersRequest;
    let mut client = crate::client::connect(bootstrap)?;
    let topic_partitions = match &args.topic {
        None => None,
        Some(topic) => {
            let partitions = match args.partition {
                Some(partition) => vec![partition],
                None => partitions_of(&mut client, topic)?,
            };
            Some(vec![TopicPartitions::default()
                .with_topic(TopicName(topic.clone().into()))
                .with_partitions(partitions)])
        }
    };
    let request = ElectLeadersRequest::default()
        .with_election_type(i8::from(args.unclean))
        .with_topic_partitions(topic_partitions)
        .with_timeout_ms(crate::client::REQUEST_TIMEOUT_MS);
    let response = client.send(&request)?;
    broker_error(response.error_code, None)?;
    let mut rows: Vec<Vec<String>> = response
        .replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result.iter().map(|p| {
                let outcome = match p.error_code {
                    0 => "elected".to_string(),
                    code => kafka_protocol::error::ResponseError::try_from_code(code)
                        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}")),
                };
                vec![t.topic.to_string(), p.partition_id.to_string(), outcome]
            })
        })
        .collect();
    rows.sort();
    Ok(render_table(&["TOPIC", "PARTITION", "RESULT"], &rows))
}

fn info(bootstrap: &str) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let info = if client.supports::<DescribeClusterRequest>() {
        // v2 (KIP-1073) lists fenced brokers too, when asked.
        let with_fenced = client.version_for::<DescribeClusterRequest>()? >= 2;
        let request = DescribeClusterRequest::default().with_include_fenced_brokers(with_fenced);
        let response = client.send(&request)?;
        broker_error(response.error_code, response.error_message.as_ref())?;
        ClusterInfo {
            quorum: None,
            cluster_id: Some(response.cluster_id.as_str().to_string()),
            controller_id: response.controller_id.0,
            brokers: response
                .brokers
                .iter()
                .map(|b| {
                    let rack = b.rack.as_ref().map(|r| r.as_str().to_string());
                    let fenced = with_fenced.then_some(b.is_fenced);
                    (
                        b.broker_id.0,
                        b.host.as_str().to_string(),
                        b.port,
                        rack,
                        fenced,
                    )
                })
                .collect(),
        }
    } else {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![]))
            .with_allow_auto_topic_creation(false);
        let response = client.send(&request)?;
        ClusterInfo {
            quorum: None,
            cluster_id: response.cluster_id.as_ref().map(|c| c.as_str().to_string()),
            controller_id: response.controller_id.0,
            brokers: response
                .brokers
                .iter()
                .map(|b| {
                    let rack = b.rack.as_ref().map(|r| r.as_str().to_string());
                    (b.node_id.0, b.host.as_str().to_string(), b.port, rack, None)
                })
                .collect(),
        }
    };
    let quorum = if client.supports::<DescribeQuorumRequest>() {
        describe_quorum(&mut client)?
    } else {
        None
    };
    Ok(render(ClusterInfo { quorum, ..info }))
}

/// The quorum of KRaft's metadata topic, `__cluster_metadata` partition 0.
fn describe_quorum(client: &mut Client) -> Result<Option<Quorum>> {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName("__cluster_metadata".into()))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let response = client.send(&request)?;
    broker_error(response.error_code, response.error_message.as_ref())?;
    let Some(partition) = response.topics.first().and_then(|t| t.partitions.first()) else {
        return Ok(None);
    };
    broker_error(partition.error_code, partition.error_message.as_ref())?;
    Ok(Some(Quorum {
        leader_id: partition.leader_id.0,
        leader_epoch: partition.leader_epoch,
        high_watermark: partition.high_watermark,
        voters: partition
            .current_voters
            .iter()
            .map(|v| (v.replica_id.0, v.log_end_offset))
            .collect(),
    }))
}

fn render(mut info: ClusterInfo) -> String {
    info.brokers.sort();
    let controller = if info.controller_id < 0 {
        "none".to_string()
    } else {
        info.controller_id.to_string()
    };
    let mut out = format!(
        "cluster id: {}\ncontroller: {controller}\nbrokers:    {}\n\n",
        info.cluster_id.as_deref().unwrap_or("(none)"),
        info.brokers.len()
    );
    let rows: Vec<Vec<String>> = info
        .brokers
        .into_iter()
        .map(|(id, host, port, rack, fenced)| {
            let fenced = match fenced {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            vec![
                id.to_string(),
                host,
                port.to_string(),
                rack.unwrap_or_else(|| "-".to_string()),
                fenced.to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &["BROKER", "HOST", "PORT", "RACK", "FENCED"],
        &rows,
    ));
    if let Some(quorum) = info.quorum {
        out.push_str(&format!(
            "\nquorum leader:  {}\nleader epoch:   {}\nhigh watermark: {}\n\n",
            quorum.leader_id, quorum.leader_epoch, quorum.high_watermark
        ));
        let rows: Vec<Vec<String>> = quorum
            .voters
            .into_iter()
            .map(|(id, end)| {
                let lag = (quorum.high_watermark - end).max(0);
                vec![id.to_string(), end.to_string(), lag.to_string()]
            })
            .collect();
        out.push_str(&render_table(&["VOTER", "LOG-END-OFFSET", "LAG"], &rows));
    }
    out
}
