/* Network-specific data-movement kernels of the CUDA backend: the torso's input grids, the
 * stage gather/scatter of attentive modes, the policy embedding, the scalar-projection gradient,
 * and token sampling. Checked end to end against the CPU backend (tests/test_cuda_net.c); the
 * stage copies also against a CPU reference (tests/test_cuda_kernels.c). */
#include <float.h>
#include <string.h>
#include <stdlib.h>

#include "learner/cuda/netk.h"

#define WARP 32
#define FULL 0xffffffffu

static unsigned gridn(long n)
{
    long g = (n + 255) / 256;
    return (unsigned)(g > 132 * 32 ? 132 * 32 : (g < 1 ? 1 : g));
}

#define GRID_STRIDE(i, n)                                                                      \
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (n);                        \
         i += (long)gridDim.x * blockDim.x)

/* Row (x, y) of grid g, feature (f, t): g0 = T[t][x][y][f], g1 = T[t][y][f][x],
 * g2 = T[t][f][x][y]; the last feature is scalar_proj[g](scalars)[x S + y]. */
__global__ void k_torso_input(const float *tens, const float *scal, int B, int S, int T, int ns,
                              int g, const float *wsp, const float *bsp, bf16 *out, int ldo)
{
    long total = (long)B * S * S * ldo;
    GRID_STRIDE(idx, total)
    {
        int f = (int)(idx % ldo);
        long row = idx / ldo;
        int y = (int)(row % S), x = (int)((row / S) % S);
        long b = row / ((long)S * S);
        float val = 0.f; /* padding columns f >= F stay zero */
        if (f == S * T) {
            int r = x * S + y;
            val = bsp[r];
            for (int k = 0; k < ns; k++)
                val += wsp[r * ns + k] * scal[b * ns + k];
        } else if (f < S * T) {
            int ff = f / T, t = f % T;
            int i0, i1, i2;
            if (g == 0) { i0 = x; i1 = y; i2 = ff; }
            else if (g == 1) { i0 = y; i1 = ff; i2 = x; }
            else { i0 = ff; i1 = x; i2 = y; }
            val = tens[(((b * T + t) * S + i0) * S + i1) * S + i2];
        }
        out[idx] = __float2bfloat16(val);
    }
}

int tgc_torso_input(cudaStream_t st, const float *tens, const float *scal, int B, int S, int T,
                    int ns, int g, const float *wsp, const float *bsp, bf16 *out, int ldo)
{
    if (ldo < S * T + 1)
        return tg_fail("torso input: row stride %d < %d features", ldo, S * T + 1);
    long total = (long)B * S * S * ldo;
    k_torso_input<<<gridn(total), 256, 0, st>>>(tens, scal, B, S, T, ns, g, wsp, bsp, out, ldo);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Row copies between layouts: one warp per row (the row's mapping computed once), float4 moves
 * when the width allows. */
static __device__ __forceinline__ void row_copy(float *dst, const float *src, int c, int lane,
                                                bf16 *dstb)
{
    if ((c & 3) == 0 && !(((uintptr_t)dst | (uintptr_t)src) & 15)) {
        for (int i = lane; i < c / 4; i += 32) {
            float4 v = ((const float4 *)src)[i];
            ((float4 *)dst)[i] = v;
            if (dstb) {
                dstb[4 * i] = __float2bfloat16(v.x);
                dstb[4 * i + 1] = __float2bfloat16(v.y);
                dstb[4 * i + 2] = __float2bfloat16(v.z);
                dstb[4 * i + 3] = __float2bfloat16(v.w);
            }
        }
    } else {
        for (int i = lane; i < c; i += 32) {
            dst[i] = src[i];
            if (dstb)
                dstb[i] = __float2bfloat16(src[i]);
        }
    }
}

/* 4 floats to 4 bf16 in one 8-byte store */
static __device__ __forceinline__ void st_bf4(bf16 *p, float4 v)
{
    __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    uint2 u;
    u.x = *(uint32_t *)&lo;
    u.y = *(uint32_t *)&hi;
    *(uint2 *)p = u;
}

/* The same for widths c = 128 NV (the torso's) with 16-byte aligned rows: a lane's NV float4
 * loads are all issued before its stores (the loop above waits for each load before the next),
 * and the bf16 copy goes out 8 bytes a store. */
template <int NV>
static __device__ __forceinline__ void row_copy_v(float *__restrict__ dst,
                                                  const float *__restrict__ src, int lane,
                                                  bf16 *__restrict__ dstb)
{
    float4 v[NV];
#pragma unroll
    for (int t = 0; t < NV; t++)
        v[t] = ((const float4 *)src)[lane + 32 * t];
#pragma unroll
    for (int t = 0; t < NV; t++) {
        ((float4 *)dst)[lane + 32 * t] = v[t];
        if (dstb)
            st_bf4(dstb + 4 * (lane + 32 * t), v[t]);
    }
}

/* grid g rows of G [B, 3, S, S, c] <-> dense [B S S, c] */
__global__ void k_grid_copy(float *G, float *dense, int B, int S, int c, int g, int to_grid)
{
    int lane = threadIdx.x % 32;
    long rows = (long)B * S * S;
    for (long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
         row += (long)gridDim.x * (blockDim.x / 32)) {
        long b = row / (S * S), r = row % (S * S);
        float *gp = G + ((b * 3 + g) * S * S + r) * c, *dp = dense + row * c;
        if (to_grid)
            row_copy(gp, dp, c, lane, NULL);
        else
            row_copy(dp, gp, c, lane, NULL);
    }
}

static unsigned rowgrid(long rows)
{
    long g = (rows + 7) / 8;
    return (unsigned)(g > 132 * 16 ? 132 * 16 : (g < 1 ? 1 : g));
}

int tgc_grid_copy(cudaStream_t st, float *G, float *dense, int B, int S, int c, int g, int to_grid)
{
    k_grid_copy<<<rowgrid((long)B * S * S), 256, 0, st>>>(G, dense, B, S, c, g, to_grid);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Stage (m1, m2): sequence n = b S + r, token t < S: grid m1 cell (r, t); t >= S: grid m2 cell
 * (t - S, r). dir 0: G -> X (and a bf16 copy to Xb when given), 1: X -> G. */
__global__ void k_stage(float *G, float *X, bf16 *Xb, int B, int S, int c, int m1, int m2, int dir)
{
    int lane = threadIdx.x % 32;
    long rows = (long)B * S * 2 * S;
    for (long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
         row += (long)gridDim.x * (blockDim.x / 32)) {
        int t = (int)(row % (2 * S));
        long n = row / (2 * S);
        long b = n / S;
        int r = (int)(n % S);
        long cell = t < S ? ((b * 3 + m1) * S + r) * S + t : ((b * 3 + m2) * S + (t - S)) * S + r;
        if (dir)
            row_copy(G + cell * c, X + row * c, c, lane, NULL);
        else
            row_copy(X + row * c, G + cell * c, c, lane, Xb ? Xb + row * c : NULL);
    }
}

template <int NV>
__global__ void k_stage_v(float *G, float *X, bf16 *Xb, int B, int S, int m1, int m2, int dir)
{
    const int c = 128 * NV, lane = threadIdx.x % 32;
    long rows = (long)B * S * 2 * S;
    for (long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < rows;
         row += (long)gridDim.x * (blockDim.x / 32)) {
        int t = (int)(row % (2 * S));
        long n = row / (2 * S);
        long b = n / S;
        int r = (int)(n % S);
        long cell = t < S ? ((b * 3 + m1) * S + r) * S + t : ((b * 3 + m2) * S + (t - S)) * S + r;
        if (dir)
            row_copy_v<NV>(G + cell * c, X + row * c, lane, NULL);
        else
            row_copy_v<NV>(X + row * c, G + cell * c, lane, Xb ? Xb + row * c : NULL);
    }
}

/* One stage to the next (a1, a2) -> (b1, b2), which share one grid: rows of the next stage's
 * sequences come from Xs (the shared grid, as the stage left it) or from G (the grid entering);
 * the grid leaving goes from Xs back to G. Rows r < B S 2 S: the next layout; after that, the
 * B S S rows of the leaving grid. NV > 0: float4 rows of c = 128 NV, else generic rows. */
static __device__ __forceinline__ long stage_row(int S, long b, int a1, int a2, int g, int i,
                                                 int j)
{
    /* row of grid g's cell (i, j) in stage (a1, a2)'s layout (g is a1 or a2) */
    return g == a1 ? (b * S + i) * 2 * S + j : (b * S + j) * 2 * S + S + i;
}

/* row_copy_v<NV> that also writes the LayerNorm of the row (the next block's first operation)
 * in bf16, with its mean and rstd: the LayerNorm then needs no read of its own. The arithmetic
 * is kernels.cu's k_ln_fwd_v's (same lane mapping and order of sums, eps 1e-5). */
template <int NV>
static __device__ __forceinline__ void row_copy_ln_v(float *__restrict__ dst,
                                                     const float *__restrict__ src, int lane,
                                                     bf16 *__restrict__ dstb,
                                                     const tgc_ln_fuse &ln, long row)
{
    const int n = 128 * NV;
    float4 v[NV];
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < NV; t++) {
        v[t] = ((const float4 *)src)[lane + 32 * t];
        s += (v[t].x + v[t].y) + (v[t].z + v[t].w);
    }
#pragma unroll
    for (int t = 0; t < NV; t++) {
        ((float4 *)dst)[lane + 32 * t] = v[t];
        if (dstb)
            st_bf4(dstb + 4 * (lane + 32 * t), v[t]);
    }
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(FULL, s, o);
    float mu = s / n, q = 0.f;
#pragma unroll
    for (int t = 0; t < NV; t++) {
        float a = v[t].x - mu, bb = v[t].y - mu, c = v[t].z - mu, d = v[t].w - mu;
        q += a * a + bb * bb + c * c + d * d;
    }
    for (int o = 16; o > 0; o >>= 1)
        q += __shfl_xor_sync(FULL, q, o);
    float rs = rsqrtf(q / n + 1e-5f);
    bf16 *y = ln.y + row * n;
#pragma unroll
    for (int t = 0; t < NV; t++) {
        int c = lane + 32 * t;
        float4 ww = ((const float4 *)ln.w)[c], bb = ((const float4 *)ln.b)[c], o;
        o.x = (v[t].x - mu) * rs * ww.x + bb.x;
        o.y = (v[t].y - mu) * rs * ww.y + bb.y;
        o.z = (v[t].z - mu) * rs * ww.z + bb.z;
        o.w = (v[t].w - mu) * rs * ww.w + bb.w;
        st_bf4(y + 4 * c, o);
    }
    if (lane == 0 && ln.mean) {
        ln.mean[row] = mu;
        ln.rstd[row] = rs;
    }
}

template <int NV>
__global__ void k_stage_next(float *G, const float *Xs, float *Xn, bf16 *Xnb, int B, int S, int c,
                             int a1, int a2, int b1, int b2, tgc_ln_fuse ln)
{
    if constexpr (NV > 0)
        c = 128 * NV;
    const int lane = threadIdx.x % 32;
    const long nrows = (long)B * S * 2 * S, wrows = (long)B * S * S;
    const int leave = (a1 != b1 && a1 != b2) ? a1 : a2;
    for (long row = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; row < nrows + wrows;
         row += (long)gridDim.x * (blockDim.x / 32)) {
        const float *src;
        float *dst;
        bf16 *dstb = NULL;
        if (row < nrows) {
            int t = (int)(row % (2 * S));
            long n = row / (2 * S), b = n / S;
            int r = (int)(n % S);
            int g = t < S ? b1 : b2, i = t < S ? r : t - S, j = t < S ? t : r;
            if (g == a1 || g == a2)
                src = Xs + stage_row(S, b, a1, a2, g, i, j) * c;
            else
                src = G + (((b * 3 + g) * S + i) * S + j) * c;
            dst = Xn + row * c;
            dstb = Xnb ? Xnb + row * c : NULL;
        } else {
            long w = row - nrows, b = w / ((long)S * S);
            int i = (int)(w / S % S), j = (int)(w % S);
            src = Xs + stage_row(S, b, a1, a2, leave, i, j) * c;
            dst = G + (((b * 3 + leave) * S + i) * S + j) * c;
        }
        if constexpr (NV > 0) {
            if (ln.y && row < nrows) /* the warp's lanes share the row: the shuffles are safe */
                row_copy_ln_v<NV>(dst, src, lane, dstb, ln, row);
            else
                row_copy_v<NV>(dst, src, lane, dstb);
        } else {
            row_copy(dst, src, c, lane, dstb);
        }
    }
}

int tgc_stage_next(cudaStream_t st, float *G, const float *Xs, float *Xn, bf16 *Xnb, int B, int S,
                   int c, int a1, int a2, int b1, int b2, const tgc_ln_fuse *ln)
{
    int shared = (a1 == b1 || a1 == b2) + (a2 == b1 || a2 == b2);
    if (shared != 1)
        return tg_fail("stage_next: stages (%d, %d) and (%d, %d) must share one grid", a1, a2, b1,
                       b2);
    long rows = (long)B * S * 2 * S + (long)B * S * S;
    int nv = c % 128 == 0 && c <= 512 ? c / 128 : 0;
    if (((uintptr_t)G | (uintptr_t)Xs | (uintptr_t)Xn) & 15 || ((uintptr_t)Xnb & 7))
        nv = 0;
    tgc_ln_fuse f;
    memset(&f, 0, sizeof f);
    if (ln && ln->y && nv > 0 && !(((uintptr_t)ln->w | (uintptr_t)ln->b) & 15) &&
        !((uintptr_t)ln->y & 7) && (!ln->mean) == (!ln->rstd))
        f = *ln;
    if (rows <= 0)
        return ln && ln->y && !f.y ? 1 : 0;
#define SN_LAUNCH(NV)                                                                          \
    k_stage_next<NV><<<rowgrid(rows), 256, 0, st>>>(G, Xs, Xn, Xnb, B, S, c, a1, a2, b1, b2, f)
    if (nv == 1)
        SN_LAUNCH(1);
    else if (nv == 2)
        SN_LAUNCH(2);
    else if (nv == 3)
        SN_LAUNCH(3);
    else if (nv == 4)
        SN_LAUNCH(4);
    else
        SN_LAUNCH(0);
#undef SN_LAUNCH
    CU_LAUNCH_CHECK();
    return ln && ln->y && !f.y ? 1 : 0; /* 1: copied, the LayerNorm is the caller's to do */
}

/* TG_CUDA_STAGE_GENERIC=1: the generic row copies for every width (comparisons) */
static int stage_launch(cudaStream_t st, float *G, float *X, bf16 *Xb, int B, int S, int c,
                        int m1, int m2, int dir)
{
    static int generic = -1;
    if (generic < 0)
        generic = getenv("TG_CUDA_STAGE_GENERIC") != NULL;
    long rows = (long)B * S * 2 * S;
    if (rows <= 0)
        return 0;
    int nv = c % 128 == 0 && c <= 512 ? c / 128 : 0;
    if (((uintptr_t)G | (uintptr_t)X) & 15 || ((uintptr_t)Xb & 7))
        nv = 0;
    if (nv == 1 && !generic)
        k_stage_v<1><<<rowgrid(rows), 256, 0, st>>>(G, X, Xb, B, S, m1, m2, dir);
    else if (nv == 2 && !generic)
        k_stage_v<2><<<rowgrid(rows), 256, 0, st>>>(G, X, Xb, B, S, m1, m2, dir);
    else if (nv == 3 && !generic)
        k_stage_v<3><<<rowgrid(rows), 256, 0, st>>>(G, X, Xb, B, S, m1, m2, dir);
    else if (nv == 4 && !generic)
        k_stage_v<4><<<rowgrid(rows), 256, 0, st>>>(G, X, Xb, B, S, m1, m2, dir);
    else
        k_stage<<<rowgrid(rows), 256, 0, st>>>(G, X, Xb, B, S, c, m1, m2, dir);
    CU_LAUNCH_CHECK();
    return 0;
}

int tgc_stage(cudaStream_t st, float *G, float *X, int B, int S, int c, int m1, int m2, int dir)
{
    return stage_launch(st, G, X, NULL, B, S, c, m1, m2, dir);
}

int tgc_stage_bf(cudaStream_t st, float *G, float *X, bf16 *Xb, int B, int S, int c, int m1,
                 int m2)
{
    return stage_launch(st, G, X, Xb, B, S, c, m1, m2, 0);
}

/* x[r, p] = W[p, tok_r] + b[p] + pos[(r % L + pos_off), p]; tokens may come per row. */
__global__ void k_embed(const int32_t *tok, long rows, int L, int pos_off, int P, int nin,
                        const float *W, const float *b, const float *pos, float *x)
{
    long total = rows * P;
    GRID_STRIDE(idx, total)
    {
        int p = (int)(idx % P);
        long r = idx / P;
        int l = (int)(r % L) + pos_off;
        x[idx] = W[(long)p * nin + tok[r]] + b[p] + pos[(long)l * P + p];
    }
}

int tgc_embed(cudaStream_t st, const int32_t *tok, long rows, int L, int pos_off, int P, int nin,
              const float *W, const float *b, const float *pos, float *x)
{
    k_embed<<<gridn(rows * P), 256, 0, st>>>(tok, rows, L, pos_off, P, nin, W, b, pos, x);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Embedding backward in three coalesced passes: rows add into per-token buckets S [nin, P]
 * (zeroed by the caller); then dW[p, t] = S[t, p] and db[p] = sum_t S[t, p] (every row has one
 * token); dpos[l, p] = sum_b dx[b L + l, p]. */
__global__ void k_embed_bucket(const int32_t *tok, long rows, int P, const float *dx, float *S)
{
    int lane = threadIdx.x % 32;
    for (long r = (long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; r < rows;
         r += (long)gridDim.x * (blockDim.x / 32)) {
        float *dst = S + (long)tok[r] * P;
        const float *src = dx + r * P;
        for (int p = lane; p < P; p += 32)
            atomicAdd(&dst[p], src[p]);
    }
}

__global__ void k_embed_finish(const float *S, int P, int nin, float *dW, float *db)
{
    int p = blockIdx.x * blockDim.x + threadIdx.x;
    if (p >= P)
        return;
    float sum = 0.f;
    for (int t = 0; t < nin; t++) {
        float v = S[(long)t * P + p];
        dW[(long)p * nin + t] += v;
        sum += v;
    }
    db[p] += sum;
}

__global__ void k_pos_grad(const float *dx, int B, int L, int P, float *dpos)
{
    long idx = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long)L * P)
        return;
    float s = 0.f;
    for (int b = 0; b < B; b++)
        s += dx[(long)b * L * P + idx];
    dpos[idx] += s;
}

int tgc_embed_bwd(cudaStream_t st, const int32_t *tok, long rows, int L, int P, int nin,
                  const float *dx, float *dW, float *db, float *dpos, float *scratch)
{
    CU_CHECK(cudaMemsetAsync(scratch, 0, sizeof(float) * (size_t)nin * P, st));
    k_embed_bucket<<<rowgrid(rows), 256, 0, st>>>(tok, rows, P, dx, scratch);
    CU_LAUNCH_CHECK();
    k_embed_finish<<<cdiv(P, 128), 128, 0, st>>>(scratch, P, nin, dW, db);
    CU_LAUNCH_CHECK();
    k_pos_grad<<<cdiv((long)L * P, 256), 256, 0, st>>>(dx, (int)(rows / L), L, P, dpos);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Teacher forcing: in[b, 0] = start, in[b, l] = actions[b, l - 1]. */
__global__ void k_tokens_in(const int32_t *act, int B, int L, int start, int32_t *in)
{
    long total = (long)B * L;
    GRID_STRIDE(idx, total)
    {
        int l = (int)(idx % L);
        in[idx] = l == 0 ? start : act[idx - 1];
    }
}

int tgc_tokens_in(cudaStream_t st, const int32_t *act, int B, int L, int start, int32_t *in)
{
    k_tokens_in<<<gridn((long)B * L), 256, 0, st>>>(act, B, L, start, in);
    CU_LAUNCH_CHECK();
    return 0;
}

/* dWsp[r, k] += sum_b dX[b S^2 + r, F - 1] scal[b, k]; dbsp[r] += sum_b dX[...]. */
__global__ void k_scalar_grad(const float *dX, int F, const float *scal, int B, int SS, int ns,
                              float *dW, float *db)
{
    long total = (long)SS * (ns + 1);
    GRID_STRIDE(idx, total)
    {
        int k = (int)(idx % (ns + 1));
        int r = (int)(idx / (ns + 1));
        float s = 0.f;
        for (int b = 0; b < B; b++) {
            float d = dX[((long)b * SS + r) * F + F - 1];
            s += k < ns ? d * scal[(long)b * ns + k] : d;
        }
        if (k < ns)
            dW[r * ns + k] += s;
        else
            db[r] += s;
    }
}

int tgc_scalar_grad(cudaStream_t st, const float *dX, int F, const float *scal, int B, int SS,
                    int ns, float *dW, float *db)
{
    k_scalar_grad<<<gridn((long)SS * (ns + 1)), 256, 0, st>>>(dX, F, scal, B, SS, ns, dW, db);
    CU_LAUNCH_CHECK();
    return 0;
}

/* dst[r, :] += src[r, :] */
__global__ void k_add_rows(float *dst, long ldd, const float *src, long lds, long rows, int n)
{
    GRID_STRIDE(idx, rows * n)
    {
        long r = idx / n;
        int c = (int)(idx % n);
        dst[r * ldd + c] += src[r * lds + c];
    }
}

int tgc_add_rows(cudaStream_t st, float *dst, long ldd, const float *src, long lds, long rows,
                 int n)
{
    if (rows * n <= 0)
        return 0;
    k_add_rows<<<gridn(rows * n), 256, 0, st>>>(dst, ldd, src, lds, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

/* One warp per row: token from logits / temp by the inverse CDF of u (greedy when u == NULL:
 * argmax, first on ties); logp accumulates log p(token). */
__global__ void k_sample(const float *logits, long rows, int n, float temp, const float *u,
                         long u_stride, int32_t *tok_next, int32_t *tok_out, long out_stride,
                         float *logp, float *logits_out, long lo_stride)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    const float *x = logits + r * n;
    if (logits_out)
        for (int i = lane; i < n; i += WARP)
            logits_out[r * lo_stride + i] = x[i];
    float m = -FLT_MAX;
    int arg = 0;
    for (int i = lane; i < n; i += WARP)
        if (x[i] > m) {
            m = x[i];
            arg = i;
        }
    for (int o = 16; o > 0; o >>= 1) {
        float om = __shfl_xor_sync(FULL, m, o);
        int oa = __shfl_xor_sync(FULL, arg, o);
        if (om > m || (om == m && oa < arg)) {
            m = om;
            arg = oa;
        }
    }
    int token = arg;
    float s = 0.f;
    for (int i = lane; i < n; i += WARP)
        s += expf((x[i] - m) / temp);
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(FULL, s, o);
    if (u) {
        /* serial scan by lane 0: n is small (|F|^d) */
        if (lane == 0) {
            float target = u[r * u_stride] * s, c = 0.f;
            int last = 0;
            token = -1;
            for (int i = 0; i < n; i++) {
                float p = expf((x[i] - m) / temp);
                if (p > 0.f)
                    last = i;
                c += p;
                if (c > target) {
                    token = i;
                    break;
                }
            }
            if (token < 0)
                token = last;
        }
        token = __shfl_sync(FULL, token, 0);
    }
    if (lane == 0) {
        tok_next[r] = token;
        if (tok_out)
            tok_out[r * out_stride] = token;
        if (logp)
            logp[r] += (x[token] - m) / temp - logf(s);
    }
}

int tgc_sample(cudaStream_t st, const float *logits, long rows, int n, float temp, const float *u,
               long u_stride, int32_t *tok_next, int32_t *tok_out, long out_stride, float *logp,
               float *logits_out, long lo_stride)
{
    if (rows <= 0)
        return 0;
    k_sample<<<cdiv(rows, 8), 256, 0, st>>>(logits, rows, n, temp, u, u_stride, tok_next, tok_out,
                                            out_stride, logp, logits_out, lo_stride);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- sampling uniforms */

static __device__ __forceinline__ uint64_t d_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static __device__ __forceinline__ uint64_t d_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* one thread per position: its stream's draws are sequential (the CPU backend's order) */
__global__ void k_uniforms(const uint64_t *__restrict__ seed, int N, long per, float *u)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N)
        return;
    uint64_t x = *seed ^ ((uint64_t)i * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    uint64_t s0 = d_splitmix64(&x), s1 = d_splitmix64(&x), s2 = d_splitmix64(&x),
             s3 = d_splitmix64(&x);
    float *o = u + (long)i * per;
    for (long j = 0; j < per; j++) {
        uint64_t r = d_rotl(s1 * 5, 7) * 9, t = s1 << 17;
        s2 ^= s0;
        s3 ^= s1;
        s1 ^= s2;
        s0 ^= s3;
        s2 ^= t;
        s3 = d_rotl(s3, 45);
        o[j] = (float)((double)(r >> 11) * 0x1.0p-53);
    }
}

int tgc_uniforms(cudaStream_t st, const uint64_t *seed, int N, long per, float *u)
{
    if (N <= 0 || per <= 0)
        return 0;
    k_uniforms<<<cdiv(N, 128), 128, 0, st>>>(seed, N, per, u);
    CU_LAUNCH_CHECK();
    return 0;
}
