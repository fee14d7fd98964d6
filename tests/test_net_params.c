/* The parameter table (names and order of the spec's named_parameters(), shapes, offsets,
 * PyTorch-default initialisation) and the network config from the run config. */
#include "tests/test_util.h"

#include <math.h>

#include "common/config.h"
#include "common/err.h"
#include "learner/net.h"
#include "learner/params.h"

static void test_golden_table(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_golden(&cfg);
    tg_params t;
    assert_int_equal(tg_params_build(&cfg, &t), 0);
    assert_int_equal(t.total, 57397); /* net_reference.py's count for GOLDEN */
    /* named_parameters() order: a module's own parameters, then its children in registration
     * order */
    const char *head[] = {"torso.scalar_proj.0.weight", "torso.scalar_proj.0.bias",
                          "torso.scalar_proj.1.weight", "torso.scalar_proj.1.bias",
                          "torso.scalar_proj.2.weight", "torso.scalar_proj.2.bias",
                          "torso.in_proj.0.weight", "torso.in_proj.0.bias",
                          "torso.in_proj.1.weight", "torso.in_proj.1.bias",
                          "torso.in_proj.2.weight", "torso.in_proj.2.bias",
                          "torso.blocks.0.0.norm_x.weight", "torso.blocks.0.0.norm_x.bias",
                          "torso.blocks.0.0.q.weight", "torso.blocks.0.0.q.bias",
                          "torso.blocks.0.0.k.weight", "torso.blocks.0.0.k.bias",
                          "torso.blocks.0.0.v.weight", "torso.blocks.0.0.v.bias",
                          "torso.blocks.0.0.o.weight", "torso.blocks.0.0.o.bias",
                          "torso.blocks.0.0.norm_mlp.weight", "torso.blocks.0.0.norm_mlp.bias",
                          "torso.blocks.0.0.mlp_in.weight", "torso.blocks.0.0.mlp_in.bias",
                          "torso.blocks.0.0.mlp_out.weight", "torso.blocks.0.0.mlp_out.bias",
                          "torso.blocks.0.1.norm_x.weight"};
    for (size_t i = 0; i < sizeof head / sizeof *head; i++)
        assert_string_equal(t.p[i].name, head[i]);
    int pos = tg_params_find(&t, "policy.pos");
    assert_true(pos > 0);
    assert_string_equal(t.p[pos - 1].name, "torso.blocks.1.2.mlp_out.bias");
    assert_string_equal(t.p[pos + 1].name, "policy.embed.weight");
    int cross = tg_params_find(&t, "policy.layers.1.norm_x.bias");
    assert_string_equal(t.p[cross + 1].name, "policy.layers.1.norm_y.weight");
    assert_int_equal(tg_params_find(&t, "policy.layers.0.norm_y.weight"), -1);
    assert_string_equal(t.p[t.n - 1].name, "value.out.bias");
    assert_string_equal(t.p[t.n - 2].name, "value.out.weight");
    assert_string_equal(t.p[t.n - 3].name, "value.hidden.2.bias");
    /* shapes */
    const tg_param *p = &t.p[tg_params_find(&t, "policy.layers.1.k.weight")];
    assert_int_equal(p->ndim, 2);
    assert_int_equal(p->shape[0], 16);
    assert_int_equal(p->shape[1], 32);
    p = &t.p[tg_params_find(&t, "policy.embed.weight")];
    assert_int_equal(p->shape[0], 16);
    assert_int_equal(p->shape[1], 126);
    p = &t.p[tg_params_find(&t, "torso.in_proj.2.weight")];
    assert_int_equal(p->shape[1], 4 * 3 + 1);
    /* contiguous, in order */
    size_t off = 0;
    for (int i = 0; i < t.n; i++) {
        assert_int_equal(t.p[i].offset, off);
        off += t.p[i].size;
    }
    /* groups */
    char g[64];
    tg_params_group(&t, tg_params_find(&t, "torso.blocks.1.2.q.bias"), g, sizeof g);
    assert_string_equal(g, "torso.blocks.1.2");
    tg_params_group(&t, pos, g, sizeof g);
    assert_string_equal(g, "policy.pos");
    tg_params_free(&t);
}

static void test_init(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("cpu-small", &cfg, NULL);
    tg_params t;
    assert_int_equal(tg_params_build(&cfg, &t), 0);
    float *w = malloc(t.total * sizeof *w), *w2 = malloc(t.total * sizeof *w2);
    tg_params_init(&t, w, 9);
    tg_params_init(&t, w2, 9);
    assert_memory_equal(w, w2, t.total * sizeof *w);
    for (int i = 0; i < t.n; i++) {
        const tg_param *p = &t.p[i];
        const float *x = w + p->offset;
        if (!strcmp(p->name, "policy.pos")) {
            for (size_t j = 0; j < p->size; j++)
                assert_true(x[j] == 0.0f);
        } else if (strstr(p->name, "norm")) {
            float want = strstr(p->name, ".weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->size; j++)
                assert_true(x[j] == want);
        } else {
            int in = p->ndim == 2 ? p->shape[1] : t.p[i - 1].shape[1];
            double bound = 1.0 / sqrt(in), mx = 0, sum = 0;
            for (size_t j = 0; j < p->size; j++) {
                assert_true(fabs(x[j]) <= bound);
                mx = fabs(x[j]) > mx ? fabs(x[j]) : mx;
                sum += x[j];
            }
            if (p->size >= 1000) { /* uniform: spread over the interval, mean near 0 */
                assert_true(mx > 0.9 * bound);
                assert_true(fabs(sum / p->size) < 0.1 * bound);
            }
        }
    }
    free(w), free(w2);
    tg_params_free(&t);
}

static void test_config_from_run(void **state)
{
    (void)state;
    tg_config run;
    tg_config_defaults(&run);
    assert_int_equal(tg_config_set(&run, "game.targets=3,3,3"), 0);
    assert_int_equal(tg_config_set(&run, "game.n_steps=9"), 0);
    assert_int_equal(tg_config_set(&run, "net.c=48"), 0);
    if (tg_config_finish(&run))
        fail_msg("%s", tg_errmsg());
    tg_net_config c;
    assert_int_equal(tg_net_config_from_run(&run, &c), 0);
    assert_int_equal(c.S, 9);
    assert_int_equal(c.T, run.game.history + 1);
    assert_int_equal(c.n_steps, 9);
    assert_int_equal(c.n_logits, run.game.n_logits);
    assert_int_equal(c.n_scalars, run.game.n_scalars);
    assert_int_equal(c.c, 48);
    assert_int_equal(c.quantiles, run.net.quantiles);
    tg_opt_config o;
    tg_opt_config_from_run(&run, &o);
    assert_true(o.lr == run.train.lr && o.grad_clip == run.train.grad_clip);
    /* presets, overrides, comparisons */
    tg_net_config a, b;
    assert_int_equal(tg_net_config_preset("small-S9", &a, NULL), 0);
    assert_int_equal(a.S, 9);
    assert_int_equal(tg_net_config_preset("nope", &a, NULL), -1);
    assert_int_equal(tg_net_config_preset("paper-S4", &a, NULL), 0);
    b = a;
    assert_int_equal(tg_net_config_compare(&a, &b), 0);
    assert_int_equal(tg_net_config_set(&b, "p_heads=8"), 0);
    assert_int_equal(tg_net_config_compare(&b, &a), -1);
    assert_non_null(strstr(tg_errmsg(), "p_heads"));
    assert_int_equal(tg_net_config_set(&b, "bogus=1"), -1);
    assert_int_equal(tg_net_config_set(&b, "c=x"), -1);
    b.quantiles = 0;
    assert_int_equal(tg_net_config_check(&b), -1);
    assert_non_null(strstr(tg_errmsg(), "quantiles"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_table),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_config_from_run),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
