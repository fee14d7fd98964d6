#!/usr/bin/env python3
"""Per minute of a run: how the actor's choice of basis spread its games, from the replay file.

  basis_history.py RUN_DIR/replay.h5

Groups the played games by their change-of-basis matrix (a retired basis and its replacement
are different bases) and prints, per minute of finish time: games, share solved, the basis with
most games (its share and mean return that minute and over its whole history), and the history
means of all bases seen so far (best five and median): what the choice of basis had to judge by.
"""
import sys

import h5py
import numpy as np


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    with h5py.File(sys.argv[1], "r") as f:
        g = f["played"]
        fin = g["finished"][:]
        has_basis = g["has_basis"][:]
        basis = g["basis"][:]
        solved = g["solved"][:]
        # a game's return is the return from its first move
        G = g["returns"][:][g["move_offset"][:]]
    ids, keys = np.empty(len(fin), dtype=int), {}
    for i in range(len(fin)):
        k = basis[i].tobytes() if has_basis[i] else b"canonical"
        ids[i] = keys.setdefault(k, len(keys))
    T = fin - fin.min()
    print(f"{len(fin)} games in {len(keys)} bases")
    for m in range(int(T.max() // 60) + 1):
        sel = (T >= m * 60) & (T < (m + 1) * 60)
        if not sel.any():
            continue
        u, c = np.unique(ids[sel], return_counts=True)
        top = u[np.argmax(c)]
        hist = T < (m + 1) * 60
        means = sorted((G[hist & (ids == b)].mean() for b in np.unique(ids[hist])), reverse=True)
        top_hist = G[hist & (ids == top)].mean()
        print(f"min {m:2d}: {sel.sum():4d} games, {solved[sel].mean():.2f} solved; top basis {top}: "
              f"{c.max() / sel.sum():.2f} of the games, return {G[sel & (ids == top)].mean():.1f} "
              f"(history {top_hist:.1f}); history means of {len(means)} bases: best "
              f"{', '.join(f'{x:.1f}' for x in means[:5])}, median {np.median(means):.1f}")


if __name__ == "__main__":
    main()
