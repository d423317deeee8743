//! Record batches written by Strata itself rather than received from a client:
//! the group coordinator's `__consumer_offsets` records, the metadata log, the
//! `strata produce` and `perf` commands, tests and benches. Encoding is
//! kafka-protocol's; this module only fills in what a plain producer (no
//! idempotence, no transaction) puts in each record, in one place, and reads
//! such a log back ([`for_each_decoded_batch`]).

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::batch::{self, LOG_OVERHEAD, MAGIC};
use crate::{Log, StorageError};

/// Bytes read at a time by [`for_each_decoded_batch`].
const READ_BYTES: usize = 4 << 20;

/// A batch that kafka-protocol's encoder refused.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode a record batch: {0}")]
pub struct EncodeError(String);

/// A record of a plain producer with CreateTime `timestamp` and no headers.
/// Its offset and sequence are set by [`encode_plain_batch`].
pub fn plain_record(key: Option<Bytes>, value: Option<Bytes>, timestamp: i64) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes `records` as one v2 batch with `compression`, numbering their
/// offsets from 0 (the broker assigns the real ones on append).
pub fn encode_plain_batch(
    records: &[Record],
    compression: Compression,
) -> Result<BytesMut, EncodeError> {
    let numbered: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, record)| Record {
            offset: i as i64,
            // The encoder starts a new batch whenever `offset - sequence`
            // changes; keeping it constant makes one batch, whose base
            // sequence is -1 (no producer).
            sequence: (i as i32).wrapping_sub(1),
            ..record.clone()
        })
        .collect();
    let mut buffer = BytesMut::new();
    let options = RecordEncodeOptions {
        version: MAGIC,
        compression,
    };
    RecordBatchEncoder::encode(&mut buffer, numbered.iter(), &options)
        .map_err(|error| EncodeError(error.to_string()))?;
    Ok(buffer)
}

/// Reads `log` from its start and calls `each` with every data batch's base
/// offset and its decoded records, or why kafka-protocol could not decode
/// them (the caller decides whether that is fatal). Control batches are
/// skipped; reading stops where no whole batch is left.
pub fn for_each_decoded_batch<E: From<StorageError>>(
    log: &Log,
    mut each: impl FnMut(i64, Result<Vec<Record>, String>) -> Result<(), E>,
) -> Result<(), E> {
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, READ_BYTES, true)?;
        let batches = match batch::validate_all(&bytes) {
            Ok(batches) if !batches.is_empty() => batches,
            _ => break, // nothing whole at `offset`: the log is read
        };
        for (position, header) in batches {
            offset = header.last_offset() + 1;
            if header.is_control() {
                continue;
            }
            let end = position + LOG_OVERHEAD + header.batch_length as usize;
            let mut one = bytes.slice(position..end);
            let records = RecordBatchDecoder::decode(&mut one)
                .map(|set| set.records)
                .map_err(|error| error.to_string());
            each(header.base_offset, records)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::validate_all;

    #[test]
    fn many_records_make_one_batch_of_a_plain_producer() {
        let records: Vec<Record> = (0..5)
            .map(|i| plain_record(Some(Bytes::from(format!("k{i}"))), None, 1_000 + i))
            .collect();
        for compression in [Compression::None, Compression::Zstd] {
            let batch = encode_plain_batch(&records, compression).expect("encode");
            let batches = validate_all(&batch).expect("a valid batch");
            assert_eq!(batches.len(), 1);
            let header = &batches[0].1;
            assert_eq!(header.record_count, 5);
            assert_eq!(header.last_offset_delta, 4);
            assert_eq!(header.producer_id, -1);
            assert_eq!(header.base_sequence, -1);
            assert_eq!(header.max_timestamp, 1_004);
        }
    }
}
