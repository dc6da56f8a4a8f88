#!/usr/bin/env bash
# Benchmark: what the analytics of issue 9 (quality, market and account rules) cost, side
# by side in one run of one binary.
#
# On generated trades read from the page cache (EVENTS, default 5000000, with the default
# defect rate; ACCOUNTS, default 0: a public feed without accounts, where the account rules
# have nothing to judge; ACCOUNTS=1000 gives every trade a buyer and a seller and injects
# the default anomaly rate), RUNS times each (default 3), alternating run by run:
#   1. the parse floor (read + parse, one thread; benchmarks/parse_floor.rs);
#   2. file → candles only → none at -w 2 (every check and the model switched off in a
#      config file);
#   3. file → candles + quality → none at -w 2;
#   4. file → every table (the defaults: every check on, and since issue 10 the model) → none
#      at -w 2;
#   5. the same → SQLite at -w 2.
# Prints markdown rows (median events/s, every run, median peak RSS) and the ratios of this
# one run: each pipeline against candles only and against the parse floor.
#
#     bash benchmarks/analytics.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-5000000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
build
accounts=${ACCOUNTS:-0}
file=$data/analytics-$events-$accounts.jsonl
if [[ ! -s $file ]]; then
    anomalies=0
    if ((accounts > 0)); then anomalies=0.0002; fi
    "$bin" generate --out "$file" --events "$events" --accounts "$accounts" --anomalies "$anomalies" \
        --truth "$data/analytics-$events-$accounts.truth.jsonl" --quiet
fi
cat "$file" > /dev/null

# Config files: everything off but the candles; quality alone.
off=$data/analytics-candles-only.toml
quality=$data/analytics-quality-only.toml
rules_off=$(cat <<'TOML'
[market.bad_tick]
enabled = false
[market.volume_burst]
enabled = false
[market.pump_and_dump]
enabled = false
[market.benford]
enabled = false
[market.round_sizes]
enabled = false
[accounts.wash_trade]
enabled = false
[accounts.velocity_burst]
enabled = false
[accounts.wash_ring]
enabled = false
[model]
enabled = false
TOML
)
# Before the rules were wired in, their sections do not exist: keep what the binary takes.
printf '[quality]\nenabled = false\n%s\n' "$rules_off" > "$off"
printf '[quality]\nenabled = true\n%s\n' "$rules_off" > "$quality"
probe=$data/analytics-probe.jsonl
"$bin" generate --out "$probe" --events 100 --defects 0 --anomalies 0 --truth /dev/null --quiet
if ! "$bin" run --config "$off" --source "file:$probe" --sink none --quiet > /dev/null 2>&1; then
    printf '[quality]\nenabled = false\n' > "$off"
    printf '[quality]\nenabled = true\n' > "$quality"
fi

before_run() { rm -f "$data"/analytics-*.db*; }

echo "file: $file ($events trades, accounts $accounts); $(nproc) cores; runs: $runs; $(git rev-parse --short HEAD)"
echo "| what | median events/s | all runs | peak RSS |"
echo "|---|---|---|---|"
row "parse floor (read + parse, 1 thread)" < <(for ((i = 0; i < runs; i++)); do run_once "$floor" "$file"; done)
parse_floor=$row_median

labels=("candles only, -w 2 → none" "candles + quality, -w 2 → none" "every check (default), -w 2 → none" "every check (default), -w 2 → SQLite")
commands=(
    "$bin run --source file:$file --sink none -w 2 --quiet --config $off"
    "$bin run --source file:$file --sink none -w 2 --quiet --config $quality"
    "$bin run --source file:$file --sink none -w 2 --quiet"
    "$bin run --source file:$file --sink sqlite:$data/analytics-all.db -w 2 --quiet"
)
alternate
for ((k = 1; k < ${#commands[@]}; k++)); do
    printf '| ratio to candles only: %s | %.2f | | |\n' "${labels[k]}" "$(bc -l <<< "${medians[k]} / ${medians[0]}")"
done
for ((k = 0; k < ${#commands[@]}; k++)); do
    printf '| ratio to the parse floor: %s | %.2f | | |\n' "${labels[k]}" "$(bc -l <<< "${medians[k]} / $parse_floor")"
done
