#!/usr/bin/env bash
# Launches a tickflow cluster of N processes on this host, waits for all of them, and starts
# the whole cluster again when one of them fails.
#
#   scripts/cluster.sh N [tickflow run options...]
#   e.g. scripts/cluster.sh 2 -w 1 --source file:trades.jsonl --sink sqlite:cluster.db
#
# It writes a hostfile with N free localhost ports, starts `tickflow run -n N -p I
# --hostfile FILE ...` for I = 0..N-1 and prefixes each process's stderr with [pI]. Only
# process 0 writes to the sink.
#
# Failures: a timely cluster cannot go on without one of its processes. When one dies (a
# crash, kill -9, an error), the others stop at once with a line naming it; whatever still
# runs 5 s later is killed. The script then says so on stderr and starts the whole cluster
# again with the same options on fresh ports. The new cluster resumes from the results
# committed so far (files, Kafka and the generator with --rate 0; see README, Restarts), so
# the tables end as those of a run that never failed. After TICKFLOW_CLUSTER_RETRIES
# restarts the script gives up and exits 1. A usage error (exit code 2) is not retried.
#
# SIGINT (Ctrl-C) or SIGTERM is passed on to every process as a graceful stop (each flushes
# what is complete; a second one aborts), the script waits for them and restarts nothing.
# The processes run in process groups of their own, so a Ctrl-C in the terminal reaches
# them once, through this script.
#
# Environment:
#   TICKFLOW                  the binary (default target/release/tickflow, built if missing)
#   TICKFLOW_CLUSTER_RETRIES  how many times a failed cluster is started again (default 3;
#                             0 = never)
#   TICKFLOW_CLUSTER_PIDFILE  if set, this file holds the pids of the running processes, one
#                             line per process in process order, rewritten at every
#                             (re)start and removed at the end (for tests and supervisors)
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 N [tickflow run options...]" >&2
    exit 2
fi
n=$1
shift
retries=${TICKFLOW_CLUSTER_RETRIES:-3}
if [[ ! $retries =~ ^[0-9]+$ ]]; then
    echo "$0: TICKFLOW_CLUSTER_RETRIES must be a whole number, not '$retries'" >&2
    exit 2
fi
pidfile=${TICKFLOW_CLUSTER_PIDFILE:-}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${TICKFLOW:-}
if [[ -z $bin ]]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    bin=$target/release/tickflow
    [[ -x $bin ]] || (cd "$root" && cargo build --release --quiet)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/tickflow-cluster.XXXXXX")
hostfile=$work/hosts
trap 'rm -rf "$work" ${pidfile:+"$pidfile"}' EXIT

running=()   # pids of the processes not yet waited for
declare -A process_of   # pid → process index
interrupted=0
interrupt() {
    local p   # (not `pid`: bash's dynamic scope would overwrite await_all's)
    interrupted=1
    for p in "${running[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
trap interrupt INT TERM

# Each background process gets a process group of its own, so that a terminal's Ctrl-C
# (sent to the foreground group) reaches the processes only once, as our TERM.
set -m

# Starts the N processes on fresh ports.
launch() {
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
    rm -f "$work/killed"
    running=()
    prefixers=()
    for ((i = 0; i < n; i++)); do
        # stderr goes through a FIFO to a sed of our own, so that we can wait for its last
        # lines before going on.
        rm -f "$work/p$i"
        mkfifo "$work/p$i"
        sed -u "s/^/[p$i] /" < "$work/p$i" >&2 &
        prefixers+=("$!")
        "$bin" run -n "$n" -p "$i" --hostfile "$hostfile" "$@" 2> "$work/p$i" &
        running+=("$!")
        process_of[$!]=$i
    done
    if [[ -n $pidfile ]]; then
        printf '%s\n' "${running[@]}" > "$pidfile.tmp"
        mv -f "$pidfile.tmp" "$pidfile"
    fi
    # A stop requested while they were starting reaches those started after it too.
    if ((interrupted)); then interrupt; fi
}

# Waits for every process; `failed` says which failed first ("" if none) and `failed_rc`
# is its exit code. A process that loses a peer exits 1, so a death by a signal or another
# exit code, when there is one, is named instead: that is the cause. After a failure the
# cluster cannot make progress: the others normally exit at once with the lost-peer line;
# one that does not (say, still waiting for its peers to connect) is killed after 5 s. A
# graceful stop would not help it: committing needs the whole cluster, and a kill loses
# nothing committed.
await_all() {
    failed=
    failed_rc=0
    local killer='' pid rc rest p
    while ((${#running[@]} > 0)); do
        pid=
        # A process that bash has already reaped and reported (as it does under `set -m`
        # between commands) is no longer seen by `wait -n`, which would then miss its exit
        # status or return at once forever; `wait PID` still returns it.
        for p in "${running[@]}"; do
            if ! kill -0 "$p" 2>/dev/null; then pid=$p; break; fi
        done
        if [[ -n $pid ]]; then
            wait "$pid" 2>/dev/null && rc=0 || rc=$?
        else
            # (2>/dev/null: no "Killed" notice from bash; the line below says it better.)
            wait -n -p pid "${running[@]}" 2>/dev/null && rc=0 || rc=$?
            # No pid: a trapped signal interrupted `wait` (the processes still run), or
            # one was reaped meanwhile (found above on the next round).
            if [[ -z ${pid:-} ]]; then
                ((rc != 127)) || sleep 0.05
                continue
            fi
        fi
        rest=()
        for p in "${running[@]}"; do [[ $p == "$pid" ]] || rest+=("$p"); done
        running=("${rest[@]}")
        ((rc != 0)) || continue
        # Killed by the killer below: a consequence, not a cause.
        [[ ! -e $work/killed ]] || continue
        if [[ -z $failed ]] || ((failed_rc == 1 && rc != 1)); then
            if ((rc > 128)); then
                failed="process ${process_of[$pid]} was killed by signal $((rc - 128))"
            else
                failed="process ${process_of[$pid]} failed (exit code $rc)"
            fi
            failed_rc=$rc
        fi
        if [[ -z $killer ]] && ((${#running[@]} > 0)); then
            # A program of its own, not a ( subshell ): killing a subshell that has just
            # started can run this script's EXIT trap in it.
            bash -c 'sleep 5
                     echo "cluster.sh: killing what still runs 5 s after the failure" >&2
                     : > "$0/killed"
                     kill -KILL "$@" 2>/dev/null' "$work" "${running[@]}" &
            killer=$!
        fi
    done
    if [[ -n $killer ]]; then
        kill -KILL -- "-$killer" 2>/dev/null || true
        wait "$killer" 2>/dev/null || true
    fi
    wait "${prefixers[@]}" 2>/dev/null || true
}

restarts=0
while true; do
    launch "$@"
    await_all
    if [[ -z $failed ]]; then
        exit 0
    fi
    if ((interrupted)); then
        echo "cluster.sh: stopped on request; $failed" >&2
        exit 1
    fi
    if ((failed_rc == 2)); then
        echo "cluster.sh: $failed: a usage error, not restarting" >&2
        exit 2
    fi
    if ((restarts >= retries)); then
        echo "cluster.sh: $failed; giving up after $restarts restart(s) (TICKFLOW_CLUSTER_RETRIES=$retries)" >&2
        exit 1
    fi
    restarts=$((restarts + 1))
    echo "cluster.sh: $failed; starting the cluster again on fresh ports to resume from the committed results (restart $restarts of $retries)" >&2
    if ((interrupted)); then
        echo "cluster.sh: stopped on request before the restart" >&2
        exit 1
    fi
done
