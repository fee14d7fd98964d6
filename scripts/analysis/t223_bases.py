#!/usr/bin/python3
"""How often a random change of basis makes a rank-11 factorization of T(2,2,3) sparser than the
naive rank-12 one (the analysis behind the GPU configs in docs/results.md; the T(2,2,2)
counterpart is t222_family.py, whose t222_family.pkl this reads).

The rank-11 family used: Strassen's orbit (t222_family.pkl, 288 factorizations) on two of B's
three columns, plus any rank-4 factorization of the remaining T(2,2,1) in F (the naive one moved
by (A, b) -> (P A Q^-1, Q b), P, Q unimodular 2x2 in F). Other rank-11 algorithms exist, so the
figures are lower bounds. Bases: the actor's walk (common/basis.c: 4n + 8 steps of row additions,
sign flips and swaps, entries of M and M^-1 in {-1,0,1}); modes of equal size share a matrix.

usage: scripts/analysis/t223_bases.py [--pkl /tmp/t222_family.pkl] [--bases 1000]
This is a one-off analysis tool: nothing here is an input of any run."""
import argparse, itertools, os, pickle, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import basis_walk  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--pkl", default="/tmp/t222_family.pkl")
ap.add_argument("--bases", type=int, default=1000)
args = ap.parse_args()
n, m, p = 2, 2, 3
A_, B_, C_ = n * m, m * p, p * n  # mode sizes 4, 6, 6


def prod(i, j, k):  # the naive product a_ij b_jk into c_ki, as one row u|v|w
    u, v, w = np.zeros(A_, int), np.zeros(B_, int), np.zeros(C_, int)
    u[i * m + j] = v[j * p + k] = w[k * n + i] = 1
    return np.concatenate([u, v, w])


T = np.zeros((A_, B_, C_), int)
for i, j, k in itertools.product(range(n), range(m), range(p)):
    T[i * m + j, j * p + k, k * n + i] = 1
tensor = lambda F: np.einsum("ra,rb,rc->abc", F[:, :A_], F[:, A_:A_ + B_], F[:, A_ + B_:])
naive = np.array([prod(i, j, k) for i, j, k in itertools.product(range(n), range(m), range(p))])
assert (tensor(naive) == T).all()

# Strassen's orbit on columns (k1, k2) of B: a 2x2x2 factor (u over (i,j), v over (j,k'), w over
# (k',i)) in T(2,2,3)'s layout
decs = [np.array(d) for d in pickle.load(open(args.pkl, "rb"))]
def embed(d, cols):
    out = np.zeros((len(d), A_ + B_ + C_), int)
    out[:, :4] = d[:, :4]
    for kp, k in enumerate(cols):
        for j in range(m):
            out[:, A_ + j * p + k] = d[:, 4 + j * 2 + kp]
        for i in range(n):
            out[:, A_ + B_ + k * n + i] = d[:, 8 + kp * 2 + i]
    return out

# rank-4 factorizations of the T(2,2,1) on column k: naive moved by P, Q (2x2, det +-1, in F)
G = [g for g in (np.array(e).reshape(2, 2) for e in itertools.product([-1, 0, 1], repeat=4))
     if abs(round(np.linalg.det(g))) == 1]
inv = lambda g: np.round(np.linalg.inv(g)).astype(int)
def t221_family(k):
    fams = set()
    for P, Q in itertools.product(G, repeat=2):
        rows = []
        for i, j in itertools.product(range(2), repeat=2):
            U = np.zeros((2, 2), int); U[i, j] = 1          # a-side 2x2 (i, j)
            vb = np.zeros(2, int); vb[j] = 1                # b column (j)
            wc = np.zeros(2, int); wc[i] = 1                # c row (i)
            U2, v2, w2 = P.T @ U @ inv(Q).T, Q.T @ vb, inv(P) @ wc
            r = np.zeros(A_ + B_ + C_, int)
            r[:4] = U2.reshape(4)
            for jj in range(2):
                r[A_ + jj * p + k] = v2[jj]
            for ii in range(2):
                r[A_ + B_ + k * n + ii] = w2[ii]
            rows.append(tuple(r))
        F = np.array(rows)
        if abs(F).max() <= 1:
            fams.add(tuple(sorted(rows)))
    return [np.array(f) for f in fams]

parts = []  # (Strassen block factorizations, T(2,2,1) factorizations) per column split
for k3 in range(p):
    cols = [k for k in range(p) if k != k3]
    S = [embed(d, cols) for d in decs]
    R = t221_family(k3)
    for s in S[:3]:
        for r in R[:3]:
            assert (tensor(np.concatenate([s, r])) == T).all()
    parts.append((S, R))
print("rank-11 family: %d column splits x %d Strassen blocks x %d..%d T(2,2,1) factorizations" %
      (p, len(decs), min(len(r) for _, r in parts), max(len(r) for _, r in parts)))

rng = np.random.default_rng(1)
walk = lambda nn: basis_walk.walk(rng, nn)

def tr(F, Am, Bm):
    return np.concatenate([F[:, :A_] @ Am.T, F[:, A_:A_ + B_] @ Bm.T, F[:, A_ + B_:] @ Bm.T], axis=1)

def best_nnz(fams, Am, Bm):  # fewest non-zeros over factorizations whose moved factors stay in F
    b = 1 << 30
    for F in fams:
        X = tr(F, Am, Bm)
        if abs(X).max() <= 1:
            b = min(b, int((X != 0).sum()))
    return b

canon_naive = int((naive != 0).sum())
canon_11 = min(best_nnz(S, np.eye(4, dtype=int), np.eye(6, dtype=int)) +
               best_nnz(R, np.eye(4, dtype=int), np.eye(6, dtype=int)) for S, R in parts)
print("canonical basis: naive %d non-zeros, sparsest rank-11 of the family %d" % (canon_naive, canon_11))
sparser = naive_in_f = 0
margins = []
for _ in range(args.bases):
    Am, Bm = walk(A_), walk(B_)
    X = tr(naive, Am, Bm)
    nn = int((X != 0).sum()) if abs(X).max() <= 1 else 1 << 30
    naive_in_f += nn < (1 << 30)
    b11 = min(best_nnz(S, Am, Bm) + best_nnz(R, Am, Bm) for S, R in parts)
    sparser += b11 < nn
    margins.append(nn - b11)
print("%d bases: naive stays in F in %.0f%%; a rank-11 factorization of the family is sparser than "
      "the naive one in %.1f%%" % (args.bases, 100 * naive_in_f / args.bases, 100 * sparser / args.bases))
mg = np.array(margins)
print("naive minus sparsest rank-11 non-zeros: " + ", ".join(
    ">= %d: %.1f%%" % (t, 100 * (mg >= t).mean()) for t in (1, 4, 8, 12)))
