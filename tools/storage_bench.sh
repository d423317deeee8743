#!/usr/bin/env bash
# Storage recovery and scale measurements (docs/benchmarks.md, "Storage: recovery and
# scale"). Release build; the broker is the real `strata serve`, the data is written
# through it by the librdkafka load generator (tools/bench/main.rs).
#
#   recovery  RECOVERY_GIB GiB of 1 KiB messages across RECOVERY_PARTITIONS partitions.
#             Then: clean stop, clean start (timed), a TAIL_MIB MiB unflushed tail,
#             kill -9, start (timed: scans only the tail after the recovery point),
#             kill -9, delete recovery-point-offset-checkpoint, start (timed: full scan),
#             the same full scan again with the page cache dropped if allowed.
#   partitions  one topic of MANY_PARTITIONS partitions (CreateTopics, timed), 10 small
#             messages each; start-up time, RSS and open descriptors after a clean stop
#             and after kill -9.
#
# "Start-up" is the time from spawning the process to its `listening on` line (the
# broker opens and recovers every log before it prints that line). RSS is
# VmRSS from /proc/PID/status right after that line and 2 s later. Data is deleted
# at the end.
#
# Usage: tools/storage_bench.sh [recovery|partitions|all]   (default all)
# Overrides: RECOVERY_GIB=10 RECOVERY_PARTITIONS=50 TAIL_MIB=64 MANY_PARTITIONS=10000
#            RUNS=3 WORK=<dir> RUST_LOG=warn
set -euo pipefail

WHAT=${1:-all}
RECOVERY_GIB=${RECOVERY_GIB:-10}
RECOVERY_PARTITIONS=${RECOVERY_PARTITIONS:-50}
TAIL_MIB=${TAIL_MIB:-64}
MANY_PARTITIONS=${MANY_PARTITIONS:-10000}
RUNS=${RUNS:-3}
export RUST_LOG=${RUST_LOG:-warn}

cd "$(dirname "$0")/.."
cargo build --release --bin strata --example bench
STRATA=$PWD/target/release/strata
BENCH=$PWD/target/release/examples/bench
WORK=${WORK:-$(mktemp -d -t strata-storage-bench.XXXXXX)}
DATA=$WORK/data
PID=""
ADDR=""

cleanup() {
    if [ -n "$PID" ]; then kill -KILL "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

now_ns() { date +%s%N; }

# Starts the broker on $DATA; sets PID, ADDR and STARTUP_MS.
start_broker() {
    : >"$WORK/stdout"
    local t0 t1
    t0=$(now_ns)
    "$STRATA" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$DATA" "$@" >"$WORK/stdout" 2>>"$WORK/broker.log" &
    PID=$!
    until grep -q '^listening on ' "$WORK/stdout"; do
        if ! kill -0 "$PID" 2>/dev/null; then
            echo "broker exited during start-up; log:" >&2
            tail -n 30 "$WORK/broker.log" >&2
            exit 1
        fi
        sleep 0.002
    done
    t1=$(now_ns)
    ADDR=$(sed -n 's/^listening on //p' "$WORK/stdout")
    STARTUP_MS=$(((t1 - t0) / 1000000))
}

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$PID/status"; }
open_fds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }

stop_clean() {
    local t0 t1
    t0=$(now_ns)
    kill -TERM "$PID"
    wait "$PID"
    t1=$(now_ns)
    STOP_MS=$(((t1 - t0) / 1000000))
    PID=""
}

kill9() {
    kill -KILL "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

drop_caches() {
    sync
    if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then return 0; fi
    return 1
}

report() { printf '%-58s %s\n' "$1" "$2"; }

recovery() {
    rm -rf "$DATA"
    local messages=$((RECOVERY_GIB * 1024 * 1024))
    start_broker
    echo "== recovery: $RECOVERY_GIB GiB (1 KiB messages) across $RECOVERY_PARTITIONS partitions"
    "$BENCH" --bootstrap "$ADDR" --topic recovery --partitions "$RECOVERY_PARTITIONS" \
        --messages "$messages" --size 1024 --acks 1 --mode produce
    stop_clean
    report "data on disk" "$(du -sh "$DATA" | cut -f1)"
    report "clean stop after the load (ms)" "$STOP_MS"
    for run in $(seq "$RUNS"); do
        start_broker
        report "clean start, run $run (ms)" "$STARTUP_MS"
        report "  VmRSS after start (KiB)" "$(rss_kib)"
        # The unflushed tail: written after the start, which checkpointed the
        # recovery points at the log end offsets.
        "$BENCH" --bootstrap "$ADDR" --topic recovery --messages $((TAIL_MIB * 1024)) \
            --size 1024 --acks 1 --mode produce >/dev/null
        kill9
        start_broker
        report "after kill -9 with a ${TAIL_MIB} MiB tail, run $run (ms)" "$STARTUP_MS"
        report "  VmRSS after start (KiB)" "$(rss_kib)"
        stop_clean
    done
    for run in $(seq "$RUNS"); do
        start_broker
        kill9
        rm -f "$DATA/recovery-point-offset-checkpoint"
        start_broker
        report "after kill -9, no recovery checkpoint (full scan), run $run (ms)" "$STARTUP_MS"
        stop_clean
    done
    start_broker
    kill9
    rm -f "$DATA/recovery-point-offset-checkpoint"
    if drop_caches; then
        start_broker
        report "the same, page cache dropped first (ms)" "$STARTUP_MS"
        stop_clean
    else
        report "the same, page cache dropped first" "(not allowed here)"
    fi
    rm -rf "$DATA"
}

partitions() {
    rm -rf "$DATA"
    echo "== partitions: one topic of $MANY_PARTITIONS partitions"
    start_broker
    report "empty broker start (ms)" "$STARTUP_MS"
    report "  VmRSS (KiB)" "$(rss_kib)"
    local t0 t1
    t0=$(now_ns)
    "$BENCH" --bootstrap "$ADDR" --topic many --partitions "$MANY_PARTITIONS" \
        --messages $((MANY_PARTITIONS * 10)) --size 100 --acks 1 --mode produce
    t1=$(now_ns)
    report "CreateTopics + 10 messages per partition (ms)" "$(((t1 - t0) / 1000000))"
    report "  VmRSS (KiB)" "$(rss_kib)"
    report "  open descriptors" "$(open_fds)"
    stop_clean
    report "clean stop (ms)" "$STOP_MS"
    for run in $(seq "$RUNS"); do
        start_broker
        report "clean start, run $run (ms)" "$STARTUP_MS"
        report "  VmRSS right after start (KiB)" "$(rss_kib)"
        report "  open descriptors" "$(open_fds)"
        sleep 2
        report "  VmRSS 2 s later (KiB)" "$(rss_kib)"
        kill9
        start_broker
        report "start after kill -9, run $run (ms)" "$STARTUP_MS"
        report "  VmRSS right after start (KiB)" "$(rss_kib)"
        report "  open descriptors" "$(open_fds)"
        stop_clean
    done
    rm -rf "$DATA"
}

case "$WHAT" in
recovery) recovery ;;
partitions) partitions ;;
all)
    recovery
    partitions
    ;;
*)
    echo "usage: $0 [recovery|partitions|all]" >&2
    exit 2
    ;;
esac
