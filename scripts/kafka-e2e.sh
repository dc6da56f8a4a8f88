#!/usr/bin/env bash
# End to end against a real Kafka-protocol broker: tansu (scripts/tansu.sh) on a free
# localhost port. 1M generated trades go into a 4-partition topic with `tickflow produce`;
# `tickflow run --exit-at-end` reads them with 2 workers and as 2 processes × 1 worker; each
# result must equal the file-source result.
#
#   scripts/kafka-e2e.sh TICKFLOW_BINARY WORK_DIR [EVENTS]
set -euo pipefail
bin=$1
work=$2
events=${3:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/tansu.sh
source "$root/scripts/tansu.sh"
trap stop_tansu EXIT
start_tansu "$work"
topic="kafka://127.0.0.1:$TANSU_PORT/trades"

"$bin" generate --out "$work/k.jsonl" --events "$events" --defects 0 --anomalies 0 --quiet
"$bin" run --source "file:$work/k.jsonl" --sink "sqlite:$work/k-file.db" -w 2 --quiet > /dev/null
"$bin" produce --to "$topic" --partitions 4 --source "file:$work/k.jsonl" --quiet

query="SELECT * FROM candles ORDER BY symbol, window_ms, start_ms"
expected=$("$bin" sql --db "$work/k-file.db" "SELECT count(*) FROM candles" | tail -n 1)
check() {
    if ! cmp -s <("$bin" sql --db "$work/k-file.db" "$query") <("$bin" sql --db "$1" "$query"); then
        echo "kafka-e2e: $2 differs from the file result" >&2
        exit 1
    fi
    echo "kafka-e2e: $2 gives the file-source candles ($expected rows)"
}

"$bin" run --source "$topic" --exit-at-end --sink "sqlite:$work/k-w2.db" -w 2 --quiet > /dev/null
check "$work/k-w2.db" "-w 2"

# A separate consumer group, so the first run's group offsets don't matter (results resume
# from the database, which is new).
TICKFLOW=$bin "$root/scripts/cluster.sh" 2 -w 1 --source "$topic?group=cluster" --exit-at-end \
    --sink "sqlite:$work/k-p2.db" --quiet > /dev/null
check "$work/k-p2.db" "2 processes × 1 worker"
