//! Unit tests of `Log`: append, read, roll, flush, truncate, timestamp lookups.

use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use crate::batch::test_support::{batch, batch_with_timestamps};
use crate::batch::{self, BatchHeader};
use crate::{Log, LogConfig, StorageError, TimestampType};

pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1 << 20,
        segment_index_bytes: 4096,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

pub(crate) fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0, true, 0).expect("open log")
}

/// Headers of the batches in a read result.
pub(crate) fn headers(bytes: &[u8]) -> Vec<BatchHeader> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let header = batch::validate(&bytes[position..], position as u64).expect("valid batch");
        position += header.size();
        out.push(header);
    }
    out
}

/// (offset, timestamp) of every record in a read result.
fn records(bytes: &Bytes) -> Vec<(i64, i64)> {
    let mut buf = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buf)
        .expect("decodes")
        .iter()
        .flat_map(|set| set.records.iter().map(|r| (r.offset, r.timestamp)))
        .collect()
}

fn append(log: &mut Log, count: usize, base_ts: i64) -> crate::AppendInfo {
    log.append(&mut batch(count, base_ts), 3, base_ts)
        .expect("append")
}

#[test]
fn append_assigns_offsets_and_reads_whole_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    let first = append(&mut log, 3, 100);
    assert_eq!((first.base_offset, first.last_offset), (0, 2));
    assert_eq!((first.record_count, first.log_append_time), (3, -1));
    let mut two = batch(2, 200);
    two.extend_from_slice(&batch(4, 300));
    let second = log.append(&mut two, 5, 300).expect("two batches");
    assert_eq!(
        (second.base_offset, second.last_offset, second.record_count),
        (3, 8, 6)
    );
    assert_eq!(log.log_end_offset(), 9);

    let all = log.read(0, 1 << 20, false).expect("read");
    let hs = headers(&all);
    assert_eq!(
        hs.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 3, 5]
    );
    assert_eq!(hs[0].partition_leader_epoch, 3);
    assert_eq!(hs[2].partition_leader_epoch, 5);
    assert_eq!(
        records(&all).iter().map(|r| r.0).collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );

    // A fetch inside a batch returns that whole batch.
    let inside = log.read(4, 1 << 20, false).expect("read inside");
    assert_eq!(headers(&inside)[0].base_offset, 3);
    let last = log.read(8, 1 << 20, false).expect("read last offset");
    assert_eq!(headers(&last).len(), 1);
    assert_eq!(headers(&last)[0].base_offset, 5);
    assert_eq!(log.size_bytes(), all.len() as u64);
}

#[test]
fn read_limits_and_ranges() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    for i in 0..4 {
        append(&mut log, 2, i * 10);
    }
    let first_size = headers(&log.read(0, 1 << 20, false).expect("read"))[0].size();
    let one = log.read(0, first_size + 1, false).expect("read");
    assert_eq!(one.len(), first_size);
    assert!(log.read(0, 10, false).expect("too small").is_empty());
    assert_eq!(
        log.read(0, 10, true).expect("min one batch").len(),
        first_size
    );
    assert_eq!(log.read(0, 0, true).expect("zero max").len(), first_size);
    assert_eq!(
        log.read(0, first_size * 2, true).expect("two").len(),
        first_size * 2
    );
    assert!(log.read(8, 100, true).expect("at log end").is_empty());
    for bad in [9, -1, 1000] {
        match log.read(bad, 100, true) {
            Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            }) => {
                assert_eq!((offset, log_start_offset, log_end_offset), (bad, 0, 8));
            }
            other => panic!("expected OffsetOutOfRange for {bad}, got {other:?}"),
        }
    }
}

#[test]
fn invalid_input_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        max_message_bytes: 200,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    append(&mut log, 1, 0);
    let size = log.size_bytes();

    let mut good_then_bad = batch(1, 0);
    let mut corrupt = batch(2, 0);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    good_then_bad.extend_from_slice(&corrupt);
    let err = log
        .append(&mut good_then_bad, 0, 0)
        .expect_err("corrupt second batch");
    assert!(matches!(err, StorageError::CrcMismatch { .. }));

    let mut partial = batch(1, 0);
    partial.extend_from_slice(&batch(1, 0)[..20]);
    assert!(matches!(
        log.append(&mut partial, 0, 0),
        Err(StorageError::CorruptBatch { .. })
    ));
    assert!(matches!(
        log.append(&mut [], 0, 0),
        Err(StorageError::CorruptBatch { .. })
    ));

    let mut inconsistent = batch(3, 0);
    inconsistent[57..61].copy_from_slice(&2i32.to_be_bytes()); // recordCount
    let crc = batch::compute_crc(&inconsistent);
    inconsistent[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        log.append(&mut inconsistent, 0, 0),
        Err(StorageError::InvalidBatch { .. })
    ));

    let mut big = batch(40, 0);
    match log.append(&mut big, 0, 0) {
        Err(StorageError::MessageTooLarge { size, max }) => {
            assert_eq!((size, max), (big.len(), 200))
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    assert_eq!((log.log_end_offset(), log.size_bytes()), (1, size));
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch_size = batch(3, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 2,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    for i in 0..7 {
        append(&mut log, 3, i);
    }
    assert_eq!(log.segment_count(), 4);
    assert_eq!(log.log_end_offset(), 21);
    for base in [0, 6, 12, 18] {
        for extension in ["log", "index", "timeindex"] {
            let name = format!("{base:020}.{extension}");
            assert!(dir.path().join(&name).exists(), "{name}");
        }
    }
    // Rolled segments are fsynced: the recovery point is the last roll.
    assert_eq!(log.recovery_point(), 18);
    let all = log.read(0, 1 << 20, false).expect("read across segments");
    assert_eq!(headers(&all).len(), 7);
    let from_middle = log.read(7, (batch_size * 3) as usize, false).expect("read");
    assert_eq!(
        headers(&from_middle)
            .iter()
            .map(|h| h.base_offset)
            .collect::<Vec<_>>(),
        vec![6, 9, 12]
    );
    // What a replica at an offset lacks, in bytes: whole batches from the
    // one holding it, across segments.
    assert_eq!(log.bytes_from(21).unwrap(), 0);
    assert_eq!(log.bytes_from(19).unwrap(), batch_size);
    assert_eq!(log.bytes_from(7).unwrap(), batch_size * 5);
    assert_eq!(log.bytes_from(0).unwrap(), log.size_bytes());
    // A batch larger than segment.bytes still goes in, alone in a fresh segment.
    let mut huge = batch(50, 0);
    log.append(&mut huge, 0, 0).expect("huge batch");
    assert_eq!(log.segment_count(), 5);
}

#[test]
fn rolls_by_time_and_on_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_ms: 100,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    log.append(&mut batch(1, 0), 0, 1_000).expect("append");
    log.append(&mut batch(1, 0), 0, 1_100)
        .expect("append, not yet old");
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(1, 0), 0, 1_101)
        .expect("append, segment too old");
    assert_eq!(log.segment_count(), 2);
    log.roll(2_000).expect("roll");
    assert_eq!(log.segment_count(), 3);
    log.roll(2_000)
        .expect("roll of an empty segment is a no-op");
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.recovery_point(), 3);
    assert_eq!(
        headers(&log.read(0, 1 << 20, false).expect("read")).len(),
        3
    );
}

#[test]
fn sparse_index_is_used_for_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        index_interval_bytes: 0,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..50 {
        append(&mut log, (i % 3 + 1) as usize, i);
    }
    let end = log.log_end_offset();
    for offset in 0..end {
        let got = log.read(offset, 1, true).expect("read");
        let header = headers(&got)[0];
        assert!(
            header.base_offset <= offset && offset <= header.last_offset(),
            "offset {offset}"
        );
    }
    log.close().expect("close");
    // Every batch but the first is indexed; trimmed on close.
    let index = std::fs::read(dir.path().join(format!("{:020}.index", 0))).expect("index");
    assert_eq!(index.len(), 49 * 8);
    assert_eq!(
        &index[..4],
        &2u32.to_be_bytes(),
        "entry holds the batch's last offset"
    );
    let log = Log::open(dir.path(), config, 0, true, 0).expect("reopen");
    assert_eq!(log.log_end_offset(), end);
}

#[test]
fn log_append_time_stamps_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    let mut records = batch_with_timestamps(&[1, 2, 3], Compression::Gzip);
    let info = log.append(&mut records, 0, 5_555).expect("append");
    assert_eq!(info.log_append_time, 5_555);
    log.append(&mut batch(2, 9), 0, 7_000).expect("append");
    let read = log.read(0, 1 << 20, false).expect("read");
    let hs = headers(&read);
    assert!(hs
        .iter()
        .all(|h| h.timestamp_type() == TimestampType::LogAppendTime));
    assert_eq!(hs[0].max_timestamp, 5_555);
    assert_eq!(hs[0].compression(), 1);
    assert_eq!(
        log.offset_for_timestamp(5_000).expect("lookup"),
        Some((0, 5_555))
    );
    assert_eq!(
        log.offset_for_timestamp(6_000).expect("lookup"),
        Some((3, 7_000))
    );
    assert_eq!(log.max_timestamp().expect("max"), Some((3, 7_000)));
}

fn timestamp_log(dir: &Path, config: LogConfig) -> Log {
    let mut log = open(dir, config);
    for timestamps in [
        &[100, 101, 102][..],
        &[50, 200, 150],
        &[300],
        &[10, 300, 20],
    ] {
        let mut records = batch_with_timestamps(timestamps, Compression::None);
        log.append(&mut records, 0, 0).expect("append");
    }
    log
}

fn check_timestamp_lookups(log: &Log) {
    let lookup = |ts| log.offset_for_timestamp(ts).expect("lookup");
    assert_eq!(lookup(0), Some((0, 100)));
    assert_eq!(lookup(100), Some((0, 100)));
    assert_eq!(lookup(101), Some((1, 101)));
    assert_eq!(lookup(103), Some((4, 200)));
    assert_eq!(lookup(200), Some((4, 200)));
    assert_eq!(lookup(201), Some((6, 300)));
    assert_eq!(lookup(301), None);
    // KIP-734: the first record holding the largest timestamp.
    assert_eq!(log.max_timestamp().expect("max"), Some((6, 300)));
}

#[test]
fn timestamp_lookups_in_one_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = timestamp_log(dir.path(), small_config());
    check_timestamp_lookups(&log);
}

#[test]
fn timestamp_lookups_across_segments_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 150,
        index_interval_bytes: 0,
        ..small_config()
    };
    let log = timestamp_log(dir.path(), config.clone());
    assert!(log.segment_count() >= 3);
    check_timestamp_lookups(&log);
    log.close().expect("close");
    let log = Log::open(dir.path(), config.clone(), 0, true, 0).expect("clean reopen");
    check_timestamp_lookups(&log);
    drop(log);
    let log = Log::open(dir.path(), config, 0, false, 0).expect("unclean reopen");
    check_timestamp_lookups(&log);
    let empty_dir = tempfile::tempdir().expect("tempdir");
    let empty = open(empty_dir.path(), small_config());
    assert_eq!(empty.offset_for_timestamp(0).expect("lookup"), None);
    assert_eq!(empty.max_timestamp().expect("max"), None);
}

#[test]
fn a_log_can_start_again_past_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    append(&mut log, 3, 0);
    log.truncate_fully_and_start_at(100).expect("start at 100");
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert_eq!(append(&mut log, 2, 10).base_offset, 100);
    log.close().expect("close");
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn truncate_to_cuts_at_batch_boundaries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch_size = batch(3, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 2,
        index_interval_bytes: 0,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..6 {
        append(&mut log, 3, i * 100);
    }
    assert_eq!((log.log_end_offset(), log.segment_count()), (18, 3));
    log.truncate_to(100).expect("no-op above the end");
    assert_eq!(log.log_end_offset(), 18);
    // Offset 10 is inside batch [9, 11]: the whole batch goes.
    log.truncate_to(10).expect("truncate");
    assert_eq!((log.log_end_offset(), log.segment_count()), (9, 2));
    assert_eq!(log.recovery_point(), 9);
    assert_eq!(
        headers(&log.read(0, 1 << 20, false).expect("read")).len(),
        3
    );
    assert_eq!(log.max_timestamp().expect("max"), Some((8, 202)));
    assert_eq!(log.offset_for_timestamp(300).expect("lookup"), None);
    let info = append(&mut log, 2, 1_000);
    assert_eq!(info.base_offset, 9);
    assert_eq!(log.max_timestamp().expect("max"), Some((10, 1_001)));
    // At a segment base: that segment is emptied.
    log.truncate_to(6).expect("truncate at segment base");
    assert_eq!((log.log_end_offset(), log.segment_count()), (6, 2));
    log.close().expect("close");
    let mut log = Log::open(dir.path(), config.clone(), 0, false, 0).expect("reopen");
    assert_eq!(log.log_end_offset(), 6);
    log.truncate_to(0).expect("truncate everything");
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.segment_count()
        ),
        (0, 0, 1)
    );
    append(&mut log, 1, 0);
    assert_eq!(log.log_end_offset(), 1);
    assert!(log.truncate_to(-1).is_err());
}

#[test]
fn flush_policies_move_the_recovery_point() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        flush_messages: 5,
        flush_ms: 1_000,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    append(&mut log, 3, 0);
    assert_eq!(log.recovery_point(), 0);
    append(&mut log, 2, 0);
    assert_eq!(log.recovery_point(), 5, "flush.messages reached");
    append(&mut log, 1, 0);
    log.flush_if_due(500).expect("not due");
    assert_eq!(log.recovery_point(), 5);
    log.flush_if_due(1_000).expect("due");
    assert_eq!(log.recovery_point(), 6);
    append(&mut log, 1, 0);
    log.flush().expect("flush");
    assert_eq!(log.recovery_point(), 7);
}

#[test]
fn close_reopen_and_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("topic-0");
    let config = small_config();
    let mut log = open(&path, config.clone());
    for i in 0..20 {
        append(&mut log, 2, i);
    }
    let before = log.read(0, 1 << 20, false).expect("read");
    log.close().expect("close");
    let index_len = std::fs::metadata(path.join(format!("{:020}.index", 0)))
        .expect("meta")
        .len();
    assert!(
        index_len.is_multiple_of(8) && index_len < 4096,
        "trimmed on close"
    );
    let mut log = Log::open(&path, config, 0, true, 0).expect("reopen");
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(log.recovery_point(), 40);
    assert_eq!(log.read(0, 1 << 20, false).expect("read"), before);
    assert_eq!(append(&mut log, 1, 0).base_offset, 40);
    assert_eq!(log.dir(), path.as_path());
    assert_eq!(log.config().index_interval_bytes, 100);
    log.set_config(LogConfig::default());
    assert_eq!(log.config().index_interval_bytes, 4096);
    log.delete().expect("delete");
    assert!(!path.exists());
}

#[test]
fn log_and_errors_can_cross_threads() {
    // The broker shares logs behind locks across tokio tasks and wraps errors in anyhow.
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Log>();
    assert_send_sync::<StorageError>();
}

#[test]
fn truncating_into_an_older_segment_keeps_its_index_complete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let batch_size = batch(3, 0).len() as u64;
    let config = LogConfig {
        segment_bytes: batch_size * 6,
        index_interval_bytes: 0,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    for i in 0..9 {
        append(&mut log, 3, i * 10);
    }
    assert_eq!(log.segment_count(), 2);
    log.truncate_to(12)
        .expect("truncate into the first segment");
    assert_eq!((log.log_end_offset(), log.segment_count()), (12, 1));
    log.close().expect("close");
    let index_path = dir.path().join(format!("{:020}.index", 0));
    let after_truncate = std::fs::read(&index_path).expect("index");
    assert_eq!(after_truncate.len(), 3 * 8, "batches 2..4 indexed");
    std::fs::remove_file(&index_path).expect("rm");
    Log::open(dir.path(), config, 0, true, 0)
        .expect("rebuild")
        .close()
        .expect("close");
    assert_eq!(std::fs::read(&index_path).expect("index"), after_truncate);
}

#[test]
fn batch_headers_are_visited_across_segments_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut log = open(dir.path(), small_config());
    for count in [3, 5, 2] {
        log.append(&mut batch(count, 1_000), 0, 0).expect("append");
        log.roll(0).expect("roll");
    }
    log.append(&mut batch(4, 1_000), 0, 0).expect("append");
    let mut seen = Vec::new();
    log.for_each_batch_header(|header| seen.push((header.base_offset, header.record_count)))
        .expect("walk headers");
    assert_eq!(seen, vec![(0, 3), (3, 5), (8, 2), (10, 4)]);
    assert!(log.segment_count() >= 4);
}

/// The leader epoch cache follows the log: an entry per epoch that appended,
/// kept across reopens, cut with truncation and DeleteRecords, dropped when
/// it points past a log cut short, and rebuilt from the batches when the
/// checkpoint is missing (a log of an earlier release).
#[test]
fn leader_epochs_follow_appends_truncation_and_reopen() {
    use crate::leader_epoch::LEADER_EPOCH_CHECKPOINT;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = open(dir.path(), small_config());
    let append_under = |log: &mut Log, epoch: i32, count: usize| {
        log.append(&mut batch(count, 100), epoch, 100)
            .expect("append");
    };
    append_under(&mut log, 0, 3);
    append_under(&mut log, 0, 2);
    append_under(&mut log, 2, 4);
    assert_eq!(log.end_offset_for_epoch(0), (0, 5));
    assert_eq!(log.end_offset_for_epoch(1), (0, 5));
    assert_eq!(log.end_offset_for_epoch(2), (2, 9));
    assert_eq!(log.latest_epoch(), Some(2));
    let checkpoint = dir.path().join(LEADER_EPOCH_CHECKPOINT);
    assert_eq!(
        std::fs::read_to_string(&checkpoint).unwrap(),
        "0\n2\n0 0\n2 5\n"
    );

    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.end_offset_for_epoch(0), (0, 5));
    log.truncate_to(5).expect("truncate");
    assert_eq!(log.latest_epoch(), Some(0));
    assert_eq!(log.end_offset_for_epoch(2), (-1, -1));
    append_under(&mut log, 3, 2);
    log.delete_records_before(6).expect("delete records");
    assert_eq!(std::fs::read_to_string(&checkpoint).unwrap(), "0\n1\n3 6\n");

    // An entry written just before a crash cut the append short.
    std::fs::write(&checkpoint, "0\n2\n3 5\n4 7\n").unwrap();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(log.latest_epoch(), Some(3));

    std::fs::remove_file(&checkpoint).unwrap();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        log.end_offset_for_epoch(0),
        (0, 5),
        "rebuilt from the batches"
    );
    assert_eq!(log.latest_epoch(), Some(3));
}

/// Reads below a bound (the high watermark) stop before the batch holding
/// it, within a segment and across segments.
#[test]
fn reads_below_an_offset_leave_out_the_batch_holding_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    for count in [3, 2, 4, 1] {
        log.append(&mut batch(count, 100), 0, 100).expect("append");
    }
    assert!(log.segment_count() > 1, "the batches span segments");
    let read = |log: &Log, offset, below| {
        let slices = log
            .read_slices_below(offset, below, 1 << 20, true)
            .expect("read");
        let bytes = crate::read_slices(&slices).expect("bytes");
        headers(&bytes)
            .iter()
            .map(|h| (h.base_offset, h.last_offset_delta + 1))
            .collect::<Vec<_>>()
    };
    assert_eq!(read(&log, 0, 10), [(0, 3), (3, 2), (5, 4), (9, 1)]);
    assert_eq!(read(&log, 0, 5), [(0, 3), (3, 2)]);
    assert_eq!(
        read(&log, 0, 4),
        [(0, 3)],
        "the batch holding 4 is left out"
    );
    assert_eq!(read(&log, 3, 9), [(3, 2), (5, 4)]);
    assert!(read(&log, 5, 5).is_empty());
    assert!(read(&log, 0, 0).is_empty());
}

/// A follower's log takes its leader's batches as they are (offsets and
/// leader epochs) and refuses any that do not continue it.
#[test]
fn a_follower_appends_its_leader_s_batches_unchanged() {
    let (leader_dir, follower_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open(leader_dir.path(), small_config());
    let mut follower = open(follower_dir.path(), small_config());
    leader.append(&mut batch(3, 100), 0, 100).unwrap();
    leader.append(&mut batch(2, 100), 4, 100).unwrap();
    let bytes = leader.read(0, 1 << 20, true).unwrap();
    let info = follower.append_as_follower(&bytes, 100).unwrap();
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (0, 4, 5)
    );
    assert_eq!(
        follower.read(0, 1 << 20, true).unwrap(),
        bytes,
        "byte for byte"
    );
    assert_eq!(follower.end_offset_for_epoch(0), (0, 3));
    assert_eq!(follower.latest_epoch(), Some(4));

    // Again (a gap or an overlap): refused, nothing written.
    let refused = follower.append_as_follower(&bytes, 100).unwrap_err();
    assert!(
        matches!(refused, StorageError::InvalidBatch { .. }),
        "{refused}"
    );
    assert_eq!(follower.log_end_offset(), 5);
}
