//! The idempotent producer on the wire: a retried batch is not appended twice, a gap
//! in sequence numbers is refused, and the producer state survives a restart.

mod common;

use common::*;

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

fn as_bytes(values: &[String]) -> Vec<&[u8]> {
    values.iter().map(|v| v.as_bytes()).collect()
}

#[test]
fn retried_batch_is_not_appended_twice_and_gaps_are_refused() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("idempotence");
    create_topic(&bootstrap, &topic, 1);
    let mut client = RawClient::connect(&bootstrap);
    let (producer_id, epoch) = init_producer_id(&mut client);

    let first = values("first", 5);
    let batch =
        encode_idempotent_batch(&as_bytes(&first), now_ms(), producer_id, epoch, 0).freeze();
    assert_eq!(
        client.produce(&topic, 0, batch.clone()),
        (0, 0),
        "first batch"
    );
    // The same batch again (a retry after a lost response): success with the original
    // offset, nothing appended (Kafka answers a duplicate of a recent batch this way).
    assert_eq!(client.produce(&topic, 0, batch), (0, 0), "retried batch");
    assert_eq!(
        high_watermark(&bootstrap, &topic, 0),
        5,
        "the retry was not appended"
    );

    // A gap: sequence 10 when 5 is expected.
    let gap = encode_idempotent_batch(&[b"gap"], now_ms(), producer_id, epoch, 10).freeze();
    let (code, _) = client.produce(&topic, 0, gap);
    assert_eq!(code, OUT_OF_ORDER_SEQUENCE_NUMBER, "sequence gap");

    // The expected next sequence is appended.
    let second = values("second", 3);
    let batch =
        encode_idempotent_batch(&as_bytes(&second), now_ms(), producer_id, epoch, 5).freeze();
    assert_eq!(client.produce(&topic, 0, batch), (0, 5), "next batch");

    let mut expected = first.clone();
    expected.extend(second);
    let received = consume_partition(&bootstrap, &topic, 0, expected.len());
    assert_values_in_order(&received, &expected);
    assert_eq!(high_watermark(&bootstrap, &topic, 0), 8);
}

#[test]
fn producer_state_survives_a_restart() {
    let mut broker = Broker::start(&[]);
    let topic = unique_topic("idempotence-restart");
    create_topic(&broker.bootstrap(), &topic, 1);
    let mut client = RawClient::connect(&broker.bootstrap());
    let (producer_id, epoch) = init_producer_id(&mut client);
    let first = values("before", 4);
    let batch =
        encode_idempotent_batch(&as_bytes(&first), now_ms(), producer_id, epoch, 0).freeze();
    assert_eq!(client.produce(&topic, 0, batch.clone()), (0, 0));
    drop(client);

    for stop in ["sigterm", "sigkill"] {
        match stop {
            "sigterm" => broker.stop_sigterm(),
            _ => broker.kill9(),
        }
        broker.restart();
        let bootstrap = broker.bootstrap();
        let mut client = RawClient::connect(&bootstrap);
        // The producer retries its last batch against the restarted broker.
        assert_eq!(
            client.produce(&topic, 0, batch.clone()),
            (0, 0),
            "retry of the last batch after {stop}: a duplicate, answered with its offset"
        );
        assert_eq!(
            high_watermark(&bootstrap, &topic, 0),
            4,
            "the retry after {stop} was not appended"
        );
    }
    let bootstrap = broker.bootstrap();
    let mut client = RawClient::connect(&bootstrap);
    let next = encode_idempotent_batch(&[b"after"], now_ms(), producer_id, epoch, 4).freeze();
    assert_eq!(
        client.produce(&topic, 0, next),
        (0, 4),
        "the next sequence after restarts"
    );
}
