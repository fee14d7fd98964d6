#!/usr/bin/python3
"""Helpers for tests/t_io_*.sh: craft broken factorization files and compare good ones.

  io_files.py bad DIR GOOD.h5     writes DIR/{shape,dtype,nodata,noattr,notgroup,badsize,
                                  badarith,rank}.h5 from key 2,2,2 of GOOD.h5, each broken one way
  io_files.py flip IN OUT SEED N  flips N random bits of IN (past the signature) into OUT
  io_files.py edit IN.json OUT.json KEY   changes one coefficient of KEY (u[0][0] += 1)
  io_files.py same A B            exit 0 if both files hold the same factorizations
"""
import json
import random
import sys

# imported where needed: `flip` runs many times and must start fast
h5py = np = None


def _imports():
    global h5py, np
    import h5py as _h5py
    import numpy as _np
    h5py, np = _h5py, _np


def copy_group(src, dst, key, skip=()):
    g = dst.create_group(key)
    for a, v in src[key].attrs.items():
        if a not in skip:
            g.attrs[a] = v
    for d in "uvw":
        if d not in skip:
            g.create_dataset(d, data=src[key][d][()])
    return g


def bad(out, good):
    _imports()
    src = h5py.File(good, "r")
    k = "2,2,2"

    def make(name, skip=(), fix=None):
        with h5py.File(f"{out}/{name}.h5", "w") as f:
            g = copy_group(src, f, k, skip)
            if fix:
                fix(g)

    make("shape", skip=("u",), fix=lambda g: g.create_dataset("u", data=np.zeros((7, 5), np.int64)))
    make("dtype", skip=("v",), fix=lambda g: g.create_dataset("v", data=src[k]["v"][()].astype(np.float64)))
    make("nodata", skip=("w",))
    make("noattr", skip=("rank",))
    make("badsize", fix=lambda g: g.attrs.modify("n", 13))
    make("badarith", fix=lambda g: g.attrs.modify("arithmetic", np.bytes_("real")))
    make("rank", fix=lambda g: g.attrs.modify("rank", 8))
    with h5py.File(f"{out}/notgroup.h5", "w") as f:
        f.create_dataset(k, data=np.zeros(3))
    with h5py.File(f"{out}/empty_ok.h5", "w") as f:
        pass


def flip(inp, outp, seed, n):
    b = bytearray(open(inp, "rb").read())
    rnd = random.Random(int(seed))
    for _ in range(int(n)):
        i = rnd.randrange(8, len(b))
        b[i] ^= 1 << rnd.randrange(8)
    open(outp, "wb").write(b)


def edit(inp, outp, key):
    d = json.load(open(inp))
    d["factorizations"][key]["u"][0][0] += 1
    json.dump(d, open(outp, "w"))


def load(path):
    if path.endswith(".json"):
        d = json.load(open(path))["factorizations"]
        return {k: (v["n"], v["m"], v["p"], v["rank"], v["denominator"], v["arithmetic"],
                    [np.array(v[x], dtype=np.int64).reshape(v["rank"], -1) for x in "uvw"]) for k, v in d.items()}
    out = {}
    with h5py.File(path, "r") as f:
        for k, g in f.items():
            ar = g.attrs["arithmetic"]
            ar = ar.decode() if isinstance(ar, bytes) else str(ar)
            out[k] = (int(g.attrs["n"]), int(g.attrs["m"]), int(g.attrs["p"]), int(g.attrs["rank"]),
                      int(g.attrs["denominator"]), ar, [g[x][()] for x in "uvw"])
    return out


def same(a, b):
    _imports()
    A, B = load(a), load(b)
    if sorted(A) != sorted(B):
        print(f"keys differ: {sorted(set(A) ^ set(B))}")
        return 1
    for k in A:
        if A[k][:6] != B[k][:6] or not all(np.array_equal(x, y) for x, y in zip(A[k][6], B[k][6])):
            print(f"key {k} differs")
            return 1
    return 0


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    sys.exit({"bad": bad, "flip": flip, "edit": edit, "same": same}[cmd](*args) or 0)
