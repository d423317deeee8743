//! Kafka wire framing and typed request/response dispatch for Strata.
//!
//! This crate does no I/O. The broker's connection task reads a 4-byte
//! big-endian size prefix, checks it with [`check_frame_size`], reads the frame,
//! and hands it to [`decode_request`]; the handler's typed answer goes back
//! through [`encode_response`]. Every message body is the `kafka-protocol`
//! crate's generated type (Kafka 4.1 message specs), so nothing here
//! hand-writes a codec: this layer only picks header versions and wraps errors.
//!
//! See <https://kafka.apache.org/protocol.html#protocol_common> for the framing
//! and header rules.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Decodable, Encodable};

pub use kafka_protocol;

mod error_name;
mod holes;
pub use error_name::error_name;
pub use holes::{encode_response_with_holes, HoleyFrame};

/// Kafka's error code for a request version the broker does not support.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Why a frame could not become a request. Every variant closes the
/// connection except [`DecodeError::UnsupportedApiVersionsVersion`], which
/// Kafka answers with an ApiVersions v0 response (KIP-511).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The frame is shorter than the fixed part of a request header.
    #[error("frame of {len} bytes is too short for a request header")]
    TooShort { len: usize },
    /// The API key is not one Kafka defines.
    #[error("unknown api key {api_key}")]
    UnknownApiKey { api_key: i16 },
    /// ApiVersions at a version we cannot parse: answered, not closed.
    #[error("ApiVersions version {version} is not supported")]
    UnsupportedApiVersionsVersion { version: i16, correlation_id: i32 },
    /// Any other API at a version outside what the codec knows.
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion { api_key: ApiKey, version: i16 },
    /// The header or body did not parse.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed {
        api_key: ApiKey,
        version: i16,
        reason: String,
    },
}

/// The size prefix of a frame is invalid: the connection must be closed.
#[derive(Debug, thiserror::Error)]
#[error("frame size {size} is outside 0..={max} (socket.request.max.bytes)")]
pub struct FrameSizeError {
    pub size: i32,
    pub max: usize,
}

/// Checks a request's 4-byte size prefix against `socket.request.max.bytes`.
pub fn check_frame_size(prefix: [u8; 4], max: usize) -> Result<usize, FrameSizeError> {
    let size = i32::from_be_bytes(prefix);
    match usize::try_from(size) {
        Ok(len) if len <= max => Ok(len),
        _ => Err(FrameSizeError { size, max }),
    }
}

/// A decoded request: its header and its typed body.
#[derive(Debug)]
pub struct Request {
    pub header: RequestHeader,
    pub api_key: ApiKey,
    pub body: RequestKind,
}

impl Request {
    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }
}

/// Decodes one frame (without its size prefix) into a typed request, using
/// the request header version that the API key and version demand.
pub fn decode_request(mut frame: Bytes) -> Result<Request, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort { len: frame.len() });
    }
    // api_key, api_version and correlation_id sit at fixed positions in
    // every header version, so they can be read before the header is parsed.
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key =
        ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey { api_key: raw_key })?;
    let range = api_key.valid_versions();
    if version < range.min || version > range.max {
        return Err(if api_key == ApiKey::ApiVersions {
            DecodeError::UnsupportedApiVersionsVersion {
                version,
                correlation_id,
            }
        } else {
            DecodeError::UnsupportedVersion { api_key, version }
        });
    }
    let malformed = |reason: anyhow_like::Reason| DecodeError::Malformed {
        api_key,
        version,
        reason: reason.0,
    };
    let header = RequestHeader::decode(&mut frame, api_key.request_header_version(version))
        .map_err(|e| malformed(e.into()))?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| malformed(e.into()))?;
    Ok(Request {
        header,
        api_key,
        body,
    })
}

/// The codec's errors are `anyhow::Error`; this crate keeps their text only,
/// so that it need not depend on anyhow (a binaries-only crate by our rules).
mod anyhow_like {
    pub struct Reason(pub String);
    impl<E: std::fmt::Display> From<E> for Reason {
        fn from(e: E) -> Self {
            Reason(format!("{e:#}"))
        }
    }
}

/// Why a response could not be encoded (a bug in a handler: a field that the
/// requested version cannot carry).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Encodes a response, size prefix included, with the response header
/// version that the API key and version demand.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let mut buf = BytesMut::with_capacity(64);
    encode_frame(&mut buf, api_key, version, correlation_id, |buf| {
        body.encode(buf, version).map_err(Into::into)
    })?;
    patch_size(&mut buf);
    Ok(buf)
}

/// Writes a response frame into `buf`: a size prefix to patch later, the
/// response header the API key and version demand, then the body.
fn encode_frame<B: ByteBufMut>(
    buf: &mut B,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: impl FnOnce(&mut B) -> Result<(), anyhow_like::Reason>,
) -> Result<(), EncodeError> {
    let error = |e: anyhow_like::Reason| EncodeError {
        api_key,
        version,
        reason: e.0,
    };
    buf.put_i32(0); // size, patched by the caller
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, api_key.response_header_version(version))
        .map_err(|e| error(e.into()))?;
    body(buf).map_err(error)
}

/// The answer Kafka gives to an ApiVersions request at a version it does not
/// know: a v0 response with UNSUPPORTED_VERSION and the supported ranges, so
/// the client can retry at a version both sides speak (KIP-511).
pub fn encode_unsupported_api_versions(correlation_id: i32, supported: &[ApiVersion]) -> BytesMut {
    let body = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(supported.to_vec());
    encode_response(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        &ResponseKind::ApiVersions(body),
    )
    .expect("an ApiVersions v0 response with only v0 fields always encodes")
}

fn patch_size(buf: &mut BytesMut) {
    let size = buf.len() - 4;
    patch_size_to(buf, size);
}

/// Writes `size` into the 4-byte size prefix of `buf`.
fn patch_size_to(buf: &mut BytesMut, size: usize) {
    buf[..4].copy_from_slice(&(size as i32).to_be_bytes());
}

/// Splits a size-prefixed response frame into header correlation id and body
/// bytes; used by tests and tools that speak to a broker directly.
pub fn split_response(mut frame: Bytes, api_key: ApiKey, version: i16) -> Option<(i32, Bytes)> {
    if frame.len() < 4 {
        return None;
    }
    let header =
        ResponseHeader::decode(&mut frame, api_key.response_header_version(version)).ok()?;
    Some((header.correlation_id, frame))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn frame_for(key: ApiKey, version: i16, body: &RequestKind) -> Bytes {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("test")))
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn frame_size_limits() {
        assert_eq!(check_frame_size(100i32.to_be_bytes(), 100).unwrap(), 100);
        assert!(check_frame_size(101i32.to_be_bytes(), 100).is_err());
        assert!(check_frame_size((-1i32).to_be_bytes(), 100).is_err());
    }

    #[test]
    fn flexible_and_classic_headers_both_decode() {
        // Metadata v9+ uses header v2 (tagged fields); v1 uses header v1.
        for version in [1, 9, 12] {
            let body = RequestKind::Metadata(MetadataRequest::default());
            let request = decode_request(frame_for(ApiKey::Metadata, version, &body)).unwrap();
            assert_eq!(request.header.correlation_id, 7);
            assert_eq!(request.header.client_id.as_deref(), Some("test"));
            assert_eq!(request.version(), version);
            assert!(matches!(request.body, RequestKind::Metadata(_)));
        }
    }

    #[test]
    fn api_versions_v3_carries_client_software_name() {
        let body = RequestKind::ApiVersions(
            ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("strata-test"))
                .with_client_software_version(StrBytes::from_static_str("1.0")),
        );
        let request = decode_request(frame_for(ApiKey::ApiVersions, 3, &body)).unwrap();
        let RequestKind::ApiVersions(body) = request.body else {
            panic!("wrong body type")
        };
        assert_eq!(body.client_software_name.as_str(), "strata-test");
    }

    #[test]
    fn unknown_key_and_versions_are_reported() {
        let mut raw = BytesMut::new();
        raw.put_i16(999);
        raw.put_i16(0);
        raw.put_i32(1);
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(DecodeError::UnknownApiKey { api_key: 999 })
        ));

        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::ApiVersions as i16);
        raw.put_i16(127);
        raw.put_i32(42);
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(DecodeError::UnsupportedApiVersionsVersion {
                version: 127,
                correlation_id: 42
            })
        ));

        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::Produce as i16);
        raw.put_i16(0);
        raw.put_i32(1);
        assert!(matches!(
            decode_request(raw.freeze()),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            decode_request(Bytes::from_static(&[0, 1])),
            Err(DecodeError::TooShort { len: 2 })
        ));
    }

    #[test]
    fn truncated_body_is_malformed_not_a_panic() {
        let body = RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![])));
        let full = frame_for(ApiKey::Metadata, 12, &body);
        for cut in 8..full.len() - 1 {
            let result = decode_request(full.slice(..cut));
            assert!(
                matches!(result, Err(DecodeError::Malformed { .. })),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unsupported_api_versions_answer_is_v0_with_error() {
        let supported = [ApiVersion::default()
            .with_api_key(18)
            .with_min_version(0)
            .with_max_version(4)];
        let frame = encode_unsupported_api_versions(5, &supported).freeze();
        assert_eq!(
            i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize,
            frame.len() - 4
        );
        let (correlation_id, mut body) =
            split_response(frame.slice(4..), ApiKey::ApiVersions, 0).unwrap();
        assert_eq!(correlation_id, 5);
        let response = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(response.error_code, UNSUPPORTED_VERSION);
        assert_eq!(response.api_keys.len(), 1);
    }
}
