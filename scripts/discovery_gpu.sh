#!/usr/bin/env bash
# GPU discovery (issue 8): on a one-GPU machine, deploy/run_cluster.sh with each CONFIG in turn
# (learner on the GPU, ACTORS actors), each stopping at its target rank or when the time left to
# the deadline is used up; a later config runs only if at least --min-run seconds remain. Prints,
# per run, the time of every new best rank (seconds of the run's own time), the
# learner's steps and samples/s, games and games/s, and the best algorithm found; the runs' logs
# and results go to OUT (default $OUT, as the device tool sets it) as one tarball.
#
# usage: scripts/discovery_gpu.sh [--deadline S] [--min-run S] [--actors N] [--backend B]
#            [--max-run S] [--bin DIR] [--dir DIR] [--libs TARBALL] [--resume]
#            [--save] [--restore DIR] "CONFIG [key=value ...]" ...
#   --deadline S   every run ends within S seconds of this script's start (default 470)
#   --max-run S    no run longer than S seconds (default: no cap but the deadline)
#   --libs FILE    a tarball of runtime libraries (a folder of .so files) the machine lacks,
#                  unpacked to /tmp and put on the loader path of the project's binaries only
#   --resume       continue the runs of an earlier call on the same (still warm) machine: a run
#                  directory that exists (DIR/<config>-<index>) is resumed from its checkpoint and
#                  replay file instead of started afresh, so one run can span several calls of at
#                  most 10 minutes each; times of best ranks leave out the time between calls
#   --save         also put each run's state (its latest checkpoint, results, config, logs, and
#                  replay.h5, trimmed by `tg trim` to its newest played games and the best ones
#                  (the newest of those too if need be) where the whole would pass 32 MiB) in OUT as
#                  state-<run>.tgz.00, .01, ... (parts of 15 MiB, the most a device call returns
#                  per file), so that a later session can go on with the run on a fresh machine
#   --restore DIR  a run directory that does not exist yet is first unpacked from DIR's
#                  state-<run>.tgz.* (an earlier --save's files, carried) and then resumed
# e.g. scripts/discovery_gpu.sh --libs .tgdisc/libs.tar.xz deploy/configs/gpu-2x2x3.yaml \
#          deploy/configs/gpu-2x3x3.yaml
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEADLINE=470
MIN_RUN=90
MAX_RUN=0
ACTORS=12
BACKEND=""
BIN=$ROOT/bin
DIR=${TMPDIR:-/tmp}/tg-gpu-discovery
LIBS=""
RESUME=0
SAVE=0
RESTORE=""
OUTD=${OUT:-${TMPDIR:-/tmp}/tg-gpu-out}
CONFIGS=()
while [ $# -gt 0 ]; do
    case $1 in
    --deadline) DEADLINE=$2; shift 2 ;;
    --min-run) MIN_RUN=$2; shift 2 ;;
    --max-run) MAX_RUN=$2; shift 2 ;;
    --actors) ACTORS=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    --dir) DIR=$2; shift 2 ;;
    --libs) LIBS=$2; shift 2 ;;
    --resume) RESUME=1; shift ;;
    --save) SAVE=1; shift ;;
    --restore) RESTORE=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "discovery_gpu: unknown option $1" >&2; exit 2 ;;
    *) CONFIGS+=("$1"); shift ;;
    esac
done
[ ${#CONFIGS[@]} -gt 0 ] || { echo "discovery_gpu: no config given (see --help)" >&2; exit 2; }
mkdir -p "$DIR" "$OUTD"
say() { printf '%s [discovery_gpu %ss] %s\n' "$(date -u +%H:%M:%S)" "$SECONDS" "$*"; }

# The project's binaries get the carried libraries; nothing else does (python3, the shell tools).
TGLD=${LD_LIBRARY_PATH:-}
if [ -n "$LIBS" ]; then
    mkdir -p /tmp/tglibs && tar xf "$LIBS" -C /tmp/tglibs || { echo "cannot unpack $LIBS" >&2; exit 1; }
    d=$(dirname "$(find /tmp/tglibs -name 'libzmq.so*' | head -1)")
    TGLD=$d${TGLD:+:$TGLD}
fi
# cuDNN where the toolkit's folder lacks it (PyTorch's wheel carries one)
if LD_LIBRARY_PATH=$TGLD ldd "$BIN/tg-learner" | grep -q "libcudnn.*not found"; then
    c=$(find /usr /opt -name 'libcudnn.so.9' 2>/dev/null | head -1)
    [ -z "$c" ] || TGLD=$(dirname "$c"):$TGLD
fi
missing=$(for b in tg tg-replay tg-learner tg-actor; do LD_LIBRARY_PATH=$TGLD ldd "$BIN/$b"; done | grep "not found" | sort -u)
[ -z "$missing" ] || { echo "discovery_gpu: missing libraries:"; echo "$missing"; exit 1; }
tg() { LD_LIBRARY_PATH=$TGLD "$BIN/tg" "$@"; }

echo "discovery_gpu: $(uname -n), $(nproc) cores, deadline ${DEADLINE}s, $ACTORS actors, configs: ${CONFIGS[*]}"
command -v nvidia-smi >/dev/null &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

# "T rank R" lines: every new best rank, T in seconds after the replay server's first log line
best_ranks() { python3 "$(dirname "$0")/best_ranks.py" "$1"; }

# a status screen (and the GPU's load) every 60 s while a run goes, for rates mid-run
snapshots() {
    while sleep 60; do
        { echo "=== $(date -u +%H:%M:%S)"; tg status "$1" 2>/dev/null
          command -v nvidia-smi >/dev/null &&
              nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; echo; } >>"$1/snapshots.txt"
    done
}

RUNS=()
i=0
for spec in "${CONFIGS[@]}"; do
    read -r -a w <<<"$spec"
    cfg=${w[0]}
    ovr=("${w[@]:1}")
    left=$((DEADLINE - SECONDS - 20)) # 20 s: stopping, checkpoint, report
    [ "$MAX_RUN" -le 0 ] || [ "$left" -le "$MAX_RUN" ] || left=$MAX_RUN
    if [ "$left" -lt "$MIN_RUN" ]; then
        say "skipping $cfg: ${left}s left (< ${MIN_RUN}s)"
        continue
    fi
    name=$(basename "$cfg" .yaml)-$i
    rd=$DIR/$name
    how="run"
    if [ -n "$RESTORE" ] && [ ! -e "$rd/checkpoints/latest" ] && [ -e "$RESTORE/state-$name.tgz.00" ]; then
        rm -rf "$rd" && mkdir -p "$rd"
        cat "$RESTORE/state-$name.tgz."[0-9][0-9] | tar xzf - -C "$rd" ||
            { echo "discovery_gpu: cannot unpack $RESTORE/state-$name.tgz.*" >&2; exit 1; }
        say "restored $name from $RESTORE/state-$name.tgz.* ($(du -sh "$rd" | cut -f1))"
        [ -e "$rd/replay.h5" ] || say "$name: no replay.h5 in the saved state: the replay server starts afresh"
        how="resume"
    elif { [ "$RESUME" = 1 ] || [ -n "$RESTORE" ]; } && [ -e "$rd/checkpoints/latest" ]; then
        how="resume"
    else
        rm -rf "$rd"
    fi
    say "$how $name: $cfg ${ovr[*]:-} budget ${left}s"
    args=(--config "$cfg" --run-dir "$rd" --budget "$left" --actors "$ACTORS" --quiet)
    [ -z "$BACKEND" ] || args+=(--backend "$BACKEND")
    mkdir -p "$rd"
    # (not on our stdout: its sleep would hold a reader's pipe open up to a minute after we exit)
    snapshots "$rd" >/dev/null 2>&1 &
    snap=$!
    # GEMM plans per exact shape: inference batches come in many sizes, and timing candidates for
    # every new one would cost more than the few percent it gains
    LD_LIBRARY_PATH=$TGLD TG_BIN=$BIN TG_CUDA_GEMM_TUNE=${TG_CUDA_GEMM_TUNE:-0} \
        timeout --signal=INT --kill-after=30 $((left + 60)) \
        "$ROOT/deploy/run_cluster.sh" "${args[@]}" "${ovr[@]}" 2>&1 | tee "$OUTD/$name.log" |
        grep -E "cluster\]|progress\]" 
    kill "$snap" 2>/dev/null
    wait "$snap" 2>/dev/null
    RUNS+=("$name:$cfg")
    i=$((i + 1))
done

say "summary"
for r in "${RUNS[@]}"; do
    name=${r%%:*}
    rd=$DIR/$name
    echo "== $name (${r#*:})"
    tg status "$rd" 2>/dev/null | head -40
    echo "-- last status while running:"
    awk '/^=== /{b=""} {b=b $0 "\n"} END{printf "%s", b}' "$rd/snapshots.txt" 2>/dev/null |
        grep -E "^===|step|inference|games|%"
    echo "-- best ranks (s of the run's own time, calls resumed included):"
    best_ranks "$rd" 2>&1 | sed 's/^/   /'
    # how the stored games end, the canonical basis's apart (which basis the best lines come from)
    echo "-- the newest 2000 stored games:"
    tg games "$rd" --newest 2000 2>&1 | tail -n +2
    best=$(tg status "$rd" --results 2>/dev/null | head -60)
    echo "$best"
done
# logs, status, results and config of every run (no checkpoints, no replay.h5)
(cd "$DIR" && tar czf "$OUTD/runs.tar.gz" --exclude='*/checkpoints' --exclude='*/replay.h5' \
    --exclude='*/replay.wal.*' --exclude='*/tb' . 2>/dev/null)
# --save: what a fresh machine needs to go on with each run (the latest checkpoint, not the
# older ones; no TensorBoard files, locks or journal), in parts a device call can return
if [ "$SAVE" = 1 ]; then
    for r in "${RUNS[@]}"; do
        name=${r%%:*}
        rd=$DIR/$name
        [ -e "$rd/checkpoints/latest" ] || { say "$name: no checkpoint to save"; continue; }
        ck=$(readlink "$rd/checkpoints/latest")
        files=(config.yaml checkpoints/latest "checkpoints/$ck")
        for f in results.h5 replay.h5 logs status snapshots.txt; do [ -e "$rd/$f" ] && files+=("$f"); done
        rm -f "$OUTD/state-$name.tgz."*
        tar czf "$OUTD/state-$name.tgz" -C "$rd" --exclude='status/*.pid' "${files[@]}"
        # over what a later call can carry beside .tgdisc (TG_STATE_MAX_MB, 32): replay.h5 trimmed
        # to its newest played games and the best ones (`tg trim`; demonstrations are generated
        # again at start), else left out; TG_STATE_TRIM=1 trims it whatever the size (tests)
        max=$(( ${TG_STATE_MAX_MB:-32} << 20 ))
        if [ -e "$rd/replay.h5" ] && { [ "${TG_STATE_TRIM:-0}" = 1 ] ||
                                       [ "$(stat -c %s "$OUTD/state-$name.tgz")" -gt "$max" ]; }; then
            stage=$(mktemp -d)
            rest=()
            for f in "${files[@]}"; do [ "$f" = replay.h5 ] || rest+=("$f"); done
            kept=
            # the best table too where the played games alone do not bring it under (a long run's
            # best games pass 100k positions: 2x3x3 at step 36k)
            for keep in 100000:-1 30000:-1 30000:30000; do
                if ! tg trim "$rd/replay.h5" "$stage/replay.h5" --played "${keep%%:*}" --best "${keep##*:}" > "$stage/trim.out" 2>&1; then
                    say "$name: tg trim failed: $(tail -1 "$stage/trim.out")"
                    break
                fi
                tar czf "$OUTD/state-$name.tgz" -C "$rd" --exclude='status/*.pid' "${rest[@]}" -C "$stage" replay.h5
                if [ "$(stat -c %s "$OUTD/state-$name.tgz")" -le "$max" ]; then kept=$keep; break; fi
            done
            if [ -n "$kept" ]; then
                b=${kept##*:}; [ "$b" = -1 ] && b="all the best games" || b="the newest $b positions of the best games"
                say "$name: replay.h5 trimmed for the state (at most ${kept%%:*} played positions, $b, no demonstrations): $(grep -h "^played\|^best" "$stage/trim.out" | tr -s ' ' | paste -sd ';')"
            else
                say "$name: state with replay.h5 over $((max >> 20)) MiB (what a later call can carry beside .tgdisc): saved without it"
                tar czf "$OUTD/state-$name.tgz" -C "$rd" --exclude='status/*.pid' "${rest[@]}"
            fi
            rm -rf "$stage"
        fi
        split -b 15M -d -a 2 "$OUTD/state-$name.tgz" "$OUTD/state-$name.tgz." && rm "$OUTD/state-$name.tgz"
        say "$name: state saved as $(ls "$OUTD" | grep -c "^state-$name.tgz.") part(s), $(cat "$OUTD/state-$name.tgz."* | wc -c) bytes (checkpoint $ck)"
    done
fi
ls -la "$OUTD"
