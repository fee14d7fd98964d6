#!/usr/bin/env bash
# The local cluster exactly as users start it (deploy/run_cluster.sh), for about a minute and a
# half: games flow into the replay server, weight versions advance, a checkpoint is written. Mid
# run an actor, the learner and the replay server are each killed with SIGKILL; the supervisor
# restarts them and the run recovers: acknowledged games are still there after the replay
# server's restart, and the learner resumes from its checkpoint. Then the run directory is
# started again (resumed) with a step limit: the learner's clean exit ends the run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
export TG_BIN=$BIN
T=$(mktemp -d /tmp/tg-cluster.XXXXXX)
RUN=$T/run
CPID=
cleanup() {
    [ -z "$CPID" ] || kill -TERM "$CPID" 2>/dev/null || true
    [ -z "$CPID" ] || wait "$CPID" 2>/dev/null || true
    pkill -KILL -f "config $RUN/config.yaml" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL t_cluster_local: $*"
    echo "--- cluster output"; tail -30 "$T/cluster.out" || true
    for f in "$RUN"/logs/*.out; do echo "--- $f"; tail -12 "$f"; done
    exit 1
}
stat_of() { # key -> value from the replay server's stats ("" if it does not answer)
    "$BIN/tg" stats --config "$RUN/config.yaml" --timeout 2 2>/dev/null | awk -v k="$1" '$1 == k {print int($2)}'
}
learner_field() { # python expression over the learner's status JSON
    /usr/bin/python3 -c "import json,sys; d=json.load(open('$RUN/status/tg-learner.json')); print($1)" 2>/dev/null || echo 0
}
pid_of() { cat "$RUN/status/$1.pid" 2>/dev/null || echo 0; }
wait_for() { # seconds, description, command...
    local secs=$1 what=$2; shift 2
    for _ in $(seq 1 "$secs"); do
        if "$@"; then return 0; fi
        sleep 1
    done
    fail "timed out waiting for: $what"
}

# binaries missing from TG_BIN: a clear error before anything starts
mkdir -p "$T/nobin"
if TG_BIN="$T/nobin" "$ROOT/deploy/run_cluster.sh" --run-dir "$T/norun" --budget 5 >"$T/nobin.out" 2>&1; then
    fail "run_cluster.sh ran without binaries"
fi
grep -q "nobin/tg not found.*TG_BIN" "$T/nobin.out" || { cat "$T/nobin.out"; fail "no clear error for missing binaries"; }

"$ROOT/deploy/run_cluster.sh" --run-dir "$RUN" --budget 150 --actors 1 --backend cpu --no-stop \
    replay.demos_size=2000 replay.min_size=0 replay.flush_ms=100 actor.games=4 \
    actor.simulations=10 actor.eval_batch=4 train.batch=16 train.checkpoint_every=10 \
    train.publish_every=2 >"$T/cluster.out" 2>&1 &
CPID=$!

games_flow() { [ "$(stat_of played.games)" -gt 0 ] 2>/dev/null; }
wait_for 60 "games stored by the replay server" games_flow
echo "games flowing: $(stat_of played.games) games stored"

v0=$(learner_field 'd["inference"]["model_version"]')
ckpt() { [ -e "$RUN/checkpoints/latest" ]; }
wait_for 60 "a checkpoint" ckpt
echo "checkpoint written: $(readlink "$RUN/checkpoints/latest" || cat "$RUN/checkpoints/latest")"
v_more() { [ "$(learner_field 'd["inference"]["model_version"]')" -gt "$v0" ]; }
wait_for 30 "the weights version to advance past $v0" v_more
echo "weights version advanced: $v0 -> $(learner_field 'd["inference"]["model_version"]')"
# how the policy plays now, summed over the running actors' last stats interval
recent() { "$BIN/tg" status "$RUN" 2>/dev/null | grep -Eq "recent games: [0-9]+ in the last [0-9]+ s, [0-9]+% solved"; }
wait_for 30 "tg status to show the recent games" recent
echo "tg status: $("$BIN/tg" status "$RUN" | grep 'recent games')"

# kill -9 an actor: the supervisor restarts it and games keep arriving
a=$(pid_of actor-1); kill -KILL "$a"
restarted() { local p; p=$(pid_of "$1"); [ "$p" != "$2" ] && [ "$p" != 0 ] && kill -0 "$p" 2>/dev/null; }
wait_for 20 "actor restart" restarted actor-1 "$a"
# the restart line: how it ended, and no reason where the process logged no error
grep -q "actor-1 exited (status 137, killed); restarting in 1 s" "$T/cluster.out" || fail "no restart line for the killed actor"
echo "actor killed (pid $a) and restarted (pid $(pid_of actor-1)): $(grep -m1 -o 'actor-1 exited.*' "$T/cluster.out")"

# kill -9 the learner: it comes back from its newest checkpoint
step_before=$(learner_field 'd["step"]')
l=$(pid_of learner); kill -KILL "$l"
wait_for 20 "learner restart" restarted learner "$l"
resumed() { grep -q "resum" "$RUN/logs/learner.out"; }
wait_for 40 "the learner to resume from a checkpoint" resumed
echo "learner killed at step $step_before and restarted (pid $(pid_of learner)): $(grep -m1 -i 'resum' "$RUN/logs/learner.out" | cut -c1-160)"

# kill -9 the replay server: every acknowledged game is there after its restart
acked=$(stat_of played.games)
r=$(pid_of replay); kill -KILL "$r"
wait_for 20 "replay restart" restarted replay "$r"
answers() { [ -n "$(stat_of played.games)" ]; }
wait_for 40 "the restarted replay server to answer" answers
after=$(stat_of played.games)
[ "$after" -ge "$acked" ] || fail "replay lost acknowledged games: $acked before the kill, $after after"
echo "replay killed with $acked games acknowledged, restarted with $after"
more_games() { [ "$(stat_of played.games)" -gt "$after" ]; }
wait_for 60 "games to flow again after the restarts" more_games
echo "games flowing again: $(stat_of played.games)"

kill -TERM "$CPID"
wait "$CPID" || true
CPID=
grep -q "run directory" "$T/cluster.out" || fail "run_cluster.sh did not report the run directory"

# the same run directory again (resumed), with a step limit the learner reaches: its clean exit
# ends the run (no restart), well before the budget
steps=$(learner_field 'd["step"]')
limit=$((steps + 30))
timeout 120 "$ROOT/deploy/run_cluster.sh" --run-dir "$RUN" --budget 100 --actors 1 --backend cpu \
    --no-stop train.max_steps=$limit >"$T/cluster2.out" 2>&1 || fail "resumed run: exit status $?"
grep -q "resuming the run" "$T/cluster2.out" || fail "the run directory was not resumed"
grep -q "the learner finished" "$T/cluster2.out" || fail "the learner's clean exit did not end the run"
! grep -q "learner exited" "$T/cluster2.out" || fail "a learner that finished was restarted"
final=$(learner_field 'd["step"]')
[ "$final" -ge "$limit" ] || fail "learner stopped at step $final, before its limit $limit"
echo "resumed at step $steps; the learner finished at step $final and the run ended by itself"
echo "PASS t_cluster_local"
