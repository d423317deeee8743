//! Broker liveness as the active controller sees it (KRaft's broker
//! heartbeats): every broker tells the controller every
//! `broker.heartbeat.interval.ms` that it is alive and how far it has
//! applied the metadata; a broker not heard from for
//! `broker.session.timeout.ms` is fenced, and a fenced broker that is heard
//! from again and has caught up is unfenced.
//!
//! [`fencing_changes`] decides from the image and the heartbeat table, with
//! the time handed in: no I/O, no clock.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::metadata::{MetadataImage, MetadataRecord};

/// A broker as its heartbeats name it: its id and its data directory's id.
/// Only heartbeats of the registered directory keep a registration alive,
/// so a second node given the same id cannot keep a dead one's going.
pub type HeartbeatSource = (i32, Option<Uuid>);

/// What the controller knows of one broker's heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub last_heartbeat: Instant,
    /// The leader's applied index when the previous heartbeat came: a
    /// broker is caught up once it has applied that much.
    commit_at_previous: Option<u64>,
    pub caught_up: bool,
}

/// The heartbeats received while this node leads.
#[derive(Debug, Default)]
pub struct Heartbeats {
    table: Mutex<BTreeMap<HeartbeatSource, Liveness>>,
}

impl Heartbeats {
    /// A heartbeat from `source`, which has applied up to `applied`,
    /// received at `now` by a leader that has applied up to `leader_applied`.
    pub fn record(
        &self,
        source: HeartbeatSource,
        applied: Option<u64>,
        leader_applied: Option<u64>,
        now: Instant,
    ) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = table.get(&source).and_then(|l| l.commit_at_previous);
        let caught_up = previous.is_some() && applied >= previous;
        table.insert(
            source,
            Liveness {
                last_heartbeat: now,
                commit_at_previous: leader_applied,
                caught_up,
            },
        );
    }

    pub fn snapshot(&self) -> BTreeMap<HeartbeatSource, Liveness> {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The records that fence the brokers not heard from within
/// `session_timeout` (counted from `leader_since` for a broker not heard
/// from since this node leads) and unfence the fenced ones that heartbeat
/// again and have caught up.
pub fn fencing_changes(
    image: &MetadataImage,
    heartbeats: &BTreeMap<HeartbeatSource, Liveness>,
    now: Instant,
    leader_since: Instant,
    session_timeout: Duration,
) -> Vec<MetadataRecord> {
    image
        .brokers()
        .filter_map(|broker| {
            let heard = heartbeats.get(&(broker.broker_id, broker.directory_id));
            let last = heard.map_or(leader_since, |l| l.last_heartbeat.max(leader_since));
            let alive = now.saturating_duration_since(last) <= session_timeout;
            let broker_id = broker.broker_id;
            match (broker.fenced, alive) {
                (false, false) => Some(MetadataRecord::FenceBroker { broker_id }),
                (true, true) if heard.is_some_and(|l| l.caught_up) => {
                    Some(MetadataRecord::UnfenceBroker { broker_id })
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::metadata::BrokerRegistration;

    fn image(fenced: &[(i32, bool)]) -> MetadataImage {
        let records: Vec<MetadataRecord> = fenced
            .iter()
            .flat_map(|&(id, fenced)| {
                let registered = MetadataRecord::RegisterBroker(BrokerRegistration {
                    broker_id: id,
                    incarnation_id: Uuid::new_v4(),
                    directory_id: None,
                    endpoints: Vec::new(),
                    rack: None,
                    fenced: false,
                });
                let fence = fenced.then_some(MetadataRecord::FenceBroker { broker_id: id });
                std::iter::once(registered).chain(fence)
            })
            .collect();
        MetadataImage::default().apply(&records).unwrap().0
    }

    const SESSION: Duration = Duration::from_secs(9);

    #[test]
    fn a_silent_broker_is_fenced_after_the_session_timeout_from_when_this_node_leads() {
        let start = Instant::now();
        let image = image(&[(1, false), (2, false)]);
        let heartbeats = Heartbeats::default();
        heartbeats.record((1, None), Some(5), Some(5), start + Duration::from_secs(8));
        let table = heartbeats.snapshot();
        // A new leader gives everyone a whole session.
        assert!(fencing_changes(&image, &table, start + SESSION, start, SESSION).is_empty());
        let later = start + Duration::from_secs(10);
        assert_eq!(
            fencing_changes(&image, &table, later, start, SESSION),
            vec![MetadataRecord::FenceBroker { broker_id: 2 }]
        );
    }

    #[test]
    fn a_fenced_broker_is_unfenced_once_it_heartbeats_and_has_caught_up() {
        let start = Instant::now();
        let image = image(&[(1, false), (2, true)]);
        let heartbeats = Heartbeats::default();
        let at = |s| start + Duration::from_secs(s);
        // First heartbeat: alive, but not yet known to be caught up.
        heartbeats.record((2, None), Some(3), Some(10), at(1));
        heartbeats.record((1, None), Some(10), Some(10), at(1));
        assert!(fencing_changes(&image, &heartbeats.snapshot(), at(1), start, SESSION).is_empty());
        // Still behind what the leader had at the previous heartbeat.
        heartbeats.record((2, None), Some(9), Some(12), at(2));
        assert!(fencing_changes(&image, &heartbeats.snapshot(), at(2), start, SESSION).is_empty());
        heartbeats.record((2, None), Some(12), Some(12), at(3));
        assert_eq!(
            fencing_changes(&image, &heartbeats.snapshot(), at(3), start, SESSION),
            vec![MetadataRecord::UnfenceBroker { broker_id: 2 }]
        );
    }

    #[test]
    fn only_heartbeats_of_the_registered_directory_keep_a_broker_alive() {
        let start = Instant::now();
        let (registered, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let register = |fenced: bool| {
            let mut records = vec![MetadataRecord::RegisterBroker(BrokerRegistration {
                broker_id: 1,
                incarnation_id: Uuid::new_v4(),
                directory_id: Some(registered),
                endpoints: Vec::new(),
                rack: None,
                fenced: false,
            })];
            if fenced {
                records.push(MetadataRecord::FenceBroker { broker_id: 1 });
            }
            MetadataImage::default().apply(&records).unwrap().0
        };
        let heartbeats = Heartbeats::default();
        let at = |s| start + Duration::from_secs(s);
        for second in 1..=12 {
            heartbeats.record((1, Some(other)), Some(5), Some(5), at(second));
        }
        let table = heartbeats.snapshot();
        assert_eq!(
            fencing_changes(&register(false), &table, at(12), start, SESSION),
            vec![MetadataRecord::FenceBroker { broker_id: 1 }]
        );
        assert!(fencing_changes(&register(true), &table, at(12), start, SESSION).is_empty());
    }
}
