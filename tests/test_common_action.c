/* Coefficient sets, canonical actions, tokens and rank-one updates. */
#include "tests/test_util.h"

#include "common/action.h"
#include "common/err.h"
#include "common/rng.h"

static void random_action(const tg_coeffs *F, int S, int active, tg_rng *rng, int8_t *a)
{
    memset(a, 0, (size_t)3 * S);
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < active; i++)
            a[k * S + i] = F->v[tg_rng_below(rng, (uint32_t)F->n)];
}

static void test_coeffs_parse(void **state)
{
    (void)state;
    tg_coeffs F;
    assert_int_equal(tg_coeffs_parse("-2..2", &F), 0);
    assert_int_equal(F.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(F.v[i], i - 2);
        assert_int_equal(F.index_of[F.v[i] + 128], i);
    }
    assert_int_equal(F.index_of[3 + 128], -1);
    assert_true(tg_coeffs_symmetric(&F));
    assert_int_equal(tg_coeffs_parse("1, 0,-1", &F), 0);
    assert_int_equal(F.n, 3);
    assert_int_equal(F.v[0], -1);
    assert_int_equal(F.v[2], 1);
    assert_int_equal(tg_coeffs_parse("0,1", &F), 0);
    assert_false(tg_coeffs_symmetric(&F));
    assert_int_equal(tg_coeffs_parse("-1,0,1,2", &F), 0);
    assert_false(tg_coeffs_symmetric(&F));
    const char *bad[] = {"", "1,2", "2..1", "0,0", "abc", "-20..20", "0,1,", "0..", "-1..1x",
                         "0,200", NULL};
    for (int i = 0; bad[i]; i++) {
        tg_err_clear();
        assert_int_equal(tg_coeffs_parse(bad[i], &F), -1);
        assert_true(strlen(tg_errmsg()) > 0);
    }
    assert_int_equal(tg_coeffs_parse(NULL, &F), -1);
}

static void test_parse_fuzz(void **state)
{
    (void)state;
    /* random strings over the parsers' alphabet never crash; accepted ones are valid sets */
    const char alpha[] = "-0123456789.,x 9+";
    tg_rng rng;
    tg_rng_seed(&rng, 30, 0);
    char buf[24];
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        int n = (int)tg_rng_below(&rng, sizeof buf);
        for (int i = 0; i < n; i++)
            buf[i] = alpha[tg_rng_below(&rng, sizeof alpha - 1)];
        buf[n] = 0;
        tg_coeffs F;
        if (tg_coeffs_parse(buf, &F) == 0) {
            accepted++;
            assert_true(F.n >= 2 && F.n <= TG_MAX_F);
            for (int i = 0; i < F.n; i++) {
                assert_int_equal(F.index_of[F.v[i] + 128], i);
                if (i)
                    assert_true(F.v[i] > F.v[i - 1]);
            }
        } else {
            assert_true(strlen(tg_errmsg()) > 0);
        }
    }
    assert_true(accepted > 0);
}

static void test_canonical(void **state)
{
    (void)state;
    tg_coeffs F;
    tg_coeffs_parse("-2..2", &F);
    tg_rng rng;
    tg_rng_seed(&rng, 1, 0);
    const int S = 6;
    int8_t a[3 * S], b[3 * S];
    int32_t t1[S * S * S], t2[S * S * S];
    int flipped = 0;
    for (int it = 0; it < 2000; it++) {
        random_action(&F, S, 4 + it % 3, &rng, a);
        memcpy(b, a, sizeof a);
        flipped += tg_action_canonicalize(b, S, 0);
        /* first non-zero entries of u and v positive, or the factor is zero */
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < S; i++)
                if (b[k * S + i]) {
                    assert_true(b[k * S + i] > 0);
                    break;
                }
        /* entries stay in F, the rank-one tensor is the same, and it is idempotent */
        for (int i = 0; i < 3 * S; i++)
            assert_true(F.index_of[b[i] + 128] >= 0);
        memset(t1, 0, sizeof t1);
        memset(t2, 0, sizeof t2);
        tg_tensor_add_action(t1, S, a, 1, 0);
        tg_tensor_add_action(t2, S, b, 1, 0);
        assert_memory_equal(t1, t2, sizeof t1);
        int8_t c[3 * S];
        memcpy(c, b, sizeof b);
        assert_int_equal(tg_action_canonicalize(c, S, 0), 0);
        assert_memory_equal(b, c, sizeof b);
        /* a and -a in two factors share one canonical form */
        memcpy(c, a, sizeof a);
        for (int i = 0; i < S; i++) {
            c[i] = (int8_t)-c[i];
            c[2 * S + i] = (int8_t)-c[2 * S + i];
        }
        tg_action_canonicalize(c, S, 0);
        assert_memory_equal(b, c, sizeof b);
    }
    assert_true(flipped > 1000); /* the test did exercise sign changes */
    /* mod 2: unchanged */
    int8_t m[6] = {0, 1, 1, 0, 1, 1};
    int8_t m2[6];
    memcpy(m2, m, 6);
    assert_int_equal(tg_action_canonicalize(m2, 2, 1), 0);
    assert_memory_equal(m, m2, 6);
}

static void test_nonzero(void **state)
{
    (void)state;
    int8_t a[6] = {0, 1, -1, 0, 0, 2};
    assert_true(tg_action_nonzero(a, 2));
    a[2] = 0;
    assert_false(tg_action_nonzero(a, 2));
}

static void test_tokens_roundtrip(void **state)
{
    (void)state;
    struct {
        int S, n_steps;
        const char *F;
    } cases[] = {{4, 12, "-2..2"}, {4, 6, "-1,0,1"}, {4, 3, "-1..1"}, {9, 9, "-2..2"},
                 {9, 27, "0,1"},   {16, 12, "0,1"},  {25, 15, "-2..2"}, {25, 25, "-1..1"},
                 {1, 1, "-1..1"},  {12, 4, "0,1"},  {8, 8, "-3..3"}};
    tg_rng rng;
    tg_rng_seed(&rng, 2, 0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tg_coeffs F;
        assert_int_equal(tg_coeffs_parse(cases[c].F, &F), 0);
        int S = cases[c].S, ns = cases[c].n_steps, d, nl;
        assert_int_equal(tg_tokens_shape(S, ns, F.n, &d, &nl), 0);
        assert_int_equal(d * ns, 3 * S);
        long long expect = 1;
        for (int i = 0; i < d; i++)
            expect *= F.n;
        assert_int_equal(nl, expect);
        int8_t a[3 * TG_MAX_S], b[3 * TG_MAX_S];
        int32_t tok[3 * TG_MAX_S];
        for (int it = 0; it < 200; it++) {
            random_action(&F, S, S, &rng, a);
            assert_int_equal(tg_action_to_tokens(&F, S, ns, a, tok), 0);
            for (int t = 0; t < ns; t++)
                assert_true(tok[t] >= 0 && tok[t] < nl);
            memset(b, 0x55, sizeof b);
            assert_int_equal(tg_tokens_to_action(&F, S, ns, tok, b), 0);
            assert_memory_equal(a, b, (size_t)3 * S);
            /* and tokens -> action -> tokens */
            for (int t = 0; t < ns; t++)
                tok[t] = (int32_t)tg_rng_below(&rng, (uint32_t)nl);
            int32_t tok2[3 * TG_MAX_S];
            assert_int_equal(tg_tokens_to_action(&F, S, ns, tok, b), 0);
            assert_int_equal(tg_action_to_tokens(&F, S, ns, b, tok2), 0);
            assert_memory_equal(tok, tok2, sizeof(int32_t) * ns);
        }
    }
}

static void test_tokens_known_and_errors(void **state)
{
    (void)state;
    tg_coeffs F;
    tg_coeffs_parse("-1..1", &F);
    int8_t a[3] = {1, 0, -1}; /* indices 2, 1, 0: first entry most significant */
    int32_t tok[3];
    assert_int_equal(tg_action_to_tokens(&F, 1, 1, a, tok), 0);
    assert_int_equal(tok[0], 2 * 9 + 1 * 3 + 0);
    assert_int_equal(tg_action_to_tokens(&F, 1, 3, a, tok), 0);
    assert_int_equal(tok[0], 2);
    assert_int_equal(tok[1], 1);
    assert_int_equal(tok[2], 0);
    int d, nl;
    assert_int_equal(tg_tokens_shape(4, 5, 3, &d, &nl), -1);  /* 5 does not divide 12 */
    assert_non_null(strstr(tg_errmsg(), "divide"));
    assert_int_equal(tg_tokens_shape(25, 3, 5, &d, &nl), -1); /* 5^25 logits */
    assert_non_null(strstr(tg_errmsg(), "2^24"));
    assert_int_equal(tg_tokens_shape(33, 3, 5, &d, &nl), -1);
    a[1] = 2; /* not in F */
    assert_int_equal(tg_action_to_tokens(&F, 1, 1, a, tok), -1);
    assert_non_null(strstr(tg_errmsg(), "v[0] = 2"));
    tok[0] = 27;
    assert_int_equal(tg_tokens_to_action(&F, 1, 1, tok, a), -1);
    tok[0] = -1;
    assert_int_equal(tg_tokens_to_action(&F, 1, 1, tok, a), -1);
}

static void test_add_action(void **state)
{
    (void)state;
    tg_coeffs F;
    tg_coeffs_parse("-2..2", &F);
    tg_rng rng;
    tg_rng_seed(&rng, 3, 0);
    const int S = 5;
    int32_t t[S * S * S], ref[S * S * S];
    int8_t a[3 * S];
    memset(t, 0, sizeof t);
    memset(ref, 0, sizeof ref);
    for (int it = 0; it < 100; it++) {
        random_action(&F, S, S, &rng, a);
        int sign = it % 3 ? 1 : -1;
        tg_tensor_add_action(t, S, a, sign, 0);
        for (int x = 0; x < S; x++)
            for (int y = 0; y < S; y++)
                for (int z = 0; z < S; z++)
                    ref[(x * S + y) * S + z] += sign * a[x] * a[S + y] * a[2 * S + z];
    }
    assert_memory_equal(t, ref, sizeof t);
    /* mod 2: entries stay in {0,1} and equal the integer result mod 2 */
    memset(t, 0, sizeof t);
    memset(ref, 0, sizeof ref);
    for (int it = 0; it < 50; it++) {
        random_action(&F, S, S, &rng, a);
        tg_tensor_add_action(t, S, a, it % 2 ? 1 : -1, 1);
        tg_tensor_add_action(ref, S, a, 1, 0);
    }
    for (int i = 0; i < S * S * S; i++) {
        assert_true(t[i] == 0 || t[i] == 1);
        assert_int_equal(t[i], ref[i] & 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coeffs_parse),      cmocka_unit_test(test_parse_fuzz),      cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_nonzero),           cmocka_unit_test(test_tokens_roundtrip),
        cmocka_unit_test(test_tokens_known_and_errors), cmocka_unit_test(test_add_action),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
