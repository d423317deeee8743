//! Replica fetchers: this broker's followers. For each broker that leads
//! partitions this one follows, a task fetches from it as Kafka's followers
//! do (Fetch with this broker's id as replica id, from the local log end)
//! over the Kafka protocol (`strata-client`), and appends what comes as it
//! is. Before the first fetch under a new leader epoch it asks the leader
//! where its log of this broker's latest epoch ends (OffsetForLeaderEpoch)
//! and cuts what diverges (KIP-101, KIP-279).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use strata_client::{Connection, Options};
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::ReplicaFetchSettings;
use crate::partition::Partition;

/// One partition this broker follows.
#[derive(Clone)]
struct Followed {
    partition: Arc<Partition>,
    leader: i32,
    leader_epoch: i32,
    /// Whether the log was checked against the leader's for this epoch.
    truncated: bool,
}

/// What this broker follows, kept by the partition manager as metadata
/// changes, read by the fetcher tasks.
pub struct ReplicaFetchers {
    node_id: i32,
    settings: ReplicaFetchSettings,
    followed: Mutex<BTreeMap<(String, i32), Followed>>,
    /// Bumped on every change, so the tasks notice.
    changes: watch::Sender<u64>,
}

impl ReplicaFetchers {
    pub fn new(node_id: i32, settings: ReplicaFetchSettings) -> ReplicaFetchers {
        ReplicaFetchers {
            node_id,
            settings,
            followed: Mutex::new(BTreeMap::new()),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), Followed>> {
        self.followed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|generation| *generation += 1);
    }

    /// Follows `partition` from `leader` under `leader_epoch` (a new leader
    /// or epoch checks the log against the leader's first).
    pub fn follow(&self, partition: &Arc<Partition>, leader: i32, leader_epoch: i32) {
        let key = (partition.topic.clone(), partition.index);
        let mut followed = self.lock();
        let same = followed
            .get(&key)
            .is_some_and(|f| f.leader == leader && f.leader_epoch == leader_epoch);
        if !same {
            let entry = Followed {
                partition: partition.clone(),
                leader,
                leader_epoch,
                truncated: false,
            };
            followed.insert(key, entry);
            drop(followed);
            self.changed();
        }
    }

    /// Stops following partition `index` of `topic`.
    pub fn unfollow(&self, topic: &str, index: i32) {
        let removed = self.lock().remove(&(topic.to_string(), index)).is_some();
        if removed {
            self.changed();
        }
    }

    fn leaders(&self) -> BTreeSet<i32> {
        self.lock().values().map(|f| f.leader).collect()
    }

    fn of_leader(&self, leader: i32) -> Vec<((String, i32), Followed)> {
        self.lock()
            .iter()
            .filter(|(_, f)| f.leader == leader)
            .map(|(key, f)| (key.clone(), f.clone()))
            .collect()
    }

    /// Records that `key`'s log was checked (or must be again) for `epoch`.
    fn set_truncated(&self, key: &(String, i32), epoch: i32, truncated: bool) {
        if let Some(f) = self.lock().get_mut(key) {
            if f.leader_epoch == epoch {
                f.truncated = truncated;
            }
        }
    }
}

/// Runs a fetcher task per leader this broker follows partitions of, until
/// `stopped`. `address` gives a broker's `host:port`.
pub async fn run(
    fetchers: Arc<ReplicaFetchers>,
    address: Arc<dyn Fn(i32) -> Option<String> + Send + Sync>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut tasks: BTreeMap<i32, tokio::task::JoinHandle<()>> = BTreeMap::new();
    let mut changes = fetchers.changes.subscribe();
    loop {
        tasks.retain(|_, task| !task.is_finished());
        for leader in fetchers.leaders() {
            tasks.entry(leader).or_insert_with(|| {
                tokio::spawn(fetch_from(fetchers.clone(), leader, address.clone()))
            });
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => {
                for task in tasks.values() {
                    task.abort();
                }
                return;
            }
        }
    }
}

/// Fetches from `leader` for as long as this broker follows partitions it
/// leads.
async fn fetch_from(
    fetchers: Arc<ReplicaFetchers>,
    leader: i32,
    address: Arc<dyn Fn(i32) -> Option<String> + Send + Sync>,
) {
    let settings = fetchers.settings.clone();
    let options = Options {
        client_id: format!("strata-replica-fetcher-{}", fetchers.node_id),
        io_timeout: settings.socket_timeout,
        // What a fetch may bring, and room for the response's own fields.
        max_response_bytes: (settings.max_bytes.max(settings.partition_max_bytes) as usize)
            .saturating_mul(2)
            .max(Options::default().max_response_bytes),
        ..Options::default()
    };
    loop {
        if fetchers.of_leader(leader).is_empty() {
            return;
        }
        let connected = match address(leader) {
            Some(addr) => Connection::connect(&addr, options.clone()).await.ok(),
            None => None,
        };
        let Some(mut connection) = connected else {
            tokio::time::sleep(settings.backoff).await;
            continue;
        };
        loop {
            let followed = fetchers.of_leader(leader);
            if followed.is_empty() {
                return;
            }
            let outcome = match followed.iter().any(|(_, f)| !f.truncated) {
                true => truncate(&fetchers, &mut connection, &followed).await,
                false => fetch(&fetchers, &mut connection, &followed).await,
            };
            if let Err(error) = outcome {
                tracing::info!(leader, %error, "replica fetcher: reconnecting");
                tokio::time::sleep(settings.backoff).await;
                break;
            }
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(name.to_string().into())
}

/// One request entry per followed partition, grouped by topic.
fn by_topic<'a, T>(
    followed: impl IntoIterator<Item = &'a ((String, i32), Followed)>,
    entry: impl Fn(i32, &Followed) -> T,
) -> BTreeMap<&'a str, Vec<T>> {
    let mut topics: BTreeMap<&str, Vec<T>> = BTreeMap::new();
    for ((topic, index), f) in followed {
        topics.entry(topic).or_default().push(entry(*index, f));
    }
    topics
}

/// Checks each partition not yet checked for its leader epoch: asks where
/// the leader's log of this log's latest epoch ends and cuts what lies
/// beyond (what only this broker has, from an older leader).
async fn truncate(
    fetchers: &ReplicaFetchers,
    connection: &mut Connection,
    followed: &[((String, i32), Followed)],
) -> Result<(), strata_client::ClientError> {
    let pending: BTreeMap<&(String, i32), &Followed> = followed
        .iter()
        .filter(|(_, f)| !f.truncated)
        .map(|(key, f)| (key, f))
        .collect();
    let topics = by_topic(followed.iter().filter(|(_, f)| !f.truncated), |index, f| {
        OffsetForLeaderPartition::default()
            .with_partition(index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_leader_epoch(f.partition.log().latest_epoch().unwrap_or(-1))
    });
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(fetchers.node_id))
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = connection.send(&request).await?;
    for topic in &response.topics {
        for answer in &topic.partitions {
            let key = (topic.topic.to_string(), answer.partition);
            let Some(f) = pending.get(&key) else {
                continue;
            };
            if answer.error_code != 0 {
                tokio::time::sleep(fetchers.settings.backoff).await;
                continue;
            }
            let (local_end, high_watermark) = {
                let log = f.partition.log();
                (log.log_end_offset(), f.partition.high_watermark())
            };
            let target = if answer.leader_epoch < 0 || answer.end_offset < 0 {
                // An empty log here, or no epoch the leader knows: nothing
                // beyond what is committed is trusted.
                match f.partition.log().latest_epoch() {
                    None => local_end,
                    Some(_) => high_watermark,
                }
            } else {
                let (_, ours) = f.partition.log().end_offset_for_epoch(answer.leader_epoch);
                answer
                    .end_offset
                    .min(if ours < 0 { local_end } else { ours })
            };
            if target < local_end {
                tracing::info!(topic = %key.0, partition = key.1, from = local_end, to = target, "truncating to the leader's log");
                if let Err(error) = f.partition.truncate_as_follower(target, false) {
                    tracing::error!(topic = %key.0, partition = key.1, %error, "could not truncate");
                    continue;
                }
            }
            fetchers.set_truncated(&key, f.leader_epoch, true);
        }
    }
    Ok(())
}

/// One fetch for every followed partition; appends what comes.
async fn fetch(
    fetchers: &ReplicaFetchers,
    connection: &mut Connection,
    followed: &[((String, i32), Followed)],
) -> Result<(), strata_client::ClientError> {
    let topics = by_topic(followed, |index, f| {
        FetchPartition::default()
            .with_partition(index)
            .with_current_leader_epoch(f.leader_epoch)
            .with_fetch_offset(f.partition.log().log_end_offset())
            .with_partition_max_bytes(fetchers.settings.partition_max_bytes)
    });
    let followed: BTreeMap<&(String, i32), &Followed> =
        followed.iter().map(|(key, f)| (key, f)).collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(fetchers.node_id))
        .with_max_wait_ms(fetchers.settings.max_wait.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(fetchers.settings.max_bytes)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    FetchTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let response = connection.send(&request).await?;
    let mut back_off = false;
    for topic in &response.responses {
        for answer in &topic.partitions {
            let key = (topic.topic.to_string(), answer.partition_index);
            let Some(f) = followed.get(&key) else {
                continue;
            };
            match ResponseError::try_from_code(answer.error_code) {
                None => {
                    if let Some(records) = answer.records.as_ref().filter(|r| !r.is_empty()) {
                        if let Err(error) = f.partition.append_as_follower(records, now_ms()) {
                            tracing::warn!(topic = %key.0, partition = key.1, %error, "the leader's records do not continue this log; checking it again");
                            fetchers.set_truncated(&key, f.leader_epoch, false);
                            continue;
                        }
                    }
                    f.partition.follow_high_watermark(answer.high_watermark);
                    if let Err(error) = f.partition.follow_log_start(answer.log_start_offset) {
                        tracing::error!(topic = %key.0, partition = key.1, %error, "could not move the log start offset");
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    let local_end = f.partition.log().log_end_offset();
                    if local_end < answer.log_start_offset {
                        if let Err(error) = f
                            .partition
                            .truncate_as_follower(answer.log_start_offset, true)
                        {
                            tracing::error!(topic = %key.0, partition = key.1, %error, "could not restart the log");
                        }
                    } else {
                        fetchers.set_truncated(&key, f.leader_epoch, false);
                    }
                }
                // Leadership is moving: the metadata will say where to.
                Some(_) => back_off = true,
            }
        }
    }
    if back_off {
        tokio::time::sleep(fetchers.settings.backoff).await;
    }
    Ok(())
}
