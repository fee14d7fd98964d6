#!/usr/bin/env bash
# Starts a whole tensorgame run: replay server, learner (GPU where present, else CPU) and N
# actors, locally by default, on other hosts over ssh (--hosts), or as a Slurm job (--slurm).
# Supervises the processes (restarts crashed ones with backoff), shows progress, stops when every
# target reaches its target rank or the time budget ends, and prints what was found.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}

usage() {
    cat <<'USAGE'
usage: deploy/run_cluster.sh [options] [section.key=value ...]

With no options: a local run that rediscovers a 2x2x2 algorithm from scratch (random synthetic
demonstrations only), stops at rank 7 or after the budget, and prints the algorithm found.

  --config FILE      run configuration (default deploy/configs/strassen-2x2x2.yaml)
  --run-dir DIR      run directory (default runs/<date>-<time>); an existing one is resumed
  --budget SECONDS   stop after this long (default: the config's run.budget_s)
  --actors N         local actor processes (default: cores - 1, at least 1)
  --backend B        learner backend: auto | cpu | cuda (default: the config's train.backend)
  --hosts FILE       also start actors (and inference replicas) on other hosts over ssh; lines
                     "HOST [actors=N] [replicas=M]"; the repository must be at the same path there
                     (or TG_REMOTE_ROOT), keys from `tg keygen` enable CURVE (security.curve=1)
  --head ADDR        address other hosts use to reach this one (default: first of hostname -I)
  --slurm            write RUN_DIR/run.sbatch (replay + learner on the first node, actors on the
                     rest) and submit it with sbatch; --slurm-nodes N, --slurm-gpus G, --no-submit
  --no-stop          keep running after the target is reached (until the budget or Ctrl-C)
  --quiet            progress lines every 30 s instead of every 10 s
  --reset-corrupt    resume a run whose replay.h5, journal or results.h5 is unreadable: the file
                     is moved aside (FILE.corrupt-<time>) and the readable part kept (tg-replay's
                     option); without it such a run stops at start and says so
  -h, --help         this text

Ctrl-C stops the run cleanly (the learner writes a checkpoint). Logs: RUN_DIR/logs/.
Crashed processes are restarted with backoff; one that exits with status 78 (a start-up error a
restart cannot fix: keys, an unreadable file, no CUDA device for backend cuda) stops the run
with its error.
Binaries: bin/ of this checkout, built (make) when missing or older than the sources; or
TG_BIN=DIR, taken as they are.
USAGE
}

CONFIG=$ROOT/deploy/configs/strassen-2x2x2.yaml
RUN_DIR=""
BUDGET=""
ACTORS=""
BACKEND=""
HOSTS=""
HEAD=""
SLURM=0
SLURM_NODES=2
SLURM_GPUS=1
SUBMIT=1
STOP_AT_TARGET=1
PROGRESS_EVERY=10
RESET_CORRUPT=()
OVERRIDES=()

while [ $# -gt 0 ]; do
    case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --run-dir) RUN_DIR=$2; shift 2 ;;
    --budget) BUDGET=$2; shift 2 ;;
    --actors) ACTORS=$2; shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --head) HEAD=$2; shift 2 ;;
    --slurm) SLURM=1; shift ;;
    --slurm-nodes) SLURM_NODES=$2; shift 2 ;;
    --slurm-gpus) SLURM_GPUS=$2; shift 2 ;;
    --no-submit) SUBMIT=0; shift ;;
    --no-stop) STOP_AT_TARGET=0; shift ;;
    --quiet) PROGRESS_EVERY=30; shift ;;
    --reset-corrupt) RESET_CORRUPT=(--reset-corrupt); shift ;;
    -h | --help) usage; exit 0 ;;
    *=*) OVERRIDES+=("$1"); shift ;;
    *) echo "run_cluster.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '%s [cluster] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { echo "run_cluster.sh: $*" >&2; exit 1; }

[ -f "$CONFIG" ] || die "config file $CONFIG not found"
case "$BACKEND" in "" | auto | cpu | cuda) ;; *) die "--backend must be auto, cpu or cuda" ;; esac
if [ -n "$BUDGET" ] && ! [[ "$BUDGET" =~ ^[0-9]+$ ]]; then die "--budget takes whole seconds"; fi
if [ -n "$ACTORS" ] && ! [[ "$ACTORS" =~ ^[0-9]+$ ]]; then die "--actors takes a number"; fi
if [ -n "$HOSTS" ]; then
    [ -r "$HOSTS" ] || die "hosts file $HOSTS not found"
    # each line: HOST [actors=N] [replicas=M] (# comments)
    bad=$(sed 's/#.*//' "$HOSTS" | awk 'NF && ($1 ~ /=/ || NF > 3) {print NR": "$0; exit}
        NF { for (i = 2; i <= NF; i++) if ($i !~ /^(actors|replicas)=[0-9]+$/) {print NR": "$0; exit} }')
    [ -z "$bad" ] || die "hosts file $HOSTS, line $bad: expected HOST [actors=N] [replicas=M]"
fi

# Build on first use, and rebuild after an update (git pull): one command from a fresh checkout
# (after deploy/install_deps.sh), never a run of stale binaries against newer configs. Binaries
# given with TG_BIN are the caller's to keep current.
PROGS="bin/tg bin/tg-learner bin/tg-actor bin/tg-replay"
if [ -z "${TG_BIN:-}" ] && [ -f "$ROOT/Makefile" ] && command -v make >/dev/null &&
    ! make -C "$ROOT" -q $PROGS >/dev/null 2>&1; then
    say "building (make -j$(nproc) $PROGS) ..."
    make -C "$ROOT" -j"$(nproc)" $PROGS >"${TMPDIR:-/tmp}/tensorgame-build.log" 2>&1 ||
        die "build failed; see ${TMPDIR:-/tmp}/tensorgame-build.log (missing packages? run deploy/install_deps.sh)"
fi
for p in tg tg-learner tg-actor tg-replay; do
    [ -x "$BIN/$p" ] || die "$BIN/$p not found (build with make, or set TG_BIN to the binaries' folder)"
done

[ -n "$RUN_DIR" ] || RUN_DIR=$ROOT/runs/$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$RUN_DIR"/logs "$RUN_DIR"/checkpoints "$RUN_DIR"/tb "$RUN_DIR"/status
RUN_DIR=$(cd "$RUN_DIR" && pwd)
# One supervisor per run directory: a second one would start a second set of processes on the
# same files. The lock is this shell's alone (its programs do not inherit it), so it goes with
# the supervisor, even after kill -9. It waits a second: `tg status` probes the lock in passing.
exec 9>>"$RUN_DIR/cluster.lock"
flock -w 1 9 || die "$RUN_DIR is in use by another run_cluster.sh (pid $(cat "$RUN_DIR/status/cluster.pid" 2>/dev/null || echo '?')); stop it first (Ctrl-C or kill -TERM) or choose another --run-dir"
echo $$ >"$RUN_DIR/status/cluster.pid"

# A new run's ports come from below the kernel's ephemeral range: a port in that range can be the
# local end of any outgoing connection, or of its TIME_WAIT for a minute after, which a connect
# probe cannot see but which makes the learner's bind fail (EADDRINUSE) on every restart. `ss`
# (iproute2) sees sockets in any state; arguments are ports already chosen for this run.
read -r EPH_LO EPH_HI 2>/dev/null </proc/sys/net/ipv4/ip_local_port_range || { EPH_LO=32768; EPH_HI=60999; }
free_port() {
    local p lo=10000 hi=$EPH_LO
    if [ $((hi - lo)) -lt 1000 ]; then lo=$((EPH_HI + 1)); hi=65536; fi
    if [ $((hi - lo)) -lt 1000 ]; then lo=20000; hi=60000; fi
    for _ in $(seq 1 200); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo)))
        case " $* " in *" $p "*) continue ;; esac
        if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then continue; fi
        if command -v ss >/dev/null && [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then continue; fi
        echo $p
        return
    done
    die "no free TCP port found"
}

# The run's configuration: the config file, then endpoints, then the user's overrides. A resumed
# run keeps its config.yaml (overrides still apply).
if [ -n "$HOSTS" ] || [ "$SLURM" = 1 ]; then
    [ -n "$HEAD" ] || HEAD=$(hostname -I 2>/dev/null | awk '{print $1}')
    [ -n "$HEAD" ] || HEAD=$(hostname)
    BIND_HOST='*'
else
    HEAD=127.0.0.1
    BIND_HOST=127.0.0.1
fi
if [ -f "$RUN_DIR/config.yaml" ]; then
    if [ -e "$RUN_DIR/checkpoints/latest" ]; then say "resuming the run in $RUN_DIR"; else say "using $RUN_DIR/config.yaml"; fi
    BASE=$RUN_DIR/config.yaml
    ENDPOINTS=()
else
    BASE=$CONFIG
    RP=$(free_port); IP=$(free_port "$RP"); PP=$(free_port "$RP" "$IP")
    ENDPOINTS=("replay.endpoint=tcp://$BIND_HOST:$RP" "replay.connect=tcp://$HEAD:$RP"
        "infer.endpoint=tcp://$BIND_HOST:$IP" "infer.connect=tcp://$HEAD:$IP"
        "infer.pub_endpoint=tcp://$BIND_HOST:$PP" "infer.pub_connect=tcp://$HEAD:$PP")
fi
[ -z "$BUDGET" ] || OVERRIDES+=("run.budget_s=$BUDGET")
[ -z "$BACKEND" ] || OVERRIDES+=("train.backend=$BACKEND")
"$BIN/tg" config --check "$BASE" "run.dir=$RUN_DIR" "${ENDPOINTS[@]}" "${OVERRIDES[@]}" \
    --write "$RUN_DIR/config.yaml.new" >/dev/null || die "bad configuration (see above)"
mv "$RUN_DIR/config.yaml.new" "$RUN_DIR/config.yaml"
CFG=$RUN_DIR/config.yaml
cfg_get() { "$BIN/tg" config --check "$CFG" --get "$1"; }
BUDGET=$(cfg_get run.budget_s | cut -d. -f1)
[ -n "$BUDGET" ] || BUDGET=0

if [ "$SLURM" = 1 ]; then
    args=(--run-dir "$RUN_DIR" --nodes "$SLURM_NODES" --gpus "$SLURM_GPUS")
    [ "$SUBMIT" = 1 ] || args+=(--no-submit)
    exec "$ROOT/deploy/slurm.sh" "${args[@]}"
fi

if [ -z "$ACTORS" ]; then
    ACTORS=$(($(nproc) - 1))
    [ "$ACTORS" -ge 1 ] || ACTORS=1
fi

# ---- supervision -------------------------------------------------------------------------
# Each managed process has a name, a command line, a pid, a restart count and a backoff.
declare -A CMD PID WRAP STARTED BACKOFF NEXT_START OUTPOS
NAMES=()
STOPPING=0

add_proc() { # name command...
    local name=$1; shift
    NAMES+=("$name")
    CMD[$name]=$(printf '%q ' "$@")
    PID[$name]=0
    WRAP[$name]=0
    BACKOFF[$name]=1
    NEXT_START[$name]=0
}

start_proc() {
    local name=$1 st=$RUN_DIR/status
    rm -f "$st/$name.pid" "$st/$name.exit"
    # where this start's output begins in the appended log: its last error is the reason to show
    OUTPOS[$name]=$(stat -c %s "$RUN_DIR/logs/$name.out" 2>/dev/null || echo 0)
    # A wrapper subshell waits on the program and records its exit status, so the supervisor
    # learns how it ended without bash's job notices. setsid: a session per program, so a stop
    # reaches it and its children alike and Ctrl-C in the terminal reaches only the supervisor.
    (
        setsid bash -c "exec ${CMD[$name]}" >>"$RUN_DIR/logs/$name.out" 2>&1 </dev/null &
        echo $! >"$st/$name.pid"
        code=0
        wait $! || code=$?
        echo $code >"$st/$name.exit"
    ) 2>/dev/null 9>&- &
    WRAP[$name]=$!
    local i
    for i in $(seq 1 50); do [ -s "$st/$name.pid" ] && break; sleep 0.02; done
    PID[$name]=$(cat "$st/$name.pid" 2>/dev/null || echo 0)
    STARTED[$name]=$SECONDS
}

stop_all() {
    [ "$STOPPING" = 0 ] || return 0
    STOPPING=1
    say "stopping: actors first, then the learner (writes a checkpoint), then replay"
    local group
    for group in actor learner replay; do
        local n pids=()
        for n in "${NAMES[@]}"; do
            [[ "$n" == $group* ]] || continue
            [ "${PID[$n]}" -gt 0 ] || continue
            kill -TERM "${PID[$n]}" 2>/dev/null || true
            pids+=("${PID[$n]}")
        done
        local t=0
        while [ ${#pids[@]} -gt 0 ] && [ $t -lt 300 ]; do
            local alive=()
            for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
            pids=("${alive[@]+"${alive[@]}"}")
            [ ${#pids[@]} -gt 0 ] || break
            sleep 0.1; t=$((t + 1))
        done
        for p in "${pids[@]+"${pids[@]}"}"; do
            say "process $p did not stop in 30 s; killing it"
            kill -KILL "$p" 2>/dev/null || true
        done
    done
    wait 2>/dev/null || true
    if [ -n "$HOSTS" ]; then stop_remote; fi
}

on_signal() {
    echo
    say "interrupted"
    stop_all
    report
    exit 130
}
trap on_signal INT TERM

# the last error NAME logged since its latest start (the logs are appended across restarts)
last_error() {
    tail -c +$((${OUTPOS[$1]:-0} + 1)) "$RUN_DIR/logs/$1.out" 2>/dev/null | grep -a " ERROR " |
        tail -1 | sed 's/^[^ ]* ERROR //' | cut -c1-300 || true # none: grep fails (pipefail)
}

supervise_once() {
    local n now=$SECONDS
    for n in "${NAMES[@]}"; do
        local w=${WRAP[$n]}
        if [ "$w" -gt 0 ] && kill -0 "$w" 2>/dev/null; then
            # a process that stayed up for a minute has its backoff reset
            if [ $((now - STARTED[$n])) -gt 60 ]; then BACKOFF[$n]=1; fi
            continue
        fi
        if [ "$w" -gt 0 ]; then
            wait "$w" 2>/dev/null || true
            local code
            code=$(cat "$RUN_DIR/status/$n.exit" 2>/dev/null || echo "?")
            if [ "$n" = learner ] && [ "$code" = 0 ]; then
                # a clean exit (run.budget_s, train.max_steps or a stop request such as SIGTERM):
                # the learner was told to stop, not crashed, so the run is over
                LEARNER_DONE=1
                PID[$n]=0
                WRAP[$n]=0
                continue
            fi
            if [ "$code" = 78 ]; then
                # a start-up error no restart can fix (the configuration, keys, or the backend on
                # this machine, e.g. cuda without a GPU): stop the run and say why
                local why
                why=$(last_error "$n")
                case "$why" in
                *"no CUDA device"* | *"not built in"*) why="$why (--backend cpu runs it on the CPU)" ;;
                esac
                SETUP_FAILED="$n cannot start: ${why:-see logs/$n.out}"
                PID[$n]=0
                WRAP[$n]=0
                continue
            fi
            case "$code" in
            137) code="$code, killed" ;;
            143) code="$code, terminated" ;;
            139) code="$code, segmentation fault" ;;
            134) code="$code, aborted" ;;
            esac
            # its last error says why (e.g. a port another program holds, which it may let go)
            local last
            last=$(last_error "$n")
            say "$n exited (status $code${last:+: $last}); restarting in ${BACKOFF[$n]} s (log: logs/$n.out)"
            PID[$n]=0
            WRAP[$n]=0
            NEXT_START[$n]=$((now + BACKOFF[$n]))
            local b=$((BACKOFF[$n] * 2))
            [ $b -le 60 ] || b=60
            BACKOFF[$n]=$b
        fi
        if [ "$now" -ge "${NEXT_START[$n]}" ]; then start_proc "$n"; fi
    done
}

# ---- remote hosts (ssh) ------------------------------------------------------------------
REMOTE_ROOT=${TG_REMOTE_ROOT:-$ROOT}
start_remote() {
    local line host actors replicas i
    while read -r line; do
        line=${line%%#*}
        [ -n "${line// /}" ] || continue
        host=$(awk '{print $1}' <<<"$line")
        actors=$(grep -o 'actors=[0-9]*' <<<"$line" | cut -d= -f2 || true)
        replicas=$(grep -o 'replicas=[0-9]*' <<<"$line" | cut -d= -f2 || true)
        ssh -o BatchMode=yes "$host" "mkdir -p '$RUN_DIR/logs'" ||
            die "cannot reach $host over ssh (BatchMode: keys must be set up)"
        scp -q "$CFG" "$host:$RUN_DIR/config.yaml"
        if [ -d "$(cfg_get security.keys_dir)" ]; then
            scp -qr "$(cfg_get security.keys_dir)" "$host:$(dirname "$(cfg_get security.keys_dir)")/"
        fi
        for i in $(seq 1 "${actors:-1}"); do
            add_proc "actor-$host-$i" ssh -o BatchMode=yes "$host" \
                "exec $REMOTE_ROOT/bin/tg-actor --config $RUN_DIR/config.yaml --name $host-$i"
        done
        for i in $(seq 1 "${replicas:-0}"); do
            add_proc "replica-$host-$i" ssh -o BatchMode=yes "$host" \
                "exec $REMOTE_ROOT/bin/tg-learner --serve-only --config $RUN_DIR/config.yaml"
        done
    done <"$HOSTS"
}
stop_remote() {
    local host
    for host in $(awk '!/^[[:space:]]*(#|$)/ {print $1}' "$HOSTS"); do
        ssh -o BatchMode=yes "$host" "pkill -TERM -f 'config $RUN_DIR/config.yaml'" 2>/dev/null || true
    done
}

# ---- progress and results ----------------------------------------------------------------
progress() {
    "$BIN/tg" status "$RUN_DIR" --brief 2>/dev/null | sed "s/^/$(date -u +%H:%M:%S) [progress] /" || true
}

target_reached() {
    "$BIN/tg" status "$RUN_DIR" --targets-reached >/dev/null 2>&1
}

report() {
    echo
    "$BIN/tg" status "$RUN_DIR" --results 2>/dev/null || say "no results recorded"
    echo "run directory: $RUN_DIR (results.h5, checkpoints/, tb/, logs/)"
}

# ---- the run -----------------------------------------------------------------------------
say "run directory: $RUN_DIR"
say "targets: $(cfg_get game.targets)  target ranks: $(cfg_get game.target_rank)  budget: ${BUDGET}s  actors: $ACTORS  backend: $(cfg_get train.backend)"
add_proc replay "$BIN/tg-replay" --config "$CFG" "${RESET_CORRUPT[@]+"${RESET_CORRUPT[@]}"}"
add_proc learner "$BIN/tg-learner" --config "$CFG"
for i in $(seq 1 "$ACTORS"); do
    add_proc "actor-$i" "$BIN/tg-actor" --config "$CFG" --name "$(hostname)-$i"
done
[ -z "$HOSTS" ] || start_remote

# A supervisor that fails on an error of its own (set -e) must not leave the processes running
# unsupervised: they are in sessions of their own, so nothing else would stop them.
on_exit() {
    local rc=$?
    [ "$rc" != 0 ] && [ "$STOPPING" = 0 ] || return 0
    say "run_cluster.sh failed (status $rc) while supervising; stopping the run's processes"
    stop_all
}
trap on_exit EXIT

T0=$SECONDS
LAST_PROGRESS=-1000
REACHED=0
LEARNER_DONE=0
SETUP_FAILED=
while :; do
    supervise_once
    if [ -n "$SETUP_FAILED" ]; then
        say "$SETUP_FAILED"
        break
    fi
    if [ "$LEARNER_DONE" = 1 ]; then
        say "the learner finished (exit status 0: run.budget_s, train.max_steps or a stop request)"
        break
    fi
    elapsed=$((SECONDS - T0))
    if [ $((SECONDS - LAST_PROGRESS)) -ge "$PROGRESS_EVERY" ]; then
        LAST_PROGRESS=$SECONDS
        say "elapsed ${elapsed}s"
        progress
    fi
    if [ "$STOP_AT_TARGET" = 1 ] && [ $elapsed -ge 5 ] && target_reached; then
        REACHED=1
        say "every target reached its target rank after ${elapsed}s"
        break
    fi
    if [ "$BUDGET" -gt 0 ] && [ $elapsed -ge "$BUDGET" ]; then
        say "time budget of ${BUDGET}s used up"
        break
    fi
    sleep 1
done
stop_all
if [ -n "$SETUP_FAILED" ]; then
    say "run stopped: $SETUP_FAILED (a restart would fail the same way; fix it and start again)"
    exit 1
fi
report
[ "$REACHED" = 1 ] || say "target rank not reached within the budget"
exit 0
