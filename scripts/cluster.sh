#!/usr/bin/env bash
# Launches a tickflow cluster of N processes on this host and waits for all of them.
#
#   scripts/cluster.sh N [tickflow run options...]
#   e.g. scripts/cluster.sh 2 -w 1 --source file:trades.jsonl --sink sqlite:cluster.db
#
# It writes a hostfile with N free localhost ports, starts `tickflow run -n N -p I
# --hostfile FILE ...` for I = 0..N-1, prefixes each process's stderr with [pI], and exits
# non-zero if any process fails. SIGINT or SIGTERM is passed on to every process as a
# graceful stop (each flushes what is complete), and the script waits for them. Only
# process 0 writes to the sink.
# The binary is $TICKFLOW, or target/release/tickflow (built if missing).
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 N [tickflow run options...]" >&2
    exit 2
fi
n=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TICKFLOW:-}
if [[ -z $bin ]]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    bin=$target/release/tickflow
    [[ -x $bin ]] || (cd "$root" && cargo build --release --quiet)
fi

hostfile=$(mktemp "${TMPDIR:-/tmp}/tickflow-hosts.XXXXXX")
pids=()
stop() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
}
trap 'rm -f "$hostfile"' EXIT
trap stop INT TERM

# Free ports: bind to port 0 and read what the kernel chose.
python3 - "$n" > "$hostfile" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(f"127.0.0.1:{s.getsockname()[1]}")
PY

for ((i = 0; i < n; i++)); do
    "$bin" run -n "$n" -p "$i" --hostfile "$hostfile" "$@" 2> >(sed -u "s/^/[p$i] /" >&2) &
    pids+=($!)
done

status=0
for pid in "${pids[@]}"; do
    # A signal interrupts `wait`; wait again until the process has really ended.
    while true; do
        wait "$pid" && rc=0 || rc=$?
        if ((rc > 128)) && kill -0 "$pid" 2>/dev/null; then
            continue
        fi
        break
    done
    if ((rc != 0)); then
        status=1
        stop
    fi
done
exit $status
