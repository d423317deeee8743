"""kafka-python's group admin calls against a Strata broker: OffsetDelete and DeleteGroups.

Usage: python kafka_python_group_admin.py <bootstrap>   (driven by tests/kafka_python.rs)

A group has committed offsets on two topics and one active member subscribed to the
first. KafkaAdminClient.delete_group_offsets may delete the offsets of the topic no
member subscribes to, but answers GROUP_SUBSCRIBED_TO_TOPIC for the subscribed one until
the member leaves; delete_groups answers NON_EMPTY_GROUP while the member is there,
GROUP_ID_NOT_FOUND for a group that does not exist, and deletes the empty group with
its offsets.

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
Each step prints one line so a failure shows how far the script got.
"""

import os
import time

import kafka.errors as Errors
from kafka import KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from strata_test import (TIMEOUT_S, admin_client, create_topics, expect, group_member, run,
                         step, subscribe)


def committed_offsets(admin, group):
    """{(topic, partition): offset} of everything `group` has committed."""
    offsets = admin.list_group_offsets({group: None})[group]
    return {(tp.topic, tp.partition): oam.offset for tp, oam in offsets.items()}


def first_offset_of_each(consumer, partitions):
    """Polls until records of `partitions` partitions arrived; returns
    {partition: offset of the first record read from it}."""
    first_offsets = {}
    deadline = time.monotonic() + TIMEOUT_S
    while len(first_offsets) < partitions:
        expect(time.monotonic() < deadline, f"first records in {TIMEOUT_S}s: {first_offsets}")
        for tp, records in consumer.poll(timeout_ms=200).items():
            if records:
                first_offsets.setdefault(tp.partition, records[0].offset)
    return first_offsets


def main(bootstrap):
    subscribed = f"kafka-python-subscribed-{os.getpid()}"
    other = f"kafka-python-other-{os.getpid()}"
    group = f"kafka-python-admin-group-{os.getpid()}"
    missing_group = f"kafka-python-no-such-group-{os.getpid()}"

    admin = admin_client(bootstrap)
    step(f"create_topics {subscribed} (2 partitions) and {other} (1 partition)")
    create_topics(admin, {subscribed: 2, other: 1})

    step("produce 10 records to each partition")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all",
                             enable_idempotence=False, request_timeout_ms=30000)
    for topic, partition in [(subscribed, 0), (subscribed, 1), (other, 0)]:
        for i in range(10):
            producer.send(topic, value=f"{topic}-{partition}-{i}".encode(), partition=partition)
    producer.flush(timeout=TIMEOUT_S)
    producer.close(timeout=TIMEOUT_S)

    step("alter_group_offsets on the empty group: commit 4, 6 and 8")
    committed = {(subscribed, 0): 4, (subscribed, 1): 6, (other, 0): 8}
    result = admin.alter_group_offsets(
        group, {TopicPartition(t, p): OffsetAndMetadata(o, "", None)
                for (t, p), o in committed.items()})
    expect(all(error is Errors.NoError for error in result.values()),
           f"alter_group_offsets: {result}")
    expect(committed_offsets(admin, group) == committed,
           f"committed offsets: {committed_offsets(admin, group)}")

    step(f"a member subscribed to {subscribed} joins and resumes at the committed offsets")
    consumer = group_member(bootstrap, group, "strata-e2e-member")
    subscribe(consumer, [subscribed])
    first_offsets = first_offset_of_each(consumer, 2)
    expect(first_offsets == {0: 4, 1: 6}, f"first offsets read: {first_offsets}")
    expect(admin.describe_groups([group])[group]["group_state"] == "Stable",
           f"group: {admin.describe_groups([group])}")

    step("delete_group_offsets while the member is active")
    result = admin.delete_group_offsets(group, [TopicPartition(subscribed, 0)])
    expect(result == {TopicPartition(subscribed, 0): Errors.GroupSubscribedToTopicError},
           f"deleting an offset of a subscribed topic: {result}")
    result = admin.delete_group_offsets(group, [TopicPartition(other, 0)])
    expect(result == {TopicPartition(other, 0): Errors.NoError},
           f"deleting an offset of a topic no member subscribes to: {result}")
    expect(committed_offsets(admin, group) == {(subscribed, 0): 4, (subscribed, 1): 6},
           f"committed offsets after OffsetDelete: {committed_offsets(admin, group)}")

    step("delete_groups while the member is active: NON_EMPTY_GROUP")
    result = admin.delete_groups([group])
    expect(result == {group: "NonEmptyGroupError"}, f"delete_groups: {result}")
    expect(committed_offsets(admin, group) == {(subscribed, 0): 4, (subscribed, 1): 6},
           f"a refused DeleteGroups must keep the offsets: {committed_offsets(admin, group)}")

    step("the member leaves; its topic's offsets can be deleted now")
    consumer.close()
    expect(admin.describe_groups([group])[group]["group_state"] == "Empty",
           f"group after close: {admin.describe_groups([group])}")
    result = admin.delete_group_offsets(
        group, [TopicPartition(subscribed, 0), TopicPartition(other, 0)])
    # other-0 has no committed offset any more: deleting nothing is not an error.
    expect(result == {TopicPartition(subscribed, 0): Errors.NoError,
                      TopicPartition(other, 0): Errors.NoError},
           f"delete_group_offsets on the empty group: {result}")
    expect(committed_offsets(admin, group) == {(subscribed, 1): 6},
           f"committed offsets: {committed_offsets(admin, group)}")

    step("delete_group_offsets of a group that does not exist: GROUP_ID_NOT_FOUND")
    try:
        result = admin.delete_group_offsets(missing_group, [TopicPartition(subscribed, 0)])
        raise AssertionError(f"delete_group_offsets of {missing_group} returned {result}")
    except Errors.GroupIdNotFoundError:
        pass

    step("delete_groups: the empty group goes, with its offsets; the unknown one is not found")
    result = admin.delete_groups([group, missing_group])
    expect(result == {group: "OK", missing_group: "GroupIdNotFoundError"},
           f"delete_groups: {result}")
    expect(committed_offsets(admin, group) == {},
           f"offsets of the deleted group: {committed_offsets(admin, group)}")
    listed = [g["group_id"] for g in admin.list_groups()]
    expect(group not in listed, f"the deleted group is still listed: {listed}")
    result = admin.delete_groups([group])
    expect(result == {group: "GroupIdNotFoundError"}, f"deleting it again: {result}")

    step("a new member of the deleted group starts from auto_offset_reset")
    consumer = group_member(bootstrap, group, "strata-e2e-member-after-delete")
    expect(consumer.committed(TopicPartition(subscribed, 1)) is None,
           f"committed after delete: {consumer.committed(TopicPartition(subscribed, 1))}")
    subscribe(consumer, [subscribed])
    first_offsets = first_offset_of_each(consumer, 2)
    expect(first_offsets == {0: 0, 1: 0}, f"first offsets read after delete: {first_offsets}")
    consumer.close()

    step("delete_topics")
    admin.delete_topics([subscribed, other], timeout_ms=TIMEOUT_S * 1000)
    admin.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
