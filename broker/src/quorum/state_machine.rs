//! The state machine of the metadata quorum: the [`MetadataImage`], advanced
//! by each committed change, and its snapshots.
//!
//! A committed change that does not apply to the image (two proposals that
//! each passed their check against an older image) is skipped the same way
//! on every node, and its writer is told why. Each image is published to the
//! broker with what changed ([`Published`]).
//!
//! A snapshot is the image as records ([`MetadataImage::to_records`]) with
//! the Raft position it reflects, kept in `snapshot` beside the log; a node
//! starts from it and applies only the entries after it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use openraft::storage::{RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend,
    RaftSnapshotBuilder, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::TypeConfig;
use crate::metadata::{ApplyError, MetadataDelta, MetadataImage, MetadataRecord, METADATA_LOG_DIR};
use crate::metadata_store::write_atomically;

/// The file of the latest snapshot, in the metadata log's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

type Error = StorageError<u64>;

/// Told of every new image, with what changed since the one before.
pub type MetadataListener = Box<dyn Fn(&Arc<MetadataImage>, &MetadataDelta) + Send + Sync>;

/// The image as of the last applied entry, and who is told of the next.
#[derive(Default)]
pub struct Published {
    image: RwLock<Arc<MetadataImage>>,
    listener: Mutex<Option<MetadataListener>>,
}

impl Published {
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets who is told of each new image; returns the image the first call
    /// will start from (nothing is published in between).
    pub fn subscribe(&self, listener: MetadataListener) -> Arc<MetadataImage> {
        let mut slot = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = Some(listener);
        self.image()
    }

    /// [`Published::publish`] from the quorum's runtime: the listener opens
    /// and deletes logs (a CreateTopics of thousands of partitions takes a
    /// while), so the runtime's worker is handed to another thread meanwhile
    /// and heartbeats and elections go on.
    fn publish_from_runtime(&self, image: Arc<MetadataImage>, delta: &MetadataDelta) {
        tokio::task::block_in_place(|| self.publish(image, delta));
    }

    fn publish(&self, image: Arc<MetadataImage>, delta: &MetadataDelta) {
        let listener = self.listener.lock().unwrap_or_else(PoisonError::into_inner);
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = image.clone();
        if let Some(listener) = listener.as_ref() {
            listener(&image, delta);
        }
    }
}

/// A snapshot as stored and as sent to a follower.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: SnapshotMeta<u64, BasicNode>,
    pub records: Vec<MetadataRecord>,
}

fn snapshot_error(verb: ErrorVerb, error: impl ToString) -> Error {
    StorageIOError::new(
        ErrorSubject::Snapshot(None),
        verb,
        AnyError::error(error.to_string()),
    )
    .into()
}

fn image_of(records: &[MetadataRecord]) -> Result<MetadataImage, Error> {
    MetadataImage::default()
        .apply(records)
        .map(|(image, _)| image)
        .map_err(|e| snapshot_error(ErrorVerb::Read, format!("snapshot does not apply: {e}")))
}

pub struct StateMachine {
    dir: PathBuf,
    published: Arc<Published>,
    image: Arc<MetadataImage>,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl StateMachine {
    /// Starts from the snapshot in `data_dir`'s metadata log directory, if
    /// there is one, and publishes its image.
    pub fn open(data_dir: &Path, published: Arc<Published>) -> Result<StateMachine, Error> {
        let dir = data_dir.join(METADATA_LOG_DIR);
        let stored: Option<StoredSnapshot> = match fs::read(dir.join(SNAPSHOT_FILE)) {
            Ok(bytes) => Some(
                serde_json::from_slice(&bytes).map_err(|e| snapshot_error(ErrorVerb::Read, e))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(snapshot_error(ErrorVerb::Read, e)),
        };
        let mut machine = StateMachine {
            dir,
            published,
            image: Arc::default(),
            applied: None,
            membership: StoredMembership::default(),
            snapshot: Arc::default(),
        };
        if let Some(stored) = stored {
            machine.restore(&stored, false)?;
            *machine.lock_snapshot() = Some(stored);
        }
        Ok(machine)
    }

    fn lock_snapshot(&self) -> std::sync::MutexGuard<'_, Option<StoredSnapshot>> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the state with a snapshot's and publishes the difference
    /// (`on_runtime`: from the quorum's runtime, see
    /// [`Published::publish_from_runtime`]).
    fn restore(&mut self, stored: &StoredSnapshot, on_runtime: bool) -> Result<(), Error> {
        let image = Arc::new(image_of(&stored.records)?);
        let delta = image.delta_from(&self.image);
        self.image = image.clone();
        self.applied = stored.meta.last_log_id;
        self.membership = stored.meta.last_membership.clone();
        if on_runtime {
            self.published.publish_from_runtime(image, &delta);
        } else {
            self.published.publish(image, &delta);
        }
        Ok(())
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), Error> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Result<(), ApplyError>>, Error>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Ok(()),
                EntryPayload::Membership(membership) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Ok(())
                }
                EntryPayload::Normal(records) => match self.image.apply(&records) {
                    Ok((image, delta)) => {
                        self.image = Arc::new(image);
                        self.published
                            .publish_from_runtime(self.image.clone(), &delta);
                        Ok(())
                    }
                    Err(error) => {
                        tracing::info!(index = entry.log_id.index, %error, "a committed change did not apply; skipped");
                        Err(error)
                    }
                },
            };
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            applied: self.applied,
            membership: self.membership.clone(),
            slot: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Vec<MetadataRecord>>, Error> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Vec<MetadataRecord>>,
    ) -> Result<(), Error> {
        let stored = StoredSnapshot {
            meta: meta.clone(),
            records: *snapshot,
        };
        save(&self.dir, &stored)?;
        self.restore(&stored, true)?;
        *self.lock_snapshot() = Some(stored);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, Error> {
        Ok(self.lock_snapshot().clone().map(|stored| Snapshot {
            meta: stored.meta,
            snapshot: Box::new(stored.records),
        }))
    }
}

fn save(dir: &Path, stored: &StoredSnapshot) -> Result<(), Error> {
    let bytes = serde_json::to_vec(stored).map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
    write_atomically(&dir.join(SNAPSHOT_FILE), &bytes)
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))
}

/// Builds a snapshot of the state as it was when the builder was made.
pub struct SnapshotBuilder {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    slot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, Error> {
        let snapshot_id = match self.applied {
            Some(log_id) => format!("{}-{}", log_id.leader_id.term, log_id.index),
            None => "empty".to_string(),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            records: self.image.to_records(),
        };
        save(&self.dir, &stored)?;
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(stored.clone());
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(stored.records),
        })
    }
}
