//! Unit tests of log compaction: what is kept, what the phases decide, and that a
//! kill at every step of a swap leaves a correct log.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use crate::batch::test_support::{encode_batch, Kv, Producer, NO_PRODUCER};
use crate::batch::{self, BatchHeader};
use crate::{Log, LogConfig, TimestampType};

/// A wall-clock-like starting time (file modification times hold the tombstone clock).
const T0: i64 = 1_700_000_000_000;

fn compact_config() -> LogConfig {
    LogConfig {
        segment_index_bytes: 4096,
        index_interval_bytes: 100,
        cleanup_compact: true,
        cleanup_delete: false,
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    }
}

/// A batch as a client encodes it (kafka-protocol), all records at `timestamp`.
fn encode(
    records: &[Kv<'_>],
    timestamp: i64,
    compression: Compression,
    producer: Producer,
) -> Vec<u8> {
    encode_batch(
        records,
        &vec![timestamp; records.len()],
        compression,
        producer,
    )
}

/// (offset, key, value) of a record.
type Row = (i64, Option<String>, Option<String>);

/// Appends a batch and records what was appended in `model`.
fn append(
    log: &mut Log,
    model: &mut Vec<Row>,
    records: &[Kv<'_>],
    timestamp: i64,
    compression: Compression,
) {
    append_as(log, model, records, timestamp, compression, NO_PRODUCER);
}

fn append_as(
    log: &mut Log,
    model: &mut Vec<Row>,
    records: &[Kv<'_>],
    timestamp: i64,
    compression: Compression,
    producer: Producer,
) {
    let mut bytes = encode(records, timestamp, compression, producer);
    // Produce refuses keyless records for compacted topics, but a log written
    // before its topic became compacted holds them: append those as such.
    let config = log.config().clone();
    let keyless = records.iter().any(|(key, _)| key.is_none());
    if keyless {
        log.set_config(LogConfig {
            cleanup_compact: false,
            ..config.clone()
        });
    }
    let appended = log.append(&mut bytes, 0, timestamp);
    log.set_config(config);
    let info = appended.expect("append");
    for (i, (key, value)) in records.iter().enumerate() {
        model.push((
            info.base_offset + i as i64,
            key.map(str::to_string),
            value.map(str::to_string),
        ));
    }
}

/// Every record in the log, checking that batches are valid and offsets increase.
fn read_all(log: &Log) -> Vec<Row> {
    let bytes = log
        .read(log.log_start_offset(), usize::MAX, true)
        .expect("read");
    let batches = batch::validate_all(&bytes).unwrap_or_default();
    let mut previous_end = -1;
    for (_, header) in &batches {
        assert!(header.base_offset > previous_end, "batches in offset order");
        previous_end = header.last_offset();
    }
    let mut buf = bytes.clone();
    let rows: Vec<Row> = RecordBatchDecoder::decode_all(&mut buf)
        .expect("decodes")
        .iter()
        .flat_map(|set| set.records.iter())
        .map(|record| {
            let text =
                |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
            (record.offset, text(&record.key), text(&record.value))
        })
        .collect();
    assert!(
        rows.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets strictly increase"
    );
    rows
}

/// Headers of every batch in the log.
fn all_headers(log: &Log) -> Vec<BatchHeader> {
    let bytes = log
        .read(log.log_start_offset(), usize::MAX, true)
        .expect("read");
    batch::validate_all(&bytes)
        .expect("valid batches")
        .into_iter()
        .map(|(_, header)| header)
        .collect()
}

/// What compaction of `model` below `end` keeps: the latest record per key (and every
/// keyless record); tombstones too unless `drop_tombstones`.
fn compacted(model: &[Row], end: i64, drop_tombstones: bool) -> Vec<Row> {
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (offset, key, _) in model.iter().filter(|row| row.0 < end) {
        if let Some(key) = key {
            latest.insert(key, *offset);
        }
    }
    model
        .iter()
        .filter(|(offset, key, value)| {
            *offset >= end
                || match key {
                    None => true,
                    Some(key) => {
                        latest[key.as_str()] == *offset && !(drop_tombstones && value.is_none())
                    }
                }
        })
        .cloned()
        .collect()
}

fn open(dir: &Path, config: LogConfig) -> Log {
    Log::open(dir, config, 0, true, T0).expect("open log")
}

/// Three segments of updates to keys a, b, c (with a tombstone for b) and a fourth,
/// active one.
fn updates_log(dir: &Path, config: LogConfig, model: &mut Vec<Row>) -> Log {
    let mut log = open(dir, config);
    append(
        &mut log,
        model,
        &[(Some("a"), Some("a1")), (Some("b"), Some("b1"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        model,
        &[(Some("c"), Some("c1")), (Some("a"), Some("a2"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    append(
        &mut log,
        model,
        &[(Some("b"), None), (Some("a"), Some("a3"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        model,
        &[(None, Some("keyless"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    append(
        &mut log,
        model,
        &[(Some("c"), Some("c2")), (Some("d"), Some("d1"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    append(
        &mut log,
        model,
        &[(Some("a"), Some("a4")), (Some("d"), Some("d2"))],
        T0,
        Compression::None,
    );
    log
}

#[test]
fn keeps_the_latest_value_per_key_at_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = updates_log(dir.path(), compact_config(), &mut model);
    let end = log.segments.last().expect("active").base_offset();
    let log_end_offset = log.log_end_offset();
    let stats = log.compact_now(T0).expect("compact");
    assert_eq!(stats.first_dirty_offset, end);
    assert_eq!(stats.segments_cleaned, 3);
    assert_eq!(
        stats.segments_written, 1,
        "three small segments merge into one"
    );
    assert_eq!(stats.records_removed, 4, "a1, a2, b1, c1");
    assert_eq!(read_all(&log), compacted(&model, end, false));
    assert_eq!(log.log_end_offset(), log_end_offset);
    assert_eq!(log.segment_count(), 2);
    // A second cleaning of a clean log changes nothing.
    let again = log.compact_now(T0).expect("compact again");
    assert_eq!(again.records_removed, 0);
    assert_eq!(read_all(&log), compacted(&model, end, false));
    // And the result survives a reopen, clean or not.
    drop(log);
    for clean in [true, false] {
        let log = Log::open(dir.path(), compact_config(), 0, clean, T0).expect("reopen");
        assert_eq!(read_all(&log), compacted(&model, end, false));
        assert_eq!(log.log_end_offset(), log_end_offset);
    }
}

#[test]
fn the_last_batch_of_a_cleaned_segment_stays_as_an_empty_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    // One batch per segment, and segments too big to be merged.
    let config = LogConfig {
        segment_bytes: 1,
        ..compact_config()
    };
    let mut model = Vec::new();
    let mut log = open(dir.path(), config);
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("1"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("2")), (Some("a"), Some("3"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("4"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        &mut model,
        &[(Some("b"), Some("1"))],
        T0,
        Compression::None,
    );
    assert_eq!(log.segment_count(), 4);
    let stats = log.compact_now(T0).expect("compact");
    assert_eq!(stats.first_dirty_offset, 4);
    assert_eq!(stats.segments_written, 2);
    // Emptied batches keep their offset range, so each segment keeps its own.
    let ranges: Vec<(i64, i64, i32)> = all_headers(&log)
        .iter()
        .map(|h| (h.base_offset, h.last_offset(), h.record_count))
        .collect();
    assert_eq!(ranges, vec![(0, 0, 0), (1, 2, 0), (3, 3, 1), (4, 4, 1)]);
    assert_eq!(read_all(&log), compacted(&model, 4, false));
}

#[test]
fn tombstones_go_after_delete_retention_ms_in_the_clean_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = updates_log(dir.path(), compact_config(), &mut model);
    let end = log.segments.last().expect("active").base_offset();
    let first = log.compact_from(0, T0, false).expect("first cleaning");
    assert_eq!(first.first_dirty_offset, end);
    assert_eq!(first.tombstones_removed, 0, "first seen: kept");
    assert_eq!(first.next_tombstone_expiry_ms, Some(T0 + 1_000));
    assert_eq!(read_all(&log), compacted(&model, end, false));

    // Nothing dirty: only a forced cleaning runs, and before the horizon it keeps b.
    assert!(log
        .plan_cleaning(end, T0 + 999, false)
        .expect("plan")
        .is_none());
    let early = log.compact_from(end, T0 + 999, true).expect("early");
    assert_eq!(early.tombstones_removed, 0);
    assert_eq!(read_all(&log), compacted(&model, end, false));

    let late = log.compact_from(end, T0 + 1_000, true).expect("late");
    assert_eq!(late.tombstones_removed, 1);
    assert_eq!(late.next_tombstone_expiry_ms, None);
    assert_eq!(read_all(&log), compacted(&model, end, true));
    assert!(read_all(&log)
        .iter()
        .all(|row| row.1.as_deref() != Some("b")));
}

#[test]
fn tombstone_clock_survives_a_cleaning_that_keeps_it() {
    // Cleaned at T0 (tombstone kept), cleaned again at T0 + 500 for new dirty data:
    // the tombstone's clock still started at T0.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = updates_log(dir.path(), compact_config(), &mut model);
    let first = log.compact_from(0, T0, false).expect("first");
    log.roll(T0 + 500).expect("roll");
    append(
        &mut log,
        &mut model,
        &[(Some("e"), Some("e1"))],
        T0 + 500,
        Compression::None,
    );
    let second = log
        .compact_from(first.first_dirty_offset, T0 + 500, false)
        .expect("second");
    assert_eq!(second.tombstones_removed, 0);
    assert_eq!(second.next_tombstone_expiry_ms, Some(T0 + 1_000));
    let third = log
        .compact_from(second.first_dirty_offset, T0 + 1_000, true)
        .expect("third");
    assert_eq!(third.tombstones_removed, 1);
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..compact_config()
    };
    let mut model = Vec::new();
    let mut log = open(dir.path(), config);
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("old1")), (Some("a"), Some("old2"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    let young = log.log_end_offset();
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("new1")), (Some("a"), Some("new2"))],
        T0 + 50_000,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    append(
        &mut log,
        &mut model,
        &[(Some("z"), Some("active"))],
        T0 + 50_000,
        Compression::None,
    );

    // At T0 + 70s the first segment is 70s old, the second only 20s.
    let stats = log.compact_now(T0 + 70_000).expect("compact");
    assert_eq!(stats.first_dirty_offset, young);
    assert_eq!(read_all(&log), compacted(&model, young, false));
    assert!(read_all(&log)
        .iter()
        .any(|row| row.2.as_deref() == Some("new1")));

    // Later the second segment is old enough too.
    let stats = log
        .compact_from(young, T0 + 120_000, false)
        .expect("compact later");
    let end = log.segments.last().expect("active").base_offset();
    assert_eq!(stats.first_dirty_offset, end);
    assert_eq!(read_all(&log), compacted(&model, end, false));
}

#[test]
fn dirty_ratio_decides_whether_to_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        ..compact_config()
    };
    let mut model = Vec::new();
    let mut log = open(dir.path(), config);
    for i in 0..10 {
        let value = format!("v{i}");
        append(
            &mut log,
            &mut model,
            &[(Some(&format!("k{i}")), Some(&value))],
            T0,
            Compression::None,
        );
    }
    log.roll(T0).expect("roll");
    let first = log.compact_from(0, T0, false).expect("all dirty: ratio 1");
    assert_eq!(first.first_dirty_offset, 10);
    let clean_end = first.first_dirty_offset;

    // One small dirty segment against ten clean batches: below 0.5.
    append(
        &mut log,
        &mut model,
        &[(Some("k0"), Some("again"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    assert!(log
        .plan_cleaning(clean_end, T0, false)
        .expect("plan")
        .is_none());

    // Enough dirty bytes: above 0.5.
    for i in 0..12 {
        append(
            &mut log,
            &mut model,
            &[(Some("k1"), Some(&format!("w{i}")))],
            T0,
            Compression::None,
        );
    }
    log.roll(T0).expect("roll");
    let job = log.plan_cleaning(clean_end, T0, false).expect("plan");
    assert!(job.is_some());
    drop(job);
    let stats = log.compact_from(clean_end, T0, false).expect("compact");
    let end = log.segments.last().expect("active").base_offset();
    assert_eq!(stats.first_dirty_offset, end);
    assert_eq!(read_all(&log), compacted(&model, end, false));
}

#[test]
fn max_compaction_lag_forces_a_cleaning_and_rolls_the_active_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        min_cleanable_dirty_ratio: 1.0, // never dirty enough
        max_compaction_lag_ms: 10_000,
        ..compact_config()
    };
    let mut model = Vec::new();
    let mut log = open(dir.path(), config);
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("1")), (Some("a"), Some("2"))],
        T0,
        Compression::None,
    );
    assert!(log
        .plan_cleaning(0, T0 + 5_000, false)
        .expect("plan")
        .is_none());
    assert_eq!(log.segment_count(), 1, "not yet rolled");
    let stats = log.compact_from(0, T0 + 20_000, false).expect("overdue");
    assert_eq!(log.segment_count(), 2, "the old active segment was rolled");
    assert_eq!(stats.records_removed, 1);
    assert_eq!(read_all(&log), compacted(&model, 2, false));
}

#[test]
fn the_active_segment_is_never_touched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = open(dir.path(), compact_config());
    for value in ["1", "2", "3"] {
        append(
            &mut log,
            &mut model,
            &[(Some("a"), Some(value))],
            T0,
            Compression::None,
        );
    }
    let stats = log.compact_now(T0).expect("compact");
    assert_eq!(stats.segments_cleaned, 0);
    assert_eq!(read_all(&log), model);
    assert!(log.plan_cleaning(0, T0, true).expect("plan").is_none());
}

#[test]
fn compressed_batches_are_recompressed_with_their_codec() {
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut model = Vec::new();
        let mut log = open(dir.path(), compact_config());
        append(
            &mut log,
            &mut model,
            &[
                (Some("a"), Some("1")),
                (Some("b"), Some("1")),
                (Some("a"), Some("2")),
            ],
            T0,
            compression,
        );
        append(
            &mut log,
            &mut model,
            &[(Some("b"), Some("2")), (Some("c"), Some("1"))],
            T0 + 1,
            compression,
        );
        log.roll(T0).expect("roll");
        let stats = log.compact_now(T0).expect("compact");
        assert_eq!(stats.records_removed, 2, "{compression:?}");
        assert_eq!(
            read_all(&log),
            compacted(&model, 5, false),
            "{compression:?}"
        );
        let headers = all_headers(&log);
        assert!(
            headers
                .iter()
                .all(|h| h.compression() == compression as i16),
            "{compression:?}"
        );
        // The rewritten first batch keeps only offset 2 (0 and 1 are superseded).
        assert_eq!((headers[0].base_offset, headers[0].last_offset()), (2, 2));
        assert_eq!(headers[0].max_timestamp, T0);
    }
}

#[test]
fn rewritten_batches_keep_producer_fields_and_timestamp_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..compact_config()
    };
    let mut model = Vec::new();
    let mut log = open(dir.path(), config);
    let producer = Producer {
        id: 42,
        epoch: 3,
        base_sequence: 10,
    };
    let records = [
        (Some("a"), Some("1")),
        (Some("b"), Some("1")),
        (Some("a"), Some("2")),
        (Some("b"), Some("2")),
    ];
    append_as(
        &mut log,
        &mut model,
        &records,
        T0,
        Compression::Lz4,
        producer,
    );
    let before = all_headers(&log)[0];
    log.roll(T0).expect("roll");
    log.compact_now(T0 + 5).expect("compact");
    let after = all_headers(&log)[0];
    assert_eq!(
        (after.base_offset, after.last_offset(), after.record_count),
        (2, 3, 2)
    );
    assert_eq!(after.producer_id, 42);
    assert_eq!(after.producer_epoch, 3);
    // The last sequence stays 13: base sequence moves with the base offset.
    assert_eq!(after.base_sequence, 12);
    assert_eq!(
        after.base_sequence + after.last_offset_delta,
        before.base_sequence + before.last_offset_delta
    );
    assert_eq!(after.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(after.max_timestamp, before.max_timestamp);
    assert_eq!(read_all(&log), compacted(&model, 4, false));
}

#[test]
fn keyless_records_are_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = open(dir.path(), compact_config());
    append(
        &mut log,
        &mut model,
        &[(None, Some("x")), (Some("a"), Some("1")), (None, Some("y"))],
        T0,
        Compression::None,
    );
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("2"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect("roll");
    log.compact_now(T0).expect("compact");
    let rows = read_all(&log);
    assert_eq!(rows, compacted(&model, 4, false));
    assert_eq!(rows.iter().filter(|row| row.1.is_none()).count(), 2);
}

#[test]
fn a_group_whose_segments_changed_is_abandoned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = updates_log(dir.path(), compact_config(), &mut model);
    let mut job = log.plan_cleaning(0, T0, true).expect("plan").expect("job");
    let group = job.clean_next_group().expect("clean").expect("a group");
    assert!(dir.path().join("00000000000000000000.log.cleaned").exists());
    // Meanwhile a follower truncation removes the last two segments.
    log.truncate_to(3).expect("truncate");
    assert!(!job.swap(&mut log, group).expect("swap"));
    assert!(job.clean_next_group().expect("no more").is_none());
    let stats = job.finish();
    assert_eq!(stats.groups_abandoned, 1);
    assert_eq!(stats.first_dirty_offset, 0, "no progress to checkpoint");
    assert!(!dir.path().join("00000000000000000000.log.cleaned").exists());
    assert_eq!(read_all(&log), model[..2].to_vec());
}

/// Where a simulated kill happens: after `step` of the swap (0 = the cleaned files are
/// written, nothing renamed yet), optionally followed by a manual rename that a kill in
/// the middle of the next step would have done.
#[derive(Clone, Copy, Debug)]
struct Kill {
    step: u8,
    partial: Option<(&'static str, &'static str, &'static str)>,
}

#[test]
fn a_kill_at_any_swap_step_leaves_a_correct_log() {
    let kills = [
        Kill {
            step: 0,
            partial: None,
        },
        // Mid step 1: an index renamed to .swap, the log still .cleaned.
        Kill {
            step: 0,
            partial: Some(("index", "cleaned", "swap")),
        },
        Kill {
            step: 1,
            partial: None,
        },
        // Mid step 2: only one of the replaced segments deleted (done by step 2's
        // first deletion; simulated by stopping after step 1 and deleting one).
        Kill {
            step: 1,
            partial: Some(("log", "", "deleted")),
        },
        Kill {
            step: 2,
            partial: None,
        },
        // Mid step 3: the log renamed to its final name, the indexes still .swap.
        Kill {
            step: 2,
            partial: Some(("log", "swap", "")),
        },
        Kill {
            step: 3,
            partial: None,
        },
        Kill {
            step: 4,
            partial: None,
        },
    ];
    for kill in kills {
        for clean_open in [true, false] {
            check_kill(kill, clean_open);
        }
    }
}

fn check_kill(kill: Kill, clean_open: bool) {
    let context = format!("{kill:?} clean_open={clean_open}");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let mut log = updates_log(dir.path(), compact_config(), &mut model);
    let end = log.segments.last().expect("active").base_offset();
    let log_end_offset = log.log_end_offset();
    let mut job = log.plan_cleaning(0, T0, true).expect("plan").expect("job");
    let group = job.clean_next_group().expect("clean").expect("one group");
    if kill.step == 0 {
        // The cleaner's files exist; the kill means no Drop cleans them up.
        std::mem::forget(group);
    } else if kill.step <= 3 {
        log.swap_in(group, Some(kill.step)).expect("swap");
    } else {
        assert!(log.swap_in(group, None).expect("swap"));
    }
    drop(log);
    if let Some((extension, from, to)) = kill.partial {
        let name = |suffix: &str| {
            let plain = format!("{:020}.{extension}", 0);
            if suffix.is_empty() {
                plain
            } else {
                format!("{plain}.{suffix}")
            }
        };
        if from.is_empty() {
            // The second replaced segment's log, as if its deletion had begun.
            let second = format!("{:020}.log", 4);
            std::fs::rename(
                dir.path().join(&second),
                dir.path().join(format!("{second}.{to}")),
            )
            .expect("rename");
        } else {
            std::fs::rename(dir.path().join(name(from)), dir.path().join(name(to)))
                .expect("rename");
        }
    }
    let expected = if kill.step == 0 {
        model.clone()
    } else {
        compacted(&model, end, false)
    };
    let mut log = Log::open(dir.path(), compact_config(), 0, clean_open, T0).expect(&context);
    assert_eq!(read_all(&log), expected, "{context}");
    assert_eq!(log.log_end_offset(), log_end_offset, "{context}");
    // Every offset reads as the batch holding it or the next one.
    for offset in 0..log_end_offset {
        let bytes = log.read(offset, 1, true).expect(&context);
        let first = batch::validate(&bytes, 0).expect(&context);
        let holder = expected.iter().find(|row| row.0 >= offset).map(|row| row.0);
        assert!(first.last_offset() >= offset, "{context} offset {offset}");
        if let Some(holder) = holder {
            assert!(first.base_offset <= holder, "{context} offset {offset}");
        }
    }
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| {
            name.ends_with(".cleaned")
                || name.ends_with(".swap")
                || name.ends_with(".deleted")
                || name == super::SCRATCH_DIR
        })
        .collect();
    assert!(leftovers.is_empty(), "{context}: {leftovers:?}");
    // The log keeps working: append, clean again.
    append(
        &mut log,
        &mut model,
        &[(Some("a"), Some("after"))],
        T0,
        Compression::None,
    );
    log.roll(T0).expect(&context);
    log.compact_now(T0).expect(&context);
    let end = log.segments.last().expect("active").base_offset();
    assert_eq!(read_all(&log), compacted(&model, end, false), "{context}");
}

#[test]
fn scratch_files_of_a_killed_cleaning_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut model = Vec::new();
    let log = updates_log(dir.path(), compact_config(), &mut model);
    drop(log);
    let scratch = dir.path().join(super::SCRATCH_DIR);
    std::fs::create_dir_all(&scratch).expect("mkdir");
    std::fs::write(scratch.join("00000000000000000000.log"), b"half written").expect("write");
    let log = open(dir.path(), compact_config());
    assert!(!scratch.exists());
    assert_eq!(read_all(&log), model);
}
