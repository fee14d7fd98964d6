#!/bin/bash
# fastmm on the GPU machine (device tool): CUDA tests, then `tg bench matmul` and the JAX peer
# (../shared/bench/jax_peer.py) on the same algorithms and sizes. Prepared here by
#   make B=fastmm && scripts/fastmm_gpu.sh prepare
# which copies binaries, data and the runtime libraries they link (a tarball of this machine's
# copies, put on the loader path of these binaries only) into .gpu/fastmm (git-ignored; carry it).
# On the device:  scripts/fastmm_gpu.sh check|bench|peer|summary|pairs|plan [SIZES] [...]   (output in $OUT)
#   check                                     CUDA and CPU tests (exit status: theirs); the
#                                             card's clocks and power settings to $OUT/smi-q.txt
#   bench SIZES [tg bench matmul options]     ours: strassen1, strassen2, rt_gpu49, released49
#                                             (FASTMM_ALGOS="strassen1 rt_gpu49": only those;
#                                             FASTMM_SMI=1: SM clock, power and clock event
#                                             reasons to $OUT/smi.csv; scripts/fastmm_smi.py)
#   peer SIZES [ALGO...]                      the JAX peer for those algorithms (default all four)
#   summary                                   ours against the peer, from $OUT's bench and peer logs,
#                                             and the combination kernels' phases (--phases)
#   pairs [PREFIX...]                         every same-call pair: each peer run against the bench
#                                             run of its algorithm and size just before it (else
#                                             just after), and how many meet +5; both sides'
#                                             absolute times and baselines; how far the
#                                             timed medians land from the chosen plans'
#                                             runoff scores (--tune-report); PREFIX-bench.log
#                                             and PREFIX-peer.log per call (default $OUT/), e.g.
#                                             docs/fastmm/h100k-07h51 (runs here too)
#   plan next|sizes SECONDS                   the open measurements as one call (below)
#   keep DIR PREFIX                           here: a call's files into docs/fastmm (below)
# FASTMM_DEADLINE (seconds since the epoch): a peer run is cut off (timeout) 15 s before it, so
# that a device call ends inside its limit with everything printed so far in $OUT.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
G=$root/.gpu/fastmm
mode=${1:-check}
sizes=${2:-8192,10240,12288,14336,16384,18432,20480}
if [ "$mode" = prepare ]; then
    set -e
    rm -rf "$G/bin" "$G/debs" "$G/libs"
    mkdir -p "$G/bin" "$G/data" "$G/libs"
    cp build-fastmm/tests/test_fastmm_cuda build-fastmm/tests/test_fastmm_cpu "$G/bin/"
    # `tg bench matmul` alone (tg_bench_matmul), so that the device needs no library of the
    # other subcommands; the same code as bin/tg's
    printf '#include "tools/cmds.h"\nint main(int c, char **v) { return tg_bench_matmul(c - 1, v + 1); }\n' \
        > "$G/bench_main.c"
    cuda=$(dirname "$(dirname "$(command -v nvcc)")")
    gcc -O2 -I. "$G/bench_main.c" -o "$G/bin/tg-bench-matmul" build-fastmm/libtg.a \
        -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5 -lopenblas -ljansson -lyaml \
        -L"$cuda/lib64" -Wl,-rpath,"$cuda/lib64" -lcublasLt -lcublas -lcudart -lstdc++ -lm -pthread
    # every library they link but the C/C++ runtime and CUDA's (the GPU machine's image differs)
    for b in "$G"/bin/*; do ldd "$b"; done | awk '/=> \//{print $3}' | sort -u |
        grep -v -E '/(libc|libm|libdl|librt|libpthread|libgcc_s|libstdc\+\+|ld-linux[^/]*)\.so|cuda|libcu' |
        xargs -I{} cp -L {} "$G/libs/"
    tar cJf "$G/libs.tar.xz" -C "$G" libs && rm -rf "$G/libs"
    /usr/bin/python3 scripts/npz2h5.py ../shared/data/factorizations_r.npz "$G/data/r.h5"
    /usr/bin/python3 scripts/npz2h5.py ../shared/data/runtime_gpu_4x4x4.npz "$G/data/rt_gpu.h5"
    cp ../shared/data/factorizations_r.npz ../shared/data/runtime_gpu_4x4x4.npz ../shared/bench/jax_peer.py "$G/data/"
    scripts/fastmm_peer_algos.py "$G/data"
    mkdir -p "$G/shared/data" &&
        cp ../shared/data/factorizations_r.npz ../shared/data/runtime_gpu_4x4x4.npz "$G/shared/data/"
    exit 0
fi
# plan next|sizes SECONDS: the open measurements as one device call that ends inside SECONDS
# (committed so that a session need not re-create them; docs/performance.md, "Next fastmm calls")
#   next   check; alternated FASTMM_SMI=1 strassen1 8192 bench/peer pairs; one-panel T forced
#          against not (--phases, in $OUT/ph so that pairs leaves them out); the other three
#          algorithms at 8192 and strassen1 at 10240 and 12288, each with its peer
#   sizes  strassen1 at 14336-20480 with peers, then 8192 pairs until the time is up
if [ "$mode" = plan ]; then
    plan=${2:-next}
    case $plan in next|sizes) ;; *) echo "plan: unknown plan $plan (next, sizes)" >&2; exit 2 ;; esac
    OUT=${OUT:?OUT: the folder the device call brings back}
    export FASTMM_DEADLINE=$(( $(date +%s) + ${3:-490} ))
    S=$0
    L() { echo $(( FASTMM_DEADLINE - $(date +%s) - 15 )); }
    # ALGO SIZE [bench options]: ours, then the peer, each cut off before the deadline; fails
    # (and the loops stop) where the bench does, so that a broken build does not spin
    pair() {
        FASTMM_ALGOS=$1 timeout "$(L)" "$S" bench "$2" "${@:3}" > /dev/null 2>&1 || return 1
        timeout "$(L)" "$S" peer "$2" "$1" > /dev/null 2>&1
        return 0
    }
    # the device brings back at most 8 files: the idle state goes to the output, not a file
    nvidia-smi --query-gpu=name,clocks.sm,power.draw,temperature.gpu --format=csv 2>&1
    if [ "$plan" = next ]; then
        "$S" check > /dev/null 2>&1; tail -1 "$OUT/check.log"
        for _ in 1 2 3; do
            [ "$(L)" -gt 60 ] && FASTMM_SMI=1 pair strassen1 8192 --tune-report || break
        done
        mkdir -p "$OUT/ph"
        for t in 1 0; do
            [ "$(L)" -gt 40 ] || break
            OUT=$OUT/ph FASTMM_ALGOS=strassen1 timeout "$(L)" "$S" bench 8192 --panels 1 --tail $t \
                --direct 1 --phases > /dev/null 2>&1
        done
        rm -f "$OUT/ph/fastmm.csv" # the eighth file is ph/bench.log (at most 8 come back)
        for a in strassen2 rt_gpu49 released49; do [ "$(L)" -gt 60 ] && pair $a 8192 || break; done
        for n in 10240 12288; do [ "$(L)" -gt 80 ] && pair strassen1 $n || break; done
    else
        nvidia-smi -q -d CLOCK,POWER,PERFORMANCE > "$OUT/smi-q.txt" 2>&1
        for n in 14336 16384 18432 20480; do [ "$(L)" -gt 110 ] && pair strassen1 $n || break; done
        while [ "$(L)" -gt 45 ]; do FASTMM_SMI=1 pair strassen1 8192 --tune-report || break; done
    fi
    "$S" pairs > "$OUT/pairs.txt" 2>&1; tail -30 "$OUT/pairs.txt"
    exit 0
fi
# keep DIR PREFIX (here): what a device call brought back (files_at) into docs/fastmm as
# PREFIX-NAME (e.g. docs/fastmm/h100q-09h12), writable, ph/bench.log as PREFIX-ph-bench.log
# (idle.txt from calls before plan printed it)
if [ "$mode" = keep ]; then
    [ $# = 3 ] && [ -d "$2" ] || { echo "keep: usage: keep DIR PREFIX (DIR: the call's files)" >&2; exit 2; }
    n=0
    for f in bench.log peer.log check.log fastmm.csv smi.csv smi-q.txt idle.txt pairs.txt \
             ph/bench.log; do
        [ -f "$2/$f" ] || continue
        cp "$2/$f" "$3-${f//\//-}" && chmod u+w "$3-${f//\//-}" && n=$((n + 1)) || exit 1
    done
    [ $n -gt 0 ] || { echo "keep: nothing of a device call in $2" >&2; exit 1; }
    echo "kept $n files as $3-*"
    exit 0
fi
# pairs needs nothing of the device's set-up below (it runs here on the kept logs too)
if [ "$mode" = pairs ]; then
    shift
    [ $# -gt 0 ] || set -- "${OUT:-/tmp/fastmm-out}/"
    exec python3 - "$@" <<'PY'
import re, sys
tot, drift, ab = {}, {}, {}
for pre in sys.argv[1:]:
    sep = "" if pre.endswith("/") else "-"
    ev = []  # (time, line, kind, algo, size, speedup, text, ms, baseline ms)
    for kind in ("bench", "peer"):
        try:
            lines = open(pre + sep + kind + ".log").read().splitlines()
        except OSError:
            sys.exit("pairs: no %s%s%s.log" % (pre, sep, kind))
        t = algo = n = None
        for i, line in enumerate(lines):
            m = re.match(r"== (\d\d:\d\d:\d\d) (bench|peer)( (\S+))?", line)
            if m:
                t, algo = m.group(1), m.group(4) if kind == "peer" else None
                continue
            if kind == "bench":
                # the peer is fp32 only: a tf32 or bf16 section's runs pair with nothing
                m = re.match(r"(\w+) n=(\d+): GEMM ([\d.]+) ms", line)
                if m:
                    n = int(m.group(2)) if m.group(1) == "fp32" else None
                    base = float(m.group(3))
                    continue
                m = re.match(r"  (\S+)\s+(.*?)\s+([\d.]+) ms  speedup\s+([+-][\d.]+)%", line)
                if m and n and t:
                    txt = "%s ms, %s" % (m.group(3), m.group(2).split(" ", 2)[-1])
                    # the chosen plan's runoff score (--tune-report): how far the timed median
                    # landed from what the tuner chose it on
                    r = re.search(r"\(runoff ([\d.]+)\)\*", lines[i + 1] if i + 1 < len(lines) else "")
                    if r:
                        txt += "; runoff %s" % r.group(1)
                        drift.setdefault((m.group(1), n), []).append(
                            float(m.group(3)) - float(r.group(1)))
                    ev.append((t, i, "ours", m.group(1), n, float(m.group(4)), txt,
                               float(m.group(3)), base))
            else:
                m = re.match(r"n=(\d+): jnp.dot ([\d.]+) ms.*algorithm ([\d.]+) ms, "
                             r"speedup ([+-][\d.]+)%", line)
                if m and algo and t:
                    ev.append((t, i, "peer", algo, int(m.group(1)), float(m.group(4)),
                               "%s / %s ms" % (m.group(3), m.group(2)), float(m.group(3)),
                               float(m.group(2))))
    ev.sort()
    used = set()
    for k, e in enumerate(ev):
        if e[2] != "peer":
            continue
        # the unpaired bench run of the same algorithm and size just before, else just after
        same = lambda j: ev[j][2] == "ours" and j not in used and ev[j][3:5] == e[3:5]
        cand = [j for j in range(k - 1, -1, -1) if same(j)] + \
               [j for j in range(k + 1, len(ev)) if same(j)]
        if not cand:
            continue
        j = cand[0]
        used.add(j)
        d = ev[j][5] - e[5]
        tot.setdefault(e[3:5], []).append(d)
        # each side's speedup is against its own baseline: the absolute times say the rest
        ab.setdefault(e[3:5], []).append((ev[j][7], e[7], ev[j][8], e[8]))
        print("%-12s %-10s %6d  ours %+5.1f%% (%s)  peer %+5.1f%% (%s)  %+5.1f%s" % (
            pre.rstrip("/").split("/")[-1] or pre, e[3], e[4], ev[j][5], ev[j][6], e[5], e[6],
            d, "" if d >= 5 else "  short"))
for (a, n), ds in sorted(tot.items()):
    print("%s %d: met %d of %d, mean %+.2f (%+.1f to %+.1f)" % (
        a, n, sum(d >= 5 for d in ds), len(ds), sum(ds) / len(ds), min(ds), max(ds)))
for (a, n), xs in sorted(ab.items()):
    r = sorted(p / o - 1 for o, p, _, _ in xs)
    lo_hi = lambda k: "%.2f-%.2f" % (min(x[k] for x in xs), max(x[k] for x in xs))
    print("%s %d: ours %s ms, the peer's algorithm %s (ours faster by %.1f%% to %.1f%%, "
          "median %.1f%%); cuBLAS SGEMM %s ms, jnp.dot %s" % (
          a, n, lo_hi(0), lo_hi(1), 100 * r[0], 100 * r[-1], 100 * r[len(r) // 2], lo_hi(2),
          lo_hi(3)))
for (a, n), ds in sorted(drift.items()):
    ds.sort()
    print("%s %d: timed minus runoff score %+.2f to %+.2f ms (median %+.2f), above +0.1 in %d of %d" % (
        a, n, ds[0], ds[-1], ds[len(ds) // 2], sum(d > 0.1 for d in ds), len(ds)))
PY
fi
# runtime libraries (this machine's copies; never unpacked into /), for our binaries only
if [ ! -e /tmp/fastmm-libs/.unpacked ]; then
    mkdir -p /tmp/fastmm-libs && tar xJf "$G/libs.tar.xz" -C /tmp/fastmm-libs --strip-components=1 &&
        touch /tmp/fastmm-libs/.unpacked
fi
LIBS=/tmp/fastmm-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# cuDNN (the CUDA tests link it) where the toolkit's folder lacks it (PyTorch's wheel has one)
if LD_LIBRARY_PATH=$LIBS ldd "$G/bin/test_fastmm_cuda" | grep -q "libcudnn.*not found"; then
    cdn=$(find / -name 'libcudnn.so.9' -not -path '/proc/*' 2>/dev/null | head -1)
    [ -z "$cdn" ] || LIBS=$LIBS:$(dirname "$cdn")
fi
run() { LD_LIBRARY_PATH=$LIBS "$@"; }
export TG_SOURCE_DIR=$root TG_SHARED=$G/shared TG_PYTHON=${TG_PYTHON:-python3} PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/fastmm-out}
mkdir -p "$OUT"
declare -A spec=([strassen1]=builtin:strassen@1 [strassen2]=builtin:strassen@2
                [rt_gpu49]=$G/data/rt_gpu.h5:4,4,4@1 [released49]=$G/data/r.h5:4,4,4@1)
algos=()
for a in ${FASTMM_ALGOS:-strassen1 strassen2 rt_gpu49 released49}; do
    [ -n "${spec[$a]:-}" ] || { echo "unknown algorithm $a" >&2; exit 2; }
    algos+=(--algo "$a=${spec[$a]}")
done
stamp() { echo "== $(date -u +%T) $*"; }
case $mode in
check)
    {
        stamp check
        nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,temperature.gpu,memory.total --format=csv
        # the card's clock and power settings (locked or application clocks, power limit, event
        # reasons): one-panel balanced-wave plans run in two modes that follow the card
        nvidia-smi -q -d CLOCK,POWER,PERFORMANCE > "$OUT/smi-q.txt" 2>&1 || true
        for b in "$G"/bin/*; do LD_LIBRARY_PATH=$LIBS ldd "$b" | grep "not found"; done
        # a hung kernel must not take the whole device call (the tests take ~10 s)
        run timeout 120 "$G/bin/test_fastmm_cuda" 2>&1 | grep -v "^#\|HDF5\|H5\|major:\|minor:"
        st1=${PIPESTATUS[0]}
        run "$G/bin/test_fastmm_cpu" 2>&1 | tail -4
        st2=${PIPESTATUS[0]}
        stamp "check: CUDA tests exit $st1, CPU tests exit $st2"
    } 2>&1 | tee -a "$OUT/check.log"
    grep -q "CUDA tests exit 0, CPU tests exit 0" "$OUT/check.log"
    ;;
bench)
    stamp "bench $sizes ${*:3}" | tee -a "$OUT/bench.log"
    # FASTMM_SMI=1: the SM clock and power every 100 ms while it runs (is the card power-capped
    # while combinations run beside the products?), in $OUT/smi.csv
    smi=
    if [ "${FASTMM_SMI:-0}" = 1 ]; then
        # (the clock event reasons too: 0x4 is the software power cap; scripts/fastmm_smi.py reads it)
        nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
            --format=csv,noheader -lms 100 >> "$OUT/smi.csv" 2>/dev/null & smi=$!
    fi
    run "$G/bin/tg-bench-matmul" matmul "${algos[@]}" "${@:3}" --sizes "$sizes" --csv "$OUT/fastmm.csv" 2>&1 |
        tee -a "$OUT/bench.log"
    st=${PIPESTATUS[0]}
    [ -z "$smi" ] || kill "$smi" 2>/dev/null
    exit "$st"
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
summary)
    # ours (bench.log) against the peer (peer.log) per algorithm and size: speedups and diff
    python3 - "$OUT/bench.log" "$OUT/peer.log" <<'PY'
import re, sys
ours, peer, desc = {}, {}, {}
n = None
for line in open(sys.argv[1]):
    m = re.match(r"fp32 n=(\d+): GEMM ([\d.]+) ms", line)
    if m: n = int(m.group(1)); ours[("GEMM ms", n)] = float(m.group(2)); continue
    m = re.match(r"  (\S+)\s+(.*?)\s+([\d.]+) ms  speedup\s+([+-][\d.]+)%", line)
    if m and n: ours[(m.group(1), n)] = float(m.group(4)); desc[(m.group(1), n)] = m.group(2)
algo = None
try:
    for line in open(sys.argv[2]):
        m = re.match(r"== \S+ peer (\S+) ", line)
        if m: algo = m.group(1); continue
        m = re.match(r"n=(\d+): .*speedup ([+-][\d.]+)%", line)
        if m and algo: peer[(algo, int(m.group(1)))] = float(m.group(2))
except OSError:
    pass
sizes = sorted({k[1] for k in ours})
print("fp32 speedup over cuBLAS: ours / JAX peer (same call) / diff (target >= +5)")
print("%-11s" % "n" + "".join("%8d" % s for s in sizes))
short = {"strassen1": "s1", "strassen2": "s2", "rt_gpu49": "rt49", "released49": "rel49"}
for a in ["strassen1", "strassen2", "rt_gpu49", "released49"]:
    for lab, d in (("ours", ours), ("peer", peer)):
        print("%-11s" % (short[a] + " " + lab) + "".join(
            ("%+8.1f" % d[(a, s)]) if (a, s) in d else "%8s" % "-" for s in sizes))
    print("%-11s" % (short[a] + " diff") + "".join(
        ("%+8.1f" % (ours[(a, s)] - peer[(a, s)])) if (a, s) in ours and (a, s) in peer
        else "%8s" % "-" for s in sizes))
for a in ["strassen1", "strassen2", "rt_gpu49", "released49"]:
    print(a, " ".join("%d:%s" % (s, desc.get((a, s), "-").split(" ", 2)[-1]) for s in sizes))
# --fused V: the fused kernel alone as a plain GEMM against cuBLAS's
if any(("own-SGEMM", s) in ours for s in sizes):
    print("%-11s" % "own-SGEMM" + "".join(("%+8.1f" % ours[("own-SGEMM", s)])
                                         if ("own-SGEMM", s) in ours else "%8s" % "-" for s in sizes))
# phases (--phases): each combination kernel's A / B / C bandwidth, * the chosen one
ph, cur, n = {}, None, None
for line in open(sys.argv[1]):
    m = re.match(r"fp32 n=(\d+):", line)
    if m: n = int(m.group(1)); continue
    m = re.match(r"  (\S+)\s+.* ms  speedup", line)
    if m: cur = m.group(1); continue
    m = re.match(r"    phases \(1 panel, (\w+)(, chosen)?\): A ([\d.]+) ms ([\d.]+) TB/s, "
                 r"B ([\d.]+) ms ([\d.]+) TB/s, .*C ([\d.]+) ms ([\d.]+) TB/s", line)
    if m and cur and n:
        ph[(cur, n, m.group(1))] = "%s%s/%s/%s" % ("*" if m.group(2) else "", m.group(4),
                                                  m.group(6), m.group(8))
if ph:
    print("combination phases A/B/C TB/s (1 panel; * chosen by tuning), staged | stream")
    for a in ["strassen1", "strassen2", "rt_gpu49", "released49"]:
        for s in sizes:
            if (a, s, "staged") in ph or (a, s, "stream") in ph:
                print("  %-11s %6d  %-16s | %s" % (a, s, ph.get((a, s, "staged"), "-"),
                                                   ph.get((a, s, "stream"), "-")))
PY
    ;;
esac
