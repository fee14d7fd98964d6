/* Training: the loss on a fixed small batch falls tenfold within a few hundred AdamW steps;
 * the learning-rate schedule, gradient-norm report and clipping, decoupled weight decay only
 * on Linear weights, and a non-finite batch refused without touching the parameters. */
#include "tests/test_util.h"

#include <math.h>

#include "common/err.h"
#include "common/rng.h"
#include "learner/net.h"
#include "tests/net_test_batch.h"

/* same batches as before: seed 23, tensor entries in [-2, 2], returns down to -11 */
static void mk_batch(const tg_net_config *c, int B, batch *b) { mk_batch_seeded(c, B, b, 23, 2, 11); }

static void test_loss_falls_tenfold(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("golden", &cfg, NULL);
    const int B = 8;
    tg_net *net = tg_net_new(&cfg, "cpu", B, 0, 3);
    assert_non_null(net);
    tg_opt_config o;
    tg_opt_config_default(&o);
    o.lr = 3e-3, o.lr_min = 3e-4, o.warmup_steps = 20, o.decay_steps = 400;
    o.weight_decay = 1e-4, o.grad_clip = 5.0;
    tg_net_set_opt(net, &o);
    batch b;
    mk_batch(&cfg, B, &b);
    tg_batch_view bv = {.B = B, .tensors = b.t, .scalars = b.s, .tokens = b.a, .returns = b.r};
    tg_train_stats st;
    assert_int_equal(tg_net_train_step(net, &bv, &st), 0);
    double first = st.loss.total, last = first;
    int step = 1;
    for (; step < 400 && last > first / 10; step++) {
        assert_int_equal(tg_net_train_step(net, &bv, &st), 0);
        assert_true(isfinite(st.loss.total) && isfinite(st.grad_norm));
        last = st.loss.total;
    }
    print_message("loss %.4f -> %.4f after %d steps (policy %.4f, value %.4f)\n", first, last,
                  step, st.loss.policy, st.loss.value);
    assert_true(last <= first / 10);
    assert_int_equal(st.step, step);
    free_batch(&b);
    tg_net_free(net);
}

static void test_schedule(void **state)
{
    (void)state;
    tg_opt_config o;
    tg_opt_config_default(&o);
    o.lr = 1e-3, o.lr_min = 1e-5, o.warmup_steps = 10, o.decay_steps = 100;
    assert_true(fabs(tg_lr_at(&o, 0) - 1e-4) < 1e-12);
    assert_true(fabs(tg_lr_at(&o, 9) - 1e-3) < 1e-12);
    assert_true(fabs(tg_lr_at(&o, 10) - 1e-3) < 1e-12);
    assert_true(fabs(tg_lr_at(&o, 60) - (1e-5 + (1e-3 - 1e-5) * 0.5)) < 1e-12);
    assert_true(fabs(tg_lr_at(&o, 110) - 1e-5) < 1e-12);
    assert_true(fabs(tg_lr_at(&o, 100000) - 1e-5) < 1e-12);
    for (int s = 10; s < 110; s++)
        assert_true(tg_lr_at(&o, s + 1) <= tg_lr_at(&o, s));
    o.warmup_steps = 0, o.decay_steps = 0;
    assert_true(tg_lr_at(&o, 12345) == 1e-3);
    float q[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_true(tg_risk_seeking_value(q, 8) == 6.5f);
    assert_true(tg_risk_seeking_value(q, 3) == 2.0f);
}

static void test_grad_norm_clip_decay(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("tiny", &cfg, NULL);
    const int B = 3;
    batch b;
    mk_batch(&cfg, B, &b);
    tg_batch_view bv = {.B = B, .tensors = b.t, .scalars = b.s, .tokens = b.a, .returns = b.r};
    tg_net *net = tg_net_new(&cfg, "cpu", B, 1, 4);
    size_t n = tg_net_n_params(net);
    float *g = malloc(n * 4), *w0 = malloc(n * 4), *w1 = malloc(n * 4);
    tg_losses l;
    assert_int_equal(tg_net_loss_grad(net, &bv, &l, g), 0);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    tg_net_get_params(net, w0);
    /* first AdamW step: every update is -lr * sign(g) (m / sqrt(v) = g / |g|) whatever the
     * clipping, plus decay -lr * wd * w on Linear weights only */
    tg_opt_config o;
    tg_opt_config_default(&o);
    o.lr = 1e-2, o.weight_decay = 0.5, o.grad_clip = 1e-3, o.eps = 1e-12;
    tg_net_set_opt(net, &o);
    tg_train_stats st;
    assert_int_equal(tg_net_train_step(net, &bv, &st), 0);
    assert_true(fabs(st.grad_norm - sqrt(ss)) < 1e-4 * sqrt(ss));
    assert_true(fabs(st.loss.total - l.total) < 1e-6 * fabs(l.total));
    assert_true(st.lr == 1e-2 && st.step == 1);
    tg_net_get_params(net, w1);
    const tg_params *tab = tg_net_params(net);
    int decayed = 0;
    for (int t = 0; t < tab->n; t++) {
        const tg_param *p = &tab->p[t];
        int is_weight = p->ndim == 2 && strcmp(p->name, "policy.pos") != 0;
        assert_int_equal(p->decay, is_weight);
        decayed += p->decay;
        for (size_t j = 0; j < p->size; j++) {
            size_t i = p->offset + j;
            /* entries whose clipped gradient is near eps do not move by exactly lr */
            if (fabs(g[i]) * o.grad_clip / sqrt(ss) < 1e-9)
                continue;
            double want = w0[i] * (1.0 - (p->decay ? o.lr * o.weight_decay : 0.0)) -
                          o.lr * (g[i] > 0 ? 1.0 : -1.0);
            assert_true(fabs(w1[i] - want) < 1e-5);
        }
    }
    assert_true(decayed > 0);
    /* a batch with a non-finite return is refused and changes nothing */
    b.r[1] = NAN;
    tg_net_get_params(net, w0);
    assert_int_equal(tg_net_train_step(net, &bv, &st), -1);
    assert_non_null(strstr(tg_errmsg(), "returns[1] is not finite"));
    tg_net_get_params(net, w1);
    assert_memory_equal(w0, w1, n * 4);
    int64_t step;
    tg_net_get_opt_state(net, NULL, NULL, &step);
    assert_int_equal(step, 1);
    free(g), free(w0), free(w1);
    free_batch(&b);
    tg_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_grad_norm_clip_decay),
        cmocka_unit_test(test_loss_falls_tenfold),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
