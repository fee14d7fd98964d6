#define _GNU_SOURCE
#include "replay/sampler.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/action.h"
#include "common/err.h"
#include "common/log.h"
#include "common/perm.h"
#include "common/wire.h"

#define MAX_WORKERS 64

struct replay_sampler {
    const tg_config *c;
    replay_table *t[REPLAY_NTABLES];
    int S, T, n_steps, n_scalars;
    tg_sperm *perms; /* [n_targets][n_perms] */
    int n_perms;
    /* workers */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th[MAX_WORKERS];
    int n_workers, prefetch, want, stop, building;
    replay_batch **ready;
    int n_ready;
    int pipe_fd[2];
};

void replay_batch_free(replay_batch *b)
{
    if (b) {
        free(b->data);
        free(b);
    }
}

static void malloc_setup(void)
{
    mallopt(M_MMAP_THRESHOLD, 512 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

replay_sampler *replay_sampler_new(const tg_config *c, replay_table *tables[REPLAY_NTABLES])
{
    replay_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        tg_fail("out of memory");
        return NULL;
    }
    /* A paper-size batch is ~48 MB twice (arrays, packed message). Above glibc's mmap threshold
     * every batch would be fresh mmap'd pages, and page faults then cost more than building it;
     * from the heap the memory is reused. Process-wide, set once. */
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, malloc_setup);
    s->c = c;
    for (int i = 0; i < REPLAY_NTABLES; i++)
        s->t[i] = tables[i];
    s->S = c->game.S;
    s->T = c->game.history + 1;
    s->n_steps = c->game.n_steps;
    s->n_scalars = c->game.n_scalars;
    s->n_perms = c->game.signed_perms ? c->game.perm_pool : 1;
    if (s->n_perms < 1)
        s->n_perms = 1;
    s->pipe_fd[0] = s->pipe_fd[1] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->perms = calloc((size_t)c->game.n_targets * s->n_perms, sizeof *s->perms);
    if (!s->perms) {
        free(s);
        tg_fail("out of memory");
        return NULL;
    }
    /* a fixed pool per target, as the paper does (signs only where F = -F and not mod 2) */
    tg_rng rng;
    tg_rng_seed(&rng, c->run.seed, 0x7065726dULL);
    int signs = !c->game.mod2 && tg_coeffs_symmetric(&c->game.F);
    for (int t = 0; t < c->game.n_targets; t++) {
        int sizes[3];
        tg_dims_modes(c->game.dims[t], sizes);
        for (int k = 0; k < s->n_perms; k++) {
            tg_sperm *p = &s->perms[t * s->n_perms + k];
            if (k == 0 || !c->game.signed_perms)
                tg_sperm_identity(p, s->S, sizes);
            else
                tg_sperm_sample(p, s->S, sizes, signs, &rng);
        }
    }
    return s;
}

static int target_index(const tg_config *c, tg_dims d)
{
    for (int i = 0; i < c->game.n_targets; i++)
        if (c->game.dims[i].n == d.n && c->game.dims[i].m == d.m && c->game.dims[i].p == d.p)
            return i;
    return -1;
}

int replay_sampler_split(replay_sampler *s, int B, int from[REPLAY_NTABLES])
{
    const tg_config *c = s->c;
    int64_t pos[REPLAY_NTABLES];
    for (int i = 0; i < REPLAY_NTABLES; i++)
        pos[i] = replay_table_positions(s->t[i]);
    int64_t min_size = c->replay.min_size > 0 ? c->replay.min_size : 1;
    int avail[REPLAY_NTABLES] = {pos[REPLAY_DEMOS] > 0, pos[REPLAY_PLAYED] >= min_size, 0};
    avail[REPLAY_BEST] = c->replay.best_games && pos[REPLAY_BEST] > 0 && avail[REPLAY_PLAYED];
    double f[REPLAY_NTABLES] = {c->replay.frac_demos, c->replay.frac_played, c->replay.frac_best}, sum = 0;
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        f[i] = avail[i] ? f[i] : 0;
        sum += f[i];
    }
    if (sum <= 0) { /* the configured tables are empty: use whatever has positions */
        for (int i = 0; i < REPLAY_NTABLES; i++) {
            f[i] = avail[i] ? 1 : 0;
            sum += f[i];
        }
        if (sum <= 0)
            return tg_fail("nothing to sample yet (demos %lld, played %lld of %lld needed, best %lld positions)",
                           (long long)pos[0], (long long)pos[1], (long long)min_size, (long long)pos[2]);
    }
    /* largest remainder: the counts of every batch match the fractions as closely as possible */
    int total = 0;
    double rem[REPLAY_NTABLES];
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        double x = B * f[i] / sum;
        from[i] = (int)x;
        rem[i] = x - from[i];
        total += from[i];
    }
    while (total < B) {
        int k = -1;
        for (int i = 0; i < REPLAY_NTABLES; i++)
            if (f[i] > 0 && (k < 0 || rem[i] > rem[k]))
                k = i;
        from[k]++;
        rem[k] = -1;
        total++;
    }
    return 0;
}

static void rank_one(float *out, int S, const int8_t *a)
{
    const int8_t *u = a, *v = a + S, *w = a + 2 * S;
    for (int i = 0; i < S; i++) {
        if (!u[i])
            continue;
        for (int j = 0; j < S; j++) {
            if (!v[j])
                continue;
            float uv = (float)u[i] * (float)v[j];
            float *o = out + ((size_t)i * S + j) * S;
            for (int k = 0; k < S; k++)
                o[k] = uv * (float)w[k];
        }
    }
}

typedef struct pick {
    const replay_game *g;
    int move;
    int table;
    const tg_sperm *perm;
    uint64_t order; /* replay.reorder: seed of the order of the game's moves; 0 = as played */
} pick;

/* replay.reorder: the terms of a factorization commute, so a solved game in another order of its
 * moves is a valid game of the same length: position j is the sum of the moves ord[j..n-1], its
 * target the move ord[j], its history ord[j-1], ord[j-2]. Pass 1 and pass 2 derive the same
 * order from the pick's seed. */
static void move_order(const pick *p, int *ord)
{
    int n = p->g->n_moves;
    for (int i = 0; i < n; i++)
        ord[i] = i;
    tg_rng r;
    tg_rng_seed(&r, p->order, 0x6f72646572ULL);
    for (int i = n - 1; i > 0; i--) {
        int k = (int)tg_rng_below(&r, (uint32_t)i + 1), t = ord[i];
        ord[i] = ord[k];
        ord[k] = t;
    }
}

/* Packing without copying the big array: a ProtobufCBuffer that leaves a hole where the tensors'
 * bytes go (recognised by their data pointer, which protobuf-c passes through unread), so the
 * features are then written once, straight into the message. */
typedef struct zbuf {
    ProtobufCBuffer base;
    uint8_t *data;
    size_t len;
    const uint8_t *hole;
    size_t hole_off;
} zbuf;

static void zbuf_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    zbuf *z = (zbuf *)b;
    if (data == z->hole)
        z->hole_off = z->len;
    else
        memcpy(z->data + z->len, data, len);
    z->len += len;
}

static const uint8_t hole_marker;

replay_batch *replay_sampler_build(replay_sampler *s, int B, tg_rng *rng)
{
    const tg_config *c = s->c;
    int from[REPLAY_NTABLES];
    if (B < 1) {
        tg_fail("batch size %d", B);
        return NULL;
    }
    if (replay_sampler_split(s, B, from))
        return NULL;
    int S = s->S, T = s->T, A = 3 * S, NS = s->n_steps, NSC = s->n_scalars;
    size_t S3 = (size_t)S * S * S, per = (size_t)T * S3;
    pick *pk = malloc((size_t)B * sizeof *pk);
    float *scal = calloc((size_t)B * NSC, sizeof(float));
    int32_t *tok = malloc((size_t)B * NS * sizeof(int32_t));
    float *ret = malloc((size_t)B * sizeof(float));
    int32_t *res = malloc(S3 * sizeof *res), *resp = malloc(S3 * sizeof *resp);
    float *x = malloc(per * sizeof *x);
    replay_batch *out = calloc(1, sizeof *out);
    int *ord = NULL, max_moves = 1;
    int n = 0;
    if (!pk || !scal || !tok || !ret || !res || !resp || !x || !out) {
        tg_fail("out of memory building a batch of %d", B);
        goto fail;
    }
    /* Choose positions under the read locks and take references, build features without locks. */
    for (int t = 0; t < REPLAY_NTABLES; t++) {
        if (!from[t])
            continue;
        replay_table_rdlock(s->t[t]);
        int64_t np = replay_table_positions_locked(s->t[t]);
        if (np <= 0) { /* tables never shrink below one game; kept as a guard */
            replay_table_unlock(s->t[t]);
            tg_fail("table %s is empty", replay_table_names[t]);
            goto fail;
        }
        for (int k = 0; k < from[t]; k++) {
            int64_t u = (int64_t)(tg_rng_uniform(rng) * (double)np);
            if (u >= np)
                u = np - 1;
            pk[n].g = replay_table_locate(s->t[t], u, &pk[n].move);
            pk[n].table = t;
            pk[n].order = 0;
            /* only games that end at zero: their moves in any order are a factorization */
            if (t != REPLAY_DEMOS && c->replay.reorder > 0 && pk[n].g->solved &&
                pk[n].g->n_moves > 1 && tg_rng_uniform(rng) < c->replay.reorder)
                pk[n].order = tg_rng_u64(rng) | 1;
            if (pk[n].g->n_moves > max_moves)
                max_moves = pk[n].g->n_moves;
            replay_game_ref((replay_game *)pk[n].g);
            n++;
        }
        replay_table_unlock(s->t[t]);
    }
    TG_ASSERT(n == B);
    if (!(ord = malloc((size_t)max_moves * sizeof *ord))) {
        tg_fail("out of memory building a batch of %d", B);
        goto fail;
    }
    /* pass 1: permutation, policy target, return, scalars */
    for (int i = 0; i < B; i++) {
        const replay_game *g = pk[i].g;
        int j = pk[i].move;
        int ti = target_index(c, g->dims);
        TG_ASSERT(ti >= 0); /* validated on insert and load */
        pk[i].perm = &s->perms[ti * s->n_perms + (s->n_perms > 1 ? (int)tg_rng_below(rng, (uint32_t)s->n_perms) : 0)];
        /* policy target: a child drawn from the stored improved policy, else the played move. With
         * replay.best_played a best game teaches the moves it played: the search's policy at each
         * of its positions spreads over children that did not lead to the best rank, and a best
         * line that the policy plays rarely stays rare (H100 joint run: ~0.7% of games) */
        const int8_t *target = g->actions + (size_t)j * A;
        int k0 = g->pol_off[j], k1 = g->pol_off[j + 1];
        if (pk[i].order) { /* the search's policy was for the position as played: the move itself */
            move_order(&pk[i], ord);
            target = g->actions + (size_t)ord[j] * A;
        } else if (k1 > k0 && !(c->replay.best_played && pk[i].table == REPLAY_BEST)) {
            double tot = 0;
            for (int k = k0; k < k1; k++)
                tot += g->pol_probs[k];
            if (tot > 0) {
                double r = tg_rng_uniform(rng) * tot;
                int k = k0;
                for (; k < k1 - 1; k++)
                    if ((r -= g->pol_probs[k]) < 0)
                        break;
                target = g->pol_actions + (size_t)k * A;
            }
        }
        int8_t a[3 * TG_MAX_S];
        tg_sperm_apply_action(pk[i].perm, target, a);
        tg_action_canonicalize(a, S, g->mod2);
        if (tg_action_to_tokens(&c->game.F, S, NS, a, tok + (size_t)i * NS)) {
            /* entries are checked on insert and load, so this is a broken invariant */
            tg_error("batch: %s", tg_errmsg());
            TG_ASSERT(0);
        }
        ret[i] = g->returns[j];
        scal[(size_t)i * NSC] = (float)j / (float)c->game.r_limit;
    }
    /* the message, with a hole for the tensors */
    Tg__Batch bt = TG__BATCH__INIT;
    Tg__Array at = TG__ARRAY__INIT, as = TG__ARRAY__INIT, ak = TG__ARRAY__INIT, ar = TG__ARRAY__INIT;
    int64_t st[5] = {B, T, S, S, S}, ss[2] = {B, NSC}, sk[2] = {B, NS}, sr[1] = {B};
    int64_t b1[5], b2[2], b3[2], b4[1];
    tg_array_set(&at, TG__DTYPE__F32, 5, st, b1, &hole_marker, (size_t)B * per * sizeof(float));
    tg_array_set(&as, TG__DTYPE__F32, 2, ss, b2, scal, (size_t)B * NSC * sizeof(float));
    tg_array_set(&ak, TG__DTYPE__I32, 2, sk, b3, tok, (size_t)B * NS * sizeof(int32_t));
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, b4, ret, (size_t)B * sizeof(float));
    bt.tensors = &at;
    bt.scalars = &as;
    bt.tokens = &ak;
    bt.returns = &ar;
    bt.from_demos = (uint32_t)from[REPLAY_DEMOS];
    bt.from_played = (uint32_t)from[REPLAY_PLAYED];
    bt.from_best = (uint32_t)from[REPLAY_BEST];
    Tg__Envelope env = TG__ENVELOPE__INIT;
    env.version = TG_PROTO_VERSION;
    env.body_case = TG__ENVELOPE__BODY_BATCH;
    env.batch = &bt;
    size_t size = tg__envelope__get_packed_size(&env);
    zbuf z = {.base = {zbuf_append}, .data = malloc(size), .hole = &hole_marker, .hole_off = (size_t)-1};
    if (!z.data) {
        tg_fail("out of memory packing a batch of %zu bytes", size);
        goto fail;
    }
    protobuf_c_message_pack_to_buffer(&env.base, &z.base);
    TG_ASSERT(z.len == size && z.hole_off != (size_t)-1);
    /* pass 2: the features, written once into the message (unaligned: memcpy per position) */
    uint8_t *dst = z.data + z.hole_off;
    for (int i = 0; i < B; i++) {
        const replay_game *g = pk[i].g;
        int j = pk[i].move;
        if (pk[i].order) {
            move_order(&pk[i], ord);
            memset(res, 0, S3 * sizeof *res);
            for (int k = j; k < g->n_moves; k++)
                tg_tensor_add_action(res, S, g->actions + (size_t)ord[k] * A, +1, g->mod2);
        } else {
            replay_game_residual(g, j, res);
        }
        tg_sperm_apply_tensor(pk[i].perm, res, resp);
        for (size_t e = 0; e < S3; e++)
            x[e] = (float)resp[e];
        memset(x + S3, 0, (per - S3) * sizeof *x);
        int8_t a[3 * TG_MAX_S];
        for (int h = 1; h < T && j - h >= 0; h++) {
            int m = pk[i].order ? ord[j - h] : j - h;
            tg_sperm_apply_action(pk[i].perm, g->actions + (size_t)m * A, a);
            rank_one(x + (size_t)h * S3, S, a);
        }
        memcpy(dst + (size_t)i * per * sizeof *x, x, per * sizeof *x);
    }
    for (int i = 0; i < B; i++)
        replay_game_unref((replay_game *)pk[i].g);
    out->data = z.data;
    out->len = size;
    out->B = B;
    memcpy(out->from, from, sizeof from);
    free(pk), free(scal), free(tok), free(ret), free(res), free(resp), free(x), free(ord);
    return out;
fail:
    for (int i = 0; i < n; i++)
        replay_game_unref((replay_game *)pk[i].g);
    free(pk), free(scal), free(tok), free(ret), free(res), free(resp), free(x), free(ord);
    replay_batch_free(out);
    return NULL;
}

/* ---- workers ----------------------------------------------------------------------------- */

typedef struct worker_arg {
    replay_sampler *s;
    int idx;
} worker_arg;

static void *worker(void *arg)
{
    replay_sampler *s = ((worker_arg *)arg)->s;
    int idx = ((worker_arg *)arg)->idx;
    free(arg);
    tg_rng rng;
    tg_rng_seed(&rng, s->c->run.seed ^ (uint64_t)tg_wall(), 0x73616d70ULL + (uint64_t)idx);
    int warned = 0;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (s->n_ready + s->building >= s->prefetch) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        int B = s->want;
        s->building++; /* so that workers do not overshoot prefetch */
        pthread_mutex_unlock(&s->mu);
        replay_batch *b = replay_sampler_build(s, B, &rng);
        pthread_mutex_lock(&s->mu);
        s->building--;
        if (!b) {
            if (!warned++)
                tg_info("sampler: %s (waiting)", tg_errmsg());
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        warned = 0;
        if (b->B != s->want || s->stop) {
            replay_batch_free(b);
            continue;
        }
        s->ready[s->n_ready++] = b;
        char one = 1;
        if (write(s->pipe_fd[1], &one, 1) < 0 && errno != EAGAIN)
            tg_warn("sampler: cannot signal: %s", strerror(errno));
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int replay_sampler_start(replay_sampler *s, int workers, int prefetch, int batch)
{
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;
    s->prefetch = prefetch < 1 ? 1 : prefetch;
    s->want = batch;
    if (!(s->ready = calloc((size_t)s->prefetch + MAX_WORKERS, sizeof *s->ready)))
        return tg_fail("out of memory");
    if (pipe2(s->pipe_fd, O_NONBLOCK | O_CLOEXEC))
        return tg_fail("pipe: %s", strerror(errno));
    for (int i = 0; i < workers; i++) {
        worker_arg *a = malloc(sizeof *a);
        if (!a)
            return tg_fail("out of memory");
        a->s = s;
        a->idx = i;
        if (pthread_create(&s->th[i], NULL, worker, a)) {
            free(a);
            return tg_fail("cannot start sampler thread %d", i);
        }
        s->n_workers++;
    }
    return 0;
}

void replay_sampler_want(replay_sampler *s, int batch)
{
    pthread_mutex_lock(&s->mu);
    if (batch != s->want) {
        s->want = batch;
        int k = 0; /* drop batches of the old size */
        for (int i = 0; i < s->n_ready; i++) {
            if (s->ready[i]->B == batch)
                s->ready[k++] = s->ready[i];
            else
                replay_batch_free(s->ready[i]);
        }
        s->n_ready = k;
        pthread_cond_broadcast(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
}

replay_batch *replay_sampler_take(replay_sampler *s, int B, int64_t max_rated)
{
    replay_batch *b = NULL;
    int now[REPLAY_NTABLES];
    int have_now = replay_sampler_split(s, B, now) == 0;
    pthread_mutex_lock(&s->mu);
    /* drop batches built before a table became available (their split is no longer the config's) */
    int k = 0;
    for (int i = 0; i < s->n_ready; i++) {
        replay_batch *x = s->ready[i];
        if (have_now && x->B == B && memcmp(x->from, now, sizeof now) != 0) {
            replay_batch_free(x);
            pthread_cond_signal(&s->cv);
        } else {
            s->ready[k++] = x;
        }
    }
    s->n_ready = k;
    for (int i = 0; i < s->n_ready; i++) {
        replay_batch *x = s->ready[i];
        if (x->B == B && x->from[REPLAY_PLAYED] + x->from[REPLAY_BEST] <= max_rated) {
            b = x;
            memmove(&s->ready[i], &s->ready[i + 1], (size_t)(s->n_ready - i - 1) * sizeof *s->ready);
            s->n_ready--;
            pthread_cond_signal(&s->cv);
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return b;
}

int replay_sampler_ready(replay_sampler *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->n_ready;
    pthread_mutex_unlock(&s->mu);
    return n;
}

int replay_sampler_fd(const replay_sampler *s) { return s->pipe_fd[0]; }

void replay_sampler_drain_fd(replay_sampler *s)
{
    char buf[256];
    while (s->pipe_fd[0] >= 0 && read(s->pipe_fd[0], buf, sizeof buf) > 0)
        ;
}

void replay_sampler_free(replay_sampler *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_workers; i++)
        pthread_join(s->th[i], NULL);
    for (int i = 0; i < s->n_ready; i++)
        replay_batch_free(s->ready[i]);
    free(s->ready);
    for (int i = 0; i < 2; i++)
        if (s->pipe_fd[i] >= 0)
            close(s->pipe_fd[i]);
    free(s->perms);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
