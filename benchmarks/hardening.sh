#!/usr/bin/env bash
# Benchmark: the cost of the hardening of issue 8, side by side with the commit before it.
#
# Builds the current tree and BASELINE (default a8be937, the last commit before the
# hardening) in release, then, on the same file of generated trades read from the page
# cache, alternates the two binaries RUNS times (default 3) for:
#   1. the parse floor (read + parse, one thread; the current tree's benchmarks/parse_floor.rs);
#   2. file → candles → none and → SQLite at -w 2 (default windows 1s,1m);
#   3. a flood of FLOOD (default 600000) malformed 900-byte lines → SQLite at -w 2: rejects/s
#      and peak RSS (every line ends in `rejects`);
#   4. the sink floor: the same rejects handed straight to the SQLite writer, one thread
#      (benchmarks/sink_floor.rs), the ceiling of 3.
# The two binaries alternate run by run. Prints markdown rows: median events/s (or
# lines/s), every run, median peak RSS; and the ratios current/baseline and pipeline/floor
# of this one run.
#
#     bash benchmarks/hardening.sh [EVENTS]     # default 10000000 (~1.3 GB in bench-data/)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-10000000}
baseline=${BASELINE:-a8be937}
flood_lines=${FLOOD:-600000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
setup "$events"
floor=$CARGO_TARGET_DIR/release/parse-floor
current=$data/tickflow-current
cp "$bin" "$current"

# The baseline, built in a worktree of its own (same target directory: the dependencies
# are shared, the binary is copied out before anything else is built).
old=$data/tickflow-$baseline
if [[ ! -x $old ]]; then
    tree=$data/worktree-$baseline
    [[ -d $tree ]] || git worktree add --detach "$tree" "$baseline" > /dev/null
    (cd "$tree" && cargo build --release --locked --quiet -p tickflow)
    cp "$CARGO_TARGET_DIR/release/tickflow" "$old"
    git worktree remove --force "$tree"
    # Rebuild the current binary's name in the target directory for the other scripts.
    cargo build --release --locked --quiet -p tickflow
fi

flood=$data/flood-$flood_lines.jsonl
if [[ ! -s $flood ]]; then
    python3 - "$flood_lines" > "$flood" <<'PY'
import sys
pad = "x" * 860
for i in range(int(sys.argv[1])):
    # Truncated JSON: each line is a `malformed_json` reject of ~910 bytes.
    print('{"e":"trade","s":"BTCUSDT","t":%d,"p":"1","pad":"%s"' % (i, pad))
PY
fi
cat "$flood" > /dev/null

before_run() { rm -f "$data"/hard-*.db*; }

echo "file: $file ($events trades); flood: $flood ($flood_lines lines); $(nproc) cores; runs: $runs"
echo "| what | median events/s | all runs | peak RSS |"
echo "|---|---|---|---|"
row "parse floor (read + parse, 1 thread)" < <(for ((i = 0; i < runs; i++)); do run_once "$floor" "$file"; done)
parse_floor=$row_median
row "sink floor: the flood's rejects straight into the SQLite writer, 1 thread" < <(
    for ((i = 0; i < runs; i++)); do run_once "$CARGO_TARGET_DIR/release/sink-floor" "$flood" "$data/hard-floor.db"; done)
sink_floor=$row_median
# The two binaries alternate run by run, so that a noisy spell hits both alike; each pair
# of rows ends with the ratio of their medians.
pair() {
    local label=$1 floor_name=$2 floor_rate=$3 i
    shift 3
    local base=() cur=()
    for ((i = 0; i < runs; i++)); do
        base+=("$(run_once "$old" "$@")")
        cur+=("$(run_once "$current" "$@")")
    done
    row "$baseline: $label" < <(printf '%s\n' "${base[@]}")
    local b=$row_median
    row "current: $label" < <(printf '%s\n' "${cur[@]}")
    printf '| ratio current/%s: %s | %.2f | | |\n' "$baseline" "$label" "$(bc -l <<< "$row_median / $b")"
    printf '| ratio current/%s: %s | %.2f | | |\n' "$floor_name" "$label" "$(bc -l <<< "$row_median / $floor_rate")"
}
pair "file → candles → none, -w 2" "parse floor" "$parse_floor" run --source "file:$file" --sink none -w 2 --quiet
pair "file → candles → SQLite, -w 2" "parse floor" "$parse_floor" run --source "file:$file" --sink "sqlite:$data/hard-run.db" -w 2 --quiet
pair "flood of malformed lines → SQLite, -w 2" "sink floor" "$sink_floor" run --source "file:$flood" --sink "sqlite:$data/hard-flood.db" -w 2 --quiet
