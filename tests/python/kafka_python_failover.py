"""kafka-python through a leader failover on three Strata nodes.

Usage: python kafka_python_failover.py <bootstrap> <id>=<pid>,...   (driven by
tests/kafka_python.rs: the bootstrap lists the three nodes, the second argument maps
each broker id to its process id)

A replication-factor-3 topic; an acks=all producer and a consumer group that commits;
every broker reports its replica in DescribeLogDirs.
The partition's leader is killed (SIGKILL) halfway: the producer's next records go to
the new leader, the group goes on from where it committed and reads them, and commits
again.

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
"""

import os
import signal
import time

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.admin import NewTopic

from strata_test import TIMEOUT_S, admin_client, expect, group_member, run, step, subscribe


def leader_of(admin, topic):
    """The partition's leader, -1 while unknown: the broker asked may not have the new
    topic's metadata yet, and the admin client does not retry by itself (a request
    that went to the broker just killed fails; the next one goes to another)."""
    try:
        partitions = admin.describe_topics([topic])[0]["partitions"]
    except KafkaError:
        return -1
    return partitions[0]["leader_id"] if partitions else -1


def wait_for_leader(admin, topic, not_this=-1):
    """The partition's leader once there is one other than `not_this`."""
    deadline = time.time() + TIMEOUT_S
    leader = leader_of(admin, topic)
    while leader in (not_this, -1) and time.time() < deadline:
        time.sleep(0.2)
        leader = leader_of(admin, topic)
    expect(leader not in (not_this, -1), f"no leader other than {not_this}")
    return leader


def produce(producer, topic, values):
    futures = [producer.send(topic, value=v.encode(), partition=0) for v in values]
    producer.flush(timeout=TIMEOUT_S)
    acks = [f.get(timeout=TIMEOUT_S) for f in futures]
    expect(all(a.offset >= 0 for a in acks), f"acks: {acks}")


def read(consumer, count):
    seen = []
    deadline = time.time() + TIMEOUT_S
    while len(seen) < count and time.time() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            seen.extend(r.value.decode() for r in records)
    return seen


def main(bootstrap, pids):
    pid_of = {int(k): int(v) for k, v in (p.split("=") for p in pids.split(","))}
    topic = f"kafka-python-failover-{os.getpid()}"
    admin = admin_client(bootstrap)

    step("create_topics: one partition, replication factor 3")
    result = admin.create_topics([NewTopic(topic, 1, 3)], timeout_ms=TIMEOUT_S * 1000)
    expect(all(t.get("error_code", 0) == 0 for t in result["topics"]), f"{result}")
    wait_for_leader(admin, topic)

    step("produce 50 records with acks=all, a group reads and commits them")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", retries=20,
                             retry_backoff_ms=500, request_timeout_ms=TIMEOUT_S * 1000)
    before = [f"before-{i}" for i in range(50)]
    produce(producer, topic, before)
    consumer = group_member(bootstrap, f"{topic}-group", "reader")
    subscribe(consumer, [topic])
    seen = read(consumer, 50)
    expect(seen == before, f"read {len(seen)} of 50: {seen[:3]}...")
    consumer.commit()

    step("describe_log_dirs: every broker holds a replica with the records' bytes")
    sizes = {}
    for broker in admin.describe_log_dirs(topic_partitions=[topic]):
        for log_dir in broker["log_dirs"]:
            for t in log_dir["topics"]:
                for p in t["partitions"]:
                    if t["name"] == topic:
                        sizes[broker["broker"]] = p["partition_size"]
    expect(sorted(sizes) == [1, 2, 3] and min(sizes.values()) > 0, f"replica sizes: {sizes}")

    leader = wait_for_leader(admin, topic)
    step(f"kill -9 the leader, broker {leader}")
    os.kill(pid_of[leader], signal.SIGKILL)
    wait_for_leader(admin, topic, not_this=leader)

    step("the producer goes on with the new leader, the group reads on and commits")
    after = [f"after-{i}" for i in range(50)]
    produce(producer, topic, after)
    seen = read(consumer, 50)
    expect(seen == after, f"read {len(seen)} of 50 after the failover: {seen[:3]}...")
    consumer.commit()
    committed = consumer.committed(TopicPartition(topic, 0))
    expect(committed == 100, f"committed offset {committed}")
    consumer.close()
    producer.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
