//! Partition leadership as the controller decides it when a broker leaves
//! (fenced, or shutting down) or comes back (registered, unfenced), after
//! KRaft's `ReplicationControlManager`: plain logic over the image, the
//! changes returned as records to write in the same batch as the broker's
//! own record.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{
    ConfigResource, MetadataImage, MetadataRecord, PartitionChange, PartitionRegistration,
    TopicImage,
};

/// The changes `broker_id` leaving calls for. Each partition it leads gets
/// the first other in-sync replica that is not fenced as leader, or none
/// (-1). It leaves the in-sync replicas wherever others remain; where it was
/// the last, the set stays as it is (as Kafka keeps it), so that the
/// partition comes back with it.
pub fn on_broker_leaving(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let available = |id: i32| id != broker_id && image.broker(id).is_some_and(|b| !b.fenced);
    image
        .topics()
        .flat_map(|topic| topic.partitions.values().map(move |p| (topic.id, p)))
        // A partition it neither leads nor shares the in-sync set of with
        // others has nothing to change.
        .filter(|(_, p)| p.leader == broker_id || (p.isr.contains(&broker_id) && p.isr.len() > 1))
        .map(|(topic_id, p)| {
            let remaining: Vec<i32> = p
                .isr
                .iter()
                .copied()
                .filter(|id| *id != broker_id)
                .collect();
            let isr = (!remaining.is_empty()).then_some(remaining);
            let leader = (p.leader == broker_id).then(|| {
                let candidates = isr.as_deref().unwrap_or(&[]);
                candidates
                    .iter()
                    .copied()
                    .find(|id| available(*id))
                    .unwrap_or(-1)
            });
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition_id: p.partition_id,
                leader,
                isr,
                expected_partition_epoch: None,
            })
        })
        .collect()
}

/// The changes `broker_id` coming back calls for: it leads every partition
/// left without a leader whose in-sync replicas include it.
pub fn on_broker_returning(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    image
        .topics()
        .flat_map(|topic| topic.partitions.values().map(move |p| (topic.id, p)))
        .filter(|(_, p)| p.leader == -1 && p.isr.contains(&broker_id))
        .map(|(topic_id, p)| {
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id,
                partition_id: p.partition_id,
                leader: Some(broker_id),
                isr: None,
                expected_partition_epoch: None,
            })
        })
        .collect()
}

/// What an election an administrator asks for (ElectLeaders) does to one
/// partition.
#[derive(Debug, Clone, PartialEq)]
pub enum Election {
    /// This change elects the leader.
    Elect(MetadataRecord),
    /// The partition already has the leader this election would give it.
    NotNeeded,
    /// No replica can lead it by this election's rules.
    NotAvailable,
}

/// An election of one partition: [`preferred`] or [`unclean`].
pub type Elect = fn(&MetadataImage, Uuid, &PartitionRegistration) -> Election;

fn unfenced(image: &MetadataImage, id: i32) -> bool {
    image.broker(id).is_some_and(|b| !b.fenced)
}

fn elect(topic_id: Uuid, partition_id: i32, leader: i32, isr: Option<Vec<i32>>) -> Election {
    Election::Elect(MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition_id,
        leader: Some(leader),
        isr,
        expected_partition_epoch: None,
    }))
}

/// Preferred leader election: the first replica (the preferred leader)
/// leads, if it is in sync and unfenced.
pub fn preferred(image: &MetadataImage, topic_id: Uuid, p: &PartitionRegistration) -> Election {
    let Some(&first) = p.replicas.first() else {
        return Election::NotAvailable;
    };
    if p.leader == first {
        Election::NotNeeded
    } else if p.isr.contains(&first) && unfenced(image, first) {
        elect(topic_id, p.partition_id, first, None)
    } else {
        Election::NotAvailable
    }
}

/// Unclean leader election: a partition without a live leader gets an
/// unfenced in-sync replica, or else any unfenced replica, which becomes the
/// only in-sync one (what the others hold beyond its log is lost: Kafka's
/// `unclean.leader.election.enable`).
pub fn unclean(image: &MetadataImage, topic_id: Uuid, p: &PartitionRegistration) -> Election {
    if p.leader != -1 && unfenced(image, p.leader) {
        return Election::NotNeeded;
    }
    if let Some(&in_sync) = p.isr.iter().find(|id| unfenced(image, **id)) {
        return elect(topic_id, p.partition_id, in_sync, None);
    }
    match p.replicas.iter().find(|id| unfenced(image, **id)) {
        Some(&replica) => elect(topic_id, p.partition_id, replica, Some(vec![replica])),
        None => Election::NotAvailable,
    }
}

/// Whether `topic` may elect a leader from outside its in-sync replicas:
/// its `unclean.leader.election.enable`, else `default` (the broker's).
pub fn unclean_allowed(image: &MetadataImage, topic: &TopicImage, default: bool) -> bool {
    image
        .configs(&ConfigResource::Topic(topic.name.clone()))
        .get("unclean.leader.election.enable")
        .map_or(default, |value| value == "true")
}

/// Kafka's automatic leader rebalance: for every broker whose share of the
/// partitions it is the preferred leader of but does not lead is above
/// `max_imbalance` (0.1 for 10 %), the preferred leader elections that can
/// be held.
pub fn rebalance(image: &MetadataImage, max_imbalance: f64) -> Vec<MetadataRecord> {
    let partitions: Vec<(Uuid, &PartitionRegistration)> = image
        .topics()
        .flat_map(|t| t.partitions.values().map(move |p| (t.id, p)))
        .collect();
    let mut preferred_of: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for (_, p) in &partitions {
        if let Some(&first) = p.replicas.first() {
            let (total, led) = preferred_of.entry(first).or_default();
            *total += 1;
            if p.leader != first {
                *led += 1;
            }
        }
    }
    let imbalanced: BTreeSet<i32> = preferred_of
        .into_iter()
        .filter(|(_, (total, not_led))| *not_led as f64 / *total as f64 > max_imbalance)
        .map(|(id, _)| id)
        .collect();
    partitions
        .into_iter()
        .filter(|(_, p)| p.replicas.first().is_some_and(|id| imbalanced.contains(id)))
        .filter_map(|(topic_id, p)| match preferred(image, topic_id, p) {
            Election::Elect(record) => Some(record),
            _ => None,
        })
        .collect()
}

/// What the active controller checks every heartbeat interval: partitions
/// led by a fenced broker get another leader (or none), leaderless ones
/// whose in-sync replicas include an unfenced broker get it as leader, and
/// leaderless ones of topics that allow it (`unclean_allowed`, given the
/// broker default) an unclean leader. This also catches what a change
/// proposed from a node whose image was behind missed.
pub fn reconcile(image: &MetadataImage, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut changes = Vec::new();
    let mut current = image.clone();
    let brokers: Vec<(i32, bool)> = image.brokers().map(|b| (b.broker_id, b.fenced)).collect();
    for (broker_id, fenced) in brokers {
        let batch = if fenced {
            on_broker_leaving(&current, broker_id)
        } else {
            on_broker_returning(&current, broker_id)
        };
        if batch.is_empty() {
            continue;
        }
        if let Ok((next, _)) = current.apply(&batch) {
            current = next;
            changes.extend(batch);
        }
    }
    let unclean_elections: Vec<MetadataRecord> = current
        .topics()
        .filter(|t| unclean_allowed(&current, t, unclean_default))
        .flat_map(|t| t.partitions.values().map(move |p| (t.id, p)))
        .filter(|(_, p)| p.leader == -1)
        .filter_map(|(topic_id, p)| match unclean(&current, topic_id, p) {
            Election::Elect(record) => Some(record),
            _ => None,
        })
        .collect();
    if !unclean_elections.is_empty() && current.apply(&unclean_elections).is_ok() {
        changes.extend(unclean_elections);
    }
    changes
}

/// `record` (a broker's registration, fencing or unfencing) with the
/// leadership changes it calls for after it, as one batch.
pub fn with_leadership_changes(
    image: &MetadataImage,
    record: MetadataRecord,
) -> Vec<MetadataRecord> {
    let changes = match &record {
        MetadataRecord::FenceBroker { broker_id } => on_broker_leaving(image, *broker_id),
        MetadataRecord::UnfenceBroker { broker_id } => on_broker_returning(image, *broker_id),
        MetadataRecord::RegisterBroker(registration) if !registration.fenced => {
            on_broker_returning(image, registration.broker_id)
        }
        _ => Vec::new(),
    };
    std::iter::once(record).chain(changes).collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::{BrokerRegistration, PartitionRegistration};

    fn register(broker_id: i32) -> MetadataRecord {
        MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id,
            incarnation_id: Uuid::new_v4(),
            directory_id: None,
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
        })
    }

    fn image_with(partitions: &[&[i32]]) -> MetadataImage {
        let topic_id = Uuid::from_u128(1);
        let mut records: Vec<MetadataRecord> = (1..=3).map(register).collect();
        records.push(MetadataRecord::Topic {
            name: "t".into(),
            topic_id,
        });
        records.extend(partitions.iter().enumerate().map(|(index, replicas)| {
            MetadataRecord::Partition(PartitionRegistration {
                topic_id,
                partition_id: index as i32,
                replicas: replicas.to_vec(),
                isr: replicas.to_vec(),
                leader: replicas[0],
                leader_epoch: 0,
                partition_epoch: 0,
            })
        }));
        MetadataImage::default().apply(&records).unwrap().0
    }

    fn partition(image: &MetadataImage, index: i32) -> PartitionRegistration {
        image.topic("t").unwrap().partitions[&index].clone()
    }

    #[test]
    fn a_sole_replica_leaving_leaves_its_partition_without_a_leader_until_it_returns() {
        let image = image_with(&[&[1], &[2]]);
        let fence = with_leadership_changes(&image, MetadataRecord::FenceBroker { broker_id: 1 });
        assert_eq!(fence.len(), 2, "{fence:?}");
        let (fenced, delta) = image.apply(&fence).unwrap();
        let p0 = partition(&fenced, 0);
        assert_eq!((p0.leader, p0.leader_epoch, p0.isr), (-1, 1, vec![1]));
        assert_eq!(partition(&fenced, 1), partition(&image, 1));
        assert_eq!(delta.changed_partitions, [(Uuid::from_u128(1), 0)]);

        let back = with_leadership_changes(&fenced, register(1));
        let (returned, _) = fenced.apply(&back).unwrap();
        let p0 = partition(&returned, 0);
        assert_eq!((p0.leader, p0.leader_epoch, p0.partition_epoch), (1, 2, 2));
        // Nothing to do for a broker that leads what it should.
        assert_eq!(with_leadership_changes(&returned, register(1)).len(), 1);
    }

    #[test]
    fn reconciling_fixes_what_a_stale_proposal_missed_and_then_does_nothing() {
        let image = image_with(&[&[1], &[2], &[3]]);
        // Fenced without the leadership changes, registered without them.
        let (image, _) = image
            .apply(&[MetadataRecord::FenceBroker { broker_id: 1 }])
            .unwrap();
        let changes = reconcile(&image, false);
        let (image, _) = image.apply(&changes).unwrap();
        assert_eq!(partition(&image, 0).leader, -1);
        assert!(reconcile(&image, false).is_empty(), "settled");
        let (image, _) = image.apply(&[register(1)]).unwrap();
        let (image, _) = image.apply(&reconcile(&image, false)).unwrap();
        assert_eq!(
            (
                partition(&image, 0).leader,
                partition(&image, 0).leader_epoch
            ),
            (1, 2)
        );
        assert!(reconcile(&image, false).is_empty());
    }

    #[test]
    fn leadership_moves_to_an_in_sync_replica_that_is_not_fenced() {
        let image = image_with(&[&[1, 2, 3], &[2, 1]]);
        let (image, _) = image
            .apply(&[MetadataRecord::FenceBroker { broker_id: 2 }])
            .unwrap();
        let leaving = on_broker_leaving(&image, 1);
        let (after, _) = image.apply(&leaving).unwrap();
        let p0 = partition(&after, 0);
        assert_eq!(
            (p0.leader, p0.isr),
            (3, vec![2, 3]),
            "fenced 2 is passed over"
        );
        let p1 = partition(&after, 1);
        assert_eq!(
            (p1.leader, p1.isr),
            (2, vec![2]),
            "1 leaves a follower's ISR"
        );
        assert_eq!(p1.leader_epoch, 0, "the leader did not change");
    }

    fn fence(image: &MetadataImage, broker_id: i32) -> MetadataImage {
        let batch = with_leadership_changes(image, MetadataRecord::FenceBroker { broker_id });
        image.apply(&batch).unwrap().0
    }

    fn elected(election: Election) -> PartitionChange {
        match election {
            Election::Elect(MetadataRecord::PartitionChange(change)) => change,
            other => panic!("no election: {other:?}"),
        }
    }

    #[test]
    fn preferred_election_gives_the_first_replica_back_its_leadership_when_it_is_in_sync() {
        let image = fence(&image_with(&[&[1, 2, 3]]), 1);
        let p = partition(&image, 0);
        assert_eq!(p.leader, 2);
        let id = Uuid::from_u128(1);
        assert_eq!(
            preferred(&image, id, &p),
            Election::NotAvailable,
            "1 is fenced"
        );
        let (image, _) = image
            .apply(&[
                MetadataRecord::UnfenceBroker { broker_id: 1 },
                MetadataRecord::PartitionChange(PartitionChange {
                    topic_id: id,
                    partition_id: 0,
                    leader: None,
                    isr: Some(vec![2, 3, 1]),
                    expected_partition_epoch: None,
                }),
            ])
            .unwrap();
        let p = partition(&image, 0);
        assert_eq!(elected(preferred(&image, id, &p)).leader, Some(1));
        // The controller's rebalance finds the same election; then nothing.
        let changes = rebalance(&image, 0.1);
        let (image, _) = image.apply(&changes).unwrap();
        assert_eq!(partition(&image, 0).leader, 1);
        assert_eq!(
            preferred(&image, id, &partition(&image, 0)),
            Election::NotNeeded
        );
        assert!(rebalance(&image, 0.1).is_empty());
    }

    #[test]
    fn unclean_election_takes_a_live_replica_outside_the_isr_only_where_allowed() {
        // 1 leads alone (2 fell out of sync), then 1 dies: no leader.
        let id = Uuid::from_u128(1);
        let image = image_with(&[&[1, 2]]);
        let (image, _) = image
            .apply(&[MetadataRecord::PartitionChange(PartitionChange {
                topic_id: id,
                partition_id: 0,
                leader: None,
                isr: Some(vec![1]),
                expected_partition_epoch: None,
            })])
            .unwrap();
        let image = fence(&image, 1);
        let p = partition(&image, 0);
        assert_eq!((p.leader, p.isr.clone()), (-1, vec![1]));
        assert!(reconcile(&image, false).is_empty(), "clean: it waits for 1");
        let change = elected(unclean(&image, id, &p));
        assert_eq!((change.leader, change.isr), (Some(2), Some(vec![2])));
        // The topic's own config allows it: the controller elects 2.
        let (allowed, _) = image
            .apply(&[MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "unclean.leader.election.enable".into(),
                value: Some("true".into()),
            }])
            .unwrap();
        let (after, _) = allowed.apply(&reconcile(&allowed, false)).unwrap();
        let p = partition(&after, 0);
        assert_eq!((p.leader, p.isr), (2, vec![2]));
        assert_eq!(
            unclean(&after, id, &partition(&after, 0)),
            Election::NotNeeded
        );
    }
}
