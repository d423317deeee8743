//! strata-storage: the partition log, stored in Kafka's on-disk format.
//!
//! A partition is a directory of segments named by their 20-digit base offset:
//! `.log` (record batches, magic 2, exactly as produced but with offsets assigned),
//! `.index` (sparse offset -> position) and `.timeindex` (sparse max timestamp ->
//! offset). Kafka's own tools can read these files and vice versa.
//!
//! Module map:
//! * [`batch`] — the v2 RecordBatch header: parse, validate (CRC32C, no
//!   decompression), patch base offset / leader epoch / LogAppendTime in place.
//! * `encode` — [`encode_plain_batch`]: batches Strata writes itself (no
//!   producer), encoded by kafka-protocol.
//! * `index` — the sparse offset and time indexes (in memory while active, mapped
//!   read-only on demand after).
//! * `fd_cache` — the process-wide LRU of open segment files and index mappings
//!   ([`set_open_file_limit`]).
//! * `segment` — one `.log` file with its indexes: append, find, read, scan, rebuild.
//! * `log` — [`Log`]: the segment list of a partition; append, read, roll, flush,
//!   truncate, timestamp lookups.
//! * `recovery` — [`Log::open`]: loading segments, crash recovery, index rebuilds.
//! * `cleaner` — log compaction ([`Log::plan_cleaning`], [`CleaningJob`],
//!   [`Log::compact_now`]) and the crash-safe swap of cleaned segments.
//! * [`checkpoint`] — Kafka's text checkpoint files, written atomically.
//! * [`snapshot`] — producer-state snapshot files (framing, CRC, newest valid one).
//! * `file_slice` — [`FileSlice`]: what reads return, a range of a segment file
//!   to send without copying.
//! * [`inspect`] — read-only walks over segment files for tools (`strata dump-log`).
//! * `error` — [`StorageError`] and its Kafka error codes.
//!
//! The crate does no networking and knows nothing of the broker; the broker owns
//! concurrency (a `Log` is a plain struct; reads take `&self` and use positioned
//! reads, so they can share a lock).

pub mod batch;
pub mod checkpoint;
mod cleaner;
mod encode;
mod error;
mod fd_cache;
mod file_slice;
mod index;
pub mod inspect;
pub mod leader_epoch;
mod log;
mod recovery;
mod segment;
pub mod snapshot;

#[cfg(test)]
mod disk_failure_tests;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod retention_tests;

pub use cleaner::{CleanStats, CleanedGroup, CleaningJob};
pub use encode::{encode_plain_batch, for_each_decoded_batch, plain_record, EncodeError};
pub use error::StorageError;
pub use fd_cache::{open_file_limit, open_files, set_open_file_limit, DEFAULT_OPEN_FILE_LIMIT};
pub use file_slice::{read_slices, FileSlice};
pub use log::{AppendInfo, Log, LogConfig, TimestampType};

/// Marker file a broker writes in a log directory after a clean shutdown (Kafka's
/// name), and deletes at startup; its presence means indexes can be trusted.
pub const CLEAN_SHUTDOWN_FILE: &str = ".kafka_cleanshutdown";
