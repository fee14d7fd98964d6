/* The network's parameter table: every tensor of net_reference.py's Net.named_parameters(), in
 * that order and under exactly those names ("torso.blocks.0.1.q.weight"), laid out back to back
 * in one contiguous float buffer. Checkpoints, the golden file, weight publishing and both
 * backends index parameters through this table; the structured layout (tg_layout) gives the
 * offsets of each Linear / LayerNorm for the backends' kernels. */
#ifndef TG_PARAMS_H
#define TG_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#include "learner/net_config.h"

#define TG_PARAM_NAME 64

typedef struct tg_param {
    char name[TG_PARAM_NAME];
    int ndim;           /* 1 or 2 */
    int shape[2];       /* shape[0] = out (rows), shape[1] = in for Linear weights [out, in] */
    size_t offset;      /* in floats, into the contiguous buffer */
    size_t size;        /* elements */
    int decay;          /* 1: AdamW weight decay applies (Linear weights only; not biases,
                           LayerNorm or policy.pos) */
} tg_param;

/* Offsets (in floats) of one Linear (weight [out, in] then bias [out]) and one LayerNorm. */
typedef struct tg_lin_off {
    size_t w, b;
    int in, out;
} tg_lin_off;
typedef struct tg_ln_off {
    size_t w, b;
    int n;
} tg_ln_off;

/* One AttentionBlock: x attends to y (cross) or itself. heads * head_dim = inner. */
typedef struct tg_block_off {
    int cross, causal;
    int cx, cy, heads, head_dim, widen;
    tg_ln_off norm_x, norm_y; /* norm_y only when cross */
    tg_lin_off q, k, v, o;
    tg_ln_off norm_mlp;
    tg_lin_off mlp_in, mlp_out;
} tg_block_off;

typedef struct tg_layout {
    tg_lin_off scalar_proj[3], in_proj[3];
    tg_block_off *torso;    /* [layers * 3]: block l, stage s at l * 3 + s */
    size_t pos;             /* policy.pos [n_steps, P] */
    tg_lin_off embed;       /* [P, n_logits + 1] */
    tg_block_off *policy;   /* [2 * p_layers]: even = causal self-attention, odd = cross to torso */
    tg_ln_off pnorm;        /* policy.norm */
    tg_lin_off pout;        /* policy.out [n_logits, P] */
    tg_lin_off *vhidden;    /* [v_layers] */
    tg_lin_off vout;        /* value.out [quantiles, v_hidden] */
} tg_layout;

typedef struct tg_params {
    tg_net_config cfg;
    int n;              /* tensors */
    tg_param *p;        /* [n], named_parameters() order */
    size_t total;       /* floats in the buffer */
    tg_layout lay;
} tg_params;

/* Builds the table for cfg (checked with tg_net_config_check); -1 with a message. */
int tg_params_build(const tg_net_config *cfg, tg_params *out);
void tg_params_free(tg_params *t);
/* Index of a tensor by name, or -1. */
int tg_params_find(const tg_params *t, const char *name);
/* PyTorch's default initialisation: Linear weight and bias U(-1/sqrt(in), 1/sqrt(in)),
 * LayerNorm weight 1 and bias 0, policy.pos 0. Deterministic in seed. */
void tg_params_init(const tg_params *t, float *buf, uint64_t seed);
/* Gradient-norm groups for reports ("torso.blocks.0.1", "policy.layers.2", "value.hidden.0"):
 * writes the group name of tensor i into buf. */
void tg_params_group(const tg_params *t, int i, char *buf, int len);

#endif
