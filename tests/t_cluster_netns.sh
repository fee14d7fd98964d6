#!/usr/bin/env bash
# Two hosts in network namespaces joined by a veth pair: host A runs the replay server and the
# learner with CURVE on, host B runs an actor that reaches them over TCP with an allowed client
# key. Checks that games from B arrive at A, and that a client whose key is not on the
# allow-list gets no answer. Needs root (ip netns); skipped, with a message, without it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null; then
    echo "SKIP t_cluster_netns: needs root and iproute2 (ip netns)"
    exit 0
fi
ID=$$
NA=tgA$ID NB=tgB$ID VA=tgva$ID VB=tgvb$ID
NET=10.231.$((ID % 200 + 20))
T=$(mktemp -d /tmp/tg-netns.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 1
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$NA" 2>/dev/null || true
    ip netns del "$NB" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL t_cluster_netns: $*"; for f in "$T"/run/logs/*.out; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

ip netns add "$NA"
ip netns add "$NB"
ip link add "$VA" type veth peer name "$VB"
ip link set "$VA" netns "$NA"
ip link set "$VB" netns "$NB"
ip -n "$NA" addr add "$NET.1/24" dev "$VA"
ip -n "$NB" addr add "$NET.2/24" dev "$VB"
for ns in "$NA" "$NB"; do ip -n "$ns" link set lo up; done
ip -n "$NA" link set "$VA" up
ip -n "$NB" link set "$VB" up

# Keys: A holds the server certificate and the allow-list; B gets the server's public key and
# its own client pair (allowed); a third key set is not on the allow-list.
"$BIN/tg" keygen "$T/keysA" >/dev/null
"$BIN/tg" keygen "$T/keysA" --client hostb >/dev/null
mkdir -p "$T/keysB" "$T/keysX"
cp "$T/keysA/server.key" "$T/keysB/server.key"
cp "$T/keysA/hostb.key" "$T/keysB/client.key"
cp "$T/keysA/hostb.key_secret" "$T/keysB/client.key_secret"
"$BIN/tg" keygen "$T/other" >/dev/null
cp "$T/keysA/server.key" "$T/keysX/server.key"
cp "$T/other/client.key" "$T/keysX/client.key"
cp "$T/other/client.key_secret" "$T/keysX/client.key_secret"

mkdir -p "$T/run/logs"
COMMON=(run.dir="$T/run" security.curve=true
    replay.endpoint="tcp://$NET.1:25557" replay.connect="tcp://$NET.1:25557"
    infer.endpoint="tcp://$NET.1:25555" infer.connect="tcp://$NET.1:25555"
    infer.pub_endpoint="tcp://$NET.1:25556" infer.pub_connect="tcp://$NET.1:25556"
    replay.demos_size=500 replay.min_size=0 actor.games=4 actor.simulations=8 actor.eval_batch=4
    train.batch=16 train.checkpoint_every=1000000)
"$BIN/tg" config --check "$ROOT/deploy/configs/strassen-2x2x2.yaml" "${COMMON[@]}" \
    security.keys_dir="$T/keysA" --write "$T/run/configA.yaml" >/dev/null
"$BIN/tg" config --check "$T/run/configA.yaml" security.keys_dir="$T/keysB" --write "$T/run/configB.yaml" >/dev/null
"$BIN/tg" config --check "$T/run/configA.yaml" security.keys_dir="$T/keysX" --write "$T/run/configX.yaml" >/dev/null

ip netns exec "$NA" "$BIN/tg-replay" --config "$T/run/configA.yaml" >"$T/run/logs/replay.out" 2>&1 &
PIDS+=($!)
ip netns exec "$NA" "$BIN/tg-learner" --config "$T/run/configA.yaml" --backend cpu >"$T/run/logs/learner.out" 2>&1 &
PIDS+=($!)
ip netns exec "$NB" "$BIN/tg-actor" --config "$T/run/configB.yaml" --name hostb-1 >"$T/run/logs/actor.out" 2>&1 &
PIDS+=($!)

# The allowed client on B sees the replay server; games from B's actor arrive.
games=0
for _ in $(seq 1 90); do
    out=$(ip netns exec "$NB" "$BIN/tg" stats --config "$T/run/configB.yaml" --timeout 2 2>/dev/null || true)
    games=$(awk '$1 == "played.games" {print int($2)}' <<<"$out")
    [ "${games:-0}" -gt 0 ] && break
    sleep 1
done
[ "${games:-0}" -gt 0 ] || fail "no game from host B reached host A's replay server"
echo "host B -> host A over CURVE: $games games stored"

# A client whose key is not on the allow-list gets no answer.
if ip netns exec "$NB" "$BIN/tg" stats --config "$T/run/configX.yaml" --timeout 3 >/dev/null 2>&1; then
    fail "a client without an allowed key was answered"
fi
echo "client with a key not on the allow-list: refused"
# Plain (no CURVE) clients are refused too.
if ip netns exec "$NB" "$BIN/tg" stats "tcp://$NET.1:25557" --timeout 3 >/dev/null 2>&1; then
    fail "a client without CURVE was answered"
fi
echo "client without CURVE: refused"
echo "PASS t_cluster_netns"
