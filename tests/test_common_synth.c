/* Synthetic demonstrations: sums, zero factors, rank range, the categorical over F. */
#include "tests/test_util.h"

#include <math.h>

#include "common/action.h"
#include "common/err.h"
#include "common/game.h"
#include "common/synth.h"

static void check_demo(const tg_synth_cfg *cfg, int R, const int8_t *acts, const int32_t *t)
{
    const int S = cfg->S;
    assert_true(R >= cfg->rank_min && R <= cfg->rank_max);
    int32_t *sum = calloc((size_t)S * S * S, sizeof *sum);
    for (int r = 0; r < R; r++) {
        const int8_t *a = acts + (size_t)r * 3 * S;
        assert_true(tg_action_nonzero(a, S));
        int8_t c[3 * TG_MAX_S];
        memcpy(c, a, (size_t)3 * S);
        if (cfg->mod2 || tg_coeffs_symmetric(&cfg->F))
            assert_int_equal(tg_action_canonicalize(c, S, cfg->mod2), 0);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < S; i++) {
                int8_t x = a[k * S + i];
                if (i >= cfg->sizes[k])
                    assert_int_equal(x, 0);
                assert_true(cfg->F.index_of[x + 128] >= 0);
                if (cfg->mod2)
                    assert_true(x == 0 || x == 1);
            }
        tg_tensor_add_action(sum, S, a, 1, cfg->mod2);
    }
    assert_memory_equal(sum, t, sizeof(int32_t) * (size_t)S * S * S);
    /* played backwards as a game, the demonstration reaches zero in exactly R moves */
    tg_game *g = tg_game_new(t, S, cfg->mod2, R, 1);
    double ret = 0;
    for (int k = 0; k < R; k++)
        ret += tg_game_play(g, acts + (size_t)(R - 1 - k) * 3 * S);
    if (!tg_game_solved(g)) /* only if the R terms cancel out earlier: never expected here */
        fail_msg("demo not solved");
    assert_true(ret == -(double)R);
    tg_game_free(g);
    free(sum);
}

static void test_synth_integer(void **state)
{
    (void)state;
    tg_synth_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.S = 9;
    cfg.sizes[0] = 4, cfg.sizes[1] = 6, cfg.sizes[2] = 9;
    cfg.rank_min = 1;
    cfg.rank_max = 12;
    assert_int_equal(tg_coeffs_parse("-2..2", &cfg.F), 0);
    const double probs[5] = {0.05, 0.15, 0.6, 0.15, 0.05};
    memcpy(cfg.probs, probs, sizeof probs);
    tg_rng rng;
    tg_rng_seed(&rng, 20, 0);
    int8_t acts[12 * 27];
    int32_t t[9 * 9 * 9];
    int seen[13] = {0};
    double cnt[3] = {0};
    for (int it = 0; it < 1500; it++) {
        int R = tg_synth_generate(&cfg, &rng, acts, t);
        assert_true(R >= 1);
        seen[R]++;
        check_demo(&cfg, R, acts, t);
        /* |value| frequencies over u (4 active entries) */
        for (int r = 0; r < R; r++)
            for (int i = 0; i < 4; i++)
                cnt[abs(acts[r * 27 + i])]++;
    }
    for (int r = 1; r <= 12; r++)
        assert_true(seen[r] > 60); /* ~125 each */
    /* expected frequencies given that an all-zero u (prob 0.6^4) is redrawn */
    double tot = cnt[0] + cnt[1] + cnt[2], pz = pow(0.6, 4);
    double e0 = (0.6 - pz) / (1 - pz), e1 = 0.3 / (1 - pz), e2 = 0.1 / (1 - pz);
    assert_true(fabs(cnt[0] / tot - e0) < 0.02);
    assert_true(fabs(cnt[1] / tot - e1) < 0.02);
    assert_true(fabs(cnt[2] / tot - e2) < 0.02);
}

static void test_synth_uniform_and_mod2(void **state)
{
    (void)state;
    tg_synth_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.S = 4;
    cfg.sizes[0] = cfg.sizes[1] = cfg.sizes[2] = 4;
    cfg.rank_min = 3;
    cfg.rank_max = 5;
    cfg.mod2 = 1;
    assert_int_equal(tg_coeffs_parse("0,1", &cfg.F), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 21, 0);
    int8_t acts[5 * 12];
    int32_t t[64];
    long ones = 0, total = 0;
    for (int it = 0; it < 500; it++) {
        int R = tg_synth_generate(&cfg, &rng, acts, t);
        check_demo(&cfg, R, acts, t);
        for (int i = 0; i < R * 12; i++)
            ones += acts[i], total++;
    }
    /* uniform over {0,1} with all-zero factors redrawn: P(1) = 0.5 / (1 - 1/16) */
    assert_true(fabs((double)ones / total - 0.5 / (1 - 1.0 / 16)) < 0.02);
}

static void test_synth_asymmetric(void **state)
{
    (void)state;
    /* F = {-1,0,1,2}: entries stay in F (no canonical sign flips that would make -2) */
    tg_synth_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.S = 4;
    cfg.sizes[0] = cfg.sizes[1] = cfg.sizes[2] = 4;
    cfg.rank_min = 1;
    cfg.rank_max = 6;
    assert_int_equal(tg_coeffs_parse("-1,0,1,2", &cfg.F), 0);
    tg_rng rng;
    tg_rng_seed(&rng, 23, 0);
    int8_t acts[6 * 12];
    int32_t t[64];
    for (int it = 0; it < 300; it++) {
        int R = tg_synth_generate(&cfg, &rng, acts, t);
        check_demo(&cfg, R, acts, t);
    }
}

static void test_synth_errors(void **state)
{
    (void)state;
    tg_synth_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.S = 4;
    cfg.sizes[0] = cfg.sizes[1] = cfg.sizes[2] = 4;
    cfg.rank_min = 3;
    cfg.rank_max = 2;
    tg_coeffs_parse("-1..1", &cfg.F);
    tg_rng rng;
    tg_rng_seed(&rng, 22, 0);
    int8_t acts[5 * 12];
    int32_t t[64];
    assert_int_equal(tg_synth_generate(&cfg, &rng, acts, t), -1);
    assert_non_null(strstr(tg_errmsg(), "rank range"));
    cfg.rank_max = 3;
    cfg.probs[1] = 1.0; /* all weight on 0 */
    assert_int_equal(tg_synth_generate(&cfg, &rng, acts, t), -1);
    assert_non_null(strstr(tg_errmsg(), "non-zero"));
    cfg.probs[1] = 0;
    cfg.sizes[2] = 5;
    assert_int_equal(tg_synth_generate(&cfg, &rng, acts, t), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_integer),
        cmocka_unit_test(test_synth_uniform_and_mod2),
        cmocka_unit_test(test_synth_asymmetric),
        cmocka_unit_test(test_synth_errors),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
