#!/bin/bash
# tg-actor against the real learner (CPU backend) and replay: evaluations flow, games reach
# replay, and the actor carries on when the learner is killed (-9) and restarted.
set -u
BIN=${TG_BIN:-$(dirname "$0")/../bin}
[ -x "$BIN/tg-learner" ] && [ -x "$BIN/tg-replay" ] || { echo "t_actor_learner: no tg-learner/tg-replay, skipped"; exit 0; }
TMP=$(mktemp -d /tmp/tgactlrn.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$TMP"/*.out; do echo "--- $f"; tail -15 "$f"; done; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PR=$(port); PI=$(port); PP=$(port)
C="run.dir=$TMP game.targets=2,2,2 game.r_limit=6 game.history=1 infer.samples=8
   replay.demos_size=500 replay.min_size=50 train.threads=1 train.batch=16 train.checkpoint_every=20
   replay.endpoint=tcp://127.0.0.1:$PR replay.connect=tcp://127.0.0.1:$PR
   infer.endpoint=tcp://127.0.0.1:$PI infer.connect=tcp://127.0.0.1:$PI
   infer.pub_endpoint=tcp://127.0.0.1:$PP infer.pub_connect=tcp://127.0.0.1:$PP"
"$BIN/tg-replay" $C > "$TMP/replay.out" 2>&1 &
PIDS+=($!); RP=$!
"$BIN/tg-learner" --backend cpu $C > "$TMP/learner.out" 2>&1 &
LP=$!; PIDS+=($LP)
"$BIN/tg-actor" --seconds 12 $C actor.games=4 actor.simulations=8 actor.eval_batch=4 actor.stats_s=1 \
    actor.eval_timeout_s=1 > "$TMP/actor.out" 2>&1 &
AP=$!; PIDS+=($AP)
sleep 4
kill -9 $LP; wait $LP 2>/dev/null
T_KILL=$(date +%s.%N)
sleep 1
"$BIN/tg-learner" --backend cpu $C > "$TMP/learner2.out" 2>&1 &
LP=$!; PIDS+=($LP)
T_BACK=$(date +%s.%N)
wait $AP || fail "actor exit $?"
kill -TERM $LP $RP; wait $LP; wait $RP

grep -q "stopped: [1-9][0-9]* games" "$TMP/actor.out" || fail "no game finished"
# evaluations before the kill and again after the learner came back (stats lines every second)
/usr/bin/python3 - "$TMP/actor.out" "$T_KILL" "$T_BACK" <<'EOF' || fail "evaluations did not resume after the restart"
import re, sys, datetime
kill, back = float(sys.argv[2]), float(sys.argv[3])
before = after = 0
for line in open(sys.argv[1]):
    m = re.match(r"(\S+)Z .* (\d+) evaluations/s", line)
    if not m:
        continue
    t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc).timestamp()
    if int(m.group(2)) > 0:
        if t < kill:
            before += 1
        elif t > back + 1:
            after += 1
assert before > 0 and after > 0, (before, after)
EOF
grep -q "rejected" "$TMP/replay.out" && fail "replay rejected a game"
rm -rf "$TMP"
echo "t_actor_learner: ok"
