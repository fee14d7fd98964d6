/* Synthetic demonstrations (common/synth.h) generated in threads at start, while the demos table
 * holds fewer than replay.demos_size positions. Each demonstration is stored as its actions in
 * play order (the reversed factor list), so its residuals are regenerated on sampling. */
#ifndef REPLAY_DEMOS_H
#define REPLAY_DEMOS_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/config.h"
#include "common/rng.h"
#include "replay/table.h"

typedef struct replay_demos replay_demos;

/* Starts `threads` generators (nothing to do if the table is already full). next_id hands out
 * game ids. */
replay_demos *replay_demos_start(const tg_config *c, replay_table *t, int threads, _Atomic uint64_t *next_id);
/* 1 when every generator has finished. */
int replay_demos_done(replay_demos *d);
int64_t replay_demos_generated(replay_demos *d);
void replay_demos_stop(replay_demos *d); /* joins and frees */

/* One demonstration as a game (refs = 1), for tests and benchmarks. */
replay_game *replay_demo_make(const tg_config *c, int target, tg_rng *rng);

#endif
