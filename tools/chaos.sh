#!/usr/bin/env bash
# The long chaos run of tests/chaos.rs: three brokers behind fault-injecting
# proxies on loopback, an acks=all idempotent librdkafka load, and CYCLES faults
# (kill -9 of a leader, kill -9 of a leader that is ahead of its paused followers,
# a node cut off from everyone, a node paused past its session timeout), then
# every record read back. Prints one line per cycle and a summary: sent,
# acknowledged, failed, lost, duplicated, reordered. A failing run prints its seed;
# SEED replays the same faults.
#
# Usage: tools/chaos.sh [CYCLES] [SEED]   (builds the test in release mode;
# STRATA_CHAOS_FAULTS=Pause,CutOff limits the faults)
set -euo pipefail
cd "$(dirname "$0")/.."
export STRATA_CHAOS_CYCLES=${1:-100}
if [ -n "${2:-}" ]; then
  export STRATA_CHAOS_SEED=$2
fi
cargo test --release --test chaos -- --nocapture 2>&1 | grep --line-buffered '^chaos\|^test \|panicked\|FAILED\|Verdict'
