"""kafka-python consumer groups against a Strata broker.

Usage: python kafka_python_groups.py <bootstrap>   (driven by tests/kafka_python.rs)

Two KafkaConsumers in one group share a 4-partition topic (two partitions each), read
every record exactly once between them and commit synchronously; a later consumer of
the same group resumes exactly at the committed offsets. KafkaAdminClient lists and
describes the group (Stable with its members while consumers are active, Empty after
they closed) and fetches its committed offsets.

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
Each step prints one line so a failure shows how far the script got.
"""

import os
import time

from kafka import ConsumerRebalanceListener, KafkaProducer, TopicPartition

from strata_test import (TIMEOUT_S, admin_client, create_topics, expect, group_member, run,
                         step, subscribe)

PARTITIONS = 4
KEYS = 20


def produce(bootstrap, topic, phase, count):
    """Sends `count` keyed records `<phase>-<i>` (key `key-<i % KEYS>`, so the default
    partitioner spreads them) and returns {partition: [(offset, value), ...]}."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             enable_idempotence=False, request_timeout_ms=30000,
                             client_id=f"strata-e2e-producer-{phase}")
    futures = []
    for i in range(count):
        value = f"{phase}-{i}".encode()
        futures.append((value, producer.send(topic, key=f"key-{i % KEYS}".encode(), value=value)))
    producer.flush(timeout=TIMEOUT_S)
    written = {p: [] for p in range(PARTITIONS)}
    for value, future in futures:
        metadata = future.get(timeout=TIMEOUT_S)
        written[metadata.partition].append((metadata.offset, value))
    producer.close(timeout=TIMEOUT_S)
    for partition in range(PARTITIONS):
        expect(written[partition], f"{phase}: no record went to partition {partition}; "
               "pick keys that cover every partition")
    return written


class PauseOnAssignment(ConsumerRebalanceListener):
    """Pauses every partition the consumer is assigned, so it reads nothing until
    the test resumes it."""

    def __init__(self):
        self.consumer = None

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self.consumer.pause(*assigned)


def group_consumer(bootstrap, group, topic, client_id, pause_on_assignment=False):
    consumer = group_member(bootstrap, group, client_id)
    listener = None
    if pause_on_assignment:
        listener = PauseOnAssignment()
        listener.consumer = consumer
    subscribe(consumer, [topic], listener)
    return consumer


def partitions_of(consumer):
    return sorted(tp.partition for tp in consumer.assignment())


def poll_into(consumer, received, timeout_ms=200):
    """Polls once and appends (partition, offset, value) of each record to `received`."""
    for tp, records in consumer.poll(timeout_ms=timeout_ms).items():
        for record in records:
            received.append((tp.partition, record.offset, record.value))


def describe(admin, group):
    described = admin.describe_groups([group])
    expect(group in described, f"describe_groups did not answer for {group}: {described}")
    description = described[group]
    expect(description["error"] is None, f"describe_groups error for {group}: {description}")
    return description


def assigned_partitions(member, topic):
    """The partitions of `topic` in a described member's (decoded) assignment."""
    assignment = member["member_assignment"]
    expect(isinstance(assignment, dict), f"member assignment not decoded: {member}")
    return sorted(p for t in assignment["assigned_partitions"] if t["topic"] == topic
                  for p in t["partitions"])


def main(bootstrap):
    topic = f"kafka-python-groups-{os.getpid()}"
    group = f"kafka-python-group-{os.getpid()}"
    tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]

    admin = admin_client(bootstrap)
    step(f"create_topics {topic} with {PARTITIONS} partitions")
    create_topics(admin, {topic: PARTITIONS})

    step("produce 200 keyed records")
    first = produce(bootstrap, topic, "first", 200)
    end_after_first = {p: len(first[p]) for p in range(PARTITIONS)}

    # The two consumers settle on a 2+2 split before either reads a record: each
    # pauses whatever it is assigned until then (nothing is committed yet, so a record
    # read in a generation that a rebalance replaces would be read again). poll()
    # returns within its timeout even while a JoinGroup is pending, so one thread can
    # drive both members.
    step("two consumers join the group and split the partitions 2+2")
    consumers = [group_consumer(bootstrap, group, topic, f"strata-e2e-member-{i}",
                                pause_on_assignment=True)
                 for i in range(2)]
    received = [[], []]
    deadline = time.monotonic() + TIMEOUT_S
    while not all(len(partitions_of(c)) == 2 for c in consumers):
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"no 2+2 split in {TIMEOUT_S}s: {[partitions_of(c) for c in consumers]}; "
                f"the broker describes the group as {admin.describe_groups([group])}")
        for i, consumer in enumerate(consumers):
            poll_into(consumer, received[i])
    expect(received == [[], []], f"records read while paused: {received}")
    split = [partitions_of(c) for c in consumers]
    expect(sorted(split[0] + split[1]) == list(range(PARTITIONS)),
           f"the members' partitions overlap or miss some: {split}")

    step("describe_groups while both members are active: Stable, two members")
    description = describe(admin, group)
    expect(description["group_state"] == "Stable", f"state: {description}")
    expect(description["protocol_type"] == "consumer", f"protocol type: {description}")
    expect(description["protocol_data"] == "range",
           f"protocol (kafka-python prefers range): {description}")
    members = {m["client_id"]: m for m in description["members"]}
    expect(sorted(members) == ["strata-e2e-member-0", "strata-e2e-member-1"],
           f"members: {description['members']}")
    for i in range(2):
        member = members[f"strata-e2e-member-{i}"]
        expect(member["member_id"], f"empty member id: {member}")
        expect(member["client_host"] == "/127.0.0.1", f"client host: {member}")
        expect(assigned_partitions(member, topic) == split[i],
               f"described assignment of member {i}: {member}, the consumer has {split[i]}")
        subscription = member["member_metadata"]
        expect(isinstance(subscription, dict) and subscription["topics"] == [topic],
               f"described subscription of member {i}: {member}")

    step("list_groups includes the group")
    listed = [g for g in admin.list_groups() if g["group_id"] == group]
    expect(len(listed) == 1, f"list_groups: {admin.list_groups()}")
    expect(listed[0]["protocol_type"] == "consumer", f"listed group: {listed[0]}")
    if "group_state" in listed[0]:  # ListGroups v4+
        expect(listed[0]["group_state"] == "Stable", f"listed group: {listed[0]}")

    step("both members consume the 200 records, exactly once between them")
    for consumer in consumers:
        consumer.resume(*consumer.assignment())
    deadline = time.monotonic() + TIMEOUT_S
    while len(received[0]) + len(received[1]) < 200:
        expect(time.monotonic() < deadline,
               f"consumed {len(received[0])}+{len(received[1])} of 200 in {TIMEOUT_S}s")
        for i, consumer in enumerate(consumers):
            poll_into(consumer, received[i])
    for i in range(2):
        expect(partitions_of(consumers[i]) == split[i],
               f"member {i} was reassigned while consuming: {partitions_of(consumers[i])}")
        expect({p for p, _, _ in received[i]} <= set(split[i]),
               f"member {i} read partitions {sorted({p for p, _, _ in received[i]})}, "
               f"assigned {split[i]}")
    for partition in range(PARTITIONS):
        got = sorted((o, v) for r in received for p, o, v in r if p == partition)
        expect(got == first[partition],
               f"partition {partition}: read {len(got)} records, wrote {len(first[partition])}, "
               "or they differ")

    step("commit synchronously, then list_group_offsets shows the end offsets")
    for consumer in consumers:
        consumer.commit()
    for i, consumer in enumerate(consumers):
        for partition in split[i]:
            committed = consumer.committed(TopicPartition(topic, partition))
            expect(committed == end_after_first[partition],
                   f"committed({partition}) = {committed}, expected {end_after_first[partition]}")
    offsets = admin.list_group_offsets({group: None})[group]
    expect({tp: oam.offset for tp, oam in offsets.items()}
           == {TopicPartition(topic, p): end_after_first[p] for p in range(PARTITIONS)},
           f"list_group_offsets: {offsets}")

    step("close both members; the group is Empty")
    for consumer in consumers:
        consumer.close()
    description = describe(admin, group)
    expect(description["group_state"] == "Empty", f"state after close: {description}")
    expect(description["members"] == [], f"members after close: {description}")
    listed = [g for g in admin.list_groups() if g["group_id"] == group]
    expect(len(listed) == 1, f"list_groups after close: {admin.list_groups()}")

    step("produce 100 more; a new member resumes at the committed offsets")
    second = produce(bootstrap, topic, "second", 100)
    for partition in range(PARTITIONS):
        expect(second[partition][0][0] == end_after_first[partition],
               f"partition {partition}: second batch starts at {second[partition][0][0]}")
    consumer = group_consumer(bootstrap, group, topic, "strata-e2e-member-2")
    resumed = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(resumed) < 100:
        expect(time.monotonic() < deadline, f"consumed {len(resumed)} of 100 in {TIMEOUT_S}s")
        poll_into(consumer, resumed)
    expect(partitions_of(consumer) == list(range(PARTITIONS)),
           f"the only member holds {partitions_of(consumer)}")
    # A few more polls: nothing beyond the 100 new records may arrive.
    for _ in range(5):
        poll_into(consumer, resumed)
    expect(len(resumed) == 100, f"read {len(resumed)} records, expected exactly 100")
    for partition in range(PARTITIONS):
        got = [(o, v) for p, o, v in resumed if p == partition]
        expect(got and got[0][0] == end_after_first[partition],
               f"partition {partition}: first offset read {got[:1]}, "
               f"committed {end_after_first[partition]}")
        expect(got == second[partition], f"partition {partition}: records differ")

    step("describe_groups with one active member")
    description = describe(admin, group)
    expect(description["group_state"] == "Stable", f"state: {description}")
    expect([m["client_id"] for m in description["members"]] == ["strata-e2e-member-2"],
           f"members: {description['members']}")
    expect(assigned_partitions(description["members"][0], topic) == list(range(PARTITIONS)),
           f"described assignment: {description['members'][0]}")

    step("commit, close, and check the committed offsets through the admin client")
    consumer.commit()
    consumer.close()
    expect(describe(admin, group)["group_state"] == "Empty", "state after the last close")
    offsets = admin.list_group_offsets({group: tps})[group]
    expect({tp: oam.offset for tp, oam in offsets.items()}
           == {TopicPartition(topic, p): end_after_first[p] + len(second[p])
               for p in range(PARTITIONS)},
           f"list_group_offsets after the second commit: {offsets}")

    step("delete_topics")
    admin.delete_topics([topic], timeout_ms=TIMEOUT_S * 1000)
    admin.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
