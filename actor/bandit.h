/* Upper-confidence choice among n arms by mean reward (the actor's choice of a game's change of
 * basis, game.basis_explore): arms never tried go first, in random order; then
 * mean + c * sqrt(ln(total started) / started). Pulls are counted when an arm is chosen (many games
 * start before the first one ends), rewards when they arrive; an arm in play without a reward yet
 * counts as good as the best mean so far. c <= 0: uniform choice. Disabled arms are skipped (if
 * every arm is disabled, any may be picked).
 * discount < 1 makes it forget: every pick multiplies all counts and reward sums by it, so the
 * means follow rewards that change over time (the network learns: an arm judged while it was
 * untrained must be tried again) and an arm left alone regains its exploration bonus. */
#ifndef TG_BANDIT_H
#define TG_BANDIT_H
#include "common/rng.h"

typedef struct tg_bandit tg_bandit; /* opaque */

/* NULL with a message unless n >= 1 and 0 < discount <= 1 (1: remember everything). */
tg_bandit *tg_bandit_new(int n, double c, double discount);
void tg_bandit_free(tg_bandit *b);
/* Chooses an arm in [0, n) and counts it as started. */
int tg_bandit_pick(tg_bandit *b, tg_rng *rng);
/* A finished pull's reward. */
void tg_bandit_update(tg_bandit *b, int arm, double reward);
/* An arm out of play (never picked) or back in play. */
void tg_bandit_set_enabled(tg_bandit *b, int arm, int enabled);
/* Forgets an arm's pulls and rewards: it is a new arm (tried first), e.g. a replaced basis. */
void tg_bandit_reset_arm(tg_bandit *b, int arm);
/* Started pulls (discounted) and mean reward of an arm (0 if none ended), for logs and tests. */
double tg_bandit_started(const tg_bandit *b, int arm);
double tg_bandit_mean(const tg_bandit *b, int arm);
#endif
