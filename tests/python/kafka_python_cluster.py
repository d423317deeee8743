"""kafka-python's view of a Strata node's cluster metadata.

Usage: python kafka_python_cluster.py <bootstrap>   (driven by tests/kafka_python.rs, with
node.id=1 and broker.rack=rack-a)

The metadata quorum (DescribeQuorum: this node leads a quorum of one), the cluster
(DescribeCluster: the registered broker with its rack, the controller), a topic's
partitions led by the broker, and a dynamic broker config that reaches a topic without
an override, as `kafka-configs.sh --entity-type brokers --alter` would set it.

Exits 0 when every check passed; otherwise raises, which prints a traceback and exits 1.
"""

import os

from kafka.admin import ConfigResource

from strata_test import admin_client, create_topics, expect, run, step


def main(bootstrap):
    topic = f"kafka-python-cluster-{os.getpid()}"
    admin = admin_client(bootstrap)

    step("describe_metadata_quorum: this node leads a quorum of one")
    quorum = admin.describe_metadata_quorum()
    partition = quorum["topics"][0]["partitions"][0]
    expect(quorum["topics"][0]["topic_name"] == "__cluster_metadata", f"quorum: {quorum}")
    expect(partition["error"] is None and partition["leader_id"] == 1, f"quorum: {quorum}")
    expect(partition["high_watermark"] >= 1, f"the registration is in the log: {quorum}")
    voters = partition["current_voters"]
    expect([v["replica_id"] for v in voters] == [1], f"voters: {voters}")
    expect(voters[0]["log_end_offset"] == partition["high_watermark"], f"voters: {voters}")

    step("describe_cluster: the registered broker with its rack")
    cluster = admin.describe_cluster()
    expect(cluster["controller_id"] == 1, f"cluster: {cluster}")
    brokers = cluster["brokers"]
    expect(len(brokers) == 1 and brokers[0]["broker_id"] == 1, f"brokers: {brokers}")
    expect(brokers[0]["rack"] == "rack-a", f"rack: {brokers}")
    expect(f"{brokers[0]['host']}:{brokers[0]['port']}" == bootstrap, f"endpoint: {brokers}")

    step(f"create_topics {topic}: every partition led by broker 1")
    create_topics(admin, {topic: 3})
    described = admin.describe_topics([topic])
    partitions = described[0]["partitions"]
    expect(len(partitions) == 3, f"partitions: {described}")
    for p in partitions:
        expect(p["leader_id"] == 1 and p["replica_nodes"] == [1] and p["isr_nodes"] == [1],
               f"partition: {p}")

    step("incremental alter_configs on broker 1: log.retention.ms, dynamically")
    result = admin.alter_configs(
        [ConfigResource("BROKER", "1", configs={"log.retention.ms": "60000"})], incremental=True)
    expect(result == {"broker": {"1": "OK"}}, f"alter_configs: {result}")
    broker_configs = admin.describe_configs([ConfigResource("BROKER", "1")], config_filter="all")
    retention = broker_configs["broker"]["1"]["log.retention.ms"]
    expect(retention["value"] == "60000", f"log.retention.ms: {retention}")
    expect(retention["config_source"] == "DYNAMIC_BROKER_CONFIG", f"source: {retention}")
    expect(retention["read_only"] is False, f"a dynamic config is not read-only: {retention}")
    topic_configs = admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
    topic_retention = topic_configs["topic"][topic]["retention.ms"]
    expect(topic_retention["value"] == "60000", f"the topic follows: {topic_retention}")
    expect(topic_retention["config_source"] == "DYNAMIC_BROKER_CONFIG",
           f"source: {topic_retention}")

    admin.delete_topics([topic])
    admin.close()
    step("all checks passed")


if __name__ == "__main__":
    run(main)
