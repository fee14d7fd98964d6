"""The actor's random change of basis (common/basis.c) in numpy, for the analysis scripts: 4n + 8
steps of row sign flips, swaps and additions, entries of M and M^-1 kept in {-1, 0, 1}."""
import numpy as np


def walk(rng, nn):
    """A random nn x nn basis matrix as the actor draws it"""
    M, Mi = np.eye(nn, dtype=int), np.eye(nn, dtype=int)
    for _ in range(4 * nn + 8):
        i = rng.integers(nn); j = rng.integers(nn - 1); j += j >= i
        kind = rng.integers(8)
        if kind == 0:
            M[i] *= -1; Mi[:, i] *= -1; continue
        if kind == 1:
            M[[i, j]] = M[[j, i]]; Mi[:, [i, j]] = Mi[:, [j, i]]; continue
        s = rng.choice([-1, 1])
        M2, Mi2 = M.copy(), Mi.copy()
        M2[i] += s * M[j]; Mi2[:, j] -= s * Mi[:, i]
        if abs(M2).max() <= 1 and abs(Mi2).max() <= 1:
            M, Mi = M2, Mi2
    return M
