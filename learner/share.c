#include "learner/share.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"

#define SHARE_HALF_LIFE_S 5.0
/* How long the device is kept for a user that released it below its share while the other
 * waited. Without it the shares were never enforced: the inference service releases the device,
 * then answers and gathers its next batch on the host (a few ms); training, waiting, took the
 * device at every release because inference was not waiting at that instant, so the two
 * alternated call for call (43% for inference on the H100 with infer.share 0.7). */
#define SHARE_GRACE_S 0.010

struct tg_share {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double target[2]; /* desired fraction of device time per user */
    double used[2];   /* decayed seconds of device time */
    double last_decay;
    int waiting[2];
    int busy;         /* someone holds the device */
    double t_start;
    int held_for;     /* -1, or the user the device is kept for until held_until */
    double held_until;
};

tg_share *tg_share_new(double infer_share)
{
    tg_share *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    /* timed waits (the grace above) on the clock of tg_now() */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->held_for = -1;
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

/* Whether `who` is at or below its target share against the other (used / target compared). */
static int below_share(const tg_share *s, int who)
{
    int other = 1 - who;
    double total = s->used[0] + s->used[1];
    if (total <= 0)
        return who == TG_SHARE_INFER; /* nothing measured yet: latency first */
    if (s->target[who] <= 0)
        return 0;
    if (s->target[other] <= 0)
        return 1;
    return s->used[who] / s->target[who] <= s->used[other] / s->target[other];
}

/* May `who` go now? Not while the device is kept for the other; else only if the other does
 * not wait, or `who` is below its share. */
static int may_go(const tg_share *s, int who, double now)
{
    if (s->busy)
        return 0;
    if (s->held_for == 1 - who && now < s->held_until)
        return 0;
    if (!s->waiting[1 - who])
        return 1;
    return below_share(s, who);
}

void tg_share_acquire(tg_share *s, enum tg_share_who who)
{
    pthread_mutex_lock(&s->mu);
    s->waiting[who]++;
    for (;;) {
        double now = tg_now();
        if (may_go(s, who, now))
            break;
        if (!s->busy && s->held_for == 1 - (int)who && now < s->held_until) {
            /* kept for the other: wait for it, at most until its grace ends */
            struct timespec ts;
            double t = s->held_until;
            ts.tv_sec = (time_t)t;
            ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        } else {
            pthread_cond_wait(&s->cv, &s->mu);
        }
    }
    s->waiting[who]--;
    s->held_for = -1;
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
    /* still below its share while the other waits: keep the device for it a moment, so that its
     * host work between calls does not hand every turn to the other */
    if (s->waiting[1 - who] && s->target[who] > 0 && below_share(s, who)) {
        s->held_for = who;
        s->held_until = now + SHARE_GRACE_S;
    } else {
        s->held_for = -1;
    }
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
