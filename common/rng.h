/* Seedable random numbers (xoshiro256**), one generator per thread: a value type on purpose, so
 * hot loops (search, batch building) keep it in registers. Streams from one seed are independent
 * by construction (SplitMix64 over seed and stream id). */
#ifndef TG_RNG_H
#define TG_RNG_H

#include <stdint.h>

typedef struct tg_rng {
    uint64_t s[4];
} tg_rng;

void tg_rng_seed(tg_rng *r, uint64_t seed, uint64_t stream);
uint64_t tg_rng_u64(tg_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint32_t tg_rng_below(tg_rng *r, uint32_t n);
/* Uniform double in [0, 1). */
double tg_rng_uniform(tg_rng *r);
/* Standard normal. */
double tg_rng_normal(tg_rng *r);
/* Index drawn from unnormalised non-negative weights w[0..n) (sum > 0). */
int tg_rng_categorical(tg_rng *r, const double *w, int n);
/* Gamma(shape, 1) and a Dirichlet sample into out[0..n). */
double tg_rng_gamma(tg_rng *r, double shape);
void tg_rng_dirichlet(tg_rng *r, double alpha, int n, double *out);

#endif
