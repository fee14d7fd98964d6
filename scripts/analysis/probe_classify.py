#!/usr/bin/python3
"""Classifies probe.c's output: the share of proposals that complete some rank-7 factorization
of T(2,2,2) in F given the actions played first (t222_family.py's pickle).
usage: probe_classify.py FAMILY.pkl PROBE_OUTPUT [played action as 12 comma-separated ints]..."""
import collections, pickle, sys
import numpy as np

def canon(f):
    f = np.array(f); u, v, w = f[:4], f[4:8], f[8:]
    su, sv = u[np.nonzero(u)[0][0]], v[np.nonzero(v)[0][0]]
    return tuple(int(x) for x in np.concatenate([u * su, v * sv, w * su * sv]))

decs = pickle.load(open(sys.argv[1], "rb"))
played = [canon(tuple(map(int, p.split(",")))) for p in sys.argv[3:]]
good = set()
n_decs = 0
for d in decs:
    if all(p in d for p in played):
        n_decs += 1
        good |= set(d) - set(played)
lines = open(sys.argv[2]).read().split("\n")
acts = [canon(tuple(map(int, l.split()))) for l in lines[1:] if l and l != "invalid"]
c = collections.Counter(acts)
naive = lambda f: sum(1 for x in f if x) == 3
print("%s; factorizations containing the played actions: %d (%d products to complete them)" % (lines[0], n_decs, len(good)))
print("proposals %d (%d distinct): completing %.3f, naive products %.3f" %
      (len(acts), len(c), sum(a in good for a in acts) / len(acts), sum(naive(a) for a in acts) / len(acts)))
