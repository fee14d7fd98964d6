#!/bin/bash
# `tg golden` end to end: the spec's golden_small.h5 passes; a NumPy port of net_reference.py
# (tests/scripts/net_golden_numpy.py, itself checked against golden_small.h5 to 1e-10) writes a
# golden file for a config where no two dimensions coincide (odd S, n_steps != S, inner != c,
# P != c), which passes too; a file whose gradients were tampered with fails (exit 1) naming the
# group; a missing file exits 2. TG_BIN may point at a sanitizer build.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TG="${TG_BIN:-$ROOT/bin}/tg"
SHARED="${TG_SHARED:-$ROOT/../shared}"
PY=/usr/bin/python3
GEN="$PY $ROOT/tests/scripts/net_golden_numpy.py"
W=$(mktemp -d /tmp/t_net_golden.XXXXXX)
trap 'rm -rf "$W"' EXIT
failures=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

run() {
    set +e
    "$@" >"$W/out" 2>"$W/err"
    rc=$?
    set -e
    if [ $rc -ge 128 ] || grep -q "Sanitizer\|runtime error:" "$W/err"; then
        bad "crash (rc $rc): $*"
        cat "$W/err"
    fi
}

GOLDEN="$SHARED/spec/golden_small.h5"
[ -f "$GOLDEN" ] || { echo "no golden file at $GOLDEN (set TG_SHARED)"; exit 1; }

run $GEN --check "$GOLDEN"
[ $rc -eq 0 ] || { bad "NumPy port disagrees with golden_small.h5"; cat "$W/out"; }

run "$TG" golden "$GOLDEN"
[ $rc -eq 0 ] || { bad "tg golden golden_small.h5: rc $rc"; cat "$W/out" "$W/err"; }
grep -q "^PASS" "$W/out" || bad "no PASS line"

run $GEN "$W/odd.h5" S=3 T=2 c=6 heads=2 head_dim=2 widen=2 n_steps=5 n_logits=7 p_feat=3 \
    p_heads=3 v_hidden=5 quantiles=3 seed=3
[ $rc -eq 0 ] || { bad "writing the NumPy golden file"; cat "$W/err"; }
run "$TG" golden --threads 2 "$W/odd.h5"
[ $rc -eq 0 ] || { bad "tg golden on the odd config: rc $rc"; cat "$W/out" "$W/err"; }

# tampered gradient: a mismatch, not a refusal
cp "$W/odd.h5" "$W/tampered.h5"
$PY - "$W/tampered.h5" <<'PYEOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["grads/policy.layers.1.v.weight"]
    a = d[()]
    a[0, 0] += 0.5 * abs(a).max() + 1e-3
    d[...] = a
PYEOF
run "$TG" golden "$W/tampered.h5"
[ $rc -eq 1 ] || bad "tampered gradients: rc $rc, expected 1"
grep -q "grad policy.layers.1 .*FAIL" "$W/out" || { bad "tampered group not reported"; cat "$W/out"; }

run "$TG" golden "$W/missing.h5"
[ $rc -eq 2 ] || bad "missing file: rc $rc, expected 2"
grep -q "missing.h5" "$W/err" || bad "missing file not named"

run "$TG" golden --help
[ $rc -eq 0 ] || bad "--help: rc $rc"

if [ $failures -ne 0 ]; then
    echo "t_net_golden: $failures failure(s)"
    exit 1
fi
echo "t_net_golden: ok"
