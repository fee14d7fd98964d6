/* Signed permutations: per mode a permutation of the active coordinates (0..size-1; padding is
 * never moved) and a sign per coordinate. Applied to a tensor, each mode is permuted and signed:
 *   t'[a][b][c] = sA[a] sB[b] sC[c] t[pA[a]][pB[b]][pC[c]]
 * and to an action u'[a] = sA[a] u[pA[a]] (likewise v with B, w with C), so a factorization of t
 * maps to one of t'. Over GF(2), or when F is not symmetric, signs are all +1. The inverse maps
 * the network's outputs back to the original frame. */
#ifndef TG_PERM_H
#define TG_PERM_H

#include <stdint.h>

#include "common/rng.h"

#define TG_PERM_MAX_S 32

typedef struct tg_sperm {
    int S;
    int sizes[3];
    uint8_t perm[3][TG_PERM_MAX_S];
    int8_t sign[3][TG_PERM_MAX_S];
} tg_sperm;

/* Samples a signed permutation of modes with the given active sizes (<= S <= TG_PERM_MAX_S). */
void tg_sperm_sample(tg_sperm *p, int S, const int sizes[3], int with_signs, tg_rng *rng);
void tg_sperm_identity(tg_sperm *p, int S, const int sizes[3]);
void tg_sperm_invert(const tg_sperm *p, tg_sperm *inv);
/* out = p . t for a tensor t[S^3] (int32) and for a float tensor (network input). */
void tg_sperm_apply_tensor(const tg_sperm *p, const int32_t *t, int32_t *out);
void tg_sperm_apply_tensor_f(const tg_sperm *p, const float *t, float *out);
/* out[3S] = p . a for an action a[3S]; out is not canonicalised. */
void tg_sperm_apply_action(const tg_sperm *p, const int8_t *a, int8_t *out);

#endif
