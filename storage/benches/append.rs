//! Append throughput of [`Log::append`] against the raw sequential write speed of
//! the same file system, measured side by side.
//!
//! Both sides write the same client-encoded batch (1 KiB records, uncompressed,
//! 16 KiB or 1 MiB) back to back into a fresh file in the same directory, with
//! no fsync (Strata's default, like Kafka's, leaves flushing to the page cache).
//! The log side adds what a produce costs the storage engine: validation with
//! CRC32C, offset assignment, index maintenance and roll checks. The batch is
//! cloned before each append (append patches it in place), outside the timed
//! region on both sides.
//!
//! Run: `cargo bench -p strata-storage --bench append`

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use strata_storage::{Log, LogConfig};

use common::{batch_of_at_most, scratch_dir, NOW_MS};

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    for (label, max_bytes) in [("16KiB", 16 * 1024), ("1MiB", 1024 * 1024)] {
        let batch = batch_of_at_most(max_bytes);
        group.throughput(Throughput::Bytes(batch.len() as u64));

        group.bench_with_input(BenchmarkId::new("log", label), &batch, |b, batch| {
            // A fresh log per sample, so that no sample pays for the data of the
            // previous ones (and the disk does not fill up).
            b.iter_custom(|iterations| {
                let dir = scratch_dir();
                let mut log = Log::open(
                    &dir.path().join("bench-0"),
                    LogConfig::default(),
                    0,
                    false,
                    NOW_MS,
                )
                .expect("open a fresh log");
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let mut bytes = batch.clone();
                    let start = Instant::now();
                    log.append(&mut bytes, 0, NOW_MS)
                        .expect("append a valid batch");
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });

        group.bench_with_input(BenchmarkId::new("raw_pwrite", label), &batch, |b, batch| {
            b.iter_custom(|iterations| {
                let dir = scratch_dir();
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(dir.path().join("raw.log"))
                    .expect("create the raw file");
                let mut position = 0u64;
                let mut elapsed = Duration::ZERO;
                for _ in 0..iterations {
                    let bytes = batch.clone();
                    let start = Instant::now();
                    file.write_all_at(&bytes, position)
                        .expect("write to the raw file");
                    elapsed += start.elapsed();
                    position += bytes.len() as u64;
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
