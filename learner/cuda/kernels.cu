/* The CUDA backend's own kernels: LayerNorm, GELU, bias, losses, reductions, AdamW and the
 * small-sequence attention. Everything the GEMMs do not do. Memory-bound work is fused where a
 * pass over the data can be saved (LayerNorm writes the bf16 GEMM input directly, the GELU keeps
 * its pre-activation for backward, AdamW updates the fp32 master and its bf16 copy in one pass).
 * Each kernel has a CPU reference in tests/test_cuda_kernels.c. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "learner/cuda/cu_common.h"

#define WARP 32
#define FULL 0xffffffffu

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(FULL, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}

static __device__ __forceinline__ float ld_any(const void *p, int dt, long i)
{
    return dt == TGC_BF16 ? __bfloat162float(((const bf16 *)p)[i]) : ((const float *)p)[i];
}
static __device__ __forceinline__ void st_any(void *p, int dt, long i, float v)
{
    if (dt == TGC_BF16)
        ((bf16 *)p)[i] = __float2bfloat16(v);
    else
        ((float *)p)[i] = v;
}

/* ---------------------------------------------------------------- LayerNorm */

/* One warp per row; 8 rows per block. */
__global__ void k_ln_fwd(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                         const float *__restrict__ b, void *y, int ydt, long ldy, float *mean,
                         float *rstd, long rows, int n)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    const float *xr = x + r * ldx;
    float s = 0.f;
    for (int i = lane; i < n; i += WARP)
        s += xr[i];
    float mu = warp_sum(s) / n;
    float v = 0.f;
    for (int i = lane; i < n; i += WARP) {
        float d = xr[i] - mu;
        v += d * d;
    }
    float rs = rsqrtf(warp_sum(v) / n + 1e-5f);
    for (int i = lane; i < n; i += WARP)
        st_any(y, ydt, r * ldy + i, (xr[i] - mu) * rs * w[i] + b[i]);
    if (lane == 0 && mean) {
        mean[r] = mu;
        rstd[r] = rs;
    }
}

/* Same with the row held in registers (NPL values per lane, n <= 32 NPL): every load of a row
 * is issued before the first use, and x is read from memory once. */
template <int NPL>
__global__ void k_ln_fwd_r(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                           const float *__restrict__ b, void *y, int ydt, long ldy, float *mean,
                           float *rstd, long rows, int n)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    const float *xr = x + r * ldx;
    float xv[NPL];
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < NPL; t++) {
        int i = lane + 32 * t;
        xv[t] = i < n ? xr[i] : 0.f;
        s += xv[t];
    }
    float mu = warp_sum(s) / n, v = 0.f;
#pragma unroll
    for (int t = 0; t < NPL; t++) {
        int i = lane + 32 * t;
        float d = i < n ? xv[t] - mu : 0.f;
        v += d * d;
    }
    float rs = rsqrtf(warp_sum(v) / n + 1e-5f);
#pragma unroll
    for (int t = 0; t < NPL; t++) {
        int i = lane + 32 * t;
        if (i < n) {
            float o = (xv[t] - mu) * rs * w[i] + b[i];
            if (ydt == TGC_BF16)
                ((bf16 *)y)[r * ldy + i] = __float2bfloat16(o);
            else
                ((float *)y)[r * ldy + i] = o;
        }
    }
    if (lane == 0 && mean) {
        mean[r] = mu;
        rstd[r] = rs;
    }
}

#define LN_NPL_DISPATCH(KERNEL, GRID, BLOCK, SMEM, ...)                                        \
    do {                                                                                       \
        int npl_ = (n + 31) / 32;                                                              \
        if (npl_ <= 1) KERNEL<1><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);                      \
        else if (npl_ <= 2) KERNEL<2><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);                 \
        else if (npl_ <= 4) KERNEL<4><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);                 \
        else if (npl_ <= 8) KERNEL<8><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);                 \
        else if (npl_ <= 16) KERNEL<16><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);               \
        else if (npl_ <= 32) KERNEL<32><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);               \
        else KERNEL<64><<<GRID, BLOCK, SMEM, st>>>(__VA_ARGS__);                               \
    } while (0)

/* Widths that are multiples of 128 up to 512 (the torso's) with 16-byte aligned rows: the row in
 * registers as float4 (one 16-byte load per lane and chunk), bf16 output 8 bytes per lane. */
/* TG_CUDA_LN_GENERIC=1: the one-warp-per-row kernels instead of the float4 ones (comparisons) */
static int ln_generic(void)
{
    static int g = -1;
    if (g < 0)
        g = getenv("TG_CUDA_LN_GENERIC") != NULL;
    return g;
}

static bool ln_vec_ok(long n, const void *a, long lda, const void *b, long ldb, const void *c,
                      long ldc)
{
    if (n % 128 || n > 512)
        return false;
    const void *ps[3] = {a, b, c};
    long ls[3] = {lda, ldb, ldc};
    for (int i = 0; i < 3; i++)
        if (ps[i] && (((uintptr_t)ps[i] & 15) || (ls[i] & 3)))
            return false;
    return true;
}

static __device__ __forceinline__ void st4(void *y, int ydt, long off, float4 o)
{
    if (ydt == TGC_BF16) {
        __nv_bfloat162 lo = __floats2bfloat162_rn(o.x, o.y), hi = __floats2bfloat162_rn(o.z, o.w);
        uint2 u;
        u.x = *(uint32_t *)&lo;
        u.y = *(uint32_t *)&hi;
        *(uint2 *)((bf16 *)y + off) = u;
    } else {
        *(float4 *)((float *)y + off) = o;
    }
}

/* LayerNorm backward's upstream gradient dy: fp32, or bf16 (the data-gradient GEMM writes it in
 * bf16 and this kernel is its only reader: half the bytes each way) */
static __device__ __forceinline__ float ld_dy(const float *p, long i) { return p[i]; }
static __device__ __forceinline__ float ld_dy(const bf16 *p, long i)
{
    return __bfloat162float(p[i]);
}
/* four consecutive elements from p + 4 c: one 16-byte load (fp32) or one 8-byte load (bf16) */
static __device__ __forceinline__ float4 ld4_dy(const float *p, long c)
{
    return ((const float4 *)p)[c];
}
static __device__ __forceinline__ float4 ld4_dy(const bf16 *p, long c)
{
    uint2 u = ((const uint2 *)p)[c];
    __nv_bfloat162 lo = *(__nv_bfloat162 *)&u.x, hi = *(__nv_bfloat162 *)&u.y;
    float2 a = __bfloat1622float2(lo), b = __bfloat1622float2(hi);
    return make_float4(a.x, a.y, b.x, b.y);
}

template <int NV>
__global__ void k_ln_fwd_v(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                           const float *__restrict__ b, void *y, int ydt, long ldy, float *mean,
                           float *rstd, long rows, int n)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    const float4 *xr = (const float4 *)(x + r * ldx);
    float4 v[NV];
    float s = 0.f;
#pragma unroll
    for (int t = 0; t < NV; t++) {
        v[t] = xr[lane + 32 * t];
        s += (v[t].x + v[t].y) + (v[t].z + v[t].w);
    }
    float mu = warp_sum(s) / n, q = 0.f;
#pragma unroll
    for (int t = 0; t < NV; t++) {
        float a = v[t].x - mu, bb = v[t].y - mu, c = v[t].z - mu, d = v[t].w - mu;
        q += a * a + bb * bb + c * c + d * d;
    }
    float rs = rsqrtf(warp_sum(q) / n + 1e-5f);
#pragma unroll
    for (int t = 0; t < NV; t++) {
        int c = lane + 32 * t;
        float4 ww = ((const float4 *)w)[c], bb = ((const float4 *)b)[c], o;
        o.x = (v[t].x - mu) * rs * ww.x + bb.x;
        o.y = (v[t].y - mu) * rs * ww.y + bb.y;
        o.z = (v[t].z - mu) * rs * ww.z + bb.z;
        o.w = (v[t].w - mu) * rs * ww.w + bb.w;
        st4(y, ydt, r * ldy + 4 * c, o);
    }
    if (lane == 0 && mean) {
        mean[r] = mu;
        rstd[r] = rs;
    }
}

int tgc_layernorm_fwd(cudaStream_t st, const float *x, long ldx, const float *w, const float *b,
                      void *y, int ydt, long ldy, float *mean, float *rstd, long rows, int n)
{
    if (rows <= 0)
        return 0;
    if (ln_vec_ok(n, x, ldx, y, ldy, w, 0) && ((uintptr_t)b & 15) == 0 && !ln_generic()) {
        if (n == 128)
            k_ln_fwd_v<1><<<cdiv(rows, 8), 256, 0, st>>>(x, ldx, w, b, y, ydt, ldy, mean, rstd, rows, n);
        else if (n == 256)
            k_ln_fwd_v<2><<<cdiv(rows, 8), 256, 0, st>>>(x, ldx, w, b, y, ydt, ldy, mean, rstd, rows, n);
        else if (n == 384)
            k_ln_fwd_v<3><<<cdiv(rows, 8), 256, 0, st>>>(x, ldx, w, b, y, ydt, ldy, mean, rstd, rows, n);
        else
            k_ln_fwd_v<4><<<cdiv(rows, 8), 256, 0, st>>>(x, ldx, w, b, y, ydt, ldy, mean, rstd, rows, n);
        CU_LAUNCH_CHECK();
        return 0;
    }
    if (n <= 64 * 32)
        LN_NPL_DISPATCH(k_ln_fwd_r, cdiv(rows, 8), 256, 0, x, ldx, w, b, y, ydt, ldy, mean, rstd,
                        rows, n);
    else
        k_ln_fwd<<<cdiv(rows, 8), 256, 0, st>>>(x, ldx, w, b, y, ydt, ldy, mean, rstd, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

/* A block of 8 warps handles LN_ROWS rows; dw/db partial sums in shared memory, then one atomic
 * per column per block. */
#define LN_ROWS 64
template <typename DY>
__global__ void k_ln_bwd(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                         const float *__restrict__ mean, const float *__restrict__ rstd,
                         const DY *__restrict__ dy, long ldy, float *dx, long lddx, int acc,
                         float *dw, float *db, long rows, int n)
{
    extern __shared__ float sm[];
    float *sdw = sm, *sdb = sm + n;
    for (int i = threadIdx.x; i < 2 * n; i += blockDim.x)
        sm[i] = 0.f;
    __syncthreads();
    int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    long r0 = (long)blockIdx.x * LN_ROWS;
    for (long r = r0 + wid; r < r0 + LN_ROWS && r < rows; r += nw) {
        const float *xr = x + r * ldx;
        const DY *dr = dy + r * ldy;
        float mu = mean[r], rs = rstd[r];
        float sg = 0.f, sgx = 0.f;
        for (int i = lane; i < n; i += WARP) {
            float dv = ld_dy(dr, i), xh = (xr[i] - mu) * rs, g = dv * w[i];
            sg += g;
            sgx += g * xh;
            atomicAdd(&sdw[i], dv * xh);
            atomicAdd(&sdb[i], dv);
        }
        sg = warp_sum(sg) / n;
        sgx = warp_sum(sgx) / n;
        float *o = dx + r * lddx;
        for (int i = lane; i < n; i += WARP) {
            float xh = (xr[i] - mu) * rs, g = ld_dy(dr, i) * w[i];
            float d = rs * (g - sg - xh * sgx);
            o[i] = acc ? o[i] + d : d;
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        atomicAdd(&dw[i], sdw[i]);
        atomicAdd(&db[i], sdb[i]);
    }
}

/* The rows of a backward block: LN_ROWS consecutive rows (blocked), or, with a grid of as many
 * blocks as fit on the device at once, every (gridDim.x nw)-th row from blockIdx.x nw + wid
 * (strided: no second, mostly idle wave of blocks when rows / LN_ROWS is a little above the
 * device's block slots, as for the torso at S = 9 and B = 256: 648 blocks on 528 slots, and
 * enough blocks for the policy's few wide rows, which got 36) */
#define LN_ROW_LOOP(r)                                                                         \
    const long lr0_ = strided ? (long)blockIdx.x * nw + wid : (long)blockIdx.x * LN_ROWS + wid; \
    const long lstep_ = strided ? (long)gridDim.x * nw : nw;                                   \
    const long lend_ = strided ? rows : min(rows, (long)blockIdx.x * LN_ROWS + LN_ROWS);       \
    for (long r = lr0_; r < lend_; r += lstep_)

/* Register-held rows; each warp keeps its dw/db partial sums in registers over its rows and
 * adds them to shared memory once, the block then once per column to global memory. dxb: an
 * optional bf16 copy of the final dx (the next GEMM's input). */
template <int NPL, typename DY>
__global__ void k_ln_bwd_r(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                           const float *__restrict__ mean, const float *__restrict__ rstd,
                           const DY *__restrict__ dy, long ldy, float *dx, long lddx, int acc,
                           bf16 *dxb, float *dw, float *db, long rows, int n, int strided)
{
    extern __shared__ float sm[];
    float *sdw = sm, *sdb = sm + n;
    for (int i = threadIdx.x; i < 2 * n; i += blockDim.x)
        sm[i] = 0.f;
    __syncthreads();
    int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    float pw[NPL], pb[NPL], wv[NPL];
#pragma unroll
    for (int t = 0; t < NPL; t++) {
        int i = lane + 32 * t;
        pw[t] = pb[t] = 0.f;
        wv[t] = i < n ? w[i] : 0.f;
    }
    LN_ROW_LOOP(r)
    {
        const float *xr = x + r * ldx;
        const DY *dr = dy + r * ldy;
        float mu = mean[r], rs = rstd[r];
        float xh[NPL], g[NPL];
        float sg = 0.f, sgx = 0.f;
#pragma unroll
        for (int t = 0; t < NPL; t++) {
            int i = lane + 32 * t;
            float xv = i < n ? xr[i] : mu, dv = i < n ? ld_dy(dr, i) : 0.f;
            xh[t] = (xv - mu) * rs;
            g[t] = dv * wv[t];
            sg += g[t];
            sgx += g[t] * xh[t];
            pw[t] += dv * xh[t];
            pb[t] += dv;
        }
        sg = warp_sum(sg) / n;
        sgx = warp_sum(sgx) / n;
        float *o = dx + r * lddx;
#pragma unroll
        for (int t = 0; t < NPL; t++) {
            int i = lane + 32 * t;
            if (i < n) {
                float d = rs * (g[t] - sg - xh[t] * sgx);
                if (acc)
                    d += o[i];
                o[i] = d;
                if (dxb)
                    dxb[r * n + i] = __float2bfloat16(d);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NPL; t++) {
        int i = lane + 32 * t;
        if (i < n) {
            atomicAdd(&sdw[i], pw[t]);
            atomicAdd(&sdb[i], pb[t]);
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        atomicAdd(&dw[i], sdw[i]);
        atomicAdd(&db[i], sdb[i]);
    }
}

/* The same for the backward: x, dy and (accumulating) the old dx of a row are all loaded before
 * the first use, as float4 (a bf16 dy as 4 values in 8 bytes). */
template <int NV, typename DY>
__global__ void k_ln_bwd_v(const float *__restrict__ x, long ldx, const float *__restrict__ w,
                           const float *__restrict__ mean, const float *__restrict__ rstd,
                           const DY *__restrict__ dy, long ldy, float *dx, long lddx, int acc,
                           bf16 *dxb, float *dw, float *db, long rows, int n, int strided)
{
    extern __shared__ float sm[];
    float *sdw = sm, *sdb = sm + n;
    for (int i = threadIdx.x; i < 2 * n; i += blockDim.x)
        sm[i] = 0.f;
    __syncthreads();
    int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP, nw = blockDim.x / WARP;
    float4 pw[NV], pb[NV], wv[NV];
#pragma unroll
    for (int t = 0; t < NV; t++) {
        pw[t] = pb[t] = make_float4(0.f, 0.f, 0.f, 0.f);
        wv[t] = ((const float4 *)w)[lane + 32 * t];
    }
    LN_ROW_LOOP(r)
    {
        const float4 *xr = (const float4 *)(x + r * ldx);
        const DY *dr = dy + r * ldy;
        float4 *o = (float4 *)(dx + r * lddx);
        float4 xv[NV], dv[NV], ov[NV];
#pragma unroll
        for (int t = 0; t < NV; t++) {
            xv[t] = xr[lane + 32 * t];
            dv[t] = ld4_dy(dr, lane + 32 * t);
            ov[t] = acc ? o[lane + 32 * t] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        float mu = mean[r], rs = rstd[r], sg = 0.f, sgx = 0.f;
#pragma unroll
        for (int t = 0; t < NV; t++) {
            float4 xh, g;
            xh.x = (xv[t].x - mu) * rs;
            xh.y = (xv[t].y - mu) * rs;
            xh.z = (xv[t].z - mu) * rs;
            xh.w = (xv[t].w - mu) * rs;
            g.x = dv[t].x * wv[t].x;
            g.y = dv[t].y * wv[t].y;
            g.z = dv[t].z * wv[t].z;
            g.w = dv[t].w * wv[t].w;
            sg += (g.x + g.y) + (g.z + g.w);
            sgx += (g.x * xh.x + g.y * xh.y) + (g.z * xh.z + g.w * xh.w);
            pw[t].x += dv[t].x * xh.x;
            pw[t].y += dv[t].y * xh.y;
            pw[t].z += dv[t].z * xh.z;
            pw[t].w += dv[t].w * xh.w;
            pb[t].x += dv[t].x;
            pb[t].y += dv[t].y;
            pb[t].z += dv[t].z;
            pb[t].w += dv[t].w;
            xv[t] = xh; /* keep x-hat, g in place of x, dy */
            dv[t] = g;
        }
        sg = warp_sum(sg) / n;
        sgx = warp_sum(sgx) / n;
#pragma unroll
        for (int t = 0; t < NV; t++) {
            int c = lane + 32 * t;
            float4 d;
            d.x = rs * (dv[t].x - sg - xv[t].x * sgx) + ov[t].x;
            d.y = rs * (dv[t].y - sg - xv[t].y * sgx) + ov[t].y;
            d.z = rs * (dv[t].z - sg - xv[t].z * sgx) + ov[t].z;
            d.w = rs * (dv[t].w - sg - xv[t].w * sgx) + ov[t].w;
            o[c] = d;
            if (dxb)
                st4(dxb, TGC_BF16, r * n + 4 * c, d);
        }
    }
#pragma unroll
    for (int t = 0; t < NV; t++) {
        int c = 4 * (lane + 32 * t);
        atomicAdd(&sdw[c], pw[t].x);
        atomicAdd(&sdw[c + 1], pw[t].y);
        atomicAdd(&sdw[c + 2], pw[t].z);
        atomicAdd(&sdw[c + 3], pw[t].w);
        atomicAdd(&sdb[c], pb[t].x);
        atomicAdd(&sdb[c + 1], pb[t].y);
        atomicAdd(&sdb[c + 2], pb[t].z);
        atomicAdd(&sdb[c + 3], pb[t].w);
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        atomicAdd(&dw[i], sdw[i]);
        atomicAdd(&db[i], sdb[i]);
    }
}

/* blocks of a strided backward launch: what fits on the device at once (occupancy of the kernel
 * at 256 threads and smem bytes), at most one per 8 rows. TG_CUDA_LN_BLOCKED=1: LN_ROWS rows a
 * block as before (comparisons). */
static unsigned ln_bwd_grid(const void *kernel, size_t smem, long rows, int *strided)
{
    static int blocked = -1, sms = 0;
    if (blocked < 0) {
        blocked = getenv("TG_CUDA_LN_BLOCKED") != NULL;
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sms = 0;
    }
    int per = 0;
    if (!blocked && sms > 0) {
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, kernel, 256, smem) != cudaSuccess)
            cudaGetLastError(); /* not sticky: clear it, and launch blocked */
        else if (per > 0) {
            long g = (long)sms * per, need = (rows + 7) / 8;
            *strided = 1;
            return (unsigned)(g < need ? g : need);
        }
    }
    *strided = 0;
    return cdiv(rows, LN_ROWS);
}

/* the backward for a dy of element type DY (float or bf16) */
template <typename DY>
static int ln_bwd_launch(cudaStream_t st, const float *x, long ldx, const float *w,
                         const float *mean, const float *rstd, const DY *dy, long ldy, float *dx,
                         long lddx, int accumulate, bf16 *dxb, float *dw, float *db, long rows,
                         int n)
{
    int strided = 0;
    /* dy's rows as 4-element loads: 16 bytes fp32, 8 bytes bf16 (so 4-element aligned rows) */
    bool dy_vec = ((uintptr_t)dy % (4 * sizeof(DY))) == 0 && (ldy & 3) == 0;
    if (ln_vec_ok(n, x, ldx, dx, lddx, NULL, 0) && dy_vec && ((uintptr_t)w & 15) == 0 &&
        ((uintptr_t)dxb & 7) == 0 && !ln_generic()) {
        size_t sm2 = 2 * (size_t)n * sizeof(float);
#define LNV_B(NV)                                                                              \
    do {                                                                                       \
        unsigned g_ = ln_bwd_grid((const void *)k_ln_bwd_v<NV, DY>, sm2, rows, &strided);      \
        k_ln_bwd_v<NV, DY><<<g_, 256, sm2, st>>>(x, ldx, w, mean, rstd, dy, ldy, dx, lddx,      \
                                                 accumulate, dxb, dw, db, rows, n, strided);   \
    } while (0)
        if (n == 128)
            LNV_B(1);
        else if (n == 256)
            LNV_B(2);
        else if (n == 384)
            LNV_B(3);
        else
            LNV_B(4);
#undef LNV_B
        CU_LAUNCH_CHECK();
        return 0;
    }
    size_t smem = 2 * (size_t)n * sizeof(float);
    if (n <= 64 * 32) {
#define LNR_B(NPL)                                                                             \
    do {                                                                                       \
        unsigned g_ = ln_bwd_grid((const void *)k_ln_bwd_r<NPL, DY>, smem, rows, &strided);    \
        k_ln_bwd_r<NPL, DY><<<g_, 256, smem, st>>>(x, ldx, w, mean, rstd, dy, ldy, dx, lddx,    \
                                                   accumulate, dxb, dw, db, rows, n, strided); \
    } while (0)
        int npl = (n + 31) / 32;
        if (npl <= 1)
            LNR_B(1);
        else if (npl <= 2)
            LNR_B(2);
        else if (npl <= 4)
            LNR_B(4);
        else if (npl <= 8)
            LNR_B(8);
        else if (npl <= 16)
            LNR_B(16);
        else if (npl <= 32)
            LNR_B(32);
        else
            LNR_B(64);
#undef LNR_B
    } else {
        if (dxb)
            return tg_fail("LayerNorm backward: bf16 copy needs n <= 2048");
        if (smem > 48 * 1024) {
            static int raised; /* one per instantiation (DY) */
            if (!raised) {
                CU_CHECK(cudaFuncSetAttribute(k_ln_bwd<DY>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              200 * 1024));
                raised = 1;
            }
        }
        k_ln_bwd<DY><<<cdiv(rows, LN_ROWS), 256, smem, st>>>(x, ldx, w, mean, rstd, dy, ldy, dx,
                                                            lddx, accumulate, dw, db, rows, n);
    }
    CU_LAUNCH_CHECK();
    return 0;
}

int tgc_layernorm_bwd(cudaStream_t st, const float *x, long ldx, const float *w, const float *mean,
                      const float *rstd, const void *dy, int dydt, long ldy, float *dx, long lddx,
                      int accumulate, bf16 *dxb, float *dw, float *db, long rows, int n)
{
    if (rows <= 0)
        return 0;
    if (dydt == TGC_BF16)
        return ln_bwd_launch(st, x, ldx, w, mean, rstd, (const bf16 *)dy, ldy, dx, lddx,
                             accumulate, dxb, dw, db, rows, n);
    if (dydt == TGC_F32)
        return ln_bwd_launch(st, x, ldx, w, mean, rstd, (const float *)dy, ldy, dx, lddx,
                             accumulate, dxb, dw, db, rows, n);
    return tg_fail("LayerNorm backward: dy type %d is neither fp32 nor bf16", dydt);
}

/* ---------------------------------------------------------------- GELU, bias, ReLU, convert */

#define GELU_K 0.7978845608028654f /* sqrt(2 / pi) */
static __device__ __forceinline__ float gelu_f(float x)
{
    return 0.5f * x * (1.f + tanhf(GELU_K * (x + 0.044715f * x * x * x)));
}
static __device__ __forceinline__ float gelu_grad(float x)
{
    float t = tanhf(GELU_K * (x + 0.044715f * x * x * x));
    return 0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * GELU_K * (1.f + 3.f * 0.044715f * x * x);
}

/* Row-wise elementwise kernels: a warp per row, lanes along it (no per-element division). */
#define ROWS_LOOP(rows)                                                                        \
    for (long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP; r < (rows);     \
         r += (long)gridDim.x * (blockDim.x / WARP))

__global__ void k_bias_gelu(bf16 *pre, const bf16 *bias, bf16 *y, long rows, int n)
{
    int lane = threadIdx.x % WARP;
    ROWS_LOOP(rows)
    {
        for (int c = lane; c < n; c += WARP) {
            long i = r * n + c;
            float v = __bfloat162float(pre[i]);
            if (bias) {
                v += __bfloat162float(bias[c]);
                pre[i] = __float2bfloat16(v);
                v = __bfloat162float(pre[i]); /* backward sees exactly the stored value */
            }
            y[i] = __float2bfloat16(gelu_f(v));
        }
    }
}

static unsigned rowgrid(long rows)
{
    long g = (rows + 7) / 8;
    return (unsigned)(g > 132 * 16 ? 132 * 16 : (g < 1 ? 1 : g));
}

static unsigned grid_for(long n)
{
    long g = (n + 255) / 256;
    return (unsigned)(g > 132 * 32 ? 132 * 32 : (g < 1 ? 1 : g));
}

int tgc_bias_gelu(cudaStream_t st, bf16 *pre, const bf16 *bias, bf16 *y, long rows, int n)
{
    if (rows * n <= 0)
        return 0;
    k_bias_gelu<<<rowgrid(rows), 256, 0, st>>>(pre, bias, y, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_gelu_bwd(bf16 *d, const bf16 *pre, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        d[i] = __float2bfloat16(__bfloat162float(d[i]) * gelu_grad(__bfloat162float(pre[i])));
}

int tgc_gelu_bwd(cudaStream_t st, bf16 *d, const bf16 *pre, long n)
{
    if (n <= 0)
        return 0;
    k_gelu_bwd<<<grid_for(n), 256, 0, st>>>(d, pre, n);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_bias_add(void *y, int dt, long ldy, const void *bias, long rows, int n)
{
    int lane = threadIdx.x % WARP;
    ROWS_LOOP(rows)
    {
        for (int c = lane; c < n; c += WARP)
            st_any(y, dt, r * ldy + c, ld_any(y, dt, r * ldy + c) + ld_any(bias, dt, c));
    }
}

int tgc_bias_add(cudaStream_t st, void *y, int dt, long ldy, const void *bias, long rows, int n)
{
    if (rows * n <= 0)
        return 0;
    k_bias_add<<<rowgrid(rows), 256, 0, st>>>(y, dt, ldy, bias, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Column sums: a block of 256 threads covers 32 columns x 8 row groups, then atomics. */
__global__ void k_colsum(const void *x, int dt, long ldx, long rows, int n, float *out)
{
    int c = blockIdx.x * 32 + threadIdx.x % 32;
    int g = threadIdx.x / 32;
    __shared__ float part[8][33];
    float s = 0.f;
    if (c < n)
        for (long r = (long)blockIdx.y * 8 + g; r < rows; r += 8L * gridDim.y)
            s += ld_any(x, dt, r * ldx + c);
    part[g][threadIdx.x % 32] = s;
    __syncthreads();
    if (g == 0 && c < n) {
        float t = 0.f;
        for (int i = 0; i < 8; i++)
            t += part[i][threadIdx.x];
        atomicAdd(&out[c], t);
    }
}

int tgc_colsum(cudaStream_t st, const void *x, int dt, long ldx, long rows, int n, float *out,
               int accumulate)
{
    if (!accumulate)
        CU_CHECK(cudaMemsetAsync(out, 0, (size_t)n * sizeof(float), st));
    if (rows <= 0)
        return 0;
    long gy = rows / 256 + 1;
    if (gy > 256)
        gy = 256;
    dim3 grid(cdiv(n, 32), (unsigned)gy);
    k_colsum<<<grid, 256, 0, st>>>(x, dt, ldx, rows, n, out);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_f2bf(const float *x, bf16 *y, long n)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16(x[i]);
}

int tgc_f2bf(cudaStream_t st, const float *x, bf16 *y, long n)
{
    if (n <= 0)
        return 0;
    k_f2bf<<<grid_for(n), 256, 0, st>>>(x, y, n);
    CU_LAUNCH_CHECK();
    return 0;
}

/* y [rows, ldy] = bf16(x [rows, n], row stride ldx), columns n..ldy-1 zero */
__global__ void k_f2bf_pad(const float *x, long ldx, int n, bf16 *y, int ldy, long rows)
{
    long total = rows * ldy;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long r = i / ldy;
        int c = (int)(i - r * ldy);
        y[i] = __float2bfloat16(c < n ? x[r * ldx + c] : 0.f);
    }
}

int tgc_f2bf_pad(cudaStream_t st, const float *x, long ldx, int n, bf16 *y, int ldy, long rows)
{
    if (rows <= 0 || ldy <= 0)
        return 0;
    if (ldy < n)
        return tg_fail("f2bf_pad: ldy %d < n %d", ldy, n);
    k_f2bf_pad<<<grid_for(rows * ldy), 256, 0, st>>>(x, ldx, n, y, ldy, rows);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_relu_bf(const float *x, long ldx, bf16 *y, long ldy, long rows, int n)
{
    int lane = threadIdx.x % WARP;
    ROWS_LOOP(rows)
    {
        for (int c = lane; c < n; c += WARP)
            y[r * ldy + c] = __float2bfloat16(fmaxf(x[r * ldx + c], 0.f));
    }
}

int tgc_relu_bf(cudaStream_t st, const float *x, long ldx, bf16 *y, long ldy, long rows, int n)
{
    if (rows * n <= 0)
        return 0;
    k_relu_bf<<<rowgrid(rows), 256, 0, st>>>(x, ldx, y, ldy, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_relu_bwd(const float *dy, long lddy, const float *x, long ldx, float *dx,
                           long lddx, int acc, long rows, int n)
{
    int lane = threadIdx.x % WARP;
    ROWS_LOOP(rows)
    {
        for (int c = lane; c < n; c += WARP) {
            float d = x[r * ldx + c] > 0.f ? dy[r * lddy + c] : 0.f;
            dx[r * lddx + c] = acc ? dx[r * lddx + c] + d : d;
        }
    }
}

int tgc_relu_bwd(cudaStream_t st, const float *dy, long lddy, const float *x, long ldx, float *dx,
                 long lddx, int accumulate, long rows, int n)
{
    if (rows * n <= 0)
        return 0;
    k_relu_bwd<<<rowgrid(rows), 256, 0, st>>>(dy, lddy, x, ldx, dx, lddx, accumulate, rows, n);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- GEMM fallback */

/* D = alpha op(A) op(B) + beta C in row-major terms (gemm.h's tgc_mm), bf16 operands, fp32
 * accumulation, fp32 or bf16 D; batches by strides. Only for GEMMs cuBLASLt has no algorithm
 * for (odd widths: bf16 rows at 2-byte offsets, leading dimensions not multiples of 8) and for
 * tests: 16 x 16 output tiles, op(A) and op(B) staged through shared memory as fp32. Any
 * alignment, any ld. */
#define GR_T 16
__global__ void k_gemm_ref(int ta, int tb, long M, long N, long K, const bf16 *__restrict__ A,
                           long lda, long sA, const bf16 *__restrict__ B, long ldb, long sB,
                           void *D, int ddt, long ldd, long sD, const void *C, float alpha,
                           float beta, long batch)
{
    __shared__ float As[GR_T][GR_T + 1], Bs[GR_T][GR_T + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long col = (long)blockIdx.x * GR_T + tx;
    /* rows and batches grid-strided (gridDim.y, .z are capped); the loop bounds are the
     * block's, so every thread reaches each __syncthreads */
    for (long z = blockIdx.z; z < batch; z += gridDim.z) {
        const bf16 *Az = A + z * sA, *Bz = B + z * sB;
        for (long r0 = (long)blockIdx.y * GR_T; r0 < M; r0 += (long)gridDim.y * GR_T) {
            const long row = r0 + ty;
            float acc = 0.f;
            for (long k0 = 0; k0 < K; k0 += GR_T) {
                long ka = k0 + tx, kb = k0 + ty;
                As[ty][tx] = row < M && ka < K
                                 ? __bfloat162float(ta ? Az[ka * lda + row] : Az[row * lda + ka])
                                 : 0.f;
                Bs[ty][tx] = kb < K && col < N
                                 ? __bfloat162float(tb ? Bz[col * ldb + kb] : Bz[kb * ldb + col])
                                 : 0.f;
                __syncthreads();
#pragma unroll
                for (int k = 0; k < GR_T; k++)
                    acc += As[ty][k] * Bs[k][tx];
                __syncthreads();
            }
            if (row < M && col < N) {
                long o = z * sD + row * ldd + col;
                float v = alpha * acc;
                if (beta != 0.f)
                    v += beta * ld_any(C, ddt, o);
                st_any(D, ddt, o, v);
            }
        }
    }
}

int tgc_gemm_ref(cudaStream_t st, int ta, int tb, long M, long N, long K, const bf16 *A, long lda,
                 long sA, const bf16 *B, long ldb, long sB, void *D, int ddt, long ldd, long sD,
                 const void *C, float alpha, float beta, long batch)
{
    if (M <= 0 || N <= 0 || batch <= 0)
        return 0;
    if (beta != 0.f && !C)
        C = D; /* in place: each element is read by the thread that writes it */
    long gy = (M + GR_T - 1) / GR_T, gz = batch;
    dim3 grid(cdiv(N, GR_T), (unsigned)(gy < 65535 ? gy : 65535),
              (unsigned)(gz < 65535 ? gz : 65535));
    k_gemm_ref<<<grid, dim3(GR_T, GR_T), 0, st>>>(ta, tb, M, N, K, A, lda, sA, B, ldb, sB, D, ddt,
                                                  ldd, sD, C, alpha, beta, batch);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- losses */

__global__ void k_xent(const float *logits, const int32_t *tgt, long rows, int n, float *loss,
                       float *dl, float gscale)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    const float *x = logits + r * n;
    float m = -FLT_MAX;
    for (int i = lane; i < n; i += WARP)
        m = fmaxf(m, x[i]);
    m = warp_max(m);
    float s = 0.f;
    for (int i = lane; i < n; i += WARP)
        s += expf(x[i] - m);
    float lse = m + logf(warp_sum(s));
    int t = tgt[r];
    if (lane == 0)
        loss[r] = lse - x[t];
    if (dl)
        for (int i = lane; i < n; i += WARP)
            dl[r * n + i] = (expf(x[i] - lse) - (i == t ? 1.f : 0.f)) * gscale;
}

int tgc_xent(cudaStream_t st, const float *logits, const int32_t *tgt, long rows, int n,
             float *loss_rows, float *dlogits, float gscale)
{
    if (rows <= 0)
        return 0;
    k_xent<<<cdiv(rows, 8), 256, 0, st>>>(logits, tgt, rows, n, loss_rows, dlogits, gscale);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_qloss(const float *q, const float *ret, int B, int Q, float *loss, float *dq,
                        float gscale)
{
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i >= (long)B * Q)
        return;
    int b = (int)(i / Q), j = (int)(i % Q);
    float tau = (j + 0.5f) / Q;
    float d = ret[b] - q[i];
    float ad = fabsf(d);
    float hub = ad <= 1.f ? 0.5f * d * d : ad - 0.5f;
    float w = fabsf(tau - (d < 0.f ? 1.f : 0.f));
    loss[i] = w * hub;
    if (dq)
        dq[i] = -w * (ad <= 1.f ? d : (d > 0.f ? 1.f : -1.f)) * gscale;
}

int tgc_quantile_loss(cudaStream_t st, const float *q, const float *ret, int B, int Q,
                      float *loss_el, float *dq, float gscale)
{
    long n = (long)B * Q;
    if (n <= 0)
        return 0;
    k_qloss<<<cdiv(n, 256), 256, 0, st>>>(q, ret, B, Q, loss_el, dq, gscale);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- reductions */

template <int SQ>
__global__ void k_sum(const float *x, long n, float *out)
{
    float s = 0.f;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x)
        s += SQ ? x[i] * x[i] : x[i];
    s = warp_sum(s);
    __shared__ float part[32];
    if (threadIdx.x % WARP == 0)
        part[threadIdx.x / WARP] = s;
    __syncthreads();
    if (threadIdx.x < WARP) {
        s = threadIdx.x < blockDim.x / WARP ? part[threadIdx.x] : 0.f;
        s = warp_sum(s);
        if (threadIdx.x == 0)
            atomicAdd(out, s);
    }
}

int tgc_sum(cudaStream_t st, const float *x, long n, float *out)
{
    if (n <= 0)
        return 0;
    k_sum<0><<<grid_for(n) > 1024 ? 1024 : grid_for(n), 256, 0, st>>>(x, n, out);
    CU_LAUNCH_CHECK();
    return 0;
}

int tgc_sumsq(cudaStream_t st, const float *x, long n, float *out)
{
    if (n <= 0)
        return 0;
    k_sum<1><<<grid_for(n) > 1024 ? 1024 : grid_for(n), 256, 0, st>>>(x, n, out);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- AdamW */

/* PyTorch's AdamW: p *= 1 - lr wd (decayed tensors only); m, v moments; p -= lr / bc1 * m /
 * (sqrt(v) / sqrt(bc2) + eps). The gradient is scaled by the global-norm clip first. */
__global__ void k_adamw(float *p, bf16 *p16, const float *g, float *m, float *v,
                        const uint8_t *decay, long n, float lr, float b1, float b2, float eps,
                        float wd, float bc1, float bc2, const float *sumsq, float clip)
{
    float scale = 1.f;
    if (clip > 0.f) {
        float norm = sqrtf(*sumsq);
        if (norm > clip)
            scale = clip / (norm + 1e-6f);
    }
    float sbc2 = sqrtf(bc2);
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < n;
         i += (long)gridDim.x * blockDim.x) {
        float gi = g[i] * scale, pi = p[i];
        if (decay[i])
            pi *= 1.f - lr * wd;
        float mi = b1 * m[i] + (1.f - b1) * gi;
        float vi = b2 * v[i] + (1.f - b2) * gi * gi;
        pi -= lr / bc1 * mi / (sqrtf(vi) / sbc2 + eps);
        m[i] = mi;
        v[i] = vi;
        p[i] = pi;
        p16[i] = __float2bfloat16(pi);
    }
}

int tgc_adamw(cudaStream_t st, float *p, bf16 *p16, const float *g, float *m, float *v,
              const uint8_t *decay, long n, float lr, float b1, float b2, float eps, float wd,
              float bc1, float bc2, const float *sumsq, float clip)
{
    k_adamw<<<grid_for(n), 256, 0, st>>>(p, p16, g, m, v, decay, n, lr, b1, b2, eps, wd, bc1, bc2,
                                         sumsq, clip);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- attention (warp per row) */

/* Lane l owns head dims l, l + 32, ... (DT of them). One warp per query row (n, h, i). */
template <int DT>
__global__ void k_attn_fwd(tgc_attn_shape s, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                           const bf16 *__restrict__ v, bf16 *o, float *lse)
{
    long row = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    long nrows = (long)s.N * s.H * s.Lx;
    if (row >= nrows)
        return;
    int i = (int)(row % s.Lx);
    int h = (int)((row / s.Lx) % s.H);
    long n = row / ((long)s.Lx * s.H);
    const bf16 *qr = q + n * s.sq + (long)i * s.ldq + (long)h * s.D;
    const bf16 *kb = k + (n / s.kv_div) * s.sk + (long)h * s.D;
    const bf16 *vb = v + (n / s.kv_div) * s.sk + (long)h * s.D;
    float qv[DT], acc[DT];
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        qv[t] = d < s.D ? __bfloat162float(qr[d]) * s.scale : 0.f;
        acc[t] = 0.f;
    }
    int jmax = s.causal ? min(s.Ly, i + s.q_off + 1) : s.Ly;
    float m = -FLT_MAX, l = 0.f;
    for (int j = 0; j < jmax; j++) {
        const bf16 *kr = kb + (long)j * s.ldk, *vr = vb + (long)j * s.ldk;
        float p = 0.f;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            int d = lane + 32 * t;
            if (d < s.D)
                p += qv[t] * __bfloat162float(kr[d]);
        }
        p = warp_sum(p);
        float mn = fmaxf(m, p);
        float corr = __expf(m - mn), e = __expf(p - mn);
        l = l * corr + e;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            int d = lane + 32 * t;
            acc[t] = acc[t] * corr + (d < s.D ? e * __bfloat162float(vr[d]) : 0.f);
        }
        m = mn;
    }
    bf16 *orow = o + n * s.so + (long)i * s.ldo + (long)h * s.D;
    float inv = 1.f / l;
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        if (d < s.D)
            orow[d] = __float2bfloat16(acc[t] * inv);
    }
    if (lse && lane == 0)
        lse[row] = m + logf(l);
}

/* Backward, query side: delta_i = dO_i . O_i, dq_i = scale sum_j p_ij (dp_ij - delta_i) k_j. */
template <int DT>
__global__ void k_attn_bwd_q(tgc_attn_shape s, const bf16 *__restrict__ q,
                             const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                             const bf16 *__restrict__ o, const bf16 *__restrict__ dout,
                             const float *__restrict__ lse, float *delta, bf16 *dq)
{
    long row = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    long nrows = (long)s.N * s.H * s.Lx;
    if (row >= nrows)
        return;
    int i = (int)(row % s.Lx);
    int h = (int)((row / s.Lx) % s.H);
    long n = row / ((long)s.Lx * s.H);
    long qoff = n * s.sq + (long)i * s.ldq + (long)h * s.D;
    long ooff = n * s.so + (long)i * s.ldo + (long)h * s.D;
    const bf16 *kb = k + (n / s.kv_div) * s.sk + (long)h * s.D;
    const bf16 *vb = v + (n / s.kv_div) * s.sk + (long)h * s.D;
    float qv[DT], dov[DT], dqa[DT];
    float dl = 0.f;
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        qv[t] = d < s.D ? __bfloat162float(q[qoff + d]) * s.scale : 0.f;
        dov[t] = d < s.D ? __bfloat162float(dout[ooff + d]) : 0.f;
        dl += d < s.D ? dov[t] * __bfloat162float(o[ooff + d]) : 0.f;
        dqa[t] = 0.f;
    }
    dl = warp_sum(dl);
    float L = lse[row];
    int jmax = s.causal ? min(s.Ly, i + s.q_off + 1) : s.Ly;
    for (int j = 0; j < jmax; j++) {
        const bf16 *kr = kb + (long)j * s.ldk, *vr = vb + (long)j * s.ldk;
        float sc = 0.f, dp = 0.f;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            int d = lane + 32 * t;
            if (d < s.D) {
                sc += qv[t] * __bfloat162float(kr[d]);
                dp += dov[t] * __bfloat162float(vr[d]);
            }
        }
        sc = warp_sum(sc);
        dp = warp_sum(dp);
        float p = __expf(sc - L);
        float ds = p * (dp - dl) * s.scale;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            int d = lane + 32 * t;
            if (d < s.D)
                dqa[t] += ds * __bfloat162float(kr[d]);
        }
    }
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        if (d < s.D)
            dq[qoff + d] = __float2bfloat16(dqa[t]);
    }
    if (lane == 0)
        delta[row] = dl;
}

/* Backward, key side (kv_div == 1): one warp per key row (n, h, j). */
template <int DT>
__global__ void k_attn_bwd_kv(tgc_attn_shape s, const bf16 *__restrict__ q,
                              const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                              const bf16 *__restrict__ dout, const float *__restrict__ lse,
                              const float *__restrict__ delta, bf16 *dk, bf16 *dv)
{
    long row = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    long nrows = (long)s.N * s.H * s.Ly;
    if (row >= nrows)
        return;
    int j = (int)(row % s.Ly);
    int h = (int)((row / s.Ly) % s.H);
    long n = row / ((long)s.Ly * s.H);
    long koff = n * s.sk + (long)j * s.ldk + (long)h * s.D;
    float kv[DT], vv[DT], dka[DT], dva[DT];
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        kv[t] = d < s.D ? __bfloat162float(k[koff + d]) : 0.f;
        vv[t] = d < s.D ? __bfloat162float(v[koff + d]) : 0.f;
        dka[t] = dva[t] = 0.f;
    }
    int i0 = s.causal ? max(0, j - s.q_off) : 0;
    for (int i = i0; i < s.Lx; i++) {
        long qoff = n * s.sq + (long)i * s.ldq + (long)h * s.D;
        long ooff = n * s.so + (long)i * s.ldo + (long)h * s.D;
        float sc = 0.f, dp = 0.f;
        float qi[DT], doi[DT];
#pragma unroll
        for (int t = 0; t < DT; t++) {
            int d = lane + 32 * t;
            qi[t] = d < s.D ? __bfloat162float(q[qoff + d]) : 0.f;
            doi[t] = d < s.D ? __bfloat162float(dout[ooff + d]) : 0.f;
            sc += qi[t] * kv[t];
            dp += doi[t] * vv[t];
        }
        sc = warp_sum(sc) * s.scale;
        dp = warp_sum(dp);
        long r = (n * s.H + h) * s.Lx + i;
        float p = __expf(sc - lse[r]);
        float ds = p * (dp - delta[r]) * s.scale;
#pragma unroll
        for (int t = 0; t < DT; t++) {
            dka[t] += ds * qi[t];
            dva[t] += p * doi[t];
        }
    }
#pragma unroll
    for (int t = 0; t < DT; t++) {
        int d = lane + 32 * t;
        if (d < s.D) {
            dk[koff + d] = __float2bfloat16(dka[t]);
            dv[koff + d] = __float2bfloat16(dva[t]);
        }
    }
}

#define ATTN_DISPATCH(KERNEL, ROWS, ...)                                                       \
    do {                                                                                       \
        unsigned g_ = cdiv((ROWS), 8);                                                         \
        if (s->D <= 32)                                                                        \
            KERNEL<1><<<g_, 256, 0, st>>>(__VA_ARGS__);                                        \
        else if (s->D <= 64)                                                                   \
            KERNEL<2><<<g_, 256, 0, st>>>(__VA_ARGS__);                                        \
        else if (s->D <= 128)                                                                  \
            KERNEL<4><<<g_, 256, 0, st>>>(__VA_ARGS__);                                        \
        else                                                                                   \
            return tg_fail("attention head dim %d > 128 unsupported", s->D);                   \
        CU_LAUNCH_CHECK();                                                                     \
    } while (0)

int tgc_attn_fwd_warp(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                      const bf16 *v, bf16 *o, float *lse)
{
    long rows = (long)s->N * s->H * s->Lx;
    if (rows <= 0)
        return 0;
    ATTN_DISPATCH(k_attn_fwd, rows, *s, q, k, v, o, lse);
    return 0;
}

int tgc_attn_bwd_warp(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                      const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse,
                      float *delta, bf16 *dq, bf16 *dk, bf16 *dv)
{
    if (s->kv_div != 1)
        return tg_fail("attention backward needs one key sequence per query sequence");
    long rows = (long)s->N * s->H * s->Lx;
    if (rows <= 0)
        return 0;
    ATTN_DISPATCH(k_attn_bwd_q, rows, *s, q, k, v, o, dout, lse, delta, dq);
    long krows = (long)s->N * s->H * s->Ly;
    ATTN_DISPATCH(k_attn_bwd_kv, krows, *s, q, k, v, dout, lse, delta, dk, dv);
    return 0;
}

/* ---------------------------------------------------------------- attention (short sequences)
 * One block holds a few (sequence, head) pairs whole in shared memory (rows padded to D + 1
 * floats against bank conflicts): a thread per query row computes the probabilities, then all
 * threads form the products element by element, so global stores are coalesced. For the torso's
 * 2S-token sequences and the policy's n_steps tokens this does a small fraction of the warp
 * kernels' shuffle work. */

#define SA_THREADS 256
#define SA_SMEM_MAX (64 * 1024)

static __host__ __device__ int sa_pair_floats(int Lx, int Ly, int D, int bwd)
{
    int rows = bwd ? 2 * Lx + 2 * Ly : Lx + 2 * Ly;
    return rows * (D + 1) + (bwd ? 2 : 1) * Lx * Ly + 1;
}

static int sa_pairs(const tgc_attn_shape *s, int bwd)
{
    int per = sa_pair_floats(s->Lx, s->Ly, s->D, bwd) * 4;
    int p = SA_SMEM_MAX / per;
    int byrows = SA_THREADS / s->Lx;
    if (p > byrows)
        p = byrows;
    return p;
}

int tgc_attn_short_ok(const tgc_attn_shape *s)
{
    return s->kv_div == 1 && s->Lx <= SA_THREADS && sa_pairs(s, 1) >= 1 && s->D <= 256;
}

/* The block's pairs, whole: segment g (Q, [dO,] K, V) of pair lp, row r goes to shared row
 * (lp * per) + (first row of g + r) * (D + 1). Loads are 16 bytes wide when the layout allows
 * (vec), issued four at a time before their stores so that many are in flight. */
typedef struct sa_seg {
    const bf16 *base;
    long sseq, ld;
    int rows;
} sa_seg;

static __device__ __forceinline__ void sa_load_all(float *sm, int per, int pairs, long p0,
                                                   long npairs, int H, int D, int vec,
                                                   const sa_seg *seg, int nseg)
{
    const int D1 = D + 1, W = vec ? 8 : 1, CH = D / W;
    int rows = 0;
    for (int g = 0; g < nseg; g++)
        rows += seg[g].rows;
    long np = npairs - p0 < pairs ? npairs - p0 : pairs;
    int total = (int)np * rows * CH;
    for (int base = threadIdx.x; base < total; base += 4 * blockDim.x) {
        uint4 val[4];
        float sval[4];
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int c = base + u * blockDim.x;
            if (c >= total)
                break;
            int lp = c / (rows * CH), rem = c % (rows * CH), r = rem / CH, ch = rem % CH;
            long p = p0 + lp;
            long n = p / H;
            int h = (int)(p % H), g = 0;
            while (r >= seg[g].rows) {
                r -= seg[g].rows;
                g++;
            }
            const bf16 *src = seg[g].base + n * seg[g].sseq + (long)r * seg[g].ld + (long)h * D +
                              ch * W;
            if (vec)
                val[u] = *(const uint4 *)src;
            else
                sval[u] = __bfloat162float(*src);
        }
#pragma unroll
        for (int u = 0; u < 4; u++) {
            int c = base + u * blockDim.x;
            if (c >= total)
                break;
            int lp = c / (rows * CH), rem = c % (rows * CH), r = rem / CH, ch = rem % CH;
            float *dst = sm + lp * per + r * D1 + ch * W;
            if (vec) {
                const bf16 *e = (const bf16 *)&val[u];
#pragma unroll
                for (int t = 0; t < 8; t++)
                    dst[t] = __bfloat162float(e[t]);
            } else {
                dst[0] = sval[u];
            }
        }
    }
}

int tgc_attn_aligned(const tgc_attn_shape *s, const void *const *ptrs, int n)
{
    if (s->D % 8 || s->sq % 8 || s->ldq % 8 || s->sk % 8 || s->ldk % 8 || s->so % 8 || s->ldo % 8)
        return 0;
    for (int i = 0; i < n; i++)
        if (ptrs[i] && ((uintptr_t)ptrs[i] % 16))
            return 0;
    return 1;
}

static int sa_vec(const tgc_attn_shape *s, const void *a, const void *b, const void *c,
                  const void *d)
{
    const void *ps[4] = {a, b, c, d};
    return tgc_attn_aligned(s, ps, 4);
}

__global__ void k_attn_short_fwd(tgc_attn_shape s, int pairs, int vec,
                                 const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                 const bf16 *__restrict__ v, bf16 *o, float *lse)
{
    extern __shared__ float sm[];
    const int Lx = s.Lx, Ly = s.Ly, D = s.D, D1 = s.D + 1;
    const int per = sa_pair_floats(Lx, Ly, D, 0);
    const long npairs = (long)s.N * s.H;
    const long p0 = (long)blockIdx.x * pairs;
    {
        sa_seg seg[3] = {{q, s.sq, s.ldq, Lx}, {k, s.sk, s.ldk, Ly}, {v, s.sk, s.ldk, Ly}};
        sa_load_all(sm, per, pairs, p0, npairs, s.H, D, vec, seg, 3);
    }
    __syncthreads();
    /* probabilities: a thread per query row */
    {
        int lp = threadIdx.x / Lx, i = threadIdx.x % Lx;
        long p = p0 + lp;
        if (lp < pairs && p < npairs) {
            float *Q = sm + lp * per, *K = Q + Lx * D1, *V = K + Ly * D1, *Pm = V + Ly * D1;
            int jmax = s.causal ? min(Ly, i + s.q_off + 1) : Ly;
            float m = -FLT_MAX;
            for (int j = 0; j < jmax; j++) {
                float a = 0.f;
                for (int d = 0; d < D; d++)
                    a += Q[i * D1 + d] * K[j * D1 + d];
                a *= s.scale;
                Pm[i * Ly + j] = a;
                m = fmaxf(m, a);
            }
            float sum = 0.f;
            for (int j = 0; j < jmax; j++) {
                float e = __expf(Pm[i * Ly + j] - m);
                Pm[i * Ly + j] = e;
                sum += e;
            }
            float inv = 1.f / sum;
            for (int j = 0; j < Ly; j++)
                Pm[i * Ly + j] = j < jmax ? Pm[i * Ly + j] * inv : 0.f;
            if (lse)
                lse[p * Lx + i] = m + logf(sum);
        }
    }
    __syncthreads();
    /* o = P V, element by element */
    for (int lp = 0; lp < pairs && p0 + lp < npairs; lp++) {
        long p = p0 + lp;
        long n = p / s.H;
        int h = (int)(p % s.H);
        float *Q = sm + lp * per, *K = Q + Lx * D1, *V = K + Ly * D1, *Pm = V + Ly * D1;
        bf16 *ob = o + n * s.so + (long)h * D;
        for (int e = threadIdx.x; e < Lx * D; e += blockDim.x) {
            int i = e / D, d = e % D;
            float a = 0.f;
            for (int j = 0; j < Ly; j++)
                a += Pm[i * Ly + j] * V[j * D1 + d];
            ob[(long)i * s.ldo + d] = __float2bfloat16(a);
        }
    }
}

__global__ void k_attn_short_bwd(tgc_attn_shape s, int pairs, int vec,
                                 const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                 const bf16 *__restrict__ v, const bf16 *__restrict__ dout,
                                 const float *__restrict__ lse, bf16 *dq, bf16 *dk, bf16 *dv)
{
    extern __shared__ float sm[];
    const int Lx = s.Lx, Ly = s.Ly, D = s.D, D1 = s.D + 1;
    const int per = sa_pair_floats(Lx, Ly, D, 1);
    const long npairs = (long)s.N * s.H;
    const long p0 = (long)blockIdx.x * pairs;
    {
        sa_seg seg[4] = {{q, s.sq, s.ldq, Lx}, {dout, s.so, s.ldo, Lx}, {k, s.sk, s.ldk, Ly},
                         {v, s.sk, s.ldk, Ly}};
        sa_load_all(sm, per, pairs, p0, npairs, s.H, D, vec, seg, 4);
    }
    __syncthreads();
    {
        int lp = threadIdx.x / Lx, i = threadIdx.x % Lx;
        long p = p0 + lp;
        if (lp < pairs && p < npairs) {
            float *Q = sm + lp * per, *dO = Q + Lx * D1, *K = dO + Lx * D1, *V = K + Ly * D1;
            float *Pm = V + Ly * D1, *dS = Pm + Lx * Ly;
            int jmax = s.causal ? min(Ly, i + s.q_off + 1) : Ly;
            float L = lse[p * Lx + i], delta = 0.f;
            for (int j = 0; j < jmax; j++) {
                float a = 0.f, b = 0.f;
                for (int d = 0; d < D; d++) {
                    a += Q[i * D1 + d] * K[j * D1 + d];
                    b += dO[i * D1 + d] * V[j * D1 + d];
                }
                float pr = __expf(a * s.scale - L);
                Pm[i * Ly + j] = pr;
                dS[i * Ly + j] = b;
                delta += pr * b;
            }
            for (int j = 0; j < Ly; j++) {
                if (j < jmax) {
                    dS[i * Ly + j] = Pm[i * Ly + j] * (dS[i * Ly + j] - delta) * s.scale;
                } else {
                    Pm[i * Ly + j] = 0.f;
                    dS[i * Ly + j] = 0.f;
                }
            }
        }
    }
    __syncthreads();
    for (int lp = 0; lp < pairs && p0 + lp < npairs; lp++) {
        long p = p0 + lp;
        long n = p / s.H;
        int h = (int)(p % s.H);
        float *Q = sm + lp * per, *dO = Q + Lx * D1, *K = dO + Lx * D1, *V = K + Ly * D1;
        float *Pm = V + Ly * D1, *dS = Pm + Lx * Ly;
        bf16 *dqb = dq + n * s.sq + (long)h * D;
        bf16 *dkb = dk + n * s.sk + (long)h * D, *dvb = dv + n * s.sk + (long)h * D;
        for (int e = threadIdx.x; e < Lx * D; e += blockDim.x) {
            int i = e / D, d = e % D;
            float a = 0.f;
            for (int j = 0; j < Ly; j++)
                a += dS[i * Ly + j] * K[j * D1 + d];
            dqb[(long)i * s.ldq + d] = __float2bfloat16(a);
        }
        for (int e = threadIdx.x; e < Ly * D; e += blockDim.x) {
            int j = e / D, d = e % D;
            float a = 0.f, b = 0.f;
            for (int i = 0; i < Lx; i++) {
                a += dS[i * Ly + j] * Q[i * D1 + d];
                b += Pm[i * Ly + j] * dO[i * D1 + d];
            }
            dkb[(long)j * s.ldk + d] = __float2bfloat16(a);
            dvb[(long)j * s.ldk + d] = __float2bfloat16(b);
        }
    }
}

static int sa_raise(void)
{
    static int raised;
    if (!raised) {
        CU_CHECK(cudaFuncSetAttribute(k_attn_short_fwd, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      SA_SMEM_MAX));
        CU_CHECK(cudaFuncSetAttribute(k_attn_short_bwd, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      SA_SMEM_MAX));
        raised = 1;
    }
    return 0;
}

/* Forward for head widths of 32 or 64 with 16-byte aligned rows: a thread per query row holds
 * its (pre-scaled) q row and output accumulator in registers and streams the pair's keys and
 * values from shared memory (kept bf16 as in memory, read 8 elements per 16-byte load; every
 * thread of a pair reads the same row, a broadcast), with an online softmax. The
 * pair-per-thread-row kernel above spent two shared loads per multiply-add; this one an eighth
 * of one (shared-memory load issue is what bounds these kernels). */
#define AR_THREADS 128
#define AR_SMEM (96 * 1024)

static __device__ __forceinline__ void bf8_to_f(const uint4 &u, float *f)
{
    const __nv_bfloat162 *h = (const __nv_bfloat162 *)&u;
#pragma unroll
    for (int t = 0; t < 4; t++) {
        float2 x = __bfloat1622float2(h[t]);
        f[2 * t] = x.x;
        f[2 * t + 1] = x.y;
    }
}

/* per pair: keys then values, bf16 rows of D, plus 16 bytes so that pairs start on other banks */
static __host__ __device__ int ar_pair_bytes(int Ly, int D) { return 2 * Ly * D * 2 + 16; }

/* dot of a float q row (registers) with a bf16 row in shared memory, 8 elements per load */
template <int DM>
static __device__ __forceinline__ float dot_bf_row(const float *qv, const uint4 *row)
{
    float a0 = 0.f, a1 = 0.f;
#pragma unroll
    for (int c = 0; c < DM / 8; c++) {
        float f[8];
        bf8_to_f(row[c], f);
        a0 += qv[8 * c] * f[0] + qv[8 * c + 1] * f[1] + qv[8 * c + 2] * f[2] + qv[8 * c + 3] * f[3];
        a1 += qv[8 * c + 4] * f[4] + qv[8 * c + 5] * f[5] + qv[8 * c + 6] * f[6] +
              qv[8 * c + 7] * f[7];
    }
    return a0 + a1;
}

/* acc = acc * corr + e * row (bf16 row in shared memory) */
template <int DM>
static __device__ __forceinline__ void axpby_bf_row(float *acc, float corr, float e,
                                                    const uint4 *row)
{
#pragma unroll
    for (int c = 0; c < DM / 8; c++) {
        float f[8];
        bf8_to_f(row[c], f);
#pragma unroll
        for (int t = 0; t < 8; t++)
            acc[8 * c + t] = acc[8 * c + t] * corr + e * f[t];
    }
}

template <int DM>
__global__ void __launch_bounds__(AR_THREADS)
k_attn_row_fwd(tgc_attn_shape s, int ppb, const bf16 *__restrict__ q, const bf16 *__restrict__ k,
               const bf16 *__restrict__ v, bf16 *o, float *lse)
{
    extern __shared__ uint4 smu[];
    char *smb = (char *)smu;
    const int Lx = s.Lx, Ly = s.Ly, PB = ar_pair_bytes(Ly, DM), CH = DM / 8;
    const long npairs = (long)s.N * s.H;
    const long p0 = (long)blockIdx.x * ppb;
    const int np = (int)(npairs - p0 < ppb ? npairs - p0 : ppb);
    const int total = np * 2 * Ly * CH;
    const int lp = threadIdx.x / Lx, i = threadIdx.x % Lx;
    const bool live = lp < np;
    const long p = p0 + lp, n = p / s.H;
    const int h = (int)(p % s.H);
    /* this thread's q row first, in flight while the block copies keys and values */
    uint4 qraw[DM / 8];
    if (live) {
        const uint4 *qr = (const uint4 *)(q + n * s.sq + (long)i * s.ldq + (long)h * DM);
#pragma unroll
        for (int c = 0; c < CH; c++)
            qraw[c] = qr[c];
    }
    /* keys and values copied as they are (bf16), four 16-byte loads in flight per thread */
    for (int c0 = threadIdx.x; c0 < total; c0 += 4 * blockDim.x) {
        uint4 u[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = c0 + e * blockDim.x;
            if (c < total) {
                int ch = c % CH, r = c / CH, row = r % (2 * Ly), lq = r / (2 * Ly);
                long pp = p0 + lq, nn = pp / s.H;
                int hh = (int)(pp % s.H), isv = row >= Ly, j = isv ? row - Ly : row;
                u[e] = *(const uint4 *)((isv ? v : k) + nn * s.sk + (long)j * s.ldk +
                                        (long)hh * DM + ch * 8);
            }
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = c0 + e * blockDim.x;
            if (c < total) {
                int ch = c % CH, r = c / CH;
                *(uint4 *)(smb + (r / (2 * Ly)) * PB + ((r % (2 * Ly)) * DM + ch * 8) * 2) = u[e];
            }
        }
    }
    __syncthreads();
    if (!live)
        return;
    float qv[DM], acc[DM];
#pragma unroll
    for (int c = 0; c < CH; c++) {
        bf8_to_f(qraw[c], qv + 8 * c);
#pragma unroll
        for (int t = 0; t < 8; t++) {
            qv[8 * c + t] *= s.scale;
            acc[8 * c + t] = 0.f;
        }
    }
    const uint4 *K = (const uint4 *)(smb + lp * PB), *V = K + Ly * CH;
    const int jmax = s.causal ? min(Ly, i + s.q_off + 1) : Ly;
    float m = -FLT_MAX, l = 0.f;
    for (int j = 0; j < jmax; j++) {
        float a = dot_bf_row<DM>(qv, K + j * CH), mn = fmaxf(m, a);
        float corr = __expf(m - mn), e = __expf(a - mn);
        l = l * corr + e;
        axpby_bf_row<DM>(acc, corr, e, V + j * CH);
        m = mn;
    }
    const float inv = 1.f / l;
    uint4 *orow = (uint4 *)(o + n * s.so + (long)i * s.ldo + (long)h * DM);
#pragma unroll
    for (int c = 0; c < CH; c++) {
        uint4 u;
        __nv_bfloat162 *hh = (__nv_bfloat162 *)&u;
#pragma unroll
        for (int t = 0; t < 4; t++)
            hh[t] = __floats2bfloat162_rn(acc[8 * c + 2 * t] * inv, acc[8 * c + 2 * t + 1] * inv);
        orow[c] = u;
    }
    if (lse)
        lse[p * Lx + i] = m + logf(l);
}

/* pairs per block for the row kernel (0: it does not take the shape) */
static int ar_pairs(const tgc_attn_shape *s, const void *q, const void *k, const void *v,
                    const void *o)
{
    if ((s->D != 32 && s->D != 64) || s->kv_div != 1 || s->Lx > AR_THREADS ||
        !sa_vec(s, q, k, v, o))
        return 0;
    int p = AR_THREADS / s->Lx, bys = AR_SMEM / ar_pair_bytes(s->Ly, s->D);
    return p < bys ? p : bys;
}

int tgc_attn_fwd_short(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                       const bf16 *v, bf16 *o, float *lse)
{
    {
        long np = (long)s->N * s->H;
        int ppb = np > 0 ? ar_pairs(s, q, k, v, o) : 0;
        static int old = -1; /* TG_CUDA_ATTN_OLD=1: the kernel above (comparisons) */
        if (old < 0) {
            old = getenv("TG_CUDA_ATTN_OLD") != NULL;
            CU_CHECK(cudaFuncSetAttribute(k_attn_row_fwd<32>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, AR_SMEM));
            CU_CHECK(cudaFuncSetAttribute(k_attn_row_fwd<64>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, AR_SMEM));
        }
        if (ppb > 0 && !old) {
            size_t smem = (size_t)ppb * ar_pair_bytes(s->Ly, s->D);
            if (s->D == 32)
                k_attn_row_fwd<32><<<cdiv(np, ppb), AR_THREADS, smem, st>>>(*s, ppb, q, k, v, o,
                                                                          lse);
            else
                k_attn_row_fwd<64><<<cdiv(np, ppb), AR_THREADS, smem, st>>>(*s, ppb, q, k, v, o,
                                                                          lse);
            CU_LAUNCH_CHECK();
            return 0;
        }
    }
    if (sa_raise())
        return -1;
    long np = (long)s->N * s->H;
    if (np <= 0)
        return 0;
    int pairs = sa_pairs(s, 0);
    if (pairs < 1 || s->kv_div != 1)
        return tg_fail("short attention: shape too large");
    size_t smem = (size_t)pairs * sa_pair_floats(s->Lx, s->Ly, s->D, 0) * 4;
    k_attn_short_fwd<<<cdiv(np, pairs), SA_THREADS, smem, st>>>(*s, pairs, sa_vec(s, q, k, v, o),
                                                                 q, k, v, o, lse);
    CU_LAUNCH_CHECK();
    return 0;
}

/* Backward for head width 32 with 16-byte aligned rows (flash-attention-2 order, probabilities
 * recomputed from lse): delta_i = dO_i . O_i by a thread per query row; then a thread per key
 * row j keeps k_j, v_j and its dk, dv accumulators in registers and walks the query rows (Q and
 * dO in shared memory, broadcast), leaving dS in shared memory; then a thread per query row
 * forms dq = dS K. */
#define ARB_SMEM (96 * 1024)

/* per pair: Q, dO, K as bf16 rows of D (as in memory), then dS [Lx, Ly], delta and lse [Lx] in
 * fp32, plus 16 bytes so that pairs start on other banks */
static __host__ __device__ int arb_bf_bytes(int Lx, int Ly, int D)
{
    return (((2 * Lx + Ly) * D * 2) + 15) & ~15;
}
static __host__ __device__ int arb_pair_bytes(int Lx, int Ly, int D)
{
    return arb_bf_bytes(Lx, Ly, D) + (((Lx * Ly + 2 * Lx) * 4 + 15) & ~15) + 16;
}

template <int MINB>
__global__ void __launch_bounds__(AR_THREADS, MINB)
k_attn_row_bwd32(tgc_attn_shape s, int ppb, const bf16 *__restrict__ q,
                 const bf16 *__restrict__ k, const bf16 *__restrict__ v,
                 const bf16 *__restrict__ o, const bf16 *__restrict__ dout,
                 const float *__restrict__ lse, bf16 *dq, bf16 *dk, bf16 *dv)
{
    const int DM = 32, CH = 4;
    extern __shared__ uint4 smu[];
    char *smb = (char *)smu;
    const int Lx = s.Lx, Ly = s.Ly, PB = arb_pair_bytes(Lx, Ly, DM);
    const int TP = Lx > Ly ? Lx : Ly; /* threads per pair */
    const long npairs = (long)s.N * s.H;
    const long p0 = (long)blockIdx.x * ppb;
    const int np = (int)(npairs - p0 < ppb ? npairs - p0 : ppb);
    /* Q, dO, K of each pair copied as they are: [Q: Lx][dO: Lx][K: Ly] bf16 rows of DM */
    const int rows = 2 * Lx + Ly, total = np * rows * CH;
    for (int c0 = threadIdx.x; c0 < total; c0 += 4 * blockDim.x) {
        uint4 u[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = c0 + e * blockDim.x;
            if (c < total) {
                int ch = c % CH, r = c / CH, row = r % rows, lq = r / rows;
                long pp = p0 + lq, nn = pp / s.H;
                int hh = (int)(pp % s.H);
                const bf16 *src;
                if (row < Lx)
                    src = q + nn * s.sq + (long)row * s.ldq;
                else if (row < 2 * Lx)
                    src = dout + nn * s.so + (long)(row - Lx) * s.ldo;
                else
                    src = k + nn * s.sk + (long)(row - 2 * Lx) * s.ldk;
                u[e] = *(const uint4 *)(src + (long)hh * DM + ch * 8);
            }
        }
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int c = c0 + e * blockDim.x;
            if (c < total) {
                int ch = c % CH, r = c / CH;
                *(uint4 *)(smb + (r / rows) * PB + ((r % rows) * DM + ch * 8) * 2) = u[e];
            }
        }
    }
    const int lp = threadIdx.x / TP, t = threadIdx.x % TP;
    const bool live = lp < np;
    const long p = p0 + lp, n = p / s.H;
    const int h = (int)(p % s.H);
    /* this thread's key and value rows (phase 2), in flight during the first phase */
    uint4 kraw[4], vraw[4];
    if (live && t < Ly) {
        const uint4 *kr = (const uint4 *)(k + n * s.sk + (long)t * s.ldk + (long)h * DM);
        const uint4 *vr = (const uint4 *)(v + n * s.sk + (long)t * s.ldk + (long)h * DM);
#pragma unroll
        for (int c = 0; c < CH; c++) {
            kraw[c] = kr[c];
            vraw[c] = vr[c];
        }
    }
    const uint4 *Qs = (const uint4 *)(smb + lp * PB), *dOs = Qs + Lx * CH, *Ks = dOs + Lx * CH;
    float *dS = (float *)(smb + lp * PB + arb_bf_bytes(Lx, Ly, DM));
    float *delta = dS + Lx * Ly, *Ls = delta + Lx;
    __syncthreads();
    /* delta_i = dO_i . O_i */
    if (live && t < Lx) {
        const uint4 *orow = (const uint4 *)(o + n * s.so + (long)t * s.ldo + (long)h * DM);
        float a = 0.f;
#pragma unroll
        for (int c = 0; c < CH; c++) {
            float f[8], g[8];
            bf8_to_f(orow[c], f);
            bf8_to_f(dOs[t * CH + c], g);
#pragma unroll
            for (int e = 0; e < 8; e++)
                a += f[e] * g[e];
        }
        delta[t] = a;
        Ls[t] = lse[p * Lx + t];
    }
    __syncthreads();
    /* a thread per key row: dk_j, dv_j and column j of dS */
    if (live && t < Ly) {
        const int j = t;
        float kv[DM], vv[DM], dka[DM], dva[DM];
#pragma unroll
        for (int c = 0; c < CH; c++) {
            bf8_to_f(kraw[c], kv + 8 * c);
            bf8_to_f(vraw[c], vv + 8 * c);
        }
#pragma unroll
        for (int d = 0; d < DM; d++)
            dka[d] = dva[d] = 0.f;
        int i0 = s.causal ? max(0, j - s.q_off) : 0;
        for (int i = i0; i < Lx; i++) {
            float a = dot_bf_row<DM>(kv, Qs + i * CH), b = dot_bf_row<DM>(vv, dOs + i * CH);
            float pr = __expf(a * s.scale - Ls[i]);
            float ds = pr * (b - delta[i]);
            dS[i * Ly + j] = ds;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                float fq[8], fd[8];
                bf8_to_f(Qs[i * CH + c], fq);
                bf8_to_f(dOs[i * CH + c], fd);
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    dva[8 * c + e] += pr * fd[e];
                    dka[8 * c + e] += ds * fq[e];
                }
            }
        }
        uint4 *dkr = (uint4 *)(dk + n * s.sk + (long)j * s.ldk + (long)h * DM);
        uint4 *dvr = (uint4 *)(dv + n * s.sk + (long)j * s.ldk + (long)h * DM);
#pragma unroll
        for (int c = 0; c < CH; c++) {
            uint4 u, w;
            __nv_bfloat162 *hu = (__nv_bfloat162 *)&u, *hw = (__nv_bfloat162 *)&w;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                hu[e] = __floats2bfloat162_rn(dka[8 * c + 2 * e] * s.scale,
                                              dka[8 * c + 2 * e + 1] * s.scale);
                hw[e] = __floats2bfloat162_rn(dva[8 * c + 2 * e], dva[8 * c + 2 * e + 1]);
            }
            dkr[c] = u;
            dvr[c] = w;
        }
    }
    __syncthreads();
    /* a thread per query row: dq_i = scale * sum_j dS_ij k_j */
    if (live && t < Lx) {
        const int i = t;
        float acc[DM];
#pragma unroll
        for (int d = 0; d < DM; d++)
            acc[d] = 0.f;
        int jmax = s.causal ? min(Ly, i + s.q_off + 1) : Ly;
        for (int j = 0; j < jmax; j++)
            axpby_bf_row<DM>(acc, 1.f, dS[i * Ly + j], Ks + j * CH);
        uint4 *dqr = (uint4 *)(dq + n * s.sq + (long)i * s.ldq + (long)h * DM);
#pragma unroll
        for (int c = 0; c < CH; c++) {
            uint4 u;
            __nv_bfloat162 *hu = (__nv_bfloat162 *)&u;
#pragma unroll
            for (int e = 0; e < 4; e++)
                hu[e] = __floats2bfloat162_rn(acc[8 * c + 2 * e] * s.scale,
                                              acc[8 * c + 2 * e + 1] * s.scale);
            dqr[c] = u;
        }
    }
}

static int arb_pairs(const tgc_attn_shape *s, const void *q, const void *k, const void *v,
                     const void *o, const void *dout)
{
    int tp = s->Lx > s->Ly ? s->Lx : s->Ly;
    if (s->D != 32 || s->kv_div != 1 || tp > AR_THREADS || !o || !sa_vec(s, q, k, v, o) ||
        !sa_vec(s, dout, NULL, NULL, NULL))
        return 0;
    int p = AR_THREADS / tp, bys = ARB_SMEM / arb_pair_bytes(s->Lx, s->Ly, s->D);
    return p < bys ? p : bys;
}

int tgc_attn_bwd_short(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                       const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse, bf16 *dq,
                       bf16 *dk, bf16 *dv)
{
    {
        long np = (long)s->N * s->H;
        int ppb = np > 0 ? arb_pairs(s, q, k, v, o, dout) : 0;
        /* TG_CUDA_ATTN_BWD_OCC=4: the variant compiled for 4 blocks per SM (128 registers,
         * a few spills) instead of 3 */
        static int old = -1, raised = 0, occ4 = 0;
        if (old < 0) {
            old = getenv("TG_CUDA_ATTN_OLD") != NULL;
            const char *e = getenv("TG_CUDA_ATTN_BWD_OCC");
            occ4 = e && atoi(e) == 4;
        }
        if (ppb > 0 && !old) {
            if (!raised) {
                CU_CHECK(cudaFuncSetAttribute(k_attn_row_bwd32<1>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              ARB_SMEM));
                CU_CHECK(cudaFuncSetAttribute(k_attn_row_bwd32<4>,
                                              cudaFuncAttributeMaxDynamicSharedMemorySize,
                                              ARB_SMEM));
                raised = 1;
            }
            size_t smem = (size_t)ppb * arb_pair_bytes(s->Lx, s->Ly, s->D);
            if (occ4)
                k_attn_row_bwd32<4><<<cdiv(np, ppb), AR_THREADS, smem, st>>>(
                    *s, ppb, q, k, v, o, dout, lse, dq, dk, dv);
            else
                k_attn_row_bwd32<1><<<cdiv(np, ppb), AR_THREADS, smem, st>>>(
                    *s, ppb, q, k, v, o, dout, lse, dq, dk, dv);
            CU_LAUNCH_CHECK();
            return 0;
        }
    }
    long np = (long)s->N * s->H;
    if (np <= 0)
        return 0;
    int pairs = sa_pairs(s, 1);
    if (pairs < 1 || s->kv_div != 1)
        return tg_fail("short attention: shape too large");
    if (sa_raise())
        return -1;
    size_t smem = (size_t)pairs * sa_pair_floats(s->Lx, s->Ly, s->D, 1) * 4;
    k_attn_short_bwd<<<cdiv(np, pairs), SA_THREADS, smem, st>>>(
        *s, pairs, sa_vec(s, q, k, v, dout), q, k, v, dout, lse, dq, dk, dv);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- attention (shared keys)
 * Decoding: the K samples of a position query the same cross-attention keys. One block per
 * (key sequence, head), a thread per query row (q and the output accumulator in registers),
 * keys and values streamed through shared memory in tiles of KVS_TILE rows that every thread
 * reads at the same address (broadcast); online softmax. */

#define KVS_TILE 64

template <int DM>
__global__ void k_attn_kvs_fwd(tgc_attn_shape s, const bf16 *__restrict__ q,
                               const bf16 *__restrict__ k, const bf16 *__restrict__ v, bf16 *o,
                               float *lse)
{
    extern __shared__ float sm[];
    const int D = s.D;
    float *Ks = sm, *Vs = sm + KVS_TILE * D;
    long nkv = blockIdx.x / s.H;
    int h = (int)(blockIdx.x % s.H);
    int Qn = s.kv_div * s.Lx;
    const bf16 *kb = k + nkv * s.sk + (long)h * D, *vb = v + nkv * s.sk + (long)h * D;
    for (int qb = 0; qb < Qn; qb += blockDim.x) {
        int qi = qb + threadIdx.x;
        bool act = qi < Qn;
        long n = nkv * s.kv_div + (act ? qi / s.Lx : 0);
        int i = act ? qi % s.Lx : 0;
        float qv[DM], acc[DM];
        const bf16 *qr = q + n * s.sq + (long)i * s.ldq + (long)h * D;
#pragma unroll
        for (int d = 0; d < DM; d++) {
            qv[d] = act && d < D ? __bfloat162float(qr[d]) * s.scale : 0.f;
            acc[d] = 0.f;
        }
        int jmax = s.causal ? min(s.Ly, i + s.q_off + 1) : s.Ly;
        float m = -FLT_MAX, l = 0.f;
        for (int j0 = 0; j0 < s.Ly; j0 += KVS_TILE) {
            int tk = min(KVS_TILE, s.Ly - j0);
            __syncthreads();
            for (int e = threadIdx.x; e < tk * D; e += blockDim.x) {
                int j = e / D, d = e % D;
                Ks[j * D + d] = __bfloat162float(kb[(long)(j0 + j) * s.ldk + d]);
                Vs[j * D + d] = __bfloat162float(vb[(long)(j0 + j) * s.ldk + d]);
            }
            __syncthreads();
            if (!act)
                continue;
            int te = min(tk, jmax - j0);
            for (int j = 0; j < te; j++) {
                float a = 0.f;
#pragma unroll
                for (int d = 0; d < DM; d++)
                    if (d < D)
                        a += qv[d] * Ks[j * D + d];
                float mn = fmaxf(m, a);
                float corr = __expf(m - mn), e = __expf(a - mn);
                l = l * corr + e;
#pragma unroll
                for (int d = 0; d < DM; d++)
                    if (d < D)
                        acc[d] = acc[d] * corr + e * Vs[j * D + d];
                m = mn;
            }
        }
        if (act) {
            bf16 *orow = o + n * s.so + (long)i * s.ldo + (long)h * D;
            float inv = 1.f / l;
#pragma unroll
            for (int d = 0; d < DM; d++)
                if (d < D)
                    orow[d] = __float2bfloat16(acc[d] * inv);
            if (lse)
                lse[(n * s.H + h) * s.Lx + i] = m + logf(l);
        }
    }
}

int tgc_attn_fwd_kvshare(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                         const bf16 *v, bf16 *o, float *lse)
{
    long nkv = (long)s->N / s->kv_div;
    if (nkv * s->kv_div != s->N)
        return tg_fail("shared-key attention: N %d not a multiple of kv_div %d", s->N, s->kv_div);
    if (nkv <= 0)
        return 0;
    int Qn = s->kv_div * s->Lx;
    int th = Qn >= 256 ? 256 : ((Qn + 31) / 32) * 32;
    size_t smem = 2 * (size_t)KVS_TILE * s->D * sizeof(float);
    unsigned grid = (unsigned)(nkv * s->H);
    if (s->D <= 32)
        k_attn_kvs_fwd<32><<<grid, th, smem, st>>>(*s, q, k, v, o, lse);
    else if (s->D <= 64)
        k_attn_kvs_fwd<64><<<grid, th, smem, st>>>(*s, q, k, v, o, lse);
    else if (s->D <= 128) {
        static int raised;
        if (!raised) {
            CU_CHECK(cudaFuncSetAttribute(k_attn_kvs_fwd<128>,
                                          cudaFuncAttributeMaxDynamicSharedMemorySize, 96 * 1024));
            raised = 1;
        }
        k_attn_kvs_fwd<128><<<grid, th, smem, st>>>(*s, q, k, v, o, lse);
    } else
        return tg_fail("attention head dim %d > 128 unsupported", s->D);
    CU_LAUNCH_CHECK();
    return 0;
}

/* ---------------------------------------------------------------- batched-GEMM attention aids */

__global__ void k_softmax_fwd(const float *s, bf16 *p, long rows, int Lx, int Ly, float scale,
                              int causal)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    int i = (int)(r % Lx);
    int jmax = causal ? min(Ly, i + 1) : Ly;
    const float *x = s + r * Ly;
    float m = -FLT_MAX;
    for (int j = lane; j < jmax; j += WARP)
        m = fmaxf(m, x[j] * scale);
    m = warp_max(m);
    float sum = 0.f;
    for (int j = lane; j < jmax; j += WARP)
        sum += __expf(x[j] * scale - m);
    float inv = 1.f / warp_sum(sum);
    for (int j = lane; j < Ly; j += WARP)
        p[r * Ly + j] = __float2bfloat16(j < jmax ? __expf(x[j] * scale - m) * inv : 0.f);
}

int tgc_softmax_fwd(cudaStream_t st, const float *s, bf16 *p, long batch, int Lx, int Ly,
                    float scale, int causal)
{
    long rows = batch * Lx;
    if (rows <= 0)
        return 0;
    k_softmax_fwd<<<cdiv(rows, 8), 256, 0, st>>>(s, p, rows, Lx, Ly, scale, causal);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_softmax_bwd(const bf16 *p, const float *dp, bf16 *ds, long rows, int Ly,
                              float scale)
{
    long r = (long)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    int lane = threadIdx.x % WARP;
    if (r >= rows)
        return;
    float dot = 0.f;
    for (int j = lane; j < Ly; j += WARP)
        dot += __bfloat162float(p[r * Ly + j]) * dp[r * Ly + j];
    dot = warp_sum(dot);
    for (int j = lane; j < Ly; j += WARP) {
        float pj = __bfloat162float(p[r * Ly + j]);
        ds[r * Ly + j] = __float2bfloat16(pj * (dp[r * Ly + j] - dot) * scale);
    }
}

int tgc_softmax_bwd(cudaStream_t st, const bf16 *p, const float *dp, bf16 *ds, long batch, int Lx,
                    int Ly, float scale)
{
    long rows = batch * Lx;
    if (rows <= 0)
        return 0;
    k_softmax_bwd<<<cdiv(rows, 8), 256, 0, st>>>(p, dp, ds, rows, Ly, scale);
    CU_LAUNCH_CHECK();
    return 0;
}

__global__ void k_heads(const bf16 *x, long sseq, long ld, bf16 *y, int N, int L, int H, int D,
                        int merge)
{
    long total = (long)N * L * H * D;
    for (long idx = blockIdx.x * (long)blockDim.x + threadIdx.x; idx < total;
         idx += (long)gridDim.x * blockDim.x) {
        /* idx enumerates [N, H, L, D] */
        int d = (int)(idx % D);
        int l = (int)((idx / D) % L);
        int h = (int)((idx / ((long)D * L)) % H);
        long n = idx / ((long)D * L * H);
        long xo = n * sseq + (long)l * ld + (long)h * D + d;
        if (merge)
            ((bf16 *)x)[xo] = y[idx];
        else
            y[idx] = x[xo];
    }
}

int tgc_heads_split(cudaStream_t st, const bf16 *x, long sseq, long ld, bf16 *y, int N, int L,
                    int H, int D)
{
    long t = (long)N * L * H * D;
    if (t <= 0)
        return 0;
    k_heads<<<grid_for(t), 256, 0, st>>>(x, sseq, ld, y, N, L, H, D, 0);
    CU_LAUNCH_CHECK();
    return 0;
}

int tgc_heads_merge(cudaStream_t st, const bf16 *y, bf16 *x, long sseq, long ld, int N, int L,
                    int H, int D)
{
    long t = (long)N * L * H * D;
    if (t <= 0)
        return 0;
    k_heads<<<grid_for(t), 256, 0, st>>>(x, sseq, ld, (bf16 *)y, N, L, H, D, 1);
    CU_LAUNCH_CHECK();
    return 0;
}
