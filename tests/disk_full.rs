//! A full disk, end to end: the real `strata serve` binary runs on a small private
//! tmpfs (a mount namespace made with `unshare -rm`, so no privileges are needed
//! outside it), the test fills that filesystem up, and checks that:
//!
//! - produce requests get KAFKA_STORAGE_ERROR (56) instead of a crash (a store into
//!   an unallocatable page of a memory-mapped index used to kill the broker with
//!   SIGBUS);
//! - every acknowledged record stays readable and the broker keeps serving;
//! - once space is back, the same partition takes writes again without a restart;
//! - after a kill -9 and after a clean stop, every acknowledged record is there and
//!   nothing else is.
//!
//! The namespace lives as long as a small shell "wrapper" that mounted the tmpfs:
//! the test drives it over stdin (start a broker, fill the disk, free it, wait for
//! the broker to exit) and reads its answers and the broker's `listening on` line
//! from its stdout. The test is skipped (with a note) where user namespaces or tmpfs
//! mounts are not allowed.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{encode_batch, RawClient, STARTUP_TIMEOUT, TIMEOUT};

/// KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

/// The wrapper: mounts the tmpfs, then obeys one command per stdin line.
const WRAPPER: &str = r#"
mount -t tmpfs -o size="$SIZE" tmpfs "$MNT" || exit 77
mkdir -p "$MNT/data"
echo ready
while read -r cmd; do
  case "$cmd" in
    start)
      "$STRATA" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$MNT/data" \
        --set log.segment.bytes=1048576 </dev/null 2>>"$LOGS/broker.log" &
      pid=$!
      echo "pid $pid" ;;
    wait)
      wait "$pid"
      echo "exited $?" ;;
    fill)
      dd if=/dev/zero of="$MNT/filler-big" bs=65536 2>/dev/null
      dd if=/dev/zero of="$MNT/filler-small" bs=512 2>/dev/null
      echo "filled $(df -k "$MNT" | tail -n 1)" ;;
    free)
      rm -f "$MNT"/filler-*
      echo "freed $(df -k "$MNT" | tail -n 1)" ;;
    exit)
      exit 0 ;;
  esac
done
"#;

struct Wrapper {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    broker_pid: Option<i32>,
    address: String,
    logs: tempfile::TempDir,
    _mount_point: tempfile::TempDir,
}

impl Wrapper {
    /// Starts the wrapper on a tmpfs of `size`; `None` when this machine does not
    /// allow it.
    fn start(size: &str) -> Option<Wrapper> {
        let probe = Command::new("unshare").args(["-rm", "true"]).status();
        if !probe.is_ok_and(|status| status.success()) {
            eprintln!("skipping: `unshare -rm` is not available here");
            return None;
        }
        let mount_point = tempfile::Builder::new()
            .prefix("strata-disk-full-")
            .tempdir()
            .expect("mount point");
        let logs = tempfile::Builder::new()
            .prefix("strata-disk-full-logs-")
            .tempdir()
            .expect("log dir");
        let mut child = Command::new("unshare")
            .args(["-rm", "sh", "-c", WRAPPER])
            .env("SIZE", size)
            .env("MNT", mount_point.path())
            .env("LOGS", logs.path())
            .env("STRATA", env!("CARGO_BIN_EXE_strata"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn unshare");
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut wrapper = Wrapper {
            child,
            stdin,
            lines,
            broker_pid: None,
            address: String::new(),
            logs,
            _mount_point: mount_point,
        };
        match wrapper.lines.recv_timeout(STARTUP_TIMEOUT) {
            Ok(line) if line == "ready" => Some(wrapper),
            _ => {
                let status = wrapper.child.wait().ok();
                if status.and_then(|s| s.code()) == Some(77) {
                    eprintln!("skipping: cannot mount a tmpfs here");
                    return None;
                }
                panic!("the wrapper did not start: {status:?}");
            }
        }
    }

    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("write to the wrapper");
        self.stdin.flush().expect("flush the wrapper's stdin");
    }

    /// The next stdout line starting with `prefix` (others are broker output).
    fn expect_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!(
                    "no line starting with {prefix:?} within {timeout:?}\n{}",
                    self.broker_log()
                ),
            }
        }
    }

    fn broker_log(&self) -> String {
        std::fs::read_to_string(self.logs.path().join("broker.log")).unwrap_or_default()
    }

    fn start_broker(&mut self) {
        self.send("start");
        let pid = self.expect_line("pid ", TIMEOUT);
        self.broker_pid = Some(pid[4..].trim().parse().expect("a pid"));
        let listening = self.expect_line("listening on ", STARTUP_TIMEOUT);
        self.address = listening["listening on ".len()..].trim().to_string();
    }

    /// Signals the broker and returns its exit status as the shell reports it.
    fn stop_broker(&mut self, signal: libc::c_int) -> i32 {
        let pid = self.broker_pid.take().expect("a broker runs");
        // SAFETY: kill(2) with a pid this test started; no memory is involved.
        unsafe { libc::kill(pid, signal) };
        self.send("wait");
        let exited = self.expect_line("exited ", TIMEOUT);
        exited[7..].trim().parse().expect("an exit status")
    }

    fn fill(&mut self) {
        self.send("fill");
        let line = self.expect_line("filled", TIMEOUT);
        eprintln!("{line}");
    }

    fn free(&mut self) {
        self.send("free");
        let line = self.expect_line("freed", TIMEOUT);
        eprintln!("{line}");
    }

    fn assert_no_panic(&self) {
        let log = self.broker_log();
        assert!(!log.contains("panicked"), "the broker panicked:\n{log}");
    }
}

impl Drop for Wrapper {
    fn drop(&mut self) {
        if let Some(pid) = self.broker_pid.take() {
            // SAFETY: as in `stop_broker`.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = writeln!(self.stdin, "exit");
        let _ = self.child.wait();
    }
}

/// The value of record `n`: recognisable and about 1 KiB.
fn value(n: usize) -> String {
    format!("record-{n:08}-{}", "x".repeat(1000))
}

/// Produces records `first..first + count` as one batch; returns the error code and
/// base offset.
fn produce(client: &mut RawClient, topic: &str, first: usize, count: usize) -> (i16, i64) {
    let values: Vec<String> = (first..first + count).map(value).collect();
    let slices: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let batch = encode_batch(&slices, common::now_ms());
    client.produce(topic, 0, Bytes::from(batch.to_vec()))
}

/// Checks that the partition holds exactly records `0..acknowledged` in order.
fn assert_exactly(bootstrap: &str, topic: &str, acknowledged: usize) {
    assert_eq!(
        common::high_watermark(bootstrap, topic, 0),
        acknowledged as i64,
        "high watermark"
    );
    let received = common::consume_partition(bootstrap, topic, 0, acknowledged);
    let expected: Vec<String> = (0..acknowledged).map(value).collect();
    common::assert_values_in_order(&received, &expected);
}

#[test]
fn a_full_disk_gets_storage_errors_then_the_partition_works_again() {
    let Some(mut wrapper) = Wrapper::start("8m") else {
        return;
    };
    wrapper.start_broker();
    let topic = "disk-full";
    common::create_topic(&wrapper.address, topic, 1);
    let mut client = RawClient::connect(&wrapper.address);

    const PER_BATCH: usize = 16;
    let mut acknowledged = 0;
    for _ in 0..40 {
        let (code, base) = produce(&mut client, topic, acknowledged, PER_BATCH);
        assert_eq!((code, base), (0, acknowledged as i64));
        acknowledged += PER_BATCH;
    }

    wrapper.fill();
    let mut storage_errors = 0;
    for _ in 0..200 {
        let (code, base) = produce(&mut client, topic, acknowledged, PER_BATCH);
        match code {
            0 => {
                assert_eq!(base, acknowledged as i64, "offsets stay contiguous");
                acknowledged += PER_BATCH;
            }
            KAFKA_STORAGE_ERROR => {
                storage_errors += 1;
                if storage_errors == 5 {
                    break;
                }
            }
            other => panic!("unexpected error code {other}\n{}", wrapper.broker_log()),
        }
    }
    assert!(
        storage_errors > 0,
        "the broker never answered KAFKA_STORAGE_ERROR\n{}",
        wrapper.broker_log()
    );
    // Still serving: metadata, and every acknowledged record, nothing more.
    common::assert_serves_metadata(&wrapper.address);
    assert_exactly(&wrapper.address, topic, acknowledged);

    // Space is back: the same partition takes writes, no restart needed.
    wrapper.free();
    for _ in 0..20 {
        let (code, base) = produce(&mut client, topic, acknowledged, PER_BATCH);
        assert_eq!(
            (code, base),
            (0, acknowledged as i64),
            "{}",
            wrapper.broker_log()
        );
        acknowledged += PER_BATCH;
    }
    assert_exactly(&wrapper.address, topic, acknowledged);
    drop(client);

    // A crash, then a clean stop: everything acknowledged survives both.
    assert_eq!(wrapper.stop_broker(libc::SIGKILL), 128 + libc::SIGKILL);
    wrapper.start_broker();
    assert_exactly(&wrapper.address, topic, acknowledged);
    let mut client = RawClient::connect(&wrapper.address);
    let (code, base) = produce(&mut client, topic, acknowledged, PER_BATCH);
    assert_eq!((code, base), (0, acknowledged as i64));
    acknowledged += PER_BATCH;
    drop(client);
    assert_eq!(wrapper.stop_broker(libc::SIGTERM), 0, "clean stop");
    wrapper.start_broker();
    assert_exactly(&wrapper.address, topic, acknowledged);
    assert_eq!(wrapper.stop_broker(libc::SIGTERM), 0, "clean stop");
    wrapper.assert_no_panic();
}
