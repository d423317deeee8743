#!/usr/bin/env bash
# tools/flaky.sh: runs end-to-end tests many times, under CPU load, and reports the
# failures per test, so that a test that fails one run in fifty can be caught here
# rather than in CI.
#
#   tools/flaky.sh [-n RUNS] [-j PARALLEL] [-l BUSY_LOOPS] [TARGET[:FILTER] ...]
#
#   TARGET   an integration test binary (a file name in tests/ without .rs, e.g.
#            kafka_python); FILTER is passed to it as the usual test-name filter.
#            Default: every binary in tests/.
#   -n RUNS        how many times each target runs (default 20)
#   -j PARALLEL    how many runs at once (default 2: the test suite runs binaries
#                  one after another, but each binary runs its tests in parallel)
#   -l BUSY_LOOPS  shell busy loops kept spinning meanwhile, to compete with the
#                  brokers and clients for the CPU as a parallel build does in CI
#                  (default 2)
#
# Example: tools/flaky.sh -n 50 -j 4 kafka_python:consumer_group
#
# The test binaries are built once (`cargo test --no-run`). Each run's output is
# kept in target/flaky/<target>-<run>.log and the broker logs of a failing test in
# target/tmp/failed-broker-logs/ (tests/common keeps them). Exits 1 if any run failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs=20
parallel=2
busy_loops=2
while getopts "n:j:l:h" option; do
    case "$option" in
        n) runs="$OPTARG" ;;
        j) parallel="$OPTARG" ;;
        l) busy_loops="$OPTARG" ;;
        *) sed -n '2,26p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    for file in tests/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi

export STRATA_PYTHON="${STRATA_PYTHON:-$(pwd)/.venv/bin/python}"
out_dir="target/flaky"
rm -rf "$out_dir"
mkdir -p "$out_dir"

# Build once; map each test target to its executable.
declare -A executable
while IFS=$'\t' read -r name path; do
    executable["$name"]="$path"
done < <(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") \
            and "test" in message["target"]["kind"]:
        print(message["target"]["name"], message["executable"], sep="\t")
')

busy_pids=()
stop_busy_loops() {
    for pid in "${busy_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}
trap stop_busy_loops EXIT
for _ in $(seq 1 "$busy_loops"); do
    (while :; do :; done) &
    busy_pids+=("$!")
done

run_one() { # target filter run
    local exe="${executable[$1]:-}"
    local log="$out_dir/$1-$3.log"
    if [ -z "$exe" ]; then
        echo "no test binary named $1" >"$log"
        return
    fi
    # A test binary run from the package root, as `cargo test` runs it.
    if [ -n "$2" ]; then
        "$exe" "$2" >"$log" 2>&1 || true
    else
        "$exe" >"$log" 2>&1 || true
    fi
}

# Waits for the runs only: a plain `wait` would also wait for the busy loops.
running=()
for run in $(seq 1 "$runs"); do
    for target in "${targets[@]}"; do
        name="${target%%:*}"
        filter=""
        [[ "$target" == *:* ]] && filter="${target#*:}"
        run_one "$name" "$filter" "$run" &
        running+=("$!")
        if [ "${#running[@]}" -ge "$parallel" ]; then
            wait "${running[@]}"
            running=()
        fi
    done
done
if [ "${#running[@]}" -gt 0 ]; then
    wait "${running[@]}"
fi

# Per test: runs and failures, from libtest's "test NAME ... ok|FAILED" lines.
python3 - "$out_dir" <<'PY'
import collections, pathlib, re, sys
out_dir = pathlib.Path(sys.argv[1])
runs = collections.Counter()
failures = {}
broken = []
for log in sorted(out_dir.glob("*.log")):
    target = log.stem.rsplit("-", 1)[0]
    text = log.read_text(errors="replace")
    if "test result:" not in text:
        broken.append(str(log))
    for name, outcome in re.findall(r"^test (\S+) \.\.\. (ok|FAILED)$", text, re.M):
        runs[f"{target}::{name}"] += 1
        if outcome == "FAILED":
            failures.setdefault(f"{target}::{name}", []).append(str(log))
width = max((len(name) for name in runs), default=4)
for name in sorted(runs):
    print(f"{name:<{width}}  {runs[name]:>4} runs  {len(failures.get(name, [])):>3} failed")
for name, logs in sorted(failures.items()):
    print(f"FAILED {name}: {', '.join(logs)}")
for log in broken:
    print(f"NO RESULT (build error, crash or unknown target): {log}")
total = sum(runs.values())
failed = sum(len(logs) for logs in failures.values())
print(f"{total - failed} passed, {failed} failed")
sys.exit(1 if failed or broken else 0)
PY
