#define _GNU_SOURCE /* sched_getaffinity */
/* CPU backend of the network: fp32, GEMMs batched over all tokens with OpenBLAS (its own
 * threads), row- and sequence-parallel loops (LayerNorm, GELU, attention) on a tg_pool.
 *
 * Memory: one arena for training (activations saved for the backward pass, sized for
 * max_batch at creation) and one for inference (KV caches, grown on demand when a call needs
 * more positions x samples than any call before); nothing is allocated per step.
 *
 * Layout conventions: activations are [tokens, features] row-major; a Linear is
 * y = x W^T + b with W [out, in]; attention heads are column blocks of width head_dim. */
/* The elementwise and attention loops below are written to vectorise (no float reductions in
 * inner loops); -O2 alone does not vectorise loops, so ask for it here. */
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")

#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/rng.h"
#include "learner/net.h"
#include "learner/par.h"

/* Hot loops get an AVX2/FMA clone chosen at load time (ifunc), the baseline build stays
 * generic x86-64; not under AddressSanitizer, whose start-up runs after ifunc resolvers. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define TG_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TG_HOT
#endif

#define CROSS_ROWS 32 /* decoder cross-attention: sample rows per score block */

/* ---------------------------------------------------------------- arena */

typedef struct arena {
    float *base; /* NULL while sizing */
    size_t used;
} arena;

static float *take(arena *a, size_t n)
{
    float *p = a->base ? a->base + a->used : NULL;
    a->used += (n + 15) & ~(size_t)15; /* 64-byte aligned pieces */
    return p;
}

static float *arena_alloc(size_t n)
{
    size_t bytes = (n ? n : 16) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

/* ---------------------------------------------------------------- saved activations */

/* One AttentionBlock's activations for N sequences of Lx queries (and Ly keys). */
typedef struct blk_act {
    int N, Lx, Ly;
    float *x, *xn, *mu_x, *rs_x; /* block input [N Lx, cx] and its LayerNorm */
    float *yn, *mu_y, *rs_y;     /* cross: LayerNorm of y [N Ly, cy] */
    float *q, *k, *v;            /* [N Lx, inner], [N Ly, inner] x 2 */
    float *p;                    /* attention probabilities [N, H, Lx, Ly] */
    float *a;                    /* attention output [N Lx, inner] */
    float *x1, *xm, *mu_m, *rs_m; /* after attention residual; its LayerNorm */
    float *h, *gh;               /* MLP pre-activation and GELU [N Lx, widen cx] */
} blk_act;

static void blk_act_take(arena *a, blk_act *A, const tg_block_off *bo, int N, int Lx, int Ly)
{
    size_t M = (size_t)N * Lx, My = (size_t)N * Ly;
    int inner = bo->heads * bo->head_dim, wc = bo->widen * bo->cx;
    A->N = N, A->Lx = Lx, A->Ly = Ly;
    A->x = take(a, M * bo->cx);
    A->xn = take(a, M * bo->cx);
    A->mu_x = take(a, M);
    A->rs_x = take(a, M);
    if (bo->cross) {
        A->yn = take(a, My * bo->cy);
        A->mu_y = take(a, My);
        A->rs_y = take(a, My);
    } else {
        A->yn = A->mu_y = A->rs_y = NULL;
    }
    A->q = take(a, M * inner);
    A->k = take(a, My * inner);
    A->v = take(a, My * inner);
    A->p = take(a, (size_t)N * bo->heads * Lx * Ly);
    A->a = take(a, M * inner);
    A->x1 = take(a, M * bo->cx);
    A->xm = take(a, M * bo->cx);
    A->mu_m = take(a, M);
    A->rs_m = take(a, M);
    A->h = take(a, M * wc);
    A->gh = take(a, M * wc);
}

/* ---------------------------------------------------------------- backend state */

typedef struct cpu {
    const tg_params *tab;
    tg_net_config cfg;
    const tg_layout *lay;
    int S, T, S2, L, P, NL, Q;
    int max_batch, threads;
    tg_pool *pool;
    float *w, *g, *m, *v; /* parameters, gradients, AdamW moments [n] */
    int64_t step;

    /* training / forward arena */
    float *tbase;
    float *xin[3];   /* in_proj inputs [B S^2, S T + 1] */
    float *E;        /* torso state / output [B, 3, S, S, c] */
    float *gtmp;     /* [B S^2, c] */
    float *trbase;   /* training arena (lazy) */
    blk_act *tact;   /* [layers * 3], N = B S, Lx = 2S: kept for backward */
    blk_act tact_inf; /* one stage's activations when nothing is kept */
    float *tout;     /* stage output [B S 2S, c] */
    blk_act *pact;   /* [2 p_layers] */
    float *pxf;      /* policy decoder output [B L, P] */
    float *hN, *muN, *rsN, *relu; /* policy.norm output, stats, relu(hN) */
    float *logits;   /* [B L, NL] */
    float *vin;      /* [B, P] */
    float **vh;      /* [v_layers] of [B, v_hidden] (post-ReLU) */
    float *quant;    /* [B, Q] */
    /* backward scratch */
    float *dE, *dlogits, *dr, *dv0, *dv1, *dquant;
    float *d_a, *d_b;            /* ping-pong [max tokens, max width] */
    float *s_wc, *s_cx, *s_x1, *s_in, *s_q, *s_k, *s_v, *s_y, *s_yn;
    float *tscr;     /* per-thread scratch [threads, tscr_n] */
    size_t tscr_n;
    float *ones;     /* [max rows] of 1 for column sums */
    size_t ones_n;

    /* inference arena (grown on demand) */
    float *ibase;
    size_t icap_rows; /* rows (positions x samples) it was sized for */
    int icap_N;
    float **ck, **cv;   /* cross-attention K, V per cross layer [N 3S^2, P] */
    float **sk, **sv;   /* self-attention caches per self layer [R, L, P] */
    float *iyn;         /* [N 3S^2, c] */
    float *ix, *ixn, *iq, *ia, *ix1, *ixm, *ih, *ihN, *ilog, *iu, *ivh0, *ivh1, *iquant;
    int32_t *itok;      /* [R, L] */
} cpu;

/* ---------------------------------------------------------------- BLAS helpers */

typedef struct gemm_ctx {
    CBLAS_TRANSPOSE ta, tb;
    int N, K, lda, ldb, ldc;
    const float *A, *B;
    float beta;
    float *C;
    /* lin_fwd's row initialisation (bias, optional residual), done per chunk */
    const float *bias, *res;
    int res_ld;
} gemm_ctx;

/* Rows [lo, hi) of C: one single-threaded OpenBLAS call per chunk. */
static void gemm_rows(void *vctx, int lo, int hi, int tid)
{
    (void)tid;
    gemm_ctx *g = vctx;
    if (g->bias)
        for (int i = lo; i < hi; i++) {
            float *y = g->C + (size_t)i * g->ldc;
            if (g->res) {
                const float *r = g->res + (size_t)i * g->res_ld;
                for (int j = 0; j < g->N; j++)
                    y[j] = r[j] + g->bias[j];
            } else {
                memcpy(y, g->bias, (size_t)g->N * sizeof *y);
            }
        }
    const float *A = g->ta == CblasNoTrans ? g->A + (size_t)lo * g->lda : g->A + lo;
    float *C = g->C + (size_t)lo * g->ldc;
    int M = hi - lo;
    if (g->K <= 0) {
        if (g->beta == 0.0f)
            for (int i = 0; i < M; i++)
                memset(C + (size_t)i * g->ldc, 0, (size_t)g->N * sizeof *C);
        return;
    }
    cblas_sgemm(CblasRowMajor, g->ta, g->tb, M, g->N, g->K, 1.0f, A, g->lda, g->B, g->ldb,
                g->beta, C, g->ldc);
}

/* C[M, N] = op(A) op(B) + beta C, the rows of C split over the pool (OpenBLAS itself runs one
 * thread per call: its own spinning workers would compete with the pool's). */
static void gemm_ex(cpu *c, gemm_ctx *g, int M)
{
    if (M <= 0 || g->N <= 0)
        return;
    tg_pool_for(c->pool, M, 2.0 * g->N * (g->K > 0 ? g->K : 1), gemm_rows, g);
}

static void gemm(cpu *c, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int M, int N, int K,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    gemm_ctx g = {.ta = ta, .tb = tb, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc,
                  .A = A, .B = B, .beta = beta, .C = C};
    gemm_ex(c, &g, M);
}

/* Y[M, out] (row stride ldy) = X[M, in] W^T + b (+ res[M, out] when res != NULL). */
static void lin_fwd(cpu *c, const tg_lin_off *l, const float *X, int M, float *Y, int ldy,
                    const float *res)
{
    gemm_ctx g = {.ta = CblasNoTrans, .tb = CblasTrans, .N = l->out, .K = l->in, .lda = l->in,
                  .ldb = l->in, .ldc = ldy, .A = X, .B = c->w + l->w, .beta = 1.0f, .C = Y,
                  .bias = c->w + l->b, .res = res, .res_ld = l->out};
    gemm_ex(c, &g, M);
}

static const float *ones(cpu *c, int M)
{
    TG_ASSERT((size_t)M <= c->ones_n);
    return c->ones;
}

/* dW += dY^T X, db += colsum dY, dX = dY W (+ dX when acc). dX may be NULL. */
static void lin_bwd(cpu *c, const tg_lin_off *l, const float *dY, const float *X, int M,
                    float *dX, int acc)
{
    if (M <= 0)
        return;
    gemm(c, CblasTrans, CblasNoTrans, l->out, l->in, M, dY, l->out, X, l->in, 1.0f,
         c->g + l->w, l->in);
    cblas_sgemv(CblasRowMajor, CblasTrans, M, l->out, 1.0f, dY, l->out, ones(c, M), 1, 1.0f,
                c->g + l->b, 1);
    if (dX)
        gemm(c, CblasNoTrans, CblasNoTrans, M, l->in, l->out, dY, l->out, c->w + l->w, l->in,
             acc ? 1.0f : 0.0f, dX, l->in);
}

/* ---------------------------------------------------------------- LayerNorm */

typedef struct ln_ctx {
    cpu *c;
    const float *x, *w, *b, *dy;
    float *y, *mu, *rs, *dx, *dw, *db;
    int n, acc;
} ln_ctx;

/* Row sums in 8 independent lanes: one float accumulator does not vectorise (it would reorder
 * the additions), eight explicit ones do. */
TG_HOT static void ln_fwd_rows(void *vctx, int lo, int hi, int tid)
{
    (void)tid;
    ln_ctx *k = vctx;
    int n = k->n;
    for (int i = lo; i < hi; i++) {
        const float *x = k->x + (size_t)i * n;
        float *y = k->y + (size_t)i * n;
        float acc[8] = {0}, s = 0;
        int j = 0;
        for (; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += x[j + l];
        for (; j < n; j++)
            s += x[j];
        s += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        float mu = s / n, var = 0;
        for (int l = 0; l < 8; l++)
            acc[l] = 0;
        for (j = 0; j + 8 <= n; j += 8)
            for (int l = 0; l < 8; l++)
                acc[l] += (x[j + l] - mu) * (x[j + l] - mu);
        for (; j < n; j++)
            var += (x[j] - mu) * (x[j] - mu);
        var += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        float rs = 1.0f / sqrtf(var / n + 1e-5f);
        for (int j = 0; j < n; j++)
            y[j] = (x[j] - mu) * rs * k->w[j] + k->b[j];
        if (k->mu) {
            k->mu[i] = mu;
            k->rs[i] = rs;
        }
    }
}

static void ln_fwd(cpu *c, const tg_ln_off *l, const float *x, int M, float *y, float *mu,
                   float *rs)
{
    ln_ctx k = {.c = c, .x = x, .w = c->w + l->w, .b = c->w + l->b, .y = y, .mu = mu, .rs = rs,
                .n = l->n};
    tg_pool_for(c->pool, M, 8.0 * l->n, ln_fwd_rows, &k);
}

/* dx (=, or += when acc) from dy; dw, db partial sums per thread into tscr, reduced after. */
TG_HOT static void ln_bwd_rows(void *vctx, int lo, int hi, int tid)
{
    ln_ctx *k = vctx;
    int n = k->n;
    float *pw = k->c->tscr + (size_t)tid * k->c->tscr_n, *pb = pw + n;
    memset(pw, 0, 2 * (size_t)n * sizeof *pw);
    for (int i = lo; i < hi; i++) {
        const float *x = k->x + (size_t)i * n, *dy = k->dy + (size_t)i * n;
        float *dx = k->dx + (size_t)i * n;
        float mu = k->mu[i], rs = k->rs[i];
        float s1 = 0, s2 = 0;
        for (int j = 0; j < n; j++) {
            float xh = (x[j] - mu) * rs, g = dy[j] * k->w[j];
            pw[j] += dy[j] * xh;
            pb[j] += dy[j];
            s1 += g;
            s2 += g * xh;
        }
        s1 /= n;
        s2 /= n;
        for (int j = 0; j < n; j++) {
            float xh = (x[j] - mu) * rs, g = dy[j] * k->w[j];
            float d = rs * (g - s1 - xh * s2);
            dx[j] = k->acc ? dx[j] + d : d;
        }
    }
}

static void ln_bwd(cpu *c, const tg_ln_off *l, const float *dy, const float *x, const float *mu,
                   const float *rs, int M, float *dx, int acc)
{
    ln_ctx k = {.c = c, .x = x, .w = c->w + l->w, .dy = dy, .mu = (float *)mu, .rs = (float *)rs, .dx = dx,
                .n = l->n, .acc = acc};
    int nt = tg_pool_size(c->pool);
    /* zero every thread's partials (a thread may get no chunk when run serially) */
    for (int t = 0; t < nt; t++)
        memset(c->tscr + (size_t)t * c->tscr_n, 0, 2 * (size_t)l->n * sizeof(float));
    tg_pool_for(c->pool, M, 12.0 * l->n, ln_bwd_rows, &k);
    float *dw = c->g + l->w, *db = c->g + l->b;
    for (int t = 0; t < nt; t++) {
        const float *pw = c->tscr + (size_t)t * c->tscr_n, *pb = pw + l->n;
        for (int j = 0; j < l->n; j++) {
            dw[j] += pw[j];
            db[j] += pb[j];
        }
    }
}

/* ---------------------------------------------------------------- GELU (tanh form) */

#define GELU_K0 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_K1 0.044715f

/* exp for the hot loops: branch-free so that loops over it vectorise (glibc's expf and tanhf
 * calls were half of a training step). Relative error ~2e-7 on [-87, 88]; clamped outside. */
static inline float vexp(float x)
{
    x = x > -87.0f ? x : -87.0f; /* written so that NaN becomes -87 (no undefined int cast) */
    x = x < 88.0f ? x : 88.0f;
    float t = x * 1.44269504088896341f;
    float r = (t + 12582912.0f) - 12582912.0f; /* round to nearest integer */
    float f = t - r;                           /* [-0.5, 0.5] */
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    union {
        int32_t i;
        float f;
    } u = {.i = ((int32_t)r + 127) * (1 << 23)};
    return p * u.f;
}

/* tanh(z) = 1 - 2 / (1 + e^(2z)); saturates to +-1 through vexp's clamp. */
static inline float vtanh(float z)
{
    return 1.0f - 2.0f / (1.0f + vexp(2.0f * z));
}

typedef struct ew_ctx {
    const float *a, *b;
    float *y;
} ew_ctx;

TG_HOT static void gelu_rows(void *vctx, int lo, int hi, int tid)
{
    (void)tid;
    ew_ctx *k = vctx;
    for (int i = lo; i < hi; i++) {
        float x = k->a[i];
        float t = vtanh(GELU_K0 * (x + GELU_K1 * x * x * x));
        k->y[i] = 0.5f * x * (1.0f + t);
    }
}

/* dy (in k->b) times GELU'(h) (k->a) into k->y */
TG_HOT static void gelu_bwd_rows(void *vctx, int lo, int hi, int tid)
{
    (void)tid;
    ew_ctx *k = vctx;
    for (int i = lo; i < hi; i++) {
        float x = k->a[i];
        float t = vtanh(GELU_K0 * (x + GELU_K1 * x * x * x));
        float d = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K0 * (1.0f + 3.0f * GELU_K1 * x * x);
        k->y[i] = k->b[i] * d;
    }
}

static void gelu_fwd(cpu *c, const float *h, float *y, size_t n)
{
    ew_ctx k = {.a = h, .y = y};
    tg_pool_for(c->pool, (int)n, 30.0, gelu_rows, &k);
}

static void gelu_bwd(cpu *c, const float *h, const float *dy, float *dh, size_t n)
{
    ew_ctx k = {.a = h, .b = dy, .y = dh};
    tg_pool_for(c->pool, (int)n, 40.0, gelu_bwd_rows, &k);
}

/* ---------------------------------------------------------------- attention */

typedef struct att_ctx {
    cpu *c;
    const tg_block_off *bo;
    blk_act *A;
    const float *da;
    float *dq, *dk, *dv;
} att_ctx;

/* kT[d * ld + j] = K[j, d] for j < n: keys transposed so score loops run over keys (no float
 * reductions, so they vectorise). */
static inline __attribute__((always_inline)) void transpose_keys(const float *K, int stride, int n, int D, float *kT, int ld)
{
    for (int j = 0; j < n; j++)
        for (int d = 0; d < D; d++)
            kT[(size_t)d * ld + j] = K[(size_t)j * stride + d];
}

/* p[0..n) = softmax(scale * q . keys) with keys given transposed; returns nothing. */
static inline __attribute__((always_inline)) void scores_softmax(const float *q, const float *kT, int ld, int n, int D, float scale,
                           float *p)
{
    for (int j = 0; j < n; j++)
        p[j] = 0;
    for (int d = 0; d < D; d++) {
        float qd = q[d] * scale;
        const float *kr = kT + (size_t)d * ld;
        for (int j = 0; j < n; j++)
            p[j] += qd * kr[j];
    }
    float mx = p[0];
    for (int j = 1; j < n; j++)
        mx = p[j] > mx ? p[j] : mx;
    float sum = 0;
    for (int j = 0; j < n; j++) {
        p[j] = vexp(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++)
        p[j] *= inv;
}

/* out_i = sum_j p_ij v_j for one row: the D-wide sum runs in a local accumulator (registers when
 * D is a constant of the call), not in the output row, which could alias v as far as the
 * compiler knows. */
static inline __attribute__((always_inline)) void att_weighted_sum(const float *p, const float *V, int stride, int n,
                                                                   float *out, const int D)
{
    float acc[D];
    for (int d = 0; d < D; d++)
        acc[d] = 0;
    for (int j = 0; j < n; j++) {
        const float *vv = V + (size_t)j * stride;
        float pj = p[j];
        for (int d = 0; d < D; d++)
            acc[d] += pj * vv[d];
    }
    for (int d = 0; d < D; d++)
        out[d] = acc[d];
}

/* Forward of one (sequence, head): Q rows [Lx] and K, V rows [Ly] at stride `inner`; P [Lx, Ly]. */
static inline __attribute__((always_inline)) void att_fwd_head(const float *Q, const float *K, const float *V, float *P,
                                                               float *out, float *kT, int Lx, int Ly, int inner,
                                                               int causal, const int D)
{
    float scale = 1.0f / sqrtf((float)D);
    transpose_keys(K, inner, Ly, D, kT, Ly);
    for (int i = 0; i < Lx; i++) {
        float *p = P + (size_t)i * Ly;
        int jn = causal ? i + 1 : Ly;
        scores_softmax(Q + (size_t)i * inner, kT, Ly, jn, D, scale, p);
        for (int j = jn; j < Ly; j++)
            p[j] = 0;
        att_weighted_sum(p, V, inner, jn, out + (size_t)i * inner, D);
    }
}

/* Backward of one (sequence, head), given P and dOut (= da). G [Lx, Ly] holds the scores'
 * gradients; dQ, dK, dV rows are each written once (=), their sums kept in local accumulators. */
static inline __attribute__((always_inline)) void att_bwd_head(const float *Q, const float *K, const float *V,
                                                               const float *P, const float *dA, float *dQ, float *dK,
                                                               float *dV, float *vT, float *G, int Lx, int Ly,
                                                               int inner, int causal, const int D)
{
    float scale = 1.0f / sqrtf((float)D);
    transpose_keys(V, inner, Ly, D, vT, Ly);
    for (int i = 0; i < Lx; i++) {
        const float *p = P + (size_t)i * Ly, *da = dA + (size_t)i * inner;
        float *g = G + (size_t)i * Ly;
        int jn = causal ? i + 1 : Ly;
        for (int j = 0; j < Ly; j++) /* masked keys keep g = 0 */
            g[j] = 0;
        for (int d = 0; d < D; d++) { /* g_j = da . v_j */
            float gd = da[d];
            const float *vr = vT + (size_t)d * Ly;
            for (int j = 0; j < jn; j++)
                g[j] += gd * vr[j];
        }
        float dot = 0;
        for (int j = 0; j < jn; j++)
            dot += p[j] * g[j];
        for (int j = 0; j < jn; j++)
            g[j] = p[j] * (g[j] - dot) * scale;
        att_weighted_sum(g, K, inner, jn, dQ + (size_t)i * inner, D);
    }
    for (int j = 0; j < Ly; j++) { /* dk_j = sum_i g_ij q_i, dv_j = sum_i p_ij da_i */
        float ak[D], av[D];
        for (int d = 0; d < D; d++)
            ak[d] = av[d] = 0;
        for (int i = causal ? j : 0; i < Lx; i++) { /* causal: g_ij = p_ij = 0 for i < j */
            float gij = G[(size_t)i * Ly + j], pij = P[(size_t)i * Ly + j];
            const float *q = Q + (size_t)i * inner, *da = dA + (size_t)i * inner;
            for (int d = 0; d < D; d++) {
                ak[d] += gij * q[d];
                av[d] += pij * da[d];
            }
        }
        for (int d = 0; d < D; d++) {
            dK[(size_t)j * inner + d] = ak[d];
            dV[(size_t)j * inner + d] = av[d];
        }
    }
}

/* The usual head widths as constants, so the compiler unrolls the D-wide loops. */
#define ATT_WITH_D(D, call)                                                                                            \
    do {                                                                                                               \
        if ((D) == 16)                                                                                                 \
            call(16);                                                                                                  \
        else if ((D) == 32)                                                                                            \
            call(32);                                                                                                  \
        else if ((D) == 64)                                                                                            \
            call(64);                                                                                                  \
        else                                                                                                           \
            call(D);                                                                                                   \
    } while (0)

TG_HOT static void att_fwd_seq(void *vctx, int lo, int hi, int tid)
{
    att_ctx *k = vctx;
    const tg_block_off *bo = k->bo;
    blk_act *A = k->A;
    int H = bo->heads, D = bo->head_dim, inner = H * D, Lx = A->Lx, Ly = A->Ly;
    float *kT = k->c->tscr + (size_t)tid * k->c->tscr_n; /* [D, Ly] */
    for (int n = lo; n < hi; n++)
        for (int h = 0; h < H; h++) {
            size_t x0 = (size_t)n * Lx * inner + h * D, y0 = (size_t)n * Ly * inner + h * D;
#define ATT_FWD(DD)                                                                                                    \
    att_fwd_head(A->q + x0, A->k + y0, A->v + y0, A->p + ((size_t)n * H + h) * Lx * Ly, A->a + x0, kT, Lx, Ly, inner, \
                 bo->causal, DD)
            ATT_WITH_D(D, ATT_FWD);
#undef ATT_FWD
        }
}

TG_HOT static void att_bwd_seq(void *vctx, int lo, int hi, int tid)
{
    att_ctx *k = vctx;
    const tg_block_off *bo = k->bo;
    blk_act *A = k->A;
    int H = bo->heads, D = bo->head_dim, inner = H * D, Lx = A->Lx, Ly = A->Ly;
    float *vT = k->c->tscr + (size_t)tid * k->c->tscr_n; /* [D, Ly] */
    float *G = vT + (size_t)D * Ly;                     /* [Lx, Ly] */
    for (int n = lo; n < hi; n++)
        for (int h = 0; h < H; h++) {
            size_t x0 = (size_t)n * Lx * inner + h * D, y0 = (size_t)n * Ly * inner + h * D;
#define ATT_BWD(DD)                                                                                                    \
    att_bwd_head(A->q + x0, A->k + y0, A->v + y0, A->p + ((size_t)n * H + h) * Lx * Ly, k->da + x0, k->dq + x0,       \
                 k->dk + y0, k->dv + y0, vT, G, Lx, Ly, inner, bo->causal, DD)
            ATT_WITH_D(D, ATT_BWD);
#undef ATT_BWD
        }
}

/* ---------------------------------------------------------------- one attention block */

/* Forward of bo on A->x (already filled) attending to y (cross) or itself; output into out. */
static void block_fwd(cpu *c, const tg_block_off *bo, blk_act *A, const float *y, float *out)
{
    int M = A->N * A->Lx, My = A->N * A->Ly;
    ln_fwd(c, &bo->norm_x, A->x, M, A->xn, A->mu_x, A->rs_x);
    const float *yn = A->xn;
    if (bo->cross) {
        ln_fwd(c, &bo->norm_y, y, My, A->yn, A->mu_y, A->rs_y);
        yn = A->yn;
    }
    int inner = bo->heads * bo->head_dim, wc = bo->widen * bo->cx;
    lin_fwd(c, &bo->q, A->xn, M, A->q, inner, NULL);
    lin_fwd(c, &bo->k, yn, My, A->k, inner, NULL);
    lin_fwd(c, &bo->v, yn, My, A->v, inner, NULL);
    att_ctx k = {.c = c, .bo = bo, .A = A};
    tg_pool_for(c->pool, A->N, 4.0 * bo->heads * A->Lx * A->Ly * bo->head_dim, att_fwd_seq, &k);
    lin_fwd(c, &bo->o, A->a, M, A->x1, bo->cx, A->x);
    ln_fwd(c, &bo->norm_mlp, A->x1, M, A->xm, A->mu_m, A->rs_m);
    lin_fwd(c, &bo->mlp_in, A->xm, M, A->h, wc, NULL);
    gelu_fwd(c, A->h, A->gh, (size_t)M * wc);
    lin_fwd(c, &bo->mlp_out, A->gh, M, out, bo->cx, A->x1);
}

/* Backward: dout [M, cx] -> dx [M, cx] (=); dy [My, cy] (+=, cross only); parameter grads +=. */
static void block_bwd(cpu *c, const tg_block_off *bo, blk_act *A, const float *y,
                      const float *dout, float *dx, float *dy)
{
    int M = A->N * A->Lx, My = A->N * A->Ly;
    int wc = bo->widen * bo->cx;
    /* MLP */
    lin_bwd(c, &bo->mlp_out, dout, A->gh, M, c->s_wc, 0);
    gelu_bwd(c, A->h, c->s_wc, c->s_wc, (size_t)M * wc);
    lin_bwd(c, &bo->mlp_in, c->s_wc, A->xm, M, c->s_cx, 0);
    memcpy(c->s_x1, dout, (size_t)M * bo->cx * sizeof(float));
    ln_bwd(c, &bo->norm_mlp, c->s_cx, A->x1, A->mu_m, A->rs_m, M, c->s_x1, 1);
    /* attention */
    lin_bwd(c, &bo->o, c->s_x1, A->a, M, c->s_in, 0);
    att_ctx k = {.c = c, .bo = bo, .A = A, .da = c->s_in, .dq = c->s_q, .dk = c->s_k, .dv = c->s_v};
    tg_pool_for(c->pool, A->N, 8.0 * bo->heads * A->Lx * A->Ly * bo->head_dim, att_bwd_seq, &k);
    lin_bwd(c, &bo->q, c->s_q, A->xn, M, c->s_cx, 0);
    if (bo->cross) {
        lin_bwd(c, &bo->k, c->s_k, A->yn, My, c->s_yn, 0);
        lin_bwd(c, &bo->v, c->s_v, A->yn, My, c->s_yn, 1);
        ln_bwd(c, &bo->norm_y, c->s_yn, y, A->mu_y, A->rs_y, My, dy, 1);
    } else {
        lin_bwd(c, &bo->k, c->s_k, A->xn, M, c->s_cx, 1);
        lin_bwd(c, &bo->v, c->s_v, A->xn, M, c->s_cx, 1);
    }
    memcpy(dx, c->s_x1, (size_t)M * bo->cx * sizeof(float));
    ln_bwd(c, &bo->norm_x, c->s_cx, A->x, A->mu_x, A->rs_x, M, dx, 1);
}

/* ---------------------------------------------------------------- torso */

static const int STAGES[3][2] = {{0, 1}, {2, 0}, {1, 2}};

/* Rows of the stage (m1, m2) sequence (b, r), token q, inside E [B, 3, S, S, c]: tokens q < S
 * are g[m1][b, r, q], tokens S + q are g[m2][b, q, r]. */
static inline size_t stage_row(const cpu *c, int m1, int m2, int b, int r, int q)
{
    int S = c->S;
    if (q < S)
        return (size_t)b * 3 * c->S2 + (size_t)m1 * c->S2 + (size_t)r * S + q;
    q -= S;
    return (size_t)b * 3 * c->S2 + (size_t)m2 * c->S2 + (size_t)q * S + r;
}

/* dir 0: seq[(b S + r) 2S + q] = E[row]; dir 1: E[row] = seq[...]. */
static void stage_move(cpu *c, int B, int m1, int m2, float *E, float *seq, int dir)
{
    int S = c->S, C = c->cfg.c;
    size_t bytes = (size_t)C * sizeof(float);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < S; r++)
            for (int q = 0; q < 2 * S; q++) {
                float *e = E + stage_row(c, m1, m2, b, r, q) * C;
                float *s = seq + (((size_t)b * S + r) * 2 * S + q) * C;
                if (dir == 0)
                    memcpy(s, e, bytes);
                else
                    memcpy(e, s, bytes);
            }
}

/* keep: store every stage's activations for torso_bwd (else one buffer serves all stages). */
static void torso_fwd(cpu *c, int B, const float *tensors, const float *scalars, int keep)
{
    int S = c->S, T = c->T, S2 = c->S2, C = c->cfg.c, F = S * T + 1;
    /* grids: g0[i,j] <- (i,j,k), g1[k,i] <- (i,j,k) along j, g2[j,k] <- along i; feature k*T+t
     * (resp. j*T+t, i*T+t); the last feature is the scalar projection. */
    for (int b = 0; b < B; b++) {
        const float *X = tensors + (size_t)b * T * S * S2;
        for (int t = 0; t < T; t++)
            for (int i = 0; i < S; i++)
                for (int j = 0; j < S; j++)
                    for (int k = 0; k < S; k++) {
                        float x = X[(((size_t)t * S + i) * S + j) * S + k];
                        c->xin[0][((size_t)b * S2 + i * S + j) * F + k * T + t] = x;
                        c->xin[1][((size_t)b * S2 + k * S + i) * F + j * T + t] = x;
                        c->xin[2][((size_t)b * S2 + j * S + k) * F + i * T + t] = x;
                    }
    }
    for (int g = 0; g < 3; g++) {
        /* scalar projection [B, S^2] straight into the last input column (ldc = F) */
        lin_fwd(c, &c->lay->scalar_proj[g], scalars, B, c->gtmp, S2, NULL);
        for (int b = 0; b < B; b++)
            for (int r = 0; r < S2; r++)
                c->xin[g][((size_t)b * S2 + r) * F + F - 1] = c->gtmp[(size_t)b * S2 + r];
        lin_fwd(c, &c->lay->in_proj[g], c->xin[g], B * S2, c->gtmp, C, NULL);
        for (int b = 0; b < B; b++)
            memcpy(c->E + ((size_t)b * 3 + g) * S2 * C, c->gtmp + (size_t)b * S2 * C,
                   (size_t)S2 * C * sizeof(float));
    }
    for (int l = 0; l < c->cfg.layers; l++)
        for (int s = 0; s < 3; s++) {
            blk_act *A = keep ? &c->tact[l * 3 + s] : &c->tact_inf;
            A->N = B * S;
            stage_move(c, B, STAGES[s][0], STAGES[s][1], c->E, A->x, 0);
            block_fwd(c, &c->lay->torso[l * 3 + s], A, NULL, c->tout);
            stage_move(c, B, STAGES[s][0], STAGES[s][1], c->E, c->tout, 1);
        }
}

/* dE [B, 3, S, S, c] (gradient w.r.t. the torso output) is consumed. */
static void torso_bwd(cpu *c, int B, const float *scalars)
{
    int S = c->S, T = c->T, S2 = c->S2, C = c->cfg.c, F = S * T + 1;
    for (int l = c->cfg.layers - 1; l >= 0; l--)
        for (int s = 2; s >= 0; s--) {
            blk_act *A = &c->tact[l * 3 + s];
            stage_move(c, B, STAGES[s][0], STAGES[s][1], c->dE, c->d_a, 0);
            block_bwd(c, &c->lay->torso[l * 3 + s], A, NULL, c->d_a, c->d_b, NULL);
            stage_move(c, B, STAGES[s][0], STAGES[s][1], c->dE, c->d_b, 1);
        }
    for (int g = 0; g < 3; g++) {
        const tg_lin_off *ip = &c->lay->in_proj[g];
        for (int b = 0; b < B; b++)
            memcpy(c->gtmp + (size_t)b * S2 * C, c->dE + ((size_t)b * 3 + g) * S2 * C,
                   (size_t)S2 * C * sizeof(float));
        lin_bwd(c, ip, c->gtmp, c->xin[g], B * S2, NULL, 0);
        /* only the scalar column of the input needs a gradient: ds = dG W[:, F-1] */
        float *ds = c->dv0;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, B * S2, C, 1.0f, c->gtmp, C,
                    c->w + ip->w + (F - 1), F, 0.0f, ds, 1);
        lin_bwd(c, &c->lay->scalar_proj[g], ds, scalars, B, NULL, 0);
    }
}

/* ---------------------------------------------------------------- policy and value heads */

/* x[r] = embed.W[:, tok[r]] + embed.b + pos[t] for rows r = (b, t) of a teacher-forced batch
 * (the one-hot product of the spec is a column lookup). */
static void embed_tokens(cpu *c, const int32_t *tok, int rows, float *x)
{
    const tg_lin_off *e = &c->lay->embed;
    int P = c->P, V = c->NL + 1;
    for (int r = 0; r < rows; r++) {
        int t = r % c->L;
        int v = tok[r];
        const float *W = c->w + e->w, *bb = c->w + e->b, *pos = c->w + c->lay->pos + (size_t)t * P;
        float *y = x + (size_t)r * P;
        for (int p = 0; p < P; p++)
            y[p] = W[(size_t)p * V + v] + bb[p] + pos[p];
    }
}

static void value_fwd(cpu *c, const float *h0, int B, float *quant, float *scratch0,
                      float *scratch1, float **keep)
{
    const float *x = h0;
    for (int l = 0; l < c->cfg.v_layers; l++) {
        float *y = keep ? keep[l] : (l % 2 ? scratch1 : scratch0);
        const tg_lin_off *lin = &c->lay->vhidden[l];
        lin_fwd(c, lin, x, B, y, lin->out, NULL);
        for (size_t i = 0; i < (size_t)B * lin->out; i++)
            y[i] = y[i] > 0 ? y[i] : 0;
        x = y;
    }
    lin_fwd(c, &c->lay->vout, x, B, quant, c->Q, NULL);
}

/* Teacher-forced policy + value forward on e = c->E; tokens [B, L] are the targets. */
static void heads_fwd(cpu *c, int B, const int32_t *targets)
{
    int L = c->L, P = c->P, M = B * L, Ly = 3 * c->S2;
    int nb = 2 * c->cfg.p_layers;
    float *x0 = nb ? c->pact[0].x : c->pxf;
    /* input tokens: start, then targets[:, :-1] */
    int32_t *tin = (int32_t *)c->dlogits; /* borrowed scratch, overwritten later */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            tin[b * L + t] = t == 0 ? c->NL : targets[b * L + t - 1];
    embed_tokens(c, tin, M, x0);
    for (int i = 0; i < nb; i++) {
        blk_act *A = &c->pact[i];
        A->N = B;
        A->Ly = (i % 2) ? Ly : L;
        block_fwd(c, &c->lay->policy[i], A, (i % 2) ? c->E : NULL,
                  i + 1 < nb ? c->pact[i + 1].x : c->pxf);
    }
    ln_fwd(c, &c->lay->pnorm, c->pxf, M, c->hN, c->muN, c->rsN);
    for (size_t i = 0; i < (size_t)M * P; i++)
        c->relu[i] = c->hN[i] > 0 ? c->hN[i] : 0;
    lin_fwd(c, &c->lay->pout, c->relu, M, c->logits, c->NL, NULL);
    for (int b = 0; b < B; b++)
        memcpy(c->vin + (size_t)b * P, c->hN + (size_t)b * L * P, (size_t)P * sizeof(float));
    value_fwd(c, c->vin, B, c->quant, NULL, NULL, c->vh);
}

/* Losses and their gradients w.r.t. logits (c->dlogits) and quantiles (c->dquant). */
static void losses(cpu *c, int B, const int32_t *targets, const float *returns, double vw,
                   tg_losses *out)
{
    int NL = c->NL, Q = c->Q, M = B * c->L;
    double pol = 0;
    for (int r = 0; r < M; r++) {
        const float *l = c->logits + (size_t)r * NL;
        float *d = c->dlogits + (size_t)r * NL;
        float mx = l[0];
        for (int j = 1; j < NL; j++)
            mx = l[j] > mx ? l[j] : mx;
        double s = 0;
        for (int j = 0; j < NL; j++)
            s += exp((double)(l[j] - mx));
        int y = targets[r];
        pol += log(s) + mx - l[y];
        for (int j = 0; j < NL; j++)
            d[j] = (float)(exp((double)(l[j] - mx)) / s / B);
        d[y] -= 1.0f / B;
    }
    pol /= B;
    double val = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < Q; i++) {
            double tau = (i + 0.5) / Q, q = c->quant[(size_t)b * Q + i];
            double d = returns[b] - q, ad = fabs(d);
            double w = fabs(tau - (d < 0 ? 1.0 : 0.0));
            double hub = ad <= 1.0 ? 0.5 * d * d : ad - 0.5;
            double dh = ad <= 1.0 ? d : (d > 0 ? 1.0 : -1.0); /* d huber / d d */
            val += w * hub;
            c->dquant[(size_t)b * Q + i] = (float)(-w * dh * vw / ((double)B * Q));
        }
    val /= (double)B * Q;
    out->policy = pol;
    out->value = val;
    out->total = pol + vw * val;
}

static void heads_bwd(cpu *c, int B, const int32_t *targets)
{
    int L = c->L, P = c->P, M = B * L, Ly = 3 * c->S2;
    int nb = 2 * c->cfg.p_layers;
    /* value head: dquant -> d h0 (into dv0) */
    int VL = c->cfg.v_layers;
    float *dcur = c->dv0, *dnext = c->dv1;
    lin_bwd(c, &c->lay->vout, c->dquant, VL ? c->vh[VL - 1] : c->vin, B, dcur, 0);
    for (int l = VL - 1; l >= 0; l--) {
        const tg_lin_off *lin = &c->lay->vhidden[l];
        for (size_t i = 0; i < (size_t)B * lin->out; i++)
            if (c->vh[l][i] <= 0)
                dcur[i] = 0;
        lin_bwd(c, lin, dcur, l ? c->vh[l - 1] : c->vin, B, dnext, 0);
        float *t = dcur;
        dcur = dnext;
        dnext = t;
    }
    /* policy output */
    lin_bwd(c, &c->lay->pout, c->dlogits, c->relu, M, c->dr, 0);
    for (size_t i = 0; i < (size_t)M * P; i++)
        if (c->hN[i] <= 0)
            c->dr[i] = 0;
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++)
            c->dr[(size_t)b * L * P + p] += dcur[(size_t)b * P + p];
    float *dx = c->d_a, *dprev = c->d_b;
    ln_bwd(c, &c->lay->pnorm, c->dr, c->pxf, c->muN, c->rsN, M, dx, 0);
    memset(c->dE, 0, (size_t)B * Ly * c->cfg.c * sizeof(float));
    for (int i = nb - 1; i >= 0; i--) {
        blk_act *A = &c->pact[i];
        block_bwd(c, &c->lay->policy[i], A, (i % 2) ? c->E : NULL, dx, dprev,
                  (i % 2) ? c->dE : NULL);
        float *t = dx;
        dx = dprev;
        dprev = t;
    }
    /* embedding and positions */
    const tg_lin_off *e = &c->lay->embed;
    int V = c->NL + 1;
    float *dW = c->g + e->w, *db = c->g + e->b, *dpos = c->g + c->lay->pos;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            int v = t == 0 ? c->NL : targets[b * L + t - 1];
            const float *d = dx + ((size_t)b * L + t) * P;
            for (int p = 0; p < P; p++) {
                dW[(size_t)p * V + v] += d[p];
                db[p] += d[p];
                dpos[(size_t)t * P + p] += d[p];
            }
        }
}

/* ---------------------------------------------------------------- creation */

/* What inference needs too: the torso's input and state, one stage's activations (reused by
 * every stage when nothing is kept for a backward pass), per-thread scratch. */
static size_t layout_base(cpu *c, float *base)
{
    arena a = {base, 0};
    const tg_net_config *f = &c->cfg;
    int B = c->max_batch, S = c->S, S2 = c->S2, C = f->c, P = c->P, L = c->L;
    int F = S * c->T + 1, Ly = 3 * S2;
    size_t Mt = (size_t)B * 2 * S2, Me = (size_t)B * Ly;
    for (int g = 0; g < 3; g++)
        c->xin[g] = take(&a, (size_t)B * S2 * F);
    c->E = take(&a, Me * C);
    c->gtmp = take(&a, (size_t)B * S2 * C);
    if (f->layers > 0)
        blk_act_take(&a, &c->tact_inf, &c->lay->torso[0], B * S, 2 * S, 2 * S);
    c->tout = take(&a, Mt * C);
    size_t wmax = (size_t)(C > P ? C : P);
    /* per-thread scratch: transposed keys [head_dim, keys] + scores [rows, keys], a row of
     * logits, or LayerNorm partials [2 width] */
    size_t keys = (size_t)(Ly > 2 * S ? Ly : 2 * S), hd = (size_t)f->head_dim;
    if (keys < (size_t)L)
        keys = (size_t)L;
    if (hd < (size_t)f->p_feat)
        hd = (size_t)f->p_feat;
    size_t lx = (size_t)(2 * S > L ? 2 * S : L); /* attention backward: [head_dim + Lx, keys] */
    size_t ts = (hd + 2 + lx) * keys;
    if (ts < (size_t)CROSS_ROWS * Ly)
        ts = (size_t)CROSS_ROWS * Ly;
    if (ts < (size_t)c->NL)
        ts = (size_t)c->NL;
    if (ts < 2 * wmax)
        ts = 2 * wmax;
    c->tscr_n = (ts + 15) & ~(size_t)15;
    c->tscr = take(&a, c->tscr_n * (size_t)c->threads);
    return a.used;
}

/* Activations kept for the backward pass and its scratch (allocated on the first training or
 * teacher-forced call, so that an inference-only net never pays for them). */
static size_t layout_train(cpu *c, float *base)
{
    arena a = {base, 0};
    const tg_net_config *f = &c->cfg;
    int B = c->max_batch, S = c->S, S2 = c->S2, C = f->c, P = c->P, L = c->L;
    int Ly = 3 * S2;
    size_t Mt = (size_t)B * 2 * S2, Mp = (size_t)B * L, Me = (size_t)B * Ly;
    for (int i = 0; i < f->layers * 3; i++)
        blk_act_take(&a, &c->tact[i], &c->lay->torso[i], B * S, 2 * S, 2 * S);
    for (int i = 0; i < 2 * f->p_layers; i++)
        blk_act_take(&a, &c->pact[i], &c->lay->policy[i], B, L, (i % 2) ? Ly : L);
    c->pxf = take(&a, Mp * P);
    c->hN = take(&a, Mp * P);
    c->muN = take(&a, Mp);
    c->rsN = take(&a, Mp);
    c->relu = take(&a, Mp * P);
    c->logits = take(&a, Mp * c->NL);
    c->vin = take(&a, (size_t)B * P);
    for (int l = 0; l < f->v_layers; l++)
        c->vh[l] = take(&a, (size_t)B * f->v_hidden);
    c->quant = take(&a, (size_t)B * c->Q);
    /* backward */
    size_t wmax = (size_t)(C > P ? C : P);
    size_t vmax = (size_t)f->v_hidden > (size_t)P ? (size_t)f->v_hidden : (size_t)P;
    c->dE = take(&a, Me * C);
    c->dlogits = take(&a, Mp * (c->NL > 1 ? c->NL : 1));
    c->dr = take(&a, Mp * P);
    c->dv0 = take(&a, (size_t)B * (vmax > (size_t)S2 ? vmax : (size_t)S2));
    c->dv1 = take(&a, (size_t)B * vmax);
    c->dquant = take(&a, (size_t)B * c->Q);
    size_t Mx = Mt > Mp ? Mt : Mp; /* rows of a block's x */
    c->d_a = take(&a, Mx * wmax);
    c->d_b = take(&a, Mx * wmax);
    int inner_t = f->heads * f->head_dim, inner_p = P;
    size_t inner = (size_t)(inner_t > inner_p ? inner_t : inner_p);
    size_t wc = (size_t)f->widen * wmax;
    c->s_wc = take(&a, Mx * wc);
    c->s_cx = take(&a, Mx * wmax);
    c->s_x1 = take(&a, Mx * wmax);
    c->s_in = take(&a, Mx * inner);
    c->s_q = take(&a, Mx * inner);
    size_t My = Mt > Me ? Mt : Me;
    c->s_k = take(&a, My * inner);
    c->s_v = take(&a, My * inner);
    c->s_yn = take(&a, Me * C);
    c->ones_n = My > (size_t)B * S2 ? My : (size_t)B * S2;
    c->ones = take(&a, c->ones_n);
    return a.used;
}

static void cpu_destroy(void *impl);

static void *cpu_create(const tg_params *tab, int max_batch, int threads, uint64_t seed)
{
    cpu *c = calloc(1, sizeof *c);
    if (!c) {
        tg_fail("out of memory");
        return NULL;
    }
    c->tab = tab;
    c->cfg = tab->cfg;
    c->lay = &tab->lay;
    c->S = c->cfg.S;
    c->T = c->cfg.T;
    c->S2 = c->S * c->S;
    c->L = c->cfg.n_steps;
    c->P = tg_net_config_P(&c->cfg);
    c->NL = c->cfg.n_logits;
    c->Q = c->cfg.quantiles;
    c->max_batch = max_batch;
    if (threads <= 0) { /* the cores this process may run on (taskset, cgroups' cpusets) */
        cpu_set_t set;
        long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    c->threads = threads;
    openblas_set_num_threads(1); /* parallelism comes from the pool (gemm_ex) */
    c->pool = tg_pool_new(threads);
    if (!c->pool)
        goto fail;
    size_t n = tab->total;
    c->w = arena_alloc(n);
    c->g = arena_alloc(n);
    c->m = arena_alloc(n);
    c->v = arena_alloc(n);
    c->tact = calloc((size_t)c->cfg.layers * 3 + 1, sizeof *c->tact);
    c->pact = calloc((size_t)c->cfg.p_layers * 2 + 1, sizeof *c->pact);
    c->vh = calloc((size_t)c->cfg.v_layers + 1, sizeof *c->vh);
    if (!c->w || !c->g || !c->m || !c->v || !c->tact || !c->pact || !c->vh) {
        tg_fail("out of memory (parameters)");
        goto fail;
    }
    size_t need = layout_base(c, NULL);
    c->tbase = arena_alloc(need);
    if (!c->tbase) {
        tg_fail("out of memory: workspace of %.1f MB for max_batch %d", need * 4.0 / 1e6,
                max_batch);
        goto fail;
    }
    layout_base(c, c->tbase);
    tg_params_init(tab, c->w, seed);
    return c;
fail:
    cpu_destroy(c);
    return NULL;
}

static void cpu_destroy(void *impl)
{
    cpu *c = impl;
    if (!c)
        return;
    tg_pool_free(c->pool);
    free(c->w);
    free(c->g);
    free(c->m);
    free(c->v);
    free(c->tbase);
    free(c->trbase);
    free(c->ibase);
    free(c->tact);
    free(c->pact);
    free(c->vh);
    free(c->ck);
    free(c->cv);
    free(c->sk);
    free(c->sv);
    free(c);
}

/* ---------------------------------------------------------------- training */

static int ensure_train(cpu *c)
{
    if (c->trbase)
        return 0;
    size_t need = layout_train(c, NULL);
    c->trbase = arena_alloc(need);
    if (!c->trbase)
        return tg_fail("out of memory: training workspace of %.1f MB for max_batch %d",
                       need * 4.0 / 1e6, c->max_batch);
    layout_train(c, c->trbase);
    for (size_t i = 0; i < c->ones_n; i++)
        c->ones[i] = 1.0f;
    return 0;
}

static int cpu_loss_grad(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                         tg_losses *loss, float *grads)
{
    cpu *c = impl;
    int B = b->B;
    if (ensure_train(c))
        return -1;
    torso_fwd(c, B, b->tensors, b->scalars, 1);
    heads_fwd(c, B, b->tokens);
    tg_losses l;
    losses(c, B, b->tokens, b->returns, opt->value_weight, &l);
    if (loss)
        *loss = l;
    memset(c->g, 0, c->tab->total * sizeof(float));
    heads_bwd(c, B, b->tokens);
    torso_bwd(c, B, b->scalars);
    if (grads)
        memcpy(grads, c->g, c->tab->total * sizeof(float));
    return 0;
}

typedef struct adam_ctx {
    cpu *c;
    double lr, wd, b1, b2, eps, bc1, bc2, scale;
    const uint8_t *decay;
} adam_ctx;

TG_HOT static void adam_params(void *vctx, int lo, int hi, int tid)
{
    (void)tid;
    adam_ctx *k = vctx;
    cpu *c = k->c;
    const tg_params *t = c->tab;
    for (int i = lo; i < hi; i++) {
        const tg_param *p = &t->p[i];
        float *w = c->w + p->offset, *g = c->g + p->offset, *m = c->m + p->offset,
              *v = c->v + p->offset;
        float b1 = (float)k->b1, b2 = (float)k->b2, sc = (float)k->scale;
        float step = (float)(k->lr / k->bc1), ibc2 = (float)(1.0 / k->bc2), eps = (float)k->eps;
        float shrink = p->decay ? (float)(1.0 - k->lr * k->wd) : 1.0f;
        for (size_t j = 0; j < p->size; j++) {
            float gj = g[j] * sc;
            m[j] = b1 * m[j] + (1.0f - b1) * gj;
            v[j] = b2 * v[j] + (1.0f - b2) * gj * gj;
            w[j] = w[j] * shrink - step * m[j] / (sqrtf(v[j] * ibc2) + eps);
        }
    }
}

static int cpu_train_step(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                          tg_train_stats *out)
{
    cpu *c = impl;
    tg_losses l;
    if (cpu_loss_grad(c, opt, b, &l, NULL))
        return -1;
    double ss = 0;
    for (size_t i = 0; i < c->tab->total; i++)
        ss += (double)c->g[i] * c->g[i];
    double norm = sqrt(ss);
    if (!isfinite(norm) || !isfinite(l.total))
        return tg_fail("non-finite loss (%g) or gradient norm (%g) at step %lld; parameters "
                       "left unchanged", l.total, norm, (long long)c->step);
    double scale = 1.0;
    if (opt->grad_clip > 0 && norm > opt->grad_clip)
        scale = opt->grad_clip / (norm + 1e-6);
    double lr = tg_lr_at(opt, c->step);
    c->step++;
    adam_ctx k = {.c = c, .lr = lr, .wd = opt->weight_decay, .b1 = opt->beta1, .b2 = opt->beta2,
                  .eps = opt->eps, .bc1 = 1.0 - pow(opt->beta1, (double)c->step),
                  .bc2 = 1.0 - pow(opt->beta2, (double)c->step), .scale = scale};
    tg_pool_for(c->pool, c->tab->n, 1e9, adam_params, &k);
    if (out) {
        out->loss = l;
        out->grad_norm = norm;
        out->lr = lr;
        out->step = c->step;
    }
    return 0;
}

static int cpu_forward(void *impl, const tg_batch_view *b, float *logits, float *quantiles,
                       float *torso)
{
    cpu *c = impl;
    int B = b->B;
    if (ensure_train(c))
        return -1;
    torso_fwd(c, B, b->tensors, b->scalars, 1);
    heads_fwd(c, B, b->tokens);
    if (logits)
        memcpy(logits, c->logits, (size_t)B * c->L * c->NL * sizeof(float));
    if (quantiles)
        memcpy(quantiles, c->quant, (size_t)B * c->Q * sizeof(float));
    if (torso)
        memcpy(torso, c->E, (size_t)B * 3 * c->S2 * c->cfg.c * sizeof(float));
    return 0;
}

/* ---------------------------------------------------------------- inference with KV caches */

static size_t layout_infer(cpu *c, float *base, int N, size_t R)
{
    arena a = {base, 0};
    int P = c->P, pl = c->cfg.p_layers, L = c->L, Ly = 3 * c->S2;
    size_t wc = (size_t)c->cfg.widen * P;
    size_t vmax = (size_t)(c->cfg.v_hidden > P ? c->cfg.v_hidden : P);
    for (int i = 0; i < pl; i++) {
        float *k = take(&a, (size_t)N * Ly * P), *v = take(&a, (size_t)N * Ly * P);
        float *sk = take(&a, R * L * P), *sv = take(&a, R * L * P);
        if (base) {
            c->ck[i] = k, c->cv[i] = v, c->sk[i] = sk, c->sv[i] = sv;
        }
    }
    float *p[12];
    size_t sz[12] = {(size_t)N * Ly * c->cfg.c, R * P, R * P, R * P, R * P, R * P, R * P,
                     R * wc, R * P, R * (size_t)c->NL, R * L, (size_t)N * vmax};
    for (int i = 0; i < 12; i++)
        p[i] = take(&a, sz[i]);
    float *vh1 = take(&a, (size_t)N * vmax);
    float *iquant = take(&a, (size_t)N * c->Q);
    float *tok = take(&a, R * L);
    if (base) {
        c->iyn = p[0], c->ix = p[1], c->ixn = p[2], c->iq = p[3], c->ia = p[4], c->ix1 = p[5];
        c->ixm = p[6], c->ih = p[7], c->ihN = p[8], c->ilog = p[9], c->iu = p[10];
        c->ivh0 = p[11], c->ivh1 = vh1, c->iquant = iquant;
        c->itok = (int32_t *)tok;
    }
    return a.used;
}

static int infer_reserve(cpu *c, int N, size_t R)
{
    if (c->ibase && (size_t)N <= (size_t)c->icap_N && R <= c->icap_rows)
        return 0;
    int pl = c->cfg.p_layers;
    if (!c->ck) {
        c->ck = calloc((size_t)pl + 1, sizeof *c->ck);
        c->cv = calloc((size_t)pl + 1, sizeof *c->cv);
        c->sk = calloc((size_t)pl + 1, sizeof *c->sk);
        c->sv = calloc((size_t)pl + 1, sizeof *c->sv);
        if (!c->ck || !c->cv || !c->sk || !c->sv)
            return tg_fail("out of memory");
    }
    if ((size_t)N < (size_t)c->icap_N)
        N = c->icap_N;
    if (R < c->icap_rows)
        R = c->icap_rows;
    size_t need = layout_infer(c, NULL, N, R);
    free(c->ibase);
    c->ibase = arena_alloc(need);
    if (!c->ibase) {
        c->icap_N = 0;
        c->icap_rows = 0;
        return tg_fail("out of memory: inference workspace of %.1f MB (%d positions, %zu rows)",
                       need * 4.0 / 1e6, N, R);
    }
    layout_infer(c, c->ibase, N, R);
    c->icap_N = N;
    c->icap_rows = R;
    return 0;
}

typedef struct dec_ctx {
    cpu *c;
    const tg_block_off *bo;
    const float *q, *K, *V; /* q [R, P]; K/V: self cache [R, L, P] or cross [N, Ly, P] */
    float *a;
    int t, Kper, cross;
} dec_ctx;

/* Cross-attention of the decoder: items are positions; the Kper rows of a position share its
 * keys, transposed once per head. */
TG_HOT static void dec_cross_pos(void *vctx, int lo, int hi, int tid)
{
    dec_ctx *k = vctx;
    cpu *c = k->c;
    int H = k->bo->heads, D = k->bo->head_dim, P = c->P, Ly = 3 * c->S2;
    float scale = 1.0f / sqrtf((float)D);
    float *sc = c->tscr + (size_t)tid * c->tscr_n; /* [CROSS_ROWS, Ly] */
    for (int n = lo; n < hi; n++) {
        const float *Kb = k->K + (size_t)n * Ly * P, *Vb = k->V + (size_t)n * Ly * P;
        for (int h = 0; h < H; h++)
            for (int s0 = 0; s0 < k->Kper; s0 += CROSS_ROWS) {
                /* the samples of a position share its keys: scores and outputs as two small
                 * GEMMs per head (single-threaded OpenBLAS inside the pool's worker) */
                int m = k->Kper - s0 < CROSS_ROWS ? k->Kper - s0 : CROSS_ROWS;
                size_t r0 = (size_t)n * k->Kper + s0;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, Ly, D, scale,
                            k->q + r0 * P + h * D, P, Kb + h * D, P, 0.0f, sc, Ly);
                for (int i = 0; i < m; i++) {
                    float *p = sc + (size_t)i * Ly, mx = p[0], sum = 0;
                    for (int j = 1; j < Ly; j++)
                        mx = p[j] > mx ? p[j] : mx;
                    for (int j = 0; j < Ly; j++) {
                        p[j] = vexp(p[j] - mx);
                        sum += p[j];
                    }
                    float inv = 1.0f / sum;
                    for (int j = 0; j < Ly; j++)
                        p[j] *= inv;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, D, Ly, 1.0f, sc, Ly,
                            Vb + h * D, P, 0.0f, k->a + r0 * P + h * D, P);
            }
    }
}

/* Causal self-attention of the decoder at step t: each row against its own t + 1 cached keys. */
TG_HOT static void dec_self_rows(void *vctx, int lo, int hi, int tid)
{
    dec_ctx *k = vctx;
    cpu *c = k->c;
    int H = k->bo->heads, D = k->bo->head_dim, P = c->P, L = c->L, nk = k->t + 1;
    float scale = 1.0f / sqrtf((float)D);
    float *kT = c->tscr + (size_t)tid * c->tscr_n, *p = kT + (size_t)D * L;
    for (int r = lo; r < hi; r++) {
        const float *Kb = k->K + (size_t)r * L * P, *Vb = k->V + (size_t)r * L * P;
        for (int h = 0; h < H; h++) {
            transpose_keys(Kb + h * D, P, nk, D, kT, L);
            scores_softmax(k->q + (size_t)r * P + h * D, kT, L, nk, D, scale, p);
#define DEC_SUM(DD) att_weighted_sum(p, Vb + h * D, P, nk, k->a + (size_t)r * P + h * D, DD)
            ATT_WITH_D(D, DEC_SUM);
#undef DEC_SUM
        }
    }
}

/* One decoder block on R rows at step t (x in place). */
static void dec_block(cpu *c, int layer, int R, int t, int Kper)
{
    const tg_block_off *bo = &c->lay->policy[layer];
    int P = c->P, L = c->L, wc = bo->widen * P, j = layer / 2;
    ln_fwd(c, &bo->norm_x, c->ix, R, c->ixn, NULL, NULL);
    lin_fwd(c, &bo->q, c->ixn, R, c->iq, P, NULL);
    dec_ctx k = {.c = c, .bo = bo, .q = c->iq, .a = c->ia, .t = t, .Kper = Kper,
                 .cross = layer % 2};
    if (layer % 2) {
        k.K = c->ck[j];
        k.V = c->cv[j];
    } else {
        /* append this step's key and value to the cache rows (row stride L P) */
        lin_fwd(c, &bo->k, c->ixn, R, c->sk[j] + (size_t)t * P, L * P, NULL);
        lin_fwd(c, &bo->v, c->ixn, R, c->sv[j] + (size_t)t * P, L * P, NULL);
        k.K = c->sk[j];
        k.V = c->sv[j];
    }
    if (k.cross)
        tg_pool_for(c->pool, R / Kper, 4.0 * P * 3 * c->S2 * Kper, dec_cross_pos, &k);
    else
        tg_pool_for(c->pool, R, 4.0 * P * (t + 1), dec_self_rows, &k);
    lin_fwd(c, &bo->o, c->ia, R, c->ix1, P, c->ix);
    ln_fwd(c, &bo->norm_mlp, c->ix1, R, c->ixm, NULL, NULL);
    lin_fwd(c, &bo->mlp_in, c->ixm, R, c->ih, wc, NULL);
    gelu_fwd(c, c->ih, c->ih, (size_t)R * wc);
    lin_fwd(c, &bo->mlp_out, c->ih, R, c->ix, P, c->ix1);
}

/* Torso on N positions, then the cross-attention keys and values of every cross layer. */
static void dec_prepare(cpu *c, const float *tensors, const float *scalars, int N)
{
    torso_fwd(c, N, tensors, scalars, 0);
    int Ly = 3 * c->S2;
    for (int j = 0; j < c->cfg.p_layers; j++) {
        const tg_block_off *bo = &c->lay->policy[2 * j + 1];
        ln_fwd(c, &bo->norm_y, c->E, N * Ly, c->iyn, NULL, NULL);
        lin_fwd(c, &bo->k, c->iyn, N * Ly, c->ck[j], c->P, NULL);
        lin_fwd(c, &bo->v, c->iyn, N * Ly, c->cv[j], c->P, NULL);
    }
}

/* Decoder pass for the current c->ix rows; leaves logits in c->ilog and h in c->ihN. */
static void dec_step(cpu *c, int R, int t, int Kper)
{
    for (int i = 0; i < 2 * c->cfg.p_layers; i++)
        dec_block(c, i, R, t, Kper);
    ln_fwd(c, &c->lay->pnorm, c->ix, R, c->ihN, NULL, NULL);
    for (size_t i = 0; i < (size_t)R * c->P; i++)
        c->ix1[i] = c->ihN[i] > 0 ? c->ihN[i] : 0;
    lin_fwd(c, &c->lay->pout, c->ix1, R, c->ilog, c->NL, NULL);
}

typedef struct choose_ctx {
    cpu *c;
    int greedy, t;
    float inv_temp;
    const float *u;
    float *logits_out, *logp;
} choose_ctx;

/* Each row's token at step t: argmax, or the inverse-CDF draw of softmax(logits / temperature)
 * with the row's uniform; the log-probability of the choice accumulates into logp. */
TG_HOT static void choose_rows(void *vctx, int lo, int hi, int tid)
{
    choose_ctx *k = vctx;
    cpu *c = k->c;
    int NL = c->NL, L = c->L, t = k->t;
    float *pr = c->tscr + (size_t)tid * c->tscr_n;
    for (int r = lo; r < hi; r++) {
        const float *l = c->ilog + (size_t)r * NL;
        if (k->logits_out)
            memcpy(k->logits_out + ((size_t)r * L + t) * NL, l, (size_t)NL * sizeof(float));
        int best = 0;
        float mx = l[0];
        for (int j = 1; j < NL; j++)
            if (l[j] > mx) {
                mx = l[j];
                best = j;
            }
        int choice = best;
        double lp = 0;
        if (!k->greedy) {
            float s = 0;
            for (int j = 0; j < NL; j++) {
                pr[j] = vexp((l[j] - mx) * k->inv_temp);
                s += pr[j];
            }
            float target = k->u[(size_t)r * L + t] * s, cum = 0;
            for (int j = 0; j < NL; j++) {
                cum += pr[j];
                if (cum > target && pr[j] > 0) {
                    choice = j;
                    break;
                }
            }
            lp = (double)(l[choice] - mx) * k->inv_temp - log((double)s);
        }
        c->itok[(size_t)r * L + t] = choice;
        if (k->logp)
            k->logp[r] = (t == 0 ? 0.0f : k->logp[r]) + (float)lp;
    }
}

/* Decodes K actions for each of N positions. mode 0: sample with uniforms u [N, K, L] at
 * temperature; mode 1: argmax (K = 1). */
static int decode(cpu *c, const float *tensors, const float *scalars, int N, int K, int greedy,
                  float temperature, const float *u, int32_t *tokens, float *logp,
                  float *quantiles, float *value, float *logits_out)
{
    int L = c->L, P = c->P, NL = c->NL, Q = c->Q;
    size_t R = (size_t)N * K;
    if (infer_reserve(c, N, R))
        return -1;
    dec_prepare(c, tensors, scalars, N);
    /* step 0: all K samples of a position share the start token, so run N rows once */
    for (int t = 0; t < L; t++) {
        int rows = t == 0 ? N : (int)R;
        int Kper = t == 0 ? 1 : K;
        /* embed: row r's input token */
        const tg_lin_off *e = &c->lay->embed;
        const float *W = c->w + e->w, *bb = c->w + e->b, *pos = c->w + c->lay->pos + (size_t)t * P;
        for (int r = 0; r < rows; r++) {
            int v = t == 0 ? NL : c->itok[(size_t)r * L + t - 1];
            float *x = c->ix + (size_t)r * P;
            for (int p = 0; p < P; p++)
                x[p] = W[(size_t)p * (NL + 1) + v] + bb[p] + pos[p];
        }
        dec_step(c, rows, t, Kper);
        if (t == 0) {
            /* value head on the first position's feature */
            value_fwd(c, c->ihN, N, c->iquant, c->ivh0, c->ivh1, NULL);
            for (int n = 0; n < N; n++) {
                const float *qq = c->iquant + (size_t)n * Q;
                if (quantiles)
                    memcpy(quantiles + (size_t)n * Q, qq, (size_t)Q * sizeof(float));
                if (value)
                    value[n] = tg_risk_seeking_value(qq, Q);
            }
            /* fan the first step out to K samples: logits and the self-attention caches */
            for (int n = N - 1; n >= 0; n--)
                for (int k = K - 1; k >= 0; k--) {
                    size_t r = (size_t)n * K + k;
                    if (r != (size_t)n)
                        memmove(c->ilog + r * NL, c->ilog + (size_t)n * NL,
                                (size_t)NL * sizeof(float));
                    for (int j = 0; j < c->cfg.p_layers; j++) {
                        memmove(c->sk[j] + r * L * P, c->sk[j] + (size_t)n * L * P,
                                (size_t)P * sizeof(float));
                        memmove(c->sv[j] + r * L * P, c->sv[j] + (size_t)n * L * P,
                                (size_t)P * sizeof(float));
                    }
                }
        }
        /* choose each row's token */
        choose_ctx ch = {.c = c, .greedy = greedy, .inv_temp = 1.0f / temperature, .u = u,
                         .t = t, .logits_out = logits_out, .logp = logp};
        tg_pool_for(c->pool, (int)R, 8.0 * NL, choose_rows, &ch);
    }
    if (tokens)
        memcpy(tokens, c->itok, R * L * sizeof(int32_t));
    return 0;
}

static int cpu_sample(void *impl, const float *tensors, const float *scalars, int N, int K,
                      float temperature, const float *uniforms, uint64_t seed, tg_eval_out *out)
{
    cpu *c = impl;
    size_t R = (size_t)N * K;
    if (infer_reserve(c, N, R))
        return -1;
    const float *u = uniforms;
    if (!u) {
        for (int n = 0; n < N; n++) {
            tg_rng rng;
            tg_rng_seed(&rng, seed, (uint64_t)n);
            for (size_t i = 0; i < (size_t)K * c->L; i++)
                c->iu[(size_t)n * K * c->L + i] = (float)tg_rng_uniform(&rng);
        }
        u = c->iu;
    }
    return decode(c, tensors, scalars, N, K, 0, temperature, u, out->tokens, out->logp,
                  out->quantiles, out->value, out->logits);
}

static int cpu_greedy(void *impl, const float *tensors, const float *scalars, int N,
                      int32_t *tokens, float *quantiles)
{
    return decode(impl, tensors, scalars, N, 1, 1, 1.0f, NULL, tokens, NULL, quantiles, NULL,
                  NULL);
}

/* ---------------------------------------------------------------- state */

static int cpu_get_params(void *impl, float *dst)
{
    cpu *c = impl;
    memcpy(dst, c->w, c->tab->total * sizeof(float));
    return 0;
}

static int cpu_set_params(void *impl, const float *src)
{
    cpu *c = impl;
    for (size_t i = 0; i < c->tab->total; i++)
        if (!isfinite(src[i]))
            return tg_fail("parameter %zu is not finite", i);
    memcpy(c->w, src, c->tab->total * sizeof(float));
    return 0;
}

static int cpu_get_opt_state(void *impl, float *m, float *v, int64_t *step)
{
    cpu *c = impl;
    if (m)
        memcpy(m, c->m, c->tab->total * sizeof(float));
    if (v)
        memcpy(v, c->v, c->tab->total * sizeof(float));
    if (step)
        *step = c->step;
    return 0;
}

static int cpu_set_opt_state(void *impl, const float *m, const float *v, int64_t step)
{
    cpu *c = impl;
    size_t n = c->tab->total;
    if (m)
        memcpy(c->m, m, n * sizeof(float));
    else
        memset(c->m, 0, n * sizeof(float));
    if (v)
        memcpy(c->v, v, n * sizeof(float));
    else
        memset(c->v, 0, n * sizeof(float));
    c->step = step;
    return 0;
}

const tg_net_ops tg_net_cpu_ops = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .train_step = cpu_train_step,
    .loss_grad = cpu_loss_grad,
    .forward = cpu_forward,
    .sample = cpu_sample,
    .greedy = cpu_greedy,
    .get_params = cpu_get_params,
    .set_params = cpu_set_params,
    .get_opt_state = cpu_get_opt_state,
    .set_opt_state = cpu_set_opt_state,
};
