/* Backend-neutral front of the network: picks a backend and dispatches (see net.h). */
#include "learner/net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#ifdef TG_HAVE_CUDA
/* Weak so that a build with nvcc links before (or without) the CUDA backend's objects. */
extern const tg_net_ops tg_net_cuda_ops __attribute__((weak));
int tg_net_cuda_available(void) __attribute__((weak));
#endif

struct tg_net {
    const tg_net_ops *ops;
    void *impl;
    tg_params tab;
    tg_opt_config opt;
    int max_batch;
};

void tg_opt_config_default(tg_opt_config *o)
{
    *o = (tg_opt_config){.lr = 1e-3, .lr_min = 1e-3, .warmup_steps = 0, .decay_steps = 0,
                         .weight_decay = 0.0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                         .grad_clip = 0.0, .value_weight = 1.0};
}

void tg_opt_config_from_run(const tg_config *run, tg_opt_config *o)
{
    o->lr = run->train.lr;
    o->lr_min = run->train.lr_min;
    o->warmup_steps = run->train.warmup_steps;
    o->decay_steps = run->train.decay_steps;
    o->weight_decay = run->train.weight_decay;
    o->beta1 = run->train.beta1;
    o->beta2 = run->train.beta2;
    o->eps = run->train.eps;
    o->grad_clip = run->train.grad_clip;
    o->value_weight = run->train.value_weight;
}

double tg_lr_at(const tg_opt_config *o, int64_t step)
{
    if (step < o->warmup_steps)
        return o->lr * (double)(step + 1) / (double)o->warmup_steps;
    if (o->decay_steps <= 0)
        return o->lr;
    double t = (double)(step - o->warmup_steps) / (double)o->decay_steps;
    if (t > 1.0)
        t = 1.0;
    return o->lr_min + (o->lr - o->lr_min) * 0.5 * (1.0 + cos(M_PI * t));
}

float tg_risk_seeking_value(const float *q, int Q)
{
    int from = (int)floor(0.75 * Q);
    if (from >= Q)
        from = Q - 1;
    double s = 0;
    for (int i = from; i < Q; i++)
        s += q[i];
    return (float)(s / (Q - from));
}

tg_net *tg_net_new(const tg_net_config *cfg, const char *backend, int max_batch, int threads,
                   uint64_t seed)
{
    if (max_batch < 1) {
        tg_fail("tg_net_new: max_batch %d < 1", max_batch);
        return NULL;
    }
    const tg_net_ops *ops = NULL;
    if (!backend || !strcmp(backend, "auto")) {
        ops = &tg_net_cpu_ops;
#ifdef TG_HAVE_CUDA
        if (&tg_net_cuda_ops && tg_net_cuda_available && tg_net_cuda_available())
            ops = &tg_net_cuda_ops;
#endif
    } else if (!strcmp(backend, "cpu")) {
        ops = &tg_net_cpu_ops;
    } else if (!strcmp(backend, "cuda")) {
#ifdef TG_HAVE_CUDA
        if (&tg_net_cuda_ops)
            ops = &tg_net_cuda_ops;
#endif
        if (!ops) {
            tg_fail("backend 'cuda' is not built in (no nvcc at build time)");
            return NULL;
        }
    } else {
        tg_fail("unknown network backend '%s' (auto, cpu, cuda)", backend);
        return NULL;
    }
    tg_net *n = calloc(1, sizeof *n);
    if (!n) {
        tg_fail("out of memory");
        return NULL;
    }
    n->ops = ops;
    n->max_batch = max_batch;
    tg_opt_config_default(&n->opt);
    if (tg_params_build(cfg, &n->tab))
        goto fail;
    n->impl = ops->create(&n->tab, max_batch, threads, seed);
    if (!n->impl) {
        tg_fail_ctx("network backend %s: ", ops->name);
        goto fail;
    }
    return n;
fail:
    tg_params_free(&n->tab);
    free(n);
    return NULL;
}

void tg_net_free(tg_net *n)
{
    if (!n)
        return;
    if (n->impl)
        n->ops->destroy(n->impl);
    tg_params_free(&n->tab);
    free(n);
}

const char *tg_net_backend(const tg_net *n) { return n->ops->name; }
const tg_net_config *tg_net_config_of(const tg_net *n) { return &n->tab.cfg; }
const tg_params *tg_net_params(const tg_net *n) { return &n->tab; }
int tg_net_max_batch(const tg_net *n) { return n->max_batch; }
size_t tg_net_n_params(const tg_net *n) { return n->tab.total; }
void tg_net_set_opt(tg_net *n, const tg_opt_config *o) { n->opt = *o; }
const tg_opt_config *tg_net_opt(const tg_net *n) { return &n->opt; }

/* Inputs come from peers (replay batches, actors' requests): non-finite values are refused
 * here rather than turned into NaN losses or meaningless samples. */
static int check_finite(const float *x, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return tg_fail("%s[%zu] is not finite", what, i);
    return 0;
}

static int check_inputs(const tg_net *n, const float *tensors, const float *scalars, int B)
{
    const tg_net_config *c = &n->tab.cfg;
    if (!tensors || !scalars)
        return tg_fail("network input lacks an array");
    size_t nt = (size_t)B * c->T * c->S * c->S * c->S;
    return check_finite(tensors, nt, "tensors") ||
           check_finite(scalars, (size_t)B * c->n_scalars, "scalars") ? -1 : 0;
}

static int check_batch(const tg_net *n, const tg_batch_view *b, int need_returns)
{
    if (b->B < 1 || b->B > n->max_batch)
        return tg_fail("batch of %d outside [1, max_batch %d]", b->B, n->max_batch);
    if (!b->tensors || !b->scalars || !b->tokens || (need_returns && !b->returns))
        return tg_fail("batch view lacks an array");
    int nl = n->tab.cfg.n_logits;
    for (long i = 0; i < (long)b->B * n->tab.cfg.n_steps; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= nl)
            return tg_fail("batch token %ld = %d outside [0, %d)", i, b->tokens[i], nl);
    if (check_inputs(n, b->tensors, b->scalars, b->B) ||
        (need_returns && check_finite(b->returns, (size_t)b->B, "returns")))
        return -1;
    return 0;
}

int tg_net_train_step(tg_net *n, const tg_batch_view *b, tg_train_stats *out)
{
    if (check_batch(n, b, 1))
        return -1;
    return n->ops->train_step(n->impl, &n->opt, b, out);
}

int tg_net_loss_grad(tg_net *n, const tg_batch_view *b, tg_losses *loss, float *grads)
{
    if (check_batch(n, b, 1))
        return -1;
    return n->ops->loss_grad(n->impl, &n->opt, b, loss, grads);
}

int tg_net_forward(tg_net *n, const tg_batch_view *b, float *logits, float *quantiles,
                   float *torso)
{
    if (check_batch(n, b, 0))
        return -1;
    return n->ops->forward(n->impl, b, logits, quantiles, torso);
}

int tg_net_sample(tg_net *n, const float *tensors, const float *scalars, int N, int K,
                  float temperature, const float *uniforms, uint64_t seed, tg_eval_out *out)
{
    if (N < 1 || N > n->max_batch)
        return tg_fail("evaluation of %d positions outside [1, max_batch %d]", N, n->max_batch);
    if (K < 1)
        return tg_fail("samples per position %d < 1", K);
    if (!(temperature > 0.0f) || !isfinite(temperature))
        return tg_fail("sampling temperature %g must be positive", (double)temperature);
    if (check_inputs(n, tensors, scalars, N))
        return -1;
    if (uniforms)
        for (size_t i = 0; i < (size_t)N * K * n->tab.cfg.n_steps; i++)
            if (!(uniforms[i] >= 0.0f && uniforms[i] < 1.0f))
                return tg_fail("uniforms[%zu] = %g outside [0, 1)", i, (double)uniforms[i]);
    return n->ops->sample(n->impl, tensors, scalars, N, K, temperature, uniforms, seed, out);
}

int tg_net_greedy(tg_net *n, const float *tensors, const float *scalars, int N, int32_t *tokens,
                  float *quantiles)
{
    if (N < 1 || N > n->max_batch)
        return tg_fail("evaluation of %d positions outside [1, max_batch %d]", N, n->max_batch);
    if (check_inputs(n, tensors, scalars, N))
        return -1;
    return n->ops->greedy(n->impl, tensors, scalars, N, tokens, quantiles);
}

int tg_net_get_params(tg_net *n, float *dst) { return n->ops->get_params(n->impl, dst); }
int tg_net_set_params(tg_net *n, const float *src) { return n->ops->set_params(n->impl, src); }

int tg_net_get_opt_state(tg_net *n, float *m, float *v, int64_t *step)
{
    return n->ops->get_opt_state(n->impl, m, v, step);
}

int tg_net_set_opt_state(tg_net *n, const float *m, const float *v, int64_t step)
{
    if (step < 0)
        return tg_fail("optimizer step %lld < 0", (long long)step);
    return n->ops->set_opt_state(n->impl, m, v, step);
}
