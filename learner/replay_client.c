#include "learner/replay_client.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wire.h"

#define REQUEST_TIMEOUT_S 30.0 /* unanswered this long: replace the socket */
#define ERROR_BACKOFF_S 0.2
#define MAX_QUEUE 64

struct tg_replay_client {
    tg_sock_sec *sec;
    char endpoint[TG_STR];
    tg_net_config ncfg;
    int batch, prefetch;
    void *sock, *mon;
    char mon_ep[64];
    int outstanding;          /* SampleRequests sent and not answered */
    double last_progress;     /* last reply, or when requests were (re)started */
    double backoff_until;
    Tg__Envelope *queue[MAX_QUEUE];
    int nq;
    Tg__Envelope *current;    /* handed out by _next (the caller's) */
    Tg__Envelope *stats;      /* newest Stats received */
    Tg__Envelope *stats_view; /* handed out by _stats (the caller's) */
    tg_replay_counters cnt;
    int was_connected, disconnected;
    /* the receiving thread owns the sockets and everything above not marked "under mu" */
    pthread_t th;
    int started;
    atomic_int stop;
    pthread_mutex_t mu;       /* queue, nq, stats, cnt, want_stats */
    pthread_cond_t cv;        /* a batch was queued */
    int want_stats;
};

static void *thread_main(void *arg);

static int open_socket(tg_replay_client *c)
{
    static int mon_seq;
    c->sock = tg_sock_connect(c->sec, ZMQ_DEALER, c->endpoint);
    if (!c->sock)
        return -1;
    snprintf(c->mon_ep, sizeof c->mon_ep, "inproc://replay-client-mon-%d", __atomic_add_fetch(&mon_seq, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(c->sock, c->mon_ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0)
        return tg_fail("zmq_socket_monitor: %s", zmq_strerror(errno));
    c->mon = zmq_socket(tg_sock_ctx(), ZMQ_PAIR);
    if (!c->mon || zmq_connect(c->mon, c->mon_ep) != 0)
        return tg_fail("monitor socket: %s", zmq_strerror(errno));
    c->outstanding = 0;
    c->last_progress = tg_now();
    return 0;
}

static void close_socket(tg_replay_client *c)
{
    if (c->sock) {
        zmq_socket_monitor(c->sock, NULL, 0);
        tg_sock_close(c->sock);
        c->sock = NULL;
    }
    if (c->mon) {
        int linger = 0;
        zmq_setsockopt(c->mon, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(c->mon);
        c->mon = NULL;
    }
}

tg_replay_client *tg_replay_client_new(tg_sock_sec *sec, const char *endpoint,
                                       const tg_net_config *ncfg, int batch, int prefetch)
{
    tg_replay_client *c = calloc(1, sizeof *c);
    if (!c) {
        tg_fail("out of memory");
        return NULL;
    }
    c->sec = sec;
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    c->ncfg = *ncfg;
    c->batch = batch;
    c->prefetch = prefetch < 1 ? 1 : prefetch > MAX_QUEUE / 2 ? MAX_QUEUE / 2 : prefetch;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (open_socket(c) != 0) {
        tg_fail_ctx("replay client (%s): ", endpoint);
        tg_replay_client_free(c);
        return NULL;
    }
    if (pthread_create(&c->th, NULL, thread_main, c) != 0) {
        tg_fail("replay client: starting its thread failed");
        tg_replay_client_free(c);
        return NULL;
    }
    c->started = 1;
    return c;
}

void tg_replay_client_free(tg_replay_client *c)
{
    if (!c)
        return;
    if (c->started) {
        atomic_store(&c->stop, 1);
        pthread_join(c->th, NULL);
    }
    close_socket(c);
    for (int i = 0; i < c->nq; i++)
        tg_wire_free(c->queue[i]);
    tg_wire_free(c->current);
    tg_wire_free(c->stats);
    tg_wire_free(c->stats_view);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* Monitor events: a (re)connection after a disconnection means requests in flight are lost. */
static void check_monitor(tg_replay_client *c)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&m) >= 2)
            memcpy(&ev, zmq_msg_data(&m), 2);
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) { /* second frame: the endpoint */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->mon, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == ZMQ_EVENT_DISCONNECTED) {
            c->disconnected = 1;
            tg_warn("replay %s disconnected; waiting for it to come back", c->endpoint);
        } else if (ev == ZMQ_EVENT_CONNECTED) {
            if (c->disconnected) { /* (the first connection may precede the monitor) */
                tg_info("replay %s is back", c->endpoint);
                pthread_mutex_lock(&c->mu);
                c->cnt.reconnects++;
                pthread_mutex_unlock(&c->mu);
                c->outstanding = 0; /* what was in flight went down with the old connection */
                c->last_progress = tg_now();
            }
            c->was_connected = 1;
            c->disconnected = 0;
        }
    }
}

static void send_requests(tg_replay_client *c)
{
    double now = tg_now();
    if (now < c->backoff_until)
        return;
    pthread_mutex_lock(&c->mu);
    int nq = c->nq;
    pthread_mutex_unlock(&c->mu);
    while (c->outstanding + nq < c->prefetch) {
        Tg__SampleRequest r = TG__SAMPLE_REQUEST__INIT;
        r.batch = (uint32_t)c->batch;
        Tg__Envelope e = TG__ENVELOPE__INIT;
        e.body_case = TG__ENVELOPE__BODY_SAMPLE_REQUEST;
        e.sample_request = &r;
        if (tg_wire_send(c->sock, NULL, 0, &e) != 0) {
            tg_debug("replay client: %s", tg_errmsg());
            return;
        }
        if (c->outstanding == 0)
            c->last_progress = now;
        c->outstanding++;
    }
}

static int check_batch(const tg_replay_client *c, const Tg__Batch *b)
{
    const tg_net_config *n = &c->ncfg;
    if (!b->tensors || b->tensors->n_shape < 1)
        return tg_fail("batch: tensors missing");
    int64_t B = b->tensors->shape[0];
    if (B < 1 || B > c->batch)
        return tg_fail("batch: %lld positions (1 .. %d expected)", (long long)B, c->batch);
    int64_t ts[5] = {B, n->T, n->S, n->S, n->S}, ss[2] = {B, n->n_scalars}, ks[2] = {B, n->n_steps},
            rs[1] = {B};
    if (tg_array_check(b->tensors, TG__DTYPE__F32, 5, ts, "batch tensors") ||
        tg_array_check(b->scalars, TG__DTYPE__F32, 2, ss, "batch scalars") ||
        tg_array_check(b->tokens, TG__DTYPE__I32, 2, ks, "batch tokens") ||
        tg_array_check(b->returns, TG__DTYPE__F32, 1, rs, "batch returns"))
        return -1;
    const int32_t *tok = (const int32_t *)b->tokens->data.data;
    for (int64_t i = 0; i < B * n->n_steps; i++)
        if (tok[i] < 0 || tok[i] >= n->n_logits)
            return tg_fail("batch: token %d out of range [0, %d)", tok[i], n->n_logits);
    const Tg__Array *fa[3] = {b->tensors, b->scalars, b->returns};
    for (int k = 0; k < 3; k++) {
        const float *x = (const float *)fa[k]->data.data;
        for (size_t i = 0; i < fa[k]->data.len / sizeof(float); i++)
            if (!isfinite(x[i]))
                return tg_fail("batch: non-finite value");
    }
    return 0;
}

static void count(tg_replay_client *c, uint64_t *field)
{
    pthread_mutex_lock(&c->mu);
    (*field)++;
    pthread_mutex_unlock(&c->mu);
}

/* Decoding and checking (the costly part) happen outside the lock. */
static void handle(tg_replay_client *c, const void *data, size_t len)
{
    Tg__Envelope *e = tg_wire_decode(data, len, TG_WIRE_MAX_DEFAULT);
    double now = tg_now();
    c->last_progress = now;
    pthread_mutex_lock(&c->mu);
    c->cnt.last_reply = now;
    pthread_mutex_unlock(&c->mu);
    if (!e) {
        count(c, &c->cnt.bad);
        tg_warn("replay client: %s", tg_errmsg());
        /* cannot tell what it answered: assume one request */
        if (c->outstanding > 0)
            c->outstanding--;
        return;
    }
    switch (e->body_case) {
    case TG__ENVELOPE__BODY_BATCH:
        if (c->outstanding > 0)
            c->outstanding--;
        if (check_batch(c, e->batch) != 0) {
            count(c, &c->cnt.bad);
            tg_warn("replay client: dropping a bad batch: %s", tg_errmsg());
            break;
        }
        pthread_mutex_lock(&c->mu);
        if (c->nq < MAX_QUEUE) {
            c->queue[c->nq++] = e;
            c->cnt.batches++;
            e = NULL;
            pthread_cond_signal(&c->cv);
        }
        pthread_mutex_unlock(&c->mu);
        break;
    case TG__ENVELOPE__BODY_STATS:
        pthread_mutex_lock(&c->mu);
        tg_wire_free(c->stats);
        c->stats = e;
        e = NULL;
        pthread_mutex_unlock(&c->mu);
        break;
    case TG__ENVELOPE__BODY_ERROR:
        /* e.g. not enough data yet: ask again a little later */
        if (c->outstanding > 0)
            c->outstanding--;
        pthread_mutex_lock(&c->mu);
        c->cnt.errors++;
        snprintf(c->cnt.last_error, sizeof c->cnt.last_error, "%s",
                 e->error->message ? e->error->message : "");
        pthread_mutex_unlock(&c->mu);
        tg_debug("replay: error %d: %s", e->error->code, e->error->message ? e->error->message : "");
        c->backoff_until = tg_now() + ERROR_BACKOFF_S;
        break;
    default:
        count(c, &c->cnt.bad);
        tg_warn("replay client: unexpected message type %d", (int)e->body_case);
    }
    tg_wire_free(e);
}

static void drain(tg_replay_client *c)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        int more = zmq_msg_more(&m);
        if (!more)
            handle(c, zmq_msg_data(&m), zmq_msg_size(&m));
        else
            count(c, &c->cnt.bad);
        zmq_msg_close(&m);
        while (more) { /* a multi-frame message is not ours: skip it */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, c->sock, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    }
}

static void send_stats_request(tg_replay_client *c)
{
    Tg__StatsRequest r = TG__STATS_REQUEST__INIT;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_STATS_REQUEST;
    e.stats_request = &r;
    if (tg_wire_send(c->sock, NULL, 0, &e) != 0)
        tg_debug("replay client: %s", tg_errmsg());
}

/* The receiving thread: keeps requests in flight, decodes and checks batches, watches the
 * connection; training only pops ready batches. */
static void *thread_main(void *arg)
{
    tg_replay_client *c = arg;
    while (!atomic_load(&c->stop)) {
        if (!c->sock) { /* a reconnection failed: try again, gently */
            usleep(100000);
            if (open_socket(c) != 0) {
                close_socket(c);
                continue;
            }
        }
        check_monitor(c);
        drain(c);
        double now = tg_now();
        if (c->outstanding > 0 && now - c->last_progress > REQUEST_TIMEOUT_S) {
            tg_warn("replay %s: no answer for %.0f s; reconnecting", c->endpoint, REQUEST_TIMEOUT_S);
            close_socket(c);
            c->was_connected = c->disconnected = 0;
            count(c, &c->cnt.reconnects);
            if (open_socket(c) != 0) {
                tg_error("replay client: %s", tg_errmsg());
                close_socket(c);
                continue;
            }
        }
        pthread_mutex_lock(&c->mu);
        int ws = c->want_stats;
        c->want_stats = 0;
        pthread_mutex_unlock(&c->mu);
        if (ws)
            send_stats_request(c);
        send_requests(c);
        long wait = 50;
        if (now < c->backoff_until && (c->backoff_until - now) * 1e3 < wait)
            wait = (long)((c->backoff_until - now) * 1e3) + 1;
        zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, wait);
    }
    return NULL;
}

int tg_replay_client_next(tg_replay_client *c, int timeout_ms, tg_batch_view *b)
{
    tg_wire_free(c->current);
    c->current = NULL;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->nq == 0)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0)
            break; /* timed out (a signal also ends up here soon) */
    if (c->nq == 0) {
        pthread_mutex_unlock(&c->mu);
        return 0;
    }
    c->current = c->queue[0];
    memmove(c->queue, c->queue + 1, (size_t)(c->nq - 1) * sizeof *c->queue);
    c->nq--;
    pthread_mutex_unlock(&c->mu);
    const Tg__Batch *x = c->current->batch;
    b->B = (int)x->tensors->shape[0];
    b->tensors = (const float *)x->tensors->data.data;
    b->scalars = (const float *)x->scalars->data.data;
    b->tokens = (const int32_t *)x->tokens->data.data;
    b->returns = (const float *)x->returns->data.data;
    return 1;
}

void tg_replay_client_ask_stats(tg_replay_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->want_stats = 1;
    pthread_mutex_unlock(&c->mu);
}

int tg_replay_client_stats(tg_replay_client *c, char ***keys, double **values, const char **text)
{
    pthread_mutex_lock(&c->mu);
    if (c->stats) {
        tg_wire_free(c->stats_view);
        c->stats_view = c->stats;
        c->stats = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (!c->stats_view)
        return 0;
    Tg__Stats *s = c->stats_view->stats;
    *keys = s->keys;
    *values = s->values;
    *text = s->text ? s->text : "";
    return (int)(s->n_keys < s->n_values ? s->n_keys : s->n_values);
}

void tg_replay_client_counters(tg_replay_client *c, tg_replay_counters *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->cnt;
    pthread_mutex_unlock(&c->mu);
}
