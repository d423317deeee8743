#!/usr/bin/env bash
# Replication measurements for docs/benchmarks.md, everything on this one machine
# (client and three brokers sharing its cores): produce throughput and latency of
# 1 KiB records with replication factor 1 and acks=1 against replication factor 3 and
# acks=all (`strata perf`, one partition each), the followers' lag behind the
# leader during the acks=all run (from /metrics), and the time from kill -9 of the
# replicated partition's leader to the first successful acks=all produce through
# another node.
#
# Usage: tools/replication_bench.sh [RECORDS]   (after `cargo build --release`)
# Uses ports 29092-29094, 29192-29194, 29292-29294 on 127.0.0.1 and a temporary
# data directory.
set -euo pipefail

records=${1:-200000}
strata=${STRATA:-target/release/strata}
base=29092
bootstrap="127.0.0.1:$base"
ms() { date +%s%3N; }

dir=$(mktemp -d /tmp/strata-replication-bench.XXXXXX)
mkfifo "$dir/out"
"$strata" dev-cluster --nodes 3 --base-port "$base" --data-dir "$dir" >"$dir/out" &
cluster=$!
trap 'kill -INT "$cluster" 2>/dev/null; wait "$cluster" 2>/dev/null; rm -rf "$dir"' EXIT
exec 3<"$dir/out"
while read -r line <&3; do
  case "$line" in bootstrap:*) break ;; esac
done

"$strata" --bootstrap "$bootstrap" topic create rf1 --partitions 1 --replication-factor 1 >/dev/null
"$strata" --bootstrap "$bootstrap" topic create rf3 --partitions 1 --replication-factor 3 >/dev/null
sleep 1
echo "RF 1, acks=1:   $("$strata" --bootstrap "$bootstrap" perf produce rf1 \
  --num-records "$records" --record-size 1024 --acks 1 --json)"
# Replica lag under that load: every node's /metrics sampled every 100 ms while
# the acks=all run goes on (the leader reports each follower's lag).
"$strata" --bootstrap "$bootstrap" perf produce rf3 \
  --num-records "$records" --record-size 1024 --acks all --json >"$dir/rf3.json" &
perf_run=$!
: >"$dir/lag"
while kill -0 "$perf_run" 2>/dev/null; do
  for port in $((base + 200)) $((base + 201)) $((base + 202)); do
    curl -s "http://127.0.0.1:$port/metrics" |
      awk '/^strata_partition_replica_lag_(offsets|bytes)\{topic="rf3"/ {print $1, $2}' >>"$dir/lag"
  done
  sleep 0.1
done
wait "$perf_run"
echo "RF 3, acks=all: $(cat "$dir/rf3.json")"
echo "replica lag under that load (max over 100 ms samples): $(awk '
  /_offsets/ { if ($2 > o) o = $2; n++ } /_bytes/ { if ($2 > b) b = $2 }
  END { printf "%d offsets, %d bytes (%d samples)", o, b, n }' "$dir/lag")"

leader=$("$strata" --bootstrap "$bootstrap" topic describe rf3 | awk '$1 == "0" {print $2}')
survivor=$(( leader == 1 ? 2 : 1 ))
pid=$(pgrep -f "serve --data-dir $dir/node-$leader" | head -1)
killed=$(ms)
kill -9 "$pid"
for _ in $(seq 1 3000); do
  if echo x | "$strata" --bootstrap "127.0.0.1:$((base + survivor - 1))" \
      produce rf3 --acks all >/dev/null 2>&1; then
    break
  fi
done
echo "kill -9 of leader $leader to the first acks=all produce via node $survivor: $(($(ms) - killed)) ms"
