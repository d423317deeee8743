//! Helpers for the broker's unit tests: a broker opened on a directory, and
//! record batches encoded by `kafka-protocol` as a client would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;
use strata_storage::{encode_plain_batch, plain_record};

use crate::broker::{Broker, Endpoint};
use crate::config::BrokerConfig;

/// A broker with default settings on `dir` (nothing listens).
pub fn open_broker(dir: &std::path::Path) -> std::sync::Arc<Broker> {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9092,
    };
    Broker::open(BrokerConfig::new(), dir, endpoint).expect("open broker")
}

/// One uncompressed batch holding one record.
pub fn one_record_batch(key: Option<&str>, value: Option<&str>, timestamp: i64) -> BytesMut {
    let record = plain_record(
        key.map(|k| Bytes::from(k.to_string())),
        value.map(|v| Bytes::from(v.to_string())),
        timestamp,
    );
    encode_plain_batch(&[record], Compression::None).expect("encode a batch")
}
