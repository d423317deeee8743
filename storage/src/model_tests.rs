//! Model-based property test: random appends, rolls, flushes, reads, truncations,
//! timestamp lookups, retention, DeleteRecords, crashes (the active segment cut at a
//! random byte past the last flush) and clean reopens, checked against an in-memory
//! list of batches and the log start offset. Compaction (`Log::compact_now`) joins
//! them: from the first compaction on, reads are compared record by record (the
//! cleaner re-encodes batches that lose records), and follower truncation is no
//! longer drawn (it never meets a compacted log in a single broker).

use std::fs::OpenOptions;
use std::path::Path;

use kafka_protocol::records::{Compression, RecordBatchDecoder};
use proptest::prelude::*;

use crate::batch::test_support::batch_with_timestamps;
use crate::batch::BatchHeader;
use crate::{Log, LogConfig};

#[derive(Clone, Debug)]
enum Op {
    /// Append one produce request of batches, each with these record timestamps
    /// and codec (`Compression` by index: none, gzip, snappy, lz4, zstd).
    Append(Vec<(Vec<i64>, usize)>),
    Roll,
    Flush,
    /// Read at a fraction of the offset range, with a byte limit.
    Read {
        at: u16,
        max_bytes: u16,
        min_one_batch: bool,
    },
    Truncate {
        at: u16,
    },
    Lookup {
        timestamp: i64,
    },
    /// Kill the process: cut the active segment at a fraction of its unflushed tail.
    Crash {
        cut: u16,
    },
    Reopen,
    /// One retention pass with these limits (`None`: unlimited).
    Retention {
        ms: Option<i64>,
        bytes: Option<u16>,
    },
    /// DeleteRecords at a fraction of the offset range.
    DeleteRecords {
        at: u16,
    },
    /// Compact every inactive segment (records are keyed by their index in
    /// their batch: `key-0`, `key-1`, ...).
    Compact,
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn op() -> impl Strategy<Value = Op> {
    let timestamps = prop::collection::vec(0i64..1_000, 1..5);
    prop_oneof![
        6 => prop::collection::vec((timestamps, 0usize..CODECS.len()), 1..3).prop_map(Op::Append),
        1 => Just(Op::Roll),
        1 => Just(Op::Flush),
        3 => (any::<u16>(), 0u16..600, any::<bool>())
            .prop_map(|(at, max_bytes, min_one_batch)| Op::Read { at, max_bytes, min_one_batch }),
        1 => any::<u16>().prop_map(|at| Op::Truncate { at }),
        2 => (0i64..1_100).prop_map(|timestamp| Op::Lookup { timestamp }),
        2 => any::<u16>().prop_map(|cut| Op::Crash { cut }),
        1 => Just(Op::Reopen),
        1 => (prop::option::of(0i64..1_500), prop::option::of(0u16..3_000))
            .prop_map(|(ms, bytes)| Op::Retention { ms, bytes }),
        1 => any::<u16>().prop_map(|at| Op::DeleteRecords { at }),
        1 => Just(Op::Compact),
    ]
}

/// One batch as stored: its bytes (offsets assigned) and record timestamps.
#[derive(Clone, Debug)]
struct StoredBatch {
    bytes: Vec<u8>,
    header: BatchHeader,
    timestamps: Vec<i64>,
    /// Per record: not yet removed by compaction.
    alive: Vec<bool>,
}

/// The expected log: every batch in offset order (those wholly below the log
/// start offset may or may not still be in a segment), and the log start offset.
struct Model {
    batches: Vec<StoredBatch>,
    start: i64,
    /// A compaction ran: batch bytes on disk may differ from `bytes`.
    compacted: bool,
}

impl Model {
    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.header.next_offset())
    }

    fn expected_read(&self, offset: i64, max_bytes: usize, min_one_batch: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for stored in self
            .batches
            .iter()
            .filter(|b| b.header.last_offset() >= offset)
        {
            let fits = out.len() + stored.bytes.len() <= max_bytes;
            if !(fits || (out.is_empty() && min_one_batch)) {
                break;
            }
            out.extend_from_slice(&stored.bytes);
        }
        out
    }

    /// (offset, timestamp) of every record at or above the log start offset,
    /// in offset order.
    fn records(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.keyed_records()
            .map(|(offset, _, timestamp)| (offset, timestamp))
    }

    /// (offset, key index, timestamp) of every live record at or above the log
    /// start offset, in offset order.
    fn keyed_records(&self) -> impl Iterator<Item = (i64, usize, i64)> + '_ {
        self.batches
            .iter()
            .flat_map(|b| {
                b.timestamps
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| b.alive[i])
                    .map(move |(i, &ts)| (b.header.base_offset + i as i64, i, ts))
            })
            .filter(|&(offset, _, _)| offset >= self.start)
    }

    /// Compaction of everything below `end`: a record goes when a later record
    /// below `end` has the same key.
    fn compact(&mut self, end: i64) {
        let mut latest = std::collections::HashMap::new();
        for batch in &self.batches {
            for i in 0..batch.timestamps.len() {
                let offset = batch.header.base_offset + i as i64;
                if offset < end && batch.alive[i] {
                    latest.insert(i, offset);
                }
            }
        }
        for batch in &mut self.batches {
            for i in 0..batch.timestamps.len() {
                let offset = batch.header.base_offset + i as i64;
                if offset < end && latest.get(&i).is_some_and(|&last| last > offset) {
                    batch.alive[i] = false;
                }
            }
        }
        self.compacted = true;
    }

    /// Checks a read at `offset` record by record: the records at or after
    /// `offset` are the live ones from there on, in order, with nothing
    /// skipped; with `min_one_batch` and live records ahead, at least one
    /// batch comes back.
    fn check_read_records(&self, got: &[u8], offset: i64, max_bytes: usize, min_one_batch: bool) {
        let mut buf = bytes::Bytes::copy_from_slice(got);
        let batches = RecordBatchDecoder::decode_all(&mut buf).expect("read decodes");
        let read: Vec<(i64, usize, i64)> = batches
            .iter()
            .flat_map(|set| set.records.iter())
            .filter(|r| r.offset >= offset)
            .map(|r| {
                let key = r.key.as_ref().expect("keyed records");
                let index = std::str::from_utf8(key)
                    .ok()
                    .and_then(|k| k.strip_prefix("key-"))
                    .and_then(|i| i.parse().ok())
                    .expect("key-<index>");
                (r.offset, index, r.timestamp)
            })
            .collect();
        let live: Vec<(i64, usize, i64)> = self
            .keyed_records()
            .filter(|&(o, _, _)| o >= offset)
            .take(read.len())
            .collect();
        assert_eq!(read, live, "records read at {offset}");
        if batches.len() > 1 {
            assert!(
                got.len() <= max_bytes,
                "{} bytes read, limit {max_bytes}",
                got.len()
            );
        }
        if min_one_batch && self.keyed_records().any(|(o, _, _)| o >= offset) {
            assert!(
                !batches.is_empty(),
                "min_one_batch read nothing at {offset}"
            );
        }
    }
}

fn fraction(value: u16, range: u64) -> u64 {
    (u64::from(value) * range) / u64::from(u16::MAX)
}

fn active_segment_base(dir: &Path) -> i64 {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .max()
        .expect("a segment exists")
}

fn run(config: LogConfig, ops: Vec<Op>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("topic-0");
    let mut log = Log::open(&path, config.clone(), 0, true, 0).expect("open");
    let mut model = Model {
        batches: Vec::new(),
        start: 0,
        compacted: false,
    };
    let mut now = 1_000;
    for op in ops {
        now += 10;
        match op {
            Op::Append(batches) => {
                let mut records = Vec::new();
                for (timestamps, codec) in &batches {
                    records.extend(batch_with_timestamps(timestamps, CODECS[*codec]));
                }
                let info = log.append(&mut records, 1, now).expect("append");
                assert_eq!(info.base_offset, model.end());
                let mut position = 0;
                for (timestamps, _) in batches {
                    let header = BatchHeader::parse(&records[position..]).expect("header");
                    let size = header.size();
                    model.batches.push(StoredBatch {
                        bytes: records[position..position + size].to_vec(),
                        header,
                        alive: vec![true; timestamps.len()],
                        timestamps,
                    });
                    position += size;
                }
                assert_eq!(info.last_offset + 1, model.end());
            }
            Op::Roll => log.roll(now).expect("roll"),
            Op::Flush => {
                log.flush().expect("flush");
                assert_eq!(log.recovery_point(), model.end());
            }
            Op::Read {
                at,
                max_bytes,
                min_one_batch,
            } => {
                let span = (model.end() - model.start) as u64;
                let offset = model.start + fraction(at, span) as i64;
                let got = log
                    .read(offset, max_bytes.into(), min_one_batch)
                    .expect("read");
                if model.compacted {
                    model.check_read_records(&got, offset, max_bytes.into(), min_one_batch);
                } else {
                    assert_eq!(
                        got.as_ref(),
                        model
                            .expected_read(offset, max_bytes.into(), min_one_batch)
                            .as_slice(),
                        "read at {offset}"
                    );
                }
                assert!(log.read(model.end() + 1, 100, true).is_err());
                if model.start > 0 {
                    assert!(log.read(model.start - 1, 100, true).is_err());
                }
            }
            Op::Truncate { .. } if model.compacted => {}
            Op::Truncate { at } => {
                // A follower truncates above its log start offset (below it,
                // the log restarts empty at the offset: Kafka's
                // truncateFullyAndStartAt, tested in log_tests).
                let span = (model.end() - model.start) as u64;
                let offset = model.start + fraction(at, span) as i64;
                log.truncate_to(offset).expect("truncate");
                model.batches.retain(|b| b.header.last_offset() < offset);
                model.start = model.start.min(model.end());
            }
            Op::Lookup { timestamp } => {
                let expected = model.records().find(|&(_, ts)| ts >= timestamp);
                assert_eq!(
                    log.offset_for_timestamp(timestamp).expect("lookup"),
                    expected
                );
                // Records below the start offset may still count for the max
                // timestamp (as in Kafka) while their segment exists, and so may
                // a batch emptied by compaction (its header keeps its maximum).
                if model.start == 0 && !model.compacted {
                    let max = model.records().map(|(_, ts)| ts).max();
                    let expected_max = max.and_then(|m| model.records().find(|&(_, ts)| ts == m));
                    assert_eq!(log.max_timestamp().expect("max"), expected_max);
                }
            }
            Op::Crash { cut } => {
                let recovery_point = log.recovery_point();
                drop(log);
                let active_base = active_segment_base(&path);
                let in_active = || {
                    model
                        .batches
                        .iter()
                        .filter(|b| b.header.base_offset >= active_base)
                };
                let flushed: u64 = in_active()
                    .filter(|b| b.header.next_offset() <= recovery_point)
                    .map(|b| b.bytes.len() as u64)
                    .sum();
                let file_path = path.join(format!("{active_base:020}.log"));
                let file = OpenOptions::new()
                    .write(true)
                    .open(&file_path)
                    .expect("segment");
                let len = file.metadata().expect("meta").len();
                let cut_at = flushed + fraction(cut, len - flushed);
                file.set_len(cut_at).expect("cut");
                drop(file);
                let mut end = 0;
                let survivors = in_active()
                    .take_while(|b| {
                        end += b.bytes.len() as u64;
                        end <= cut_at
                    })
                    .count();
                let before_active = model.batches.len() - in_active().count();
                model.batches.truncate(before_active + survivors);
                assert!(model.end() >= recovery_point, "flushed data survives");
                log =
                    Log::open(&path, config.clone(), recovery_point, false, now).expect("recover");
                // The broker restores the start offset from its checkpoint.
                model.start = model.start.min(model.end());
                log.restore_log_start_offset(model.start);
            }
            Op::Reopen => {
                log.close().expect("close");
                log = Log::open(&path, config.clone(), 0, true, now).expect("clean reopen");
                log.restore_log_start_offset(model.start);
            }
            Op::Retention { ms, bytes } => {
                let limits = LogConfig {
                    retention_ms: ms.unwrap_or(-1),
                    retention_bytes: bytes.map_or(-1, i64::from),
                    ..config.clone()
                };
                log.set_config(limits);
                let old_start = log.log_start_offset();
                let deleted = log.apply_retention(now).expect("retention");
                log.set_config(config.clone());
                let new_start = log.log_start_offset();
                assert!(new_start >= old_start && new_start <= model.end());
                // Segments wholly below the start offset may go without moving it.
                assert!(new_start == old_start || deleted > 0);
                // Deleted batches qualified: all old enough, or the log stays
                // at least retention.bytes large.
                let gone = model.batches.iter().filter(|b| {
                    b.header.base_offset >= old_start && b.header.last_offset() < new_start
                });
                let old_enough =
                    |b: &StoredBatch| ms.is_some_and(|ms| now - b.header.max_timestamp > ms);
                let big_enough = bytes.is_some_and(|limit| log.size_bytes() >= u64::from(limit));
                // (A compacted batch's timestamps are those of its live records.)
                for batch in gone.filter(|_| !model.compacted) {
                    assert!(
                        old_enough(batch) || big_enough,
                        "deleted {:?}",
                        batch.header
                    );
                }
                model.start = new_start;
            }
            Op::DeleteRecords { at } => {
                let span = (model.end() - model.start) as u64;
                let offset = model.start + fraction(at, span) as i64;
                assert_eq!(
                    log.delete_records_before(offset).expect("delete records"),
                    offset
                );
                model.start = offset;
                assert!(log.delete_records_before(model.end() + 1).is_err());
            }
            Op::Compact => {
                log.set_config(LogConfig {
                    cleanup_compact: true,
                    ..config.clone()
                });
                let stats = log.compact_now(now).expect("compact");
                log.set_config(config.clone());
                if stats.segments_cleaned > 0 {
                    model.compact(stats.first_dirty_offset);
                }
            }
        }
        assert_eq!(log.log_end_offset(), model.end());
        assert_eq!(log.log_start_offset(), model.start);
        assert!(log.recovery_point() <= log.log_end_offset());
        let all = log
            .read(log.log_start_offset(), usize::MAX, true)
            .expect("read all");
        if model.compacted {
            model.check_read_records(&all, model.start, usize::MAX, true);
            let everything = model.keyed_records().count();
            let mut buf = all.clone();
            let read = RecordBatchDecoder::decode_all(&mut buf).expect("decodes");
            let count = read
                .iter()
                .flat_map(|set| set.records.iter())
                .filter(|r| r.offset >= model.start)
                .count();
            assert_eq!(count, everything, "every live record is read");
        } else {
            assert_eq!(
                all.as_ref(),
                model
                    .expected_read(model.start, usize::MAX, true)
                    .as_slice()
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn log_matches_model(
        segment_bytes in 150u64..2_000,
        index_interval_bytes in 0u32..300,
        segment_index_bytes in 8u32..200,
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes,
            segment_index_bytes,
            ..LogConfig::default()
        };
        run(config, ops);
    }
}
