/* Persistent thread pool (see par.h): workers wait on a generation counter. */
#include "learner/par.h"

#include <pthread.h>
#include <stdlib.h>

#include "common/err.h"

struct tg_pool {
    int n;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned gen;
    int pending, stop;
    tg_pool_fn fn;
    void *ctx;
    int items;
};

typedef struct worker_arg {
    tg_pool *p;
    int tid;
} worker_arg;

static void run_chunk(tg_pool *p, int tid)
{
    int lo = (int)((long long)p->items * tid / p->n);
    int hi = (int)((long long)p->items * (tid + 1) / p->n);
    if (hi > lo)
        p->fn(p->ctx, lo, hi, tid);
}

static void *worker(void *arg)
{
    worker_arg *a = arg;
    tg_pool *p = a->p;
    int tid = a->tid;
    free(a);
    pthread_mutex_lock(&p->mu);
    unsigned seen = 0; /* gen starts at 0: a worker that starts late still sees the first job */
    for (;;) {
        while (p->gen == seen && !p->stop)
            pthread_cond_wait(&p->go, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_chunk(p, tid);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

tg_pool *tg_pool_new(int threads)
{
    if (threads < 1)
        threads = 1;
    tg_pool *p = calloc(1, sizeof *p);
    if (!p) {
        tg_fail("out of memory");
        return NULL;
    }
    p->n = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->th = calloc((size_t)threads, sizeof *p->th);
    if (!p->th) {
        tg_fail("out of memory");
        free(p);
        return NULL;
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->p = p;
            a->tid = i;
        }
        if (!a || pthread_create(&p->th[i], NULL, worker, a)) {
            free(a);
            tg_fail("cannot start worker thread");
            p->n = i; /* join those started */
            tg_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void tg_pool_free(tg_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

int tg_pool_size(const tg_pool *p)
{
    return p->n;
}

void tg_pool_for(tg_pool *p, int n, double cost, tg_pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (p->n == 1 || n == 1 || (double)n * cost < 20000.0) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->items = n;
    p->pending = p->n - 1;
    p->gen++;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
