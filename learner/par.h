/* A small persistent thread pool for the CPU network's parallel loops over rows / sequences
 * (LayerNorm, GELU, attention). GEMMs use OpenBLAS's own threads; the two never run at once. */
#ifndef TG_PAR_H
#define TG_PAR_H

#include <stddef.h>

typedef struct tg_pool tg_pool;

/* fn(ctx, lo, hi, tid) processes items [lo, hi); tid in [0, tg_pool_size) identifies the
 * worker (for per-thread scratch). */
typedef void (*tg_pool_fn)(void *ctx, int lo, int hi, int tid);

/* threads >= 1 (the calling thread is one of them). NULL with a message on failure. */
tg_pool *tg_pool_new(int threads);
void tg_pool_free(tg_pool *p);
int tg_pool_size(const tg_pool *p);
/* Runs fn over [0, n) split into contiguous chunks, one per thread, and waits. Runs serially
 * when n * cost (rough flops per item) is too small to pay for waking the workers. */
void tg_pool_for(tg_pool *p, int n, double cost, tg_pool_fn fn, void *ctx);

#endif
