#!/bin/bash
# tg-learner against the real tg-replay, which is killed (-9) mid-training and restarted on the
# same port: the learner keeps serving, notices the reconnection, asks again for what was lost in
# flight and trains on; SIGTERM then ends it with a checkpoint at its last step. Its status says
# where the training loop's time goes: waiting for replay while it is down, training after.
set -u
BIN=${TG_BIN:-$(dirname "$0")/../bin}
PY=/usr/bin/python3
[ -x "$BIN/tg-learner" ] && [ -x "$BIN/tg-replay" ] || { echo "t_learner_replay: no tg-learner/tg-replay in $BIN"; exit 1; }
TMP=$(mktemp -d /tmp/tglearnrp.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$TMP"/*.out "$TMP"/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done; exit 1; }
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PR=$(port)
C="run.dir=$TMP game.targets=2,2,2 game.history=1 net.c=16 net.layers=1 net.heads=2 net.head_dim=8
   net.p_layers=1 net.v_hidden=16 net.quantiles=4 replay.demos_size=300 replay.min_size=10
   replay.samples_per_insert=0 train.threads=1 train.batch=16 train.checkpoint_every=1000
   replay.endpoint=tcp://127.0.0.1:$PR replay.connect=tcp://127.0.0.1:$PR
   infer.endpoint=tcp://127.0.0.1:* infer.connect=tcp://127.0.0.1:* infer.pub_endpoint=tcp://127.0.0.1:*"
step() {
    $PY -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["step"])
except Exception: print(-1)' "$TMP/status/tg-learner.json"
}
share() { # time_shares.<what> in the learner's status (-1 until there)
    $PY -c 'import json,sys
try: print(json.load(open(sys.argv[1]))["time_shares"][sys.argv[2]])
except Exception: print(-1)' "$TMP/status/tg-learner.json" "$1"
}
wait_share() { # what, least share, seconds
    for _ in $(seq 1 $(($3 * 10))); do
        $PY -c "import sys; sys.exit(0 if $(share "$1") >= $2 else 1)" && return 0
        sleep 0.1
    done
    fail "time share '$1' not at $2 within $3 s (replay $(share replay), train $(share train))"
}
wait_step() {
    for _ in $(seq 1 600); do
        [ "$(step)" -ge "$1" ] && return 0
        kill -0 $LP 2>/dev/null || fail "learner exited"
        sleep 0.1
    done
    fail "learner did not reach step $1 (at $(step))"
}

"$BIN/tg-replay" $C > "$TMP/replay1.out" 2>&1 &
RP=$!; PIDS+=($RP)
"$BIN/tg-learner" --backend cpu $C > "$TMP/learner.out" 2>&1 &
LP=$!; PIDS+=($LP)
wait_step 5
kill -9 $RP; wait $RP 2>/dev/null
sleep 2
S=$(step)
sleep 2
kill -0 $LP 2>/dev/null || fail "learner died with replay"
[ "$(step)" -le $((S + 4)) ] || fail "learner trained on without replay? ($S -> $(step))"
wait_share replay 0.8 12
"$BIN/tg-replay" $C > "$TMP/replay2.out" 2>&1 &
RP=$!; PIDS+=($RP)
wait_step $((S + 10))
wait_share train 0.05 15  # this tiny network trains faster than replay serves it: mostly waiting
$PY - "$TMP/status/tg-learner.json" <<'PYEOF' || fail "time shares out of range"
import json, sys
t = json.load(open(sys.argv[1]))["time_shares"]
assert set(t) == {"replay", "device_wait", "train", "publish"}, t
assert all(0 <= v <= 1.05 for v in t.values()), t
assert 0.5 <= sum(t.values()) <= 1.05, t
PYEOF
"$BIN/tg" status "$TMP" 2>&1 | grep -q "time: training [0-9]*%, waiting for the device" || fail "tg status shows no time line"
kill -TERM $LP; wait $LP || fail "learner exit status $?"
kill -TERM $RP; wait $RP
grep -q "replay tcp://127.0.0.1:$PR is back" "$TMP/logs/tg-learner.log" || fail "no reconnection logged"
# OpenBLAS 0.3.21 takes recent Intel CPUs for a Prescott (SSE3): the learner restarts itself with
# the AVX2/AVX-512 kernels (common/blas_core.h)
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
    grep -q "OpenBLAS core Prescott" "$TMP/logs/tg-learner.log" && fail "the learner runs OpenBLAS's SSE3 kernels on an AVX2 CPU"
    grep -q "OpenBLAS core" "$TMP/logs/tg-learner.log" || fail "the learner did not log its OpenBLAS core"
fi
LAST=$(step)
[ -f "$TMP/checkpoints/step-$(printf %08d "$LAST").h5" ] || fail "no checkpoint at the last step $LAST"
rm -rf "$TMP"
echo "t_learner_replay: ok (trained to step $LAST across a replay restart)"
