//! The v2 RecordBatch header: the one place in Strata that knows its layout.
//!
//! A produce request's `records` field, a `.log` segment and a fetch response all hold
//! record batches back to back. Strata never re-encodes them: it validates the header
//! and the CRC32C without decompressing, then patches the base offset and the partition
//! leader epoch in place. The CRC covers the bytes from `attributes` to the end of the
//! batch, so those two patches keep it valid; only LogAppendTime (which rewrites
//! `attributes` and `maxTimestamp`) has to recompute it.
//!
//! Layout (big endian), see <https://kafka.apache.org/documentation/#recordbatch>:
//!
//! | bytes | field                |
//! |-------|----------------------|
//! | 0..8  | baseOffset i64       |
//! | 8..12 | batchLength i32      |
//! | 12..16| partitionLeaderEpoch |
//! | 16    | magic i8 (= 2)       |
//! | 17..21| crc u32              |
//! | 21..23| attributes i16       |
//! | 23..27| lastOffsetDelta i32  |
//! | 27..35| baseTimestamp i64    |
//! | 35..43| maxTimestamp i64     |
//! | 43..51| producerId i64       |
//! | 51..53| producerEpoch i16    |
//! | 53..57| baseSequence i32     |
//! | 57..61| recordCount i32      |

use crate::StorageError;

/// Size of the fixed v2 batch header.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset and batchLength itself.
pub const LOG_OVERHEAD: usize = 12;
/// The only record format Strata stores.
pub const MAGIC: i8 = 2;
/// Attribute bit 3: timestamps are LogAppendTime.
pub const TIMESTAMP_TYPE_BIT: i16 = 1 << 3;
/// Attribute bit 4: the batch belongs to a transaction.
pub const TRANSACTIONAL_BIT: i16 = 1 << 4;
/// Attribute bit 5: the batch is a control batch (transaction markers).
pub const CONTROL_BIT: i16 = 1 << 5;
/// Attribute bits 0-2: compression codec.
pub const COMPRESSION_MASK: i16 = 0x07;

const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
const PARTITION_LEADER_EPOCH_AT: usize = 12;
const MAGIC_AT: usize = 16;
const CRC_AT: usize = 17;
/// The CRC covers everything from here to the end of the batch.
const ATTRIBUTES_AT: usize = 21;
const LAST_OFFSET_DELTA_AT: usize = 23;
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const RECORD_COUNT_AT: usize = 57;

/// How a topic's record timestamps are defined (`message.timestamp.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamps are kept.
    CreateTime,
    /// The broker stamps each batch with its append wall-clock time.
    LogAppendTime,
}

/// The decoded fixed header of one v2 record batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Decodes the header at the start of `buf` without checking anything.
    /// Returns `None` when fewer than [`HEADER_SIZE`] bytes are given.
    pub fn parse(buf: &[u8]) -> Option<BatchHeader> {
        let header: &[u8; HEADER_SIZE] = buf.get(..HEADER_SIZE)?.try_into().ok()?;
        Some(BatchHeader {
            base_offset: i64_at(header, BASE_OFFSET_AT),
            batch_length: i32_at(header, BATCH_LENGTH_AT),
            partition_leader_epoch: i32_at(header, PARTITION_LEADER_EPOCH_AT),
            magic: header[MAGIC_AT] as i8,
            crc: u32::from_be_bytes(array_at(header, CRC_AT)),
            attributes: i16::from_be_bytes(array_at(header, ATTRIBUTES_AT)),
            last_offset_delta: i32_at(header, LAST_OFFSET_DELTA_AT),
            base_timestamp: i64_at(header, BASE_TIMESTAMP_AT),
            max_timestamp: i64_at(header, MAX_TIMESTAMP_AT),
            producer_id: i64_at(header, PRODUCER_ID_AT),
            producer_epoch: i16::from_be_bytes(array_at(header, PRODUCER_EPOCH_AT)),
            base_sequence: i32_at(header, BASE_SEQUENCE_AT),
            record_count: i32_at(header, RECORD_COUNT_AT),
        })
    }

    /// Total size of the batch on disk, log overhead included.
    pub fn size(&self) -> usize {
        // batch_length is checked to be >= HEADER_SIZE - LOG_OVERHEAD before use;
        // a negative value (unchecked header) maps to 0 rather than wrapping.
        usize::try_from(self.batch_length).unwrap_or(0) + LOG_OVERHEAD
    }

    /// Offset of the last record of the batch (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// The offset right after this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Whether attribute bit 3 says the timestamps are LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Reads the batch length field of the batch at the start of `buf` and checks that
/// the framing is plausible: the header fits and the whole batch is inside `buf`.
/// Returns the total batch size. `position` only feeds error messages.
pub fn check_framing(buf: &[u8], position: u64) -> Result<usize, StorageError> {
    let corrupt = |reason: String| StorageError::CorruptBatch {
        segment: None,
        position,
        reason,
    };
    let length_bytes: [u8; 4] = buf
        .get(BATCH_LENGTH_AT..LOG_OVERHEAD)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(format!("{} bytes cannot hold a batch header", buf.len())))?;
    let batch_length = i32::from_be_bytes(length_bytes);
    let minimum = (HEADER_SIZE - LOG_OVERHEAD) as i32;
    if batch_length < minimum {
        return Err(corrupt(format!(
            "batch length {batch_length} is below the minimum {minimum}"
        )));
    }
    let size = batch_length as usize + LOG_OVERHEAD;
    if size > buf.len() {
        return Err(corrupt(format!(
            "batch of {size} bytes is cut short: only {} bytes left",
            buf.len()
        )));
    }
    Ok(size)
}

/// Checks the header fields that do not need the CRC: magic and offset/count sanity.
pub fn check_header(header: &BatchHeader, position: u64) -> Result<(), StorageError> {
    let invalid = |reason: String| StorageError::InvalidBatch { position, reason };
    if header.magic != MAGIC {
        return Err(invalid(format!(
            "magic {} is not supported (only {MAGIC})",
            header.magic
        )));
    }
    if header.last_offset_delta < 0 {
        return Err(invalid(format!(
            "negative lastOffsetDelta {}",
            header.last_offset_delta
        )));
    }
    if header.record_count < 0
        || i64::from(header.record_count) > i64::from(header.last_offset_delta) + 1
    {
        return Err(invalid(format!(
            "record count {} does not fit lastOffsetDelta {}",
            header.record_count, header.last_offset_delta
        )));
    }
    Ok(())
}

/// For an uncompressed batch, checks that the records fill the batch exactly and
/// number `record_count`: each record starts with its length as a zigzag varint, so
/// this walks lengths only, without decoding a record. A compressed batch is not
/// checked (that would mean decompressing on append, which Strata does not do).
/// Kafka refuses such a batch too; without this check a header that overstates its
/// record count would claim offsets that no reader can decode.
pub fn check_uncompressed_records(
    batch: &[u8],
    header: &BatchHeader,
    position: u64,
) -> Result<(), StorageError> {
    if header.compression() != 0 {
        return Ok(());
    }
    let invalid = |reason: String| StorageError::InvalidBatch { position, reason };
    let mut at = HEADER_SIZE;
    for index in 0..header.record_count {
        let (length, varint_len) = read_zigzag_varint(batch.get(at..).unwrap_or_default())
            .ok_or_else(|| invalid(format!("record {index}: unreadable length")))?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| (at + varint_len).checked_add(length))
            .filter(|&end| end <= batch.len())
            .ok_or_else(|| {
                invalid(format!(
                    "record {index} of {} runs past the end of the batch",
                    header.record_count
                ))
            })?;
        at = end;
    }
    if at != batch.len() {
        return Err(invalid(format!(
            "{} bytes follow the {} records the header counts",
            batch.len() - at,
            header.record_count
        )));
    }
    Ok(())
}

/// A zigzag-encoded varint (Kafka's `varint`) and how many bytes it took.
fn read_zigzag_varint(buf: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, byte) in buf.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let value = (raw >> 1) as i64 ^ -((raw & 1) as i64);
            return Some((value, i + 1));
        }
    }
    None
}

/// The CRC32C of a batch as Kafka computes it: from `attributes` to the end.
/// `batch` must hold exactly one batch of at least [`HEADER_SIZE`] bytes.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(batch.get(ATTRIBUTES_AT..).unwrap_or_default())
}

/// Fully validates the single batch at the start of `buf` (framing, magic, offsets,
/// CRC32C) without decompressing it. Returns its header; its size is `header.size()`.
pub fn validate(buf: &[u8], position: u64) -> Result<BatchHeader, StorageError> {
    let size = check_framing(buf, position)?;
    let batch = &buf[..size];
    let header = BatchHeader::parse(batch).ok_or_else(|| StorageError::CorruptBatch {
        segment: None,
        position,
        reason: "header cut short".to_string(),
    })?;
    check_header(&header, position)?;
    let actual = compute_crc(batch);
    if actual != header.crc {
        return Err(StorageError::CrcMismatch {
            segment: None,
            position,
            expected: header.crc,
            actual,
        });
    }
    Ok(header)
}

/// Validates every batch of a buffer holding batches back to back (a produce
/// request's `records`). An empty buffer or a trailing partial batch is corrupt.
/// Returns each batch's position in `buf` and its header.
pub fn validate_all(buf: &[u8]) -> Result<Vec<(usize, BatchHeader)>, StorageError> {
    if buf.is_empty() {
        return Err(StorageError::CorruptBatch {
            segment: None,
            position: 0,
            reason: "no record batch".to_string(),
        });
    }
    let mut batches = Vec::new();
    let mut position = 0;
    while position < buf.len() {
        let header = validate(&buf[position..], position as u64)?;
        batches.push((position, header));
        position += header.size();
    }
    Ok(batches)
}

/// Overwrites the base offset of the batch at the start of `batch`. The CRC does not
/// cover it, so the batch stays valid. Slices shorter than a header are left alone.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    if let Some(field) = batch.get_mut(BASE_OFFSET_AT..BASE_OFFSET_AT + 8) {
        field.copy_from_slice(&base_offset.to_be_bytes());
    }
}

/// Overwrites the partition leader epoch (not covered by the CRC either).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    if let Some(field) = batch.get_mut(PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4) {
        field.copy_from_slice(&epoch.to_be_bytes());
    }
}

/// Stamps a batch for a LogAppendTime topic as Kafka does: attribute bit 3 set and
/// `maxTimestamp = now_ms` (records keep their deltas; readers use maxTimestamp for
/// every record), then recomputes the CRC. `batch` must be exactly one validated batch.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    if batch.len() < HEADER_SIZE {
        return;
    }
    let attributes = i16::from_be_bytes(array_at(batch, ATTRIBUTES_AT)) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn array_at<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

fn i32_at(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(array_at(buf, at))
}

fn i64_at(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(array_at(buf, at))
}

/// Test helpers shared by the crate's unit tests: encode real batches with the
/// `kafka-protocol` crate so that tests exercise bytes a client would send.
#[cfg(test)]
pub(crate) mod test_support {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// One record of a test batch: key and value (`None` = no key / tombstone).
    pub type Kv<'a> = (Option<&'a str>, Option<&'a str>);

    /// Producer fields of a test batch.
    #[derive(Clone, Copy)]
    pub struct Producer {
        pub id: i64,
        pub epoch: i16,
        pub base_sequence: i32,
    }

    /// A plain (non-idempotent) producer.
    pub const NO_PRODUCER: Producer = Producer {
        id: -1,
        epoch: -1,
        base_sequence: -1,
    };

    /// One batch as a client encodes it: record `i` has `records[i]`'s key and
    /// value and timestamp `timestamps[i]`.
    pub fn encode_batch(
        records: &[Kv<'_>],
        timestamps: &[i64],
        compression: Compression,
        producer: Producer,
    ) -> Vec<u8> {
        let records: Vec<Record> = records
            .iter()
            .zip(timestamps)
            .enumerate()
            .map(|(i, ((key, value), &timestamp))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: producer.id,
                producer_epoch: producer.epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch when offset - sequence changes, so keep
                // it constant (base sequence -1 for a non-idempotent producer).
                sequence: producer.base_sequence.wrapping_add(i as i32),
                timestamp,
                key: key.map(|k| Bytes::from(k.to_string())),
                value: value.map(|v| Bytes::from(v.to_string())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encoding a small batch cannot fail");
        buf.to_vec()
    }

    /// One batch of `timestamps.len()` records with timestamps `timestamps[i]`,
    /// keys `key-<i>` and values `value-<i>-<padding>`.
    pub fn batch_with_timestamps(timestamps: &[i64], compression: Compression) -> Vec<u8> {
        let texts: Vec<(String, String)> = (0..timestamps.len())
            .map(|i| {
                (
                    format!("key-{i}"),
                    format!("value-{i}-{}", "x".repeat(i % 7)),
                )
            })
            .collect();
        let records: Vec<Kv<'_>> = texts
            .iter()
            .map(|(key, value)| (Some(key.as_str()), Some(value.as_str())))
            .collect();
        encode_batch(&records, timestamps, compression, NO_PRODUCER)
    }

    /// One uncompressed batch of `count` records, timestamps `base_ts`, `base_ts + 1`, ...
    pub fn batch(count: usize, base_ts: i64) -> Vec<u8> {
        let timestamps: Vec<i64> = (0..count as i64).map(|i| base_ts + i).collect();
        batch_with_timestamps(&timestamps, Compression::None)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use kafka_protocol::records::{Compression, RecordBatchDecoder};

    /// Rewrites a batch's record count and last offset delta (keeping them
    /// consistent with each other) and fixes its CRC.
    fn with_record_count(mut buf: Vec<u8>, count: i32) -> Vec<u8> {
        buf[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
            .copy_from_slice(&(count - 1).to_be_bytes());
        buf[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&buf);
        buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    #[test]
    fn uncompressed_records_must_match_the_record_count() {
        let good = batch(5, 1_000);
        let header = validate(&good, 0).expect("valid");
        check_uncompressed_records(&good, &header, 0).expect("5 records fill the batch");

        for count in [4, 6, i32::MAX] {
            let lying = with_record_count(good.clone(), count);
            let header = validate(&lying, 0).expect("header and CRC are consistent");
            assert!(
                matches!(
                    check_uncompressed_records(&lying, &header, 0),
                    Err(StorageError::InvalidBatch { .. })
                ),
                "record count {count} for 5 records"
            );
        }
    }

    #[test]
    fn compressed_record_counts_are_not_checked() {
        let lying = with_record_count(batch_with_timestamps(&[1, 2], Compression::Gzip), 9);
        let header = validate(&lying, 0).expect("valid header");
        assert!(check_uncompressed_records(&lying, &header, 0).is_ok());
    }

    #[test]
    fn zigzag_varints_decode_as_kafka_writes_them() {
        assert_eq!(read_zigzag_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_zigzag_varint(&[0x01]), Some((-1, 1)));
        assert_eq!(read_zigzag_varint(&[0x02]), Some((1, 1)));
        assert_eq!(read_zigzag_varint(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(read_zigzag_varint(&[0x80]), None, "cut short");
    }

    #[test]
    fn parses_and_validates_a_client_batch() {
        let buf = batch(3, 1_000);
        let header = validate(&buf, 0).expect("valid batch");
        assert_eq!(header.magic, 2);
        assert_eq!(header.base_offset, 0);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.record_count, 3);
        assert_eq!(header.base_timestamp, 1_000);
        assert_eq!(header.max_timestamp, 1_002);
        assert_eq!(header.size(), buf.len());
        assert_eq!(header.timestamp_type(), TimestampType::CreateTime);
        assert_eq!(header.compression(), 0);
        assert!(!header.is_transactional() && !header.is_control());
    }

    #[test]
    fn validates_compressed_batch_without_decompressing() {
        let buf = batch_with_timestamps(&[5, 6, 7, 8], Compression::Gzip);
        let header = validate(&buf, 0).expect("valid batch");
        assert_eq!(header.compression(), 1);
        assert_eq!(header.record_count, 4);
    }

    #[test]
    fn flipped_crc_covered_byte_is_a_crc_mismatch() {
        let mut buf = batch(2, 0);
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        match validate(&buf, 7) {
            Err(StorageError::CrcMismatch { position, .. }) => assert_eq!(position, 7),
            other => panic!("expected CrcMismatch, got {other:?}"),
        }
        let mut buf = batch(2, 0);
        buf[CRC_AT] ^= 1;
        assert!(matches!(
            validate(&buf, 0),
            Err(StorageError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn wrong_magic_is_invalid() {
        let mut buf = batch(1, 0);
        buf[MAGIC_AT] = 1;
        let err = validate(&buf, 0).expect_err("magic 1 rejected");
        assert!(matches!(err, StorageError::InvalidBatch { .. }));
        assert_eq!(err.kafka_error_code(), 2);
    }

    #[test]
    fn truncated_or_short_buffers_are_corrupt() {
        let buf = batch(3, 0);
        for cut in [0, 5, 11, 12, 40, HEADER_SIZE, buf.len() - 1] {
            assert!(
                matches!(
                    validate(&buf[..cut], 0),
                    Err(StorageError::CorruptBatch { .. })
                ),
                "cut at {cut}"
            );
        }
        let mut bad_length = buf.clone();
        bad_length[BATCH_LENGTH_AT..LOG_OVERHEAD].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(matches!(
            validate(&bad_length, 0),
            Err(StorageError::CorruptBatch { .. })
        ));
    }

    #[test]
    fn validate_all_rejects_empty_and_trailing_garbage() {
        assert!(validate_all(&[]).is_err());
        let mut two = batch(2, 0);
        two.extend_from_slice(&batch(3, 10));
        let batches = validate_all(&two).expect("two valid batches");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].0, batches[0].1.size());
        two.extend_from_slice(&[0, 0, 0]);
        assert!(matches!(
            validate_all(&two),
            Err(StorageError::CorruptBatch { .. })
        ));
    }

    #[test]
    fn patching_offset_and_epoch_keeps_crc_valid() {
        let mut buf = batch(4, 0);
        set_base_offset(&mut buf, 1234);
        set_partition_leader_epoch(&mut buf, 7);
        let header = validate(&buf, 0).expect("still valid");
        assert_eq!(header.base_offset, 1234);
        assert_eq!(header.last_offset(), 1237);
        assert_eq!(header.partition_leader_epoch, 7);
        let decoded = RecordBatchDecoder::decode(&mut bytes::Bytes::from(buf)).expect("decodes");
        assert_eq!(decoded.records[3].offset, 1237);
    }

    #[test]
    fn log_append_time_sets_bit_and_timestamp_and_crc() {
        let mut buf = batch_with_timestamps(&[1, 2], Compression::Snappy);
        set_log_append_time(&mut buf, 99_999);
        let header = validate(&buf, 0).expect("CRC recomputed");
        assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
        assert_eq!(header.max_timestamp, 99_999);
        assert_eq!(header.compression(), 2, "compression bits kept");
    }
}
