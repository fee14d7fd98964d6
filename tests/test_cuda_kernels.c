/* The CUDA backend's kernels against CPU references in double precision, on random shapes and
 * inputs: LayerNorm, GELU, cross-entropy, quantile loss, AdamW, cuBLASLt GEMMs with and without
 * epilogues, and the attention paths (warp-per-row, short-sequence and tensor-core kernels,
 * batched GEMMs, cuDNN SDPA).
 * Tolerances (relative to the largest reference magnitude): 2e-2 where a result is stored in
 * bf16 (8 mantissa bits: one rounding is 4e-3, a few compound), 2e-3 for fp32 results of bf16
 * GEMMs, 1e-5 for fp32 kernels. Skips (reported by cmocka) without a CUDA device. */
#include <math.h>

#include "tests/test_util.h"

#ifdef TG_HAVE_CUDA
#include "common/err.h"
#include "common/rng.h"
#include "learner/cuda/cuda_api.h"

static tg_rng R;

static float bfr(float x) /* round to bf16, nearest even */
{
    union {
        float f;
        uint32_t u;
    } v = {x};
    uint32_t lsb = (v.u >> 16) & 1;
    v.u = (v.u + 0x7fff + lsb) & 0xffff0000u;
    return v.f;
}

static float *rnd(size_t n, double scale)
{
    float *x = malloc(n * sizeof *x + 4);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(tg_rng_normal(&R) * scale);
    return x;
}

static double relerr(const float *a, const double *b, size_t n)
{
    double mx = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        mx = fmax(mx, fabs(b[i]));
        e = fmax(e, fabs(a[i] - b[i]));
    }
    return mx > 0 ? e / mx : e;
}

#define CHECK_ERR(a, b, n, tol, what)                                                          \
    do {                                                                                       \
        double e_ = relerr((a), (b), (n));                                                     \
        if (!(e_ <= (tol)))                                                                    \
            fail_msg("%s: relative error %.3g > %.3g", (what), e_, (double)(tol));             \
    } while (0)

static int setup(void **state)
{
    (void)state;
    tg_rng_seed(&R, 20261125, 0);
    return 0;
}

#define SKIP_NO_GPU()                                                                          \
    do {                                                                                       \
        if (tg_cuda_devices() < 1)                                                             \
            skip();                                                                            \
    } while (0)

static void test_describe(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    char buf[256];
    assert_int_equal(tg_cuda_describe(buf, sizeof buf), 0);
    print_message("device: %s\n", buf);
}

static void test_layernorm(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    /* widths of 128..512 take the float4 kernels (the torso's), the others up to 2048 the
     * register-row ones, wider the per-warp one; odd shapes accumulate into dx and write its bf16
     * copy, as the network does; the backward's grid is what fits on the device, each warp taking
     * every (grid size)-th row. Every shape runs with an fp32 dy and with a bf16 one (as the
     * network's data-gradient GEMMs write it), the reference on the bf16-rounded values. */
    int shapes[][2] = {{1, 7},    {37, 32},  {300, 512}, {64, 2048}, {5, 33},
                       {3, 2500}, {700, 256}, {129, 384}, {70, 128}, {1000, 512},
                       /* more rows than warps the device holds: several rows a warp */
                       {20000, 256}, {3000, 2048},
                       /* a multiple of 128 above 512 (register rows), a wide one (per warp) */
                       {50, 640}, {41, 3000}};
    for (size_t s = 0; s < 2 * sizeof shapes / sizeof *shapes; s++) {
        long rows = shapes[s / 2][0];
        int n = shapes[s / 2][1], acc = (s / 2) % 2, dyb = s % 2;
        float *x = rnd(rows * n, 2.0), *w = rnd(n, 1.0), *b = rnd(n, 0.5), *dy = rnd(rows * n, 1.0);
        float *dx0 = acc ? rnd(rows * n, 1.0) : NULL;
        for (long i = 0; i < rows * n; i++)
            x[i] += 0.7f;
        float *y = malloc(rows * n * 4), *dx = malloc(rows * n * 4), *dw = malloc(n * 4),
              *db = malloc(n * 4), *dxb = acc && n <= 2048 ? malloc(rows * n * 4) : NULL;
        double *ry = calloc(rows * n, 8), *rdx = calloc(rows * n, 8), *rdw = calloc(n, 8),
               *rdb = calloc(n, 8);
        assert_int_equal(
            tg_cuda_test_layernorm(rows, n, x, w, b, dy, dyb, dx0, y, dx, dxb, dw, db), 0);
        if (dyb) /* what the kernel read */
            for (long i = 0; i < rows * n; i++)
                dy[i] = bfr(dy[i]);
        for (long r = 0; r < rows; r++) {
            const float *xr = x + r * n, *d = dy + r * n;
            double mu = 0, var = 0;
            for (int i = 0; i < n; i++)
                mu += xr[i];
            mu /= n;
            for (int i = 0; i < n; i++)
                var += (xr[i] - mu) * (xr[i] - mu);
            double rs = 1.0 / sqrt(var / n + 1e-5);
            double sg = 0, sgx = 0;
            for (int i = 0; i < n; i++) {
                double xh = (xr[i] - mu) * rs;
                ry[r * n + i] = xh * w[i] + b[i];
                sg += d[i] * w[i];
                sgx += d[i] * w[i] * xh;
                rdw[i] += d[i] * xh;
                rdb[i] += d[i];
            }
            sg /= n;
            sgx /= n;
            for (int i = 0; i < n; i++) {
                double xh = (xr[i] - mu) * rs;
                rdx[r * n + i] = rs * (d[i] * w[i] - sg - xh * sgx) + (acc ? dx0[r * n + i] : 0);
            }
        }
        char what[64];
        snprintf(what, sizeof what, "layernorm %ldx%d dy %s", rows, n, dyb ? "bf16" : "fp32");
        CHECK_ERR(y, ry, rows * n, 1e-2, what);
        CHECK_ERR(dx, rdx, rows * n, 1e-4, what);
        if (dxb)
            CHECK_ERR(dxb, rdx, rows * n, 1e-2, what);
        char wb[80];
        snprintf(wb, sizeof wb, "%s: dw", what);
        CHECK_ERR(dw, rdw, n, 1e-4, wb);
        snprintf(wb, sizeof wb, "%s: db", what);
        CHECK_ERR(db, rdb, n, 1e-4, wb);
        free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
        free(ry), free(rdx), free(rdw), free(rdb), free(dx0), free(dxb);
    }
}

static double gelu_d(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}

static void test_gelu(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    long rows = 77;
    int n = 96;
    float *x = rnd(rows * n, 2.0), *bias = rnd(n, 1.0), *dy = rnd(rows * n, 1.0);
    float *y = malloc(rows * n * 4), *dx = malloc(rows * n * 4);
    double *ry = calloc(rows * n, 8), *rdx = calloc(rows * n, 8);
    assert_int_equal(tg_cuda_test_gelu(rows, n, x, bias, dy, y, dx), 0);
    for (long i = 0; i < rows * n; i++) {
        double pre = bfr(bfr(x[i]) + bfr(bias[i % n]));
        ry[i] = gelu_d(pre);
        double h = 1e-4;
        rdx[i] = bfr(dy[i]) * (gelu_d(pre + h) - gelu_d(pre - h)) / (2 * h);
    }
    CHECK_ERR(y, ry, rows * n, 1e-2, "gelu y");
    CHECK_ERR(dx, rdx, rows * n, 1e-2, "gelu dx");
    free(x), free(bias), free(dy), free(y), free(dx), free(ry), free(rdx);
}

/* the padded bf16 copy of the policy output's gradient: exact bf16 rounding, zero padding */
static void test_f2bf_pad(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    for (int i = 0; i < 4; i++) {
        long rows = 1 + tg_rng_below(&R, 300);
        int n = 1 + tg_rng_below(&R, 200), ldy = n + tg_rng_below(&R, 9);
        float *x = rnd(rows * n, 3.0), *y = malloc(rows * ldy * 4);
        assert_int_equal(tg_cuda_test_f2bf_pad(rows, n, ldy, x, y), 0);
        for (long r = 0; r < rows; r++)
            for (int c = 0; c < ldy; c++)
                if (y[r * ldy + c] != (c < n ? bfr(x[r * n + c]) : 0.f))
                    fail_msg("f2bf_pad rows %ld n %d ldy %d: [%ld, %d] = %g", rows, n, ldy, r, c,
                             y[r * ldy + c]);
        free(x), free(y);
    }
}

/* the torso's stage gather (with its bf16 copy) and scatter: exact copies at the torso widths
 * (vector kernels) and at others (generic rows) */
static void test_stage(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    static const int stages[3][2] = {{0, 1}, {2, 0}, {1, 2}}, widths[5] = {128, 256, 512, 64, 36};
    for (int i = 0; i < 5; i++) {
        int B = 1 + tg_rng_below(&R, 3), S = 2 + tg_rng_below(&R, 8), c = widths[i];
        int st = tg_rng_below(&R, 3), m1 = stages[st][0], m2 = stages[st][1];
        long ng = (long)B * 3 * S * S * c, nx = (long)B * S * 2 * S * c;
        float *g = rnd(ng, 1.0), *x = rnd(nx, 1.0), *xg = malloc(nx * 4), *xgb = malloc(nx * 4),
              *gs = malloc(ng * 4), *rg = malloc(ng * 4);
        assert_int_equal(tg_cuda_test_stage(B, S, c, m1, m2, g, x, xg, xgb, gs), 0);
        memcpy(rg, g, ng * 4);
        for (int b = 0; b < B; b++)
            for (int r = 0; r < S; r++)
                for (int t = 0; t < 2 * S; t++) {
                    long cell = t < S ? (((long)b * 3 + m1) * S + r) * S + t
                                      : (((long)b * 3 + m2) * S + (t - S)) * S + r;
                    long row = ((long)b * S + r) * 2 * S + t;
                    for (int k = 0; k < c; k++) {
                        if (xg[row * c + k] != g[cell * c + k] ||
                            xgb[row * c + k] != bfr(g[cell * c + k]))
                            fail_msg("stage gather B %d S %d c %d (%d, %d): row %ld col %d", B,
                                     S, c, m1, m2, row, k);
                        rg[cell * c + k] = x[row * c + k];
                    }
                }
        if (memcmp(gs, rg, ng * 4))
            fail_msg("stage scatter B %d S %d c %d (%d, %d) differs", B, S, c, m1, m2);
        free(g), free(x), free(xg), free(xgb), free(gs), free(rg);
    }
}

/* stage to stage in one kernel equals a scatter of the stage's output into the grids and a
 * gather of the next stage's input (and its bf16 copy), for every pair of consecutive stages,
 * forward and backward order, at vector and generic widths; with the next block's LayerNorm
 * fused in, that LayerNorm equals a double-precision one of the gathered rows */
static void test_stage_next(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    static const int stages[3][2] = {{0, 1}, {2, 0}, {1, 2}};
    static const int widths[8] = {512, 256, 64, 36, 128, 384, 512, 36};
    for (int i = 0; i < 8; i++) {
        int B = 1 + tg_rng_below(&R, 3), S = 2 + tg_rng_below(&R, 8), c = widths[i];
        int s0 = tg_rng_below(&R, 3), s1 = i < 4 ? (s0 + 1) % 3 : (s0 + 2) % 3;
        int a1 = stages[s0][0], a2 = stages[s0][1], b1 = stages[s1][0], b2 = stages[s1][1];
        long ng = (long)B * 3 * S * S * c, nx = (long)B * S * 2 * S * c;
        long nr = (long)B * S * 2 * S;
        float *g = rnd(ng, 1.0), *xs = rnd(nx, 1.0), *xn = malloc(nx * 4), *xnb = malloc(nx * 4),
              *gs = malloc(ng * 4), *rg = malloc(ng * 4), *rx = malloc(nx * 4);
        /* with the next block's LayerNorm on every other case (taken at the vector widths) */
        int with_ln = i % 2 == 0 || c % 128 == 0;
        float *lw = with_ln ? rnd(c, 1.0) : NULL, *lb = with_ln ? rnd(c, 1.0) : NULL;
        float *ly = malloc(nx * 4), *lm = malloc(nr * 4), *lr = malloc(nr * 4);
        int taken = c % 128 == 0 && c <= 512;
        int rc = tg_cuda_test_stage_next(B, S, c, a1, a2, b1, b2, g, xs, xn, xnb, gs, lw, lb, ly,
                                         lm, lr);
        assert_int_equal(rc, with_ln && !taken ? 1 : 0);
        /* reference: scatter xs into a copy of g, gather the next stage from it */
        memcpy(rg, g, ng * 4);
        for (int pass = 0; pass < 2; pass++)
            for (int b = 0; b < B; b++)
                for (int r = 0; r < S; r++)
                    for (int t = 0; t < 2 * S; t++) {
                        int m1 = pass ? b1 : a1, m2 = pass ? b2 : a2;
                        long cell = t < S ? (((long)b * 3 + m1) * S + r) * S + t
                                          : (((long)b * 3 + m2) * S + (t - S)) * S + r;
                        long row = ((long)b * S + r) * 2 * S + t;
                        if (pass)
                            memcpy(rx + row * c, rg + cell * c, c * 4);
                        else
                            memcpy(rg + cell * c, xs + row * c, c * 4);
                    }
        if (memcmp(xn, rx, nx * 4))
            fail_msg("stage_next B %d S %d c %d (%d,%d)->(%d,%d): sequences differ", B, S, c, a1,
                     a2, b1, b2);
        for (long k = 0; k < nx; k++)
            if (xnb[k] != bfr(rx[k]))
                fail_msg("stage_next: bf16 copy differs at %ld", k);
        if (with_ln && taken) /* LayerNorm in double; y within bf16 rounding (2^-8 relative) */
            for (long r = 0; r < nr; r++) {
                double mu = 0, var = 0;
                for (int k = 0; k < c; k++)
                    mu += rx[r * c + k] / c;
                for (int k = 0; k < c; k++)
                    var += (rx[r * c + k] - mu) * (rx[r * c + k] - mu) / c;
                double rs = 1 / sqrt(var + 1e-5);
                if (fabs(lm[r] - mu) > 1e-5 * (1 + fabs(mu)) || fabs(lr[r] - rs) > 1e-4 * rs)
                    fail_msg("stage_next LayerNorm c %d row %ld: mean %g rstd %g, expected %g %g",
                             c, r, lm[r], lr[r], mu, rs);
                for (int k = 0; k < c; k++) {
                    double y = (rx[r * c + k] - mu) * rs * lw[k] + lb[k];
                    if (fabs(ly[r * c + k] - y) > 4e-3 * fabs(y) + 1e-4)
                        fail_msg("stage_next LayerNorm c %d row %ld col %d: %g, expected %g", c,
                                 r, k, ly[r * c + k], y);
                }
            }
        /* the grid shared by both stages is not written back: compare the others */
        int shared = (a1 == b1 || a1 == b2) ? a1 : a2;
        for (int b = 0; b < B; b++)
            for (int gr = 0; gr < 3; gr++) {
                if (gr == shared)
                    continue;
                long o = ((long)b * 3 + gr) * S * S * c;
                if (memcmp(gs + o, rg + o, (size_t)S * S * c * 4))
                    fail_msg("stage_next B %d S %d c %d (%d,%d)->(%d,%d): grid %d differs", B, S,
                             c, a1, a2, b1, b2, gr);
            }
        free(g), free(xs), free(xn), free(xnb), free(gs), free(rg), free(rx);
        free(lw), free(lb), free(ly), free(lm), free(lr);
    }
}

/* the device's sampling uniforms are the CPU backend's (common/rng.c), bit for bit */
static void test_uniforms(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    static const int Ns[3] = {1, 130, 1024};
    static const long pers[3] = {1, 37, 288};
    for (int c = 0; c < 3; c++) {
        int N = Ns[c];
        long per = pers[c];
        uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(c + 1);
        float *u = malloc((size_t)N * per * 4), *r = malloc((size_t)N * per * 4);
        assert_int_equal(tg_cuda_test_uniforms(seed, N, per, u), 0);
        for (int i = 0; i < N; i++) {
            tg_rng g;
            tg_rng_seed(&g, seed, (uint64_t)i);
            for (long j = 0; j < per; j++)
                r[(long)i * per + j] = (float)tg_rng_uniform(&g);
        }
        if (memcmp(u, r, (size_t)N * per * 4))
            fail_msg("uniforms N %d per %ld differ from the CPU backend's", N, per);
        free(u), free(r);
    }
}

static void test_losses(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    long rows = 53;
    int n = 125;
    float *lg = rnd(rows * n, 3.0), *loss = malloc(rows * 4), *dl = malloc(rows * n * 4);
    int32_t *t = malloc(rows * 4);
    double *rl = calloc(rows, 8), *rdl = calloc(rows * n, 8);
    for (long r = 0; r < rows; r++)
        t[r] = (int32_t)tg_rng_below(&R, n);
    assert_int_equal(tg_cuda_test_xent(rows, n, lg, t, 0.25f, loss, dl), 0);
    for (long r = 0; r < rows; r++) {
        double m = -1e30, s = 0;
        for (int i = 0; i < n; i++)
            m = fmax(m, lg[r * n + i]);
        for (int i = 0; i < n; i++)
            s += exp(lg[r * n + i] - m);
        double lse = m + log(s);
        rl[r] = lse - lg[r * n + t[r]];
        for (int i = 0; i < n; i++)
            rdl[r * n + i] = (exp(lg[r * n + i] - lse) - (i == t[r])) * 0.25;
    }
    CHECK_ERR(loss, rl, rows, 1e-5, "xent loss");
    CHECK_ERR(dl, rdl, rows * n, 1e-5, "xent grad");
    int B = 19, Q = 8;
    float *q = rnd(B * Q, 3.0), *ret = rnd(B, 3.0), *ql = malloc(B * Q * 4), *dq = malloc(B * Q * 4);
    double *rq = calloc(B * Q, 8), *rdq = calloc(B * Q, 8);
    assert_int_equal(tg_cuda_test_qloss(B, Q, q, ret, 0.5f, ql, dq), 0);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < Q; j++) {
            double tau = (j + 0.5) / Q, d = ret[b] - q[b * Q + j];
            double hub = fabs(d) <= 1 ? 0.5 * d * d : fabs(d) - 0.5;
            double w = fabs(tau - (d < 0));
            rq[b * Q + j] = w * hub;
            rdq[b * Q + j] = -w * (fabs(d) <= 1 ? d : (d > 0 ? 1 : -1)) * 0.5;
        }
    CHECK_ERR(ql, rq, B * Q, 1e-5, "quantile loss");
    CHECK_ERR(dq, rdq, B * Q, 1e-5, "quantile grad");
    free(lg), free(loss), free(dl), free(t), free(rl), free(rdl);
    free(q), free(ret), free(ql), free(dq), free(rq), free(rdq);
}

static void test_adamw(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    long n = 10007;
    float *p = rnd(n, 1.0), *g = rnd(n, 0.1), *m = rnd(n, 0.01), *v = rnd(n, 0.01);
    for (long i = 0; i < n; i++)
        v[i] = v[i] * v[i];
    uint8_t *dec = malloc(n);
    for (long i = 0; i < n; i++)
        dec[i] = i % 3 != 0;
    double *rp = calloc(n, 8), *rm = calloc(n, 8), *rv = calloc(n, 8);
    float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, clip = 1.0f;
    int step = 3;
    double ss = 0;
    for (long i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    double norm = sqrt(ss), sc = norm > clip ? clip / (norm + 1e-6) : 1.0;
    double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
    for (long i = 0; i < n; i++) {
        double gi = g[i] * sc, pi = p[i];
        if (dec[i])
            pi *= 1 - (double)lr * wd;
        rm[i] = b1 * (double)m[i] + (1 - b1) * gi;
        rv[i] = b2 * (double)v[i] + (1 - b2) * gi * gi;
        rp[i] = pi - lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
    }
    float *p16 = malloc(n * 4), gn = 0;
    assert_int_equal(tg_cuda_test_adamw(n, p, p16, g, m, v, dec, lr, b1, b2, eps, wd, step, clip,
                                        &gn),
                     0);
    assert_true(fabs(gn - norm) < 1e-4 * norm);
    CHECK_ERR(p, rp, n, 1e-5, "adamw p");
    CHECK_ERR(m, rm, n, 1e-5, "adamw m");
    CHECK_ERR(v, rv, n, 1e-5, "adamw v");
    CHECK_ERR(p16, rp, n, 1e-2, "adamw bf16 copy");
    free(p), free(g), free(m), free(v), free(dec), free(rp), free(rm), free(rv), free(p16);
}

/* splitk < 0: the environment's split-K setting; 0 off, 1 on, 2 forced (the tuner takes its
 * fastest split-K algorithm where one runs), reported with the K splits the GEMM ran with, which
 * are returned (0 when splitk < 0). */
static int gemm_case_sk(int ta, int tb, long M, long N, long K, int epi, int epilogues, float beta,
                        int splitk)
{
    float *A = rnd(M * K, 1.0), *B = rnd(K * N, 1.0), *bias = rnd(N, 1.0), *D = rnd(M * N, 1.0);
    float *bg = calloc(M + 1, 4);
    double *ref = calloc(M * N, 8), *rbg = calloc(M + 1, 8);
    /* op(A) rows and op(B) columns bf16-rounded, contiguous in k: the long-K cases need the speed */
    float *ar = malloc(M * K * 4 + 4), *br = malloc(N * K * 4 + 4);
    assert_non_null(ar);
    assert_non_null(br);
    for (long i = 0; i < M; i++)
        for (long k = 0; k < K; k++)
            ar[i * K + k] = bfr(ta ? A[k * M + i] : A[i * K + k]);
    for (long j = 0; j < N; j++)
        for (long k = 0; k < K; k++)
            br[j * K + k] = bfr(tb ? B[j * K + k] : B[k * N + j]);
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = 0;
            for (long k = 0; k < K; k++)
                s += (double)ar[i * K + k] * br[j * K + k];
            if (epi == 1)
                s += bias[j];
            ref[i * N + j] = s + beta * D[i * N + j];
        }
    if (epi == 3)
        for (long i = 0; i < M; i++)
            for (long k = 0; k < K; k++)
                rbg[i] += ar[i * K + k];
    int sk = 0;
    if (splitk < 0)
        assert_int_equal(
            tg_cuda_test_gemm(ta, tb, M, N, K, A, B, bias, beta, epi, epilogues, D, bg), 0);
    else
        assert_int_equal(tg_cuda_test_gemm_splitk(ta, tb, M, N, K, A, B, bias, beta, epi, splitk,
                                                  D, bg, &sk),
                         0);
    char what[128];
    snprintf(what, sizeof what, "gemm ta %d tb %d %ldx%ldx%ld epi %d (epilogues %d) beta %g", ta,
             tb, M, N, K, epi, epilogues, beta);
    if (splitk >= 0)
        print_message("%s: split-K %s, ran with %d K split%s\n", what,
                      splitk == 2 ? "forced" : splitk ? "on" : "off", sk, sk == 1 ? "" : "s");
    CHECK_ERR(D, ref, M * N, 2e-3, what);
    if (epi == 3)
        CHECK_ERR(bg, rbg, M, 1e-3, what);
    free(A), free(B), free(bias), free(D), free(bg), free(ref), free(rbg), free(ar), free(br);
    return sk;
}

static void gemm_case(int ta, int tb, long M, long N, long K, int epi, int epilogues, float beta)
{
    gemm_case_sk(ta, tb, M, N, K, epi, epilogues, beta, -1);
}

/* The data gradient through an MLP's GELU: (A B) * gelu'(pre), epilogue and fallback. */
static void gemm_dgelu_case(long M, long N, long K, int epilogues)
{
    float *A = rnd(M * K, 1.0), *B = rnd(K * N, 1.0), *pre = rnd(M * N, 2.0), *D = malloc(M * N * 4);
    double *ref = calloc(M * N, 8), h = 1e-4;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = 0, x = bfr(pre[i * N + j]);
            for (long k = 0; k < K; k++)
                s += bfr(A[i * K + k]) * (double)bfr(B[k * N + j]);
            ref[i * N + j] = s * (gelu_d(x + h) - gelu_d(x - h)) / (2 * h);
        }
    assert_int_equal(tg_cuda_test_gemm_dgelu(M, N, K, A, B, pre, epilogues, D), 0);
    char what[128];
    snprintf(what, sizeof what, "gemm dgelu %ldx%ldx%ld (epilogues %d)", M, N, K, epilogues);
    CHECK_ERR(D, ref, M * N, 1e-2, what);
    free(A), free(B), free(pre), free(D), free(ref);
}

/* The inference MLP's first GEMM: gelu(A B + bias), no pre-activation kept. */
static void gemm_gelu_case(long M, long N, long K, int epilogues)
{
    float *A = rnd(M * K, 1.0), *B = rnd(K * N, 1.0), *bias = rnd(N, 1.0), *D = malloc(M * N * 4);
    double *ref = calloc(M * N, 8);
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = bfr(bias[j]);
            for (long k = 0; k < K; k++)
                s += bfr(A[i * K + k]) * (double)bfr(B[k * N + j]);
            ref[i * N + j] = gelu_d(s);
        }
    assert_int_equal(tg_cuda_test_gemm_gelu(M, N, K, A, B, bias, epilogues, D), 0);
    char what[128];
    snprintf(what, sizeof what, "gemm gelu %ldx%ldx%ld (epilogues %d)", M, N, K, epilogues);
    CHECK_ERR(D, ref, M * N, 1e-2, what);
    free(A), free(B), free(bias), free(D), free(ref);
}

static void test_gemm(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    gemm_case(0, 1, 256, 128, 64, 1, 1, 0.f); /* Linear forward with the bias epilogue */
    gemm_case(0, 1, 256, 128, 64, 1, 0, 1.f); /* ... and its fallback, with a residual */
    gemm_case(1, 0, 96, 64, 300, 3, 1, 0.f);  /* weight gradient with bias gradient */
    gemm_case(1, 0, 96, 64, 300, 3, 0, 0.f);
    gemm_case(0, 0, 64, 40, 96, 0, 1, 1.f);   /* data gradient */
    gemm_gelu_case(160, 256, 64, 1);           /* inference MLP: GELU without pre-activation */
    gemm_gelu_case(160, 256, 64, 0);
    gemm_dgelu_case(192, 256, 128, 1);         /* data gradient through the MLP's GELU */
    gemm_dgelu_case(192, 256, 128, 0);
    gemm_dgelu_case(1 + tg_rng_below(&R, 300), 8 * (1 + tg_rng_below(&R, 40)),
                    8 * (1 + tg_rng_below(&R, 40)), 1);
    for (int i = 0; i < 8; i++) {
        long M = 1 + tg_rng_below(&R, 200), N = 8 * (1 + tg_rng_below(&R, 30)),
             K = 8 * (1 + tg_rng_below(&R, 30));
        int ta = tg_rng_below(&R, 2), tb = tg_rng_below(&R, 2);
        int epi = ta ? (tg_rng_below(&R, 2) ? 3 : 0) : (tg_rng_below(&R, 2) ? 1 : 0);
        gemm_case(ta, tb, M, N, K, epi, tg_rng_below(&R, 2), tg_rng_below(&R, 2) ? 1.f : 0.f);
    }
}

/* One GEMM of gemm_x_case in one mode (0 as the network, 1 epilogues off, 2 reference kernel),
 * against a double reference over the bf16-rounded inputs. */
static void gemm_x_mode(const tg_cuda_gemm_case *cs, int mode, long *nref)
{
    tg_cuda_gemm_case c = *cs;
    c.mode = mode;
    long M = c.M, N = c.N, K = c.K;
    float *A = rnd(M * K, 1.0), *B = rnd(K * N, 1.0), *vec = rnd(N, 1.0), *D = rnd(M * N, 1.0);
    float *pre = rnd(M * N, 2.0), *bg = calloc(M + 1, 4);
    double *ref = calloc(M * N, 8), *rpre = calloc(M * N, 8), *rbg = calloc(M + 1, 8), h = 1e-4;
    assert_non_null(bg);
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double s = 0;
            for (long k = 0; k < K; k++)
                s += (double)bfr(c.ta ? A[k * M + i] : A[i * K + k]) *
                     bfr(c.tb ? B[j * K + k] : B[k * N + j]);
            double bias = c.d_bf16 ? bfr(vec[j]) : vec[j], x = bfr(pre[i * N + j]);
            if (c.epi == 1)
                s += bias;
            else if (c.epi == 2) {
                rpre[i * N + j] = s + bias;
                s = gelu_d(bfr((float)(s + bias)));
            } else if (c.epi == 4)
                s *= (gelu_d(x + h) - gelu_d(x - h)) / (2 * h);
            else if (c.epi == 5)
                s = gelu_d(s + bias);
            if (c.beta != 0.f)
                s += c.beta * (c.d_bf16 ? bfr(D[i * N + j]) : D[i * N + j]);
            ref[i * N + j] = s;
        }
    if (c.epi == 3)
        for (long i = 0; i < M; i++)
            for (long k = 0; k < K; k++)
                rbg[i] += bfr(c.ta ? A[k * M + i] : A[i * K + k]);
    char what[200];
    snprintf(what, sizeof what,
             "gemm ta %d tb %d %ldx%ldx%ld pad %d offsets %d %d %d %d %d %s epi %d beta %g mode %d",
             c.ta, c.tb, M, N, K, c.pad, c.off[0], c.off[1], c.off[2], c.off[3], c.off[4],
             c.d_bf16 ? "bf16" : "f32", c.epi, c.beta, mode);
    if (tg_cuda_test_gemm_ex(&c, A, B, vec, D, pre, bg, nref))
        fail_msg("%s: %s", what, tg_errmsg());
    CHECK_ERR(D, ref, M * N, c.d_bf16 ? 2e-2 : 2e-3, what);
    if (c.epi == 2)
        CHECK_ERR(pre, rpre, M * N, 1e-2, what);
    if (c.epi == 3)
        CHECK_ERR(bg, rbg, M, 1e-3, what);
    free(A), free(B), free(vec), free(D), free(pre), free(bg), free(ref), free(rpre), free(rbg);
}

/* gemm_x_mode as the network runs it, with the epilogues off (where there is one), and by the
 * reference kernel; says when cuBLASLt had no algorithm (the reference kernel ran it) */
static void gemm_x_case(int ta, int tb, long M, long N, long K, int pad, int o0, int o1, int o2,
                        int o3, int o4, int d_bf16, int epi, float beta)
{
    tg_cuda_gemm_case c = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .pad = pad,
                           .off = {o0, o1, o2, o3, o4}, .d_bf16 = d_bf16, .epi = epi,
                           .beta = beta};
    long n0 = 0, n1 = 0, n2 = 0;
    gemm_x_mode(&c, 0, &n0);
    if (epi)
        gemm_x_mode(&c, 1, &n1);
    gemm_x_mode(&c, 2, &n2);
    if (!n2)
        fail_msg("gemm %ldx%ldx%ld: the reference kernel did not run in mode 2", M, N, K);
    if (n0 || n1)
        print_message("gemm ta %d tb %d %ldx%ldx%ld pad %d offsets %d %d %d: cuBLASLt had no "
                      "algorithm (reference kernel)\n", ta, tb, M, N, K, pad, o0, o1, o2);
}

/* The GEMMs of the odd-width golden config (S 3, T 2, c 6, heads 2 x head_dim 2, widen 2,
 * n_steps 5, n_logits 7, P 3 x 3, v_hidden 5, quantiles 3; batch 2: torso stage rows 36, grid
 * rows 18, torso output rows 54, policy rows 10) as the network lays them out: widths and
 * leading dimensions that are not multiples of 8, and views at odd element offsets (the fused
 * projection's k weight at q's + 81 elements and its bias at + 9; cross-attention's dk at dq +
 * B n_steps P elements, 45 at batch 1; a KV-cache row at t inner), bf16 ones 2-byte aligned; then
 * random small odd shapes.
 * Arguments of gemm_x_case: ta tb M N K pad, offsets of A B D vector pre-activation, bf16 D,
 * epilogue, beta. */
static void test_gemm_odd(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    gemm_x_case(0, 1, 18, 6, 7, 1, 0, 0, 0, 0, 0, 0, 1, 0.f);    /* input projection */
    gemm_x_case(0, 1, 36, 12, 6, 0, 0, 0, 0, 0, 0, 1, 1, 0.f);   /* torso q k v */
    gemm_x_case(0, 1, 10, 27, 9, 0, 0, 0, 0, 0, 0, 1, 1, 0.f);   /* policy self q k v */
    gemm_x_case(0, 1, 54, 18, 6, 0, 0, 81, 0, 9, 0, 1, 1, 0.f);  /* policy cross k v */
    gemm_x_case(0, 1, 36, 6, 4, 0, 0, 0, 0, 0, 0, 0, 1, 1.f);    /* attention out + residual */
    gemm_x_case(0, 1, 36, 12, 6, 0, 0, 0, 0, 0, 0, 1, 2, 0.f);   /* torso MLP in (GELU) */
    gemm_x_case(0, 1, 10, 18, 9, 0, 0, 0, 0, 0, 0, 1, 2, 0.f);   /* policy MLP in */
    gemm_x_case(0, 1, 10, 9, 18, 0, 0, 0, 0, 0, 0, 0, 1, 1.f);   /* policy MLP out + residual */
    gemm_x_case(0, 1, 7, 18, 9, 0, 0, 0, 0, 0, 0, 1, 5, 0.f);    /* decoding MLP in (GELU) */
    gemm_x_case(0, 1, 7, 9, 9, 36, 0, 81, 9, 9, 0, 1, 1, 0.f);   /* decoding: k into its cache */
    gemm_x_case(1, 0, 12, 6, 36, 0, 0, 0, 0, 0, 0, 0, 3, 0.f);   /* torso q k v weight gradient */
    gemm_x_case(1, 0, 18, 6, 54, 0, 45, 0, 0, 9, 0, 0, 3, 0.f);  /* cross k v weight gradient */
    gemm_x_case(0, 0, 54, 6, 18, 0, 45, 81, 0, 0, 0, 1, 0, 0.f); /* cross k v data gradient */
    gemm_x_case(0, 0, 36, 12, 6, 0, 0, 0, 0, 0, 0, 1, 4, 0.f);   /* torso MLP data gradient */
    gemm_x_case(0, 0, 10, 18, 9, 0, 0, 0, 0, 0, 0, 1, 4, 0.f);   /* policy MLP data gradient */
    gemm_x_case(0, 1, 2, 5, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0.f);     /* value hidden */
    gemm_x_case(0, 1, 2, 3, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0.f);     /* value out */
    gemm_x_case(1, 0, 3, 5, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0.f);     /* value out weight gradient */
    gemm_x_case(0, 0, 2, 5, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0.f);     /* value out data gradient */
    gemm_x_case(0, 1, 10, 7, 9, 0, 0, 0, 0, 0, 0, 0, 1, 0.f);    /* policy logits */
    gemm_x_case(1, 0, 8, 9, 10, 0, 0, 0, 0, 0, 0, 0, 3, 0.f);    /* logits weight gradient */
    gemm_x_case(0, 0, 10, 9, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0.f);    /* logits data gradient */
    for (int i = 0; i < 12; i++) {
        static const int odd[] = {1, 2, 3, 5, 6, 7, 9, 12, 13, 18, 27, 33};
        long M = 1 + tg_rng_below(&R, 70), N = odd[tg_rng_below(&R, 12)],
             K = odd[tg_rng_below(&R, 12)];
        int ta = tg_rng_below(&R, 2), tb = tg_rng_below(&R, 2), dbf = tg_rng_below(&R, 2);
        int epi = ta ? (tg_rng_below(&R, 2) ? 3 : 0) : (int)tg_rng_below(&R, 2);
        if (epi == 3)
            dbf = 0; /* weight gradients are fp32 */
        gemm_x_case(ta, tb, M, N, K, tg_rng_below(&R, 3), tg_rng_below(&R, 9),
                    tg_rng_below(&R, 9), tg_rng_below(&R, 9), tg_rng_below(&R, 9), 0, dbf, epi,
                    tg_rng_below(&R, 2) ? 1.f : 0.f);
    }
    /* the widths the network already ran, by the reference kernel too (mode 2) */
    gemm_x_case(0, 1, 64, 128, 64, 0, 0, 0, 0, 0, 0, 0, 1, 1.f);
    gemm_x_case(1, 0, 64, 48, 300, 0, 0, 0, 0, 0, 0, 0, 3, 0.f);
}

/* Long reductions into small outputs (the network's weight gradients), where the tuner adds
 * split-K variants: forced, so that split-K algorithms meet the reference (with the bias-gradient
 * and bias epilogues where cuBLASLt allows them, onto an in-place residual), and timed with the
 * rest. Prints the K splits each ran with; cuBLASLt offering none is reported, not failed. */
static void test_gemm_splitk(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    int n = 0;
    n += gemm_case_sk(1, 0, 128, 128, 8192, 0, 1, 0.f, 2) > 1;
    n += gemm_case_sk(1, 0, 256, 64, 16384, 0, 1, 1.f, 2) > 1;  /* onto a residual, in place */
    n += gemm_case_sk(1, 0, 192, 128, 12288, 3, 1, 0.f, 2) > 1; /* with the bias gradient */
    n += gemm_case_sk(0, 1, 64, 128, 8192, 1, 1, 0.f, 2) > 1;   /* with the bias epilogue */
    gemm_case_sk(1, 0, 128, 256, 8192, 0, 1, 0.f, 1);           /* timed with the others */
    print_message("gemm split-K: %d of 4 forced cases ran a split-K algorithm%s\n", n,
                  n ? "" : " (none: split-K was not exercised)");
}

/* Reference attention in double over bf16-rounded inputs. */
static void attn_ref(int N, int Lx, int Ly, int H, int D, int causal, int kv_div, const float *q,
                     const float *k, const float *v, const float *dout, double *o, double *dq,
                     double *dk, double *dv)
{
    double sc = 1.0 / sqrt(D);
    double *p = malloc(Ly * 8), *dp = malloc(Ly * 8);
    long nk = (long)(N / kv_div) * Ly * H * D;
    if (dout) {
        memset(dk, 0, nk * 8);
        memset(dv, 0, nk * 8);
    }
    for (int n = 0; n < N; n++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lx; i++) {
                const float *qi = q + (((long)n * Lx + i) * H + h) * D;
                long kb = (long)(n / kv_div) * Ly * H * D + (long)h * D;
                int jm = causal ? (i + 1 < Ly ? i + 1 : Ly) : Ly;
                double m = -1e300, s = 0;
                for (int j = 0; j < jm; j++) {
                    double d = 0;
                    for (int e = 0; e < D; e++)
                        d += bfr(qi[e]) * (double)bfr(k[kb + (long)j * H * D + e]);
                    p[j] = d * sc;
                    m = fmax(m, p[j]);
                }
                for (int j = 0; j < jm; j++)
                    s += (p[j] = exp(p[j] - m));
                double *oi = o + (((long)n * Lx + i) * H + h) * D;
                for (int e = 0; e < D; e++) {
                    double a = 0;
                    for (int j = 0; j < jm; j++)
                        a += p[j] / s * bfr(v[kb + (long)j * H * D + e]);
                    oi[e] = a;
                }
                if (!dout)
                    continue;
                const float *doi = dout + (((long)n * Lx + i) * H + h) * D;
                double dsum = 0;
                for (int j = 0; j < jm; j++) {
                    p[j] /= s;
                    double d = 0;
                    for (int e = 0; e < D; e++)
                        d += bfr(doi[e]) * (double)bfr(v[kb + (long)j * H * D + e]);
                    dp[j] = d;
                    dsum += p[j] * d;
                }
                double *dqi = dq + (((long)n * Lx + i) * H + h) * D;
                for (int e = 0; e < D; e++)
                    dqi[e] = 0;
                for (int j = 0; j < jm; j++) {
                    double ds = p[j] * (dp[j] - dsum) * sc;
                    for (int e = 0; e < D; e++) {
                        dqi[e] += ds * bfr(k[kb + (long)j * H * D + e]);
                        dk[kb + (long)j * H * D + e] += ds * bfr(qi[e]);
                        dv[kb + (long)j * H * D + e] += p[j] * bfr(doi[e]);
                    }
                }
            }
    free(p), free(dp);
}

/* path 2 (cuDNN): backward cases checked, and how many of them ran cuDNN's backward graph */
static int attn_bwd_cases, attn_bwd_cudnn;

/* returns 1 when the path did not take the shape (checked otherwise) */
static int attn_case(int path, int N, int Lx, int Ly, int H, int D, int causal, int kv_div,
                     int bwd)
{
    long nq = (long)N * Lx * H * D, nk = (long)(N / kv_div) * Ly * H * D;
    float *q = rnd(nq, 1.0), *k = rnd(nk, 1.0), *v = rnd(nk, 1.0), *dout = bwd ? rnd(nq, 1.0) : NULL;
    float *o = malloc(nq * 4), *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
    double *ro = calloc(nq, 8), *rdq = calloc(nq, 8), *rdk = calloc(nk, 8), *rdv = calloc(nk, 8);
    attn_ref(N, Lx, Ly, H, D, causal, kv_div, q, k, v, dout, ro, rdq, rdk, rdv);
    int lib = 0;
    int rc = tg_cuda_test_attention(path, N, Lx, Ly, H, D, causal, kv_div, q, k, v, dout, o, dq,
                                    dk, dv, &lib);
    char what[160];
    snprintf(what, sizeof what, "attention path %d N %d Lx %d Ly %d H %d D %d causal %d kv_div %d",
             path, N, Lx, Ly, H, D, causal, kv_div);
    if (rc == 1) {
        print_message("%s: %s\n", what,
                      path == 5 ? "not taken (the other kernels are used)"
                                : "rejected by the library (batched-GEMM fallback is used)");
    } else {
        if (rc)
            fail_msg("%s: %s", what, tg_errmsg());
        if (path == 2 && bwd) {
            /* cuDNN may refuse the backward graph (the kernels then run): said, not failed */
            print_message("%s: backward %s\n", what,
                          lib ? "cuDNN graph" : "kernels (cuDNN refused the backward graph)");
            attn_bwd_cases++;
            attn_bwd_cudnn += lib;
        }
        CHECK_ERR(o, ro, nq, 2e-2, what);
        if (bwd) {
            CHECK_ERR(dq, rdq, nq, 3e-2, what);
            CHECK_ERR(dk, rdk, nk, 3e-2, what);
            CHECK_ERR(dv, rdv, nk, 3e-2, what);
        }
    }
    free(q), free(k), free(v), free(dout), free(o), free(dq), free(dk), free(dv);
    free(ro), free(rdq), free(rdk), free(rdv);
    return rc == 1;
}

/* the network's shapes, then random ones; returns how many of the network's were not taken */
static int attn_paths(int path)
{
    int missed = attn_case(path, 7, 8, 8, 2, 32, 0, 1, 1); /* torso, S = 4 */
    missed += attn_case(path, 3, 18, 18, 3, 32, 0, 1, 1);  /* torso, S = 9 */
    missed += attn_case(path, 5, 4, 4, 2, 64, 1, 1, 1);    /* policy self-attention, causal */
    missed += attn_case(path, 3, 9, 48, 2, 64, 0, 1, 1);   /* policy cross-attention */
    missed += attn_case(path, 4, 4, 4, 2, 8, 1, 1, 1);     /* golden's head width */
    for (int i = 0; i < 3; i++) {
        int L = 1 + tg_rng_below(&R, 20), Ly = 1 + tg_rng_below(&R, 60);
        int causal = tg_rng_below(&R, 2);
        attn_case(path, 1 + tg_rng_below(&R, 6), causal ? L : L, causal ? L : Ly,
                  1 + tg_rng_below(&R, 4), 8 * (1 + tg_rng_below(&R, 8)), causal, 1, 1);
    }
    return missed;
}

static void test_attention_warp(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    attn_paths(0);
    attn_case(0, 6, 1, 48, 2, 64, 0, 3, 0); /* decoding: K samples share a position's keys */
}

static void test_attention_kvshare(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    attn_case(4, 6, 1, 48, 2, 64, 0, 3, 0);    /* decoding, S = 4 */
    attn_case(4, 64, 1, 243, 3, 32, 0, 32, 0); /* decoding, S = 9, K = 32, two key tiles */
    attn_case(4, 4, 9, 70, 2, 16, 0, 1, 0);    /* one query sequence per key sequence */
    attn_case(4, 4, 9, 9, 2, 64, 1, 2, 0);     /* causal */
}

static void test_attention_short(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    attn_paths(3);
}

/* tensor-core kernels: the network's shapes (packed self-attention, the policy's cross-attention
 * over 3 S^2 keys, decoding with K samples sharing keys), then random ones */
static void test_attention_mma(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    attn_paths(5);
    attn_case(5, 9, 8, 8, 16, 32, 0, 1, 1);   /* torso S = 4: two pairs a tile, odd pair count */
    attn_case(5, 5, 18, 18, 16, 32, 0, 1, 1); /* torso S = 9: one pair a 32-row tile */
    attn_case(5, 7, 9, 9, 4, 64, 1, 1, 1);    /* policy self-attention, S = 9 */
    attn_case(5, 7, 9, 9, 4, 32, 1, 1, 1);
    attn_case(5, 11, 4, 4, 3, 64, 1, 1, 1);   /* S = 4: four pairs a tile */
    attn_case(5, 3, 9, 243, 4, 64, 0, 1, 1);  /* cross-attention, S = 9 */
    attn_case(5, 5, 9, 243, 3, 32, 0, 1, 1);
    attn_case(5, 6, 4, 48, 2, 64, 0, 1, 1);   /* cross-attention, S = 4 */
    attn_case(5, 3, 20, 70, 2, 32, 1, 1, 1);  /* 32-row tile, causal with more keys */
    attn_case(5, 64, 1, 243, 2, 32, 0, 32, 0); /* decoding: K = 32 samples share the keys */
    attn_case(5, 6, 1, 243, 3, 64, 0, 1, 0);   /* greedy decoding */
    attn_case(5, 80, 1, 50, 2, 64, 0, 40, 0);  /* K = 40: two row tiles */
    attn_case(5, 4, 9, 70, 2, 64, 0, 2, 0);    /* two query sequences of 9 a key sequence */
    attn_case(5, 4, 9, 9, 2, 64, 1, 2, 0);     /* causal with shared keys */
    for (int i = 0; i < 12; i++) {
        int D = tg_rng_below(&R, 2) ? 64 : 32, causal = tg_rng_below(&R, 2);
        int Lx = 1 + tg_rng_below(&R, 32), self = tg_rng_below(&R, 2);
        int Ly = self ? Lx : 1 + (int)tg_rng_below(&R, 300);
        attn_case(5, 1 + tg_rng_below(&R, 9), Lx, Ly, 1 + tg_rng_below(&R, 5), D, causal, 1, 1);
    }
    for (int i = 0; i < 4; i++) {
        int kv = 1 + tg_rng_below(&R, 40), Lx = 1 + tg_rng_below(&R, 3);
        attn_case(5, kv * (1 + tg_rng_below(&R, 3)), Lx, 1 + tg_rng_below(&R, 250),
                  1 + tg_rng_below(&R, 3), tg_rng_below(&R, 2) ? 64 : 32, 0, kv, 0);
    }
}

static void test_attention_gemm(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    attn_paths(1);
}

static void test_attention_cudnn(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    /* cuDNN 9 takes every shape of the network (H100, cuDNN 9.14, since P is bf16 in the graph);
     * its backward graph runs where cuDNN takes it, the kernels elsewhere (both checked) */
    attn_bwd_cases = attn_bwd_cudnn = 0;
    int missed = attn_paths(2);
    print_message("cuDNN attention: the backward ran through cuDNN's graph in %d of %d cases\n",
                  attn_bwd_cudnn, attn_bwd_cases);
    if (missed)
        fail_msg("cuDNN rejected %d of the network's 5 attention shapes (TG_CUDA_VERBOSE=1 and "
                 "CUDNN_LOGLEVEL_DBG=2 say why)", missed);
}

/* The odd-width golden config's attention (batch 2): the torso's 6-token sequences of head width
 * 2, the policy's causal self-attention over 5 steps and cross-attention over 27 keys of head
 * width 3, and decoding's shared keys (K = 4 samples a position). Head widths the tensor-core
 * kernels (5) and cuDNN (2) do not take are reported as not taken; every other path must run
 * them: warp (0), short (3), batched GEMMs (1) and those by the reference GEMM kernel (6). */
static void test_attention_odd(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    static const int paths[] = {0, 3, 1, 6, 5, 2};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        int p = paths[i], must = p != 5 && p != 2, miss = 0;
        miss += attn_case(p, 6, 6, 6, 2, 2, 0, 1, 1);  /* torso */
        miss += attn_case(p, 2, 5, 5, 3, 3, 1, 1, 1);  /* policy self-attention */
        miss += attn_case(p, 2, 5, 27, 3, 3, 0, 1, 1); /* policy cross-attention */
        miss += attn_case(p, 3, 4, 4, 3, 1, 1, 1, 1);  /* head width 1 */
        if (must && miss)
            fail_msg("attention path %d did not take %d odd-width shapes", p, miss);
    }
    attn_case(0, 8, 1, 27, 3, 3, 0, 4, 0); /* decoding: warp per row, shared keys */
    attn_case(4, 8, 1, 27, 3, 3, 0, 4, 0); /* decoding: shared-key kernel */
    attn_case(4, 16, 1, 27, 3, 3, 0, 8, 0);
    attn_case(0, 8, 1, 3, 3, 3, 0, 1, 0);  /* decoding's self-attention (one query row) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe),       cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_gelu),           cmocka_unit_test(test_losses),
        cmocka_unit_test(test_f2bf_pad),       cmocka_unit_test(test_stage),
        cmocka_unit_test(test_stage_next),
        cmocka_unit_test(test_adamw),          cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_odd),
        cmocka_unit_test(test_attention_warp), cmocka_unit_test(test_attention_short),
        cmocka_unit_test(test_attention_gemm), cmocka_unit_test(test_attention_kvshare),
        cmocka_unit_test(test_attention_mma),  cmocka_unit_test(test_attention_odd),
        cmocka_unit_test(test_attention_cudnn),
        cmocka_unit_test(test_gemm_splitk), /* after the others: their random shapes stay */
        cmocka_unit_test(test_uniforms),
    };
    return tg_test_done(cmocka_run_group_tests(tests, setup, NULL));
}

#else /* built without CUDA: nothing to run, say so */

static void test_no_cuda(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_cuda)};
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
#endif
