//! Kafka's sparse segment indexes.
//!
//! * `.index` — [`OffsetIndex`]: 8-byte entries (offset relative to the segment base
//!   u32 BE, file position u32 BE). An entry `(O, P)` says the batch starting at byte
//!   `P` ends at offset `O` (Kafka indexes each batch's last offset at its start
//!   position), so a lookup takes the largest entry `<= target` and scans batch headers
//!   forward from `P`.
//! * `.timeindex` — [`TimeIndex`]: 12-byte entries (timestamp i64 BE, relative offset
//!   u32 BE) holding the segment's max timestamp so far and the offset where it was
//!   reached; timestamps only grow.
//!
//! Unlike Kafka, the index of the active segment is not preallocated and written
//! through a shared mapping: its entries live in memory and each append writes the new
//! ones to the end of the file with a positioned write. So an index file is always
//! exactly its entries long (the format Kafka leaves after a clean shutdown), a full
//! disk makes an append fail with ENOSPC instead of killing the process with SIGBUS
//! (a store into a sparse, unallocatable page of a mapping), and an idle partition's
//! index costs no memory. Older segments' indexes are mapped read-only on first use,
//! through the process-wide [`fd_cache`](crate::fd_cache), so their mappings are
//! bounded too.
//!
//! After a crash an index may lack entries or end in a torn one; the log never trusts
//! it blindly: recovery rebuilds the indexes of the segments it scans, and everything
//! else goes through [`OffsetIndex::sanity_check`] / [`TimeIndex::sanity_check`].

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::io_error;
use crate::fd_cache::{self, FileKey, Handle};
use crate::StorageError;

/// Size of one `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of one `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// A file of fixed-size entries: in memory and appendable while its segment is
/// active, mapped read-only on demand otherwise.
struct IndexFile {
    path: PathBuf,
    key: FileKey,
    entry_size: usize,
    /// Active: every entry. `None`: inactive, read through a mapping.
    memory: Option<Vec<u8>>,
    /// Whether the loaded file was a whole number of entries (active only).
    aligned: bool,
    /// Bytes of `memory` already written to the file (active only).
    written: usize,
    /// Most entries the active index takes (`segment.index.bytes`).
    capacity: usize,
}

impl IndexFile {
    /// An inactive handle on `path`; nothing is opened or read.
    fn new(path: &Path, key: FileKey, entry_size: usize) -> IndexFile {
        IndexFile {
            path: path.to_path_buf(),
            key,
            entry_size,
            memory: None,
            aligned: true,
            written: 0,
            capacity: 0,
        }
    }

    /// Reads the file into memory (a missing file is empty): the index becomes
    /// appendable. Every whole entry counts until the caller checks or resets it.
    fn load(&mut self) -> Result<(), StorageError> {
        if self.memory.is_some() {
            return Ok(());
        }
        let mut bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(error) => return Err(io_error(&self.path)(error)),
        };
        self.aligned = bytes.len().is_multiple_of(self.entry_size);
        bytes.truncate(bytes.len() / self.entry_size * self.entry_size);
        self.written = bytes.len();
        self.memory = Some(bytes);
        // A cached read-only mapping must not serve this file any more.
        fd_cache::global().forget(self.key);
        Ok(())
    }

    /// Drops the in-memory entries (all written): reads map the file from now on.
    fn deactivate(&mut self) {
        self.memory = None;
        fd_cache::global().forget(self.key);
    }

    fn is_active(&self) -> bool {
        self.memory.is_some()
    }

    /// Lets the active index grow to `max_bytes` of entries (at least one more).
    fn set_capacity(&mut self, max_bytes: u32) {
        self.capacity = (max_bytes as usize / self.entry_size).max(self.entries() + 1);
    }

    /// Entries of the active index (0 when inactive).
    fn entries(&self) -> usize {
        self.memory
            .as_ref()
            .map_or(0, |m| m.len() / self.entry_size)
    }

    fn is_full(&self) -> bool {
        self.entries() >= self.capacity
    }

    /// Calls `read` with the entry bytes: the memory of an active index, the
    /// (cached) mapping of an inactive one. A torn last entry is left out; `aligned`
    /// tells whether there was one.
    fn with_entries<R>(&self, read: impl FnOnce(&[u8], bool) -> R) -> Result<R, StorageError> {
        if let Some(memory) = &self.memory {
            return Ok(read(memory, self.aligned));
        }
        let Some(map) = self.map()? else {
            return Ok(read(&[], true));
        };
        let whole = map.len() / self.entry_size * self.entry_size;
        Ok(read(&map[..whole], whole == map.len()))
    }

    /// The read-only mapping of an inactive index, `None` for an empty file.
    fn map(&self) -> Result<Option<Arc<Mmap>>, StorageError> {
        let open = || {
            let file = File::open(&self.path).map_err(io_error(&self.path))?;
            let len = file.metadata().map_err(io_error(&self.path))?.len();
            if len == 0 {
                // Nothing to map; an empty slice stands in (not cached).
                return Err(StorageError::Io {
                    path: self.path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                });
            }
            // SAFETY: the index file belongs to this log directory, which one `Log`
            // owns. An inactive index file is never written in place: a rebuild
            // replaces it by rename (the old inode, and this mapping, stay intact) and
            // truncation happens only after `load`, which first drops the cached
            // mapping, with `&mut` access to the segment, so no reader holds it.
            let map = unsafe { Mmap::map(&file) }.map_err(io_error(&self.path))?;
            Ok(Handle::Map(Arc::new(map)))
        };
        match std::fs::metadata(&self.path) {
            Ok(meta) if meta.len() == 0 => return Ok(None),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => {}
        }
        match fd_cache::global().get_or_open(self.key, open)? {
            Handle::Map(map) => Ok(Some(map)),
            Handle::File(_) => {
                // A writable handle left from the active days: replace it.
                fd_cache::global().forget(self.key);
                match fd_cache::global().get_or_open(self.key, open)? {
                    Handle::Map(map) => Ok(Some(map)),
                    Handle::File(_) => Ok(None),
                }
            }
        }
    }

    /// The last whole entry in the file, read with one positioned read (no mapping):
    /// what a segment needs at open.
    fn read_last_entry(&self) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(memory) = &self.memory {
            return Ok(memory
                .len()
                .checked_sub(self.entry_size)
                .map(|at| memory[at..].to_vec()));
        }
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&self.path)(error)),
        };
        let len = file.metadata().map_err(io_error(&self.path))?.len();
        let entries = len / self.entry_size as u64;
        if entries == 0 {
            return Ok(None);
        }
        let mut raw = vec![0u8; self.entry_size];
        file.read_exact_at(&mut raw, (entries - 1) * self.entry_size as u64)
            .map_err(io_error(&self.path))?;
        Ok(Some(raw))
    }

    /// Appends one entry in memory (written by [`IndexFile::write_pending`]). An
    /// inactive index takes no entries: a sparser index is still correct.
    fn push(&mut self, entry: &[u8]) {
        debug_assert!(self.memory.is_some(), "push to an inactive index");
        if let Some(memory) = &mut self.memory {
            memory.extend_from_slice(entry);
        }
    }

    /// The file opened for writing (created if missing), through the cache.
    fn write_handle(&self) -> Result<Arc<File>, StorageError> {
        let open = || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map(|file| Handle::File(Arc::new(file)))
                .map_err(io_error(&self.path))
        };
        match fd_cache::global().get_or_open(self.key, open)? {
            Handle::File(file) => Ok(file),
            Handle::Map(_) => {
                fd_cache::global().forget(self.key);
                match fd_cache::global().get_or_open(self.key, open)? {
                    Handle::File(file) => Ok(file),
                    Handle::Map(_) => Err(StorageError::Io {
                        path: self.path.clone(),
                        source: std::io::Error::other("index file handle changed kind"),
                    }),
                }
            }
        }
    }

    /// Writes the entries appended since the last call to the end of the file. On
    /// failure (ENOSPC, EIO) the file is cut back to what was written before, and the
    /// caller drops the unwritten entries with [`IndexFile::truncate_entries`].
    fn write_pending(&mut self) -> Result<(), StorageError> {
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        if self.written >= memory.len() {
            return Ok(());
        }
        let file = self.write_handle()?;
        if let Err(source) = file.write_all_at(&memory[self.written..], self.written as u64) {
            let _ = file.set_len(self.written as u64);
            // Reopen next time rather than trust a descriptor that failed.
            fd_cache::global().forget(self.key);
            return Err(StorageError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.written = memory.len();
        Ok(())
    }

    /// Keeps the first `keep` entries, in memory and in the file.
    fn truncate_entries(&mut self, keep: usize) -> Result<(), StorageError> {
        let keep_bytes = keep * self.entry_size;
        if let Some(memory) = &mut self.memory {
            memory.truncate(keep_bytes);
        }
        if self.written > keep_bytes || !self.aligned {
            let file = self.write_handle()?;
            file.set_len(keep_bytes as u64)
                .map_err(io_error(&self.path))?;
            self.written = keep_bytes;
            self.aligned = true;
        }
        Ok(())
    }

    /// Forgets every entry in memory before a rebuild; the file keeps its old
    /// content until [`IndexFile::rewrite`].
    fn reset(&mut self) {
        self.memory = Some(Vec::new());
        fd_cache::global().forget(self.key);
    }

    /// Replaces the file content with the entries in memory (after a rebuild) and
    /// fsyncs it, unless the file already holds exactly those entries (the common
    /// case after a crash: a start-up over thousands of partitions then writes and
    /// fsyncs nothing).
    fn rewrite(&mut self) -> Result<(), StorageError> {
        let Some(memory) = &self.memory else {
            return Ok(());
        };
        match std::fs::read(&self.path) {
            Ok(on_disk) if on_disk == *memory => {
                self.written = memory.len();
                self.aligned = true;
                return Ok(());
            }
            _ => {}
        }
        let file = self.write_handle()?;
        file.set_len(0).map_err(io_error(&self.path))?;
        file.write_all_at(memory, 0).map_err(io_error(&self.path))?;
        file.sync_data().map_err(io_error(&self.path))?;
        self.written = memory.len();
        self.aligned = true;
        Ok(())
    }

    /// fsyncs what was written (the file is only written while active).
    fn sync(&self) -> Result<(), StorageError> {
        if self.memory.is_none() {
            return Ok(());
        }
        self.write_handle()?
            .sync_data()
            .map_err(io_error(&self.path))
    }
}

/// Writes `bytes` as the new content of the index file at `path` without touching
/// the old one until the end (temporary file, fsync, rename): a rebuild of an
/// inactive segment's index, which readers may have mapped.
pub(crate) fn replace_index_file(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let file = File::create(&tmp).map_err(io_error(&tmp))?;
    file.write_all_at(bytes, 0).map_err(io_error(&tmp))?;
    file.sync_data().map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Decodes an `.index` entry as (absolute offset, position).
fn offset_entry(raw: &[u8], base_offset: i64) -> (i64, u32) {
    let relative = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let position = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
    (base_offset + i64::from(relative), position)
}

/// Encodes an `.index` entry.
pub(crate) fn encode_offset_entry(
    base_offset: i64,
    offset: i64,
    position: u32,
) -> [u8; OFFSET_ENTRY_SIZE] {
    let relative = (offset - base_offset) as u32;
    let mut raw = [0u8; OFFSET_ENTRY_SIZE];
    raw[..4].copy_from_slice(&relative.to_be_bytes());
    raw[4..].copy_from_slice(&position.to_be_bytes());
    raw
}

/// Decodes a `.timeindex` entry as (timestamp, absolute offset).
fn time_entry(raw: &[u8], base_offset: i64) -> (i64, i64) {
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&raw[..8]);
    let relative = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
    (
        i64::from_be_bytes(timestamp),
        base_offset + i64::from(relative),
    )
}

/// Encodes a `.timeindex` entry.
pub(crate) fn encode_time_entry(
    base_offset: i64,
    timestamp: i64,
    offset: i64,
) -> [u8; TIME_ENTRY_SIZE] {
    let relative = (offset - base_offset) as u32;
    let mut raw = [0u8; TIME_ENTRY_SIZE];
    raw[..8].copy_from_slice(&timestamp.to_be_bytes());
    raw[8..].copy_from_slice(&relative.to_be_bytes());
    raw
}

/// Checks offset index entries: offsets and positions strictly increasing, inside
/// the segment (positions > 0 because the first batch of a segment is never indexed).
/// Returns how many leading entries pass, and what is wrong with the next one.
fn check_offset_entries(
    entries: &[u8],
    base_offset: i64,
    next_offset: i64,
    log_size: u64,
) -> (usize, Option<String>) {
    let mut previous: Option<(i64, u32)> = None;
    for (n, raw) in entries.chunks_exact(OFFSET_ENTRY_SIZE).enumerate() {
        let (offset, position) = offset_entry(raw, base_offset);
        if position == 0 || u64::from(position) >= log_size || offset >= next_offset {
            return (
                n,
                Some(format!(
                    "entry {n} ({offset}, {position}) outside the segment"
                )),
            );
        }
        if let Some((prev_offset, prev_position)) = previous {
            if offset <= prev_offset || position <= prev_position {
                return (
                    n,
                    Some(format!("entry {n} ({offset}, {position}) out of order")),
                );
            }
        }
        previous = Some((offset, position));
    }
    (entries.len() / OFFSET_ENTRY_SIZE, None)
}

/// Checks time index entries: timestamps strictly growing, offsets non-decreasing
/// and below `next_offset`. Returns how many leading entries pass and what is wrong
/// with the next one.
fn check_time_entries(
    entries: &[u8],
    base_offset: i64,
    next_offset: i64,
) -> (usize, Option<String>) {
    let mut previous: Option<(i64, i64)> = None;
    for (n, raw) in entries.chunks_exact(TIME_ENTRY_SIZE).enumerate() {
        let (timestamp, offset) = time_entry(raw, base_offset);
        if offset >= next_offset.max(base_offset + 1) {
            return (
                n,
                Some(format!(
                    "entry {n} ({timestamp}, {offset}) outside the segment"
                )),
            );
        }
        if let Some((prev_timestamp, prev_offset)) = previous {
            if timestamp <= prev_timestamp || offset < prev_offset {
                return (
                    n,
                    Some(format!("entry {n} ({timestamp}, {offset}) out of order")),
                );
            }
        }
        previous = Some((timestamp, offset));
    }
    (entries.len() / TIME_ENTRY_SIZE, None)
}

/// The `.index` file of one segment.
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    /// The offset index of the segment starting at `base_offset`, inactive (nothing
    /// is opened until it is used).
    pub fn new(path: &Path, base_offset: i64, key: FileKey) -> OffsetIndex {
        OffsetIndex {
            base_offset,
            file: IndexFile::new(path, key, OFFSET_ENTRY_SIZE),
        }
    }

    /// Loads the entries into memory to append to them (active segment) and lets
    /// the index grow to `max_bytes`.
    pub fn activate(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.file.load()?;
        self.file.set_capacity(max_bytes);
        Ok(())
    }

    /// Drops the in-memory entries of a no longer active segment.
    pub fn deactivate(&mut self) {
        self.file.deactivate();
    }

    pub fn is_active(&self) -> bool {
        self.file.is_active()
    }

    /// Entries of the active index.
    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    pub fn is_full(&self) -> bool {
        self.file.is_active() && self.file.is_full()
    }

    pub fn last_entry(&self) -> Result<Option<(i64, u32)>, StorageError> {
        Ok(self
            .file
            .read_last_entry()?
            .map(|raw| offset_entry(&raw, self.base_offset)))
    }

    /// Records that the batch starting at `position` ends at `offset`. Skipped when the
    /// index is full: a sparser index is still correct, and the log rolls before that
    /// happens in practice.
    pub fn append(&mut self, offset: i64, position: u32) {
        if self.file.is_full() {
            return;
        }
        self.file
            .push(&encode_offset_entry(self.base_offset, offset, position));
    }

    /// The entry with the largest offset `<= target`, or `(base_offset, 0)`: where to
    /// start scanning batch headers for `target`.
    pub fn lookup(&self, target: i64) -> Result<(i64, u32), StorageError> {
        let base = self.base_offset;
        self.file.with_entries(|entries, _| {
            let count = entries.len() / OFFSET_ENTRY_SIZE;
            let entry = |n: usize| offset_entry(&entries[n * OFFSET_ENTRY_SIZE..], base);
            match partition_point(count, |n| entry(n).0 <= target) {
                0 => (base, 0),
                n => entry(n - 1),
            }
        })
    }

    /// The position of the last entry at or below byte `position` (0 when none):
    /// a batch boundary.
    pub fn position_at_or_below(&self, position: u64) -> Result<u64, StorageError> {
        let base = self.base_offset;
        self.file.with_entries(|entries, _| {
            let count = entries.len() / OFFSET_ENTRY_SIZE;
            let entry = |n: usize| offset_entry(&entries[n * OFFSET_ENTRY_SIZE..], base);
            match partition_point(count, |n| u64::from(entry(n).1) <= position) {
                0 => 0,
                n => u64::from(entry(n - 1).1),
            }
        })
    }

    /// Checks what a clean open must be able to trust: whole entries, offsets and
    /// positions strictly increasing, inside the segment. Returns what is wrong (an
    /// index that cannot even be read counts as wrong).
    pub fn sanity_check(&self, next_offset: i64, log_size: u64) -> Result<(), String> {
        let base = self.base_offset;
        let checked = self.file.with_entries(|entries, aligned| {
            if !aligned {
                return Some("size is not a multiple of 8".to_string());
            }
            check_offset_entries(entries, base, next_offset, log_size).1
        });
        match checked {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(reason),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Keeps (of an active index) the leading entries that pass the sanity check
    /// and point below `below_offset`: after a crash, the entries written before the
    /// last flush. Returns how many were kept.
    pub fn keep_trusted_prefix(
        &mut self,
        below_offset: i64,
        log_size: u64,
    ) -> Result<usize, StorageError> {
        let base = self.base_offset;
        let keep = self.file.with_entries(|entries, _| {
            check_offset_entries(entries, base, below_offset, log_size).0
        })?;
        self.file.truncate_entries(keep)?;
        Ok(keep)
    }

    /// Drops the entries of batches at or after byte `position` (log truncation).
    pub fn truncate_to_position(&mut self, position: u64) -> Result<(), StorageError> {
        let base = self.base_offset;
        let keep = self.file.with_entries(|entries, _| {
            let count = entries.len() / OFFSET_ENTRY_SIZE;
            partition_point(count, |n| {
                u64::from(offset_entry(&entries[n * OFFSET_ENTRY_SIZE..], base).1) < position
            })
        })?;
        self.file.truncate_entries(keep)
    }

    /// Keeps the first `keep` entries (undoing appends that could not be written).
    pub fn truncate_entries(&mut self, keep: usize) -> Result<(), StorageError> {
        self.file.truncate_entries(keep)
    }

    pub fn reset(&mut self) {
        self.file.reset();
    }

    pub fn write_pending(&mut self) -> Result<(), StorageError> {
        self.file.write_pending()
    }

    pub fn rewrite(&mut self) -> Result<(), StorageError> {
        self.file.rewrite()
    }

    pub fn sync(&self) -> Result<(), StorageError> {
        self.file.sync()
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

/// The `.timeindex` file of one segment.
pub struct TimeIndex {
    base_offset: i64,
    file: IndexFile,
}

impl TimeIndex {
    /// The time index of the segment starting at `base_offset`, inactive.
    pub fn new(path: &Path, base_offset: i64, key: FileKey) -> TimeIndex {
        TimeIndex {
            base_offset,
            file: IndexFile::new(path, key, TIME_ENTRY_SIZE),
        }
    }

    pub fn activate(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.file.load()?;
        self.file.set_capacity(max_bytes);
        Ok(())
    }

    pub fn deactivate(&mut self) {
        self.file.deactivate();
    }

    pub fn entries(&self) -> usize {
        self.file.entries()
    }

    pub fn is_full(&self) -> bool {
        self.file.is_active() && self.file.is_full()
    }

    pub fn last_entry(&self) -> Result<Option<(i64, i64)>, StorageError> {
        Ok(self
            .file
            .read_last_entry()?
            .map(|raw| time_entry(&raw, self.base_offset)))
    }

    /// Appends `(timestamp, offset)` only if the timestamp grows the index (Kafka's
    /// `maybeAppend`), and only while there is room.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if self.file.is_full() {
            return;
        }
        self.append_if_growing(timestamp, offset);
    }

    fn append_if_growing(&mut self, timestamp: i64, offset: i64) {
        // An empty index behaves as if it held (NO_TIMESTAMP = -1, base offset).
        let (last_timestamp, last_offset) = self
            .file
            .memory
            .as_ref()
            .and_then(|memory| {
                memory
                    .len()
                    .checked_sub(TIME_ENTRY_SIZE)
                    .map(|at| (memory, at))
            })
            .map_or((-1, self.base_offset), |(memory, at)| {
                time_entry(&memory[at..], self.base_offset)
            });
        if timestamp <= last_timestamp || offset < last_offset {
            return;
        }
        self.file
            .push(&encode_time_entry(self.base_offset, timestamp, offset));
    }

    /// The last entry whose timestamp is strictly below `timestamp`: every batch up to
    /// and including the one holding its offset has smaller timestamps, so a search
    /// for the first record `>= timestamp` may start at that batch.
    pub fn lookup_below(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let base = self.base_offset;
        self.file.with_entries(|entries, _| {
            let count = entries.len() / TIME_ENTRY_SIZE;
            let entry = |n: usize| time_entry(&entries[n * TIME_ENTRY_SIZE..], base);
            partition_point(count, |n| entry(n).0 < timestamp)
                .checked_sub(1)
                .map(entry)
        })
    }

    /// Same checks as [`OffsetIndex::sanity_check`] for time entries: whole entries,
    /// timestamps strictly growing, offsets non-decreasing and inside the segment.
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        let base = self.base_offset;
        let checked = self.file.with_entries(|entries, aligned| {
            if !aligned {
                return Some("size is not a multiple of 12".to_string());
            }
            check_time_entries(entries, base, next_offset).1
        });
        match checked {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(reason),
            Err(error) => Err(error.to_string()),
        }
    }

    /// Keeps (of an active index) the leading sane entries pointing at offsets below
    /// `next_offset`. Returns how many were kept.
    pub fn keep_trusted_prefix(&mut self, next_offset: i64) -> Result<usize, StorageError> {
        let base = self.base_offset;
        let keep = self
            .file
            .with_entries(|entries, _| check_time_entries(entries, base, next_offset).0)?;
        self.file.truncate_entries(keep)?;
        Ok(keep)
    }

    /// Drops the entries pointing at offsets `>= next_offset` (log truncation).
    pub fn truncate_to_offset(&mut self, next_offset: i64) -> Result<(), StorageError> {
        let base = self.base_offset;
        let keep = self.file.with_entries(|entries, _| {
            let count = entries.len() / TIME_ENTRY_SIZE;
            partition_point(count, |n| {
                time_entry(&entries[n * TIME_ENTRY_SIZE..], base).1 < next_offset
            })
        })?;
        self.file.truncate_entries(keep)
    }

    pub fn truncate_entries(&mut self, keep: usize) -> Result<(), StorageError> {
        self.file.truncate_entries(keep)
    }

    /// Appends the segment's final (max timestamp, offset) entry when it stops being
    /// active, even if the index is full, so that a reopened segment knows its max
    /// timestamp from its last entry (as Kafka does on roll and close).
    pub fn append_final(&mut self, timestamp: i64, offset: i64) {
        self.append_if_growing(timestamp, offset);
    }

    pub fn reset(&mut self) {
        self.file.reset();
    }

    pub fn write_pending(&mut self) -> Result<(), StorageError> {
        self.file.write_pending()
    }

    pub fn rewrite(&mut self) -> Result<(), StorageError> {
        self.file.rewrite()
    }

    pub fn sync(&self) -> Result<(), StorageError> {
        self.file.sync()
    }

    pub fn path(&self) -> &Path {
        &self.file.path
    }
}

/// Number of leading entries `0..len` for which `pred` holds (entries are sorted so
/// `pred` is true then false), found by binary search.
fn partition_point(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if pred(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
