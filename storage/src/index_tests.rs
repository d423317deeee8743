//! Unit tests of the offset and time indexes.

use super::*;
use crate::fd_cache::{next_segment_id, FileKind};

fn offset_index(path: &Path, base: i64) -> OffsetIndex {
    OffsetIndex::new(path, base, (next_segment_id(), FileKind::OffsetIndex))
}

fn time_index(path: &Path, base: i64) -> TimeIndex {
    TimeIndex::new(path, base, (next_segment_id(), FileKind::TimeIndex))
}

#[test]
fn offset_index_lookup_finds_largest_entry_at_or_below() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut index = offset_index(&dir.path().join("a.index"), 100);
    index.activate(1024).expect("activate");
    assert_eq!(index.lookup(150).expect("lookup"), (100, 0));
    index.append(109, 400);
    index.append(120, 900);
    index.append(135, 1500);
    index.write_pending().expect("write");
    let lookup = |index: &OffsetIndex, target| index.lookup(target).expect("lookup");
    for index in [&index, &{
        // The same entries read back through a mapping.
        let mut inactive = offset_index(&dir.path().join("a.index"), 100);
        inactive.deactivate();
        inactive
    }] {
        assert_eq!(lookup(index, 99), (100, 0));
        assert_eq!(lookup(index, 108), (100, 0));
        assert_eq!(lookup(index, 109), (109, 400));
        assert_eq!(lookup(index, 119), (109, 400));
        assert_eq!(lookup(index, 134), (120, 900));
        assert_eq!(lookup(index, 10_000), (135, 1500));
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
}

#[test]
fn offset_index_is_byte_compatible_and_never_preallocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("b.index");
    let mut index = offset_index(&path, 1000);
    index.activate(80).expect("activate");
    index.write_pending().expect("write nothing");
    index.append(1005, 0x0102);
    index.write_pending().expect("write");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        vec![0, 0, 0, 5, 0, 0, 1, 2]
    );
    let reopened = offset_index(&path, 1000);
    assert_eq!(reopened.last_entry().expect("last"), Some((1005, 0x0102)));
}

#[test]
fn full_index_skips_appends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut index = offset_index(&dir.path().join("c.index"), 0);
    index.activate(16).expect("activate");
    index.append(1, 10);
    index.append(2, 20);
    assert!(index.is_full());
    index.append(3, 30);
    assert_eq!(index.entries(), 2);
}

#[test]
fn zero_entries_fail_sanity_check_and_only_the_trusted_prefix_is_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("d.index");
    // A Kafka-style preallocated index after a crash: 2 entries, then zeros.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&encode_offset_entry(0, 5, 100));
    bytes.extend_from_slice(&encode_offset_entry(0, 9, 300));
    bytes.extend_from_slice(&[0u8; 48]);
    std::fs::write(&path, &bytes).expect("write");
    let mut index = offset_index(&path, 0);
    assert!(index.sanity_check(10, 1000).is_err());
    index.activate(64).expect("activate");
    assert_eq!(index.keep_trusted_prefix(9, 1000).expect("keep"), 1);
    assert_eq!(std::fs::read(&path).expect("read").len(), 8);
    assert_eq!(index.last_entry().expect("last"), Some((5, 100)));
}

#[test]
fn a_failed_write_is_cut_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("e.index");
    let mut index = offset_index(&path, 0);
    index.activate(64).expect("activate");
    index.append(1, 10);
    index.write_pending().expect("write");
    index.append(2, 20);
    // Undo the unwritten append, as a segment does when its log write failed.
    index.truncate_entries(1).expect("undo");
    index.write_pending().expect("nothing to write");
    assert_eq!(std::fs::read(&path).expect("read").len(), 8);
    assert_eq!(index.entries(), 1);
}

#[test]
fn time_index_only_grows_and_looks_up_strictly_below() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut index = time_index(&dir.path().join("a.timeindex"), 50);
    index.activate(120).expect("activate");
    index.maybe_append(1000, 55);
    index.maybe_append(1000, 60);
    index.maybe_append(900, 61);
    index.maybe_append(2000, 70);
    assert_eq!(index.entries(), 2);
    assert_eq!(index.lookup_below(1000).expect("lookup"), None);
    assert_eq!(index.lookup_below(1001).expect("lookup"), Some((1000, 55)));
    assert_eq!(index.lookup_below(5000).expect("lookup"), Some((2000, 70)));
    assert!(index.sanity_check(71).is_ok());
    assert!(index.sanity_check(70).is_err());
    index.write_pending().expect("write");
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
    let index = time_index(&path, 0);
    assert!(index.sanity_check(10).is_err());
}
