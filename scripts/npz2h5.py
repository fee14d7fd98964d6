#!/usr/bin/python3
"""Convert DeepMind's released factorizations (.npz) into tensorgame's HDF5 format.

Usage: scripts/npz2h5.py [--mod2] IN.npz OUT.h5

Input (see ../shared/data/README.md): keys "n,m,p"; square sizes are one array [3, n*n, R];
other sizes an object array of three arrays u [n*m, R], v [m*p, R], w [p*n, R]. Entries are
integers, or floats that are multiples of 1/2 or 1/8 in a few large algorithms.

Output (docs/formats.md): HDF5 1.10 file format, one group per key with attributes n, m, p, rank (int32),
denominator (int64), arithmetic ("integer" or "mod2") and datasets u [R, n*m], v [R, m*p],
w [R, p*n] of int64 numerators over the common denominator. Files of mod-2 algorithms are
marked "mod2": with --mod2, or when the input's name contains "f2".
"""
import argparse
import math
import os
import sys
from fractions import Fraction

import h5py
import numpy as np


def compact_links(fcpl):
    """H5Pset_link_phase_change(fcpl, 65535, 65535): h5py does not wrap it, so call the HDF5
    library h5py itself uses. Without it the file is still valid, only less well protected."""
    import ctypes
    import ctypes.util
    try:
        name = ctypes.util.find_library("hdf5_serial") or ctypes.util.find_library("hdf5")
        fn = ctypes.CDLL(name).H5Pset_link_phase_change
        fn.argtypes = [ctypes.c_int64, ctypes.c_uint, ctypes.c_uint]
        fn.restype = ctypes.c_int
        if fn(fcpl.id, 65535, 65535) < 0:
            raise OSError("H5Pset_link_phase_change failed")
    except (OSError, AttributeError, TypeError) as e:
        print(f"npz2h5: warning: links in dense storage ({e})", file=sys.stderr)


def factors(key, a):
    """The three factor matrices [mode, R] of one npz entry, whatever its layout."""
    if a.dtype == object:
        if a.shape != (3,):
            raise ValueError(f"{key}: object array of shape {a.shape}, expected (3,)")
        return [np.asarray(x) for x in a]
    if a.ndim != 3 or a.shape[0] != 3:
        raise ValueError(f"{key}: array of shape {a.shape}, expected [3, n*n, R]")
    return [a[0], a[1], a[2]]


def to_numerators(key, mats):
    """Integer numerators over one common denominator for all three factors."""
    denom = 1
    for x in mats:
        if x.dtype.kind in "iub":
            continue
        if x.dtype.kind != "f":
            raise ValueError(f"{key}: unsupported dtype {x.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{key}: non-finite coefficient")
        frac = np.unique(x[x != np.round(x)])
        for v in frac:
            q = Fraction(float(v)).limit_denominator(1 << 20)
            if float(q) != float(v):
                raise ValueError(f"{key}: coefficient {v!r} is not a small fraction")
            denom = denom * q.denominator // math.gcd(denom, q.denominator)
    out = []
    for x in mats:
        y = np.asarray(x, dtype=np.float64) * denom if x.dtype.kind == "f" else x
        if x.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
            raise ValueError(f"{key}: coefficients are not multiples of 1/{denom}")
        out.append(np.ascontiguousarray(np.round(y).astype(np.int64).T))  # [R, mode]
    return out, denom


def convert(inp, outp, mod2):
    data = np.load(inp, allow_pickle=True)
    tmp = f"{outp}.tmp.{os.getpid()}"
    n_keys = 0
    try:
        # The 1.10 format checksums all metadata and Fletcher-32 the data, so corruption is
        # detected; links stay in the root's (checksummed) object header rather than in a
        # fractal heap without checksums (the same choices as common/factio.c).
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_libver_bounds(h5py.h5f.LIBVER_V110, h5py.h5f.LIBVER_LATEST)
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        compact_links(fcpl)
        fid = h5py.h5f.create(tmp.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)
        with h5py.File(fid) as h5:
            for key in data.files:
                try:
                    n, m, p = (int(s) for s in key.split(","))
                except ValueError:
                    raise ValueError(f"key {key!r} is not 'n,m,p'") from None
                mats, denom = to_numerators(key, factors(key, data[key]))
                modes = (n * m, m * p, p * n)
                rank = mats[0].shape[0]
                for name, x, mode in zip("uvw", mats, modes):
                    if x.shape != (rank, mode):
                        raise ValueError(f"{key}: {name} has shape {x.T.shape}, expected ({mode}, {rank})")
                if mod2:
                    if denom != 1:
                        raise ValueError(f"{key}: fractional coefficients in a mod-2 file")
                    mats = [x % 2 for x in mats]
                g = h5.create_group(key)
                for a, v in (("n", n), ("m", m), ("p", p), ("rank", rank)):
                    g.attrs.create(a, v, dtype=np.int32)
                g.attrs.create("denominator", denom, dtype=np.int64)
                g.attrs.create("arithmetic", np.bytes_("mod2" if mod2 else "integer"))
                for name, x in zip("uvw", mats):
                    opts = dict(compression="gzip", compression_opts=4, shuffle=True, fletcher32=True) if rank else {}
                    g.create_dataset(name, data=x, dtype="<i8", **opts)
                n_keys += 1
        os.replace(tmp, outp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n_keys


def main():
    ap = argparse.ArgumentParser(description="Convert DeepMind's factorizations (.npz) to tensorgame HDF5.")
    ap.add_argument("--mod2", action="store_true",
                    help="mark the algorithms as mod-2 (default: when the input name contains 'f2')")
    ap.add_argument("input", help="factorizations_*.npz")
    ap.add_argument("output", help="output .h5")
    args = ap.parse_args()
    mod2 = args.mod2 or "f2" in os.path.basename(args.input)
    try:
        n = convert(args.input, args.output, mod2)
    except (OSError, ValueError, KeyError) as e:
        print(f"npz2h5: {args.input}: {e}", file=sys.stderr)
        return 1
    print(f"{args.output}: {n} factorizations ({'mod2' if mod2 else 'integer'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
