#!/usr/bin/env bash
# End-to-end throughput benchmark: librdkafka (tools/bench/main.rs) against a real
# `strata serve` on 127.0.0.1, for 100 B and 1 KiB messages on 1 and 6 partitions.
# Prints every run and then a markdown table of the medians (the table in
# docs/benchmarks.md comes from here).
#
# Each run gets a fresh broker on a fresh data directory (stopped with SIGTERM and
# deleted afterwards), so no run sees the logs of an earlier one and the disk use is
# bounded by one run.
#
# Overrides (environment):
#   MESSAGES_SMALL=5000000  SIZE_SMALL=100    messages and size of the small-message runs
#   MESSAGES_LARGE=1500000  SIZE_LARGE=1024   messages and size of the large-message runs
#   PARTITIONS="1 6"        RUNS=3            partition counts; runs per configuration
#   ACKS=1  COMPRESSION=none                  producer settings
#   RUN_TIMEOUT=600                           seconds before one bench run is killed
#   RUST_LOG=warn                             broker log level (logs go to a file)
#
# MODE=group measures consumer groups instead: for each DELAYS value of
# group.initial.rebalance.delay.ms (default "0 3000") and MEMBERS count (default "1 3"),
# MESSAGES_GROUP (default 2000000) messages of SIZE_SMALL bytes on GROUP_PARTITIONS
# (default 6) partitions are produced, then consumed by a new subscribe-style group;
# prints the time from subscribe to each member's first message and the group's
# throughput (counted from the subscribe).
set -euo pipefail

MESSAGES_SMALL=${MESSAGES_SMALL:-5000000}
SIZE_SMALL=${SIZE_SMALL:-100}
MESSAGES_LARGE=${MESSAGES_LARGE:-1500000}
SIZE_LARGE=${SIZE_LARGE:-1024}
PARTITIONS=${PARTITIONS:-"1 6"}
RUNS=${RUNS:-3}
ACKS=${ACKS:-1}
COMPRESSION=${COMPRESSION:-none}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
export RUST_LOG=${RUST_LOG:-warn}

cd "$(dirname "$0")/.."
cargo build --release --bin strata --example bench
STRATA=target/release/strata
BENCH=target/release/examples/bench

WORK=$(mktemp -d -t strata-bench.XXXXXX)
BROKER_PID=""

# Stops the broker with SIGTERM (SIGKILL after 30 s); fails unless it exited with 0, as
# the process contract promises.
stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    local pid=$BROKER_PID status=0
    BROKER_PID=""
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "broker did not exit within 30 s of SIGTERM; killing it (log: $WORK/broker-$RUN_ID.log)" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "broker exited with status $status after SIGTERM (expected 0); last log lines:" >&2
        tail -n 20 "$WORK/broker-$RUN_ID.log" >&2
        return 1
    fi
}

cleanup() {
    stop_broker || true
    if [ -n "${KEEP_WORK:-}" ]; then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a broker on a fresh data directory (extra `serve` arguments: "$@"); sets
# BROKER_PID and BOOTSTRAP.
start_broker() {
    local data=$WORK/data-$RUN_ID
    mkdir -p "$data"
    "$STRATA" serve --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --data-dir "$data" "$@" \
        >"$WORK/stdout-$RUN_ID" 2>"$WORK/broker-$RUN_ID.log" &
    BROKER_PID=$!
    BOOTSTRAP=""
    for _ in $(seq 300); do
        BOOTSTRAP=$(sed -n 's/^listening on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/stdout-$RUN_ID")
        [ -n "$BOOTSTRAP" ] && return 0
        if ! kill -0 "$BROKER_PID" 2>/dev/null; then
            echo "broker died during startup:" >&2
            tail -n 50 "$WORK/broker-$RUN_ID.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "broker did not print 'listening on 127.0.0.1:PORT' within 30 s" >&2
    exit 1
}

median() { sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

SHUTDOWN_FAILURES=0

if [ "${MODE:-}" = group ]; then
    echo "strata group bench: runs=$RUNS, $(nproc) cores shared by clients and broker"
    for delay in ${DELAYS:-0 3000}; do
        for members in ${MEMBERS:-1 3}; do
            for run in $(seq "$RUNS"); do
                RUN_ID="group-${delay}ms-${members}m-$run"
                start_broker --set "group.initial.rebalance.delay.ms=$delay"
                "$BENCH" --bootstrap "$BOOTSTRAP" --topic "bench-$RUN_ID" \
                    --messages "${MESSAGES_GROUP:-2000000}" --size "$SIZE_SMALL" \
                    --partitions "${GROUP_PARTITIONS:-6}" --members "$members" --mode group |
                    sed "s/^/[$RUN_ID] /"
                stop_broker || SHUTDOWN_FAILURES=$((SHUTDOWN_FAILURES + 1))
                rm -rf "$WORK/data-$RUN_ID"
            done
        done
    done
    exit "$SHUTDOWN_FAILURES"
fi

RESULTS=$WORK/results   # lines: size partitions messages phase msgs_per_s mb_per_s seconds
: >"$RESULTS"
echo "strata bench: acks=$ACKS compression=$COMPRESSION runs=$RUNS, $(nproc) cores shared by client and broker"
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- protocol storage broker tools/src Cargo.toml 2>/dev/null ||
    REVISION="$REVISION + uncommitted changes"
echo "revision: $REVISION; rustc: $(rustc --version)"
for size_messages in "$SIZE_SMALL:$MESSAGES_SMALL" "$SIZE_LARGE:$MESSAGES_LARGE"; do
    size=${size_messages%%:*}
    messages=${size_messages##*:}
    for partitions in $PARTITIONS; do
        for run in $(seq "$RUNS"); do
            RUN_ID="${size}b-${partitions}p-$run"
            start_broker
            if ! timeout "$RUN_TIMEOUT" "$BENCH" --bootstrap "$BOOTSTRAP" --topic "bench-$RUN_ID" \
                --messages "$messages" --size "$size" --partitions "$partitions" \
                --acks "$ACKS" --compression "$COMPRESSION" --mode both >"$WORK/bench-$RUN_ID.out"; then
                cat "$WORK/bench-$RUN_ID.out"
                echo "bench run $RUN_ID failed; last broker log lines:" >&2
                tail -n 50 "$WORK/broker-$RUN_ID.log" >&2
                exit 1
            fi
            sed "s/^/[$RUN_ID] /" "$WORK/bench-$RUN_ID.out"
            stop_broker || SHUTDOWN_FAILURES=$((SHUTDOWN_FAILURES + 1))
            rm -rf "$WORK/data-$RUN_ID"
            # "produce: N msgs, S bytes each, P partitions: X msgs/s, Y MB/s (T s)"
            sed -n 's/^\(produce\|consume\): .*: \([0-9.]*\) msgs\/s, \([0-9.]*\) MB\/s (\([0-9.]*\) s)$/\1 \2 \3 \4/p' \
                "$WORK/bench-$RUN_ID.out" |
                while read -r phase rate mb seconds; do
                    echo "$size $partitions $messages $phase $rate $mb $seconds" >>"$RESULTS"
                done
        done
    done
done

pick() { awk -v s="$1" -v p="$2" -v ph="$3" -v col="$4" '$1==s && $2==p && $4==ph {print $col}' "$RESULTS"; }
echo
echo "Median of $RUNS run(s); MB = 10^6 bytes of payload; acks=$ACKS, compression=$COMPRESSION."
echo
echo "| Message size | Partitions | Messages | Produce msgs/s | Produce MB/s | Consume msgs/s | Consume MB/s |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for size_messages in "$SIZE_SMALL:$MESSAGES_SMALL" "$SIZE_LARGE:$MESSAGES_LARGE"; do
    size=${size_messages%%:*}
    messages=${size_messages##*:}
    for partitions in $PARTITIONS; do
        printf '| %s B | %s | %s | %.0f | %.1f | %.0f | %.1f |\n' "$size" "$partitions" "$messages" \
            "$(pick "$size" "$partitions" produce 5 | median)" "$(pick "$size" "$partitions" produce 6 | median)" \
            "$(pick "$size" "$partitions" consume 5 | median)" "$(pick "$size" "$partitions" consume 6 | median)"
    done
done
if [ "$SHUTDOWN_FAILURES" -ne 0 ]; then
    echo "$SHUTDOWN_FAILURES broker shutdown(s) did not exit cleanly after SIGTERM" >&2
    exit 1
fi
