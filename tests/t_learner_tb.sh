#!/bin/bash
# TensorBoard events of a real run, read with TensorBoard's own reader (EventAccumulator from the
# tensorboard package, pinned in tests/requirements.txt, installed in a cached venv): tg-replay and
# tg-learner train a few steps, the learner is stopped (SIGTERM) and resumed, and a discovery is in
# results.h5. The learner's events must hold the losses, lr, gradient norm, samples/s, inference
# rates, replay statistics, the best rank and the discovery as text with its equations, and a
# SessionLog START marker so that TensorBoard drops the interrupted tail (loss steps strictly
# increase after TensorBoard's purge). `tg status` must show the run.
#
# Skipped (exit 0, with a message) only when pip cannot reach PyPI.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
PY=/usr/bin/python3
[ -x "$BIN/tg-learner" ] && [ -x "$BIN/tg-replay" ] || { echo "t_learner_tb: no tg-learner/tg-replay in $BIN"; exit 1; }
TMP=$(mktemp -d /tmp/tglearntb.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$TMP"/*.out "$TMP"/run/logs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done; exit 1; }

# ---- TensorBoard in a venv, cached by the requirements' hash
REQ=$ROOT/tests/requirements.txt
HASH=$(sha256sum "$REQ" | cut -c1-12)
VENV=${TG_TB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/tensorgame/venv-tb-$HASH}
if ! "$VENV/bin/python" -c "import tensorboard" 2>/dev/null; then
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    $PY -m venv "$VENV" > "$TMP/venv.out" 2>&1 || fail "python3 -m venv failed (Debian: apt-get install python3-venv)"
    if ! "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" > "$TMP/pip.out" 2>&1; then
        if ! "$VENV/bin/pip" download -q --no-deps -d "$TMP/probe" six==1.17.0 > /dev/null 2>&1; then
            rm -rf "$VENV"
            echo "t_learner_tb: SKIP: pip cannot reach the package index (no network), so TensorBoard's"
            echo "  reader is not available; the event files were not checked. (CI has PyPI.)"
            exit 0
        fi
        rm -rf "$VENV"
        fail "pip install -r tests/requirements.txt failed: $(tail -3 "$TMP/pip.out")"
    fi
fi
TBPY=$VENV/bin/python

# ---- a short run: replay + learner, stopped and resumed
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PR=$(port)
RUN=$TMP/run
mkdir -p "$RUN"
C="run.dir=$RUN game.targets=2,2,2 game.history=1 game.r_limit=8
   net.c=16 net.layers=1 net.heads=2 net.head_dim=8 net.p_layers=1 net.v_hidden=16 net.quantiles=4
   replay.demos_size=500 replay.min_size=50 replay.samples_per_insert=0 replay.stats_s=0.5
   train.threads=1 train.batch=16 train.checkpoint_every=5 train.publish_every=2
   replay.endpoint=tcp://127.0.0.1:$PR replay.connect=tcp://127.0.0.1:$PR
   infer.endpoint=tcp://127.0.0.1:* infer.connect=tcp://127.0.0.1:*
   infer.pub_endpoint=tcp://127.0.0.1:*"
printf 'game:\n  targets: ["2,2,2"]\n  target_rank: [7]\n' > "$RUN/config.yaml"

# a discovery in results.h5, as replay writes it: a rank-7 algorithm for 2x2x2 (rows = terms, in
# the convention of DeepMind's released factorizations; `tg verify` below checks it exactly)
$PY - "$RUN/results.h5" <<'EOF' || fail "writing results.h5"
import sys, time, numpy as np, h5py
u = [[0, 0, 1, -1], [1, 0, 1, -1], [1, -1, 1, -1], [0, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
v = [[0, 1, 0, 0], [0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0], [0, 1, 0, 1]]
w = [[0, 0, -1, 1], [0, -1, 1, 0], [0, 0, -1, 0], [1, 0, -1, 0], [0, 1, 0, 0], [1, -1, 0, 0], [0, -1, 0, 1]]
with h5py.File(sys.argv[1], "w") as f:
    g = f.create_group("2,2,2_rank7_integer_000000")
    for k, x in (("n", 2), ("m", 2), ("p", 2), ("rank", 7)):
        g.attrs.create(k, x, dtype="int32")
    g.attrs.create("denominator", 1, dtype="int64")
    g.attrs["arithmetic"] = np.bytes_("integer")
    g.attrs["target"] = np.bytes_("2,2,2")
    g.attrs.create("model_version", 42, dtype="uint64")
    g.attrs["actor"] = np.bytes_("test-actor")
    g.attrs.create("when", time.time(), dtype="float64")
    for k, x in (("u", u), ("v", v), ("w", w)):
        g.create_dataset(k, data=np.array(x, dtype="int64"))
EOF
"$BIN/tg" verify "$RUN/results.h5" > "$TMP/verify.out" 2>&1 || fail "results.h5 does not verify: $(cat "$TMP/verify.out")"

status_step() { # step in the learner's status file, once written by pid $1
    $PY -c 'import json,sys
try:
    j=json.load(open(sys.argv[1]))
    print(j["step"] if j["pid"]==int(sys.argv[2]) else -1)
except Exception: print(-1)' "$RUN/status/tg-learner.json" "$1"
}
wait_step() { # pid, step
    for _ in $(seq 1 600); do
        [ "$(status_step "$1")" -ge "$2" ] && return 0
        kill -0 "$1" 2>/dev/null || fail "learner $1 exited"
        sleep 0.1
    done
    fail "learner did not reach step $2"
}

"$BIN/tg-replay" $C > "$TMP/replay.out" 2>&1 &
RP=$!; PIDS+=($RP)
"$BIN/tg-learner" --backend cpu $C > "$TMP/learner1.out" 2>&1 &
LP=$!; PIDS+=($LP)
wait_step $LP 7
kill -TERM $LP; wait $LP || fail "learner exit status $? after SIGTERM"
S1=$($PY -c 'import h5py,sys; print(int(h5py.File(sys.argv[1],"r").attrs["step"]))' "$RUN/checkpoints/latest")
"$BIN/tg-learner" --backend cpu $C > "$TMP/learner2.out" 2>&1 &
LP=$!; PIDS+=($LP)
wait_step $LP $((S1 + 4))
sleep 6 # replay statistics and results.h5 are polled every 5 s
kill -TERM $LP; wait $LP || fail "learner exit status $? after SIGTERM (resumed)"
grep -q "resumed from .*step-$(printf %08d "$S1").h5" "$RUN/logs/tg-learner.log" || fail "no resume from step $S1"

"$BIN/tg" status "$RUN" > "$TMP/status.out" 2>&1 || fail "tg status: $(cat "$TMP/status.out")"
cat "$TMP/status.out"
grep -q "<- latest" "$TMP/status.out" || fail "tg status shows no latest checkpoint"
grep -q "inference: .*, busy [0-9]*%, device share [0-9]*%" "$TMP/status.out" ||
    fail "tg status shows no inference busy and device share"
grep -q "2,2,2 *rank 7, found .* by test-actor, model version 42 *\[target 7: reached\]" "$TMP/status.out" \
    || fail "tg status shows no best rank"
"$BIN/tg" status "$RUN" --targets-reached || fail "tg status --targets-reached: not reached"
kill -TERM $RP; wait $RP

# ---- TensorBoard's reader
"$TBPY" "$ROOT/tests/scripts/check_tb.py" "$RUN/tb/tg-learner" --session-start --min-points 2 \
    --increasing loss/total --increasing loss/policy --increasing loss/value \
    --scalar train/lr --scalar train/grad_norm --scalar train/samples_per_s \
    --scalar inference/evaluations_per_s --scalar inference/mean_batch --scalar inference/busy \
    > "$TMP/check.out" 2>&1 || { cat "$TMP/check.out"; fail "learner events"; }
"$TBPY" "$ROOT/tests/scripts/check_tb.py" "$RUN/tb/tg-learner" \
    --scalar replay/demos.positions --scalar best_rank/2,2,2/integer \
    --text discoveries/2,2,2/integer >> "$TMP/check.out" 2>&1 || { cat "$TMP/check.out"; fail "learner events"; }
cat "$TMP/check.out"
grep -q "m1 = " "$TMP/check.out" || fail "the discovery text has no equations"
rm -rf "$TMP"
echo "t_learner_tb: ok"
