#!/usr/bin/env bash
# Benchmark: what the regression model costs the pipeline, side by side in one run of one
# binary (issue 10: the pipeline with the model keeps ≥ 90 % of candles-only throughput).
#
# Two generated markets of EVENTS trades (default 2000000, no defects or anomalies), read
# from the page cache: the generator's default density (10 000 trades per second of event
# time over 8 symbols, ~1250 trades per 1 s candle) and a sparse one (RATE_SPARSE, default
# 800 trades/s: ~100 trades per candle, 12× the candles per trade). For each, RUNS times
# (default 3), alternating run by run, at -w 2, every check off:
#   1. the parse floor (read + parse, one thread; benchmarks/parse_floor.rs);
#   2. candles only (--no-model) → none;
#   3. candles + the default model (1 s candles, open/high/low/volume, all history) → none;
#   4. candles + a 7-feature model with horizon 1 over the last 1000 samples → none;
#   5. candles only → SQLite;  6. candles + the default model → SQLite.
# Prints markdown rows (median events/s, every run, median peak RSS) and the ratios of
# this one run.
#
#     bash benchmarks/model.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-2000000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
build
off=$data/model-checks-off.toml
printf '[quality]\nenabled = false\n' > "$off"
for section in market.bad_tick market.volume_burst market.pump_and_dump market.benford \
    market.round_sizes accounts.wash_trade accounts.velocity_burst accounts.wash_ring; do
    printf '[%s]\nenabled = false\n' "$section" >> "$off"
done
before_run() { rm -f "$data"/model-*.db*; }

echo "$(nproc) cores; runs: $runs; $(git rev-parse --short HEAD); every check off, -w 2"
for density in default sparse; do
    file=$data/model-$events-$density.jsonl
    rate=()
    if [[ $density == sparse ]]; then rate=(--rate "${RATE_SPARSE:-800}"); fi
    if [[ ! -s $file ]]; then
        "$bin" generate --out "$file" --events "$events" --defects 0 --anomalies 0 "${rate[@]}" \
            --truth /dev/null --quiet
    fi
    cat "$file" > /dev/null
    candles=$("$bin" run --source "file:$file" --sink none -w 2 --quiet --config "$off" --no-model |
        grep -oE '[0-9]+ candles' | head -n 1)
    echo
    echo "market: $density ($events trades, $candles)"
    echo "| what | median events/s | all runs | peak RSS |"
    echo "|---|---|---|---|"
    row "parse floor (read + parse, 1 thread)" < <(for ((i = 0; i < runs; i++)); do run_once "$floor" "$file"; done)
    parse_floor=$row_median
    common="run --source file:$file -w 2 --quiet --config $off"
    labels=(
        "candles only → none"
        "candles + model (default) → none"
        "candles + model (7 features, h 1, last 1000) → none"
        "candles only → SQLite"
        "candles + model (default) → SQLite"
    )
    commands=(
        "$bin $common --sink none --no-model"
        "$bin $common --sink none"
        "$bin $common --sink none --model-features open,high,low,close,volume,vwap,trades --model-horizon 1 --model-window 1000"
        "$bin $common --sink sqlite:$data/model-a.db --no-model"
        "$bin $common --sink sqlite:$data/model-b.db"
    )
    alternate
    printf '| ratio: model (default) / candles only, → none | %.2f | | |\n' "$(bc -l <<< "${medians[1]} / ${medians[0]}")"
    printf '| ratio: model (7 features) / candles only, → none | %.2f | | |\n' "$(bc -l <<< "${medians[2]} / ${medians[0]}")"
    printf '| ratio: model (default) / candles only, → SQLite | %.2f | | |\n' "$(bc -l <<< "${medians[4]} / ${medians[3]}")"
    printf '| ratio to the parse floor: candles + model (default) → none | %.2f | | |\n' "$(bc -l <<< "${medians[1]} / $parse_floor")"
done
