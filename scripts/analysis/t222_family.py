#!/usr/bin/python3
"""The rank-7 factorizations of T(2,2,2) with coefficients in {-1,0,1} (the game's F), for the
analysis in docs/results.md: Strassen's algorithm moved by the symmetries of matrix
multiplication (A, B, C) -> (P A Q^-1, Q B R^-1, R C P^-1) with P, Q, R the 40 integer 2x2
matrices of determinant +-1 and entries in {-1,0,1}, plus the cyclic symmetry; only images with
every coefficient in F are kept. Also: how often a random change of basis (the actor's random walk
of elementary operations, entries and inverse entries in {-1,0,1}) makes some rank-7 factorization
sparser than the naive one.  Writes t222_family.pkl (the factorizations) beside --out.

usage: scripts/analysis/t222_family.py [--out DIR] [--walks 6,12,24]
This is a one-off analysis tool: nothing here is an input of any run."""
import argparse, collections, itertools, os, pickle
import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="/tmp")
ap.add_argument("--walks", default="6,12,24")
ap.add_argument("--bases", type=int, default=1500)
args = ap.parse_args()

# T[a(i,j), b(j,k), c(k,i)] = 1: the layout of common/fact.c (tg_matmul_tensor)
T = np.zeros((4, 4, 4), int)
for i, j, k in itertools.product(range(2), repeat=3):
    T[i * 2 + j, j * 2 + k, k * 2 + i] = 1

def M(a, b, c, d): return np.array([[a, b], [c, d]])
strassen = [(M(1, 0, 0, 1), M(1, 0, 0, 1), {(0, 0): 1, (1, 1): 1}), (M(0, 0, 1, 1), M(1, 0, 0, 0), {(1, 0): 1, (1, 1): -1}),
            (M(1, 0, 0, 0), M(0, 1, 0, -1), {(0, 1): 1, (1, 1): 1}), (M(0, 0, 0, 1), M(-1, 0, 1, 0), {(0, 0): 1, (1, 0): 1}),
            (M(1, 1, 0, 0), M(0, 0, 0, 1), {(0, 0): -1, (0, 1): 1}), (M(-1, 0, 1, 0), M(1, 1, 0, 0), {(1, 1): 1}),
            (M(0, 1, 0, -1), M(0, 0, 1, 1), {(0, 0): 1})]
fac = []
for U, V, cs in strassen:
    W = np.zeros((2, 2), int)
    for (i, k), s in cs.items():
        W[i, k] = s
    fac.append((U, V, W))

def tensor(fs):
    return sum(np.einsum("a,b,c->abc", np.array(f[:4]), np.array(f[4:8]), np.array(f[8:])) for f in fs)

def canon(f):
    f = np.array(f); u, v, w = f[:4], f[4:8], f[8:]
    su, sv = u[np.nonzero(u)[0][0]], v[np.nonzero(v)[0][0]]
    return tuple(int(x) for x in np.concatenate([u * su, v * sv, w * su * sv]))

G = [g for g in (np.array(e).reshape(2, 2) for e in itertools.product([-1, 0, 1], repeat=4)) if abs(round(np.linalg.det(g))) == 1]
inv = lambda g: np.round(np.linalg.inv(g)).astype(int)
decs = set()
for P, Q, R in itertools.product(G, repeat=3):
    new = [(P.T @ U @ inv(Q).T, Q.T @ V @ inv(R).T, inv(P) @ W @ R) for U, V, W in fac]
    flat = [tuple(U.reshape(4)) + tuple(V.reshape(4)) + tuple(W.T.reshape(4)) for U, V, W in new]
    assert (tensor(flat) == T).all()
    if all(abs(x) <= 1 for f in flat for x in f):
        decs.add(tuple(sorted(canon(f) for f in flat)))
for d in list(decs):  # cyclic symmetry T[a,b,c] = T[b,c,a]
    for r in (4, 8):
        decs.add(tuple(sorted(canon(f[r:] + f[:r]) for f in d)))
assert all((tensor(d) == T).all() for d in decs)
factors = set(f for d in decs for f in d)
naive = [canon(tuple(np.eye(4, dtype=int)[i * 2 + j]) + tuple(np.eye(4, dtype=int)[j * 2 + k]) + tuple(np.eye(4, dtype=int)[k * 2 + i]))
         for i, j, k in itertools.product(range(2), repeat=3)]
print("rank-7 factorizations in F: %d, distinct products %d (of ~%d actions up to sign)" % (len(decs), len(factors), 80 ** 3 // 4))
print("non-zeros per product:", sorted(collections.Counter(sum(1 for x in f if x) for f in factors).items()))
print("naive products that are in some rank-7 factorization: %d of 8" % sum(n in factors for n in naive))
print("naive products per rank-7 factorization:", sorted(collections.Counter(sum(f in naive for f in d) for d in decs).items()))
s1 = canon((1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1))
print("factorizations containing (a11+a22)(b11+b22): %d" % sum(s1 in d for d in decs))
pickle.dump(decs, open(os.path.join(args.out, "t222_family.pkl"), "wb"))

rng = np.random.default_rng(1)
D = [np.array(d) for d in decs]
N = np.array([np.array(n) for n in naive])
def walk(steps):
    A = np.eye(4, dtype=int)
    for _ in range(steps):
        B = A.copy(); i, j = rng.choice(4, 2, replace=False); op = rng.integers(3)
        if op == 0: B[i] += rng.choice([-1, 1]) * B[j]
        elif op == 1: B[i] *= -1
        else: B[[i, j]] = B[[j, i]]
        if abs(B).max() <= 1 and abs(np.round(np.linalg.inv(B))).max() <= 1: A = B
    return A
tr = lambda d, A: np.concatenate([d[:, :4] @ A.T, d[:, 4:8] @ A.T, d[:, 8:] @ A.T], axis=1)
for steps in map(int, args.walks.split(",")):
    sparser = sparse = 0
    for _ in range(args.bases):
        A = walk(steps); nn = (tr(N, A) != 0).sum(); best = 999
        for d in D:
            x = tr(d, A)
            if abs(x).max() <= 1: best = min(best, (x != 0).sum())
        sparser += best < nn; sparse += best <= 36 and best < nn
    print("walk of %d steps: a rank-7 factorization sparser than the naive one in %.0f%% of bases, "
          "and with at most 36 non-zeros in %.0f%%" % (steps, 100 * sparser / args.bases, 100 * sparse / args.bases))
