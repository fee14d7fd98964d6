#include "actor/bandit.h"

#include <math.h>
#include <stdlib.h>

#include "common/err.h"

struct tg_bandit {
    int n;
    double c, discount;
    double *sum;     /* [n] rewards received (discounted) */
    double *ended;   /* [n] rewards received (discounted count) */
    double *started; /* [n] pulls chosen (discounted count); exactly 0 for an untried arm */
    char *off;       /* [n] out of play */
    int n_off;
};

tg_bandit *tg_bandit_new(int n, double c, double discount)
{
    int bad = n < 1 || !(discount > 0 && discount <= 1);
    tg_bandit *b = bad ? NULL : calloc(1, sizeof *b);
    if (!b)
        goto fail;
    b->n = n;
    b->c = c;
    b->discount = discount;
    b->sum = calloc((size_t)n, sizeof *b->sum);
    b->ended = calloc((size_t)n, sizeof *b->ended);
    b->started = calloc((size_t)n, sizeof *b->started);
    b->off = calloc((size_t)n, 1);
    if (!b->sum || !b->ended || !b->started || !b->off)
        goto fail;
    return b;
fail:
    tg_bandit_free(b);
    if (bad)
        tg_fail("bandit: %d arms, discount %g (want >= 1 arm, discount in (0, 1])", n, discount);
    else
        tg_fail("out of memory for a bandit of %d arms", n);
    return NULL;
}

void tg_bandit_free(tg_bandit *b)
{
    if (!b)
        return;
    free(b->sum);
    free(b->ended);
    free(b->started);
    free(b->off);
    free(b);
}

double tg_bandit_mean(const tg_bandit *b, int arm) { return b->ended[arm] > 0 ? b->sum[arm] / b->ended[arm] : 0.0; }
double tg_bandit_started(const tg_bandit *b, int arm) { return b->started[arm]; }

int tg_bandit_pick(tg_bandit *b, tg_rng *rng)
{
    if (b->discount < 1) { /* every pick ages all that was learnt: old returns fade */
        for (int i = 0; i < b->n; i++) {
            b->sum[i] *= b->discount;
            b->ended[i] *= b->discount;
            b->started[i] *= b->discount;
        }
    }
    int skip = b->n_off < b->n; /* with every arm out of play, pick among all */
    int best = (int)tg_rng_below(rng, (uint32_t)b->n);
    if (skip && b->off[best]) { /* uniform among the arms in play */
        int k = (int)tg_rng_below(rng, (uint32_t)(b->n - b->n_off));
        for (int i = 0; i < b->n; i++)
            if (!b->off[i] && k-- == 0) {
                best = i;
                break;
            }
    }
    if (b->c > 0) {
        int off = best;
        double top = -INFINITY, best_s = -INFINITY, total = 0;
        for (int i = 0; i < b->n; i++) {
            total += b->started[i];
            if (b->ended[i] > 0 && !(skip && b->off[i]) && b->sum[i] / b->ended[i] > top)
                top = b->sum[i] / b->ended[i];
        }
        double lg = log(total + 1.0);
        if (top == -INFINITY)
            top = 0.0;
        for (int j = 0; j < b->n; j++) {
            int i = (off + j) % b->n;
            if (skip && b->off[i])
                continue;
            if (b->started[i] == 0) { /* untried: the first from a random offset */
                best = i;
                break;
            }
            double mean = b->ended[i] > 0 ? b->sum[i] / b->ended[i] : top;
            double s = mean + b->c * sqrt(lg / b->started[i]);
            if (s > best_s) {
                best_s = s;
                best = i;
            }
        }
    }
    b->started[best]++;
    return best;
}

void tg_bandit_set_enabled(tg_bandit *b, int arm, int enabled)
{
    TG_ASSERT(arm >= 0 && arm < b->n);
    if ((!enabled) != b->off[arm]) {
        b->off[arm] = (char)!enabled;
        b->n_off += enabled ? -1 : 1;
    }
}

void tg_bandit_reset_arm(tg_bandit *b, int arm)
{
    TG_ASSERT(arm >= 0 && arm < b->n);
    b->sum[arm] = 0;
    b->ended[arm] = b->started[arm] = 0;
}

void tg_bandit_update(tg_bandit *b, int arm, double reward)
{
    TG_ASSERT(arm >= 0 && arm < b->n);
    b->sum[arm] += reward;
    b->ended[arm]++;
}
