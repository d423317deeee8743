//! Helpers for the broker's unit tests: a broker opened on a directory, one
//! with a replicated partition, and record batches encoded by
//! `kafka-protocol` as a client would send them.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use strata_storage::{encode_plain_batch, plain_record};
use uuid::Uuid;

use crate::broker::{now_ms, Broker, Endpoint};
use crate::config::BrokerConfig;
use crate::metadata::{BrokerRegistration, MetadataRecord, PartitionRegistration};
use crate::partition::Partition;

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

/// Broker 1 with `config` on `dir`, leading partition 0 of topic `r` with
/// broker 2 as its in-sync follower, written into the metadata as the
/// controller would (nothing fetches for broker 2 unless the test does).
pub fn broker_with_follower(
    dir: &std::path::Path,
    config: BrokerConfig,
) -> (Arc<Broker>, Arc<Partition>) {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 9092,
    };
    let broker = Broker::open(config, dir, endpoint).expect("open broker");
    let topic_id = Uuid::new_v4();
    let records = [
        MetadataRecord::RegisterBroker(BrokerRegistration {
            broker_id: 2,
            incarnation_id: Uuid::new_v4(),
            directory_id: None,
            endpoints: Vec::new(),
            rack: None,
            fenced: false,
        }),
        MetadataRecord::Topic {
            name: "r".into(),
            topic_id,
        },
        MetadataRecord::Partition(PartitionRegistration {
            topic_id,
            partition_id: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
        }),
    ];
    broker
        .commit(&broker.lock_admin(), &records)
        .expect("commit the topic");
    let partition = broker.topic("r").unwrap().partition(0).unwrap().clone();
    (broker, partition)
}

/// A produce request of one one-record batch (key "k", value "v") to
/// partition `index` of `topic`.
pub fn produce_request(topic: &str, index: i32, acks: i16, timeout_ms: i32) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(index)
                .with_records(Some(
                    one_record_batch(Some("k"), Some("v"), now_ms()).freeze(),
                ))])])
}
