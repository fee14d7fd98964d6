#!/usr/bin/env python3
"""Every new best rank of a run directory, one "T rank R" line each, T in seconds of the run's
own time: from the replay server's first log line, leaving out the time between a "stopped"
line of the replay server and its next start (a run resumed later, e.g. in a second device
call, counts only the time it ran). Ranks come from the actors' "found T(...) rank R" lines.
Usage: best_ranks.py RUN_DIR   (prints nothing for a run without a replay log)"""
import datetime
import glob
import re
import sys

d = sys.argv[1]
if not glob.glob(d + "/logs/replay.out"):
    sys.exit(0)
stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+")


def ts(line):
    m = stamp.match(line)
    if not m:
        return None
    return datetime.datetime.strptime(m.group(0)[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


# the replay server's sessions: [start, end] in wall time; the last one is open
sessions, start, last, stopped = [], None, None, False
for line in open(d + "/logs/replay.out"):
    t = ts(line)
    if t is None:
        continue
    if start is None or stopped:
        if start is not None:
            sessions.append((start, last))
        start, stopped = t, False
    last = t
    stopped = "tg-replay: stopped" in line
if start is None:
    sys.exit(0)
sessions.append((start, float("inf")))


def run_time(t):
    """t (wall) as seconds the run had been running"""
    done = 0.0
    for s, e in sessions:
        if t <= e:
            return done + max(0.0, t - s)
        done += e - s
    return done


ev = sorted((run_time(t), int(m.group(1))) for f in glob.glob(d + "/logs/actor*.out")
            for l in open(f) for m in [re.search(r"found T\(\S+\) rank (\d+)", l)] if m
            for t in [ts(l)] if t is not None)
best = 1 << 30
for t, r in ev:
    if r < best:
        best = r
        print("%.0f rank %d" % (t, r))
