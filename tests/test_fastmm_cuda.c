/* fastmm CUDA path against the CPU path and fp64 (skipped where there is no GPU): Strassen at
 * 1-3 levels, released algorithms, odd sizes, leading dimensions, small workspaces (several
 * chunks of terms), TF32 and bf16 precisions. */
#include "tests/released.h"

#include <math.h>

#include "common/err.h"
#include "common/fact.h"
#include "common/factio.h"
#include "common/rng.h"
#include "fastmm/fastmm.h"
#include "fastmm/fastmm_int.h"

#ifdef TG_HAVE_CUDA
#include <cuda_runtime.h>

#define EPS32 1.1920929e-7

static fastmm_cuda *ctx;

static int setup(void **state)
{
    (void)state;
    if (fastmm_cuda_device_count() > 0) {
        ctx = fastmm_cuda_new();
        if (!ctx) fprintf(stderr, "%s\n", tg_errmsg());
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fastmm_cuda_free(ctx);
    return 0;
}

static void *dev_copy(const void *h, size_t bytes)
{
    void *d = NULL;
    assert_int_equal(cudaMalloc(&d, bytes), cudaSuccess);
    /* a copy from pageable memory may return before its DMA is done, and the library's streams
     * do not wait for the default stream: wait here (the error check once read a half-copied R) */
    if (h) assert_int_equal(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    return d;
}

/* The "; N enumerated configurations timed of M accepted" count on the search report's line
 * that holds pos (the kernel's description before it has a "; " of its own); -1: none. */
static int report_timed(const char *rep, const char *pos, int *accepted)
{
    const char *line = pos;
    while (line > rep && line[-1] != '\n') line--;
    for (const char *t = strstr(line, "; "); t && t < pos; t = strstr(t + 2, "; ")) {
        int timed;
        if (sscanf(t, "; %d enumerated configurations timed of %d accepted", &timed, accepted) == 2)
            return timed;
    }
    return -1;
}

/* Tunes p for one n x n product of random N(0,1) matrices (seeds seed, seed + 1) and writes its
 * tuning report (fastmm_plan_tune_report) into rep. */
static void tune_square(fastmm_plan *p, long n, uint64_t seed, char *rep, size_t len)
{
    float *A = dev_copy(NULL, 4 * n * n), *B = dev_copy(NULL, 4 * n * n),
          *C = dev_copy(NULL, 4 * n * n);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, A, n * n, seed), 0);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, B, n * n, seed + 1), 0);
    if (fastmm_tune_cuda(ctx, p, n, n, n, A, n, B, n, C, n)) fail_msg("%s", tg_errmsg());
    assert_int_equal(fastmm_plan_tune_report(p, n, n, n, rep, len), 0);
    print_message("tuned: %s\n", rep);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
}

/* The candidates of a tuning report ("L1 P2p D E S b66 0.14 (runoff 0.13)* | ...") whose
 * description holds tag (" G4 ", " X ", "p " for the products first, " b" for any cap): how
 * many, each checked to have been timed (a candidate that failed reports 1e30 ms). */
static int report_count(const char *rep, const char *tag)
{
    int n = 0;
    for (const char *c = rep; *c;) {
        const char *e = strstr(c, " | ");
        int len = e ? (int)(e - c) : (int)strlen(c);
        char cand[256] = " ";
        snprintf(cand + 1, sizeof cand - 1, "%.*s", len, c);
        char *t = cand; /* the time: the first word that starts with a digit */
        while (*t && !(t[0] == ' ' && t[1] >= '0' && t[1] <= '9')) t++;
        double ms = 0;
        assert_int_equal(sscanf(t, "%lf", &ms), 1);
        t[1] = 0; /* the description, a space either side */
        if (strstr(cand, tag)) {
            assert_true(ms > 0 && ms < 1e6);
            n++;
        }
        c = e ? e + 3 : c + len;
    }
    return n;
}

/* compare() tunes the plan on its operands first (fp32), so that the kernel searches (and the
 * balanced splits, test_tail) ran on the shapes and leading dimensions the product uses. */
static int compare_tune;

/* Runs one product on both paths; returns the GPU's error against fp64 and checks the GPU and
 * CPU results agree within tol (max-norm, relative to the reference's max). */
static double compare(fastmm_plan *p, long M, long K, long N, uint64_t seed, double tol)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 2);
    long lda = K + 4, ldb = N + 4, ldc = N + 8;
    float *A = malloc(sizeof(float) * M * lda), *B = malloc(sizeof(float) * K * ldb);
    float *C = malloc(sizeof(float) * M * ldc), *Cc = malloc(sizeof(float) * M * ldc);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    double *R = malloc(sizeof(double) * M * N);
    assert_true(A && B && C && Cc && a && b && R);
    for (long i = 0; i < M * lda; i++) A[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    for (long i = 0; i < K * ldb; i++) B[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    for (long i = 0; i < M * ldc; i++) C[i] = NAN;
    for (long i = 0; i < M; i++) memcpy(a + i * K, A + i * lda, sizeof(float) * K);
    for (long i = 0; i < K; i++) memcpy(b + i * N, B + i * ldb, sizeof(float) * N);
    fastmm_prec prec = fastmm_plan_opts(p)->prec;
    float *dA = dev_copy(A, sizeof(float) * M * lda), *dB = dev_copy(B, sizeof(float) * K * ldb);
    float *dC = dev_copy(C, sizeof(float) * M * ldc);
    void *xA = dA, *xB = dB, *hA = NULL, *hB = NULL;
    if (prec == FASTMM_BF16) {
        hA = dev_copy(NULL, 2 * M * lda);
        hB = dev_copy(NULL, 2 * K * ldb);
        assert_int_equal(fastmm_cuda_f32_to_bf16(ctx, dA, hA, M * lda), 0);
        assert_int_equal(fastmm_cuda_f32_to_bf16(ctx, dB, hB, K * ldb), 0);
        xA = hA;
        xB = hB;
    }
    if (compare_tune && prec == FASTMM_FP32) {
        if (fastmm_tune_cuda(ctx, p, M, N, K, xA, lda, xB, ldb, dC, ldc))
            fail_msg("%s", tg_errmsg());
        assert_int_equal(cudaMemcpy(dC, C, sizeof(float) * M * ldc, cudaMemcpyHostToDevice),
                         cudaSuccess); /* NaN outside C again */
    }
    if (fastmm_gemm_cuda(ctx, p, M, N, K, xA, lda, xB, ldb, dC, ldc) || fastmm_cuda_sync(ctx))
        fail_msg("%s", tg_errmsg());
    assert_int_equal(cudaMemcpy(C, dC, sizeof(float) * M * ldc, cudaMemcpyDeviceToHost),
                     cudaSuccess);
    assert_int_equal(fastmm_sgemm_cpu(p, M, N, K, A, lda, B, ldb, Cc, ldc), 0);
    assert_int_equal(fastmm_ref_dgemm(M, N, K, a, b, R), 0);
    double eg = fastmm_max_rel_err(M, N, C, ldc, R), ec = fastmm_max_rel_err(M, N, Cc, ldc, R);
    /* GPU vs CPU: difference relative to the reference's scale */
    double num = 0, den = 0;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double d = fabs((double)C[i * ldc + j] - Cc[i * ldc + j]);
            if (!(d <= num)) num = d;
            if (fabs(R[i * N + j]) > den) den = fabs(R[i * N + j]);
        }
    for (long i = 0; i < M; i++)
        for (long j = N; j < ldc; j++)
            assert_true(isnan(C[i * ldc + j])); /* outside C untouched */
    if (!(num / den <= tol) || !(eg <= tol))
        fail_msg("%ldx%ldx%ld %s: GPU-CPU %.3g, GPU %.3g, CPU %.3g (tolerance %.3g)", M, K, N,
                 fastmm_prec_name(prec), num / den, eg, ec, tol);
    /* the device-side error reduction agrees with the host's */
    double *dR = dev_copy(R, sizeof(double) * M * N), e2 = -1;
    assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, dC, ldc, dR, &e2), 0);
    assert_true(fabs(e2 - eg) <= 1e-6 * eg + 1e-300);
    cudaFree(dR);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    cudaFree(hA);
    cudaFree(hB);
    free(A);
    free(B);
    free(C);
    free(Cc);
    free(a);
    free(b);
    free(R);
    return eg;
}

static double tol_for(const tg_fact *f, long K, fastmm_prec prec)
{
    double g = f ? fastmm_growth(f) : 1.0;
    double u = prec == FASTMM_FP32 ? EPS32 : prec == FASTMM_TF32 ? 1.0 / 1024 : 1.0 / 128;
    /* fp32: worst case-style bound; reduced precisions: rounding of the operands dominates */
    return prec == FASTMM_FP32 ? 2 * u * g * K : u * g;
}

static void test_strassen(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    static const long sizes[][3] = {{256, 256, 256}, {7, 9, 5}, {129, 131, 127},
                                    {300, 64, 1000}, {1, 1, 1}, {512, 520, 500}};
    for (int L = 0; L <= 3; L++)
        for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
            fastmm_opts o = fastmm_opts_default();
            o.levels = L;
            fastmm_plan *p = fastmm_plan_new(s, &o);
            assert_non_null(p);
            compare(p, sizes[t][0], sizes[t][1], sizes[t][2], 10 * L + t,
                    tol_for(L ? fastmm_plan_level_fact(p, L) : NULL, sizes[t][1], FASTMM_FP32));
            fastmm_plan_free(p);
        }
    tg_fact_free(s);
}

static void test_chunks_and_precisions(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    for (int prec = 0; prec < 3; prec++)
        for (int small = 0; small < 2; small++) {
            fastmm_opts o = fastmm_opts_default();
            o.levels = 2;
            o.prec = (fastmm_prec)prec;
            /* room for 5 of the 49 terms at 384^3 (blocks of 96): 10 chunks */
            if (small) o.workspace = 5 * (2 * 96 * 96 * (prec == 2 ? 2 : 4) + 96 * 96 * 4);
            o.panels = small ? 7 : 2; /* pipelined row panels, uneven (96 rows in 7) */
            fastmm_plan *p = fastmm_plan_new(s, &o);
            assert_non_null(p);
            compare(p, 384, 384, 384, 77 + prec, tol_for(fastmm_plan_level_fact(p, 2), 384, o.prec));
            compare(p, 383, 385, 381, 78 + prec, tol_for(fastmm_plan_level_fact(p, 2), 385, o.prec));
            fastmm_plan_free(p);
        }
    tg_fact_free(s);
}

/* Direct operands (blocks read in place through a pointer-array batched GEMM) against the CPU
 * path and fp64: Strassen at 1 and 2 levels, leading dimensions with and without vector access,
 * uneven row panels on the high-priority stream, the three precisions, and a size the grid does
 * not divide (packed path). */
static void test_direct(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    static const long sizes[][3] = {{256, 256, 256}, {384, 264, 200}, {200, 262, 198},
                                    {96, 400, 520}};
    for (int L = 1; L <= 2; L++)
        for (int prec = 0; prec < 3; prec++)
            for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
                long M = sizes[t][0], K = sizes[t][1], N = sizes[t][2];
                if (L == 2 && (K % 4 || N % 4)) continue;
                fastmm_opts o = fastmm_opts_default();
                o.levels = L;
                o.prec = (fastmm_prec)prec;
                o.direct = 1;
                o.panels = 1 + (int)t % 3; /* 1, 2, 3 (uneven), 1 */
                o.priority = (int)t % 2;
                fastmm_plan *p = fastmm_plan_new(s, &o);
                assert_non_null(p);
                assert_true(fastmm_plan_direct(p, M, K, N));
                int na, nb, nc;
                assert_int_equal(fastmm_plan_direct_terms(p, L, &na, &nb, &nc), 0);
                assert_int_equal(nc, L == 1 ? 2 : 4); /* products written into C blocks */
                compare(p, M, K, N, 200 + 10 * L + t,
                        tol_for(fastmm_plan_level_fact(p, L), K, o.prec));
                /* not divisible by the grid: the packed path, same plan */
                assert_false(fastmm_plan_direct(p, M + 1, K, N));
                compare(p, M + 1, K, N, 300 + 10 * L + t,
                        tol_for(fastmm_plan_level_fact(p, L), K, o.prec));
                fastmm_plan_free(p);
            }
    /* a workspace too small for all terms in one chunk: the packed path in chunks */
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.direct = 1;
    o.workspace = 3 * (3 * 128 * 128 * 4);
    fastmm_plan *p = fastmm_plan_new(s, &o);
    compare(p, 256, 256, 256, 400, tol_for(fastmm_plan_level_fact(p, 1), 256, FASTMM_FP32));
    fastmm_plan_free(p);
    /* the naive 2x2x2 algorithm: every operand in place, no A or B combination at all */
    tg_fact *nv = tg_fact_naive((tg_dims){2, 2, 2});
    o = fastmm_opts_default();
    o.levels = 1;
    o.direct = 1;
    o.panels = 2;
    p = fastmm_plan_new(nv, &o);
    compare(p, 256, 128, 320, 401, tol_for(nv, 128, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(nv);
    /* naive 2x1x2: every C block one product written in place, which its C combination (no
     * other input) must leave alone, on every kernel */
    nv = tg_fact_naive((tg_dims){2, 1, 2});
    for (int comb = 0; comb < 4; comb++) {
        o = fastmm_opts_default();
        o.levels = 1;
        o.direct = 1;
        o.comb = comb;
        p = fastmm_plan_new(nv, &o);
        compare(p, 128, 96, 256, 402 + comb, tol_for(nv, 96, FASTMM_FP32));
        fastmm_plan_free(p);
    }
    tg_fact_free(nv);
    /* Strassen with every term's u and w negated: the products written into C have coefficient
     * -1 (moved into their A operand); every combination kernel (staged, streaming, deep, bulk)
     * accumulates onto the blocks they were written into and overwrites the others, one and two
     * levels, one and three panels */
    tg_fact *sn = tg_test_strassen_negated();
    long nbulk = fastmm_cuda_nbulk;
    for (int L = 1; L <= 2; L++)
        for (int comb = 0; comb < 4; comb++) {
            o = fastmm_opts_default();
            o.levels = L;
            o.direct = 1;
            o.comb = comb;
            o.panels = 1 + 2 * (comb % 2);
            p = fastmm_plan_new(sn, &o);
            assert_true(fastmm_plan_direct(p, 256, 256, 512));
            compare(p, 256, 256, 512, 410 + 4 * L + comb,
                    tol_for(fastmm_plan_level_fact(p, L), 256, FASTMM_FP32));
            fastmm_plan_free(p);
        }
    assert_true(fastmm_cuda_nbulk > nbulk);
    tg_fact_free(sn);
    tg_fact_free(s);
}

/* Shapes for the combinations beside products: 1-3 panels, uneven ones, odd block sides */
static const long beside_sizes[][3] = {{512, 256, 256}, {384, 264, 200}, {256, 512, 1024}};

/* The combinations beside block products on few thread blocks (opts.comb_blocks: the streaming
 * kernel's row loop does the rest) against the CPU path and fp64: Strassen at 1 and 2 levels,
 * direct operands with the early start and packed operands, 1-3 row panels (uneven), limits from
 * one block (fewer than the column groups) to more than the launch needs, thread blocks of 32 to
 * 256 threads (opts.comb_threads), the three precisions. */
static void test_comb_blocks(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    static const int blocks[] = {1, 3, 7, 100000};
    /* opts.comb_threads (0 = 256): the combinations beside products in blocks of 32-256 threads */
    static const int threads[] = {0, 32, 64, 128};
    int n = 0;
    long nbulk = fastmm_cuda_nbulk, nthin = fastmm_cuda_nthin;
    for (int L = 1; L <= 2; L++)
        for (size_t t = 0; t < sizeof beside_sizes / sizeof beside_sizes[0]; t++)
            for (int d = 0; d < 2; d++) {
                long M = beside_sizes[t][0], K = beside_sizes[t][1], N = beside_sizes[t][2];
                fastmm_opts o = fastmm_opts_default();
                o.levels = L;
                o.comb = 1 + (n / 4) % 3; /* streaming, deep streaming, bulk */
                o.direct = d;
                o.panels = 1 + (int)(t + d) % 3;
                o.comb_blocks = blocks[n % 4];
                o.comb_threads = threads[(n + n / 4) % 4];
                o.prec = (fastmm_prec)(n % 3);
                n++;
                fastmm_plan *p = fastmm_plan_new(s, &o);
                assert_non_null(p);
                assert_int_equal(fastmm_plan_comb_blocks(p, M, K, N), o.comb_blocks);
                compare(p, M, K, N, 500 + 10 * L + 2 * t + d,
                        tol_for(fastmm_plan_level_fact(p, L), K, o.prec));
                fastmm_plan_free(p);
            }
    assert_true(fastmm_cuda_nbulk > nbulk); /* the bulk kernel ran, capped, where it applies */
    assert_true(fastmm_cuda_nthin > nthin); /* and thin streaming blocks beside products */
    tg_fact_free(s);
}

/* Green contexts (opts.green: the products on all SMs but N, the combinations beside them on
 * the other N) against the CPU path and fp64: Strassen at 1 and 2 levels, direct operands with
 * and without the early start, packed operands in one chunk and in several (a small workspace:
 * the streams join between chunks), 1-3 row panels (uneven), staged and streaming kernels,
 * capped or not, the three precisions; then a split that leaves nothing for the combinations
 * fails with a message, and tuning tries them (opts.green -1), reports "GN" and the chosen plan
 * still computes the product. */
static void test_green(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    static const int sms[] = {4, 20};
    int n = 0, want = 0;
    long ng = fastmm_cuda_ngreen;
    for (int L = 1; L <= 2; L++)
        for (size_t t = 0; t < sizeof beside_sizes / sizeof beside_sizes[0]; t++)
            for (int d = 0; d < 3; d++) {
                long M = beside_sizes[t][0], K = beside_sizes[t][1], N = beside_sizes[t][2];
                fastmm_opts o = fastmm_opts_default();
                o.levels = L;
                o.direct = d < 2 ? d : 1;
                o.panels = d == 2 ? 1 : 2 + (int)(t + d) % 2; /* d 2: one panel, early start */
                o.comb = n % 2;
                o.comb_blocks = n % 3 == 0 ? 7 : 0;
                o.green = sms[n % 2];
                o.prec = (fastmm_prec)(n % 3);
                /* packed operands, one chunk of 3 terms (so several): the streams' join */
                if (d == 0 && t == 0) o.workspace = 3 * (size_t)(3 * (M / 2) * (K / 2) * 4);
                n++;
                fastmm_plan *p = fastmm_plan_new(s, &o);
                assert_non_null(p);
                assert_int_equal(fastmm_plan_green(p, M, K, N), o.green);
                /* green contexts where combinations run beside products */
                if (o.panels > 1 || fastmm_plan_direct(p, M, K, N)) want++;
                compare(p, M, K, N, 700 + 10 * L + 3 * t + d,
                        tol_for(fastmm_plan_level_fact(p, L), K, o.prec));
                fastmm_plan_free(p);
            }
    assert_true(want >= n / 2);
    assert_true(fastmm_cuda_ngreen >= ng + want); /* each of those ran on green contexts */
    int nsm = 0, dev = 0;
    assert_int_equal(cudaGetDevice(&dev), cudaSuccess);
    assert_int_equal(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev), cudaSuccess);
    long m = 512;
    float *A = dev_copy(NULL, 4 * m * m), *B = dev_copy(NULL, 4 * m * m), *C = dev_copy(NULL, 4 * m * m);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, A, m * m, 11), 0);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, B, m * m, 12), 0);
    /* every SM for the combinations: nothing left for the products */
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.panels = 2;
    o.green = nsm;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    tg_err_clear();
    assert_int_equal(fastmm_gemm_cuda(ctx, p, m, m, m, A, m, B, m, C, m), -1);
    print_message("green %d of %d SMs: %s\n", nsm, nsm, tg_errmsg());
    assert_non_null(strstr(tg_errmsg(), "green contexts"));
    tg_err_clear();
    fastmm_plan_free(p);
    o.green = -2;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "green"));
    tg_err_clear();
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    /* tuned: green contexts tried on the fastest configuration (two panels, streaming) */
    o = fastmm_opts_default();
    o.levels = 1;
    o.panels = 2;
    o.comb = 1;
    o.green = -1;
    p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n2 = 1024;
    ng = fastmm_cuda_ngreen;
    char rep[4096];
    tune_square(p, n2, 13, rep, sizeof rep);
    if (nsm > 16) {
        /* the candidates ran on green contexts and were timed */
        char tag[16];
        snprintf(tag, sizeof tag, " G%d ", nsm - (nsm - 1) / 16 * 16);
        assert_true(report_count(rep, tag) >= 1);
        assert_true(fastmm_cuda_ngreen > ng);
    }
    compare(p, n2, n2, n2, 99, tol_for(fastmm_plan_level_fact(p, 1), n2, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(s);
}

/* The block products on other streams than cuBLAS's own: consecutive panels' products on two
 * streams (opts.overlap), or all of them on a high-priority stream with the combinations at
 * normal priority (opts.priority 2), against the CPU path and fp64: Strassen at 1 and 2 levels,
 * direct operands (the early start; with one panel too, priority 2) and packed operands in one
 * chunk and in several (a small workspace: the next chunk's combinations overwrite what this
 * chunk's products read), capped combinations, 1-4 row panels (uneven), the three priorities,
 * staged and streaming kernels, the three precisions; then tuning tries both (opts.overlap -1,
 * opts.priority -1), reports "X" and "p" candidates and the chosen plan still computes the
 * product. */
static void test_overlap(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    int n = 0, wantX = 0, wantP = 0;
    long nx = fastmm_cuda_noverlap, np = fastmm_cuda_nprodfirst;
    for (int L = 1; L <= 2; L++)
        for (size_t t = 0; t < sizeof beside_sizes / sizeof beside_sizes[0]; t++)
            for (int d = 0; d < 3; d++) {
                long M = beside_sizes[t][0], K = beside_sizes[t][1], N = beside_sizes[t][2];
                fastmm_opts o = fastmm_opts_default();
                o.levels = L;
                o.direct = d > 0;
                o.comb_blocks = d == 2 ? 7 : 0; /* capped combinations beside products */
                o.panels = 2 + (int)(t + d + L) % 3;
                o.priority = (n + L) % 3; /* the chunked case (t 0, d 0) with 1 and 2 */
                if (t == 2 && d == 1) { /* one panel: only the early start runs beside B */
                    o.panels = 1;
                    o.priority = 2;
                }
                if (o.priority == 2) wantP++;
                else wantX++;
                o.comb = n % 3;
                o.overlap = 1;
                o.prec = (fastmm_prec)(n % 3);
                /* packed operands, one chunk of 3 terms (so several) */
                if (d == 0 && t == 0) o.workspace = 3 * (size_t)(3 * (M / 2) * (K / 2) * 4);
                n++;
                fastmm_plan *p = fastmm_plan_new(s, &o);
                assert_non_null(p);
                assert_int_equal(fastmm_plan_overlap(p, M, K, N), 1);
                compare(p, M, K, N, 800 + 10 * L + 3 * t + d,
                        tol_for(fastmm_plan_level_fact(p, L), K, o.prec));
                fastmm_plan_free(p);
            }
    /* every run had panels or the early start: each ran its products on the other stream */
    assert_true(fastmm_cuda_noverlap >= nx + wantX);
    assert_true(fastmm_cuda_nprodfirst >= np + wantP);
    /* tuned: the products on two streams tried on the fastest pipelined configuration and at
     * its other priority (twice the panels would leave blocks under 256 rows at 1024), the
     * products first on the fastest pipelined one and the fastest of another panel count */
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.comb = 1;
    o.overlap = -1;
    o.tail = 0; /* its candidates copy a "p" one; test_tail tunes those */
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n2 = 1024;
    nx = fastmm_cuda_noverlap;
    np = fastmm_cuda_nprodfirst;
    char rep[4096];
    tune_square(p, n2, 15, rep, sizeof rep);
    assert_int_equal(report_count(rep, " X "), 2);
    assert_true(fastmm_cuda_noverlap > nx);
    int nP = report_count(rep, "p ");
    assert_true(nP >= 1 && nP <= 2);
    assert_true(fastmm_cuda_nprodfirst > np);
    compare(p, n2, n2, n2, 97, tol_for(fastmm_plan_level_fact(p, 1), n2, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(s);
}

/* Balanced waves (opts.tail): with the split forced (fastmm_cuda_tail_force: kept on every
 * GEMM shape it fits, whatever its time), Strassen at 1 and 2 levels with direct operands
 * (pointer-array batches: the tail's shifted pointers, moved down by rows of A and C that are
 * 16- but not 256-byte multiples; the early start; the products first on their own stream) and
 * packed ones (strided batches), 1-3 row panels, streaming and staged combinations, against the
 * CPU path and fp64; then tuning with opts.tail -1 (not forced) times "T" candidates and the
 * chosen plan still computes the product. */
static void test_tail(void **state)
{
    (void)state;
    if (!ctx) skip();
    static const long sz[][3] = {{1024, 1024, 1024}, {1288, 1032, 1160}, {2048, 768, 1024}};
    tg_fact *s = tg_fact_strassen();
    fastmm_cuda_tail_force(ctx, 1);
    compare_tune = 1;
    long n0 = fastmm_cuda_ntail;
    int n = 0;
    for (int L = 1; L <= 2; L++)
        for (size_t t = 0; t < sizeof sz / sizeof sz[0]; t++)
            for (int d = 0; d < 3; d++) {
                long M = sz[t][0], K = sz[t][1], N = sz[t][2];
                fastmm_opts o = fastmm_opts_default();
                o.levels = L;
                o.direct = d > 0;
                o.panels = 1 + (int)(t + d) % 3;
                o.priority = d == 2 ? 2 : 0;
                o.comb = n % 2;
                o.comb_blocks = 0;
                o.tail = 1;
                n++;
                fastmm_plan *p = fastmm_plan_new(s, &o);
                assert_non_null(p);
                assert_int_equal(fastmm_plan_tail(p, M, K, N), 1);
                long before = fastmm_cuda_ntail;
                compare(p, M, K, N, 900 + 10 * L + 3 * t + d,
                        tol_for(fastmm_plan_level_fact(p, L), K, FASTMM_FP32));
                /* one level, one panel: products of 512 rows and more, where a split fits */
                if (L == 1 && o.panels == 1) assert_true(fastmm_cuda_ntail > before);
                fastmm_plan_free(p);
            }
    assert_true(fastmm_cuda_ntail > n0);
    compare_tune = 0;
    fastmm_cuda_tail_force(ctx, 0);
    /* tuned, not forced: balanced waves tried on the fastest configuration and the fastest of
     * another panel count */
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.comb = 1;
    o.tail = -1;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n2 = 2048;
    char rep[4096];
    tune_square(p, n2, 17, rep, sizeof rep);
    int nT = report_count(rep, " T ");
    assert_true(nT >= 1 && nT <= 2);
    fastmm_cuda_search_report(ctx, stdout, "  ");
    compare(p, n2, n2, n2, 96, tol_for(fastmm_plan_level_fact(p, 1), n2, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(s);
}

/* Tuning with the combinations beside products (two panels, streaming kernel): the limits on
 * thread blocks are timed on the fastest configuration, reported ("bN"), and the chosen plan
 * still computes the product. */
static void test_tune_blocks(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.panels = 2;
    o.comb = 1;
    o.green = 0; /* its candidates would add "bN G4" entries; test_green tunes those */
    o.tail = 0;  /* likewise "bN T" (test_tail) */
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n = 1024;
    char rep[4096];
    tune_square(p, n, 5, rep, sizeof rep);
    /* the block stages' three (the products first are tried uncapped) */
    assert_int_equal(report_count(rep, " b"), 3);
    assert_true(fastmm_plan_comb_blocks(p, n, n, n) >= 0);
    compare(p, n, n, n, 98, tol_for(fastmm_plan_level_fact(p, 1), n, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(s);
}

/* The GPU-tailored rank-49 4x4x4 (../shared/data/runtime_gpu_4x4x4.npz), or NULL where the data
 * is not there (the test then covers the released rank-49 only). */
static tg_fact *read_rt_gpu49(void)
{
    char npz[512], dir[256], h5[300], cmd[1400];
    snprintf(npz, sizeof npz, "%s/data/runtime_gpu_4x4x4.npz", tg_test_shared());
    FILE *f = fopen(npz, "rb");
    if (!f) return NULL;
    fclose(f);
    const char *py = getenv("TG_PYTHON");
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(h5, sizeof h5, "%s/rt.h5", dir);
    snprintf(cmd, sizeof cmd, "%s %s/scripts/npz2h5.py %s %s >/dev/null",
             py ? py : "/usr/bin/python3", tg_test_src_dir(), npz, h5);
    assert_int_equal(system(cmd), 0);
    tg_fact *r = tg_factio_read_key(h5, "4,4,4");
    if (!r) fail_msg("%s", tg_errmsg());
    return r;
}

/* One product with the staged (p0) and the streaming (p1) combination kernels, given leading
 * dimensions, against the CPU path and fp64: both within tol of the CPU path and fp64, the two
 * GPU results equal up to the order-preserving differences their sums can have (the same terms
 * in the same order: none beyond zero signs; 1e-6 of max|R| allowed), padding columns of C
 * untouched by both. */
static void comb_pair(fastmm_plan *p0, fastmm_plan *p1, long M, long K, long N, long lda,
                      long ldb, long ldc, uint64_t seed, double tol)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 3);
    fastmm_prec prec = fastmm_plan_opts(p0)->prec;
    float *A = malloc(sizeof(float) * M * lda), *B = malloc(sizeof(float) * K * ldb);
    float *C[2] = {malloc(sizeof(float) * M * ldc), malloc(sizeof(float) * M * ldc)};
    float *Cc = malloc(sizeof(float) * M * ldc);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    double *R = malloc(sizeof(double) * M * N);
    assert_true(A && B && C[0] && C[1] && Cc && a && b && R);
    for (long i = 0; i < M * lda; i++) A[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    for (long i = 0; i < K * ldb; i++) B[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    if (prec == FASTMM_BF16) { /* bf16-valued inputs: the fp64 reference sees what the GPU sees */
        for (long i = 0; i < M * lda; i++) A[i] = (float)(int)(A[i] * 64) / 64;
        for (long i = 0; i < K * ldb; i++) B[i] = (float)(int)(B[i] * 64) / 64;
    }
    for (long i = 0; i < M; i++) memcpy(a + i * K, A + i * lda, sizeof(float) * K);
    for (long i = 0; i < K; i++) memcpy(b + i * N, B + i * ldb, sizeof(float) * N);
    float *dA = dev_copy(A, sizeof(float) * M * lda), *dB = dev_copy(B, sizeof(float) * K * ldb);
    void *xA = dA, *xB = dB, *hA = NULL, *hB = NULL;
    if (prec == FASTMM_BF16) {
        hA = dev_copy(NULL, 2 * M * lda);
        hB = dev_copy(NULL, 2 * K * ldb);
        assert_int_equal(fastmm_cuda_f32_to_bf16(ctx, dA, hA, M * lda), 0);
        assert_int_equal(fastmm_cuda_f32_to_bf16(ctx, dB, hB, K * ldb), 0);
        xA = hA;
        xB = hB;
    }
    for (int k = 0; k < 2; k++) {
        for (long i = 0; i < M * ldc; i++) C[k][i] = NAN;
        float *dC = dev_copy(C[k], sizeof(float) * M * ldc);
        if (fastmm_gemm_cuda(ctx, k ? p1 : p0, M, N, K, xA, lda, xB, ldb, dC, ldc) ||
            fastmm_cuda_sync(ctx))
            fail_msg("%s", tg_errmsg());
        assert_int_equal(cudaMemcpy(C[k], dC, sizeof(float) * M * ldc, cudaMemcpyDeviceToHost),
                         cudaSuccess);
        cudaFree(dC);
    }
    assert_int_equal(fastmm_sgemm_cpu(p0, M, N, K, A, lda, B, ldb, Cc, ldc), 0);
    assert_int_equal(fastmm_ref_dgemm(M, N, K, a, b, R), 0);
    double den = 0, d01 = 0, dc[2] = {0, 0};
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double x = fabs(R[i * N + j]);
            double e01 = fabs((double)C[0][i * ldc + j] - C[1][i * ldc + j]);
            if (x > den) den = x;
            if (!(e01 <= d01)) d01 = e01;
            for (int k = 0; k < 2; k++) {
                double e = fabs((double)C[k][i * ldc + j] - Cc[i * ldc + j]);
                if (!(e <= dc[k])) dc[k] = e;
            }
        }
    for (int k = 0; k < 2; k++)
        for (long i = 0; i < M; i++)
            for (long j = N; j < ldc; j++) assert_true(isnan(C[k][i * ldc + j]));
    double e0 = fastmm_max_rel_err(M, N, C[0], ldc, R), e1 = fastmm_max_rel_err(M, N, C[1], ldc, R);
    if (!(dc[0] / den <= tol) || !(dc[1] / den <= tol) || !(e0 <= tol) || !(e1 <= tol) ||
        !(d01 / den <= 1e-6))
        fail_msg("%ldx%ldx%ld ld %ld,%ld,%ld %s: staged-CPU %.3g, stream-CPU %.3g, staged %.3g, "
                 "stream %.3g, stream-staged %.3g (tolerance %.3g)",
                 M, K, N, lda, ldb, ldc, fastmm_prec_name(prec), dc[0] / den, dc[1] / den, e0, e1,
                 d01 / den, tol);
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(hA);
    cudaFree(hB);
    free(A);
    free(B);
    free(C[0]);
    free(C[1]);
    free(Cc);
    free(a);
    free(b);
    free(R);
}

/* The streaming combination kernel (opts.comb 1, and 2: its deep form, every other case) against
 * the staged one and the CPU path, on the
 * coefficient patterns of one-level Strassen (2x2 grids, 7 terms), two-level Strassen (4x4, 49)
 * and the rank-49 4x4x4 algorithms (released; GPU-tailored where the data is there): vector
 * access (sizes and leading dimensions multiples of 4), scalar access (odd leading dimensions,
 * sizes not multiples of 4), virtually padded blocks, random shapes; chunks of terms (C
 * accumulated; chunks smaller than the grid, so that A and B contract and C expands), direct
 * operands (untouched operands), uneven row panels on both streams, TF32 and bf16. */
static void test_comb_stream(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact_list rel = {0};
    tg_test_read_released(&rel);
    tg_fact *algs[4] = {tg_fact_strassen(), tg_fact_strassen(), NULL, read_rt_gpu49()};
    int levels[4] = {1, 2, 1, 1};
    for (int i = 0; i < rel.n; i++) {
        tg_dims d = tg_fact_dims(rel.facts[i]);
        if (d.n == 4 && d.m == 4 && d.p == 4) algs[2] = rel.facts[i];
    }
    assert_non_null(algs[2]);
    if (!algs[3]) print_message("runtime_gpu_4x4x4.npz not found: GPU-tailored rank 49 skipped\n");
    /* M, K, N, lda - K, ldb - N, ldc - N */
    static const long shapes[][6] = {
        {256, 256, 256, 0, 4, 8},   /* vectors everywhere */
        {256, 256, 256, 1, 3, 5},   /* odd leading dimensions: scalar */
        {264, 200, 328, 4, 0, 4},   /* vectors, 4x4 grids divide */
        {131, 256, 264, 0, 8, 0},   /* rows padded virtually, columns vectors */
        {130, 258, 126, 2, 2, 2},   /* sizes not multiples of 4 */
        {67, 45, 93, 3, 1, 0},      /* odd everything, tiny blocks */
    };
    tg_rng r;
    tg_rng_seed(&r, 4242, 0);
    int runs = 0;
    long nbulk = fastmm_cuda_nbulk;
    for (int ai = 0; ai < 4; ai++) {
        if (!algs[ai]) continue;
        const tg_fact *f = algs[ai];
        for (int t = 0; t < 9; t++) {
            long M, K, N, pa, pb, pc;
            if (t < 6) {
                M = shapes[t][0], K = shapes[t][1], N = shapes[t][2];
                pa = shapes[t][3], pb = shapes[t][4], pc = shapes[t][5];
            } else { /* random shapes and paddings */
                M = 8 + (long)(tg_rng_uniform(&r) * 300), K = 8 + (long)(tg_rng_uniform(&r) * 300);
                N = 8 + (long)(tg_rng_uniform(&r) * 300);
                pa = (long)(tg_rng_uniform(&r) * 6), pb = (long)(tg_rng_uniform(&r) * 6);
                pc = (long)(tg_rng_uniform(&r) * 6);
            }
            /* variants: plain, small workspace (chunks), direct + panels, tf32/bf16 */
            for (int v = 0; v < 4; v++) {
                fastmm_opts o = fastmm_opts_default();
                o.levels = levels[ai];
                o.panels = 1;
                o.direct = 0;
                if (v == 1) { /* room for 3 terms: chunks of 3 (fewer than the 4 or 16 blocks) */
                    tg_dims d = tg_fact_dims(f);
                    if (levels[ai] == 2) d = (tg_dims){2 * d.n, 2 * d.m, 2 * d.p};
                    fastmm_geom g = fastmm_geometry(d, M, K, N);
                    long bytes[3] = {g.bm * g.bk, g.bk * g.bn, g.bm * g.bn};
                    size_t per = 0;
                    for (int q = 0; q < 3; q++) per += (size_t)(4 * bytes[q] + 255) / 256 * 256;
                    o.workspace = 3 * per;
                }
                if (v == 2) {
                    o.direct = 1;
                    o.panels = 3;
                    o.priority = t % 2;
                }
                if (v == 3) o.prec = t % 2 ? FASTMM_BF16 : FASTMM_TF32;
                fastmm_opts o1 = o;
                o.comb = 0;
                o1.comb = 1 + (t + v) % 3; /* streaming, deep streaming, bulk */
                fastmm_plan *p0 = fastmm_plan_new(f, &o), *p1 = fastmm_plan_new(f, &o1);
                assert_non_null(p0);
                assert_non_null(p1);
                const tg_fact *lf = fastmm_plan_level_fact(p0, levels[ai]);
                assert_int_equal(fastmm_plan_comb(p0, M, K, N), 0);
                assert_int_equal(fastmm_plan_comb(p1, M, K, N), o1.comb);
                comb_pair(p0, p1, M, K, N, K + pa, N + pb, N + pc, 7000 + 100 * ai + 10 * t + v,
                          tol_for(lf, K, o.prec));
                fastmm_plan_free(p0);
                fastmm_plan_free(p1);
                runs++;
            }
        }
    }
    print_message("%d stream/staged pairs, %ld bulk launches\n", runs, fastmm_cuda_nbulk - nbulk);
    assert_true(fastmm_cuda_nbulk > nbulk); /* fp32 aligned whole blocks: the bulk kernel ran */
    tg_fact_free(algs[0]);
    tg_fact_free(algs[1]);
    tg_fact_free(algs[3]);
    tg_fact_list_free(&rel);
}

/* How many distinct grid configurations ("L1 P4h") the tune report lists with the streaming
 * combination kernel and nothing else ("L1 P4h S": the streaming stage of a base's pass; the
 * later stages' candidates, "L1 P1p D E S" or "L1 P1 S T", copy a configuration and add to it). */
static int streamed_bases(const char *rep)
{
    char seen[8][16];
    int n = 0;
    for (const char *c = rep; *c;) {
        const char *e = strstr(c, " | ");
        int len = e ? (int)(e - c) : (int)strlen(c), lv, pn, used = 0;
        char cand[256], h[2] = "";
        snprintf(cand, sizeof cand, "%.*s", len, c);
        double ms;
        if (sscanf(cand, "L%d P%d S %lf%n", &lv, &pn, &ms, &used) == 3 ||
            (sscanf(cand, "L%d P%dh S %lf%n", &lv, &pn, &ms, &used) == 3 && (h[0] = 'h'))) {
            char key[16];
            snprintf(key, sizeof key, "L%d P%d%s", lv, pn, h);
            int dup = 0;
            for (int i = 0; i < n; i++) dup |= !strcmp(seen[i], key);
            if (!dup && n < 8) strcpy(seen[n++], key);
        }
        c = e ? e + 3 : c + len;
    }
    return n;
}

/* Tuning picks a valid configuration and the tuned plan still computes the product. */
static void test_tune(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    o.min_block = 256;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n = 1024;
    float *A = dev_copy(NULL, 4 * n * n), *B = dev_copy(NULL, 4 * n * n), *C = dev_copy(NULL, 4 * n * n);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, A, n * n, 1), 0);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, B, n * n, 2), 0);
    if (fastmm_tune_cuda(ctx, p, n, n, n, A, n, B, n, C, n)) fail_msg("%s", tg_errmsg());
    int L = fastmm_plan_levels(p, n, n, n), P = fastmm_plan_panels(p, n, n, n);
    assert_true(L >= 0 && L <= 3); /* the rule says 2 (blocks of 256): plain, 1..3 were tried */
    assert_true(P == 1 || P == 2 || P == 4 || P == 8);
    /* every candidate was timed and is reported; direct operands were tried where they apply */
    char rep[4096];
    assert_int_equal(fastmm_plan_tune_report(p, n, n, n, rep, sizeof rep), 0);
    assert_non_null(strchr(rep, '*'));
    print_message("tuned: %s\n", rep);
    /* the fastest few were timed again, and the chosen one is among them */
    int nr = 0;
    for (const char *x = rep; (x = strstr(x, "(runoff ")); x++) nr++;
    assert_int_equal(nr, 3); /* FASTMM_RUNOFF */
    assert_non_null(strstr(rep, ")*"));
    if (L > 0) {
        /* direct operands with their early start (" D E ") and without it (a " D " more) */
        int nd = 0, nde = 0;
        for (const char *x = rep; (x = strstr(x, " D ")); x++) nd++;
        for (const char *x = rep; (x = strstr(x, " D E ")); x++) nde++;
        assert_true(nde >= 1);
        assert_true(nd > nde);
    }
    /* the streaming combination kernel and its deep form were tried (and checked) */
    if (L > 0) assert_non_null(strstr(rep, " S "));
    if (L > 0) assert_non_null(strstr(rep, " S2 "));
    /* ... on the grid's two fastest configurations with levels, not on the fastest alone */
    assert_int_equal(streamed_bases(rep), 2); /* FASTMM_TUNE_BASES */
    assert_true(fastmm_plan_comb(p, n, n, n) >= 0 && fastmm_plan_comb(p, n, n, n) <= 2);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    compare(p, n, n, n, 99, tol_for(L ? fastmm_plan_level_fact(p, L) : NULL, n, FASTMM_FP32));
    fastmm_plan_free(p);
    tg_fact_free(s);
}

/* The GEMM with a measured kernel choice stays true fp32 (an error TF32 could not reach) and
 * agrees with cuBLAS's default; phase timing reports every phase and the exact traffic. */
static void test_best_gemm_and_phases(void **state)
{
    (void)state;
    if (!ctx) skip();
    long M = 520, K = 384, N = 456;
    float *A = dev_copy(NULL, 4 * M * K), *B = dev_copy(NULL, 4 * K * N);
    float *C = dev_copy(NULL, 4 * M * N), *C2 = dev_copy(NULL, 4 * M * N);
    double *R = dev_copy(NULL, 8 * M * N), e1, e2;
    assert_int_equal(fastmm_cuda_fill_normal(ctx, A, M * K, 3), 0);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, B, K * N, 4), 0);
    assert_int_equal(fastmm_cuda_ref_dgemm(ctx, M, N, K, A, B, R), 0);
    assert_int_equal(fastmm_gemm_cuda_plain(ctx, FASTMM_FP32, M, N, K, A, K, B, N, C, N), 0);
    for (int r = 0; r < 2; r++) /* first call searches, second uses the choice */
        if (fastmm_gemm_cuda_best(ctx, FASTMM_FP32, 4, M, N, K, A, K, B, N, C2, N))
            fail_msg("%s", tg_errmsg());
    assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C, N, R, &e1), 0);
    assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C2, N, R, &e2), 0);
    assert_true(e1 < 2e-5);
    assert_true(e2 < 2e-5);
    fastmm_cuda_search_report(ctx, stderr, "# ");

    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.direct = 0; /* packed operands whatever tuning times: the phases' bytes below are theirs */
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    /* tuning searches the products' kernel, then the plan computes the same product */
    if (fastmm_tune_cuda(ctx, p, M, N, K, A, K, B, N, C2, N)) fail_msg("%s", tg_errmsg());
    assert_int_equal(fastmm_gemm_cuda(ctx, p, M, N, K, A, K, B, N, C2, N), 0);
    assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C2, N, R, &e2), 0);
    assert_true(e2 < 4e-5);
    double ms[4], by[4];
    if (fastmm_cuda_phases(ctx, p, M, N, K, A, K, B, N, C2, N, ms, by))
        fail_msg("%s", tg_errmsg());
    for (int i = 0; i < 4; i++) assert_true(ms[i] >= 0 && ms[i] < 1e3);
    assert_true(ms[0] + ms[1] + ms[2] + ms[3] > 0);
    long bm = M / 2, bk = K / 2, bn = N / 2;
    assert_true(by[0] == 4.0 * (M * K + 7 * bm * bk));
    assert_true(by[1] == 4.0 * (K * N + 7 * bk * bn));
    assert_true(by[2] == 2.0 * 7 * bm * bk * bn);
    assert_true(by[3] == 4.0 * (7 * bm * bn + M * N));
    /* the phases' result is the product too */
    assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C2, N, R, &e2), 0);
    assert_true(e2 < 4e-5);
    /* any combination kernel on request: the same traffic, the product again */
    for (int k = 0; k < 4; k++) {
        double ms2[4], by2[4];
        assert_int_equal(cudaMemset(C2, 0xff, 4 * M * N), cudaSuccess);
        if (fastmm_cuda_phases_comb(ctx, p, k, M, N, K, A, K, B, N, C2, N, ms2, by2))
            fail_msg("%s", tg_errmsg());
        for (int i = 0; i < 4; i++) assert_true(ms2[i] >= 0 && ms2[i] < 1e3 && by2[i] == by[i]);
        assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C2, N, R, &e2), 0);
        assert_true(e2 < 4e-5);
    }
    /* a forced cap runs every phase's streaming combination on that many blocks (1 and 3:
     * each block's row loop does many rows); the product again */
    for (int cap = 1; cap <= 3; cap += 2) {
        fastmm_opts oc = o;
        oc.comb_blocks = cap;
        fastmm_plan *pc = fastmm_plan_new(s, &oc);
        assert_non_null(pc);
        for (int k = 1; k < 4; k++) {
            double ms2[4], by2[4];
            assert_int_equal(cudaMemset(C2, 0xff, 4 * M * N), cudaSuccess);
            if (fastmm_cuda_phases_comb(ctx, pc, k, M, N, K, A, K, B, N, C2, N, ms2, by2))
                fail_msg("%s", tg_errmsg());
            for (int i = 0; i < 4; i++) assert_true(ms2[i] >= 0);
            assert_true(by2[0] == 4.0 * (M * K + 7 * bm * bk)); /* untuned: packed operands */
            assert_true(by2[3] == 4.0 * (7 * bm * bn + M * N));
            assert_int_equal(fastmm_cuda_max_rel_err(ctx, M, N, C2, N, R, &e2), 0);
            assert_true(e2 < 4e-5);
        }
        fastmm_plan_free(pc);
    }
    /* plain GEMM has no phases */
    fastmm_opts o0 = fastmm_opts_default();
    o0.levels = 0;
    fastmm_plan *p0 = fastmm_plan_new(s, &o0);
    assert_int_not_equal(fastmm_cuda_phases(ctx, p0, M, N, K, A, K, B, N, C2, N, ms, by), 0);
    fastmm_plan_free(p0);
    fastmm_plan_free(p);
    tg_fact_free(s);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cudaFree(C2);
    cudaFree(R);
}

/* Enumerated cuBLASLt configurations (fastmm_cuda_gemm_configs): the searches time them, and
 * what they keep (a plain GEMM; a plan's strided and pointer-array batches) stays exact fp32. */
static void test_gemm_configs(void **state)
{
    (void)state;
    if (!ctx) skip();
    fastmm_cuda *c = fastmm_cuda_new(); /* an empty kernel cache: every shape searched here */
    assert_non_null(c);
    fastmm_cuda_gemm_configs(c, 1000);
    fastmm_cuda_gemm_configs_budget(c, 1e9); /* all of them, whatever they cost */
    long M = 512, K = 384, N = 256;
    float *A = dev_copy(NULL, 4 * M * K), *B = dev_copy(NULL, 4 * K * N);
    float *C = dev_copy(NULL, 4 * M * N);
    double *R = dev_copy(NULL, 8 * M * N), e;
    assert_int_equal(fastmm_cuda_fill_normal(c, A, M * K, 5), 0);
    assert_int_equal(fastmm_cuda_fill_normal(c, B, K * N, 6), 0);
    assert_int_equal(fastmm_cuda_ref_dgemm(c, M, N, K, A, B, R), 0);
    for (int r = 0; r < 2; r++) /* the first call searches, the second runs the choice */
        if (fastmm_gemm_cuda_best(c, FASTMM_FP32, 4, M, N, K, A, K, B, N, C, N))
            fail_msg("%s", tg_errmsg());
    assert_int_equal(fastmm_cuda_max_rel_err(c, M, N, C, N, R, &e), 0);
    assert_true(e < 2e-5);
    tg_fact *s = tg_fact_strassen();
    for (int direct = 0; direct < 2; direct++) { /* strided batch, then pointer array */
        fastmm_opts o = fastmm_opts_default();
        o.levels = 1;
        o.direct = direct;
        o.panels = 1;
        fastmm_plan *p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        assert_int_equal(cudaMemset(C, 0xff, 4 * M * N), cudaSuccess);
        if (fastmm_tune_cuda(c, p, M, N, K, A, K, B, N, C, N) ||
            fastmm_gemm_cuda(c, p, M, N, K, A, K, B, N, C, N) || fastmm_cuda_sync(c))
            fail_msg("%s", tg_errmsg());
        assert_int_equal(fastmm_cuda_max_rel_err(c, M, N, C, N, R, &e), 0);
        if (!(e < 4e-5)) fail_msg("direct %d: error %.3g", direct, e);
        fastmm_plan_free(p);
    }
    /* every search enumerated configurations (and says how many) */
    char *rep = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&rep, &len);
    assert_non_null(f);
    fastmm_cuda_search_report(c, f, "# ");
    fclose(f);
    fputs(rep, stderr);
    assert_non_null(strstr(rep, " x7: "));
    assert_non_null(strstr(rep, " ptr: "));
    int lines = 0, enumerated = 0;
    for (char *l = rep; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        lines++;
        char *nl = strchr(l, '\n');
        char *hit = strstr(l, "enumerated configurations timed");
        if (hit && (!nl || hit < nl)) enumerated++;
    }
    assert_true(lines >= 3);
    assert_int_equal(enumerated, lines);
    assert_null(strstr(rep, "screened"));
    free(rep);
    /* without budget a new shape screens them on 256 rows and runs only the 3 fastest there on
     * the whole shape; what it keeps is still exact */
    fastmm_cuda_gemm_configs_budget(c, 0);
    long M2 = 1024;
    float *A2 = dev_copy(NULL, 4 * M2 * K), *C2 = dev_copy(NULL, 4 * M2 * N);
    double *R2 = dev_copy(NULL, 8 * M2 * N);
    assert_int_equal(fastmm_cuda_fill_normal(c, A2, M2 * K, 7), 0);
    assert_int_equal(fastmm_cuda_ref_dgemm(c, M2, N, K, A2, B, R2), 0);
    if (fastmm_gemm_cuda_best(c, FASTMM_FP32, 4, M2, N, K, A2, K, B, N, C2, N))
        fail_msg("%s", tg_errmsg());
    f = open_memstream(&rep, &len);
    assert_non_null(f);
    fastmm_cuda_search_report(c, f, "# ");
    fclose(f);
    fputs(rep, stderr);
    /* the screened shape's line: "...(32F_PEDANTIC; algo ...); N enumerated configurations
     * timed of M accepted (screened on 256 rows)"; the kernel's description has a "; " too */
    char *scr = strstr(rep, "(screened on 256 rows)");
    assert_non_null(scr);
    int accepted = -1, timed = report_timed(rep, scr, &accepted);
    assert_true(timed >= 1 && timed <= 3 && timed <= accepted);
    free(rep);
    assert_int_equal(fastmm_cuda_max_rel_err(c, M2, N, C2, N, R2, &e), 0);
    assert_true(e < 2e-5);
    cudaFree(A2);
    cudaFree(C2);
    cudaFree(R2);
    tg_fact_free(s);
    fastmm_cuda_free(c);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cudaFree(R);
}

static void test_released(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact_list l = {0};
    tg_test_read_released(&l);
    int tested = 0;
    for (int i = 0; i < l.n; i++) {
        tg_dims d = tg_fact_dims(l.facts[i]);
        if (d.n > 5 || d.m > 5 || d.p > 5) continue;
        fastmm_opts o = fastmm_opts_default();
        o.levels = 1;
        fastmm_plan *p = fastmm_plan_new(l.facts[i], &o);
        assert_non_null(p);
        long M = 37L * d.n + 5, K = 23L * d.m + 1, N = 41L * d.p + 3;
        compare(p, M, K, N, 500 + i, tol_for(l.facts[i], K, FASTMM_FP32));
        fastmm_plan_free(p);
        /* direct operands, two panels (every released algorithm up to 5x5x5 has some) */
        o.direct = 1;
        o.panels = 2;
        p = fastmm_plan_new(l.facts[i], &o);
        M = 36L * d.n, K = 24L * d.m, N = 40L * d.p;
        assert_true(fastmm_plan_direct(p, M, K, N));
        compare(p, M, K, N, 600 + i, tol_for(l.facts[i], K, FASTMM_FP32));
        fastmm_plan_free(p);
        tested++;
    }
    assert_int_equal(tested, 20);
    tg_fact_list_free(&l);
}

/* The fused products (opts.fused: fastmm's own SIMT GEMM summing the operand terms as it loads
 * them and adding into C in its epilogue) against the CPU path and fp64: Strassen at one and two
 * levels, the released algorithms up to 5x5x5 where they fit (at most 4 terms per operand),
 * shapes it does not take (the usual path, no fused launch), and its plain GEMM alone
 * (fastmm_gemm_cuda_own) with its size errors. */
/* opts.fused -1: tuning times every fused variant on the fastest configuration's levels beside
 * the usual candidates, reports them (FV), keeps one only if faster, and the product is right
 * whichever won. */
static void test_tune_fused(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.fused = -1;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    long n = 1024;
    assert_int_equal(fastmm_plan_fused(p, n, n, n), 0); /* untuned: not fused */
    float *A = dev_copy(NULL, 4 * n * n), *B = dev_copy(NULL, 4 * n * n), *C = dev_copy(NULL, 4 * n * n);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, A, n * n, 3), 0);
    assert_int_equal(fastmm_cuda_fill_normal(ctx, B, n * n, 4), 0);
    long before = fastmm_cuda_nfused;
    if (fastmm_tune_cuda(ctx, p, n, n, n, A, n, B, n, C, n)) fail_msg("%s", tg_errmsg());
    char rep[4096];
    assert_int_equal(fastmm_plan_tune_report(p, n, n, n, rep, sizeof rep), 0);
    print_message("tuned with fused products: %s\n", rep);
    for (int v = 1; v <= FASTMM_FUSED_VARIANTS; v++) {
        char f[16];
        snprintf(f, sizeof f, " F%d ", v);
        assert_non_null(strstr(rep, f)); /* blocks of 512: every variant fits */
    }
    assert_true(fastmm_cuda_nfused - before >= 4 * 3 * 7); /* warm-up and two timed runs each */
    int v = fastmm_plan_fused(p, n, n, n);
    assert_true(v >= 0 && v <= FASTMM_FUSED_VARIANTS);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    before = fastmm_cuda_nfused;
    compare(p, n, n, n, 98, tol_for(fastmm_plan_level_fact(p, 1), n, FASTMM_FP32));
    assert_int_equal(fastmm_cuda_nfused - before, v ? 7 : 0);
    fastmm_plan_free(p);
    tg_fact_free(s);
}

static void test_fused(void **state)
{
    (void)state;
    if (!ctx) skip();
    tg_fact *s = tg_fact_strassen();
    /* M, K, N, levels: whole tiles of every variant (256-row and -column blocks) and of the
     * 128 x 128 ones only */
    static const long sizes[][4] = {{512, 64, 512, 1}, {512, 1040, 512, 1}, {256, 64, 256, 1},
                                    {1024, 512, 1024, 2}, {512, 96, 1024, 2}};
    for (int v = 1; v <= FASTMM_FUSED_VARIANTS; v++)
        for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
            long M = sizes[t][0], K = sizes[t][1], N = sizes[t][2];
            int L = (int)sizes[t][3], tm, tn, tk;
            assert_int_equal(fastmm_fused_tile(v, &tm, &tn, &tk), 0);
            fastmm_opts o = fastmm_opts_default();
            o.levels = L;
            o.fused = v;
            fastmm_plan *p = fastmm_plan_new(s, &o);
            assert_non_null(p);
            long bm = M >> L, bk = K >> L, bn = N >> L;
            int fits = bm % tm == 0 && bn % tn == 0 && bk % tk == 0;
            assert_int_equal(fastmm_plan_fused(p, M, K, N), fits ? v : 0);
            long before = fastmm_cuda_nfused;
            double tol = tol_for(fastmm_plan_level_fact(p, L), K, FASTMM_FP32);
            compare(p, M, K, N, 700 + 10 * v + t, tol);
            assert_int_equal(fastmm_cuda_nfused - before, fits ? (L == 1 ? 7 : 49) : 0);
            /* shapes no variant takes: the usual path, same plan */
            before = fastmm_cuda_nfused;
            compare(p, M + 2, K, N, 750 + 10 * v + t, tol);
            compare(p, M, K + 4, N, 790 + 10 * v + t, tol);
            assert_int_equal(fastmm_cuda_nfused, before);
            fastmm_plan_free(p);
        }
    tg_fact_list l = {0};
    tg_test_read_released(&l);
    int fused = 0;
    for (int i = 0; i < l.n; i++) {
        tg_dims d = tg_fact_dims(l.facts[i]);
        if (d.n > 5 || d.m > 5 || d.p > 5) continue;
        fastmm_opts o = fastmm_opts_default();
        o.levels = 1;
        o.fused = 1 + i % FASTMM_FUSED_VARIANTS;
        fastmm_plan *p = fastmm_plan_new(l.facts[i], &o);
        assert_non_null(p);
        long M = 256L * d.n, K = 16L * d.m, N = 256L * d.p, before = fastmm_cuda_nfused;
        int f = fastmm_plan_fused(p, M, K, N);
        compare(p, M, K, N, 800 + i, tol_for(l.facts[i], K, FASTMM_FP32));
        assert_int_equal(fastmm_cuda_nfused - before, f ? tg_fact_rank(l.facts[i]) : 0);
        fused += f;
        fastmm_plan_free(p);
    }
    assert_true(fused >= 1);
    printf("fused: %d released algorithms up to 5x5x5 fit the fused kernel\n", fused);
    tg_fact_list_free(&l);
    /* the kernel as a plain GEMM against fp64, every variant */
    long M = 256, N = 512, K = 208;
    tg_rng r;
    tg_rng_seed(&r, 900, 2);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C = malloc(sizeof(float) * M * N);
    double *R = malloc(sizeof(double) * M * N);
    assert_true(A && B && C && R);
    for (long i = 0; i < M * K; i++) A[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    for (long i = 0; i < K * N; i++) B[i] = (float)(2 * tg_rng_uniform(&r) - 1);
    float *dA = dev_copy(A, sizeof(float) * M * K), *dB = dev_copy(B, sizeof(float) * K * N);
    float *dC = dev_copy(NULL, sizeof(float) * M * N);
    assert_int_equal(fastmm_ref_dgemm(M, N, K, A, B, R), 0);
    for (int v = 1; v <= FASTMM_FUSED_VARIANTS; v++) {
        assert_int_equal(cudaMemset(dC, 0xff, sizeof(float) * M * N), cudaSuccess);
        if (fastmm_gemm_cuda_own(ctx, v, M, N, K, dA, K, dB, N, dC, N) || fastmm_cuda_sync(ctx))
            fail_msg("%s", tg_errmsg());
        assert_int_equal(cudaMemcpy(C, dC, sizeof(float) * M * N, cudaMemcpyDeviceToHost),
                         cudaSuccess);
        double e = fastmm_max_rel_err(M, N, C, N, R);
        if (!(e <= 2 * EPS32 * K)) fail_msg("own SGEMM variant %d: error %.3g", v, e);
    }
    assert_int_equal(fastmm_gemm_cuda_own(ctx, 1, 200, N, K, dA, K, dB, N, dC, N), -1);
    assert_non_null(strstr(tg_errmsg(), "a multiple of 128"));
    tg_err_clear();
    assert_int_equal(fastmm_gemm_cuda_own(ctx, 2, M, N, 200, dA, 200, dB, N, dC, N), -1);
    tg_err_clear();
    assert_int_equal(fastmm_gemm_cuda_own(ctx, 5, M, N, K, dA, K, dB, N, dC, N), -1);
    assert_non_null(strstr(tg_errmsg(), "variant 5"));
    tg_err_clear();
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dC);
    free(A);
    free(B);
    free(C);
    free(R);
    tg_fact_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strassen),
        cmocka_unit_test(test_chunks_and_precisions),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_comb_blocks),
        cmocka_unit_test(test_green),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_tail),
        cmocka_unit_test(test_comb_stream),
        cmocka_unit_test(test_tune),
        cmocka_unit_test(test_tune_blocks),
        cmocka_unit_test(test_best_gemm_and_phases),
        cmocka_unit_test(test_gemm_configs),
        cmocka_unit_test(test_released),
        cmocka_unit_test(test_fused),
        cmocka_unit_test(test_tune_fused),
    };
    return tg_test_done(cmocka_run_group_tests(tests, setup, teardown));
}
#else
static void test_no_cuda(void **state)
{
    (void)state;
    skip(); /* built without nvcc: the CUDA path does not exist */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_cuda)};
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
#endif
