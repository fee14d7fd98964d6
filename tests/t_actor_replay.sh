#!/bin/bash
# tg-actor with the real replay server (and the fake evaluator): every game is accepted and
# acknowledged, the verified discovery lands in results.h5; games in changed bases included.
set -u
BIN=${TG_BIN:-$(dirname "$0")/../bin}
[ -x "$BIN/tg-replay" ] || { echo "t_actor_replay: no tg-replay, skipped"; exit 0; }
TMP=$(mktemp -d /tmp/tgactrep.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$TMP"/*.out; do echo "--- $f"; tail -20 "$f"; done; exit 1; }
port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PR=$(port); PE=$(port)
C="run.dir=$TMP game.targets=1,2,2 game.change_of_basis=true game.basis_prob=0.5 game.r_limit=8 game.history=2
   infer.samples=8 replay.demos_size=500 replay.demos_rank_max=8 replay.flush_count=4
   replay.endpoint=tcp://127.0.0.1:$PR replay.connect=tcp://127.0.0.1:$PR
   infer.endpoint=tcp://127.0.0.1:$PE infer.connect=tcp://127.0.0.1:$PE"
"$BIN/tg-replay" $C > "$TMP/replay.out" 2>&1 &
PIDS+=($!); RP=$!
"$BIN/tg-actor" --fake-evaluator $C > "$TMP/fake.out" 2>&1 &
PIDS+=($!)
timeout 60 "$BIN/tg-actor" --games 24 $C actor.games=4 actor.simulations=24 actor.eval_batch=4 \
    > "$TMP/actor.out" 2>&1 || fail "actor exit $?"
grep -q "found T(1,2,2) rank 4 .*verified" "$TMP/actor.out" || fail "actor found no rank 4"
grep -q "not acknowledged" "$TMP/actor.out" && fail "games left unacknowledged"
grep -q "rejected" "$TMP/replay.out" && fail "replay rejected a message"
# rank 4 may come after a worse first find (e.g. rank 6 in a changed basis): any discovery number
grep -Eq "discovery [0-9]+: 1,2,2 rank 4 \(integer\)" "$TMP/replay.out" || fail "replay recorded no discovery"
/usr/bin/python3 - "$TMP" <<'EOF' || fail "actor status file"
import sys, json, glob
files = glob.glob(sys.argv[1] + "/status/actor-*.json")
assert len(files) == 1, files
s = json.load(open(files[0]))
assert s["role"] == "actor" and s["state"] == "stopped" and s["games"] == 24, s
assert s["best_rank"]["1,2,2"] == 4, s
r = s["recent"]  # the games of the last stats interval
assert r["seconds"] > 0 and 0 <= r["solved"] <= r["games"] <= 24, r
assert r["solved_rank_sum"] >= 4 * r["solved"], r
EOF
# tg status while an actor plays: per target, the recent games and the share at the best rank
# known (results.h5 has rank 4 from the run above)
"$BIN/tg-actor" --seconds 6 $C actor.games=4 actor.simulations=24 actor.eval_batch=4 actor.stats_s=0.5 \
    > "$TMP/actor-live.out" 2>&1 &
LA=$!; PIDS+=($LA)
per_target() { "$BIN/tg" status "$TMP" 2>/dev/null |
    grep -Eq "^    1,2,2 +[0-9]+ games, [0-9]+% solved at a mean rank of [0-9.]+; at the best rank \(4\): [0-9.]+%"; }
# and, games changing basis, how those in the canonical basis play (a line of its own once an
# interval has games of both kinds; half of them are canonical here)
canonical() { "$BIN/tg" status "$TMP" 2>/dev/null |
    grep -Eq "^      in the canonical basis: [0-9]+ games \([0-9]+%\), [0-9]+% solved"; }
ok=0; for _ in $(seq 1 40); do per_target && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] || { "$BIN/tg" status "$TMP"; fail "tg status: no per-target line of recent games"; }
ok=0; while kill -0 $LA 2>/dev/null; do canonical && { ok=1; break; }; sleep 0.2; done
[ $ok = 1 ] || { "$BIN/tg" status "$TMP"; fail "tg status: no line of the canonical basis's recent games"; }
wait $LA || fail "live actor exit"
/usr/bin/python3 - "$TMP" <<'EOF2' || fail "actor status file: recent games per target"
import sys, json, glob
for f in glob.glob(sys.argv[1] + "/status/actor-*.json"):
    r = json.load(open(f))["recent"]
    t = r["targets"]["1,2,2"]
    assert t["games"] == r["games"] and t["solved"] == r["solved"], r
    assert sum(t["ranks"].values()) == t["solved"], r
    assert sum(int(k) * n for k, n in t["ranks"].items()) == r["solved_rank_sum"], r
    c = t["canonical"]  # the same for the games in the canonical basis, a part of them
    assert 0 <= c["solved"] <= c["games"] <= t["games"], r
    assert sum(c["ranks"].values()) == c["solved"], r
    assert all(n <= t["ranks"][k] for k, n in c["ranks"].items()), r
EOF2
# TensorBoard scalars beside it (tags are plain strings in the event records)
ls "$TMP"/tb/actor-*/events.out.tfevents.* > /dev/null 2>&1 || fail "no actor TensorBoard events"
grep -aq "actor/solved_fraction" "$TMP"/tb/actor-*/events.out.tfevents.* || fail "no solved_fraction scalar"
grep -aq "actor/best_rank/1,2,2" "$TMP"/tb/actor-*/events.out.tfevents.* || fail "no best_rank scalar"
# restarts from best lines (game.restart_prob): the server accepts every such game (it checks each
# game from its initial tensor, prefix included) and tg status counts them
timeout 60 "$BIN/tg-actor" --games 24 $C game.restart_prob=1 actor.games=4 actor.simulations=24 actor.eval_batch=4 \
    > "$TMP/actor-restart.out" 2>&1 || fail "actor (restarts) exit $?"
grep -q "rejected" "$TMP/replay.out" && fail "replay rejected a restarted game"
grep -q "not acknowledged" "$TMP/actor-restart.out" && fail "restarted games left unacknowledged"
/usr/bin/python3 - "$TMP" <<'EOF' || fail "actor status file (restarts)"
import sys, json, glob
n = 0
for f in glob.glob(sys.argv[1] + "/status/actor-*.json"):
    s = json.load(open(f))
    if s["restarts"] > 0:
        n += 1
        assert s["games"] == 24 and s["restarts"] <= 24 and s["verify_failed"] == 0, s
        assert 0 <= s["restart_improved"] <= s["restarts"], s
assert n == 1, n
EOF
grep -aq "actor/restarts" "$TMP"/tb/actor-*/events.out.tfevents.* || fail "no restarts scalar"
"$BIN/tg" status "$TMP" | grep -Eq "restarts from best lines: [1-9][0-9]* games" || fail "tg status: no restarts line"
kill -TERM $RP; wait $RP || fail "replay exit"
[ -f "$TMP/results.h5" ] || fail "no results.h5"

# replay killed (-9) and restarted on the same address while the actor plays: every game ends
# up acknowledged (what the dead server lost is resent when the connection is back; no ack
# timeout fires in these 5 s)
"$BIN/tg-replay" $C > "$TMP/replay2.out" 2>&1 &
RP=$!; PIDS+=($RP)
"$BIN/tg-actor" --seconds 5 $C actor.games=4 actor.simulations=24 actor.eval_batch=4 actor.ack_timeout_s=60 \
    > "$TMP/actor2.out" 2>&1 &
AP=$!; PIDS+=($AP)
sleep 1.5
kill -9 $RP; wait $RP 2>/dev/null
sleep 1
"$BIN/tg-replay" $C > "$TMP/replay3.out" 2>&1 &
RP=$!; PIDS+=($RP)
wait $AP || fail "actor exit after the replay restart"
grep -q "were not acknowledged by replay" "$TMP/actor2.out" && fail "games lost across the restart"
grep -q "dropped" "$TMP/actor2.out" && fail "games dropped across the restart"
kill -TERM $RP; wait $RP || fail "replay exit (restarted)"
/usr/bin/python3 - "$TMP" <<'EOF' || fail "replay.h5 / results.h5 content"
import sys, h5py
d = sys.argv[1]
with h5py.File(d + "/results.h5", "r") as f:
    names = []
    f.visit(names.append)
    assert any("u" == n.split("/")[-1] for n in names), names
EOF
rm -rf "$TMP"
echo "t_actor_replay: ok"
