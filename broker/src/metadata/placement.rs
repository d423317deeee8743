//! Where the replicas of new partitions go: Kafka's assignment for
//! CreateTopics and CreatePartitions without a manual assignment
//! (`AdminUtils.assignReplicasToBrokers`, as described in Kafka's docs and
//! KIP-36 for racks). Pure logic: the random start and shift are handed in,
//! so that tests and simulations can replay a placement.
//!
//! Without racks: partition `p`'s first replica is broker `(p + start) % n`;
//! the others follow at a distance that grows by one after every `n`
//! partitions, so that the followers of one broker's leaders spread over
//! the others. With racks (every broker has one), the brokers are ordered
//! by alternating racks first, and each further replica skips brokers
//! whose rack already holds a replica of the partition until every rack
//! has one.

use std::collections::{BTreeMap, BTreeSet};

/// A broker that can take replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: i32,
    pub rack: Option<String>,
}

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// Kafka's INVALID_REPLICATION_FACTOR message.
    #[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
    NotEnoughBrokers {
        replication_factor: i16,
        brokers: usize,
    },
    #[error("Replication factor must be larger than 0, or -1 to use the default value.")]
    InvalidReplicationFactor,
    #[error("Not all brokers have rack information for replica rack aware assignment.")]
    PartialRackInfo,
}

/// The replicas of partitions `first_partition..first_partition + count`,
/// the preferred leader first. `start` and `shift` are Kafka's random
/// `startIndex` and `nextReplicaShift`; pass any values (they are reduced
/// modulo the broker count).
pub fn place(
    brokers: &[PlacementBroker],
    first_partition: i32,
    count: i32,
    replication_factor: i16,
    start: usize,
    shift: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if replication_factor <= 0 {
        return Err(PlacementError::InvalidReplicationFactor);
    }
    let replicas = replication_factor as usize;
    if replicas > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            brokers: brokers.len(),
        });
    }
    let with_rack = brokers.iter().filter(|b| b.rack.is_some()).count();
    if with_rack == 0 {
        let mut ids: Vec<i32> = brokers.iter().map(|b| b.id).collect();
        ids.sort_unstable();
        return Ok(place_ignoring_racks(
            &ids,
            first_partition,
            count,
            replicas,
            start,
            shift,
        ));
    }
    if with_rack != brokers.len() {
        return Err(PlacementError::PartialRackInfo);
    }
    Ok(place_across_racks(
        brokers,
        first_partition,
        count,
        replicas,
        start,
        shift,
    ))
}

fn place_ignoring_racks(
    ids: &[i32],
    first_partition: i32,
    count: i32,
    replicas: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let n = ids.len();
    leader_rounds(n, first_partition, count, start, shift)
        .map(|(first, shift)| {
            let followers = (0..replicas - 1).map(|j| ids[follower_index(first, shift, j, n)]);
            std::iter::once(ids[first]).chain(followers).collect()
        })
        .collect()
}

/// For each partition: the position of its first replica in the broker
/// list and the follower shift in force, which grows by one after every
/// `n` partitions.
fn leader_rounds(
    n: usize,
    first_partition: i32,
    count: i32,
    start: usize,
    shift: usize,
) -> impl Iterator<Item = (usize, usize)> {
    let start = start % n;
    let shift = shift % n;
    (0..count).map(move |offset| {
        let partition = (first_partition + offset) as usize;
        ((partition + start) % n, shift + partition / n)
    })
}

/// Kafka's `replicaIndex`: the j-th follower of a leader at `first`, never
/// the leader itself.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    let distance = 1 + (shift + j) % (n - 1);
    (first + distance) % n
}

fn place_across_racks(
    brokers: &[PlacementBroker],
    first_partition: i32,
    count: i32,
    replicas: usize,
    start: usize,
    shift: usize,
) -> Vec<Vec<i32>> {
    let ordered = alternate_racks(brokers);
    let rack_of: BTreeMap<i32, &str> = brokers
        .iter()
        .map(|b| (b.id, b.rack.as_deref().unwrap_or("")))
        .collect();
    let rack_count = rack_of.values().collect::<BTreeSet<_>>().len();
    let n = ordered.len();
    leader_rounds(n, first_partition, count, start, shift)
        .map(|(first, shift)| {
            let leader = ordered[first];
            let mut chosen = vec![leader];
            let mut racks: BTreeSet<&str> = BTreeSet::from([rack_of[&leader]]);
            let mut k = 0;
            while chosen.len() < replicas {
                let candidate = ordered[follower_index(first, shift, k, n)];
                k += 1;
                let rack = rack_of[&candidate];
                let new_rack = !racks.contains(rack) || racks.len() == rack_count;
                if chosen.contains(&candidate) || !new_rack {
                    continue;
                }
                if racks.len() == rack_count {
                    racks.clear();
                }
                racks.insert(rack);
                chosen.push(candidate);
            }
            chosen
        })
        .collect()
}

/// The brokers ordered so that consecutive ones are on different racks
/// where possible: the first broker of each rack, then the second of each,
/// and so on (Kafka's `getRackAlternatedBrokerList`).
fn alternate_racks(brokers: &[PlacementBroker]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for broker in brokers {
        by_rack
            .entry(broker.rack.as_deref().unwrap_or(""))
            .or_default()
            .push(broker.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..longest)
        .flat_map(|i| by_rack.values().filter_map(move |ids| ids.get(i).copied()))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn brokers(ids: &[i32]) -> Vec<PlacementBroker> {
        ids.iter()
            .map(|&id| PlacementBroker { id, rack: None })
            .collect()
    }

    fn racked(pairs: &[(i32, &str)]) -> Vec<PlacementBroker> {
        pairs
            .iter()
            .map(|&(id, rack)| PlacementBroker {
                id,
                rack: Some(rack.to_string()),
            })
            .collect()
    }

    #[test]
    fn leaders_go_round_robin_from_the_start() {
        let placed = place(&brokers(&[3, 1, 2]), 0, 6, 1, 1, 0).unwrap();
        assert_eq!(
            placed,
            vec![vec![2], vec![3], vec![1], vec![2], vec![3], vec![1]]
        );
    }

    #[test]
    fn followers_shift_after_each_round_of_leaders() {
        // Kafka's documented example shape: 3 brokers, start 0, shift 0.
        let placed = place(&brokers(&[0, 1, 2]), 0, 6, 2, 0, 0).unwrap();
        assert_eq!(
            placed,
            vec![
                vec![0, 1],
                vec![1, 2],
                vec![2, 0],
                vec![0, 2],
                vec![1, 0],
                vec![2, 1]
            ]
        );
    }

    #[test]
    fn too_few_brokers_and_partial_racks_are_refused() {
        assert_eq!(
            place(&brokers(&[1]), 0, 1, 3, 0, 0),
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 1
            })
        );
        assert_eq!(
            place(&brokers(&[1]), 0, 1, 0, 0, 0),
            Err(PlacementError::InvalidReplicationFactor)
        );
        let mut mixed = racked(&[(1, "a")]);
        mixed.extend(brokers(&[2]));
        assert_eq!(
            place(&mixed, 0, 1, 1, 0, 0),
            Err(PlacementError::PartialRackInfo)
        );
        assert_eq!(
            PlacementError::NotEnoughBrokers {
                replication_factor: 3,
                brokers: 1
            }
            .to_string(),
            "Replication factor: 3 larger than available brokers: 1."
        );
    }

    #[test]
    fn racks_alternate() {
        let list = alternate_racks(&racked(&[(1, "a"), (2, "a"), (3, "b"), (4, "c"), (5, "b")]));
        assert_eq!(list, vec![1, 3, 4, 2, 5]);
    }

    proptest! {
        /// Every partition gets `rf` distinct live brokers; with racks, its
        /// replicas cover min(rf, racks) racks; leaders spread evenly.
        #[test]
        fn placements_are_valid_and_spread(
            n in 1usize..8,
            racks in 0usize..4,
            rf in 1i16..4,
            count in 1i32..40,
            first in 0i32..5,
            start in 0usize..100,
            shift in 0usize..100,
        ) {
            let all: Vec<PlacementBroker> = (0..n as i32)
                .map(|id| PlacementBroker {
                    id: id + 10,
                    rack: (racks > 0).then(|| format!("r{}", id as usize % racks)),
                })
                .collect();
            let result = place(&all, first, count, rf, start, shift);
            if rf as usize > n {
                prop_assert!(result.is_err());
                return Ok(());
            }
            let placed = result.unwrap();
            prop_assert_eq!(placed.len(), count as usize);
            let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
            for replicas in &placed {
                prop_assert_eq!(replicas.len(), rf as usize);
                let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
                prop_assert_eq!(distinct.len(), replicas.len());
                prop_assert!(replicas.iter().all(|id| (10..10 + n as i32).contains(id)));
                if racks > 0 {
                    let used: BTreeSet<String> = replicas
                        .iter()
                        .map(|id| format!("r{}", (*id - 10) as usize % racks))
                        .collect();
                    let available = racks.min(n);
                    prop_assert_eq!(used.len(), (rf as usize).min(available));
                }
                *leaders.entry(replicas[0]).or_default() += 1;
            }
            let most = leaders.values().max().copied().unwrap_or(0);
            let least = if leaders.len() < n.min(count as usize) { 0 } else {
                leaders.values().min().copied().unwrap_or(0)
            };
            prop_assert!(most - least <= 1, "leaders {:?}", leaders);
        }
    }
}
