//! Tests of disk trouble: a full filesystem, failing index writes, a roll that
//! cannot create its segment, files that cannot be reopened, and recovery of
//! corruption found at start. Failures are real ones from the kernel: a private
//! size-limited tmpfs (ENOSPC), `/dev/full` standing in for an index file, a
//! directory where a segment file must go.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::batch::test_support::batch;
use crate::log_tests::headers;
use crate::{Log, LogConfig, StorageError};

fn segment_file(dir: &Path, base: i64, extension: &str) -> PathBuf {
    dir.join(format!("{base:020}.{extension}"))
}

/// Whether an error is the kernel's "no space left on device".
fn is_enospc(error: &StorageError) -> bool {
    matches!(error, StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull)
}

/// Every batch of the log, as (base offset, record count), read through `Log::read`.
fn batches_in(log: &Log) -> Vec<(i64, i32)> {
    let all = log
        .read(0, usize::MAX >> 1, false)
        .expect("read the whole log");
    headers(&all)
        .iter()
        .map(|h| (h.base_offset, h.record_count))
        .collect()
}

/// Sum of the `.log` file lengths in `dir`: equals the log's size when no partial
/// batch was left behind.
fn log_file_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("read dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"))
        .map(|entry| entry.metadata().expect("meta").len())
        .sum()
}

/// Appends and remembers what was acknowledged.
fn append_ok(log: &mut Log, acknowledged: &mut Vec<(i64, i32)>, count: usize) {
    let info = log
        .append(&mut batch(count, 1_000), 0, 0)
        .expect("append with room on disk");
    acknowledged.push((info.base_offset, count as i32));
}

/// Environment variable telling the re-executed test binary where its private
/// tmpfs is mounted.
const TMPFS_DIR_ENV: &str = "STRATA_TEST_PRIVATE_TMPFS";

/// Runs `test_name` (this binary's test of that path) again inside a private mount
/// namespace with a tmpfs of `size` mounted on a fresh directory, and checks that it
/// passed. Returns the directory when called from inside that run. Skips (with a
/// note on stderr) where user namespaces or tmpfs mounts are not allowed.
fn in_private_tmpfs(test_name: &str, size: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(TMPFS_DIR_ENV) {
        return Some(PathBuf::from(dir));
    }
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    if !probe.is_ok_and(|status| status.success()) {
        eprintln!("skipping {test_name}: `unshare -rm` is not available here");
        return None;
    }
    let mount_point = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("path of the test binary");
    let script = r#"mount -t tmpfs -o size="$1" tmpfs "$2" || exit 77; shift 2; exec "$@""#;
    let status = Command::new("unshare")
        .args(["-rm", "sh", "-c", script, "sh", size])
        .arg(mount_point.path())
        .arg(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(TMPFS_DIR_ENV, mount_point.path())
        .status()
        .expect("run the test binary under unshare");
    if status.code() == Some(77) {
        eprintln!("skipping {test_name}: cannot mount a tmpfs here");
        return None;
    }
    assert!(
        status.success(),
        "{test_name} inside a private tmpfs failed: {status}"
    );
    None
}

/// Writes to `path` until the filesystem is full.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut file = fs::File::create(path).expect("create filler");
    for chunk in [65536, 4096, 512, 1] {
        let bytes = vec![0x5a; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_the_log_works_again_with_room() {
    let Some(root) = in_private_tmpfs(
        "disk_failure_tests::a_full_disk_fails_appends_cleanly_and_the_log_works_again_with_room",
        "1m",
    ) else {
        return;
    };
    let dir = root.join("t-0");
    let config = LogConfig {
        segment_bytes: 96 * 1024,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    let mut log = Log::open(&dir, config.clone(), 0, true, 0).expect("open");
    let mut acknowledged = Vec::new();
    for _ in 0..5 {
        append_ok(&mut log, &mut acknowledged, 400);
    }
    let filler = root.join("filler");
    fill_disk(&filler);

    // Appends (and the rolls they need) now fail, perhaps after a few that still fit
    // in pages the files already have. A failure changes nothing.
    let mut failures = 0;
    for i in 0..60 {
        let before = (log.log_end_offset(), log.size_bytes());
        match log.append(&mut batch(150 + i, 2_000), 0, 0) {
            Ok(info) => acknowledged.push((info.base_offset, 150 + i as i32)),
            Err(error) => {
                assert!(is_enospc(&error), "not ENOSPC: {error}");
                assert_eq!(error.kafka_error_code(), 56, "KAFKA_STORAGE_ERROR");
                assert_eq!((log.log_end_offset(), log.size_bytes()), before);
                assert_eq!(log_file_bytes(&dir), log.size_bytes(), "partial batch left");
                failures += 1;
            }
        }
    }
    assert!(failures > 0, "the disk never filled up");
    assert_eq!(batches_in(&log), acknowledged);

    // Room again: the same log takes appends (rolling as needed) without a restart.
    fs::remove_file(&filler).expect("remove filler");
    for _ in 0..12 {
        append_ok(&mut log, &mut acknowledged, 400);
    }
    assert!(log.segment_count() > 1);
    assert_eq!(batches_in(&log), acknowledged);
    assert_eq!(log_file_bytes(&dir), log.size_bytes());

    // A crash, then a clean stop: every acknowledged batch survives both.
    drop(log);
    let log = Log::open(&dir, config.clone(), 0, false, 0).expect("unclean open");
    assert_eq!(batches_in(&log), acknowledged);
    log.close().expect("close");
    let mut log = Log::open(&dir, config, 0, true, 0).expect("clean open");
    assert_eq!(batches_in(&log), acknowledged);
    append_ok(&mut log, &mut acknowledged, 10);
}

#[test]
fn a_failed_index_write_undoes_the_whole_append() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 0,
        ..crate::log_tests::small_config()
    };
    let mut log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("open");
    let mut acknowledged = Vec::new();
    // The first batch of a segment is never indexed: no index write yet.
    append_ok(&mut log, &mut acknowledged, 3);
    let index = segment_file(dir.path(), 0, "index");
    fs::remove_file(&index).expect("rm index");
    std::os::unix::fs::symlink("/dev/full", &index).expect("index -> /dev/full");

    let error = log
        .append(&mut batch(3, 10), 0, 0)
        .expect_err("the index write fails");
    assert!(is_enospc(&error), "{error}");
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log_file_bytes(dir.path()), log.size_bytes());
    assert_eq!(batches_in(&log), acknowledged);

    fs::remove_file(&index).expect("rm symlink");
    fs::write(&index, []).expect("empty index again");
    append_ok(&mut log, &mut acknowledged, 3);
    assert_eq!(fs::read(&index).expect("index").len(), 8, "one entry");
    assert_eq!(batches_in(&log), acknowledged);
    drop(log);
    let log = Log::open(dir.path(), config, 0, false, 0).expect("unclean open");
    assert_eq!(batches_in(&log), acknowledged);
}

#[test]
fn a_roll_that_cannot_create_its_segment_keeps_the_old_one_active() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: batch(3, 0).len() as u64 * 2,
        ..crate::log_tests::small_config()
    };
    let mut log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("open");
    let mut acknowledged = Vec::new();
    append_ok(&mut log, &mut acknowledged, 3);
    append_ok(&mut log, &mut acknowledged, 3);
    // Something in the way of the next segment's file.
    let blocker = segment_file(dir.path(), 6, "timeindex");
    fs::create_dir(&blocker).expect("dir in the way");
    for _ in 0..2 {
        let error = log
            .append(&mut batch(3, 10), 0, 0)
            .expect_err("the roll cannot create the new segment");
        assert_eq!(error.kafka_error_code(), 56);
        assert_eq!((log.log_end_offset(), log.segment_count()), (6, 1));
        assert!(
            !segment_file(dir.path(), 6, "log").exists(),
            "half-made segment left"
        );
        assert_eq!(batches_in(&log), acknowledged);
    }
    fs::remove_dir(&blocker).expect("rmdir");
    append_ok(&mut log, &mut acknowledged, 3);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(batches_in(&log), acknowledged);
    log.close().expect("close");
    let log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("clean open");
    assert_eq!(batches_in(&log), acknowledged);
    drop(log);
    let log = Log::open(dir.path(), config, 0, false, 0).expect("unclean open");
    assert_eq!(batches_in(&log), acknowledged);
}

#[test]
fn a_segment_file_that_cannot_be_reopened_is_an_io_error_until_it_is_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: batch(3, 0).len() as u64 * 2,
        ..crate::log_tests::small_config()
    };
    let mut log = Log::open(dir.path(), config, 0, true, 0).expect("open");
    let mut acknowledged = Vec::new();
    for _ in 0..6 {
        append_ok(&mut log, &mut acknowledged, 3);
    }
    assert_eq!(log.segment_count(), 3);
    let path = segment_file(dir.path(), 0, "log");
    let moved = dir.path().join("moved-away");
    fs::rename(&path, &moved).expect("move the first segment away");
    // Whatever the cache held is closed: the next read must reopen the file.
    crate::fd_cache::global().clear();
    let error = log.read(0, 1 << 20, false).expect_err("cannot reopen");
    assert!(matches!(error, StorageError::Io { .. }), "{error}");
    assert_eq!(error.kafka_error_code(), 56);
    // The rest of the log still serves.
    assert_eq!(
        headers(&log.read(6, 1 << 20, false).expect("read")).len(),
        4
    );
    fs::rename(&moved, &path).expect("move it back");
    assert_eq!(batches_in(&log), acknowledged);
}

/// A log of `batches` 2-record batches in one segment, flushed after the first
/// `flushed` of them, then dropped without a close (a crash). Returns batch sizes.
fn crash_after_partial_flush(
    dir: &Path,
    config: &LogConfig,
    batches: usize,
    flushed: usize,
) -> Vec<u64> {
    let mut log = Log::open(dir, config.clone(), 0, true, 0).expect("open");
    let mut sizes = Vec::new();
    for i in 0..batches {
        if i == flushed {
            log.flush().expect("flush");
        }
        let mut records = batch(2, i as i64 * 10);
        sizes.push(records.len() as u64);
        log.append(&mut records, 0, 0).expect("append");
    }
    drop(log);
    sizes
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = fs::read(path).expect("read");
    bytes[at as usize] ^= 0x40;
    fs::write(path, &bytes).expect("write");
}

#[test]
fn unclean_reopen_scans_only_the_tail_after_the_recovery_point() {
    let config = LogConfig {
        index_interval_bytes: 0,
        ..crate::log_tests::small_config()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sizes = crash_after_partial_flush(dir.path(), &config, 12, 10);
    let path = segment_file(dir.path(), 0, "log");
    // A flipped byte in batch 3 (below the recovery point 20): flushed data is
    // trusted, as Kafka trusts flushed segments, so it is not even read...
    let batch_3: u64 = sizes[..3].iter().sum::<u64>() + sizes[3] / 2;
    flip_byte(&path, batch_3);
    // ...while the unflushed tail is checked: cut the last batch in half.
    let total: u64 = sizes.iter().sum();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|file| file.set_len(total - sizes[11] / 2))
        .expect("tear the last batch");
    let log = Log::open(dir.path(), config.clone(), 20, false, 0).expect("open");
    assert_eq!(log.log_end_offset(), 22, "only the torn batch goes");
    assert_eq!(log.recovery_point(), 22);
    // The same files with the whole segment scanned (recovery point 0) find the
    // flipped byte and truncate there.
    drop(log);
    let log = Log::open(dir.path(), config, 0, false, 0).expect("open");
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn untrustworthy_index_entries_below_the_recovery_point_mean_a_full_scan() {
    let config = LogConfig {
        index_interval_bytes: 0,
        ..crate::log_tests::small_config()
    };
    for damage in [
        vec![0u8; 64],                        // zeros (a preallocated index)
        vec![0xab; 40],                       // garbage
        [0u8, 0, 0, 9, 0, 0, 0, 5].repeat(2), // out of order
        [0u8, 0, 0, 1, 0, 0, 0, 7].to_vec(),  // not at a batch boundary
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        crash_after_partial_flush(dir.path(), &config, 8, 6);
        fs::write(segment_file(dir.path(), 0, "index"), &damage).expect("damage");
        let log = Log::open(dir.path(), config.clone(), 12, false, 0).expect("open");
        assert_eq!(log.log_end_offset(), 16, "damage {damage:?}");
        assert_eq!(batches_in(&log).len(), 8);
        for offset in 0..16 {
            let one = log.read(offset, 1, true).expect("read one");
            let h = headers(&one)[0];
            assert!(h.base_offset <= offset && offset <= h.last_offset());
        }
    }
}

#[test]
fn corruption_in_a_middle_segment_after_an_unclean_stop_truncates_there() {
    let batch_size = batch(2, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 3,
        index_interval_bytes: 0,
        ..crate::log_tests::small_config()
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("open");
    for i in 0..12 {
        log.append(&mut batch(2, i * 10), 0, 0).expect("append");
    }
    // Segments at 0, 6, 12, 18; rolls fsynced up to 18, but the broker's
    // checkpoint (written every minute) still says 6.
    assert_eq!(log.segment_count(), 4);
    drop(log);
    // The middle of segment 12's second batch is damaged.
    flip_byte(
        &segment_file(dir.path(), 12, "log"),
        batch_size + batch_size / 2,
    );
    let mut log = Log::open(dir.path(), config.clone(), 6, false, 0).expect("open");
    assert_eq!(
        log.log_end_offset(),
        14,
        "truncated after segment 12's first batch"
    );
    assert_eq!(log.segment_count(), 3);
    assert!(!segment_file(dir.path(), 18, "log").exists());
    assert!(!segment_file(dir.path(), 18, "index").exists());
    let info = log
        .append(&mut batch(2, 0), 0, 0)
        .expect("append after recovery");
    assert_eq!(info.base_offset, 14);
    log.close().expect("close");
    let log = Log::open(dir.path(), config, 0, true, 0).expect("clean open");
    assert_eq!(log.log_end_offset(), 16);
    assert_eq!(batches_in(&log).len(), 8);
}
