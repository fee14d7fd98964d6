/* Flip-graph local search (see flip.h). Terms are rows of int8 factors per slot, each with the
 * hash and sign of its factor normalised to a positive first non-zero entry, so that "equal up to
 * sign" is a hash comparison confirmed by a compare. Nothing is allocated after tg_flip_new. */
#include "common/flip.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rng.h"

#define TG_FLIP_POOL 32

struct tg_flip {
    tg_dims d;
    int len[3];  /* factor lengths: n*m, m*p, p*n */
    int max_rank, coef_max;
    tg_rng rng;
    /* the walk */
    int rank;
    int8_t *x[3];      /* [max_rank + 1][len[s]]: one spare row for the plus step */
    uint64_t *h[3];    /* [max_rank + 1] hash of the normalised factor */
    int8_t *sg[3];     /* [max_rank + 1] sign of the first non-zero entry (0: a zero factor) */
    /* the best scheme, and a pool of schemes at the best rank the walk restarts from */
    int best_rank;
    int8_t *bx[3];
    int8_t *pool[3];   /* [TG_FLIP_POOL][max_rank + 1][len[s]] */
    int pool_n;
    long flips;
    long since;        /* flips since the last reduction or restart */
    /* flippable pairs (slot, i, j), kept up to date across flips that change no rank (only two
     * factors change there: O(pairs + rank) a step instead of O(rank^2)); np < 0: to collect */
    int *pairs;
    int np;
};

static uint64_t factor_key(const int8_t *v, int n, int8_t *sign)
{
    int s = 0;
    for (int k = 0; k < n && !s; k++)
        s = v[k] > 0 ? 1 : v[k] < 0 ? -1 : 0;
    *sign = (int8_t)s;
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < n; k++) {
        h ^= (uint64_t)(uint8_t)(int8_t)(s * v[k]);
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static void term_rehash(tg_flip *f, int s, int r)
{
    f->h[s][r] = factor_key(f->x[s] + (size_t)r * f->len[s], f->len[s], &f->sg[s][r]);
}

/* the compare behind same_factor, once the keys agree */
static int same_factor_rows(const tg_flip *f, int s, int i, int j, int *sigma)
{
    if (!f->sg[s][i] || !f->sg[s][j])
        return 0;
    const int8_t *a = f->x[s] + (size_t)i * f->len[s], *b = f->x[s] + (size_t)j * f->len[s];
    int sig = f->sg[s][i] * f->sg[s][j];
    for (int k = 0; k < f->len[s]; k++)
        if (b[k] != sig * a[k])
            return 0;
    *sigma = sig;
    return 1;
}

/* 1 if factor s of terms i and j are equal up to sign (*sigma: x_j = sigma x_i). Inline: the key
 * comparison rejects nearly every pair, and the pair scans call this O(rank) times a step. */
static inline int same_factor(const tg_flip *f, int s, int i, int j, int *sigma)
{
    return f->h[s][i] == f->h[s][j] && same_factor_rows(f, s, i, j, sigma);
}

static void term_copy(tg_flip *f, int dst, int src)
{
    for (int s = 0; s < 3; s++) {
        memcpy(f->x[s] + (size_t)dst * f->len[s], f->x[s] + (size_t)src * f->len[s], (size_t)f->len[s]);
        f->h[s][dst] = f->h[s][src];
        f->sg[s][dst] = f->sg[s][src];
    }
}

static void term_remove(tg_flip *f, int r)
{
    f->rank--;
    if (r != f->rank)
        term_copy(f, r, f->rank);
}

static int is_zero_term(const tg_flip *f, int r)
{
    return !f->sg[0][r] || !f->sg[1][r] || !f->sg[2][r];
}

/* 1 if x_dst + sigma * x_src in slot s keeps every entry within the bound */
static int sum_fits(const tg_flip *f, int s, int dst, int src, int sigma)
{
    const int8_t *a = f->x[s] + (size_t)dst * f->len[s], *b = f->x[s] + (size_t)src * f->len[s];
    for (int k = 0; k < f->len[s]; k++) {
        int v = a[k] + sigma * b[k];
        if (v > f->coef_max || v < -f->coef_max)
            return 0;
    }
    return 1;
}

/* x_dst += sigma * x_src in slot s (dst != src; sum_fits first) */
static void add_into(tg_flip *f, int s, int dst, int src, int sigma)
{
    int8_t *restrict a = f->x[s] + (size_t)dst * f->len[s]; /* rows dst != src never overlap */
    const int8_t *restrict b = f->x[s] + (size_t)src * f->len[s];
    for (int k = 0; k < f->len[s]; k++)
        a[k] = (int8_t)(a[k] + sigma * b[k]);
    term_rehash(f, s, dst);
}

/* Merges terms that share two factors (up to sign) with term r, and drops zero terms, until none
 * is left; the worklist holds terms changed since they were last checked. */
static void reduce_from(tg_flip *f, int r0, int r1)
{
    int work[4], nw = 0;
    work[nw++] = r0;
    if (r1 >= 0 && r1 != r0)
        work[nw++] = r1;
    while (nw > 0) {
        int r = work[--nw];
        if (r >= f->rank)
            continue;
        if (is_zero_term(f, r)) {
            int last = f->rank - 1;
            term_remove(f, r);
            /* the term moved into r's row must still be checked, under its new index */
            for (int q = 0; q < nw; q++)
                if (work[q] == last)
                    work[q] = r;
            continue;
        }
        for (int l = 0; l < f->rank; l++) {
            if (l == r)
                continue;
            int s1, s2, sig1, sig2;
            for (int u = 0; u < 3; u++) { /* u: the slot that differs */
                s1 = (u + 1) % 3;
                s2 = (u + 2) % 3;
                if (!same_factor(f, s1, r, l, &sig1) || !same_factor(f, s2, r, l, &sig2))
                    continue;
                /* x_l = sig1 sig2 ... : r + l = a (x) b (x) (c_r + sig1 sig2 c_l) */
                if (!sum_fits(f, u, r, l, sig1 * sig2))
                    continue;
                add_into(f, u, r, l, sig1 * sig2);
                int last = f->rank - 1;
                term_remove(f, l);
                int rr = r == last ? l : r;
                for (int q = 0; q < nw; q++)
                    if (work[q] == last)
                        work[q] = l;
                if (nw < 4)
                    work[nw++] = rr;
                goto next;
            }
        }
    next:;
    }
}

tg_flip *tg_flip_new(tg_dims d, int max_rank, int coef_max, uint64_t seed)
{
    if (tg_dims_check(d))
        return NULL;
    if (max_rank < 1 || max_rank > 100000 || coef_max < 1 || coef_max > 127) {
        tg_fail("flip search: max rank %d or coefficient bound %d out of range", max_rank, coef_max);
        return NULL;
    }
    tg_flip *f = calloc(1, sizeof *f);
    if (!f)
        goto fail;
    f->d = d;
    f->np = -1;
    tg_dims_modes(d, f->len);
    f->max_rank = max_rank;
    f->coef_max = coef_max;
    tg_rng_seed(&f->rng, seed, 0x666c6970);
    size_t rows = (size_t)max_rank + 1;
    for (int s = 0; s < 3; s++) {
        f->x[s] = calloc(rows, (size_t)f->len[s]);
        f->bx[s] = calloc(rows, (size_t)f->len[s]);
        f->h[s] = calloc(rows, sizeof *f->h[s]);
        f->sg[s] = calloc(rows, 1);
        f->pool[s] = calloc(rows * TG_FLIP_POOL, (size_t)f->len[s]);
        if (!f->x[s] || !f->bx[s] || !f->h[s] || !f->sg[s] || !f->pool[s])
            goto fail;
    }
    f->pairs = malloc(rows * rows * 3 * 3 / 2 * sizeof *f->pairs + 3 * sizeof *f->pairs);
    if (!f->pairs)
        goto fail;
    return f;
fail:
    tg_fail("flip search: out of memory");
    tg_flip_free(f);
    return NULL;
}

void tg_flip_free(tg_flip *f)
{
    if (!f)
        return;
    for (int s = 0; s < 3; s++) {
        free(f->x[s]);
        free(f->bx[s]);
        free(f->h[s]);
        free(f->sg[s]);
        free(f->pool[s]);
    }
    free(f->pairs);
    free(f);
}

static void rehash_reduce(tg_flip *f);

/* slot s of pool entry q */
static int8_t *pool_rows(const tg_flip *f, int q, int s)
{
    return f->pool[s] + (size_t)q * (size_t)(f->max_rank + 1) * f->len[s];
}

/* where the next scheme at the best rank goes: a free entry, or a random one once all are full */
static int pool_slot(tg_flip *f)
{
    return f->pool_n < TG_FLIP_POOL ? f->pool_n++ : (int)tg_rng_below(&f->rng, TG_FLIP_POOL);
}

static void pool_put(tg_flip *f, int q)
{
    for (int s = 0; s < 3; s++)
        memcpy(pool_rows(f, q, s), f->x[s], (size_t)f->rank * f->len[s]);
}

/* a new best rank: the pool holds the current scheme only */
static void save_best(tg_flip *f)
{
    f->best_rank = f->rank;
    for (int s = 0; s < 3; s++)
        memcpy(f->bx[s], f->x[s], (size_t)f->rank * f->len[s]);
    pool_put(f, 0);
    f->pool_n = 1;
}

static void load_pool(tg_flip *f)
{
    int q = (int)tg_rng_below(&f->rng, (uint32_t)f->pool_n);
    f->rank = f->best_rank;
    for (int s = 0; s < 3; s++)
        memcpy(f->x[s], pool_rows(f, q, s), (size_t)f->rank * f->len[s]);
    rehash_reduce(f); /* an offered scheme may allow reductions */
    if (f->rank < f->best_rank)
        save_best(f);
}

static int check_fact(const tg_flip *f, const tg_fact *g)
{
    tg_dims d = tg_fact_dims(g);
    if (d.n != f->d.n || d.m != f->d.m || d.p != f->d.p)
        return tg_fail("flip search: a factorization of T(%d,%d,%d), not T(%d,%d,%d)", d.n, d.m, d.p,
                       f->d.n, f->d.m, f->d.p);
    if (tg_fact_rank(g) > f->max_rank)
        return tg_fail("flip search: rank %d above the walk's %d", tg_fact_rank(g), f->max_rank);
    if (tg_fact_denom(g) != 1 || tg_fact_arith(g) != TG_ARITH_INTEGER)
        return tg_fail("flip search: integer factorizations with denominator 1 only");
    if (tg_fact_max_abs(g) > f->coef_max)
        return tg_fail("flip search: a coefficient %lld above the bound %d", (long long)tg_fact_max_abs(g),
                       f->coef_max);
    return 0;
}

/* g's terms into rows of x[3] (row stride len[s]) */
static void fact_rows(const tg_flip *f, const tg_fact *g, int8_t *x[3])
{
    const int64_t *src[3] = {tg_fact_cu(g), tg_fact_cv(g), tg_fact_cw(g)};
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < (size_t)tg_fact_rank(g) * f->len[s]; k++)
            x[s][k] = (int8_t)src[s][k];
}

/* the current rows' keys, then every reduction they allow */
static void rehash_reduce(tg_flip *f)
{
    f->np = -1;
    for (int s = 0; s < 3; s++)
        for (int r = 0; r < f->rank; r++)
            term_rehash(f, s, r);
    for (int r = f->rank - 1; r >= 0; r--)
        reduce_from(f, r, -1);
}

int tg_flip_start(tg_flip *f, const tg_fact *start)
{
    if (check_fact(f, start))
        return -1;
    fact_rows(f, start, f->x);
    f->rank = tg_fact_rank(start);
    rehash_reduce(f);
    f->flips = f->since = 0;
    save_best(f);
    return 0;
}

int tg_flip_offer(tg_flip *f, const tg_fact *g)
{
    if (check_fact(f, g))
        return -1;
    int r = tg_fact_rank(g);
    if (f->best_rank > 0 && r > f->best_rank)
        return 0;
    if (f->best_rank == 0 || r < f->best_rank) {
        long flips = f->flips;
        tg_flip_start(f, g);
        f->flips = flips;
        return 1;
    }
    /* the pool's rows are loaded (and reduced) when a restart picks them */
    int q = pool_slot(f);
    int8_t *x[3] = {pool_rows(f, q, 0), pool_rows(f, q, 1), pool_rows(f, q, 2)};
    fact_rows(f, g, x);
    return 1;
}

static int collect_pairs(tg_flip *f)
{
    if (f->np >= 0)
        return f->np;
    int np = 0, sig;
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < f->rank; i++)
            for (int j = i + 1; j < f->rank; j++)
                if (same_factor(f, s, i, j, &sig)) {
                    f->pairs[3 * np] = s;
                    f->pairs[3 * np + 1] = i;
                    f->pairs[3 * np + 2] = j;
                    np++;
                }
    return f->np = np;
}

/* term r's factor in slot s changed: its pairs in that slot are found again */
static void pairs_update(tg_flip *f, int s, int r)
{
    int sig;
    for (int q = 0; q < f->np;) {
        int *p = f->pairs + 3 * q;
        if (p[0] == s && (p[1] == r || p[2] == r)) {
            f->np--;
            memcpy(p, f->pairs + 3 * f->np, 3 * sizeof *p);
        } else {
            q++;
        }
    }
    for (int o = 0; o < f->rank; o++)
        if (o != r && same_factor(f, s, r, o, &sig)) {
            int *p = f->pairs + 3 * f->np++;
            p[0] = s;
            p[1] = r < o ? r : o;
            p[2] = r < o ? o : r;
        }
}

/* one plus step: a_i (x) b_i (x) c_i = (a_i - a_j) (x) b_i (x) c_i + a_j (x) b_i (x) c_i */
static void plus_step(tg_flip *f)
{
    if (f->rank < 2 || f->rank >= f->max_rank)
        return;
    for (int tries = 0; tries < 16; tries++) {
        int i = (int)tg_rng_below(&f->rng, (uint32_t)f->rank);
        int j = (int)tg_rng_below(&f->rng, (uint32_t)f->rank - 1);
        j += j >= i;
        int s = (int)tg_rng_below(&f->rng, 3);
        const int8_t *aj = f->x[s] + (size_t)j * f->len[s];
        /* a_i = a_j would leave a zero term: nothing gained */
        if (!memcmp(f->x[s] + (size_t)i * f->len[s], aj, (size_t)f->len[s]) || !sum_fits(f, s, i, j, -1))
            continue;
        int k = f->rank++;
        term_copy(f, k, i);
        memcpy(f->x[s] + (size_t)k * f->len[s], aj, (size_t)f->len[s]);
        term_rehash(f, s, k);
        add_into(f, s, i, j, -1);
        f->np = -1;
        return;
    }
}

int tg_flip_walk(tg_flip *f, long flips, long plateau, int plus, int stop_rank)
{
    if (f->best_rank == 0) /* no scheme yet */
        return 0;
    for (long n = 0; n < flips && f->best_rank > stop_rank; n++) {
        int np = collect_pairs(f);
        if (np == 0 || f->since >= plateau) {
            /* at the best rank the walk goes on from here (its plateau so far is not lost);
             * above it, from a scheme of the pool */
            if (f->rank == f->best_rank && np > 0)
                pool_put(f, pool_slot(f));
            else
                load_pool(f);
            if (plus)
                plus_step(f);
            f->since = 0;
            np = collect_pairs(f);
            if (np == 0)
                break;
        }
        int q = (int)tg_rng_below(&f->rng, (uint32_t)np);
        int s = f->pairs[3 * q];
        int i = f->pairs[3 * q + 1], j = f->pairs[3 * q + 2];
        if (tg_rng_below(&f->rng, 2)) {
            int t = i;
            i = j;
            j = t;
        }
        int t = (s + 1 + (int)tg_rng_below(&f->rng, 2)) % 3, u = 3 - s - t;
        int sigma;
        same_factor(f, s, i, j, &sigma);
        /* i: b_i += sigma b_j, then j: c_j -= c_i (x_j = sigma a) */
        f->flips++;
        f->since++;
        if (!sum_fits(f, u, j, i, -1) || !sum_fits(f, t, i, j, sigma))
            continue;
        add_into(f, t, i, j, sigma);
        add_into(f, u, j, i, -1);
        int before = f->rank;
        reduce_from(f, i, j);
        if (f->rank == before) { /* only b_i and c_j changed */
            pairs_update(f, t, i);
            pairs_update(f, u, j);
        } else {
            f->np = -1;
        }
        if (f->rank < before && f->rank < f->best_rank) {
            save_best(f);
            f->since = 0;
        }
    }
    return f->best_rank;
}

int tg_flip_best_rank(const tg_flip *f) { return f->best_rank; }
long tg_flip_flips(const tg_flip *f) { return f->flips; }

tg_fact *tg_flip_best(const tg_flip *f)
{
    tg_fact *out = tg_fact_new(f->d, f->best_rank, 1, TG_ARITH_INTEGER);
    if (!out)
        return NULL;
    int64_t *dst[3] = {tg_fact_u(out), tg_fact_v(out), tg_fact_w(out)};
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < (size_t)f->best_rank * f->len[s]; k++)
            dst[s][k] = f->bx[s][k];
    return out;
}
