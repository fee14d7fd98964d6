/* fastmm CPU path: Kronecker composition, level choice, and every released factorization up to
 * 5x5x5 multiplying random matrices (even and odd sizes) against an fp64 reference. */
#include "tests/released.h"

#include <math.h>

#include "common/err.h"
#include "common/fact.h"
#include "common/factio.h"
#include "common/rng.h"
#include "fastmm/fastmm.h"
#include "fastmm/fastmm_int.h"

#define EPS32 1.1920929e-7

static float *rand_mat(tg_rng *r, long n)
{
    float *x = malloc(sizeof(float) * n);
    assert_non_null(x);
    for (long i = 0; i < n; i++)
        x[i] = (float)(2 * tg_rng_uniform(r) - 1);
    return x;
}

/* Tolerance for the max-norm relative error: rounding grows with the inner dimension and with
 * the algorithm's amplification; a wrong coefficient or block gives errors of order 1. */
static double tolerance(const tg_fact *f, long K)
{
    double g = f ? fastmm_growth(f) : 1.0;
    return 2 * EPS32 * g * (double)K;
}

/* C = A B with the plan (lda/ldb/ldc wider than the matrices to test leading dimensions);
 * returns the max-norm relative error against fp64, checks every entry was written. */
static double run_cpu(fastmm_plan *p, long M, long K, long N, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 1);
    long lda = K + 3, ldb = N + 1, ldc = N + 2;
    float *A = rand_mat(&r, M * lda), *B = rand_mat(&r, K * ldb);
    float *C = malloc(sizeof(float) * M * ldc);
    float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
    double *R = malloc(sizeof(double) * M * N);
    assert_true(C && a && b && R);
    for (long i = 0; i < M * ldc; i++) C[i] = NAN; /* poison: unwritten entries fail */
    for (long i = 0; i < M; i++) memcpy(a + i * K, A + i * lda, sizeof(float) * K);
    for (long i = 0; i < K; i++) memcpy(b + i * N, B + i * ldb, sizeof(float) * N);
    assert_int_equal(fastmm_sgemm_cpu(p, M, N, K, A, lda, B, ldb, C, ldc), 0);
    assert_int_equal(fastmm_ref_dgemm(M, N, K, a, b, R), 0);
    double e = fastmm_max_rel_err(M, N, C, ldc, R);
    /* the padding columns of C must be untouched */
    for (long i = 0; i < M; i++)
        for (long j = N; j < ldc; j++) assert_true(isnan(C[i * ldc + j]));
    free(A);
    free(B);
    free(C);
    free(a);
    free(b);
    free(R);
    return e;
}

static void test_kron(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    tg_fact *s2 = fastmm_kron(s, s);
    assert_non_null(s2);
    tg_dims d = tg_fact_dims(s2);
    assert_true(d.n == 4 && d.m == 4 && d.p == 4);
    assert_int_equal(tg_fact_rank(s2), 49);
    assert_int_equal(tg_fact_verify(s2, 0, NULL), 1);
    /* rectangular and asymmetric: naive 1x2x3 outside Strassen, and the other way round */
    tg_fact *nv = tg_fact_naive((tg_dims){1, 2, 3});
    tg_fact *a = fastmm_kron(nv, s), *b = fastmm_kron(s, nv);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(tg_fact_verify(a, 0, NULL), 1);
    assert_int_equal(tg_fact_verify(b, 0, NULL), 1);
    d = tg_fact_dims(a);
    assert_true(d.n == 2 && d.m == 4 && d.p == 6);
    assert_int_equal(tg_fact_rank(a), 42);
    /* growth: Strassen's is 6 (c11 = m1 + m4 - m5 + m7: 4 + 2 + 2 + 4 over m = 2) */
    assert_true(fabs(fastmm_growth(s) - 6.0) < 1e-12);
    assert_true(fabs(fastmm_growth(nv) - 1.0) < 1e-12);
    /* a broken factorization is refused by the plan */
    tg_fact *bad = tg_fact_clone(s);
    tg_fact_u(bad)[0] = 2;
    assert_null(fastmm_plan_new(bad, NULL));
    assert_non_null(strstr(tg_errmsg(), "not exact"));
    tg_fact_free(bad);
    tg_fact_free(a);
    tg_fact_free(b);
    tg_fact_free(nv);
    tg_fact_free(s2);
    tg_fact_free(s);
}

static void test_levels_auto(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    o.min_block = 1024;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    assert_int_equal(fastmm_plan_levels(p, 1000, 1000, 1000), 0);
    assert_int_equal(fastmm_plan_levels(p, 2048, 2048, 2048), 1);
    assert_int_equal(fastmm_plan_levels(p, 4096, 4096, 4096), 2);
    assert_int_equal(fastmm_plan_levels(p, 8192, 8192, 4096), 2);
    assert_int_equal(fastmm_plan_levels(p, 1 << 15, 1 << 15, 1 << 15), 3);
    const tg_fact *f3 = fastmm_plan_level_fact(p, 3);
    assert_non_null(f3);
    assert_int_equal(tg_fact_rank(f3), 343);
    /* exact flop count: 7/8 of GEMM per level */
    assert_true(fabs(fastmm_flops(p, 4096, 4096, 4096) / (2.0 * 4096 * 4096 * 4096) -
                     49.0 / 64) < 1e-12);
    fastmm_plan_free(p);
    o.levels = 9;
    assert_null(fastmm_plan_new(s, &o));
    tg_fact_free(s);
    /* virtual padding geometry */
    fastmm_geom g = fastmm_geometry((tg_dims){2, 3, 4}, 1001, 999, 100);
    assert_true(g.bm * 2 >= 1001 && g.bm % 8 == 0);
    assert_true(g.bk == 333);
    assert_true(g.bn == 25);
}

static void test_strassen_sizes(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    static const long sizes[][3] = {{64, 64, 64}, {7, 9, 5}, {33, 17, 65}, {1, 1, 1},
                                    {130, 66, 98}, {3, 200, 2}, {129, 131, 127}};
    for (int L = 0; L <= 3; L++) {
        fastmm_opts o = fastmm_opts_default();
        o.levels = L;
        fastmm_plan *p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
            long M = sizes[t][0], K = sizes[t][1], N = sizes[t][2];
            double e = run_cpu(p, M, K, N, 100 + t);
            double tol = tolerance(L ? fastmm_plan_level_fact(p, L) : NULL, K);
            if (!(e <= tol))
                fail_msg("Strassen %d levels %ldx%ldx%ld: error %.3g over %.3g", L, M, K, N, e,
                         tol);
        }
        fastmm_plan_free(p);
    }
    tg_fact_free(s);
}

/* Every released factorization with n, m, p <= 5, converted by scripts/npz2h5.py. */
static void test_released(void **state)
{
    (void)state;
    tg_fact_list l = {0};
    tg_test_read_released(&l);
    int tested = 0;
    double worst = 0;
    for (int i = 0; i < l.n; i++) {
        tg_dims d = tg_fact_dims(l.facts[i]);
        if (d.n > 5 || d.m > 5 || d.p > 5) continue;
        fastmm_opts o = fastmm_opts_default();
        o.levels = 1;
        fastmm_plan *p = fastmm_plan_new(l.facts[i], &o);
        if (!p) fail_msg("%s: %s", l.keys[i], tg_errmsg());
        /* one size divisible by the grid, one not (peeled by virtual padding) */
        long sz[2][3] = {{6L * d.n, 5L * d.m, 4L * d.p}, {7L * d.n + 3, 3L * d.m + 1, 5L * d.p + 2}};
        for (int t = 0; t < 2; t++) {
            double e = run_cpu(p, sz[t][0], sz[t][1], sz[t][2], 7 + i * 2 + t);
            double tol = tolerance(l.facts[i], sz[t][1]);
            if (!(e <= tol))
                fail_msg("%s (rank %d) %ldx%ldx%ld: error %.3g over %.3g", l.keys[i],
                         tg_fact_rank(l.facts[i]), sz[t][0], sz[t][1], sz[t][2], e, tol);
            if (e / tol > worst) worst = e / tol;
        }
        fastmm_plan_free(p);
        tested++;
    }
    print_message("%d released factorizations up to 5x5x5 multiply correctly (worst error at "
                  "%.2f of its tolerance)\n", tested, worst);
    assert_true(tested >= 20);
    tg_fact_list_free(&l);
}

/* The same product with direct operands (blocks read in place, factors +-2^k moved into the C
 * coefficients) and without: returns max |C_direct - C_packed| / max |C_packed|. */
static double direct_vs_packed(const tg_fact *f, int levels, long M, long K, long N, uint64_t seed)
{
    fastmm_opts o = fastmm_opts_default();
    o.levels = levels;
    o.direct = 0;
    fastmm_plan *p0 = fastmm_plan_new(f, &o);
    o.direct = 1;
    fastmm_plan *p1 = fastmm_plan_new(f, &o);
    assert_true(p0 && p1);
    tg_rng r;
    tg_rng_seed(&r, seed, 3);
    long lda = K + 3, ldb = N + 1, ldc = N + 2;
    float *A = rand_mat(&r, M * lda), *B = rand_mat(&r, K * ldb);
    float *C0 = malloc(sizeof(float) * M * ldc), *C1 = malloc(sizeof(float) * M * ldc);
    assert_true(C0 && C1);
    for (long i = 0; i < M * ldc; i++) C0[i] = C1[i] = NAN;
    assert_int_equal(fastmm_sgemm_cpu(p0, M, N, K, A, lda, B, ldb, C0, ldc), 0);
    assert_int_equal(fastmm_sgemm_cpu(p1, M, N, K, A, lda, B, ldb, C1, ldc), 0);
    double num = 0, den = 0;
    for (long i = 0; i < M; i++) {
        for (long j = 0; j < N; j++) {
            double d = fabs((double)C1[i * ldc + j] - C0[i * ldc + j]);
            if (!(d <= num)) num = d; /* NaN propagates */
            if (fabs(C0[i * ldc + j]) > den) den = fabs(C0[i * ldc + j]);
        }
        for (long j = N; j < ldc; j++) assert_true(isnan(C1[i * ldc + j]));
    }
    free(A);
    free(B);
    free(C0);
    free(C1);
    fastmm_plan_free(p0);
    fastmm_plan_free(p1);
    return num / den;
}

/* Direct operands: which terms qualify, and the products agree with the packed path (exactly
 * up to the GEMM's own summation order: scaling by +-2^k commutes with rounding). */
static void test_direct(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    fastmm_plan *p = fastmm_plan_new(s, NULL);
    assert_non_null(p);
    int na, nb, nc;
    assert_int_equal(fastmm_plan_direct_terms(p, 1, &na, &nb, &nc), 0);
    assert_true(na == 2 && nb == 2); /* m3 = A11 (..), m4 = A22 (..); m2 = (..) B11, m5 = (..) B22 */
    assert_int_equal(nc, 2);         /* m6 reaches C22 only, m7 C11 only */
    assert_int_equal(fastmm_plan_direct_terms(p, 2, &na, &nb, &nc), 0);
    assert_true(na == 4 && nb == 4);
    assert_int_equal(nc, 4); /* their Kronecker products */
    /* the default (-1) is off where not tuned, so the CPU path keeps the packed one */
    assert_int_equal(fastmm_plan_direct(p, 64, 64, 64), 0);
    fastmm_plan_free(p);
    fastmm_opts o = fastmm_opts_default();
    o.levels = 1;
    o.direct = 1;
    p = fastmm_plan_new(s, &o);
    assert_int_equal(fastmm_plan_direct(p, 64, 64, 64), 1);
    assert_int_equal(fastmm_plan_direct(p, 65, 64, 64), 0); /* padded grid: packed */
    fastmm_plan_free(p);
    /* the naive algorithm: every operand is direct */
    tg_fact *nv = tg_fact_naive((tg_dims){2, 3, 2});
    p = fastmm_plan_new(nv, NULL);
    assert_int_equal(fastmm_plan_direct_terms(p, 1, &na, &nb, &nc), 0);
    assert_true(na == 12 && nb == 12);
    assert_int_equal(nc, 4); /* one product per C block (each reaches one block only) */
    fastmm_plan_free(p);
    for (int L = 1; L <= 3; L++) {
        double e = direct_vs_packed(s, L, 64 * (L + 1), 48 * (1 << L), 40 * (1 << L), 900 + L);
        if (!(e <= 4 * EPS32)) fail_msg("Strassen %d levels: direct vs packed %.3g", L, e);
        /* a size the grid does not divide falls back to the packed path */
        assert_true(direct_vs_packed(s, L, 33, 17, 65, 910 + L) == 0);
    }
    assert_true(direct_vs_packed(nv, 1, 20, 21, 22, 920) <= 4 * EPS32);
    tg_fact_free(nv);
    /* naive 2x1x2: every C block is one product, written in place; no C combination is left */
    nv = tg_fact_naive((tg_dims){2, 1, 2});
    p = fastmm_plan_new(nv, NULL);
    assert_int_equal(fastmm_plan_direct_terms(p, 1, &na, &nb, &nc), 0);
    assert_true(na == 4 && nb == 4 && nc == 4);
    fastmm_plan_free(p);
    assert_true(direct_vs_packed(nv, 1, 20, 21, 22, 921) <= 4 * EPS32);
    tg_fact_free(nv);
    /* the same algorithm with every term's u and w negated: the products written into C now
     * have coefficient -1, which moves into the A operand the combination computes */
    tg_fact *sn = tg_test_strassen_negated();
    p = fastmm_plan_new(sn, NULL);
    assert_int_equal(fastmm_plan_direct_terms(p, 1, &na, &nb, &nc), 0);
    assert_true(na == 2 && nb == 2 && nc == 2);
    fastmm_plan_free(p);
    for (int L = 1; L <= 2; L++) {
        double e = direct_vs_packed(sn, L, 64 * L, 48 * L, 40 * L, 925 + L);
        if (!(e <= 4 * EPS32)) fail_msg("negated Strassen %d levels: direct vs packed %.3g", L, e);
        fastmm_opts od = fastmm_opts_default();
        od.levels = L;
        od.direct = 1;
        p = fastmm_plan_new(sn, &od);
        assert_true(fastmm_plan_direct(p, 64 * L, 48 * L, 40 * L));
        double er = run_cpu(p, 64 * L, 48 * L, 40 * L, 927 + L);
        if (!(er <= tolerance(fastmm_plan_level_fact(p, L), 48 * L)))
            fail_msg("negated Strassen direct: %.3g", er);
        fastmm_plan_free(p);
    }
    tg_fact_free(sn);
    tg_fact_free(s);

    tg_fact_list l = {0};
    tg_test_read_released(&l);
    int with = 0, withc = 0;
    for (int i = 0; i < l.n; i++) {
        tg_dims d = tg_fact_dims(l.facts[i]);
        if (d.n > 5 || d.m > 5 || d.p > 5) continue;
        p = fastmm_plan_new(l.facts[i], NULL);
        assert_non_null(p);
        assert_int_equal(fastmm_plan_direct_terms(p, 1, &na, &nb, &nc), 0);
        fastmm_plan_free(p);
        if (na + nb + nc == 0) continue;
        with++;
        withc += nc > 0;
        long M = 6L * d.n, K = 5L * d.m, N = 4L * d.p;
        double e = direct_vs_packed(l.facts[i], 1, M, K, N, 930 + i);
        /* the fp64-relative tolerance: the two differ only in rounding order */
        if (!(e <= tolerance(l.facts[i], K)))
            fail_msg("%s: direct vs packed %.3g", l.keys[i], e);
        /* and the direct path is right on its own */
        fastmm_opts od = fastmm_opts_default();
        od.levels = 1;
        od.direct = 1;
        p = fastmm_plan_new(l.facts[i], &od);
        assert_true(fastmm_plan_direct(p, M, K, N));
        double er = run_cpu(p, M, K, N, 940 + i);
        if (!(er <= tolerance(l.facts[i], K)))
            fail_msg("%s direct: error %.3g", l.keys[i], er);
        fastmm_plan_free(p);
    }
    print_message("%d released factorizations up to 5x5x5 have direct operands, %d of them "
                  "products written straight into C\n", with, withc);
    assert_true(with >= 1 && withc >= 1);
    tg_fact_list_free(&l);
}

/* Bad input is refused with a message: inexact inner algorithm, mod-2 algorithm, a thread count
 * the combination kernels do not take, bad sizes. */
static void test_bad_input(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    tg_fact *bad = tg_fact_clone(s);
    tg_fact_w(bad)[0] = 0; /* m1 no longer reaches c11 */
    fastmm_opts o = fastmm_opts_default();
    o.inner = bad;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "inner"));
    tg_fact *m2 = tg_fact_new((tg_dims){2, 2, 2}, 7, 1, TG_ARITH_MOD2);
    assert_null(fastmm_plan_new(m2, NULL));
    assert_non_null(strstr(tg_errmsg(), "mod-2"));
    o = fastmm_opts_default();
    o.comb_threads = 48;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "threads per combination block"));
    o.comb_threads = 32;
    o.overlap = 2;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "overlap 2"));
    o.overlap = -1;
    o.tail = -2;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "tail -2"));
    o.tail = 1;
    o.priority = 3;
    assert_null(fastmm_plan_new(s, &o));
    assert_non_null(strstr(tg_errmsg(), "priority 3"));
    o.priority = 2;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_non_null(p);
    fastmm_plan_free(p);
    p = fastmm_plan_new(s, NULL);
    assert_non_null(p);
    float x[4] = {0};
    assert_int_equal(fastmm_sgemm_cpu(p, 2, 2, 2, x, 1, x, 2, x, 2), -1);
    assert_non_null(strstr(tg_errmsg(), "bad sizes"));
    fastmm_plan_free(p);
    tg_fact_free(m2);
    tg_fact_free(bad);
    tg_fact_free(s);
}

/* The combination-kernel option: staged where nothing is tuned or forced, the option otherwise;
 * the CPU path computes the same product whatever it says (it has one way to combine). */
static void test_comb_option(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    assert_int_equal(o.comb, -1);
    o.levels = 1;
    float A[64 * 64], B[64 * 64], C0[64 * 64], C1[64 * 64];
    for (int i = 0; i < 64 * 64; i++) {
        A[i] = (float)((i * 37) % 11) - 5;
        B[i] = (float)((i * 53) % 7) - 3;
    }
    for (int k = -1; k <= 4; k++) {
        o.comb = k;
        fastmm_plan *p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        assert_int_equal(fastmm_plan_comb(p, 64, 64, 64), k < 0 ? 0 : k > 3 ? 3 : k);
        assert_int_equal(fastmm_sgemm_cpu(p, 64, 64, 64, A, 64, B, 64, k >= 1 ? C1 : C0, 64), 0);
        char rep[64];
        assert_int_equal(fastmm_plan_tune_report(p, 64, 64, 64, rep, sizeof rep), -1); /* untuned */
        fastmm_plan_free(p);
    }
    assert_memory_equal(C0, C1, sizeof C0); /* small integers: exact either way */
    assert_string_equal(fastmm_comb_name(0), "staged");
    assert_string_equal(fastmm_comb_name(1), "stream");
    assert_string_equal(fastmm_comb_name(2), "deep stream");
    assert_string_equal(fastmm_comb_name(3), "bulk");
    tg_fact_free(s);
}

/* The fused products' shape rule (fastmm_plan_fused; the CUDA path runs them where it holds):
 * on only when asked, fp32 only, whole 128 x 128 output tiles per block and inner blocks in
 * steps of 8, at most 4 terms per operand (Strassen at 1 and 2 levels: yes; at 3 levels, 8 terms:
 * no); the CPU path computes the same product either way. */
static void test_fused_rule(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    fastmm_opts o = fastmm_opts_default();
    assert_int_equal(o.fused, 0);
    o.levels = 1;
    fastmm_plan *p = fastmm_plan_new(s, &o);
    assert_false(fastmm_plan_fused(p, 256, 64, 256)); /* not asked for */
    fastmm_plan_free(p);
    o.fused = 1;
    p = fastmm_plan_new(s, &o);
    assert_true(fastmm_plan_fused(p, 256, 64, 256));
    assert_true(fastmm_plan_fused(p, 768, 1040, 256));
    assert_false(fastmm_plan_fused(p, 256, 64, 384));  /* 192-column blocks */
    assert_false(fastmm_plan_fused(p, 258, 64, 256));  /* odd: not a whole grid */
    assert_false(fastmm_plan_fused(p, 256, 60, 256));  /* 30-deep blocks */
    float A[256 * 64], B[64 * 256], C0[256 * 256], C1[256 * 256];
    for (int i = 0; i < 256 * 64; i++) {
        A[i] = (float)((i * 37) % 11) - 5;
        B[i] = (float)((i * 53) % 7) - 3;
    }
    assert_int_equal(fastmm_sgemm_cpu(p, 256, 256, 64, A, 64, B, 256, C1, 256), 0);
    fastmm_plan_free(p);
    o.fused = 0;
    p = fastmm_plan_new(s, &o);
    assert_int_equal(fastmm_sgemm_cpu(p, 256, 256, 64, A, 64, B, 256, C0, 256), 0);
    fastmm_plan_free(p);
    assert_memory_equal(C0, C1, sizeof C0); /* small integers: exact either way */
    o.fused = 1;
    o.prec = FASTMM_BF16;
    p = fastmm_plan_new(s, &o);
    assert_false(fastmm_plan_fused(p, 256, 64, 256));
    fastmm_plan_free(p);
    o.prec = FASTMM_FP32;
    o.levels = 2;
    p = fastmm_plan_new(s, &o);
    assert_true(fastmm_plan_fused(p, 512, 64, 512));
    assert_false(fastmm_plan_fused(p, 256, 64, 256)); /* 64-row blocks */
    fastmm_plan_free(p);
    o.levels = 3;
    p = fastmm_plan_new(s, &o);
    assert_false(fastmm_plan_fused(p, 1024, 64, 1024)); /* 8 terms per operand */
    fastmm_plan_free(p);
    /* the other tiles (128 x 128 k-step 16, 128 x 256, 256 x 128): a shape each takes, and
     * 256 x 16 x 256 (128-blocks, 8 deep), which only the first variant takes; variant 5 refused */
    o.levels = 1;
    static const long takes[3][3] = {{256, 32, 256}, {256, 16, 512}, {512, 16, 256}};
    for (int v = 2; v <= FASTMM_FUSED_VARIANTS + 1; v++) {
        o.fused = v;
        p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        int bm, bn, bk;
        if (v > FASTMM_FUSED_VARIANTS) {
            assert_int_equal(fastmm_fused_tile(v, &bm, &bn, &bk), -1);
            assert_false(fastmm_plan_fused(p, 512, 64, 512));
        } else {
            assert_int_equal(fastmm_fused_tile(v, &bm, &bn, &bk), 0);
            assert_true(fastmm_plan_fused(p, takes[v - 2][0], takes[v - 2][1], takes[v - 2][2]));
            assert_false(fastmm_plan_fused(p, 256, 16, 256));
        }
        fastmm_plan_free(p);
    }
    /* -1 (tuned): nothing is fused before tuning chose it; the tuning report is empty */
    o.fused = -1;
    p = fastmm_plan_new(s, &o);
    assert_int_equal(fastmm_plan_fused(p, 256, 64, 256), 0);
    assert_true(fastmm_fused_fits_shape(p, 1, 1, 256, 64, 256));
    assert_false(fastmm_fused_fits_shape(p, 3, 1, 256, 64, 256));
    assert_false(fastmm_fused_fits_shape(p, 1, 0, 256, 64, 256)); /* plain GEMM: no products */
    fastmm_plan_free(p);
    tg_err_clear();
    tg_fact_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kron),
        cmocka_unit_test(test_levels_auto),
        cmocka_unit_test(test_strassen_sizes),
        cmocka_unit_test(test_released),
        cmocka_unit_test(test_direct),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_comb_option),
        cmocka_unit_test(test_fused_rule),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
