/* Synthetic demonstrations: R random rank-one terms whose sum is a tensor; played backwards they
 * are a game that reaches zero in R moves. Entries are drawn i.i.d. from a categorical over F,
 * and terms with an all-zero u, v or w are redrawn. */
#ifndef TG_SYNTH_H
#define TG_SYNTH_H

#include <stdint.h>

#include "common/action.h"
#include "common/rng.h"

typedef struct tg_synth_cfg {
    int S;              /* padded side */
    int sizes[3];       /* active mode sizes (entries beyond are zero) */
    int rank_min, rank_max;
    int mod2;
    tg_coeffs F;
    double probs[TG_MAX_F]; /* categorical over F.v (unnormalised); all zero = uniform */
} tg_synth_cfg;

/* Draws a rank R in [rank_min, rank_max] and R non-zero actions (canonical when F is symmetric or
 * mod2, since canonical signs would otherwise leave F) into
 * actions[R][3S] (capacity rank_max), and their sum into tensor[S^3] (mod 2 when mod2).
 * Returns R, or -1 with a message on a bad configuration. Demonstrations in which a partial sum
 * actions[0..j] is zero (cancelling terms, so the game would end early) are redrawn, so every
 * residual before the end is non-zero. The demonstration's moves are actions[R-1], ..., actions[0]: at move k (from 0)
 * the residual is the sum of actions[0..R-1-k], the target action is actions[R-1-k], and the
 * return from there is -(R-k). */
int tg_synth_generate(const tg_synth_cfg *cfg, tg_rng *rng, int8_t *actions, int32_t *tensor);

#endif
