#!/usr/bin/env bash
# Start-up errors a restart cannot fix stop the run with the reason, instead of a restart loop
# (deploy/run_cluster.sh, exit status 78 of the programs): CURVE switched on without keys, and a
# run directory whose replay.h5 is unreadable. The latter resumes with --reset-corrupt, which
# moves the file aside and loses nothing else. A second run_cluster.sh on a run directory in use
# is refused, and so is a missing or malformed --hosts file. A port another program holds makes the
# learner restart (with backoff), each restart line saying why.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
export TG_BIN=$BIN
T=$(mktemp -d /tmp/tg-setup.XXXXXX)
cleanup() {
    pkill -KILL -f "config $T/" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL t_cluster_setup: $*"
    for f in "$T"/*.out "$T"/*/logs/*.out; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done
    exit 1
}
cluster() { # name, arguments...: run_cluster.sh with a small run, its output in $T/name.out
    local name=$1
    shift
    timeout 120 "$ROOT/deploy/run_cluster.sh" --actors 1 --backend cpu replay.demos_size=2000 \
        replay.min_size=0 actor.games=4 train.batch=16 "$@" >"$T/$name.out" 2>&1
}

# 0. a hosts file that is missing or malformed: refused before anything starts
if cluster nohosts --run-dir "$T/h1" --hosts "$T/none.txt"; then fail "a missing hosts file was accepted"; fi
grep -q "hosts file .*none.txt not found" "$T/nohosts.out" || fail "no clear error for a missing hosts file"
printf 'node1 actors=2 # two\n\nnode2 actors=many\n' >"$T/hosts.txt"
if cluster badhosts --run-dir "$T/h2" --hosts "$T/hosts.txt"; then fail "a malformed hosts file was accepted"; fi
grep -q "line 3: node2 actors=many: expected HOST" "$T/badhosts.out" || fail "no clear error for a bad hosts line"
[ ! -e "$T/h1" ] && [ ! -e "$T/h2" ] || fail "a refused run created its run directory"

# 1. CURVE on, no keys: every process would fail the same way on every restart
start=$SECONDS
if cluster nokeys --run-dir "$T/nokeys" --budget 60 security.curve=true security.keys_dir="$T/nokeys-keys"; then
    fail "the run without keys did not fail"
fi
grep -q "cannot start: .*CURVE certificate" "$T/nokeys.out" || fail "no 'cannot start' with the missing key"
grep -q "tg keygen" "$T/nokeys.out" || fail "no hint to create keys"
grep -q "run stopped" "$T/nokeys.out" || fail "the run did not say it stopped"
if grep -q "restarting in" "$T/nokeys.out"; then fail "a process was restarted"; fi
[ $((SECONDS - start)) -lt 30 ] || fail "took $((SECONDS - start)) s to give up"
echo "no keys: stopped in $((SECONDS - start)) s: $(grep -m1 'cannot start' "$T/nokeys.out" | cut -c1-120)"

# 2. a run whose replay.h5 is unreadable: stop and say so; --reset-corrupt moves it aside
RUN=$T/run
cluster first --run-dir "$RUN" --budget 12 --no-stop || fail "the first run failed"
[ -s "$RUN/results.h5" ] || [ -d "$RUN/checkpoints" ] || fail "the first run left no run directory"
ls "$RUN"/checkpoints/step-*.h5 >/dev/null 2>&1 || fail "the first run wrote no checkpoint"
# its ports: three distinct ones outside the kernel's ephemeral range, where no outgoing connection
# (or its TIME_WAIT) can hold them when a restarted learner binds again
read -r eph_lo eph_hi </proc/sys/net/ipv4/ip_local_port_range
ports=$(for k in replay.endpoint infer.endpoint infer.pub_endpoint; do
    "$BIN/tg" config --check "$RUN/config.yaml" --get $k | sed 's/.*://'; done)
[ "$(sort -u <<<"$ports" | wc -l)" = 3 ] || fail "ports not distinct: $ports"
for p in $ports; do
    [ "$p" -lt "$eph_lo" ] || [ "$p" -gt "$eph_hi" ] || fail "port $p is in the ephemeral range $eph_lo-$eph_hi"
done
echo "ports $(echo $ports): outside the ephemeral range $eph_lo-$eph_hi"
head -c 4096 /dev/urandom >"$RUN/replay.h5"
start=$SECONDS
if cluster corrupt --run-dir "$RUN" --budget 60 --no-stop; then
    fail "the run with a corrupt replay.h5 did not fail"
fi
grep -q "replay cannot start: .*replay store is unreadable" "$T/corrupt.out" || fail "no reason given"
grep -q -- "--reset-corrupt" "$T/corrupt.out" || fail "no hint to --reset-corrupt"
if grep -q "restarting in" "$T/corrupt.out"; then fail "a process was restarted"; fi
[ -f "$RUN/replay.h5" ] || fail "the corrupt file was touched without --reset-corrupt"
echo "corrupt replay.h5: stopped in $((SECONDS - start)) s"
ckpts=$(ls "$RUN"/checkpoints/step-*.h5 | wc -l)
cluster reset --run-dir "$RUN" --budget 10 --no-stop --reset-corrupt || fail "the run with --reset-corrupt failed"
ls "$RUN"/replay.h5.corrupt-* >/dev/null 2>&1 || fail "the corrupt file was not moved aside"
grep -q "resumed from" "$RUN/logs/learner.out" || fail "the learner did not resume its checkpoint"
[ "$(ls "$RUN"/checkpoints/step-*.h5 | wc -l)" -ge 1 ] || fail "checkpoints lost"
echo "--reset-corrupt: moved aside ($(ls "$RUN"/replay.h5.corrupt-* | xargs -n1 basename)), learner resumed ($ckpts checkpoints before)"

# 3. a second run_cluster.sh on a run directory in use is refused before it starts anything
cluster busy1 --run-dir "$RUN" --budget 30 --no-stop &
first=$!
for _ in $(seq 1 100); do grep -q "elapsed" "$T/busy1.out" 2>/dev/null && break; sleep 0.1; done
learner_pid=$(cat "$RUN/status/learner.pid" 2>/dev/null || echo 0)
if cluster busy2 --run-dir "$RUN" --budget 5 --no-stop; then fail "a second cluster ran on a run directory in use"; fi
grep -q "in use by another run_cluster.sh" "$T/busy2.out" || fail "no clear refusal"
"$BIN/tg" status "$RUN" | grep -q "supervisor: deploy/run_cluster.sh pid [0-9]*, running" ||
    fail "tg status does not show the running supervisor"
[ "$(cat "$RUN/status/learner.pid" 2>/dev/null || echo 0)" = "$learner_pid" ] || fail "the refused cluster started processes"
# stop the first as Ctrl-C would: its supervisor (not the subshell running it) gets the signal
kill -TERM "$(cat "$RUN/status/cluster.pid")" 2>/dev/null || true
wait $first 2>/dev/null || true
grep -q "interrupted" "$T/busy1.out" || fail "the first cluster did not stop on SIGTERM"
"$BIN/tg" status "$RUN" | grep -q "supervisor: .*not running" || fail "tg status does not show the supervisor gone"
echo "run directory in use: $(grep -o 'in use by another run_cluster.sh (pid [0-9]*)' "$T/busy2.out")"

# 4. a port another program holds: the learner cannot bind it, which a restart may fix (the other
# program may let go), so it is restarted with backoff and each restart line says why
exec 5< <(exec python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(60)')
holder=$!
read -r held <&5
cluster heldport --run-dir "$T/held" --budget 6 --no-stop "infer.endpoint=tcp://127.0.0.1:$held" \
    "infer.connect=tcp://127.0.0.1:$held" || true
kill "$holder" 2>/dev/null || true
exec 5<&-
grep -q "learner exited (status 1: tg-learner: .*cannot bind tcp://127.0.0.1:$held: Address already in use); restarting in" \
    "$T/heldport.out" || fail "no reason on the restart line for a held port"
echo "port held by another program: $(grep -m1 -o 'learner exited (status 1: [^)]*)' "$T/heldport.out")"
echo "PASS t_cluster_setup"
