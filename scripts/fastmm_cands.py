#!/usr/bin/env python3
"""Per tuning candidate, its median time (ms) and count in each group of fastmm device logs.

usage: fastmm_cands.py [--top N] [--algo A] [--size N] NAME=PREFIX[,PREFIX...] ...

Reads the fp32 `--tune-report` lines ("tuned (ms, * chosen): L1 P4 18.86 | ...") of each PREFIX's
bench.log (as kept in docs/fastmm, e.g. docs/fastmm/h100p-16h02) and prints one row per
candidate, the N most often timed first, one column per group: to see which plans a card runs
faster than another (2026-12-07: every plan with combinations beside the products 0.1-0.2 ms
slower on some H100s, the products alone and one panel without overlap alike on all).
"""
import argparse
import re
import statistics
import sys


def read(prefix, algo, size):
    """Candidate -> list of times from one bench log, for one algorithm and size."""
    path = prefix + ("" if prefix.endswith("/") else "-") + "bench.log"
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit("fastmm_cands: %s: %s" % (path, e.strerror))
    out, n, a = {}, None, None
    for line in lines:
        m = re.match(r"(\w+) n=(\d+): GEMM", line)
        if m:  # fp32 only: tf32 and bf16 sections are tuned apart
            n = int(m.group(2)) if m.group(1) == "fp32" else None
            continue
        m = re.match(r"  (\S+)\s+\d+x\d+x\d+ r\d+ ", line)
        if m:
            a = m.group(1)
            continue
        if "tuned (ms" not in line or n != size or a != algo:
            continue
        for part in line.split(":", 1)[1].split("|"):
            m = re.match(r"\s*(.*?) ([\d.]+)( \(runoff [\d.]+\))?\*?\s*$", part)
            if m:
                out.setdefault(m.group(1), []).append(float(m.group(2)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--top", type=int, default=30, help="rows (default 30)")
    ap.add_argument("--algo", default="strassen1", help="algorithm label (default strassen1)")
    ap.add_argument("--size", type=int, default=8192, help="matrix size (default 8192)")
    ap.add_argument("groups", nargs="+", metavar="NAME=PREFIX[,PREFIX...]")
    o = ap.parse_args()
    groups = []
    for g in o.groups:
        name, sep, prefixes = g.partition("=")
        if not sep or not prefixes:
            sys.exit("fastmm_cands: %r is not NAME=PREFIX[,PREFIX...]" % g)
        d = {}
        for p in prefixes.split(","):
            for k, v in read(p, o.algo, o.size).items():
                d.setdefault(k, []).extend(v)
        groups.append((name, d))
    keys = set().union(*(d.keys() for _, d in groups))
    if not keys:
        sys.exit("fastmm_cands: no --tune-report lines for %s at %d" % (o.algo, o.size))
    order = sorted(keys, key=lambda k: (-sum(len(d.get(k, [])) for _, d in groups), k))
    w = max(len(k) for k in order[:o.top])
    print("%-*s" % (w, "candidate") + "".join("  %14s" % n for n, _ in groups))
    for k in order[:o.top]:
        cells = ["%9.2f (%2d)" % (statistics.median(d[k]), len(d[k])) if k in d else "%14s" % "-"
                 for _, d in groups]
        print("%-*s" % (w, k) + "".join("  " + c for c in cells))


if __name__ == "__main__":
    main()
