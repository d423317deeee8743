"""kafka-python against a cluster of three Strata nodes.

Usage: python kafka_python_three_nodes.py <bootstrap>   (driven by tests/kafka_python.rs;
the bootstrap is one node of three combined nodes with ids 1, 2 and 3)

The cluster as the admin client sees it (three brokers, a quorum of three voters), a
topic whose partitions are led by all three, records produced to every partition's
leader, and a consumer group that reads every one of them back.

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
"""

import os
import time

from kafka import KafkaProducer

from strata_test import (TIMEOUT_S, admin_client, create_topics, expect, group_member,
                         run, step, subscribe)


def main(bootstrap):
    topic = f"kafka-python-three-{os.getpid()}"
    admin = admin_client(bootstrap)

    step("describe_cluster: three brokers")
    brokers = admin.describe_cluster()["brokers"]
    expect(sorted(b["broker_id"] for b in brokers) == [1, 2, 3], f"brokers: {brokers}")

    step("describe_metadata_quorum: three voters, one leader")
    partition = admin.describe_metadata_quorum()["topics"][0]["partitions"][0]
    voters = sorted(v["replica_id"] for v in partition["current_voters"])
    expect(voters == [1, 2, 3], f"voters: {partition}")
    expect(partition["leader_id"] in voters, f"leader: {partition}")

    step("create_topics: 6 partitions, led by all three brokers")
    create_topics(admin, {topic: 6})
    leaders = {}
    deadline = time.time() + TIMEOUT_S
    while len(leaders) < 6 and time.time() < deadline:
        described = admin.describe_topics([topic])[0]
        leaders = {p["partition_index"]: p["leader_id"] for p in described["partitions"]}
        time.sleep(0.1)
    expect(sorted(set(leaders.values())) == [1, 2, 3], f"leaders: {leaders}")

    step("produce 60 records, 10 to each partition's leader")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             request_timeout_ms=TIMEOUT_S * 1000)
    futures = [producer.send(topic, value=f"r{i}".encode(), partition=i % 6)
               for i in range(60)]
    producer.flush(timeout=TIMEOUT_S)
    offsets = [f.get(timeout=TIMEOUT_S) for f in futures]
    expect(all(m.offset >= 0 for m in offsets), f"acks: {offsets}")
    producer.close()

    step("a consumer group reads all 60 back")
    consumer = group_member(bootstrap, f"{topic}-group", "reader")
    subscribe(consumer, [topic])
    seen = set()
    deadline = time.time() + TIMEOUT_S
    while len(seen) < 60 and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.update(r.value.decode() for r in records)
    expect(seen == {f"r{i}" for i in range(60)}, f"read {len(seen)} of 60")
    consumer.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
