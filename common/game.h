/* The tensor game: state, moves, termination and rewards.
 *
 * The state is the residual tensor (int32, S^3), the step count and the last h actions. A move
 * subtracts u (x) v (x) w (mod 2 in modular arithmetic). The game ends when the residual is zero
 * or after r_limit moves. Reward: -1 per move; at the step limit a non-zero residual adds minus an
 * upper bound on its rank (tg_rank_bound). */
#ifndef TG_GAME_H
#define TG_GAME_H

#include <stdint.h>

#include "common/fact.h"

typedef struct tg_game tg_game; /* opaque */

/* A new game at residual `target` (copied, S^3), with history length h and limit r_limit. */
tg_game *tg_game_new(const int32_t *target, int S, int mod2, int r_limit, int history);
void tg_game_free(tg_game *g);
/* Copies the whole state of src into dst (same S, history). */
void tg_game_copy(tg_game *dst, const tg_game *src);

int tg_game_S(const tg_game *g);
int tg_game_step(const tg_game *g);
int tg_game_r_limit(const tg_game *g);
int tg_game_mod2(const tg_game *g);
const int32_t *tg_game_residual(const tg_game *g);
/* 1 when the residual is zero or the step limit is reached. */
int tg_game_done(const tg_game *g);
int tg_game_solved(const tg_game *g);
/* Applies a[3S]; returns the move's reward (-1, plus the terminal penalty if this move reaches
 * the limit with a non-zero residual). Asserts the game is not done. */
double tg_game_play(tg_game *g, const int8_t *a);
/* The actions played so far, a[step][3S] in order. */
const int8_t *tg_game_actions(const tg_game *g);
/* 64-bit hash of the residual (for the transposition table). */
uint64_t tg_game_hash(const tg_game *g);
uint64_t tg_tensor_hash(const int32_t *t, int S);

/* The network's tensor input: residual followed by the last h actions as rank-one tensors,
 * most recent first, zeros where there is no history yet: out[(h+1) * S^3] as float. Scalars:
 * out_scalars[0] = step / r_limit, further scalars (n_scalars > 1) are zero. */
void tg_game_features(const tg_game *g, float *out_tensors, int n_scalars, float *out_scalars);

/* Upper bound on the rank of a residual: the smallest, over the three modes, of the sum of the
 * ranks of its slices along that mode (exact rank over Q, or over GF(2) when mod2). */
int tg_rank_bound(const int32_t *t, int S, int mod2);
/* Rank of a rows x cols integer matrix (row-major), exact over Q, or over GF(2). Over Q:
 * fraction-free (Bareiss) elimination in 64 bits, and where its minors overflow 64 bits, passes
 * modulo as many 61-bit primes as Hadamard's bound needs (exact: a non-zero minor cannot be
 * divisible by all of them). -1 with a message only if that bound exceeds 2^1460 (never for
 * |entries| < 2^40 and min(rows, cols) <= 32) or on a bad shape. */
int tg_matrix_rank(const int64_t *m, int rows, int cols, int mod2);

/* Builds the factorization of a solved game in its own basis: the played actions as a
 * tg_fact of dims d (entries beyond each mode size must be zero). NULL with a message otherwise. */
tg_fact *tg_game_to_fact(const tg_game *g, tg_dims d);
/* The reverse for one term: term r of f as an action a[3S] (u, v, w each padded to S); -1 with a
 * message if a mode is larger than S or an entry does not fit an action's int8. */
int tg_fact_action(const tg_fact *f, int r, int S, int8_t *a);

#endif
