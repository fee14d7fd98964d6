#include "replay/server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"
#include "common/game.h"
#include "common/log.h"
#include "common/sock.h"
#include "common/wire.h"
#include "learner/tb.h"
#include "replay/demos.h"
#include "replay/ingest.h"
#include "replay/journal.h"
#include "replay/results.h"
#include "replay/sampler.h"
#include "replay/store.h"
#include "replay/table.h"

#define MAX_IDENT 256
#define MAX_BATCH (1 << 16)
#define MAX_STATS 96
#define MAX_WAITING 4096 /* sample requests queued per server */
#define JOURNAL_MAX ((uint64_t)1 << 30) /* checkpoint early when the journal grows past this */

typedef struct peer {
    uint8_t id[MAX_IDENT];
    size_t len;
    int delim; /* REQ-style empty delimiter frame */
} peer;

typedef struct ack {
    peer to;
    uint64_t id, seq; /* our game id, the sender's Game.seq (echoed) */
} ack;

typedef struct sreq {
    peer to;
    int B;
    double since;
} sreq;

struct replay_server {
    int permanent; /* the start-up failure is one a restart cannot fix */
    const tg_config *c;
    replay_server_opts o;
    char h5[4096], results_path[4096], endpoint[512];
    replay_table *t[REPLAY_NTABLES];
    replay_sampler *sampler;
    replay_demos *demos;
    replay_results *results;
    replay_journal *journal;
    _Atomic uint64_t next_id;
    int best[TG_MAX_TARGETS];
    tg_sock_sec *sec;
    void *sock;
    tg_tb *tb;
    double t_start;
    /* pending acknowledgements and sample requests */
    ack *acks;
    int n_acks, cap_acks;
    double first_ack;
    sreq *reqs;
    int n_reqs, cap_reqs;
    /* rate limiter: positions inserted into played (loaded ones count) and sampled from played+best */
    int64_t lim_inserts, lim_samples;
    int lim_blocked;
    double blocked_since, blocked_total;
    /* counters */
    uint64_t n_malformed, n_oversized, n_unsupported, n_invalid, n_internal;
    uint64_t games_in, positions_in, batches_out, positions_out, discoveries, discoveries_rejected, checkpoints;
    /* rates over the last stats interval */
    double last_stats, ins_rate, samp_rate, batch_rate;
    uint64_t last_pos_in, last_pos_out, last_batches;
    /* checkpoint thread */
    pthread_t ck_th;
    int ck_running;
    atomic_int ck_done;
    int ck_rc;
    char ck_err[1024];
    replay_store_meta ck_meta;
    replay_store_tables ck_tables;
    double last_ckpt;
    int64_t ck_mark; /* inserts + demos at the last checkpoint, to skip idle ones */
    int demos_was_running;
    int lock_fd;
    int64_t journal_restored; /* games restored from the journal: the next checkpoint takes them */
};

/* ---- helpers ------------------------------------------------------------------------------ */

static int64_t change_mark(replay_server *s)
{
    replay_table_counts d;
    replay_table_counts_get(s->t[REPLAY_DEMOS], &d);
    return (int64_t)s->games_in + d.inserted_games;
}

static void push_ack(replay_server *s, const peer *p, uint64_t id, uint64_t seq)
{
    if (s->n_acks == s->cap_acks) {
        s->cap_acks = s->cap_acks ? 2 * s->cap_acks : 64;
        s->acks = realloc(s->acks, (size_t)s->cap_acks * sizeof *s->acks);
        TG_ASSERT(s->acks);
    }
    if (s->n_acks == 0)
        s->first_ack = tg_now();
    s->acks[s->n_acks].to = *p;
    s->acks[s->n_acks].seq = seq;
    s->acks[s->n_acks++].id = id;
}

static void free_data(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Sends [identity][empty if REQ][body], taking ownership of body (malloc'd). */
static int send_raw(replay_server *s, const peer *p, uint8_t *body, size_t len)
{
    zmq_msg_t m;
    if (zmq_send(s->sock, p->id, p->len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        (p->delim && zmq_send(s->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)) {
        free(body);
        return tg_fail("send: %s", zmq_strerror(errno));
    }
    if (zmq_msg_init_data(&m, body, len, free_data, NULL)) {
        free(body);
        return tg_fail("zmq_msg_init_data: %s", zmq_strerror(errno));
    }
    if (zmq_msg_send(&m, s->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return tg_fail("send: %s", zmq_strerror(errno));
    }
    return 0;
}

static int send_env(replay_server *s, const peer *p, Tg__Envelope *e)
{
    uint8_t *buf;
    size_t n = tg_wire_encode(e, &buf);
    if (!buf)
        return -1;
    return send_raw(s, p, buf, n);
}

static void send_error(replay_server *s, const peer *p, int code, const char *msg)
{
    Tg__Error er = TG__ERROR__INIT;
    er.code = code;
    er.message = (char *)msg;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_ERROR;
    e.error = &er;
    if (send_env(s, p, &e))
        tg_warn("cannot send an error reply: %s", tg_errmsg());
}

static void send_ack(replay_server *s, const peer *p, uint64_t id, uint64_t seq)
{
    Tg__GameAck a = TG__GAME_ACK__INIT;
    a.game_id = id;
    a.seq = seq;
    a.durable = 1;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME_ACK;
    e.game_ack = &a;
    if (send_env(s, p, &e))
        tg_warn("cannot send an acknowledgement: %s", tg_errmsg());
}

/* ---- inserting ---------------------------------------------------------------------------- */

typedef struct worse_than {
    tg_dims dims;
    int rank;
} worse_than;

static int is_worse(const replay_game *g, void *ctx)
{
    const worse_than *w = ctx;
    return g->dims.n == w->dims.n && g->dims.m == w->dims.m && g->dims.p == w->dims.p && g->rank > w->rank;
}

/* The best table holds games at the best rank of their target: when a better rank is found, the
 * games of the old one leave it, so that best-game retraining works on the new rank's games
 * instead of the many of the old (e.g. 2x2x2: ~100 rank-8 games beside the first rank-7 one). */
static void drop_worse_best(replay_server *s, int ti)
{
    if (!s->c->replay.best_games || s->best[ti] == 0)
        return;
    worse_than w = {s->c->game.dims[ti], s->best[ti]};
    int64_t n = replay_table_remove_if(s->t[REPLAY_BEST], is_worse, &w);
    if (n > 0)
        tg_info("best games of %s: %lld above rank %d dropped", s->c->game.targets[ti], (long long)n, s->best[ti]);
}

static void insert_game(replay_server *s, replay_game *g)
{
    int ti = replay_target_index(s->c, g->dims);
    TG_ASSERT(ti >= 0);
    int to_best = 0;
    if (g->solved) {
        if (s->best[ti] == 0 || g->rank < s->best[ti]) {
            tg_info("new best rank %d for %s (game %llu by %s, model %llu)", g->rank, s->c->game.targets[ti],
                    (unsigned long long)g->id, g->actor, (unsigned long long)g->model_version);
            s->best[ti] = g->rank;
            drop_worse_best(s, ti);
        }
        to_best = s->c->replay.best_games && g->rank <= s->best[ti];
    }
    s->lim_inserts += g->n_moves;
    if (to_best) {
        replay_game_ref(g);
        replay_table_append(s->t[REPLAY_BEST], g);
    }
    replay_table_append(s->t[REPLAY_PLAYED], g);
}

static int flush_acks(replay_server *s, int force)
{
    if (s->n_acks == 0)
        return 0;
    if (!force && s->n_acks < s->c->replay.flush_count && tg_now() - s->first_ack < s->c->replay.flush_ms * 1e-3)
        return 0;
    if (replay_journal_sync(s->journal)) {
        /* nothing acknowledged: the actors resend */
        tg_error("journal: %s", tg_errmsg());
        for (int i = 0; i < s->n_acks; i++)
            send_error(s, &s->acks[i].to, REPLAY_E_INTERNAL, "replay journal cannot be synced; resend the game");
        s->n_internal += (uint64_t)s->n_acks;
        s->n_acks = 0;
        return -1;
    }
    for (int i = 0; i < s->n_acks; i++)
        send_ack(s, &s->acks[i].to, s->acks[i].id, s->acks[i].seq);
    s->n_acks = 0;
    return 0;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static void *checkpoint_thread(void *arg)
{
    replay_server *s = arg;
    s->ck_rc = replay_store_write(s->h5, &s->ck_meta, &s->ck_tables);
    if (s->ck_rc)
        snprintf(s->ck_err, sizeof s->ck_err, "%s", tg_errmsg());
    atomic_store(&s->ck_done, 1);
    return NULL;
}

static void finish_checkpoint(replay_server *s)
{
    if (!s->ck_running)
        return;
    pthread_join(s->ck_th, NULL);
    s->ck_running = 0;
    if (s->ck_rc == 0) {
        s->checkpoints++;
        replay_journal_remove_below(s->c->run.dir, s->ck_meta.journal_seq);
        tg_info("checkpoint: %s written (%lld demos, %lld played, %lld best games) in %.2f s", s->h5,
                (long long)s->ck_tables.n[0], (long long)s->ck_tables.n[1], (long long)s->ck_tables.n[2],
                tg_now() - s->last_ckpt);
    } else {
        tg_error("checkpoint failed (the journal keeps everything): %s", s->ck_err);
    }
    replay_store_tables_free(&s->ck_tables);
}

/* Rotates the journal, snapshots the tables and writes replay.h5 in a thread (or now). */
static int start_checkpoint(replay_server *s, int wait)
{
    finish_checkpoint(s);
    flush_acks(s, 1);
    uint64_t seq = replay_journal_seq(s->journal) + 1;
    replay_journal *nj = replay_journal_create(s->c->run.dir, seq);
    for (int i = 0; !nj && errno == EEXIST && i < 1000; i++) /* never reuse a file */
        nj = replay_journal_create(s->c->run.dir, ++seq);
    if (!nj) {
        tg_error("checkpoint: %s", tg_errmsg());
        return -1;
    }
    replay_journal_close(s->journal);
    s->journal = nj;
    s->ck_meta.S = s->c->game.S;
    s->ck_meta.next_game_id = atomic_load(&s->next_id);
    s->ck_meta.journal_seq = seq;
    s->ck_meta.written = tg_wall();
    s->ck_meta.has_limiter = 1;
    s->ck_meta.limiter_inserts = s->lim_inserts;
    s->ck_meta.limiter_samples = s->lim_samples;
    memset(&s->ck_tables, 0, sizeof s->ck_tables);
    for (int i = 0; i < REPLAY_NTABLES; i++)
        if (replay_table_snapshot(s->t[i], &s->ck_tables.games[i], &s->ck_tables.n[i])) {
            replay_store_tables_free(&s->ck_tables);
            return -1;
        }
    s->ck_mark = change_mark(s);
    s->last_ckpt = tg_now();
    atomic_store(&s->ck_done, 0);
    s->ck_running = 1;
    if (wait || pthread_create(&s->ck_th, NULL, checkpoint_thread, s)) {
        s->ck_rc = replay_store_write(s->h5, &s->ck_meta, &s->ck_tables);
        if (s->ck_rc)
            snprintf(s->ck_err, sizeof s->ck_err, "%s", tg_errmsg());
        s->ck_running = 0;
        if (s->ck_rc == 0) {
            s->checkpoints++;
            replay_journal_remove_below(s->c->run.dir, s->ck_meta.journal_seq);
        } else {
            tg_error("checkpoint failed (the journal keeps everything): %s", s->ck_err);
        }
        replay_store_tables_free(&s->ck_tables);
        return s->ck_rc;
    }
    return 0;
}

/* ---- stats -------------------------------------------------------------------------------- */

static int64_t limiter_budget(replay_server *s)
{
    double spi = s->c->replay.samples_per_insert;
    if (spi <= 0)
        return INT64_MAX;
    double b = spi * (double)(s->lim_inserts - s->c->replay.min_size) - (double)s->lim_samples;
    return b <= 0 ? 0 : b >= 9e18 ? INT64_MAX : (int64_t)b;
}

static int fill_stats(replay_server *s, char keys[][64], double *v)
{
    int n = 0;
#define ST(k, x) (snprintf(keys[n], 64, "%s", k), v[n++] = (double)(x))
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        replay_table_counts c;
        replay_table_counts_get(s->t[i], &c);
        char k[64];
        snprintf(k, sizeof k, "%s.games", replay_table_names[i]);
        ST(k, c.games);
        snprintf(k, sizeof k, "%s.positions", replay_table_names[i]);
        ST(k, c.positions);
        snprintf(k, sizeof k, "%s.evicted_positions", replay_table_names[i]);
        ST(k, c.evicted_positions);
    }
    ST("inserts.games", s->games_in);
    ST("inserts.positions", s->positions_in);
    ST("inserts.per_s", s->ins_rate);
    ST("samples.positions", s->positions_out);
    ST("samples.per_s", s->samp_rate);
    ST("batches", s->batches_out);
    ST("batches.per_s", s->batch_rate);
    ST("batches.ready", replay_sampler_ready(s->sampler));
    ST("requests.waiting", s->n_reqs);
    ST("acks.pending", s->n_acks);
    ST("limiter.blocked", s->lim_blocked);
    int64_t b = limiter_budget(s);
    ST("limiter.budget", b == INT64_MAX ? -1 : b);
    ST("limiter.inserts", s->lim_inserts);
    ST("limiter.samples", s->lim_samples);
    ST("limiter.blocked_s", s->blocked_total + (s->lim_blocked ? tg_now() - s->blocked_since : 0));
    ST("limiter.min_size", s->c->replay.min_size);
    ST("limiter.samples_per_insert", s->c->replay.samples_per_insert);
    ST("errors.malformed", s->n_malformed);
    ST("errors.oversized", s->n_oversized);
    ST("errors.unsupported", s->n_unsupported);
    ST("errors.invalid", s->n_invalid);
    ST("errors.internal", s->n_internal);
    ST("discoveries", s->discoveries);
    ST("discoveries.rejected", s->discoveries_rejected);
    ST("results", replay_results_count(s->results));
    ST("checkpoints", s->checkpoints);
    ST("journal.bytes", replay_journal_bytes(s->journal));
    ST("demos.generating", s->demos && !replay_demos_done(s->demos));
    ST("uptime_s", tg_now() - s->t_start);
    for (int i = 0; i < s->c->game.n_targets && n < MAX_STATS; i++) {
        char k[64];
        snprintf(k, sizeof k, "best_rank.%s", s->c->game.targets[i]);
        ST(k, s->best[i]);
    }
#undef ST
    return n;
}

double replay_server_stat(replay_server *s, const char *key)
{
    char keys[MAX_STATS][64];
    double v[MAX_STATS];
    int n = fill_stats(s, keys, v);
    for (int i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return v[i];
    return -1;
}

static void best_text(replay_server *s, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "best ranks:");
    for (int i = 0; i < s->c->game.n_targets && off < len; i++)
        off += s->best[i] ? (size_t)snprintf(buf + off, len - off, " %s=%d", s->c->game.targets[i], s->best[i])
                          : (size_t)snprintf(buf + off, len - off, " %s=none", s->c->game.targets[i]);
}

static void send_stats(replay_server *s, const peer *p)
{
    static char keys[MAX_STATS][64];
    char *kp[MAX_STATS];
    double v[MAX_STATS];
    int n = fill_stats(s, keys, v);
    for (int i = 0; i < n; i++)
        kp[i] = keys[i];
    char text[1024];
    best_text(s, text, sizeof text);
    Tg__Stats st = TG__STATS__INIT;
    st.n_keys = (size_t)n;
    st.keys = kp;
    st.n_values = (size_t)n;
    st.values = v;
    st.text = text;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_STATS;
    e.stats = &st;
    if (send_env(s, p, &e))
        tg_warn("cannot send stats: %s", tg_errmsg());
}

static void stats_tick(replay_server *s, int force)
{
    double now = tg_now(), dt = now - s->last_stats;
    if (!force && dt < s->c->replay.stats_s)
        return;
    if (dt > 0) {
        s->ins_rate = (double)(s->positions_in - s->last_pos_in) / dt;
        s->samp_rate = (double)(s->positions_out - s->last_pos_out) / dt;
        s->batch_rate = (double)(s->batches_out - s->last_batches) / dt;
    }
    s->last_stats = now;
    s->last_pos_in = s->positions_in;
    s->last_pos_out = s->positions_out;
    s->last_batches = s->batches_out;
    char keys[MAX_STATS][64];
    double v[MAX_STATS];
    int n = fill_stats(s, keys, v);
    char text[1024];
    best_text(s, text, sizeof text);
    int64_t b = limiter_budget(s);
    tg_info("stats: demos %.0f, played %.0f, best %.0f positions; inserts %.1f pos/s, samples %.0f pos/s "
            "(%.2f batches/s); limiter %s (budget %lld), %d waiting; errors %llu; %s",
            replay_server_stat(s, "demos.positions"), replay_server_stat(s, "played.positions"),
            replay_server_stat(s, "best.positions"), s->ins_rate, s->samp_rate, s->batch_rate,
            s->lim_blocked ? "BLOCKED" : "open", b == INT64_MAX ? -1LL : (long long)b, s->n_reqs,
            (unsigned long long)(s->n_malformed + s->n_oversized + s->n_unsupported + s->n_invalid + s->n_internal),
            text);
    if (s->tb) {
        int64_t step = (int64_t)tg_wall();
        for (int i = 0; i < n; i++) {
            char tag[96];
            snprintf(tag, sizeof tag, "replay/%.63s", keys[i]);
            tg_tb_scalar(s->tb, tag, step, v[i]);
        }
        tg_tb_flush(s->tb);
    }
}

/* ---- serving batches ---------------------------------------------------------------------- */

static void serve_requests(replay_server *s)
{
    int blocked = 0;
    while (s->n_reqs > 0) {
        sreq *r = &s->reqs[0];
        replay_sampler_want(s->sampler, r->B);
        replay_batch *b = replay_sampler_take(s->sampler, r->B, limiter_budget(s));
        if (!b) {
            /* blocked by the limiter if a ready batch exists but does not fit the budget */
            blocked = replay_sampler_ready(s->sampler) > 0;
            break;
        }
        int rated = b->from[REPLAY_PLAYED] + b->from[REPLAY_BEST];
        s->lim_samples += rated;
        s->positions_out += (uint64_t)b->B;
        s->batches_out++;
        uint8_t *data = b->data;
        size_t len = b->len;
        b->data = NULL;
        replay_batch_free(b);
        if (send_raw(s, &r->to, data, len))
            tg_warn("cannot send a batch: %s", tg_errmsg());
        memmove(&s->reqs[0], &s->reqs[1], (size_t)(s->n_reqs - 1) * sizeof *s->reqs);
        s->n_reqs--;
    }
    if (blocked && !s->lim_blocked) {
        s->lim_blocked = 1;
        s->blocked_since = tg_now();
        tg_debug("rate limiter: blocked (inserts %lld, samples %lld)", (long long)s->lim_inserts,
                 (long long)s->lim_samples);
    } else if (!blocked && s->lim_blocked) {
        s->lim_blocked = 0;
        s->blocked_total += tg_now() - s->blocked_since;
    }
}

/* ---- messages ----------------------------------------------------------------------------- */

static void on_game(replay_server *s, const peer *p, const Tg__Game *m, const uint8_t *raw, size_t len)
{
    replay_game *g = replay_ingest_game(s->c, m);
    if (!g) {
        s->n_invalid++;
        tg_warn("rejected a game from %s: %s", m->actor && m->actor[0] ? m->actor : "?", tg_errmsg());
        send_error(s, p, REPLAY_E_INVALID, tg_errmsg());
        return;
    }
    g->id = atomic_fetch_add(&s->next_id, 1);
    if (replay_journal_append(s->journal, g->id, raw, len)) {
        s->n_internal++;
        tg_error("journal: %s", tg_errmsg());
        send_error(s, p, REPLAY_E_INTERNAL, "replay journal cannot be written; resend the game");
        replay_game_unref(g);
        return;
    }
    s->games_in++;
    s->positions_in += (uint64_t)g->n_moves;
    push_ack(s, p, g->id, m->seq);
    insert_game(s, g);
}

static void on_discovery(replay_server *s, const peer *p, const Tg__Discovery *m)
{
    tg_fact *f = replay_ingest_discovery(s->c, m);
    if (!f) {
        s->discoveries_rejected++;
        s->n_invalid++;
        tg_warn("rejected a discovery from %s: %s", m->actor && m->actor[0] ? m->actor : "?", tg_errmsg());
        send_error(s, p, REPLAY_E_INVALID, tg_errmsg());
        return;
    }
    int idx = replay_results_add(s->results, f, m->model_version, m->actor, m->when > 0 ? m->when : tg_wall());
    if (idx < 0) {
        s->n_internal++;
        tg_error("results: %s", tg_errmsg());
        send_error(s, p, REPLAY_E_INTERNAL, tg_errmsg());
        tg_fact_free(f);
        return;
    }
    s->discoveries++;
    tg_dims d = tg_fact_dims(f);
    int ti = replay_target_index(s->c, d);
    int rank = tg_fact_rank(f);
    int better = ti >= 0 && (s->best[ti] == 0 || rank < s->best[ti]);
    if (better) {
        s->best[ti] = rank;
        drop_worse_best(s, ti);
    }
    tg_info("discovery %d: %s rank %d (%s) by %s, model %llu, verified%s", idx + 1, m->target, rank, m->arithmetic,
            m->actor ? m->actor : "?", (unsigned long long)m->model_version, better ? " -- new best" : "");
    tg_fact_free(f);
    send_ack(s, p, (uint64_t)idx + 1, 0);
}

static void on_sample_request(replay_server *s, const peer *p, const Tg__SampleRequest *m)
{
    int B = m->batch ? (int)m->batch : s->c->train.batch;
    if (m->batch > MAX_BATCH || B < 1) {
        s->n_invalid++;
        char msg[128];
        snprintf(msg, sizeof msg, "batch %u is out of range (1 .. %d)", m->batch, MAX_BATCH);
        send_error(s, p, REPLAY_E_INVALID, msg);
        return;
    }
    if (s->n_reqs >= MAX_WAITING) { /* a bound on what a misbehaving client can queue */
        s->n_invalid++;
        send_error(s, p, REPLAY_E_INVALID, "too many sample requests waiting; wait for the batches asked for");
        return;
    }
    if (s->n_reqs == s->cap_reqs) {
        s->cap_reqs = s->cap_reqs ? 2 * s->cap_reqs : 16;
        s->reqs = realloc(s->reqs, (size_t)s->cap_reqs * sizeof *s->reqs);
        TG_ASSERT(s->reqs);
    }
    s->reqs[s->n_reqs].to = *p;
    s->reqs[s->n_reqs].B = B;
    s->reqs[s->n_reqs++].since = tg_now();
}

static void handle(replay_server *s, const peer *p, const uint8_t *data, size_t len)
{
    if ((int64_t)len > s->c->replay.max_message) {
        s->n_oversized++;
        char msg[160];
        snprintf(msg, sizeof msg, "message of %zu bytes is larger than replay.max_message = %lld bytes", len,
                 (long long)s->c->replay.max_message);
        tg_warn("%s", msg);
        send_error(s, p, REPLAY_E_OVERSIZED, msg);
        return;
    }
    Tg__Envelope *e = tg_wire_decode(data, len, (size_t)s->c->replay.max_message);
    if (!e) {
        s->n_malformed++;
        tg_warn("malformed message: %s", tg_errmsg());
        send_error(s, p, REPLAY_E_MALFORMED, tg_errmsg());
        return;
    }
    switch (e->body_case) {
    case TG__ENVELOPE__BODY_GAME:
        on_game(s, p, e->game, data, len);
        break;
    case TG__ENVELOPE__BODY_SAMPLE_REQUEST:
        on_sample_request(s, p, e->sample_request);
        break;
    case TG__ENVELOPE__BODY_DISCOVERY:
        on_discovery(s, p, e->discovery);
        break;
    case TG__ENVELOPE__BODY_STATS_REQUEST:
        send_stats(s, p);
        break;
    case TG__ENVELOPE__BODY_HEARTBEAT: {
        Tg__Heartbeat h = TG__HEARTBEAT__INIT;
        h.who = "tg-replay";
        h.when = tg_wall();
        Tg__Envelope r = TG__ENVELOPE__INIT;
        r.body_case = TG__ENVELOPE__BODY_HEARTBEAT;
        r.heartbeat = &h;
        send_env(s, p, &r);
        break;
    }
    default: {
        s->n_unsupported++;
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(&tg__envelope__descriptor, (unsigned)e->body_case);
        char msg[160];
        snprintf(msg, sizeof msg, "tg-replay does not serve %s messages (it serves game, sample_request, "
                                  "discovery, stats_request, heartbeat)", fd ? fd->name : "unknown");
        tg_warn("%s", msg);
        send_error(s, p, REPLAY_E_UNSUPPORTED, msg);
    }
    }
    tg_wire_free(e);
}

/* Receives one multipart message: [identity][(empty)][body]. 1 if one was handled, 0 if none. */
static int recv_one(replay_server *s)
{
    zmq_msg_t f[4];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s->sock, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(&m);
            for (int i = 0; i < n && i < 4; i++)
                zmq_msg_close(&f[i]);
            return 0;
        }
        more = zmq_msg_more(&m);
        if (n < 4)
            f[n] = m;
        else
            zmq_msg_close(&m);
        n++;
    }
    peer p = {.len = 0, .delim = 0};
    size_t il = zmq_msg_size(&f[0]);
    if (il > MAX_IDENT)
        il = MAX_IDENT;
    memcpy(p.id, zmq_msg_data(&f[0]), il);
    p.len = il;
    if (n == 2) {
        handle(s, &p, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]));
    } else if (n == 3 && zmq_msg_size(&f[1]) == 0) {
        p.delim = 1;
        handle(s, &p, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
    } else {
        s->n_malformed++;
        char msg[128];
        snprintf(msg, sizeof msg, "expected one body frame, got %d frames", n - 1);
        tg_warn("malformed message: %s", msg);
        send_error(s, &p, REPLAY_E_MALFORMED, msg);
    }
    for (int i = 0; i < n && i < 4; i++)
        zmq_msg_close(&f[i]);
    return 1;
}

/* ---- startup ------------------------------------------------------------------------------ */

typedef struct replay_ctx {
    replay_server *s;
    uint64_t skip_below;
    int64_t restored, skipped, invalid;
} replay_ctx;

static int journal_record(void *ud, uint64_t id, const uint8_t *data, size_t len)
{
    replay_ctx *x = ud;
    replay_server *s = x->s;
    if (atomic_load(&s->next_id) <= id)
        atomic_store(&s->next_id, id + 1);
    if (id < x->skip_below) { /* already in replay.h5 */
        x->skipped++;
        return 0;
    }
    Tg__Envelope *e = tg_wire_decode(data, len, (size_t)1 << 31);
    replay_game *g = e && e->body_case == TG__ENVELOPE__BODY_GAME ? replay_ingest_game(s->c, e->game) : NULL;
    if (!g) {
        x->invalid++;
        tg_warn("journal: game %llu does not fit this run's config, skipped: %s", (unsigned long long)id, tg_errmsg());
        tg_wire_free(e);
        return 0;
    }
    tg_wire_free(e);
    g->id = id;
    insert_game(s, g);
    x->restored++;
    return 0;
}

static int move_aside(const char *path)
{
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.corrupt-%ld", path, (long)tg_wall());
    if (rename(path, aside))
        return tg_fail("cannot move %s aside: %s", path, strerror(errno));
    tg_warn("moved %s to %s; starting fresh", path, aside);
    return 0;
}

static int load_store(replay_server *s, uint64_t *skip_below, uint64_t *min_seq)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->h5);
    unlink(tmp); /* an unfinished checkpoint */
    *skip_below = 0;
    *min_seq = 0;
    if (access(s->h5, F_OK) != 0)
        return 0;
    replay_store_meta meta;
    replay_store_tables t;
    double t0 = tg_now();
    if (replay_store_read(s->h5, &meta, &t)) {
        if (!s->o.reset_corrupt) {
            s->permanent = 1;
            return tg_fail_ctx("replay store is unreadable (start with --reset-corrupt to move it aside and start "
                               "fresh; the journal is still replayed): ");
        }
        tg_warn("%s", tg_errmsg());
        return move_aside(s->h5);
    }
    if (meta.S != s->c->game.S) {
        s->permanent = 1;
        replay_store_tables_free(&t);
        return tg_fail("%s was written for S = %d but this run has S = %d (use another run.dir)", s->h5, meta.S,
                       s->c->game.S);
    }
    uint64_t next = meta.next_game_id;
    for (int i = 0; i < REPLAY_NTABLES; i++)
        for (int64_t j = 0; j < t.n[i]; j++) {
            replay_game *g = t.games[i][j];
            if (replay_game_check(s->c, g)) {
                tg_fail_ctx("%s, table %s: ", s->h5, replay_table_names[i]);
                s->permanent = 1;
                replay_store_tables_free(&t);
                return tg_fail_ctx("replay store does not fit this run's config: ");
            }
            if (g->id >= next)
                next = g->id + 1;
            if (g->solved && i != REPLAY_DEMOS) {
                int ti = replay_target_index(s->c, g->dims);
                if (s->best[ti] == 0 || g->rank < s->best[ti])
                    s->best[ti] = g->rank;
            }
            replay_game_ref(g);
            replay_table_append(s->t[i], g);
            if (i == REPLAY_PLAYED && !meta.has_limiter)
                s->lim_inserts += g->n_moves;
        }
    replay_store_tables_free(&t);
    /* the limiter goes on where it stood (else a restart would let the learner draw
     * samples_per_insert x every loaded position before asking for new games); a file without
     * the counters counts its played positions as unsampled inserts */
    if (meta.has_limiter) {
        s->lim_inserts = meta.limiter_inserts;
        s->lim_samples = meta.limiter_samples;
    }
    atomic_store(&s->next_id, next);
    *skip_below = meta.next_game_id;
    *min_seq = meta.journal_seq;
    tg_info("loaded %s in %.2f s: demos %lld, played %lld, best %lld positions", s->h5, tg_now() - t0,
            (long long)replay_table_positions(s->t[0]), (long long)replay_table_positions(s->t[1]),
            (long long)replay_table_positions(s->t[2]));
    return 0;
}

/* One recorded factorization as a solved game from the target (its terms in their recorded
 * order), or NULL where it cannot be one in this run: coefficients outside F, or modes over S
 * (e.g. found in a changed basis and mapped back to the canonical one). */
static replay_game *result_game(replay_server *s, const tg_fact *f, double when)
{
    const tg_config *c = s->c;
    int S = c->game.S, A = 3 * S, R = tg_fact_rank(f);
    if (tg_fact_denom(f) != 1)
        return NULL;
    replay_game *g = replay_game_alloc(S, R, 0, 1, 0); /* zeroed; no policy children: the
                                                          * moves themselves are the targets */
    if (!g)
        return NULL;
    for (int r = 0; r < R; r++) {
        int8_t *a = g->actions + (size_t)r * A;
        if (tg_fact_action(f, r, S, a)) {
            tg_err_clear();
            replay_game_unref(g);
            return NULL;
        }
        for (int e = 0; e < A; e++)
            if (c->game.F.index_of[a[e] + 128] < 0) {
                replay_game_unref(g);
                return NULL;
            }
        g->returns[r] = (float)-(R - r);
    }
    g->dims = tg_fact_dims(f);
    g->mod2 = c->game.mod2;
    g->started = g->finished = when;
    snprintf(g->actor, sizeof g->actor, "results.h5");
    if (tg_matmul_tensor(g->dims, S, g->initial) || !replay_game_ends_at_zero(g)) {
        replay_game_unref(g); /* an exact factorization ends at zero: anything else is a bug */
        return NULL;
    }
    g->solved = 1;
    g->rank = R;
    return g;
}

/* A run resumed without its replay file (e.g. a GPU run carried to a fresh machine without it,
 * or one moved aside as corrupt) has lost the best games it retrains on; its results.h5 still
 * holds them as factorizations: the best-rank ones become best games again. */
static void seed_best(replay_server *s)
{
    const tg_config *c = s->c;
    replay_table_counts bc;
    replay_table_counts_get(s->t[REPLAY_BEST], &bc);
    if (!c->replay.best_games || bc.games > 0)
        return;
    int n = 0, skipped = 0;
    for (int i = 0; i < replay_results_count(s->results); i++) {
        const tg_fact *f = replay_results_fact(s->results, i);
        int ti = replay_target_index(c, tg_fact_dims(f));
        if (ti < 0 || (tg_fact_arith(f) == TG_ARITH_MOD2) != (c->game.mod2 != 0) ||
            tg_fact_rank(f) != s->best[ti])
            continue;
        replay_game *g = result_game(s, f, replay_results_when(s->results, i));
        if (!g) {
            skipped++;
            continue;
        }
        g->id = atomic_fetch_add(&s->next_id, 1);
        replay_table_append(s->t[REPLAY_BEST], g);
        n++;
    }
    if (n || skipped)
        tg_info("best games from results.h5 (none in the replay file): %d added, %d not playable in "
                "this run's coefficients", n, skipped);
}

static int replay_journals(replay_server *s, uint64_t skip_below, uint64_t min_seq)
{
    uint64_t *seqs;
    int n;
    if (replay_journal_list(s->c->run.dir, &seqs, &n))
        return -1;
    replay_ctx x = {.s = s, .skip_below = skip_below};
    uint64_t max_seq = min_seq ? min_seq - 1 : 0;
    for (int i = 0; i < n; i++) {
        if (replay_journal_read(s->c->run.dir, seqs[i], s->o.reset_corrupt, journal_record, &x) < 0) {
            free(seqs);
            s->permanent = 1;
            return tg_fail_ctx("replay journal is corrupt (start with --reset-corrupt to keep what is readable): ");
        }
        if (seqs[i] > max_seq)
            max_seq = seqs[i];
    }
    free(seqs);
    s->journal_restored = x.restored;
    if (x.restored || x.skipped || x.invalid)
        tg_info("journal: restored %lld games (%lld already in the store, %lld skipped)", (long long)x.restored,
                (long long)x.skipped, (long long)x.invalid);
    if (!(s->journal = replay_journal_create(s->c->run.dir, max_seq + 1)))
        return -1;
    return 0;
}

static int mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *q = buf + 1; *q; q++)
        if (*q == '/') {
            *q = 0;
            if (mkdir(buf, 0755) && errno != EEXIST)
                return tg_fail("cannot create %s: %s", buf, strerror(errno));
            *q = '/';
        }
    if (mkdir(buf, 0755) && errno != EEXIST)
        return tg_fail("cannot create %s: %s", buf, strerror(errno));
    return 0;
}

replay_server *replay_server_new(const tg_config *c, const replay_server_opts *o, int *permanent)
{
    if (permanent)
        *permanent = 0;
    replay_server *s = calloc(1, sizeof *s);
    if (!s) {
        tg_fail("out of memory");
        return NULL;
    }
    s->c = c;
    if (o)
        s->o = *o;
    s->t_start = s->last_stats = s->last_ckpt = tg_now();
    atomic_init(&s->next_id, 1);
    atomic_init(&s->ck_done, 0);
    snprintf(s->h5, sizeof s->h5, "%s/replay.h5", c->run.dir);
    snprintf(s->results_path, sizeof s->results_path, "%s/results.h5", c->run.dir);
    s->lock_fd = -1;
    if (mkdirs(c->run.dir))
        goto fail;
    /* one replay server per run directory (the kernel drops the lock when the process dies) */
    char lk[4200];
    snprintf(lk, sizeof lk, "%s/replay.lock", c->run.dir);
    if ((s->lock_fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB)) {
        tg_fail("%s is in use by another tg-replay (lock %s: %s)", c->run.dir, lk, strerror(errno));
        goto fail;
    }
    s->t[REPLAY_DEMOS] = replay_table_new(REPLAY_DEMOS, 0);
    s->t[REPLAY_PLAYED] = replay_table_new(REPLAY_PLAYED, c->replay.capacity);
    s->t[REPLAY_BEST] = replay_table_new(REPLAY_BEST, c->replay.best_capacity);
    if (!s->t[0] || !s->t[1] || !s->t[2]) {
        tg_fail("out of memory");
        goto fail;
    }
    if (!(s->results = replay_results_open(s->results_path, s->o.reset_corrupt))) {
        s->permanent = 1;
        goto fail;
    }
    for (int i = 0; i < c->game.n_targets; i++)
        s->best[i] = replay_results_best(s->results, c->game.dims[i], c->game.mod2);
    uint64_t skip_below, min_seq;
    if (load_store(s, &skip_below, &min_seq) || replay_journals(s, skip_below, min_seq))
        goto fail;
    for (int i = 0; i < c->game.n_targets; i++) /* a file of an earlier version may hold them */
        drop_worse_best(s, i);
    seed_best(s);
    s->ck_mark = s->journal_restored ? -1 : change_mark(s);
    if (!(s->sampler = replay_sampler_new(c, s->t)) ||
        replay_sampler_start(s->sampler, c->replay.workers, c->replay.prefetch, c->train.batch))
        goto fail;
    if (c->replay.synthetic && replay_table_positions(s->t[REPLAY_DEMOS]) < c->replay.demos_size) {
        tg_info("generating synthetic demonstrations: %lld of %lld positions present",
                (long long)replay_table_positions(s->t[REPLAY_DEMOS]), (long long)c->replay.demos_size);
        if (!(s->demos = replay_demos_start(c, s->t[REPLAY_DEMOS], c->replay.workers, &s->next_id)))
            goto fail;
        s->demos_was_running = 1;
    }
    if (!(s->sec = tg_sock_sec_new(c, 1))) {
        s->permanent = 1;
        goto fail;
    }
    if (!(s->sock = tg_sock_bind(s->sec, ZMQ_ROUTER, c->replay.endpoint)))
        goto fail;
    int64_t hard = c->replay.max_message * 4; /* beyond this libzmq drops the peer: memory bound */
    zmq_setsockopt(s->sock, ZMQ_MAXMSGSIZE, &hard, sizeof hard);
    if (tg_sock_last_endpoint(s->sock, s->endpoint, sizeof s->endpoint))
        goto fail;
    char ep[4200];
    snprintf(ep, sizeof ep, "%s/replay.endpoint", c->run.dir);
    FILE *f = fopen(ep, "w");
    if (f) {
        fprintf(f, "%s\n", s->endpoint);
        fclose(f);
    }
    if (!(s->tb = tg_tb_open(c->run.dir, "tg-replay")))
        tg_warn("no TensorBoard events: %s", tg_errmsg());
    tg_info("serving on %s (demos %lld, played %lld, best %lld positions; limiter: %g samples per insert after "
            "%lld positions)",
            s->endpoint, (long long)replay_table_positions(s->t[0]), (long long)replay_table_positions(s->t[1]),
            (long long)replay_table_positions(s->t[2]), c->replay.samples_per_insert, (long long)c->replay.min_size);
    return s;
fail:
    tg_fail_ctx("tg-replay: ");
    if (permanent)
        *permanent = s->permanent;
    replay_server_free(s);
    return NULL;
}

const char *replay_server_endpoint(const replay_server *s) { return s->endpoint; }

int replay_server_run(replay_server *s, volatile sig_atomic_t *stop)
{
    int rc = 0;
    while (!*stop) {
        long timeout = 100;
        if (s->n_acks) {
            double left = s->c->replay.flush_ms * 1e-3 - (tg_now() - s->first_ack);
            long ms = left <= 0 ? 0 : (long)(left * 1e3) + 1;
            if (ms < timeout)
                timeout = ms;
        }
        zmq_pollitem_t it[2] = {{s->sock, 0, ZMQ_POLLIN, 0}, {NULL, replay_sampler_fd(s->sampler), ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, timeout) < 0) {
            if (errno == EINTR)
                continue;
            rc = tg_fail("zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (it[1].revents)
            replay_sampler_drain_fd(s->sampler);
        if (it[0].revents)
            for (int i = 0; i < 1024 && recv_one(s); i++)
                ;
        flush_acks(s, 0); /* a journal that cannot be synced answers errors: actors resend */
        serve_requests(s);
        if (s->ck_running && atomic_load(&s->ck_done))
            finish_checkpoint(s);
        if (s->demos_was_running && replay_demos_done(s->demos)) {
            s->demos_was_running = 0;
            tg_info("synthetic demonstrations done: %lld positions", (long long)replay_table_positions(s->t[0]));
            start_checkpoint(s, 0);
        } else if (!s->ck_running && change_mark(s) != s->ck_mark &&
                   (tg_now() - s->last_ckpt >= s->c->replay.checkpoint_s ||
                    replay_journal_bytes(s->journal) > JOURNAL_MAX)) {
            start_checkpoint(s, 0);
        }
        stats_tick(s, 0);
    }
    /* orderly stop: acknowledge what is durable, then a final checkpoint */
    flush_acks(s, 1);
    if (s->demos) {
        replay_demos_stop(s->demos);
        s->demos = NULL;
    }
    finish_checkpoint(s);
    if (change_mark(s) != s->ck_mark)
        start_checkpoint(s, 1);
    stats_tick(s, 1);
    return rc;
}

void replay_server_free(replay_server *s)
{
    if (!s)
        return;
    if (s->demos)
        replay_demos_stop(s->demos);
    finish_checkpoint(s);
    replay_sampler_free(s->sampler);
    if (s->sock)
        tg_sock_close(s->sock);
    tg_sock_sec_free(s->sec);
    if (s->journal)
        replay_journal_close(s->journal);
    replay_results_free(s->results);
    for (int i = 0; i < REPLAY_NTABLES; i++)
        replay_table_free(s->t[i]);
    if (s->tb)
        tg_tb_close(s->tb);
    free(s->acks);
    free(s->reqs);
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
}
