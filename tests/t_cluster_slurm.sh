#!/usr/bin/env bash
# The Slurm mode: starts a single-node Slurm from Debian's slurm-wlm on this machine (as root;
# tests/slurm/start_slurm.sh), submits a short run with `deploy/run_cluster.sh --slurm` exactly as
# users do, waits for the job, and checks that it ran the cluster: games stored, a checkpoint
# written, the results printed. Skipped, with a message, where Slurm is not installed or not root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TG_BIN:-$ROOT/bin}
export TG_BIN=$BIN
if [ "$(id -u)" != 0 ] || ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null; then
    echo "SKIP t_cluster_slurm: needs root and Debian's slurm-wlm (deploy/install_deps.sh --test)"
    exit 0
fi
"$ROOT/tests/slurm/start_slurm.sh"
T=$(mktemp -d /tmp/tg-slurm.XXXXXX)
RUN=$T/run
JOB=
cleanup() {
    [ -z "$JOB" ] || scancel "$JOB" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
fail() {
    echo "FAIL t_cluster_slurm: $*"
    cat "$T/submit.out" 2>/dev/null || true
    for f in "$RUN"/logs/*; do echo "--- $f"; tail -15 "$f"; done
    exit 1
}
"$ROOT/deploy/run_cluster.sh" --slurm --slurm-nodes 1 --slurm-gpus 0 --run-dir "$RUN" --budget 40 \
    --backend cpu replay.demos_size=2000 replay.min_size=0 actor.games=4 actor.simulations=10 \
    actor.eval_batch=4 train.batch=16 train.checkpoint_every=10 >"$T/submit.out" 2>&1 ||
    fail "run_cluster.sh --slurm failed"
JOB=$(awk '/Submitted batch job/ {print $4}' "$T/submit.out")
[ -n "$JOB" ] || fail "no job submitted"
grep -q '^#SBATCH --nodes=1' "$RUN/run.sbatch" || fail "run.sbatch lacks its node count"
echo "submitted job $JOB ($RUN/run.sbatch)"
for _ in $(seq 1 150); do
    state=$(squeue -h -j "$JOB" -o %T 2>/dev/null || true)
    [ -n "$state" ] || break
    sleep 1
done
[ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] || fail "job $JOB still running after 150 s"
JOB=
out=$(ls "$RUN"/logs/slurm-*.out 2>/dev/null | head -1)
[ -n "$out" ] || fail "no Slurm output file"
grep -q "run directory" "$out" || fail "the job did not run the cluster to its end"
[ -e "$RUN/checkpoints/latest" ] || fail "no checkpoint written by the job's learner"
games=$(grep -o 'played [0-9]*' "$RUN/logs/replay.out" 2>/dev/null | tail -1 | awk '{print $2}')
echo "job finished: checkpoint $(readlink "$RUN/checkpoints/latest" 2>/dev/null || cat "$RUN/checkpoints/latest"), replay played positions ${games:-?}"
[ "${games:-0}" -gt 0 ] || fail "no played games reached the replay server in the job"
echo "PASS t_cluster_slurm"
