//! The Raft log of the metadata quorum on disk: `<data-dir>/__cluster_metadata-0/`,
//! a Kafka-format log (so `strata dump-log --records` reads it) in which the
//! entry with Raft index `i` is the one record at offset `i`, in a batch of its
//! own whose partition leader epoch is the entry's term. The record's value is
//! the JSON of the entry's payload: a change (a list of [`MetadataRecord`]s),
//! a new leader's blank entry, or a voter set.
//!
//! Beside the segments, `quorum-state` (KRaft keeps a file of that name there
//! too) holds the vote, the last known commit and where the log was purged
//! up to after a snapshot; it is replaced whole (write, fsync, rename).
//!
//! Every entry is also kept in memory: the metadata log is small, is read
//! whole at start anyway, and followers are fed from memory.

use std::collections::VecDeque;
use std::fmt::Debug;
use std::fs;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use kafka_protocol::records::Compression;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, StorageError,
    StorageIOError, Vote,
};
use serde::{Deserialize, Serialize};
use strata_storage::{encode_plain_batch, for_each_decoded_batch, plain_record, Log, LogConfig};

use super::TypeConfig;
use crate::broker::now_ms;
use crate::metadata::METADATA_LOG_DIR;
use crate::metadata_store::write_atomically;

/// The file of the vote, commit and purge point, in the log's directory.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

type Error = StorageError<u64>;

/// What must survive a restart besides the entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    purged: Option<LogId<u64>>,
}

struct Inner {
    dir: PathBuf,
    log: Log,
    state: QuorumState,
    /// Every entry after `state.purged`, by index.
    entries: VecDeque<Entry<TypeConfig>>,
}

/// The log storage handed to openraft; clones share one log.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

fn io_error(subject: ErrorSubject<u64>, verb: ErrorVerb, error: impl ToString) -> Error {
    StorageIOError::new(subject, verb, AnyError::error(error.to_string())).into()
}

fn log_error(verb: ErrorVerb, error: impl ToString) -> Error {
    io_error(ErrorSubject::Logs, verb, error)
}

impl LogStore {
    /// Opens (or creates) the log in `data_dir` and reads every entry back.
    pub fn open(data_dir: &Path) -> Result<LogStore, Error> {
        let dir = data_dir.join(METADATA_LOG_DIR);
        let config = LogConfig {
            // One change is one batch, whatever its size (a CreateTopics of
            // thousands of partitions).
            max_message_bytes: 1 << 30,
            ..LogConfig::default()
        };
        let read = |e: &dyn ToString| log_error(ErrorVerb::Read, e.to_string());
        // No recovery point is kept: the whole log is checked at every start.
        let mut log = Log::open(&dir, config, 0, false, now_ms()).map_err(|e| read(&e))?;
        let state = read_state(&dir)?;
        let first = state.purged.map_or(0, |purged| purged.index + 1);
        if (log.log_start_offset() as u64) < first && first <= log.log_end_offset() as u64 {
            log.restore_log_start_offset(first as i64);
        }
        let mut entries = VecDeque::new();
        for_each_decoded_batch(&log, |offset, records| {
            let records = records.map_err(ReadFailure)?;
            for (i, record) in records.iter().enumerate() {
                let index = offset as u64 + i as u64;
                if index < first {
                    continue;
                }
                let value = record.value.as_deref().unwrap_or_default();
                let payload: EntryPayload<TypeConfig> =
                    serde_json::from_slice(value).map_err(|e| {
                        ReadFailure(format!("metadata log entry at offset {index}: {e}"))
                    })?;
                let term = record.partition_leader_epoch.max(0) as u64;
                entries.push_back(Entry {
                    log_id: LogId::new(openraft::CommittedLeaderId::new(term, 0), index),
                    payload,
                });
            }
            Ok::<(), ReadFailure>(())
        })
        .map_err(|ReadFailure(e)| read(&e))?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(Inner {
                dir,
                log,
                state,
                entries,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The offset the next entry gets: the metadata log's end offset.
    pub fn end_offset(&self) -> i64 {
        self.lock().log.log_end_offset()
    }
}

fn read_state(dir: &Path) -> Result<QuorumState, Error> {
    let path = dir.join(QUORUM_STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io_error(
                ErrorSubject::Store,
                ErrorVerb::Read,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(QuorumState::default()),
        Err(e) => Err(io_error(ErrorSubject::Store, ErrorVerb::Read, e)),
    }
}

/// Why the log could not be read back.
struct ReadFailure(String);

impl From<strata_storage::StorageError> for ReadFailure {
    fn from(error: strata_storage::StorageError) -> Self {
        ReadFailure(error.to_string())
    }
}

impl Inner {
    fn save_state(&self, subject: ErrorSubject<u64>) -> Result<(), Error> {
        let bytes = serde_json::to_vec(&self.state).expect("the quorum state serializes");
        write_atomically(&self.dir.join(QUORUM_STATE_FILE), &bytes)
            .map_err(|e| io_error(subject, ErrorVerb::Write, e))
    }

    fn first_index(&self) -> u64 {
        self.state.purged.map_or(0, |purged| purged.index + 1)
    }

    /// Where the entry of `index` is (or would be) in `entries`.
    fn position(&self, index: u64) -> usize {
        let first = self
            .entries
            .front()
            .map_or_else(|| self.first_index(), |entry| entry.log_id.index);
        index.saturating_sub(first) as usize
    }

    fn append(&mut self, entry: Entry<TypeConfig>) -> Result<(), Error> {
        let write = |e: &dyn ToString| log_error(ErrorVerb::Write, e.to_string());
        let value = serde_json::to_vec(&entry.payload).map_err(|e| write(&e))?;
        let record = plain_record(None, Some(Bytes::from(value)), now_ms());
        let mut batch = encode_plain_batch(&[record], Compression::None).map_err(|e| write(&e))?;
        let end = self.log.log_end_offset() as u64;
        if end != entry.log_id.index {
            // After a snapshot the log restarts where the snapshot ends.
            if self.entries.is_empty() && entry.log_id.index >= self.first_index() {
                self.log
                    .truncate_fully_and_start_at(entry.log_id.index as i64)
                    .map_err(|e| write(&e))?;
            } else {
                return Err(write(&format!(
                    "entry {} does not follow the log's end {end}",
                    entry.log_id.index
                )));
            }
        }
        let term = i32::try_from(entry.log_id.leader_id.term).map_err(|e| write(&e))?;
        self.log
            .append(&mut batch, term, now_ms())
            .map_err(|e| write(&e))?;
        self.entries.push_back(entry);
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, Error> {
        let inner = self.lock();
        Ok(inner
            .entries
            .iter()
            .filter(|entry| range.contains(&entry.log_id.index))
            .cloned()
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, Error> {
        let inner = self.lock();
        let last_purged_log_id = inner.state.purged;
        let last_log_id = inner
            .entries
            .back()
            .map(|entry| entry.log_id)
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), Error> {
        let mut inner = self.lock();
        inner.state.vote = Some(*vote);
        inner.save_state(ErrorSubject::Vote)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, Error> {
        Ok(self.lock().state.vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<u64>>) -> Result<(), Error> {
        let mut inner = self.lock();
        if inner.state.committed != committed {
            inner.state.committed = committed;
            inner.save_state(ErrorSubject::Store)?;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, Error> {
        Ok(self.lock().state.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        for entry in entries {
            inner.append(entry)?;
        }
        let flushed = inner
            .log
            .flush()
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let mut inner = self.lock();
        let keep = inner.position(log_id.index);
        inner.entries.truncate(keep);
        inner
            .log
            .truncate_to(log_id.index as i64)
            .map_err(|e| log_error(ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), Error> {
        let mut inner = self.lock();
        if inner
            .state
            .purged
            .is_some_and(|purged| purged.index >= log_id.index)
        {
            return Ok(());
        }
        let drop = inner.position(log_id.index + 1).min(inner.entries.len());
        inner.entries.drain(..drop);
        // The purge point is durable before any data goes.
        inner.state.purged = Some(log_id);
        inner.save_state(ErrorSubject::Logs)?;
        let next = log_id.index as i64 + 1;
        let result = if next <= inner.log.log_end_offset() {
            inner.log.delete_records_before(next).map(|_| ())
        } else {
            inner.log.truncate_fully_and_start_at(next)
        };
        result.map_err(|e| log_error(ErrorVerb::Delete, e))
    }
}
