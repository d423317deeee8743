"""kafka-python against a Strata broker: admin, produce, consume, offsets, configs.

Usage: python kafka_python_smoke.py <bootstrap>   (driven by tests/kafka_python.rs)

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
Each step prints one line so a failure shows how far the script got.
"""

import os
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource

from strata_test import TIMEOUT_S, admin_client, create_topics, expect, run, step


def main(bootstrap):
    topic = f"kafka-python-{os.getpid()}"
    partitions = 3
    per_partition = 200

    admin = admin_client(bootstrap)
    step(f"create_topics {topic} with {partitions} partitions")
    create_topics(admin, {topic: partitions}, configs={"retention.ms": "3600000"})
    expect(topic in admin.list_topics(), f"{topic} not listed by list_topics()")

    step("describe_configs")
    configs = admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
    topic_configs = configs["topic"][topic]
    retention = topic_configs.get("retention.ms")
    expect(retention is not None, f"retention.ms missing from {sorted(topic_configs)}")
    expect(retention["value"] == "3600000", f"retention.ms = {retention}")
    expect(retention["config_source"] == "DYNAMIC_TOPIC_CONFIG", f"retention.ms source: {retention}")
    segment = topic_configs.get("segment.bytes")
    expect(segment is not None, "segment.bytes missing")
    expect(segment["config_source"] == "DEFAULT_CONFIG", f"segment.bytes source: {segment}")
    expect(segment["value"] == "1073741824", f"segment.bytes = {segment}")

    step("incremental alter_configs: SET max.message.bytes, DELETE retention.ms")
    result = admin.alter_configs(
        [ConfigResource("TOPIC", topic, {"max.message.bytes": ("SET", "2000000")})],
        incremental=True)
    expect(result == {"topic": {topic: "OK"}}, f"incremental SET result: {result}")
    topic_configs = admin.describe_configs([ConfigResource("TOPIC", topic)],
                                           config_filter="all")["topic"][topic]
    expect(topic_configs["max.message.bytes"]["value"] == "2000000",
           f"max.message.bytes after SET: {topic_configs['max.message.bytes']}")
    expect(topic_configs["max.message.bytes"]["config_source"] == "DYNAMIC_TOPIC_CONFIG",
           f"max.message.bytes source after SET: {topic_configs['max.message.bytes']}")
    expect(topic_configs["retention.ms"]["value"] == "3600000",
           f"incremental SET must keep the other overrides: {topic_configs['retention.ms']}")
    result = admin.alter_configs(
        [ConfigResource("TOPIC", topic, {"retention.ms": ("DELETE", None)})], incremental=True)
    expect(result == {"topic": {topic: "OK"}}, f"incremental DELETE result: {result}")
    topic_configs = admin.describe_configs([ConfigResource("TOPIC", topic)],
                                           config_filter="all")["topic"][topic]
    expect(topic_configs["retention.ms"]["value"] == "604800000"
           and topic_configs["retention.ms"]["config_source"] == "DEFAULT_CONFIG",
           f"retention.ms after DELETE: {topic_configs['retention.ms']}")
    expect(topic_configs["max.message.bytes"]["value"] == "2000000",
           f"DELETE must keep the other overrides: {topic_configs['max.message.bytes']}")

    step("describe_cluster")
    cluster = admin.describe_cluster()
    expect(cluster.get("cluster_id"), f"cluster id: {cluster}")
    expect(cluster.get("controller_id") == 1, f"controller: {cluster}")
    host, port = bootstrap.rsplit(":", 1)
    brokers = [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]]
    expect(brokers == [(1, host, int(port))], f"brokers: {brokers}")

    # Idempotence (kafka-python 3's default) is covered by kafka_python_default_producer.py.
    step("KafkaProducer send + flush")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             enable_idempotence=False,
                             request_timeout_ms=30000, client_id="strata-e2e-producer")
    expected = {p: [] for p in range(partitions)}
    futures = []
    for i in range(partitions * per_partition):
        partition = i % partitions
        value = f"py-{partition}-{i}".encode()
        key = f"key-{i}".encode()
        futures.append(producer.send(topic, value=value, key=key, partition=partition,
                                     headers=[("h", b"v"), ("e", b"")] if i == 0 else None))
        expected[partition].append((key, value))
    producer.flush(timeout=TIMEOUT_S)
    for future in futures:
        metadata = future.get(timeout=TIMEOUT_S)
        expect(metadata.offset >= 0, f"bad offset in {metadata}")
    first = futures[0].get(timeout=TIMEOUT_S)
    expect((first.topic, first.partition, first.offset) == (topic, 0, 0),
           f"first record metadata {first}")
    producer.close(timeout=TIMEOUT_S)

    step("end_offsets")
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="strata-e2e-consumer", consumer_timeout_ms=1000,
                             request_timeout_ms=TIMEOUT_S * 1000 + 5000)
    end_offsets = consumer.end_offsets(tps)
    expect(end_offsets == {tp: per_partition for tp in tps}, f"end_offsets = {end_offsets}")
    beginning_offsets = consumer.beginning_offsets(tps)
    expect(beginning_offsets == {tp: 0 for tp in tps}, f"beginning_offsets = {beginning_offsets}")

    step("KafkaConsumer assign + seek_to_beginning + poll")
    consumer.assign(tps)
    consumer.seek_to_beginning()
    received = {p: [] for p in range(partitions)}
    headers_of_first = None
    deadline = time.monotonic() + TIMEOUT_S
    total = partitions * per_partition
    while sum(len(v) for v in received.values()) < total:
        expect(time.monotonic() < deadline,
               f"consumed {sum(len(v) for v in received.values())} of {total} in {TIMEOUT_S}s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                expect(record.offset == len(received[tp.partition]),
                       f"partition {tp.partition}: offset {record.offset}, "
                       f"expected {len(received[tp.partition])}")
                received[tp.partition].append((record.key, record.value))
                if tp.partition == 0 and record.offset == 0:
                    headers_of_first = list(record.headers)
    for p in range(partitions):
        expect(received[p] == expected[p], f"partition {p}: records differ")
    expect(headers_of_first == [("h", b"v"), ("e", b"")], f"headers: {headers_of_first}")

    step("offsets_for_times")
    found = consumer.offsets_for_times({tp: 0 for tp in tps})
    for tp in tps:
        expect(found[tp] is not None and found[tp].offset == 0, f"offsets_for_times({tp}) = {found[tp]}")
    consumer.close()

    step("delete_topics")
    admin.delete_topics([topic], timeout_ms=TIMEOUT_S * 1000)
    deadline = time.monotonic() + TIMEOUT_S
    while topic in admin.list_topics():
        expect(time.monotonic() < deadline, f"{topic} still listed after delete_topics")
        time.sleep(0.1)
    admin.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
