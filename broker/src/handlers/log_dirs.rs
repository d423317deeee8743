//! DescribeLogDirs (API 35, KIP-113): the broker's log directories and the
//! size of each hosted replica's log in them; from v4 (KIP-827) also the
//! total and usable bytes of the volume each directory is on. Strata has one
//! log directory, its data directory.
//!
//! As in Kafka, every replica this broker holds is described, led or
//! followed; a partition it does not hold (or a topic it does not know) is
//! left out rather than answered with an error. Kafka's offset lag compares
//! a future replica (one moving between directories with
//! AlterReplicaLogDirs) with the current one; with a single directory there
//! are no future replicas, and a current replica's lag is always 0.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::str_bytes;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::partitions::Topic;

/// Describes the data directory with the replicas the request asks for
/// (`topics` null: every hosted replica).
pub fn describe(broker: &Broker, request: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let wanted = wanted_partitions(&request);
    // Each topic to describe, with the partitions asked for (`None`: all).
    let topics: Vec<(Arc<Topic>, Option<&BTreeSet<i32>>)> = match &wanted {
        None => broker.topics().into_iter().map(|t| (t, None)).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|(name, indexes)| Some((broker.topic(name)?, Some(indexes))))
            .collect(),
    };
    let described = topics
        .iter()
        .filter_map(|(topic, indexes)| {
            let partitions: Vec<DescribeLogDirsPartition> = topic
                .partitions
                .iter()
                .filter(|p| indexes.is_none_or(|asked| asked.contains(&p.index)))
                .map(|p| describe_partition(p))
                .collect();
            // Kafka leaves out a topic none of whose asked partitions is here.
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(topic.name())))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let data_dir = broker.data_dir();
    // Unknown space stays at the schema's -1.
    let mut result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(absolute_path(data_dir)))
        .with_topics(described);
    if let Some(space) = volume_space(data_dir) {
        result = result
            .with_total_bytes(clamp_to_i64(space.total_bytes))
            .with_usable_bytes(clamp_to_i64(space.usable_bytes));
    }
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// The partitions asked for, by topic (a topic named twice asks for the
/// partitions of both entries); `None` when the request asks for all.
fn wanted_partitions(request: &DescribeLogDirsRequest) -> Option<BTreeMap<&str, BTreeSet<i32>>> {
    let topics = request.topics.as_ref()?;
    let mut wanted: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for topic in topics {
        wanted
            .entry(topic.topic.as_str())
            .or_default()
            .extend(topic.partitions.iter().copied());
    }
    Some(wanted)
}

/// One replica: its log's size (the bytes of its segments, as Kafka's
/// `UnifiedLog.size`).
fn describe_partition(partition: &Partition) -> DescribeLogDirsPartition {
    let size = partition.log().size_bytes();
    DescribeLogDirsPartition::default()
        .with_partition_index(partition.index)
        .with_partition_size(clamp_to_i64(size))
        .with_offset_lag(0)
        .with_is_future_key(false)
}

/// The directory as Kafka reports a `log.dirs` entry: made absolute against
/// the working directory, symbolic links left as they are.
fn absolute_path(dir: &Path) -> String {
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Kafka's protocol has no unsigned longs; a size beyond `i64::MAX` is
/// reported as `i64::MAX`, as Kafka does for volumes Java reports as
/// negative (JDK-8162520).
fn clamp_to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The size of the volume (file system) a directory is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct VolumeSpace {
    total_bytes: u64,
    /// What an unprivileged process may still write: Java's
    /// `FileStore.getUsableSpace`, which Kafka reports, excludes the blocks
    /// reserved for root.
    usable_bytes: u64,
}

/// statvfs(3) of the volume holding `dir`; `None` when it cannot be read.
fn volume_space(dir: &Path) -> Option<VolumeSpace> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string that lives across the call,
    // and statvfs writes at most one `statvfs` into `stats`, which we own.
    if unsafe { libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled in `stats`.
    let stats = unsafe { stats.assume_init() };
    // Block counts are in units of the fragment size (statvfs(3)).
    Some(VolumeSpace {
        total_bytes: stats.f_blocks.saturating_mul(stats.f_frsize),
        usable_bytes: stats.f_bavail.saturating_mul(stats.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;

    use super::*;
    use crate::broker::now_ms;
    use crate::test_support::{one_record_batch, open_broker};

    fn asking(topics: &[(&str, &[i32])]) -> DescribeLogDirsRequest {
        DescribeLogDirsRequest::default().with_topics(Some(
            topics
                .iter()
                .map(|(name, partitions)| {
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(str_bytes(*name)))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        ))
    }

    /// (topic, partition, size) of every replica a response describes.
    fn replicas(response: &DescribeLogDirsResponse) -> Vec<(String, i32, i64)> {
        assert_eq!(response.results.len(), 1, "one log dir");
        response.results[0]
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.to_string(), p.partition_index, p.partition_size))
            })
            .collect()
    }

    #[test]
    fn every_hosted_replica_or_the_asked_ones_with_their_log_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let broker = open_broker(dir.path());
        broker
            .create_topic("a", 2, 1, Default::default(), false)
            .unwrap();
        broker
            .create_topic("b", 1, 1, Default::default(), false)
            .unwrap();
        let partition = broker.topic("a").unwrap().partitions[1].clone();
        partition
            .append(
                &mut one_record_batch(None, Some("value"), now_ms()),
                now_ms(),
            )
            .unwrap();
        let size = partition.log().size_bytes() as i64;
        assert!(size > 0, "the appended batch counts");

        // Null topics (the schema's default is an empty list).
        let all = describe(&broker, DescribeLogDirsRequest::default().with_topics(None));
        let result = &all.results[0];
        assert_eq!(result.error_code, 0);
        assert_eq!(result.log_dir.as_str(), dir.path().to_str().unwrap());
        assert!(result.total_bytes > 0 && result.usable_bytes >= 0);
        assert!(result.usable_bytes <= result.total_bytes);
        assert_eq!(
            replicas(&all),
            [
                ("a".to_string(), 0, 0),
                ("a".to_string(), 1, size),
                ("b".to_string(), 0, 0)
            ]
        );
        let partition = &result.topics[0].partitions[1];
        assert_eq!((partition.offset_lag, partition.is_future_key), (0, false));

        // Partitions and topics not here are left out, a topic named twice
        // merges, and a topic with none of its asked partitions here is gone.
        let asked = describe(
            &broker,
            asking(&[("a", &[1, 7]), ("nope", &[0]), ("b", &[3]), ("a", &[1])]),
        );
        assert_eq!(replicas(&asked), [("a".to_string(), 1, size)]);
        // An empty list asks for nothing.
        assert!(replicas(&describe(&broker, asking(&[]))).is_empty());
    }

    #[test]
    fn volume_space_of_a_directory_and_of_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let space = volume_space(dir.path()).expect("statvfs of a temp dir");
        assert!(space.total_bytes > 0);
        assert!(space.usable_bytes <= space.total_bytes);
        assert_eq!(volume_space(&dir.path().join("missing")), None);
    }

    #[test]
    fn a_relative_directory_is_reported_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_path(Path::new("strata-data")),
            cwd.join("strata-data").to_string_lossy()
        );
        assert_eq!(
            absolute_path(Path::new("/var/lib/strata")),
            "/var/lib/strata"
        );
    }

    #[test]
    fn sizes_beyond_i64_are_clamped() {
        assert_eq!(clamp_to_i64(42), 42);
        assert_eq!(clamp_to_i64(u64::MAX), i64::MAX);
    }
}
