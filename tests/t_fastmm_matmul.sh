#!/bin/bash
# tg matmul (CPU path): Strassen at 1 and 2 levels and a released 4x4x4 algorithm multiply odd
# sizes correctly and report time and accuracy; bad input exits 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tg=${TG_BIN:-$root/bin}/tg
shared=${TG_SHARED:-$root/../shared}
py=${TG_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/tgtest.XXXXXX)
"$py" "$root/scripts/npz2h5.py" "$shared/data/factorizations_r.npz" "$tmp/r.h5" >/dev/null
"$tg" matmul --cpu --size 301,257,199 --levels 1 --reps 1 builtin strassen | tee "$tmp/out"
grep -q "2x2x2 rank 7 (1 level" "$tmp/out"
"$tg" matmul --cpu --size 256 --levels 2 --reps 1 builtin strassen | grep -q "4x4x4 rank 49 (2 levels"
"$tg" matmul --cpu --size 130,131,133 --levels 1 --reps 1 "$tmp/r.h5" 4,4,4 | tee "$tmp/out"
grep -q "algorithm .* max rel error [0-9.]*e-0[5-8]" "$tmp/out"
st=0; "$tg" matmul --cpu "$tmp/r.h5" 7,7,12 >/dev/null 2>&1 || st=$?; [ $st = 2 ]
st=0; "$tg" matmul --cpu --size 0,1,2 builtin strassen >/dev/null 2>&1 || st=$?; [ $st = 2 ]
st=0; "$tg" matmul --cpu --levels x builtin strassen >/dev/null 2>&1 || st=$?; [ $st = 2 ]
rm -rf "$tmp"
echo "t_fastmm_matmul: ok"
