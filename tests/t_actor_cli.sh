#!/bin/bash
# tg-actor as a process: --help, the fake evaluator mode, finding T(1,2,2)'s optimum against it
# over TCP, a clean stop on SIGTERM, and a clear error for a bad config value.
set -u
BIN=${TG_BIN:-$(dirname "$0")/../bin}
TMP=$(mktemp -d /tmp/tgactor.XXXXXX)
fail() { echo "FAIL: $*"; for f in "$TMP"/*.log; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
FAKE=""
cleanup() { [ -n "$FAKE" ] && kill "$FAKE" 2>/dev/null; }
trap cleanup EXIT

"$BIN/tg-actor" --help | grep -q -- "--fake-evaluator" || fail "--help"

P=$(port)
GAME="game.targets=1,2,2 game.change_of_basis=false game.r_limit=8 game.history=2 infer.samples=8"
"$BIN/tg-actor" --fake-evaluator infer.endpoint=tcp://127.0.0.1:$P $GAME > "$TMP/fake.log" 2>&1 &
FAKE=$!

# plays 8 games and finds the optimum (rank 4), verified
timeout 60 "$BIN/tg-actor" --no-replay --games 8 infer.connect=tcp://127.0.0.1:$P $GAME \
    actor.games=4 actor.simulations=24 actor.eval_batch=4 > "$TMP/actor.log" 2>&1 || fail "actor exit $?"
grep -q "found T(1,2,2) rank 4 .*verified" "$TMP/actor.log" || fail "no verified rank-4 discovery"
grep -q "stopped: 8 games" "$TMP/actor.log" || fail "did not stop after 8 games"

# several targets in one run (S = 4: T(1,1,3) padded): each one's optimum found
kill -TERM "$FAKE"; wait "$FAKE"
MT="game.targets=1,2,2;2,2,1;1,1,3 game.change_of_basis=false game.r_limit=8 game.history=2 infer.samples=8"
"$BIN/tg-actor" --fake-evaluator infer.endpoint=tcp://127.0.0.1:$P $MT > "$TMP/fake2.log" 2>&1 &
FAKE=$!
timeout 60 "$BIN/tg-actor" --no-replay --games 30 infer.connect=tcp://127.0.0.1:$P $MT actor.games=6 \
    actor.simulations=24 > "$TMP/multi.log" 2>&1 || fail "multi-target actor exit $?"
for f in "1,2,2) rank 4" "2,2,1) rank 4" "1,1,3) rank 3"; do
    grep -q "found T($f .*verified" "$TMP/multi.log" || fail "multi-target: no T($f"
done

# SIGTERM ends it cleanly (exit 0, final stats line)
"$BIN/tg-actor" --no-replay infer.connect=tcp://127.0.0.1:$P $MT actor.games=4 > "$TMP/term.log" 2>&1 &
A=$!
sleep 1.5
kill -TERM $A
wait $A; rc=$?
[ $rc -eq 0 ] || fail "actor exit $rc after SIGTERM"
grep -q "stopped:" "$TMP/term.log" || fail "no final line after SIGTERM"

kill -TERM "$FAKE"; wait "$FAKE"; rc=$?; FAKE=""
[ $rc -eq 0 ] || fail "fake evaluator exit $rc after SIGTERM"

# a bad value names the key
"$BIN/tg-actor" actor.games=0 > "$TMP/bad.log" 2>&1 && fail "accepted actor.games=0"
grep -q "actor.games" "$TMP/bad.log" || fail "error does not name actor.games"

rm -rf "$TMP"
echo "t_actor_cli: ok"
