#!/usr/bin/python3
"""How often a random change of basis makes a released factorization of T(n,m,p) (DeepMind's,
../shared/data/factorizations_r.npz: rank 15 for T(2,3,3), 23 for T(3,3,3), 11 for T(2,2,3))
sparser than the naive one: the general form of t223_bases.py, for the GPU configs.

The family used: the released factorization and members of its orbit under the symmetries of
matrix multiplication, (U, V, W) -> (X U Y, Y^-1 V Z, Z^-1 W X^-1) with X in GL_n, Y in GL_m, Z in
GL_p, entries of the matrices and their inverses in {-1, 0, 1} (sampled; each member is checked
to factor T). Other algorithms of that rank exist, so the figures are lower bounds. Bases: the
actor's walk (basis_walk.py); modes of equal size share a matrix (common/basis.c).

usage: scripts/analysis/released_bases.py [--target 2,3,3] [--npz FILE] [--bases 1000]
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
ap.add_argument("--target", default="2,3,3")
ap.add_argument("--bases", type=int, default=1000)
ap.add_argument("--orbit", type=int, default=300)
ap.add_argument("--max-coeff", type=int, default=1, choices=(1, 2))
args = ap.parse_args()
n, m, p = (int(x) for x in args.target.split(","))
A_, B_, C_ = n * m, m * p, p * n
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

u, v, w = (x.astype(int) for x in np.load(args.npz, allow_pickle=True)[args.target])
f0 = np.concatenate([u.T, v.T, w.T], axis=1)
R = len(f0)
assert f0.shape == (R, A_ + B_ + C_) and (tensor(f0) == T).all()


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


fam = [f0]
tries = 0
while len(fam) < args.orbit and tries < 100 * args.orbit:  # dense ones rarely stay in F
    tries += 1
    X, Xi = rand_gl(n)
    Y, Yi = rand_gl(m)
    Z, Zi = rand_gl(p)
    G = sandwich(f0, X, Xi, Y, Yi, Z, Zi)
    if abs(G).max() <= 1:
        assert (tensor(G) == T).all()
        fam.append(G)
fam = np.array(fam)  # [members, R, n m + m p + p n]
print("T(%s) rank-%d family: the released factorization and %d members of its orbit (entries in F; "
      "%d sampled)" % (args.target, R, len(fam) - 1, tries))


def bases():
    """the three modes' matrices of one random basis; modes of equal size share one"""
    by = {}
    return [by.setdefault(k, basis_walk.walk(rng, k)) for k in (A_, B_, C_)]


def nnz_in_f(Fs, Ms, lim=1):
    """per factorization of Fs [count, R, n m + m p + p n] moved into the basis Ms: its non-zeros,
    or 1 << 30 where an entry leaves F"""
    Am, Bm, Cm = Ms
    X = np.concatenate([Fs[..., :A_] @ Am.T, Fs[..., A_:A_ + B_] @ Bm.T, Fs[..., A_ + B_:] @ Cm.T], axis=-1)
    X = X.reshape(len(Fs), -1)
    return np.where((abs(X) <= lim).all(axis=1), (X != 0).sum(axis=1), 1 << 30)


eye = [np.eye(k, dtype=int) for k in (A_, B_, C_)]
print("canonical basis: naive %d non-zeros, sparsest rank-%d of the family %d" %
      ((naive != 0).sum(), R, nnz_in_f(fam, eye).min()))
sparser = naive_in_f = fam_in_f = 0
margins = []
for _ in range(args.bases):
    Ms = bases()
    nn = int(nnz_in_f(naive[None], Ms, args.max_coeff)[0])
    naive_in_f += nn < (1 << 30)
    best = int(nnz_in_f(fam, Ms, args.max_coeff).min())
    sparser += best < nn
    fam_in_f += best < (1 << 30)
    margins.append(nn - best)
print("F = {-%d..%d}: " % (args.max_coeff, args.max_coeff), end="")
print("%d bases: naive stays in F in %.0f%%; a rank-%d factorization of the family is sparser than "
      "the naive one in %.1f%%" % (args.bases, 100 * naive_in_f / args.bases, R, 100 * sparser / args.bases))
mg = np.array(margins)
print("some factorization of the family stays in F in %.1f%% of the bases" %
      (100 * fam_in_f / args.bases))
print(("naive minus sparsest rank-%d non-zeros: " % R) + ", ".join(
    ">= %d: %.1f%%" % (t, 100 * (mg >= t).mean()) for t in (1, 4, 8, 12)))
