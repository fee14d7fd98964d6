#include "common/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_u64(tg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t tg_rng_below(tg_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: unbiased and division-free in the common case */
    uint64_t m = (uint64_t)(uint32_t)(tg_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t thresh = (uint32_t)(-n) % n;
        while (lo < thresh) {
            m = (uint64_t)(uint32_t)(tg_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double tg_rng_uniform(tg_rng *r) { return (double)(tg_rng_u64(r) >> 11) * 0x1.0p-53; }

double tg_rng_normal(tg_rng *r)
{
    double u1 = tg_rng_uniform(r), u2 = tg_rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
}

int tg_rng_categorical(tg_rng *r, const double *w, int n)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += w[i];
    double x = tg_rng_uniform(r) * total;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (w[i] > 0) {
            last = i;
            if (x < w[i])
                return i;
            x -= w[i];
        }
    }
    return last; /* rounding at the top end */
}

double tg_rng_gamma(tg_rng *r, double shape)
{
    /* Marsaglia-Tsang; shape < 1 boosted by U^(1/shape) */
    if (shape < 1.0) {
        double u = tg_rng_uniform(r);
        return tg_rng_gamma(r, shape + 1.0) * pow(u > 0 ? u : 1e-300, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = tg_rng_normal(r), v = 1.0 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = tg_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u > 0 ? u : 1e-300) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

void tg_rng_dirichlet(tg_rng *r, double alpha, int n, double *out)
{
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += out[i] = tg_rng_gamma(r, alpha);
    for (int i = 0; i < n; i++)
        out[i] = sum > 0 ? out[i] / sum : 1.0 / n;
}
