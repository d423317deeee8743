//! Read throughput of [`Log::read`] against raw positioned reads of the same
//! segment file.
//!
//! A 256 MiB log of 16 KiB batches (1 KiB records) is written once; each
//! iteration then reads all of it, as a consumer fetching from the start would:
//! `Log::read` with `max_bytes` = 1 MiB (a fetch's partition size) from the log
//! start, continuing at the offset after the last batch returned. The raw side
//! reads the same `.log` file with `pread` in 1 MiB chunks, once into one reused
//! buffer (the file system's speed) and once into a new buffer per chunk (what
//! a read that hands out owned bytes pays for the allocation).
//!
//! The file was just written and is read over and over, so both sides read from
//! the page cache: this compares the engine's read path with memory-speed reads,
//! not disk reads.
//!
//! Run: `cargo bench -p strata-storage --bench read`

mod common;

use std::fs::File;
use std::hint::black_box;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata_storage::batch::BatchHeader;
use strata_storage::{Log, LogConfig};

use common::{batch_of_at_most, scratch_dir, NOW_MS};

/// Size of the log read by every iteration.
const LOG_BYTES: u64 = 256 * 1024 * 1024;
/// A fetch's `partition_max_bytes` (Kafka's consumer default is 1 MiB).
const FETCH_BYTES: usize = 1024 * 1024;

fn read(c: &mut Criterion) {
    let dir = scratch_dir();
    let log_dir = dir.path().join("bench-0");
    let mut log =
        Log::open(&log_dir, LogConfig::default(), 0, false, NOW_MS).expect("open a fresh log");
    let batch = batch_of_at_most(16 * 1024);
    while log.size_bytes() < LOG_BYTES {
        let mut bytes = batch.clone();
        log.append(&mut bytes, 0, NOW_MS)
            .expect("append a valid batch");
    }
    log.flush().expect("flush the log");
    assert_eq!(log.segment_count(), 1, "the log fits one segment");
    let segment = log_dir.join(format!("{:020}.log", 0));
    let segment_len = std::fs::metadata(&segment)
        .expect("the segment file exists")
        .len();
    assert_eq!(segment_len, log.size_bytes());

    let mut group = c.benchmark_group("read");
    group
        .throughput(Throughput::Bytes(segment_len))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    group.bench_function("log_1MiB_fetches", |b| {
        b.iter(|| black_box(read_whole_log(&log)))
    });
    group.bench_function("raw_pread_1MiB", |b| {
        let file = File::open(&segment).expect("open the segment");
        let mut buffer = vec![0u8; FETCH_BYTES];
        b.iter(|| black_box(pread_whole_file(&file, segment_len, &mut buffer)))
    });
    group.bench_function("raw_pread_1MiB_new_buffer", |b| {
        let file = File::open(&segment).expect("open the segment");
        b.iter(|| {
            let mut total = 0;
            let mut position = 0;
            while position < segment_len {
                let len = FETCH_BYTES.min((segment_len - position) as usize);
                let mut buffer = vec![0u8; len];
                file.read_exact_at(&mut buffer, position)
                    .expect("read the segment");
                total += black_box(buffer).len();
                position += len as u64;
            }
            total
        })
    });
    group.finish();
}

/// Reads the log from its start to its end in fetch-sized reads; returns the
/// bytes read.
fn read_whole_log(log: &Log) -> usize {
    let mut offset = log.log_start_offset();
    let mut total = 0;
    while offset < log.log_end_offset() {
        let bytes = log
            .read(offset, FETCH_BYTES, true)
            .expect("read inside the log");
        let next = offset_after(&bytes);
        assert!(next > offset, "a read at {offset} made no progress");
        offset = next;
        total += bytes.len();
    }
    total
}

/// The offset after the last whole batch in `bytes`.
fn offset_after(bytes: &[u8]) -> i64 {
    let mut position = 0;
    let mut next = -1;
    while let Some(header) = bytes.get(position..).and_then(BatchHeader::parse) {
        next = header.next_offset();
        position += header.size();
    }
    next
}

/// Reads `len` bytes of `file` front to back in chunks of the buffer's size.
fn pread_whole_file(file: &File, len: u64, buffer: &mut [u8]) -> usize {
    let mut position = 0;
    while position < len {
        let chunk = buffer.len().min((len - position) as usize);
        file.read_exact_at(&mut buffer[..chunk], position)
            .expect("read the segment");
        position += chunk as u64;
    }
    position as usize
}

criterion_group!(benches, read);
criterion_main!(benches);
