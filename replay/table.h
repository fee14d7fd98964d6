/* In-memory tables of the replay server: games as immutable, reference-counted blobs in a FIFO
 * ring with absolute position counters, so that a uniformly drawn position is found by binary
 * search and eviction of the oldest games is O(1). The HDF5 store (store.h) and the journal
 * (journal.h) persist what these tables hold; samplers (sampler.h) read them under a read lock. */
#ifndef REPLAY_TABLE_H
#define REPLAY_TABLE_H

#include <stdatomic.h>
#include <stdint.h>

#include "common/fact.h"

enum { REPLAY_DEMOS = 0, REPLAY_PLAYED = 1, REPLAY_BEST = 2, REPLAY_NTABLES = 3 };
extern const char *const replay_table_names[REPLAY_NTABLES];

#define REPLAY_ACTOR_LEN 32

/* One game. Moves are in play order: at move j the residual is initial - sum_{i<j} actions[i]
 * (reduced mod 2 in mod2), the played action is actions[j], the return from there returns[j], and
 * the improved policy over the sampled children is pol_actions/pol_probs[pol_off[j] ..
 * pol_off[j+1]) (empty: the played action is the target, as for demonstrations). Demonstrations
 * have no initial: it is the sum of their actions (they end at zero). */
typedef struct replay_game {
    atomic_int refs;
    uint64_t id;         /* global sequence number (GameAck.game_id) */
    tg_dims dims;
    int mod2;
    int S;
    int n_moves;
    int n_pol;           /* children over all moves */
    int solved;          /* residual reached zero (recomputed by the server, not trusted) */
    int rank;            /* moves when solved, else 0 */
    uint64_t model_version;
    double started, finished;
    char actor[REPLAY_ACTOR_LEN];
    int32_t *initial;    /* [S^3] or NULL */
    int32_t *basis;      /* [3][S][S] (mode matrices padded to S) or NULL = canonical */
    int8_t *actions;     /* [n_moves][3S] */
    float *returns;      /* [n_moves] */
    int32_t *pol_off;    /* [n_moves + 1] */
    int8_t *pol_actions; /* [n_pol][3S] */
    float *pol_probs;    /* [n_pol] */
} replay_game;

/* One allocation holding the game and its arrays (refs = 1, arrays zeroed, pol_off zeroed). */
replay_game *replay_game_alloc(int S, int n_moves, int n_pol, int has_initial, int has_basis);
void replay_game_ref(replay_game *g);
void replay_game_unref(replay_game *g);
/* Residual before move j (0 <= j <= n_moves) into out[S^3]. Uses the shorter way: from the
 * initial forwards, or for games that end at zero from the end backwards. */
void replay_game_residual(const replay_game *g, int j, int32_t *out);
/* Replays the actions from the initial (or their sum) and returns 1 if the residual ends at 0. */
int replay_game_ends_at_zero(const replay_game *g);

typedef struct replay_table replay_table;

/* capacity: positions kept (oldest games evicted first; 0 = unbounded). */
replay_table *replay_table_new(int id, int64_t capacity);
void replay_table_free(replay_table *t);
int replay_table_id(const replay_table *t);

/* Appends (takes the caller's reference) and evicts the oldest games while over capacity (the
 * newest game always stays). Thread-safe. */
void replay_table_append(replay_table *t, replay_game *g);

typedef struct replay_table_counts {
    int64_t games, positions;             /* live */
    int64_t inserted_games, inserted_positions, evicted_games, evicted_positions;
} replay_table_counts;
void replay_table_counts_get(replay_table *t, replay_table_counts *out);
int64_t replay_table_positions(replay_table *t);

/* Sampling: hold the read lock while using games returned by locate. */
void replay_table_rdlock(replay_table *t);
void replay_table_unlock(replay_table *t);
/* Under the read lock: live positions, and the game holding position u in [0, positions) with
 * its move index. */
int64_t replay_table_positions_locked(const replay_table *t);
const replay_game *replay_table_locate(const replay_table *t, int64_t u, int *move);

/* Drops the games for which drop(g, ctx) is non-zero (counted as evicted) and returns how many;
 * the others keep their order. Thread-safe. */
int64_t replay_table_remove_if(replay_table *t, int (*drop)(const replay_game *g, void *ctx), void *ctx);

/* References to every live game, oldest first (caller unrefs each and frees the array). */
int replay_table_snapshot(replay_table *t, replay_game ***out, int64_t *n);

#endif
