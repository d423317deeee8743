//! The leader epoch cache (Kafka's `LeaderEpochFileCache`): for each leader
//! epoch that appended to the log, the first offset it appended, kept in the
//! partition directory's `leader-epoch-checkpoint` in Kafka's format:
//!
//! ```text
//! 0            <- format version
//! 2            <- number of entries
//! 0 0          <- epoch, start offset
//! 2 100
//! ```
//!
//! It answers OffsetForLeaderEpoch: where the log of an epoch ends, so that a
//! client (KIP-320) or a follower can tell whether what it holds diverges.

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::StorageError;

/// Kafka's file name, in the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// An epoch and the first offset appended under it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The epochs of one log, oldest first: epochs and start offsets both
/// strictly increase.
#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint in `dir`; `None` when there is none (a log of a
    /// release before it, to be rebuilt from its batches).
    pub fn read(dir: &Path) -> Result<Option<LeaderEpochCache>, StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        if !path.exists() {
            return Ok(None);
        }
        let mut entries: Vec<EpochEntry> = Vec::new();
        for (line, [epoch, start_offset]) in checkpoint::read_entries::<2>(&path)? {
            let invalid = |reason: String| StorageError::InvalidCheckpoint {
                path: path.clone(),
                line,
                reason,
            };
            let entry = EpochEntry {
                epoch: epoch
                    .parse()
                    .map_err(|_| invalid(format!("bad epoch {epoch:?}")))?,
                start_offset: start_offset
                    .parse()
                    .map_err(|_| invalid(format!("bad offset {start_offset:?}")))?,
            };
            if entries.last().is_some_and(|last| {
                last.epoch >= entry.epoch || last.start_offset > entry.start_offset
            }) {
                return Err(invalid("epochs and offsets must increase".to_string()));
            }
            entries.push(entry);
        }
        Ok(Some(LeaderEpochCache { path, entries }))
    }

    /// An empty cache for `dir`, nothing written yet.
    pub fn empty(dir: &Path) -> LeaderEpochCache {
        LeaderEpochCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Notes that `epoch` appends from `start_offset` on, unless the latest
    /// entry says so already; entries it contradicts (a later or equal
    /// epoch, or one starting at or after it) are dropped. Returns whether
    /// anything changed (the caller writes the file).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            return false;
        }
        let needed = self
            .entries
            .last()
            .is_none_or(|last| last.epoch != epoch || start_offset < last.start_offset);
        if needed {
            self.entries
                .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
            self.entries.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        needed
    }

    /// The log was cut at `end_offset`: epochs that started at or after it
    /// are gone.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: epochs wholly below it are
    /// gone, and the one holding it starts there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset < start_offset);
        if below == 0 {
            return false;
        }
        self.entries.drain(..below - 1);
        let next_starts_there = self
            .entries
            .get(1)
            .is_some_and(|next| next.start_offset == start_offset);
        if next_starts_there {
            self.entries.remove(0);
        } else {
            self.entries[0].start_offset = start_offset;
        }
        true
    }

    /// Forgets every epoch (the log was emptied).
    pub fn clear(&mut self) -> bool {
        let had = !self.entries.is_empty();
        self.entries.clear();
        had
    }

    /// OffsetForLeaderEpoch for `requested`, as Kafka answers it: the
    /// largest epoch at or below it that the log holds, and the offset where
    /// that epoch's records end (the start of the next epoch, or the log end
    /// offset for the latest). `(-1, -1)` when the log knows no epoch at or
    /// above the requested one, or the request names none.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if requested < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|floor| self.entries[floor]) {
            Some(floor) => (floor.epoch, next.start_offset),
            // Older epochs were removed with their records: the first one
            // left starts where the requested one's records would end.
            None => (requested, next.start_offset),
        }
    }

    /// Writes the checkpoint file (atomically).
    pub fn write(&self) -> Result<(), StorageError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|e| format!("{} {}", e.epoch, e.start_offset))
            .collect();
        checkpoint::write_entries(&self.path, &lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut cache = LeaderEpochCache::empty(Path::new("/nonexistent"));
        for (epoch, start) in entries {
            assert!(cache.assign(*epoch, *start));
        }
        cache
    }

    fn pairs(cache: &LeaderEpochCache) -> Vec<(i32, i64)> {
        cache
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let epochs = cache(&[(0, 0), (2, 100), (5, 250)]);
        assert_eq!(
            epochs.end_offset_for(5, 300),
            (5, 300),
            "latest: the log end"
        );
        assert_eq!(epochs.end_offset_for(0, 300), (0, 100));
        assert_eq!(epochs.end_offset_for(1, 300), (0, 100), "no records of 1");
        assert_eq!(epochs.end_offset_for(3, 300), (2, 250));
        assert_eq!(epochs.end_offset_for(6, 300), (-1, -1), "newer than any");
        assert_eq!(epochs.end_offset_for(-1, 300), (-1, -1));
        let trimmed = {
            let mut c = cache(&[(0, 0), (2, 100), (5, 250)]);
            c.truncate_from_start(120);
            c
        };
        assert_eq!(pairs(&trimmed), [(2, 120), (5, 250)]);
        assert_eq!(trimmed.end_offset_for(1, 300), (1, 120), "older than kept");
    }

    #[test]
    fn assigning_keeps_epochs_and_offsets_increasing() {
        let mut c = cache(&[(0, 0), (1, 10)]);
        assert!(!c.assign(1, 20), "the latest epoch goes on");
        assert!(
            c.assign(3, 10),
            "an epoch that appended nothing is replaced"
        );
        assert_eq!(pairs(&c), [(0, 0), (3, 10)]);
        assert!(
            c.assign(2, 5),
            "an older epoch truncates what it contradicts"
        );
        assert_eq!(pairs(&c), [(0, 0), (2, 5)]);
        assert!(!c.assign(-1, 7));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(0, 0), (2, 100), (5, 250)]);
        assert!(c.truncate_from_end(250));
        assert_eq!(pairs(&c), [(0, 0), (2, 100)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(100));
        assert_eq!(pairs(&c), [(2, 100)]);
        assert!(c.clear());
        assert_eq!(c.end_offset_for(2, 0), (-1, -1));
    }

    #[test]
    fn the_checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LeaderEpochCache::read(dir.path()).unwrap().is_none());
        let mut c = LeaderEpochCache::empty(dir.path());
        c.assign(0, 0);
        c.assign(4, 42);
        c.write().unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n4 42\n");
        let back = LeaderEpochCache::read(dir.path()).unwrap().unwrap();
        assert_eq!(back.entries(), c.entries());
        std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), "0\n2\n4 0\n3 9\n").unwrap();
        assert!(LeaderEpochCache::read(dir.path()).is_err());
    }
}
