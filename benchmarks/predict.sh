#!/usr/bin/env bash
# Benchmark: `POST /predict` under load from a separate process (wrk, Debian package `wrk`)
# while the engine ingests, and what that load costs the ingest.
#
# The engine (release build, -w 2, the generator at --rate RATE, default 0: as fast as it
# goes; a RATE > 0 paces it, event time following the clock; EVENTS trades, default 20000000, every check on, the default model, --sink none) runs RUNS times
# (default 3) alone and RUNS times with wrk (1 thread, CONNECTIONS keep-alive connections,
# default 32, for SECONDS, default 10) posting predictions to it once its models are fitted.
# Prints the engine's events/s with and without the load, wrk's requests/s and latency
# percentiles, and the engine's peak RSS.
#
#     bash benchmarks/predict.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000000}
rate=${RATE:-0}
runs=${RUNS:-3}
connections=${CONNECTIONS:-32}
seconds=${SECONDS_LOAD:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
cargo build --release --locked --quiet -p tickflow
bin=$CARGO_TARGET_DIR/release/tickflow
if ! command -v wrk > /dev/null; then
    echo "wrk is not installed (Debian: apt-get install wrk)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/predict.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"symbol":"BTCUSDT","open":43000.5,"high":43100.25,"low":42950.0,"volume":3.75}'
wrk.headers["Content-Type"] = "application/json"
LUA
port=$((20000 + RANDOM % 20000))

engine() {
    /usr/bin/time -f "RSS %M" "$bin" run --rate "$rate" --events "$events" -w 2 --sink none \
        --serve "127.0.0.1:$port" --quiet > "$work/engine.out" 2> "$work/engine.err"
}

echo "$(nproc) cores; $(git rev-parse --short HEAD); engine: generator --rate $rate --events $events, -w 2, every check and the model on, --sink none"
echo "| run | engine events/s alone | engine events/s under load | requests/s | p50 | p90 | p99 | non-2xx | engine peak RSS |"
echo "|---|---|---|---|---|---|---|---|---|"
for ((i = 1; i <= runs; i++)); do
    engine
    alone=$(grep -oE '[0-9.]+ events/s' "$work/engine.out" | cut -d' ' -f1)
    engine &
    pid=$!
    # Wait for a fitted BTCUSDT model.
    for _ in $(seq 1 600); do
        if curl -s "http://127.0.0.1:$port/model/info?symbol=BTCUSDT" 2> /dev/null | grep -q '"status":"ok"'; then
            break
        fi
        sleep 0.05
    done
    wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$work/predict.lua" \
        "http://127.0.0.1:$port/predict" > "$work/wrk.out" 2>&1 || true
    ended_before=no
    if ! kill -0 "$pid" 2> /dev/null; then ended_before=yes; fi
    wait "$pid"
    loaded=$(grep -oE '[0-9.]+ events/s' "$work/engine.out" | cut -d' ' -f1)
    rss=$(grep -oE 'RSS [0-9]+' "$work/engine.err" | cut -d' ' -f2)
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.out")
    p90=$(awk '$1 == "90%" {print $2}' "$work/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")
    echo "| $i | $alone | $loaded | $rps | $p50 | $p90 | $p99 | ${non2xx:-0} | $((rss / 1024)) MB |"
    if [[ $ended_before == yes ]]; then
        echo "  (the engine ended before wrk did: raise EVENTS so the load falls within the ingest)"
    fi
done
echo
echo "last wrk output:"
cat "$work/wrk.out"
