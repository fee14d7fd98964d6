#!/bin/bash
# tg export: the exported C source compiles warning-free and multiplies correctly (Strassen and
# released algorithms, square and rectangular); the CUDA source compiles where nvcc exists and,
# on a machine with a GPU, agrees with a double-precision product. Bad input exits 2.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tg=${TG_BIN:-$root/bin}/tg
shared=${TG_SHARED:-$root/../shared}
py=${TG_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d /tmp/tgtest.XXXXXX)
"$py" "$root/scripts/npz2h5.py" "$shared/data/factorizations_r.npz" "$tmp/r.h5" >/dev/null
blas=$(pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
blasinc=$(pkg-config --cflags openblas 2>/dev/null || true)
nvcc=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
gpu=0
if [ -n "$nvcc" ] && nvidia-smi -L >/dev/null 2>&1; then gpu=1; fi
for spec in "builtin strassen" "$tmp/r.h5 4,4,4" "$tmp/r.h5 3,4,5" "$tmp/r.h5 2,2,5" "$tmp/r.h5 3,3,3" "$tmp/r.h5 9,9,9"; do
    set -- $spec
    file=$1 key=$2
    if [ "$key" = strassen ]; then n=2 m=2 p=2; else IFS=, read -r n m p <<<"$key"; fi
    "$tg" export --format c --name fm_test -o "$tmp/alg.c" "$file" "$key"
    grep -q "^ \*   c11 = " "$tmp/alg.c"
    gcc -std=c11 -O2 -Wall -Wextra -Werror $blasinc -DFN=fm_test "$tmp/alg.c" \
        "$root/tests/scripts/fastmm_export_driver.c" -o "$tmp/drv" $blas -lm
    "$tmp/drv" $((n * 13)) $((m * 11)) $((p * 7)) 1e-4
    # CUDA: Strassen and the largest (9x9x9, denominator 8) keep the nvcc time low
    if [ -n "$nvcc" ] && { [ "$key" = strassen ] || [ "$key" = 9,9,9 ]; }; then
        "$tg" export --format cuda --name fm_test -o "$tmp/alg.cu" "$file" "$key"
        "$nvcc" -c -Werror all-warnings "$tmp/alg.cu" -o "$tmp/alg.o"
        if [ $gpu = 1 ]; then
            "$nvcc" -DFN=fm_test "$tmp/alg.cu" "$root/tests/scripts/fastmm_export_driver_cuda.cu" \
                -o "$tmp/drvc" -lcublas
            "$tmp/drvc" $((n * 37)) $((m * 23)) $((p * 19)) 1e-4
        fi
    fi
done
[ $gpu = 1 ] || echo "(no GPU here: the CUDA export was compiled, not run)"
# bad input: unknown format, key, identifier; a mod-2 algorithm
st=0; "$tg" export --format fortran builtin strassen >/dev/null 2>&1 || st=$?; [ $st = 2 ]
st=0; "$tg" export --format c "$tmp/r.h5" 7,7,12 >/dev/null 2>"$tmp/err" || st=$?; [ $st = 2 ]
grep -q "7,7,12" "$tmp/err"
st=0; "$tg" export --format c --name 1abc builtin strassen >/dev/null 2>&1 || st=$?; [ $st = 2 ]
"$py" "$root/scripts/npz2h5.py" --mod2 "$shared/data/factorizations_f2.npz" "$tmp/f2.h5" >/dev/null
st=0; "$tg" export --format c "$tmp/f2.h5" 4,4,4 >/dev/null 2>"$tmp/err" || st=$?; [ $st = 2 ]
grep -q "mod-2" "$tmp/err"
rm -rf "$tmp"
echo "t_fastmm_export: ok"
