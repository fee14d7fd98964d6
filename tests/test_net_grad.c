/* Backward pass against central finite differences on tiny configs: a few entries of every
 * parameter tensor (so every group: torso, policy self/cross blocks, embedding, positions,
 * value head) and configs other than the golden one (odd S, n_steps, several layers, the head
 * widths the attention unrolls). */
#include "tests/test_util.h"

#include <math.h>

#include "common/err.h"
#include "common/rng.h"
#include "learner/net.h"

typedef struct batch {
    int B;
    float *t, *s, *r;
    int32_t *a;
} batch;

static void mk_batch(const tg_net_config *c, int B, uint64_t seed, batch *b)
{
    tg_rng g;
    tg_rng_seed(&g, seed, 3);
    size_t nt = (size_t)B * c->T * c->S * c->S * c->S;
    b->B = B;
    b->t = malloc(nt * sizeof *b->t);
    b->s = malloc((size_t)B * c->n_scalars * sizeof *b->s);
    b->r = malloc((size_t)B * sizeof *b->r);
    b->a = malloc((size_t)B * c->n_steps * sizeof *b->a);
    for (size_t i = 0; i < nt; i++)
        b->t[i] = (float)((int)tg_rng_below(&g, 5) - 2);
    for (int i = 0; i < B * c->n_scalars; i++)
        b->s[i] = (float)tg_rng_uniform(&g);
    /* returns well away from the quantiles (the Huber kink at |d| = 1 and the sign at d = 0) */
    for (int i = 0; i < B; i++)
        b->r[i] = -3.0f - (float)tg_rng_below(&g, 5);
    for (int i = 0; i < B * c->n_steps; i++)
        b->a[i] = (int32_t)tg_rng_below(&g, (uint32_t)c->n_logits);
}

static void free_batch(batch *b)
{
    free(b->t), free(b->s), free(b->r), free(b->a);
}

/* Moves every parameter away from its neutral init (LayerNorm 1/0, pos 0) as the golden file
 * does, so that every gradient is generic. */
static void perturb(tg_net *net, uint64_t seed)
{
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof *w);
    tg_net_get_params(net, w);
    tg_rng g;
    tg_rng_seed(&g, seed, 9);
    const tg_params *tab = tg_net_params(net);
    for (int i = 0; i < tab->n; i++) {
        const tg_param *p = &tab->p[i];
        for (size_t j = 0; j < p->size; j++) {
            float *x = w + p->offset + j;
            if (p->ndim == 1 || !strcmp(p->name, "policy.pos"))
                *x += 0.2f * (float)tg_rng_normal(&g);
            else
                *x *= 1.5f;
        }
    }
    assert_int_equal(tg_net_set_params(net, w), 0);
    free(w);
}

static double loss_at(tg_net *net, float *w, size_t i, float v, const tg_batch_view *bv)
{
    float old = w[i];
    w[i] = v;
    assert_int_equal(tg_net_set_params(net, w), 0);
    tg_losses l;
    assert_int_equal(tg_net_loss_grad(net, bv, &l, NULL), 0);
    w[i] = old;
    return l.total;
}

static void check_config(const tg_net_config *cfg, int B, int per_tensor, uint64_t seed)
{
    tg_net *net = tg_net_new(cfg, "cpu", B, 1, seed);
    if (!net)
        fail_msg("%s", tg_errmsg());
    perturb(net, seed);
    batch b;
    mk_batch(cfg, B, seed, &b);
    tg_batch_view bv = {.B = B, .tensors = b.t, .scalars = b.s, .tokens = b.a, .returns = b.r};
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof *w), *g = malloc(n * sizeof *g);
    tg_net_get_params(net, w);
    tg_losses l0;
    assert_int_equal(tg_net_loss_grad(net, &bv, &l0, g), 0);
    const tg_params *tab = tg_net_params(net);
    tg_rng pick;
    tg_rng_seed(&pick, seed, 11);
    int checked = 0, bad = 0;
    double gmax = 0;
    for (size_t i = 0; i < n; i++)
        gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (int t = 0; t < tab->n; t++) {
        const tg_param *p = &tab->p[t];
        for (int k = 0; k < per_tensor; k++) {
            size_t i = p->offset + (k == 0 ? 0 : tg_rng_below(&pick, (uint32_t)p->size));
            /* embedding columns of tokens never fed get zero gradient: pick the start token */
            if (!strcmp(p->name, "policy.embed.weight"))
                i = p->offset + (size_t)(tg_rng_below(&pick, (uint32_t)p->shape[0])) *
                                    p->shape[1] + (size_t)cfg->n_logits;
            float h = 2e-3f * (fabsf(w[i]) > 1.0f ? fabsf(w[i]) : 1.0f);
            double up = loss_at(net, w, i, w[i] + h, &bv);
            double dn = loss_at(net, w, i, w[i] - h, &bv);
            double num = (up - dn) / (2.0 * h), ana = g[i];
            double tol = 3e-2 * fabs(ana) + 2e-3 * gmax + 1e-4;
            checked++;
            if (fabs(num - ana) > tol) {
                bad++;
                print_message("  %s[%zu]: analytic %.6g numeric %.6g\n", p->name,
                              i - p->offset, ana, num);
            }
        }
    }
    print_message("checked %d entries in %d tensors (max |grad| %.3g): %d off\n", checked,
                  tab->n, gmax, bad);
    /* seeds are fixed and h is small, so no ReLU / Huber kink lies inside [w - h, w + h] for
     * the entries checked; a single off entry is a bug (a 10% error in policy.pos is caught) */
    assert_int_equal(bad, 0);
    free(w);
    free(g);
    free_batch(&b);
    tg_net_free(net);
}

static void test_grad_tiny(void **state)
{
    (void)state;
    tg_net_config cfg;
    assert_int_equal(tg_net_config_preset("tiny", &cfg, NULL), 0);
    check_config(&cfg, 3, 4, 1);
}

static void test_grad_other_shapes(void **state)
{
    (void)state;
    /* odd S, longer history, 5 steps of 3 tokens, more layers, one value layer, 3 quantiles */
    tg_net_config cfg = {.S = 3, .T = 3, .n_scalars = 1, .c = 12, .layers = 2, .heads = 3,
                         .head_dim = 4, .widen = 3, .n_steps = 5, .n_logits = 7, .p_feat = 3,
                         .p_heads = 2, .p_layers = 2, .v_hidden = 10, .v_layers = 1,
                         .quantiles = 3};
    check_config(&cfg, 2, 3, 2);
}

static void test_grad_wide_heads(void **state)
{
    (void)state;
    /* head widths 16 (torso) and 32 (policy): the attention's unrolled paths (the others above
     * run its general one) */
    tg_net_config cfg = {.S = 2, .T = 2, .n_scalars = 1, .c = 16, .layers = 1, .heads = 2,
                         .head_dim = 16, .widen = 2, .n_steps = 3, .n_logits = 5, .p_feat = 32,
                         .p_heads = 1, .p_layers = 1, .v_hidden = 8, .v_layers = 1,
                         .quantiles = 3};
    check_config(&cfg, 2, 3, 3);
}

/* The thread pool's chunking (GEMM rows, LayerNorm partial sums, attention by sequence) gives
 * the single-threaded results: 3 threads over batch sizes that do not divide evenly. */
static void test_threads_agree(void **state)
{
    (void)state;
    tg_net_config cfg = {.S = 3, .T = 2, .n_scalars = 1, .c = 32, .layers = 2, .heads = 2,
                         .head_dim = 6, .widen = 2, .n_steps = 3, .n_logits = 11, .p_feat = 5,
                         .p_heads = 2, .p_layers = 1, .v_hidden = 7, .v_layers = 2,
                         .quantiles = 4};
    const int B = 7, K = 5;
    tg_net *one = tg_net_new(&cfg, "cpu", B, 1, 8), *three = tg_net_new(&cfg, "cpu", B, 3, 8);
    assert_non_null(one);
    assert_non_null(three);
    perturb(one, 8);
    size_t n = tg_net_n_params(one);
    float *w = malloc(n * 4), *g1 = malloc(n * 4), *g3 = malloc(n * 4);
    tg_net_get_params(one, w);
    assert_int_equal(tg_net_set_params(three, w), 0);
    batch b;
    mk_batch(&cfg, B, 8, &b);
    tg_batch_view bv = {.B = B, .tensors = b.t, .scalars = b.s, .tokens = b.a, .returns = b.r};
    tg_losses l1, l3;
    assert_int_equal(tg_net_loss_grad(one, &bv, &l1, g1), 0);
    assert_int_equal(tg_net_loss_grad(three, &bv, &l3, g3), 0);
    assert_true(fabs(l1.total - l3.total) < 1e-5 * fabs(l1.total));
    double gmax = 0, dmax = 0;
    for (size_t i = 0; i < n; i++) {
        gmax = fabs(g1[i]) > gmax ? fabs(g1[i]) : gmax;
        dmax = fabs(g1[i] - g3[i]) > dmax ? fabs(g1[i] - g3[i]) : dmax;
    }
    assert_true(dmax <= 1e-5 * gmax);
    int32_t t1[7 * 5 * 3], t3[7 * 5 * 3];
    float v1[7], v3[7];
    tg_eval_out o1 = {.tokens = t1, .value = v1}, o3 = {.tokens = t3, .value = v3};
    assert_int_equal(tg_net_sample(one, b.t, b.s, B, K, 1.0f, NULL, 5, &o1), 0);
    assert_int_equal(tg_net_sample(three, b.t, b.s, B, K, 1.0f, NULL, 5, &o3), 0);
    assert_memory_equal(t1, t3, sizeof t1);
    for (int i = 0; i < B; i++)
        assert_true(fabsf(v1[i] - v3[i]) < 1e-5f * (1 + fabsf(v1[i])));
    free(w), free(g1), free(g3);
    free_batch(&b);
    tg_net_free(one);
    tg_net_free(three);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_agree),
        cmocka_unit_test(test_grad_tiny),
        cmocka_unit_test(test_grad_other_shapes),
        cmocka_unit_test(test_grad_wide_heads),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
