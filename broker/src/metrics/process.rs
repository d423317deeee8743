//! The process metrics every Prometheus client library exports under the
//! same names (<https://prometheus.io/docs/instrumenting/writing_clientlibs/#process-metrics>),
//! read from `/proc/self` at scrape time, and `strata_build_info`.
//!
//! Linux only, as the broker is; on a system without `/proc` the process
//! series are simply absent.

use std::fs;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use super::{encode_gauge, encode_gauge_family};

/// The revision the binary was built from, when the build set
/// `STRATA_GIT_REVISION` (release builds do; a plain `cargo build` does not,
/// and asking git from a build script on every build is not worth it).
const REVISION: &str = match option_env!("STRATA_GIT_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// What `/proc/self` says about this process.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub start_time_seconds: f64,
    pub open_fds: u64,
    pub max_fds: u64,
}

/// Reads the process's numbers; `None` where `/proc` is not there.
pub fn read_process_stats() -> Option<ProcessStats> {
    // SAFETY: sysconf only reads a system constant; no memory is passed.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    // SAFETY: as above.
    let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;

    // Fields after the command name, which is in parentheses and may itself
    // contain spaces and parentheses: split after the last ')'. Field 3 of
    // proc(5) is index 0 here.
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |number: usize| -> Option<f64> { fields.get(number - 3)?.parse().ok() };
    let cpu_ticks = field(14)? + field(15)?; // utime + stime
    let start_ticks = field(22)?; // starttime, since boot

    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let mut pages = statm.split_whitespace().map(|p| p.parse::<u64>().ok());
    let virtual_pages = pages.next()??;
    let resident_pages = pages.next()??;

    let boot_time = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime ")?.trim().parse::<f64>().ok())?;
    let open_fds = fs::read_dir("/proc/self/fd").ok()?.count() as u64;

    Some(ProcessStats {
        cpu_seconds: cpu_ticks / ticks_per_second,
        resident_memory_bytes: resident_pages * page_size,
        virtual_memory_bytes: virtual_pages * page_size,
        start_time_seconds: boot_time + start_ticks / ticks_per_second,
        open_fds,
        max_fds: max_fds(),
    })
}

/// The soft limit on open file descriptors.
fn max_fds() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_cur
}

/// Registered in the root registry, outside the `strata_` prefix.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = read_process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(stats.cpu_seconds);
        let family = encoder.encode_descriptor(
            "process_cpu",
            "User and system CPU time spent",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        cpu.encode(family)?;
        let gauges: [(&str, &str, Option<Unit>, f64); 5] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(Unit::Bytes),
                stats.resident_memory_bytes as f64,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(Unit::Bytes),
                stats.virtual_memory_bytes as f64,
            ),
            (
                "process_start_time",
                "Start time of the process since the Unix epoch",
                Some(Unit::Seconds),
                stats.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors (connections, segment files, indexes, ...)",
                None,
                stats.open_fds as f64,
            ),
            (
                "process_max_fds",
                "The soft limit on open file descriptors",
                None,
                stats.max_fds as f64,
            ),
        ];
        for (name, help, unit, value) in gauges {
            encode_gauge(&mut encoder, name, help, unit.as_ref(), value)?;
        }
        Ok(())
    }
}

/// `strata_build_info{version, revision} 1`.
#[derive(Debug)]
pub(super) struct BuildInfoCollector;

impl Collector for BuildInfoCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // A gauge at 1 rather than OpenMetrics' info type: it reads the same
        // in PromQL, and every Prometheus version takes it.
        encode_gauge_family(
            &mut encoder,
            "build_info",
            "The version and revision of the running binary (always 1)",
            None,
            [(
                [
                    ("version", env!("CARGO_PKG_VERSION")),
                    ("revision", REVISION),
                ],
                1i64,
            )],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_plausible_numbers() {
        let stats = read_process_stats().expect("Linux has /proc");
        assert!(stats.resident_memory_bytes > 0);
        assert!(stats.virtual_memory_bytes >= stats.resident_memory_bytes);
        assert!(stats.open_fds > 0);
        assert!(stats.max_fds >= stats.open_fds);
        assert!(stats.start_time_seconds > 1_500_000_000.0, "{stats:?}");
    }
}
