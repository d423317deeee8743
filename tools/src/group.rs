//! `strata group ...`: list, describe and delete consumer groups, and reset a
//! group's committed offsets — the jobs of Kafka's kafka-consumer-groups.sh,
//! through [`crate::client::Client`] and the group's coordinator
//! ([`crate::coordinator`]).
//!
//! Output is a table (or JSON with `describe --json`) on stdout; a failure is
//! one `error: ...` line on stderr with Kafka's error name, and exit code 1.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, MetadataRequest,
};
use serde_json::{json, Value};

use crate::client::{broker_error, finish, Client};
use crate::coordinator::{
    commit, connect_coordinator, decode_assignment, describe_refused, fetch_committed, group_id,
    str_bytes, Committer, Offsets,
};
use crate::leaders::{Leaders, TopicLayout};
use crate::offsets::{list_offsets, parse_rfc3339, resolve, StartPosition, EARLIEST, LATEST};
use crate::topic::render_table;

/// The protocol type of groups whose metadata is the consumer protocol.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(clap::Args)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand)]
enum GroupCommand {
    /// List the groups of every broker in the cluster: name, state, protocol type.
    ///
    /// Example: strata group list --state Stable
    List {
        /// Only groups in this state (Empty, Stable, PreparingRebalance,
        /// CompletingRebalance, Dead); case does not matter.
        #[arg(long, value_name = "STATE")]
        state: Option<String>,
    },
    /// Show a group's state and members, and per partition its committed
    /// offset, log end offset and lag.
    ///
    /// Example: strata group describe billing --json
    Describe {
        /// The group's id.
        group: String,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Delete groups that have no members, with their committed offsets.
    ///
    /// Example: strata group delete billing old-billing
    Delete {
        /// The groups' ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Plan (or with --execute, commit) new offsets for a group that has no members.
    ///
    /// Example: strata group reset-offsets billing --topic orders --to-datetime 2026-11-21T09:30:00Z --execute
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(
    ["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"]
)))]
struct ResetArgs {
    /// The group's id.
    group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Only this partition; may be repeated (default: every partition).
    #[arg(long = "partition", value_name = "N")]
    partitions: Vec<i32>,
    /// The log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    to_latest: bool,
    /// This offset (clamped to the log start and end offsets).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// The first record at or after this time: RFC 3339 (2026-11-21T09:30:00Z)
    /// or @EPOCH_MS; the log end offset when there is none.
    #[arg(long, value_name = "TIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// The committed offset moved by N (negative moves back), clamped.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Commit the new offsets; without it only the plan is printed.
    #[arg(long)]
    execute: bool,
}

/// Where `reset-offsets` moves each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Time(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    fn target(&self) -> ResetTo {
        if self.to_earliest {
            ResetTo::Earliest
        } else if self.to_latest {
            ResetTo::Latest
        } else if let Some(offset) = self.to_offset {
            ResetTo::Offset(offset)
        } else if let Some(time) = self.to_datetime {
            ResetTo::Time(time)
        } else {
            // The "target" argument group requires exactly one of them.
            ResetTo::ShiftBy(self.shift_by.unwrap_or(0))
        }
    }
}

/// Runs one `strata group` command against `bootstrap`.
pub fn run(bootstrap: &str, args: &GroupArgs) -> ExitCode {
    match &args.command {
        GroupCommand::List { state } => finish(list(bootstrap, state.as_deref())),
        GroupCommand::Describe { group, json } => finish(describe(bootstrap, group, *json)),
        GroupCommand::Delete { groups } => delete(bootstrap, groups),
        GroupCommand::ResetOffsets(reset) => finish(reset_offsets(bootstrap, reset)),
    }
}

/// ListGroups on every broker (each lists the groups it coordinates).
fn list(bootstrap: &str, state: Option<&str>) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let metadata = client.send(
        &MetadataRequest::default()
            .with_topics(Some(Vec::new()))
            .with_allow_auto_topic_creation(false),
    )?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host.as_str(), broker.port);
        let mut broker_client = crate::client::connect(&address)?;
        let mut request = ListGroupsRequest::default();
        // v4 (KIP-518) filters by state on the broker; older ones below.
        if let (Some(state), Ok(4..)) = (state, broker_client.version_for::<ListGroupsRequest>()) {
            request = request.with_states_filter(vec![str_bytes(state)]);
        }
        let response = broker_client.send(&request)?;
        broker_error(response.error_code, None)
            .with_context(|| format!("listing the groups of broker {}", broker.node_id.0))?;
        for listed in response.groups {
            let group_state = listed.group_state.to_string();
            if state.is_some_and(|wanted| !wanted.eq_ignore_ascii_case(&group_state)) {
                continue;
            }
            groups.insert(
                listed.group_id.to_string(),
                (group_state, listed.protocol_type.to_string()),
            );
        }
    }
    if groups.is_empty() {
        return Ok("no groups\n".to_string());
    }
    let rows: Vec<Vec<String>> = groups
        .into_iter()
        .map(|(group, (state, protocol_type))| vec![group, dash(state), dash(protocol_type)])
        .collect();
    Ok(render_table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows))
}

/// One member of a described group, its assignment decoded.
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    host: String,
    assignment: BTreeMap<String, Vec<i32>>,
}

/// One partition of a described group.
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    member_id: Option<String>,
}

impl PartitionLag {
    fn lag(&self) -> Option<i64> {
        Some((self.log_end? - self.committed?).max(0))
    }
}

fn describe(bootstrap: &str, group: &str, as_json: bool) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let mut coordinator = connect_coordinator(&mut client, group)?;
    let Some(described) = describe_group(&mut coordinator, group)? else {
        bail!("group {group:?} does not exist");
    };
    let protocol_type = described.protocol_type.to_string();
    let mut members = Vec::new();
    for member in &described.members {
        // Only the consumer protocol's assignment format is known here.
        let assignment = if protocol_type == CONSUMER_PROTOCOL_TYPE {
            decode_assignment(&member.member_assignment)
                .with_context(|| format!("the assignment of member {}", member.member_id))?
        } else {
            BTreeMap::new()
        };
        members.push(Member {
            member_id: member.member_id.to_string(),
            group_instance_id: member.group_instance_id.as_ref().map(|id| id.to_string()),
            client_id: member.client_id.to_string(),
            host: member.client_host.to_string(),
            assignment,
        });
    }
    let committed = fetch_committed(&mut coordinator, group, None)?;
    let partitions = partition_lags(&mut client, &members, &committed)?;
    if as_json {
        return Ok(describe_json(group, &described, &members, &partitions));
    }
    let mut out = format!(
        "group: {group}\nstate: {}\nprotocol type: {}\nprotocol: {}\nmembers: {}\n",
        described.group_state.as_str(),
        dash(protocol_type),
        dash(described.protocol_data.to_string()),
        members.len()
    );
    if !members.is_empty() {
        let rows: Vec<Vec<String>> = members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    dash(m.client_id.clone()),
                    dash(m.host.clone()),
                    dash(assignment_text(&m.assignment)),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&render_table(
            &["MEMBER-ID", "CLIENT-ID", "HOST", "ASSIGNMENT"],
            &rows,
        ));
    }
    if !partitions.is_empty() {
        let number = |n: Option<i64>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
        let rows: Vec<Vec<String>> = partitions
            .iter()
            .map(|p| {
                vec![
                    p.topic.clone(),
                    p.partition.to_string(),
                    number(p.committed),
                    number(p.log_end),
                    number(p.lag()),
                    p.member_id.clone().unwrap_or_else(|| "-".to_string()),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&render_table(
            &[
                "TOPIC",
                "PARTITION",
                "COMMITTED-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "MEMBER-ID",
            ],
            &rows,
        ));
    }
    Ok(out)
}

/// DescribeGroups for one group, `None` when it does not exist: the broker says
/// so with state "Dead" (v0–5) or GROUP_ID_NOT_FOUND (v6, KIP-1043).
fn describe_group(coordinator: &mut Client, group: &str) -> Result<Option<DescribedGroup>> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = coordinator.send(&request)?;
    let Some(described) = response.groups.into_iter().next() else {
        bail!("the broker's DescribeGroups answer is empty");
    };
    if ResponseError::try_from_code(described.error_code) == Some(ResponseError::GroupIdNotFound) {
        return Ok(None);
    }
    broker_error(described.error_code, described.error_message.as_ref())
        .with_context(|| format!("describing group {group:?}"))?;
    Ok(Some(described).filter(|d| d.group_state.as_str() != "Dead"))
}

/// Every partition the group has an offset for or a member holds, with its log
/// end offset (unknown when the topic is gone) and lag.
fn partition_lags(
    client: &mut Client,
    members: &[Member],
    committed: &Offsets,
) -> Result<Vec<PartitionLag>> {
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    for member in members {
        for (topic, partitions) in &member.assignment {
            for &partition in partitions {
                owner.insert((topic.clone(), partition), member.member_id.clone());
            }
        }
    }
    let keys: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &keys {
        by_topic.entry(topic).or_default().push(*partition);
    }
    let mut log_ends: HashMap<(String, i32), i64> = HashMap::new();
    for (topic, partitions) in by_topic {
        // A deleted topic keeps its committed offsets until they expire.
        let Ok(layout) = TopicLayout::fetch(client, topic) else {
            continue;
        };
        let known: Vec<i32> = partitions
            .into_iter()
            .filter(|p| layout.leaders.contains_key(p))
            .collect();
        let mut leaders = Leaders::new(&layout);
        for (partition, offset) in list_offsets(&mut leaders, &layout, &known, LATEST)? {
            log_ends.insert((topic.to_string(), partition), offset);
        }
    }
    Ok(keys
        .into_iter()
        .map(|key| PartitionLag {
            committed: committed.get(&key).copied(),
            log_end: log_ends.get(&key).copied(),
            member_id: owner.get(&key).cloned(),
            topic: key.0,
            partition: key.1,
        })
        .collect())
}

fn describe_json(
    group: &str,
    described: &DescribedGroup,
    members: &[Member],
    partitions: &[PartitionLag],
) -> String {
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": m.assignment.iter().map(|(topic, partitions)| {
                    json!({"topic": topic, "partitions": partitions})
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let offsets: Vec<Value> = partitions
        .iter()
        .map(|p| {
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed_offset": p.committed,
                "log_end_offset": p.log_end,
                "lag": p.lag(),
                "member_id": p.member_id,
            })
        })
        .collect();
    let object = json!({
        "group": group,
        "state": described.group_state.as_str(),
        "protocol_type": described.protocol_type.as_str(),
        "protocol": described.protocol_data.as_str(),
        "members": members,
        "offsets": offsets,
    });
    format!("{object}\n")
}

/// DeleteGroups at each group's coordinator. Deleted groups are confirmed on
/// stdout; each refusal is its own `error:` line, and any refusal means exit 1.
fn delete(bootstrap: &str, groups: &[String]) -> ExitCode {
    let mut failed = false;
    let mut report = |group: &str, result: Result<()>| match result {
        Ok(()) => println!("deleted group {group}"),
        Err(error) => {
            failed = true;
            eprintln!("error: {error:#}");
        }
    };
    let mut client = match crate::client::connect(bootstrap) {
        Ok(client) => client,
        Err(error) => return finish(Err(error)),
    };
    for group in groups {
        let result = connect_coordinator(&mut client, group).and_then(|mut coordinator| {
            let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
            let response = coordinator.send(&request)?;
            let code = response
                .results
                .iter()
                .find(|r| r.group_id.as_str() == group)
                .map(|r| r.error_code)
                .with_context(|| format!("the DeleteGroups answer lacks group {group:?}"))?;
            broker_error(code, None).with_context(|| format!("cannot delete group {group:?}"))
        });
        report(group, result);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Plans new offsets for `--topic`'s partitions and, with `--execute`, commits
/// them outside any generation — only possible while the group has no members.
fn reset_offsets(bootstrap: &str, args: &ResetArgs) -> Result<String> {
    let mut client = crate::client::connect(bootstrap)?;
    let mut coordinator = connect_coordinator(&mut client, &args.group)?;
    // An unknown group is created by the commit, as with Kafka's tool.
    let state = describe_group(&mut coordinator, &args.group)?
        .map_or_else(|| "Dead".to_string(), |d| d.group_state.to_string());
    if args.execute && !matches!(state.as_str(), "Empty" | "Dead") {
        bail!(
            "group {:?} is {state}: offsets can only be reset while it has no members; stop its consumers first",
            args.group
        );
    }
    let layout = TopicLayout::fetch(&mut client, &args.topic)?;
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        layout.leaders.keys().copied().collect()
    } else {
        for &partition in &args.partitions {
            layout.leader(partition)?;
        }
        let unique: BTreeSet<i32> = args.partitions.iter().copied().collect();
        unique.into_iter().collect()
    };
    let wanted = BTreeMap::from([(args.topic.clone(), partitions.clone())]);
    let committed = fetch_committed(&mut coordinator, &args.group, Some(&wanted))?;
    let mut leaders = Leaders::new(&layout);
    let log_start = list_offsets(&mut leaders, &layout, &partitions, EARLIEST)?;
    let log_end = list_offsets(&mut leaders, &layout, &partitions, LATEST)?;
    let target = args.target();
    let at_time = match target {
        ResetTo::Time(ms) => Some(resolve(
            &mut leaders,
            &layout,
            &partitions,
            StartPosition::Time(ms),
        )?),
        _ => None,
    };
    let mut plan = Offsets::new();
    let mut rows = Vec::new();
    for &partition in &partitions {
        let current = committed.get(&(args.topic.clone(), partition)).copied();
        let bounds = (log_start[&partition], log_end[&partition]);
        let found = at_time.as_ref().map(|offsets| offsets[&partition]);
        let new = new_offset(target, current, bounds, found)
            .with_context(|| format!("{} partition {partition}", args.topic))?;
        plan.insert((args.topic.clone(), partition), new);
        rows.push(vec![
            args.topic.clone(),
            partition.to_string(),
            current.map_or_else(|| "-".to_string(), |c| c.to_string()),
            new.to_string(),
        ]);
    }
    let table = render_table(
        &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
        &rows,
    );
    if !args.execute {
        eprintln!("dry run: nothing was committed; add --execute to commit these offsets");
        return Ok(table);
    }
    let refused = commit(&mut coordinator, &args.group, Committer::STANDALONE, &plan)?;
    if refused
        .iter()
        .any(|(_, error)| *error == ResponseError::UnknownMemberId)
    {
        bail!(
            "group {:?} has members again: offsets can only be reset while it has no members; stop its consumers first",
            args.group
        );
    }
    if !refused.is_empty() {
        bail!(
            "the broker refused offsets of group {:?}: {}",
            args.group,
            describe_refused(&refused)
        );
    }
    Ok(table)
}

/// The offset `target` gives one partition whose log spans `log_start..log_end`,
/// clamped into that span as Kafka's tool does. `found` is the ListOffsets
/// answer for a time target (already the log end when no record is that new).
fn new_offset(
    target: ResetTo,
    committed: Option<i64>,
    (log_start, log_end): (i64, i64),
    found: Option<i64>,
) -> Result<i64> {
    let wanted = match target {
        ResetTo::Earliest => log_start,
        ResetTo::Latest => log_end,
        ResetTo::Offset(offset) => offset,
        ResetTo::Time(_) => found.unwrap_or(log_end),
        ResetTo::ShiftBy(shift) => {
            let Some(committed) = committed else {
                bail!("no committed offset to shift");
            };
            committed.saturating_add(shift)
        }
    };
    Ok(wanted.clamp(log_start, log_end.max(log_start)))
}

/// `--to-datetime`: an RFC 3339 time or `@` and epoch milliseconds.
fn parse_datetime(text: &str) -> Result<i64, String> {
    if let Some(millis) = text.strip_prefix('@') {
        return millis
            .parse::<i64>()
            .ok()
            .filter(|&ms| ms >= 0)
            .ok_or_else(|| format!("expected @ and milliseconds since the epoch, got {text:?}"));
    }
    parse_rfc3339(text).ok_or_else(|| {
        format!("expected an RFC 3339 time (2026-11-21T09:30:00Z) or @EPOCH_MS, got {text:?}")
    })
}

/// `orders:0,1 events:2`: an assignment on one line.
fn assignment_text(assignment: &BTreeMap<String, Vec<i32>>) -> String {
    assignment
        .iter()
        .map(|(topic, partitions)| {
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}:{}", list.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An empty cell would vanish from a whitespace-separated table.
fn dash(text: String) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_offsets_clamp_to_the_log() {
        let log = (10, 50);
        assert_eq!(new_offset(ResetTo::Earliest, None, log, None).unwrap(), 10);
        assert_eq!(
            new_offset(ResetTo::Latest, Some(20), log, None).unwrap(),
            50
        );
        assert_eq!(
            new_offset(ResetTo::Offset(30), None, log, None).unwrap(),
            30
        );
        assert_eq!(new_offset(ResetTo::Offset(5), None, log, None).unwrap(), 10);
        assert_eq!(
            new_offset(ResetTo::Offset(99), None, log, None).unwrap(),
            50
        );
        assert_eq!(
            new_offset(ResetTo::Time(7), None, log, Some(42)).unwrap(),
            42
        );
        assert_eq!(
            new_offset(ResetTo::ShiftBy(-5), Some(20), log, None).unwrap(),
            15
        );
        assert_eq!(
            new_offset(ResetTo::ShiftBy(-50), Some(20), log, None).unwrap(),
            10
        );
        assert_eq!(
            new_offset(ResetTo::ShiftBy(100), Some(20), log, None).unwrap(),
            50
        );
        assert!(new_offset(ResetTo::ShiftBy(1), None, log, None).is_err());
    }

    #[test]
    fn datetimes_are_rfc3339_or_epoch_millis() {
        assert_eq!(parse_datetime("@1500"), Ok(1500));
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Ok(1000));
        assert!(parse_datetime("yesterday").is_err());
        assert!(parse_datetime("@-1").is_err());
    }

    #[test]
    fn assignments_print_topic_colon_partitions() {
        let assignment =
            BTreeMap::from([("b".to_string(), vec![2]), ("a".to_string(), vec![0, 1])]);
        assert_eq!(assignment_text(&assignment), "a:0,1 b:2");
    }
}
