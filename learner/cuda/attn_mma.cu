/* Tensor-core attention: mma.sync m16n8k16 (bf16 operands, fp32 accumulation) for head widths 32
 * and 64 with 16-byte aligned rows. One warp owns its tile of queries and every key those queries
 * see, so no shared memory, no block barriers and no atomics:
 *
 * - packed (self-attention with Lx = Ly <= 32: the torso's 2S tokens, the policy's n_steps): a
 *   warp tile of 16 or 32 rows holds G = tile / L whole (sequence, head) pairs stacked; scores
 *   between different pairs are masked (block-diagonal), so the 8-token sequences of S = 4 fill
 *   a 16-row tile with two pairs instead of padding one;
 * - streaming (any Ly: the policy's cross-attention over 3 S^2 keys, decoding with K samples
 *   sharing a position's keys): the rows of one (key sequence, head) against its keys in blocks
 *   of 16 with an online softmax (forward), or with probabilities recomputed from lse (backward:
 *   dk, dv of each key block are complete when the block is done, dq accumulates in registers).
 *
 * Operand layouts need no shared memory: a thread loads 16 contiguous bytes of a row (8 head
 * dims). For Q K^T the order of the head dims inside the contraction is free as long as q and k
 * use the same one, so each thread's 8 dims are assigned to fragment slots (2t, 2t+1, 2t+8,
 * 2t+9 of two k16 steps) directly. Products whose contraction runs over keys or queries (P V,
 * dS K, P^T dO, dS^T Q) need the other operand transposed: movmatrix.trans turns each 8x8 block
 * of loaded rows into B fragments whose columns are a permutation of the head dims, and that
 * permutation makes each thread's outputs 8 contiguous dims of a row again (one 16-byte store).
 * Probability and dS tiles go from accumulator to A fragments as in flash-attention 2, and to
 * transposed A fragments (for P^T, dS^T) through movmatrix.trans as well. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>

#include "learner/cuda/cu_common.h"

#define LOG2E_F 1.4426950408889634f
#define LN2_F 0.6931471805599453f
#define MMA_THREADS 128

namespace {

__device__ __forceinline__ void mma_bf16(float c[4], uint32_t a0, uint32_t a1, uint32_t a2,
                                         uint32_t a3, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* the 8x8 b16 matrix whose row lane/4, columns 2 (lane%4) and +1 this lane holds, transposed */
__device__ __forceinline__ uint32_t movtrans(uint32_t x)
{
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}

__device__ __forceinline__ uint32_t pack_bf(float lo, float hi)
{
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *(uint32_t *)&h;
}

__device__ __forceinline__ uint32_t u4(const uint4 &u, int r)
{
    return r == 0 ? u.x : r == 1 ? u.y : r == 2 ? u.z : u.w;
}

/* two bf16 (low half first) as floats: a bf16 is the high half of its float */
__device__ __forceinline__ float2 bf2_to_f2(uint32_t u)
{
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

__device__ __forceinline__ uint4 ld16(const bf16 *p) { return *(const uint4 *)p; }

__device__ __forceinline__ float quad_max(float v)
{
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v)
{
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

/* c (+)= A B for one m16 tile: A = 16 rows given as rows 8-blocks ra (rows g) and rb (rows g+8)
 * of 8 dims per thread per 32-dim chunk; B = 8 rows kb (the key rows, n = g), same dims. The
 * chunk's two k16 steps take the thread's dims (8t, 8t+1 | 8t+2, 8t+3) and (8t+4.. | 8t+6..). */
template <int DC>
__device__ __forceinline__ void mma_rows(float c[4], const uint4 *ra, const uint4 *rb,
                                         const uint4 *kb)
{
#pragma unroll
    for (int ch = 0; ch < DC; ch++) {
        mma_bf16(c, ra[ch].x, rb[ch].x, ra[ch].y, rb[ch].y, kb[ch].x, kb[ch].y);
        mma_bf16(c, ra[ch].z, rb[ch].z, ra[ch].w, rb[ch].w, kb[ch].z, kb[ch].w);
    }
}

/* rows 8-block of 8 x (32 DC) values transposed for use as B (contraction over the rows): the
 * n8 tile (ch, r) has columns n <-> dims 32 ch + 8 (n / 2) + 2 r + n % 2 */
template <int DC>
__device__ __forceinline__ void trans_rows(uint32_t out[DC][4], const uint4 *rows)
{
#pragma unroll
    for (int ch = 0; ch < DC; ch++)
#pragma unroll
        for (int r = 0; r < 4; r++)
            out[ch][r] = movtrans(u4(rows[ch], r));
}

/* one 16-byte store of this thread's 8 dims (32 ch + 8 t ..) of a row from the accumulators of
 * the four n8 tiles (ch, 0..3): e0 = 0 for row g, 2 for row g + 8 */
__device__ __forceinline__ void st_row(bf16 *p, const float acc[4][4], int e0, float mul)
{
    uint4 u;
    u.x = pack_bf(acc[0][e0] * mul, acc[0][e0 + 1] * mul);
    u.y = pack_bf(acc[1][e0] * mul, acc[1][e0 + 1] * mul);
    u.z = pack_bf(acc[2][e0] * mul, acc[2][e0 + 1] * mul);
    u.w = pack_bf(acc[3][e0] * mul, acc[3][e0 + 1] * mul);
    *(uint4 *)p = u;
}

/* A fragment (rows g, g + 8 of a tile; contraction over 16 columns = two n8 accumulator tiles
 * lo, hi) from fp32 accumulators, as flash-attention 2 does with P */
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float lo[4], const float hi[4])
{
    a[0] = pack_bf(lo[0], lo[1]);
    a[1] = pack_bf(lo[2], lo[3]);
    a[2] = pack_bf(hi[0], hi[1]);
    a[3] = pack_bf(hi[2], hi[3]);
}

/* transposed A fragment: the tile's 16 columns (n8 tiles lo, hi of query rows block ksq) become
 * the rows; the 16 rows (queries) the contraction */
__device__ __forceinline__ void acc_to_at(uint32_t a[4], const float lo[4], const float hi[4])
{
    a[0] = movtrans(pack_bf(lo[0], lo[1]));
    a[1] = movtrans(pack_bf(hi[0], hi[1]));
    a[2] = movtrans(pack_bf(lo[2], lo[3]));
    a[3] = movtrans(pack_bf(hi[2], hi[3]));
}

/* ------------------------------------------------------------------ packed self-attention */

/* where the rows of a packed tile live: row r of the tile is row (r % L) of pair p0 + r / L.
 * Index arithmetic in 32 bits (the host checks N H < 2^31); r / L for r < 32 as (r lm) >> 16
 * with lm = 65536 / L + 1, exact there. */
struct pk_row {
    long qo, ko, oo;   /* element offsets of the row's head slice in q (dq), k/v (dk/dv), o */
    int pw, i, valid;  /* pair within the tile, index within the sequence */
    int pair;
};

__device__ __forceinline__ int div_small(int r, int lm) { return (r * lm) >> 16; }

__device__ __forceinline__ pk_row pk_locate(const tgc_attn_shape &s, int p0, int G, int L, int lm,
                                            int npairs, int r)
{
    pk_row w;
    w.pw = div_small(r, lm);
    w.i = r - w.pw * L;
    w.pair = p0 + w.pw;
    w.valid = w.pw < G && w.pair < npairs;
    int n = w.valid ? w.pair / s.H : 0;
    int h = w.valid ? w.pair - n * s.H : 0;
    w.qo = (long)n * s.sq + (long)w.i * s.ldq + (long)h * s.D;
    w.ko = (long)n * s.sk + (long)w.i * s.ldk + (long)h * s.D;
    w.oo = (long)n * s.so + (long)w.i * s.ldo + (long)h * s.D;
    return w;
}

/* MT m16 tiles: tile of TR = 16 MT rows (queries) and as many keys (the same rows) */
template <int DC, int MT>
__global__ void __launch_bounds__(MMA_THREADS)
k_attn_mma_pk_fwd(tgc_attn_shape s, int L, int G, int lm, const bf16 *__restrict__ q,
                  const bf16 *__restrict__ k, const bf16 *__restrict__ v, bf16 *o, float *lse)
{
    constexpr int NB = 2 * MT; /* 8-row blocks of the tile */
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    const int npairs = s.N * s.H, p0 = warp * G;
    if (p0 >= npairs)
        return;
    pk_row rw[NB];
    uint4 qr[NB][DC], kr[NB][DC], vr[NB][DC];
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int b = 0; b < NB; b++) {
        rw[b] = pk_locate(s, p0, G, L, lm, npairs, 8 * b + g);
#pragma unroll
        for (int ch = 0; ch < DC; ch++) {
            int d = 32 * ch + 8 * t;
            qr[b][ch] = rw[b].valid ? ld16(q + rw[b].qo + d) : z;
            kr[b][ch] = rw[b].valid ? ld16(k + rw[b].ko + d) : z;
            vr[b][ch] = rw[b].valid ? ld16(v + rw[b].ko + d) : z;
        }
    }
    /* this thread's score columns: keys 8 nb + 2 t + e */
    int kp[NB][2], ki[NB][2];
#pragma unroll
    for (int nb = 0; nb < NB; nb++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int key = 8 * nb + 2 * t + e;
            kp[nb][e] = div_small(key, lm);
            ki[nb][e] = key - kp[nb][e] * L;
        }
    const float sl = s.scale * LOG2E_F;
    float S[MT][NB][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
            S[mt][nb][0] = S[mt][nb][1] = S[mt][nb][2] = S[mt][nb][3] = 0.f;
            mma_rows<DC>(S[mt][nb], qr[2 * mt], qr[2 * mt + 1], kr[nb]);
        }
    /* softmax per row (a row's columns are spread over the 4 threads of a quad) */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const pk_row &w = rw[2 * mt + hr];
            float mx = -INFINITY;
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    bool ok = w.valid && kp[nb][e] == w.pw &&
                              (!s.causal || ki[nb][e] <= w.i + s.q_off);
                    float x = ok ? S[mt][nb][2 * hr + e] * sl : -INFINITY;
                    S[mt][nb][2 * hr + e] = x;
                    mx = fmaxf(mx, x);
                }
            mx = quad_max(mx);
            float sum = 0.f;
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float x = S[mt][nb][2 * hr + e];
                    float p = x == -INFINITY ? 0.f : exp2f(x - mx);
                    S[mt][nb][2 * hr + e] = p;
                    sum += p;
                }
            sum = quad_sum(sum);
            float inv = sum > 0.f ? 1.f / sum : 0.f;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                S[mt][nb][2 * hr] *= inv;
                S[mt][nb][2 * hr + 1] *= inv;
            }
            if (lse && t == 0 && w.valid)
                lse[(long)w.pair * s.Lx + w.i] = (mx + log2f(sum)) * LN2_F;
        }
    /* O = P V: contraction over the tile's keys, 16 at a time */
    uint32_t vt[NB][DC][4];
#pragma unroll
    for (int b = 0; b < NB; b++)
        trans_rows<DC>(vt[b], vr[b]);
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float O[DC][4][4];
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                O[ch][r][0] = O[ch][r][1] = O[ch][r][2] = O[ch][r][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < MT; ks++) {
            uint32_t a[4];
            acc_to_a(a, S[mt][2 * ks], S[mt][2 * ks + 1]);
#pragma unroll
            for (int ch = 0; ch < DC; ch++)
#pragma unroll
                for (int r = 0; r < 4; r++)
                    mma_bf16(O[ch][r], a[0], a[1], a[2], a[3], vt[2 * ks][ch][r],
                             vt[2 * ks + 1][ch][r]);
        }
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const pk_row &w = rw[2 * mt + hr];
            if (w.valid)
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
                    st_row(o + w.oo + 32 * ch + 8 * t, O[ch], 2 * hr, 1.f);
        }
    }
}

/* 3 blocks per SM for the torso's 32-row tiles (173 registers would allow only 2) */
template <int DC, int MT>
__global__ void __launch_bounds__(MMA_THREADS, DC == 1 && MT == 2 ? 3 : 1)
k_attn_mma_pk_bwd(tgc_attn_shape s, int L, int G, int lm, const bf16 *__restrict__ q,
                  const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                  const bf16 *__restrict__ o, const bf16 *__restrict__ dout,
                  const float *__restrict__ lse, bf16 *dq, bf16 *dk, bf16 *dv)
{
    constexpr int NB = 2 * MT;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    const int npairs = s.N * s.H, p0 = warp * G;
    if (p0 >= npairs)
        return;
    pk_row rw[NB];
    uint4 qr[NB][DC], kr[NB][DC], vr[NB][DC], dr[NB][DC];
    float delta[NB], l2[NB];
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int b = 0; b < NB; b++) {
        rw[b] = pk_locate(s, p0, G, L, lm, npairs, 8 * b + g);
        uint4 orow[DC];
#pragma unroll
        for (int ch = 0; ch < DC; ch++) {
            int d = 32 * ch + 8 * t;
            qr[b][ch] = rw[b].valid ? ld16(q + rw[b].qo + d) : z;
            kr[b][ch] = rw[b].valid ? ld16(k + rw[b].ko + d) : z;
            vr[b][ch] = rw[b].valid ? ld16(v + rw[b].ko + d) : z;
            dr[b][ch] = rw[b].valid ? ld16(dout + rw[b].oo + d) : z;
            orow[ch] = rw[b].valid ? ld16(o + rw[b].oo + d) : z;
        }
        l2[b] = rw[b].valid ? lse[(long)rw[b].pair * s.Lx + rw[b].i] * LOG2E_F : 0.f;
        /* delta_i = dO_i . O_i */
        float a = 0.f;
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                float2 x = bf2_to_f2(u4(orow[ch], r)), y = bf2_to_f2(u4(dr[b][ch], r));
                a += x.x * y.x + x.y * y.y;
            }
        delta[b] = quad_sum(a);
    }
    int kp[NB][2], ki[NB][2];
#pragma unroll
    for (int nb = 0; nb < NB; nb++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int key = 8 * nb + 2 * t + e;
            kp[nb][e] = div_small(key, lm);
            ki[nb][e] = key - kp[nb][e] * L;
        }
    const float sl = s.scale * LOG2E_F;
    /* P (recomputed from lse) and dS = P (dP - delta), both [MT m16][NB n8] */
    float P[MT][NB][4], dS[MT][NB][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int nb = 0; nb < NB; nb++) {
#pragma unroll
            for (int e = 0; e < 4; e++)
                P[mt][nb][e] = dS[mt][nb][e] = 0.f;
            mma_rows<DC>(P[mt][nb], qr[2 * mt], qr[2 * mt + 1], kr[nb]);
            mma_rows<DC>(dS[mt][nb], dr[2 * mt], dr[2 * mt + 1], vr[nb]);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int b = 2 * mt + (e >> 1);
                const pk_row &w = rw[b];
                bool ok = w.valid && kp[nb][e & 1] == w.pw &&
                          (!s.causal || ki[nb][e & 1] <= w.i + s.q_off);
                float p = ok ? exp2f(P[mt][nb][e] * sl - l2[b]) : 0.f;
                P[mt][nb][e] = p;
                dS[mt][nb][e] = p * (dS[mt][nb][e] - delta[b]);
            }
        }
    /* dV = P^T dO and dK = scale dS^T Q: rows = keys (m16 tile mk), contraction over queries */
    uint32_t dt[NB][DC][4], qt[NB][DC][4];
#pragma unroll
    for (int b = 0; b < NB; b++) {
        trans_rows<DC>(dt[b], dr[b]);
        trans_rows<DC>(qt[b], qr[b]);
    }
#pragma unroll
    for (int mk = 0; mk < MT; mk++) {
        float AV[DC][4][4], AK[DC][4][4];
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    AV[ch][r][e] = AK[ch][r][e] = 0.f;
#pragma unroll
        for (int ksq = 0; ksq < MT; ksq++) {
            uint32_t ap[4], as[4];
            acc_to_at(ap, P[ksq][2 * mk], P[ksq][2 * mk + 1]);
            acc_to_at(as, dS[ksq][2 * mk], dS[ksq][2 * mk + 1]);
#pragma unroll
            for (int ch = 0; ch < DC; ch++)
#pragma unroll
                for (int r = 0; r < 4; r++) {
                    mma_bf16(AV[ch][r], ap[0], ap[1], ap[2], ap[3], dt[2 * ksq][ch][r],
                             dt[2 * ksq + 1][ch][r]);
                    mma_bf16(AK[ch][r], as[0], as[1], as[2], as[3], qt[2 * ksq][ch][r],
                             qt[2 * ksq + 1][ch][r]);
                }
        }
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const pk_row &w = rw[2 * mk + hr];
            if (w.valid)
#pragma unroll
                for (int ch = 0; ch < DC; ch++) {
                    st_row(dv + w.ko + 32 * ch + 8 * t, AV[ch], 2 * hr, 1.f);
                    st_row(dk + w.ko + 32 * ch + 8 * t, AK[ch], 2 * hr, s.scale);
                }
        }
    }
    /* dQ = scale dS K: contraction over keys */
    uint32_t kt[NB][DC][4];
#pragma unroll
    for (int b = 0; b < NB; b++)
        trans_rows<DC>(kt[b], kr[b]);
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float AQ[DC][4][4];
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    AQ[ch][r][e] = 0.f;
#pragma unroll
        for (int ks = 0; ks < MT; ks++) {
            uint32_t a[4];
            acc_to_a(a, dS[mt][2 * ks], dS[mt][2 * ks + 1]);
#pragma unroll
            for (int ch = 0; ch < DC; ch++)
#pragma unroll
                for (int r = 0; r < 4; r++)
                    mma_bf16(AQ[ch][r], a[0], a[1], a[2], a[3], kt[2 * ks][ch][r],
                             kt[2 * ks + 1][ch][r]);
        }
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const pk_row &w = rw[2 * mt + hr];
            if (w.valid)
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
                    st_row(dq + w.qo + 32 * ch + 8 * t, AQ[ch], 2 * hr, s.scale);
        }
    }
}

/* ------------------------------------------------------------------ streaming over keys */

/* query row r of a (key sequence, head) group: rows of kv_div query sequences of Lx each */
struct st_row_t {
    long qo, oo, lrow;
    int i, valid;
};

__device__ __forceinline__ st_row_t st_locate(const tgc_attn_shape &s, int nkv, int h, int R,
                                              int r)
{
    st_row_t w;
    w.valid = r < R;
    int rr = w.valid ? r : 0, sq = rr / s.Lx;
    long n = (long)nkv * s.kv_div + sq;
    w.i = rr - sq * s.Lx;
    w.qo = n * s.sq + (long)w.i * s.ldq + (long)h * s.D;
    w.oo = n * s.so + (long)w.i * s.ldo + (long)h * s.D;
    w.lrow = (n * s.H + h) * s.Lx + w.i;
    return w;
}

/* key rows 16 kb + 8 nb + g of this warp's key sequence (zero past Ly) */
template <int DC>
__device__ __forceinline__ void st_load_kv(uint4 kr[2][DC], uint4 vr[2][DC], const bf16 *kb,
                                           const bf16 *vb, long ldk, int Ly, int blk, int g,
                                           int t)
{
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int nb = 0; nb < 2; nb++) {
        int j = 16 * blk + 8 * nb + g;
#pragma unroll
        for (int ch = 0; ch < DC; ch++) {
            long off = (long)j * ldk + 32 * ch + 8 * t;
            kr[nb][ch] = j < Ly ? ld16(kb + off) : z;
            vr[nb][ch] = j < Ly ? ld16(vb + off) : z;
        }
    }
}

template <int DC, int MT>
__global__ void __launch_bounds__(MMA_THREADS)
k_attn_mma_st_fwd(tgc_attn_shape s, int R, int tiles, const bf16 *__restrict__ q,
                  const bf16 *__restrict__ k, const bf16 *__restrict__ v, bf16 *o, float *lse)
{
    constexpr int NB = 2 * MT;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    const int nkv = s.N / s.kv_div;
    if (warp >= nkv * s.H * tiles)
        return;
    const int grp = warp / tiles, tile = warp - grp * tiles;
    const int kvn = grp / s.H, h = grp - kvn * s.H;
    st_row_t rw[NB];
    uint4 qr[NB][DC];
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int b = 0; b < NB; b++) {
        rw[b] = st_locate(s, kvn, h, R, tile * 16 * MT + 8 * b + g);
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
            qr[b][ch] = rw[b].valid ? ld16(q + rw[b].qo + 32 * ch + 8 * t) : z;
    }
    const long ko = (long)kvn * s.sk + (long)h * s.D;
    const bf16 *kb = k + ko, *vb = v + ko;
    const int nblk = (s.Ly + 15) / 16;
    const float sl = s.scale * LOG2E_F;
    float m[NB], l[NB], O[MT][DC][4][4];
#pragma unroll
    for (int b = 0; b < NB; b++)
        m[b] = -INFINITY, l[b] = 0.f;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                O[mt][ch][r][0] = O[mt][ch][r][1] = O[mt][ch][r][2] = O[mt][ch][r][3] = 0.f;
    uint4 kr[2][DC], vr[2][DC], kn[2][DC], vn[2][DC];
    st_load_kv<DC>(kr, vr, kb, vb, s.ldk, s.Ly, 0, g, t);
    for (int blk = 0; blk < nblk; blk++) {
        if (blk + 1 < nblk) /* next block's keys in flight during this one */
            st_load_kv<DC>(kn, vn, kb, vb, s.ldk, s.Ly, blk + 1, g, t);
        float S[MT][2][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nb = 0; nb < 2; nb++) {
                S[mt][nb][0] = S[mt][nb][1] = S[mt][nb][2] = S[mt][nb][3] = 0.f;
                mma_rows<DC>(S[mt][nb], qr[2 * mt], qr[2 * mt + 1], kr[nb]);
            }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int b = 2 * mt + hr;
                float mx = m[b];
#pragma unroll
                for (int nb = 0; nb < 2; nb++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        int j = 16 * blk + 8 * nb + 2 * t + e;
                        bool ok = j < s.Ly && (!s.causal || j <= rw[b].i + s.q_off);
                        float x = ok ? S[mt][nb][2 * hr + e] * sl : -INFINITY;
                        S[mt][nb][2 * hr + e] = x;
                        mx = fmaxf(mx, x);
                    }
                mx = quad_max(mx);
                float corr = m[b] == -INFINITY ? 0.f : exp2f(m[b] - mx), ps = 0.f;
#pragma unroll
                for (int nb = 0; nb < 2; nb++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        float x = S[mt][nb][2 * hr + e];
                        float p = x == -INFINITY ? 0.f : exp2f(x - mx);
                        S[mt][nb][2 * hr + e] = p;
                        ps += p;
                    }
                l[b] = l[b] * corr + ps;
                m[b] = mx;
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
#pragma unroll
                    for (int r = 0; r < 4; r++) {
                        O[mt][ch][r][2 * hr] *= corr;
                        O[mt][ch][r][2 * hr + 1] *= corr;
                    }
            }
        uint32_t vt[2][DC][4];
        trans_rows<DC>(vt[0], vr[0]);
        trans_rows<DC>(vt[1], vr[1]);
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            uint32_t a[4];
            acc_to_a(a, S[mt][0], S[mt][1]);
#pragma unroll
            for (int ch = 0; ch < DC; ch++)
#pragma unroll
                for (int r = 0; r < 4; r++)
                    mma_bf16(O[mt][ch][r], a[0], a[1], a[2], a[3], vt[0][ch][r], vt[1][ch][r]);
        }
        if (blk + 1 < nblk) {
#pragma unroll
            for (int nb = 0; nb < 2; nb++)
#pragma unroll
                for (int ch = 0; ch < DC; ch++) {
                    kr[nb][ch] = kn[nb][ch];
                    vr[nb][ch] = vn[nb][ch];
                }
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int b = 2 * mt + hr;
            float sum = quad_sum(l[b]);
            float inv = sum > 0.f ? 1.f / sum : 0.f;
            if (rw[b].valid) {
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
                    st_row(o + rw[b].oo + 32 * ch + 8 * t, O[mt][ch], 2 * hr, inv);
                if (lse && t == 0)
                    lse[rw[b].lrow] = (m[b] + log2f(sum)) * LN2_F;
            }
        }
}

/* kv_div 1, Lx <= 16 MT: one warp per (sequence, head) */
template <int DC, int MT>
__global__ void __launch_bounds__(MMA_THREADS)
k_attn_mma_st_bwd(tgc_attn_shape s, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                  const bf16 *__restrict__ v, const bf16 *__restrict__ o,
                  const bf16 *__restrict__ dout, const float *__restrict__ lse, bf16 *dq,
                  bf16 *dk, bf16 *dv)
{
    constexpr int NB = 2 * MT;
    const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int warp = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    if (warp >= s.N * s.H)
        return;
    const int n = warp / s.H, h = warp - n * s.H;
    st_row_t rw[NB];
    uint4 qr[NB][DC], dr[NB][DC];
    float delta[NB], l2[NB];
    const uint4 z = make_uint4(0, 0, 0, 0);
#pragma unroll
    for (int b = 0; b < NB; b++) {
        rw[b] = st_locate(s, n, h, s.Lx, 8 * b + g);
        uint4 orow[DC];
#pragma unroll
        for (int ch = 0; ch < DC; ch++) {
            int d = 32 * ch + 8 * t;
            qr[b][ch] = rw[b].valid ? ld16(q + rw[b].qo + d) : z;
            dr[b][ch] = rw[b].valid ? ld16(dout + rw[b].oo + d) : z;
            orow[ch] = rw[b].valid ? ld16(o + rw[b].oo + d) : z;
        }
        l2[b] = rw[b].valid ? lse[rw[b].lrow] * LOG2E_F : 0.f;
        float a = 0.f;
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                float2 x = bf2_to_f2(u4(orow[ch], r)), y = bf2_to_f2(u4(dr[b][ch], r));
                a += x.x * y.x + x.y * y.y;
            }
        delta[b] = quad_sum(a);
    }
    const long ko = (long)n * s.sk + (long)h * s.D;
    const bf16 *kb = k + ko, *vb = v + ko;
    bf16 *dkb = dk + ko, *dvb = dv + ko;
    const int nblk = (s.Ly + 15) / 16;
    const float sl = s.scale * LOG2E_F;
    float AQ[MT][DC][4][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int ch = 0; ch < DC; ch++)
#pragma unroll
            for (int r = 0; r < 4; r++)
                AQ[mt][ch][r][0] = AQ[mt][ch][r][1] = AQ[mt][ch][r][2] = AQ[mt][ch][r][3] = 0.f;
    uint4 kr[2][DC], vr[2][DC], kn[2][DC], vn[2][DC];
    st_load_kv<DC>(kr, vr, kb, vb, s.ldk, s.Ly, 0, g, t);
    for (int blk = 0; blk < nblk; blk++) {
        if (blk + 1 < nblk)
            st_load_kv<DC>(kn, vn, kb, vb, s.ldk, s.Ly, blk + 1, g, t);
        float P[MT][2][4], dS[MT][2][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nb = 0; nb < 2; nb++) {
#pragma unroll
                for (int e = 0; e < 4; e++)
                    P[mt][nb][e] = dS[mt][nb][e] = 0.f;
                mma_rows<DC>(P[mt][nb], qr[2 * mt], qr[2 * mt + 1], kr[nb]);
                mma_rows<DC>(dS[mt][nb], dr[2 * mt], dr[2 * mt + 1], vr[nb]);
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int b = 2 * mt + (e >> 1);
                    int j = 16 * blk + 8 * nb + 2 * t + (e & 1);
                    bool ok = rw[b].valid && j < s.Ly && (!s.causal || j <= rw[b].i + s.q_off);
                    float p = ok ? exp2f(P[mt][nb][e] * sl - l2[b]) : 0.f;
                    P[mt][nb][e] = p;
                    dS[mt][nb][e] = p * (dS[mt][nb][e] - delta[b]);
                }
            }
        /* this block's 16 keys: dV = P^T dO, then dK = scale dS^T Q (contraction over
         * queries; the transposed dO and Q fragments are re-made per block, which costs a few
         * movmatrix and keeps registers for the prefetched keys) */
#pragma unroll
        for (int which = 0; which < 2; which++) {
            float A[DC][4][4];
#pragma unroll
            for (int ch = 0; ch < DC; ch++)
#pragma unroll
                for (int r = 0; r < 4; r++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        A[ch][r][e] = 0.f;
#pragma unroll
            for (int ksq = 0; ksq < MT; ksq++) {
                uint32_t a[4], b0[DC][4], b1[DC][4];
                if (which == 0) {
                    acc_to_at(a, P[ksq][0], P[ksq][1]);
                    trans_rows<DC>(b0, dr[2 * ksq]);
                    trans_rows<DC>(b1, dr[2 * ksq + 1]);
                } else {
                    acc_to_at(a, dS[ksq][0], dS[ksq][1]);
                    trans_rows<DC>(b0, qr[2 * ksq]);
                    trans_rows<DC>(b1, qr[2 * ksq + 1]);
                }
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
#pragma unroll
                    for (int r = 0; r < 4; r++)
                        mma_bf16(A[ch][r], a[0], a[1], a[2], a[3], b0[ch][r], b1[ch][r]);
            }
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                int j = 16 * blk + 8 * hr + g;
                if (j < s.Ly)
#pragma unroll
                    for (int ch = 0; ch < DC; ch++) {
                        long off = (long)j * s.ldk + 32 * ch + 8 * t;
                        if (which == 0)
                            st_row(dvb + off, A[ch], 2 * hr, 1.f);
                        else
                            st_row(dkb + off, A[ch], 2 * hr, s.scale);
                    }
            }
        }
        /* dQ += dS K */
        {
            uint32_t kt[2][DC][4];
            trans_rows<DC>(kt[0], kr[0]);
            trans_rows<DC>(kt[1], kr[1]);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                uint32_t a[4];
                acc_to_a(a, dS[mt][0], dS[mt][1]);
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
#pragma unroll
                    for (int r = 0; r < 4; r++)
                        mma_bf16(AQ[mt][ch][r], a[0], a[1], a[2], a[3], kt[0][ch][r],
                                 kt[1][ch][r]);
            }
        }
        if (blk + 1 < nblk) {
#pragma unroll
            for (int nb = 0; nb < 2; nb++)
#pragma unroll
                for (int ch = 0; ch < DC; ch++) {
                    kr[nb][ch] = kn[nb][ch];
                    vr[nb][ch] = vn[nb][ch];
                }
        }
    }
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int b = 2 * mt + hr;
            if (rw[b].valid)
#pragma unroll
                for (int ch = 0; ch < DC; ch++)
                    st_row(dq + rw[b].qo + 32 * ch + 8 * t, AQ[mt][ch], 2 * hr, s.scale);
        }
}

/* ------------------------------------------------------------------ host side */

int mma_aligned(const tgc_attn_shape *s, const void *const *ptrs, int n)
{
    if (s->sq % 8 || s->ldq % 8 || s->sk % 8 || s->ldk % 8 || s->so % 8 || s->ldo % 8)
        return 0;
    for (int i = 0; i < n; i++)
        if (ptrs[i] && (uintptr_t)ptrs[i] % 16)
            return 0;
    return 1;
}

/* 32-dim chunks of the head width (0: not taken) */
int mma_dc(const tgc_attn_shape *s)
{
    return s->D == 32 ? 1 : s->D == 64 ? 2 : 0;
}

/* packed self-attention: rows per tile (0: not packed) */
int mma_pk_rows(const tgc_attn_shape *s)
{
    if (s->kv_div != 1 || s->Lx != s->Ly || s->Lx > 32 || s->Lx < 1)
        return 0;
    return s->Lx <= 16 ? 16 : 32;
}

unsigned mma_blocks(long warps)
{
    return cdiv(warps, MMA_THREADS / 32);
}

} // namespace

#define MMA_LAUNCH(KERNEL, DC, MT, GRID, ...)                                                  \
    do {                                                                                       \
        if ((DC) == 1 && (MT) == 1)                                                            \
            KERNEL<1, 1><<<(GRID), MMA_THREADS, 0, st>>>(__VA_ARGS__);                         \
        else if ((DC) == 1)                                                                    \
            KERNEL<1, 2><<<(GRID), MMA_THREADS, 0, st>>>(__VA_ARGS__);                         \
        else if ((MT) == 1)                                                                    \
            KERNEL<2, 1><<<(GRID), MMA_THREADS, 0, st>>>(__VA_ARGS__);                         \
        else                                                                                   \
            KERNEL<2, 2><<<(GRID), MMA_THREADS, 0, st>>>(__VA_ARGS__);                         \
        CU_LAUNCH_CHECK();                                                                     \
    } while (0)

int tgc_attn_fwd_mma(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                     const bf16 *v, bf16 *o, float *lse)
{
    const void *ptrs[4] = {q, k, v, o};
    int dc = mma_dc(s);
    if (!dc || s->kv_div < 1 || s->N % s->kv_div || !mma_aligned(s, ptrs, 4))
        return 1;
    long np = (long)s->N * s->H;
    if (np <= 0 || s->Lx <= 0)
        return 0;
    if (np * 32 >= INT_MAX)
        return 1; /* the kernels index pairs and warps in 32 bits */
    int tr = mma_pk_rows(s);
    if (tr) {
        int G = tr / s->Lx, mt = tr / 16;
        MMA_LAUNCH(k_attn_mma_pk_fwd, dc, mt, mma_blocks(cdiv(np, G)), *s, s->Lx, G,
                   65536 / s->Lx + 1, q, k, v, o, lse);
        return 0;
    }
    if (s->Ly <= 0)
        return 1;
    int R = s->kv_div * s->Lx, mt = R <= 16 ? 1 : 2, tiles = (int)cdiv(R, 16 * mt);
    long warps = (long)(s->N / s->kv_div) * s->H * tiles;
    MMA_LAUNCH(k_attn_mma_st_fwd, dc, mt, mma_blocks(warps), *s, R, tiles, q, k, v, o, lse);
    return 0;
}

int tgc_attn_bwd_mma(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                     const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse, bf16 *dq,
                     bf16 *dk, bf16 *dv)
{
    const void *ptrs[8] = {q, k, v, o, dout, dq, dk, dv};
    int dc = mma_dc(s);
    if (!dc || s->kv_div != 1 || !o || !mma_aligned(s, ptrs, 8))
        return 1;
    long np = (long)s->N * s->H;
    if (np <= 0 || s->Lx <= 0)
        return 0;
    if (np * 32 >= INT_MAX)
        return 1;
    int tr = mma_pk_rows(s);
    if (tr) {
        int G = tr / s->Lx, mt = tr / 16;
        MMA_LAUNCH(k_attn_mma_pk_bwd, dc, mt, mma_blocks(cdiv(np, G)), *s, s->Lx, G,
                   65536 / s->Lx + 1, q, k, v, o, dout, lse, dq, dk, dv);
        return 0;
    }
    if (s->Lx > 32 || s->Ly <= 0)
        return 1;
    int mt = s->Lx <= 16 ? 1 : 2;
    MMA_LAUNCH(k_attn_mma_st_bwd, dc, mt, mma_blocks(np), *s, q, k, v, o, dout, lse, dq, dk, dv);
    return 0;
}
