#!/usr/bin/python3
"""Checks a tg-replay store with h5py (docs/formats.md, "Replay store"):

  check_replay_h5.py RUN_DIR MIN_PLAYED_GAMES

Layout, dtypes, chunked + compressed + extendible datasets, consistent offsets, and the game
semantics: demonstrations and solved games end at zero; played residuals replay from `initial`."""
import sys

import h5py
import numpy as np


def main():
    run, min_played = sys.argv[1], int(sys.argv[2])
    with h5py.File(run + "/replay.h5", "r") as f:
        assert f.attrs["format"] == b"tensorgame-replay" or f.attrs["format"] == "tensorgame-replay", f.attrs["format"]
        S = int(f.attrs["S"])
        assert int(f.attrs["version"]) == 1
        for name in ("demos", "played", "best"):
            g = f[name]
            G = g["game_id"].shape[0]
            M = g["actions"].shape[0]
            assert g["actions"].shape[1] == 3 * S and g["actions"].dtype == np.int8
            for ds in g.values():
                assert ds.chunks is not None and ds.compression == "gzip" and ds.shuffle, ds.name
                assert ds.maxshape[0] is None, ds.name
            n = g["n_moves"][()]
            off = g["move_offset"][()]
            assert (off == np.concatenate([[0], np.cumsum(n)[:-1]])).all() if G else M == 0
            assert n.sum() == M and g["returns"].shape == (M,)
            acts = g["actions"][()].astype(np.int64)
            ids = g["game_id"][()]
            assert len(set(ids.tolist())) == G, "duplicate game ids"
            for i in range(min(G, 200)):
                a = acts[off[i]:off[i] + n[i]]
                t = np.einsum("ri,rj,rk->ijk", a[:, :S], a[:, S:2 * S], a[:, 2 * S:])
                if name == "demos":
                    assert g["solved"][i] == 1 and t.any()
                    assert (g["returns"][off[i]:off[i] + n[i]] == -np.arange(n[i], 0, -1)).all()
                else:
                    init = g["initial"][i].astype(np.int64)
                    assert ((init - t) == 0).all() == bool(g["solved"][i]), (name, i)
                    pc = g["policy_count"][off[i]:off[i] + n[i]]
                    po = g["policy_offset"][off[i]:off[i] + n[i]]
                    assert (po[1:] == po[:-1] + pc[:-1]).all()
                    probs = g["policy_probs"][po[0]:po[0] + pc.sum()] if len(po) else []
                    assert (np.asarray(probs) > 0).all()
            if name == "played":
                assert G >= min_played, (G, min_played)
            print(f"{name}: {G} games, {M} positions, ok")


if __name__ == "__main__":
    main()
