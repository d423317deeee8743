//! Encoding a response with "holes": byte strings that are left out of the
//! encoded buffer because the caller sends them from elsewhere — a fetch's
//! record batches, sent straight from segment files with sendfile.
//!
//! The generated codec writes every `bytes` field with one `put_slice` of
//! the whole value, after its length prefix. [`HoleBuf`] is a [`BufMut`] that
//! recognises those calls by the address and length of the values the caller
//! registered and, instead of copying, notes where in the frame they belong.
//! Everything else is encoded by `kafka-protocol` exactly as usual, so the
//! frame a client receives is byte for byte the ordinary encoding.

use bytes::buf::UninitSlice;
use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::Encodable;

use crate::{encode_frame, patch_size_to, EncodeError};

/// An encoded response, size prefix included, missing the bytes of its holes.
#[derive(Debug)]
pub struct HoleyFrame {
    /// The frame without the holes' bytes; the size prefix counts them.
    pub bytes: BytesMut,
    /// Where each hole's bytes go: offsets into `bytes`, in hole order
    /// (non-decreasing).
    pub hole_offsets: Vec<usize>,
}

/// Encodes `body` like [`crate::encode_response`], except that the values
/// in `holes` — each the exact slice stored in a `bytes` field of `body`, in
/// the order the fields are encoded, none empty — are not copied.
/// Fails if a hole is not met during encoding.
pub fn encode_response_with_holes<T: Encodable>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
    holes: &[&[u8]],
) -> Result<HoleyFrame, EncodeError> {
    let mut buf = HoleBuf {
        inner: BytesMut::with_capacity(256),
        holes,
        offsets: Vec::with_capacity(holes.len()),
    };
    encode_frame(&mut buf, api_key, version, correlation_id, |buf| {
        body.encode(buf, version).map_err(Into::into)
    })?;
    if buf.offsets.len() != holes.len() {
        return Err(EncodeError {
            api_key,
            version,
            reason: format!(
                "{} of {} holes were not found in the encoded fields",
                holes.len() - buf.offsets.len(),
                holes.len()
            ),
        });
    }
    let hole_bytes: usize = holes.iter().map(|hole| hole.len()).sum();
    let mut bytes = buf.inner;
    let size = bytes.len() - 4 + hole_bytes;
    patch_size_to(&mut bytes, size);
    Ok(HoleyFrame {
        bytes,
        hole_offsets: buf.offsets,
    })
}

/// A `BytesMut` that skips the registered holes (see the module docs).
struct HoleBuf<'a> {
    inner: BytesMut,
    holes: &'a [&'a [u8]],
    offsets: Vec<usize>,
}

// SAFETY: every method delegates to the inner `BytesMut`, which upholds the
// `BufMut` contract; `put_slice` either delegates or writes nothing.
unsafe impl BufMut for HoleBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.inner.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, count: usize) {
        // SAFETY: the caller's guarantee (`count` bytes of `chunk_mut` were
        // initialised) is passed through unchanged.
        unsafe { self.inner.advance_mut(count) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.inner.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if let Some(hole) = self.holes.get(self.offsets.len()) {
            if !src.is_empty()
                && std::ptr::eq(hole.as_ptr(), src.as_ptr())
                && hole.len() == src.len()
            {
                self.offsets.push(self.inner.len());
                return;
            }
        }
        self.inner.put_slice(src);
    }
}

impl ByteBufMut for HoleBuf<'_> {
    fn offset(&self) -> usize {
        self.inner.len()
    }

    fn seek(&mut self, offset: usize) {
        self.inner.resize(offset, 0);
    }

    fn range(&mut self, range: std::ops::Range<usize>) -> &mut [u8] {
        &mut self.inner[range]
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;
    use crate::encode_response;

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, records)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(7)
                    .with_records(Some(records.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(partitions)])
    }

    /// Splicing the holes back in gives exactly the ordinary encoding, for
    /// the non-flexible and the flexible (compact bytes) versions.
    #[test]
    fn frame_with_holes_filled_equals_the_ordinary_encoding() {
        let records = [
            Bytes::from(vec![1u8; 300]),
            Bytes::new(),
            Bytes::from(vec![2u8; 70_000]),
        ];
        for version in [4, 11, 12] {
            let body = response(&records);
            let holes = [&records[0][..], &records[2][..]];
            let frame =
                encode_response_with_holes(ApiKey::Fetch, version, 9, &body, &holes).unwrap();
            let mut spliced = Vec::new();
            let mut at = 0;
            for (hole, &offset) in holes.iter().zip(&frame.hole_offsets) {
                spliced.extend_from_slice(&frame.bytes[at..offset]);
                spliced.extend_from_slice(hole);
                at = offset;
            }
            spliced.extend_from_slice(&frame.bytes[at..]);
            let ordinary =
                encode_response(ApiKey::Fetch, version, 9, &ResponseKind::Fetch(body)).unwrap();
            assert_eq!(spliced, &ordinary[..], "v{version}");
            assert_eq!(frame.bytes.len() + 70_300, ordinary.len());
        }
    }

    /// Equal bytes elsewhere are not mistaken for a hole: only the registered
    /// slice itself is.
    #[test]
    fn only_the_registered_slice_is_a_hole() {
        let records = [Bytes::from(vec![5u8; 10]), Bytes::from(vec![5u8; 10])];
        let body = response(&records);
        let frame =
            encode_response_with_holes(ApiKey::Fetch, 12, 1, &body, &[&records[1][..]]).unwrap();
        assert_eq!(frame.hole_offsets.len(), 1);
        let ordinary = encode_response(ApiKey::Fetch, 12, 1, &ResponseKind::Fetch(body)).unwrap();
        assert_eq!(frame.bytes.len() + 10, ordinary.len());
        // A hole that is not in the body is an error, not a silent copy.
        let stray = Bytes::from(vec![5u8; 10]);
        let body = response(&records);
        assert!(encode_response_with_holes(ApiKey::Fetch, 12, 1, &body, &[&stray[..]]).is_err());
    }
}
