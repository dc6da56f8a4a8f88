#!/usr/bin/env bash
# The acceptance run of the analytics (data quality and market abuse), by hand, in release:
#
#   bash scripts/acceptance-analytics.sh [EVENTS]      # default 2000000
#
# Generates EVENTS trades at the default defect and anomaly rates with their ground truth
# (1000 trades/s of event time),
# then runs the engine on them
#   - from the file at -w 1, at -w 2, as 2 processes × 1 worker (scripts/cluster.sh), and
#     killed with SIGKILL twice mid-run at -w 2, then resumed;
#   - through Kafka (tansu, 4 partitions) at -w 2 and as 2 processes × 1 worker;
# and checks that candles, alerts (all but the wall-clock detection time) and wash_stats are
# identical in every run, that quality is identical among the file runs and among the Kafka
# runs (a record late or refused counts in the window of its partition's clock, and a file's
# chunks are other partitions than a topic's), and that the quality sums of every run equal
# the injected counts. Ends with `tickflow eval` of the -w 2 run against the truth.
# Work files go to bench-data/acceptance/ (kept for inspection).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
events=${1:-2000000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
cargo build --release --locked --quiet -p tickflow
bin=$CARGO_TARGET_DIR/release/tickflow
work=$root/bench-data/acceptance
rm -rf "$work"
mkdir -p "$work"
trades=$work/trades.jsonl
truth=$work/truth.jsonl
# 1000 trades/s of event time: 2M trades span 33 minutes, three times the rules' longest
# history (11 minutes), so that a run stores resume offsets long before it ends.
"$bin" generate --out "$trades" --events "$events" --rate 1000 --truth "$truth" --quiet
echo "generated $events trades at the default rates: $(wc -l < "$truth") injections"

sql() { "$bin" sql --db "$1" "$2"; }
ALERTS="SELECT alert_id, kind, symbol, account, event_ms, severity, score, details FROM alerts ORDER BY alert_id"
NAMES=(candles alerts wash_stats)
TABLES=(
    "SELECT * FROM candles ORDER BY symbol, window_ms, start_ms"
    "$ALERTS"
    "SELECT * FROM wash_stats ORDER BY 1, 2, 3"
)
QUALITY="SELECT * FROM quality ORDER BY symbol, window_ms, start_ms"
SUMS="SELECT sum(total), sum(valid), sum(malformed), sum(invalid), sum(duplicate), sum(conflicting), sum(late), sum(gap) FROM quality"
failed=0
same() { # same DB_A DB_B QUERY WHAT
    if cmp -s <(sql "$1" "$3") <(sql "$2" "$3"); then
        echo "  same $4: $(basename "$1") = $(basename "$2") ($(sql "$2" "$3" | wc -l) lines)"
    else
        echo "  DIFFERENT $4: $(basename "$1") vs $(basename "$2")" >&2
        failed=1
    fi
}
run() { "$bin" run --source "$1" --sink "sqlite:$2" "${@:3}" --quiet; }

echo "== file, -w 1 and -w 2"
/usr/bin/time -f "  -w 1: %e s, peak RSS %M KB" "$bin" run --source "file:$trades" --sink "sqlite:$work/w1.db" -w 1 --quiet
/usr/bin/time -f "  -w 2: %e s, peak RSS %M KB" "$bin" run --source "file:$trades" --sink "sqlite:$work/w2.db" -w 2 --quiet
echo "== file, 2 processes × 1 worker"
TICKFLOW=$bin TICKFLOW_CLUSTER_RETRIES=0 scripts/cluster.sh 2 -w 1 --source "file:$trades" --sink "sqlite:$work/p2.db" --quiet > /dev/null
echo "== file, -w 2, killed twice mid-run (SIGKILL) and resumed"
killed=$work/killed.db
offsets() { sql "$killed" "SELECT coalesce(sum(next_offset), 0) FROM source_offsets" 2> /dev/null | tail -n 1 || echo 0; }
for delay in 0.3 1.0; do
    before=$(offsets)
    "$bin" run --source "file:$trades" --sink "sqlite:$killed" -w 2 --quiet > "$work/killed.out" 2>&1 &
    pid=$!
    while [[ $(offsets) == "$before" ]] && kill -0 "$pid" 2> /dev/null; do sleep 0.05; done
    sleep "$delay"
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
    if grep -q "events read" "$work/killed.out"; then
        echo "  the kill landed after the end of the run: not a mid-run kill" >&2
        failed=1
    fi
    echo "  killed after $delay s past its first stored offsets: stored offsets $(offsets)"
done
run "file:$trades" "$killed" -w 2 > /dev/null

for db in w2 p2 killed; do
    for k in "${!TABLES[@]}"; do same "$work/w1.db" "$work/$db.db" "${TABLES[k]}" "${NAMES[k]}"; done
    same "$work/w1.db" "$work/$db.db" "$QUALITY" quality
done

echo "== Kafka (tansu), 4 partitions: -w 2 and 2 processes × 1 worker"
# shellcheck source=scripts/tansu.sh
source "$root/scripts/tansu.sh"
trap stop_tansu EXIT
start_tansu "$work"
topic="kafka://127.0.0.1:$TANSU_PORT/trades"
"$bin" produce --to "$topic" --partitions 4 --source "file:$trades" --quiet
"$bin" run --source "$topic" --exit-at-end --sink "sqlite:$work/k-w2.db" -w 2 --quiet > /dev/null
TICKFLOW=$bin TICKFLOW_CLUSTER_RETRIES=0 scripts/cluster.sh 2 -w 1 --source "$topic?group=cluster" --exit-at-end \
    --sink "sqlite:$work/k-p2.db" --quiet > /dev/null
for db in k-w2 k-p2; do
    for k in "${!TABLES[@]}"; do same "$work/w1.db" "$work/$db.db" "${TABLES[k]}" "${NAMES[k]}"; done
done
same "$work/k-w2.db" "$work/k-p2.db" "$QUALITY" quality

echo "== quality sums (total valid malformed invalid duplicate conflicting late gap)"
for db in w1 w2 p2 killed k-w2 k-p2; do
    echo "  $db: $(sql "$work/$db.db" "$SUMS" | tail -n 1)"
done

echo "== tickflow eval of the -w 2 run against the truth"
"$bin" eval --truth "$truth" --results "sqlite:$work/w2.db" || failed=1
"$bin" eval --truth "$truth" --results "sqlite:$work/k-w2.db" --json > "$work/eval-kafka.json" || failed=1
if ((failed)); then
    echo "acceptance: FAILED" >&2
    exit 1
fi
echo "acceptance: passed"
