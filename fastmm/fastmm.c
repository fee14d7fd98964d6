/* fastmm: plans, Kronecker composition, level choice, and the CPU path (OpenBLAS). */
#include "fastmm/fastmm.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/factio.h"
#include "fastmm/fastmm_int.h"

const char *fastmm_prec_name(fastmm_prec p)
{
    switch (p) {
    case FASTMM_FP32: return "fp32";
    case FASTMM_TF32: return "tf32";
    case FASTMM_BF16: return "bf16";
    }
    return "?";
}

int fastmm_prec_parse(const char *s, fastmm_prec *out)
{
    if (!strcmp(s, "fp32")) *out = FASTMM_FP32;
    else if (!strcmp(s, "tf32")) *out = FASTMM_TF32;
    else if (!strcmp(s, "bf16")) *out = FASTMM_BF16;
    else return tg_fail("unknown precision '%s' (fp32, tf32 or bf16)", s);
    return 0;
}

fastmm_opts fastmm_opts_default(void)
{
    fastmm_opts o = {.levels = -1, .min_block = 1536, .max_levels = 3, .inner = NULL,
                     .prec = FASTMM_FP32, .workspace = 0, .panels = 0,
                     .gemm_search = 4, .direct = -1, .priority = -1, .comb = -1,
                     .comb_blocks = -1, .comb_threads = 0, .green = 0, .overlap = 0,
                     .tail = -1, .fused = 0};
    return o;
}

/* dst (r1*r2 x c1*c2, row-major, zeroed) = x1 (r1 x c1) kron x2 (r2 x c2): row i1*r2 + i2,
   column j1*c2 + j2, the index a factor's coefficient has at the composed level */
static void kron_block(int64_t *dst, const int64_t *x1, const int64_t *x2, int r1, int c1,
                       int r2, int c2)
{
    for (int i1 = 0; i1 < r1; i1++)
        for (int j1 = 0; j1 < c1; j1++) {
            int64_t y = x1[i1 * c1 + j1];
            if (!y) continue;
            for (int i2 = 0; i2 < r2; i2++)
                for (int j2 = 0; j2 < c2; j2++)
                    dst[(i1 * r2 + i2) * (c1 * c2) + j1 * c2 + j2] = y * x2[i2 * c2 + j2];
        }
}

tg_fact *fastmm_kron(const tg_fact *f1, const tg_fact *f2)
{
    if (tg_fact_arith(f1) != TG_ARITH_INTEGER || tg_fact_arith(f2) != TG_ARITH_INTEGER) {
        tg_fail("Kronecker product: both factorizations must be over the integers");
        return NULL;
    }
    tg_dims a = tg_fact_dims(f1), b = tg_fact_dims(f2);
    tg_dims d = {a.n * b.n, a.m * b.m, a.p * b.p};
    long R1 = tg_fact_rank(f1), R2 = tg_fact_rank(f2);
    if (R1 * R2 > FASTMM_MAX_RANK) {
        tg_fail("Kronecker product: rank %ld over %d", R1 * R2, FASTMM_MAX_RANK);
        return NULL;
    }
    tg_fact *f = tg_fact_new(d, (int)(R1 * R2), tg_fact_denom(f1) * tg_fact_denom(f2),
                             TG_ARITH_INTEGER);
    if (!f) {
        tg_fail_ctx("Kronecker product %dx%dx%d: ", d.n, d.m, d.p);
        return NULL;
    }
    const int64_t *u1 = tg_fact_cu(f1), *v1 = tg_fact_cv(f1), *w1 = tg_fact_cw(f1);
    const int64_t *u2 = tg_fact_cu(f2), *v2 = tg_fact_cv(f2), *w2 = tg_fact_cw(f2);
    int64_t *u = tg_fact_u(f), *v = tg_fact_v(f), *w = tg_fact_w(f);
    int A1 = a.n * a.m, B1 = a.m * a.p, C1 = a.p * a.n;
    int A2 = b.n * b.m, B2 = b.m * b.p, C2 = b.p * b.n;
    int A = d.n * d.m, B = d.m * d.p, C = d.p * d.n;
    for (long r1 = 0; r1 < R1; r1++)
        for (long r2 = 0; r2 < R2; r2++) {
            long r = r1 * R2 + r2;
            /* u is n x m, v m x p, w p x n (w's index k*n + i) */
            kron_block(u + r * A, u1 + r1 * A1, u2 + r2 * A2, a.n, a.m, b.n, b.m);
            kron_block(v + r * B, v1 + r1 * B1, v2 + r2 * B2, a.m, a.p, b.m, b.p);
            kron_block(w + r * C, w1 + r1 * C1, w2 + r2 * C2, a.p, a.n, b.p, b.n);
        }
    return f;
}

tg_fact *fastmm_load(const char *file, const char *key)
{
    if (!strcmp(file, "builtin")) {
        tg_dims d;
        if (!strcmp(key, "strassen")) return tg_fact_strassen();
        if (!strncmp(key, "naive:", 6) && !tg_dims_parse(key + 6, &d)) return tg_fact_naive(d);
        tg_fail("builtin algorithms: strassen, naive:N,M,P (not '%s')", key);
        return NULL;
    }
    return tg_factio_read_key(file, key);
}

/* ---- plans ---- */

fastmm_plan *fastmm_plan_new(const tg_fact *f, const fastmm_opts *opts)
{
    fastmm_plan *p = calloc(1, sizeof *p);
    if (!p) {
        tg_fail("out of memory");
        return NULL;
    }
    p->opts = opts ? *opts : fastmm_opts_default();
    if (p->opts.min_block < 1) p->opts.min_block = 1;
    if (p->opts.max_levels > FASTMM_LEVELS_MAX) p->opts.max_levels = FASTMM_LEVELS_MAX;
    if (p->opts.comb_threads != 0 && p->opts.comb_threads != 32 && p->opts.comb_threads != 64 &&
        p->opts.comb_threads != 128 && p->opts.comb_threads != 256) {
        tg_fail("fastmm: %d threads per combination block (0, 32, 64, 128 or 256)",
                p->opts.comb_threads);
        goto fail;
    }
    if (p->opts.green < -1) {
        tg_fail("fastmm: green %d (-1 tuned, 0 off, N SMs for the combinations)", p->opts.green);
        goto fail;
    }
    if (p->opts.priority < -1 || p->opts.priority > 2) {
        tg_fail("fastmm: priority %d (-1 tuned, 0 equal, 1 the combinations first, 2 the "
                "products first)", p->opts.priority);
        goto fail;
    }
    if (p->opts.overlap < -1 || p->opts.overlap > 1) {
        tg_fail("fastmm: overlap %d (-1 tuned, 0 off, 1 on)", p->opts.overlap);
        goto fail;
    }
    if (p->opts.tail < -1 || p->opts.tail > 1) {
        tg_fail("fastmm: tail %d (-1 tuned, 0 off, 1 on)", p->opts.tail);
        goto fail;
    }
    if (p->opts.levels > FASTMM_LEVELS_MAX) {
        tg_fail("fastmm: %d levels requested, at most %d", p->opts.levels, FASTMM_LEVELS_MAX);
        goto fail;
    }
    if (tg_fact_arith(f) != TG_ARITH_INTEGER) {
        tg_fail("fastmm: a mod-2 factorization does not multiply real matrices");
        goto fail;
    }
    int ok = tg_fact_verify(f, 0, NULL);
    if (ok != 1) {
        if (ok == 0) tg_fail("fastmm: the factorization is not exact (tg verify says where)");
        goto fail;
    }
    p->base = tg_fact_clone(f);
    p->inner = p->opts.inner ? tg_fact_clone(p->opts.inner) : tg_fact_strassen();
    if (!p->base || !p->inner)
        goto fail;
    if (p->opts.inner) {
        if (tg_fact_arith(p->inner) != TG_ARITH_INTEGER || tg_fact_verify(p->inner, 0, NULL) != 1) {
            tg_fail("fastmm: the inner factorization is not exact over the integers");
            goto fail;
        }
    }
    p->opts.inner = NULL; /* the caller's pointer may not outlive the plan */
    return p;
fail:
    fastmm_plan_free(p);
    return NULL;
}

static void csr_free(fastmm_csr *c)
{
    free(c->ptr);
    free(c->idx);
    free(c->val);
}

static void direct_free(fastmm_direct *d)
{
    if (!d) return;
#ifdef TG_HAVE_CUDA
    if (d->dev) fastmm_cuda_level_release(d->dev);
#endif
    csr_free(&d->a);
    csr_free(&d->b);
    csr_free(&d->c);
    csr_free(&d->cg);
    free(d->da);
    free(d->db);
    free(d->dc);
    free(d->mc);
    free(d->cacc);
    free(d);
}

static void level_free(fastmm_level *l)
{
    if (!l) return;
#ifdef TG_HAVE_CUDA
    if (l->dev) fastmm_cuda_level_release(l->dev);
#endif
    direct_free(l->dir);
    csr_free(&l->a);
    csr_free(&l->b);
    csr_free(&l->c);
    tg_fact_free(l->f);
    free(l);
}

void fastmm_plan_free(fastmm_plan *p)
{
    if (!p) return;
    for (int i = 0; i <= FASTMM_LEVELS_MAX; i++)
        level_free(p->lv[i]);
    tg_fact_free(p->base);
    tg_fact_free(p->inner);
    free(p);
}

const fastmm_opts *fastmm_plan_opts(const fastmm_plan *p) { return &p->opts; }
const tg_fact *fastmm_plan_base(const fastmm_plan *p) { return p->base; }

/* Builds out[o] = sum coef[o][i] in[i] from a dense coefficient accessor. */
static int csr_build(fastmm_csr *c, int nin, int nout, const int64_t *coef, long stride_o,
                     long stride_i, double scale)
{
    c->nin = nin;
    c->nout = nout;
    int nnz = 0;
    for (int o = 0; o < nout; o++)
        for (int i = 0; i < nin; i++)
            nnz += coef[o * stride_o + i * stride_i] != 0;
    c->nnz = nnz;
    c->ptr = malloc(sizeof(int) * (nout + 1));
    c->idx = malloc(sizeof(int) * (nnz ? nnz : 1));
    c->val = malloc(sizeof(float) * (nnz ? nnz : 1));
    if (!c->ptr || !c->idx || !c->val)
        return tg_fail("out of memory");
    int e = 0;
    for (int o = 0; o < nout; o++) {
        c->ptr[o] = e;
        for (int i = 0; i < nin; i++) {
            int64_t x = coef[o * stride_o + i * stride_i];
            if (x) {
                c->idx[e] = i;
                c->val[e] = (float)((double)x * scale);
                e++;
            }
        }
    }
    c->ptr[nout] = e;
    return 0;
}

/* How csr_filter edits a map (NULL fields: no such edit). */
typedef struct csr_edit {
    const int *drop;          /* rows o with drop[o] >= 0 left empty */
    const float *scale;       /* every value of column i multiplied by scale[i] */
    const float *rscale;      /* ... and of row o by rscale[o] */
    const int *cmap;          /* column i renumbered cmap[i] (of ncol), dropped where -1 */
    int ncol;
} csr_edit;

/* dst = src edited as ed says. */
static int csr_filter(fastmm_csr *dst, const fastmm_csr *src, csr_edit ed)
{
    memset(dst, 0, sizeof *dst);
    dst->nin = ed.cmap ? ed.ncol : src->nin;
    dst->nout = src->nout;
    dst->ptr = malloc(sizeof(int) * (src->nout + 1));
    dst->idx = malloc(sizeof(int) * (src->nnz ? src->nnz : 1));
    dst->val = malloc(sizeof(float) * (src->nnz ? src->nnz : 1));
    if (!dst->ptr || !dst->idx || !dst->val) return tg_fail("out of memory");
    int e = 0;
    for (int o = 0; o < src->nout; o++) {
        dst->ptr[o] = e;
        if (ed.drop && ed.drop[o] >= 0) continue;
        for (int k = src->ptr[o]; k < src->ptr[o + 1]; k++) {
            int i = src->idx[k];
            if (ed.cmap && ed.cmap[i] < 0) continue;
            dst->idx[e] = ed.cmap ? ed.cmap[i] : i;
            dst->val[e] = ed.scale ? src->val[k] * ed.scale[i] : src->val[k];
            if (ed.rscale) dst->val[e] *= ed.rscale[o];
            e++;
        }
    }
    dst->ptr[src->nout] = e;
    dst->nnz = e;
    return 0;
}

/* A non-zero power of two (up to sign): scaling by it is exact in floating point. */
static int is_pow2(float v)
{
    int e;
    return v != 0 && isfinite(v) && frexpf(fabsf(v), &e) == 0.5f;
}

/* The level's direct operands and products (fastmm_int.h); *out NULL when no term has one. */
static int direct_build(const fastmm_level *l, fastmm_direct **out)
{
    *out = NULL;
    int R = l->a.nout, nC = l->c.nout, nda = 0, ndb = 0, ndc = 0;
    fastmm_direct *d = calloc(1, sizeof *d);
    float *sc = malloc(sizeof(float) * R), *fa = malloc(sizeof(float) * R),
          *fb = malloc(sizeof(float) * R);
    int *ncol = calloc((size_t)R, sizeof(int));
    if (!d || !sc || !fa || !fb || !ncol || !(d->da = malloc(sizeof(int) * R)) ||
        !(d->db = malloc(sizeof(int) * R)) || !(d->dc = malloc(sizeof(int) * R)) ||
        !(d->mc = malloc(sizeof(int) * R)) || !(d->cacc = calloc((size_t)nC, sizeof(int))))
        goto oom;
    for (int r = 0; r < R; r++) {
        const fastmm_csr *m[2] = {&l->a, &l->b};
        int *dst[2] = {d->da, d->db}, *cnt[2] = {&nda, &ndb};
        sc[r] = fa[r] = fb[r] = 1.0f;
        for (int t = 0; t < 2; t++) {
            int e = m[t]->ptr[r];
            dst[t][r] = -1;
            if (m[t]->ptr[r + 1] - e == 1 && is_pow2(m[t]->val[e])) {
                dst[t][r] = m[t]->idx[e];
                sc[r] *= m[t]->val[e];
                (*cnt[t])++;
            }
        }
    }
    /* Products written straight into C: a product that reaches one C block only, at most one
     * per block (the GEMM writes the block; its C combination then adds the other products
     * to it). Its coefficient must be 1: a power of two moves (exactly) into an operand the
     * combinations compute, else the product keeps its temporary. */
    for (int k = 0; k < l->c.nnz; k++)
        ncol[l->c.idx[k]]++;
    for (int r = 0; r < R; r++)
        d->dc[r] = -1;
    for (int o = 0; o < nC; o++)
        for (int k = l->c.ptr[o]; k < l->c.ptr[o + 1] && !d->cacc[o]; k++) {
            int r = l->c.idx[k];
            float v = l->c.val[k] * sc[r];
            if (ncol[r] != 1 || !is_pow2(v)) continue;
            if (v != 1.0f) {
                if (d->da[r] < 0) fa[r] = v;
                else if (d->db[r] < 0) fb[r] = v;
                else continue;
                sc[r] /= v;
            }
            d->dc[r] = o;
            d->cacc[o] = 1;
            ndc++;
        }
    for (int r = 0, cell = 0; r < R; r++)
        d->mc[r] = d->dc[r] >= 0 ? -1 : cell++;
    d->nda = nda;
    d->ndb = ndb;
    d->ndc = ndc;
    /* cg: c without the written products, inputs numbered by cell (fastmm_int.h) */
    if ((nda || ndb || ndc) &&
        (csr_filter(&d->a, &l->a, (csr_edit){.drop = d->da, .rscale = fa}) ||
         csr_filter(&d->b, &l->b, (csr_edit){.drop = d->db, .rscale = fb}) ||
         csr_filter(&d->c, &l->c, (csr_edit){.scale = sc}) ||
         csr_filter(&d->cg, &d->c, (csr_edit){.cmap = d->mc, .ncol = R - ndc})))
        goto fail;
    free(sc);
    free(fa);
    free(fb);
    free(ncol);
    if (nda || ndb || ndc) *out = d;
    else direct_free(d);
    return 0;
oom:
    tg_fail("out of memory");
fail:
    free(sc);
    free(fa);
    free(fb);
    free(ncol);
    direct_free(d);
    return -1;
}

int fastmm_direct_fits(const fastmm_level *l, long M, long K, long N)
{
    if (!l || !l->dir) return 0;
    tg_dims d = tg_fact_dims(l->f);
    fastmm_geom g = fastmm_geometry(d, M, K, N);
    return g.bm * d.n == M && g.bk * d.m == K && g.bn * d.p == N;
}

int fastmm_plan_direct_terms(fastmm_plan *p, int levels, int *na, int *nb, int *nc)
{
    fastmm_level *l = fastmm_plan_level(p, levels);
    if (!l) return -1;
    *na = l->dir ? l->dir->nda : 0;
    *nb = l->dir ? l->dir->ndb : 0;
    *nc = l->dir ? l->dir->ndc : 0;
    return 0;
}

const tg_fact *fastmm_plan_level_fact(fastmm_plan *p, int levels)
{
    if (levels == 0) return NULL;
    fastmm_level *l = fastmm_plan_level(p, levels);
    return l ? l->f : NULL;
}

fastmm_level *fastmm_plan_level(fastmm_plan *p, int levels)
{
    if (levels < 1 || levels > FASTMM_LEVELS_MAX) {
        tg_fail("fastmm: level count %d out of range 1..%d", levels, FASTMM_LEVELS_MAX);
        return NULL;
    }
    if (p->lv[levels]) return p->lv[levels];
    fastmm_level *l = calloc(1, sizeof *l);
    if (!l) {
        tg_fail("out of memory");
        return NULL;
    }
    l->f = tg_fact_clone(p->base);
    for (int i = 1; l->f && i < levels; i++) {
        tg_fact *g = fastmm_kron(l->f, p->inner);
        tg_fact_free(l->f);
        l->f = g;
    }
    if (!l->f) {
        tg_fail_ctx("fastmm: %d levels: ", levels);
        goto fail;
    }
    tg_dims d = tg_fact_dims(l->f);
    int R = tg_fact_rank(l->f);
    int nA = d.n * d.m, nB = d.m * d.p, nC = d.p * d.n;
    /* 1/D per factor, so the three together give 1/D^3 */
    double s = 1.0 / (double)tg_fact_denom(l->f);
    if (csr_build(&l->a, nA, R, tg_fact_cu(l->f), nA, 1, s) ||
        csr_build(&l->b, nB, R, tg_fact_cv(l->f), nB, 1, s))
        goto fail;
    /* c: output block i*p+k from w[r][k*n+i]; build a dense [nC_rowmajor][R] view first */
    int64_t *wt = malloc(sizeof(int64_t) * (size_t)nC * R);
    if (!wt) {
        tg_fail("out of memory");
        goto fail;
    }
    const int64_t *w = tg_fact_cw(l->f);
    for (int i = 0; i < d.n; i++)
        for (int k = 0; k < d.p; k++)
            for (int r = 0; r < R; r++)
                wt[(size_t)(i * d.p + k) * R + r] = w[(size_t)r * nC + k * d.n + i];
    int rc = csr_build(&l->c, R, nC, wt, R, 1, s);
    free(wt);
    if (rc || direct_build(l, &l->dir)) goto fail;
    p->lv[levels] = l;
    return l;
fail:
    level_free(l);
    return NULL;
}

fastmm_geom fastmm_geometry(tg_dims d, long M, long K, long N)
{
    fastmm_geom g = {M, K, N, 0, 0, 0};
    long parts[3] = {d.n, d.m, d.p}, sz[3] = {M, K, N}, *out[3] = {&g.bm, &g.bk, &g.bn};
    for (int t = 0; t < 3; t++) {
        long b = (sz[t] + parts[t] - 1) / parts[t];
        /* inexact division: pad to a multiple of 8 (aligned vector access, friendlier GEMM
         * shapes) when blocks are large enough for the padding to cost little */
        if (b * parts[t] != sz[t] && b >= 64)
            b = (b + 7) / 8 * 8;
        if (b < 1) b = 1;
        *out[t] = b;
    }
    return g;
}

const fastmm_tuned *fastmm_plan_tuned(const fastmm_plan *p, long M, long K, long N)
{
    for (int i = 0; i < p->ntuned; i++)
        if (p->tuned[i].M == M && p->tuned[i].K == K && p->tuned[i].N == N)
            return &p->tuned[i];
    return NULL;
}

int fastmm_plan_levels(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.levels >= 0)
        return p->opts.levels;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->levels : fastmm_plan_levels_rule(p, M, K, N);
}

int fastmm_plan_panels(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.panels > 0) return p->opts.panels;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->panels : 1;
}

int fastmm_plan_priority(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.priority >= 0) return p->opts.priority;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->prio : 1;
}

int fastmm_plan_comb(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.comb >= 0) return p->opts.comb > 3 ? 3 : p->opts.comb;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->comb : 0;
}

const char *fastmm_comb_name(int comb)
{
    return comb == 3 ? "bulk" : comb == 2 ? "deep stream" : comb ? "stream" : "staged";
}

int fastmm_plan_comb_blocks(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.comb_blocks >= 0) return p->opts.comb_blocks;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->blocks : 0;
}

int fastmm_plan_green(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.green >= 0) return p->opts.green;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->green : 0;
}

int fastmm_plan_overlap(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.overlap >= 0) return p->opts.overlap;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->overlap : 0;
}

int fastmm_plan_tail(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.tail >= 0) return p->opts.tail;
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t ? t->tail : 0;
}

int fastmm_fused_tile(int variant, int *bm, int *bn, int *bk)
{
    static const int tiles[FASTMM_FUSED_VARIANTS][3] = {
        {128, 128, 8}, {128, 128, 16}, {128, 256, 8}, {256, 128, 8}};
    if (variant < 1 || variant > FASTMM_FUSED_VARIANTS)
        return tg_fail("fastmm: fused kernel variant %d (1-%d)", variant, FASTMM_FUSED_VARIANTS);
    *bm = tiles[variant - 1][0];
    *bn = tiles[variant - 1][1];
    *bk = tiles[variant - 1][2];
    return 0;
}

int fastmm_fused_fits_shape(fastmm_plan *p, int variant, int levels, long M, long K, long N)
{
    int tm, tn, tk;
    if (p->opts.prec != FASTMM_FP32 || levels < 1 || fastmm_fused_tile(variant, &tm, &tn, &tk)) {
        tg_err_clear();
        return 0;
    }
    fastmm_level *l = fastmm_plan_level(p, levels);
    if (!l) {
        tg_err_clear();
        return 0;
    }
    tg_dims d = tg_fact_dims(l->f);
    if (M % d.n || K % d.m || N % d.p || (M / d.n) % tm || (N / d.p) % tn || (K / d.m) % tk ||
        K / d.m > INT_MAX || l->c.nout > FASTMM_FUSED_MAXC)
        return 0;
    int R = tg_fact_rank(l->f);
    for (int r = 0; r < R; r++) {
        int na = l->a.ptr[r + 1] - l->a.ptr[r], nb = l->b.ptr[r + 1] - l->b.ptr[r], nc = 0;
        if (na < 1 || na > FASTMM_FUSED_TERMS || nb < 1 || nb > FASTMM_FUSED_TERMS) return 0;
        for (int e = 0; e < l->c.nnz; e++) nc += l->c.idx[e] == r;
        if (nc > FASTMM_FUSED_TARGETS) return 0;
    }
    for (int o = 0; o < l->c.nout; o++)
        if (l->c.ptr[o + 1] == l->c.ptr[o]) return 0; /* a C block no product reaches */
    return 1;
}

int fastmm_plan_fused(fastmm_plan *p, long M, long K, long N)
{
    int v = p->opts.fused;
    if (v == -1) {
        const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
        v = t ? t->fused : 0;
    }
    if (v < 1) return 0;
    return fastmm_fused_fits_shape(p, v, fastmm_plan_levels(p, M, K, N), M, K, N) ? v : 0;
}

int fastmm_plan_early(const fastmm_plan *p, long M, long K, long N)
{
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    return t && t->direct ? t->early : 1;
}

int fastmm_plan_direct(fastmm_plan *p, long M, long K, long N)
{
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    int want = p->opts.direct >= 0 ? p->opts.direct > 0 : t ? t->direct : 0;
    int L = fastmm_plan_levels(p, M, K, N);
    if (!want || L == 0) return 0;
    return fastmm_direct_fits(fastmm_plan_level(p, L), M, K, N);
}

int fastmm_plan_tune_report(const fastmm_plan *p, long M, long K, long N, char *buf, size_t len)
{
    const fastmm_tuned *t = fastmm_plan_tuned(p, M, K, N);
    if (len) buf[0] = 0;
    if (!t) return -1;
    size_t at = 0;
    for (int i = 0; i < t->ncand && at < len; i++) {
        const fastmm_cfg *c = &t->cand[i];
        int chosen = c->levels == t->levels && c->panels == t->panels && c->prio == t->prio &&
                     c->direct == t->direct && c->comb == t->comb &&
                     (!c->direct || c->early == t->early) && c->blocks == t->blocks &&
                     c->fused == t->fused && c->green == t->green && c->overlap == t->overlap &&
                     c->tail == t->tail;
        int n;
        char nb[32] = "", ro[32] = "";
        if (c->blocks > 0) snprintf(nb, sizeof nb, " b%d", c->blocks);
        if (c->green > 0) snprintf(nb + strlen(nb), sizeof nb - strlen(nb), " G%d", c->green);
        if (c->overlap) snprintf(nb + strlen(nb), sizeof nb - strlen(nb), " X");
        if (c->tail) snprintf(nb + strlen(nb), sizeof nb - strlen(nb), " T");
        if (t->runoff_ms[i] > 0) snprintf(ro, sizeof ro, " (runoff %.2f)", t->runoff_ms[i]);
        if (c->fused)
            n = snprintf(buf + at, len - at, "%sL%d F%d %.2f%s%s", i ? " | " : "", c->levels,
                         c->fused, t->cand_ms[i], ro, chosen ? "*" : "");
        else if (c->levels == 0)
            n = snprintf(buf + at, len - at, "%splain %.2f%s%s", i ? " | " : "", t->cand_ms[i], ro,
                         chosen ? "*" : "");
        else
            n = snprintf(buf + at, len - at, "%sL%d P%d%s%s%s%s%s %.2f%s%s", i ? " | " : "",
                         c->levels, c->panels,
                         c->prio == 2 ? "p" : c->prio && c->panels > 1 ? "h" : "",
                         c->direct ? " D" : "", c->direct && c->early ? " E" : "",
                         c->comb == 3 ? " S3" : c->comb == 2 ? " S2" : c->comb ? " S" : "", nb, t->cand_ms[i], ro,
                         chosen ? "*" : "");
        if (n < 0) break;
        at += (size_t)n;
    }
    return 0;
}

int fastmm_plan_levels_rule(const fastmm_plan *p, long M, long K, long N)
{
    if (p->opts.levels >= 0)
        return p->opts.levels;
    /* automatic: block sides shrink by the grid at the first level and by the inner grid at
     * each further one; stop before any side drops under min_block */
    tg_dims b = tg_fact_dims(p->base), in = tg_fact_dims(p->inner);
    long n = b.n, m = b.m, q = b.p;
    int L = 0;
    while (L < p->opts.max_levels) {
        if (M / n < p->opts.min_block || K / m < p->opts.min_block || N / q < p->opts.min_block)
            break;
        if (n > TG_MAX_DIM || m > TG_MAX_DIM || q > TG_MAX_DIM)
            break;
        L++;
        n *= in.n;
        m *= in.m;
        q *= in.p;
    }
    return L;
}

double fastmm_flops(fastmm_plan *p, long M, long K, long N)
{
    int L = fastmm_plan_levels(p, M, K, N);
    if (L == 0) return 2.0 * M * K * N;
    fastmm_level *l = fastmm_plan_level(p, L);
    if (!l) return 0;
    fastmm_geom g = fastmm_geometry(tg_fact_dims(l->f), M, K, N);
    return 2.0 * tg_fact_rank(l->f) * g.bm * g.bk * g.bn;
}

double fastmm_growth(const tg_fact *f)
{
    tg_dims d = tg_fact_dims(f);
    int R = tg_fact_rank(f), nA = d.n * d.m, nB = d.m * d.p, nC = d.p * d.n;
    const int64_t *u = tg_fact_cu(f), *v = tg_fact_cv(f), *w = tg_fact_cw(f);
    double D = (double)tg_fact_denom(f), worst = 0;
    for (int c = 0; c < nC; c++) {
        double s = 0;
        for (int r = 0; r < R; r++) {
            if (!w[(size_t)r * nC + c]) continue;
            double su = 0, sv = 0;
            for (int i = 0; i < nA; i++) su += fabs((double)u[(size_t)r * nA + i]);
            for (int i = 0; i < nB; i++) sv += fabs((double)v[(size_t)r * nB + i]);
            s += fabs((double)w[(size_t)r * nC + c]) * su * sv;
        }
        if (s > worst) worst = s;
    }
    return worst / (D * D * D) / d.m;
}

/* ---- CPU path ---- */

/* dst (bh x bw, dense) = sum_e val[e] * block idx[e] of the grid over X (rows x cols, ld),
 * blocks of bh x bw, gw blocks per grid row; parts outside X read as zero. */
static void comb_in(float *dst, long bh, long bw, const float *X, long ld, long rows, long cols,
                    int gw, const fastmm_csr *c, int o)
{
    memset(dst, 0, sizeof(float) * bh * bw);
    for (int e = c->ptr[o]; e < c->ptr[o + 1]; e++) {
        long bi = c->idx[e] / gw, bj = c->idx[e] % gw;
        float a = c->val[e];
        long r0 = bi * bh, c0 = bj * bw;
        long nr = rows - r0 < bh ? rows - r0 : bh, nc = cols - c0 < bw ? cols - c0 : bw;
        for (long x = 0; x < nr; x++) {
            const float *src = X + (r0 + x) * ld + c0;
            float *d = dst + x * bw;
            for (long y = 0; y < nc; y++)
                d[y] += a * src[y];
        }
    }
}

int fastmm_sgemm_cpu(fastmm_plan *p, long M, long N, long K, const float *A, long lda,
                     const float *B, long ldb, float *C, long ldc)
{
    if (M < 1 || N < 1 || K < 1 || lda < K || ldb < N || ldc < N)
        return tg_fail("fastmm: bad sizes M=%ld N=%ld K=%ld lda=%ld ldb=%ld ldc=%ld", M, N, K,
                       lda, ldb, ldc);
    int L = fastmm_plan_levels(p, M, K, N);
    if (L == 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0f, A,
                    (int)lda, B, (int)ldb, 0.0f, C, (int)ldc);
        return 0;
    }
    fastmm_level *l = fastmm_plan_level(p, L);
    if (!l) return -1;
    tg_dims d = tg_fact_dims(l->f);
    fastmm_geom g = fastmm_geometry(d, M, K, N);
    float *S = malloc(sizeof(float) * g.bm * g.bk);
    float *T = malloc(sizeof(float) * g.bk * g.bn);
    float *P = malloc(sizeof(float) * g.bm * g.bn);
    if (!S || !T || !P) {
        free(S);
        free(T);
        free(P);
        return tg_fail("fastmm: out of memory for %ldx%ld blocks", g.bm, g.bn);
    }
    for (long x = 0; x < M; x++)
        memset(C + x * ldc, 0, sizeof(float) * N);
    int R = tg_fact_rank(l->f);
    /* direct operands (opts.direct 1 only: the CPU path has no tuning): blocks read in place */
    const fastmm_direct *dir = p->opts.direct == 1 && fastmm_direct_fits(l, M, K, N) ? l->dir : NULL;
    const fastmm_csr *cc = dir ? &dir->c : &l->c, *ca = dir ? &dir->a : &l->a,
                     *cb = dir ? &dir->b : &l->b;
    for (int r = 0; r < R; r++) {
        const float *Sp = S, *Tp = T;
        long lds = g.bk, ldt = g.bn;
        if (dir && dir->da[r] >= 0) {
            Sp = A + (dir->da[r] / d.m) * g.bm * lda + (dir->da[r] % d.m) * g.bk;
            lds = lda;
        } else comb_in(S, g.bm, g.bk, A, lda, M, K, d.m, ca, r);
        if (dir && dir->db[r] >= 0) {
            Tp = B + (dir->db[r] / d.p) * g.bk * ldb + (dir->db[r] % d.p) * g.bn;
            ldt = ldb;
        } else comb_in(T, g.bk, g.bn, B, ldb, K, N, d.p, cb, r);
        if (dir && dir->dc[r] >= 0) { /* straight into its C block (the grid divides C) */
            int o = dir->dc[r];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g.bm, (int)g.bn,
                        (int)g.bk, 1.0f, Sp, (int)lds, Tp, (int)ldt, 1.0f,
                        C + (o / d.p) * g.bm * ldc + (o % d.p) * g.bn, (int)ldc);
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g.bm, (int)g.bn, (int)g.bk,
                    1.0f, Sp, (int)lds, Tp, (int)ldt, 0.0f, P, (int)g.bn);
        /* C_ik += w M_r over the part of the block inside C */
        for (int ik = 0; ik < cc->nout; ik++)
            for (int e = cc->ptr[ik]; e < cc->ptr[ik + 1]; e++) {
                if (cc->idx[e] != r) continue;
                float a = cc->val[e];
                long r0 = (ik / d.p) * g.bm, c0 = (ik % d.p) * g.bn;
                long nr = M - r0 < g.bm ? M - r0 : g.bm, nc = N - c0 < g.bn ? N - c0 : g.bn;
                for (long x = 0; x < nr; x++) {
                    float *dst = C + (r0 + x) * ldc + c0;
                    const float *src = P + x * g.bn;
                    for (long y = 0; y < nc; y++)
                        dst[y] += a * src[y];
                }
            }
    }
    free(S);
    free(T);
    free(P);
    return 0;
}

int fastmm_ref_dgemm(long M, long N, long K, const float *A, const float *B, double *C)
{
    double *a = malloc(sizeof(double) * M * K), *b = malloc(sizeof(double) * K * N);
    if (!a || !b) {
        free(a);
        free(b);
        return tg_fail("fastmm: out of memory for the fp64 reference");
    }
    for (long i = 0; i < M * K; i++) a[i] = A[i];
    for (long i = 0; i < K * N; i++) b[i] = B[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.0, a,
                (int)K, b, (int)N, 0.0, C, (int)N);
    free(a);
    free(b);
    return 0;
}

double fastmm_max_rel_err(long M, long N, const float *C, long ldc, const double *R)
{
    double num = 0, den = 0;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double e = fabs((double)C[i * ldc + j] - R[i * N + j]);
            if (!(e <= num)) num = e; /* NaN propagates */
            double r = fabs(R[i * N + j]);
            if (r > den) den = r;
        }
    return den > 0 ? num / den : num;
}
