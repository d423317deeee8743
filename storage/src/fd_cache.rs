//! A process-wide cache of open segment files, so that a broker with many
//! partitions holds a bounded number of file descriptors and index mappings.
//!
//! A segment does not keep its files open. Whenever it needs one — its `.log` file
//! to append or read, an index file to append to (active segment) or its read-only
//! mapping (older segments) — it asks this cache, which opens the file on a miss and
//! closes the least recently used entry once more than [`open_file_limit`] entries are
//! open. Handles are reference counted: a reader that got a file keeps it usable
//! after eviction (the descriptor closes when the last clone goes), so eviction never
//! breaks a read in progress, and a file that cannot be reopened is a
//! `StorageError::Io` for that one request.
//!
//! Kafka keeps every segment's files open and asks operators for a high
//! `ulimit -n`; with 10,000 partitions that is 30,000 descriptors before the first
//! client connects. Here idle partitions cost none.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use memmap2::Mmap;

use crate::StorageError;

/// Default bound on cached handles (each at most one descriptor or one mapping).
pub const DEFAULT_OPEN_FILE_LIMIT: usize = 1024;

/// Which file of a segment a handle belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum FileKind {
    Log,
    OffsetIndex,
    TimeIndex,
}

/// Cache key: a segment's process-unique id and the file.
pub(crate) type FileKey = (u64, FileKind);

/// An open file or a read-only mapping of one.
#[derive(Clone)]
pub(crate) enum Handle {
    File(Arc<File>),
    Map(Arc<Mmap>),
}

struct Entry {
    handle: Handle,
    last_used: u64,
}

struct Inner {
    limit: usize,
    tick: u64,
    entries: HashMap<FileKey, Entry>,
    /// `last_used` -> key, oldest first: the eviction order.
    by_age: BTreeMap<u64, FileKey>,
}

/// A bounded LRU of open segment files.
pub(crate) struct FileCache {
    inner: Mutex<Inner>,
}

impl FileCache {
    pub(crate) fn new(limit: usize) -> FileCache {
        FileCache {
            inner: Mutex::new(Inner {
                limit: limit.max(1),
                tick: 0,
                entries: HashMap::new(),
                by_age: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held; a poisoned cache is still sound.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached handle for `key`, or the one `open` makes (which is then cached,
    /// evicting the least recently used entries beyond the limit). `open` runs without
    /// the lock held, so a slow open does not stall other partitions.
    pub(crate) fn get_or_open(
        &self,
        key: FileKey,
        open: impl FnOnce() -> Result<Handle, StorageError>,
    ) -> Result<Handle, StorageError> {
        if let Some(handle) = self.touch(key) {
            return Ok(handle);
        }
        let opened = open()?;
        let evicted;
        let handle = {
            let mut inner = self.lock();
            inner.tick += 1;
            let tick = inner.tick;
            let handle = match inner.entries.get_mut(&key) {
                // Someone else opened it meanwhile: use theirs, drop ours.
                Some(entry) => {
                    let old = std::mem::replace(&mut entry.last_used, tick);
                    let handle = entry.handle.clone();
                    inner.by_age.remove(&old);
                    inner.by_age.insert(tick, key);
                    handle
                }
                None => {
                    inner.entries.insert(
                        key,
                        Entry {
                            handle: opened.clone(),
                            last_used: tick,
                        },
                    );
                    inner.by_age.insert(tick, key);
                    opened
                }
            };
            evicted = inner.evict();
            handle
        };
        // Descriptors close and mappings go here, outside the lock.
        drop(evicted);
        Ok(handle)
    }

    fn touch(&self, key: FileKey) -> Option<Handle> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let entry = inner.entries.get_mut(&key)?;
        let old = std::mem::replace(&mut entry.last_used, tick);
        let handle = entry.handle.clone();
        inner.by_age.remove(&old);
        inner.by_age.insert(tick, key);
        Some(handle)
    }

    /// Drops the cached handle of one file (before it is truncated, rewritten or
    /// changes between writable file and mapping).
    pub(crate) fn forget(&self, key: FileKey) {
        let removed = {
            let mut inner = self.lock();
            let removed = inner.entries.remove(&key);
            if let Some(entry) = &removed {
                inner.by_age.remove(&entry.last_used);
            }
            removed
        };
        drop(removed);
    }

    /// Drops every cached handle of a segment (it is gone or replaced).
    pub(crate) fn forget_segment(&self, id: u64) {
        for kind in [FileKind::Log, FileKind::OffsetIndex, FileKind::TimeIndex] {
            self.forget((id, kind));
        }
    }

    fn set_limit(&self, limit: usize) {
        let evicted = {
            let mut inner = self.lock();
            inner.limit = limit.max(1);
            inner.evict()
        };
        drop(evicted);
    }

    fn limit(&self) -> usize {
        self.lock().limit
    }

    /// Closes everything cached (tests: forces reopens).
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        let drained: Vec<Entry> = {
            let mut inner = self.lock();
            inner.by_age.clear();
            inner.entries.drain().map(|(_, entry)| entry).collect()
        };
        drop(drained);
    }

    /// Handles cached right now.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Inner {
    /// Removes the oldest entries beyond the limit and returns them, to be dropped
    /// once the lock is released.
    fn evict(&mut self) -> Vec<Entry> {
        let mut evicted = Vec::new();
        while self.entries.len() > self.limit {
            let Some((_, key)) = self.by_age.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&key) {
                evicted.push(entry);
            }
        }
        evicted
    }
}

/// The cache every `Log` of this process shares.
pub(crate) fn global() -> &'static FileCache {
    static CACHE: OnceLock<FileCache> = OnceLock::new();
    CACHE.get_or_init(|| FileCache::new(DEFAULT_OPEN_FILE_LIMIT))
}

/// A new process-unique segment id (the cache key of its files).
pub(crate) fn next_segment_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sets how many segment files (descriptors or index mappings) the process keeps
/// open at most; least recently used ones are closed beyond it. A broker sets it
/// from its file descriptor limit at start-up.
pub fn set_open_file_limit(limit: usize) {
    global().set_limit(limit);
}

/// The current bound set by [`set_open_file_limit`].
pub fn open_file_limit() -> usize {
    global().limit()
}

/// How many segment files are open in the cache right now (for tests and metrics).
pub fn open_files() -> usize {
    global().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_handle(dir: &std::path::Path, name: &str) -> Result<Handle, StorageError> {
        let path = dir.join(name);
        File::create(&path)
            .map(|file| Handle::File(Arc::new(file)))
            .map_err(crate::error::io_error(&path))
    }

    #[test]
    fn least_recently_used_entries_are_evicted_and_reopened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(2);
        let mut opens = 0;
        let mut open = |name: &str| {
            opens += 1;
            file_handle(dir.path(), name)
        };
        cache
            .get_or_open((1, FileKind::Log), || open("a"))
            .expect("a");
        cache
            .get_or_open((2, FileKind::Log), || open("b"))
            .expect("b");
        // Touch 1, so 2 is the oldest when 3 arrives.
        cache
            .get_or_open((1, FileKind::Log), || panic!("1 is cached"))
            .expect("a again");
        let held = cache
            .get_or_open((3, FileKind::Log), || open("c"))
            .expect("c");
        assert_eq!(cache.len(), 2);
        let mut reopened = false;
        cache
            .get_or_open((2, FileKind::Log), || {
                reopened = true;
                file_handle(dir.path(), "b")
            })
            .expect("b reopened");
        assert!(reopened, "2 was evicted");
        // 3 was evicted now, but the handle held outside still works.
        let Handle::File(file) = held else {
            panic!("a file")
        };
        file.metadata().expect("evicted handle still open");
        cache.forget_segment(2);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_failed_open_is_an_error_and_caches_nothing() {
        let cache = FileCache::new(4);
        let error = cache
            .get_or_open((9, FileKind::Log), || {
                File::open("/nonexistent/strata/x")
                    .map(|f| Handle::File(Arc::new(f)))
                    .map_err(crate::error::io_error(std::path::Path::new("/nonexistent")))
            })
            .err()
            .expect("open fails");
        assert_eq!(error.kafka_error_code(), 56);
        assert_eq!(cache.len(), 0);
    }
}
