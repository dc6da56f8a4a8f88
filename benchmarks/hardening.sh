#!/usr/bin/env bash
# Benchmark: the cost of the hardening of issue 8, side by side with the commit before it.
#
# Builds the current tree and BASELINE (default a8be937, the last commit before the
# hardening) in release, then, on the same file of generated trades read from the page
# cache, alternates the two binaries RUNS times (default 3) for:
#   1. the parse floor (read + parse, one thread; the current tree's benchmarks/parse_floor.rs);
#   2. file → candles → none and → SQLite at -w 2 (default windows 1s,1m);
#   3. a flood of FLOOD (default 600000) malformed 900-byte lines → SQLite at -w 2: rejects/s
#      and peak RSS (every line ends in `rejects`).
# Prints markdown rows: median events/s (or lines/s), every run, median peak RSS; and the
# ratios current/baseline and pipeline/floor of this one run.
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
measure "parse floor (read + parse, 1 thread)" "$floor" "$file"
for version in "$baseline:$old" "current:$current"; do
    name=${version%%:*}
    exe=${version#*:}
    measure "$name: file → candles → none, -w 2" "$exe" run --source "file:$file" --sink none -w 2 --quiet
    measure "$name: file → candles → SQLite, -w 2" "$exe" run --source "file:$file" --sink "sqlite:$data/hard-$name.db" -w 2 --quiet
    measure "$name: flood of malformed lines → SQLite, -w 2" "$exe" run --source "file:$flood" --sink "sqlite:$data/hard-flood-$name.db" -w 2 --quiet
done
