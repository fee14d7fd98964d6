#!/usr/bin/python3
"""scripts/best_ranks.py: times of new best ranks in a run's own time. A run stopped (the replay
server's "stopped" line) and resumed minutes later counts only the time it ran; a replay server
killed and restarted at once (no "stopped" line) counts as one session; lines without a time
stamp are skipped; a run without a replay log prints nothing."""
import os
import subprocess
import sys
import tempfile

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "best_ranks.py")


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(d):
    r = subprocess.run([sys.executable, SCRIPT, d], capture_output=True, text=True)
    if r.returncode != 0:
        fail("exit %d: %s" % (r.returncode, r.stderr))
    return r.stdout.split("\n")[:-1]


def line(hms, text):
    return "2026-12-05T%s.000Z INFO %s\n" % (hms, text)


with tempfile.TemporaryDirectory() as d:
    if run(d) != []:
        fail("output without a replay log")
    os.mkdir(d + "/logs")
    with open(d + "/logs/replay.out", "w") as f:
        f.write(line("10:00:00", "tg-replay: generating synthetic demonstrations"))
        f.write("a line without a time stamp\n")
        f.write(line("10:01:40", "tg-replay: stopped"))              # first call: 100 s
        f.write(line("10:05:00", "tg-replay: generating synthetic demonstrations"))
        f.write(line("10:06:00", "tg-replay: stats"))
    with open(d + "/logs/actor-1.out", "w") as f:
        f.write(line("10:00:50", "tg-actor: found T(2,3,3) rank 18 (integer), verified"))
        f.write(line("10:01:00", "tg-actor: found T(2,3,3) rank 19 (integer), verified"))
        f.write(line("10:05:30", "tg-actor: found T(2,3,3) rank 17 (integer), verified"))
    with open(d + "/logs/actor-2.out", "w") as f:
        f.write(line("10:01:20", "tg-actor: found T(2,3,3) rank 18 (integer), verified"))
        f.write(line("10:07:00", "tg-actor: found T(2,3,3) rank 16 (integer), verified"))
    got = run(d)
    want = ["50 rank 18", "130 rank 17", "220 rank 16"]
    if got != want:
        fail("resumed run: %s, wanted %s" % (got, want))
    # a replay server killed and restarted (no "stopped" line): one session, wall time
    with open(d + "/logs/replay.out", "w") as f:
        f.write(line("10:00:00", "tg-replay: generating synthetic demonstrations"))
        f.write(line("10:01:40", "tg-replay: stats"))
        f.write(line("10:01:45", "tg-replay: generating synthetic demonstrations"))
    got = run(d)
    want = ["50 rank 18", "330 rank 17", "420 rank 16"]
    if got != want:
        fail("restarted replay: %s, wanted %s" % (got, want))
print("t_best_ranks: ok")
