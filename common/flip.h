/* Flip-graph local search on factorizations (after Kauers and Moosbauer, "Flip graphs for matrix
 * multiplication", 2022): a random walk over the integer factorizations of one tensor whose steps
 * keep the sum exact.
 *
 *   flip:      a(x)b(x)c + a(x)b'(x)c'  =  a(x)(b+b')(x)c + a(x)b'(x)(c'-c)   (same rank; any slot
 *              may hold the shared factor, equal up to sign)
 *   reduction: a(x)b(x)c + a(x)b(x)c'   =  a(x)b(x)(c+c')                    (one term fewer)
 *   a term with a zero factor is dropped                                     (one term fewer)
 *
 * Every step keeps each coefficient within [-coef_max, coef_max] (a step that would leave it is
 * not taken), so the schemes found stay in the game's action set. Only reductions lower the rank;
 * a walk that finds none for `plateau` flips goes back to the best scheme so far and, with
 * `plus` on, takes one "plus" step (a(x)b(x)c = (a-a')(x)b(x)c + a'(x)b(x)c, one term more, to
 * leave a region without reductions). Integer arithmetic, denominator 1. */
#ifndef TG_FLIP_H
#define TG_FLIP_H

#include <stdint.h>

#include "common/fact.h"

typedef struct tg_flip tg_flip; /* opaque */

/* What the actors append to their name on the games and discoveries their polishing walk found
 * (actor.polish_share), so that replay, tg games and results.h5 tell them from the network's. */
#define TG_POLISH_SUFFIX "/polish"
#define TG_POLISH_SUFFIX_LEN (sizeof TG_POLISH_SUFFIX - 1)

/* A walker for factorizations of T(d) of rank up to max_rank, coefficients in
 * [-coef_max, coef_max] (1..127). NULL with a message on bad arguments. */
tg_flip *tg_flip_new(tg_dims d, int max_rank, int coef_max, uint64_t seed);
void tg_flip_free(tg_flip *f);

/* Starts a walk at `start` (which becomes the best scheme). -1 with a message if its dims
 * differ, its rank exceeds max_rank, its denominator is not 1, it is mod 2, or a coefficient
 * exceeds coef_max. The scheme need not be verified: every step keeps its sum. */
int tg_flip_start(tg_flip *f, const tg_fact *start);

/* Offers another scheme of the same tensor (checked as tg_flip_start): a better rank than the
 * best restarts the walk there (the flip count goes on), an equal one joins the pool of schemes
 * the walk restarts from, a worse one is not taken. 1 if taken, 0 if not, -1 on a bad scheme.
 * Before any start, any scheme is taken as the start. */
int tg_flip_offer(tg_flip *f, const tg_fact *g);

/* Takes up to `flips` flips (fewer if rank `stop_rank` is reached); back to the best scheme after
 * `plateau` flips without a reduction (plus step there when `plus`). Returns the best rank. */
int tg_flip_walk(tg_flip *f, long flips, long plateau, int plus, int stop_rank);

int tg_flip_best_rank(const tg_flip *f); /* the best rank since tg_flip_start */
long tg_flip_flips(const tg_flip *f);    /* flips taken since tg_flip_start */
/* The best scheme as a new factorization (NULL with a message on allocation failure). */
tg_fact *tg_flip_best(const tg_flip *f);

#endif
