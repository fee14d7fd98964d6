#!/usr/bin/env python3
"""Every new best rank of a run directory, one "T rank R" line each, T in seconds after the
replay server's first log line (from the actors' "found T(...) rank R" log lines).
Usage: best_ranks.py RUN_DIR   (prints nothing for a run without a replay log)"""
import datetime
import glob
import re
import sys

d = sys.argv[1]
if not glob.glob(d + "/logs/replay.out"):
    sys.exit(0)
ts = lambda l: datetime.datetime.strptime(l[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp()
t0 = ts(open(d + "/logs/replay.out").readline())
ev = sorted((ts(l) - t0, int(m.group(1))) for f in glob.glob(d + "/logs/actor*.out")
            for l in open(f) for m in [re.search(r"found T\(\S+\) rank (\d+)", l)] if m)
best = 1 << 30
for t, r in ev:
    if r < best:
        best = r
        print("%.0f rank %d" % (t, r))
