//! The coordinator on a real data directory: committed offsets written to
//! `__consumer_offsets`, read back by a reopened broker, expired.

use kafka_protocol::error::ResponseError;

use super::offsets::{CommitOffset, Committer, FetchedOffset};
use crate::broker::now_ms;
use crate::test_support::open_broker;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// A consumer that assigns its own partitions: no member id, no generation.
fn standalone(retention_time_ms: i64) -> Committer<'static> {
    Committer {
        member_id: "",
        group_instance_id: None,
        generation_id: -1,
        retention_time_ms,
    }
}

fn commit(topic: &str, partition: i32, offset: i64) -> CommitOffset {
    CommitOffset {
        topic: topic.to_string(),
        partition,
        offset,
        leader_epoch: 3,
        metadata: Some(format!("at {offset}")),
    }
}

fn fetched(broker: &crate::Broker, group: &str, partition: i32) -> FetchedOffset {
    let mut offsets = broker
        .groups
        .fetch_offsets(group, Some(vec![("t".to_string(), partition)]));
    offsets.remove(0).1
}

#[tokio::test]
async fn committed_offsets_are_reloaded_and_expire_after_retention() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    broker
        .create_topic("t", 2, 1, Default::default(), false)
        .expect("create topic");
    let results = broker.groups.commit_offsets(
        "g",
        &standalone(-1),
        vec![commit("t", 0, 5), commit("t", 1, 7), commit("t", 9, 1)],
    );
    assert_eq!(
        results,
        vec![Ok(()), Ok(()), Err(ResponseError::UnknownTopicOrPartition)]
    );
    // A second group whose offset carries its own retention (OffsetCommit v2–v4).
    let results =
        broker
            .groups
            .commit_offsets("short", &standalone(1_000), vec![commit("t", 0, 1)]);
    assert_eq!(results, vec![Ok(())]);
    drop(broker);

    let broker = open_broker(dir.path());
    let offset = fetched(&broker, "g", 1);
    assert_eq!(offset.offset, 7);
    assert_eq!(offset.leader_epoch, 3);
    assert_eq!(offset.metadata, "at 7");
    assert_eq!(broker.groups.group_ids(), vec!["g", "short"]);

    // The explicit retention runs out first; the default one (7 days from
    // the commit, the group never having had members) later.
    assert_eq!(broker.groups.expire_offsets(now_ms() + 2_000), 1);
    assert_eq!(broker.groups.group_ids(), vec!["g"]);
    assert_eq!(fetched(&broker, "g", 0).offset, 5);
    assert_eq!(broker.groups.expire_offsets(now_ms() + 8 * DAY_MS), 2);
    assert_eq!(fetched(&broker, "g", 0).offset, -1);
    assert!(broker.groups.group_ids().is_empty());
    drop(broker);

    // The tombstones keep them gone.
    let broker = open_broker(dir.path());
    assert!(broker.groups.group_ids().is_empty());
    assert_eq!(fetched(&broker, "g", 1).offset, -1);
}

#[tokio::test]
async fn deleted_group_stays_deleted_after_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    broker
        .create_topic("t", 1, 1, Default::default(), false)
        .expect("create topic");
    let results = broker
        .groups
        .commit_offsets("g", &standalone(-1), vec![commit("t", 0, 5)]);
    assert_eq!(results, vec![Ok(())]);
    assert_eq!(broker.groups.delete("g"), Ok(()));
    assert_eq!(
        broker.groups.delete("g"),
        Err(ResponseError::GroupIdNotFound)
    );
    drop(broker);
    let broker = open_broker(dir.path());
    assert!(broker.groups.group_ids().is_empty());
    assert_eq!(fetched(&broker, "g", 0).offset, -1);
}

#[tokio::test]
async fn deleting_a_topic_deletes_its_committed_offsets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = open_broker(dir.path());
    for topic in ["t", "u"] {
        broker
            .create_topic(topic, 1, 1, Default::default(), false)
            .expect("create topic");
    }
    let mut other = commit("u", 0, 9);
    other.metadata = None;
    let results =
        broker
            .groups
            .commit_offsets("g", &standalone(-1), vec![commit("t", 0, 5), other]);
    assert_eq!(results, vec![Ok(()), Ok(())]);
    broker.delete_topic("t").expect("delete topic");
    assert_eq!(fetched(&broker, "g", 0).offset, -1);
    drop(broker);
    // Gone after a reopen too, and a topic created again under the name starts clean.
    let broker = open_broker(dir.path());
    assert_eq!(fetched(&broker, "g", 0).offset, -1);
    let kept = broker
        .groups
        .fetch_offsets("g", Some(vec![("u".to_string(), 0)]));
    assert_eq!(kept[0].1.offset, 9);
}
