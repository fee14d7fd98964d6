#!/usr/bin/python3
"""How often a random change of basis makes a rank-15 factorization of T(2,3,3) sparser than the
naive rank-18 one: the T(2,3,3) counterpart of t223_bases.py, for the GPU config gpu-2x3x3.yaml.

The rank-15 family used: DeepMind's released rank-15 factorization (../shared/data/
factorizations_r.npz) and members of its orbit under the symmetries of matrix multiplication,
(U, V, W) -> (X U Y, Y^-1 V Z, Z^-1 W X^-1) with X in GL2, Y, Z in GL3, entries of the matrices
and their inverses in {-1, 0, 1} (sampled; each member is checked to factor T). Other rank-15
algorithms exist, so the figures are lower bounds. Bases: the actor's walk (basis_walk.py);
modes of equal size share a matrix (A and C, 6 entries each; B has 9).

usage: scripts/analysis/t233_bases.py [--npz ../shared/data/factorizations_r.npz] [--bases 1000]
                                      [--orbit 300] [--max-coeff 1|2]
--max-coeff: the game's coefficients, F = {-1, 0, 1} (game.coeffs "-1..1") or {-2..2}: a factor
moved into a basis must stay in F to be playable there (the orbit itself is sampled in {-1, 0, 1}).
This is a one-off analysis tool: nothing here is an input of any run."""
import argparse, itertools, os, sys
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import basis_walk  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--npz", default=os.path.join(here, "..", "..", "..", "shared", "data", "factorizations_r.npz"))
ap.add_argument("--bases", type=int, default=1000)
ap.add_argument("--orbit", type=int, default=300)
ap.add_argument("--max-coeff", type=int, default=1, choices=(1, 2))
args = ap.parse_args()
n, m, p = 2, 3, 3
A_, B_, C_ = n * m, m * p, p * n  # mode sizes 6, 9, 6
rng = np.random.default_rng(1)

T = np.zeros((A_, B_, C_), int)
for i, j, k in itertools.product(range(n), range(m), range(p)):
    T[i * m + j, j * p + k, k * n + i] = 1
tensor = lambda F: np.einsum("ra,rb,rc->abc", F[:, :A_], F[:, A_:A_ + B_], F[:, A_ + B_:])
naive = []
for i, j, k in itertools.product(range(n), range(m), range(p)):
    r = np.zeros(A_ + B_ + C_, int)
    r[i * m + j] = r[A_ + j * p + k] = r[A_ + B_ + k * n + i] = 1
    naive.append(r)
naive = np.array(naive)
assert (tensor(naive) == T).all()

u, v, w = (x.astype(int) for x in np.load(args.npz, allow_pickle=True)["2,3,3"])
f15 = np.concatenate([u.T, v.T, w.T], axis=1)
assert f15.shape == (15, A_ + B_ + C_) and (tensor(f15) == T).all()


def rand_gl(k):
    while True:
        M = rng.integers(-1, 2, (k, k))
        if abs(round(np.linalg.det(M))) == 1:
            Mi = np.round(np.linalg.inv(M)).astype(int)
            if abs(Mi).max() <= 1:
                return M, Mi


def sandwich(F, X, Xi, Y, Yi, Z, Zi):
    out = []
    for r in F:
        U = X @ r[:A_].reshape(n, m) @ Y
        V = Yi @ r[A_:A_ + B_].reshape(m, p) @ Z
        W = Zi @ r[A_ + B_:].reshape(p, n) @ Xi
        out.append(np.concatenate([U.reshape(-1), V.reshape(-1), W.reshape(-1)]))
    return np.array(out)


fam = [f15]
while len(fam) < args.orbit:
    X, Xi = rand_gl(n)
    Y, Yi = rand_gl(m)
    Z, Zi = rand_gl(p)
    G = sandwich(f15, X, Xi, Y, Yi, Z, Zi)
    if abs(G).max() <= 1:
        assert (tensor(G) == T).all()
        fam.append(G)
fam = np.array(fam)  # [orbit, 15, 21]
print("rank-15 family: the released factorization and %d members of its orbit (entries in F)" % (len(fam) - 1))


def nnz_in_f(F, Am, Bm, lim=1):
    X = np.concatenate([F[..., :A_] @ Am.T, F[..., A_:A_ + B_] @ Bm.T, F[..., A_ + B_:] @ Am.T], axis=-1)
    ok = (abs(X) <= lim).reshape(X.shape[0], -1).all(axis=1) if X.ndim == 3 else np.array([abs(X).max() <= lim])
    nz = (X != 0).reshape(X.shape[0], -1).sum(axis=1) if X.ndim == 3 else np.array([(X != 0).sum()])
    return np.where(ok, nz, 1 << 30)


print("canonical basis: naive %d non-zeros, sparsest rank-15 of the family %d" %
      ((naive != 0).sum(), nnz_in_f(fam, np.eye(A_, dtype=int), np.eye(B_, dtype=int)).min()))
sparser = naive_in_f = fam_in_f = 0
margins = []
for _ in range(args.bases):
    Am, Bm = basis_walk.walk(rng, A_), basis_walk.walk(rng, B_)
    nn = int(nnz_in_f(naive, Am, Bm, args.max_coeff)[0])
    naive_in_f += nn < (1 << 30)
    b15 = int(nnz_in_f(fam, Am, Bm, args.max_coeff).min())
    sparser += b15 < nn
    fam_in_f += b15 < (1 << 30)
    margins.append(nn - b15)
print("F = {-%d..%d}: " % (args.max_coeff, args.max_coeff), end="")
print("%d bases: naive stays in F in %.0f%%; a rank-15 factorization of the family is sparser than "
      "the naive one in %.1f%%" % (args.bases, 100 * naive_in_f / args.bases, 100 * sparser / args.bases))
mg = np.array(margins)
print("some rank-15 factorization of the family stays in F in %.1f%% of the bases" %
      (100 * fam_in_f / args.bases))
print("naive minus sparsest rank-15 non-zeros: " + ", ".join(
    ">= %d: %.1f%%" % (t, 100 * (mg >= t).mean()) for t in (1, 4, 8, 12)))
