/* Training batches: mixes the tables by the configured fractions, draws positions uniformly
 * within each table, the policy target from the stored improved policy, applies a random signed
 * permutation from a pool, and packs one Batch envelope of flat arrays (proto/tensorgame.proto).
 * Worker threads build batches ahead of demand into a small ready queue. */
#ifndef REPLAY_SAMPLER_H
#define REPLAY_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/rng.h"
#include "replay/table.h"

typedef struct replay_batch {
    uint8_t *data; /* packed tg.Envelope holding a Batch */
    size_t len;
    int B;
    int from[REPLAY_NTABLES];
} replay_batch;
void replay_batch_free(replay_batch *b);

typedef struct replay_sampler replay_sampler;

/* The sampler keeps pointers to c and the tables (they must outlive it). */
replay_sampler *replay_sampler_new(const tg_config *c, replay_table *tables[REPLAY_NTABLES]);
void replay_sampler_free(replay_sampler *s); /* stops the workers */

/* How many positions a batch of B takes from each table right now (tables that cannot be sampled
 * yet have their share moved to the others: played counts only from replay.min_size positions
 * on, best only when played does). Returns 0, or -1 when nothing can be sampled. */
int replay_sampler_split(replay_sampler *s, int B, int from[REPLAY_NTABLES]);
/* Builds one batch now (any thread, own rng). NULL with a message when nothing can be sampled. */
replay_batch *replay_sampler_build(replay_sampler *s, int B, tg_rng *rng);

/* Worker threads keep up to `prefetch` batches of the wanted size ready. */
int replay_sampler_start(replay_sampler *s, int workers, int prefetch, int batch);
void replay_sampler_want(replay_sampler *s, int batch);
/* The oldest ready batch of size B taking at most max_rated positions from played + best, or
 * NULL. */
replay_batch *replay_sampler_take(replay_sampler *s, int B, int64_t max_rated);
int replay_sampler_ready(replay_sampler *s);
/* Readable (drain it with replay_sampler_drain_fd) whenever a batch was added. */
int replay_sampler_fd(const replay_sampler *s);
void replay_sampler_drain_fd(replay_sampler *s);

#endif
