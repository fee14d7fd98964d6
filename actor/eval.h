/* Evaluators: what answers the search's leaf queries with K sampled actions (as tokens) and a
 * value. One interface, three implementations:
 *   - remote: EvalRequest/EvalResponse over a ZeroMQ DEALER connected to one or more inference
 *     ROUTERs (the learner or its replicas); lost requests are re-issued after a timeout;
 *   - local uniform: zero-cost, in-process, uniformly random actions and values (benchmarks);
 *   - local fake: in-process version of the test double's policy (actor/fake_eval.h).
 * A batch is submitted whole and comes back whole from poll, in any order. */
#ifndef TG_EVAL_H
#define TG_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/action.h"
#include "common/config.h"

/* Shapes shared by the actor and its evaluator. */
typedef struct tg_eval_dims {
    int S, T, n_scalars; /* input: tensors [T][S][S][S], scalars [n_scalars] per position */
    int K, n_steps;      /* output: tokens [K][n_steps] per position */
    float temperature;
} tg_eval_dims;

typedef struct tg_eval_batch {
    uint64_t id;          /* set by the evaluator on submit */
    int n, cap;           /* positions, capacity */
    float *tensors;       /* [cap][T*S^3] when the evaluator wants features */
    float *scalars;       /* [cap][n_scalars] */
    int32_t *residuals;   /* [cap][S^3] when it wants residuals */
    /* results */
    int k;                /* actions returned per position (<= K) */
    int32_t *tokens;      /* [cap][K][n_steps] */
    float *values;        /* [cap] */
    uint64_t model_version;
    void *user;           /* the caller's */
} tg_eval_batch;

tg_eval_batch *tg_eval_batch_new(const tg_eval_dims *d, int cap, int features);
void tg_eval_batch_free(tg_eval_batch *b);

typedef struct tg_evaluator tg_evaluator;
struct tg_evaluator {
    int wants_features; /* 1: fill tensors/scalars (tg_game_features); 0: fill residuals */
    /* Takes the batch until poll hands it back; -1 with a message on a fatal error. */
    int (*submit)(tg_evaluator *ev, tg_eval_batch *b);
    /* Waits up to timeout_ms for a finished batch: 1 and *out set, 0 on timeout, -1 fatal. */
    int (*poll)(tg_evaluator *ev, int timeout_ms, tg_eval_batch **out);
    /* Batches submitted and not yet returned. */
    int (*inflight)(const tg_evaluator *ev);
    void (*free)(tg_evaluator *ev);
    /* counters */
    uint64_t positions, batches, reissued, errors;
};

static inline void tg_evaluator_free(tg_evaluator *ev)
{
    if (ev)
        ev->free(ev);
}

enum tg_local_kind { TG_LOCAL_UNIFORM = 0, TG_LOCAL_FAKE = 1 };
/* In-process evaluator; F and the run's modes come from the finished config c. */
tg_evaluator *tg_eval_local_new(const tg_config *c, const tg_eval_dims *d, enum tg_local_kind kind,
                                uint64_t seed);

/* Makes an in-process evaluator take network features instead of residuals (the actor then
 * builds them as for the remote one: benchmarks that include that cost). */
void tg_eval_local_use_features(tg_evaluator *ev);

/* Remote evaluator: a DEALER connected to every endpoint of the comma-separated list (as in
 * infer.connect), with ZeroMQ's reconnect backoff and heartbeats. timeout_s: re-issue a request
 * not answered after this long. */
tg_evaluator *tg_eval_remote_new(const tg_config *c, const tg_eval_dims *d, const char *endpoints,
                                 double timeout_s);

#endif
