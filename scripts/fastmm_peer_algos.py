#!/usr/bin/python3
"""Write Strassen's algorithm and two-level Strassen (Strassen (x) Strassen, 4x4x4 rank 49) as
.npz files in the layout of DeepMind's released factorizations ([3, n*n, R], key "n,n,n"), so
that ../shared/bench/jax_peer.py runs exactly the algorithms `tg bench matmul` runs.

Usage: scripts/fastmm_peer_algos.py OUTDIR    (writes OUTDIR/strassen.npz, OUTDIR/strassen2.npz)
The tables are common/fact.c's tg_fact_strassen(); the Kronecker product is fastmm_kron()'s
(row i1*n2+i2 of the combined grid is inner block i2 of outer block i1). Both are verified.
"""
import os
import sys

import numpy as np

U = [[1, 0, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0], [-1, 0, 1, 0], [0, 1, 0, -1]]
V = [[1, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, -1], [-1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0], [0, 0, 1, 1]]
W = [[1, 0, 0, 1], [0, 1, 0, -1], [0, 0, 1, 1], [1, 1, 0, 0], [-1, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]]


def matmul_tensor(n, m, p):
    t = np.zeros((n * m, m * p, p * n), dtype=np.int64)
    for i in range(n):
        for j in range(m):
            for k in range(p):
                t[i * m + j, j * p + k, k * n + i] = 1
    return t


def kron_mode(a, b, rows1, cols1, rows2, cols2):
    """Factor matrix [rows*cols, R] of the product for one mode (index row*cols + col)."""
    R1, R2 = a.shape[1], b.shape[1]
    out = np.zeros((rows1 * rows2 * cols1 * cols2, R1 * R2), dtype=np.int64)
    for r1 in range(R1):
        for r2 in range(R2):
            for i1 in range(rows1):
                for j1 in range(cols1):
                    for i2 in range(rows2):
                        for j2 in range(cols2):
                            out[(i1 * rows2 + i2) * (cols1 * cols2) + j1 * cols2 + j2, r1 * R2 + r2] = \
                                a[i1 * cols1 + j1, r1] * b[i2 * cols2 + j2, r2]
    return out


def check(f, n):
    u, v, w = f
    assert np.array_equal(np.einsum("ar,br,cr->abc", u, v, w), matmul_tensor(n, n, n))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    s = [np.array(U).T, np.array(V).T, np.array(W).T]  # [4, 7] each
    check(s, 2)
    # u: (i, j) over n x m; v: (j, k) over m x p; w: (k, i) over p x n -- all 2 x 2 grids here
    s2 = [kron_mode(s[t], s[t], 2, 2, 2, 2) for t in range(3)]
    check(s2, 4)
    np.savez(os.path.join(out, "strassen.npz"), **{"2,2,2": np.stack(s)})
    np.savez(os.path.join(out, "strassen2.npz"), **{"4,4,4": np.stack(s2)})
    print("wrote", out + "/strassen.npz (2,2,2 rank 7),", out + "/strassen2.npz (4,4,4 rank 49)")


if __name__ == "__main__":
    main()
