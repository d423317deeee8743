//! Shared by the storage benches: record batches as a client sends them, and
//! scratch directories on the disk under test.

#![allow(dead_code)] // each bench uses a subset

use bytes::Bytes;
use kafka_protocol::records::Compression;
use strata_storage::{encode_plain_batch, plain_record};

/// Value size of every record: 1 KiB, no key, no headers.
pub const RECORD_SIZE: usize = 1024;
/// The clock the benches give the log: fixed, so no segment is rolled by age.
pub const NOW_MS: i64 = 1_700_000_000_000;

/// The largest uncompressed v2 batch of 1 KiB records that is at most
/// `max_bytes` long (log overhead included), encoded by kafka-protocol as a
/// client would. Staying at or under 1 MiB keeps the big batch within Kafka's
/// default `max.message.bytes` (1048588).
pub fn batch_of_at_most(max_bytes: usize) -> Vec<u8> {
    let mut count = (max_bytes / (RECORD_SIZE + 16)).max(1);
    let mut best = encode(count);
    assert!(
        best.len() <= max_bytes,
        "{count} records take {} bytes, more than {max_bytes}",
        best.len()
    );
    loop {
        let next = encode(count + 1);
        if next.len() > max_bytes {
            return best;
        }
        best = next;
        count += 1;
    }
}

/// One batch of `count` records with pseudo-random 1 KiB values.
fn encode(count: usize) -> Vec<u8> {
    let value = Bytes::from(pseudo_random_bytes(RECORD_SIZE));
    let records: Vec<_> = (0..count)
        .map(|_| plain_record(None, Some(value.clone()), NOW_MS))
        .collect();
    encode_plain_batch(&records, Compression::None)
        .expect("records of 1 KiB always encode")
        .to_vec()
}

/// Deterministic bytes (xorshift): realistic, incompressible payloads.
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// A fresh directory in the system temp dir (`$TMPDIR`, else /tmp): the log and
/// the raw file it is compared with live on the same file system.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir()
        .expect("create a scratch directory for the bench")
}
