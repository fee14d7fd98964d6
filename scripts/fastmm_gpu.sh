#!/bin/bash
# fastmm on the GPU machine (device tool): CUDA tests, then `tg bench matmul` and the JAX peer
# (../shared/bench/jax_peer.py) on the same algorithms and sizes. Prepared here by
#   make B=fastmm && scripts/fastmm_gpu.sh prepare
# which copies binaries, data and runtime libraries into .gpu/fastmm (git-ignored; carry it).
# On the device:  scripts/fastmm_gpu.sh check|bench|peer [SIZES] [...]   (output also in $OUT)
#   bench SIZES [tg bench matmul options]     ours: strassen1, strassen2, rt_gpu49, released49
#   peer SIZES [ALGO...]                      the JAX peer for those algorithms (default all four)
# FASTMM_DEADLINE (seconds since the epoch): a peer run is cut off (timeout) 15 s before it, so
# that a device call ends inside its limit with everything printed so far in $OUT.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=$root/.gpu/fastmm
mode=${1:-check}
sizes=${2:-8192,10240,12288,14336,16384,18432,20480}
if [ "$mode" = prepare ]; then
    set -e
    rm -rf "$G/bin"
    mkdir -p "$G/bin" "$G/data" "$G/debs"
    cp build-fastmm/tests/test_fastmm_cuda build-fastmm/tests/test_fastmm_cpu "$G/bin/"
    # `tg bench matmul` alone (tg_bench_matmul), so that the device needs no library of the
    # other subcommands; the same code as bin/tg's
    printf '#include "tools/cmds.h"\nint main(int c, char **v) { return tg_bench_matmul(c - 1, v + 1); }\n' \
        > "$G/bench_main.c"
    cuda=$(dirname "$(dirname "$(command -v nvcc)")")
    gcc -O2 -I. "$G/bench_main.c" -o "$G/bin/tg-bench-matmul" build-fastmm/libtg.a \
        -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lopenblas -ljansson -lyaml \
        -L"$cuda/lib64" -Wl,-rpath,"$cuda/lib64" -lcublasLt -lcublas -lcudart -lstdc++ -lm -pthread
    /usr/bin/python3 scripts/npz2h5.py ../shared/data/factorizations_r.npz "$G/data/r.h5"
    /usr/bin/python3 scripts/npz2h5.py ../shared/data/runtime_gpu_4x4x4.npz "$G/data/rt_gpu.h5"
    cp ../shared/data/factorizations_r.npz ../shared/data/runtime_gpu_4x4x4.npz ../shared/bench/jax_peer.py "$G/data/"
    scripts/fastmm_peer_algos.py "$G/data"
    mkdir -p "$G/shared/data" && cp ../shared/data/factorizations_r.npz "$G/shared/data/"
    exit 0
fi
# runtime libraries the image lacks (Debian 12 builds; never unpacked into /)
if [ ! -e /opt/fastmm-deps/.unpacked ]; then
    for f in "$G"/debs/*.deb; do dpkg -x "$f" /opt/fastmm-deps; done
    touch /opt/fastmm-deps/.unpacked
fi
L=/opt/fastmm-deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export TG_SOURCE_DIR=$root TG_SHARED=$G/shared TG_PYTHON=python3 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/fastmm-out}
mkdir -p "$OUT"
algos=(--algo strassen1=builtin:strassen@1 --algo strassen2=builtin:strassen@2
       --algo rt_gpu49=$G/data/rt_gpu.h5:4,4,4@1 --algo released49=$G/data/r.h5:4,4,4@1)
stamp() { echo "== $(date -u +%T) $*"; }
case $mode in
check)
    nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu --format=csv
    ldd "$G/bin/tg-bench-matmul" | grep "not found"
    "$G/bin/test_fastmm_cuda" 2>&1 | tail -25
    "$G/bin/test_fastmm_cpu" 2>&1 | tail -4
    ;;
bench)
    stamp "bench $sizes ${*:3}" | tee -a "$OUT/bench.log"
    "$G/bin/tg-bench-matmul" matmul "${algos[@]}" "${@:3}" --sizes "$sizes" --csv "$OUT/fastmm.csv" 2>&1 |
        tee -a "$OUT/bench.log"
    ;;
peer)
    names=("${@:3}")
    [ ${#names[@]} -gt 0 ] || names=(strassen1 strassen2 rt_gpu49 released49)
    for name in "${names[@]}"; do
        case $name in
        strassen1) set -- strassen.npz 2,2,2 ;;
        strassen2) set -- strassen2.npz 4,4,4 ;;
        rt_gpu49) set -- runtime_gpu_4x4x4.npz 4,4,4 ;;
        released49) set -- factorizations_r.npz 4,4,4 ;;
        *) echo "unknown algorithm $name" >&2; exit 2 ;;
        esac
        left=$(( ${FASTMM_DEADLINE:-$(( $(date +%s) + 100000 ))} - $(date +%s) - 15 ))
        if [ "$left" -lt 20 ]; then stamp "peer $name $sizes: skipped, no time left" | tee -a "$OUT/peer.log"; continue; fi
        stamp "peer $name $sizes (at most ${left} s)" | tee -a "$OUT/peer.log"
        timeout "$left" python3 "$G/data/jax_peer.py" "$G/data/$1" "$2" "$sizes" highest 2>&1 |
            grep --line-buffered -v Warning | tee -a "$OUT/peer.log"
    done
    stamp "peer done" | tee -a "$OUT/peer.log"
    ;;
esac
