/* Checking what peers send before it enters the store: Game messages become replay_games (every
 * array's dtype and shape, coefficients in F, padding zero, finite numbers; solved recomputed
 * from the moves), Discovery messages become factorizations verified exactly (tg_fact_verify). */
#ifndef REPLAY_INGEST_H
#define REPLAY_INGEST_H

#include "common/config.h"
#include "proto/tensorgame.pb-c.h"
#include "replay/table.h"

/* Index of d among the run's targets, or -1. */
int replay_target_index(const tg_config *c, tg_dims d);
/* A new game (refs = 1, id 0) or NULL with a message saying what is wrong. */
replay_game *replay_ingest_game(const tg_config *c, const Tg__Game *m);
/* Checks a game read back from replay.h5 against the run's config (target, S, arithmetic,
 * coefficients, moves within r_limit). */
int replay_game_check(const tg_config *c, const replay_game *g);
/* A verified factorization, or NULL with a message (malformed arrays, or not exact: names the
 * first wrong tensor entry). */
tg_fact *replay_ingest_discovery(const tg_config *c, const Tg__Discovery *d);

#endif
