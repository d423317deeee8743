//! Bad input on the wire gets what Apache Kafka gives: a closed connection for a broken
//! frame or an unknown API, the documented error code for a bad request. After each, the
//! broker must still serve other clients.

mod common;

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::producer::BaseRecord;
use rdkafka::types::RDKafkaErrorCode;

const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_REQUIRED_ACKS: i16 = 21;
const INVALID_RECORD: i16 = 87;
const UNSUPPORTED_VERSION: i16 = 35;

/// The broker process is alive, answers ApiVersions on a new connection and serves
/// metadata to a new librdkafka client.
fn assert_still_serving(broker: &mut Broker) {
    assert!(
        broker.is_running(),
        "the broker process died\n{}",
        broker.stderr_tail()
    );
    let bootstrap = broker.bootstrap();
    let response = RawClient::connect(&bootstrap).api_versions();
    assert_eq!(response.error_code, 0, "ApiVersions on a fresh connection");
    assert_serves_metadata(&bootstrap);
}

#[test]
fn frame_larger_than_socket_request_max_bytes_closes_the_connection() {
    let mut broker = Broker::start(&["socket.request.max.bytes=1048576"]);
    let mut client = RawClient::connect(&broker.bootstrap());
    // The size prefix alone is enough for the broker to refuse; send a little body too.
    let mut bytes = (2_000_000i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 1024]);
    client.send_raw(&bytes);
    client.assert_closed("a 2 MB frame with socket.request.max.bytes=1048576");
    assert_still_serving(&mut broker);
}

#[test]
fn negative_frame_size_closes_the_connection() {
    let mut broker = Broker::start(&[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    client.send_raw(&(-5i32).to_be_bytes());
    client.assert_closed("a negative frame size");
    assert_still_serving(&mut broker);
}

#[test]
fn garbage_frame_closes_the_connection() {
    let mut broker = Broker::start(&[]);
    for seed in [1u64, 7, 42, 1234] {
        let mut client = RawClient::connect(&broker.bootstrap());
        let mut garbage = pseudo_random_bytes(seed, 200);
        // An API key no broker knows (so the bytes cannot be a valid request by luck).
        garbage[0] = 0x7e;
        client.send_frame(&garbage);
        client.assert_closed(&format!("a frame of random bytes (seed {seed})"));
    }
    // A known API key (Metadata v9) with a body that cannot be parsed.
    let mut client = RawClient::connect(&broker.bootstrap());
    let mut frame = bytes::BytesMut::new();
    request_header(ApiKey::Metadata as i16, 9, 1)
        .encode(&mut frame, ApiKey::Metadata.request_header_version(9))
        .expect("encode header");
    frame.extend_from_slice(&[0xff; 3]);
    client.send_frame(&frame);
    client.assert_closed("a Metadata v9 request with a truncated body");
    assert_still_serving(&mut broker);
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut broker = Broker::start(&[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let mut frame = bytes::BytesMut::new();
    let header: RequestHeader = request_header(999, 0, 7);
    header
        .encode(&mut frame, 1)
        .expect("encode a v1 request header");
    client.send_frame(&frame);
    client.assert_closed("a request with API key 999");
    assert_still_serving(&mut broker);
}

#[test]
fn api_versions_with_a_too_new_version_gets_unsupported_version_in_v0_format() {
    let mut broker = Broker::start(&[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    // Header v2 (flexible) as for ApiVersions v3+, then a v3-shaped body: compact strings
    // client_software_name and client_software_version, and empty tagged fields.
    let correlation_id = 4242;
    let mut frame = bytes::BytesMut::new();
    request_header(ApiKey::ApiVersions as i16, 127, correlation_id)
        .encode(&mut frame, 2)
        .expect("encode a v2 request header");
    frame.extend_from_slice(&[11]);
    frame.extend_from_slice(b"strata-e2e");
    frame.extend_from_slice(&[6]);
    frame.extend_from_slice(b"0.1.0");
    frame.extend_from_slice(&[0]);
    client.send_frame(&frame);

    // ApiVersions responses always use response header v0 (KIP-511), and the error
    // answer is an ApiVersions v0 body.
    match client.read_reply(0) {
        RawReply::Response {
            correlation_id: got,
            mut body,
        } => {
            assert_eq!(got, correlation_id, "correlation id");
            let response =
                ApiVersionsResponse::decode(&mut body, 0).expect("an ApiVersions v0 response body");
            assert_eq!(response.error_code, UNSUPPORTED_VERSION, "error code");
            let api_versions = response
                .api_keys
                .iter()
                .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                .expect("the answer lists the supported ApiVersions versions");
            assert_eq!(api_versions.min_version, 0, "ApiVersions min version");
            assert!(api_versions.max_version >= 3, "ApiVersions max version");
            assert!(
                response
                    .api_keys
                    .iter()
                    .any(|k| k.api_key == ApiKey::Produce as i16),
                "the answer lists the other APIs too"
            );
            assert!(
                body.is_empty(),
                "{} trailing bytes after an ApiVersions v0 body",
                body.len()
            );
        }
        RawReply::Closed => {
            panic!("the broker closed the connection; Kafka answers UNSUPPORTED_VERSION")
        }
    }
    // The client may now retry with a supported version on the same connection.
    let response = client.api_versions();
    assert_eq!(response.error_code, 0);
    assert_still_serving(&mut broker);
}

#[test]
fn requests_pipelined_on_one_connection_are_answered_in_order() {
    let broker = Broker::start(&[]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let request = kafka_protocol::messages::ApiVersionsRequest::default();
    let mut expected = Vec::new();
    for _ in 0..10 {
        let (correlation_id, frame) = client.encode_request(ApiKey::ApiVersions, 0, &request);
        client.send_frame(&frame);
        expected.push(correlation_id);
    }
    for correlation_id in expected {
        match client.read_reply(0) {
            RawReply::Response {
                correlation_id: got,
                ..
            } => assert_eq!(got, correlation_id, "responses in request order"),
            RawReply::Closed => panic!("connection closed while pipelining"),
        }
    }
}

/// Flips one bit at `position` of an encoded batch.
fn flip(mut batch: bytes::BytesMut, position: usize) -> Bytes {
    batch[position] ^= 0x01;
    batch.freeze()
}

#[test]
fn produce_with_a_bad_crc_gets_corrupt_message_and_appends_nothing() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("crc");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);

    let values: [&[u8]; 3] = [b"one", b"two", b"three"];
    // Byte 17..21 of a v2 batch is the CRC-32C: flip a bit of the stored CRC.
    let batch = encode_batch(&values, now_ms());
    let (code, _) = client.produce(&topic, 0, flip(batch, 17));
    assert_eq!(code, CORRUPT_MESSAGE, "a batch whose CRC field was altered");
    // Flip a bit of the last record instead: the CRC no longer matches the data.
    let batch = encode_batch(&values, now_ms());
    let last = batch.len() - 2;
    let (code, _) = client.produce(&topic, 0, flip(batch, last));
    assert_eq!(
        code, CORRUPT_MESSAGE,
        "a batch whose record bytes were altered"
    );

    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");
    let (code, base_offset) = client.produce(&topic, 0, encode_batch(&values, now_ms()).freeze());
    assert_eq!(
        (code, base_offset),
        (0, 0),
        "a valid batch on the same connection"
    );
    let received = consume_partition(&bootstrap, &topic, 0, 3);
    assert_eq!(
        received.iter().map(|m| m.value_str()).collect::<Vec<_>>(),
        vec!["one", "two", "three"]
    );
    assert_still_serving(&mut broker);
}

#[test]
fn produce_with_a_truncated_batch_gets_corrupt_message() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("truncated");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let batch = encode_batch(&[b"some value", b"another value"], now_ms()).freeze();
    // The batch length field says more than the records field holds.
    let (code, _) = client.produce(&topic, 0, batch.slice(..batch.len() - 5));
    assert_eq!(code, CORRUPT_MESSAGE, "a batch cut short");
    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");
    assert_still_serving(&mut broker);
}

#[test]
fn produce_larger_than_max_message_bytes_gets_message_too_large() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("large");
    create_topic(&bootstrap, &topic, 1);

    // Raw: a 2 MB batch, under socket.request.max.bytes (100 MiB) but over
    // max.message.bytes (1048588).
    let mut client = RawClient::connect(&bootstrap);
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (code, _) = client.produce(&topic, 0, encode_batch(&[&big], now_ms()).freeze());
    assert_eq!(code, MESSAGE_TOO_LARGE, "raw 2 MB batch");

    // librdkafka, with its own limit raised so the broker is the one that refuses.
    let mut config = producer_config(&bootstrap);
    config
        .set("message.max.bytes", "5000000")
        .set("retries", "0");
    let producer = create_producer(&config);
    send_with_retry(
        &producer,
        BaseRecord::<(), [u8]>::to(&topic)
            .partition(0)
            .payload(&big[..]),
    );
    producer.flush(TIMEOUT).expect("flush");
    let reports = producer.context().reports();
    assert!(
        reports.delivered.is_empty(),
        "the big message was acknowledged: {reports:?}"
    );
    assert_eq!(reports.errors.len(), 1, "one failed delivery: {reports:?}");
    let expected =
        rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
            .to_string();
    assert_eq!(reports.errors[0], expected, "delivery error");

    // A topic-level max.message.bytes override applies too.
    let small_topic = unique_topic("small-limit");
    create_topic_with(
        &bootstrap,
        &small_topic,
        1,
        &[("max.message.bytes", "1000")],
    );
    let (code, _) = client.produce(
        &small_topic,
        0,
        encode_batch(&[&[b'y'; 2000]], now_ms()).freeze(),
    );
    assert_eq!(
        code, MESSAGE_TOO_LARGE,
        "2000 bytes with max.message.bytes=1000"
    );
    let (code, _) = client.produce(
        &small_topic,
        0,
        encode_batch(&[&[b'y'; 100]], now_ms()).freeze(),
    );
    assert_eq!(code, 0, "100 bytes with max.message.bytes=1000");

    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");
    assert_still_serving(&mut broker);
}

#[test]
fn produce_to_an_unknown_topic_without_auto_create_gets_unknown_topic() {
    let mut broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut client = RawClient::connect(&broker.bootstrap());
    let (code, _) = client.produce("no-such-topic", 0, encode_batch(&[b"x"], now_ms()).freeze());
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_still_serving(&mut broker);
}

#[test]
fn produce_to_a_missing_partition_gets_unknown_topic_or_partition() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("partitions");
    create_topic(&bootstrap, &topic, 2);
    let mut client = RawClient::connect(&bootstrap);
    let (code, _) = client.produce(&topic, 7, encode_batch(&[b"x"], now_ms()).freeze());
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_still_serving(&mut broker);
}

#[test]
fn produce_with_invalid_acks_gets_invalid_required_acks() {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("acks");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let version = client.negotiate(ApiKey::Produce, 12);
    let request = ProduceRequest::default()
        .with_acks(2)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(encode_batch(&[b"x"], now_ms()).freeze()))])]);
    let response: ProduceResponse = client.request(ApiKey::Produce, version, &request);
    let code = response.responses[0].partition_responses[0].error_code;
    assert_eq!(code, INVALID_REQUIRED_ACKS, "acks=2");
    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");
    assert_still_serving(&mut broker);
}

#[test]
fn create_topic_with_an_invalid_name_gets_invalid_topic_exception() {
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let admin = admin_client(&bootstrap);
    let too_long = "t".repeat(250);
    for name in [
        "bad/name",
        "..",
        ".",
        "spaces are bad",
        "ünïcode",
        too_long.as_str(),
    ] {
        let new_topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
        let results = block_on(admin.create_topics([&new_topic], &admin_options()))
            .expect("CreateTopics request");
        assert_eq!(
            results,
            vec![Err((name.to_string(), RDKafkaErrorCode::InvalidTopic))],
            "CreateTopics with name {name:?}"
        );
    }
    // Nothing was created on disk outside the data directory, or inside it.
    let entries: Vec<String> = std::fs::read_dir(broker.data_dir())
        .expect("read data dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !entries
            .iter()
            .any(|e| e.starts_with("bad") || e.starts_with("..") || e.starts_with("ttt")),
        "a directory was created for an invalid topic: {entries:?}"
    );
    assert!(!broker.data_dir().join("bad").exists());
    assert_still_serving(&mut broker);
}

#[test]
fn broker_survives_many_abruptly_closed_connections() {
    let mut broker = Broker::start(&[]);
    for i in 0..50u64 {
        let mut client = RawClient::connect(&broker.bootstrap());
        // Half a size prefix, half a frame, or nothing at all; then hang up.
        match i % 3 {
            0 => client.send_raw(&[0, 0]),
            1 => client.send_raw(&[0, 0, 0, 100, 0, 18, 0]),
            _ => {}
        }
    }
    assert_still_serving(&mut broker);
}

#[test]
fn produce_with_two_batches_for_one_partition_gets_invalid_record() {
    // Kafka: "Produce requests with version 3+ are only allowed to contain exactly one
    // record batch per partition" (INVALID_RECORD), and nothing is appended.
    let mut broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("two-batches");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let mut records = encode_batch(&[b"first"], now_ms());
    records.extend_from_slice(&encode_batch(&[b"second"], now_ms()));
    let (code, _) = client.produce(&topic, 0, records.freeze());
    assert_eq!(
        code, INVALID_RECORD,
        "two record batches in one partition's records"
    );
    assert_eq!(high_watermark(&bootstrap, &topic, 0), 0, "nothing appended");
    assert_still_serving(&mut broker);
}

/// A request whose only content is an element count: a topics array that declares
/// `count` entries and then ends.
fn metadata_declaring(version: i16, count: &[u8]) -> bytes::BytesMut {
    let mut frame = bytes::BytesMut::new();
    request_header(ApiKey::Metadata as i16, version, 1)
        .encode(&mut frame, ApiKey::Metadata.request_header_version(version))
        .expect("encode header");
    frame.extend_from_slice(count);
    frame
}

#[test]
fn an_element_count_far_beyond_the_frame_closes_the_connection() {
    // The decoder sizes collections from the declared count before reading any
    // element; a 2^31-1 (classic) or 2^32-2 (compact varint) count must cost a closed
    // connection, not the process.
    let mut broker = Broker::start(&[]);
    let hostile = [
        (1, metadata_declaring(1, &i32::MAX.to_be_bytes())),
        (12, metadata_declaring(12, &[0xff, 0xff, 0xff, 0xff, 0x0f])),
    ];
    for (version, frame) in hostile {
        let mut client = RawClient::connect(&broker.bootstrap());
        client.send_frame(&frame);
        client.assert_closed(&format!("Metadata v{version} declaring billions of topics"));
        assert_still_serving(&mut broker);
    }
}

#[test]
fn a_stored_batch_that_overstates_its_record_count_cannot_stop_the_broker() {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::Compression;
    use strata_storage::{encode_plain_batch, plain_record};

    let mut broker = Broker::start(&[]);
    let topic = unique_topic("overstated");
    let mut client = RawClient::connect(&broker.bootstrap());
    let record = plain_record(None, Some(Bytes::from_static(b"one record")), now_ms());
    // A gzip batch (the broker does not decompress on append) whose header claims
    // i32::MAX records, made consistent (last offset delta, CRC) so that it is stored.
    let batch = encode_plain_batch(&[record], Compression::Gzip).expect("encode");
    create_topic(&broker.bootstrap(), &topic, 1);
    let (error_code, _) = client.produce(&topic, 0, overstate_record_count(batch, i32::MAX));
    assert_eq!(error_code, 0, "stored: the header is consistent");

    // Looking a timestamp up decodes that batch's records.
    let request = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.clone())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(0)])]);
    let response: ListOffsetsResponse =
        RawClient::connect(&broker.bootstrap()).request(ApiKey::ListOffsets, 7, &request);
    assert_eq!(
        response.topics[0].partitions.len(),
        1,
        "answered, not aborted"
    );
    assert_still_serving(&mut broker);
}

/// Rewrites a batch's header to claim `count` records, keeping the last offset delta
/// and the CRC consistent with that claim: only the records contradict it.
fn overstate_record_count(mut batch: bytes::BytesMut, count: i32) -> Bytes {
    batch[23..27].copy_from_slice(&(count - 1).to_be_bytes()); // last offset delta
    batch[57..61].copy_from_slice(&count.to_be_bytes()); // record count
    let crc = crc32c::crc32c(&batch[21..]); // from attributes to the end
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

#[test]
fn an_uncompressed_batch_that_overstates_its_record_count_gets_corrupt_message() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("miscounted");
    create_topic(&broker.bootstrap(), &topic, 1);
    let mut client = RawClient::connect(&broker.bootstrap());
    let lying = overstate_record_count(encode_batch(&[b"a", b"b"], now_ms()), 1_000);
    let (error_code, _) = client.produce(&topic, 0, lying);
    assert_eq!(error_code, CORRUPT_MESSAGE);
    assert_eq!(
        high_watermark(&broker.bootstrap(), &topic, 0),
        0,
        "nothing appended"
    );
    assert_still_serving(&mut broker);
}
