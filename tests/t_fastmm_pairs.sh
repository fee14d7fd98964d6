#!/bin/bash
# scripts/fastmm_gpu.sh pairs: the same-call pairs (ours against the JAX peer) counted from the
# device logs kept in docs/fastmm, as docs/performance.md quotes them; a missing log is an error.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
d=$root/docs/fastmm
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100k-07h51" "$d/h100k-07h54" "$d/h100k-07h58" \
      "$d/h100k-08h09" "$d/h100k-08h14" "$d/h100k-08h23" "$d/h100k-08h26" "$d/h100k-08h30")
echo "$out" | tail -2
echo "$out" | grep -q "^strassen1 8192: met 21 of 29, mean +5.46 (+3.6 to +7.5)$"
echo "$out" | grep -q "^strassen1 16384: met 1 of 1, mean +7.80"
# call 07h58 ran the peer first: its first run is paired with the bench run after it
echo "$out" | grep -q "h100k-07h58 .* ours +15.2% (18.53 ms, L1 P4 D E S; runoff 18.47) .* +5.1$"
[ "$(echo "$out" | grep -c short)" = 8 ]
# the twenty-sixth session's six calls with peers (docs/performance.md, 09:35-10:18)
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100l-09h35" "$d/h100l-09h39" "$d/h100l-09h54" \
      "$d/h100l-10h03" "$d/h100l-10h09" "$d/h100l-10h15")
echo "$out" | grep -q "^strassen1 8192: met 19 of 25, mean +5.72 (+3.8 to +7.5)$"
# the twenty-eighth session's first three calls, one machine (docs/performance.md, 11:52-12:00)
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100m-11h52" "$d/h100m-11h55" "$d/h100m-11h59")
echo "$out" | grep -q "^strassen1 8192: met 20 of 21, mean +6.03 (+4.9 to +7.1)$"
# the chosen plans' timed medians against their runoff scores (the runoff was then changed)
echo "$out" | grep -q "^strassen1 8192: timed minus runoff score -0.14 to +0.23 ms (median +0.00), above +0.1 in 3 of 21$"
# the twenty-ninth session's two calls (one machine, the runoff of 3035c01): no timed median
# drifts above its score; each side's absolute times and baselines
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100n-14h43" "$d/h100n-14h50")
echo "$out" | grep -q "^strassen1 8192: met 16 of 23, mean +5.54 (+3.7 to +7.2)$"
echo "$out" | grep -q "^strassen1 8192: timed minus runoff score -0.20 to +0.07 ms (median -0.07), above +0.1 in 0 of 23$"
echo "$out" | grep -q "^strassen1 8192: ours 18.37-18.67 ms, the peer's algorithm 19.87-20.33 (ours faster by 6.8% to 10.3%, median 8.4%); cuBLAS SGEMM 21.30-21.57 ms, jnp.dot 21.93-22.38$"
# the thirtieth session's three calls, two cards: one-panel T plans slow on the first, fast on
# the second
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100o-15h51")
echo "$out" | grep -q "^strassen1 8192: met 7 of 12, mean +5.39 (+4.1 to +7.3)$"
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100p-16h02" "$d/h100p-16h10")
echo "$out" | grep -q "^strassen1 8192: met 23 of 24, mean +6.50 (+4.3 to +9.5)$"
echo "$out" | grep -q "^strassen1 8192: ours 18.20-18.59 ms, the peer's algorithm 19.81-20.34 (ours faster by 6.8% to 11.5%, median 9.2%); cuBLAS SGEMM 21.29-21.45 ms, jnp.dot 21.86-22.09$"
# per tuning candidate and card (scripts/fastmm_cands.py): the combinations beside the products
# cost more on the slow card, one panel without them (L1 P1) runs alike
out=$("$root/scripts/fastmm_cands.py" --top 8 slow="$d/h100o-15h51" fast="$d/h100p-16h02,$d/h100p-16h10")
echo "$out" | grep -q "^L1 P1 *19.13 (12) *19.15 (24)$"
echo "$out" | grep -q "^L1 P4 S *18.72 (12) *18.54 (24)$"
# a tf32 section after the fp32 one: its runs neither pair with the (fp32) peer nor count
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
cat > "$t/x-bench.log" <<'LOG'
== 10:00:00 bench 8192 --prec fp32,tf32 --tune-report
fp32 n=8192: GEMM 21.30 ms (51.2 TFLOP/s), err 5.1e-06
  strassen1      2x2x2 r7 L1 P4 S    18.50 ms  speedup  +15.1%  err 4.6e-06 (GEMM 5.1e-06)
    tuned (ms, * chosen): L1 P4 S 18.50 | L1 P1 19.10*
tf32 n=8192: GEMM 8.00 ms (137.4 TFLOP/s), err 1.0e-03
  strassen1      2x2x2 r7 L1 P4 S    7.50 ms  speedup   +6.7%  err 1.0e-03 (GEMM 1.0e-03)
    tuned (ms, * chosen): L1 P4 S 7.50*
LOG
printf '%s\n' "== 10:01:00 peer strassen1" \
    "n=8192: jnp.dot 22.00 ms, algorithm 20.00 ms, speedup +10.0%" > "$t/x-peer.log"
out=$("$root/scripts/fastmm_gpu.sh" pairs "$t/x")
echo "$out" | grep -q "^strassen1 8192: met 1 of 1, mean +5.10"
echo "$out" | grep -q "ours +15.1% (18.50 ms"
out=$("$root/scripts/fastmm_cands.py" a="$t/x")
echo "$out" | grep -q "^L1 P4 S *18.50 ( 1)$"
st=0; "$root/scripts/fastmm_cands.py" x="$d/nonexistent" >/dev/null 2>&1 || st=$?; [ $st != 0 ]
st=0; "$root/scripts/fastmm_gpu.sh" pairs "$d/nonexistent" >/dev/null 2>&1 || st=$?; [ $st != 0 ]
# the SM clock under load (FASTMM_SMI=1): the twenty-third session's card held below its top clock
# by the software power cap in most loaded samples
out=$("$root/scripts/fastmm_smi.py" "$d/h100j-05h07-smi.csv")
echo "$out" | grep -q ": 614 samples above 300 W: SM clock median 1965 MHz (lowest 1815), power median 688 W, 246 within 10 W of 700, software power cap in 348$"
st=0; "$root/scripts/fastmm_smi.py" "$d/nonexistent.csv" >/dev/null 2>&1 || st=$?; [ $st != 0 ]
echo "2026/12/07 05:07:41.597, fast, 2619 MHz" > "$t/bad.csv"
st=0; "$root/scripts/fastmm_smi.py" "$t/bad.csv" 2>"$t/err" >/dev/null || st=$?
[ $st != 0 ]
grep -q "bad.csv:1: not an nvidia-smi sample" "$t/err"
# the thirty-second session's card: 8 of 9 pairs met, the power cap in most loaded samples
out=$("$root/scripts/fastmm_gpu.sh" pairs "$d/h100q-21h58" "$d/h100q-22h03")
echo "$out" | grep -q "^strassen1 8192: met 8 of 9, mean +5.73 (+4.8 to +6.5)$"
echo "$out" | grep -q "^rt_gpu49 8192: met 1 of 1, mean +16.50"
out=$("$root/scripts/fastmm_smi.py" "$d/h100q-22h03-smi.csv")
echo "$out" | grep -q ": 611 samples above 300 W: SM clock median 1965 MHz (lowest 1800), power median 691 W, 370 within 10 W of 700, software power cap in 473$"
# the committed device call plans: a wrong name or no $OUT is refused before anything runs
st=0; OUT="$t" "$root/scripts/fastmm_gpu.sh" plan bogus 60 2>"$t/err" >/dev/null || st=$?
[ $st = 2 ]
grep -q "unknown plan bogus (next, sizes)" "$t/err"
[ ! -e "$t/check.log" ] && [ ! -e "$t/pairs.txt" ] && [ ! -e "$t/smi-q.txt" ]
st=0; (unset OUT; "$root/scripts/fastmm_gpu.sh" plan next 60) 2>"$t/err" >/dev/null || st=$?
[ $st != 0 ]
grep -q "OUT: the folder the device call brings back" "$t/err"
# keep: a call's files into the kept-log names that pairs and fastmm_cands.py read
mkdir -p "$t/call/ph" "$t/kept"
cp "$t/x-bench.log" "$t/call/bench.log"; cp "$t/x-peer.log" "$t/call/peer.log"
echo "phases" > "$t/call/ph/bench.log"
"$root/scripts/fastmm_gpu.sh" keep "$t/call" "$t/kept/h100z-10h00" | grep -q "^kept 3 files as"
"$root/scripts/fastmm_gpu.sh" pairs "$t/kept/h100z-10h00" | grep -q "^strassen1 8192: met 1 of 1"
grep -q phases "$t/kept/h100z-10h00-ph-bench.log"
st=0; "$root/scripts/fastmm_gpu.sh" keep "$t/kept" "$t/kept/y" 2>"$t/err" >/dev/null || st=$?
[ $st != 0 ]
grep -q "nothing of a device call" "$t/err"
echo "t_fastmm_pairs: ok"
