//! Kafka's sparse segment indexes, memory-mapped.
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
//! Like Kafka, the index of the active segment is preallocated to
//! `segment.index.bytes` and mapped once, so an append is a memory write; it is
//! trimmed to its real size when the segment stops being active (roll, close). After
//! a crash the preallocated tail is zeros (or whatever the page cache had): the log
//! never trusts such a file — unclean opens rebuild the indexes of every recovered
//! segment, and clean opens run [`OffsetIndex::sanity_check`] /
//! [`TimeIndex::sanity_check`].

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::MmapMut;

use crate::error::io_error;
use crate::StorageError;

/// Size of one `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of one `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

/// A memory-mapped file of fixed-size entries; the first `entries` are valid.
struct IndexFile {
    path: PathBuf,
    file: File,
    mmap: MmapMut,
    entry_size: usize,
    /// Valid entries; the rest of the mapping is preallocated space.
    entries: usize,
}

impl IndexFile {
    /// Opens (creating if missing) an index file. Every whole entry in the file counts
    /// as valid until the caller checks or resets it.
    fn open(path: &Path, entry_size: usize) -> Result<IndexFile, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_error(path))?;
        let len = file.metadata().map_err(io_error(path))?.len() as usize;
        let mmap = map(&file, path)?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            file,
            mmap,
            entry_size,
            entries: len / entry_size,
        })
    }

    /// Whether the file length is a whole number of entries (a trimmed, clean file).
    fn is_aligned(&self) -> bool {
        self.mmap.len().is_multiple_of(self.entry_size)
    }

    fn capacity(&self) -> usize {
        self.mmap.len() / self.entry_size
    }

    fn is_full(&self) -> bool {
        self.entries >= self.capacity()
    }

    fn entry(&self, n: usize) -> &[u8] {
        &self.mmap[n * self.entry_size..(n + 1) * self.entry_size]
    }

    /// Appends one entry; the caller checks `is_full` first.
    fn push(&mut self, entry: &[u8]) {
        let at = self.entries * self.entry_size;
        self.mmap[at..at + self.entry_size].copy_from_slice(entry);
        self.entries += 1;
    }

    /// Changes the file length to `len_entries` entries and remaps it.
    fn set_capacity(&mut self, len_entries: usize) -> Result<(), StorageError> {
        let len = (len_entries * self.entry_size) as u64;
        if self.mmap.len() as u64 == len {
            return Ok(());
        }
        self.mmap.flush().map_err(io_error(&self.path))?;
        self.file.set_len(len).map_err(io_error(&self.path))?;
        self.mmap = map(&self.file, &self.path)?;
        self.entries = self.entries.min(len_entries);
        Ok(())
    }

    /// Preallocates room for `max_bytes` worth of entries (at least one free entry),
    /// as the active segment's index.
    fn preallocate(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        let wanted = (max_bytes as usize / self.entry_size).max(self.entries + 1);
        self.set_capacity(wanted)
    }

    /// Cuts the file down to its valid entries (segment no longer active).
    fn trim(&mut self) -> Result<(), StorageError> {
        if self.mmap.len() == self.entries * self.entry_size {
            return Ok(());
        }
        self.set_capacity(self.entries)?;
        self.file.sync_all().map_err(io_error(&self.path))
    }

    /// Writes dirty pages and the file length to disk.
    fn flush(&self) -> Result<(), StorageError> {
        self.mmap.flush().map_err(io_error(&self.path))?;
        self.file.sync_all().map_err(io_error(&self.path))
    }

    /// Zeroes and forgets all entries (before a rebuild).
    fn reset(&mut self) {
        self.truncate_entries(0);
    }

    /// Keeps the first `keep` entries and zeroes the rest, so that a crash leaves
    /// zeros rather than stale entries behind the valid ones.
    fn truncate_entries(&mut self, keep: usize) {
        let keep = keep.min(self.entries);
        self.mmap[keep * self.entry_size..].fill(0);
        self.entries = keep;
    }
}

fn map(file: &File, path: &Path) -> Result<MmapMut, StorageError> {
    // SAFETY: the index file belongs to this log directory, which one `Log` owns; no
    // other process or code path resizes or writes it while mapped. Every resize goes
    // through `IndexFile::set_capacity`, which drops the old mapping for a new one, and
    // indexes only look at the first `entries * entry_size` bytes, inside the mapping.
    unsafe { MmapMut::map_mut(file) }.map_err(io_error(path))
}

/// The `.index` file of one segment.
pub struct OffsetIndex {
    base_offset: i64,
    file: IndexFile,
}

impl OffsetIndex {
    /// Opens (or creates) the offset index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64) -> Result<OffsetIndex, StorageError> {
        Ok(OffsetIndex {
            base_offset,
            file: IndexFile::open(path, OFFSET_ENTRY_SIZE)?,
        })
    }

    pub fn entries(&self) -> usize {
        self.file.entries
    }

    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Entry `n` as (absolute offset, position).
    pub fn entry(&self, n: usize) -> (i64, u32) {
        let raw = self.file.entry(n);
        let relative = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let position = u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]);
        (self.base_offset + i64::from(relative), position)
    }

    pub fn last_entry(&self) -> Option<(i64, u32)> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// Records that the batch starting at `position` ends at `offset`. Skipped when the
    /// index is full: a sparser index is still correct, and the log rolls before that
    /// happens in practice.
    pub fn append(&mut self, offset: i64, position: u32) {
        if self.file.is_full() {
            return;
        }
        let relative = (offset - self.base_offset) as u32;
        let mut raw = [0u8; OFFSET_ENTRY_SIZE];
        raw[..4].copy_from_slice(&relative.to_be_bytes());
        raw[4..].copy_from_slice(&position.to_be_bytes());
        self.file.push(&raw);
    }

    /// The entry with the largest offset `<= target`, or `(base_offset, 0)`: where to
    /// start scanning batch headers for `target`.
    pub fn lookup(&self, target: i64) -> (i64, u32) {
        let below = partition_point(self.entries(), |n| self.entry(n).0 <= target);
        match below {
            0 => (self.base_offset, 0),
            n => self.entry(n - 1),
        }
    }

    /// Checks what a clean open must be able to trust: whole entries, offsets and
    /// positions strictly increasing, inside the segment (positions > 0 because the
    /// first batch of a segment is never indexed). Returns what is wrong.
    pub fn sanity_check(&self, next_offset: i64, log_size: u64) -> Result<(), String> {
        if !self.file.is_aligned() {
            return Err(format!(
                "size {} is not a multiple of 8",
                self.file.mmap.len()
            ));
        }
        let mut previous: Option<(i64, u32)> = None;
        for n in 0..self.entries() {
            let (offset, position) = self.entry(n);
            if position == 0 || u64::from(position) >= log_size || offset >= next_offset {
                return Err(format!(
                    "entry {n} ({offset}, {position}) outside the segment"
                ));
            }
            if let Some((prev_offset, prev_position)) = previous {
                if offset <= prev_offset || position <= prev_position {
                    return Err(format!("entry {n} ({offset}, {position}) out of order"));
                }
            }
            previous = Some((offset, position));
        }
        Ok(())
    }

    /// Drops the entries of batches at or after byte `position` (log truncation).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = partition_point(self.entries(), |n| u64::from(self.entry(n).1) < position);
        self.file.truncate_entries(keep);
    }

    pub fn reset(&mut self) {
        self.file.reset();
    }

    pub fn preallocate(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.file.preallocate(max_bytes)
    }

    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.file.trim()
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.file.flush()
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
    /// Opens (or creates) the time index of the segment starting at `base_offset`.
    pub fn open(path: &Path, base_offset: i64) -> Result<TimeIndex, StorageError> {
        Ok(TimeIndex {
            base_offset,
            file: IndexFile::open(path, TIME_ENTRY_SIZE)?,
        })
    }

    pub fn entries(&self) -> usize {
        self.file.entries
    }

    pub fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Entry `n` as (timestamp, absolute offset).
    pub fn entry(&self, n: usize) -> (i64, i64) {
        let raw = self.file.entry(n);
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&raw[..8]);
        let relative = u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]);
        (
            i64::from_be_bytes(timestamp),
            self.base_offset + i64::from(relative),
        )
    }

    pub fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries().checked_sub(1).map(|n| self.entry(n))
    }

    /// Appends `(timestamp, offset)` only if the timestamp grows the index (Kafka's
    /// `maybeAppend`), and only while there is room.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        if self.file.is_full() {
            return;
        }
        // An empty index behaves as if it held (NO_TIMESTAMP = -1, base offset).
        let (last_timestamp, last_offset) = self.last_entry().unwrap_or((-1, self.base_offset));
        if timestamp <= last_timestamp || offset < last_offset {
            return;
        }
        let relative = (offset - self.base_offset) as u32;
        let mut raw = [0u8; TIME_ENTRY_SIZE];
        raw[..8].copy_from_slice(&timestamp.to_be_bytes());
        raw[8..].copy_from_slice(&relative.to_be_bytes());
        self.file.push(&raw);
    }

    /// The last entry whose timestamp is strictly below `timestamp`: every batch up to
    /// and including the one holding its offset has smaller timestamps, so a search
    /// for the first record `>= timestamp` may start at that batch.
    pub fn lookup_below(&self, timestamp: i64) -> Option<(i64, i64)> {
        let below = partition_point(self.entries(), |n| self.entry(n).0 < timestamp);
        below.checked_sub(1).map(|n| self.entry(n))
    }

    /// Same checks as [`OffsetIndex::sanity_check`] for time entries: whole entries,
    /// timestamps strictly growing, offsets non-decreasing and inside the segment.
    pub fn sanity_check(&self, next_offset: i64) -> Result<(), String> {
        if !self.file.is_aligned() {
            return Err(format!(
                "size {} is not a multiple of 12",
                self.file.mmap.len()
            ));
        }
        let mut previous: Option<(i64, i64)> = None;
        for n in 0..self.entries() {
            let (timestamp, offset) = self.entry(n);
            if offset >= next_offset.max(self.base_offset + 1) {
                return Err(format!(
                    "entry {n} ({timestamp}, {offset}) outside the segment"
                ));
            }
            if let Some((prev_timestamp, prev_offset)) = previous {
                if timestamp <= prev_timestamp || offset < prev_offset {
                    return Err(format!("entry {n} ({timestamp}, {offset}) out of order"));
                }
            }
            previous = Some((timestamp, offset));
        }
        Ok(())
    }

    /// Drops the entries pointing at offsets `>= next_offset` (log truncation).
    pub fn truncate_to_offset(&mut self, next_offset: i64) {
        let keep = partition_point(self.entries(), |n| self.entry(n).1 < next_offset);
        self.file.truncate_entries(keep);
    }

    /// Appends the segment's final (max timestamp, offset) entry when it stops being
    /// active, growing the file by one entry if it is full, so that a reopened segment
    /// knows its max timestamp from its last entry (as Kafka does on roll and close).
    pub fn append_final(&mut self, timestamp: i64, offset: i64) -> Result<(), StorageError> {
        if self.file.is_full() {
            let entries = self.file.entries;
            self.file.set_capacity(entries + 1)?;
        }
        self.maybe_append(timestamp, offset);
        Ok(())
    }

    pub fn reset(&mut self) {
        self.file.reset();
    }

    pub fn preallocate(&mut self, max_bytes: u32) -> Result<(), StorageError> {
        self.file.preallocate(max_bytes)
    }

    pub fn trim(&mut self) -> Result<(), StorageError> {
        self.file.trim()
    }

    pub fn flush(&self) -> Result<(), StorageError> {
        self.file.flush()
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
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_largest_entry_at_or_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = OffsetIndex::open(&dir.path().join("a.index"), 100).expect("open");
        index.preallocate(1024).expect("preallocate");
        assert_eq!(index.lookup(150), (100, 0));
        index.append(109, 400);
        index.append(120, 900);
        index.append(135, 1500);
        assert_eq!(index.lookup(99), (100, 0));
        assert_eq!(index.lookup(108), (100, 0));
        assert_eq!(index.lookup(109), (109, 400));
        assert_eq!(index.lookup(119), (109, 400));
        assert_eq!(index.lookup(134), (120, 900));
        assert_eq!(index.lookup(10_000), (135, 1500));
        assert!(index.sanity_check(136, 2000).is_ok());
        assert!(
            index.sanity_check(130, 2000).is_err(),
            "entry beyond next offset"
        );
        assert!(
            index.sanity_check(136, 1000).is_err(),
            "entry beyond log size"
        );
    }

    #[test]
    fn offset_index_is_byte_compatible_and_trims() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("b.index");
        let mut index = OffsetIndex::open(&path, 1000).expect("open");
        index.preallocate(80).expect("preallocate");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 80);
        index.append(1005, 0x0102);
        index.trim().expect("trim");
        drop(index);
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes, vec![0, 0, 0, 5, 0, 0, 1, 2]);
        let reopened = OffsetIndex::open(&path, 1000).expect("reopen");
        assert_eq!(reopened.entries(), 1);
        assert_eq!(reopened.last_entry(), Some((1005, 0x0102)));
    }

    #[test]
    fn full_index_skips_appends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = OffsetIndex::open(&dir.path().join("c.index"), 0).expect("open");
        index.preallocate(16).expect("preallocate");
        index.append(1, 10);
        index.append(2, 20);
        assert!(index.is_full());
        index.append(3, 30);
        assert_eq!(index.entries(), 2);
    }

    #[test]
    fn zero_tail_fails_sanity_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("d.index");
        let mut index = OffsetIndex::open(&path, 0).expect("open");
        index.preallocate(64).expect("preallocate");
        index.append(5, 100);
        index.flush().expect("flush");
        drop(index);
        // Reopened without trim (a crash): all 8 slots count, the zero ones are bogus.
        let reopened = OffsetIndex::open(&path, 0).expect("reopen");
        assert_eq!(reopened.entries(), 8);
        assert!(reopened.sanity_check(10, 1000).is_err());
    }

    #[test]
    fn time_index_only_grows_and_looks_up_strictly_below() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut index = TimeIndex::open(&dir.path().join("a.timeindex"), 50).expect("open");
        index.preallocate(120).expect("preallocate");
        index.maybe_append(1000, 55);
        index.maybe_append(1000, 60);
        index.maybe_append(900, 61);
        index.maybe_append(2000, 70);
        assert_eq!(index.entries(), 2);
        assert_eq!(index.lookup_below(1000), None);
        assert_eq!(index.lookup_below(1001), Some((1000, 55)));
        assert_eq!(index.lookup_below(5000), Some((2000, 70)));
        assert!(index.sanity_check(71).is_ok());
        assert!(index.sanity_check(70).is_err());
        index.trim().expect("trim");
        let raw = std::fs::read(dir.path().join("a.timeindex")).expect("read");
        assert_eq!(raw.len(), 24);
        assert_eq!(&raw[..8], &1000i64.to_be_bytes());
        assert_eq!(&raw[8..12], &5u32.to_be_bytes());
    }

    #[test]
    fn misaligned_file_fails_sanity_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("e.timeindex");
        std::fs::write(&path, [0u8; 13]).expect("write");
        let index = TimeIndex::open(&path, 0).expect("open");
        assert!(index.sanity_check(10).is_err());
    }
}
