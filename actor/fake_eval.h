/* A test double of the inference service: a ZeroMQ ROUTER answering EvalRequests like the
 * learner does, with a hand-made policy instead of a network, so the whole actor can be tested
 * over real sockets (and run by `tg-actor --fake-evaluator`).
 *
 * The policy reads the residual (slice 0 of the request's tensors) and proposes, for each of the
 * K samples, either (probability 1 - noise) a "fiber" action that removes one whole non-zero
 * fiber of the residual (u = e_a, v = e_b, w = R[a][b][:], or the same along another mode; the
 * naive algorithm is made of such terms, so tiny targets whose optimum is naive are solvable),
 * or a uniformly random action over F on the residual's support. Its value is minus the rank
 * bound of the residual (tg_rank_bound). */
#ifndef TG_FAKE_EVAL_H
#define TG_FAKE_EVAL_H

#include <stdint.h>

#include "common/action.h"
#include "common/config.h"
#include "common/rng.h"

typedef struct tg_fake_policy {
    int S, n_steps, mod2;
    tg_coeffs F;
    double noise; /* fraction of uniformly random samples */
} tg_fake_policy;

void tg_fake_policy_init(tg_fake_policy *p, const tg_config *c, double noise);
/* K samples as tokens[K][n_steps] and the value for residual[S^3]. */
void tg_fake_policy_eval(const tg_fake_policy *p, const int32_t *residual, int K, tg_rng *rng,
                         int32_t *tokens, float *value);

typedef struct tg_fake_eval tg_fake_eval; /* opaque */

/* Starts the service in a thread, bound to endpoint (e.g. "tcp://127.0.0.1:*"); the address it
 * got is written to bound. NULL with a message on failure. */
tg_fake_eval *tg_fake_eval_start(const tg_config *c, const char *endpoint, char *bound, size_t len);
/* Behaviour switches for robustness tests: drop (never answer) every n-th request (0 = none);
 * the model version reported. */
void tg_fake_eval_set_drop(tg_fake_eval *f, int every);
void tg_fake_eval_set_version(tg_fake_eval *f, uint64_t version);
/* Requests answered, positions evaluated, requests dropped, malformed requests seen. */
void tg_fake_eval_counts(tg_fake_eval *f, uint64_t *requests, uint64_t *positions, uint64_t *dropped,
                         uint64_t *errors);
void tg_fake_eval_stop(tg_fake_eval *f);

/* Runs the service in the calling thread until *stop becomes non-zero (tg-actor --fake-evaluator). */
int tg_fake_eval_serve(const tg_config *c, const char *endpoint, volatile int *stop);

#endif
