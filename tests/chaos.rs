//! The chaos run: three nodes behind fault-injecting proxies (`ProxiedCluster`)
//! under an acks=all, idempotent librdkafka load, and cycles of faults chosen
//! by a seeded generator: kill -9 of a partition leader, kill -9 of a leader
//! whose followers are paused first (so it dies holding records no follower
//! has), a node cut off from everyone, a node paused past its session
//! timeout. After each cycle the cluster must heal (every partition with all
//! three replicas in sync, the load acknowledged again); at the end every
//! partition is read back and checked (`common::checker`): nothing
//! acknowledged lost, nothing twice, nothing out of order, and the replicas
//! identical.
//!
//! CI runs a few cycles; `tools/chaos.sh` runs many in release mode.
//! `STRATA_CHAOS_CYCLES` sets the number of cycles (default 4),
//! `STRATA_CHAOS_SEED` replays a run (its seed is printed first),
//! `STRATA_CHAOS_FAULTS` limits the faults (e.g. `Pause,CutOff`).

mod common;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use common::checker::{assert_all_replicas_identical, check, Load};
use common::cluster::*;
use common::*;
use rdkafka::admin::{NewTopic, TopicReplication};

const PARTITIONS: i32 = 3;

/// splitmix64: enough randomness for choosing faults, and replayable.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Nemesis {
    KillLeader,
    KillLeaderAhead,
    CutOff,
    Pause,
}

#[test]
fn chaos() {
    let cycles = env_number("STRATA_CHAOS_CYCLES").unwrap_or(4);
    let seed = env_number("STRATA_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let all = [
        Nemesis::KillLeader,
        Nemesis::KillLeaderAhead,
        Nemesis::CutOff,
        Nemesis::Pause,
    ];
    let nemeses: Vec<Nemesis> = match std::env::var("STRATA_CHAOS_FAULTS") {
        Ok(names) => names
            .split(',')
            .map(|name| {
                *all.iter()
                    .find(|n| format!("{n:?}") == name.trim())
                    .unwrap_or_else(|| panic!("STRATA_CHAOS_FAULTS: no fault {name:?} in {all:?}"))
            })
            .collect(),
        Err(_) => all.to_vec(),
    };
    eprintln!("chaos: {cycles} cycles of {nemeses:?}, STRATA_CHAOS_SEED={seed}");
    let mut random = Seeded(seed);
    let started = Instant::now();

    let mut cluster = ProxiedCluster::start();
    let topic = unique_topic("chaos");
    let admin = admin_client(&cluster.bootstrap());
    let new_topic = NewTopic::new(&topic, PARTITIONS, TopicReplication::Fixed(3))
        .set("min.insync.replicas", "2");
    let created =
        block_on(admin.create_topics([&new_topic], &admin_options())).expect("CreateTopics");
    assert!(created[0].is_ok(), "{created:?}");
    wait_until("every partition fully in sync", || {
        all_in_sync(&cluster.address(0), &topic)
    });
    let load = Load::start(
        &cluster.bootstrap(),
        &topic,
        PARTITIONS,
        20,
        Duration::from_millis(5),
    );
    load.wait_for_progress(300);

    let mut faults: BTreeMap<Nemesis, usize> = BTreeMap::new();
    for cycle in 0..cycles {
        let nemesis = nemeses[random.below(nemeses.len() as u64) as usize];
        *faults.entry(nemesis).or_default() += 1;
        let partition = random.below(PARTITIONS as u64) as i32;
        let leader = view(&cluster.address(0), &topic).1[&partition];
        let node = match nemesis {
            Nemesis::KillLeader | Nemesis::KillLeaderAhead => leader as usize - 1,
            Nemesis::CutOff | Nemesis::Pause => random.below(3) as usize,
        };
        eprintln!(
            "chaos: cycle {cycle}: {nemesis:?} node {} (partition {partition} led by {leader})",
            node + 1
        );
        let others: Vec<usize> = (0..3).filter(|o| *o != node).collect();
        // How long a fault lasts: past the session timeout (1.5 s), so the
        // controller acts on it.
        let hold = Duration::from_millis(2_000 + random.below(1_000));
        match nemesis {
            Nemesis::KillLeader => {
                cluster.brokers[node].kill9();
                thread::sleep(hold);
                cluster.brokers[node].restart();
            }
            Nemesis::KillLeaderAhead => {
                for &other in &others {
                    cluster.brokers[other].pause();
                }
                thread::sleep(Duration::from_millis(300));
                cluster.brokers[node].kill9();
                for &other in &others {
                    cluster.brokers[other].resume();
                }
                thread::sleep(hold);
                cluster.brokers[node].restart();
            }
            Nemesis::CutOff => {
                cluster.cut_off(node);
                thread::sleep(hold);
                cluster.heal();
            }
            Nemesis::Pause => {
                cluster.brokers[node].pause();
                thread::sleep(hold);
                cluster.brokers[node].resume();
            }
        }
        let observer = cluster.address(others[0]);
        wait_until("every partition fully in sync again", || {
            all_in_sync(&observer, &topic)
        });
        load.wait_for_progress(300);
        eprintln!(
            "chaos: cycle {cycle} healed at {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    let (sent, acks) = load.stop();
    let verdict = check(&cluster.address(0), &topic, PARTITIONS, &acks);
    eprintln!(
        "chaos: {cycles} cycles ({faults:?}) in {:.0} s, seed {seed}: {sent} sent, {} acknowledged, {} failed ({} of them present), {} lost, {} duplicated, {} reordered, {} at another offset",
        started.elapsed().as_secs_f64(),
        verdict.acknowledged,
        acks.failed.len(),
        verdict.failed_but_present,
        verdict.lost.len(),
        verdict.duplicated.len(),
        verdict.reordered.len(),
        verdict.moved.len(),
    );
    eprintln!("chaos: failed deliveries: {:?}", acks.failures());
    assert!(verdict.is_clean(), "seed {seed}: {verdict:?}");
    assert_all_replicas_identical(&cluster.brokers, &topic, PARTITIONS);
    // Only so the cluster outlives the checks above.
    cluster.heal();
}

/// Whether every partition of `topic` has a leader and three in-sync
/// replicas, as the broker at `address` says.
fn all_in_sync(address: &str, topic: &str) -> bool {
    let partitions = partitions_of(address, topic);
    partitions.len() == PARTITIONS as usize
        && partitions
            .iter()
            .all(|p| p.leader_id.0 > 0 && p.isr_nodes.len() == 3)
}
