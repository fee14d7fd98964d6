/* Matmul tensors, factorizations and exact verification (integers, denominators, mod 2). */
#include "tests/test_util.h"

#include "common/err.h"
#include "common/fact.h"

static void test_matmul_tensor(void **state)
{
    (void)state;
    tg_dims d = {2, 3, 4};
    int modes[3];
    tg_dims_modes(d, modes);
    assert_int_equal(modes[0], 6);
    assert_int_equal(modes[1], 12);
    assert_int_equal(modes[2], 8);
    int S = 12;
    int32_t *t = malloc(sizeof(int32_t) * S * S * S);
    assert_int_equal(tg_matmul_tensor(d, S, t), 0);
    int ones = 0;
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++)
            for (int c = 0; c < S; c++) {
                int v = t[(a * S + b) * S + c];
                ones += v;
                if (v) {
                    /* a = i*m+j, b = j*p+k, c = k*n+i */
                    int i = a / 3, j = a % 3, j2 = b / 4, k = b % 4, k2 = c / 2, i2 = c % 2;
                    assert_true(a < 6 && b < 12 && c < 8);
                    assert_int_equal(j, j2);
                    assert_int_equal(k, k2);
                    assert_int_equal(i, i2);
                }
            }
    assert_int_equal(ones, 2 * 3 * 4);
    assert_int_equal(tg_matmul_tensor(d, 11, t), -1);
    assert_non_null(strstr(tg_errmsg(), "S=11"));
    free(t);
}

static void test_dims_parse(void **state)
{
    (void)state;
    tg_dims d;
    assert_int_equal(tg_dims_parse("2,3,4", &d), 0);
    assert_true(d.n == 2 && d.m == 3 && d.p == 4);
    assert_int_equal(tg_dims_parse("5x5x12", &d), 0);
    assert_true(d.n == 5 && d.m == 5 && d.p == 12);
    assert_int_equal(tg_dims_parse("2,3", &d), -1);
    assert_int_equal(tg_dims_parse("2,3,13", &d), -1);
    assert_int_equal(tg_dims_parse("0,3,3", &d), -1);
    assert_int_equal(tg_dims_parse("2,3,4x", &d), -1);
    assert_int_equal(tg_dims_parse("a,b,c", &d), -1);
    tg_arith ar;
    assert_int_equal(tg_arith_parse("mod2", &ar), 0);
    assert_int_equal(ar, TG_ARITH_MOD2);
    assert_int_equal(tg_arith_parse("Z", &ar), 0);
    assert_int_equal(ar, TG_ARITH_INTEGER);
    assert_int_equal(tg_arith_parse("real", &ar), -1);
    assert_null(tg_fact_new((tg_dims){2, 2, 2}, 7, 2, TG_ARITH_MOD2));
    assert_null(tg_fact_new((tg_dims){2, 2, 2}, 7, 0, TG_ARITH_INTEGER));
    assert_null(tg_fact_new((tg_dims){2, 2, 2}, -1, 1, TG_ARITH_INTEGER));
}

static void test_dims_parse_fuzz(void **state)
{
    (void)state;
    const char alpha[] = "0123456789,xX -+";
    uint64_t x = 12345;
    char buf[20];
    for (int it = 0; it < 20000; it++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        int n = (int)((x >> 33) % sizeof buf);
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = alpha[(x >> 33) % (sizeof alpha - 1)];
        }
        buf[n] = 0;
        tg_dims d;
        if (tg_dims_parse(buf, &d) == 0)
            assert_int_equal(tg_dims_check(d), 0);
    }
}

static void test_strassen_verifies(void **state)
{
    (void)state;
    tg_fact *f = tg_fact_strassen();
    assert_non_null(f);
    assert_int_equal(tg_fact_rank(f), 7);
    assert_int_equal(tg_fact_max_abs(f), 1);
    assert_int_equal(tg_fact_verify(f, 0, NULL), 1);
    assert_int_equal(tg_fact_verify(f, 1, NULL), 1);
    char *eq = tg_fact_equations(f);
    assert_non_null(eq);
    assert_non_null(strstr(eq, "m1 = (a11 + a22)(b11 + b22)\n"));
    assert_non_null(strstr(eq, "m6 = (-a11 + a21)(b11 + b12)\n"));
    assert_non_null(strstr(eq, "c11 = m1 + m4 - m5 + m7\n"));
    assert_non_null(strstr(eq, "c22 = m1 - m2 + m3 + m6\n"));
    free(eq);
    tg_fact *g = tg_fact_clone(f);
    assert_int_equal(tg_fact_verify(g, 0, NULL), 1);
    tg_fact_free(g);
    tg_fact_free(f);
}

static void test_naive_verifies(void **state)
{
    (void)state;
    const tg_dims ds[] = {{1, 1, 1}, {2, 2, 2}, {2, 3, 4}, {3, 3, 3}, {4, 5, 3},
                          {5, 5, 5}, {1, 12, 1}, {12, 12, 12}};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        tg_fact *f = tg_fact_naive(ds[i]);
        assert_non_null(f);
        assert_int_equal(tg_fact_rank(f), ds[i].n * ds[i].m * ds[i].p);
        assert_int_equal(tg_fact_verify(f, 0, NULL), 1);
        assert_int_equal(tg_fact_verify(f, 1, NULL), 1);
        /* dropping the last term loses exactly entry c of that term */
        tg_fact *g = tg_fact_new(ds[i], tg_fact_rank(f) - 1, 1, TG_ARITH_INTEGER);
        if (g) {
            int mo[3];
            tg_dims_modes(ds[i], mo);
            memcpy(tg_fact_u(g), tg_fact_cu(f), sizeof(int64_t) * (size_t)(tg_fact_rank(f) - 1) * mo[0]);
            memcpy(tg_fact_v(g), tg_fact_cv(f), sizeof(int64_t) * (size_t)(tg_fact_rank(f) - 1) * mo[1]);
            memcpy(tg_fact_w(g), tg_fact_cw(f), sizeof(int64_t) * (size_t)(tg_fact_rank(f) - 1) * mo[2]);
            tg_fact_mismatch mm;
            assert_int_equal(tg_fact_verify(g, 0, &mm), 0);
            int n = ds[i].n, m = ds[i].m, p = ds[i].p;
            assert_int_equal(mm.a, (n - 1) * m + m - 1);
            assert_int_equal(mm.b, (m - 1) * p + p - 1);
            assert_int_equal(mm.c, (p - 1) * n + n - 1);
            assert_int_equal(mm.got, 0);
            assert_int_equal(mm.want, 1);
            tg_fact_free(g);
        }
        tg_fact_free(f);
    }
}

static void test_changed_coefficient_fails(void **state)
{
    (void)state;
    tg_fact *f = tg_fact_strassen();
    /* m3 = a11 (b12 - b22): change b22's coefficient to 0. m3 feeds c12 and c22, so the first
     * wrong entry in (a,b,c) order is a=a11 (0), b=b22 (3), c = c12 (index 0*... k*n+i = 2). */
    tg_fact_v(f)[2 * 4 + 3] = 0;
    tg_fact_mismatch mm;
    assert_int_equal(tg_fact_verify(f, 0, &mm), 0);
    assert_int_equal(mm.a, 0);
    assert_int_equal(mm.b, 3);
    assert_int_equal(mm.c, 2);
    assert_int_equal(mm.got, 1);
    assert_int_equal(mm.want, 0);
    char buf[256];
    tg_fact_mismatch_str(f, &mm, buf, sizeof buf);
    assert_string_equal(buf, "entry (0,3,2) = T[0*2+0][1*2+1][1*2+0]: factors give 1, T has 0");
    assert_int_equal(tg_fact_verify(f, 1, &mm), 0);
    tg_fact_free(f);
}

static void test_mod2_only(void **state)
{
    (void)state;
    /* Changing a coefficient by 2 keeps the factorization valid mod 2 but not over Z. */
    tg_fact *f = tg_fact_strassen();
    tg_fact_w(f)[0 * 4 + 0] = 3; /* m1 -> 3 c11 */
    tg_fact_mismatch mm;
    assert_int_equal(tg_fact_verify(f, 0, &mm), 0);
    assert_int_equal(mm.a, 0);
    assert_int_equal(mm.b, 0);
    assert_int_equal(mm.c, 0);
    assert_int_equal(mm.got, 3);
    assert_int_equal(mm.want, 1);
    assert_int_equal(tg_fact_verify(f, 1, NULL), 1);
    tg_fact_u(f)[5 * 4 + 0] = 1; /* -a11 -> a11 in m6: still fine mod 2 */
    assert_int_equal(tg_fact_verify(f, 1, NULL), 1);
    tg_fact_u(f)[5 * 4 + 1] = -3; /* adds a12 to m6 mod 2: wrong */
    assert_int_equal(tg_fact_verify(f, 1, &mm), 0);
    assert_true(mm.got == 0 || mm.got == 1);
    assert_int_equal(tg_fact_max_abs(f), 3);
    tg_fact_free(f);
}

static void test_denominator(void **state)
{
    (void)state;
    /* Strassen with u doubled and w halved: numerators over D = 2 give 2u, 2v/2... build
     * u' = 2u/2 -> numerators U = 2u, V = 2v, W = 2w over D = 2 (same algorithm). */
    tg_fact *s = tg_fact_strassen();
    tg_fact *f = tg_fact_new((tg_dims){2, 2, 2}, 7, 2, TG_ARITH_INTEGER);
    for (int i = 0; i < 28; i++) {
        tg_fact_u(f)[i] = 2 * tg_fact_cu(s)[i];
        tg_fact_v(f)[i] = 2 * tg_fact_cv(s)[i];
        tg_fact_w(f)[i] = 2 * tg_fact_cw(s)[i];
    }
    assert_int_equal(tg_fact_verify(f, 0, NULL), 1);
    /* A genuinely fractional one: u scaled by 4 -> numerators 4u, v numerators 2v, w numerators
     * w with D = 2: (4u/2)(2v/2)(w/2) = u v w. Entries 1/2 appear in w. */
    for (int i = 0; i < 28; i++) {
        tg_fact_u(f)[i] = 4 * tg_fact_cu(s)[i];
        tg_fact_v(f)[i] = 2 * tg_fact_cv(s)[i];
        tg_fact_w(f)[i] = tg_fact_cw(s)[i];
    }
    assert_int_equal(tg_fact_verify(f, 0, NULL), 1);
    char *eq = tg_fact_equations(f);
    assert_non_null(strstr(eq, "m1 = (2 a11 + 2 a22)(b11 + b22)\n"));
    assert_non_null(strstr(eq, "c11 = 1/2 m1 + 1/2 m4 - 1/2 m5 + 1/2 m7\n"));
    free(eq);
    tg_fact_w(f)[0] = 2; /* now c11 gets m1 instead of m1/2 */
    tg_fact_mismatch mm;
    assert_int_equal(tg_fact_verify(f, 0, &mm), 0);
    assert_int_equal(mm.got, 16);
    assert_int_equal(mm.want, 8);
    char buf[256];
    tg_fact_mismatch_str(f, &mm, buf, sizeof buf);
    assert_non_null(strstr(buf, "factors give 16/8, T has 1"));
    /* mod 2 needs D = 1 */
    assert_int_equal(tg_fact_verify(f, 1, NULL), -1);
    tg_fact_free(f);
    tg_fact_free(s);
}

static void test_overflow_reported(void **state)
{
    (void)state;
    tg_fact *f = tg_fact_strassen();
    tg_fact_u(f)[0] = INT64_MAX / 2;
    tg_fact_v(f)[0] = 4;
    assert_int_equal(tg_fact_verify(f, 0, NULL), -1);
    assert_non_null(strstr(tg_errmsg(), "overflow"));
    /* mod 2 only looks at parities */
    tg_fact_u(f)[0] = INT64_MAX; /* odd */
    tg_fact_v(f)[0] = 5;
    assert_int_equal(tg_fact_verify(f, 1, NULL), 1);
    tg_fact_free(f);
}

static void test_equations_large_indices(void **state)
{
    (void)state;
    tg_fact *f = tg_fact_naive((tg_dims){1, 10, 11});
    char *eq = tg_fact_equations(f);
    assert_non_null(strstr(eq, "m1 = (a11)(b11)\n"));
    assert_non_null(strstr(eq, "(a_1_10)(b_10_11)"));
    assert_non_null(strstr(eq, "c_1_11 = "));
    free(eq);
    tg_fact_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_tensor),      cmocka_unit_test(test_dims_parse),
        cmocka_unit_test(test_dims_parse_fuzz),
        cmocka_unit_test(test_strassen_verifies),  cmocka_unit_test(test_naive_verifies),
        cmocka_unit_test(test_changed_coefficient_fails), cmocka_unit_test(test_mod2_only),
        cmocka_unit_test(test_denominator),        cmocka_unit_test(test_overflow_reported),
        cmocka_unit_test(test_equations_large_indices),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
