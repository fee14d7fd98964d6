/* The actor: many games of self-play in one process (one thread), their search trees' leaf
 * queries batched into evaluation requests with several in flight, finished games sent to
 * replay, solved games mapped back to the canonical basis, verified and reported.
 * See actor/README.md for the search and the protocol. */
#ifndef TG_ACTOR_H
#define TG_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "actor/eval.h"
#include "common/config.h"

typedef struct tg_actor tg_actor;

typedef struct tg_actor_opts {
    tg_evaluator *eval;          /* borrowed; NULL: remote evaluator on infer.connect */
    const char *eval_endpoints;  /* NULL: infer.connect */
    int replay;                  /* send finished games (and discoveries) to replay */
    const char *replay_endpoint; /* NULL: replay.connect */
    int64_t max_games;           /* stop after finishing this many games (0 = no limit) */
    double max_seconds;          /* stop after this long (0 = no limit) */
    int quiet;                   /* no periodic stats lines */
    const char *name;            /* Game.actor; NULL: host:pid */
    const char *status_dir;      /* run directory: write status/actor-<name>.json there (tg status) */
} tg_actor_opts;

typedef struct tg_actor_stats {
    uint64_t games, solved, moves, simulations, positions, batches;
    uint64_t reissued, dropped_games, bases_retired, discoveries, verify_failed, acked, resent;
    uint64_t arena_full, reused_nodes, busy;
    uint64_t restarts;        /* games started part-way along a best line (game.restart_prob) */
    uint64_t restart_improved; /* of those, solved below the best rank known when they started */
    int best_rank[TG_MAX_TARGETS];      /* best solved rank per target index (0 = none yet) */
    uint64_t polish_flips;    /* flips of the polishing walks (actor.polish_share) */
    uint64_t polish_found;    /* better ranks they found (also counted in discoveries) */
    double polish_seconds;    /* time spent in them */
    double seconds;           /* time spent in tg_actor_run */
    double cpu_seconds;       /* CPU time of the calling thread in tg_actor_run */
    size_t tree_bytes_max;    /* largest arena held by one game's tree */
} tg_actor_stats;

/* Memory bound per game (search tree arena at actor.max_nodes plus the game's records). */
size_t tg_actor_game_bytes(const tg_config *c);

tg_actor *tg_actor_new(const tg_config *c, const tg_actor_opts *o);
/* Plays until *stop becomes non-zero (or the limits of the options); games in progress are
 * dropped, finished ones are waited for (acks) a few seconds. 0, or -1 with a message. */
int tg_actor_run(tg_actor *a, volatile int *stop);
void tg_actor_get_stats(const tg_actor *a, tg_actor_stats *s);
void tg_actor_free(tg_actor *a);

#endif
