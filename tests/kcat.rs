//! kcat (Debian's build, on librdkafka 2.0.2: an older librdkafka than the bundled one)
//! against a real broker: metadata listing, produce and consume lines.

mod common;

use std::process::Command;

use common::*;

fn kcat(args: &[&str], stdin: &[u8]) -> CommandOutput {
    let output = run_command(Command::new("kcat").args(args), stdin);
    assert!(
        output.status.success(),
        "kcat {args:?} failed\n{}",
        output.describe()
    );
    output
}

#[test]
fn kcat_lists_broker_and_topic() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("kcat-list");
    create_topic(&bootstrap, &topic, 3);

    let output = kcat(&["-b", &bootstrap, "-L", "-m", "30"], b"");
    let listing = &output.stdout;
    assert!(
        listing.contains(&format!("broker 1 at {bootstrap}")),
        "broker 1 at {bootstrap} not listed:\n{listing}"
    );
    assert!(
        listing.contains(&format!("topic \"{topic}\" with 3 partitions:")),
        "topic {topic} with 3 partitions not listed:\n{listing}"
    );
    for partition in 0..3 {
        assert!(
            listing.contains(&format!(
                "partition {partition}, leader 1, replicas: 1, isrs: 1"
            )),
            "partition {partition} led by broker 1 not listed:\n{listing}"
        );
    }
}

#[test]
fn kcat_produces_and_consumes_lines() {
    let broker = Broker::start(&["auto.create.topics.enable=true"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("kcat-lines");
    create_topic(&bootstrap, &topic, 1);

    let lines: Vec<String> = (0..500).map(|i| format!("line {i} from kcat")).collect();
    let input = lines.join("\n") + "\n";
    kcat(
        &[
            "-b", &bootstrap, "-P", "-t", &topic, "-p", "0", "-X", "acks=all",
        ],
        input.as_bytes(),
    );
    assert_eq!(high_watermark(&bootstrap, &topic, 0), lines.len() as i64);

    let output = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        b"",
    );
    let consumed: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(consumed, lines, "lines consumed by kcat");

    // Keys and the bundled librdkafka reading what kcat wrote.
    kcat(
        &["-b", &bootstrap, "-P", "-t", &topic, "-p", "0", "-K", ":"],
        b"the-key:the-value\n",
    );
    let received = consume_partition(&bootstrap, &topic, 0, lines.len() + 1);
    let last = received.last().expect("a message");
    assert_eq!(last.key.as_deref(), Some(&b"the-key"[..]));
    assert_eq!(last.value_str(), "the-value");
    assert_eq!(last.offset, lines.len() as i64);
}

#[test]
fn kcat_consumes_what_librdkafka_produced_with_compression() {
    let broker = Broker::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("kcat-compressed");
    create_topic(&bootstrap, &topic, 1);
    let mut values = Vec::new();
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let mut config = producer_config(&bootstrap);
        config.set("compression.type", codec);
        let producer = create_producer(&config);
        values.extend(produce_numbered(&producer, &topic, 0, codec, 100));
    }
    let output = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        b"",
    );
    let consumed: Vec<&str> = output.stdout.lines().collect();
    assert_eq!(consumed, values, "values consumed by kcat");
}

/// kcat's balanced consumer (`-G`, old librdkafka's group code): a second run in the
/// same group resumes where the first one's committed offsets left off.
#[test]
fn kcat_group_consumer_resumes_from_committed_offsets() {
    let broker = Broker::start(&["group.initial.rebalance.delay.ms=0"]);
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("kcat-group");
    let group = unique_topic("kcat-group");
    create_topic(&bootstrap, &topic, 3);
    let lines: Vec<String> = (0..90).map(|i| format!("line {i}")).collect();
    for (partition, chunk) in lines.chunks(30).enumerate() {
        let input = chunk.join("\n") + "\n";
        let partition = partition.to_string();
        kcat(
            &["-b", &bootstrap, "-P", "-t", &topic, "-p", &partition],
            input.as_bytes(),
        );
    }
    let consume = |count: &str| {
        let output = kcat(
            &[
                "-b",
                &bootstrap,
                "-G",
                &group,
                &topic,
                "-c",
                count,
                "-q",
                "-X",
                "auto.offset.reset=earliest",
            ],
            b"",
        );
        output
            .stdout
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let first = consume("50");
    let second = consume("40");
    assert_eq!(first.len(), 50);
    assert_eq!(second.len(), 40);
    let mut all: Vec<String> = first.into_iter().chain(second).collect();
    all.sort();
    let mut expected = lines.clone();
    expected.sort();
    assert_eq!(all, expected, "every line once across the two runs");
}
