/* Flip-graph local search: walks keep the tensor exact, stay in the coefficient bound, reduce,
 * reach the known ranks of small tensors from the naive algorithm, and refuse bad starts. */
#include "tests/test_util.h"

#include "common/err.h"
#include "common/fact.h"
#include "common/flip.h"

/* the walk's best scheme is exact and within the bound */
static void assert_best_ok(tg_flip *f, int rank, int bound)
{
    tg_fact *b = tg_flip_best(f);
    assert_non_null(b);
    assert_int_equal(tg_fact_rank(b), rank);
    assert_int_equal(tg_fact_verify(b, 0, NULL), 1);
    assert_true(tg_fact_max_abs(b) <= bound);
    tg_fact_free(b);
}

static void test_strassen_from_naive(void **state)
{
    (void)state;
    tg_dims d = {2, 2, 2};
    tg_fact *naive = tg_fact_naive(d);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        tg_flip *f = tg_flip_new(d, 16, 1, seed);
        assert_non_null(f);
        assert_int_equal(tg_flip_start(f, naive), 0);
        assert_int_equal(tg_flip_best_rank(f), 8);
        /* flips and reductions alone (no plus steps) keep the scheme exact; with plus steps
         * Strassen's count comes within ~100,000 flips */
        int r = tg_flip_walk(f, 20000, 300, 0, 7);
        assert_true(r == 7 || r == 8);
        assert_best_ok(f, r, 1);
        assert_int_equal(tg_flip_walk(f, 5000000, 300, 1, 7), 7);
        assert_true(tg_flip_flips(f) < 5020000);
        assert_best_ok(f, 7, 1);
        tg_flip_free(f);
    }
    tg_fact_free(naive);
}

static void test_best_known_small(void **state)
{
    (void)state;
    /* T(2,2,3): 12 -> 11 (the best known); T(2,3,3): 18 -> 16 (15 takes 2-20 s: docs/results.md) */
    struct {
        tg_dims d;
        int naive, want;
        long budget;
    } cases[] = {{{2, 2, 3}, 12, 11, 20000000}, {{2, 3, 3}, 18, 16, 60000000}};
    for (int c = 0; c < 2; c++) {
        tg_fact *naive = tg_fact_naive(cases[c].d);
        tg_flip *f = tg_flip_new(cases[c].d, 32, 1, 7);
        assert_int_equal(tg_flip_start(f, naive), 0);
        assert_int_equal(tg_flip_best_rank(f), cases[c].naive);
        assert_int_equal(tg_flip_walk(f, cases[c].budget, 300, 1, cases[c].want), cases[c].want);
        assert_best_ok(f, cases[c].want, 1);
        tg_flip_free(f);
        tg_fact_free(naive);
    }
}

static void test_long_walk_stays_exact(void **state)
{
    (void)state;
    /* a walk that never stops early, with the larger bound 2: every best scheme verifies */
    tg_dims d = {3, 3, 3};
    tg_fact *naive = tg_fact_naive(d);
    tg_flip *f = tg_flip_new(d, 40, 2, 3);
    assert_int_equal(tg_flip_start(f, naive), 0);
    int r = tg_flip_walk(f, 300000, 300, 1, 0);
    assert_true(r <= 27 && r >= 19);
    assert_int_equal(tg_flip_flips(f), 300000);
    assert_best_ok(f, r, 2);
    tg_flip_free(f);
    tg_fact_free(naive);
}

static void test_start_reduces(void **state)
{
    (void)state;
    /* the naive 2x2x2 with its first term split in two along w: rank 9, still exact; the start
     * merges the two halves back (a reduction) */
    tg_dims d = {2, 2, 2};
    tg_fact *naive = tg_fact_naive(d), *split = tg_fact_new(d, 9, 1, TG_ARITH_INTEGER);
    memcpy(tg_fact_u(split), tg_fact_cu(naive), 8 * 4 * sizeof(int64_t));
    memcpy(tg_fact_v(split), tg_fact_cv(naive), 8 * 4 * sizeof(int64_t));
    memcpy(tg_fact_w(split), tg_fact_cw(naive), 8 * 4 * sizeof(int64_t));
    memcpy(tg_fact_u(split) + 32, tg_fact_cu(naive), 4 * sizeof(int64_t));
    memcpy(tg_fact_v(split) + 32, tg_fact_cv(naive), 4 * sizeof(int64_t));
    int64_t *w = tg_fact_w(split);
    int j = w[0] ? 1 : 0; /* an entry of w_0 that is zero */
    w[32 + j] = 1;        /* w_8 = e_j, w_0 = w_0 - e_j */
    w[j] = -1;
    assert_int_equal(tg_fact_verify(split, 0, NULL), 1);
    tg_flip *f = tg_flip_new(d, 16, 1, 1);
    assert_int_equal(tg_flip_start(f, split), 0);
    assert_int_equal(tg_flip_best_rank(f), 8);
    assert_best_ok(f, 8, 1);
    tg_flip_free(f);
    tg_fact_free(split);
    tg_fact_free(naive);
}

static void test_offer(void **state)
{
    (void)state;
    tg_dims d = {2, 2, 2};
    tg_fact *naive = tg_fact_naive(d), *strassen = tg_fact_strassen();
    tg_flip *f = tg_flip_new(d, 16, 1, 5);
    assert_int_equal(tg_flip_walk(f, 100, 100, 1, 0), 0); /* nothing to walk from yet */
    assert_int_equal(tg_flip_offer(f, naive), 1);         /* the first scheme starts the walk */
    assert_int_equal(tg_flip_best_rank(f), 8);
    assert_int_equal(tg_flip_walk(f, 1000, 100, 0, 7), 8);
    assert_int_equal(tg_flip_offer(f, strassen), 1); /* better: the walk restarts there */
    assert_int_equal(tg_flip_best_rank(f), 7);
    assert_int_equal(tg_flip_flips(f), 1000);
    assert_int_equal(tg_flip_offer(f, naive), 0);    /* worse: not taken */
    assert_int_equal(tg_flip_offer(f, strassen), 1); /* equal: into the pool */
    assert_int_equal(tg_flip_walk(f, 20000, 100, 1, 0), 7);
    assert_best_ok(f, 7, 1);
    tg_fact *other = tg_fact_naive((tg_dims){2, 2, 3});
    assert_int_equal(tg_flip_offer(f, other), -1);
    tg_fact_free(other);
    tg_flip_free(f);
    tg_fact_free(naive);
    tg_fact_free(strassen);
}

static void test_bad_starts(void **state)
{
    (void)state;
    tg_dims d = {2, 2, 2};
    assert_null(tg_flip_new(d, 0, 1, 1));
    assert_null(tg_flip_new(d, 8, 0, 1));
    assert_null(tg_flip_new(d, 8, 128, 1));
    assert_null(tg_flip_new((tg_dims){2, 2, 13}, 8, 1, 1));
    tg_flip *f = tg_flip_new(d, 8, 1, 1);
    assert_non_null(f);
    tg_fact *other = tg_fact_naive((tg_dims){2, 2, 3});
    assert_int_equal(tg_flip_start(f, other), -1);
    assert_non_null(strstr(tg_errmsg(), "T(2,2,3)"));
    tg_fact *big = tg_fact_new(d, 9, 1, TG_ARITH_INTEGER);
    assert_int_equal(tg_flip_start(f, big), -1);
    assert_non_null(strstr(tg_errmsg(), "rank 9"));
    tg_fact *two = tg_fact_strassen();
    tg_fact_u(two)[0] = 2;
    assert_int_equal(tg_flip_start(f, two), -1);
    assert_non_null(strstr(tg_errmsg(), "bound 1"));
    tg_fact *half = tg_fact_new(d, 7, 2, TG_ARITH_INTEGER), *mod2 = tg_fact_new(d, 7, 1, TG_ARITH_MOD2);
    assert_int_equal(tg_flip_start(f, half), -1);
    assert_non_null(strstr(tg_errmsg(), "denominator 1"));
    assert_int_equal(tg_flip_start(f, mod2), -1);
    tg_fact_free(other);
    tg_fact_free(big);
    tg_fact_free(two);
    tg_fact_free(half);
    tg_fact_free(mod2);
    tg_flip_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strassen_from_naive), cmocka_unit_test(test_best_known_small),
        cmocka_unit_test(test_long_walk_stays_exact), cmocka_unit_test(test_start_reduces),
        cmocka_unit_test(test_offer),              cmocka_unit_test(test_bad_starts),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
