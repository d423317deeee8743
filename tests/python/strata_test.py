"""What every kafka-python script in this folder shares: the timeout, step and check
reporting, the admin client, topic creation, a group member's settings and the entry
point that takes the bootstrap address.

The scripts run as `python tests/python/<script>.py <bootstrap>` (tests/kafka_python.rs),
so Python puts this folder on sys.path and `import strata_test` finds this file.
"""

import sys

import kafka
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

TIMEOUT_S = 60


def step(message):
    """Prints one line per step, so a failure shows how far the script got."""
    print(f"[kafka-python {kafka.__version__}] {message}", flush=True)


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="strata-e2e-admin",
                            request_timeout_ms=TIMEOUT_S * 1000)


def create_topics(admin, partitions_by_topic, configs=None):
    """Creates each topic with its number of partitions (replication factor 1, and
    `configs` when given), waits for their metadata and fails on any error."""
    specs = {}
    for topic, partitions in partitions_by_topic.items():
        specs[topic] = {"num_partitions": partitions, "replication_factor": 1}
        if configs is not None:
            specs[topic]["configs"] = configs
    result = admin.create_topics(specs, timeout_ms=TIMEOUT_S * 1000, wait_for_metadata=True)
    errors = [t for t in result["topics"] if t.get("error_code", 0) != 0]
    expect(not errors, f"create_topics errors: {result}")


def group_member(bootstrap, group, client_id):
    """A KafkaConsumer in `group`, not yet subscribed, that commits only when told to
    and starts from the earliest offset where the group has none."""
    return KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                         client_id=client_id, enable_auto_commit=False,
                         auto_offset_reset="earliest",
                         request_timeout_ms=TIMEOUT_S * 1000 + 5000)


def subscribe(consumer, topics, listener=None):
    """Subscribes `consumer` to `topics` and waits for their partitions to be in its
    metadata before the first poll() joins the group.

    kafka-python 3.0.12 loses a rejoin that the consumer starts by itself: when the
    group leader's first assignment saw no partitions of a topic (its metadata had not
    arrived yet), the metadata that arrives next makes it rejoin; performing the new
    assignment clears that reason (`_assignment_snapshot = _metadata_snapshot`) while
    `rejoin_needed` stays False, so if the poll() that started the rejoin times out
    before the SyncGroup answer, the next poll() never collects the finished join. The
    consumer then keeps no partitions and sends no heartbeat until its session expires
    (seen against Strata with the broker answering every request in ~2 ms; Kafka would
    see the same). Waiting for the metadata first means no such rejoin is ever needed;
    rejoins the coordinator asks for (REBALANCE_IN_PROGRESS) set `rejoin_needed` and
    are not affected.
    """
    if listener is None:
        consumer.subscribe(topics)
    else:
        consumer.subscribe(topics, listener=listener)
    # topics() is a blocking metadata request; its answer updates the coordinator's
    # snapshot of the subscribed topics' partitions.
    known = consumer.topics()
    expect(set(topics) <= known, f"subscribed topics {topics} missing from metadata {known}")


def run(main):
    """Runs `main(bootstrap, ...)` with the script's arguments (the bootstrap first)."""
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} <bootstrap> [...]")
    main(*sys.argv[1:])
