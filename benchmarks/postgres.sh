#!/usr/bin/env bash
# Benchmark: the PostgreSQL sink, against --sink none, on a local PostgreSQL with its
# durable defaults (fsync on; scripts/pg.sh with PG_DURABLE=1) on the same 2 cores.
#
# On EVENTS generated trades (default 5 000 000) as JSON lines, each RUNS times (default 3;
# medians), each PostgreSQL run into a new database:
#   1. file → candles → none, -w 2 (the reference);
#   2. file → candles → PostgreSQL, -w 2: the sink's cost with candles only;
#   3. the same with --store-trades: every trade archived by binary COPY (one writer);
#      rows/s = events/s, as every event is a valid trade;
# then one more --store-trades run that reports the CPU time PostgreSQL itself used.
#
#     bash benchmarks/postgres.sh [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-5000000}
# shellcheck source=benchmarks/lib.sh
source benchmarks/lib.sh
setup "$events"

pgdir=$data/pg
trap 'bash scripts/pg.sh remove "$pgdir"' EXIT
server=$(PG_DURABLE=1 bash scripts/pg.sh start "$pgdir")
db="${server%/*}/bench"

fresh_db() {
    psql -q "$server" -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" > /dev/null
}

echo "$events trades ($(du -m "$file" | cut -f1) MB of JSON lines); PostgreSQL $(psql -Atc 'SHOW server_version' "$server") with fsync on; $(nproc) cores; runs: $runs"
echo "| what | median events/s | all runs | peak RSS |"
echo "|---|---|---|---|"
before_run() { :; }
measure "file → candles → none, -w 2" "$bin" run --source "file:$file" --sink none -w 2 --quiet
before_run() { fresh_db; }
measure "file → candles → PostgreSQL, -w 2" "$bin" run --source "file:$file" --sink "$db" -w 2 --quiet
measure "file → candles + trades archive → PostgreSQL, -w 2 (--store-trades)" \
    "$bin" run --source "file:$file" --sink "$db" -w 2 --store-trades --quiet

# The database's own time: pg_stat_database.active_time, the time its sessions spent
# executing statements (COPY included), counted when they end.
fresh_db
echo
"$bin" run --source "file:$file" --sink "$db" -w 2 --store-trades --quiet
sleep 1
psql -At "$db" -F ' ' -c "SELECT 'PostgreSQL: ' || count(*) || ' trades (' || pg_size_pretty(pg_total_relation_size('trades')) || ') archived; statements ran for ' || round((SELECT active_time FROM pg_stat_database WHERE datname = current_database())::numeric / 1000, 2) || ' s' FROM trades"
