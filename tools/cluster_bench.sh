#!/usr/bin/env bash
# Cluster measurements for docs/benchmarks.md: formation of a 3-node cluster
# from a cold start, metadata propagation to every broker, CreateTopics of
# 1,000 partitions, idle RSS per node, and controller failover (kill -9 of
# the active controller to the next successful CreateTopics).
#
# Usage: tools/cluster_bench.sh [RUNS]   (after `cargo build --release`)
# Uses ports 29092-29094 (clients), 29192-29194 (controllers), 29292-29294
# (metrics) on 127.0.0.1 and a temporary data directory.
set -euo pipefail

runs=${1:-3}
strata=${STRATA:-target/release/strata}
base=29092
bootstrap="127.0.0.1:$base"
ms() { date +%s%3N; }

controller_of() {
  "$strata" --bootstrap "$1" cluster info | awk '/^controller:/ {print $2}'
}

for run in $(seq 1 "$runs"); do
  dir=$(mktemp -d /tmp/strata-cluster-bench.XXXXXX)
  fifo="$dir/out"
  mkfifo "$fifo"
  start=$(ms)
  "$strata" dev-cluster --nodes 3 --base-port "$base" --data-dir "$dir" >"$fifo" &
  cluster=$!
  exec 3<"$fifo"
  while read -r line <&3; do
    case "$line" in bootstrap:*) break ;; esac
  done
  formed=$(ms)
  echo "run $run: 3 nodes serving one cluster from a cold start: $((formed - start)) ms"

  topic="propagate-$run"
  "$strata" --bootstrap "$bootstrap" topic create "$topic" --partitions 3 >/dev/null
  created=$(ms)
  for port in $((base + 1)) $((base + 2)); do
    for _ in $(seq 1 1000); do
      if "$strata" --bootstrap "127.0.0.1:$port" topic describe "$topic" >/dev/null 2>&1; then break; fi
    done
  done
  echo "run $run: topic seen by the other two brokers $(($(ms) - created)) ms after CreateTopics returned"

  big_start=$(ms)
  "$strata" --bootstrap "$bootstrap" topic create "big-$run" --partitions 1000 >/dev/null
  echo "run $run: CreateTopics of 1,000 partitions: $(($(ms) - big_start)) ms"

  sleep 2
  for node in 1 2 3; do
    pid=$(pgrep -f "serve --data-dir $dir/node-$node" | head -1)
    echo "run $run: node $node idle RSS: $(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status")"
  done

  leader=$(controller_of "$bootstrap")
  survivor=$(( leader == 1 ? 2 : 1 ))
  pid=$(pgrep -f "serve --data-dir $dir/node-$leader" | head -1)
  killed=$(ms)
  kill -9 "$pid"
  for _ in $(seq 1 600); do
    if "$strata" --bootstrap "127.0.0.1:$((base + survivor - 1))" topic create "after-$run" --partitions 1 >/dev/null 2>&1; then break; fi
  done
  echo "run $run: kill -9 of controller $leader to a successful CreateTopics via node $survivor: $(($(ms) - killed)) ms"

  kill -INT "$cluster"
  wait "$cluster" || true
  exec 3<&-
  rm -rf "$dir"
done
