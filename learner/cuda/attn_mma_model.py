"""Lane-level model of learner/cuda/attn_mma.cu (numpy; not part of the build or CI).

Models mma.sync m16n8k16 (row.col, bf16 in, fp32 accumulate) and movmatrix.trans per lane, then
replays the kernels' fragment algebra (the permuted head dims of Q K^T, movmatrix-transposed
operands, accumulator -> A fragments), the packed tiles with block-diagonal and causal masks,
the streaming online softmax and the backward, against float64 attention. It was written to
check the index algebra before any GPU run (this machine has no GPU). Run: python3 THIS_FILE.
"""
# A "reg" is a pair (lo, hi) of values per lane: arrays [32, 2].
import math

import numpy as np
rng = np.random.default_rng(1)
G = np.arange(32) >> 2
T = np.arange(32) & 3

def mma(c, a, b):
    # c: [32,4]; a: 4 regs [32,2]; b: 2 regs [32,2]
    A = np.zeros((16, 16)); B = np.zeros((16, 8))
    for l in range(32):
        g, t = l >> 2, l & 3
        A[g, 2*t:2*t+2] = a[0][l]; A[g+8, 2*t:2*t+2] = a[1][l]
        A[g, 2*t+8:2*t+10] = a[2][l]; A[g+8, 2*t+8:2*t+10] = a[3][l]
        B[2*t:2*t+2, g] = b[0][l]; B[2*t+8:2*t+10, g] = b[1][l]
    C = A @ B
    out = c.copy()
    for l in range(32):
        g, t = l >> 2, l & 3
        out[l] += [C[g, 2*t], C[g, 2*t+1], C[g+8, 2*t], C[g+8, 2*t+1]]
    return out

def movtrans(x):
    M = np.zeros((8, 8))
    for l in range(32):
        M[l >> 2, 2*(l & 3):2*(l & 3)+2] = x[l]
    Mt = M.T
    return np.array([Mt[l >> 2, 2*(l & 3):2*(l & 3)+2] for l in range(32)])

def u4(rows, blk, ch, r):
    # thread (g,t) loads row 8 blk + g, dims 32 ch + 8 t + 2 r, +1
    return np.array([rows[8*blk + (l >> 2), 32*ch + 8*(l & 3) + 2*r: 32*ch + 8*(l & 3) + 2*r + 2] for l in range(32)])

def mma_rows(c, Q, bq, K, bk, DC):
    # rows 8-blocks bq (g) and bq+1 (g+8) of Q; key block bk of K
    for ch in range(DC):
        c = mma(c, [u4(Q, bq, ch, 0), u4(Q, bq+1, ch, 0), u4(Q, bq, ch, 1), u4(Q, bq+1, ch, 1)],
                [u4(K, bk, ch, 0), u4(K, bk, ch, 1)])
        c = mma(c, [u4(Q, bq, ch, 2), u4(Q, bq+1, ch, 2), u4(Q, bq, ch, 3), u4(Q, bq+1, ch, 3)],
                [u4(K, bk, ch, 2), u4(K, bk, ch, 3)])
    return c

def acc_get(c, mt, nb):
    # accumulator tile -> matrix [16, 8]
    M = np.zeros((16, 8))
    for l in range(32):
        g, t = l >> 2, l & 3
        M[g, 2*t:2*t+2] = c[l, 0:2]; M[g+8, 2*t:2*t+2] = c[l, 2:4]
    return M

def pack(lo, hi):
    return np.stack([lo, hi], 1)

def acc_to_a(lo, hi):
    return [pack(lo[:, 0], lo[:, 1]), pack(lo[:, 2], lo[:, 3]), pack(hi[:, 0], hi[:, 1]), pack(hi[:, 2], hi[:, 3])]

def acc_to_at(lo, hi):
    return [movtrans(pack(lo[:, 0], lo[:, 1])), movtrans(pack(hi[:, 0], hi[:, 1])),
            movtrans(pack(lo[:, 2], lo[:, 3])), movtrans(pack(hi[:, 2], hi[:, 3]))]

def st_row(acc, e0):
    # acc [4 (r)][32,4] -> per lane 8 values dims 8t..8t+7
    return np.array([[acc[r][l, e0 + e] for r in range(4) for e in range(2)] for l in range(32)])

for DC in (1, 2):
    D = 32 * DC
    for MT in (1, 2):
        TR = 16 * MT
        Q = rng.standard_normal((TR, D)); K = rng.standard_normal((TR, D)); V = rng.standard_normal((TR, D))
        dO = rng.standard_normal((TR, D))
        NB = 2 * MT
        S = [[mma_rows(np.zeros((32, 4)), Q, 2*mt, K, nb, DC) for nb in range(NB)] for mt in range(MT)]
        Sm = np.block([[acc_get(S[mt][nb], mt, nb) for nb in range(NB)] for mt in range(MT)])
        assert np.allclose(Sm, Q @ K.T), "QK^T"
        P = rng.standard_normal((TR, TR))
        # P in accumulator layout
        def to_acc(M, mt, nb):
            c = np.zeros((32, 4))
            for l in range(32):
                g, t = l >> 2, l & 3
                c[l] = [M[16*mt+g, 8*nb+2*t], M[16*mt+g, 8*nb+2*t+1], M[16*mt+g+8, 8*nb+2*t], M[16*mt+g+8, 8*nb+2*t+1]]
            return c
        Pa = [[to_acc(P, mt, nb) for nb in range(NB)] for mt in range(MT)]
        # O = P V
        vt = [[[movtrans(u4(V, b, ch, r)) for r in range(4)] for ch in range(DC)] for b in range(NB)]
        O = np.zeros((TR, D))
        for mt in range(MT):
            acc = [[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)]
            for ks in range(MT):
                a = acc_to_a(Pa[mt][2*ks], Pa[mt][2*ks+1])
                for ch in range(DC):
                    for r in range(4):
                        acc[ch][r] = mma(acc[ch][r], a, [vt[2*ks][ch][r], vt[2*ks+1][ch][r]])
            for hr in range(2):
                for ch in range(DC):
                    vals = st_row(acc[ch], 2*hr)
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        O[16*mt + 8*hr + g, 32*ch + 8*t: 32*ch + 8*t + 8] = vals[l]
        assert np.allclose(O, P @ V), "PV"
        # dV = P^T dO
        dt = [[[movtrans(u4(dO, b, ch, r)) for r in range(4)] for ch in range(DC)] for b in range(NB)]
        dV = np.zeros((TR, D))
        for mk in range(MT):
            acc = [[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)]
            for ksq in range(MT):
                a = acc_to_at(Pa[ksq][2*mk], Pa[ksq][2*mk+1])
                for ch in range(DC):
                    for r in range(4):
                        acc[ch][r] = mma(acc[ch][r], a, [dt[2*ksq][ch][r], dt[2*ksq+1][ch][r]])
            for hr in range(2):
                for ch in range(DC):
                    vals = st_row(acc[ch], 2*hr)
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        dV[16*mk + 8*hr + g, 32*ch + 8*t: 32*ch + 8*t + 8] = vals[l]
        assert np.allclose(dV, P.T @ dO), "P^T dO"
        print("ok DC", DC, "MT", MT)

LOG2E = 1.4426950408889634
def bf(x):  # round to bf16
    x = np.asarray(x, dtype=np.float32).copy()
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)

def ref(q, k, v, dO, causal):
    L, Ly = q.shape[0], k.shape[0]
    s = q @ k.T / math.sqrt(q.shape[1])
    if causal:
        s = np.where(np.arange(Ly)[None, :] <= np.arange(L)[:, None], s, -np.inf)
    m = s.max(1, keepdims=True); p = np.exp(s - m); l = p.sum(1, keepdims=True); p /= l
    o = p @ v
    dp = dO @ v.T; delta = (dO * o).sum(1, keepdims=True); ds = p * (dp - delta) / math.sqrt(q.shape[1])
    return o, (m + np.log(l))[:, 0], ds @ k, ds.T @ q, p.T @ dO

def pk_fwd(pairs, L, D, causal):
    # pairs: list of (q,k,v) arrays [L, D]; returns o list and lse list, simulating one warp tile
    DC = D // 32; TR = 16 if L <= 16 else 32; MT = TR // 16; NB = 2 * MT; G = TR // L
    assert len(pairs) <= G
    lm = 65536 // L + 1
    Q = np.zeros((TR, D)); K = np.zeros((TR, D)); V = np.zeros((TR, D)); valid = np.zeros(TR, bool)
    pw = np.array([(r * lm) >> 16 for r in range(TR)]); ii = np.arange(TR) - pw * L
    for r in range(TR):
        if pw[r] < len(pairs):
            valid[r] = True
            Q[r], K[r], V[r] = pairs[pw[r]][0][ii[r]], pairs[pw[r]][1][ii[r]], pairs[pw[r]][2][ii[r]]
    Q, K, V = bf(Q), bf(K), bf(V)
    sl = LOG2E / math.sqrt(D)
    S = [[mma_rows(np.zeros((32, 4)), Q, 2*mt, K, nb, DC) for nb in range(NB)] for mt in range(MT)]
    lse = {}
    # softmax per thread-quads, emulated elementwise
    for mt in range(MT):
        for hr in range(2):
            mx = np.full(32, -np.inf)
            for nb in range(NB):
                for e in range(2):
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        r = 16*mt + 8*hr + g; key = 8*nb + 2*t + e
                        kp = (key * lm) >> 16; ki = key - kp * L
                        ok = valid[r] and kp == pw[r] and (not causal or ki <= ii[r])
                        x = S[mt][nb][l, 2*hr+e] * sl if ok else -np.inf
                        S[mt][nb][l, 2*hr+e] = x; mx[l] = max(mx[l], x)
            mx = np.array([max(mx[(l & ~3) + j] for j in range(4)) for l in range(32)])
            sm = np.zeros(32)
            for nb in range(NB):
                for e in range(2):
                    for l in range(32):
                        x = S[mt][nb][l, 2*hr+e]
                        p = 0.0 if x == -np.inf else 2.0 ** (x - mx[l])
                        S[mt][nb][l, 2*hr+e] = p; sm[l] += p
            sm = np.array([sum(sm[(l & ~3) + j] for j in range(4)) for l in range(32)])
            for l in range(32):
                inv = 1/sm[l] if sm[l] > 0 else 0
                for nb in range(NB):
                    S[mt][nb][l, 2*hr] *= inv; S[mt][nb][l, 2*hr+1] *= inv
                g, t = l >> 2, l & 3; r = 16*mt + 8*hr + g
                if t == 0 and valid[r]:
                    lse[(pw[r], ii[r])] = (mx[l] + math.log2(sm[l])) / LOG2E
    vt = [[[movtrans(u4(V, b, ch, r)) for r in range(4)] for ch in range(DC)] for b in range(NB)]
    O = np.zeros((TR, D))
    for mt in range(MT):
        acc = [[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)]
        for ks in range(MT):
            a = acc_to_a(S[mt][2*ks], S[mt][2*ks+1])
            a = [bf(x) for x in a]
            for ch in range(DC):
                for r in range(4):
                    acc[ch][r] = mma(acc[ch][r], a, [vt[2*ks][ch][r], vt[2*ks+1][ch][r]])
        for hr in range(2):
            for ch in range(DC):
                vals = st_row(acc[ch], 2*hr)
                for l in range(32):
                    g, t = l >> 2, l & 3
                    O[16*mt + 8*hr + g, 32*ch + 8*t:32*ch + 8*t + 8] = vals[l]
    outs = []
    for p in range(len(pairs)):
        idx = [r for r in range(TR) if valid[r] and pw[r] == p]
        outs.append((O[idx], np.array([lse[(p, i)] for i in range(L)])))
    return outs

rng = np.random.default_rng(5)
for (L, D, causal) in [(8, 32, 0), (18, 32, 0), (9, 64, 1), (4, 64, 1), (5, 32, 1)]:
    TR = 16 if L <= 16 else 32; G = TR // L
    pairs = [tuple(rng.standard_normal((L, D)) for _ in range(3)) for _ in range(G)]
    outs = pk_fwd(pairs, L, D, causal)
    err = 0
    for (q, k, v), (o, lse) in zip(pairs, outs):
        ro, rl, *_ = ref(bf(q), bf(k), bf(v), np.zeros_like(q), causal)
        err = max(err, np.abs(o - ro).max() / np.abs(ro).max(), np.abs(lse - rl).max())
    print("pk_fwd L", L, "D", D, "causal", causal, "G", G, "err %.2e" % err)

def quad(f, arr):
    return np.array([f(arr[(l & ~3) + j] for j in range(4)) for l in range(32)])

def st_fwd(Qrows, K, V, causal, rowi):
    # Qrows [R<=32, D] rows of one tile; rowi: index within its sequence for causal; K,V [Ly, D]
    R, D = Qrows.shape; DC = D // 32; MT = 1 if R <= 16 else 2; NB = 2 * MT; TR = 16 * MT; Ly = K.shape[0]
    Q = np.zeros((TR, D)); Q[:R] = bf(Qrows)
    ri = np.zeros(TR, int); ri[:R] = rowi
    sl = LOG2E / math.sqrt(D)
    m = [np.full(32, -np.inf) for _ in range(NB)]; lsum = [np.zeros(32) for _ in range(NB)]
    O = [[[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)] for mt in range(MT)]
    nblk = (Ly + 15) // 16
    for blk in range(nblk):
        Kb = np.zeros((16, D)); Vb = np.zeros((16, D))
        n = min(16, Ly - 16*blk); Kb[:n] = bf(K[16*blk:16*blk+n]); Vb[:n] = bf(V[16*blk:16*blk+n])
        S = [[mma_rows(np.zeros((32, 4)), Q, 2*mt, Kb, nb, DC) for nb in range(2)] for mt in range(MT)]
        for mt in range(MT):
            for hr in range(2):
                b = 2*mt + hr
                mx = m[b].copy()
                for nb in range(2):
                    for e in range(2):
                        for l in range(32):
                            g, t = l >> 2, l & 3; r = 16*mt + 8*hr + g
                            j = 16*blk + 8*nb + 2*t + e
                            ok = j < Ly and (not causal or j <= ri[r])
                            x = S[mt][nb][l, 2*hr+e] * sl if ok else -np.inf
                            S[mt][nb][l, 2*hr+e] = x; mx[l] = max(mx[l], x)
                mx = quad(max, mx)
                corr = np.array([0.0 if m[b][l] == -np.inf else 2.0 ** (m[b][l] - mx[l]) for l in range(32)])
                ps = np.zeros(32)
                for nb in range(2):
                    for e in range(2):
                        for l in range(32):
                            x = S[mt][nb][l, 2*hr+e]
                            p = 0.0 if x == -np.inf else 2.0 ** (x - mx[l])
                            S[mt][nb][l, 2*hr+e] = p; ps[l] += p
                lsum[b] = lsum[b] * corr + ps; m[b] = mx
                for ch in range(DC):
                    for r in range(4):
                        O[mt][ch][r][:, 2*hr] *= corr; O[mt][ch][r][:, 2*hr+1] *= corr
        vt = [[[movtrans(u4(Vb, bb, ch, r)) for r in range(4)] for ch in range(DC)] for bb in range(2)]
        for mt in range(MT):
            a = [bf(x) for x in acc_to_a(S[mt][0], S[mt][1])]
            for ch in range(DC):
                for r in range(4):
                    O[mt][ch][r] = mma(O[mt][ch][r], a, [vt[0][ch][r], vt[1][ch][r]])
    out = np.zeros((TR, D)); lse = np.zeros(TR)
    for mt in range(MT):
        for hr in range(2):
            b = 2*mt + hr; sm = quad(sum, lsum[b])
            for ch in range(DC):
                vals = st_row(O[mt][ch], 2*hr)
                for l in range(32):
                    g, t = l >> 2, l & 3
                    out[16*mt + 8*hr + g, 32*ch + 8*t:32*ch + 8*t + 8] = vals[l] / sm[l] if sm[l] > 0 else 0
            for l in range(0, 32, 4):
                g = l >> 2; lse[16*mt + 8*hr + g] = (m[b][l] + math.log2(sm[l])) / LOG2E
    return out[:R], lse[:R]

for (R, Ly, D, causal) in [(9, 243, 64, 0), (9, 243, 32, 0), (4, 48, 64, 0), (1, 243, 64, 0), (32, 50, 32, 0), (20, 70, 32, 1)]:
    q = rng.standard_normal((R, D)); k = rng.standard_normal((Ly, D)); v = rng.standard_normal((Ly, D))
    o, lse = st_fwd(q, k, v, causal, np.arange(R))
    if causal:
        ro, rl, *_ = ref(bf(q), bf(k), bf(v), np.zeros_like(q), causal)
    else:
        ro, rl, *_ = ref(bf(q), bf(k), bf(v), np.zeros_like(q), 0)
    print("st_fwd R", R, "Ly", Ly, "D", D, "causal", causal, "err %.2e lse %.2e" % (np.abs(o - ro).max() / np.abs(ro).max(), np.abs(lse - rl).max()))

def bwd_tile(Q, K, V, dO, O, lse2, rvalid, keyok, MT, D, nbk):
    # generic: Q,dO,O [16MT, D] rows; K,V [8 nbk, D]; keyok(r, j) mask; returns dQ, dK, dV (unscaled dQ,dK)
    DC = D // 32; NB = 2 * MT
    delta = np.zeros(16*MT)
    for r in range(16*MT):
        delta[r] = (bf(O[r]) * bf(dO[r])).sum()
    Qb, dOb, Kb, Vb = bf(Q), bf(dO), bf(K), bf(V)
    sl = LOG2E / math.sqrt(D)
    P = [[mma_rows(np.zeros((32, 4)), Qb, 2*mt, Kb, nb, DC) for nb in range(nbk)] for mt in range(MT)]
    dS = [[mma_rows(np.zeros((32, 4)), dOb, 2*mt, Vb, nb, DC) for nb in range(nbk)] for mt in range(MT)]
    for mt in range(MT):
        for nb in range(nbk):
            for l in range(32):
                g, t = l >> 2, l & 3
                for e in range(4):
                    r = 16*mt + g + 8*(e >> 1); j = 8*nb + 2*t + (e & 1)
                    ok = rvalid[r] and keyok(r, j)
                    p = 2.0 ** (P[mt][nb][l, e] * sl - lse2[r]) if ok else 0.0
                    P[mt][nb][l, e] = p; dS[mt][nb][l, e] = p * (dS[mt][nb][l, e] - delta[r])
    dK = np.zeros((8*nbk, D)); dV = np.zeros((8*nbk, D)); dQ = np.zeros((16*MT, D))
    for mk in range(nbk // 2):
        for which, A, Bsrc, out in ((0, P, dOb, dV), (1, dS, Qb, dK)):
            acc = [[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)]
            for ksq in range(MT):
                a = [bf(x) for x in acc_to_at(A[ksq][2*mk], A[ksq][2*mk+1])]
                b0 = [[movtrans(u4(Bsrc, 2*ksq, ch, r)) for r in range(4)] for ch in range(DC)]
                b1 = [[movtrans(u4(Bsrc, 2*ksq+1, ch, r)) for r in range(4)] for ch in range(DC)]
                for ch in range(DC):
                    for r in range(4):
                        acc[ch][r] = mma(acc[ch][r], a, [b0[ch][r], b1[ch][r]])
            for hr in range(2):
                for ch in range(DC):
                    vals = st_row(acc[ch], 2*hr)
                    for l in range(32):
                        g, t = l >> 2, l & 3
                        out[16*mk + 8*hr + g, 32*ch + 8*t:32*ch + 8*t + 8] = vals[l]
    kt = [[[movtrans(u4(Kb, b, ch, r)) for r in range(4)] for ch in range(DC)] for b in range(nbk)]
    for mt in range(MT):
        acc = [[np.zeros((32, 4)) for r in range(4)] for ch in range(DC)]
        for ks in range(nbk // 2):
            a = [bf(x) for x in acc_to_a(dS[mt][2*ks], dS[mt][2*ks+1])]
            for ch in range(DC):
                for r in range(4):
                    acc[ch][r] = mma(acc[ch][r], a, [kt[2*ks][ch][r], kt[2*ks+1][ch][r]])
        for hr in range(2):
            for ch in range(DC):
                vals = st_row(acc[ch], 2*hr)
                for l in range(32):
                    g, t = l >> 2, l & 3
                    dQ[16*mt + 8*hr + g, 32*ch + 8*t:32*ch + 8*t + 8] = vals[l]
    return dQ, dK, dV

# packed backward: one tile with G pairs stacked
for (L, D, causal) in [(8, 32, 0), (18, 32, 0), (4, 64, 1), (9, 32, 1)]:
    TR = 16 if L <= 16 else 32; MT = TR // 16; G = TR // L
    prs = [[rng.standard_normal((L, D)) for _ in range(4)] for _ in range(G)]
    Q = np.zeros((TR, D)); K = np.zeros((TR, D)); V = np.zeros((TR, D)); dO = np.zeros((TR, D)); O = np.zeros((TR, D))
    l2 = np.zeros(TR); val = np.zeros(TR, bool); refs = []
    for p, (q, k, v, do) in enumerate(prs):
        ro, rl, rdq, rdk, rdv = ref(bf(q), bf(k), bf(v), bf(do), causal)
        refs.append((rdq, rdk, rdv))
        sl_ = slice(p*L, p*L+L)
        Q[sl_], K[sl_], V[sl_], dO[sl_], O[sl_] = q, k, v, do, bf(ro); l2[sl_] = rl * LOG2E; val[sl_] = True
    keyok = lambda r, j: j // L == r // L and (not causal or j % L <= r % L)
    dQ, dK, dV = bwd_tile(Q, K, V, dO, O, l2, val, keyok, MT, D, 2*MT)
    sc = 1 / math.sqrt(D); err = 0
    for p, (rdq, rdk, rdv) in enumerate(refs):
        sl_ = slice(p*L, p*L+L)
        for a, b in ((dQ[sl_] * sc, rdq), (dK[sl_] * sc, rdk), (dV[sl_], rdv)):
            err = max(err, np.abs(a - b).max() / np.abs(b).max())
    print("pk_bwd L", L, "D", D, "causal", causal, "err %.2e" % err)
