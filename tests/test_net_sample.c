/* Inference: KV-cached sampling equals full recomputation (teacher-forced forward over the
 * sampled tokens gives the same logits, and the same uniforms pick the same tokens), value
 * quantiles and the risk-seeking value, greedy decoding, low temperature, bad arguments. */
#include "tests/test_util.h"

#include <math.h>

#include "common/err.h"
#include "common/rng.h"
#include "learner/golden.h"
#include "learner/net.h"

typedef struct fixture {
    tg_net_config cfg;
    tg_net *net;
    int N, K, L, NL, Q;
    float *t, *s, *u;
} fixture;

static void setup_net(fixture *f, const tg_net_config *cfg, int N, int K, int maxb)
{
    memset(f, 0, sizeof *f);
    f->cfg = *cfg;
    f->N = N, f->K = K, f->L = cfg->n_steps, f->NL = cfg->n_logits, f->Q = cfg->quantiles;
    f->net = tg_net_new(cfg, "cpu", maxb, 2, 42);
    if (!f->net)
        fail_msg("%s", tg_errmsg());
    /* sharpen the policy so that sampling is far from uniform, and shift LayerNorms */
    size_t n = tg_net_n_params(f->net);
    float *w = malloc(n * sizeof *w);
    tg_net_get_params(f->net, w);
    const tg_params *tab = tg_net_params(f->net);
    tg_rng g;
    tg_rng_seed(&g, 5, 0);
    for (int i = 0; i < tab->n; i++) {
        const tg_param *p = &tab->p[i];
        float mul = strstr(p->name, "embed.weight") || strstr(p->name, "policy.out.weight") ? 4.0f
                    : p->ndim == 2 ? 1.5f : 1.0f;
        for (size_t j = 0; j < p->size; j++) {
            w[p->offset + j] *= mul;
            if (p->ndim == 1)
                w[p->offset + j] += 0.1f * (float)tg_rng_normal(&g);
        }
    }
    assert_int_equal(tg_net_set_params(f->net, w), 0);
    free(w);
    size_t per = (size_t)cfg->T * cfg->S * cfg->S * cfg->S;
    f->t = malloc((size_t)maxb * per * sizeof *f->t);
    f->s = malloc((size_t)maxb * cfg->n_scalars * sizeof *f->s);
    f->u = malloc((size_t)N * K * f->L * sizeof *f->u);
    for (size_t i = 0; i < (size_t)N * per; i++)
        f->t[i] = (float)((int)tg_rng_below(&g, 3) - 1);
    for (int i = 0; i < N * cfg->n_scalars; i++)
        f->s[i] = (float)tg_rng_uniform(&g);
    for (int i = 0; i < N * K * f->L; i++)
        f->u[i] = (float)tg_rng_uniform(&g);
}

static void teardown_net(fixture *f)
{
    tg_net_free(f->net);
    free(f->t), free(f->s), free(f->u);
}

/* The token the inverse-CDF rule picks from logits l at temperature tau with uniform u. */
static int pick(const float *l, int n, float tau, float u, double *logp)
{
    double mx = l[0], s = 0;
    for (int j = 1; j < n; j++)
        mx = l[j] > mx ? l[j] : mx;
    for (int j = 0; j < n; j++)
        s += exp((l[j] - mx) / tau);
    double target = u * s, cum = 0;
    int choice = n - 1;
    for (int j = 0; j < n; j++) {
        cum += exp((l[j] - mx) / tau);
        if (cum > target) {
            choice = j;
            break;
        }
    }
    *logp = (l[choice] - mx) / tau - log(s);
    return choice;
}

static void test_kv_cache_equals_recompute(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("golden", &cfg, NULL);
    fixture f;
    const int N = 3, K = 5;
    setup_net(&f, &cfg, N, K, N * K);
    int L = f.L, NL = f.NL, Q = f.Q, R = N * K;
    float tau = 0.8f;
    int32_t *tok = malloc((size_t)R * L * sizeof *tok);
    float *logits = malloc((size_t)R * L * NL * sizeof *logits);
    float *logp = malloc((size_t)R * sizeof *logp), *quant = malloc((size_t)N * Q * sizeof *quant);
    float *value = malloc((size_t)N * sizeof *value);
    tg_eval_out eo = {.tokens = tok, .logp = logp, .quantiles = quant, .value = value,
                      .logits = logits};
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, N, K, tau, f.u, 0, &eo), 0);

    /* full recomputation: teacher-forced forward of every sampled action */
    size_t per = (size_t)cfg.T * cfg.S * cfg.S * cfg.S;
    float *bt = malloc((size_t)R * per * sizeof *bt), *bs = malloc((size_t)R * cfg.n_scalars * 4);
    for (int r = 0; r < R; r++) {
        memcpy(bt + r * per, f.t + (r / K) * per, per * sizeof *bt);
        memcpy(bs + r * cfg.n_scalars, f.s + (r / K) * cfg.n_scalars, cfg.n_scalars * 4);
    }
    float *fl = malloc((size_t)R * L * NL * sizeof *fl), *fq = malloc((size_t)R * Q * sizeof *fq);
    tg_batch_view bv = {.B = R, .tensors = bt, .scalars = bs, .tokens = tok};
    assert_int_equal(tg_net_forward(f.net, &bv, fl, fq, NULL), 0);
    double *ref = malloc((size_t)R * L * NL * sizeof *ref);
    for (size_t i = 0; i < (size_t)R * L * NL; i++)
        ref[i] = fl[i];
    double e = tg_rel_err(logits, ref, (size_t)R * L * NL);
    print_message("KV-cache logits vs recomputation: rel err %.3g\n", e);
    assert_true(e < 1e-5);
    int distinct = 0;
    for (int r = 0; r < R; r++) {
        double lp = 0;
        for (int t = 0; t < L; t++) {
            double l1;
            int c = pick(fl + ((size_t)r * L + t) * NL, NL, tau, f.u[r * L + t], &l1);
            assert_int_equal(c, tok[r * L + t]);
            lp += l1;
        }
        assert_true(fabs(lp - logp[r]) < 1e-3 * (1 + fabs(lp)));
        if (r % K && memcmp(tok + r * L, tok + (r - 1) * L, L * sizeof *tok))
            distinct++;
        for (int q = 0; q < Q; q++)
            assert_true(fabsf(fq[r * Q + q] - quant[(r / K) * Q + q]) < 1e-5f);
    }
    assert_true(distinct > 0); /* the samples of a position differ */
    for (int n = 0; n < N; n++) {
        int from = (int)floor(0.75 * Q);
        double m = 0;
        for (int q = from; q < Q; q++)
            m += quant[n * Q + q];
        assert_true(fabs(m / (Q - from) - value[n]) < 1e-6);
    }

    /* batching does not change a position's result (same uniforms) */
    int32_t tok1[64];
    float lp1[16];
    tg_eval_out e1 = {.tokens = tok1, .logp = lp1};
    assert_int_equal(tg_net_sample(f.net, f.t + per, f.s + cfg.n_scalars, 1, K, tau,
                                   f.u + K * L, 0, &e1), 0);
    assert_memory_equal(tok1, tok + K * L, (size_t)K * L * sizeof *tok);

    /* seeded draws (no uniforms) are reproducible */
    int32_t *t2 = malloc((size_t)R * L * sizeof *t2), *t3 = malloc((size_t)R * L * sizeof *t3);
    tg_eval_out e2 = {.tokens = t2}, e3 = {.tokens = t3};
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, N, K, 1.0f, NULL, 77, &e2), 0);
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, N, K, 1.0f, NULL, 77, &e3), 0);
    assert_memory_equal(t2, t3, (size_t)R * L * sizeof *t2);
    free(t2), free(t3);
    free(tok), free(logits), free(logp), free(quant), free(value), free(bt), free(bs), free(fl);
    free(fq), free(ref);
    teardown_net(&f);
}

static void test_greedy(void **state)
{
    (void)state;
    tg_net_config cfg = {.S = 3, .T = 2, .n_scalars = 1, .c = 16, .layers = 1, .heads = 2,
                         .head_dim = 8, .widen = 2, .n_steps = 3, .n_logits = 27, .p_feat = 4,
                         .p_heads = 3, .p_layers = 2, .v_hidden = 16, .v_layers = 2,
                         .quantiles = 4};
    fixture f;
    const int N = 4, K = 6;
    setup_net(&f, &cfg, N, K, N * K);
    int L = f.L, NL = f.NL, Q = f.Q;
    int32_t gt[64], st[256];
    float gq[64], sq[64];
    assert_int_equal(tg_net_greedy(f.net, f.t, f.s, N, gt, gq), 0);
    /* each greedy token is the argmax given the previous ones */
    float *fl = malloc((size_t)N * L * NL * sizeof *fl), *fq = malloc((size_t)N * Q * 4);
    tg_batch_view bv = {.B = N, .tensors = f.t, .scalars = f.s, .tokens = gt};
    assert_int_equal(tg_net_forward(f.net, &bv, fl, fq, NULL), 0);
    for (int n = 0; n < N; n++)
        for (int t = 0; t < L; t++) {
            const float *l = fl + ((size_t)n * L + t) * NL;
            int best = 0;
            for (int j = 1; j < NL; j++)
                if (l[j] > l[best])
                    best = j;
            assert_int_equal(best, gt[n * L + t]);
        }
    for (int i = 0; i < N * Q; i++)
        assert_true(fabsf(fq[i] - gq[i]) < 1e-5f);
    /* near-zero temperature samples the greedy action */
    tg_eval_out eo = {.tokens = st, .quantiles = sq};
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, N, K, 1e-4f, f.u, 0, &eo), 0);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            assert_memory_equal(st + (n * K + k) * L, gt + n * L, (size_t)L * sizeof *gt);
    free(fl), free(fq);
    teardown_net(&f);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("tiny", &cfg, NULL);
    fixture f;
    setup_net(&f, &cfg, 2, 2, 2);
    int32_t tok[64];
    tg_eval_out eo = {.tokens = tok};
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 3, 2, 1.0f, NULL, 0, &eo), -1);
    assert_non_null(strstr(tg_errmsg(), "max_batch"));
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 2, 0, 1.0f, NULL, 0, &eo), -1);
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 2, 2, 0.0f, NULL, 0, &eo), -1);
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 2, 2, NAN, NULL, 0, &eo), -1);
    float keep = f.t[3];
    f.t[3] = INFINITY;
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 2, 2, 1.0f, NULL, 0, &eo), -1);
    assert_non_null(strstr(tg_errmsg(), "tensors[3]"));
    assert_int_equal(tg_net_greedy(f.net, f.t, f.s, 2, tok, NULL), -1);
    f.t[3] = keep;
    f.s[1] = NAN;
    assert_int_equal(tg_net_greedy(f.net, f.t, f.s, 2, tok, NULL), -1);
    assert_non_null(strstr(tg_errmsg(), "scalars[1]"));
    f.s[1] = 0.5f;
    float u[64];
    for (int i = 0; i < 64; i++)
        u[i] = 0.5f;
    u[5] = 1.0f;
    assert_int_equal(tg_net_sample(f.net, f.t, f.s, 2, 2, 1.0f, u, 0, &eo), -1);
    assert_non_null(strstr(tg_errmsg(), "uniforms[5]"));
    int32_t bad[6] = {0, 1, 99, 0, 0, 0};
    float r[2] = {-1, -2};
    tg_batch_view bv = {.B = 2, .tensors = f.t, .scalars = f.s, .tokens = bad, .returns = r};
    tg_train_stats st;
    assert_int_equal(tg_net_train_step(f.net, &bv, &st), -1);
    assert_non_null(strstr(tg_errmsg(), "token"));
    assert_null(tg_net_new(&cfg, "tpu", 2, 1, 0));
    assert_non_null(strstr(tg_errmsg(), "tpu"));
    cfg.c = 0;
    assert_null(tg_net_new(&cfg, "cpu", 2, 1, 0));
    assert_non_null(strstr(tg_errmsg(), "c = 0"));
    teardown_net(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_cache_equals_recompute),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_bad_arguments),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
