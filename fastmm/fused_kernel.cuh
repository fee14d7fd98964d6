/* fastmm's fused products kernel (opts.fused; fastmm/README.md "Fused products"), kept in a
 * header of its own so that the same source runs two ways: compiled by nvcc into
 * fastmm_cuda.cu, and on the CPU in tests/test_fused_emu.cpp, which defines the few CUDA names
 * it uses (threads as std::threads, __syncthreads as a barrier) so that CI, which has no GPU,
 * checks its indexing, double buffering and epilogue against the CPU path.
 *
 * Each block product M_r = S_r T_r by a kernel of our own that forms S_r and T_r while it loads
 * its operand tiles (the sums of up to FU_TERMS input blocks, in registers, on their way to
 * shared memory) and adds w_rk M_r into the C blocks in its epilogue: no combination pass, no
 * temporaries, no DRAM traffic beside the operands' reads and C's read-modify-writes (the card
 * runs at its power limit during SGEMM, so the separate passes cost clock as well as
 * multiprocessors). Products run one launch each, in order, so that the C blocks they share are
 * never written at once. A plain fp32 SIMT GEMM: BM x BN tiles, k-steps of BK, 256 threads (16 x
 * 16) of TM x TN outputs in 4 x 4 quadrants 64 rows / columns apart (so that a warp's
 * shared-memory reads are float4 and conflict-free), operand tiles double-buffered through
 * registers. Four tile shapes (opts.fused 1-4, fastmm_fused_tile), since which one the H100 runs
 * fastest is for measurement. It only pays if it comes within ~1% of cuBLAS's SGEMM (8/7 x 0.95
 * is +8.6%); fastmm_gemm_cuda_own times it alone against cuBLAS. */
#ifndef TG_FASTMM_FUSED_KERNEL_CUH
#define TG_FASTMM_FUSED_KERNEL_CUH

#include <string.h>

#include "fastmm/fastmm_int.h"

#define FU_TERMS FASTMM_FUSED_TERMS
#define FU_TARGETS FASTMM_FUSED_TARGETS

struct fu_args {
    const float *A, *B;
    float *C;
    long lda, ldb, ldc;
    int K;         // inner length of one block product (a multiple of BK)
    int nc;        // C targets
    int first;     // bit t: target t is written (not accumulated): the first product to reach it
    int tiles_m, tiles_n; // the grid of output tiles (set at launch)
    long aoff[FU_TERMS], boff[FU_TERMS], coff[FU_TARGETS];
    float ac[FU_TERMS], bc[FU_TERMS], cc[FU_TARGETS];
};

template <int N>
__device__ __forceinline__ float4 fu_sum(const float4 (&r)[N], const float *c)
{
    float4 s = make_float4(c[0] * r[0].x, c[0] * r[0].y, c[0] * r[0].z, c[0] * r[0].w);
#pragma unroll
    for (int t = 1; t < N; t++) {
        s.x = fmaf(c[t], r[t].x, s.x);
        s.y = fmaf(c[t], r[t].y, s.y);
        s.z = fmaf(c[t], r[t].z, s.z);
        s.w = fmaf(c[t], r[t].w, s.w);
    }
    return s;
}

// Two blocks per multiprocessor (128 registers) only for the smallest tile: the others need more
// registers for their accumulators or prefetched operands than that leaves without spilling.
template <int BM, int BN, int BK, int NA, int NB>
__global__ void __launch_bounds__(256, BM * BN * BK > 128 * 128 * 8 ? 1 : 2) fused_kernel(fu_args a)
{
    constexpr int TM = BM / 16, TN = BN / 16;           // outputs per thread
    constexpr int LA = BM * BK / 1024, LB = BK * BN / 1024; // float4 loads per thread and term
    static_assert(TM % 4 == 0 && TN % 4 == 0 && LA >= 1 && LB >= 1, "fused tile");
    __shared__ __align__(16) float As[2][BK][BM + 4]; // k-major: float4 reads along m
    __shared__ __align__(16) float Bs[2][BK][BN];
    const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    // tiles in groups of 8 tile rows, column by column inside a group (a 1-D grid): the blocks
    // resident at once share A's row panels and B's column panels in L2 instead of all of B
    const int per = 8 * a.tiles_n, g0 = (int)blockIdx.x / per * 8;
    const int gs = a.tiles_m - g0 < 8 ? a.tiles_m - g0 : 8, in = (int)blockIdx.x % per;
    const long m0 = (long)(g0 + in % gs) * BM, n0 = (long)(in / gs) * BN;
    float4 ra[LA][NA], rb[LB][NB];
    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.f;
    // float4 f of a tile: A row f / (BK/4), k (f % (BK/4)) * 4; B k-row f / (BN/4), column
    // (f % (BN/4)) * 4; thread tid takes f = tid + 256 u
    auto load = [&](int kt) {
        const long k0 = (long)kt * BK;
#pragma unroll
        for (int u = 0; u < LA; u++) {
            const int f = tid + 256 * u, r = f / (BK / 4), k = (f % (BK / 4)) * 4;
#pragma unroll
            for (int t = 0; t < NA; t++)
                ra[u][t] = __ldg((const float4 *)(a.A + a.aoff[t] + (m0 + r) * a.lda + k0 + k));
        }
#pragma unroll
        for (int u = 0; u < LB; u++) {
            const int f = tid + 256 * u, r = f / (BN / 4), n = (f % (BN / 4)) * 4;
#pragma unroll
            for (int t = 0; t < NB; t++)
                rb[u][t] = __ldg((const float4 *)(a.B + a.boff[t] + (k0 + r) * a.ldb + n0 + n));
        }
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int u = 0; u < LA; u++) {
            const int f = tid + 256 * u, r = f / (BK / 4), k = (f % (BK / 4)) * 4;
            const float4 s = fu_sum<NA>(ra[u], a.ac);
            As[buf][k + 0][r] = s.x;
            As[buf][k + 1][r] = s.y;
            As[buf][k + 2][r] = s.z;
            As[buf][k + 3][r] = s.w;
        }
#pragma unroll
        for (int u = 0; u < LB; u++) {
            const int f = tid + 256 * u, r = f / (BN / 4), n = (f % (BN / 4)) * 4;
            *(float4 *)&Bs[buf][r][n] = fu_sum<NB>(rb[u], a.bc);
        }
    };
    const int nk = a.K / BK;
    load(0);
    store(0);
    __syncthreads();
    for (int kt = 0; kt < nk; kt++) {
        const int cur = kt & 1;
        if (kt + 1 < nk) load(kt + 1); // in flight while this tile is multiplied
#pragma unroll
        for (int k = 0; k < BK; k++) {
            float av[TM], bv[TN];
#pragma unroll
            for (int q = 0; q < TM / 4; q++) {
                const float4 v = *(const float4 *)&As[cur][k][q * 64 + ty * 4];
                av[4 * q] = v.x, av[4 * q + 1] = v.y, av[4 * q + 2] = v.z, av[4 * q + 3] = v.w;
            }
#pragma unroll
            for (int q = 0; q < TN / 4; q++) {
                const float4 v = *(const float4 *)&Bs[cur][k][q * 64 + tx * 4];
                bv[4 * q] = v.x, bv[4 * q + 1] = v.y, bv[4 * q + 2] = v.z, bv[4 * q + 3] = v.w;
            }
#pragma unroll
            for (int i = 0; i < TM; i++)
#pragma unroll
                for (int j = 0; j < TN; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        // the other buffer was last read before the previous barrier
        if (kt + 1 < nk) store(cur ^ 1);
        __syncthreads();
    }
    for (int t = 0; t < a.nc; t++) {
        const float w = a.cc[t];
        const bool first = (a.first >> t) & 1;
        float *pc = a.C + a.coff[t];
#pragma unroll
        for (int i = 0; i < TM; i++) {
            const long row = m0 + (i / 4) * 64 + ty * 4 + i % 4;
#pragma unroll
            for (int h = 0; h < TN / 4; h++) {
                float4 *q = (float4 *)(pc + row * a.ldc + n0 + h * 64 + tx * 4);
                float4 v = make_float4(w * acc[i][4 * h], w * acc[i][4 * h + 1],
                                       w * acc[i][4 * h + 2], w * acc[i][4 * h + 3]);
                if (!first) {
                    const float4 o = *q;
                    v.x += o.x;
                    v.y += o.y;
                    v.z += o.z;
                    v.w += o.w;
                }
                *q = v;
            }
        }
    }
}

// The arguments of product r of level l for C = A B (M x K by K x N, whole blocks): its A and
// B terms (block offsets, coefficients), the C blocks it reaches and, in written (one flag per
// C block, zeroed before product 0), which of them it is the first to reach: those it writes.
static inline void fu_product_args(const fastmm_level *l, long M, long N, long K, const float *A,
                                   long lda, const float *B, long ldb, float *C, long ldc, int r,
                                   unsigned char *written, fu_args *a, int *na, int *nb)
{
    tg_dims d = tg_fact_dims(l->f);
    long bm = M / d.n, bk = K / d.m, bn = N / d.p;
    memset(a, 0, sizeof *a);
    a->A = A;
    a->B = B;
    a->C = C;
    a->lda = lda;
    a->ldb = ldb;
    a->ldc = ldc;
    a->K = (int)bk;
    *na = *nb = 0;
    for (int e = l->a.ptr[r]; e < l->a.ptr[r + 1]; e++, (*na)++) {
        int i = l->a.idx[e] / d.m, j = l->a.idx[e] % d.m;
        a->aoff[*na] = i * bm * lda + j * bk;
        a->ac[*na] = l->a.val[e];
    }
    for (int e = l->b.ptr[r]; e < l->b.ptr[r + 1]; e++, (*nb)++) {
        int j = l->b.idx[e] / d.p, k = l->b.idx[e] % d.p;
        a->boff[*nb] = j * bk * ldb + k * bn;
        a->bc[*nb] = l->b.val[e];
    }
    for (int o = 0; o < l->c.nout; o++)
        for (int e = l->c.ptr[o]; e < l->c.ptr[o + 1]; e++) {
            if (l->c.idx[e] != r) continue;
            int i = o / d.p, k = o % d.p;
            a->coff[a->nc] = i * bm * ldc + k * bn;
            a->cc[a->nc] = l->c.val[e];
            if (!written[o]) a->first |= 1 << a->nc;
            written[o] = 1;
            a->nc++;
        }
}

#endif
