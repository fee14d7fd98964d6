#!/bin/bash
# Runs the CUDA backend's checks and benchmarks on a GPU machine in one go (the device tool's
# machine lacks the Debian runtime libraries: carry .devdeps made by
# ../shared/device/bundle-debs.sh, the build tree, and .gpu/{spec,bench} copied from ../shared).
#
#   scripts/cuda_device_run.sh [test] [golden] [bench] [peer] [quick] [profile] [notune] [ab]
#
# test: tests/test_cuda_*; golden: tg golden --backend cuda; bench: tg bench net --backend cuda
# on the peer's configs and batches; peer: ../shared/bench/torch_peer.py in the same call;
# quick: fewer timed steps; profile: again with TG_CUDA_PROFILE=1 (device time per kind of
# kernel and per GEMM shape; the events cost time, so those runs' rates are not the figures);
# notune: the benchmark again with TG_CUDA_GEMM_TUNE=0 (the heuristic's first algorithm);
# ab: training and greedy again with the older LayerNorm (TG_CUDA_LN_GENERIC=1) and attention
# (TG_CUDA_ATTN_OLD=1) kernels and the attention backward built for 4 blocks per SM
# (TG_CUDA_ATTN_BWD_OCC=4), for before/after figures from one call.
# Logs go to $OUT (when set) as well as stdout.
set -u
BUILD=${BUILD:-build-cuda}
OUTD=${OUT:-/tmp/tgout}
mkdir -p "$OUTD"
if [ -d .devdeps ]; then
    source .devdeps/unpack-debs.sh
    export LD_LIBRARY_PATH=/opt/devdeps/usr/lib/x86_64-linux-gnu/openblas-pthread:$LD_LIBRARY_PATH
fi
export HDF5_DISABLE_VERSION_CHECK=1
export TG_SHARED=$PWD/.gpu
want() { for a in "${ARGS[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
ARGS=("$@")
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,memory.used,temperature.gpu \
    --format=csv
ldd "$BUILD/bin/tg" | grep "not found" && echo "MISSING LIBRARIES"
STEPS=10
want quick && STEPS=4
if want test; then
    for t in "$BUILD"/tests/test_cuda_*; do
        echo "== $t"
        timeout 400 "$t" 2>&1 | tee -a "$OUTD/tests.log" | grep -v "^\[ RUN\|^\[       OK" 
        echo "exit ${PIPESTATUS[0]}"
    done
fi
if want golden; then
    echo "== tg golden --backend cuda"
    "$BUILD/bin/tg" golden --backend cuda --tol-out 3e-2 --tol-grad 6e-2 .gpu/spec/golden_small.h5 \
        2>&1 | tee "$OUTD/golden.log" | tail -4
fi
if want bench; then
    for cb in paper-S4:1024 paper-S9:256 small-S9:1024; do
        c=${cb%%:*}
        b=${cb##*:}
        echo "== tg bench net --backend cuda --config $c --batch $b"
        timeout 300 "$BUILD/bin/tg" bench net --backend cuda --config "$c" --batch "$b" \
            --steps $STEPS 2>&1 | tee -a "$OUTD/bench.log"
    done
fi
if want notune; then
    for cb in paper-S4:1024 paper-S9:256 small-S9:1024; do
        c=${cb%%:*}
        b=${cb##*:}
        echo "== TG_CUDA_GEMM_TUNE=0 tg bench net --backend cuda --config $c --batch $b"
        TG_CUDA_GEMM_TUNE=0 timeout 300 "$BUILD/bin/tg" bench net --backend cuda --config "$c" \
            --batch "$b" --steps $STEPS 2>&1 | tee -a "$OUTD/notune.log"
    done
fi
if want ab; then
    for envv in TG_CUDA_LN_GENERIC=1 TG_CUDA_ATTN_OLD=1 TG_CUDA_ATTN_BWD_OCC=4; do
        for cb in paper-S4:1024 paper-S9:256 small-S9:1024; do
            c=${cb%%:*}
            b=${cb##*:}
            for what in train greedy; do
                echo "== $envv tg bench net --backend cuda --config $c --batch $b --only $what"
                env "$envv" timeout 300 "$BUILD/bin/tg" bench net --backend cuda --config "$c" \
                    --batch "$b" --steps $STEPS --only $what 2>&1 | tee -a "$OUTD/ab.log" |
                    grep -v "^net bench"
            done
        done
    done
fi
if want profile; then
    for cb in paper-S4:1024 paper-S9:256 small-S9:1024; do
        c=${cb%%:*}
        b=${cb##*:}
        for what in train greedy; do
            echo "== profile: tg bench net --backend cuda --config $c --batch $b --only $what"
            TG_CUDA_PROFILE=1 timeout 300 "$BUILD/bin/tg" bench net --backend cuda --config "$c" \
                --batch "$b" --steps 3 --only $what 2>&1 | tee -a "$OUTD/profile.log" |
                grep -v "^net bench"
        done
    done
fi
if want peer; then
    echo "== torch_peer.py"
    PYTHONUNBUFFERED=1 timeout 500 python3 .gpu/bench/torch_peer.py 2>&1 | tee "$OUTD/peer.log" |
        grep -v Warning
fi
exit 0
