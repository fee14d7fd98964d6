/* A random training batch for the network tests (test_net_*.c): tensors with entries in
 * [-range, range], uniform scalars, returns in [-max_return, -1], random tokens. */
#ifndef TG_NET_TEST_BATCH_H
#define TG_NET_TEST_BATCH_H

#include <stdint.h>
#include <stdlib.h>

#include "common/rng.h"
#include "learner/net_config.h"

typedef struct batch {
    int B;
    float *t, *s, *r;
    int32_t *a;
} batch;

static inline void mk_batch_seeded(const tg_net_config *c, int B, batch *b, uint64_t seed,
                                   int range, int max_return)
{
    tg_rng g;
    tg_rng_seed(&g, seed, 0);
    size_t nt = (size_t)B * c->T * c->S * c->S * c->S;
    b->B = B;
    b->t = malloc(nt * sizeof *b->t);
    b->s = malloc((size_t)B * c->n_scalars * sizeof *b->s);
    b->r = malloc((size_t)B * sizeof *b->r);
    b->a = malloc((size_t)B * c->n_steps * sizeof *b->a);
    for (size_t i = 0; i < nt; i++)
        b->t[i] = (float)((int)tg_rng_below(&g, (uint32_t)(2 * range + 1)) - range);
    for (int i = 0; i < B * c->n_scalars; i++)
        b->s[i] = (float)tg_rng_uniform(&g);
    for (int i = 0; i < B; i++)
        b->r[i] = -(float)(1 + tg_rng_below(&g, (uint32_t)max_return));
    for (int i = 0; i < B * c->n_steps; i++)
        b->a[i] = (int32_t)tg_rng_below(&g, (uint32_t)c->n_logits);
}

static inline void free_batch(batch *b)
{
    free(b->t), free(b->s), free(b->r), free(b->a);
}

#endif
