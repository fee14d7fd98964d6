#!/usr/bin/env bash
# Discovery sweep (issue 8): several discovery runs at once on a many-core machine, each pinned to
# its own CORES cores with taskset (so each one sees the 2-core machine the default run is tuned
# for), each a scripts/discovery_bench.sh run with its own ports, seed and config overrides.
# Prints one line per run: the time (s) of every new best rank.
#
# usage: scripts/discovery_sweep.sh [--seconds S] [--cores C] [--bin DIR] [--dir DIR]
#            "NAME seed=N [key=value ...]" ...
# e.g.   scripts/discovery_sweep.sh --seconds 540 "base seed=1" "cob seed=1 game.change_of_basis=true"
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECS=600
CORES=2
BIN=$ROOT/bin
DIR=${TMPDIR:-/tmp}/tg-sweep
RUNS=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECS=$2; shift 2 ;;
    --cores) CORES=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) RUNS+=("$1"); shift ;;
    esac
done
[ ${#RUNS[@]} -gt 0 ] || { echo "discovery_sweep: no runs given (see --help)" >&2; exit 2; }
ncpu=$(nproc)
[ $((${#RUNS[@]} * CORES)) -le "$ncpu" ] ||
    { echo "discovery_sweep: ${#RUNS[@]} runs x $CORES cores > $ncpu cores" >&2; exit 2; }
mkdir -p "$DIR"
echo "discovery sweep: ${#RUNS[@]} runs, $CORES cores each, ${SECS}s, $ncpu cores, $(uname -n)"
pids=()
i=0
for r in "${RUNS[@]}"; do
    read -r -a w <<<"$r"
    name=${w[0]}
    seed=1
    ovr=()
    for kv in "${w[@]:1}"; do
        case $kv in seed=*) seed=${kv#seed=} ;; *) ovr+=("$kv") ;; esac
    done
    first=$((i * CORES))
    cpus=$first-$((first + CORES - 1))
    taskset -c "$cpus" "$ROOT/scripts/discovery_bench.sh" --bin "$BIN" --seeds "$seed" \
        --seconds "$SECS" --dir "$DIR/$name" --port $((47000 + 10 * i)) "${ovr[@]}" \
        >"$DIR/$name.log" 2>&1 &
    pids+=($!)
    i=$((i + 1))
done
trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
wait "${pids[@]}" || true
for r in "${RUNS[@]}"; do
    name=${r%% *}
    echo "$name [${r#* }]: $(grep '^seed' "$DIR/$name.log" | sed 's/ (load.*//' || echo failed)"
done
