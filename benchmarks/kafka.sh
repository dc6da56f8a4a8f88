#!/usr/bin/env bash
# Benchmark: the Kafka path against a plain consumer, on the tansu broker (scripts/tansu.sh,
# memory storage) over loopback.
#
# Generates EVENTS trades (default 5 000 000) as JSON lines, then measures RUNS times each
# (default 3; medians):
#   1. produce: `tickflow produce --source file:… --partitions 4` into a fresh topic (lz4,
#      idempotent, acks=all, every delivery report checked);
#   2. the floor: `kafka-count` (benchmarks/kafka_count.rs), plain rdkafka consumers that
#      only count messages, with 1 and 2 consumer threads;
#   3. `tickflow run --source kafka://… --exit-at-end` → candles → none / SQLite, -w 1 and -w 2.
# The broker runs on the same 2 cores as the consumers. Prints markdown rows.
#
#     bash benchmarks/kafka.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-5000000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
setup "$events"
count=$CARGO_TARGET_DIR/release/kafka-count

# shellcheck source=scripts/tansu.sh
source scripts/tansu.sh
trap stop_tansu EXIT
start_tansu "$data"
broker="kafka://127.0.0.1:$TANSU_PORT"

echo "$events trades ($(du -m "$file" | cut -f1) MB of JSON lines), 4 partitions, tansu $TANSU_PORT; $(nproc) cores; runs: $runs"
echo "| what | median events/s | all runs | peak RSS |"
echo "|---|---|---|---|"
produced=0
before_run() { produced=$((produced + 1)); }
measure "produce (file → topic, lz4, acks=all)" \
    bash -c "exec \"$bin\" produce --to \"$broker/produce-\$RANDOM\$RANDOM\" --partitions 4 --source \"file:$file\" --quiet 2>&1"
"$bin" produce --to "$broker/trades" --partitions 4 --source "file:$file" --quiet
before_run() { rm -f "$data"/kafka.db*; }
measure "floor: plain consumer, counting, 1 thread" "$count" "$broker/trades" "$events" 1
measure "floor: plain consumers, counting, 2 threads" "$count" "$broker/trades" "$events" 2
measure "kafka → candles → none, -w 1" "$bin" run --source "$broker/trades" --exit-at-end --sink none -w 1 --quiet
measure "kafka → candles → none, -w 2" "$bin" run --source "$broker/trades" --exit-at-end --sink none -w 2 --quiet
measure "kafka → candles → SQLite, -w 2" "$bin" run --source "$broker/trades" --exit-at-end --sink "sqlite:$data/kafka.db" -w 2 --quiet
