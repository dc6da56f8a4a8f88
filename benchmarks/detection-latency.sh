#!/usr/bin/env bash
# Detection latency in real time (issue 9): the generator paced on the wall clock with
# anomalies injected, every check on, -w 2, SQLite sink:
#
#   bash benchmarks/detection-latency.sh [SECONDS]     # default 60; env RUNS=3, RATE=10000,
#                                                      # ANOMALIES=0.001 (5x the default: more alerts)
#
# Each run prints the engine's own measurement: for every alert, the wall-clock time from
# the moment the watermark passed its event time (every local worker's source had moved
# beyond it) to its decision (`detected_ms`), as percentiles over all alerts and per kind;
# and, for scale, the time from a window's end to the commit of its candle (which includes
# the 2 s lateness). The market-shaping kinds start after 4 minutes of trading (the rules'
# warm-up), so SECONDS=360 or more includes them; shorter runs measure the others.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
cargo build --release --locked --quiet -p tickflow
bin=$CARGO_TARGET_DIR/release/tickflow
seconds=${1:-60}
runs=${RUNS:-3}
rate=${RATE:-10000}
anomalies=${ANOMALIES:-0.001}
work=bench-data/latency
mkdir -p "$work"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(date -u +%F)"
echo "command: tickflow run --rate $rate --events $((rate * seconds)) --anomalies $anomalies -w 2 --sink sqlite:$work/live.db"
for run in $(seq 1 "$runs"); do
    echo "== run $run"
    rm -f "$work"/live.db*
    /usr/bin/time -f "  peak RSS %M KB" "$bin" run --rate "$rate" --events $((rate * seconds)) \
        --anomalies "$anomalies" -w 2 --sink "sqlite:$work/live.db" 2>&1 \
        | grep -E "^tickflow: (done|alerts decided|window end)|peak RSS" | sed 's/^/  /'
done
