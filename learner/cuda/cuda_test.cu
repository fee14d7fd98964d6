/* Host-array wrappers of the CUDA kernels for the unit tests (see cuda_api.h), and device facts. */
#include <stdlib.h>
#include <string.h>

#include <cudnn.h>

#include "learner/cuda/attn.h"
#include "learner/cuda/netk.h"
#include "learner/cuda/cuda_api.h"
#include "learner/cuda/gemm.h"

/* device scratch for one test call: a bump allocator over one cudaMalloc */
typedef struct tbuf {
    char *base;
    size_t off, cap;
} tbuf;

static void *tb_take(tbuf *t, size_t bytes)
{
    size_t o = (t->off + 255) & ~(size_t)255;
    if (o + bytes > t->cap)
        return NULL;
    t->off = o + bytes;
    return t->base + o;
}

static int tb_open(tbuf *t, size_t cap)
{
    t->off = 0;
    t->cap = cap;
    CU_CHECK(cudaMalloc((void **)&t->base, cap));
    return 0;
}

static float *up_f(tbuf *t, const float *h, size_t n)
{
    float *d = (float *)tb_take(t, n * sizeof(float) + 4);
    if (d && h)
        cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice);
    return d;
}

static bf16 *up_bf(tbuf *t, const float *h, size_t n)
{
    bf16 *tmp = (bf16 *)malloc(n * sizeof(bf16) + 2);
    bf16 *d = (bf16 *)tb_take(t, n * sizeof(bf16) + 4);
    if (!tmp || !d) {
        free(tmp);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        tmp[i] = __float2bfloat16(h ? h[i] : 0.f);
    cudaMemcpy(d, tmp, n * sizeof(bf16), cudaMemcpyHostToDevice);
    free(tmp);
    return d;
}

static int down_f(float *h, const float *d, size_t n)
{
    CU_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

static int down_bf(float *h, const bf16 *d, size_t n)
{
    bf16 *tmp = (bf16 *)malloc(n * sizeof(bf16) + 2);
    if (!tmp)
        return tg_fail("out of memory");
    cudaError_t e = cudaMemcpy(tmp, d, n * sizeof(bf16), cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < n; i++)
        h[i] = __bfloat162float(tmp[i]);
    free(tmp);
    CU_CHECK(e);
    return 0;
}

#define NEED(p)                                                                                \
    do {                                                                                       \
        if (!(p)) {                                                                            \
            rc = tg_fail("test scratch exhausted");                                            \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

extern "C" {

int tg_cuda_devices(void)
{
    int n = 0;
    if (getenv("TG_NO_CUDA"))
        return 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess)
        return 0;
    return n;
}

int tg_cuda_describe(char *buf, int len)
{
    cudaDeviceProp p;
    CU_CHECK(cudaGetDeviceProperties(&p, 0));
    snprintf(buf, (size_t)len, "%s, cc %d.%d, %d SMs, cuDNN %zu, cuBLASLt %zu", p.name, p.major,
             p.minor, p.multiProcessorCount, cudnnGetVersion(), cublasLtGetVersion());
    return 0;
}

int tg_cuda_test_layernorm(long rows, int n, const float *x, const float *w, const float *b,
                           const float *dy, int dy_bf16, const float *dx0, float *y, float *dx,
                           float *dxb, float *dw, float *db)
{
    tbuf t;
    if (tb_open(&t, (size_t)rows * n * 20 + (size_t)n * 32 + rows * 16 + 65536))
        return -1;
    int rc = 0;
    float *dX = up_f(&t, x, rows * n), *dW = up_f(&t, w, n), *dB = up_f(&t, b, n);
    const void *dDY = dy_bf16 ? (const void *)up_bf(&t, dy, rows * n)
                              : (const void *)up_f(&t, dy, rows * n);
    float *dDX = up_f(&t, dx0, rows * n);
    bf16 *DXB = dxb ? (bf16 *)tb_take(&t, rows * n * 2) : NULL;
    float *mean = up_f(&t, NULL, rows), *rstd = up_f(&t, NULL, rows);
    float *gw = up_f(&t, NULL, n), *gb = up_f(&t, NULL, n);
    bf16 *Y = (bf16 *)tb_take(&t, rows * n * 2);
    NEED(dX && dW && dB && dDY && dDX && mean && rstd && gw && gb && Y);
    cudaMemset(gw, 0, n * 4);
    cudaMemset(gb, 0, n * 4);
    if (tgc_layernorm_fwd(0, dX, n, dW, dB, Y, TGC_BF16, n, mean, rstd, rows, n) ||
        tgc_layernorm_bwd(0, dX, n, dW, mean, rstd, dDY, dy_bf16 ? TGC_BF16 : TGC_F32, n, dDX, n,
                          dx0 != NULL, DXB, gw, gb, rows, n) ||
        down_bf(y, Y, rows * n) || down_f(dx, dDX, rows * n) || down_f(dw, gw, n) ||
        (dxb && down_bf(dxb, DXB, rows * n)) ||
        down_f(db, gb, n))
        rc = -1;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_gelu(long rows, int n, const float *x, const float *bias, const float *dy,
                      float *y, float *dx)
{
    tbuf t;
    if (tb_open(&t, (size_t)rows * n * 8 + n * 4 + 65536))
        return -1;
    int rc = 0;
    bf16 *pre = up_bf(&t, x, rows * n), *bb = up_bf(&t, bias, n), *Y = up_bf(&t, NULL, rows * n);
    bf16 *D = up_bf(&t, dy, rows * n);
    NEED(pre && bb && Y && D);
    if (tgc_bias_gelu(0, pre, bb, Y, rows, n) || tgc_gelu_bwd(0, D, pre, rows * n) ||
        down_bf(y, Y, rows * n) || down_bf(dx, D, rows * n))
        rc = -1;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_f2bf_pad(long rows, int n, int ldy, const float *x, float *y)
{
    tbuf t;
    if (tb_open(&t, (size_t)rows * (n + ldy) * 8 + 65536))
        return -1;
    int rc = 0;
    float *X = up_f(&t, x, rows * n);
    bf16 *Y = (bf16 *)tb_take(&t, (size_t)rows * ldy * 2);
    NEED(X && Y);
    if (cudaMemset(Y, 0xff, (size_t)rows * ldy * 2) != cudaSuccess) /* poison: all written */
        rc = tg_fail("f2bf_pad test: memset failed");
    else if (tgc_f2bf_pad(0, X, n, n, Y, ldy, rows) || down_bf(y, Y, rows * ldy))
        rc = -1;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_stage(int B, int S, int c, int m1, int m2, const float *g, const float *x,
                       float *xg, float *xgb, float *gs)
{
    long ng = (long)B * 3 * S * S * c, nx = (long)B * S * 2 * S * c;
    tbuf t;
    if (tb_open(&t, (size_t)(ng * 2 + nx * 2) * 4 + nx * 2 + 65536))
        return -1;
    int rc = 0;
    float *G = up_f(&t, g, ng), *G2 = up_f(&t, g, ng), *X = up_f(&t, NULL, nx),
          *X2 = up_f(&t, x, nx);
    bf16 *XB = (bf16 *)tb_take(&t, (size_t)nx * 2);
    NEED(G && G2 && X && X2 && XB);
    if (tgc_stage_bf(0, G, X, XB, B, S, c, m1, m2) || tgc_stage(0, G2, X2, B, S, c, m1, m2, 1) ||
        cudaDeviceSynchronize() != cudaSuccess || down_f(xg, X, nx) || down_bf(xgb, XB, nx) ||
        down_f(gs, G2, ng))
        rc = tg_fail("stage test failed: %s", tg_errmsg());
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_stage_next(int B, int S, int c, int a1, int a2, int b1, int b2, const float *g,
                            const float *xs, float *xn, float *xnb, float *gs, const float *lnw,
                            const float *lnb, float *lny, float *lnmean, float *lnrstd)
{
    long ng = (long)B * 3 * S * S * c, nx = (long)B * S * 2 * S * c, nr = (long)B * S * 2 * S;
    tbuf t;
    if (tb_open(&t, (size_t)(ng + 2 * nx + 2 * c + 2 * nr) * 4 + 2 * nx * 2 + 65536))
        return -1;
    int rc = 0, r = 0;
    float *G = up_f(&t, g, ng), *XS = up_f(&t, xs, nx), *XN = up_f(&t, NULL, nx);
    bf16 *XB = (bf16 *)tb_take(&t, (size_t)nx * 2);
    NEED(G && XS && XN && XB);
    tgc_ln_fuse f;
    memset(&f, 0, sizeof f);
    if (lnw) {
        f.w = up_f(&t, lnw, c);
        f.b = up_f(&t, lnb, c);
        f.y = (bf16 *)tb_take(&t, (size_t)nx * 2);
        f.mean = up_f(&t, NULL, nr);
        f.rstd = up_f(&t, NULL, nr);
        NEED(f.w && f.b && f.y && f.mean && f.rstd);
    }
    r = tgc_stage_next(0, G, XS, XN, XB, B, S, c, a1, a2, b1, b2, lnw ? &f : NULL);
    if (r < 0 || cudaDeviceSynchronize() != cudaSuccess || down_f(xn, XN, nx) ||
        down_bf(xnb, XB, nx) || down_f(gs, G, ng) ||
        (lnw && r == 0 &&
         (down_bf(lny, f.y, nx) || down_f(lnmean, f.mean, nr) || down_f(lnrstd, f.rstd, nr))))
        rc = tg_fail("stage_next test failed: %s", tg_errmsg());
    else
        rc = r;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_uniforms(uint64_t seed, int N, long per, float *out)
{
    tbuf t;
    if (tb_open(&t, (size_t)N * per * 4 + 65536))
        return -1;
    int rc = 0;
    uint64_t *S = (uint64_t *)tb_take(&t, sizeof seed);
    float *U = up_f(&t, NULL, (size_t)N * per);
    NEED(S && U);
    if (cudaMemcpy(S, &seed, sizeof seed, cudaMemcpyHostToDevice) != cudaSuccess ||
        tgc_uniforms(0, S, N, per, U) || cudaDeviceSynchronize() != cudaSuccess ||
        down_f(out, U, (size_t)N * per))
        rc = tg_fail("uniforms test failed: %s", tg_errmsg());
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_xent(long rows, int n, const float *logits, const int32_t *tgt, float gscale,
                      float *loss, float *dlogits)
{
    tbuf t;
    if (tb_open(&t, (size_t)rows * n * 8 + rows * 16 + 65536))
        return -1;
    int rc = 0;
    float *L = up_f(&t, logits, rows * n), *lo = up_f(&t, NULL, rows),
          *dl = up_f(&t, NULL, rows * n);
    int32_t *T = (int32_t *)tb_take(&t, rows * 4);
    NEED(L && lo && dl && T);
    cudaMemcpy(T, tgt, rows * 4, cudaMemcpyHostToDevice);
    if (tgc_xent(0, L, T, rows, n, lo, dl, gscale) || down_f(loss, lo, rows) ||
        down_f(dlogits, dl, rows * n))
        rc = -1;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_qloss(int B, int Q, const float *q, const float *ret, float gscale, float *loss,
                       float *dq)
{
    tbuf t;
    if (tb_open(&t, (size_t)B * Q * 12 + B * 4 + 65536))
        return -1;
    int rc = 0;
    float *dQ = up_f(&t, q, (size_t)B * Q), *R = up_f(&t, ret, B), *lo = up_f(&t, NULL, (size_t)B * Q),
          *g = up_f(&t, NULL, (size_t)B * Q);
    NEED(dQ && R && lo && g);
    if (tgc_quantile_loss(0, dQ, R, B, Q, lo, g, gscale) || down_f(loss, lo, (size_t)B * Q) ||
        down_f(dq, g, (size_t)B * Q))
        rc = -1;
out:
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_adamw(long n, float *p, float *p16, const float *g, float *m, float *v,
                       const uint8_t *decay, float lr, float b1, float b2, float eps, float wd,
                       int step, float clip, float *gnorm)
{
    tbuf t;
    if (tb_open(&t, (size_t)n * 24 + 65536))
        return -1;
    int rc = 0;
    float *P = up_f(&t, p, n), *G = up_f(&t, g, n), *M = up_f(&t, m, n), *V = up_f(&t, v, n);
    float *ss = up_f(&t, NULL, 1);
    bf16 *P16 = (bf16 *)tb_take(&t, n * 2);
    uint8_t *dec = (uint8_t *)tb_take(&t, n);
    NEED(P && G && M && V && ss && P16 && dec);
    cudaMemcpy(dec, decay, n, cudaMemcpyHostToDevice);
    cudaMemset(ss, 0, 4);
    {
        float bc1 = 1.f - powf(b1, (float)step), bc2 = 1.f - powf(b2, (float)step);
        float sum = 0.f;
        if (tgc_sumsq(0, G, n, ss) ||
            tgc_adamw(0, P, P16, G, M, V, dec, n, lr, b1, b2, eps, wd, bc1, bc2, ss, clip) ||
            down_f(p, P, n) || down_f(m, M, n) || down_f(v, V, n) || down_bf(p16, P16, n) ||
            down_f(&sum, ss, 1))
            rc = -1;
        *gnorm = sqrtf(sum);
    }
out:
    cudaFree(t.base);
    return rc;
}

/* splitk < 0 keeps TG_CUDA_GEMM_SPLITK's setting; sk (if given): K splits of the GEMM run. */
static int gemm_test(int ta, int tb, long M, long N, long K, const float *A, const float *B,
                     const float *bias, float beta, int epi, int epilogues, int splitk, float *D,
                     float *bgrad, int *sk)
{
    if (sk)
        *sk = 0;
    tbuf t;
    if (tb_open(&t, (size_t)(M * K + K * N) * 2 + (size_t)M * N * 4 + (M + N) * 4 + 65536))
        return -1;
    int rc = 0;
    tgc_gemm *g = tgc_gemm_new(32 << 20);
    bf16 *dA = up_bf(&t, A, M * K), *dB = up_bf(&t, B, K * N);
    float *dD = up_f(&t, D, M * N), *db = up_f(&t, bias, N), *bg = up_f(&t, NULL, M);
    NEED(g && dA && dB && dD && db && bg);
    tgc_gemm_set_epilogues(g, epilogues);
    if (splitk >= 0)
        tgc_gemm_set_splitk(g, splitk);
    {
        tgc_mm m;
        memset(&m, 0, sizeof m);
        m.ta = ta;
        m.tb = tb;
        m.M = M;
        m.N = N;
        m.K = K;
        m.A = dA;
        m.lda = ta ? M : K;
        m.B = dB;
        m.ldb = tb ? K : N;
        m.D = dD;
        m.ddt = TGC_F32;
        m.ldd = N;
        m.alpha = 1.f;
        m.beta = beta;
        m.epi = epi;
        m.bias = db;
        m.bgrad = bg;
        if (tgc_gemm_run(g, 0, &m) || down_f(D, dD, M * N) ||
            (epi == TGC_EPI_BGRAD && down_f(bgrad, bg, M)))
            rc = -1;
        if (sk)
            *sk = tgc_gemm_last_splitk(g);
    }
out:
    tgc_gemm_free(g);
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_gemm(int ta, int tb, long M, long N, long K, const float *A, const float *B,
                      const float *bias, float beta, int epi, int epilogues, float *D,
                      float *bgrad)
{
    return gemm_test(ta, tb, M, N, K, A, B, bias, beta, epi, epilogues, -1, D, bgrad, NULL);
}

int tg_cuda_test_gemm_splitk(int ta, int tb, long M, long N, long K, const float *A,
                             const float *B, const float *bias, float beta, int epi, int splitk,
                             float *D, float *bgrad, int *sk)
{
    return gemm_test(ta, tb, M, N, K, A, B, bias, beta, epi, 1, splitk, D, bgrad, sk);
}

int tg_cuda_test_gemm_dgelu(long M, long N, long K, const float *A, const float *B,
                            const float *pre, int epilogues, float *D)
{
    tbuf t;
    if (tb_open(&t, (size_t)(M * K + K * N + 2 * M * N) * 2 + 65536))
        return -1;
    int rc = 0;
    tgc_gemm *g = tgc_gemm_new(32 << 20);
    bf16 *dA = up_bf(&t, A, M * K), *dB = up_bf(&t, B, K * N), *dP = up_bf(&t, pre, M * N);
    bf16 *dD = up_bf(&t, NULL, M * N);
    NEED(g && dA && dB && dP && dD);
    tgc_gemm_set_epilogues(g, epilogues);
    {
        tgc_mm m;
        memset(&m, 0, sizeof m);
        m.M = M;
        m.N = N;
        m.K = K;
        m.A = dA;
        m.lda = K;
        m.B = dB;
        m.ldb = N;
        m.D = dD;
        m.ddt = TGC_BF16;
        m.ldd = N;
        m.alpha = 1.f;
        m.epi = TGC_EPI_DGELU;
        m.aux = dP;
        if (tgc_gemm_run(g, 0, &m) || cudaDeviceSynchronize() != cudaSuccess ||
            down_bf(D, dD, M * N))
            rc = -1;
    }
out:
    tgc_gemm_free(g);
    cudaFree(t.base);
    return rc;
}

int tg_cuda_test_gemm_gelu(long M, long N, long K, const float *A, const float *B,
                           const float *bias, int epilogues, float *D)
{
    tbuf t;
    if (tb_open(&t, (size_t)(M * K + K * N + M * N + N) * 2 + 65536))
        return -1;
    int rc = 0;
    tgc_gemm *g = tgc_gemm_new(32 << 20);
    bf16 *dA = up_bf(&t, A, M * K), *dB = up_bf(&t, B, K * N), *db = up_bf(&t, bias, N);
    bf16 *dD = up_bf(&t, NULL, M * N);
    NEED(g && dA && dB && db && dD);
    tgc_gemm_set_epilogues(g, epilogues);
    {
        tgc_mm m;
        memset(&m, 0, sizeof m);
        m.M = M;
        m.N = N;
        m.K = K;
        m.A = dA;
        m.lda = K;
        m.B = dB;
        m.ldb = N;
        m.D = dD;
        m.ddt = TGC_BF16;
        m.ldd = N;
        m.alpha = 1.f;
        m.epi = TGC_EPI_GELU;
        m.bias = db;
        if (tgc_gemm_run(g, 0, &m) || cudaDeviceSynchronize() != cudaSuccess ||
            down_bf(D, dD, M * N))
            rc = -1;
    }
out:
    tgc_gemm_free(g);
    cudaFree(t.base);
    return rc;
}

/* rows x cols of host h (dense) to the device at element offset off with row stride ld, the
 * padding columns (and the elements before off) set to pad; bf16 or fp32 per bf */
static void *up_ld(tbuf *t, const float *h, long rows, long cols, long ld, int off, int bf,
                   float pad)
{
    size_t n = (size_t)off + (size_t)rows * ld, es = bf ? 2 : 4;
    char *d = (char *)tb_take(t, n * es + 16);
    void *tmp = malloc(n * es + 16);
    if (!d || !tmp) {
        free(tmp);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        long r = i < (size_t)off ? -1 : (long)((i - off) / ld), c = r < 0 ? 0 : (long)(i - off) % ld;
        float v = r >= 0 && c < cols ? (h ? h[r * cols + c] : 0.f) : pad;
        if (bf)
            ((bf16 *)tmp)[i] = __float2bfloat16(v);
        else
            ((float *)tmp)[i] = v;
    }
    cudaMemcpy(d, tmp, n * es, cudaMemcpyHostToDevice);
    free(tmp);
    return d + (size_t)off * es;
}

/* the device's rows x cols (row stride ld) into dense h; -1 when a padding column of a row no
 * longer holds pad */
static int down_ld(float *h, const void *d, long rows, long cols, long ld, int bf, float pad)
{
    size_t n = (size_t)rows * ld, es = bf ? 2 : 4;
    void *tmp = malloc(n * es + 16);
    if (!tmp)
        return tg_fail("out of memory");
    cudaError_t e = cudaMemcpy(tmp, d, n * es, cudaMemcpyDeviceToHost);
    int bad = 0;
    for (long r = 0; r < rows && e == cudaSuccess; r++)
        for (long c = 0; c < ld; c++) {
            float v = bf ? __bfloat162float(((bf16 *)tmp)[r * ld + c]) : ((float *)tmp)[r * ld + c];
            if (c < cols)
                h[r * cols + c] = v;
            else if (v != pad)
                bad = 1;
        }
    free(tmp);
    CU_CHECK(e);
    if (bad)
        return tg_fail("GEMM test: padding columns of the output were written");
    return 0;
}

int tg_cuda_test_gemm_ex(const tg_cuda_gemm_case *c, const float *A, const float *B,
                         const float *vec, float *D, float *pre, float *bgrad, long *ref)
{
    static const int EPI[6] = {TGC_EPI_NONE, TGC_EPI_BIAS, TGC_EPI_GELU_BIAS, TGC_EPI_BGRAD,
                               TGC_EPI_DGELU, TGC_EPI_GELU};
    if (c->epi < 0 || c->epi > 5)
        return tg_fail("GEMM test: epilogue %d", c->epi);
    const float PAD = 1000.f;
    long M = c->M, N = c->N, K = c->K;
    long ar = c->ta ? K : M, ac = c->ta ? M : K, br = c->tb ? N : K, bc = c->tb ? K : N;
    long lda = ac + c->pad, ldb = bc + c->pad, ldd = N + c->pad;
    int dbf = c->d_bf16, aux = c->epi == 2 || c->epi == 4;
    size_t cap = ((size_t)ar * lda + (size_t)br * ldb) * 2 + (size_t)M * ldd * 4 * 2 +
                 (size_t)(M + N) * 4 + 64 * 6 + 65536;
    tbuf t;
    if (tb_open(&t, cap))
        return -1;
    int rc = 0;
    tgc_gemm *g = tgc_gemm_new(32 << 20);
    bf16 *dA = (bf16 *)up_ld(&t, A, ar, ac, lda, c->off[0], 1, PAD);
    bf16 *dB = (bf16 *)up_ld(&t, B, br, bc, ldb, c->off[1], 1, PAD);
    void *dD = up_ld(&t, c->beta != 0.f ? D : NULL, M, N, ldd, c->off[2], dbf, PAD);
    /* the vector: bias (bf16 for a bf16 D) or bias gradient (fp32, M) */
    void *dv = c->epi == 3 ? up_ld(&t, NULL, 1, M, M, c->off[3], 0, PAD)
                           : up_ld(&t, vec, 1, N, N, c->off[3], dbf, PAD);
    bf16 *dx = aux ? (bf16 *)up_ld(&t, c->epi == 4 ? pre : NULL, M, N, ldd, c->off[4], 1, PAD)
                   : NULL;
    NEED(g && dA && dB && dD && dv && (dx || !aux));
    tgc_gemm_set_epilogues(g, c->mode != 1);
    tgc_gemm_set_reference(g, c->mode == 2);
    {
        tgc_mm m;
        memset(&m, 0, sizeof m);
        m.ta = c->ta;
        m.tb = c->tb;
        m.M = M;
        m.N = N;
        m.K = K;
        m.A = dA;
        m.lda = lda;
        m.B = dB;
        m.ldb = ldb;
        m.D = dD;
        m.ddt = dbf ? TGC_BF16 : TGC_F32;
        m.ldd = ldd;
        m.alpha = 1.f;
        m.beta = c->beta;
        m.epi = EPI[c->epi];
        m.bias = c->epi == 3 ? NULL : dv;
        m.bgrad = c->epi == 3 ? (float *)dv : NULL;
        m.aux = dx;
        if (tgc_gemm_run(g, 0, &m) || cudaDeviceSynchronize() != cudaSuccess ||
            down_ld(D, dD, M, N, ldd, dbf, PAD) ||
            (c->epi == 2 && down_ld(pre, dx, M, N, ldd, 1, PAD)) ||
            (c->epi == 3 && down_f(bgrad, (const float *)dv, M)))
            rc = -1;
        if (ref)
            *ref = tgc_gemm_ref_calls(g);
    }
out:
    tgc_gemm_free(g);
    cudaFree(t.base);
    return rc;
}

int tgc_sdpa_test(int N, int Lx, int Ly, int H, int D, int causal, const bf16 *q, const bf16 *k,
                  const bf16 *v, const bf16 *dout, bf16 *o, bf16 *dq, bf16 *dk, bf16 *dv,
                  int *bwd_cudnn) __attribute__((weak));

int tg_cuda_test_attention(int path, int N, int Lx, int Ly, int H, int D, int causal, int kv_div,
                           const float *q, const float *k, const float *v, const float *dout,
                           float *o, float *dq, float *dk, float *dv, int *bwd_lib)
{
    if (bwd_lib)
        *bwd_lib = 0;
    tgc_attn_shape s;
    memset(&s, 0, sizeof s);
    s.N = N;
    s.Lx = Lx;
    s.Ly = Ly;
    s.H = H;
    s.D = D;
    s.kv_div = kv_div;
    s.causal = causal;
    s.sq = s.so = (long)Lx * H * D;
    s.ldq = s.ldo = s.ldk = (long)H * D;
    s.sk = (long)Ly * H * D;
    s.scale = 1.f / sqrtf((float)D);
    long nq = (long)N * Lx * H * D, nk = (long)(N / kv_div) * Ly * H * D;
    tbuf t;
    size_t sc = tgc_attn_gemm_scratch(&s);
    /* Q, O, dO, dQ and K, V, dK, dV in bf16; P; lse and delta in fp32; the GEMM path's scratch;
     * 256-byte alignment of each piece */
    if (tb_open(&t, (size_t)(nq * 4 + nk * 4) * 2 + (size_t)N * H * Lx * Ly * 2 +
                        (size_t)N * H * Lx * 8 + sc + 65536))
        return -1;
    int rc = 0;
    tgc_gemm *g = tgc_gemm_new(32 << 20);
    bf16 *Q = up_bf(&t, q, nq), *Kd = up_bf(&t, k, nk), *V = up_bf(&t, v, nk),
         *O = up_bf(&t, NULL, nq);
    bf16 *DO = dout ? up_bf(&t, dout, nq) : NULL;
    bf16 *DQ = up_bf(&t, NULL, nq), *DK = up_bf(&t, NULL, nk), *DV = up_bf(&t, NULL, nk);
    float *lse = up_f(&t, NULL, (size_t)N * H * Lx), *delta = up_f(&t, NULL, (size_t)N * H * Lx);
    bf16 *P = (bf16 *)tb_take(&t, (size_t)N * H * Lx * Ly * 2);
    void *scr = tb_take(&t, sc);
    NEED(g && Q && Kd && V && O && (DO || !dout) && DQ && DK && DV && lse && delta && P && scr);
    if (path == 4) {
        if (tgc_attn_fwd_kvshare(0, &s, Q, Kd, V, O, lse))
            rc = -1;
    } else if (path == 5) {
        /* poison the outputs: every element must be written */
        if (cudaMemset(O, 0xff, nq * 2) != cudaSuccess ||
            (dout && (cudaMemset(DQ, 0xff, nq * 2) != cudaSuccess ||
                      cudaMemset(DK, 0xff, nk * 2) != cudaSuccess ||
                      cudaMemset(DV, 0xff, nk * 2) != cudaSuccess))) {
            rc = tg_fail("attention test: memset failed");
            goto out;
        }
        rc = tgc_attn_fwd_mma(0, &s, Q, Kd, V, O, lse);
        if (!rc && dout)
            rc = tgc_attn_bwd_mma(0, &s, Q, Kd, V, O, DO, lse, DQ, DK, DV);
        if (rc)
            goto out;
    } else if (path == 3) {
        if (!tgc_attn_short_ok(&s)) {
            rc = 1;
            goto out;
        }
        if (tgc_attn_fwd_short(0, &s, Q, Kd, V, O, lse) ||
            (dout && tgc_attn_bwd_short(0, &s, Q, Kd, V, O, DO, lse, DQ, DK, DV)))
            rc = -1;
    } else if (path == TGC_ATTN_WARP) {
        if (tgc_attn_fwd_warp(0, &s, Q, Kd, V, O, lse) ||
            (dout && tgc_attn_bwd_warp(0, &s, Q, Kd, V, O, DO, lse, delta, DQ, DK, DV)))
            rc = -1;
    } else if (path == TGC_ATTN_GEMM || path == 6) {
        tgc_gemm_set_reference(g, path == 6);
        if (tgc_attn_fwd_gemm(g, 0, &s, Q, Kd, V, O, P, scr) ||
            (dout && tgc_attn_bwd_gemm(g, 0, &s, Q, Kd, V, P, DO, DQ, DK, DV, scr)))
            rc = -1;
    } else {
        if (!tgc_sdpa_test || kv_div != 1) {
            rc = 1;
            goto out;
        }
        rc = tgc_sdpa_test(N, Lx, Ly, H, D, causal, Q, Kd, V, DO, O, DQ, DK, DV, bwd_lib);
        if (rc)
            goto out;
    }
    if (!rc && cudaDeviceSynchronize() != cudaSuccess)
        rc = tg_fail("attention test: %s", cudaGetErrorString(cudaGetLastError()));
    if (!rc && (down_bf(o, O, nq) ||
                (dout && (down_bf(dq, DQ, nq) || down_bf(dk, DK, nk) || down_bf(dv, DV, nk)))))
        rc = -1;
out:
    tgc_gemm_free(g);
    cudaFree(t.base);
    return rc;
}

}
