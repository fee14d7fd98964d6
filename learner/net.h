/* The tensor-game network (../shared/spec/net_reference.py): training, teacher-forced forward,
 * KV-cached sampling of K actions per position, greedy decoding, parameters and optimizer state.
 *
 * tg_net is opaque and backend-neutral: tg_net_new picks a backend ("cpu": fp32 reference with
 * OpenBLAS; "cuda": learner/cuda/ when built with TG_HAVE_CUDA; "auto": cuda if available and a
 * device is present, else cpu) and every call dispatches through the backend's function table
 * (tg_net_ops below). Callers never see which one runs, except through tg_net_backend().
 *
 * All arrays are host memory, row-major, fp32 unless noted. A tg_net is not thread-safe: one
 * caller at a time (the learner serialises training and inference on one net, or keeps two). */
#ifndef TG_NET_H
#define TG_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "learner/net_config.h"
#include "learner/params.h"

typedef struct tg_net tg_net;

/* A training batch (views into caller memory). */
typedef struct tg_batch_view {
    int B;
    const float *tensors;   /* [B, T, S, S, S] */
    const float *scalars;   /* [B, n_scalars] */
    const int32_t *tokens;  /* [B, n_steps] target action tokens in [0, n_logits) */
    const float *returns;   /* [B] value targets (training only; may be NULL for forward) */
} tg_batch_view;

/* Optimizer and schedule (the train section of the run config). */
typedef struct tg_opt_config {
    double lr, lr_min;
    int warmup_steps, decay_steps; /* linear warmup over warmup_steps, then cosine decay to lr_min
                                      over decay_steps (0 = constant lr after warmup) */
    double weight_decay;           /* AdamW, decoupled: p -= lr * wd * p (Linear weights only) */
    double beta1, beta2, eps;
    double grad_clip;              /* global L2 gradient-norm clip (0 = off) */
    double value_weight;           /* loss = policy + value_weight * value */
} tg_opt_config;

typedef struct tg_losses {
    double total, policy, value;
} tg_losses;

typedef struct tg_train_stats {
    tg_losses loss;
    double grad_norm;  /* global L2 norm before clipping */
    double lr;         /* learning rate used by this step */
    int64_t step;      /* optimizer steps done, this one included */
} tg_train_stats;

/* Inference output for N positions x K samples. Any pointer may be NULL (not wanted). */
typedef struct tg_eval_out {
    int32_t *tokens;    /* [N, K, n_steps] sampled action tokens */
    float *logp;        /* [N, K] log-probability of each sampled action (sum over tokens, at
                           the sampling temperature) */
    float *quantiles;   /* [N, quantiles] */
    float *value;       /* [N] risk-seeking value: mean of quantiles floor(0.75 Q) .. Q-1 */
    float *logits;      /* [N, K, n_steps, n_logits] raw logits at each step (tests) */
} tg_eval_out;

/* Learning rate at optimizer step `step` (0 = the first step). */
double tg_lr_at(const tg_opt_config *o, int64_t step);
/* From the run config's train section. */
void tg_opt_config_from_run(const tg_config *run, tg_opt_config *out);
/* Sensible defaults (lr 1e-3, no warmup/decay, wd 0, betas 0.9/0.999, eps 1e-8, no clip, vw 1). */
void tg_opt_config_default(tg_opt_config *out);
/* Risk-seeking value of Q quantiles (mean of q[floor(0.75 Q)..Q-1]). */
float tg_risk_seeking_value(const float *q, int Q);

/* Creates a network with PyTorch-default initialised parameters (seed), the optimizer at step 0
 * with zero moments. backend: "cpu", "cuda" or "auto". max_batch bounds the training batch and
 * the positions of one inference call (larger calls are refused); threads: CPU threads (0 = all
 * cores). NULL with a message on failure.
 * CPU backend: `threads` workers of its own run every parallel loop, GEMMs included (split by
 * rows; OpenBLAS is set to one thread per call, process-wide). Workspaces: the training
 * activations for max_batch on the first training / forward call, the inference caches grown to
 * the largest positions x samples seen; nothing is allocated per step after that.
 * Every call refuses non-finite tensors, scalars or returns and out-of-range tokens. */
tg_net *tg_net_new(const tg_net_config *cfg, const char *backend, int max_batch, int threads,
                   uint64_t seed);
void tg_net_free(tg_net *net);

const char *tg_net_backend(const tg_net *net);  /* "cpu" or "cuda" */
const tg_net_config *tg_net_config_of(const tg_net *net);
const tg_params *tg_net_params(const tg_net *net); /* the parameter table */
int tg_net_max_batch(const tg_net *net);

void tg_net_set_opt(tg_net *net, const tg_opt_config *opt);
const tg_opt_config *tg_net_opt(const tg_net *net);

/* One optimizer step on a batch: forward, losses, backward, clip, AdamW with the scheduled lr.
 * b->returns required. */
int tg_net_train_step(tg_net *net, const tg_batch_view *b, tg_train_stats *out);

/* Losses and gradients without updating (tests, golden): grads [n_params floats] (NULL: losses
 * only). Uses opt.value_weight. */
int tg_net_loss_grad(tg_net *net, const tg_batch_view *b, tg_losses *loss, float *grads);

/* Teacher-forced forward (the spec's Net.forward): logits [B, n_steps, n_logits],
 * quantiles [B, quantiles], torso [B, 3 S^2, c]; any output may be NULL. */
int tg_net_forward(tg_net *net, const tg_batch_view *b, float *logits, float *quantiles,
                   float *torso);

/* Inference: torso once per position, then K actions per position sampled token by token with
 * a KV cache, at temperature (> 0). uniforms [N, K, n_steps] in [0, 1) drive the inverse-CDF
 * draws (NULL: drawn from seed, stream = position index, so results do not depend on batching).
 * N <= max_batch. */
int tg_net_sample(tg_net *net, const float *tensors, const float *scalars, int N, int K,
                  float temperature, const float *uniforms, uint64_t seed, tg_eval_out *out);

/* Argmax decoding (the spec's Net.greedy): tokens [N, n_steps], quantiles [N, quantiles]. */
int tg_net_greedy(tg_net *net, const float *tensors, const float *scalars, int N,
                  int32_t *tokens, float *quantiles);

/* Parameters as one host buffer in the layout of tg_net_params() (n = table total). */
size_t tg_net_n_params(const tg_net *net);
int tg_net_get_params(tg_net *net, float *dst);
int tg_net_set_params(tg_net *net, const float *src);
/* AdamW state: first and second moments [n_params] and the step count. Any pointer may be NULL
 * on get. */
int tg_net_get_opt_state(tg_net *net, float *m, float *v, int64_t *step);
int tg_net_set_opt_state(tg_net *net, const float *m, const float *v, int64_t step);

/* ---- backends ----
 * A backend fills a tg_net_ops table; tg_net_new calls its create(). The net's common part
 * (config, parameter table, optimizer config) is passed in, the backend keeps its own state. */
typedef struct tg_net_ops {
    const char *name;
    void *(*create)(const tg_params *tab, int max_batch, int threads, uint64_t seed);
    void (*destroy)(void *impl);
    int (*train_step)(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                      tg_train_stats *out);
    int (*loss_grad)(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                     tg_losses *loss, float *grads);
    int (*forward)(void *impl, const tg_batch_view *b, float *logits, float *quantiles,
                   float *torso);
    int (*sample)(void *impl, const float *tensors, const float *scalars, int N, int K,
                  float temperature, const float *uniforms, uint64_t seed, tg_eval_out *out);
    int (*greedy)(void *impl, const float *tensors, const float *scalars, int N,
                  int32_t *tokens, float *quantiles);
    int (*get_params)(void *impl, float *dst);
    int (*set_params)(void *impl, const float *src);
    int (*get_opt_state)(void *impl, float *m, float *v, int64_t *step);
    int (*set_opt_state)(void *impl, const float *m, const float *v, int64_t step);
} tg_net_ops;

extern const tg_net_ops tg_net_cpu_ops;        /* learner/net_cpu.c */
#ifdef TG_HAVE_CUDA
extern const tg_net_ops tg_net_cuda_ops;       /* learner/cuda/ */
/* 1 if a CUDA device is usable (for "auto"). */
int tg_net_cuda_available(void);
#endif

#endif
