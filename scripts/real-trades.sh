#!/usr/bin/env bash
# Alerts on clean, real exchange data: the Binance spot trades (BTCUSDT, ETHUSDT, SOLUSDT,
# 2025-03-25) recorded in the examples of the crates.io crate `barter` 0.14.0, fetched with
# cargo, converted to Binance trade JSON lines and run through the engine with every check
# on. Prints the alerts per kind and per million trades; the data is read in place, never
# copied into the repository.
#
#   bash scripts/real-trades.sh [TICKFLOW_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
bin=${1:-}
if [[ -z $bin ]]; then
    cargo build --release --locked --quiet -p tickflow
    bin=$CARGO_TARGET_DIR/release/tickflow
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# cargo fetches the crate's source (with its examples) into its registry.
mkdir -p "$work/fetch/src"
printf '[package]\nname = "fetch-barter"\nversion = "0.0.0"\nedition = "2021"\n[dependencies]\nbarter = "=0.14.0"\n' > "$work/fetch/Cargo.toml"
touch "$work/fetch/src/lib.rs"
(cd "$work/fetch" && cargo fetch --quiet)
data=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -path '*barter-0.14.0/examples/data/binance_spot_trades_l1_btcusdt_ethusdt_solusdt.json' | head -n 1)
if [[ -z $data ]]; then
    echo "real-trades: barter 0.14.0's examples/data not found in cargo's registry" >&2
    exit 2
fi

# barter's events: one JSON object per line; the trades are {"Trade": {id, price, amount,
# side}} with the exchange time; instruments 0, 1, 2 are BTCUSDT, ETHUSDT, SOLUSDT (their
# order book prices in the same file say so). A sell-side aggressor means the buyer was the
# maker.
python3 - "$data" > "$work/real.jsonl" <<'PY'
import datetime, json, sys
symbols = {0: "BTCUSDT", 1: "ETHUSDT", 2: "SOLUSDT"}
def ms(text):
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.datetime.fromisoformat(whole + "+00:00").timestamp()
    return int(seconds) * 1000 + int((fraction + "000")[:3])
for line in open(sys.argv[1]):
    item = json.loads(line).get("Item", {})
    trade = item.get("kind", {}).get("Trade") if isinstance(item.get("kind"), dict) else None
    if trade is None:
        continue
    t = ms(item["time_exchange"])
    print(json.dumps({"e": "trade", "E": t, "s": symbols[item["instrument"]], "t": int(trade["id"]),
                      "p": "%.8f" % trade["price"], "q": "%.8f" % trade["amount"], "T": t,
                      "m": trade["side"] == "Sell"}, separators=(",", ":")))
PY
trades=$(wc -l < "$work/real.jsonl")
"$bin" run --source "file:$work/real.jsonl" --sink "sqlite:$work/real.db" -w 2 --quiet
echo "barter 0.14.0 examples: $trades real Binance trades, every check on"
"$bin" sql --db "$work/real.db" "SELECT kind, count(*) AS alerts, round(count(*) * 1e6 / $trades, 1) AS per_million FROM alerts GROUP BY kind ORDER BY kind"
"$bin" sql --db "$work/real.db" "SELECT count(*) AS alerts, round(count(*) * 1e6 / $trades, 1) AS per_million FROM alerts"
"$bin" sql --db "$work/real.db" "SELECT symbol, sum(valid), sum(duplicate), sum(gap), min(score) FROM quality GROUP BY symbol"
