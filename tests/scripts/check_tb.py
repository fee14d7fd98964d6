#!/usr/bin/env python3
"""Reads a tensorgame TensorBoard directory with TensorBoard's own EventAccumulator and checks it.

  check_tb.py DIR [--scalar TAG]... [--increasing TAG]... [--text TAG]... [--session-start]
               [--min-points N]

Every --scalar tag must have at least N points (default 1) with finite values. An --increasing
tag is also a scalar whose steps must strictly increase after TensorBoard's purge of orphaned
data (so a resumed run must carry a SessionLog START marker, or the steps it repeats show up
twice). Every --text tag must be a text-plugin string tensor. --session-start: some file holds a
SessionLog START event."""
import argparse
import glob
import math
import os
import sys

from tensorboard.backend.event_processing import event_accumulator as ea_mod
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.util import tensor_util


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--scalar", action="append", default=[])
    ap.add_argument("--increasing", action="append", default=[])
    ap.add_argument("--text", action="append", default=[])
    ap.add_argument("--session-start", action="store_true")
    ap.add_argument("--min-points", type=int, default=1)
    a = ap.parse_args()

    files = sorted(glob.glob(os.path.join(a.dir, "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no event files in {a.dir}")
    acc = ea_mod.EventAccumulator(a.dir, size_guidance={"scalars": 0, "tensors": 0},
                                  purge_orphaned_data=True)
    acc.Reload()
    tags = acc.Tags()
    print(f"{len(files)} event file(s); scalars: {sorted(tags['scalars'])}")
    print(f"tensors: {sorted(tags['tensors'])}")
    bad = []
    for t in a.scalar + a.increasing:
        if t not in tags["scalars"]:
            bad.append(f"scalar {t} missing")
            continue
        ev = acc.Scalars(t)
        steps = [e.step for e in ev]
        if len(ev) < a.min_points:
            bad.append(f"scalar {t}: {len(ev)} points < {a.min_points}")
        if any(not math.isfinite(e.value) for e in ev):
            bad.append(f"scalar {t}: non-finite value")
        if t in a.increasing and any(s2 <= s1 for s1, s2 in zip(steps, steps[1:])):
            bad.append(f"scalar {t}: steps not increasing: {steps}")
        print(f"  {t}: {len(ev)} points, steps {steps[0]}..{steps[-1]}, last {ev[-1].value:.6g}")
    for t in a.text:
        if t not in tags["tensors"]:
            bad.append(f"text {t} missing")
            continue
        md = acc.SummaryMetadata(t)
        if md.plugin_data.plugin_name != "text":
            bad.append(f"text {t}: plugin {md.plugin_data.plugin_name!r}")
        ev = acc.Tensors(t)
        arr = tensor_util.make_ndarray(ev[-1].tensor_proto)
        s = arr.item() if arr.ndim == 0 else arr.flat[0]
        s = s.decode() if isinstance(s, bytes) else str(s)
        if not s:
            bad.append(f"text {t}: empty")
        print(f"  {t}: {len(ev)} entries, last: {s[:200]!r}")
    if a.session_start:
        starts = []
        for f in files:
            for e in event_file_loader.EventFileLoader(f).Load():
                if e.HasField("session_log") and e.session_log.status == e.session_log.START:
                    starts.append(e.step)
        print(f"  session START markers at steps {starts}")
        if not starts:
            bad.append("no SessionLog START event")
    if bad:
        print("FAIL: " + "; ".join(bad))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
