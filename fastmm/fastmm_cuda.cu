// fastmm CUDA path: fused block-combination kernels around batched cuBLAS products.
//
// One multiplication with an effective factorization (n, m, p, R) is four launches per chunk of
// terms (all R terms in one chunk when the workspace allows):
//   1. combine A: every A block read once from DRAM, all chunk operands S_r written;
//   2. combine B: likewise for T_r;
//   3. one strided-batched GEMM: M_r = S_r T_r for the chunk;
//   4. combine C: every M_r read once, every C block written once (accumulated after chunk 1).
// A combination kernel stages a tile of every input block in shared memory, then computes every
// output of the tile from there: DRAM traffic is (inputs + outputs) blocks, not nnz blocks.
// With direct operands (fastmm_int.h), terms whose operand is one block times +-2^k get no
// combined operand: the operands are laid out with the inputs' leading dimensions and step 3 is
// one pointer-array batched GEMM that reads those blocks in place.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda.h> // green contexts' types; the entry points are looked up at run time
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cuda/barrier>
#include <cuda/ptx>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "common/err.h"
}
#include "fastmm/fastmm_int.h"

#define CK(call)                                                                             \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess)                                                               \
            return tg_fail("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
    } while (0)
#define CB(call)                                                                             \
    do {                                                                                     \
        cublasStatus_t s_ = (call);                                                          \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                     \
            return tg_fail("%s:%d: %s: %s", __FILE__, __LINE__, #call,                       \
                           cublasGetStatusString(s_));                                       \
    } while (0)

#define MAX_PANELS 16
// per panel: A combined, products done; then start, end, B combined (the early start), with
// green contexts (run_green) the caller's work queued / the products' and the combinations'
// streams done, and the other products stream's start (opts.overlap, opts.priority 2)
#define NEVENTS (2 * MAX_PANELS + 5)
#define EV_GREEN (2 * MAX_PANELS + 3)
#define EV_XS (2 * MAX_PANELS + 4)

// GEMM kernel selection (fp32): cuBLAS's default heuristic picks one kernel per shape, and for
// the block products' shapes it is not always the fastest; at tuning time the default and a few
// of cuBLASLt's heuristic candidates are timed on the real operands, the fastest is kept.
#define LT_MAX_CAND 16
#define LT_CACHE 256
#define LT_WS ((size_t)64 << 20) // split-K candidates need workspace
// Enumerated configurations (lt_enumerate): at most this many per shape; all of them are timed
// where that costs at most the budget (two runs each at the default kernel's time), else they
// are screened on fewer rows and only the LT_ENUM_FINAL fastest there run on the shape.
#define LT_ENUM_MAX 512
#define LT_ENUM_BUDGET_MS 3000.0
#define LT_ENUM_FINAL 3

// One GEMM shape: row-major C (M x N) = A (M x K) B (K x N), `batch` of them with strides, and
// the operands' alignments (a kernel may need more than 4 bytes).
struct lt_key {
    long M, N, K, lda, ldb, ldc, sA, sB, sC, batch;
    long alA, alB, alC;
    long ptr; // 1: pointer-array batch (A, B, C are device arrays of pointers)
};

struct lt_entry {
    lt_key k;
    int use_lt;   // 0: cuBLAS's default (cublasSgemm*) was the fastest
    int ncand;    // candidates timed, the default included
    int pick;     // index of the fastest among cuBLASLt's candidates (-1: the default)
    int pedantic; // cuBLASLt compute type: CUBLAS_COMPUTE_32F_PEDANTIC (1) or _32F (0)
    int reported;
    int nenum, enum_pick; // enumerated configurations timed, index of the fastest (-1: none won)
    int nvalid;           // configurations cuBLASLt accepted for the shape (>= nenum)
    long enum_rows;       // rows they were screened on (k.M: not screened, timed on the shape)
    float t_default, t_best; // ms, one timed run each after a warm-up
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    // balanced waves (opts.tail, lt_tail_search): the last `tail` rows by sub[1]'s small-tile
    // kernel, the others by sub[0] (the entry's kernel); searched once per entry
    long tail;
    int tail_done, ntail;    // searched; splits timed
    float t_whole, t_tail;   // ms: the whole kernel again and the kept split, at that search
    struct lt_entry *sub;    // [2] while tail > 0, else NULL
};

struct fastmm_cuda {
    cublasHandle_t h;
    cudaStream_t s;  // the caller's view: block products run here
    cudaStream_t s2; // combinations, overlapping the products of other panels
    cudaStream_t s3; // the same at the device's highest priority (opts.priority)
    cudaStream_t s4; // the products of odd panels (opts.overlap)
    cudaStream_t s5; // the products at the device's highest priority (opts.priority 2)
    cudaEvent_t ev[NEVENTS];
    void *ws;
    size_t ws_size;
    // kernel selection: created on the first search
    cublasLtHandle_t lt;
    void *lt_ws;
    lt_entry *lte;
    int nlte;
    int search; // candidates to time for shapes not seen yet (set by tuning), 0 = none
    int configs; // also time up to this many enumerated configurations (fastmm_cuda_gemm_configs)
    double enum_budget_ms; // ... all of them only where the default's time says they cost this
    // phase timing (fastmm_cuda_phases)
    cudaEvent_t tev[5];
    int prof;
    int prof_cap; // phases: thread blocks of every streaming combination (opts.comb_blocks > 0)
    double prof_bytes[4];
    // green contexts (opts.green; green_make): products on gp, the combinations beside them on
    // gc, each stream with events of its own context; green_sms: the combinations' SMs asked
    // for (0: none made)
    int green_sms;
    CUgreenCtx gctx[2];
    cudaStream_t gp, gc;
    cudaEvent_t gpev[NEVENTS], gcev[NEVENTS], gtev[2];
    int green_on; // run_levels is inside run_green (c->s is gp)
    // balanced waves (opts.tail): the split's small tiles on sl (lowest priority), the rest on
    // sh (highest); tail_on: the configuration running now asks for them; tail_force (tests):
    // keep the fastest split even where the whole kernel is faster, and a cuBLASLt kernel even
    // where cuBLAS's default is; tring: shifted pointer arrays of pointer-array splits
    cudaStream_t sl, sh;
    cudaEvent_t tlev[3];
    int tail_on, tail_force;
    void **tring;
    int tring_pos;
};

static void lt_entry_release(lt_entry *e);

// Device copy of a level's three maps (one allocation), and for direct operands the blocks
// read in place, the products written into C and their cells, the C blocks that accumulate
// (da, db, dc, mc, cacc: fastmm_int.h; NULL otherwise). dn[t]: map t as a dense row-major
// [nout][nin] matrix (the streaming combination kernel's coefficients).
#define DEV_INTS 5
struct dev_level {
    void *mem;
    const int *ptr[3], *idx[3];
    const float *val[3];
    const float *dn[3];
    int nin[3], nout[3];
    const int *da, *db, *dc, *mc, *cacc;
};

extern "C" void fastmm_cuda_level_release(void *dev)
{
    dev_level *d = (dev_level *)dev;
    cudaFree(d->mem);
    free(d);
}

static int maps_upload(cudaStream_t st, void **devp, const fastmm_csr *cs[3],
                       const int *ints[DEV_INTS], const int nints[DEV_INTS])
{
    if (*devp) return 0;
    size_t tot = 0;
    for (int t = 0; t < DEV_INTS; t++)
        tot += sizeof(int) * (size_t)nints[t] + 16;
    for (int t = 0; t < 3; t++)
        tot += sizeof(int) * (cs[t]->nout + 1 + cs[t]->nnz) + sizeof(float) * cs[t]->nnz +
               sizeof(float) * (size_t)cs[t]->nout * cs[t]->nin + 80;
    dev_level *d = (dev_level *)calloc(1, sizeof *d);
    if (!d) return tg_fail("out of memory");
    char *host = (char *)malloc(tot);
    if (!host || cudaMalloc(&d->mem, tot) != cudaSuccess) {
        free(host);
        free(d);
        return tg_fail("fastmm: cannot allocate %zu bytes of coefficients on the device", tot);
    }
    size_t off = 0;
    for (int t = 0; t < 3; t++) {
        size_t a = sizeof(int) * (cs[t]->nout + 1), b = sizeof(int) * cs[t]->nnz,
               c = sizeof(float) * cs[t]->nnz;
        memcpy(host + off, cs[t]->ptr, a);
        d->ptr[t] = (const int *)((char *)d->mem + off);
        off += (a + 15) / 16 * 16;
        memcpy(host + off, cs[t]->idx, b);
        d->idx[t] = (const int *)((char *)d->mem + off);
        off += (b + 15) / 16 * 16;
        memcpy(host + off, cs[t]->val, c);
        d->val[t] = (const float *)((char *)d->mem + off);
        off += (c + 15) / 16 * 16;
        size_t dn = sizeof(float) * (size_t)cs[t]->nout * cs[t]->nin;
        float *D = (float *)(host + off);
        memset(D, 0, dn);
        for (int o = 0; o < cs[t]->nout; o++)
            for (int e = cs[t]->ptr[o]; e < cs[t]->ptr[o + 1]; e++)
                D[(size_t)o * cs[t]->nin + cs[t]->idx[e]] = cs[t]->val[e];
        d->dn[t] = (const float *)((char *)d->mem + off);
        d->nin[t] = cs[t]->nin;
        d->nout[t] = cs[t]->nout;
        off += (dn + 15) / 16 * 16;
    }
    const int **dst[DEV_INTS] = {&d->da, &d->db, &d->dc, &d->mc, &d->cacc};
    for (int t = 0; t < DEV_INTS; t++) {
        if (!ints[t]) continue;
        memcpy(host + off, ints[t], sizeof(int) * nints[t]);
        *dst[t] = (const int *)((char *)d->mem + off);
        off += (sizeof(int) * nints[t] + 15) / 16 * 16;
    }
    // on the context's stream, and waited for: a plain cudaMemcpy from pageable memory may return
    // before its DMA is done, and the non-blocking streams would not wait for it; a plan may
    // later run on another context's streams (once per plan level). Not a device-wide sync,
    // which would fail while some other stream of the process is being captured into a graph.
    cudaError_t e = cudaMemcpyAsync(d->mem, host, off, cudaMemcpyHostToDevice, st);
    if (e == cudaSuccess) e = cudaStreamSynchronize(st);
    free(host);
    if (e != cudaSuccess) {
        cudaFree(d->mem);
        free(d);
        return tg_fail("fastmm: coefficient upload: %s", cudaGetErrorString(e));
    }
    *devp = d;
    return 0;
}

static int level_upload(cudaStream_t st, fastmm_level *l)
{
    const fastmm_csr *cs[3] = {&l->a, &l->b, &l->c};
    const int *ints[DEV_INTS] = {NULL, NULL, NULL, NULL, NULL};
    const int nints[DEV_INTS] = {0, 0, 0, 0, 0};
    return maps_upload(st, &l->dev, cs, ints, nints);
}

// The C side as the direct path's combination reads it: cg (cells, written products left out)
static int direct_upload(cudaStream_t st, fastmm_direct *d)
{
    const fastmm_csr *cs[3] = {&d->a, &d->b, &d->cg};
    const int *ints[DEV_INTS] = {d->da, d->db, d->dc, d->mc, d->cacc};
    int R = d->a.nout;
    const int nints[DEV_INTS] = {R, R, R, R, d->c.nout};
    return maps_upload(st, &d->dev, cs, ints, nints);
}

// ---- combination kernel ----

// A set of equally shaped blocks: either the grid over a matrix (gw > 0: block b is grid cell
// (b / gw, b % gw), element (x, y) at row (b/gw)*bh + x, column (b%gw)*bw + y, zero outside
// rows x cols), or a stack (gw == 0: block b at base + b*bstride, always full).
struct bset {
    void *base;
    long ld, rows, cols, bstride;
    int gw;
    int vec; // 4-element vector access allowed (alignment checked on the host)
};

__device__ __forceinline__ float4 ld4(const float *p) { return *(const float4 *)p; }
__device__ __forceinline__ float4 ld4(const __nv_bfloat16 *p)
{
    uint2 u = *(const uint2 *)p;
    __nv_bfloat162 a = *(__nv_bfloat162 *)&u.x, b = *(__nv_bfloat162 *)&u.y;
    float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
    return make_float4(fa.x, fa.y, fb.x, fb.y);
}
__device__ __forceinline__ float ld1(const float *p) { return *p; }
__device__ __forceinline__ float ld1(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void st4(float *p, float4 v) { *(float4 *)p = v; }
__device__ __forceinline__ void st4(__nv_bfloat16 *p, float4 v)
{
    __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
    uint2 u;
    u.x = *(unsigned *)&a;
    u.y = *(unsigned *)&b;
    *(uint2 *)p = u;
}
__device__ __forceinline__ void st1(float *p, float v) { *p = v; }
__device__ __forceinline__ void st1(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// Element address and how many of the 4 elements from (x, y) on lie inside the block's data.
template <typename T>
__device__ __forceinline__ T *elem(const bset &s, int b, long bh, long bw, long x, long y,
                                   int *nvalid)
{
    T *base = (T *)s.base;
    if (s.gw == 0) {
        long left = bw - y;
        *nvalid = left < 4 ? (int)left : 4;
        return base + b * s.bstride + x * s.ld + y;
    }
    long r = (long)(b / s.gw) * bh + x, c = (long)(b % s.gw) * bw + y;
    long left = bw - y, lc = s.cols - c;
    if (lc < left) left = lc;
    if (r >= s.rows || left <= 0) {
        *nvalid = 0;
        return base;
    }
    *nvalid = left < 4 ? (int)left : 4;
    return base + r * s.ld + c;
}

// How an output is stored: bit 0, added to what it holds; bit 1, left alone when no input of
// the launch reaches it. mode 0: out = (0 for an output without entries); 1: out += (none:
// untouched); 2: out = (none: untouched, e.g. the operand of a term read in place); 3: per
// output, as 1 where acc[o] (a product was written into the C block) and as 0 elsewhere.
__host__ __device__ __forceinline__ int out_flags(int mode, const int *acc, int o)
{
    return mode == 1 ? 3 : mode == 2 ? 2 : mode == 3 && acc[o] ? 3 : 0;
}

// Tile: rt rows x tp columns of every block; out o (o < nout) = sum over its entries e with
// in-range input idx[e] - i0 in [0, nin) of val[e] * input, stored as out_flags says.
template <typename Tin, typename Tout>
__global__ void __launch_bounds__(256) combine_kernel(bset in, bset out, long bh, long bw, int nin,
                                                     int i0, int nout, int o0,
                                                     const int *__restrict__ ptr,
                                                     const int *__restrict__ idx,
                                                     const float *__restrict__ val, int tp, int rt,
                                                     int mode, const int *__restrict__ oacc,
                                                     long ntiles_c, long xb, long xe)
{
    extern __shared__ float4 sm[]; // [nin][rt * tp / 4]
    const int tpv = tp / 4, pv = rt * tpv;
    long tile = blockIdx.x;
    long x0 = xb + (tile / ntiles_c) * rt, y0 = (tile % ntiles_c) * tp;

    for (int it = threadIdx.x; it < nin * pv; it += blockDim.x) {
        int b = it / pv, q = it % pv;
        long x = x0 + q / tpv, y = y0 + 4 * (q % tpv);
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (x < xe && y < bw) {
            int nv;
            const Tin *pp = elem<Tin>(in, b, bh, bw, x, y, &nv);
            if (nv == 4 && in.vec) {
                v = ld4(pp);
            } else {
                if (nv > 0) v.x = ld1(pp);
                if (nv > 1) v.y = ld1(pp + 1);
                if (nv > 2) v.z = ld1(pp + 2);
                if (nv > 3) v.w = ld1(pp + 3);
            }
        }
        sm[b * pv + q] = v;
    }
    __syncthreads();

    for (int it = threadIdx.x; it < nout * pv; it += blockDim.x) {
        int o = it / pv, q = it % pv;
        long x = x0 + q / tpv, y = y0 + 4 * (q % tpv);
        if (x >= xe || y >= bw) continue;
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
        int e1 = __ldg(ptr + o0 + o + 1);
        bool any = false;
        for (int e = __ldg(ptr + o0 + o); e < e1; e++) {
            int i = __ldg(idx + e) - i0;
            if (i < 0 || i >= nin) continue;
            float a = __ldg(val + e);
            float4 v = sm[i * pv + q];
            acc.x += a * v.x;
            acc.y += a * v.y;
            acc.z += a * v.z;
            acc.w += a * v.w;
            any = true;
        }
        const int fl = out_flags(mode, oacc, o0 + o);
        if ((fl & 2) && !any) continue;
        int nv;
        Tout *pp = elem<Tout>(out, o, bh, bw, x, y, &nv);
        if (nv == 4 && out.vec) {
            if (fl & 1) {
                float4 c = ld4(pp);
                acc.x += c.x;
                acc.y += c.y;
                acc.z += c.z;
                acc.w += c.w;
            }
            st4(pp, acc);
        } else {
            float a4[4] = {acc.x, acc.y, acc.z, acc.w};
            for (int t = 0; t < nv; t++)
                st1(pp + t, (fl & 1) ? a4[t] + ld1(pp + t) : a4[t]);
        }
    }
}

template <typename Tin, typename Tout>
static int combine_staged(cudaStream_t s, const bset &in, const bset &out, long bh, long bw,
                          int nin, int i0, int nout, int o0, const int *ptr, const int *idx,
                          const float *val, int mode, const int *acc, long xb, long xe)
{
    // Tile width: 128 columns when nin tiles fit in 48 KB of shared memory, narrower otherwise;
    // rows per tile so that a tile stages about 16 KB (enough loads in flight per block).
    int tp = 128;
    while (tp > 4 && (size_t)nin * tp * 4 > 48 * 1024) tp /= 2;
    while (tp > 4 && tp / 2 >= bw) tp /= 2;
    int rt = (int)(4096 / ((long)nin * tp));
    if (rt < 1) rt = 1;
    if (rt > 8) rt = 8;
    if (rt > xe - xb) rt = (int)(xe - xb);
    long ntc = (bw + tp - 1) / tp, ntr = (xe - xb + rt - 1) / rt;
    size_t smem = (size_t)nin * rt * tp * sizeof(float);
    combine_kernel<Tin, Tout><<<(unsigned)(ntr * ntc), 256, smem, s>>>(
        in, out, bh, bw, nin, i0, nout, o0, ptr, idx, val, tp, rt, mode, acc, ntc, xb, xe);
    CK(cudaGetLastError());
    return 0;
}

// ---- streaming combination kernel (opts.comb 1) ----
//
// The staged kernel above spends most of its issue slots on index arithmetic: per 16 bytes
// moved, runtime divisions (tile, block grid cell, 64-bit element offsets) and a CSR walk with
// dependent global loads; it runs at the same speed on the H100 and the H200 (2.0-2.5 TB/s),
// i.e. it is bound by instructions and latency, not by DRAM. This one keeps the small side of
// the map in registers: a thread owns one column vector (4 elements, or 1 where alignment,
// leading dimension or size forbid vectors) of a block row and walks rows with a fixed stride;
//   expand (A, B: n*m inputs -> the chunk's operands): the K inputs are loaded at once
//     (read-only path), then every output is a dense K-term sum stored at once (evict-first);
//   contract (C: the chunk's products -> n*p C blocks): K accumulators, the inputs streamed in
//     groups of 8 loads in flight.
// Coefficients (dense, zero-padded to K), block offsets and bounds are staged in shared memory
// once per thread block, so the per-element work is an address add, the loads, the FMAs and a
// store. The sums run over the same terms in the same order as the staged kernel's (zero terms
// add nothing), so both give the same result up to the sign of zeros.

#define SK_THREADS 256
#define SK_RPT 4 // rows per thread (amortizes the prologue)
#define SK_U 8   // contract: inputs loaded per group
#define SK_SMEM (48 * 1024)

struct sk_args {
    bset in, out;
    long bh, bw;
    int nsmall, nbig;  // expand: nin, nout; contract: nout, nin (this launch)
    int i0, o0;        // first input / output of the launch in the map's numbering
    const float *dn;   // the map, dense [nout_total][ld_dn]
    int ld_dn;
    int mode;
    const int *acc;    // mode 3: per output of the map (out_flags)
    long xb, xe;
    long ncv;          // column vectors per block row
    int lgtx;          // log2 of the threads per row
};

// CS (deep kernel): evict-first loads (ld.global.cs), since every input is read once and the
// products running beside want L2 for their tiles; else the read-only path.
template <bool CS, typename T> __device__ __forceinline__ T sk_ldx(const T *p)
{
    if (CS) return __ldcs(p);
    return __ldg(p);
}
template <typename T, bool CS = false> __device__ __forceinline__ float4 sk_ld(const T *p, int w)
{
    if (w == 4) {
        if (sizeof(T) == 4) return sk_ldx<CS>((const float4 *)p);
        uint2 u = sk_ldx<CS>((const uint2 *)p);
        __nv_bfloat162 a = *(__nv_bfloat162 *)&u.x, b = *(__nv_bfloat162 *)&u.y;
        float2 fa = __bfloat1622float2(a), fb = __bfloat1622float2(b);
        return make_float4(fa.x, fa.y, fb.x, fb.y);
    }
    if (sizeof(T) == 4) return make_float4(sk_ldx<CS>((const float *)p), 0.f, 0.f, 0.f);
    unsigned short h = sk_ldx<CS>((const unsigned short *)p);
    return make_float4(__bfloat162float(*(const __nv_bfloat16 *)&h), 0.f, 0.f, 0.f);
}

__device__ __forceinline__ void sk_st(float *p, float4 v, int w)
{
    if (w == 4) __stcs((float4 *)p, v);
    else __stcs(p, v.x);
}
__device__ __forceinline__ void sk_st(__nv_bfloat16 *p, float4 v, int w)
{
    if (w == 4) {
        __nv_bfloat162 a = __floats2bfloat162_rn(v.x, v.y), b = __floats2bfloat162_rn(v.z, v.w);
        uint2 u;
        u.x = *(unsigned *)&a;
        u.y = *(unsigned *)&b;
        __stcs((uint2 *)p, u);
    } else *p = __float2bfloat16_rn(v.x);
}
/* Stores v, or v plus what the output holds (accumulate: out_flags bit 0). */
template <typename T>
__device__ __forceinline__ void sk_st_acc(T *p, float4 v, int w, bool accumulate)
{
    if (accumulate) {
        float4 o = w == 4 ? ld4(p) : make_float4(ld1(p), 0.f, 0.f, 0.f);
        v.x += o.x;
        v.y += o.y;
        v.z += o.z;
        v.w += o.w;
    }
    sk_st(p, v, w);
}

// Offset of block b of a set and how many rows / columns of it hold data (stacks: all).
__host__ __device__ __forceinline__ void sk_block(const bset &s, int b, long bh, long bw, long *off,
                                         int *rl, int *cl)
{
    if (s.gw == 0) {
        *off = (long)b * s.bstride;
        *rl = (int)bh;
        *cl = (int)bw;
        return;
    }
    long r0 = (long)(b / s.gw) * bh, c0 = (long)(b % s.gw) * bw;
    long nr = s.rows - r0, nc = s.cols - c0;
    *off = r0 * s.ld + c0;
    *rl = nr < 0 ? 0 : nr > bh ? (int)bh : (int)nr;
    *cl = nc < 0 ? 0 : nc > bw ? (int)bw : (int)nc;
}

__device__ __forceinline__ void fma4(float4 &acc, float c, const float4 &v)
{
    acc.x = fmaf(c, v.x, acc.x);
    acc.y = fmaf(c, v.y, acc.y);
    acc.z = fmaf(c, v.z, acc.z);
    acc.w = fmaf(c, v.w, acc.w);
}

// Shared memory: long boff[nbp], soff[K]; float cf[nbp][K]; int brl, bcl, bmask [nbp],
// srl, scl, sany [K], oflag[nbp + K] (b: the big side, s: the small side; nbp = nbig rounded up
// to SK_U; oflag: out_flags of each output).
__host__ __device__ static inline size_t sk_smem(int K, int nbig)
{
    size_t nbp = (size_t)(nbig + SK_U - 1) / SK_U * SK_U;
    return (nbp + K) * 8 + nbp * K * 4 + (4 * nbp + 4 * K) * 4;
}

// Rows per iteration of the deep kernel: as many as keep its loads in registers (K inputs per
// row when expanding, SK_U products and K accumulators per row when contracting).
template <int K, bool EXPAND> __host__ __device__ constexpr int sk_deep_ru()
{
    return EXPAND ? (K <= 4 ? 4 : K <= 8 ? 2 : 1) : (K <= 4 ? 2 : 1);
}

// The streaming kernels' tables in shared memory (layout of sk_smem), filled by the whole block
// (ends synchronized): coefficients cf[j][k] for big j, small k (zero outside the launch's
// range), block offsets and bounds, and bmask[j], the groups of 4 small-side blocks with a
// non-zero coefficient for big j (all-zero groups are skipped: a uniform branch instead of 16
// FMAs); sany[k]: whether small k has a term; oflag[i]: out_flags of output i of the launch.
struct sk_tab {
    long *boff, *soff;
    float *cf;
    int *brl, *bcl, *bmask, *srl, *scl, *sany, *oflag;
};
template <int K, bool EXPAND> __device__ __forceinline__ sk_tab sk_tables(const sk_args &a, void *sm)
{
    sk_tab t;
    const int nbp = (a.nbig + SK_U - 1) / SK_U * SK_U;
    t.boff = (long *)sm;
    t.soff = t.boff + nbp;
    t.cf = (float *)(t.soff + K);
    t.brl = (int *)(t.cf + (size_t)nbp * K);
    t.bcl = t.brl + nbp;
    t.bmask = t.bcl + nbp;
    t.srl = t.bmask + nbp;
    t.scl = t.srl + K;
    t.sany = t.scl + K;
    t.oflag = t.sany + K;
    const bset &bs = EXPAND ? a.out : a.in, &ss = EXPAND ? a.in : a.out;
    for (int i = threadIdx.x; i < nbp * K; i += blockDim.x) {
        int j = i / K, k = i % K;
        float v = 0.f;
        if (j < a.nbig && k < a.nsmall)
            v = EXPAND ? a.dn[(size_t)(a.o0 + j) * a.ld_dn + a.i0 + k]
                       : a.dn[(size_t)(a.o0 + k) * a.ld_dn + a.i0 + j];
        t.cf[i] = v;
    }
    for (int j = threadIdx.x; j < nbp; j += blockDim.x) {
        if (j < a.nbig) sk_block(bs, j, a.bh, a.bw, &t.boff[j], &t.brl[j], &t.bcl[j]);
        else t.boff[j] = 0, t.brl[j] = 0, t.bcl[j] = 0; // padding: never loaded
    }
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        if (k < a.nsmall) sk_block(ss, k, a.bh, a.bw, &t.soff[k], &t.srl[k], &t.scl[k]);
        else t.soff[k] = 0, t.srl[k] = 0, t.scl[k] = 0;
    }
    for (int i = threadIdx.x; i < (EXPAND ? a.nbig : a.nsmall); i += blockDim.x)
        t.oflag[i] = out_flags(a.mode, a.acc, a.o0 + i);
    __syncthreads();
    for (int j = threadIdx.x; j < nbp; j += blockDim.x) {
        int m = 0;
        for (int k = 0; k < K; k++)
            if (t.cf[j * K + k] != 0.f) m |= 1 << (k / 4);
        t.bmask[j] = m;
    }
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        int any = 0;
        for (int j = 0; j < nbp; j++) any |= t.cf[j * K + k] != 0.f;
        t.sany[k] = any;
    }
    __syncthreads();
    return t;
}

// One row of an expanding combination: every output j of the launch at row x, columns y..y+W-1,
// from the row's K inputs v (zero beyond nsmall); all-zero coefficient groups skipped.
template <int K, typename Tout>
__device__ __forceinline__ void sk_expand_row(const sk_tab &tb, const sk_args &a,
                                              const float4 (&v)[K], long x, long y, int W,
                                              Tout *ob)
{
    const long rout = x * a.out.ld;
    for (int j = 0; j < a.nbig; j++) {
        const int m = tb.bmask[j], fl = tb.oflag[j];
        if ((fl & 2) && !m) continue;
        if (!(x < tb.brl[j] && y < tb.bcl[j])) continue;
        float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
        const float4 *c4 = (const float4 *)(tb.cf + j * K);
#pragma unroll
        for (int k = 0; k < K; k += 4) {
            if (!(m & 1 << (k / 4))) continue;
            float4 c = c4[k / 4];
            fma4(acc, c.x, v[k]);
            fma4(acc, c.y, v[k + 1]);
            fma4(acc, c.z, v[k + 2]);
            fma4(acc, c.w, v[k + 3]);
        }
        sk_st_acc(ob + tb.boff[j] + rout + y, acc, W, fl & 1);
    }
}

// The stores of a contracting combination's row x: the small side's sums acc.
template <int K, typename Tout>
__device__ __forceinline__ void sk_contract_store(const sk_tab &tb, const sk_args &a,
                                                  const float4 (&acc)[K], long x, long y, int W,
                                                  Tout *ob)
{
    const long rout = x * a.out.ld;
#pragma unroll
    for (int k = 0; k < K; k++) {
        if (k >= a.nsmall) break;
        if ((tb.oflag[k] & 2) && !tb.sany[k]) continue;
        if (!(x < tb.srl[k] && y < tb.scl[k])) continue;
        sk_st_acc(ob + tb.soff[k] + rout + y, acc[k], W, tb.oflag[k] & 1);
    }
}

// EXPAND: inputs small (in registers), outputs big; else the reverse. W: elements per thread.
// DEEP (opts.comb 2): RU rows per iteration, evict-first loads; else one row, the read-only path.
template <int K, int W, bool EXPAND, bool DEEP, typename Tin, typename Tout>
__global__ void __launch_bounds__(SK_THREADS) stream_kernel(sk_args a)
{
    constexpr int RU = DEEP ? sk_deep_ru<K, EXPAND>() : 1;
    extern __shared__ float4 sk_sm[];
    const sk_tab tb = sk_tables<K, EXPAND>(a, sk_sm);

    const int tx = threadIdx.x & ((1 << a.lgtx) - 1), ty = threadIdx.x >> a.lgtx;
    const int ty_n = (int)blockDim.x >> a.lgtx; // SK_THREADS, or fewer (opts.comb_threads)
    const long cv = (long)blockIdx.x * (1 << a.lgtx) + tx;
    if (cv >= a.ncv) return;
    const long y = cv * W;
    const Tin *ib = (const Tin *)a.in.base;
    Tout *ob = (Tout *)a.out.base;
    const long xstep = (long)gridDim.y * ty_n;
    // RU rows per iteration, all their loads issued before any sum or store (the deep kernel:
    // more bytes in flight per thread block, so that few blocks beside the products still
    // reach the DRAM's rate)
    for (long x0 = a.xb + (long)blockIdx.y * ty_n + ty; x0 < a.xe; x0 += RU * xstep) {
        if (EXPAND) {
            float4 v[RU][K];
#pragma unroll
            for (int r = 0; r < RU; r++) {
                const long x = x0 + r * xstep, rin = x * a.in.ld;
#pragma unroll
                for (int k = 0; k < K; k++) {
                    v[r][k] = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (x < a.xe && x < tb.srl[k] && y < tb.scl[k])
                        v[r][k] = sk_ld<Tin, DEEP>(ib + tb.soff[k] + rin + y, W);
                }
            }
#pragma unroll
            for (int r = 0; r < RU; r++) {
                const long x = x0 + r * xstep;
                if (x >= a.xe) break;
                sk_expand_row<K>(tb, a, v[r], x, y, W, ob);
            }
        } else {
            float4 acc[RU][K];
#pragma unroll
            for (int r = 0; r < RU; r++)
#pragma unroll
                for (int k = 0; k < K; k++) acc[r][k] = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int j0 = 0; j0 < a.nbig; j0 += SK_U) {
                float4 v[RU][SK_U];
#pragma unroll
                for (int r = 0; r < RU; r++) {
                    const long x = x0 + r * xstep, rin = x * a.in.ld;
#pragma unroll
                    for (int u = 0; u < SK_U; u++) {
                        int j = j0 + u;
                        v[r][u] = make_float4(0.f, 0.f, 0.f, 0.f);
                        if (j < a.nbig && x < a.xe && x < tb.brl[j] && y < tb.bcl[j])
                            v[r][u] = sk_ld<Tin, DEEP>(ib + tb.boff[j] + rin + y, W);
                    }
                }
#pragma unroll
                for (int u = 0; u < SK_U; u++) {
                    const float4 *c4 = (const float4 *)(tb.cf + (j0 + u) * K);
                    const int m = tb.bmask[j0 + u];
#pragma unroll
                    for (int k = 0; k < K; k += 4) {
                        if (!(m & 1 << (k / 4))) continue;
                        float4 c = c4[k / 4];
#pragma unroll
                        for (int r = 0; r < RU; r++) {
                            fma4(acc[r][k], c.x, v[r][u]);
                            fma4(acc[r][k + 1], c.y, v[r][u]);
                            fma4(acc[r][k + 2], c.z, v[r][u]);
                            fma4(acc[r][k + 3], c.w, v[r][u]);
                        }
                    }
                }
            }
#pragma unroll
            for (int r = 0; r < RU; r++) {
                const long x = x0 + r * xstep;
                if (x >= a.xe) break;
                sk_contract_store<K>(tb, a, acc[r], x, y, W, ob);
            }
        }
    }
}

template <int K, int W, bool EXPAND, typename Tin, typename Tout>
static int stream_launch(cudaStream_t s, bool deep, const sk_args &a, dim3 grid, size_t smem,
                         int nt)
{
    if (deep)
        stream_kernel<K, W, EXPAND, true, Tin, Tout><<<grid, nt, smem, s>>>(a);
    else
        stream_kernel<K, W, EXPAND, false, Tin, Tout><<<grid, nt, smem, s>>>(a);
    CK(cudaGetLastError());
    return 0;
}

template <int W, bool EXPAND, typename Tin, typename Tout>
static int stream_k(cudaStream_t s, bool deep, int K, const sk_args &a, dim3 grid, size_t smem,
                    int nt)
{
    switch (K) {
    case 4: return stream_launch<4, W, EXPAND, Tin, Tout>(s, deep, a, grid, smem, nt);
    case 8: return stream_launch<8, W, EXPAND, Tin, Tout>(s, deep, a, grid, smem, nt);
    case 16: return stream_launch<16, W, EXPAND, Tin, Tout>(s, deep, a, grid, smem, nt);
    default: return stream_launch<32, W, EXPAND, Tin, Tout>(s, deep, a, grid, smem, nt);
    }
}

// The set's blocks can be read / written 4 elements at a time with no element of a vector
// outside the data (a grid over a matrix whose columns are a multiple of 4; vec already says
// alignment, leading dimension and block width allow vectors).
static bool sk_vec(const bset &s) { return s.vec && (s.gw == 0 || s.cols % 4 == 0); }

// A map of a level as the combinations see it: CSR (staged kernel), dense (streaming kernel).
struct cmap {
    const int *ptr, *idx;
    const float *val, *dn;
    int ld_dn;
    const int *acc; // mode 3's per-output accumulation (cacc), else NULL
};

// Whether the streaming kernel takes a launch with this small side and big side.
static int sk_small(int nsmall)
{
    return nsmall <= 4 ? 4 : nsmall <= 8 ? 8 : nsmall <= 16 ? 16 : nsmall <= 32 ? 32 : 0;
}
static bool sk_fits(int nsmall, int nbig)
{
    int K = sk_small(nsmall);
    return K > 0 && sk_smem(K, nbig) <= SK_SMEM;
}

// ---- bulk combination kernel (opts.comb 3) ----
// The streaming kernel's sums, with the input rows brought into shared memory by bulk
// asynchronous copies (cp.async.bulk, completing on an mbarrier) in up to BK_NS stages instead of
// loads into registers. Why: beside the products a combination costs them the multiprocessor
// time it holds, i.e. its bytes divided by what one of its blocks moves per unit of time; a
// block's loads in flight are bounded by its registers (~64 KB), while shared memory holds
// ~200 KB of copies in flight, so a few such blocks should move as much as many streaming ones.
// Where it does not apply (bf16 data, inputs not 16-byte aligned or not whole blocks, too many
// inputs for two stages) the streaming kernel runs instead. fp32 only; one float4 per thread
// of a row chunk of BK_CW floats; each item is (row, chunk), items dealt round-robin over blocks.
#define BK_CW (4 * SK_THREADS)
#define BK_NS 8
#define BK_SMEM (200 * 1024) // stages' bytes at most (the H100 allows 227 KB per block)

long fastmm_cuda_nbulk; // bulk launches (tests check that the kernel ran)
long fastmm_cuda_nthin; // streaming launches of fewer than SK_THREADS threads a block (likewise)

__host__ __device__ static inline size_t bk_align(size_t x) { return (x + 127) / 128 * 128; }

template <int K, bool EXPAND>
__global__ void __launch_bounds__(SK_THREADS, 1) bulk_kernel(sk_args a, int ns, long nchunk)
{
    using barrier = cuda::barrier<cuda::thread_scope_block>;
#pragma nv_diag_suppress static_var_with_dynamic_init
    __shared__ barrier bar[BK_NS];
    extern __shared__ float4 sk_sm[];
    if (threadIdx.x == 0) {
        for (int s = 0; s < ns; s++) init(&bar[s], SK_THREADS);
        // the barriers' initialization visible to the copies (the async proxy); sk_tables'
        // __syncthreads makes it visible to the block
        cuda::ptx::fence_proxy_async(cuda::ptx::space_shared);
    }
    const sk_tab tb = sk_tables<K, EXPAND>(a, sk_sm);

    const int nload = EXPAND ? a.nsmall : a.nbig;
    const long *ioff = EXPAND ? tb.soff : tb.boff;
    float *stg = (float *)((char *)sk_sm + bk_align(sk_smem(K, a.nbig)));
    const size_t sf = (size_t)nload * BK_CW; // floats per stage
    const float *ib = (const float *)a.in.base;
    float *ob = (float *)a.out.base;
    const long nitems = (a.xe - a.xb) * nchunk;
    const long T = blockIdx.x < nitems ? (nitems - blockIdx.x + gridDim.x - 1) / gridDim.x : 0;
    // thread 0 brings item t's rows of every input into stage s
    auto issue = [&](long t, int s) {
        long it = blockIdx.x + t * gridDim.x, x = a.xb + it / nchunk, y0 = it % nchunk * BK_CW;
        uint32_t bytes = (uint32_t)((a.bw - y0 < BK_CW ? a.bw - y0 : BK_CW) * 4);
        cuda::device::barrier_expect_tx(bar[s], (ptrdiff_t)bytes * nload);
        for (int k = 0; k < nload; k++)
            cuda::device::memcpy_async_tx(stg + s * sf + (size_t)k * BK_CW,
                                          ib + ioff[k] + x * a.in.ld + y0,
                                          cuda::aligned_size_t<16>(bytes), bar[s]);
    };
    if (threadIdx.x == 0)
        for (long t = 0; t < T && t < ns; t++) issue(t, (int)t);
    for (long t = 0; t < T; t++) {
        const int s = (int)(t % ns);
        bar[s].wait(bar[s].arrive());
        const long it = blockIdx.x + t * gridDim.x, x = a.xb + it / nchunk;
        const long y0 = it % nchunk * BK_CW, y = y0 + 4 * threadIdx.x;
        const float4 *st4 = (const float4 *)(stg + s * sf);
        if (y < a.bw) {
            if (EXPAND) {
                float4 v[K];
#pragma unroll
                for (int k = 0; k < K; k++)
                    v[k] = k < a.nsmall ? st4[(size_t)k * (BK_CW / 4) + threadIdx.x]
                                        : make_float4(0.f, 0.f, 0.f, 0.f);
                sk_expand_row<K>(tb, a, v, x, y, 4, ob);
            } else {
                float4 acc[K];
#pragma unroll
                for (int k = 0; k < K; k++) acc[k] = make_float4(0.f, 0.f, 0.f, 0.f);
                for (int j = 0; j < a.nbig; j++) {
                    const float4 v = st4[(size_t)j * (BK_CW / 4) + threadIdx.x];
                    const float4 *c4 = (const float4 *)(tb.cf + j * K);
                    const int m = tb.bmask[j];
#pragma unroll
                    for (int k = 0; k < K; k += 4) {
                        if (!(m & 1 << (k / 4))) continue;
                        float4 c = c4[k / 4];
                        fma4(acc[k], c.x, v);
                        fma4(acc[k + 1], c.y, v);
                        fma4(acc[k + 2], c.z, v);
                        fma4(acc[k + 3], c.w, v);
                    }
                }
                sk_contract_store<K>(tb, a, acc, x, y, 4, ob);
            }
        }
        __syncthreads(); // stage s read by every thread: it may be refilled
        if (threadIdx.x == 0 && t + ns < T) {
            cuda::ptx::fence_proxy_async(cuda::ptx::space_shared);
            issue(t + ns, s);
        }
    }
}

// The device's multiprocessors and the most shared memory a block may have (cached; the
// library runs on one device at a time).
static void bk_dev(int *nsm, int *smax)
{
    static int n = 0, m = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&m, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
            n = 0, m = 0;
        cudaGetLastError();
        if (n < 1) n = 1, m = 0; // unknown: no bulk kernel
    }
    *nsm = n;
    *smax = m;
}

// Whether the bulk kernel takes this launch: fp32 data, vectors on both sides, every input block
// whole for the launch's rows and 16-byte aligned, and two stages of its inputs fit beside the
// tables in the block's shared memory (*ns: the stages, at most BK_NS and BK_SMEM bytes).
template <typename Tin, typename Tout>
static bool bk_fits(const bset &in, const bset &out, long bh, long bw, int nin, int nout,
                    long xe, int *ns)
{
    if (sizeof(Tin) != 4 || sizeof(Tout) != 4 || !sk_vec(in) || !sk_vec(out) || bw % 4 ||
        in.ld % 4 || ((uintptr_t)in.base & 15))
        return false;
    bool expand = nin <= nout;
    int nsmall = expand ? nin : nout, nbig = expand ? nout : nin;
    if (!sk_fits(nsmall, nbig)) return false;
    int nsm, smax;
    bk_dev(&nsm, &smax);
    size_t sb = (size_t)nin * BK_CW * 4, tab = bk_align(sk_smem(sk_small(nsmall), nbig));
    size_t room = (size_t)smax > tab ? (size_t)smax - tab : 0;
    if (room > BK_SMEM) room = BK_SMEM;
    int n = (int)(room / sb);
    if (n < 2) return false;
    *ns = n > BK_NS ? BK_NS : n;
    for (int b = 0; b < nin; b++) {
        long off;
        int rl, cl;
        sk_block(in, b, bh, bw, &off, &rl, &cl);
        if (off % 4 || rl < xe || cl != bw) return false;
    }
    return true;
}

template <int K, bool EXPAND>
static int bulk_launch(cudaStream_t s, const sk_args &a, int ns, int cap)
{
    int nsm, smax;
    bk_dev(&nsm, &smax);
    long nchunk = (a.bw + BK_CW - 1) / BK_CW, nitems = (a.xe - a.xb) * nchunk;
    long g = cap > 0 ? cap : nsm;
    if (g > nitems) g = nitems;
    int nload = EXPAND ? a.nsmall : a.nbig;
    size_t smem = bk_align(sk_smem(K, a.nbig)) + (size_t)ns * nload * BK_CW * 4;
    static size_t allowed = 0; // per kernel instance: raised once, not at every launch
    if (smem > allowed) {
        CK(cudaFuncSetAttribute(bulk_kernel<K, EXPAND>,
                                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        allowed = smem;
    }
    bulk_kernel<K, EXPAND><<<(unsigned)g, SK_THREADS, smem, s>>>(a, ns, nchunk);
    CK(cudaGetLastError());
    fastmm_cuda_nbulk++;
    return 0;
}

template <bool EXPAND>
static int bulk_k(cudaStream_t s, int K, const sk_args &a, int ns, int cap)
{
    switch (K) {
    case 4: return bulk_launch<4, EXPAND>(s, a, ns, cap);
    case 8: return bulk_launch<8, EXPAND>(s, a, ns, cap);
    case 16: return bulk_launch<16, EXPAND>(s, a, ns, cap);
    default: return bulk_launch<32, EXPAND>(s, a, ns, cap);
    }
}

// One combination: out o (o < nout) = sum over in-range inputs of the map's row o0 + o; see
// combine_kernel for the modes. kind 1: the streaming kernel where it applies (small side of at
// most 32 blocks, coefficients in 48 KB), kind 2 its deep form there, kind 3 the bulk kernel
// where it applies (else streaming), else (and kind 0) the staged one. cap > 0: the
// streaming kernel with at most that many thread blocks (at least one per column group), its
// row loop doing the rest (opts.comb_blocks); nt: the streaming kernel's threads per block
// (SK_THREADS, or fewer: opts.comb_threads).
template <typename Tin, typename Tout>
static int combine(cudaStream_t s, int kind, const bset &in, const bset &out, long bh, long bw,
                   int nin, int i0, int nout, int o0, const cmap &m, int mode, long xb, long xe,
                   int cap, int nt = SK_THREADS)
{
    bool expand = nin <= nout;
    int nsmall = expand ? nin : nout, nbig = expand ? nout : nin;
    if (kind < 1 || !m.dn || !sk_fits(nsmall, nbig) || xe <= xb)
        return combine_staged<Tin, Tout>(s, in, out, bh, bw, nin, i0, nout, o0, m.ptr, m.idx,
                                         m.val, mode, m.acc, xb, xe);
    sk_args a;
    a.in = in;
    a.out = out;
    a.bh = bh;
    a.bw = bw;
    a.nsmall = nsmall;
    a.nbig = nbig;
    a.i0 = i0;
    a.o0 = o0;
    a.dn = m.dn;
    a.ld_dn = m.ld_dn;
    a.mode = mode;
    a.acc = m.acc;
    a.xb = xb;
    a.xe = xe;
    int W = sk_vec(in) && sk_vec(out) && bw % 4 == 0 ? 4 : 1;
    a.ncv = (bw + W - 1) / W;
    int lg = 0;
    while (lg < 6 && (1L << lg) < a.ncv && (2 << lg) <= nt) lg++; // up to 64 threads along a row
    a.lgtx = lg;
    long rows = xe - xb, ty = nt >> lg;
    long gy = (rows + ty * SK_RPT - 1) / (ty * SK_RPT);
    if (gy > 65535) gy = 65535;
    long gx = (a.ncv + (1L << lg) - 1) >> lg;
    if (cap > 0 && gy > cap / gx) gy = cap / gx > 0 ? cap / gx : 1;
    dim3 grid((unsigned)gx, (unsigned)gy);
    int K = sk_small(nsmall);
    int ns = 0;
    if (kind == 3 && bk_fits<Tin, Tout>(in, out, bh, bw, nin, nout, xe, &ns))
        return expand ? bulk_k<true>(s, K, a, ns, cap) : bulk_k<false>(s, K, a, ns, cap);
    size_t smem = sk_smem(K, nbig);
    bool deep = kind == 2;
    if (nt < SK_THREADS) fastmm_cuda_nthin++;
    if (expand)
        return W == 4 ? stream_k<4, true, Tin, Tout>(s, deep, K, a, grid, smem, nt)
                      : stream_k<1, true, Tin, Tout>(s, deep, K, a, grid, smem, nt);
    return W == 4 ? stream_k<4, false, Tin, Tout>(s, deep, K, a, grid, smem, nt)
                  : stream_k<1, false, Tin, Tout>(s, deep, K, a, grid, smem, nt);
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

static bset grid_set(const void *base, long ld, long rows, long cols, int gw, long bw, int esz)
{
    bset s;
    s.base = (void *)base;
    s.ld = ld;
    s.rows = rows;
    s.cols = cols;
    s.bstride = 0;
    s.gw = gw;
    // vector access needs every 4-aligned column of every block to start on 16 (or 8) bytes
    s.vec = aligned16(base) && ld % 4 == 0 && bw % 4 == 0 && esz > 0;
    return s;
}

static bset stack_set(void *base, long bh, long bw)
{
    bset s;
    s.base = base;
    s.ld = bw;
    s.rows = bh;
    s.cols = bw;
    s.bstride = bh * bw;
    s.gw = 0;
    s.vec = aligned16(base) && bw % 4 == 0;
    return s;
}

// ---- context ----

extern "C" int fastmm_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // clear the sticky "no device" error
        return 0;
    }
    return n;
}

// ---------------------------------------------------------------------------------------------
// Green contexts (opts.green): the device's SMs split in two, the block products of a
// pipelined run on one part (e.g. 128 of the H100's 132 SMs: a batch of 256 x 128 SGEMM tiles
// then runs in whole waves, where on 132 the last wave of each panel leaves 28 idle), the
// combinations beside them on the other (4), where they can no longer take multiprocessors
// the products' next thread blocks wait for. The driver's entry points are looked up through
// the runtime, so that the build needs no libcuda; where they are missing (a driver before
// CUDA 12.4) green contexts are unavailable and the option fails with a message.
struct green_api {
    CUresult (*dev_get)(CUdevice *, int);
    CUresult (*get_res)(CUdevice, CUdevResource *, CUdevResourceType);
    CUresult (*split)(CUdevResource *, unsigned int *, const CUdevResource *, CUdevResource *,
                      unsigned int, unsigned int);
    CUresult (*gen_desc)(CUdevResourceDesc *, CUdevResource *, unsigned int);
    CUresult (*create)(CUgreenCtx *, CUdevResourceDesc, CUdevice, unsigned int);
    CUresult (*destroy)(CUgreenCtx);
    CUresult (*stream)(CUstream *, CUgreenCtx, unsigned int, int);
    CUresult (*to_ctx)(CUcontext *, CUgreenCtx);
    CUresult (*push)(CUcontext);
    CUresult (*pop)(CUcontext *);
    CUresult (*errstr)(CUresult, const char **);
};

long fastmm_cuda_ngreen; // pipelined runs on green contexts so far (tests)
long fastmm_cuda_noverlap; // runs with the products of odd panels on s4 so far (tests)
long fastmm_cuda_nprodfirst; // runs with the products at high priority on s5 so far (tests)
long fastmm_cuda_ntail;      // GEMMs run as a balanced split so far (tests)

static int green_api_get(green_api *g)
{
    static green_api api;
    static int state; // 0 not looked up, 1 found, -1 missing
    if (state == 0) {
        struct {
            const char *name;
            void **fn;
        } want[] = {{"cuDeviceGet", (void **)&api.dev_get},
                    {"cuDeviceGetDevResource", (void **)&api.get_res},
                    {"cuDevSmResourceSplitByCount", (void **)&api.split},
                    {"cuDevResourceGenerateDesc", (void **)&api.gen_desc},
                    {"cuGreenCtxCreate", (void **)&api.create},
                    {"cuGreenCtxDestroy", (void **)&api.destroy},
                    {"cuGreenCtxStreamCreate", (void **)&api.stream},
                    {"cuCtxFromGreenCtx", (void **)&api.to_ctx},
                    {"cuCtxPushCurrent", (void **)&api.push},
                    {"cuCtxPopCurrent", (void **)&api.pop},
                    {"cuGetErrorString", (void **)&api.errstr}};
        state = 1;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            cudaDriverEntryPointQueryResult q;
            if (cudaGetDriverEntryPointByVersion(want[i].name, want[i].fn, CUDART_VERSION,
                                                 cudaEnableDefault, &q) != cudaSuccess ||
                q != cudaDriverEntryPointSuccess || !*want[i].fn) {
                cudaGetLastError();
                state = -1;
                tg_fail("fastmm: green contexts: the driver has no %s", want[i].name);
                return -1;
            }
        }
    }
    if (state < 0) return tg_fail("fastmm: green contexts: the driver lacks them");
    *g = api;
    return 0;
}

#define GK(call)                                                                             \
    do {                                                                                     \
        CUresult r_ = (call);                                                                \
        if (r_ != CUDA_SUCCESS) {                                                            \
            const char *m_ = NULL;                                                           \
            g.errstr(r_, &m_);                                                               \
            tg_fail("fastmm: green contexts: %s: %s", #call, m_ ? m_ : "error");             \
            goto fail;                                                                       \
        }                                                                                    \
    } while (0)

static void green_release(fastmm_cuda *c)
{
    green_api g;
    if (!c->green_sms || green_api_get(&g)) return;
    for (int i = 0; i < NEVENTS; i++) {
        if (c->gpev[i]) cudaEventDestroy(c->gpev[i]);
        if (c->gcev[i]) cudaEventDestroy(c->gcev[i]);
        c->gpev[i] = c->gcev[i] = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (c->gtev[i]) cudaEventDestroy(c->gtev[i]);
        c->gtev[i] = NULL;
    }
    if (c->gp) cudaStreamDestroy(c->gp);
    if (c->gc) cudaStreamDestroy(c->gc);
    c->gp = c->gc = NULL;
    for (int i = 0; i < 2; i++)
        if (c->gctx[i]) g.destroy(c->gctx[i]);
    c->gctx[0] = c->gctx[1] = NULL;
    c->green_sms = 0;
}

// Events of a green context: recorded only on its stream (an event and the stream it is
// recorded on must share a context; a stream may wait on any context's event).
static int green_events(green_api &g, CUgreenCtx gx, cudaEvent_t *ev, int n, int timing)
{
    CUcontext cx = NULL;
    int rc = 0; // before the GK jumps
    GK(g.to_ctx(&cx, gx));
    GK(g.push(cx));
    for (int i = 0; i < n && !rc; i++) {
        cudaError_t e = cudaEventCreateWithFlags(&ev[i], timing ? cudaEventDefault
                                                                : cudaEventDisableTiming);
        if (e != cudaSuccess) rc = tg_fail("fastmm: green contexts: cudaEventCreate: %s",
                                           cudaGetErrorString(e));
    }
    g.pop(&cx);
    return rc;
fail:
    return -1;
}

// Makes (once per count) the two green contexts: every SM but `sms` for the products, the
// rest for the combinations beside them. The split rounds the products' part up to the
// device's co-scheduling alignment (8 SMs on compute capability 9.0: 8 asked for gives 4).
static int green_make(fastmm_cuda *c, int sms)
{
    if (c->green_sms == sms) return 0;
    green_release(c);
    green_api g;
    if (green_api_get(&g)) return -1;
    int ord = 0;
    CUdevice dev;
    CUdevResource in, part, rest;
    CUdevResourceDesc d;
    unsigned int ng = 1;
    memset(&rest, 0, sizeof rest);
    CK(cudaGetDevice(&ord));
    GK(g.dev_get(&dev, ord));
    GK(g.get_res(dev, &in, CU_DEV_RESOURCE_TYPE_SM));
    if (sms < 1 || (unsigned)sms >= in.sm.smCount)
        return tg_fail("fastmm: green contexts: %d SMs for the combinations of %u", sms,
                       in.sm.smCount);
    GK(g.split(&part, &ng, &in, &rest, 0, in.sm.smCount - (unsigned)sms));
    if (ng != 1 || rest.sm.smCount < 1) {
        // the alignment rounded the products' part up to the whole device
        tg_fail("fastmm: green contexts: %u SMs split gave %u + %u, nothing for the "
                "combinations (%d asked for)", in.sm.smCount, ng ? part.sm.smCount : 0,
                rest.sm.smCount, sms);
        goto fail;
    }
    c->green_sms = sms; // from here green_release undoes what is made
    GK(g.gen_desc(&d, &part, 1));
    GK(g.create(&c->gctx[0], d, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    GK(g.gen_desc(&d, &rest, 1));
    GK(g.create(&c->gctx[1], d, dev, CU_GREEN_CTX_DEFAULT_STREAM));
    GK(g.stream((CUstream *)&c->gp, c->gctx[0], CU_STREAM_NON_BLOCKING, 0));
    GK(g.stream((CUstream *)&c->gc, c->gctx[1], CU_STREAM_NON_BLOCKING, 0));
    if (green_events(g, c->gctx[0], c->gpev, NEVENTS, 0) ||
        green_events(g, c->gctx[0], c->gtev, 2, 1) ||
        green_events(g, c->gctx[1], c->gcev, NEVENTS, 0))
        goto fail;
    return 0;
fail:
    green_release(c);
    return -1;
}
#undef GK

extern "C" fastmm_cuda *fastmm_cuda_new(void)
{
    if (fastmm_cuda_device_count() < 1) {
        tg_fail("fastmm: no CUDA device");
        return NULL;
    }
    fastmm_cuda *c = (fastmm_cuda *)calloc(1, sizeof *c);
    if (!c) {
        tg_fail("out of memory");
        return NULL;
    }
    int prio_lo = 0, prio_hi = 0;
    cudaError_t e = cudaDeviceGetStreamPriorityRange(&prio_lo, &prio_hi);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->s, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->s2, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&c->s3, cudaStreamNonBlocking, prio_hi);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->s4, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&c->s5, cudaStreamNonBlocking, prio_hi);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&c->sl, cudaStreamNonBlocking, prio_lo);
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&c->sh, cudaStreamNonBlocking, prio_hi);
    for (int i = 0; e == cudaSuccess && i < 3; i++)
        e = cudaEventCreateWithFlags(&c->tlev[i], cudaEventDisableTiming);
    for (int i = 0; e == cudaSuccess && i < NEVENTS; i++)
        e = cudaEventCreateWithFlags(&c->ev[i], cudaEventDisableTiming);
    for (int i = 0; e == cudaSuccess && i < 5; i++) e = cudaEventCreate(&c->tev[i]);
    if (e != cudaSuccess) {
        tg_fail("fastmm: cudaStreamCreate: %s", cudaGetErrorString(e));
        free(c); // the process is in no state to use CUDA further; leaking is harmless
        return NULL;
    }
    c->configs = FASTMM_GEMM_CONFIGS;
    c->enum_budget_ms = LT_ENUM_BUDGET_MS;
    cublasStatus_t st = cublasCreate(&c->h);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(c->h, c->s);
    if (st != CUBLAS_STATUS_SUCCESS) {
        tg_fail("fastmm: cublasCreate: %s", cublasGetStatusString(st));
        cudaStreamDestroy(c->s);
        free(c);
        return NULL;
    }
    return c;
}

extern "C" void fastmm_cuda_free(fastmm_cuda *c)
{
    if (!c) return;
    cudaStreamSynchronize(c->s);
    cudaStreamSynchronize(c->s2);
    cudaStreamSynchronize(c->s3);
    cudaStreamSynchronize(c->s4);
    cudaStreamSynchronize(c->s5);
    cudaStreamSynchronize(c->sl);
    cudaStreamSynchronize(c->sh);
    if (c->gp) cudaStreamSynchronize(c->gp);
    if (c->gc) cudaStreamSynchronize(c->gc);
    green_release(c);
    cudaFree(c->ws);
    cublasDestroy(c->h);
    for (int i = 0; i < c->nlte; i++) lt_entry_release(&c->lte[i]);
    free(c->lte);
    if (c->lt) cublasLtDestroy(c->lt);
    cudaFree(c->lt_ws);
    for (int i = 0; i < NEVENTS; i++) cudaEventDestroy(c->ev[i]);
    for (int i = 0; i < 5; i++) cudaEventDestroy(c->tev[i]);
    for (int i = 0; i < 3; i++) cudaEventDestroy(c->tlev[i]);
    cudaFree(c->tring);
    cudaStreamDestroy(c->sh);
    cudaStreamDestroy(c->sl);
    cudaStreamDestroy(c->s5);
    cudaStreamDestroy(c->s4);
    cudaStreamDestroy(c->s3);
    cudaStreamDestroy(c->s2);
    cudaStreamDestroy(c->s);
    free(c);
}

extern "C" void *fastmm_cuda_stream(fastmm_cuda *c) { return (void *)c->s; }

extern "C" void fastmm_cuda_gemm_configs(fastmm_cuda *c, int n) { c->configs = n > 0 ? n : 0; }

extern "C" void fastmm_cuda_tail_force(fastmm_cuda *c, int on) { c->tail_force = on != 0; }

extern "C" void fastmm_cuda_gemm_configs_budget(fastmm_cuda *c, double ms)
{
    c->enum_budget_ms = ms > 0 ? ms : 0;
}

extern "C" int fastmm_cuda_sync(fastmm_cuda *c)
{
    CK(cudaStreamSynchronize(c->s));
    return 0;
}

static int ws_reserve(fastmm_cuda *c, size_t bytes)
{
    if (c->ws_size >= bytes) return 0;
    CK(cudaStreamSynchronize(c->s));
    cudaFree(c->ws);
    c->ws = NULL;
    c->ws_size = 0;
    if (cudaMalloc(&c->ws, bytes) != cudaSuccess) {
        cudaGetLastError();
        return tg_fail("fastmm: cannot allocate %zu MiB of workspace", bytes >> 20);
    }
    c->ws_size = bytes;
    return 0;
}

// ---- GEMM kernel selection ----

static void lt_entry_release(lt_entry *e)
{
    if (e->sub) {
        lt_entry_release(&e->sub[0]);
        lt_entry_release(&e->sub[1]);
        free(e->sub);
        e->sub = NULL;
        e->tail = 0;
    }
    if (e->desc) cublasLtMatmulDescDestroy(e->desc);
    if (e->la) cublasLtMatrixLayoutDestroy(e->la);
    if (e->lb) cublasLtMatrixLayoutDestroy(e->lb);
    if (e->lc) cublasLtMatrixLayoutDestroy(e->lc);
    e->desc = NULL;
    e->la = e->lb = e->lc = NULL;
}

static lt_entry *lt_find(fastmm_cuda *c, const lt_key *k)
{
    for (int i = 0; i < c->nlte; i++)
        if (!memcmp(&c->lte[i].k, k, sizeof *k)) return &c->lte[i];
    return NULL;
}

// cuBLASLt descriptors of the shape (column-major view C^T = B^T A^T); 0, or -1 if refused.
static int lt_describe(lt_entry *e, cublasComputeType_t ct)
{
    const lt_key *k = &e->k;
    if (cublasLtMatmulDescCreate(&e->desc, ct, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->la, CUDA_R_32F, k->N, k->K, k->ldb) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->lb, CUDA_R_32F, k->K, k->M, k->lda) !=
            CUBLAS_STATUS_SUCCESS ||
        cublasLtMatrixLayoutCreate(&e->lc, CUDA_R_32F, k->N, k->M, k->ldc) !=
            CUBLAS_STATUS_SUCCESS)
        return -1;
    if (k->batch > 1 || k->ptr) {
        int32_t bc = (int32_t)k->batch;
        int64_t st[3] = {k->sB, k->sA, k->sC};
        uint32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY;
        cublasLtMatrixLayout_t l[3] = {e->la, e->lb, e->lc};
        for (int i = 0; i < 3; i++)
            if (cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc,
                                                 sizeof bc) != CUBLAS_STATUS_SUCCESS ||
                (k->ptr ? cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_BATCH_MODE,
                                                           &mode, sizeof mode)
                        : cublasLtMatrixLayoutSetAttribute(
                              l[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st[i],
                              sizeof st[i])) != CUBLAS_STATUS_SUCCESS)
                return -1;
    }
    return 0;
}

// Pointer-array batches (k->ptr): A, B, C are the device arrays of the matrices' addresses.
// On stream st; ws: with the context's workspace (one kernel at a time may use it), else none.
static cublasStatus_t lt_exec_on(fastmm_cuda *c, const lt_entry *e,
                                 const cublasLtMatmulAlgo_t *algo, const void *A, const void *B,
                                 void *C, cudaStream_t st, bool ws)
{
    const float one = 1.0f, zero = 0.0f;
    return cublasLtMatmul(c->lt, e->desc, &one, B, e->la, A, e->lb, &zero, C, e->lc, C, e->lc,
                          algo, ws ? c->lt_ws : NULL, ws ? LT_WS : 0, st);
}

static cublasStatus_t lt_exec(fastmm_cuda *c, const lt_entry *e, const cublasLtMatmulAlgo_t *algo,
                              const void *A, const void *B, void *C)
{
    return lt_exec_on(c, e, algo, A, B, C, c->s, true);
}

static cublasStatus_t sgemm_default(fastmm_cuda *c, const lt_key *k, const void *A_,
                                    const void *B_, void *C_)
{
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st = cublasSetMathMode(c->h, CUBLAS_PEDANTIC_MATH);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (k->ptr)
        return cublasSgemmBatched(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)k->N, (int)k->M, (int)k->K,
                                  &one, (const float *const *)B_, (int)k->ldb,
                                  (const float *const *)A_, (int)k->lda, &zero,
                                  (float *const *)C_, (int)k->ldc, (int)k->batch);
    const float *A = (const float *)A_, *B = (const float *)B_;
    float *C = (float *)C_;
    if (k->batch == 1)
        return cublasSgemm(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)k->N, (int)k->M, (int)k->K, &one,
                           B, (int)k->ldb, A, (int)k->lda, &zero, C, (int)k->ldc);
    return cublasSgemmStridedBatched(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)k->N, (int)k->M,
                                     (int)k->K, &one, B, (int)k->ldb, k->sB, A, (int)k->lda,
                                     k->sA, &zero, C, (int)k->ldc, k->sC, (int)k->batch);
}

// Times one candidate (NULL: cuBLAS's default) on stream s: a warm-up run, then one timed run.
// Returns 0, 1 if the candidate refused to run, -1 on a CUDA error.
static int lt_time(fastmm_cuda *c, const lt_entry *e, const cublasLtMatmulAlgo_t *algo,
                   const void *A, const void *B, void *C, float *ms)
{
    for (int r = 0; r < 2; r++) {
        if (r == 1) CK(cudaEventRecord(c->tev[0], c->s));
        cublasStatus_t st = algo ? lt_exec(c, e, algo, A, B, C) : sgemm_default(c, &e->k, A, B, C);
        if (st != CUBLAS_STATUS_SUCCESS) return 1;
    }
    CK(cudaEventRecord(c->tev[1], c->s));
    CK(cudaEventSynchronize(c->tev[1]));
    CK(cudaEventElapsedTime(ms, c->tev[0], c->tev[1]));
    return 0;
}

// The configuration of a cuBLASLt kernel: algorithm id, tile, stages, CTA swizzling, custom option.
static void lt_cfg_get(const cublasLtMatmulAlgo_t *a, int cfg[5])
{
    int32_t id = -1;
    uint32_t tile = 0, stages = 0, swz = 0, opt = 0;
    size_t w;
    cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &w);
    cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &w);
    cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages,
                                         &w);
    cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swz, sizeof swz,
                                         &w);
    cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &opt, sizeof opt,
                                         &w);
    cfg[0] = id, cfg[1] = (int)tile, cfg[2] = (int)stages, cfg[3] = (int)swz, cfg[4] = (int)opt;
}

// An array capability of algo a (tile or stage ids) into v[0..cap); {0} (undefined) if none.
static int lt_cap_ids(const cublasLtMatmulAlgo_t *a, cublasLtMatmulAlgoCapAttributes_t attr,
                      uint32_t *v, int cap)
{
    size_t w = 0;
    if (cublasLtMatmulAlgoCapGetAttribute(a, attr, NULL, 0, &w) != CUBLAS_STATUS_SUCCESS ||
        w == 0 || w > cap * sizeof *v ||
        cublasLtMatmulAlgoCapGetAttribute(a, attr, v, w, &w) != CUBLAS_STATUS_SUCCESS) {
        v[0] = 0;
        return 1;
    }
    return (int)(w / sizeof *v);
}

// Every kernel configuration cuBLASLt accepts for the shape (algorithm ids x tiles x stages x CTA
// swizzling x custom options; no split-K, so the sums are the default's) into v[0..cap); returns
// how many. Why: the heuristic offers 4-7 kernels ranked by a model, and on the H100 it never
// offers the one that runs large pedantic SGEMMs fastest (algorithm 55's 256x128 tile with CTA
// swizzling: +2-8% on the block products, +3.8% on a plain 8192-cube).
static int lt_configs(fastmm_cuda *c, const lt_entry *e, cublasLtMatmulAlgo_t *v, int cap)
{
    const cublasComputeType_t ct = e->pedantic ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    const cudaDataType_t f = CUDA_R_32F;
    int ids[256], nid = 0, n = 0;
    if (cublasLtMatmulAlgoGetIds(c->lt, ct, f, f, f, f, f, 256, ids, &nid) != CUBLAS_STATUS_SUCCESS)
        return 0;
    const lt_key *k = &e->k;
    const long al[3] = {k->alB, k->alA, k->alC}; // Lt's A is our B
    for (int a = 0; a < nid; a++) {
        cublasLtMatmulAlgo_t algo;
        if (cublasLtMatmulAlgoInit(c->lt, ct, f, f, f, f, f, ids[a], &algo) !=
            CUBLAS_STATUS_SUCCESS)
            continue;
        // operands less aligned than the kernel needs would fault, not be refused
        const cublasLtMatmulAlgoCapAttributes_t acap[3] = {
            CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_A_BYTES, CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_B_BYTES,
            CUBLASLT_ALGO_CAP_MIN_ALIGNMENT_C_BYTES};
        size_t w;
        int aligned = 1;
        for (int i = 0; i < 3; i++) {
            uint32_t m = 4;
            cublasLtMatmulAlgoCapGetAttribute(&algo, acap[i], &m, sizeof m, &w);
            aligned &= (long)m <= al[i];
        }
        if (!aligned) continue;
        int32_t ptr_ok = 1, strided_ok = 1;
        cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_POINTER_ARRAY_BATCH_SUPPORT,
                                          &ptr_ok, sizeof ptr_ok, &w);
        cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_STRIDED_BATCH_SUPPORT,
                                          &strided_ok, sizeof strided_ok, &w);
        if ((k->ptr && !ptr_ok) || (!k->ptr && k->batch > 1 && !strided_ok)) continue;
        uint32_t tiles[64], stages[64], swz = 0;
        int32_t omax = 0;
        int nt = lt_cap_ids(&algo, CUBLASLT_ALGO_CAP_TILE_IDS, tiles, 64);
        int ns = lt_cap_ids(&algo, CUBLASLT_ALGO_CAP_STAGES_IDS, stages, 64);
        cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_CTA_SWIZZLING_SUPPORT, &swz,
                                          sizeof swz, &w);
        cublasLtMatmulAlgoCapGetAttribute(&algo, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX, &omax,
                                          sizeof omax, &w);
        if (omax > 7) omax = 7;
        for (int t = 0; t < nt; t++)
            for (int st = 0; st < ns; st++)
                for (uint32_t sw = 0; sw <= (swz ? 1u : 0u); sw++)
                    for (uint32_t op = 0; op <= (uint32_t)omax && n < cap; op++) {
                        cublasLtMatmulAlgo_t x = algo;
                        cublasLtMatmulHeuristicResult_t r;
                        if (cublasLtMatmulAlgoConfigSetAttribute(&x, CUBLASLT_ALGO_CONFIG_TILE_ID,
                                                                 &tiles[t], sizeof tiles[t]) ||
                            cublasLtMatmulAlgoConfigSetAttribute(
                                &x, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages[st], sizeof stages[st]) ||
                            cublasLtMatmulAlgoConfigSetAttribute(
                                &x, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &sw, sizeof sw) ||
                            cublasLtMatmulAlgoConfigSetAttribute(
                                &x, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &op, sizeof op) ||
                            cublasLtMatmulAlgoCheck(c->lt, e->desc, e->la, e->lb, e->lc, e->lc, &x,
                                                    &r) != CUBLAS_STATUS_SUCCESS ||
                            r.workspaceSize > LT_WS)
                            continue;
                        v[n++] = x;
                    }
    }
    return n;
}

// Times enumerated configurations for the shape beside the heuristic's candidates (updates *best
// and the entry's pick), at most c->configs of them. Where timing them all would cost more than
// c->enum_budget_ms (two runs each at the default kernel's time), they are screened on the
// shape's first M' rows (M' scaled to fit the budget, at least 256) and only the LT_ENUM_FINAL
// fastest there run on the whole shape: a kernel's rank among these tiled kernels barely depends
// on the row count. -1 on a CUDA error.
static int lt_enumerate(fastmm_cuda *c, lt_entry *e, const void *A, const void *B, void *C,
                        float *best)
{
    cublasLtMatmulAlgo_t *v = (cublasLtMatmulAlgo_t *)malloc(LT_ENUM_MAX * sizeof *v);
    float *ts = (float *)malloc(LT_ENUM_MAX * sizeof *ts);
    lt_entry px;
    memset(&px, 0, sizeof px);
    int rc = -1;
    if (!v || !ts) {
        tg_fail("out of memory");
        goto out;
    }
    e->nvalid = lt_configs(c, e, v, LT_ENUM_MAX);
    int n;
    n = e->nvalid < c->configs ? e->nvalid : c->configs;
    double cost;
    cost = (double)e->t_default * 2 * n;
    e->enum_rows = e->k.M;
    if (cost > c->enum_budget_ms && n > LT_ENUM_FINAL) {
        long rows = (long)(e->k.M * (c->enum_budget_ms / cost)) / 128 * 128;
        e->enum_rows = rows < 256 ? (e->k.M < 256 ? e->k.M : 256) : rows;
        px.k = e->k;
        px.k.M = e->enum_rows;
        px.pedantic = e->pedantic;
        if (lt_describe(&px, e->pedantic ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F)) {
            rc = 0; // no screening shape: the heuristic's candidates stand
            goto out;
        }
        for (int i = 0; i < n; i++) {
            int r = lt_time(c, &px, &v[i], A, B, C, &ts[i]);
            if (r < 0) goto out;
            if (r > 0) ts[i] = 1e30f;
        }
        // the LT_ENUM_FINAL fastest move to the front
        int keep = 0;
        for (int f = 0; f < LT_ENUM_FINAL; f++) {
            int m = -1;
            for (int i = keep; i < n; i++)
                if (ts[i] < 1e30f && (m < 0 || ts[i] < ts[m])) m = i;
            if (m < 0) break;
            cublasLtMatmulAlgo_t x = v[keep];
            float t = ts[keep];
            v[keep] = v[m], ts[keep] = ts[m];
            v[m] = x, ts[m] = t;
            keep++;
        }
        n = keep;
    }
    for (int i = 0; i < n; i++) {
        float ms;
        int r = lt_time(c, e, &v[i], A, B, C, &ms);
        if (r < 0) goto out;
        if (r > 0) continue;
        e->nenum++;
        if (ms < *best) {
            *best = ms;
            e->algo = v[i];
            e->enum_pick = e->nenum - 1;
            e->pick = LT_MAX_CAND; // not one of the heuristic's
        }
    }
    rc = 0;
out:
    lt_entry_release(&px);
    free(v);
    free(ts);
    return rc;
}

// Times cuBLAS's default and up to ncand cuBLASLt candidates for the shape on the given operands
// (C is overwritten) and remembers the fastest in the context.
static int lt_search(fastmm_cuda *c, const lt_key *k, int ncand, const void *A, const void *B,
                     void *C)
{
    if (!c->lt) {
        if (cublasLtCreate(&c->lt) != CUBLAS_STATUS_SUCCESS) {
            c->lt = NULL;
            return tg_fail("fastmm: cublasLtCreate failed");
        }
        if (cudaMalloc(&c->lt_ws, LT_WS) != cudaSuccess) {
            cudaGetLastError();
            c->lt_ws = NULL;
            return tg_fail("fastmm: cannot allocate the GEMM workspace");
        }
        c->lte = (lt_entry *)calloc(LT_CACHE, sizeof(lt_entry));
        if (!c->lte) return tg_fail("out of memory");
    }
    if (c->nlte == LT_CACHE) { // shapes changed wholesale: start over
        for (int i = 0; i < c->nlte; i++) lt_entry_release(&c->lte[i]);
        c->nlte = 0;
    }
    if (ncand > LT_MAX_CAND) ncand = LT_MAX_CAND;
    lt_entry *e = &c->lte[c->nlte];
    memset(e, 0, sizeof *e);
    e->k = *k;
    cublasLtMatmulHeuristicResult_t res[LT_MAX_CAND];
    int found = 0;
    // pedantic fp32 like the baseline; plain fp32 compute (also no TF32) if Lt has none
    for (int ped = 1; ped >= 0 && found == 0; ped--) {
        lt_entry_release(e);
        e->pedantic = ped;
        if (lt_describe(e, ped ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F)) continue;
        cublasLtMatmulPreference_t pref;
        if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) continue;
        uint64_t ws = LT_WS;
        uint32_t al[3] = {(uint32_t)k->alB, (uint32_t)k->alA, (uint32_t)k->alC}; // Lt's A is our B
        if (cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &ws, sizeof ws) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                 &al[0], sizeof al[0]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                 &al[1], sizeof al[1]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                 &al[2], sizeof al[2]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                 &al[2], sizeof al[2]) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoGetHeuristic(c->lt, e->desc, e->la, e->lb, e->lc, e->lc, pref,
                                           ncand, res, &found) != CUBLAS_STATUS_SUCCESS)
            found = 0;
        cublasLtMatmulPreferenceDestroy(pref);
    }
    float best = 1e30f;
    e->pick = -1;
    for (int i = -1; i < found; i++) {
        if (i >= 0 && res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        float ms;
        int r = lt_time(c, e, i < 0 ? NULL : &res[i].algo, A, B, C, &ms);
        if (r < 0) return -1;
        if (r > 0 && i < 0) return tg_fail("fastmm: cuBLAS SGEMM refused the shape");
        if (r > 0) continue;
        e->ncand++;
        if (i < 0) e->t_default = ms;
        if (ms < best && !(i < 0 && c->tail_force)) {
            best = ms;
            e->pick = i;
            if (i >= 0) e->algo = res[i].algo;
        }
    }
    e->enum_pick = -1;
    if (c->configs > 0 && e->desc && lt_enumerate(c, e, A, B, C, &best)) return -1;
    e->t_best = best;
    e->use_lt = e->pick >= 0;
    if (!e->use_lt) lt_entry_release(e);
    c->nlte++;
    return 0;
}

// ---- balanced waves (opts.tail) ----

// Rows x columns of a cuBLASLt tile id (the column-major view: rows are our C's columns, columns
// our C's rows); 0 where unknown.
static int lt_tile_dims(int id, int *rows, int *cols)
{
    static const short d[][2] = {{0, 0},     {8, 8},     {8, 16},    {16, 8},   {8, 32},
                                 {16, 16},   {32, 8},    {8, 64},    {16, 32},  {32, 16},
                                 {64, 8},    {32, 32},   {32, 64},   {64, 32},  {32, 128},
                                 {64, 64},   {128, 32},  {64, 128},  {128, 64}, {64, 256},
                                 {128, 128}, {256, 64},  {64, 512},  {128, 256}, {256, 128},
                                 {512, 64},  {64, 96},   {96, 64},   {96, 128}, {128, 160},
                                 {160, 128}, {192, 128}, {128, 192}, {128, 96}, {32, 256},
                                 {256, 32}};
    if (id <= 0 || id >= (int)(sizeof d / sizeof d[0])) return 0;
    *rows = d[id][0], *cols = d[id][1];
    return 1;
}

__global__ void ptr_shift_kernel(const char *const *pa, const char *const *pc, const char **oa,
                                 char **oc, int n, long offa, long offc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) oa[i] = pa[i] + offa, oc[i] = (char *)pc[i] + offc;
}

static long align_bytes(uintptr_t x);

#define TRING 8192 // shifted pointers of pointer-array splits (a ring; see lt_split)

// Entry e's GEMM split at row M - t on c->s: the last t rows by sub[1] with algorithm talgo on
// c->sl, queued first, the others by sub[0] (e's kernel) on c->sh; c->s waits for both. The
// small tiles' blocks wait behind the high-priority ones and take the SMs these leave in their
// last wave. Pointer-array batches get the tail's shifted pointers from a kernel on c->s into
// a ring slot: c->s waits for each split's tail before its next work, so a slot is rewritten
// only after the split that read it. 0, 1 if cuBLASLt refused a kernel, -1 on a CUDA error.
static int lt_split(fastmm_cuda *c, const lt_entry *e, const lt_entry *sub, long t,
                    const cublasLtMatmulAlgo_t *talgo, const void *A, const void *B, void *C)
{
    const lt_key *k = &e->k;
    long offa = (k->M - t) * k->lda * 4, offc = (k->M - t) * k->ldc * 4;
    const void *At = (const char *)A + offa;
    void *Ct = (char *)C + offc;
    if (k->ptr) {
        int n = (int)k->batch;
        if (!c->tring) {
            if (cudaMalloc(&c->tring, TRING * sizeof(void *)) != cudaSuccess) {
                cudaGetLastError();
                c->tring = NULL;
                return tg_fail("fastmm: cannot allocate the split's pointers"), -1;
            }
            c->tring_pos = 0;
        }
        if (2 * n > TRING) return 1;
        if (c->tring_pos + 2 * n > TRING) c->tring_pos = 0;
        void **oa = c->tring + c->tring_pos, **oc = oa + n;
        c->tring_pos += 2 * n;
        ptr_shift_kernel<<<(n + 127) / 128, 128, 0, c->s>>>(
            (const char *const *)A, (const char *const *)C, (const char **)oa, (char **)oc, n,
            offa, offc);
        CK(cudaGetLastError());
        At = oa, Ct = oc;
    }
    CK(cudaEventRecord(c->tlev[0], c->s));
    CK(cudaStreamWaitEvent(c->sl, c->tlev[0], 0));
    CK(cudaStreamWaitEvent(c->sh, c->tlev[0], 0));
    cublasStatus_t st1 = lt_exec_on(c, &sub[1], talgo, At, B, Ct, c->sl, false);
    cublasStatus_t st0 = lt_exec_on(c, &sub[0], &e->algo, A, B, C, c->sh, true);
    CK(cudaEventRecord(c->tlev[1], c->sl));
    CK(cudaEventRecord(c->tlev[2], c->sh));
    CK(cudaStreamWaitEvent(c->s, c->tlev[1], 0));
    CK(cudaStreamWaitEvent(c->s, c->tlev[2], 0));
    return st0 != CUBLAS_STATUS_SUCCESS || st1 != CUBLAS_STATUS_SUCCESS;
}

static int lt_time_split(fastmm_cuda *c, const lt_entry *e, const lt_entry *sub, long t,
                         const cublasLtMatmulAlgo_t *talgo, const void *A, const void *B, void *C,
                         float *ms)
{
    for (int r = 0; r < 2; r++) {
        if (r == 1) CK(cudaEventRecord(c->tev[0], c->s));
        int rc = lt_split(c, e, sub, t, talgo, A, B, C);
        if (rc) return rc;
    }
    CK(cudaEventRecord(c->tev[1], c->s));
    CK(cudaEventSynchronize(c->tev[1]));
    CK(cudaEventElapsedTime(ms, c->tev[0], c->tev[1]));
    return 0;
}

// Searches entry e's balanced split: tails of one and two of its kernel's row tiles (the
// tile's columns in the column-major view) up to a quarter of the rows, each with every tile a
// quarter to a sixteenth the size of e's that cuBLASLt takes for the tail (per tile its first
// configuration, with e's stages where it has them), timed on the operands against e's kernel
// timed again; keeps the fastest split if faster (or with tail_force). -1 on a CUDA error.
static int lt_tail_search(fastmm_cuda *c, lt_entry *e, const void *A, const void *B, void *C)
{
    e->tail_done = 1;
    int cfg[5], tr, tc;
    lt_cfg_get(&e->algo, cfg);
    if (!e->use_lt || !lt_tile_dims(cfg[1], &tr, &tc)) return 0;
    const cublasComputeType_t ct = e->pedantic ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
    int r = lt_time(c, e, &e->algo, A, B, C, &e->t_whole);
    if (r) return r < 0 ? -1 : 0;
    float best = c->tail_force ? 1e30f : e->t_whole;
    cublasLtMatmulAlgo_t *v = (cublasLtMatmulAlgo_t *)malloc(LT_ENUM_MAX * sizeof *v);
    if (!v) return tg_fail("out of memory");
    int rc = -1;
    lt_entry cur[2];
    memset(cur, 0, sizeof cur);
    // forced (tests): also a half and a quarter tile, so that small shapes get a split
    const long tails[4] = {tc, 2L * tc, tc / 2, tc / 4};
    for (int m = 0; m < (c->tail_force ? 4 : 2); m++) {
        long t = tails[m];
        if (t < 8 || 4 * t > e->k.M) continue;
        for (int i = 0; i < 2; i++) {
            lt_entry_release(&cur[i]);
            memset(&cur[i], 0, sizeof cur[i]);
            cur[i].k = e->k;
            cur[i].k.M = i ? t : e->k.M - t;
            cur[i].pedantic = e->pedantic;
        }
        // the tail's operands start (M - t) rows down
        cur[1].k.alA = align_bytes((uintptr_t)e->k.alA | (uintptr_t)((e->k.M - t) * e->k.lda * 4));
        cur[1].k.alC = align_bytes((uintptr_t)e->k.alC | (uintptr_t)((e->k.M - t) * e->k.ldc * 4));
        cublasLtMatmulHeuristicResult_t hr;
        if (lt_describe(&cur[0], ct) || lt_describe(&cur[1], ct) ||
            cublasLtMatmulAlgoCheck(c->lt, cur[0].desc, cur[0].la, cur[0].lb, cur[0].lc,
                                    cur[0].lc, &e->algo, &hr) != CUBLAS_STATUS_SUCCESS ||
            hr.workspaceSize > LT_WS)
            continue;
        int n = lt_configs(c, &cur[1], v, LT_ENUM_MAX), seen[64] = {0}, won = 0;
        cublasLtMatmulAlgo_t walgo;
        for (int i = 0; i < n; i++) {
            int ci[5], r2, c2;
            lt_cfg_get(&v[i], ci);
            if (!lt_tile_dims(ci[1], &r2, &c2) || ci[1] >= 64 || seen[ci[1]] ||
                (c->tail_force ? r2 * c2 > tr * tc
                               : 4 * r2 * c2 > tr * tc || 16 * r2 * c2 < tr * tc))
                continue;
            // this tile's configuration with e's stages if it has one, else its first
            int j = i;
            for (int q = i; q < n; q++) {
                int cq[5];
                lt_cfg_get(&v[q], cq);
                if (cq[1] == ci[1] && cq[2] == cfg[2]) {
                    j = q;
                    break;
                }
            }
            seen[ci[1]] = 1;
            if (cublasLtMatmulAlgoCheck(c->lt, cur[1].desc, cur[1].la, cur[1].lb, cur[1].lc,
                                        cur[1].lc, &v[j], &hr) != CUBLAS_STATUS_SUCCESS ||
                hr.workspaceSize > 0)
                continue;
            float ms;
            int x = lt_time_split(c, e, cur, t, &v[j], A, B, C, &ms);
            if (x < 0) goto out;
            if (x > 0) continue;
            e->ntail++;
            if (ms < best) {
                best = e->t_tail = ms;
                won = 1;
                walgo = v[j];
            }
        }
        if (won) { // cur's descriptors move into the entry
            if (e->sub) {
                lt_entry_release(&e->sub[0]);
                lt_entry_release(&e->sub[1]);
            } else if (!(e->sub = (lt_entry *)calloc(2, sizeof(lt_entry)))) {
                tg_fail("out of memory");
                goto out;
            }
            e->sub[0] = cur[0], e->sub[1] = cur[1];
            e->sub[1].algo = walgo;
            e->tail = t;
            memset(cur, 0, sizeof cur);
        }
    }
    rc = 0;
out:
    lt_entry_release(&cur[0]);
    lt_entry_release(&cur[1]);
    free(v);
    return rc;
}

extern "C" void fastmm_cuda_search_report(fastmm_cuda *c, FILE *f, const char *indent)
{
    for (int i = 0; i < c->nlte; i++) {
        lt_entry *e = &c->lte[i];
        if (e->reported) continue;
        e->reported = 1;
        fprintf(f, "%sGEMM %ldx%ldx%ld x%ld%s: default %.2f ms, best %.2f ms (%+.1f%%): %s", indent,
                e->k.M, e->k.N, e->k.K, e->k.batch, e->k.ptr ? " ptr" : "", e->t_default, e->t_best,
                100.0 * e->t_default / e->t_best - 100.0,
                e->use_lt ? "cuBLASLt candidate" : "cuBLAS default");
        if (e->use_lt && e->enum_pick >= 0)
            fprintf(f, " (enumerated, %d of %d)", e->enum_pick + 1, e->nenum);
        else if (e->use_lt)
            fprintf(f, " %d of %d", e->pick + 1, e->ncand - 1);
        else
            fprintf(f, " (%d Lt candidates)", e->ncand - 1);
        if (e->use_lt) {
            int cfg[5];
            lt_cfg_get(&e->algo, cfg);
            fprintf(f, " (%s; algo %d tile %d stages %d swizzle %d option %d)",
                    e->pedantic ? "32F_PEDANTIC" : "32F", cfg[0], cfg[1], cfg[2], cfg[3], cfg[4]);
        }
        if (e->nvalid) {
            fprintf(f, "; %d enumerated configurations timed of %d accepted", e->nenum, e->nvalid);
            if (e->enum_rows < e->k.M) fprintf(f, " (screened on %ld rows)", e->enum_rows);
        }
        if (e->tail > 0) {
            int cfg[5];
            lt_cfg_get(&e->sub[1].algo, cfg);
            fprintf(f, "; balanced: last %ld rows on tile %d (stages %d swizzle %d), %.2f ms "
                    "against %.2f whole (%d splits timed)", e->tail, cfg[1], cfg[2], cfg[3],
                    e->t_tail, e->t_whole, e->ntail);
        } else if (e->tail_done && e->use_lt)
            fprintf(f, "; no balanced split faster (%d timed against %.2f ms whole)", e->ntail,
                    e->t_whole);
        fputc('\n', f);
    }
}

// Alignment in bytes (up to 256) that every matrix of a strided batch has.
static long align_of(const void *p, long stride_elems)
{
    uintptr_t a = (uintptr_t)p | (uintptr_t)(stride_elems * 4) | 256;
    return (long)(a & (~a + 1));
}

// The searched kernel for shape k, if one was found faster than cuBLAS's default: runs it and
// sets *done. search: 0 use what was found, n > 0 also search with n candidates now.
static int lt_pick(fastmm_cuda *c, const lt_key *k, int search, const void *A, const void *B,
                   void *C, int *done)
{
    *done = 0;
    lt_entry *e = c->lte ? lt_find(c, k) : NULL;
    if (!e && search > 0) {
        if (lt_search(c, k, search, A, B, C)) return -1;
        e = lt_find(c, k);
    }
    if (e && e->use_lt) {
        bool tail = c->tail_on && !c->green_on;
        if (tail && !e->tail_done && search > 0 && lt_tail_search(c, e, A, B, C)) return -1;
        if (tail && e->tail > 0) {
            int r = lt_split(c, e, e->sub, e->tail, &e->sub[1].algo, A, B, C);
            if (r < 0) return -1;
            if (r > 0) return tg_fail("fastmm: cuBLASLt refused the balanced split it took");
            fastmm_cuda_ntail++;
        } else
            CB(lt_exec(c, e, &e->algo, A, B, C));
        *done = 1;
    }
    return 0;
}

// Row-major C (M x N) = A (M x K) B (K x N), batched over `batch` with strides, as column-major
// C^T = B^T A^T. search (fp32 only): -1 cuBLAS's default kernel; 0 the kernel found fastest for
// the shape if one was searched, else the default; n > 0 also search with n candidates now.
static int gemm(fastmm_cuda *c, fastmm_prec prec, int search, long M, long N, long K,
                const void *A, long lda, long sA, const void *B, long ldb, long sB, float *C,
                long ldc, long sC, int batch)
{
    const float one = 1.0f, zero = 0.0f;
    if (prec == FASTMM_FP32 && search >= 0) {
        lt_key k;
        memset(&k, 0, sizeof k);
        k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc, k.batch = batch;
        if (batch > 1) k.sA = sA, k.sB = sB, k.sC = sC;
        k.alA = align_of(A, batch > 1 ? sA : 0);
        k.alB = align_of(B, batch > 1 ? sB : 0);
        k.alC = align_of(C, batch > 1 ? sC : 0);
        int done;
        if (lt_pick(c, &k, search, A, B, C, &done)) return -1;
        if (done) return 0;
    }
    if (prec == FASTMM_FP32) {
        CB(cublasSetMathMode(c->h, CUBLAS_PEDANTIC_MATH));
        if (batch == 1)
            CB(cublasSgemm(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                           (const float *)B, (int)ldb, (const float *)A, (int)lda, &zero, C,
                           (int)ldc));
        else
            CB(cublasSgemmStridedBatched(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K,
                                         &one, (const float *)B, (int)ldb, sB,
                                         (const float *)A, (int)lda, sA, &zero, C, (int)ldc, sC,
                                         batch));
        return 0;
    }
    CB(cublasSetMathMode(c->h, CUBLAS_DEFAULT_MATH));
    cudaDataType_t t = prec == FASTMM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t ct = prec == FASTMM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CB(cublasGemmStridedBatchedEx(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                                  B, t, (int)ldb, sB, A, t, (int)lda, sA, &zero, C, CUDA_R_32F,
                                  (int)ldc, sC, batch, ct, CUBLAS_GEMM_DEFAULT));
    return 0;
}

// The pointer-array batched form: pa, pb, pc are device arrays of `batch` addresses (A, B and C
// of each product), alA..alC the alignment in bytes every address of that array has.
static int gemm_ptr(fastmm_cuda *c, fastmm_prec prec, int search, long M, long N, long K,
                    const void *pa, long lda, const void *pb, long ldb, void *pc, long ldc,
                    int batch, long alA, long alB, long alC)
{
    const float one = 1.0f, zero = 0.0f;
    if (prec == FASTMM_FP32 && search >= 0) {
        lt_key k;
        memset(&k, 0, sizeof k);
        k.M = M, k.N = N, k.K = K, k.lda = lda, k.ldb = ldb, k.ldc = ldc, k.batch = batch;
        k.alA = alA, k.alB = alB, k.alC = alC, k.ptr = 1;
        int done;
        if (lt_pick(c, &k, search, pa, pb, pc, &done)) return -1;
        if (done) return 0;
    }
    if (prec == FASTMM_FP32) {
        CB(cublasSetMathMode(c->h, CUBLAS_PEDANTIC_MATH));
        CB(cublasSgemmBatched(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                              (const float *const *)pb, (int)ldb, (const float *const *)pa,
                              (int)lda, &zero, (float *const *)pc, (int)ldc, batch));
        return 0;
    }
    CB(cublasSetMathMode(c->h, CUBLAS_DEFAULT_MATH));
    cudaDataType_t t = prec == FASTMM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t ct = prec == FASTMM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    CB(cublasGemmBatchedEx(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one,
                           (const void *const *)pb, t, (int)ldb, (const void *const *)pa, t,
                           (int)lda, &zero, (void *const *)pc, CUDA_R_32F, (int)ldc, batch, ct,
                           CUBLAS_GEMM_DEFAULT));
    return 0;
}

// Addresses of the direct path's products, per panel q and term r (index q * R + r): A operand
// = block da[r] of A in place, else term r's cell of the S grid (same leading dimension lda),
// moved down by the panel's first row; B likewise (no panel offset); C = M_r in the stack, or
// with products written into C (ndc > 0): C block dc[r], else cell mc[r] of the temporaries'
// grid (leading dimension ldc), moved down by the panel's first row.
struct ptr_args {
    const char *A, *S, *B, *T;
    float *Mst, *C;
    long lda, ldb, ldc, bm, bk, bn, sM, pr, esz;
    int gwA, gwB, gwC, R, P, ndc;
    int early, ndb; // early: terms with in-place B first in each panel's batch
    const int *da, *db, *dc, *mc;
    const void **pa, **pb;
    float **pc;
};

__global__ void ptr_kernel(ptr_args a)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < a.R * a.P; i += gridDim.x * blockDim.x) {
        int q = i / a.R, r = i % a.R;
        int ia = a.da[r], ib = a.db[r];
        int j = r; // r's slot in the panel's batch
        if (a.early) {
            int before = 0; // in-place B operands among terms 0..r-1
            for (int t = 0; t < r; t++) before += a.db[t] >= 0;
            j = ib >= 0 ? before : a.ndb + (r - before);
        }
        int ca = ia >= 0 ? ia : r, cb = ib >= 0 ? ib : r;
        long offA = (long)(ca / a.gwA) * a.bm * a.lda + (long)(ca % a.gwA) * a.bk +
                    (long)q * a.pr * a.lda;
        long offB = (long)(cb / a.gwB) * a.bk * a.ldb + (long)(cb % a.gwB) * a.bn;
        long s = (long)q * a.R + j;
        a.pa[s] = (ia >= 0 ? a.A : a.S) + offA * a.esz;
        a.pb[s] = (ib >= 0 ? a.B : a.T) + offB * a.esz;
        if (a.ndc) {
            int oc = a.dc[r] >= 0 ? a.dc[r] : a.mc[r];
            a.pc[s] = (a.dc[r] >= 0 ? a.C : a.Mst) + (long)(oc / a.gwC) * a.bm * a.ldc +
                      (long)(oc % a.gwC) * a.bn + (long)q * a.pr * a.ldc;
        } else
            a.pc[s] = a.Mst + (long)r * a.sM + (long)q * a.pr * a.bn;
    }
}

// Alignment in bytes (up to 256) of every sum of the given byte offsets.
static long align_bytes(uintptr_t x) { x |= 256; return (long)(x & (~x + 1)); }

extern "C" int fastmm_gemm_cuda_plain(fastmm_cuda *c, fastmm_prec prec, long M, long N, long K,
                                      const void *A, long lda, const void *B, long ldb, float *C,
                                      long ldc)
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld", M, N, K);
    return gemm(c, prec, -1, M, N, K, A, lda, 0, B, ldb, 0, C, ldc, 0, 1);
}

extern "C" int fastmm_gemm_cuda_best(fastmm_cuda *c, fastmm_prec prec, int search, long M,
                                     long N, long K, const void *A, long lda, const void *B,
                                     long ldb, float *C, long ldc)
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld", M, N, K);
    return gemm(c, prec, search > 0 ? search : 0, M, N, K, A, lda, 0, B, ldb, 0, C, ldc, 0, 1);
}

static size_t up256(size_t x) { return (x + 255) / 256 * 256; }

template <typename Ts>
static int run_levels(fastmm_cuda *c, fastmm_plan *p, fastmm_level *l, long M, long N, long K,
                      const void *A, long lda, const void *B, long ldb, float *C, long ldc,
                      const fastmm_cfg *cfg)
{
    if (level_upload(c->s, l)) return -1;
    tg_dims dm = tg_fact_dims(l->f);
    fastmm_geom g = fastmm_geometry(dm, M, K, N);
    int R = tg_fact_rank(l->f);
    size_t esz = sizeof(Ts);
    // per term: S_r, T_r (operand type), M_r (fp32); each rounded to 256 bytes
    size_t sS = ((size_t)g.bm * g.bk * esz + 255) / 256 * 256 / esz;
    size_t sT = ((size_t)g.bk * g.bn * esz + 255) / 256 * 256 / esz;
    size_t sM = ((size_t)g.bm * g.bn * 4 + 255) / 256 * 256 / 4;
    size_t per = (sS + sT) * esz + sM * 4;
    size_t limit = p->opts.workspace;
    if (!limit) {
        size_t fr = 0, tot = 0;
        CK(cudaMemGetInfo(&fr, &tot));
        limit = (fr + c->ws_size) / 4 * 3;
    }
    int P = cfg->panels;
    if (P < 1) P = 1;
    if (P > MAX_PANELS) P = MAX_PANELS;
    if (P > g.bm) P = (int)g.bm;
    long pr = (g.bm + P - 1) / P;
    P = (int)((g.bm + pr - 1) / pr);
    // direct operands: S_r and T_r laid out as grids with the inputs' leading dimensions (term r
    // in cell r), so that in-place blocks and combined operands go through one pointer-array
    // batched GEMM; all terms in one chunk, else the packed layout below
    const fastmm_direct *dir = cfg->direct && fastmm_direct_fits(l, M, K, N) ? l->dir : NULL;
    long rowsS = (R + dm.m - 1) / dm.m * g.bm, rowsT = (R + dm.p - 1) / dm.p * g.bk;
    size_t dS = up256((size_t)rowsS * lda * esz), dT = up256((size_t)rowsT * ldb * esz);
    // products written straight into C: one pointer-array batch has one leading dimension, so
    // the other products' temporaries are a grid with C's (cells 0..R-ndc-1, dm.p per row)
    long rowsM = dir ? (R - dir->ndc + dm.p - 1) / dm.p * g.bm : 0;
    size_t dM = dir && dir->ndc ? up256((size_t)rowsM * ldc * 4) : (size_t)R * sM * 4;
    size_t dP = up256(3 * sizeof(void *) * (size_t)R * P);
    if (dir && dS + dT + dM + dP > limit) dir = NULL; // the packed path in chunks
    const int ndc = dir ? dir->ndc : 0;
    long chunk, nch;
    if (dir) {
        if (direct_upload(c->s, l->dir)) return -1;
        chunk = R;
        nch = 1;
        if (ws_reserve(c, dS + dT + dM + dP)) return -1;
    } else {
        chunk = (long)(limit / per);
        if (chunk > R) chunk = R;
        if (chunk < 1)
            return tg_fail("fastmm: workspace of %zu MiB holds no term (%zu MiB each)",
                           limit >> 20, per >> 20);
        // balance the chunks (7 terms in chunks of 4 + 3, not 6 + 1)
        nch = (R + chunk - 1) / chunk;
        chunk = (R + nch - 1) / nch;
        if (ws_reserve(c, per * chunk)) return -1;
    }
    if (c->prof && (nch != 1 || P != 1))
        return tg_fail("fastmm: phase timing needs one chunk of terms and one panel");
    const dev_level *d = (const dev_level *)(dir ? l->dir->dev : l->dev);
    cmap mp[3];
    for (int t = 0; t < 3; t++) {
        mp[t].ptr = d->ptr[t];
        mp[t].idx = d->idx[t];
        mp[t].val = d->val[t];
        mp[t].dn = d->dn[t];
        mp[t].ld_dn = d->nin[t];
        mp[t].acc = t == 2 && ndc ? d->cacc : NULL;
    }
    const int kind = cfg->comb;
    Ts *S = (Ts *)c->ws;
    Ts *T = (Ts *)((char *)c->ws + (dir ? dS : sS * esz * chunk));
    float *P_ = (float *)((char *)c->ws + (dir ? dS + dT : (sS + sT) * esz * chunk));
    bool in_bf16 = sizeof(Ts) == 2;
    bset Ain = grid_set(A, lda, M, K, dm.m, g.bk, in_bf16 ? 2 : 4);
    bset Bin = grid_set(B, ldb, K, N, dm.p, g.bn, in_bf16 ? 2 : 4);
    if (in_bf16) { // 4 bf16 = 8 bytes: 8-byte alignment suffices
        Ain.vec = ((uintptr_t)A & 7) == 0 && lda % 4 == 0 && g.bk % 4 == 0;
        Bin.vec = ((uintptr_t)B & 7) == 0 && ldb % 4 == 0 && g.bn % 4 == 0;
    }
    bset Cout = grid_set(C, ldc, M, N, dm.p, g.bn, 4);
    // pipelined panels: combinations on s2, or on the high-priority s3 (they then take
    // multiprocessors as the products' thread blocks retire, before the products' next ones)
    cudaStream_t cs = cfg->prio == 1 && P > 1 ? c->s3 : c->s2;
    // green contexts (run_green): the products on c->s = c->gp, the combinations beside them
    // (bs) on c->gc; the first A (and B) and the last C, which nothing hides, stay on cs (every
    // SM). Events are recorded only on streams of their own context.
    const bool green = c->green_on;
    cudaStream_t bs = green ? c->gc : cs;
    cudaEvent_t *EP = green ? c->gpev : c->ev, *EB = green ? c->gcev : c->ev;
    cudaEvent_t evA[MAX_PANELS], *evG = EP + MAX_PANELS, start = EP[2 * MAX_PANELS],
                end = c->ev[2 * MAX_PANELS + 1], evB = c->ev[2 * MAX_PANELS + 2];
    for (int q = 0; q < MAX_PANELS; q++) evA[q] = q ? EB[q] : c->ev[0];
    // early start (direct operands): cs runs A(0) before B, and the first panel's products
    // with in-place B operands (first in the batch) run while B is combined; the rest after it.
    // Otherwise every product waits for B's combination, which nothing hides (0.2 ms of
    // one-level Strassen's ~18.7 at 8192 on the H100).
    const int early = dir && cfg->early && !c->prof && l->dir->ndb > 0 && l->dir->ndb < R;
    // opts.overlap: the products of odd panels on s4, so that a panel's products take the SMs
    // the previous panel's last wave leaves idle instead of waiting for it. The panels of a
    // chunk share no buffer they write (each its own rows of S and of the temporaries; T is
    // read only), and every C combination waits for its panel's products, so the combinations'
    // stream still joins everything. Not with green contexts (their own products stream).
    // products first (cfg->prio 2): the products on s5, of the device's highest priority, the
    // combinations at normal priority. The products' pending thread blocks then always go
    // ahead, so the combinations beside them run where the products leave SMs idle (each
    // panel's last wave: 28 of 132 at 8192), instead of taking SMs at the panel's start and
    // leaving its tail idle. The A combination of the next panel, queued behind the previous
    // C on the combinations' stream, runs in that tail too.
    const bool php = cfg->prio == 2 && (P > 1 || early) && !green && !c->prof;
    const bool xo = cfg->overlap && P > 1 && !green && !c->prof && !php;
    // cs starts after everything the caller queued on s
    CK(cudaEventRecord(start, c->s));
    CK(cudaStreamWaitEvent(cs, start, 0));
    if (green) CK(cudaStreamWaitEvent(bs, start, 0));
    int search = p->opts.gemm_search > 0 ? c->search : -1;
    const void **pa = NULL, **pb = NULL;
    float **pc = NULL;
    long alA = 0, alB = 0, alC = 0;
    int nA = R, nB = R; // operands the A / B combinations write
    if (dir) {
        pa = (const void **)((char *)c->ws + dS + dT + dM);
        pb = pa + (size_t)R * P;
        pc = (float **)(pb + (size_t)R * P);
        ptr_args a;
        a.A = (const char *)A, a.S = (const char *)S, a.B = (const char *)B, a.T = (const char *)T;
        a.Mst = P_;
        a.C = C, a.ldc = ldc, a.gwC = dm.p, a.ndc = ndc, a.dc = d->dc, a.mc = d->mc;
        a.lda = lda, a.ldb = ldb, a.bm = g.bm, a.bk = g.bk, a.bn = g.bn, a.sM = (long)sM, a.pr = pr;
        a.esz = (long)esz;
        a.gwA = dm.m, a.gwB = dm.p, a.R = R, a.P = P, a.da = d->da, a.db = d->db;
        a.early = early, a.ndb = l->dir->ndb;
        a.pa = pa, a.pb = pb, a.pc = pc;
        ptr_kernel<<<(R * P + 255) / 256, 256, 0, c->s>>>(a);
        CK(cudaGetLastError());
        alA = align_bytes((uintptr_t)A | (uintptr_t)S | (uintptr_t)(g.bm * lda * esz) |
                          (uintptr_t)(g.bk * esz) | (uintptr_t)(P > 1 ? pr * lda * esz : 0));
        alB = align_bytes((uintptr_t)B | (uintptr_t)T | (uintptr_t)(g.bk * ldb * esz) |
                          (uintptr_t)(g.bn * esz));
        alC = ndc ? align_bytes((uintptr_t)P_ | (uintptr_t)C | (uintptr_t)(g.bm * ldc * 4) |
                                (uintptr_t)(g.bn * 4) | (uintptr_t)(P > 1 ? pr * ldc * 4 : 0))
                  : align_bytes((uintptr_t)P_ | (uintptr_t)(sM * 4) |
                                (uintptr_t)(P > 1 ? pr * g.bn * 4 : 0));
        nA = R - l->dir->nda;
        nB = R - l->dir->ndb;
    }
    if (xo || php) { // s4 / s5 after the caller's work and the pointer arrays
        CK(cudaEventRecord(c->ev[EV_XS], c->s));
        CK(cudaStreamWaitEvent(php ? c->s5 : c->s4, c->ev[EV_XS], 0));
        if (xo) fastmm_cuda_noverlap++;
        else fastmm_cuda_nprodfirst++;
    }
    if (c->prof) { // one chunk, one panel: the phases run one after the other
        CK(cudaEventRecord(c->tev[0], cs));
        c->prof_bytes[0] = (double)esz * ((double)M * K + (double)nA * g.bm * g.bk);
        c->prof_bytes[1] = (double)esz * ((double)K * N + (double)nB * g.bk * g.bn);
        c->prof_bytes[2] = 2.0 * R * g.bm * g.bk * g.bn;
        c->prof_bytes[3] = 4.0 * ((double)R * g.bm * g.bn + (double)M * N);
    }
    for (long r0 = 0; r0 < R; r0 += chunk) {
        int gc = (int)(R - r0 < chunk ? R - r0 : chunk);
        bset Sst = stack_set(S, g.bm, g.bk), Tst = stack_set(T, g.bk, g.bn);
        Sst.bstride = sS;
        Tst.bstride = sT;
        if (in_bf16) {
            Sst.vec = g.bk % 4 == 0;
            Tst.vec = g.bn % 4 == 0;
        }
        if (dir) { // term r's operand in grid cell r; terms read in place have empty rows
            Sst = grid_set(S, lda, rowsS, dm.m * g.bk, dm.m, g.bk, (int)esz);
            Tst = grid_set(T, ldb, rowsT, dm.p * g.bn, dm.p, g.bn, (int)esz);
        }
        int mode = dir ? 2 : 0;
        bset Pst = stack_set(P_, g.bm, g.bn);
        Pst.bstride = sM;
        // with products written into C: the temporaries' grid, and only they are inputs
        if (ndc) Pst = grid_set(P_, ldc, rowsM, dm.p * g.bn, dm.p, g.bn, 4);
        const int ldm = ndc ? (int)ldc : (int)g.bn;
        // cs: B, A(0), A(1), [G0] C(0), A(2), [G1] C(1), ...; s: [A(p)] G(p)
        // early: cs: A(0), B, A(1), ...; s: [A(0)] G0 (in-place B terms), [B] G0 (the rest), ...
        // alone (cap 0) unless the phases time the kernels on a forced number of blocks
        int alone = c->prof ? c->prof_cap : 0;
        // beside products: opts.comb_threads per thread block where set (else SK_THREADS)
        const int bnt = p->opts.comb_threads > 0 ? p->opts.comb_threads : SK_THREADS;
        if (!early && nB > 0 &&
            combine<Ts, Ts>(cs, kind, Bin, Tst, g.bk, g.bn, dm.m * dm.p, 0, gc, (int)r0, mp[1],
                            mode, 0, g.bk, alone))
            return -1;
        if (c->prof) CK(cudaEventRecord(c->tev[1], cs));
        for (int q = -1; q < P; q++) {
            if (q + 1 < P) {
                long xb = (q + 1) * pr, xe = xb + pr < g.bm ? xb + pr : g.bm;
                // beside products unless first (A(0): nothing runs yet)
                cudaStream_t as = q >= 0 ? bs : cs;
                if (nA > 0 && combine<Ts, Ts>(as, kind, Ain, Sst, g.bm, g.bk, dm.n * dm.m, 0,
                                              gc, (int)r0, mp[0], mode, xb, xe,
                                              q >= 0 ? cfg->blocks : alone,
                                              q >= 0 ? bnt : SK_THREADS))
                    return -1;
                CK(cudaEventRecord(evA[q + 1], as));
                if (c->prof) CK(cudaEventRecord(c->tev[2], cs));
                if (early && q < 0) {
                    if (combine<Ts, Ts>(cs, kind, Bin, Tst, g.bk, g.bn, dm.m * dm.p, 0, gc,
                                        (int)r0, mp[1], mode, 0, g.bk, cfg->blocks, bnt))
                        return -1;
                    CK(cudaEventRecord(evB, cs));
                }
            }
            if (q < 0) continue;
            long xb = q * pr, xe = xb + pr < g.bm ? xb + pr : g.bm;
            // the panel's products on c->s (cuBLAS's stream), or s4 (opts.overlap, odd panels)
            // or s5 (the products first)
            auto products = [&]() -> int {
                CK(cudaStreamWaitEvent(c->s, evA[q], 0));
                if (dir) {
                    // early, first panel: slots 0..ndb-1 (in-place B) now, the rest after B
                    int n0 = early && q == 0 ? l->dir->ndb : 0;
                    size_t o = (size_t)q * R;
                    if (n0 > 0 && gemm_ptr(c, p->opts.prec, search, xe - xb, g.bn, g.bk, pa + o,
                                           lda, pb + o, ldb, pc + o, ldm, n0, alA, alB, alC))
                        return -1;
                    if (n0 > 0) CK(cudaStreamWaitEvent(c->s, evB, 0));
                    if (gemm_ptr(c, p->opts.prec, search, xe - xb, g.bn, g.bk, pa + o + n0, lda,
                                 pb + o + n0, ldb, pc + o + n0, ldm, R - n0, alA, alB, alC))
                        return -1;
                } else if (gemm(c, p->opts.prec, search, xe - xb, g.bn, g.bk, S + xb * g.bk,
                                g.bk, (long)sS, T, g.bn, (long)sT, P_ + xb * g.bn, g.bn,
                                (long)sM, gc))
                    return -1;
                CK(cudaEventRecord(evG[q], c->s));
                if (c->prof) CK(cudaEventRecord(c->tev[3], c->s));
                return 0;
            };
            int prc;
            if (php || (xo && (q & 1))) {
                cudaStream_t s0 = c->s, ps = php ? c->s5 : c->s4;
                CB(cublasSetStream(c->h, ps));
                c->s = ps;
                prc = products();
                c->s = s0;
                CB(cublasSetStream(c->h, s0));
            } else
                prc = products();
            if (prc) return -1;
            cudaStream_t os = q + 1 < P ? bs : cs;
            CK(cudaStreamWaitEvent(os, evG[q], 0));
            // beside the next panel's products unless last
            // mode 3: the blocks a product was written into accumulate; none left when every
            // product was (each block one product: naive algorithms with m = 1)
            if (ndc < R &&
                combine<float, float>(os, kind, Pst, Cout, g.bm, g.bn, ndc ? R - ndc : gc,
                                      ndc ? 0 : (int)r0, dm.n * dm.p, 0, mp[2],
                                      ndc ? 3 : r0 > 0, xb, xe,
                                      q + 1 < P ? cfg->blocks : alone,
                                      q + 1 < P ? bnt : SK_THREADS))
                return -1;
            if (c->prof) CK(cudaEventRecord(c->tev[4], cs));
        }
        if (green) {
            // cs and bs joined: the next chunk's A(0), B (cs) and A(1) (bs) overwrite
            // operands this chunk's last products read, and its products temporaries this
            // chunk's C combinations on bs read
            CK(cudaEventRecord(EB[EV_GREEN], bs));
            CK(cudaStreamWaitEvent(cs, EB[EV_GREEN], 0));
            CK(cudaEventRecord(c->ev[EV_GREEN], cs));
            CK(cudaStreamWaitEvent(bs, c->ev[EV_GREEN], 0));
        }
    }
    CK(cudaEventRecord(end, cs));
    CK(cudaStreamWaitEvent(c->s, end, 0));
    return 0;
}

// run_levels with the products on a green context of all SMs but cfg->green, the combinations
// beside them on one of those (opts.green; green_make). c->s, cuBLAS's stream and the GEMM
// timing events are the products' stream's while it runs, so that everything run_levels and
// the kernel selection queue on c->s goes there; the caller's stream waits for both streams.
template <typename Ts>
static int run_green(fastmm_cuda *c, fastmm_plan *p, fastmm_level *l, long M, long N, long K,
                     const void *A, long lda, const void *B, long ldb, float *C, long ldc,
                     const fastmm_cfg *cfg)
{
    if (green_make(c, cfg->green)) return -1;
    cudaStream_t s0 = c->s;
    cudaEvent_t t0 = c->tev[0], t1 = c->tev[1];
    CK(cudaEventRecord(c->ev[EV_GREEN], s0));
    CK(cudaStreamWaitEvent(c->gp, c->ev[EV_GREEN], 0));
    CB(cublasSetStream(c->h, c->gp));
    c->s = c->gp;
    c->tev[0] = c->gtev[0];
    c->tev[1] = c->gtev[1];
    c->green_on = 1;
    int rc = run_levels<Ts>(c, p, l, M, N, K, A, lda, B, ldb, C, ldc, cfg);
    c->green_on = 0;
    c->s = s0;
    c->tev[0] = t0;
    c->tev[1] = t1;
    CB(cublasSetStream(c->h, s0));
    if (rc) return -1;
    CK(cudaEventRecord(c->gpev[EV_GREEN], c->gp));
    CK(cudaStreamWaitEvent(s0, c->gpev[EV_GREEN], 0));
    fastmm_cuda_ngreen++;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Fused products (opts.fused): the kernel and its arguments are in fastmm/fused_kernel.cuh.
#include "fastmm/fused_kernel.cuh"

template <int BM, int BN, int BK, int NA>
static int fused_launch_nb(cudaStream_t s, int nb, dim3 grid, const fu_args &a)
{
    switch (nb) {
    case 1: fused_kernel<BM, BN, BK, NA, 1><<<grid, 256, 0, s>>>(a); break;
    case 2: fused_kernel<BM, BN, BK, NA, 2><<<grid, 256, 0, s>>>(a); break;
    case 3: fused_kernel<BM, BN, BK, NA, 3><<<grid, 256, 0, s>>>(a); break;
    case 4: fused_kernel<BM, BN, BK, NA, 4><<<grid, 256, 0, s>>>(a); break;
    default: return tg_fail("fastmm: fused product with %d B terms", nb);
    }
    CK(cudaGetLastError());
    return 0;
}

template <int BM, int BN, int BK>
static int fused_launch_t(cudaStream_t s, int na, int nb, long bm, long bn, const fu_args &a0)
{
    fu_args a = a0;
    a.tiles_m = (int)(bm / BM);
    a.tiles_n = (int)(bn / BN);
    dim3 grid((unsigned)((long)a.tiles_m * a.tiles_n));
    switch (na) {
    case 1: return fused_launch_nb<BM, BN, BK, 1>(s, nb, grid, a);
    case 2: return fused_launch_nb<BM, BN, BK, 2>(s, nb, grid, a);
    case 3: return fused_launch_nb<BM, BN, BK, 3>(s, nb, grid, a);
    case 4: return fused_launch_nb<BM, BN, BK, 4>(s, nb, grid, a);
    default: return tg_fail("fastmm: fused product with %d A terms", na);
    }
}

// the tile shapes of fastmm_fused_tile
static int fused_launch(cudaStream_t s, int variant, int na, int nb, long bm, long bn,
                        const fu_args &a)
{
    switch (variant) {
    case 1: return fused_launch_t<128, 128, 8>(s, na, nb, bm, bn, a);
    case 2: return fused_launch_t<128, 128, 16>(s, na, nb, bm, bn, a);
    case 3: return fused_launch_t<128, 256, 8>(s, na, nb, bm, bn, a);
    case 4: return fused_launch_t<256, 128, 8>(s, na, nb, bm, bn, a);
    default: return tg_fail("fastmm: fused kernel variant %d (1-%d)", variant, FASTMM_FUSED_VARIANTS);
    }
}

// Whether the fused products run this product: the plan's shape rule (fastmm_plan_fused) and
// aligned rows.
static bool fused_aligned(const void *A, long lda, const void *B, long ldb, const float *C,
                          long ldc)
{
    return lda % 4 == 0 && ldb % 4 == 0 && ldc % 4 == 0 && aligned16(A) && aligned16(B) &&
           aligned16(C);
}

static int fused_fits(fastmm_plan *p, long M, long N, long K, const void *A, long lda,
                      const void *B, long ldb, const float *C, long ldc)
{
    return fused_aligned(A, lda, B, ldb, C, ldc) ? fastmm_plan_fused(p, M, K, N) : 0;
}

long fastmm_cuda_nfused; // products run by the fused kernel (tests)

static int run_fused(fastmm_cuda *c, int variant, const fastmm_level *l, long M, long N, long K,
                     const float *A, long lda, const float *B, long ldb, float *C, long ldc)
{
    tg_dims d = tg_fact_dims(l->f);
    unsigned char written[FASTMM_FUSED_MAXC];
    if (l->c.nout > FASTMM_FUSED_MAXC) return tg_fail("fastmm: fused: %d C blocks", l->c.nout);
    memset(written, 0, sizeof written);
    for (int r = 0; r < tg_fact_rank(l->f); r++) {
        fu_args a;
        int na, nb;
        fu_product_args(l, M, N, K, A, lda, B, ldb, C, ldc, r, written, &a, &na, &nb);
        if (fused_launch(c->s, variant, na, nb, M / d.n, N / d.p, a)) return -1;
        fastmm_cuda_nfused++;
    }
    return 0;
}

extern "C" int fastmm_gemm_cuda_own(fastmm_cuda *c, int variant, long M, long N, long K,
                                    const float *A, long lda, const float *B, long ldb, float *C,
                                    long ldc)
{
    int tm, tn, tk;
    if (fastmm_fused_tile(variant, &tm, &tn, &tk)) return -1;
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld lda=%ld ldb=%ld ldc=%ld", M, N, K,
                       lda, ldb, ldc);
    if (M % tm || N % tn || K % tk || K > INT_MAX || !fused_aligned(A, lda, B, ldb, C, ldc))
        return tg_fail("fastmm: own SGEMM (variant %d) needs M a multiple of %d, N of %d, K of "
                       "%d, leading dimensions multiples of 4 and 16-byte aligned matrices "
                       "(M=%ld N=%ld K=%ld)", variant, tm, tn, tk, M, N, K);
    fu_args a;
    memset(&a, 0, sizeof a);
    a.A = A;
    a.B = B;
    a.C = C;
    a.lda = lda;
    a.ldb = ldb;
    a.ldc = ldc;
    a.K = (int)K;
    a.nc = 1;
    a.first = 1;
    a.ac[0] = a.bc[0] = a.cc[0] = 1.f;
    return fused_launch(c->s, variant, 1, 1, M, N, a);
}

static int gemm_cfg_run(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                        long lda, const void *B, long ldb, float *C, long ldc,
                        const fastmm_cfg *cfg);

// Runs configuration cfg (fastmm_gemm_cuda's work for it).
static int gemm_cfg(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                    long lda, const void *B, long ldb, float *C, long ldc, const fastmm_cfg *cfg)
{
    int was = c->tail_on;
    // balanced waves (fp32 products through cuBLASLt: lt_pick), not beside two product streams
    // (their splits would share sl and sh)
    c->tail_on = cfg->tail && !cfg->overlap;
    int rc = gemm_cfg_run(c, p, M, N, K, A, lda, B, ldb, C, ldc, cfg);
    c->tail_on = was;
    return rc;
}

static int gemm_cfg_run(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                        long lda, const void *B, long ldb, float *C, long ldc,
                        const fastmm_cfg *cfg)
{
    if (cfg->fused > 0) {
        if (!fused_aligned(A, lda, B, ldb, C, ldc) ||
            !fastmm_fused_fits_shape(p, cfg->fused, cfg->levels, M, K, N))
            return tg_fail("fastmm: fused variant %d does not take this product", cfg->fused);
        fastmm_level *l = fastmm_plan_level(p, cfg->levels);
        if (!l) return -1;
        return run_fused(c, cfg->fused, l, M, N, K, (const float *)A, lda, (const float *)B, ldb,
                         C, ldc);
    }
    if (cfg->levels == 0)
        return fastmm_gemm_cuda_plain(c, p->opts.prec, M, N, K, A, lda, B, ldb, C, ldc);
    fastmm_level *l = fastmm_plan_level(p, cfg->levels);
    if (!l) return -1;
    // green contexts only where combinations run beside the products, and not for the phases
    // (one panel, one phase at a time)
    if (cfg->green > 0 && !c->prof && (cfg->panels > 1 || (cfg->direct && cfg->early)))
        return p->opts.prec == FASTMM_BF16
                   ? run_green<__nv_bfloat16>(c, p, l, M, N, K, A, lda, B, ldb, C, ldc, cfg)
                   : run_green<float>(c, p, l, M, N, K, A, lda, B, ldb, C, ldc, cfg);
    if (p->opts.prec == FASTMM_BF16)
        return run_levels<__nv_bfloat16>(c, p, l, M, N, K, A, lda, B, ldb, C, ldc, cfg);
    return run_levels<float>(c, p, l, M, N, K, A, lda, B, ldb, C, ldc, cfg);
}

// What fastmm_gemm_cuda runs for this shape: the options, else the tuned choices.
static fastmm_cfg plan_cfg(fastmm_plan *p, long M, long N, long K)
{
    fastmm_cfg cfg;
    cfg.levels = fastmm_plan_levels(p, M, K, N);
    cfg.panels = fastmm_plan_panels(p, M, K, N);
    cfg.prio = fastmm_plan_priority(p, M, K, N);
    cfg.direct = fastmm_plan_direct(p, M, K, N);
    cfg.comb = fastmm_plan_comb(p, M, K, N);
    cfg.early = fastmm_plan_early(p, M, K, N);
    cfg.blocks = fastmm_plan_comb_blocks(p, M, K, N);
    cfg.green = fastmm_plan_green(p, M, K, N);
    cfg.overlap = fastmm_plan_overlap(p, M, K, N);
    cfg.tail = fastmm_plan_tail(p, M, K, N);
    cfg.fused = 0; // fastmm_gemm_cuda runs the fused products before it asks for this
    return cfg;
}

extern "C" int fastmm_gemm_cuda(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K,
                                const void *A, long lda, const void *B, long ldb, float *C,
                                long ldc)
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld lda=%ld ldb=%ld ldc=%ld", M, N, K,
                       lda, ldb, ldc);
    int v = fused_fits(p, M, N, K, A, lda, B, ldb, C, ldc);
    if (v) {
        fastmm_level *l = fastmm_plan_level(p, fastmm_plan_levels(p, M, K, N));
        if (!l) return -1;
        return run_fused(c, v, l, M, N, K, (const float *)A, lda, (const float *)B, ldb, C, ldc);
    }
    fastmm_cfg cfg = plan_cfg(p, M, N, K);
    return gemm_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, &cfg);
}

static int rel_diff_f32(fastmm_cuda *c, long M, long N, const float *C, long ldc, const float *R,
                        long ldr, double *err);

// Times one configuration: a warm-up run (which in fp32 also picks the products' GEMM kernels
// for shapes not seen yet: not timed, as it measures candidates), then the best of two runs.
static int time_cfg(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                    long lda, const void *B, long ldb, float *C, long ldc, const fastmm_cfg *cfg,
                    cudaEvent_t e0, cudaEvent_t e1, float *best)
{
    *best = 1e30f;
    for (int r = 0; r < 3; r++) {
        float ms;
        c->search = r == 0 && p->opts.prec == FASTMM_FP32 ? p->opts.gemm_search : 0;
        int bad = cudaEventRecord(e0, c->s) != cudaSuccess ||
                  gemm_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, cfg);
        c->search = 0;
        if (bad || cudaEventRecord(e1, c->s) != cudaSuccess ||
            cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) {
            if (!tg_errmsg()[0]) tg_fail("fastmm: tuning run failed");
            return -1;
        }
        if (r > 0 && ms < *best) *best = ms;
    }
    return 0;
}

// Runoff: a single timing differs from the later median by more than the candidates differ
// from each other (H100, 22:43 call: chosen at 18.53 ms in tuning, 18.77 ms timed; the grid and
// the stages are greedy, so a noisy stage also steers the next). The fastest few are timed again
// in interleaved rounds, so that a drift of the clocks hits them alike. Each is scored by a round
// above its median (FASTMM_RUNOFF_RANK): a plan that is fast in only some rounds should lose.
// With the median of five, one-panel balanced-wave plans chosen at 18.31-18.33 ms at 8192 timed
// 18.52-18.56 afterwards (H100, 2026-12-07 11:59 call); with the fifth of seven, 55 of 59
// chosen plans timed within 0.1 ms of their scores or faster (14:43-16:17). The lowest score
// wins (*best) and is reported (run_ms, 0 for the others).
static int runoff(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                  long lda, const void *B, long ldb, float *C, long ldc, const fastmm_cfg *cand,
                  const float *ms, int nc, cudaEvent_t e0, cudaEvent_t e1, float *run_ms,
                  int *best)
{
    // the fastest FASTMM_RUNOFF that ran (failed or rejected ones are at 1e30)
    int top[FASTMM_TUNE_CAND], nt = 0;
    for (int i = 0; i < nc; i++) {
        if (ms[i] >= 1e29f) continue;
        int j = nt++;
        for (; j > 0 && ms[top[j - 1]] > ms[i]; j--) top[j] = top[j - 1];
        top[j] = i;
    }
    if (nt > FASTMM_RUNOFF) nt = FASTMM_RUNOFF;
    if (nt < 2) return 0;
    static_assert(FASTMM_RUNOFF_RANK < FASTMM_RUNOFF_ROUNDS, "runoff rank");
    float rt[FASTMM_RUNOFF][FASTMM_RUNOFF_ROUNDS];
    for (int r = 0; r < FASTMM_RUNOFF_ROUNDS; r++)
        for (int k = 0; k < nt; k++)
            if (cudaEventRecord(e0, c->s) != cudaSuccess ||
                gemm_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, &cand[top[k]]) ||
                cudaEventRecord(e1, c->s) != cudaSuccess ||
                cudaEventSynchronize(e1) != cudaSuccess ||
                cudaEventElapsedTime(&rt[k][r], e0, e1) != cudaSuccess) {
                if (!tg_errmsg()[0]) tg_fail("fastmm: tuning run failed");
                return -1;
            }
    for (int k = 0; k < nt; k++) {
        float *x = rt[k]; // a handful: insertion sort, then the middle one
        for (int i = 1; i < FASTMM_RUNOFF_ROUNDS; i++)
            for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
                float tmp = x[j];
                x[j] = x[j - 1];
                x[j - 1] = tmp;
            }
        run_ms[top[k]] = x[FASTMM_RUNOFF_RANK];
        if (k == 0 || run_ms[top[k]] < run_ms[*best]) *best = top[k];
    }
    return 0;
}

extern "C" int fastmm_tune_cuda(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K,
                                const void *A, long lda, const void *B, long ldb, float *C,
                                long ldc)
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld", M, N, K);
    tg_err_clear();
    // forced fused products have nothing to tune (one kernel, no panels or combinations)
    if (p->opts.fused > 0 && fused_fits(p, M, N, K, A, lda, B, ldb, C, ldc))
        return fastmm_gemm_cuda(c, p, M, N, K, A, lda, B, ldb, C, ldc);
    int L0 = fastmm_plan_levels_rule(p, M, K, N), Ls[4], nl = 0;
    if (p->opts.levels >= 0) Ls[nl++] = p->opts.levels;
    else {
        Ls[nl++] = 0; // plain GEMM: where products are cheap (TF32, bf16) it wins
        for (int L = L0 - 1; L <= L0 + 1; L++) {
            if (L < 1 || L > p->opts.max_levels) continue;
            if (L > 0) {
                const tg_fact *f = fastmm_plan_level_fact(p, L);
                if (!f) continue;
                fastmm_geom g = fastmm_geometry(tg_fact_dims(f), M, K, N);
                if (g.bm < 256 || g.bk < 256 || g.bn < 256) continue;
            }
            Ls[nl++] = L;
        }
    }
    // candidates: levels x panels (1, 2, 4) x, for 2 and 4, the combination stream's priority,
    // and 8 panels on the high-priority stream (large blocks only); direct operands as the
    // option says, or (-1) tried on the fastest of those afterwards
    fastmm_cfg cand[FASTMM_TUNE_CAND];
    int nc = 0;
    for (int i = 0; i < nl; i++) {
        static const int pan[] = {1, 2, 4, 8};
        fastmm_geom g = {M, K, N, M, K, N};
        fastmm_level *l = NULL;
        if (Ls[i] > 0) {
            l = fastmm_plan_level(p, Ls[i]);
            if (!l) return -1;
            g = fastmm_geometry(tg_fact_dims(l->f), M, K, N);
        }
        int dir = p->opts.direct == 1 && l && fastmm_direct_fits(l, M, K, N);
        for (int j = 0; j < 4; j++) {
            int P = p->opts.panels > 0 ? p->opts.panels : pan[j];
            if (j > 0 && (p->opts.panels > 0 || Ls[i] == 0 || g.bm / P < 256)) break;
            if (j == 3 && (g.bm / P < 512 || p->opts.priority == 0)) break;
            for (int pri = j == 3; pri < 2; pri++) {
                int pv = p->opts.priority >= 0 ? p->opts.priority : pri;
                if (pri > 0 && (P == 1 || Ls[i] == 0 || (p->opts.priority >= 0 && j < 3))) break;
                if (nc == FASTMM_TUNE_CAND - 1) break;
                cand[nc].levels = Ls[i];
                cand[nc].panels = Ls[i] == 0 ? 1 : P;
                // the products first also applies to one panel with the early start
                cand[nc].prio = P > 1 || pv == 2 ? pv : 0;
                cand[nc].direct = dir;
                cand[nc].comb = p->opts.comb > 3 ? 3 : p->opts.comb > 0 ? p->opts.comb : 0;
                cand[nc].early = dir;
                cand[nc].blocks = p->opts.comb_blocks > 0 ? p->opts.comb_blocks : 0;
                cand[nc].green = p->opts.green > 0 ? p->opts.green : 0;
                cand[nc].overlap = p->opts.overlap > 0;
                cand[nc].tail = p->opts.tail > 0;
                cand[nc].fused = 0;
                nc++;
            }
        }
    }
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    float ms[FASTMM_TUNE_CAND];
    float *ref = NULL;
    // after the grid, on each of its fastest FASTMM_TUNE_BASES configurations with levels (a
    // pass each), on the pass's fastest so far: the streaming combination kernel (stage 0), its
    // deep form (stage 1), then direct operands with their early start (stage 2), then the same
    // without it (stage 3, so that reports show what the early start gains); then on the
    // fastest of all those the combinations beside products on 1/2, 1 and 2 thread blocks per
    // multiprocessor (stages 4-6), then with opts.fused -1 the fused products' variants on the
    // fastest one's levels (stages 7-10), then with opts.green -1 green contexts on the fastest
    // configuration and on the fastest of another panel count (stages 11-12; fewer SMs for
    // the products can change which panel count runs in whole waves), then with opts.overlap
    // -1 consecutive panels' products on two streams on the fastest pipelined configuration,
    // at the other priority and with twice the panels (stages 13-15), then with opts.priority
    // -1 the products at high priority and the combinations at normal priority on the fastest
    // pipelined configuration and on the fastest with another panel count (stages 16-17),
    // then with opts.tail -1 the products' GEMMs in balanced waves on the fastest configuration
    // and on the same with one panel (else on the fastest with another panel count) (stages
    // 18-19; the splits are searched per GEMM shape in the first run); each checked against
    // the grid's fastest.
    // Why more than one base: the grid's panel counts differ by less than one timing's noise
    // before the stages, by more after them (H100, 8192: P2 and P4 within 0.1 ms in the grid,
    // 18.7 against 18.5 ms once streamed and direct), so a greedy refinement of the grid's
    // fastest alone kept the worse one in 4 of 32 runs.
    int best = -1, rc = -1, nbase = nc, stage = 0, tried_direct = 0, base3 = -1, base7 = -1;
    int base13 = -1, base16 = -1, base18 = -1;
    int bases[FASTMM_TUNE_BASES] = {0}, nbases = -1, pass = 0, pbest = -1;
    int nsm = 0, dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
        cudaGetLastError();
        nsm = 0; // stages 4-6 skipped
    }
    const char *what[FASTMM_TUNE_CAND] = {NULL};
    // the fastest timed candidate with levels that `want` accepts, -1 if none (the stages'
    // bases)
    auto fastest = [&](auto want) {
        int j = -1;
        for (int k = 0; k < nc; k++)
            if (ms[k] < 1e29f && cand[k].levels > 0 && want(cand[k]) && (j < 0 || ms[k] < ms[j]))
                j = k;
        return j;
    };
    for (int i = 0; i <= nc && i < FASTMM_TUNE_CAND; i++) {
        if (i == nc) {
            if (nbases < 0) {
                // the grid is timed: its fastest few with levels, fastest first
                int order[FASTMM_TUNE_CAND], no = 0;
                for (int j = 0; j < nbase; j++) {
                    if (cand[j].levels == 0 || ms[j] >= 1e29f) continue;
                    int k = no++;
                    for (; k > 0 && ms[order[k - 1]] > ms[j]; k--) order[k] = order[k - 1];
                    order[k] = j;
                }
                for (nbases = 0; nbases < no && nbases < FASTMM_TUNE_BASES; nbases++)
                    bases[nbases] = order[nbases];
                pbest = nbases ? bases[0] : best;
            }
            const fastmm_cfg *b = &cand[pbest]; // stages 4-10 start from base3 / base7
            fastmm_level *l = b->levels ? fastmm_plan_level(p, b->levels) : NULL;
            fastmm_cfg x = *b;
            int ok = 0;
            for (; !ok && stage < 20; stage++) {
                if (stage == 4 && pass + 1 < nbases) {
                    // the next base's pass
                    stage = 0;
                    tried_direct = 0;
                    pbest = bases[++pass];
                    b = &cand[pbest];
                    l = b->levels ? fastmm_plan_level(p, b->levels) : NULL;
                }
                x = *b;
                if (stage >= 18) {
                    // balanced waves: on the fastest configuration so far (18), then (19) on
                    // the same with one panel (uncapped: nothing runs beside its products but
                    // the early start's B), else (it had one) on the fastest with another panel
                    // count: one panel's products are one long batch, whose last wave leaves
                    // the most for small tiles to fill (H100, 8192: 4096 x 7 products 18.14 ms
                    // whole, 17.55 split; L1 P1 D S2 18.67 ms, with T 18.43), where each
                    // panel's last wave is the combinations'. Not beside two product streams,
                    // nor on green contexts (lt_pick leaves them whole there)
                    bool one = stage == 19 && base18 >= 0 && cand[base18].panels > 1;
                    int j = one ? base18 : fastest([&](const fastmm_cfg &y) {
                        return !y.fused && !y.green && !y.overlap && !y.tail &&
                               (stage == 18 || (base18 >= 0 && y.panels != 1));
                    });
                    if (stage == 18) base18 = j;
                    ok = p->opts.tail == -1 && j >= 0 && p->opts.prec == FASTMM_FP32 &&
                         p->opts.gemm_search > 0 && (!one || p->opts.panels <= 0);
                    if (ok) {
                        x = cand[j];
                        if (one) {
                            x.panels = 1;
                            x.blocks = 0;
                            x.prio = x.prio == 2 ? 2 : 0; // as the grid's one-panel ones
                        }
                        x.tail = 1;
                    }
                    what[nc] = "balanced waves";
                } else if (stage >= 16) {
                    // the products first (prio 2): on the fastest pipelined configuration so
                    // far (16) and on the fastest with another panel count (17); pipelined:
                    // panels, or the early start
                    int j = fastest([&](const fastmm_cfg &y) {
                        return !y.fused && !y.green && !y.overlap && y.prio != 2 &&
                               (y.panels > 1 || (y.direct && y.early)) &&
                               (stage == 16 ||
                                (base16 >= 0 && y.panels != cand[base16].panels));
                    });
                    if (stage == 16) base16 = j;
                    ok = p->opts.priority == -1 && j >= 0;
                    if (ok) {
                        // uncapped: with the products first the combinations get only the SMs
                        // the products leave, and a cap stretches them past a panel's tail
                        // (H100, 8192: P4p D E S2 b264 18.69 ms, uncapped 18.37-18.47)
                        x = cand[j];
                        x.prio = 2;
                        x.blocks = 0;
                    }
                    what[nc] = "products at high priority";
                } else if (stage >= 13) {
                    // consecutive panels' products on two streams: on the fastest pipelined
                    // configuration so far (13), at the other priority (14: the combinations
                    // must finish before the next panel's products can fill the tail), and
                    // with twice its panels at high priority (15: a panel's products no longer
                    // need whole waves, and smaller first and last panels expose less)
                    if (base13 < 0)
                        base13 = fastest([](const fastmm_cfg &y) {
                            return y.panels > 1 && !y.fused && !y.green && !y.overlap;
                        });
                    ok = p->opts.overlap == -1 && base13 >= 0;
                    if (ok) {
                        x = cand[base13];
                        x.overlap = 1;
                        if (stage == 14) {
                            ok = p->opts.priority < 0;
                            x.prio = !x.prio;
                        } else if (stage == 15) {
                            const tg_fact *f = fastmm_plan_level_fact(p, x.levels);
                            x.panels *= 2;
                            x.prio = p->opts.priority >= 0 ? p->opts.priority : 1;
                            ok = f && p->opts.panels <= 0 && x.panels <= MAX_PANELS &&
                                 fastmm_geometry(tg_fact_dims(f), M, K, N).bm / x.panels >= 256;
                        }
                    }
                    what[nc] = "products on two streams";
                } else if (stage >= 11) {
                    // green contexts where combinations run beside the products: stage 11 on
                    // the fastest so far, 12 on the fastest with another panel count (a
                    // green candidate keeps its base's panels, so best's are stage 11's)
                    int j = -1;
                    for (int k = 0; k < nc; k++) {
                        const fastmm_cfg *y = &cand[k];
                        bool fits = ms[k] < 1e29f && y->levels > 0 && !y->fused && !y->green &&
                                    (y->panels > 1 || (y->direct && y->early));
                        if (fits && (stage == 11 ? k == best
                                                 : y->panels != cand[best].panels &&
                                                       (j < 0 || ms[k] < ms[j])))
                            j = k;
                    }
                    ok = j >= 0 && p->opts.green == -1 && nsm > 16;
                    if (ok) {
                        x = cand[j];
                        x.green = nsm - (nsm - 1) / 16 * 16;
                    }
                    what[nc] = "green contexts";
                } else if (stage >= 7) {
                    // the fused products' variants (stages 7-10) on the levels of the fastest
                    // configuration before them
                    if (base7 < 0) base7 = best;
                    int v = stage - 6;
                    x = cand[base7];
                    ok = p->opts.fused == -1 && x.levels > 0 && fused_aligned(A, lda, B, ldb, C, ldc) &&
                         fastmm_fused_fits_shape(p, v, x.levels, M, K, N);
                    x.fused = v;
                    x.panels = 1;
                    x.prio = x.direct = x.comb = x.early = x.blocks = x.green = 0;
                    x.overlap = x.tail = 0;
                    what[nc] = "fused products";
                } else if (stage == 0) {
                    ok = p->opts.comb == -1 && l && !b->comb;
                    x.comb = 1;
                    what[nc] = "streaming combinations";
                } else if (stage == 1) {
                    ok = p->opts.comb == -1 && l && b->comb != 2;
                    x.comb = 2;
                    what[nc] = "deep streaming combinations";
                } else if (stage == 2) {
                    ok = tried_direct = p->opts.direct == -1 && l && !b->direct &&
                                        fastmm_direct_fits(l, M, K, N);
                    x.direct = 1;
                    x.early = 1;
                    what[nc] = "direct operands";
                } else if (stage == 3) {
                    ok = tried_direct;
                    x.direct = 1;
                    x.early = 0;
                    what[nc] = "direct operands without the early start";
                } else {
                    // only where combinations run beside products: panels or the early start
                    if (base3 < 0) base3 = best;
                    const fastmm_cfg *b3 = &cand[base3];
                    x = *b3;
                    x.blocks = nsm * (1 << (stage - 4)) / 2;
                    ok = p->opts.comb_blocks == -1 && nsm > 0 && b3->levels > 0 && b3->comb >= 1 &&
                         b3->blocks == 0 && (b3->panels > 1 || (b3->direct && b3->early));
                    what[nc] = "combinations beside products on fewer thread blocks";
                }
            }
            if (!ok) break;
            cand[nc++] = x;
            // the first added one: keep the grid's fastest result to check them against (below)
            if (nc - 1 == nbase) {
                if (cudaMalloc(&ref, sizeof(float) * M * N) != cudaSuccess) {
                    cudaGetLastError();
                    ref = NULL; // no room: they go unchecked, as in fastmm_gemm_cuda
                } else if (gemm_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, b) ||
                           cudaMemcpy2DAsync(ref, sizeof(float) * N, C, sizeof(float) * ldc,
                                             sizeof(float) * N, M, cudaMemcpyDeviceToDevice,
                                             c->s) != cudaSuccess)
                    goto out;
            }
        }
        if (time_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, &cand[i], e0, e1, &ms[i])) {
            // an added candidate may fail alone (e.g. a library refusing the pointer-array
            // batch): report, let the work queued so far drain, keep the rest
            if (i < nbase || cudaDeviceSynchronize() != cudaSuccess) goto out;
            fprintf(stderr, "fastmm: tuning: %s failed, not used: %s\n", what[i], tg_errmsg());
            tg_err_clear();
            ms[i] = 1e30f;
            continue;
        }
        if (i >= nbase && ref) {
            // the two differ by rounding only (the GEMM kernels may differ): anything more is a
            // fault of the added path on this machine, which must never be chosen
            double d = 0;
            if (rel_diff_f32(c, M, N, C, ldc, ref, N, &d)) goto out;
            double tol = p->opts.prec == FASTMM_FP32 ? 1e-4 : 3e-2;
            if (!(d <= tol)) {
                fprintf(stderr, "fastmm: tuning: %s disagree with the grid's fastest (%.2e), "
                        "not used\n", what[i], d);
                ms[i] = 1e30f;
                continue;
            }
        }
        if (best < 0 || ms[i] < ms[best]) best = i;
        // stage is past the one that made candidate i: <= 4 for the passes' stages 0-3
        if (i >= nbase && stage <= 4 && ms[i] < ms[pbest]) pbest = i;
    }
    float run_ms[FASTMM_TUNE_CAND]; // no initializer: the gotos above jump past it
    memset(run_ms, 0, sizeof run_ms);
    if (runoff(c, p, M, N, K, A, lda, B, ldb, C, ldc, cand, ms, nc, e0, e1, run_ms, &best))
        goto out;
    {
        fastmm_tuned *t = (fastmm_tuned *)fastmm_plan_tuned(p, M, K, N);
        if (!t) {
            if (p->ntuned == FASTMM_TUNED_MAX) p->ntuned--; // forget the newest
            t = &p->tuned[p->ntuned++];
        }
        t->M = M;
        t->K = K;
        t->N = N;
        t->levels = cand[best].levels;
        t->panels = cand[best].panels;
        t->prio = cand[best].prio;
        t->direct = cand[best].direct;
        t->comb = cand[best].comb;
        t->early = cand[best].early;
        t->blocks = cand[best].blocks;
        t->fused = cand[best].fused;
        t->green = cand[best].green;
        t->overlap = cand[best].overlap;
        t->tail = cand[best].tail;
        t->ncand = nc;
        for (int i = 0; i < nc; i++) {
            t->cand[i] = cand[i];
            t->cand_ms[i] = ms[i];
            t->runoff_ms[i] = run_ms[i];
        }
    }
    rc = 0;
out:
    cudaFree(ref);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return rc;
}

extern "C" int fastmm_cuda_phases(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K,
                                  const void *A, long lda, const void *B, long ldb, float *C,
                                  long ldc, double ms[4], double bytes[4])
{
    return fastmm_cuda_phases_comb(c, p, -1, M, N, K, A, lda, B, ldb, C, ldc, ms, bytes);
}

extern "C" int fastmm_cuda_phases_comb(fastmm_cuda *c, fastmm_plan *p, int comb, long M, long N,
                                       long K, const void *A, long lda, const void *B, long ldb,
                                       float *C, long ldc, double ms[4], double bytes[4])
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld", M, N, K);
    fastmm_cfg cfg = plan_cfg(p, M, N, K);
    if (cfg.levels == 0) return tg_fail("fastmm: plain GEMM at this shape, no phases");
    if (comb >= 0) cfg.comb = comb > 3 ? 3 : comb;
    cfg.panels = 1;
    cfg.prio = 0;
    for (int i = 0; i < 4; i++) ms[i] = 1e30;
    for (int r = 0; r < 2; r++) { // the better of two runs per phase
        c->prof = 1;
        // a forced opts.comb_blocks caps every combination here: one kernel's rate on that
        // many blocks, i.e. per multiprocessor, which decides what it costs beside products
        c->prof_cap = p->opts.comb_blocks > 0 ? p->opts.comb_blocks : 0;
        int rc = gemm_cfg(c, p, M, N, K, A, lda, B, ldb, C, ldc, &cfg);
        c->prof = 0;
        c->prof_cap = 0;
        if (rc) return -1;
        CK(cudaStreamSynchronize(c->s));
        for (int i = 0; i < 4; i++) {
            float t;
            CK(cudaEventElapsedTime(&t, c->tev[i], c->tev[i + 1]));
            if (t < ms[i]) ms[i] = t;
        }
    }
    // events run B, A, products, C; report A, B, products, C
    double t = ms[0];
    ms[0] = ms[1];
    ms[1] = t;
    for (int i = 0; i < 4; i++) bytes[i] = c->prof_bytes[i];
    return 0;
}

// ---- helpers for benchmarks and tests ----

__global__ void f2bf_kernel(const float *x, __nv_bfloat16 *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void f2d_kernel(const float *x, double *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = x[i];
}

// Counter-based N(0,1) samples (splitmix64 + Box-Muller): reproducible, no host transfer.
__device__ __forceinline__ uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

__global__ void normal_kernel(float *x, size_t n, uint64_t seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t h = mix64(seed * 0x100000001b3ull + i);
        double u1 = ((h >> 11) + 1.0) * 0x1.0p-53, u2 = (double)((h ^ mix64(h)) >> 11) * 0x1.0p-53;
        x[i] = (float)(sqrt(-2.0 * log(u1)) * cospi(2.0 * u2));
    }
}

extern "C" int fastmm_cuda_fill_normal(fastmm_cuda *c, float *x, size_t n, uint64_t seed)
{
    normal_kernel<<<2048, 256, 0, c->s>>>(x, n, seed);
    CK(cudaGetLastError());
    return 0;
}

extern "C" int fastmm_cuda_f32_to_bf16(fastmm_cuda *c, const float *x, void *y, size_t n)
{
    f2bf_kernel<<<1024, 256, 0, c->s>>>(x, (__nv_bfloat16 *)y, n);
    CK(cudaGetLastError());
    return 0;
}

extern "C" int fastmm_cuda_ref_dgemm(fastmm_cuda *c, long M, long N, long K, const float *A,
                                     const float *B, double *R)
{
    double *a = NULL, *b = NULL;
    if (cudaMalloc(&a, sizeof(double) * M * K) != cudaSuccess ||
        cudaMalloc(&b, sizeof(double) * K * N) != cudaSuccess) {
        cudaGetLastError();
        cudaFree(a);
        return tg_fail("fastmm: no device memory for the fp64 reference");
    }
    int rc = -1;
    const double one = 1.0, zero = 0.0;
    f2d_kernel<<<1024, 256, 0, c->s>>>(A, a, (size_t)M * K);
    f2d_kernel<<<1024, 256, 0, c->s>>>(B, b, (size_t)K * N);
    if (cudaGetLastError() != cudaSuccess) {
        tg_fail("fastmm: conversion kernel failed");
        goto out;
    }
    if (cublasSetMathMode(c->h, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS ||
        cublasDgemm(c->h, CUBLAS_OP_N, CUBLAS_OP_N, (int)N, (int)M, (int)K, &one, b, (int)N, a,
                    (int)K, &zero, R, (int)N) != CUBLAS_STATUS_SUCCESS) {
        tg_fail("fastmm: cublasDgemm failed");
        goto out;
    }
    if (cudaStreamSynchronize(c->s) != cudaSuccess) {
        tg_fail("fastmm: fp64 reference failed");
        goto out;
    }
    rc = 0;
out:
    cudaFree(a);
    cudaFree(b);
    return rc;
}

// max |C - R| and max |R| as the bit patterns of non-negative doubles (ordered like the values);
// NaN counts as infinity so that it can never pass.
template <typename TR>
__global__ void err_kernel(long M, long N, const float *C, long ldc, const TR *R, long ldr,
                           unsigned long long *out)
{
    double e = 0, r = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)M * N;
         i += (size_t)gridDim.x * blockDim.x) {
        long row = (long)(i / N), col = (long)(i % N);
        double x = (double)R[row * ldr + col];
        double d = fabs((double)C[row * ldc + col] - x);
        if (isnan(d)) d = INFINITY;
        e = fmax(e, d);
        r = fmax(r, fabs(x));
    }
    for (int o = 16; o > 0; o /= 2) {
        e = fmax(e, __shfl_down_sync(0xffffffffu, e, o));
        r = fmax(r, __shfl_down_sync(0xffffffffu, r, o));
    }
    if ((threadIdx.x & 31) == 0) {
        atomicMax(out, (unsigned long long)__double_as_longlong(e));
        atomicMax(out + 1, (unsigned long long)__double_as_longlong(r));
    }
}

template <typename TR>
static int rel_err(fastmm_cuda *c, long M, long N, const float *C, long ldc, const TR *R, long ldr,
                   double *err)
{
    unsigned long long *d = NULL, h[2];
    CK(cudaMalloc(&d, sizeof h));
    cudaError_t e = cudaMemsetAsync(d, 0, sizeof h, c->s);
    if (e == cudaSuccess) {
        err_kernel<TR><<<1024, 256, 0, c->s>>>(M, N, C, ldc, R, ldr, d);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(h, d, sizeof h, cudaMemcpyDeviceToHost, c->s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->s);
    cudaFree(d);
    if (e != cudaSuccess) return tg_fail("fastmm: error reduction: %s", cudaGetErrorString(e));
    double num, den;
    memcpy(&num, &h[0], 8);
    memcpy(&den, &h[1], 8);
    *err = den > 0 ? num / den : num;
    return 0;
}

extern "C" int fastmm_cuda_max_rel_err(fastmm_cuda *c, long M, long N, const float *C, long ldc,
                                       const double *R, double *err)
{
    return rel_err<double>(c, M, N, C, ldc, R, N, err);
}

static int rel_diff_f32(fastmm_cuda *c, long M, long N, const float *C, long ldc, const float *R,
                        long ldr, double *err)
{
    return rel_err<float>(c, M, N, C, ldc, R, ldr, err);
}
