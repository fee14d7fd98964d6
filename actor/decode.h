/* Network output to search actions: K sampled token rows -> actions in the game's frame. One
 * fused pass per action (token lookup, the inverse of the query's signed permutation, padding
 * zeroed, all-zero factors rejected, canonical signs), equal by test to the reference path
 * tg_tokens_to_action -> tg_sperm_apply_action -> tg_action_nonzero -> tg_action_canonicalize. */
#ifndef TG_DECODE_H
#define TG_DECODE_H

#include <stdint.h>

#include "common/action.h"
#include "common/perm.h"

typedef struct tg_decoder tg_decoder; /* opaque */

/* For actions of length 3S from n_steps tokens over F. canonical: apply canonical signs (off in
 * mod2 arithmetic, and for an asymmetric F, where flipping signs would leave F). */
tg_decoder *tg_decoder_new(const tg_coeffs *F, int S, int n_steps, int canonical);
void tg_decoder_free(tg_decoder *d);
/* Decodes one token row into out[3S]: inv maps the query's frame back to the game's (NULL =
 * identity), sizes[3] are the target's mode sizes (entries beyond are zeroed). Returns 1 for a
 * valid action, 0 if a token is out of range or u, v or w is all zero. */
int tg_decode_action(const tg_decoder *d, const int32_t *tokens, const tg_sperm *inv, const int sizes[3],
                     int8_t *out);

#endif
