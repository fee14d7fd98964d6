/* Change of basis: per mode an integer matrix with determinant +-1 (so its inverse is integer),
 * A = B = C where the modes have equal size (as the paper does for square targets).
 *   target' = (A, B, C) . target,   T'[a][b][c] = sum A[a][i] B[b][j] C[c][k] T[i][j][k].
 * A factorization u', v', w' of target' maps back to u = A^-1 u', v = B^-1 v', w = C^-1 w'. */
#ifndef TG_BASIS_H
#define TG_BASIS_H

#include <stdint.h>

#include "common/fact.h"
#include "common/rng.h"

typedef struct tg_basis tg_basis; /* opaque */

/* Samples a basis for T(d) with entries of A, B, C and of their inverses bounded by max_entry
 * (1..100): a random walk of elementary unimodular operations (row additions, sign flips, swaps),
 * skipping any step that would break the bound. NULL with a message on bad arguments. */
tg_basis *tg_basis_sample(tg_dims d, int max_entry, tg_rng *rng);
/* The canonical (identity) basis. */
tg_basis *tg_basis_identity(tg_dims d);
void tg_basis_free(tg_basis *b);
tg_dims tg_basis_dims(const tg_basis *b);
int tg_basis_is_identity(const tg_basis *b);
/* Mode matrices, row-major [size][size] (mode 0: n*m, 1: m*p, 2: p*n); inverse when inv != 0. */
const int32_t *tg_basis_matrix(const tg_basis *b, int mode, int inv);

/* out[S^3] = (A, B, C) . t (t and out padded to S; padding stays zero). */
void tg_basis_apply(const tg_basis *b, const int32_t *t, int S, int32_t *out);
/* Maps a factorization found in the basis back to the canonical one (new tg_fact, same rank). */
tg_fact *tg_basis_map_back(const tg_basis *b, const tg_fact *f);

/* A pool of n bases sampled at start (entry 0 is the identity); each game draws one. */
typedef struct tg_basis_pool tg_basis_pool;
tg_basis_pool *tg_basis_pool_new(tg_dims d, int n, int max_entry, tg_rng *rng);
void tg_basis_pool_free(tg_basis_pool *p);
int tg_basis_pool_size(const tg_basis_pool *p);
const tg_basis *tg_basis_pool_get(const tg_basis_pool *p, int i);
/* Replaces entry i (not 0, the identity) by a freshly sampled basis; the old one is freed, so no
 * game may still use it. -1 with a message if sampling fails (the entry is kept). */
int tg_basis_pool_replace(tg_basis_pool *p, int i, int max_entry, tg_rng *rng);

#endif
