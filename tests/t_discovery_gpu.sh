#!/usr/bin/env bash
# scripts/discovery_gpu.sh as a device call runs it, here on the CPU backend with a tiny run: a
# first call starts the run and leaves its logs, status and results in OUT's tarball; a second
# call with --resume continues the same run from its checkpoint (learner steps go on, the
# replay's games stay) instead of starting afresh, and with --save leaves the run's state in OUT
# (replay.h5 trimmed by `tg trim`, as it is where the whole would be too large to carry);
# a third call, as on a fresh machine (an empty run folder), --restore's it from those files and
# goes on with the run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
T=$(mktemp -d /tmp/tg-dgpu.XXXXXX)
cleanup() { pkill -KILL -f "config $T/runs/" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$T"; }
trap cleanup EXIT
fail() { echo "FAIL t_discovery_gpu: $*"; tail -30 "$T"/call*.out; exit 1; }
SPEC="$ROOT/deploy/configs/strassen-2x2x2.yaml replay.demos_size=2000 replay.min_size=0 \
actor.games=4 actor.simulations=10 actor.eval_batch=4 train.batch=16 train.checkpoint_every=10 \
train.publish_every=2"
call() { # n, run folder, extra options
    local n=$1 dir=$2; shift 2
    mkdir -p "$T/out$n"
    OUT=$T/out$n timeout 120 "$ROOT/scripts/discovery_gpu.sh" "$@" --deadline 45 --min-run 10 \
        --actors 1 --backend cpu --bin "$BIN" --dir "$T/$dir" "$SPEC" >"$T/call$n.out" 2>&1 ||
        fail "call $n: exit status $?"
}
step() { /usr/bin/python3 -c "import json; print(json.load(open('$T/${1:-runs}/strassen-2x2x2-0/status/tg-learner.json'))['step'])"; }

call 1 runs
grep -q "run strassen-2x2x2-0" "$T/call1.out" || fail "call 1 did not start the run"
grep -q -- "-- best ranks" "$T/call1.out" || fail "call 1: no summary"
grep -Eq "^  all +[0-9]+ +100%" "$T/call1.out" || fail "call 1: no summary of the stored games (tg games)"
tar tzf "$T/out1/runs.tar.gz" >"$T/list1" || fail "call 1: no tarball"
grep -q "strassen-2x2x2-0/logs/replay.out" "$T/list1" || fail "call 1: no logs in the tarball"
! grep -q "checkpoints/" "$T/list1" || fail "call 1: checkpoints in the tarball"
s1=$(step)
[ "$s1" -gt 0 ] || fail "call 1: the learner made no step"

# the saved replay.h5 trimmed by `tg trim` as a large one would be (newest played and best games,
# no demonstrations)
TG_STATE_TRIM=1 call 2 runs --resume --save
grep -q "resume strassen-2x2x2-0" "$T/call2.out" || fail "call 2 did not resume the run"
grep -q "resuming the run" "$T/call2.out" || fail "call 2: run_cluster.sh did not resume"
s2=$(step)
[ "$s2" -gt "$s1" ] || fail "call 2: learner step $s2, not past call 1's $s1"
grep -q "resumed from .*step-" "$T/runs/strassen-2x2x2-0/logs/learner.out" || fail "the learner did not load its checkpoint"
ls "$T/out2"/state-strassen-2x2x2-0.tgz.00 >/dev/null 2>&1 || fail "call 2 (--save): no state in OUT"
grep -q "state saved" "$T/call2.out" || fail "call 2: --save said nothing"
grep -q "replay.h5 trimmed for the state" "$T/call2.out" || fail "call 2: replay.h5 not trimmed"

# a fresh machine: nothing in the run folder but what --restore brings
call 3 fresh --restore "$T/out2"
grep -q "restored strassen-2x2x2-0" "$T/call3.out" || fail "call 3 did not restore the run"
grep -q "resuming the run" "$T/call3.out" || fail "call 3: run_cluster.sh did not resume"
s3=$(step fresh)
[ "$s3" -gt "$s2" ] || fail "call 3: learner step $s3, not past call 2's $s2"
grep -q "resumed from .*step-0*$s2.h5" "$T/fresh/strassen-2x2x2-0/logs/learner.out" ||
    fail "call 3: the learner did not load call 2's last checkpoint"
grep "loaded $T/fresh/" "$T/fresh/strassen-2x2x2-0/logs/tg-replay.log" | grep -q "demos 0, played [1-9]" ||
    fail "call 3: the replay server did not load the saved (trimmed) games"
grep -q "generating synthetic demonstrations: 0 of" "$T/fresh/strassen-2x2x2-0/logs/tg-replay.log" ||
    fail "call 3: the demonstrations left out were not generated again"
echo "call 1: learner step $s1; call 2 (--resume --save): step $s2; call 3 (fresh folder, --restore): step $s3"
echo "PASS t_discovery_gpu"
