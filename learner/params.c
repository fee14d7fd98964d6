/* The parameter table in named_parameters() order (see params.h). */
#include "learner/params.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rng.h"

typedef struct builder {
    tg_params *t;
    int cap;
} builder;

static int add(builder *bd, int ndim, int d0, int d1, int decay, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

static int add(builder *bd, int ndim, int d0, int d1, int decay, size_t *off, const char *fmt, ...)
{
    tg_params *t = bd->t;
    if (t->n == bd->cap) {
        int cap = bd->cap ? 2 * bd->cap : 64;
        tg_param *p = realloc(t->p, (size_t)cap * sizeof *p);
        if (!p)
            return tg_fail("out of memory (parameter table)");
        t->p = p;
        bd->cap = cap;
    }
    tg_param *p = &t->p[t->n++];
    memset(p, 0, sizeof *p);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = ndim;
    p->shape[0] = d0;
    p->shape[1] = ndim == 2 ? d1 : 1;
    p->size = (size_t)d0 * (size_t)p->shape[1];
    p->offset = t->total;
    p->decay = decay;
    t->total += p->size;
    if (off)
        *off = p->offset;
    return 0;
}

static int add_lin(builder *bd, tg_lin_off *l, int in, int out, const char *prefix)
{
    l->in = in;
    l->out = out;
    if (add(bd, 2, out, in, 1, &l->w, "%s.weight", prefix) ||
        add(bd, 1, out, 0, 0, &l->b, "%s.bias", prefix))
        return -1;
    return 0;
}

static int add_ln(builder *bd, tg_ln_off *l, int n, const char *prefix)
{
    l->n = n;
    if (add(bd, 1, n, 0, 0, &l->w, "%s.weight", prefix) ||
        add(bd, 1, n, 0, 0, &l->b, "%s.bias", prefix))
        return -1;
    return 0;
}

static int add_block(builder *bd, tg_block_off *b, int cx, int heads, int head_dim, int widen,
                     int cy, int causal, const char *prefix)
{
    char n[TG_PARAM_NAME];
    int inner = heads * head_dim;
    b->cross = cy > 0;
    b->causal = causal;
    b->cx = cx;
    b->cy = cy > 0 ? cy : cx;
    b->heads = heads;
    b->head_dim = head_dim;
    b->widen = widen;
#define SUB(s) (snprintf(n, sizeof n, "%s.%s", prefix, s), n)
    if (add_ln(bd, &b->norm_x, cx, SUB("norm_x")))
        return -1;
    if (b->cross && add_ln(bd, &b->norm_y, cy, SUB("norm_y")))
        return -1;
    if (add_lin(bd, &b->q, cx, inner, SUB("q")) || add_lin(bd, &b->k, b->cy, inner, SUB("k")) ||
        add_lin(bd, &b->v, b->cy, inner, SUB("v")) || add_lin(bd, &b->o, inner, cx, SUB("o")) ||
        add_ln(bd, &b->norm_mlp, cx, SUB("norm_mlp")) ||
        add_lin(bd, &b->mlp_in, cx, widen * cx, SUB("mlp_in")) ||
        add_lin(bd, &b->mlp_out, widen * cx, cx, SUB("mlp_out")))
        return -1;
#undef SUB
    return 0;
}

int tg_params_build(const tg_net_config *cfg, tg_params *out)
{
    memset(out, 0, sizeof *out);
    if (tg_net_config_check(cfg))
        return -1;
    out->cfg = *cfg;
    builder bd = {out, 0};
    tg_layout *L = &out->lay;
    int S = cfg->S, T = cfg->T, P = tg_net_config_P(cfg);
    char n[TG_PARAM_NAME];
    L->torso = calloc((size_t)cfg->layers * 3 + 1, sizeof *L->torso);
    L->policy = calloc((size_t)cfg->p_layers * 2 + 1, sizeof *L->policy);
    L->vhidden = calloc((size_t)cfg->v_layers + 1, sizeof *L->vhidden);
    if (!L->torso || !L->policy || !L->vhidden) {
        tg_fail("out of memory (parameter table)");
        goto fail;
    }
    /* Torso: ModuleList scalar_proj, in_proj, blocks (registration order of Torso.__init__). */
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "torso.scalar_proj.%d", i);
        if (add_lin(&bd, &L->scalar_proj[i], cfg->n_scalars, S * S, n))
            goto fail;
    }
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "torso.in_proj.%d", i);
        if (add_lin(&bd, &L->in_proj[i], S * T + 1, cfg->c, n))
            goto fail;
    }
    for (int l = 0; l < cfg->layers; l++)
        for (int s = 0; s < 3; s++) {
            snprintf(n, sizeof n, "torso.blocks.%d.%d", l, s);
            if (add_block(&bd, &L->torso[l * 3 + s], cfg->c, cfg->heads, cfg->head_dim,
                          cfg->widen, 0, 0, n))
                goto fail;
        }
    /* Policy head: its own parameter pos comes first (named_parameters yields a module's own
     * parameters before its children's), then embed, layers, norm, out. */
    if (add(&bd, 2, cfg->n_steps, P, 0, &L->pos, "policy.pos"))
        goto fail;
    if (add_lin(&bd, &L->embed, cfg->n_logits + 1, P, "policy.embed"))
        goto fail;
    for (int l = 0; l < 2 * cfg->p_layers; l++) {
        snprintf(n, sizeof n, "policy.layers.%d", l);
        int cross = l % 2;
        if (add_block(&bd, &L->policy[l], P, cfg->p_heads, cfg->p_feat, cfg->widen,
                      cross ? cfg->c : 0, !cross, n))
            goto fail;
    }
    if (add_ln(&bd, &L->pnorm, P, "policy.norm") ||
        add_lin(&bd, &L->pout, P, cfg->n_logits, "policy.out"))
        goto fail;
    /* Value head. */
    for (int l = 0; l < cfg->v_layers; l++) {
        snprintf(n, sizeof n, "value.hidden.%d", l);
        if (add_lin(&bd, &L->vhidden[l], l == 0 ? P : cfg->v_hidden, cfg->v_hidden, n))
            goto fail;
    }
    if (add_lin(&bd, &L->vout, cfg->v_layers ? cfg->v_hidden : P, cfg->quantiles, "value.out"))
        goto fail;
    return 0;
fail:
    tg_params_free(out);
    return -1;
}

void tg_params_free(tg_params *t)
{
    if (!t)
        return;
    free(t->p);
    free(t->lay.torso);
    free(t->lay.policy);
    free(t->lay.vhidden);
    memset(t, 0, sizeof *t);
}

int tg_params_find(const tg_params *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->p[i].name, name))
            return i;
    return -1;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

void tg_params_init(const tg_params *t, float *buf, uint64_t seed)
{
    tg_rng r;
    tg_rng_seed(&r, seed, 0x9a7a);
    for (int i = 0; i < t->n; i++) {
        const tg_param *p = &t->p[i];
        float *x = buf + p->offset;
        int is_norm = strstr(p->name, "norm") != NULL && p->ndim == 1;
        if (!strcmp(p->name, "policy.pos")) {
            memset(x, 0, p->size * sizeof *x);
        } else if (is_norm) {
            float v = ends_with(p->name, ".weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->size; j++)
                x[j] = v;
        } else {
            /* Linear: weight [out, in]; its bias shares the bound 1/sqrt(in) of the weight
             * just before it in the table. */
            int in = p->ndim == 2 ? p->shape[1] : t->p[i - 1].shape[1];
            double bound = 1.0 / sqrt((double)in);
            for (size_t j = 0; j < p->size; j++)
                x[j] = (float)((2.0 * tg_rng_uniform(&r) - 1.0) * bound);
        }
    }
}

void tg_params_group(const tg_params *t, int i, char *buf, int len)
{
    const char *name = t->p[i].name;
    /* torso.blocks.L.S.*, policy.layers.L.*, else the module path (name minus its last part) */
    int dots = 0, keep = -1;
    int want = !strncmp(name, "torso.blocks.", 13) ? 4 : !strncmp(name, "policy.layers.", 14) ? 3 : -1;
    for (int k = 0; name[k]; k++)
        if (name[k] == '.' && ++dots == want) {
            keep = k;
            break;
        }
    if (keep < 0) {
        const char *d = strrchr(name, '.');
        keep = d ? (int)(d - name) : (int)strlen(name);
        if (!memchr(name, '.', (size_t)keep)) /* a module's own tensor: "policy.pos" */
            keep = (int)strlen(name);
    }
    if (keep >= len)
        keep = len - 1;
    memcpy(buf, name, (size_t)keep);
    buf[keep] = 0;
}
