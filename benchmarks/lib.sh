# Shared by the benchmark scripts (sourced from the repository root, EVENTS as $1):
# `setup` builds the release binaries and sets bin, data, file (EVENTS generated trades as
# JSON lines in bench-data/, made once, then read into the page cache) and runs (RUNS,
# default 3). `measure LABEL CMD...` runs CMD $runs times and prints a
# markdown row: label, median events/s, every run's events/s, median peak RSS. The rate is
# the first "N events/s" (or lines/s, messages/s) that CMD prints; the peak RSS comes from
# /usr/bin/time. Before each run, `before_run` (if defined) is called.

# `build` builds the release binaries and sets bin, floor (the parse floor), runs and data.
build() {
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/tickflow/target}
    runs=${RUNS:-3}
    cargo build --release --locked --quiet -p tickflow -p tickflow-benchmarks
    bin=$CARGO_TARGET_DIR/release/tickflow
    floor=$CARGO_TARGET_DIR/release/parse-floor
    data=$PWD/bench-data
    mkdir -p "$data"
}

setup() {
    build
    file=$data/trades-$1.jsonl
    if [[ ! -s $file ]]; then
        "$bin" generate --out "$file" --events "$1" --defects 0 --anomalies 0 --quiet
    fi
    cat "$file" > /dev/null
}

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Runs CMD once; prints "RATE RSS_KB".
run_once() {
    if declare -F before_run > /dev/null; then before_run; fi
    local out rate
    out=$( { /usr/bin/time -f "RSS %M" "$@" 2>&1 1>&3; } 3>&1 )
    rate=$(grep -oE '[0-9.]+ (events|lines|messages)/s' <<< "$out" | head -n 1 | cut -d' ' -f1)
    if [[ -z $rate ]]; then
        echo "no rate in the output of: $*" >&2
        echo "$out" >&2
        return 1
    fi
    echo "$rate $(grep -oE 'RSS [0-9]+' <<< "$out" | tail -n 1 | cut -d' ' -f2)"
}

# Prints the markdown row of LABEL from "RATE RSS_KB" lines on stdin; sets `row_median`.
row() {
    local label=$1 lines rates m
    lines=$(cat)
    rates=$(cut -d' ' -f1 <<< "$lines" | tr '\n' ' ')
    row_median=$(cut -d' ' -f1 <<< "$lines" | median)
    m=$(cut -d' ' -f2 <<< "$lines" | median)
    printf '| %s | %.2fM | %s | %d MB |\n' "$label" "$(bc -l <<< "$row_median / 1000000")" "$rates" "$((m / 1024))"
}

measure() {
    local label=$1
    shift
    local i
    for ((i = 0; i < runs; i++)); do run_once "$@" || return 1; done | row "$label"
}

# Runs each of `commands` (an array of command lines, split on spaces) $runs times,
# alternating them run by run so that a noisy spell hits all alike; prints one row per
# command, labelled from `labels`, and sets `medians` (median events/s of each).
alternate() {
    local i k results=()
    for ((k = 0; k < ${#commands[@]}; k++)); do results+=(""); done
    for ((i = 0; i < runs; i++)); do
        for ((k = 0; k < ${#commands[@]}; k++)); do
            # shellcheck disable=SC2086
            results[k]+="$(run_once ${commands[k]})"$'\n'
        done
    done
    medians=()
    for ((k = 0; k < ${#commands[@]}; k++)); do
        row "${labels[k]}" < <(printf '%s' "${results[k]}")
        medians+=("$row_median")
    done
}
