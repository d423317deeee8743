//! The `strata topic` and `strata cluster` commands, run as the real binary against
//! a real broker: what they print on stdout, their exit codes, and the one-line
//! errors for an unreachable broker, an unknown topic, invalid partition counts and
//! invalid config values. What the commands create is cross-checked with librdkafka.

mod common;

use std::process::Command;

use common::cli::*;
use common::*;

#[test]
fn cluster_info_shows_id_controller_and_brokers() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let stdout = success(strata(&bootstrap, &["cluster", "info"]));
    let (host, port) = bootstrap.rsplit_once(':').expect("HOST:PORT");
    let table = cells(&stdout);
    assert_eq!(table[0][..2], row(&["cluster", "id:"]), "{stdout}");
    assert_eq!(table[0].len(), 3, "a cluster id: {stdout}");
    assert_eq!(table[1], row(&["controller:", "1"]), "{stdout}");
    assert_eq!(table[2], row(&["brokers:", "1"]), "{stdout}");
    assert!(table[3].is_empty(), "{stdout}");
    assert_eq!(
        table[4],
        row(&["BROKER", "HOST", "PORT", "RACK", "FENCED"]),
        "{stdout}"
    );
    assert_eq!(table[5], row(&["1", host, port, "-", "no"]), "{stdout}");
    // The metadata quorum (DescribeQuorum): this node leads a quorum of one.
    assert!(table[6].is_empty(), "{stdout}");
    assert_eq!(table[7], row(&["quorum", "leader:", "1"]), "{stdout}");
    // The epoch is the Raft term: 1 for a node that elected itself once.
    assert_eq!(table[8], row(&["leader", "epoch:", "1"]), "{stdout}");
    assert_eq!(table[9][..2], row(&["high", "watermark:"]), "{stdout}");
    let high_watermark: i64 = table[9][2].parse().expect("a number");
    assert!(high_watermark >= 1, "{stdout}");
    assert_eq!(
        table[11],
        row(&["VOTER", "LOG-END-OFFSET", "LAG"]),
        "{stdout}"
    );
    assert_eq!(
        table[12],
        row(&["1", &high_watermark.to_string(), "0"]),
        "{stdout}"
    );
    assert_eq!(table.len(), 13, "{stdout}");
}

/// The broker registers itself in the metadata log at every start: its id
/// and rack come from `node.id` and `broker.rack`, and a restart on another
/// port replaces the registration rather than adding a second broker.
#[test]
fn cluster_info_shows_the_registered_broker_with_its_rack_after_a_restart() {
    let mut broker = Broker::start(&["node.id=7", "broker.rack=rack-a"]);
    let topic = unique_topic("placed");
    success(strata(
        &broker.bootstrap(),
        &["topic", "create", &topic, "--partitions", "2"],
    ));
    broker.stop_sigterm();
    broker.restart();
    let bootstrap = broker.bootstrap();
    let stdout = success(strata(&bootstrap, &["cluster", "info"]));
    let (host, port) = bootstrap.rsplit_once(':').expect("HOST:PORT");
    let table = cells(&stdout);
    assert_eq!(table[1], row(&["controller:", "7"]), "{stdout}");
    assert_eq!(table[2], row(&["brokers:", "1"]), "{stdout}");
    assert_eq!(
        table[5],
        row(&["7", host, port, "rack-a", "no"]),
        "{stdout}"
    );
    // The partitions are led by the registered broker.
    let client: rdkafka::consumer::BaseConsumer =
        client_config(&bootstrap).create().expect("client");
    let metadata = client
        .fetch_metadata(Some(&topic), TIMEOUT)
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 2);
    for partition in partitions {
        assert_eq!(partition.leader(), 7);
        assert_eq!(partition.replicas(), &[7]);
        assert_eq!(partition.isr(), &[7]);
    }
}

#[test]
fn topic_lifecycle_create_list_describe_alter_grow_delete() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let orders = unique_topic("orders");
    let events = unique_topic("events");

    assert_eq!(
        success(strata(&bootstrap, &["topic", "list"])),
        "no topics\n"
    );
    let stdout = success(strata(
        &bootstrap,
        &[
            "topic",
            "create",
            &orders,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=86400000",
            "--config",
            "cleanup.policy=compact",
        ],
    ));
    assert_eq!(
        stdout,
        format!("created topic {orders} (partitions: 3, replication factor: 1)\n")
    );
    // A librdkafka client sees what the command created.
    wait_for_topic(&bootstrap, &orders, 3);
    // Without --partitions the broker's num.partitions (1) applies.
    assert_eq!(
        success(strata(&bootstrap, &["topic", "create", &events])),
        format!("created topic {events} (partitions: 1, replication factor: 1)\n")
    );

    let table = cells(&success(strata(&bootstrap, &["topic", "list"])));
    let mut expected = vec![row(&[&events, "1", "1"]), row(&[&orders, "3", "1"])];
    expected.sort();
    expected.insert(0, row(&["TOPIC", "PARTITIONS", "REPLICATION"]));
    assert_eq!(table, expected);

    let stdout = success(strata(&bootstrap, &["topic", "describe", &orders]));
    let table = cells(&stdout);
    assert_eq!(table[0], row(&["topic:", &orders]), "{stdout}");
    assert_eq!(table[1][..2], row(&["topic", "id:"]), "{stdout}");
    assert_eq!(table[2], row(&["partitions:", "3"]), "{stdout}");
    assert_eq!(table[3], row(&["replication", "factor:", "1"]), "{stdout}");
    assert_eq!(
        table[5..],
        [
            row(&["PARTITION", "LEADER", "REPLICAS", "ISR", "STATUS"]),
            row(&["0", "1", "1", "1", "in-sync"]),
            row(&["1", "1", "1", "1", "in-sync"]),
            row(&["2", "1", "1", "1", "in-sync"]),
            vec![],
            row(&["CONFIG", "VALUE"]),
            row(&["cleanup.policy", "compact"]),
            row(&["retention.ms", "86400000"]),
        ],
        "{stdout}"
    );

    let stdout = success(strata(
        &bootstrap,
        &[
            "topic",
            "alter-config",
            &orders,
            "--set",
            "retention.ms=3600000",
            "--set",
            "segment.bytes=1048576",
            "--delete",
            "cleanup.policy",
        ],
    ));
    assert_eq!(
        stdout,
        format!(
            "set retention.ms=3600000 on topic {orders}\nset segment.bytes=1048576 on topic {orders}\ndeleted cleanup.policy from topic {orders}\n"
        )
    );
    let stdout = success(strata(&bootstrap, &["topic", "describe", &orders]));
    let table = cells(&stdout);
    assert_eq!(
        table[table.len() - 3..],
        [
            row(&["CONFIG", "VALUE"]),
            row(&["retention.ms", "3600000"]),
            row(&["segment.bytes", "1048576"]),
        ],
        "{stdout}"
    );

    assert_eq!(
        success(strata(
            &bootstrap,
            &["topic", "add-partitions", &orders, "--total", "5"]
        )),
        format!("topic {orders} now has 5 partitions\n")
    );
    wait_for_topic(&bootstrap, &orders, 5);
    let stdout = success(strata(&bootstrap, &["topic", "describe", &events]));
    assert!(stdout.contains("\nconfigs: all defaults\n"), "{stdout}");
    let stdout = success(strata(&bootstrap, &["topic", "describe", &orders]));
    assert!(stdout.contains("partitions:         5\n"), "{stdout}");
    assert!(
        cells(&stdout).contains(&row(&["4", "1", "1", "1", "in-sync"])),
        "{stdout}"
    );

    assert_eq!(
        success(strata(&bootstrap, &["topic", "delete", &events])),
        format!("deleted topic {events}\n")
    );
    let table = cells(&success(strata(&bootstrap, &["topic", "list"])));
    assert_eq!(
        table,
        [
            row(&["TOPIC", "PARTITIONS", "REPLICATION"]),
            row(&[&orders, "5", "1"])
        ]
    );
}

#[test]
fn unreachable_broker_is_one_line_and_exit_code_1() {
    let closed = closed_port();
    for args in [
        &["topic", "list"][..],
        &["topic", "describe", "orders"],
        &["cluster", "info"],
    ] {
        failure(
            strata(&closed, args),
            &[&format!("cannot reach broker at {closed}"), "refused"],
        );
    }
    failure(
        strata("no-such-host.invalid:9092", &["topic", "list"]),
        &["cannot resolve broker address", "no-such-host.invalid:9092"],
    );
}

#[test]
fn broker_refusals_name_the_error_code_and_cause() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("refused");
    success(strata(
        &bootstrap,
        &["topic", "create", &topic, "--partitions", "2"],
    ));

    // Unknown topic: describe, delete, alter-config, add-partitions.
    let missing = unique_topic("missing");
    for args in [
        vec!["topic", "describe", &missing],
        vec!["topic", "delete", &missing],
        vec!["topic", "alter-config", &missing, "--set", "retention.ms=1"],
        vec!["topic", "add-partitions", &missing, "--total", "3"],
    ] {
        failure(
            strata(&bootstrap, &args),
            &[&format!("{missing:?}"), "UNKNOWN_TOPIC_OR_PARTITION"],
        );
    }
    // describe must not auto-create what it looks at.
    let table = cells(&success(strata(&bootstrap, &["topic", "list"])));
    assert_eq!(table.len(), 2, "{table:?}");

    // Invalid partition counts.
    failure(
        strata(
            &bootstrap,
            &["topic", "create", &missing, "--partitions", "0"],
        ),
        &["cannot create topic", "INVALID_PARTITIONS (error code 37)"],
    );
    failure(
        strata(
            &bootstrap,
            &["topic", "add-partitions", &topic, "--total", "1"],
        ),
        &[
            "cannot add partitions",
            "INVALID_PARTITIONS (error code 37)",
        ],
    );

    // Invalid config values, at create time and when altering.
    failure(
        strata(
            &bootstrap,
            &["topic", "create", &missing, "--config", "retention.ms=soon"],
        ),
        &[
            "cannot create topic",
            "INVALID_CONFIG (error code 40)",
            "soon",
        ],
    );
    failure(
        strata(
            &bootstrap,
            &[
                "topic",
                "alter-config",
                &topic,
                "--set",
                "cleanup.policy=sometimes",
            ],
        ),
        &[
            "cannot alter configs",
            "INVALID_CONFIG (error code 40)",
            "sometimes",
        ],
    );

    failure(
        strata(&bootstrap, &["topic", "create", &topic]),
        &["TOPIC_ALREADY_EXISTS (error code 36)"],
    );
    // Nothing above changed the topic.
    let table = cells(&success(strata(&bootstrap, &["topic", "list"])));
    assert_eq!(table[1], row(&[&topic, "2", "1"]));
}

#[test]
fn bad_arguments_fail_before_connecting() {
    // No broker at all: these never get as far as connecting.
    let closed = "127.0.0.1:1";
    failure(
        strata(closed, &["topic", "alter-config", "orders"]),
        &["--set KEY=VALUE or --delete KEY"],
    );
    usage_error(
        strata(
            closed,
            &["topic", "create", "orders", "--config", "retention.ms"],
        ),
        "expected KEY=VALUE",
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    for args in [
        &["topic"][..],
        &["topic", "create"],
        &["topic", "list"],
        &["topic", "describe"],
        &["topic", "delete"],
        &["topic", "alter-config"],
        &["topic", "add-partitions"],
        &["cluster"],
        &["cluster", "info"],
        &["produce"],
        &["consume"],
        &["perf"],
        &["perf", "produce"],
        &["perf", "consume"],
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command.args(args).arg("--help");
        let output = run_command(&mut command, b"");
        assert_eq!(output.status.code(), Some(0), "{}", output.describe());
        assert!(
            output.stdout.contains("Example: strata "),
            "{args:?}: {}",
            output.describe()
        );
        assert!(
            output.stdout.contains("--bootstrap"),
            "{}",
            output.describe()
        );
    }
}

/// `strata dev-cluster --nodes 3`: three nodes as child processes, the
/// bootstrap list printed once they serve one cluster, all stopped cleanly
/// by Ctrl-C.
#[test]
fn dev_cluster_runs_three_nodes_and_stops_them_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "dev-cluster",
            "--nodes",
            "3",
            "--base-port",
            "0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("RUST_LOG", "info,openraft=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dev-cluster");
    let mut stdout = BufReader::new(cluster.stdout.take().unwrap()).lines();
    let bootstrap = loop {
        let Some(line) = stdout.next() else {
            // Why it stopped, and what the nodes logged.
            let mut why = String::new();
            let _ = std::io::Read::read_to_string(&mut cluster.stderr.take().unwrap(), &mut why);
            for node in 1..=3 {
                let log = dir.path().join(format!("node-{node}")).join("strata.log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                why.push_str(&format!("\n{}: {tail:?}", log.display()));
            }
            panic!("dev-cluster printed no bootstrap line: {why}");
        };
        let line = line.unwrap();
        if let Some(list) = line.strip_prefix("bootstrap: ") {
            break list.to_string();
        }
    };
    let addresses: Vec<&str> = bootstrap.split(',').collect();
    assert_eq!(addresses.len(), 3, "{bootstrap}");
    for address in &addresses {
        let client: rdkafka::consumer::BaseConsumer = client_config(address).create().unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let brokers = client
                .fetch_metadata(None, std::time::Duration::from_secs(5))
                .map(|m| m.brokers().len())
                .unwrap_or(0);
            if brokers == 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{address} lists {brokers} brokers"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    // SAFETY: kill(2) with a child's pid and SIGINT has no memory effects.
    unsafe {
        libc::kill(cluster.id() as libc::pid_t, libc::SIGINT);
    }
    let status = wait_with_timeout(&mut cluster, TIMEOUT).expect("dev-cluster stops on Ctrl-C");
    assert!(status.success(), "{status}");
    assert!(stdout.any(|line| line.unwrap() == "stopped"));
    for node in 1..=3 {
        let log =
            std::fs::read_to_string(dir.path().join(format!("node-{node}/strata.log"))).unwrap();
        assert!(
            log.contains("clean shutdown complete"),
            "node {node}:\n{log}"
        );
    }
}
