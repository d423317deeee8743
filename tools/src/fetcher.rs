//! Reading partitions with Fetch: a position per partition, one Fetch request per
//! leader per round, record batches decoded by `kafka-protocol`'s
//! [`RecordBatchDecoder`]. Shared by `strata consume` and `strata perf consume`.
//!
//! This is the assign-style half of a consumer: the caller chooses partitions and
//! start offsets. Consumer-group membership (`consume --group`,
//! [`crate::group_member`]) sits on top: each group assignment becomes the
//! partitions and positions given to [`Fetcher::assign`], and
//! [`Fetcher::positions`] after a round is what to commit.
//!
//! Every fetch is a full fetch (no fetch session, KIP-227: session epoch -1), so
//! nothing is kept on the broker between rounds. Leaders are asked one after the
//! other, each with its own long poll; on a single broker that is one request
//! per round.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::client::broker_error;
use crate::leaders::{Leaders, TopicLayout};

/// Upper bound of one Fetch response (and of one partition's share of it).
const FETCH_MAX_BYTES: i32 = 16 * 1024 * 1024;
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Batch header: base offset (8), batch length (4), then the bytes the length counts.
const BATCH_LENGTH_END: usize = 12;
/// Where a v2 batch header holds its last offset delta (after base offset, length,
/// partition leader epoch, magic, CRC and attributes).
const LAST_OFFSET_DELTA_AT: usize = 23;

/// What one round of fetches brought.
#[derive(Default)]
pub struct FetchRound {
    /// (partition, record) in log order within each partition; `record.offset`
    /// is the absolute offset.
    pub records: Vec<(i32, Record)>,
    /// Time from sending each Fetch request to having its response.
    pub latencies: Vec<Duration>,
}

pub struct Fetcher<'a> {
    layout: &'a TopicLayout,
    leaders: Leaders,
    /// Partition → offset of the next record to read.
    positions: BTreeMap<i32, i64>,
}

impl<'a> Fetcher<'a> {
    pub fn new(layout: &'a TopicLayout, leaders: Leaders, positions: BTreeMap<i32, i64>) -> Self {
        Fetcher {
            layout,
            leaders,
            positions,
        }
    }

    /// Replaces the partitions read and their positions (a new group assignment).
    pub fn assign(&mut self, positions: BTreeMap<i32, i64>) {
        self.positions = positions;
    }

    /// Partition → offset of the next record to read: past every record returned.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// The leader connections, e.g. for ListOffsets when positions are resolved.
    pub fn leaders(&mut self) -> &mut Leaders {
        &mut self.leaders
    }

    /// One Fetch request to each leader, waiting up to `max_wait` for data.
    pub fn fetch(&mut self, max_wait: Duration) -> Result<FetchRound> {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &partition in self.positions.keys() {
            by_leader
                .entry(self.layout.leader(partition)?)
                .or_default()
                .push(partition);
        }
        let max_wait_ms = i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX);
        let mut round = FetchRound::default();
        for (leader, partitions) in by_leader {
            let request = FetchRequest::default()
                .with_max_wait_ms(max_wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(FETCH_MAX_BYTES)
                .with_isolation_level(0)
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(self.layout.topic_name())
                    .with_topic_id(self.layout.topic_id)
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| {
                                FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(self.positions[&p])
                                    .with_partition_max_bytes(PARTITION_MAX_BYTES)
                            })
                            .collect(),
                    )]);
            let client = self.leaders.client(leader)?;
            let sent = Instant::now();
            let response = client.send(&request)?;
            round.latencies.push(sent.elapsed());
            broker_error(response.error_code, None).context("Fetch")?;
            // One topic per request, so every partition answer belongs to it.
            for answer in response.responses.iter().flat_map(|t| &t.partitions) {
                let partition = answer.partition_index;
                let Some(position) = self.positions.get_mut(&partition) else {
                    continue;
                };
                broker_error(answer.error_code, None).with_context(|| {
                    format!(
                        "fetching {} partition {partition} at offset {position}",
                        self.layout.name
                    )
                })?;
                if let Some(records) = &answer.records {
                    decode_records(records.clone(), partition, position, &mut round.records)
                        .with_context(|| {
                            format!("decoding {} partition {partition}", self.layout.name)
                        })?;
                }
            }
        }
        Ok(round)
    }
}

/// Appends the data records of the complete batches in `records` at or after
/// `*position` and moves `*position` past the last batch. A batch cut off at
/// the end (the response's size limit) is left for the next fetch.
fn decode_records(
    mut records: Bytes,
    partition: i32,
    position: &mut i64,
    out: &mut Vec<(i32, Record)>,
) -> Result<()> {
    while records.len() >= BATCH_LENGTH_END {
        let base_offset = i64::from_be_bytes(records[..8].try_into().expect("8 bytes"));
        let length = i32::from_be_bytes(records[8..12].try_into().expect("4 bytes"));
        let Ok(length) = usize::try_from(length) else {
            bail!("a batch at offset {base_offset} has negative length {length}");
        };
        let end = BATCH_LENGTH_END + length;
        if records.len() < end {
            break;
        }
        if end < LAST_OFFSET_DELTA_AT + 4 {
            bail!("a batch at offset {base_offset} is too short ({length} bytes)");
        }
        let mut batch = records.split_to(end);
        let last_offset_delta = i32::from_be_bytes(
            batch[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .expect("4 bytes"),
        );
        let set = RecordBatchDecoder::decode(&mut batch)
            .with_context(|| format!("the batch at offset {base_offset}"))?;
        for record in set.records {
            // Control records are transaction markers, not data; a compressed
            // batch may start before the position asked for.
            if !record.control && record.offset >= *position {
                out.push((partition, record));
            }
        }
        *position = (*position).max(base_offset + i64::from(last_offset_delta) + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::produce::{encode_batch, new_record, Codec};
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;

    /// A batch as a broker would return it: base offset rewritten to `base`.
    fn batch_at(base: i64, values: &[&str]) -> Bytes {
        let records: Vec<Record> = values
            .iter()
            .map(|v| new_record(None, Some(Bytes::from(v.to_string())), IndexMap::new(), 0))
            .collect();
        let encoded = encode_batch(&records, Codec::None).expect("encode");
        let mut batch = BytesMut::from(&encoded[..]);
        // The base offset is outside the CRC, so a broker rewrites it freely.
        batch[..8].copy_from_slice(&base.to_be_bytes());
        batch.freeze()
    }

    #[test]
    fn complete_batches_are_decoded_and_a_cut_one_is_left() {
        let mut data = BytesMut::new();
        data.extend_from_slice(&batch_at(10, &["a", "b"]));
        data.extend_from_slice(&batch_at(12, &["c"]));
        let third = batch_at(13, &["d", "e"]);
        data.extend_from_slice(&third[..third.len() - 3]);
        let mut out = Vec::new();
        // Position 11: the first batch's record at 10 was read before.
        let mut position = 11;
        decode_records(data.freeze(), 4, &mut position, &mut out).expect("decode");
        let read: Vec<(i32, i64, Bytes)> = out
            .into_iter()
            .map(|(p, r)| (p, r.offset, r.value.expect("a value")))
            .collect();
        assert_eq!(
            read,
            vec![(4, 11, Bytes::from("b")), (4, 12, Bytes::from("c"))]
        );
        assert_eq!(position, 13);
    }
}
