#include "learner/share.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/log.h"

#define SHARE_HALF_LIFE_S 5.0

struct tg_share {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double target[2]; /* desired fraction of device time per user */
    double used[2];   /* decayed seconds of device time */
    double last_decay;
    int waiting[2];
    int busy;         /* someone holds the device */
    double t_start;
};

tg_share *tg_share_new(double infer_share)
{
    tg_share *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (infer_share < 0)
        infer_share = 0;
    if (infer_share > 1)
        infer_share = 1;
    s->target[TG_SHARE_INFER] = infer_share;
    s->target[TG_SHARE_TRAIN] = 1 - infer_share;
    s->last_decay = tg_now();
    return s;
}

void tg_share_free(tg_share *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void decay(tg_share *s, double now)
{
    double f = exp2(-(now - s->last_decay) / SHARE_HALF_LIFE_S);
    s->used[0] *= f;
    s->used[1] *= f;
    s->last_decay = now;
}

/* May `who` go now? Only if the other does not wait, or `who` is below its share. */
static int may_go(const tg_share *s, int who)
{
    if (s->busy)
        return 0;
    int other = 1 - who;
    if (!s->waiting[other])
        return 1;
    double total = s->used[0] + s->used[1];
    if (total <= 0)
        return who == TG_SHARE_INFER; /* nothing measured yet: latency first */
    if (s->target[who] <= 0)
        return 0;
    if (s->target[other] <= 0)
        return 1;
    /* compare used/target: the one furthest below its target goes */
    return s->used[who] / s->target[who] <= s->used[other] / s->target[other];
}

void tg_share_acquire(tg_share *s, enum tg_share_who who)
{
    pthread_mutex_lock(&s->mu);
    s->waiting[who]++;
    while (!may_go(s, who))
        pthread_cond_wait(&s->cv, &s->mu);
    s->waiting[who]--;
    s->busy = 1;
    s->t_start = tg_now();
    pthread_mutex_unlock(&s->mu);
}

void tg_share_release(tg_share *s, enum tg_share_who who)
{
    pthread_mutex_lock(&s->mu);
    double now = tg_now();
    decay(s, now);
    s->used[who] += now - s->t_start;
    s->busy = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

double tg_share_infer_fraction(tg_share *s)
{
    pthread_mutex_lock(&s->mu);
    double t = s->used[0] + s->used[1];
    double f = t > 0 ? s->used[TG_SHARE_INFER] / t : 0;
    pthread_mutex_unlock(&s->mu);
    return f;
}
