/* Coefficient sets, actions and their token encoding.
 *
 * An action is (u, v, w), each of length S, stored as one int8 array a[3*S] = u | v | w, entries
 * from the coefficient set F. Canonical form: the first non-zero entries of u and of v are
 * positive, signs moved into w (over GF(2) every action is canonical). Tokens: the 3S entries are
 * cut into n_steps consecutive groups of d = 3S / n_steps entries; token t is the number whose
 * base-|F| digits are the indices in F of entries t*d .. t*d+d-1, first entry most significant.
 * n_logits = |F|^d. */
#ifndef TG_ACTION_H
#define TG_ACTION_H

#include <stdint.h>

#define TG_MAX_F 16  /* largest |F| */
#define TG_MAX_S 32  /* largest S for which the game is played (targets up to T(5,5,5): S = 25) */

typedef struct tg_coeffs {
    int n;             /* |F| */
    int8_t v[TG_MAX_F]; /* sorted ascending, distinct */
    int8_t index_of[256]; /* value + 128 -> index in v, or -1 */
} tg_coeffs;

/* Parses "-2..2", "-1,0,1" or "0,1" (2..TG_MAX_F distinct values in -127..127, 0 among them);
 * -1 with a message on bad input. */
int tg_coeffs_parse(const char *s, tg_coeffs *out);
/* 1 if F = -F (signed permutations and canonical signs keep entries in F). */
int tg_coeffs_symmetric(const tg_coeffs *F);

/* Puts a[3S] in canonical form (in place); returns the number of sign changes applied (0..2,
 * for tests). Negation keeps entries in F only when F is symmetric (tg_coeffs_symmetric). */
int tg_action_canonicalize(int8_t *a, int S, int mod2);
/* 1 if u, v and w are all non-zero. */
int tg_action_nonzero(const int8_t *a, int S);

/* d and n_logits for (S, n_steps, |F|); -1 with a message if n_steps does not divide 3S or
 * n_logits would exceed 2^24. */
int tg_tokens_shape(int S, int n_steps, int nF, int *d, int *n_logits);
/* Action -> tokens[n_steps]; -1 with a message if an entry is not in F. */
int tg_action_to_tokens(const tg_coeffs *F, int S, int n_steps, const int8_t *a, int32_t *tokens);
/* Tokens -> action a[3S]; -1 with a message if a token is out of range. */
int tg_tokens_to_action(const tg_coeffs *F, int S, int n_steps, const int32_t *tokens, int8_t *a);

/* Adds (sign = +1) or subtracts (-1) the rank-one tensor u (x) v (x) w into t[S^3]; in mod2 the
 * result is reduced to {0, 1}. */
void tg_tensor_add_action(int32_t *t, int S, const int8_t *a, int sign, int mod2);

#endif
