//! kafka-python (pinned in tools/test.sh) against a real broker: the script in
//! tests/python/ does the checks; this test starts the broker and runs it.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// The interpreter of the venv that tools/test.sh prepares: `$STRATA_PYTHON`, or
/// `<repo>/.venv/bin/python`.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("STRATA_PYTHON") {
        return PathBuf::from(python);
    }
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "no Python for the kafka-python tests: set STRATA_PYTHON or run tools/test.sh, \
         which creates {} with kafka-python installed",
        python.display()
    );
    python
}

/// Runs a script against `bootstrap`. Each step of a script has its own
/// deadline (`TIMEOUT_S` in tests/python/strata_test.py); the whole run gets a
/// few of them, so that a stuck step fails with the script's own diagnosis
/// rather than being killed.
fn run_script(script: &str, bootstrap: &str) {
    run_script_with(script, bootstrap, &[]);
}

/// [`run_script`] with more arguments after the bootstrap.
fn run_script_with(script: &str, bootstrap: &str, args: &[&str]) {
    let path = repo_root().join("tests/python").join(script);
    let output = run_command_within(
        Command::new(python())
            .arg(&path)
            .arg(bootstrap)
            .args(args)
            .env("PYTHONUNBUFFERED", "1"),
        b"",
        TIMEOUT * 4,
    );
    assert!(
        output.status.success(),
        "{} failed against {bootstrap}\n{}",
        path.display(),
        output.describe()
    );
    assert!(
        output.stdout.contains("all checks passed"),
        "{} did not finish its checks\n{}",
        path.display(),
        output.describe()
    );
}

#[test]
fn kafka_python_admin_produce_consume_offsets_configs() {
    let broker = Broker::start(&[]);
    run_script("kafka_python_smoke.py", &broker.bootstrap());
}

#[test]
fn kafka_python_default_idempotent_producer() {
    let broker = Broker::start(&[]);
    run_script("kafka_python_default_producer.py", &broker.bootstrap());
}

/// No initial-rebalance delay, so the first member usually forms a generation alone
/// and the second one's join rebalances it (the script also passes with the 3 s
/// default, where both usually land in the first generation; it only waits longer).
#[test]
fn kafka_python_consumer_group_split_commit_resume_describe() {
    let broker = Broker::start(&["group.initial.rebalance.delay.ms=0"]);
    run_script("kafka_python_groups.py", &broker.bootstrap());
}

#[test]
fn kafka_python_offset_delete_and_delete_groups() {
    let broker = Broker::start(&["group.initial.rebalance.delay.ms=0"]);
    run_script("kafka_python_group_admin.py", &broker.bootstrap());
}

/// The cluster as kafka-python's admin client sees a single node: DescribeQuorum,
/// DescribeCluster with the rack, partition leaders, a dynamic broker config.
#[test]
fn kafka_python_cluster_quorum_rack_leaders_and_dynamic_broker_config() {
    let broker = Broker::start(&["node.id=1", "broker.rack=rack-a"]);
    run_script("kafka_python_cluster.py", &broker.bootstrap());
}

/// kafka-python against three combined nodes: the cluster and quorum it
/// describes, partitions led by every broker, and a group reading them all.
#[test]
fn kafka_python_produces_to_and_consumes_from_three_nodes() {
    let brokers = Broker::start_together(&cluster_settings(3));
    run_script("kafka_python_three_nodes.py", &brokers[0].bootstrap());
}

/// kafka-python through a leader failover: the script kills the leader of a
/// replication-factor-3 partition between two rounds of acks=all produce and
/// group consume-and-commit; both go on with the new leader.
#[test]
fn kafka_python_produces_and_consumes_through_a_leader_failover() {
    let brokers = Broker::start_together(&common::cluster::with_fast_fencing(cluster_settings(3)));
    let bootstrap: Vec<String> = brokers.iter().map(Broker::bootstrap).collect();
    let pids: Vec<String> = brokers
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{}={}", i + 1, b.pid()))
        .collect();
    run_script_with(
        "kafka_python_failover.py",
        &bootstrap.join(","),
        &[&pids.join(",")],
    );
}
