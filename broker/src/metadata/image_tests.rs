use proptest::prelude::*;

use super::*;

fn topic(name: &str, id: u128) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: Uuid::from_u128(id),
    }
}

fn partition(id: u128, partition_id: i32) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRegistration {
        topic_id: Uuid::from_u128(id),
        partition_id,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch: 0,
        partition_epoch: 0,
    })
}

fn config(topic: &str, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::Topic(topic.into()),
        name: name.into(),
        value: value.map(str::to_string),
    }
}

fn remove(id: u128) -> MetadataRecord {
    MetadataRecord::RemoveTopic {
        topic_id: Uuid::from_u128(id),
    }
}

#[test]
fn a_created_topic_has_its_partitions_and_configs() {
    let (image, delta) = MetadataImage::default()
        .apply(&[
            topic("t", 1),
            partition(1, 0),
            partition(1, 1),
            config("t", "retention.ms", Some("1000")),
        ])
        .unwrap();
    let t = image.topic("t").unwrap();
    assert_eq!(t.id, Uuid::from_u128(1));
    assert_eq!(t.partitions.len(), 2);
    assert_eq!(
        image.configs(&ConfigResource::Topic("t".into())),
        [("retention.ms".to_string(), "1000".to_string())].into()
    );
    assert_eq!(delta.created_topics, vec![Uuid::from_u128(1)]);
    assert!(
        delta.new_partitions.is_empty(),
        "partitions of a new topic come with it"
    );
    assert!(image.topic_by_id(Uuid::from_u128(1)).is_some());
}

#[test]
fn a_bad_batch_changes_nothing() {
    let (image, _) = MetadataImage::default()
        .apply(&[topic("t", 1), partition(1, 0)])
        .unwrap();
    let cases = [
        (vec![topic("t", 2)], "second topic of one name"),
        (vec![topic("u", 1)], "second topic of one id"),
        (vec![partition(1, 2)], "partition gap"),
        (vec![partition(9, 0)], "partition of an unknown topic"),
        (
            vec![config("nope", "a", Some("b"))],
            "config of an unknown topic",
        ),
        (vec![remove(9)], "removing an unknown topic"),
        (
            vec![topic("u", 2), partition(2, 0), partition(2, 0)],
            "a valid start does not save the batch",
        ),
    ];
    for (records, why) in cases {
        assert!(image.apply(&records).is_err(), "{why}");
    }
    let invalid = |replicas: Vec<i32>, isr: Vec<i32>, leader: i32| {
        MetadataRecord::Partition(PartitionRegistration {
            topic_id: Uuid::from_u128(1),
            partition_id: 1,
            replicas,
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    };
    for (record, why) in [
        (invalid(vec![], vec![], -1), "no replicas"),
        (invalid(vec![1, 1], vec![1], 1), "duplicate replica"),
        (invalid(vec![1], vec![2], -1), "isr outside replicas"),
        (invalid(vec![1, 2], vec![1], 2), "leader out of sync"),
    ] {
        assert!(
            matches!(
                image.apply(&[record]),
                Err(ApplyError::InvalidPartition { .. })
            ),
            "{why}"
        );
    }
}

#[test]
fn removing_a_topic_takes_its_configs_and_frees_its_name() {
    let (image, _) = MetadataImage::default()
        .apply(&[topic("t", 1), partition(1, 0), config("t", "a", Some("1"))])
        .unwrap();
    let (image, delta) = image.apply(&[remove(1)]).unwrap();
    assert!(image.topic("t").is_none());
    assert!(image.configs(&ConfigResource::Topic("t".into())).is_empty());
    assert_eq!(delta.removed_topics.len(), 1);
    assert_eq!(delta.removed_topics[0].partitions.len(), 1);
    // The name can be used again, with a new id.
    let (image, _) = image.apply(&[topic("t", 2), partition(2, 0)]).unwrap();
    assert_eq!(image.topic("t").unwrap().id, Uuid::from_u128(2));
}

#[test]
fn delta_names_new_partitions_and_changed_configs() {
    let (image, _) = MetadataImage::default()
        .apply(&[topic("t", 1), partition(1, 0)])
        .unwrap();
    let (image, delta) = image
        .apply(&[
            partition(1, 1),
            config("t", "a", Some("1")),
            config("t", "a", None),
        ])
        .unwrap();
    assert_eq!(delta.new_partitions, vec![(Uuid::from_u128(1), 1)]);
    assert_eq!(
        delta.changed_configs,
        [ConfigResource::Topic("t".into())].into()
    );
    assert!(image.configs(&ConfigResource::Topic("t".into())).is_empty());
    // Created and removed in one batch: nothing for a broker to do.
    let (_, delta) = image
        .apply(&[topic("u", 2), partition(2, 0), remove(2)])
        .unwrap();
    assert!(delta.created_topics.is_empty() && delta.removed_topics.is_empty());
}

#[test]
fn producer_ids_only_move_forward() {
    let ids = |next| MetadataRecord::ProducerIds {
        broker_id: 1,
        next_producer_id: next,
    };
    let (image, _) = MetadataImage::default().apply(&[ids(1000)]).unwrap();
    assert_eq!(image.next_producer_id(), 1000);
    assert_eq!(
        image.apply(&[ids(999)]),
        Err(ApplyError::ProducerIdsBackwards {
            current: 1000,
            next: 999
        })
    );
    // The same block claimed twice: the second claim fails.
    assert_eq!(
        image.apply(&[ids(1000)]),
        Err(ApplyError::ProducerIdsBackwards {
            current: 1000,
            next: 1000
        })
    );
}

/// A record picked from a small universe of names and ids, so that the
/// generated batches hit both the valid and the invalid cases.
fn register(broker_id: i32, directory: Option<u128>) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        broker_id,
        incarnation_id: Uuid::new_v4(),
        directory_id: directory.map(Uuid::from_u128),
        endpoints: Vec::new(),
        rack: None,
        fenced: false,
    })
}

#[test]
fn a_running_brokers_id_is_refused_to_another_directory_until_it_is_fenced() {
    let (image, _) = MetadataImage::default()
        .apply(&[register(1, Some(10))])
        .unwrap();
    assert_eq!(
        image.apply(&[register(1, Some(11))]).unwrap_err(),
        ApplyError::DuplicateBrokerRegistration {
            broker_id: 1,
            registered: Uuid::from_u128(10),
            directory: Uuid::from_u128(11),
        }
    );
    // Its own restart, another id, and a record of an earlier release.
    for fine in [
        register(1, Some(10)),
        register(2, Some(11)),
        register(1, None),
    ] {
        assert!(image.apply(std::slice::from_ref(&fine)).is_ok(), "{fine:?}");
    }
    let (fenced, _) = image
        .apply(&[MetadataRecord::FenceBroker { broker_id: 1 }])
        .unwrap();
    let (replaced, _) = fenced.apply(&[register(1, Some(11))]).unwrap();
    assert_eq!(
        replaced.broker(1).unwrap().directory_id,
        Some(Uuid::from_u128(11))
    );
}

fn any_record() -> impl Strategy<Value = MetadataRecord> {
    let name = prop::sample::select(vec!["a", "b", "c"]);
    prop_oneof![
        (name.clone(), 1u128..5).prop_map(|(n, id)| topic(n, id)),
        (1u128..5, 0i32..3).prop_map(|(id, p)| partition(id, p)),
        (1u128..5, 0i32..3, prop::option::of(-1i32..2)).prop_map(|(id, p, leader)| {
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: Uuid::from_u128(id),
                partition_id: p,
                leader,
                isr: None,
                expected_partition_epoch: None,
            })
        }),
        (name, prop::option::of("[0-9]{1,2}")).prop_map(|(n, v)| config(
            n,
            "retention.ms",
            v.as_deref()
        )),
        (1u128..5).prop_map(remove),
        (0i32..3, prop::option::of("r[12]")).prop_map(|(id, rack)| {
            MetadataRecord::RegisterBroker(BrokerRegistration {
                broker_id: id,
                incarnation_id: Uuid::from_u128(id as u128),
                directory_id: None,
                endpoints: Vec::new(),
                rack,
                fenced: false,
            })
        }),
        (0i64..3000).prop_map(|next| MetadataRecord::ProducerIds {
            broker_id: 1,
            next_producer_id: next
        }),
    ]
}

proptest! {
    /// Replaying the log gives the same image however it was cut into
    /// batches: what recovery rebuilds is what was served before the crash.
    #[test]
    fn replay_does_not_depend_on_batching(
        batches in prop::collection::vec(prop::collection::vec(any_record(), 1..4), 1..20)
    ) {
        let mut image = MetadataImage::default();
        let mut written = Vec::new();
        for batch in batches {
            if let Ok((next, _)) = image.apply(&batch) {
                image = next;
                written.extend(batch);
            }
        }
        let mut one_by_one = MetadataImage::default();
        for record in &written {
            one_by_one = one_by_one.apply(std::slice::from_ref(record)).unwrap().0;
        }
        prop_assert_eq!(&one_by_one, &image);
        let (at_once, _) = MetadataImage::default().apply(&written).unwrap();
        prop_assert_eq!(&at_once, &image);
        // A delta over several batches names what they changed together.
        let from_empty = image.delta_from(&MetadataImage::default());
        prop_assert_eq!(from_empty.created_topics.len(), image.topics().count());
        prop_assert!(from_empty.removed_topics.is_empty() && from_empty.new_partitions.is_empty());
        let to_empty = MetadataImage::default().delta_from(&image);
        prop_assert_eq!(to_empty.removed_topics.len(), image.topics().count());
        // A snapshot's records rebuild the image.
        let (restored, _) = MetadataImage::default().apply(&image.to_records()).unwrap();
        prop_assert_eq!(&restored, &image);
        for topic in image.topics() {
            let ids: Vec<i32> = topic.partitions.keys().copied().collect();
            prop_assert_eq!(ids, (0..topic.partitions.len() as i32).collect::<Vec<_>>());
        }
    }
}
