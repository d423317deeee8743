//! A seeded simulation of one partition's leader with two followers: random
//! appends, fetches, stalls, time and controller answers drive
//! [`ReplicaState`], and every step checks what must always hold. A failing
//! run names its seed; `STRATA_SIM_SEED=<seed>` replays just that one.

use std::collections::BTreeSet;

use super::{Effect, ReplicaState};

/// A small deterministic generator (xorshift64*): the same seed, the same run.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const LEADER: i32 = 1;
const FOLLOWERS: [i32; 2] = [2, 3];
const MAX_LAG_MS: i64 = 1_000;

struct World {
    rng: Rng,
    state: ReplicaState,
    now: i64,
    leader_end: i64,
    /// What each follower really holds, and whether it is stalled.
    follower_end: [i64; 2],
    stalled: [bool; 2],
    /// The controller's view: ISR, partition epoch, a proposal in flight.
    isr: Vec<i32>,
    partition_epoch: i32,
    pending: Option<Vec<i32>>,
    high_watermark: i64,
    trace: Vec<String>,
}

impl World {
    fn new(seed: u64) -> World {
        let isr = vec![1, 2, 3];
        let (state, effects) =
            ReplicaState::lead(LEADER, 1, 0, &[1, 2, 3], &isr, 0, 0, MAX_LAG_MS, 0);
        assert!(effects.is_empty());
        World {
            rng: Rng::new(seed),
            state,
            now: 0,
            leader_end: 0,
            follower_end: [0, 0],
            stalled: [false, false],
            isr,
            partition_epoch: 0,
            pending: None,
            high_watermark: 0,
            trace: Vec::new(),
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            self.trace.push(format!("  -> {effect:?}"));
            match effect {
                Effect::HighWatermark(hw) => {
                    assert!(hw > self.high_watermark, "the high watermark moved back");
                    self.high_watermark = hw;
                }
                Effect::AlterIsr {
                    isr,
                    partition_epoch,
                } => {
                    assert!(self.pending.is_none(), "two proposals in flight");
                    assert!(isr.contains(&LEADER), "the leader left the ISR");
                    assert_eq!(partition_epoch, self.partition_epoch, "a stale proposal");
                    self.pending = Some(isr);
                }
            }
        }
    }

    fn step(&mut self) {
        match self.rng.below(6) {
            0 => {
                let count = 1 + self.rng.below(5) as i64;
                self.leader_end += count;
                self.trace
                    .push(format!("append {count} -> {}", self.leader_end));
                let effects = self.state.on_append(self.leader_end);
                self.apply(effects);
            }
            1 | 2 => {
                let f = self.rng.below(2) as usize;
                if !self.stalled[f] {
                    let offset = self.follower_end[f];
                    self.trace
                        .push(format!("fetch by {} at {offset}", FOLLOWERS[f]));
                    let effects = self.state.on_follower_fetch(FOLLOWERS[f], offset, self.now);
                    self.apply(effects);
                    // The answer brings some or all of what the leader has.
                    let gap = (self.leader_end - offset) as u64;
                    self.follower_end[f] = offset + self.rng.below(gap + 1) as i64;
                }
            }
            3 => {
                let f = self.rng.below(2) as usize;
                self.stalled[f] = !self.stalled[f];
                self.trace
                    .push(format!("{} stalled: {}", FOLLOWERS[f], self.stalled[f]));
            }
            4 => {
                self.now += self.rng.below(600) as i64;
                self.trace.push(format!("tick {}", self.now));
                let effects = self.state.on_tick(self.now);
                self.apply(effects);
            }
            _ => self.answer(),
        }
        self.check();
    }

    /// The controller takes the pending proposal (or, now and then, finds
    /// it stale and refuses it).
    fn answer(&mut self) {
        let Some(isr) = self.pending.take() else {
            return;
        };
        if self.rng.below(5) == 0 {
            self.trace.push("proposal refused".to_string());
            self.state.on_proposal_refused();
            return;
        }
        self.partition_epoch += 1;
        self.isr = isr;
        self.trace
            .push(format!("isr {:?} epoch {}", self.isr, self.partition_epoch));
        let effects = self
            .state
            .on_metadata(self.partition_epoch, &self.isr.clone());
        self.apply(effects);
    }

    fn check(&self) {
        let hw = self.state.high_watermark();
        assert_eq!(hw, self.high_watermark);
        assert!(hw <= self.leader_end, "above the leader's log end");
        let members: BTreeSet<i32> = self
            .isr
            .iter()
            .chain(self.pending.iter().flatten())
            .copied()
            .collect();
        for (i, id) in FOLLOWERS.iter().enumerate() {
            if self.isr.contains(id) {
                assert!(
                    hw <= self.follower_end[i],
                    "in-sync replica {id} lacks records below the high watermark"
                );
            }
        }
        assert!(members.contains(&LEADER));
        assert_eq!(
            self.state.isr(),
            self.isr,
            "the leader's ISR is the controller's"
        );
    }

    /// No more faults: followers fetch until the log is whole everywhere.
    fn settle(&mut self) {
        self.stalled = [false, false];
        for _ in 0..100 {
            for (f, id) in FOLLOWERS.iter().enumerate() {
                self.now += 10;
                let effects = self
                    .state
                    .on_follower_fetch(*id, self.follower_end[f], self.now);
                self.apply(effects);
                self.follower_end[f] = self.leader_end;
            }
            let effects = self.state.on_tick(self.now);
            self.apply(effects);
            self.answer();
            self.check();
        }
    }
}

fn run(seed: u64) {
    let mut world = World::new(seed);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..400 {
            world.step();
        }
        world.settle();
        assert_eq!(
            world.high_watermark, world.leader_end,
            "the log is not whole"
        );
        assert_eq!(
            world.isr,
            [1, 2, 3],
            "a caught-up follower is not back in sync"
        );
    }));
    if let Err(panic) = outcome {
        let tail = world.trace.len().saturating_sub(30);
        panic!(
            "seed {seed} failed (replay: STRATA_SIM_SEED={seed}): {:?}\nlast steps:\n{}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or(panic.downcast_ref::<&str>().copied()),
            world.trace[tail..].join("\n")
        );
    }
}

#[test]
fn the_leader_s_replica_state_holds_its_invariants_under_random_schedules() {
    match std::env::var("STRATA_SIM_SEED") {
        Ok(seed) => run(seed.parse().expect("a number")),
        Err(_) => (0..300).for_each(run),
    }
}
