#!/usr/bin/env bash
# Benchmark: file → candles → SQLite, against the parse floor.
#
# Measures, on a JSON-lines file of generated trades read from the page cache, with the
# default 1s,1m windows:
#   1. the parse floor: read + parse only, one thread (benchmarks/parse_floor.rs);
#   2. the whole pipeline `tickflow run --source file:… --sink sqlite:…` at -w 1 and -w 2;
#   3. the same with --sink none (the cost of the sink);
#   4. latency: the generator paced in real time at LIVE_RATE events/s (default 250000) for
#      LIVE_SECONDS (default 20) into SQLite at -w 2: the wall time from each window's end
#      to its commit (p50/p99; it includes the 2 s allowed lateness a window must wait).
# Each is run RUNS times (default 3); the table gives medians of events/s, and the peak RSS
# from /usr/bin/time. Results go to stdout as markdown rows for benchmarks/README.md.
#
#     bash benchmarks/run.sh [EVENTS]      # default 10000000 (~1.4 GB in bench-data/)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
setup "$events"
floor=$CARGO_TARGET_DIR/release/parse-floor
size=$(du -m "$file" | cut -f1)

before_run() { rm -f "$data"/bench.db*; }

echo "file: $file ($events trades, $size MB); $(nproc) cores; runs: $runs"
echo "| what | median events/s | all runs | peak RSS |"
echo "|---|---|---|---|"
measure "parse floor (read + parse, 1 thread)" "$floor" "$file"
measure "file → candles → none, -w 1" "$bin" run --source "file:$file" --sink none -w 1 --quiet
measure "file → candles → none, -w 2" "$bin" run --source "file:$file" --sink none -w 2 --quiet
measure "file → candles → SQLite, -w 1" "$bin" run --source "file:$file" --sink "sqlite:$data/bench.db" -w 1 --quiet
measure "file → candles → SQLite, -w 2" "$bin" run --source "file:$file" --sink "sqlite:$data/bench.db" -w 2 --quiet

live_rate=${LIVE_RATE:-250000}
live_seconds=${LIVE_SECONDS:-20}
echo
echo "latency: generator paced at $live_rate events/s for ${live_seconds}s → candles → SQLite, -w 2"
for ((i = 0; i < runs; i++)); do
    rm -f "$data"/live.db*
    /usr/bin/time -f "peak RSS %M KB" "$bin" run --rate "$live_rate" --events $((live_rate * live_seconds)) \
        -w 2 --sink "sqlite:$data/live.db" --quiet 2>&1 | grep -E "events/s|window end|RSS" | sed -E 's/^tickflow: //'
done
