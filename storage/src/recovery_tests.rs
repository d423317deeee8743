//! Tests of `Log::open`: clean and unclean reopen, torn and corrupt tails, broken or
//! missing index files.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::batch::test_support::batch;
use crate::log_tests::{headers, small_config};
use crate::{Log, LogConfig};

fn segment_file(dir: &Path, base: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base:020}.{extension}"))
}

/// A log with `batches` batches of 2 records, left open as after a crash (dropped
/// without close: indexes still preallocated). Returns the batch sizes.
fn crashed_log(dir: &Path, config: &LogConfig, batches: usize) -> Vec<u64> {
    let mut log = Log::open(dir, config.clone(), 0, true, 0).expect("open");
    let mut sizes = Vec::new();
    for i in 0..batches {
        let mut records = batch(2, i as i64 * 10);
        sizes.push(records.len() as u64);
        log.append(&mut records, 0, 0).expect("append");
    }
    drop(log);
    sizes
}

fn reopen_unclean(dir: &Path, config: &LogConfig) -> Log {
    Log::open(dir, config.clone(), 0, false, 0).expect("unclean open")
}

/// Every batch reads back and the log accepts new appends at its end.
fn check_consistent(log: &mut Log, expected_end: i64) {
    assert_eq!(log.log_end_offset(), expected_end);
    assert_eq!(log.recovery_point(), expected_end);
    let all = log.read(0, 1 << 24, false).expect("read");
    let hs = headers(&all);
    assert_eq!(hs.last().map_or(0, |h| h.next_offset()), expected_end);
    for offset in 0..expected_end {
        let one = log.read(offset, 1, true).expect("read one");
        let h = headers(&one)[0];
        assert!(h.base_offset <= offset && offset <= h.last_offset());
    }
    let info = log
        .append(&mut batch(1, 0), 0, 0)
        .expect("append after recovery");
    assert_eq!(info.base_offset, expected_end);
}

fn config_with_interval() -> LogConfig {
    LogConfig {
        index_interval_bytes: 0,
        ..small_config()
    }
}

#[test]
fn unclean_reopen_with_torn_tail_at_every_byte_of_the_last_batch() {
    let config = config_with_interval();
    let probe = tempfile::tempdir().expect("tempdir");
    let sizes = crashed_log(probe.path(), &config, 5);
    let total: u64 = sizes.iter().sum();
    let last = sizes[4];
    // Cut points across the last batch (and at its boundaries).
    for cut in (total - last..=total)
        .step_by(7)
        .chain([total - last, total - 1, total])
    {
        let dir = tempfile::tempdir().expect("tempdir");
        crashed_log(dir.path(), &config, 5);
        let file = OpenOptions::new()
            .write(true)
            .open(segment_file(dir.path(), 0, "log"))
            .expect("open segment");
        file.set_len(cut).expect("cut");
        let mut log = reopen_unclean(dir.path(), &config);
        let expected = if cut == total { 10 } else { 8 };
        check_consistent(&mut log, expected);
        assert_eq!(
            fs::metadata(segment_file(dir.path(), 0, "log"))
                .expect("meta")
                .len(),
            // The survivors plus the one-record batch `check_consistent` appended.
            if cut == total { total } else { total - last } + batch(1, 0).len() as u64
        );
    }
}

#[test]
fn unclean_reopen_drops_garbage_and_zero_tails() {
    let config = config_with_interval();
    for tail in [
        vec![0u8; 4096],
        (0..300u32).map(|i| (i * 7919 % 251) as u8).collect(),
        vec![0xff; 5],
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        crashed_log(dir.path(), &config, 4);
        let mut file = OpenOptions::new()
            .append(true)
            .open(segment_file(dir.path(), 0, "log"))
            .expect("open");
        file.write_all(&tail).expect("garbage");
        let mut log = reopen_unclean(dir.path(), &config);
        check_consistent(&mut log, 8);
    }
}

#[test]
fn unclean_reopen_drops_a_batch_with_a_flipped_byte() {
    let config = config_with_interval();
    let dir = tempfile::tempdir().expect("tempdir");
    let sizes = crashed_log(dir.path(), &config, 4);
    let total: u64 = sizes.iter().sum();
    let path = segment_file(dir.path(), 0, "log");
    let mut bytes = fs::read(&path).expect("read");
    let middle_of_last = (total - sizes[3] / 2) as usize;
    bytes[middle_of_last] ^= 0x01;
    fs::write(&path, &bytes).expect("write");
    let mut log = reopen_unclean(dir.path(), &config);
    check_consistent(&mut log, 6);
}

#[test]
fn corruption_in_an_older_segment_deletes_the_later_ones() {
    let batch_size = batch(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 2,
        ..config_with_interval()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), &config, 6);
    assert!(segment_file(dir.path(), 8, "log").exists());
    let path = segment_file(dir.path(), 4, "log");
    let mut bytes = fs::read(&path).expect("read");
    let at = bytes.len() - 3;
    bytes[at] ^= 0x80;
    fs::write(&path, &bytes).expect("write");
    // Recovery point 0: every segment is scanned.
    let mut log = reopen_unclean(dir.path(), &config);
    assert_eq!(log.segment_count(), 2);
    assert!(!segment_file(dir.path(), 8, "log").exists());
    assert!(!segment_file(dir.path(), 8, "index").exists());
    check_consistent(&mut log, 6);
}

#[test]
fn unclean_reopen_scans_only_from_the_recovery_point() {
    let batch_size = batch(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 2,
        ..config_with_interval()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), &config, 6);
    // Corrupt a segment below the recovery point: it is trusted, not scanned.
    let path = segment_file(dir.path(), 0, "log");
    let mut bytes = fs::read(&path).expect("read");
    let at = bytes.len() - 3;
    bytes[at] ^= 0x80;
    fs::write(&path, &bytes).expect("write");
    let log = Log::open(dir.path(), config, 8, false, 0).expect("open");
    assert_eq!((log.segment_count(), log.log_end_offset()), (3, 12));
}

#[test]
fn clean_reopen_rebuilds_missing_or_garbled_indexes() {
    let batch_size = batch(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 5,
        ..config_with_interval()
    };
    let reference = tempfile::tempdir().expect("tempdir");
    crashed_log(reference.path(), &config, 12);
    let reference_log = Log::open(reference.path(), config.clone(), 0, false, 0).expect("open");
    reference_log.close().expect("close");
    let expected_index = fs::read(segment_file(reference.path(), 0, "index")).expect("index");
    let expected_time =
        fs::read(segment_file(reference.path(), 0, "timeindex")).expect("timeindex");
    assert!(!expected_index.is_empty());

    type Damage = fn(&Path);
    let damages: [Damage; 6] = [
        |dir| fs::remove_file(segment_file(dir, 0, "index")).expect("rm"),
        |dir| fs::remove_file(segment_file(dir, 10, "timeindex")).expect("rm"),
        |dir| fs::write(segment_file(dir, 0, "index"), [0xab; 13]).expect("garble"),
        |dir| fs::write(segment_file(dir, 0, "index"), [0u8; 64]).expect("zeros"),
        |dir| fs::write(segment_file(dir, 0, "timeindex"), [0x7f; 24]).expect("garble"),
        |dir| fs::write(segment_file(dir, 20, "index"), [0u8; 13]).expect("last segment"),
    ];
    for damage in damages {
        let dir = tempfile::tempdir().expect("tempdir");
        crashed_log(dir.path(), &config, 12);
        Log::open(dir.path(), config.clone(), 0, false, 0)
            .expect("recover")
            .close()
            .expect("close");
        damage(dir.path());
        let log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("clean open");
        assert_eq!(log.offset_for_timestamp(35).expect("lookup"), Some((8, 40)));
        log.close().expect("close");
        assert_eq!(
            fs::read(segment_file(dir.path(), 0, "index")).expect("index"),
            expected_index
        );
        assert_eq!(
            fs::read(segment_file(dir.path(), 0, "timeindex")).expect("time"),
            expected_time
        );
        let mut log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("clean open");
        check_consistent(&mut log, 24);
    }
}

#[test]
fn clean_flag_after_a_crash_still_catches_preallocated_indexes() {
    // A marker that lies (e.g. restored from a backup): the zero tail of the
    // preallocated index fails the sanity check and the index is rebuilt.
    let config = config_with_interval();
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), &config, 6);
    let mut log = Log::open(dir.path(), config, 0, true, 0).expect("open");
    check_consistent(&mut log, 12);
}

#[test]
fn empty_segment_file_and_orphan_index_files() {
    let config = small_config();
    let dir = tempfile::tempdir().expect("tempdir");
    crashed_log(dir.path(), &config, 2);
    fs::write(segment_file(dir.path(), 99, "index"), [0u8; 8]).expect("orphan");
    fs::write(dir.path().join("leader-epoch-checkpoint"), "0\n0\n").expect("other file");
    let mut log = reopen_unclean(dir.path(), &config);
    assert!(!segment_file(dir.path(), 99, "index").exists());
    assert!(dir.path().join("leader-epoch-checkpoint").exists());
    check_consistent(&mut log, 4);

    // A crash right after a roll leaves an empty active segment.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("open");
    log.append(&mut batch(3, 0), 0, 0).expect("append");
    log.roll(0).expect("roll");
    drop(log);
    let mut log = Log::open(dir.path(), config, 3, false, 0).expect("reopen");
    assert_eq!(log.segment_count(), 2);
    check_consistent(&mut log, 3);
}
