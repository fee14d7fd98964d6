#!/bin/bash
# The tg tool's command line: help for every subcommand, docs/configuration.md generated from
# the key table is current, and `tg config --check` accepts good and names the key in bad configs.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TG="${TG_BIN:-$ROOT/bin}/tg"
W=$(mktemp -d /tmp/t_io_cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
failures=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$TG" --help >"$W/help" || bad "tg --help exits non-zero"
cmds=$(awk '/^commands:/{on=1; next} on && NF {print $1}' "$W/help")
[ -n "$cmds" ] || bad "tg --help lists no commands"
for c in verify list show convert config; do
    grep -qx "$c" <<<"$cmds" || bad "tg --help does not list $c"
done
for c in $cmds; do
    "$TG" help "$c" >"$W/h" 2>&1 || bad "tg help $c exits non-zero"
    grep -qi "usage" "$W/h" || bad "tg help $c prints no usage"
done
if "$TG" >/dev/null 2>&1; then bad "tg without a command exits 0"; fi
if "$TG" help nosuch >/dev/null 2>&1; then bad "tg help nosuch exits 0"; fi

"$TG" config --doc >"$W/doc.md"
diff -q "$W/doc.md" "$ROOT/docs/configuration.md" >/dev/null ||
    bad "docs/configuration.md is stale: regenerate it with: bin/tg config --doc > docs/configuration.md"

"$TG" config --check >"$W/cfg.yaml" || bad "the defaults do not pass tg config --check"
grep -q "^# derived: S=4 d=3 n_logits=27" "$W/cfg.yaml" || bad "defaults: derived values $(head -1 "$W/cfg.yaml")"
# what it prints is a config that loads back to the same thing
"$TG" config --check "$W/cfg.yaml" >"$W/cfg2.yaml" || bad "the printed config does not load"
diff -q "$W/cfg.yaml" "$W/cfg2.yaml" >/dev/null || bad "config does not round-trip through YAML"
"$TG" config --check "$W/cfg.yaml" game.targets="3,3,3" game.target_rank=23 --set game.n_steps=9 >"$W/c3" ||
    bad "overrides rejected"
grep -q "^# derived: S=9 d=3 n_logits=27" "$W/c3" || bad "3,3,3: derived $(head -1 "$W/c3")"
for cfg in "$ROOT"/deploy/configs/*.yaml; do
    [ -e "$cfg" ] || continue
    "$TG" config --check "$cfg" >/dev/null 2>"$W/err" || bad "$(basename "$cfg"): $(cat "$W/err")"
done

check_bad() { # WANT YAML
    printf '%b' "$2" >"$W/bad.yaml"
    if "$TG" config --check "$W/bad.yaml" >/dev/null 2>"$W/err"; then
        bad "accepted: $2"
    elif ! grep -q -- "$1" "$W/err"; then
        bad "message for '$2' lacks '$1': $(cat "$W/err")"
    fi
}
check_bad "bad.yaml:3: unknown config key 'game.r_limt'" 'game:\n  r_limit: 5\n  r_limt: 3\n'
check_bad "bad.yaml:2: net.c: 'x' is not an integer" 'net:\n  c: x\n'
check_bad "game.n_steps" 'game:\n  n_steps: 5\n'
check_bad "bad.yaml:2" 'game:\n  r_limit: [1\n'
if "$TG" config --check game.foo=1 >/dev/null 2>"$W/err"; then bad "accepted game.foo=1"; fi
grep -q "game.foo" "$W/err" || bad "unknown override not named: $(cat "$W/err")"
if "$TG" config --check "$W/missing.yaml" >/dev/null 2>"$W/err"; then bad "accepted a missing file"; fi
grep -q "missing.yaml" "$W/err" || bad "missing config file not named"

if [ $failures -ne 0 ]; then
    echo "t_io_cli: $failures failure(s)"
    exit 1
fi
echo "t_io_cli: ok"
