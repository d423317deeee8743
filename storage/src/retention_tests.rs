//! Unit tests of the log start offset: retention by time and size,
//! DeleteRecords, and restoring a checkpointed start offset.

use crate::batch::test_support::batch;
use crate::log_tests::{open, small_config};
use crate::{Log, LogConfig, StorageError};

/// Appends `batches` batches of 2 records each, all stamped `timestamp`, each
/// in a segment of its own (one roll after every batch).
fn segmented_log(dir: &std::path::Path, config: LogConfig, batches: usize, timestamp: i64) -> Log {
    let mut log = open(dir, config);
    for _ in 0..batches {
        log.append(&mut batch(2, timestamp), 0, timestamp)
            .expect("append");
        log.roll(timestamp).expect("roll");
    }
    log
}

fn out_of_range(log: &Log, offset: i64) -> bool {
    matches!(
        log.read(offset, 1 << 20, true),
        Err(StorageError::OffsetOutOfRange { .. })
    )
}

#[test]
fn retention_by_time_deletes_old_segments_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_config()
    };
    let mut log = segmented_log(dir.path(), config, 3, 10_000);
    log.append(&mut batch(2, 20_000), 0, 20_000)
        .expect("append");
    assert_eq!(log.segment_count(), 4);
    // At 11_000 nothing is older than a second.
    assert_eq!(log.apply_retention(11_000).expect("retention"), 0);
    // At 15_000 the three old segments go; the active one (20_000) stays.
    assert_eq!(log.apply_retention(15_000).expect("retention"), 3);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 6);
    assert!(out_of_range(&log, 5));
    assert!(!log.read(6, 1 << 20, true).expect("read").is_empty());
    // Once the active segment is old too it goes, and an empty one takes over.
    assert_eq!(log.apply_retention(30_000).expect("retention"), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 8));
    assert_eq!(log.segment_count(), 1);
    let info = log
        .append(&mut batch(1, 30_000), 0, 30_000)
        .expect("append");
    assert_eq!(info.base_offset, 8);
    // Deleted files are gone from the directory.
    let logs = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "log"))
        })
        .count();
    assert_eq!(logs, 1);
}

#[test]
fn retention_by_size_keeps_the_newest_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = segmented_log(dir.path(), small_config(), 4, 10_000);
    let segment_size = log.size_bytes() / 4;
    log.set_config(LogConfig {
        retention_bytes: (2 * segment_size + 1) as i64,
        ..small_config()
    });
    assert_eq!(log.apply_retention(10_000).expect("retention"), 1);
    assert_eq!(log.log_start_offset(), 2);
    assert!(log.size_bytes() <= 3 * segment_size);
}

#[test]
fn compact_only_logs_are_not_deleted_by_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        retention_ms: 0,
        retention_bytes: 0,
        cleanup_delete: false,
        cleanup_compact: true,
        ..small_config()
    };
    let mut log = segmented_log(dir.path(), config, 3, 10_000);
    assert_eq!(log.apply_retention(1_000_000).expect("retention"), 0);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn delete_records_moves_the_start_offset_and_drops_whole_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = segmented_log(dir.path(), small_config(), 3, 10_000);
    // Offset 3 is inside the second segment's batch [2, 3].
    assert_eq!(log.delete_records_before(3).expect("delete records"), 3);
    assert_eq!(
        log.segment_count(),
        3,
        "the segment below 3 is gone, plus the empty active one"
    );
    assert!(out_of_range(&log, 2));
    let read = log
        .read(3, 1 << 20, true)
        .expect("read at the start offset");
    let first = crate::log_tests::headers(&read)[0];
    assert_eq!(
        first.base_offset, 2,
        "the batch holding the start offset comes whole"
    );
    // Never moves back.
    assert_eq!(log.delete_records_before(1).expect("delete records"), 3);
    // Not past the end.
    assert!(matches!(
        log.delete_records_before(7),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    // Up to the end: everything below is deleted, the log stays appendable.
    assert_eq!(log.delete_records_before(6).expect("delete records"), 6);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    assert_eq!(log.read(6, 1 << 20, true).expect("read").len(), 0);
    assert_eq!(
        log.append(&mut batch(1, 1), 0, 1)
            .expect("append")
            .base_offset,
        6
    );
}

#[test]
fn a_restored_start_offset_stays_within_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = segmented_log(dir.path(), small_config(), 2, 10_000);
    log.restore_log_start_offset(3);
    assert_eq!(log.log_start_offset(), 3);
    log.restore_log_start_offset(100);
    assert_eq!(log.log_start_offset(), 4);
    log.restore_log_start_offset(-5);
    assert_eq!(log.log_start_offset(), 0);
    // Truncation below the start offset moves it down with the log end.
    log.restore_log_start_offset(3);
    log.truncate_to(2).expect("truncate");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
}

#[test]
fn timestamp_lookups_skip_deleted_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    // One batch of 4 records stamped 100, 101, 102, 103.
    log.append(&mut batch(4, 100), 0, 100).expect("append");
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), Some((0, 100)));
    log.delete_records_before(2).expect("delete records");
    assert_eq!(log.offset_for_timestamp(0).expect("lookup"), Some((2, 102)));
    assert_eq!(
        log.offset_for_timestamp(103).expect("lookup"),
        Some((3, 103))
    );
    assert_eq!(log.offset_for_timestamp(104).expect("lookup"), None);
}

#[test]
fn compacted_logs_refuse_records_without_keys() {
    use crate::batch::test_support::{encode_batch, NO_PRODUCER};
    use kafka_protocol::records::Compression;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        cleanup_compact: true,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    let keyless = |compression| encode_batch(&[(None, Some("v"))], &[1], compression, NO_PRODUCER);
    for compression in [Compression::None, Compression::Gzip] {
        let error = log.append(&mut keyless(compression), 0, 1).unwrap_err();
        assert_eq!(error.kafka_error_code(), 87, "{error}");
    }
    // Keyed records (the test batches have keys) are fine.
    assert_eq!(
        log.append(&mut batch(2, 1), 0, 1)
            .expect("append")
            .base_offset,
        0
    );
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn compacted_logs_roll_by_max_compaction_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        cleanup_compact: true,
        max_compaction_lag_ms: 100,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    log.append(&mut batch(1, 1_000), 0, 1_000).expect("append");
    log.append(&mut batch(1, 1_050), 0, 1_050).expect("append");
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(1, 1_200), 0, 1_200).expect("append");
    assert_eq!(
        log.segment_count(),
        2,
        "rolled once the first append was 100 ms old"
    );
}
