/* Synthetic demonstrations: random sums of rank-one terms. */
#include "common/synth.h"

#include <string.h>

#include "common/err.h"

int tg_synth_generate(const tg_synth_cfg *cfg, tg_rng *rng, int8_t *actions, int32_t *tensor)
{
    const int S = cfg->S;
    if (S < 1 || S > TG_MAX_S)
        return tg_fail("synthetic demos: S=%d out of range 1..%d", S, TG_MAX_S);
    for (int k = 0; k < 3; k++)
        if (cfg->sizes[k] < 1 || cfg->sizes[k] > S)
            return tg_fail("synthetic demos: mode %d size %d out of range 1..%d", k,
                           cfg->sizes[k], S);
    if (cfg->rank_min < 1 || cfg->rank_max < cfg->rank_min)
        return tg_fail("synthetic demos: rank range %d..%d invalid", cfg->rank_min,
                       cfg->rank_max);
    const tg_coeffs *F = &cfg->F;
    if (F->n < 2 || F->n > TG_MAX_F)
        return tg_fail("synthetic demos: coefficient set of size %d", F->n);
    double w[TG_MAX_F];
    double tot = 0, nonzero = 0;
    for (int i = 0; i < F->n; i++) {
        if (cfg->probs[i] < 0)
            return tg_fail("synthetic demos: negative probability %g for coefficient %d",
                           cfg->probs[i], F->v[i]);
        tot += cfg->probs[i];
    }
    for (int i = 0; i < F->n; i++) {
        w[i] = tot > 0 ? cfg->probs[i] : 1.0;
        /* in mod 2 an even coefficient is a zero */
        if (F->v[i] && !(cfg->mod2 && !(F->v[i] & 1)))
            nonzero += w[i];
    }
    if (nonzero <= 0)
        return tg_fail("synthetic demos: the distribution over F puts no weight on a non-zero "
                       "coefficient");
    const int canon = cfg->mod2 || tg_coeffs_symmetric(F);
    const int R = cfg->rank_min + (int)tg_rng_below(rng, (uint32_t)(cfg->rank_max - cfg->rank_min + 1));
    const size_t n3 = (size_t)S * S * S;
redraw:
    memset(tensor, 0, sizeof(int32_t) * n3);
    for (int r = 0; r < R; r++) {
        int8_t *a = actions + (size_t)r * 3 * S;
        memset(a, 0, (size_t)3 * S);
        for (int k = 0; k < 3; k++) {
            int8_t *x = a + k * S;
            int nz;
            do { /* redraw a zero factor: its term would vanish */
                nz = 0;
                for (int i = 0; i < cfg->sizes[k]; i++) {
                    int8_t v = F->v[tg_rng_categorical(rng, w, F->n)];
                    if (cfg->mod2)
                        v &= 1;
                    x[i] = v;
                    nz |= v != 0;
                }
            } while (!nz);
        }
        if (canon) /* negating would leave an asymmetric F */
            tg_action_canonicalize(a, S, cfg->mod2);
        tg_tensor_add_action(tensor, S, a, 1, cfg->mod2);
        /* the partial sums are the residuals of the demonstration: if one is zero (terms that
         * cancel), that game would end early, so draw the whole demonstration again */
        size_t i = 0;
        while (i < n3 && !tensor[i])
            i++;
        if (i == n3)
            goto redraw;
    }
    return R;
}
