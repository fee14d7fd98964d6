#!/bin/bash
# Runs the CUDA backend's checks and benchmarks on a GPU machine in one go (the device tool's
# machine lacks the Debian runtime libraries: carry .devdeps made by
# ../shared/device/bundle-debs.sh, build-cuda/bin/tg and build-cuda/tests/test_cuda_* (the whole
# build tree is over the carry limit), and .gpu/{spec,bench} copied from ../shared).
#
#   scripts/cuda_device_run.sh [prewarm] [test] [golden] [waitwarm] [bench] [ab] [peer] [peer2]
#                              [peereval] [profile] [quick] [notune] [abold] [summary]
#
# Sections run in the order given. test: tests/test_cuda_*; golden: tg golden --backend cuda on
# golden_small.h5 and on .gpu/spec/golden_odd.h5 if made here (`python3
# tests/scripts/net_golden_numpy.py .gpu/spec/golden_odd.h5` with tests/t_net_golden.sh's config);
# bench: tg bench net --backend cuda on the peer's configs and batches; ab: training and greedy
# again with the older attention kernels (TG_CUDA_ATTN_MMA=0) for before/after figures from one
# call; peer: ../shared/bench/torch_peer.py in the same call; profile: again with
# TG_CUDA_PROFILE=1 (device time per kind of kernel and per GEMM shape; the events cost time, so
# those runs' rates are not the figures); quick: fewer timed steps (give it first); notune: the
# benchmark with TG_CUDA_GEMM_TUNE=0; abold: the earlier comparisons (TG_CUDA_LN_GENERIC=1,
# TG_CUDA_ATTN_OLD=1, TG_CUDA_ATTN_BWD_OCC=4); summary: a table of ours against the peer.
# prewarm: the peer's torch.compile training of each config started in the background (one
# process each, their timings discarded) so that the compilers' on-disk caches are warm when the
# peer itself runs (compiling is most of its time); give it first, so that it overlaps the tests,
# and waitwarm before bench (it waits for them, up to WARM_MAX seconds into the run, default
# 200, then stops them).
# AB_ENV (default TG_CUDA_ATTN_MMA=0): the environment of the ab runs; TEST_ENV (default none):
# extra environment of the test programs; PEER_CONFIGS: the peer's configs (default all), and
# PEER_CONFIGS2 those of a second peer section, peer2 (the peer runs its configs in a fixed order:
# two sections put one config first); PROFILE_ONLY: config:what pairs to profile (default all).
# peereval: only the peer's eager evaluation (its own time_eval; no torch.compile, seconds) for
# PEER_CONFIGS. BENCH_CONFIGS (default "paper-S4:1024 paper-S9:256 small-S9:1024"): the
# config:batch pairs of bench, ab and profile; AB_WHAT (default "train greedy"): what ab runs.
# DEADLINE=seconds (default 540): sections that would start after it are skipped, and the peer
# is stopped at it (it prints each config as it finishes). Logs go to $OUT (when set) as well as
# stdout (at most 8 files: the device tool's limit), with the GPU, each section's wall time and
# the prewarm output in misc.log.
set -u
BUILD=${BUILD:-build-cuda}
OUTD=${OUT:-/tmp/tgout}
DEADLINE=${DEADLINE:-540}
AB_ENV=${AB_ENV:-TG_CUDA_ATTN_MMA=0}
TEST_ENV=${TEST_ENV:-}
PEER_CONFIGS=${PEER_CONFIGS:-} # e.g. small-S9 (torch_peer.py's argument): only those
PEER_CONFIGS2=${PEER_CONFIGS2:-} # the configs of a second peer section (peer2)
PROFILE_ONLY=${PROFILE_ONLY:-}   # e.g. "paper-S9:train paper-S4:greedy": only those profiles
T0=$(date +%s)
mkdir -p "$OUTD"
ORIG_LD=${LD_LIBRARY_PATH:-}
if [ -d .devdeps ]; then
    source .devdeps/unpack-debs.sh
    export LD_LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu/openblas-pthread:$LD_LIBRARY_PATH
fi
export HDF5_DISABLE_VERSION_CHECK=1
export TG_SHARED=$PWD/.gpu
ARGS=("$@")
want() { for a in "${ARGS[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((DEADLINE - $(elapsed))); }
CONFIGS=${BENCH_CONFIGS:-"paper-S4:1024 paper-S9:256 small-S9:1024"} # config:batch of bench, ab, profile
AB_WHAT=${AB_WHAT:-"train greedy"}
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.used,temperature.gpu \
    --format=csv | tee "$OUTD/misc.log"
ldd "$BUILD/bin/tg" | grep "not found" && echo "MISSING LIBRARIES"
STEPS=10
want quick && STEPS=4

bench_all() { # env-assignment (or "") and log name
    for cb in $CONFIGS; do
        c=${cb%%:*}
        b=${cb##*:}
        echo "== $1 tg bench net --backend cuda --config $c --batch $b" | tee -a "$OUTD/$2"
        env $1 timeout 120 "$BUILD/bin/tg" bench net --backend cuda --config "$c" --batch "$b" \
            --steps $STEPS 2>&1 | tee -a "$OUTD/$2"
    done
}

ab_run() { # env-assignment: training and greedy only
    for cb in $CONFIGS; do
        c=${cb%%:*}
        b=${cb##*:}
        for what in $AB_WHAT; do
            echo "== $1 tg bench net --backend cuda --config $c --batch $b --only $what" |
                tee -a "$OUTD/ab.log"
            env $1 timeout 120 "$BUILD/bin/tg" bench net --backend cuda --config "$c" \
                --batch "$b" --steps $STEPS --only $what 2>&1 | tee -a "$OUTD/ab.log" |
                grep -v "^net bench"
        done
    done
}

WARM_PIDS=""
prewarm() {
    for cfg in paper-S4 paper-S9 small-S9; do
        LD_LIBRARY_PATH=$ORIG_LD PYTHONUNBUFFERED=1 python3 - "$cfg" >"/tmp/prewarm-$cfg.log" \
            2>&1 <<'EOF' &
import sys, time
sys.path.insert(0, ".gpu/bench")
import torch_peer as tp
cfg, B = tp.CONFIGS[sys.argv[1]]
t0 = time.time()
tp.time_train(cfg, B, True)
print(sys.argv[1], "prewarm: compiled and ran in %.1f s" % (time.time() - t0))
EOF
        WARM_PIDS="$WARM_PIDS $!"
    done
    echo "prewarm pids:$WARM_PIDS"
}

waitwarm() {
    local max=${WARM_MAX:-200}
    while [ "$(elapsed)" -lt "$max" ]; do
        local alive=0
        for p in $WARM_PIDS; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 2
    done
    for p in $WARM_PIDS; do
        kill -0 "$p" 2>/dev/null && echo "prewarm $p still running at $(elapsed) s: stopped" &&
            kill "$p"
    done
    wait $WARM_PIDS 2>/dev/null
    for cfg in paper-S4 paper-S9 small-S9; do
        grep -v Warning "/tmp/prewarm-$cfg.log" 2>/dev/null | tail -3
    done
}

summary() {
    python3 - "$OUTD" "$1" <<'EOF'
import json, os, re, sys
d, abenv = sys.argv[1], sys.argv[2]
def rd(n):
    p = os.path.join(d, n)
    return open(p).read() if os.path.exists(p) else ""
def ours(text):
    res, cfg, env = {}, None, ""
    for line in text.splitlines():
        m = re.match(r"== (.*?)tg bench net --backend cuda --config (\S+)", line)
        if m:
            env, cfg = m.group(1).strip(), m.group(2)
            continue
        for kind in ("train", "eval", "greedy"):
            if line.startswith(kind + ":"):
                v = re.search(r"([\d.]+) (samples|positions)/s", line)
                if v and cfg:
                    res[(env, cfg, kind)] = float(v.group(1))
    return res
o = ours(rd("bench.log"))
o.update(ours(rd("ab.log")))
peer = {}
for line in rd("peer.log").splitlines():
    m = re.match(r"(\S+) (\{.*\})$", line)
    if m:
        peer[m.group(1)] = json.loads(m.group(2))
print("ab: " + abenv)
print("config     | train ours | ab      | eager | compile | ours/compile | ab/compile | greedy ours | ab      | eager | ours/eager | ab/eager | eval K=32")
for cfg in ("paper-S4", "paper-S9", "small-S9"):
    p = peer.get(cfg, {})
    tr, gr = o.get(("", cfg, "train")), o.get(("", cfg, "greedy"))
    tro = o.get((abenv, cfg, "train"))
    gro = o.get((abenv, cfg, "greedy"))
    te, tc, ee = p.get("train_sps_eager"), p.get("train_sps_compiled"), p.get("eval_pos_per_s_eager")
    f = lambda x: "%.0f" % x if x else "-"
    r = lambda a, b: "%.2f" % (a / b) if a and b else "-"
    print(f"{cfg:10s} | {f(tr):>10s} | {f(tro):>7s} | {f(te):>5s} | {f(tc):>7s} | {r(tr, tc):>12s} | "
          f"{r(tro, tc):>10s} | {f(gr):>11s} | {f(gro):>7s} | {f(ee):>5s} | {r(gr, ee):>10s} | "
          f"{r(gro, ee):>8s} | {f(o.get(('', cfg, 'eval')))}")
EOF
}

for sec in "${ARGS[@]}"; do
    case $sec in quick) continue ;; esac
    if [ "$sec" != summary ] && [ "$(left)" -le 5 ]; then
        echo "== $sec skipped: deadline (${DEADLINE} s) reached" | tee -a "$OUTD/misc.log"
        continue
    fi
    s0=$(elapsed)
    case $sec in
    test)
        for t in "$BUILD"/tests/test_cuda_*; do
            echo "== $t"
            env $TEST_ENV timeout 300 "$t" 2>&1 | tee -a "$OUTD/tests.log" | grep -v "^\[ RUN\|^\[       OK"
            echo "exit ${PIPESTATUS[0]}"
        done
        ;;
    golden)
        # the spec's golden_small.h5, and golden_odd.h5 where it was made here (a config where no
        # two dimensions coincide, tests/t_net_golden.sh's, written by net_golden_numpy.py)
        for g in .gpu/spec/golden_small.h5 .gpu/spec/golden_odd.h5; do
            [ -f "$g" ] || { echo "== $g: not made here, skipped"; continue; }
            echo "== tg golden --backend cuda $g"
            "$BUILD/bin/tg" golden --backend cuda --tol-out 3e-2 --tol-grad 6e-2 "$g" 2>&1 |
                tee -a "$OUTD/golden.log" | tail -4
            echo "exit ${PIPESTATUS[0]}"
        done
        ;;
    bench) bench_all "" bench.log ;;
    notune) bench_all TG_CUDA_GEMM_TUNE=0 notune.log ;;
    ab) ab_run "$AB_ENV" ;;
    abold)
        for e in TG_CUDA_LN_GENERIC=1 TG_CUDA_ATTN_OLD=1 TG_CUDA_ATTN_BWD_OCC=4; do
            ab_run "TG_CUDA_ATTN_MMA=0 $e"
        done
        ;;
    prewarm) prewarm > >(tee -a "$OUTD/misc.log") ;;
    waitwarm) waitwarm > >(tee -a "$OUTD/misc.log") ;;
    profile)
        for cb in $CONFIGS; do
            c=${cb%%:*}
            b=${cb##*:}
            for what in train greedy; do
                [ "$(left)" -le 10 ] && echo "== profile $c $what skipped: deadline" && continue
                [ -n "$PROFILE_ONLY" ] && [[ " $PROFILE_ONLY " != *" $c:$what "* ]] && continue
                echo "== profile: tg bench net --backend cuda --config $c --batch $b --only $what" |
                    tee -a "$OUTD/profile.log"
                TG_CUDA_PROFILE=1 timeout 120 "$BUILD/bin/tg" bench net --backend cuda \
                    --config "$c" --batch "$b" --steps 3 --only $what 2>&1 |
                    tee -a "$OUTD/profile.log" | grep -v "^net bench"
            done
        done
        ;;
    peer | peer2)
        pc=$PEER_CONFIGS
        [ $sec = peer2 ] && pc=$PEER_CONFIGS2
        echo "== torch_peer.py $pc (stopped after $(left) s)"
        LD_LIBRARY_PATH=$ORIG_LD PYTHONUNBUFFERED=1 timeout "$(left)" python3 \
            .gpu/bench/torch_peer.py $pc 2>&1 | tee -a "$OUTD/peer.log" | grep -v Warning
        ;;
    peereval) # the peer's own time_eval (eager greedy) only, for PEER_CONFIGS: no compile
        echo "== torch_peer.py time_eval $PEER_CONFIGS (stopped after $(left) s)"
        LD_LIBRARY_PATH=$ORIG_LD PYTHONUNBUFFERED=1 timeout "$(left)" python3 - \
            ${PEER_CONFIGS//,/ } 2>&1 <<'EOF' | tee -a "$OUTD/peer.log" | grep -v Warning
import json, sys
sys.path.insert(0, ".gpu/bench")
import torch, torch_peer as tp
print(torch.__version__, torch.cuda.get_device_name())
for name in sys.argv[1:]:
    cfg, B = tp.CONFIGS[name]
    print(name, json.dumps({"batch": B, "eval_pos_per_s_eager": round(tp.time_eval(cfg, B), 1)}),
          flush=True)
EOF
        ;;
    summary) summary "$AB_ENV" | tee "$OUTD/summary.log" ;;
    *) echo "unknown section $sec" ;;
    esac
    echo "== $sec: $(($(elapsed) - s0)) s (total $(elapsed) s)" | tee -a "$OUTD/misc.log"
done
exit 0
