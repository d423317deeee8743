//! Many partitions under a low open-file limit: the broker keeps a bounded
//! number of files open, and every partition still takes writes and serves
//! reads through librdkafka, before and after a crash.
//!
//! This file is its own test binary with one test, because it lowers the
//! process's RLIMIT_NOFILE (which the broker inherits) for good.

mod common;

use common::*;
use rdkafka::producer::BaseRecord;
use rdkafka::topic_partition_list::Offset;

/// Hard and soft limit the broker inherits: far fewer descriptors than the
/// 3 files per partition a broker that keeps every segment open would need.
const OPEN_FILE_LIMIT: u64 = 512;
const PARTITIONS: i32 = 600;

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

fn produce_one_per_partition(bootstrap: &str, topic: &str, round: &str) {
    let producer = create_producer(&producer_config(bootstrap));
    for partition in 0..PARTITIONS {
        let value = format!("{round}-{partition}");
        send_with_retry(
            &producer,
            BaseRecord::<(), str>::to(topic)
                .partition(partition)
                .payload(value.as_str()),
        );
    }
    flush_and_check(&producer);
}

/// Reads every partition from the beginning and checks it holds exactly `rounds`.
fn check_all_partitions(bootstrap: &str, topic: &str, rounds: &[&str]) {
    let assignment: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    let consumer = assigned_consumer(bootstrap, topic, &assignment);
    let received = consume_n(&consumer, PARTITIONS as usize * rounds.len());
    let mut seen: Vec<(i32, i64, String)> = received
        .iter()
        .map(|m| (m.partition, m.offset, m.value_str()))
        .collect();
    seen.sort();
    let mut expected = Vec::new();
    for partition in 0..PARTITIONS {
        for (offset, round) in rounds.iter().enumerate() {
            expected.push((partition, offset as i64, format!("{round}-{partition}")));
        }
    }
    assert_eq!(seen, expected);
}

#[test]
fn many_partitions_work_with_a_bounded_number_of_open_files() {
    let limit = libc::rlimit {
        rlim_cur: OPEN_FILE_LIMIT,
        rlim_max: OPEN_FILE_LIMIT,
    };
    // SAFETY: setrlimit reads the struct we pass; nothing else is involved.
    let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(set, 0, "lowering RLIMIT_NOFILE");

    let mut broker = Broker::start(&[]);
    let topic = unique_topic("many");
    create_topic(&broker.bootstrap(), &topic, PARTITIONS);
    produce_one_per_partition(&broker.bootstrap(), &topic, "first");
    check_all_partitions(&broker.bootstrap(), &topic, &["first"]);
    let open = open_descriptors(broker.pid());
    assert!(
        open < OPEN_FILE_LIMIT as usize,
        "{open} descriptors open for {PARTITIONS} partitions"
    );

    // After a crash every partition recovers, and takes writes again.
    broker.kill9();
    broker.restart();
    produce_one_per_partition(&broker.bootstrap(), &topic, "second");
    check_all_partitions(&broker.bootstrap(), &topic, &["first", "second"]);
    assert!(open_descriptors(broker.pid()) < OPEN_FILE_LIMIT as usize);
    assert!(broker.is_running(), "{}", broker.stderr_tail());
}
