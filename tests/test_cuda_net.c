/* The CUDA backend against the golden file and against the CPU backend (the fp32 reference).
 *
 * bf16 tolerances (stated here, used below): outputs and losses 3e-2 relative to the largest
 * reference magnitude, gradients 6e-2 per parameter group against the golden file and 0.15
 * norm-wise per group against the CPU backend (see test_vs_cpu); bf16 keeps 8 mantissa bits (4e-3 per
 * rounding) and the errors of ~30 chained GEMM inputs compound. Training: 200 AdamW steps on a
 * fixed batch from the same initial weights give the CPU backend's curve up to a few steps of
 * lag (see test_training_matches). Skips (reported) without a CUDA device. */
#include <math.h>

#include "tests/test_util.h"

#ifdef TG_HAVE_CUDA
#include "common/err.h"
#include "common/rng.h"
#include "learner/cuda/cuda_api.h"
#include "learner/golden.h"
#include "learner/net.h"

#define SKIP_NO_GPU()                                                                          \
    do {                                                                                       \
        if (tg_cuda_devices() < 1)                                                             \
            skip();                                                                            \
    } while (0)

static double rel(const float *a, const float *b, size_t n)
{
    double mx = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        mx = fmax(mx, fabs(b[i]));
        e = fmax(e, fabs((double)a[i] - b[i]));
    }
    return mx > 0 ? e / mx : e;
}

static void test_golden(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    char path[1024];
    snprintf(path, sizeof path, "%s/spec/golden_small.h5", tg_test_shared());
    tg_golden_tol tol = {.outputs = 3e-2, .losses = 3e-2, .grads = 6e-2};
    tg_golden_result res;
    if (tg_golden_check(path, "cuda", 0, &tol, stdout, 0, &res))
        fail_msg("golden: %s", tg_errmsg());
    assert_true(res.worst_output <= tol.outputs);
    assert_true(res.worst_loss <= tol.losses);
    assert_true(res.worst_grad <= tol.grads);
    assert_true(res.tokens_equal);
}

/* A mid-size config: every dimension differs from the golden one. */
static void mid_config(tg_net_config *c)
{
    *c = (tg_net_config){.S = 5, .T = 3, .n_scalars = 2, .c = 64, .layers = 2, .heads = 4,
                         .head_dim = 16, .widen = 2, .n_steps = 5, .n_logits = 27, .p_feat = 16,
                         .p_heads = 4, .p_layers = 2, .v_hidden = 48, .v_layers = 2,
                         .quantiles = 8};
}

typedef struct batch {
    int B;
    float *t, *s, *r;
    int32_t *a;
} batch;

static void mk_batch(const tg_net_config *c, int B, uint64_t seed, batch *b)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 0);
    size_t nt = (size_t)B * c->T * c->S * c->S * c->S;
    b->B = B;
    b->t = malloc(nt * 4);
    b->s = malloc((size_t)B * c->n_scalars * 4);
    b->r = malloc((size_t)B * 4);
    b->a = malloc((size_t)B * c->n_steps * 4);
    for (size_t i = 0; i < nt; i++)
        b->t[i] = (float)((int)tg_rng_below(&r, 5) - 2);
    for (int i = 0; i < B * c->n_scalars; i++)
        b->s[i] = (float)tg_rng_uniform(&r);
    for (int i = 0; i < B; i++)
        b->r[i] = -(float)(1 + tg_rng_below(&r, 12));
    for (int i = 0; i < B * c->n_steps; i++)
        b->a[i] = (int32_t)tg_rng_below(&r, (uint32_t)c->n_logits);
}

static void free_batch(batch *b)
{
    free(b->t), free(b->s), free(b->r), free(b->a);
}

/* CPU and CUDA nets with the same weights */
static void pair(const tg_net_config *c, int maxb, tg_net **cpu, tg_net **gpu)
{
    *cpu = tg_net_new(c, "cpu", maxb, 0, 5);
    *gpu = tg_net_new(c, "cuda", maxb, 0, 6);
    if (!*cpu || !*gpu)
        fail_msg("net: %s", tg_errmsg());
    size_t n = tg_net_n_params(*cpu);
    float *p = malloc(n * 4), *q = malloc(n * 4);
    /* PyTorch's init leaves LayerNorm at 1/0: perturb so every parameter matters */
    assert_int_equal(tg_net_get_params(*cpu, p), 0);
    tg_rng r;
    tg_rng_seed(&r, 99, 0);
    for (size_t i = 0; i < n; i++)
        p[i] += (float)(0.05 * tg_rng_normal(&r));
    assert_int_equal(tg_net_set_params(*cpu, p), 0);
    assert_int_equal(tg_net_set_params(*gpu, p), 0);
    assert_int_equal(tg_net_get_params(*gpu, q), 0);
    assert_memory_equal(p, q, n * 4); /* parameter round trip through the device is exact */
    free(p), free(q);
}

/* head widths the tensor-core attention takes: 32 in the torso, 64 in the policy head */
static void mid_config_mma(tg_net_config *c)
{
    mid_config(c);
    c->head_dim = 32;
    c->heads = 2;
    c->p_feat = 64;
    c->p_heads = 2;
}

/* A CUDA net created with var=val in the environment (the backend reads its switches at
 * creation), the variable restored afterwards. */
static tg_net *net_with_env(const tg_net_config *c, int B, uint64_t seed, const char *var,
                            const char *val)
{
    const char *old = getenv(var);
    char keep[64];
    snprintf(keep, sizeof keep, "%s", old ? old : "");
    setenv(var, val, 1);
    tg_net *n = tg_net_new(c, "cuda", B, 0, seed);
    if (old)
        setenv(var, keep, 1);
    else
        unsetenv(var);
    return n;
}

/* The CPU backend's sampling uniforms: position i's per values from stream i of seed. */
static void host_uniforms(uint64_t seed, int N, long per, float *u)
{
    for (int i = 0; i < N; i++) {
        tg_rng r;
        tg_rng_seed(&r, seed, (uint64_t)i);
        for (long j = 0; j < per; j++)
            u[(long)i * per + j] = (float)tg_rng_uniform(&r);
    }
}

static void vs_cpu_b(const tg_net_config *cfg, int B)
{
    tg_net_config c = *cfg;
    tg_net *cpu, *gpu;
    pair(&c, B, &cpu, &gpu);
    batch b;
    mk_batch(&c, B, 3, &b);
    tg_batch_view bv = {B, b.t, b.s, b.a, b.r};
    size_t nl = (size_t)B * c.n_steps * c.n_logits, nq = (size_t)B * c.quantiles,
           ne = (size_t)B * 3 * c.S * c.S * c.c, np = tg_net_n_params(cpu);
    float *l1 = malloc(nl * 4), *l2 = malloc(nl * 4), *q1 = malloc(nq * 4), *q2 = malloc(nq * 4),
          *e1 = malloc(ne * 4), *e2 = malloc(ne * 4), *g1 = malloc(np * 4), *g2 = malloc(np * 4);
    assert_int_equal(tg_net_forward(cpu, &bv, l1, q1, e1), 0);
    assert_int_equal(tg_net_forward(gpu, &bv, l2, q2, e2), 0);
    double et = rel(e2, e1, ne), el = rel(l2, l1, nl), eq = rel(q2, q1, nq);
    print_message("cuda vs cpu forward: torso %.2e logits %.2e quantiles %.2e\n", et, el, eq);
    assert_true(et < 3e-2 && el < 3e-2 && eq < 3e-2);
    tg_losses L1, L2;
    assert_int_equal(tg_net_loss_grad(cpu, &bv, &L1, g1), 0);
    assert_int_equal(tg_net_loss_grad(gpu, &bv, &L2, g2), 0);
    print_message("losses cpu %.6f (%.6f + %.6f) cuda %.6f (%.6f + %.6f)\n", L1.total, L1.policy,
                  L1.value, L2.total, L2.policy, L2.value);
    assert_true(fabs(L2.total - L1.total) <= 3e-2 * fabs(L1.total));
    /* per parameter group, norm-wise: ||cuda - cpu|| / ||cpu|| (a tensor whose true gradient is
     * ~0, such as the key bias under softmax's shift invariance, is judged with its group; the
     * largest elementwise error is dominated by bf16 rounding of a few near-cancelling sums) */
    const tg_params *tab = tg_net_params(cpu);
    double worst = 0;
    for (int i = 0; i < tab->n;) {
        char grp[128], g2n[128];
        tg_params_group(tab, i, grp, sizeof grp);
        double mx = 0, e = 0; /* squared norms */
        int j = i;
        for (; j < tab->n; j++) {
            tg_params_group(tab, j, g2n, sizeof g2n);
            if (strcmp(grp, g2n))
                break;
            for (size_t k = 0; k < tab->p[j].size; k++) {
                size_t o = tab->p[j].offset + k;
                mx += (double)g1[o] * g1[o];
                e += ((double)g2[o] - g1[o]) * ((double)g2[o] - g1[o]);
            }
        }
        double r = mx > 0 ? sqrt(e / mx) : sqrt(e);
        if (r > worst)
            worst = r;
        if (r > 5e-2)
            print_message("gradient group %s: relative error %.3g\n", grp, r);
        i = j;
    }
    print_message("cuda vs cpu gradients: worst group %.2e (norm-wise)\n", worst);
    /* measured on an H100 (2026-11-25): 5e-2 to 1e-1 per group (torso.scalar_proj worst), while
     * the same code is within 1.4e-2 of the float64 golden gradients; the bf16 noise of these
     * small default-initialised gradients is the suspected cause, not yet confirmed */
    assert_true(worst < 0.15);
    /* greedy decoding and sampling with the same uniforms */
    int N = B, K = 4, Ls = c.n_steps;
    int32_t *t1 = malloc(N * Ls * 4), *t2 = malloc(N * Ls * 4);
    assert_int_equal(tg_net_greedy(cpu, b.t, b.s, N, t1, q1), 0);
    assert_int_equal(tg_net_greedy(gpu, b.t, b.s, N, t2, q2), 0);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += !memcmp(t1 + i * Ls, t2 + i * Ls, Ls * 4);
    print_message("greedy: %d of %d positions decode identically\n", same, N);
    assert_true(same >= N * 3 / 4);
    assert_true(rel(q2, q1, nq) < 3e-2);
    float *u = malloc((size_t)N * K * Ls * 4), *lp1 = malloc(N * K * 4), *lp2 = malloc(N * K * 4);
    int32_t *s1 = malloc((size_t)N * K * Ls * 4), *s2 = malloc((size_t)N * K * Ls * 4);
    float *v1 = malloc(N * 4), *v2 = malloc(N * 4);
    tg_rng r;
    tg_rng_seed(&r, 4, 0);
    for (int i = 0; i < N * K * Ls; i++)
        u[i] = (float)tg_rng_uniform(&r);
    tg_eval_out o1 = {.tokens = s1, .logp = lp1, .value = v1},
                o2 = {.tokens = s2, .logp = lp2, .value = v2};
    assert_int_equal(tg_net_sample(cpu, b.t, b.s, N, K, 1.0f, u, 0, &o1), 0);
    assert_int_equal(tg_net_sample(gpu, b.t, b.s, N, K, 1.0f, u, 0, &o2), 0);
    same = 0;
    for (int i = 0; i < N * K; i++)
        same += !memcmp(s1 + i * Ls, s2 + i * Ls, Ls * 4);
    print_message("sampling: %d of %d actions identical\n", same, N * K);
    assert_true(same >= N * K * 3 / 4);
    assert_true(rel(v2, v1, N) < 3e-2);
    free(u), free(lp1), free(lp2), free(s1), free(s2), free(v1), free(v2), free(t1), free(t2);
    free(l1), free(l2), free(q1), free(q2), free(e1), free(e2), free(g1), free(g2);
    free_batch(&b);
    tg_net_free(cpu);
    tg_net_free(gpu);
}

static void vs_cpu(const tg_net_config *cfg) { vs_cpu_b(cfg, 24); }

/* t_net_golden.sh's odd config (the NumPy golden file's defaults with its overrides): no width
 * a multiple of 8 and no two equal, head widths 2 and 3; an odd batch puts cross-attention's dk
 * view (dq + B n_steps P elements) at a 2-byte offset, as views of the fused projections'
 * weights are at any batch */
static void odd_config(tg_net_config *c)
{
    *c = (tg_net_config){.S = 3, .T = 2, .n_scalars = 2, .c = 6, .layers = 1, .heads = 2,
                         .head_dim = 2, .widen = 2, .n_steps = 5, .n_logits = 7, .p_feat = 3,
                         .p_heads = 3, .p_layers = 1, .v_hidden = 5, .v_layers = 2,
                         .quantiles = 3};
}

static void test_vs_cpu_odd(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    odd_config(&c);
    vs_cpu_b(&c, 7);
    c.layers = 2; /* stage-to-stage transitions across layers, two policy layers */
    c.p_layers = 2;
    vs_cpu_b(&c, 2);
}

static void test_vs_cpu(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config(&c);
    vs_cpu(&c);
}

static void test_vs_cpu_mma(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config_mma(&c);
    vs_cpu(&c);
}

/* KV-cached sampling equals teacher forcing of the sampled tokens (out.logits recomputes). */
static void sample_consistent(const tg_net_config *cfg, int K)
{
    tg_net_config c = *cfg;
    int N = 6, L = c.n_steps;
    tg_net *gpu = tg_net_new(&c, "cuda", 16, 0, 11);
    assert_non_null(gpu);
    batch b;
    mk_batch(&c, N, 8, &b);
    float *lg = malloc((size_t)N * K * L * c.n_logits * 4), *lp = malloc(N * K * 4);
    int32_t *tok = malloc((size_t)N * K * L * 4);
    tg_eval_out o = {.tokens = tok, .logp = lp, .logits = lg};
    assert_int_equal(tg_net_sample(gpu, b.t, b.s, N, K, 0.7f, NULL, 3, &o), 0);
    for (int r = 0; r < N * K; r++) {
        double s = 0;
        for (int t = 0; t < L; t++) {
            const float *x = lg + ((size_t)r * L + t) * c.n_logits;
            int tk = tok[r * L + t];
            assert_true(tk >= 0 && tk < c.n_logits);
            double m = -1e30, z = 0;
            for (int i = 0; i < c.n_logits; i++)
                m = fmax(m, x[i] / 0.7);
            for (int i = 0; i < c.n_logits; i++)
                z += exp(x[i] / 0.7 - m);
            s += x[tk] / 0.7 - m - log(z);
        }
        assert_true(fabs(s - lp[r]) < 0.05 + 0.03 * fabs(s));
    }
    /* without uniforms the device draws the CPU backend's (stream i of the seed for position i):
     * the same as passing those uniforms */
    float *u = malloc((size_t)N * K * L * 4), *lp2 = malloc(N * K * 4);
    int32_t *tok2 = malloc((size_t)N * K * L * 4);
    host_uniforms(3, N, (long)K * L, u);
    tg_eval_out o2 = {.tokens = tok2, .logp = lp2};
    assert_int_equal(tg_net_sample(gpu, b.t, b.s, N, K, 0.7f, u, 99, &o2), 0);
    assert_memory_equal(tok2, tok, (size_t)N * K * L * 4);
    assert_memory_equal(lp2, lp, (size_t)N * K * 4);
    free(u), free(lp2), free(tok2);
    free(lg), free(lp), free(tok);
    free_batch(&b);
    tg_net_free(gpu);
}

static void test_sample_consistent(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config(&c);
    sample_consistent(&c, 3);
    odd_config(&c);
    sample_consistent(&c, 3);
    sample_consistent(&c, 8); /* K >= 8: decoding's cross-attention by the shared-key kernel */
}

/* Graphs (on by default; TG_CUDA_GRAPH=0 off): the first decoding of a shape runs plain, the
 * second is captured, later ones replay the graph. Replays give the plain run's bits on the same
 * inputs, follow new inputs and uniforms (nothing of a call's data is baked into the graph), and
 * agree with a net without graphs (the same weights; its GEMM tuner may pick other kernels, so
 * within bf16 rounding). */
static void test_graph_decode(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config_mma(&c);
    int N = 8, K = 3, L = c.n_steps, Q = c.quantiles;
    tg_net *g = net_with_env(&c, 16, 5, "TG_CUDA_GRAPH", "1");
    tg_net *p = net_with_env(&c, 16, 6, "TG_CUDA_GRAPH", "0");
    assert_non_null(g);
    assert_non_null(p);
    size_t np = tg_net_n_params(g);
    float *w = malloc(np * 4);
    assert_int_equal(tg_net_get_params(g, w), 0);
    assert_int_equal(tg_net_set_params(p, w), 0);
    batch x, y;
    mk_batch(&c, N, 8, &x);
    mk_batch(&c, N, 9, &y);
    int32_t *t[5];
    float *q[5];
    for (int i = 0; i < 5; i++) {
        t[i] = malloc((size_t)N * L * 4);
        q[i] = malloc((size_t)N * Q * 4);
    }
    long l0 = tg_cuda_graph_launches();
    assert_int_equal(tg_net_greedy(g, x.t, x.s, N, t[0], q[0]), 0); /* plain */
    assert_int_equal(tg_net_greedy(g, y.t, y.s, N, t[1], q[1]), 0); /* captured, launched */
    assert_int_equal(tg_net_greedy(g, x.t, x.s, N, t[2], q[2]), 0); /* replayed */
    assert_int_equal(tg_net_greedy(g, y.t, y.s, N, t[3], q[3]), 0); /* replayed */
    assert_int_equal(tg_net_greedy(p, y.t, y.s, N, t[4], q[4]), 0); /* no graph */
    long greedy_launches = tg_cuda_graph_launches() - l0;
    print_message("graph decoding: %ld greedy launches from a graph; quantiles: replay vs plain "
                  "%.2e, graph vs no-graph net %.2e, position x vs y %.2e\n", greedy_launches,
                  rel(q[2], q[0], (size_t)N * Q), rel(q[3], q[4], (size_t)N * Q),
                  rel(q[1], q[0], (size_t)N * Q));
    assert_int_equal(greedy_launches, 3);
    assert_memory_equal(t[2], t[0], (size_t)N * L * 4);
    assert_memory_equal(q[2], q[0], (size_t)N * Q * 4);
    assert_memory_equal(t[3], t[1], (size_t)N * L * 4);
    assert_memory_equal(q[3], q[1], (size_t)N * Q * 4);
    assert_true(rel(q[1], q[0], (size_t)N * Q) > 1e-3); /* x and y do differ */
    assert_true(rel(q[3], q[4], (size_t)N * Q) < 3e-2);
    int same = 0;
    for (int i = 0; i < N; i++)
        same += !memcmp(t[3] + i * L, t[4] + i * L, L * 4);
    assert_true(same >= 6);
    /* new weights (the inference service's publications) go into the same buffers: the replay
     * follows them */
    for (size_t i = 0; i < np; i++)
        w[i] *= 1.25f;
    assert_int_equal(tg_net_set_params(g, w), 0);
    assert_int_equal(tg_net_set_params(p, w), 0);
    assert_int_equal(tg_net_greedy(g, y.t, y.s, N, t[3], q[3]), 0); /* replayed */
    assert_int_equal(tg_net_greedy(p, y.t, y.s, N, t[4], q[4]), 0);
    print_message("graph decoding after new weights: quantiles vs no-graph net %.2e, vs the old "
                  "weights %.2e\n", rel(q[3], q[4], (size_t)N * Q), rel(q[3], q[1], (size_t)N * Q));
    assert_true(rel(q[3], q[4], (size_t)N * Q) < 3e-2);
    assert_true(rel(q[3], q[1], (size_t)N * Q) > 1e-3);
    greedy_launches++;
    /* sampling: new uniforms each call go through the same graph */
    float *u = malloc((size_t)N * K * L * 4), *u2 = malloc((size_t)N * K * L * 4);
    int32_t *st[4];
    float *lp[4];
    tg_rng r;
    tg_rng_seed(&r, 17, 0);
    for (long i = 0; i < (long)N * K * L; i++) {
        u[i] = (float)tg_rng_uniform(&r);
        u2[i] = (float)tg_rng_uniform(&r);
    }
    for (int i = 0; i < 4; i++) {
        st[i] = malloc((size_t)N * K * L * 4);
        lp[i] = malloc((size_t)N * K * 4);
        tg_eval_out o = {.tokens = st[i], .logp = lp[i]};
        assert_int_equal(tg_net_sample(g, x.t, x.s, N, K, 0.7f, i % 2 ? u2 : u, 1, &o), 0);
    }
    print_message("graph sampling: %ld launches from a graph\n",
                  tg_cuda_graph_launches() - l0 - greedy_launches);
    assert_int_equal(tg_cuda_graph_launches() - l0 - greedy_launches, 3);
    assert_memory_equal(st[2], st[0], (size_t)N * K * L * 4);
    assert_memory_equal(lp[2], lp[0], (size_t)N * K * 4);
    assert_memory_equal(st[3], st[1], (size_t)N * K * L * 4);
    assert_true(memcmp(st[0], st[1], (size_t)N * K * L * 4) != 0); /* the uniforms count */
    /* uniforms drawn on the device from each call's seed (seeds 5, 6, 5: plain, captured,
     * replayed), against the same uniforms drawn here and passed in (that shape's graph replays) */
    long l1 = tg_cuda_graph_launches();
    static const uint64_t seeds[3] = {5, 6, 5};
    for (int i = 0; i < 3; i++) {
        tg_eval_out o = {.tokens = st[i], .logp = lp[i]};
        assert_int_equal(tg_net_sample(g, x.t, x.s, N, K, 0.7f, NULL, seeds[i], &o), 0);
    }
    host_uniforms(6, N, (long)K * L, u);
    tg_eval_out o3 = {.tokens = st[3], .logp = lp[3]};
    assert_int_equal(tg_net_sample(g, x.t, x.s, N, K, 0.7f, u, 0, &o3), 0);
    assert_int_equal(tg_cuda_graph_launches() - l1, 3);
    assert_memory_equal(st[2], st[0], (size_t)N * K * L * 4);
    assert_memory_equal(st[3], st[1], (size_t)N * K * L * 4);
    assert_memory_equal(lp[3], lp[1], (size_t)N * K * 4);
    assert_true(memcmp(st[0], st[1], (size_t)N * K * L * 4) != 0); /* the seed counts */
    for (int i = 0; i < 5; i++)
        free(t[i]), free(q[i]);
    for (int i = 0; i < 4; i++)
        free(st[i]), free(lp[i]);
    free(u), free(u2), free(w);
    free_batch(&x);
    free_batch(&y);
    tg_net_free(g);
    tg_net_free(p);
}

static void train_curve(const char *backend, const tg_net_config *c, const float *p0, batch *b,
                        int steps, double *curve)
{
    tg_net *n = tg_net_new(c, backend, b->B, 0, 1);
    if (!n)
        fail_msg("%s", tg_errmsg());
    assert_int_equal(tg_net_set_params(n, p0), 0);
    tg_opt_config o;
    tg_opt_config_default(&o);
    o.lr = 1e-3;
    o.weight_decay = 1e-4;
    o.grad_clip = 1.0;
    o.warmup_steps = 10;
    tg_net_set_opt(n, &o);
    tg_batch_view bv = {b->B, b->t, b->s, b->a, b->r};
    for (int i = 0; i < steps; i++) {
        tg_train_stats st;
        if (tg_net_train_step(n, &bv, &st))
            fail_msg("%s step %d: %s", backend, i, tg_errmsg());
        curve[i] = st.loss.total;
    }
    tg_net_free(n);
}

static void test_training_matches(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config(&c);
    batch b;
    mk_batch(&c, 16, 21, &b);
    tg_net *init = tg_net_new(&c, "cpu", 16, 0, 77);
    assert_non_null(init);
    size_t np = tg_net_n_params(init);
    float *p0 = malloc(np * 4);
    assert_int_equal(tg_net_get_params(init, p0), 0);
    tg_net_free(init);
    enum { STEPS = 200 };
    double cc[STEPS], cg[STEPS];
    train_curve("cpu", &c, p0, &b, STEPS, cc);
    train_curve("cuda", &c, p0, &b, STEPS, cg);
    for (int i = 0; i < STEPS; i += 50)
        print_message("step %3d: loss cpu %.4f cuda %.4f\n", i, cc[i], cg[i]);
    print_message("step %3d: loss cpu %.4f cuda %.4f\n", STEPS - 1, cc[STEPS - 1], cg[STEPS - 1]);
    /* Same curve up to a few steps of lag: where the loss falls fastest (19 -> 4 -> 0.7 over
     * steps 0-100) one step of bf16 rounding noise moves a point by more than 10%, so each CUDA
     * point is held to the CPU curve's range over the 11 steps around it (widened by 10% + 0.05),
     * and the mean losses of the whole run to 10% of each other. */
    double mc = 0, mg = 0;
    for (int i = 0; i < STEPS; i++) {
        mc += cc[i] / STEPS;
        mg += cg[i] / STEPS;
    }
    print_message("mean loss over %d steps: cpu %.4f cuda %.4f\n", STEPS, mc, mg);
    assert_true(fabs(mg - mc) <= 0.1 * mc);
    static const int AT[] = {0, 50, 100, 150, STEPS - 1};
    for (size_t a = 0; a < sizeof AT / sizeof AT[0]; a++) {
        int i = AT[a];
        double lo = cc[i], hi = cc[i];
        for (int j = i - 5; j <= i + 5; j++)
            if (j >= 0 && j < STEPS) {
                lo = fmin(lo, cc[j]);
                hi = fmax(hi, cc[j]);
            }
        if (!(cg[i] >= lo - 0.1 * lo - 0.05 && cg[i] <= hi + 0.1 * hi + 0.05))
            fail_msg("step %d: cuda loss %.4f outside the cpu curve's range [%.4f, %.4f] (+-10%% + "
                     "0.05) over steps %d-%d", i, cg[i], lo, hi, i - 5, i + 5);
    }
    assert_true(cg[STEPS - 1] < 0.5 * cg[0]); /* and it learns */
    free(p0);
    free_batch(&b);
}

/* The batched-GEMM attention path, cuDNN's forward and backward graphs (where cuDNN takes the
 * shapes; the fused backward on cuDNN's statistics where only the forward is taken), and (at head widths the tensor-core kernels take) the older
 * fused kernels compute the same losses and gradients as the default kernels. */
static void paths_agree(const tg_net_config *cfg)
{
    tg_net_config c = *cfg;
    batch b;
    mk_batch(&c, 8, 5, &b);
    tg_batch_view bv = {8, b.t, b.s, b.a, b.r};
    tg_net *w = tg_net_new(&c, "cuda", 8, 0, 3);
    tg_net *g = net_with_env(&c, 8, 3, "TG_CUDA_ATTN", "gemm");
    tg_net *d = net_with_env(&c, 8, 3, "TG_CUDA_ATTN", "cudnn");
    tg_net *o = net_with_env(&c, 8, 3, "TG_CUDA_ATTN_MMA", "0");
    /* a scatter and a gather between torso stages */
    tg_net *sg = net_with_env(&c, 8, 3, "TG_CUDA_STAGE_FUSE", "0");
    /* the LayerNorm backwards' dy in fp32 instead of bf16 */
    tg_net *l32 = net_with_env(&c, 8, 3, "TG_CUDA_LN_DY32", "1");
    assert_non_null(w);
    assert_non_null(g);
    assert_non_null(o);
    assert_non_null(sg);
    assert_non_null(l32);
    if (!d)
        fail_msg("cudnn attention: %s", tg_errmsg());
    size_t np = tg_net_n_params(w);
    float *g1 = malloc(np * 4), *g2 = malloc(np * 4), *g3 = malloc(np * 4), *g4 = malloc(np * 4);
    tg_losses l1, l2, l3, l4;
    assert_int_equal(tg_net_loss_grad(w, &bv, &l1, g1), 0);
    assert_int_equal(tg_net_loss_grad(g, &bv, &l2, g2), 0);
    assert_int_equal(tg_net_loss_grad(d, &bv, &l3, g3), 0);
    assert_int_equal(tg_net_loss_grad(o, &bv, &l4, g4), 0);
    /* the stage copies are exact: only the GEMM tuner's choices may differ between the two nets */
    float *g5 = malloc(np * 4);
    tg_losses l5;
    assert_int_equal(tg_net_loss_grad(sg, &bv, &l5, g5), 0);
    print_message("stage copies: one transition %.6f, scatter and gather %.6f (gradients %.2e)\n",
                  l1.total, l5.total, rel(g5, g1, np));
    assert_true(fabs(l1.total - l5.total) < 1e-3 * fabs(l1.total));
    assert_true(rel(g5, g1, np) < 3e-2);
    /* the same forward; the backward differs by one bf16 rounding of each block's LayerNorm-
     * backward inputs (two, three in cross-attention), like the bf16 GEMM inputs it already has */
    tg_losses l6;
    assert_int_equal(tg_net_loss_grad(l32, &bv, &l6, g5), 0);
    print_message("LayerNorm backward dy: bf16 %.6f, fp32 %.6f (gradients %.2e)\n", l1.total,
                  l6.total, rel(g5, g1, np));
    assert_true(fabs(l1.total - l6.total) < 1e-3 * fabs(l1.total));
    assert_true(rel(g5, g1, np) < 3e-2);
    free(g5);
    tg_net_free(sg);
    tg_net_free(l32);
    print_message("head width %d/%d: default %.6f batched-GEMM %.6f (gradients %.2e) cuDNN "
                  "%.6f (%.2e) older fused kernels %.6f (%.2e)\n", c.head_dim, c.p_feat,
                  l1.total, l2.total, rel(g2, g1, np), l3.total, rel(g3, g1, np), l4.total,
                  rel(g4, g1, np));
    /* The batched-GEMM and tensor-core paths round the probabilities and dS to bf16 before their
     * products (as cuDNN and flash-attention do); the older fused kernels keep them in fp32. Each is
     * within 3e-2 of an fp64 reference kernel by kernel (test_cuda_kernels), but through the whole
     * network two paths of different rounding differ by up to ~4e-2 in the gradients (H100,
     * 2026-12-05: 2.6e-2 at head width 16, 4.3e-2 at 32 where the default is the tensor-core path),
     * so those pairs get the golden test's bf16 gradient tolerance; a broken path is off by O(1). */
    assert_true(fabs(l1.total - l2.total) < 1e-2 * fabs(l1.total));
    assert_true(rel(g2, g1, np) < 6e-2);
    assert_true(fabs(l1.total - l3.total) < 1e-2 * fabs(l1.total));
    /* cuDNN's path (its P rounded to bf16 before P V, like the batched-GEMM path): 2.7e-2 /
     * 2.8e-2 on the H100 once cuDNN took the forward graphs, with the default backward
     * (2026-12-05; the cuDNN backward graph came after that run) */
    assert_true(rel(g3, g1, np) < 6e-2);
    assert_true(fabs(l1.total - l4.total) < 1e-2 * fabs(l1.total));
    assert_true(rel(g4, g1, np) < 6e-2);
    /* greedy decoding through either attention gives the same tokens for most positions */
    int L = c.n_steps;
    int32_t *t1 = malloc(8 * L * 4), *t2 = malloc(8 * L * 4);
    assert_int_equal(tg_net_greedy(w, b.t, b.s, 8, t1, NULL), 0);
    assert_int_equal(tg_net_greedy(o, b.t, b.s, 8, t2, NULL), 0);
    int same = 0;
    for (int i = 0; i < 8; i++)
        same += !memcmp(t1 + i * L, t2 + i * L, L * 4);
    print_message("greedy: %d of 8 positions decode identically\n", same);
    assert_true(same >= 6);
    free(t1), free(t2);
    free(g1), free(g2), free(g3), free(g4);
    free_batch(&b);
    tg_net_free(w);
    tg_net_free(g);
    tg_net_free(d);
    tg_net_free(o);
}

static void test_attention_paths_agree(void **state)
{
    (void)state;
    SKIP_NO_GPU();
    tg_net_config c;
    mid_config(&c);
    paths_agree(&c);
    mid_config_mma(&c);
    paths_agree(&c);
    /* a torso width the vector stage kernels take (c = 128): the transition also computes the
     * next block's first LayerNorm there, and "stage copies" compares it with the LayerNorm kernel */
    c.c = 128;
    paths_agree(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_vs_cpu),
        cmocka_unit_test(test_vs_cpu_mma),
        cmocka_unit_test(test_vs_cpu_odd),
        cmocka_unit_test(test_sample_consistent),
        cmocka_unit_test(test_graph_decode),
        cmocka_unit_test(test_attention_paths_agree),
        cmocka_unit_test(test_training_matches),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}

#else

static void test_no_cuda(void **state)
{
    (void)state;
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_cuda)};
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
#endif
