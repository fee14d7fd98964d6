#!/bin/bash
# scripts/eqs2json.py: algorithms written as equations (tg show's form, the runs' summaries) become
# JSON factorizations that tg reads; docs/discovery/found.json (the best per target our runs
# found) verifies and round-trips through tg show; the equations printed in docs/results.md are
# real algorithms; fractions; malformed input exits 2 naming the line.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tg=${TG_BIN:-$root/bin}/tg
py=${TG_PYTHON:-/usr/bin/python3}
e2j="$py $root/scripts/eqs2json.py"
W=$(mktemp -d /tmp/t_eqs2json.XXXXXX)
trap 'rm -rf "$W"' EXIT
failures=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

found=$root/docs/discovery/found.json
"$tg" verify "$found" >"$W/v" || bad "docs/discovery/found.json does not verify: $(cat "$W/v")"
for want in "2x2x2 7" "2x2x3 11" "2x3x3 15" "3x3x3 23"; do
    set -- $want
    grep -Eq " $1 +rank +$2 +integer .* ok$" "$W/v" || bad "found.json: no verified $1 of rank $2"
done
# every one through tg show and back: the same coefficients
"$tg" list "$found" | awk 'NR > 1 && NF > 3 {print $1}' >"$W/keys"
[ "$(wc -l <"$W/keys")" -eq 4 ] || bad "found.json: $(wc -l <"$W/keys") keys, expected 4"
while read -r key; do
    "$tg" show "$found" "$key" >"$W/eq.txt"
    $e2j "$W/eq.txt" "$W/back.json" 2>/dev/null || bad "$key: tg show's output does not convert"
    "$py" - "$found" "$W/back.json" "$key" <<'PY' || bad "$key: the round trip changed it"
import json, sys
a = json.load(open(sys.argv[1]))["factorizations"][sys.argv[3]]
b = json.load(open(sys.argv[2]))["factorizations"][sys.argv[3]]
sys.exit(0 if all(a[k] == b[k] for k in ("n", "m", "p", "rank", "u", "v", "w")) else 1)
PY
done <"$W/keys"

# docs/results.md prints discovered algorithms in the runs' summary form: all of them hold
$e2j "$root/docs/results.md" "$W/results.json" 2>"$W/err" || bad "docs/results.md: $(cat "$W/err")"
"$tg" verify "$W/results.json" >"$W/rv" || bad "an algorithm in docs/results.md is wrong: $(grep -v ' ok$' "$W/rv")"
[ "$(grep -c ' ok$' "$W/rv")" -ge 5 ] || bad "docs/results.md: $(grep -c ' ok$' "$W/rv") algorithms, expected 5 or more"

# fractions: a denominator common to all coefficients; --key; standard input
printf 'm1 = (2 a11)(1/2 b11)\nc11 = m1\n' | $e2j --key half - "$W/fr.json" 2>/dev/null
"$tg" verify "$W/fr.json" | grep -q "half .*denominator 2  ok" || bad "fractions: $("$tg" verify "$W/fr.json")"
# a wrong algorithm converts (the form is right) but does not verify
"$tg" show "$found" 2,2,2_rank7_integer_000002 | sed 's/^c12 = m3 + m4$/c12 = m3 - m4/' >"$W/wrong.txt"
grep -q "^c12 = m3 - m4$" "$W/wrong.txt" || bad "the wrong algorithm was not made"
$e2j "$W/wrong.txt" "$W/wrong.json" 2>/dev/null || bad "a wrong but well-formed algorithm was refused"
if "$tg" verify "$W/wrong.json" >/dev/null 2>&1; then bad "a wrong algorithm verified"; fi
# malformed input: exit 2, the line named
check2() { # name, input, message pattern
    local rc=0
    printf "$2" | $e2j - >/dev/null 2>"$W/err" || rc=$?
    [ $rc -eq 2 ] || bad "$1: exit $rc, expected 2"
    grep -q "$3" "$W/err" || bad "$1: message '$(cat "$W/err")'"
}
check2 "juxtaposed entries" 'm1 = (a11 a12)(b11)\nc11 = m1\n' "line 1: a term without + or -"
check2 "entry of another matrix" 'm1 = (a11)(a11)\nc11 = m1\n' "line 1: .*another matrix"
check2 "garbled line" 'm1 = (a11)(b11)\nc11 = m1\nm2 oops\n' "line 3: not an equation"
check2 "product used, not defined" 'm1 = (a11)(b11)\nc11 = m1 + m2\n' "uses m2 of 1 products"
check2 "product missing" 'm2 = (a11)(b11)\nc11 = m2\n' "products m1 missing"
check2 "twice" 'm1 = (a11)(b11)\nc11 = m1\nc11 = m1\n' "line 3: c11 defined twice"
check2 "nothing" 'hello\n' "no equations"
rc=0; $e2j --dims 2,2 "$W/eq.txt" >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || bad "--dims 2,2: exit $rc"
rc=0; $e2j /nonexistent >/dev/null 2>&1 || rc=$?
[ $rc -eq 2 ] || bad "a missing file: exit $rc"
$e2j --help >"$W/help" || bad "--help exits non-zero"
grep -q "usage: scripts/eqs2json.py" "$W/help" || bad "--help prints no usage"

[ $failures -eq 0 ] && echo "t_eqs2json: ok" || { echo "t_eqs2json: $failures failure(s)"; exit 1; }
