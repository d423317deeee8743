"""kafka-python's KafkaProducer with its defaults (idempotent since kafka-python 3 /
KIP-679: InitProducerId, sequence numbers, acks=all), read back by a KafkaConsumer.

Usage: python kafka_python_default_producer.py <bootstrap>   (driven by tests/kafka_python.rs)
"""

import os
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from strata_test import TIMEOUT_S, expect, run, step


def main(bootstrap):
    topic = f"kafka-python-default-{os.getpid()}"  # auto-created by the first send
    count = 300

    step("KafkaProducer() with default config (idempotent) send + flush")
    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="strata-e2e-default-producer")
    futures = [producer.send(topic, value=f"v{i}".encode(), partition=0) for i in range(count)]
    producer.flush(timeout=TIMEOUT_S)
    offsets = [future.get(timeout=TIMEOUT_S).offset for future in futures]
    expect(offsets == list(range(count)), f"offsets {offsets[:5]}...")
    producer.close(timeout=TIMEOUT_S)

    step("consume back")
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             client_id="strata-e2e-consumer")
    consumer.assign([tp])
    consumer.seek_to_beginning()
    values = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(values) < count:
        expect(time.monotonic() < deadline, f"consumed {len(values)} of {count} in {TIMEOUT_S}s")
        for records in consumer.poll(timeout_ms=500).values():
            values.extend(record.value for record in records)
    expect(values == [f"v{i}".encode() for i in range(count)], "values differ")
    consumer.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
