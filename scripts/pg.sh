#!/usr/bin/env bash
# A throwaway PostgreSQL cluster from the installed server binaries, for tests and
# benchmarks: no package service, no system cluster touched.
#
#   scripts/pg.sh start DIR    initdb (first time) and start on a free localhost port, with
#                              its unix socket in DIR; prints the URL (postgres://…)
#   scripts/pg.sh stop DIR     stop it (fast shutdown); `start DIR` again reuses its port
#   scripts/pg.sh remove DIR   stop it and delete DIR
#
# The server binaries are looked up in $PG_BIN, then /usr/lib/postgresql/*/bin (Debian's
# postgresql-15 package), then PATH. As root, the server runs as the `postgres` user (via
# runuser), which the package creates. Settings for tests: fsync off, no full-page writes,
# asynchronous commit; PG_DURABLE=1 keeps PostgreSQL's durable defaults (for benchmarks).
set -euo pipefail
cmd=${1:?usage: pg.sh start|stop|remove DIR}
dir=${2:?usage: pg.sh start|stop|remove DIR}

bin=${PG_BIN:-}
if [[ -z $bin ]]; then
    for candidate in /usr/lib/postgresql/*/bin; do
        [[ -x $candidate/pg_ctl ]] && bin=$candidate
    done
fi
if [[ -z $bin ]]; then
    bin=$(dirname "$(command -v pg_ctl || echo /missing/pg_ctl)")
fi
if [[ ! -x $bin/pg_ctl || ! -x $bin/initdb ]]; then
    echo "pg.sh: PostgreSQL server binaries not found (set PG_BIN, or install them:" >&2
    echo "       apt-get install postgresql-15 on Debian, or your system's postgresql server package)" >&2
    exit 1
fi

as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

case $cmd in
start)
    mkdir -p "$dir"
    # The server user must reach DIR (a mktemp directory is private to its owner).
    if [[ $(id -u) == 0 ]]; then
        chown postgres "$dir"
        chmod o+x "$(dirname "$dir")"
    fi
    if [[ ! -s $dir/data/PG_VERSION ]]; then
        as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 \
            --locale=C.UTF-8 > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if [[ ! -s $dir/port ]]; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' > "$dir/port"
    fi
    port=$(cat "$dir/port")
    if as_owner "$bin/pg_ctl" -D "$dir/data" status > /dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$port/postgres"
        exit 0
    fi
    options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=50"
    if [[ ${PG_DURABLE:-0} != 1 ]]; then
        options+=" -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$options" \
        > /dev/null || { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    if [[ -s $dir/data/postmaster.pid ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null
    fi
    ;;
remove)
    if [[ -s $dir/data/postmaster.pid ]]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop > /dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "pg.sh: unknown command $cmd (start|stop|remove)" >&2
    exit 2
    ;;
esac
