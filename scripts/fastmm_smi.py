#!/usr/bin/python3
"""The SM clock and power under load in nvidia-smi samples kept from fastmm device calls.

usage: fastmm_smi.py [--load W] SMI.csv ...

Reads the samples `FASTMM_SMI=1 scripts/fastmm_gpu.sh bench` writes ($OUT/smi.csv: timestamp,
SM clock, memory clock, power, temperature[, clock event reasons]; a header line is skipped)
and prints per file the samples above W watts (default 300: products or a GEMM running), their
median and lowest SM clock, median power, how many are within 10 W of the 700 W cap, and, where
the reasons were sampled, how many name the software power cap (0x4). It asks whether a card
that runs plans with combinations beside the products slower is held below its top clock by
power (2026-12-07: some H100s lose 0.1-0.2 ms on such plans, others do not).
"""
import argparse
import statistics
import sys


def summary(path, load):
    try:
        lines = open(path).read().splitlines()
    except OSError as e:
        sys.exit("fastmm_smi: %s: %s" % (path, e.strerror))
    clocks, watts, capped, reasons = [], [], 0, 0
    for no, line in enumerate(lines, 1):
        f = [x.strip() for x in line.split(",")]
        if not line.strip() or f[0].startswith("timestamp"):
            continue
        try:
            clock = float(f[1].split()[0])
            power = float(f[3].split()[0])
        except (IndexError, ValueError):
            sys.exit("fastmm_smi: %s:%d: not an nvidia-smi sample: %s" % (path, no, line))
        if power <= load:
            continue
        clocks.append(clock)
        watts.append(power)
        if len(f) > 5 and f[5].startswith("0x"):
            reasons += 1
            capped += int(f[5], 16) & 0x4 != 0
    if not clocks:
        return "%s: no sample above %g W" % (path, load)
    out = ("%s: %d samples above %g W: SM clock median %.0f MHz (lowest %.0f), power median "
           "%.0f W, %d within 10 W of 700" % (path, len(clocks), load, statistics.median(clocks),
                                               min(clocks), statistics.median(watts),
                                               sum(w >= 690 for w in watts)))
    if reasons:
        out += ", software power cap in %d" % capped
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--load", type=float, default=300.0, help="watts above which a sample counts")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    for path in a.files:
        print(summary(path, a.load))


if __name__ == "__main__":
    main()
