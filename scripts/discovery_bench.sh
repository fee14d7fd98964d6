#!/usr/bin/env bash
# Discovery benchmark (issue 8): runs the default 2x2x2 config from scratch once per seed (replay,
# learner on the CPU backend, actors), stops at the target rank or after SECONDS, and prints the
# time (s since the replay server started) of every new best rank. Runs are sequential so each one
# has the machine to itself; the load average is printed with every figure since the machine
# may be shared. Figures go in docs/results.md.
#
# usage: scripts/discovery_bench.sh [--seconds S] [--seeds "1 2 3"] [--bin DIR] [--dir DIR]
#                                   [--config FILE] [--actors N] [--port P] [key=value ...]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SECONDS_MAX=600
SEEDS="1 2 3"
BIN=$ROOT/bin
DIR=${TMPDIR:-/tmp}/tg-discovery
CONFIG=$ROOT/deploy/configs/strassen-2x2x2.yaml
ACTORS=1
PORT=46500
OVR=()
while [ $# -gt 0 ]; do
    case $1 in
    --seconds) SECONDS_MAX=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --actors) ACTORS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *=*) OVR+=("$1"); shift ;;
    *) echo "discovery_bench: unknown argument $1" >&2; exit 2 ;;
    esac
done
for b in tg tg-replay tg-learner tg-actor; do
    [ -x "$BIN/$b" ] || { echo "discovery_bench: $BIN/$b missing (make, or --bin DIR)" >&2; exit 2; }
done

pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap 'cleanup; exit 130' INT TERM

# "T rank R" lines: every new best rank, T in seconds after the replay server's first log line
best_ranks() { /usr/bin/python3 "$(dirname "$0")/best_ranks.py" "$1"; }

echo "discovery bench: $CONFIG ${OVR[*]:-}, ${SECONDS_MAX}s per seed, seeds $SEEDS, $ACTORS actor(s), $(nproc) cores"
for seed in $SEEDS; do
    D=$DIR/seed-$seed
    rm -rf "$D"
    mkdir -p "$D/logs"
    P1=$PORT P2=$((PORT + 1)) P3=$((PORT + 2))
    "$BIN/tg" config --check "$CONFIG" run.dir="$D" run.seed="$seed" \
        replay.endpoint=tcp://127.0.0.1:$P1 replay.connect=tcp://127.0.0.1:$P1 \
        infer.endpoint=tcp://127.0.0.1:$P2 infer.connect=tcp://127.0.0.1:$P2 \
        infer.pub_endpoint=tcp://127.0.0.1:$P3 infer.pub_connect=tcp://127.0.0.1:$P3 \
        "${OVR[@]}" >"$D/config.yaml"
    want=$("$BIN/tg" config --check "$D/config.yaml" | awk '/^  target_rank:/{gsub(/[^0-9]/,"",$2); print $2}')
    load0=$(cut -d' ' -f1-3 /proc/loadavg)
    pids=()
    "$BIN/tg-replay" --config "$D/config.yaml" >"$D/logs/replay.out" 2>&1 & pids+=($!)
    "$BIN/tg-learner" --config "$D/config.yaml" --backend cpu >"$D/logs/learner.out" 2>&1 & pids+=($!)
    for i in $(seq 1 "$ACTORS"); do
        "$BIN/tg-actor" --config "$D/config.yaml" --name "a$i" >"$D/logs/actor$i.out" 2>&1 & pids+=($!)
    done
    start=$(date +%s)
    while sleep 5; do
        best=$("$BIN/tg" stats tcp://127.0.0.1:$P1 --timeout 2 2>/dev/null | awk '/^best_rank\./{print $2; exit}')
        [ -n "$best" ] && [ "$best" != 0 ] && [ -n "$want" ] && [ "$best" -le "$want" ] && break
        [ $(($(date +%s) - start)) -ge "$SECONDS_MAX" ] && break
    done
    load1=$(cut -d' ' -f1-3 /proc/loadavg)
    cleanup
    pids=()
    ranks=$(best_ranks "$D" | tr '\n' ';' | sed 's/;$//; s/;/; /g')
    echo "seed $seed: ${ranks:-no game solved} (load average at start $load0, at end $load1; $D)"
done
