//! Reading and rewriting batches for the cleaner: the compaction rules applied to one
//! batch, the re-encoding of what is left of it, and the writer of a cleaned segment.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use super::{OffsetMap, Source, WRITE_CHUNK_BYTES};
use crate::batch::{self, BatchHeader, TimestampType, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::io_error;
use crate::segment::Segment;
use crate::{LogConfig, StorageError};

// Field positions of the v2 batch header (the layout table is in `batch.rs`), for the
// few header fields a rewritten batch must take back from the original.
const BATCH_LENGTH_AT: usize = 8;
const CRC_AT: usize = 17;
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;
/// Attribute bit 6: KIP-534's delete horizon (never written by Strata, cleared when a
/// batch is rewritten).
const DELETE_HORIZON_BIT: i16 = 1 << 6;

/// Writes the batches of one cleaned segment through the ordinary segment code, so the
/// cleaned segment is indexed exactly as an appended one.
pub(super) struct GroupWriter {
    pub(super) output: Segment,
    pending: Vec<u8>,
    pending_batches: Vec<(usize, BatchHeader)>,
}

impl GroupWriter {
    pub(super) fn new(output: Segment) -> GroupWriter {
        GroupWriter {
            output,
            pending: Vec::new(),
            pending_batches: Vec::new(),
        }
    }

    pub(super) fn push(
        &mut self,
        bytes: &[u8],
        header: BatchHeader,
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        self.pending_batches.push((self.pending.len(), header));
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= WRITE_CHUNK_BYTES {
            self.write_pending(config)?;
        }
        Ok(())
    }

    /// A batch built by the cleaner: its header is parsed from the bytes.
    pub(super) fn push_new(
        &mut self,
        bytes: &[u8],
        config: &LogConfig,
    ) -> Result<(), StorageError> {
        let header = batch::validate(bytes, 0)?;
        self.push(bytes, header, config)
    }

    fn write_pending(&mut self, config: &LogConfig) -> Result<(), StorageError> {
        if !self.pending.is_empty() {
            self.output
                .append(&self.pending, &self.pending_batches, config, 0)?;
            self.pending.clear();
            self.pending_batches.clear();
        }
        Ok(())
    }

    /// Writes what is left, finalizes the segment (final time index entry, fsync) and
    /// returns its size.
    pub(super) fn finish(mut self, config: &LogConfig) -> Result<u64, StorageError> {
        self.write_pending(config)?;
        self.output.finalize()?;
        Ok(self.output.size())
    }
}

/// Counts of one group's cleaning.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) records_removed: u64,
    pub(super) tombstones_removed: u64,
    pub(super) kept_tombstones: u64,
    /// The group differs from its source (a batch dropped or rewritten).
    pub(super) changed: bool,
    /// The latest clock among the tombstones kept in this group.
    pub(super) tombstone_clock_ms: Option<i64>,
}

/// What decides the fate of a record.
pub(super) struct Rules<'a> {
    pub(super) map: &'a OffsetMap,
    /// Tombstones in this segment have been clean for `delete.retention.ms`.
    pub(super) tombstones_expire: bool,
    /// This is the last batch of the group: it stays, if only as an empty batch.
    pub(super) ends_group: bool,
}

/// What becomes of one batch.
pub(super) enum Kept {
    Verbatim(Bytes),
    Rewritten(Vec<u8>),
    Dropped,
}

/// Applies the compaction rules to one batch.
pub(super) fn filter_batch(
    header: &BatchHeader,
    bytes: Bytes,
    rules: &Rules<'_>,
    tally: &mut Tally,
) -> Kept {
    if header.is_control() {
        return Kept::Verbatim(bytes);
    }
    let set = match RecordBatchDecoder::decode(&mut bytes.clone()) {
        Ok(set) => set,
        Err(error) => {
            tracing::warn!(offset = header.base_offset, %error, "cannot decode batch; keeping it whole");
            return Kept::Verbatim(bytes);
        }
    };
    let total = set.records.len();
    let mut kept: Vec<Record> = Vec::with_capacity(total);
    let (mut removed, mut tombstones_removed, mut kept_tombstones) = (0u64, 0u64, 0u64);
    for mut record in set.records {
        let Some(key) = &record.key else {
            kept.push(record);
            continue;
        };
        if rules.map.supersedes(key, record.offset) {
            removed += 1;
        } else if record.value.is_none() && rules.tombstones_expire {
            removed += 1;
            tombstones_removed += 1;
        } else {
            if record.value.is_none() {
                kept_tombstones += 1;
            }
            record.delete_horizon = false;
            kept.push(record);
        }
    }
    tally.records_removed += removed;
    tally.tombstones_removed += tombstones_removed;
    tally.kept_tombstones += kept_tombstones;
    if removed == 0 {
        return Kept::Verbatim(bytes);
    }
    if kept.is_empty() {
        return if rules.ends_group {
            Kept::Rewritten(empty_batch(&bytes, header))
        } else {
            Kept::Dropped
        };
    }
    match rewrite_batch(header, &kept) {
        Some(rewritten) => Kept::Rewritten(rewritten),
        None => {
            // Keeping too much is safe; losing data is not.
            tally.records_removed -= removed;
            tally.tombstones_removed -= tombstones_removed;
            tally.kept_tombstones += tombstones_removed;
            tracing::warn!(
                offset = header.base_offset,
                "cannot re-encode batch; keeping it whole"
            );
            Kept::Verbatim(bytes)
        }
    }
}

/// Encodes `records` (what is left of the batch `original`) as one batch with the same
/// codec, then gives it back the original's last offset, sequence numbers and timestamp
/// type. Its base offset is its first record's offset. `None` if encoding fails.
fn rewrite_batch(original: &BatchHeader, records: &[Record]) -> Option<Vec<u8>> {
    let compression = match original.compression() {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => return None,
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: batch::MAGIC,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).ok()?;
    let mut out = buf.to_vec();
    let [(_, encoded)] = batch::validate_all(&out).ok()?[..] else {
        return None;
    };
    let last_offset_delta = i32::try_from(original.last_offset() - encoded.base_offset).ok()?;
    put_i32(&mut out, LAST_OFFSET_DELTA_AT, last_offset_delta);
    let base_sequence = if original.base_sequence < 0 {
        original.base_sequence
    } else {
        // Offsets and sequences advance together within a batch.
        original
            .base_sequence
            .wrapping_add((encoded.base_offset - original.base_offset) as i32)
    };
    put_i32(&mut out, BASE_SEQUENCE_AT, base_sequence);
    if original.timestamp_type() == TimestampType::LogAppendTime {
        let attributes = encoded.attributes | batch::TIMESTAMP_TYPE_BIT;
        out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
        out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8]
            .copy_from_slice(&original.max_timestamp.to_be_bytes());
    }
    let crc = batch::compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Some(out)
}

/// A batch with the header of `original` and no records, as Kafka writes an emptied
/// batch it must keep: uncompressed, both timestamps the original's max timestamp.
fn empty_batch(original: &[u8], header: &BatchHeader) -> Vec<u8> {
    let mut out = original[..HEADER_SIZE].to_vec();
    put_i32(
        &mut out,
        BATCH_LENGTH_AT,
        (HEADER_SIZE - LOG_OVERHEAD) as i32,
    );
    let attributes = header.attributes & !batch::COMPRESSION_MASK & !DELETE_HORIZON_BIT;
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8]
        .copy_from_slice(&header.max_timestamp.to_be_bytes());
    put_i32(&mut out, RECORD_COUNT_AT, 0);
    let crc = batch::compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

fn put_i32(buf: &mut [u8], at: usize, value: i32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Reads the batches of an inactive segment in order, checking each one's CRC: a
/// corrupt batch must not be laundered into a fresh one with a valid CRC.
pub(super) struct BatchReader<'a> {
    file: File,
    path: &'a Path,
    position: u64,
    size: u64,
}

impl<'a> BatchReader<'a> {
    pub(super) fn open(source: &'a Source) -> Result<BatchReader<'a>, StorageError> {
        let file = File::open(&source.path).map_err(io_error(&source.path))?;
        Ok(BatchReader {
            file,
            path: &source.path,
            position: 0,
            size: source.identity.size,
        })
    }

    /// The next batch as (position, header, bytes), or `None` at the end.
    pub(super) fn next(&mut self) -> Result<Option<(u64, BatchHeader, Bytes)>, StorageError> {
        if self.position >= self.size {
            return Ok(None);
        }
        let position = self.position;
        let corrupt = |reason: String| StorageError::CorruptBatch {
            segment: Some(self.path.to_path_buf()),
            position,
            reason,
        };
        let remaining = self.size - position;
        if remaining < HEADER_SIZE as u64 {
            return Err(corrupt(format!(
                "{remaining} bytes left for a batch header"
            )));
        }
        let mut head = [0u8; HEADER_SIZE];
        self.file
            .read_exact_at(&mut head, position)
            .map_err(io_error(self.path))?;
        let header = BatchHeader::parse(&head).ok_or_else(|| corrupt("short header".into()))?;
        if header.batch_length < (HEADER_SIZE - LOG_OVERHEAD) as i32
            || header.size() as u64 > remaining
        {
            return Err(corrupt(format!("bad batch length {}", header.batch_length)));
        }
        let size = header.size();
        let mut bytes = vec![0u8; size];
        bytes[..HEADER_SIZE].copy_from_slice(&head);
        self.file
            .read_exact_at(&mut bytes[HEADER_SIZE..], position + HEADER_SIZE as u64)
            .map_err(io_error(self.path))?;
        let header =
            batch::validate(&bytes, position).map_err(|error| error.in_segment(self.path))?;
        self.position += size as u64;
        Ok(Some((position, header, Bytes::from(bytes))))
    }
}
