#!/usr/bin/env bash
# A/B benchmark of several `strata` builds: for each run and each build, a fresh broker on
# a fresh data directory, one librdkafka produce phase and one consume phase
# (tools/bench/main.rs), and the broker's CPU time (user + system, from /proc) spent in
# each phase. Builds alternate within a run, so slow phases of a noisy machine hit them
# alike.
#
# Usage: tools/ab_bench.sh NAME=PATH/TO/strata [NAME=PATH ...]
#   e.g. tools/ab_bench.sh old=/tmp/strata-old new=target/release/strata
# Environment: MESSAGES=2000000 SIZE=1024 PARTITIONS=1 RUNS=3
set -euo pipefail
MESSAGES=${MESSAGES:-2000000}
SIZE=${SIZE:-1024}
PARTITIONS=${PARTITIONS:-1}
RUNS=${RUNS:-3}
[ $# -ge 1 ] || { echo "usage: $0 NAME=PATH/TO/strata [NAME=PATH ...]" >&2; exit 2; }

cd "$(dirname "$0")/.."
cargo build --release --example bench
BENCH=target/release/examples/bench
WORK=$(mktemp -d -t strata-ab.XXXXXX)
PID=""
cleanup() {
    [ -z "$PID" ] || kill -KILL "$PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

start() {
    "$1" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" >"$WORK/out" 2>"$WORK/log" &
    PID=$!
    BOOTSTRAP=""
    for _ in $(seq 300); do
        BOOTSTRAP=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/out")
        [ -n "$BOOTSTRAP" ] && return 0
        sleep 0.1
    done
    echo "$1 did not start; log:" >&2
    tail -n 20 "$WORK/log" >&2
    exit 1
}
stop() { kill -TERM "$PID"; wait "$PID" || true; PID=""; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
seconds() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'; }
phase() {
    "$BENCH" --bootstrap "$BOOTSTRAP" --topic ab --messages "$MESSAGES" --size "$SIZE" \
        --partitions "$PARTITIONS" --mode "$1" | sed -n 's/^.*: \([0-9.]* msgs\/s, [0-9.]* MB\/s\).*$/\1/p'
}

echo "$MESSAGES x $SIZE B, $PARTITIONS partition(s), $RUNS run(s); broker CPU seconds per phase"
echo "| run | build | produce | broker CPU s | consume | broker CPU s |"
echo "|---:|---|---|---:|---|---:|"
for run in $(seq "$RUNS"); do
    for build in "$@"; do
        name=${build%%=*}
        binary=${build#*=}
        rm -rf "$WORK/data"
        start "$binary"
        t0=$(cpu_ticks)
        produced=$(phase produce)
        t1=$(cpu_ticks)
        consumed=$(phase consume)
        t2=$(cpu_ticks)
        stop
        echo "| $run | $name | $produced | $(seconds $((t1 - t0))) | $consumed | $(seconds $((t2 - t1))) |"
    done
done
