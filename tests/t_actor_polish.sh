#!/bin/bash
# actor.polish_share with the real replay server (and the fake evaluator, whose policy plays the
# naive T(2,2,2), rank 8): the actor's polishing walk shortens those games to rank 7; the replay
# server accepts the polished game (moves without search statistics), records the discovery by
# NAME/polish in results.h5, keeps the game among the best; tg status and tg games show it apart.
set -u
BIN=${TG_BIN:-$(dirname "$0")/../bin}
[ -x "$BIN/tg-replay" ] || { echo "t_actor_polish: no tg-replay, skipped"; exit 0; }
TMP=$(mktemp -d /tmp/tgactpol.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$TMP"/*.out; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PR=$(port); PE=$(port)
C="run.dir=$TMP game.targets=2,2,2 game.target_rank=7 game.change_of_basis=false game.r_limit=10 game.history=2
   infer.samples=8 replay.demos_size=500 replay.demos_rank_max=8 replay.flush_count=4
   replay.endpoint=tcp://127.0.0.1:$PR replay.connect=tcp://127.0.0.1:$PR
   infer.endpoint=tcp://127.0.0.1:$PE infer.connect=tcp://127.0.0.1:$PE"
"$BIN/tg-replay" $C > "$TMP/replay.out" 2>&1 &
PIDS+=($!); RP=$!
"$BIN/tg-actor" --fake-evaluator $C > "$TMP/fake.out" 2>&1 &
PIDS+=($!)
timeout 60 "$BIN/tg-actor" --games 64 $C actor.polish_share=0.9 actor.games=8 actor.simulations=24 \
    actor.eval_batch=8 > "$TMP/actor.out" 2>&1 || fail "actor exit $?"
grep -q "found T(2,2,2) rank 8 (integer, canonical basis" "$TMP/actor.out" || fail "the fake policy solved no game"
grep -q "found T(2,2,2) rank 7 (integer, flip-graph polish of this actor's solved games, [0-9]* flips), verified" \
    "$TMP/actor.out" || fail "polishing found no rank 7"
grep -q "rejected" "$TMP/replay.out" && fail "replay rejected a message"
grep -q "not acknowledged" "$TMP/actor.out" && fail "games left unacknowledged"
# "-- new best" goes to whichever of the polished game and its discovery the replay takes first;
# the best table below is what must hold rank 7
grep -Eq "discovery [0-9]+: 2,2,2 rank 7 \(integer\) by [^ ]+/polish, .*verified" "$TMP/replay.out" ||
    fail "replay recorded no polished discovery"
"$BIN/tg" status "$TMP" | grep -Eq "polishing: [0-9.]+M flips in [0-9]+ s \([0-9.]+M/s\), [1-9][0-9]* better ranks found" ||
    { "$BIN/tg" status "$TMP"; fail "tg status: no polishing line"; }
kill -TERM $RP; wait $RP || fail "replay exit"
"$BIN/tg" games "$TMP" > "$TMP/games.out" 2>&1 || fail "tg games exit"
grep -Eq "^  polished +[0-9]+ +[0-9]+% +100% +7.00" "$TMP/games.out" || { cat "$TMP/games.out"; fail "tg games: no polished row"; }
# the best table: the polished game(s) at rank 7 alone (the naive 8s left it when 7 came)
sed -n '/^best games, T(2,2,2)/,$p' "$TMP/games.out" | grep -Eq "^  all +[1-9][0-9]* +100% +100% +7.00" ||
    { cat "$TMP/games.out"; fail "tg games: the best table does not hold the rank-7 game"; }
"$BIN/tg" list "$TMP/results.h5" | grep -Eq "2,2,2_rank7_integer" || fail "results.h5 holds no rank 7"
"$BIN/tg" verify "$TMP/results.h5" > /dev/null || fail "results.h5 does not verify"
rm -rf "$TMP"
echo "t_actor_polish: ok"
