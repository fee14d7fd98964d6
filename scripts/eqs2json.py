#!/usr/bin/env python3
"""Algorithms written as equations -> tensorgame JSON factorizations (docs/formats.md).

usage: scripts/eqs2json.py [--key KEY] [--dims N,M,P] IN [OUT.json]

Reads the form `tg show` prints and discovery runs end with (docs/discovery/*.log):

    m1 = (a11 + a22)(b11 + b22)
    m2 = (a21 + a22)(b11)
    ...
    c11 = m1 + m4 - m5 + m7

coefficients as integers or fractions ("2 a11", "- 1/2 m3"), entries as a11 or a_10_2 for
indices above 9; equations may stand side by side in columns (two or more spaces apart). IN may hold several algorithms (a log, several `tg show` outputs): a line that
is not an equation ends the one being read; its key is taken from the header before it ("# KEY:"
as `tg show` writes, or "... key KEY" as the runs' summaries do), else --key, else
"n,m,p_rankR". The dimensions come from the largest indices used (--dims where an algorithm
leaves a row or column of A, B or C out). Writes OUT.json (standard output without it), one
factorization per line. It checks the form only: `bin/tg verify OUT.json` checks the algorithm.
Exit status 0, or 2 with a message naming the line on malformed input.
"""
import json
import math
import re
import sys
from fractions import Fraction

ENTRY = r"([abc])(?:(\d)(\d)|_(\d+)_(\d+))"
TERM = re.compile(r"\s*([+-])?\s*(?:(\d+)(?:\s*/\s*(\d+))?\s*\*?\s*)?(" + ENTRY + r"|m(\d+))\s*")
PROD = re.compile(r"^\s*m(\d+)\s*=\s*\((.*)\)\s*\((.*)\)\s*$")
CEQ = re.compile(r"^\s*c(?:(\d)(\d)|_(\d+)_(\d+))\s*=\s*(.*)$")


class Bad(Exception):
    pass


def linear(text, want, lineno):
    """'a11 - 2 a12' -> {(1, 1): Fraction(1), (1, 2): Fraction(-2)} (want: 'a', 'b' or 'm')."""
    out = {}
    text = text.strip()
    if text == "0":
        return out
    pos = 0
    while pos < len(text):
        t = TERM.match(text, pos)
        if not t or t.end() == pos:
            raise Bad("line %d: cannot read '%s' at '%s'" % (lineno, text, text[pos:]))
        if pos > 0 and not t.group(1):
            raise Bad("line %d: a term without + or - in '%s'" % (lineno, text))
        sign = -1 if t.group(1) == "-" else 1
        num = int(t.group(2)) if t.group(2) else 1
        den = int(t.group(3)) if t.group(3) else 1
        if den == 0:
            raise Bad("line %d: a zero denominator in '%s'" % (lineno, text))
        coef = Fraction(sign * num, den)
        if want == "m":
            if not t.group(10):
                raise Bad("line %d: '%s' is not a sum of products m1, m2, ..." % (lineno, text))
            key = int(t.group(10))
        else:
            if t.group(5) != want:
                raise Bad("line %d: '%s' mixes entries of another matrix than %s" % (lineno, text, want))
            i = int(t.group(6) or t.group(8))
            j = int(t.group(7) or t.group(9))
            if i < 1 or j < 1:
                raise Bad("line %d: indices start at 1 in '%s'" % (lineno, text))
            key = (i, j)
        out[key] = out.get(key, 0) + coef
        pos = t.end()
    return {k: v for k, v in out.items() if v != 0}


def header_key(line):
    m = re.match(r"^#\s*(\S+):", line)
    if m:
        return m.group(1)
    m = re.search(r"\bkey\s+(\S+)", line)
    return m.group(1) if m else None


def build(alg, key, dims):
    prods, cs = alg["m"], alg["c"]
    R = max(prods) if prods else 0
    missing = [r for r in range(1, R + 1) if r not in prods]
    if not prods or missing:
        raise Bad("%s: products m%s missing" % (key or "algorithm", missing[0] if missing else 1))
    if dims:
        n, m, p = dims
    else:
        n = max([i for u, _ in prods.values() for (i, _) in u] + [i for (i, _) in cs] + [1])
        m = max([j for u, _ in prods.values() for (_, j) in u] +
                [j for _, v in prods.values() for (j, _) in v] + [1])
        p = max([k for _, v in prods.values() for (_, k) in v] + [k for (_, k) in cs] + [1])
    coefs = [c for u, v in prods.values() for c in list(u.values()) + list(v.values())]
    coefs += [c for row in cs.values() for c in row.values()]
    D = 1
    for c in coefs:
        D = D * c.denominator // math.gcd(D, c.denominator)
    U, V, W = [], [], []
    for r in range(1, R + 1):
        u, v = prods[r]
        urow, vrow = [0] * (n * m), [0] * (m * p)
        for (i, j), c in u.items():
            if i > n or j > m:
                raise Bad("%s: a%d%d outside A (%dx%d)" % (key or "algorithm", i, j, n, m))
            urow[(i - 1) * m + (j - 1)] = int(c * D)
        for (j, k), c in v.items():
            if j > m or k > p:
                raise Bad("%s: b%d%d outside B (%dx%d)" % (key or "algorithm", j, k, m, p))
            vrow[(j - 1) * p + (k - 1)] = int(c * D)
        U.append(urow)
        V.append(vrow)
        W.append([0] * (p * n))
    for (i, k), row in cs.items():
        if i > n or k > p:
            raise Bad("%s: c%d%d outside C (%dx%d)" % (key or "algorithm", i, k, n, p))
        for r, c in row.items():
            if r < 1 or r > R:
                raise Bad("%s: c%d%d uses m%d of %d products" % (key or "algorithm", i, k, r, R))
            W[r - 1][(k - 1) * n + (i - 1)] = int(c * D)  # c_ik is entry k*n+i of w
    return (key or "%d,%d,%d_rank%d" % (n, m, p, R),
            {"n": n, "m": m, "p": p, "rank": R, "denominator": D, "arithmetic": "integer",
             "u": U, "v": V, "w": W})


def pieces(lines):
    """(line number, equation) pairs: equations set side by side in columns (as docs/results.md
    prints long algorithms) are split at two or more spaces before the next 'm3 =' or 'c12 ='."""
    for no, line in enumerate(lines, 1):
        for part in re.split(r"\s{2,}(?=[mc](?:\d|_\d)[\d_]*\s*=)", line):
            yield no, part


def parse(lines):
    """Yields (key or None, {'m': {r: (u, v)}, 'c': {(i, k): {r: coef}}}) per algorithm."""
    cur, key, pending = None, None, None
    for no, line in pieces(lines):
        pm, pc = PROD.match(line), CEQ.match(line)
        if pm or pc:
            if cur is None:
                cur, key, pending = {"m": {}, "c": {}}, pending, None
            if pm:
                r = int(pm.group(1))
                if r in cur["m"]:
                    raise Bad("line %d: m%d defined twice" % (no, r))
                cur["m"][r] = (linear(pm.group(2), "a", no), linear(pm.group(3), "b", no))
            else:
                i, k = int(pc.group(1) or pc.group(3)), int(pc.group(2) or pc.group(4))
                if (i, k) in cur["c"]:
                    raise Bad("line %d: c%d%d defined twice" % (no, i, k))
                cur["c"][(i, k)] = linear(pc.group(5), "m", no)
            continue
        if cur is not None:
            yield key, cur
            cur = None
        if re.match(r"^\s*[mc]\d", line):
            raise Bad("line %d: not an equation of the form m1 = (...)(...) or c11 = ...: %s"
                      % (no, line.strip()))
        k = header_key(line)
        if k:
            pending = k
    if cur is not None:
        yield key, cur


def main(argv):
    key, dims, args = None, None, []
    it = iter(argv)
    for a in it:
        if a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        if a == "--key":
            key = next(it, None)
        elif a == "--dims":
            d = next(it, "")
            try:
                dims = tuple(int(x) for x in d.split(","))
            except ValueError:
                dims = ()
            if len(dims) != 3 or min(dims) < 1:
                print("eqs2json: --dims wants N,M,P, got '%s'" % d, file=sys.stderr)
                return 2
        elif a.startswith("-") and a != "-":
            print("eqs2json: unknown option %s (see --help)" % a, file=sys.stderr)
            return 2
        else:
            args.append(a)
    if not args or len(args) > 2:
        print("usage: scripts/eqs2json.py [--key KEY] [--dims N,M,P] IN [OUT.json]", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args[0] == "-" else open(args[0]).read()
    except OSError as e:
        print("eqs2json: %s" % e, file=sys.stderr)
        return 2
    try:
        algs = list(parse(text.splitlines()))
        if not algs:
            raise Bad("%s: no equations m1 = (...)(...) found" % args[0])
        facts = {}
        for k, alg in algs:
            name, f = build(alg, key if key and len(algs) == 1 else k, dims)
            if name in facts:
                raise Bad("key %s twice (give --key, or headers with keys)" % name)
            facts[name] = f
    except Bad as e:
        print("eqs2json: %s" % e, file=sys.stderr)
        return 2
    body = ",\n".join("%s: %s" % (json.dumps(k), json.dumps(f, separators=(",", ":")))
                      for k, f in facts.items())
    out = '{"format": "tensorgame-factorizations", "version": 1, "factorizations": {\n' + body + "\n}}\n"
    if len(args) == 2:
        with open(args[1], "w") as o:
            o.write(out)
        print("%s: %d factorization(s)" % (args[1], len(facts)), file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
