#include "replay/table.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/action.h"
#include "common/err.h"

const char *const replay_table_names[REPLAY_NTABLES] = {"demos", "played", "best"};

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

replay_game *replay_game_alloc(int S, int n_moves, int n_pol, int has_initial, int has_basis)
{
    size_t S3 = (size_t)S * S * S, A = 3 * (size_t)S;
    size_t sz = align16(sizeof(replay_game));
    size_t o_init = sz;
    sz += has_initial ? align16(S3 * 4) : 0;
    size_t o_basis = sz;
    sz += has_basis ? align16(3 * (size_t)S * S * 4) : 0;
    size_t o_act = sz;
    sz += align16((size_t)n_moves * A);
    size_t o_ret = sz;
    sz += align16((size_t)n_moves * 4);
    size_t o_off = sz;
    sz += align16(((size_t)n_moves + 1) * 4);
    size_t o_pa = sz;
    sz += align16((size_t)n_pol * A);
    size_t o_pp = sz;
    sz += align16((size_t)n_pol * 4);
    char *m = calloc(1, sz);
    if (!m)
        return NULL;
    replay_game *g = (replay_game *)m;
    atomic_init(&g->refs, 1);
    g->S = S;
    g->n_moves = n_moves;
    g->n_pol = n_pol;
    g->initial = has_initial ? (int32_t *)(m + o_init) : NULL;
    g->basis = has_basis ? (int32_t *)(m + o_basis) : NULL;
    g->actions = (int8_t *)(m + o_act);
    g->returns = (float *)(m + o_ret);
    g->pol_off = (int32_t *)(m + o_off);
    g->pol_actions = (int8_t *)(m + o_pa);
    g->pol_probs = (float *)(m + o_pp);
    return g;
}

void replay_game_ref(replay_game *g) { atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed); }

void replay_game_unref(replay_game *g)
{
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
        free(g);
}

void replay_game_residual(const replay_game *g, int j, int32_t *out)
{
    int S = g->S, n = g->n_moves;
    size_t S3 = (size_t)S * S * S;
    TG_ASSERT(j >= 0 && j <= n);
    /* Games ending at zero: residual_j = sum_{i>=j} a_i, cheaper when j is past the middle. */
    if (!g->initial || (g->solved && n - j < j)) {
        memset(out, 0, S3 * sizeof *out);
        for (int i = j; i < n; i++)
            tg_tensor_add_action(out, S, g->actions + (size_t)i * 3 * S, +1, g->mod2);
        return;
    }
    memcpy(out, g->initial, S3 * sizeof *out);
    for (int i = 0; i < j; i++)
        tg_tensor_add_action(out, S, g->actions + (size_t)i * 3 * S, -1, g->mod2);
}

int replay_game_ends_at_zero(const replay_game *g)
{
    if (!g->initial)
        return 1;
    size_t S3 = (size_t)g->S * g->S * g->S;
    int32_t *t = malloc(S3 * sizeof *t);
    TG_ASSERT(t);
    memcpy(t, g->initial, S3 * sizeof *t);
    for (int i = 0; i < g->n_moves; i++)
        tg_tensor_add_action(t, g->S, g->actions + (size_t)i * 3 * g->S, -1, g->mod2);
    int zero = 1;
    for (size_t i = 0; i < S3 && zero; i++)
        zero = t[i] == 0;
    free(t);
    return zero;
}

struct replay_table {
    int id;
    int64_t capacity;
    pthread_rwlock_t lock;
    replay_game **ring;
    int64_t *start; /* absolute position of each game's first move */
    int64_t cap, head, count;
    int64_t end_abs; /* absolute position after the newest game */
    replay_table_counts c;
};

replay_table *replay_table_new(int id, int64_t capacity)
{
    replay_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->id = id;
    t->capacity = capacity;
    pthread_rwlock_init(&t->lock, NULL);
    return t;
}

void replay_table_free(replay_table *t)
{
    if (!t)
        return;
    for (int64_t i = 0; i < t->count; i++)
        replay_game_unref(t->ring[(t->head + i) % t->cap]);
    free(t->ring);
    free(t->start);
    pthread_rwlock_destroy(&t->lock);
    free(t);
}

int replay_table_id(const replay_table *t) { return t->id; }

static void grow(replay_table *t)
{
    int64_t ncap = t->cap ? 2 * t->cap : 1024;
    replay_game **r = malloc((size_t)ncap * sizeof *r);
    int64_t *s = malloc((size_t)ncap * sizeof *s);
    TG_ASSERT(r && s);
    for (int64_t i = 0; i < t->count; i++) {
        r[i] = t->ring[(t->head + i) % t->cap];
        s[i] = t->start[(t->head + i) % t->cap];
    }
    free(t->ring);
    free(t->start);
    t->ring = r;
    t->start = s;
    t->cap = ncap;
    t->head = 0;
}

void replay_table_append(replay_table *t, replay_game *g)
{
    replay_game *evicted[64];
    int n_ev = 0;
    pthread_rwlock_wrlock(&t->lock);
    if (t->count == t->cap)
        grow(t);
    int64_t k = (t->head + t->count) % t->cap;
    t->ring[k] = g;
    t->start[k] = t->end_abs;
    t->count++;
    t->end_abs += g->n_moves;
    t->c.games++;
    t->c.positions += g->n_moves;
    t->c.inserted_games++;
    t->c.inserted_positions += g->n_moves;
    while (t->capacity > 0 && t->c.positions > t->capacity && t->count > 1 && n_ev < 64) {
        replay_game *old = t->ring[t->head];
        t->head = (t->head + 1) % t->cap;
        t->count--;
        t->c.games--;
        t->c.positions -= old->n_moves;
        t->c.evicted_games++;
        t->c.evicted_positions += old->n_moves;
        evicted[n_ev++] = old;
    }
    pthread_rwlock_unlock(&t->lock);
    for (int i = 0; i < n_ev; i++) /* freed outside the lock */
        replay_game_unref(evicted[i]);
}

void replay_table_counts_get(replay_table *t, replay_table_counts *out)
{
    pthread_rwlock_rdlock(&t->lock);
    *out = t->c;
    pthread_rwlock_unlock(&t->lock);
}

int64_t replay_table_positions(replay_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    int64_t n = t->c.positions;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

void replay_table_rdlock(replay_table *t) { pthread_rwlock_rdlock(&t->lock); }
void replay_table_unlock(replay_table *t) { pthread_rwlock_unlock(&t->lock); }
int64_t replay_table_positions_locked(const replay_table *t) { return t->c.positions; }

const replay_game *replay_table_locate(const replay_table *t, int64_t u, int *move)
{
    TG_ASSERT(u >= 0 && u < t->c.positions && t->count > 0);
    int64_t want = t->start[t->head] + u;
    int64_t lo = 0, hi = t->count - 1; /* last game with start <= want */
    while (lo < hi) {
        int64_t mid = (lo + hi + 1) / 2;
        if (t->start[(t->head + mid) % t->cap] <= want)
            lo = mid;
        else
            hi = mid - 1;
    }
    int64_t k = (t->head + lo) % t->cap;
    *move = (int)(want - t->start[k]);
    TG_ASSERT(*move >= 0 && *move < t->ring[k]->n_moves);
    return t->ring[k];
}

int64_t replay_table_remove_if(replay_table *t, int (*drop)(const replay_game *g, void *ctx), void *ctx)
{
    pthread_rwlock_wrlock(&t->lock);
    replay_game **gone = malloc(((size_t)t->count + 1) * sizeof *gone);
    TG_ASSERT(gone);
    int64_t kept = 0, n_gone = 0, pos = t->count ? t->start[t->head] : t->end_abs;
    /* compact in place, oldest first; positions stay contiguous (sampling counts from the
     * oldest game's start) */
    for (int64_t i = 0; i < t->count; i++) {
        int64_t k = (t->head + i) % t->cap;
        replay_game *g = t->ring[k];
        if (drop(g, ctx)) {
            gone[n_gone++] = g;
            t->c.games--;
            t->c.positions -= g->n_moves;
            t->c.evicted_games++;
            t->c.evicted_positions += g->n_moves;
            continue;
        }
        int64_t d = (t->head + kept) % t->cap;
        t->ring[d] = g;
        t->start[d] = pos;
        pos += g->n_moves;
        kept++;
    }
    t->count = kept;
    t->end_abs = pos;
    pthread_rwlock_unlock(&t->lock);
    for (int64_t i = 0; i < n_gone; i++) /* freed outside the lock */
        replay_game_unref(gone[i]);
    free(gone);
    return n_gone;
}

int replay_table_snapshot(replay_table *t, replay_game ***out, int64_t *n)
{
    pthread_rwlock_rdlock(&t->lock);
    replay_game **a = malloc(((size_t)t->count + 1) * sizeof *a);
    if (!a) {
        pthread_rwlock_unlock(&t->lock);
        return tg_fail("out of memory snapshotting table %s", replay_table_names[t->id]);
    }
    for (int64_t i = 0; i < t->count; i++) {
        a[i] = t->ring[(t->head + i) % t->cap];
        replay_game_ref(a[i]);
    }
    *n = t->count;
    pthread_rwlock_unlock(&t->lock);
    *out = a;
    return 0;
}
