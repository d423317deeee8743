//! Helpers for the broker's unit tests: a broker opened on a directory, and
//! record batches encoded by `kafka-protocol` as a client would send them.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::broker::{Broker, Endpoint};
use crate::config::BrokerConfig;

/// A broker with default settings on `dir` (nothing listens).
pub fn open_broker(dir: &std::path::Path) -> Broker {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9092,
    };
    Broker::open(BrokerConfig::new(), dir, endpoint).expect("open broker")
}

/// One uncompressed batch holding one record.
pub fn one_record_batch(key: Option<&str>, value: Option<&str>, timestamp: i64) -> BytesMut {
    let record = Record {
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
        key: key.map(|k| Bytes::from(k.to_string())),
        value: value.map(|v| Bytes::from(v.to_string())),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("encode a batch");
    buf
}
