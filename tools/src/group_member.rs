//! `strata consume TOPIC --group G`: a member of a consumer group under Kafka's
//! classic group protocol, reading the partitions the group assigns it and
//! committing how far it got.
//!
//! - **Joining**: FindCoordinator, then JoinGroup (protocol type `consumer`,
//!   one protocol, `range`, whose metadata is a ConsumerProtocolSubscription of
//!   the one topic). A broker that answers MEMBER_ID_REQUIRED (KIP-394) names the
//!   member id to join again with. The member the coordinator makes leader
//!   computes every member's assignment ([`range_assign`]) and hands it over in
//!   SyncGroup; the others send none and receive theirs.
//! - **Positions**: each assigned partition starts at the group's committed
//!   offset, or by `--from`'s rule where there is none (kafka-console-consumer's
//!   `auto.offset.reset`: latest unless told otherwise).
//! - **Staying in**: a Heartbeat every [`HEARTBEAT_INTERVAL`] between fetches
//!   (each fetch waits at most until the next heartbeat is due). REBALANCE_IN_PROGRESS
//!   commits the positions and joins again; UNKNOWN_MEMBER_ID or ILLEGAL_GENERATION
//!   (the member was dropped) joins again without committing.
//! - **Committing**: the positions past the printed records every
//!   [`COMMIT_INTERVAL`] and at the end, then LeaveGroup so the others get the
//!   partitions at once instead of after the session timeout.
//!
//! Delivery is at least once: records printed after the last commit of a member
//! that crashes or is dropped from the group are read again by the next owner.
//! See <https://kafka.apache.org/protocol.html#The_Messages_JoinGroup>.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::records::Record;

use crate::client::{broker_error, Client};
use crate::consume::RecordSource;
use crate::coordinator::{
    commit, connect_coordinator, decode_assignment, decode_subscription, describe_refused,
    encode_assignment, encode_subscription, fetch_committed, group_id, str_bytes, Committer,
    Offsets,
};
use crate::fetcher::Fetcher;
use crate::group::CONSUMER_PROTOCOL_TYPE;
use crate::leaders::{Leaders, TopicLayout};
use crate::offsets::{resolve, StartPosition};

/// The consumer defaults of Kafka's clients (session.timeout.ms 10 s before
/// Kafka 3.0, heartbeat.interval.ms 3 s, auto.commit.interval.ms 5 s).
const SESSION_TIMEOUT_MS: i32 = 10_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
const COMMIT_INTERVAL: Duration = Duration::from_secs(5);
/// How long the coordinator waits for every member to rejoin. This member
/// rejoins within a heartbeat; the bound keeps JoinGroup well inside the
/// client's I/O timeout.
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
/// The one assignment strategy offered.
const RANGE: &str = "range";
/// A join that keeps being interrupted by new rebalances gives up after this many tries.
const MAX_JOIN_ATTEMPTS: u32 = 50;
/// Pause before asking a coordinator that is loading or moving again.
const RETRY_WAIT: Duration = Duration::from_millis(250);

/// Membership of one group, reading one topic.
pub struct GroupConsumer<'a> {
    /// The bootstrap connection: Metadata for the leader's assignment.
    client: Client,
    coordinator: Client,
    group: String,
    layout: &'a TopicLayout,
    from: StartPosition,
    member_id: String,
    generation_id: i32,
    fetcher: Fetcher<'a>,
    /// Partition → offset after the last record handed out and printed: what
    /// a commit writes.
    committable: BTreeMap<i32, i64>,
    last_heartbeat: Instant,
    last_commit: Instant,
    interrupted: Arc<AtomicBool>,
}

impl<'a> GroupConsumer<'a> {
    /// Joins `group` and takes its first assignment of `layout`'s topic.
    pub fn join(
        mut client: Client,
        layout: &'a TopicLayout,
        group: &str,
        from: StartPosition,
    ) -> Result<GroupConsumer<'a>> {
        let coordinator = connect_coordinator(&mut client, group)?;
        let mut consumer = GroupConsumer {
            client,
            coordinator,
            group: group.to_string(),
            layout,
            from,
            member_id: String::new(),
            generation_id: -1,
            fetcher: Fetcher::new(layout, Leaders::new(layout), BTreeMap::new()),
            committable: BTreeMap::new(),
            last_heartbeat: Instant::now(),
            last_commit: Instant::now(),
            interrupted: watch_ctrl_c(),
        };
        consumer.rejoin()?;
        Ok(consumer)
    }

    /// JoinGroup + SyncGroup until a generation is complete, then positions for
    /// the new assignment.
    fn rejoin(&mut self) -> Result<()> {
        let partitions = self.join_and_sync()?;
        let topic = self.layout.name.clone();
        let wanted = BTreeMap::from([(topic.clone(), partitions.clone())]);
        let committed = fetch_committed(&mut self.coordinator, &self.group, Some(&wanted))?;
        let mut positions: BTreeMap<i32, i64> = partitions
            .iter()
            .filter_map(|&p| committed.get(&(topic.clone(), p)).map(|&o| (p, o)))
            .collect();
        let uncommitted: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !positions.contains_key(p))
            .collect();
        if !uncommitted.is_empty() {
            let start = resolve(self.fetcher.leaders(), self.layout, &uncommitted, self.from)?;
            positions.extend(start);
        }
        self.fetcher.assign(positions.clone());
        self.committable = positions;
        self.last_heartbeat = Instant::now();
        self.last_commit = Instant::now();
        Ok(())
    }

    /// The classic protocol's two steps; returns this member's partitions.
    fn join_and_sync(&mut self) -> Result<Vec<i32>> {
        let metadata = encode_subscription(&[self.layout.name.as_str()])?;
        for _ in 0..MAX_JOIN_ATTEMPTS {
            let request = JoinGroupRequest::default()
                .with_group_id(group_id(&self.group))
                .with_session_timeout_ms(SESSION_TIMEOUT_MS)
                .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(str_bytes(CONSUMER_PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(str_bytes(RANGE))
                    .with_metadata(metadata.clone())]);
            let joined = self.coordinator.send(&request)?;
            match ResponseError::try_from_code(joined.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    self.member_id = joined.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                Some(error) if self.coordinator_moved(error)? => continue,
                Some(_) => broker_error(joined.error_code, None)
                    .with_context(|| format!("joining group {:?}", self.group))?,
            }
            self.member_id = joined.member_id.to_string();
            self.generation_id = joined.generation_id;
            let assignments = if joined.leader == joined.member_id {
                self.assign(&joined.members)?
            } else {
                Vec::new()
            };
            let protocol_name = joined.protocol_name.unwrap_or_else(|| str_bytes(RANGE));
            let request = SyncGroupRequest::default()
                .with_group_id(group_id(&self.group))
                .with_generation_id(self.generation_id)
                .with_member_id(str_bytes(&self.member_id))
                .with_protocol_type(Some(str_bytes(CONSUMER_PROTOCOL_TYPE)))
                .with_protocol_name(Some(protocol_name))
                .with_assignments(assignments);
            let synced = self.coordinator.send(&request)?;
            match ResponseError::try_from_code(synced.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                    continue
                }
                Some(ResponseError::UnknownMemberId) => {
                    self.member_id.clear();
                    continue;
                }
                Some(error) if self.coordinator_moved(error)? => continue,
                Some(_) => broker_error(synced.error_code, None)
                    .with_context(|| format!("syncing group {:?}", self.group))?,
            }
            let assignment = decode_assignment(&synced.assignment)
                .with_context(|| format!("the assignment from group {:?}", self.group))?;
            return Ok(assignment
                .get(&self.layout.name)
                .cloned()
                .unwrap_or_default());
        }
        bail!(
            "group {:?} kept rebalancing: no assignment after {MAX_JOIN_ATTEMPTS} tries",
            self.group
        )
    }

    /// For a coordinator that is loading or has moved: waits, reconnects to the
    /// one FindCoordinator names now, and says to try again.
    fn coordinator_moved(&mut self, error: ResponseError) -> Result<bool> {
        match error {
            ResponseError::CoordinatorLoadInProgress => {}
            ResponseError::CoordinatorNotAvailable | ResponseError::NotCoordinator => {
                self.coordinator = connect_coordinator(&mut self.client, &self.group)?;
            }
            _ => return Ok(false),
        }
        thread::sleep(RETRY_WAIT);
        Ok(true)
    }

    /// As leader: every member's assignment, by the range rule over the topics
    /// the members subscribe to (other members may read other topics).
    fn assign(
        &mut self,
        members: &[JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscriptions = BTreeMap::new();
        for member in members {
            let topics = decode_subscription(&member.metadata)
                .with_context(|| format!("the subscription of member {}", member.member_id))?;
            subscriptions.insert(member.member_id.to_string(), topics);
        }
        let mut partition_counts = BTreeMap::new();
        for topic in subscriptions.values().flatten() {
            if partition_counts.contains_key(topic) {
                continue;
            }
            // A topic that does not exist (yet) has nothing to assign.
            let count = match TopicLayout::fetch(&mut self.client, topic) {
                Ok(layout) => layout.partition_count(),
                Err(_) => 0,
            };
            partition_counts.insert(topic.clone(), i32::try_from(count).unwrap_or(i32::MAX));
        }
        range_assign(&subscriptions, &partition_counts)
            .into_iter()
            .map(|(member_id, assignment)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(str_bytes(&member_id))
                    .with_assignment(encode_assignment(&assignment)?))
            })
            .collect()
    }

    /// Heartbeat; a rebalance or lost membership leads to a new join.
    fn heartbeat(&mut self) -> Result<()> {
        let request = HeartbeatRequest::default()
            .with_group_id(group_id(&self.group))
            .with_generation_id(self.generation_id)
            .with_member_id(str_bytes(&self.member_id));
        let response = self.coordinator.send(&request)?;
        self.last_heartbeat = Instant::now();
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(()),
            Some(ResponseError::RebalanceInProgress) => {
                // Still a member of this generation: keep the progress (a
                // refusal changes nothing, the rejoin follows anyway).
                self.try_commit()?;
                self.rejoin()
            }
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                self.rejoin()
            }
            Some(ResponseError::IllegalGeneration) => self.rejoin(),
            Some(error) if self.coordinator_moved(error)? => Ok(()),
            Some(_) => broker_error(response.error_code, None)
                .with_context(|| format!("heartbeat to group {:?}", self.group)),
        }
    }

    /// Commits the printed positions. `Ok(false)`: the group has moved on
    /// (rebalancing, or this member was dropped), so a rejoin is due.
    fn try_commit(&mut self) -> Result<bool> {
        self.last_commit = Instant::now();
        if self.committable.is_empty() {
            return Ok(true);
        }
        let offsets: Offsets = self
            .committable
            .iter()
            .map(|(&partition, &offset)| ((self.layout.name.clone(), partition), offset))
            .collect();
        let committer = Committer {
            member_id: &self.member_id,
            generation_id: self.generation_id,
        };
        let refused = commit(&mut self.coordinator, &self.group, committer, &offsets)?;
        let rebalanced = |error: &ResponseError| {
            matches!(
                error,
                ResponseError::RebalanceInProgress
                    | ResponseError::IllegalGeneration
                    | ResponseError::UnknownMemberId
            )
        };
        if refused.iter().any(|(_, error)| rebalanced(error)) {
            return Ok(false);
        }
        if !refused.is_empty() {
            bail!(
                "committing to group {:?}: {}",
                self.group,
                describe_refused(&refused)
            );
        }
        Ok(true)
    }

    /// A periodic commit; a refusal because of a rebalance joins again.
    fn commit(&mut self) -> Result<()> {
        if !self.try_commit()? {
            self.rejoin()?;
        }
        Ok(())
    }

    /// LeaveGroup, so the group rebalances now rather than after the session timeout.
    fn leave(&mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        let version = self.coordinator.version_for::<LeaveGroupRequest>()?;
        let request = LeaveGroupRequest::default().with_group_id(group_id(&self.group));
        // v3 (KIP-345) batches members; earlier versions name one.
        let request = if version >= 3 {
            request.with_members(vec![
                MemberIdentity::default().with_member_id(str_bytes(&self.member_id))
            ])
        } else {
            request.with_member_id(str_bytes(&self.member_id))
        };
        let response = self.coordinator.send(&request)?;
        let codes = std::iter::once(response.error_code)
            .chain(response.members.iter().map(|m| m.error_code));
        for code in codes {
            // Already gone (e.g. dropped after a long pause) is what leaving wants.
            if ResponseError::try_from_code(code) != Some(ResponseError::UnknownMemberId) {
                broker_error(code, None)
                    .with_context(|| format!("leaving group {:?}", self.group))?;
            }
        }
        self.member_id.clear();
        Ok(())
    }
}

impl RecordSource for GroupConsumer<'_> {
    fn fetch(&mut self, max_wait: Duration) -> Result<Vec<(i32, Record)>> {
        // Every record of the previous round was printed.
        self.committable = self.fetcher.positions().clone();
        if self.last_heartbeat.elapsed() >= HEARTBEAT_INTERVAL {
            self.heartbeat()?;
        }
        if self.last_commit.elapsed() >= COMMIT_INTERVAL {
            self.commit()?;
        }
        let wait = max_wait.min(HEARTBEAT_INTERVAL.saturating_sub(self.last_heartbeat.elapsed()));
        if self.fetcher.positions().is_empty() {
            // Nothing assigned (more members than partitions): only stay in.
            thread::sleep(wait);
            return Ok(Vec::new());
        }
        Ok(self.fetcher.fetch(wait)?.records)
    }

    fn printed(&mut self, partition: i32, offset: i64) {
        self.committable.insert(partition, offset + 1);
    }

    fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }

    fn close(&mut self) -> Result<()> {
        let committed = self.try_commit();
        let left = self.leave();
        match committed? {
            true => left,
            false => {
                left?;
                bail!(
                    "the last positions were not committed: group {:?} was rebalancing",
                    self.group
                )
            }
        }
    }
}

/// Kafka's RangeAssignor: for each topic, the members subscribed to it in
/// member id order each take a contiguous range of its partitions, P / M of
/// them, and the first P % M members one more. Every member gets an entry,
/// empty when it gets nothing.
pub fn range_assign(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
    let mut assignment: BTreeMap<String, BTreeMap<String, Vec<i32>>> = subscriptions
        .keys()
        .map(|member| (member.clone(), BTreeMap::new()))
        .collect();
    for (topic, &partitions) in partition_counts {
        // BTreeMap order is member id order.
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(member, _)| member)
            .collect();
        if members.is_empty() || partitions <= 0 {
            continue;
        }
        let count = i32::try_from(members.len()).unwrap_or(i32::MAX);
        let (each, extra) = (partitions / count, partitions % count);
        let mut next = 0;
        for (i, member) in (0..).zip(members) {
            let take = each + i32::from(i < extra);
            if take > 0 {
                let range = (next..next + take).collect();
                assignment
                    .get_mut(member)
                    .expect("every subscribed member has an entry")
                    .insert(topic.clone(), range);
            }
            next += take;
        }
    }
    assignment
}

/// A flag set by Ctrl-C (SIGINT), so the member can commit and leave before
/// exiting; a second Ctrl-C exits at once. The handler runs on a small
/// thread of its own because the client is blocking.
fn watch_ctrl_c() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        // Without the watcher Ctrl-C simply ends the process, uncommitted.
        Err(_) => return flag,
    };
    thread::spawn(move || {
        runtime.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                set.store(true, Ordering::Relaxed);
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(130);
                }
            }
        });
    });
    flag
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriptions(members: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        members
            .iter()
            .map(|(member, topics)| {
                let topics = topics.iter().map(|t| t.to_string()).collect();
                (member.to_string(), topics)
            })
            .collect()
    }

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_gives_the_first_members_one_more() {
        let subs = subscriptions(&[("m-c", &["t"]), ("m-a", &["t"]), ("m-b", &["t"])]);
        let assignment = range_assign(&subs, &counts(&[("t", 7)]));
        let of = |m: &str| assignment[m]["t"].clone();
        assert_eq!(of("m-a"), [0, 1, 2]);
        assert_eq!(of("m-b"), [3, 4]);
        assert_eq!(of("m-c"), [5, 6]);
    }

    #[test]
    fn range_leaves_extra_members_empty_and_skips_unsubscribed_topics() {
        let subs = subscriptions(&[("a", &["t"]), ("b", &["t", "u"]), ("c", &["t"])]);
        let assignment = range_assign(&subs, &counts(&[("t", 2), ("u", 3)]));
        assert_eq!(
            assignment["a"],
            BTreeMap::from([("t".to_string(), vec![0])])
        );
        assert_eq!(
            assignment["b"],
            BTreeMap::from([("t".to_string(), vec![1]), ("u".to_string(), vec![0, 1, 2])])
        );
        assert!(assignment["c"].is_empty());
    }
}
