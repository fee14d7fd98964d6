#include "learner/infer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/wire.h"
#include "learner/tb.h"

#define MAX_IDENT 256
#define MAX_K 4096
#define MAX_ACTIONS (1 << 22) /* positions x K per request: bounds the answer's memory */
#define MAX_CLIENTS 1024
#define CLIENT_ACTIVE_S 1.0
#define ANNOUNCE_EVERY_S 1.0
#define RATE_WINDOW_S 0.25

/* Error codes in Error replies (HTTP-like, for humans reading logs). */
enum { ERR_BAD_REQUEST = 400, ERR_NOT_FOUND = 404, ERR_UNAVAILABLE = 503, ERR_INTERNAL = 500 };

typedef struct pending {
    uint8_t ident[MAX_IDENT];
    size_t ident_len;
    Tg__Envelope *env; /* owns the request's arrays */
    uint64_t request_id;
    int B, K;
    float temp;
    int done;          /* positions evaluated so far */
    int32_t *tokens;   /* [B, K, n_steps] */
    float *quant;      /* [B, Q] */
    float *values;     /* [B] */
    double t_arrival;
} pending;

typedef struct client {
    uint8_t ident[MAX_IDENT];
    size_t ident_len;
    double last_seen;
    int pending;
} client;

struct tg_infer {
    tg_infer_opts o;
    tg_net_config ncfg;
    char backend[16];
    tg_net *net;
    size_t n_params;
    void *router, *pub;
    char endpoint[TG_STR], pub_endpoint[TG_STR], fetch_endpoint[TG_STR];
    pthread_t thread;
    int started;
    atomic_int stop;

    /* weights: the service uses cur; tg_infer_publish fills stage under mu */
    pthread_mutex_t mu;
    float *cur, *stage;
    uint64_t cur_version, cur_step, stage_version, stage_step;
    uint32_t cur_crc;
    int have_cur, stage_pending;

    /* queue (thread-private) */
    pending **q;
    int nq, capq;
    int queued_positions;
    client clients[MAX_CLIENTS];
    int n_clients;
    /* arrival-rate estimate (positions per second) */
    double rate, win_start;
    long win_positions;
    uint64_t batch_seq;
    double last_announce;

    /* batch buffers */
    float *in_t, *in_s, *out_q, *out_v;
    int32_t *out_tok;
    size_t cap_tok;

    tg_infer_stats st; /* under mu */
};

uint32_t tg_params_crc(const float *params, size_t n)
{
    return tg_crc32c(params, n * sizeof(float));
}

static void install_weights(tg_infer *s);

/* ---------------- replies ---------------- */

static void reply_error(tg_infer *s, const uint8_t *ident, size_t ident_len, int code,
                        const char *msg)
{
    if (tg_wire_send_error(s->router, ident, ident_len, code, msg) != 0)
        tg_debug("inference: error reply not sent: %s", tg_errmsg());
}

static void send_weights(tg_infer *s, const uint8_t *ident, size_t ident_len, uint64_t want)
{
    if (!s->have_cur) {
        reply_error(s, ident, ident_len, ERR_UNAVAILABLE, "no weights yet");
        return;
    }
    if (want != 0 && want != s->cur_version) {
        char msg[160];
        snprintf(msg, sizeof msg, "weights version %llu not available (newest is %llu)",
                 (unsigned long long)want, (unsigned long long)s->cur_version);
        reply_error(s, ident, ident_len, ERR_NOT_FOUND, msg);
        return;
    }
    Tg__Weights w = TG__WEIGHTS__INIT;
    Tg__Array a;
    int64_t shape[1] = {(int64_t)s->n_params}, sb[1];
    tg_array_set(&a, TG__DTYPE__F32, 1, shape, sb, s->cur, s->n_params * sizeof(float));
    w.version = s->cur_version;
    w.step = s->cur_step;
    w.crc32c = s->cur_crc;
    w.params = &a;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_WEIGHTS;
    e.weights = &w;
    if (tg_wire_send(s->router, ident, ident_len, &e) != 0)
        tg_warn("inference: sending weights: %s", tg_errmsg());
    pthread_mutex_lock(&s->mu);
    s->st.weights_served++;
    pthread_mutex_unlock(&s->mu);
}

static void send_stats(tg_infer *s, const uint8_t *ident, size_t ident_len)
{
    tg_infer_stats st;
    tg_infer_get_stats(s, &st);
    const char *keys[] = {"requests", "positions", "batches", "bad_requests", "weights_served",
                          "version", "queued_positions"};
    double vals[] = {(double)st.requests, (double)st.positions, (double)st.batches,
                     (double)st.bad_requests, (double)st.weights_served, (double)st.version,
                     (double)s->queued_positions};
    Tg__Stats m = TG__STATS__INIT;
    m.n_keys = m.n_values = sizeof keys / sizeof *keys;
    m.keys = (char **)keys;
    m.values = vals;
    m.text = "";
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_STATS;
    e.stats = &m;
    tg_wire_send(s->router, ident, ident_len, &e);
}

static void announce(tg_infer *s)
{
    if (!s->pub || !s->have_cur)
        return;
    Tg__WeightsAnnounce a = TG__WEIGHTS_ANNOUNCE__INIT;
    a.version = s->cur_version;
    a.step = s->cur_step;
    a.nbytes = s->n_params * sizeof(float);
    a.crc32c = s->cur_crc;
    a.endpoint = s->fetch_endpoint;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_WEIGHTS_ANNOUNCE;
    e.weights_announce = &a;
    if (tg_wire_send(s->pub, NULL, 0, &e) != 0)
        tg_warn("inference: announcing weights: %s", tg_errmsg());
    s->last_announce = tg_now();
}

/* ---------------- clients and queue ---------------- */

static client *client_find(tg_infer *s, const uint8_t *ident, size_t len, int create)
{
    double now = tg_now();
    int oldest = 0;
    for (int i = 0; i < s->n_clients; i++) {
        client *c = &s->clients[i];
        if (c->ident_len == len && memcmp(c->ident, ident, len) == 0)
            return c;
        if (c->last_seen < s->clients[oldest].last_seen)
            oldest = i;
    }
    if (!create)
        return NULL;
    client *c;
    if (s->n_clients < MAX_CLIENTS)
        c = &s->clients[s->n_clients++];
    else if (s->clients[oldest].pending == 0)
        c = &s->clients[oldest];
    else
        return NULL;
    memcpy(c->ident, ident, len);
    c->ident_len = len;
    c->pending = 0;
    c->last_seen = now;
    return c;
}

static void pending_free(pending *p)
{
    if (!p)
        return;
    tg_wire_free(p->env);
    free(p->tokens);
    free(p->quant);
    free(p->values);
    free(p);
}

/* Validates an EvalRequest; 0 or -1 with a message. */
static int check_eval(tg_infer *s, const Tg__EvalRequest *r, int *B, int *K, float *temp)
{
    const tg_net_config *c = &s->ncfg;
    if (!r->tensors || r->tensors->n_shape < 1)
        return tg_fail("eval request: tensors missing");
    int64_t b = r->tensors->shape[0];
    if (b < 1 || b > (1 << 20))
        return tg_fail("eval request: %lld positions (1 .. %d allowed)", (long long)b, 1 << 20);
    int64_t ts[5] = {b, c->T, c->S, c->S, c->S};
    if (tg_array_check(r->tensors, TG__DTYPE__F32, 5, ts, "eval request tensors") != 0)
        return -1;
    int64_t ss[2] = {b, c->n_scalars};
    if (tg_array_check(r->scalars, TG__DTYPE__F32, 2, ss, "eval request scalars") != 0)
        return -1;
    int k = r->samples ? (int)r->samples : s->o.samples;
    if (r->samples > MAX_K)
        return tg_fail("eval request: %u samples (at most %d)", r->samples, MAX_K);
    if ((int64_t)b * k > MAX_ACTIONS)
        return tg_fail("eval request: %lld positions x %d samples is more than %d actions per "
                       "request (split it)", (long long)b, k, MAX_ACTIONS);
    float t = r->temperature != 0 ? r->temperature : (float)s->o.temperature;
    if (!(t > 0) || !isfinite(t))
        return tg_fail("eval request: temperature %g (must be > 0 and finite)", (double)t);
    const float *x = (const float *)r->tensors->data.data;
    size_t nx = r->tensors->data.len / sizeof(float);
    for (size_t i = 0; i < nx; i++)
        if (!isfinite(x[i]))
            return tg_fail("eval request: tensors hold a non-finite value at %zu", i);
    const float *y = (const float *)r->scalars->data.data;
    size_t ny = r->scalars->data.len / sizeof(float);
    for (size_t i = 0; i < ny; i++)
        if (!isfinite(y[i]))
            return tg_fail("eval request: scalars hold a non-finite value at %zu", i);
    *B = (int)b;
    *K = k;
    *temp = t;
    return 0;
}

static void handle_message(tg_infer *s, const uint8_t *ident, size_t ident_len, const void *data,
                           size_t len)
{
    Tg__Envelope *e = tg_wire_decode(data, len, TG_WIRE_MAX_DEFAULT);
    if (!e) {
        pthread_mutex_lock(&s->mu);
        s->st.bad_requests++;
        pthread_mutex_unlock(&s->mu);
        tg_debug("inference: bad message: %s", tg_errmsg());
        reply_error(s, ident, ident_len, ERR_BAD_REQUEST, tg_errmsg());
        return;
    }
    switch (e->body_case) {
    case TG__ENVELOPE__BODY_EVAL_REQUEST: {
        int B = 0, K = 0;
        float temp = 0;
        if (check_eval(s, e->eval_request, &B, &K, &temp) != 0) {
            pthread_mutex_lock(&s->mu);
            s->st.bad_requests++;
            pthread_mutex_unlock(&s->mu);
            tg_debug("inference: %s", tg_errmsg());
            reply_error(s, ident, ident_len, ERR_BAD_REQUEST, tg_errmsg());
            break;
        }
        if (!s->have_cur)
            install_weights(s); /* published but not yet picked up */
        if (!s->have_cur) {
            reply_error(s, ident, ident_len, ERR_UNAVAILABLE, "no weights yet");
            break;
        }
        pending *p = calloc(1, sizeof *p);
        const tg_net_config *c = &s->ncfg;
        if (p) {
            p->tokens = malloc((size_t)B * K * c->n_steps * sizeof(int32_t));
            p->quant = malloc((size_t)B * c->quantiles * sizeof(float));
            p->values = malloc((size_t)B * sizeof(float));
        }
        if (!p || !p->tokens || !p->quant || !p->values ||
            (s->nq == s->capq &&
             !(s->q = realloc(s->q, (size_t)(s->capq = s->capq ? 2 * s->capq : 64) *
                                        sizeof *s->q)))) {
            pending_free(p);
            reply_error(s, ident, ident_len, ERR_UNAVAILABLE, "out of memory");
            break;
        }
        memcpy(p->ident, ident, ident_len);
        p->ident_len = ident_len;
        p->env = e;
        e = NULL; /* owned by p now */
        p->request_id = p->env->eval_request->request_id;
        p->B = B;
        p->K = K;
        p->temp = temp;
        p->t_arrival = tg_now();
        s->q[s->nq++] = p;
        s->queued_positions += B;
        s->win_positions += B;
        client *cl = client_find(s, ident, ident_len, 1);
        if (cl) {
            cl->pending++;
            cl->last_seen = p->t_arrival;
        }
        break;
    }
    case TG__ENVELOPE__BODY_WEIGHTS_REQUEST:
        if (!s->have_cur)
            install_weights(s);
        send_weights(s, ident, ident_len, e->weights_request->version);
        break;
    case TG__ENVELOPE__BODY_STATS_REQUEST:
        send_stats(s, ident, ident_len);
        break;
    case TG__ENVELOPE__BODY_HEARTBEAT:
        break;
    default: {
        char msg[96];
        snprintf(msg, sizeof msg, "the inference service does not take message type %d",
                 (int)e->body_case);
        pthread_mutex_lock(&s->mu);
        s->st.bad_requests++;
        pthread_mutex_unlock(&s->mu);
        reply_error(s, ident, ident_len, ERR_BAD_REQUEST, msg);
    }
    }
    tg_wire_free(e);
}

/* Receives every waiting message (non-blocking). */
static void drain(tg_infer *s)
{
    for (int n = 0; n < 10000; n++) {
        zmq_msg_t f[3];
        int nf = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s->router, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
                zmq_msg_close(&m);
                if (nf == 0)
                    return; /* EAGAIN: nothing more */
                break;
            }
            more = zmq_msg_more(&m);
            if (nf < 3)
                f[nf++] = m;
            else {
                zmq_msg_close(&m);
                nf = 4; /* too many frames: remember, drop below */
            }
            if (nf > 3)
                nf = 4;
        }
        if (nf == 2 && zmq_msg_size(&f[0]) <= MAX_IDENT) {
            handle_message(s, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), zmq_msg_data(&f[1]),
                           zmq_msg_size(&f[1]));
        } else if (nf >= 1 && zmq_msg_size(&f[0]) <= MAX_IDENT) {
            pthread_mutex_lock(&s->mu);
            s->st.bad_requests++;
            pthread_mutex_unlock(&s->mu);
            reply_error(s, zmq_msg_data(&f[0]), zmq_msg_size(&f[0]), ERR_BAD_REQUEST,
                        "expected one frame per message");
        }
        for (int i = 0; i < nf && i < 3; i++)
            zmq_msg_close(&f[i]);
    }
}

/* ---------------- evaluation ---------------- */

static int grow(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    void *n = realloc(*p, need);
    if (!n)
        return tg_fail("out of memory");
    *p = n;
    *cap = need;
    return 0;
}

static void finish_request(tg_infer *s, int i)
{
    pending *p = s->q[i];
    const tg_net_config *c = &s->ncfg;
    Tg__EvalResponse r = TG__EVAL_RESPONSE__INIT;
    Tg__Array at, aq, av;
    int64_t st[3] = {p->B, p->K, c->n_steps}, sq[2] = {p->B, c->quantiles}, sv[1] = {p->B};
    int64_t b1[3], b2[2], b3[1];
    tg_array_set(&at, TG__DTYPE__I32, 3, st, b1, p->tokens,
                 (size_t)p->B * p->K * c->n_steps * sizeof(int32_t));
    tg_array_set(&aq, TG__DTYPE__F32, 2, sq, b2, p->quant, (size_t)p->B * c->quantiles * sizeof(float));
    tg_array_set(&av, TG__DTYPE__F32, 1, sv, b3, p->values, (size_t)p->B * sizeof(float));
    r.request_id = p->request_id;
    r.model_version = s->cur_version;
    r.tokens = &at;
    r.quantiles = &aq;
    r.values = &av;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_EVAL_RESPONSE;
    e.eval_response = &r;
    if (tg_wire_send(s->router, p->ident, p->ident_len, &e) != 0)
        tg_debug("inference: reply not sent: %s", tg_errmsg());
    client *cl = client_find(s, p->ident, p->ident_len, 0);
    if (cl && cl->pending > 0)
        cl->pending--;
    pthread_mutex_lock(&s->mu);
    s->st.requests++;
    pthread_mutex_unlock(&s->mu);
}

static void remove_done(tg_infer *s)
{
    int j = 0;
    for (int i = 0; i < s->nq; i++) {
        if (s->q[i]->done == s->q[i]->B)
            pending_free(s->q[i]);
        else
            s->q[j++] = s->q[i];
    }
    s->nq = j;
}

/* Evaluates one batch: requests with the first one's (K, temperature), in arrival order. */
static void evaluate(tg_infer *s)
{
    const tg_net_config *c = &s->ncfg;
    size_t S3 = (size_t)c->S * c->S * c->S, tin = (size_t)c->T * S3;
    int K = s->q[0]->K;
    float temp = s->q[0]->temp;
    int N = 0, maxb = s->o.max_batch;
    /* segments: (request, from, count) */
    int seg_req[256], seg_from[256], seg_n[256], nseg = 0;
    for (int i = 0; i < s->nq && N < maxb && nseg < 256; i++) {
        pending *p = s->q[i];
        if (p->K != K || p->temp != temp || p->done == p->B)
            continue;
        int take = p->B - p->done;
        if (take > maxb - N)
            take = maxb - N;
        const float *xt = (const float *)p->env->eval_request->tensors->data.data;
        const float *xs = (const float *)p->env->eval_request->scalars->data.data;
        memcpy(s->in_t + (size_t)N * tin, xt + (size_t)p->done * tin, (size_t)take * tin * sizeof(float));
        memcpy(s->in_s + (size_t)N * c->n_scalars, xs + (size_t)p->done * c->n_scalars,
               (size_t)take * c->n_scalars * sizeof(float));
        seg_req[nseg] = i;
        seg_from[nseg] = p->done;
        seg_n[nseg] = take;
        nseg++;
        N += take;
    }
    size_t ntok = (size_t)N * K * c->n_steps;
    if (grow((void **)&s->out_tok, &s->cap_tok, ntok * sizeof(int32_t)) != 0) {
        tg_error("inference: %s", tg_errmsg());
        return;
    }
    tg_eval_out out = {.tokens = s->out_tok, .quantiles = s->out_q, .value = s->out_v};
    uint64_t seed = s->o.seed ^ (0x9e3779b97f4a7c15ull * ++s->batch_seq);
    double t0 = tg_now();
    if (s->o.share)
        tg_share_acquire(s->o.share, TG_SHARE_INFER);
    int rc = tg_net_sample(s->net, s->in_t, s->in_s, N, K, temp, NULL, seed, &out);
    if (s->o.share)
        tg_share_release(s->o.share, TG_SHARE_INFER);
    double dt = tg_now() - t0;
    if (rc != 0) {
        /* the network refused (a broken invariant or out of memory): fail these requests
         * rather than retry them forever */
        char msg[512];
        snprintf(msg, sizeof msg, "evaluation failed: %s", tg_errmsg());
        tg_error("inference: %s", msg);
        for (int g = 0; g < nseg; g++) {
            pending *p = s->q[seg_req[g]];
            if (p->done == p->B)
                continue;
            reply_error(s, p->ident, p->ident_len, ERR_INTERNAL, msg);
            s->queued_positions -= p->B - p->done;
            p->done = p->B;
        }
        remove_done(s);
        return;
    }
    int off = 0;
    for (int g = 0; g < nseg; g++) {
        pending *p = s->q[seg_req[g]];
        int from = seg_from[g], n = seg_n[g];
        memcpy(p->tokens + (size_t)from * K * c->n_steps, s->out_tok + (size_t)off * K * c->n_steps,
               (size_t)n * K * c->n_steps * sizeof(int32_t));
        memcpy(p->quant + (size_t)from * c->quantiles, s->out_q + (size_t)off * c->quantiles,
               (size_t)n * c->quantiles * sizeof(float));
        memcpy(p->values + from, s->out_v + off, (size_t)n * sizeof(float));
        p->done += n;
        off += n;
        s->queued_positions -= n;
        if (p->done == p->B)
            finish_request(s, seg_req[g]);
    }
    remove_done(s);
    pthread_mutex_lock(&s->mu);
    s->st.positions += (uint64_t)N;
    s->st.batches++;
    s->st.busy_s += dt;
    pthread_mutex_unlock(&s->mu);
}

/* Seconds the oldest request may still wait before its batch goes (<= 0: go now). */
static double wait_left(tg_infer *s, double now)
{
    if (s->nq == 0)
        return 1e9;
    if (s->queued_positions >= s->o.max_batch)
        return 0;
    double max_wait = s->o.max_wait_ms * 1e-3;
    double wait = max_wait;
    /* at the recent arrival rate, how long until the batch is full? */
    if (s->rate > 0) {
        double fill = (s->o.max_batch - s->queued_positions) / s->rate;
        if (fill < wait)
            wait = fill;
    }
    /* every recently active client is waiting on us: nobody is going to add to this batch */
    int active = 0, waiting = 0;
    for (int i = 0; i < s->n_clients; i++) {
        if (now - s->clients[i].last_seen > CLIENT_ACTIVE_S && s->clients[i].pending == 0)
            continue;
        active++;
        waiting += s->clients[i].pending > 0;
    }
    if (active > 0 && waiting == active)
        wait = 0;
    return s->q[0]->t_arrival + wait - now;
}

static void install_weights(tg_infer *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->stage_pending) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    float *t = s->cur;
    s->cur = s->stage;
    s->stage = t;
    s->cur_version = s->stage_version;
    s->cur_step = s->stage_step;
    s->stage_pending = 0;
    pthread_mutex_unlock(&s->mu);
    s->cur_crc = tg_params_crc(s->cur, s->n_params);
    if (s->o.share)
        tg_share_acquire(s->o.share, TG_SHARE_INFER);
    int rc = tg_net_set_params(s->net, s->cur);
    if (s->o.share)
        tg_share_release(s->o.share, TG_SHARE_INFER);
    if (rc != 0) {
        tg_error("inference: loading weights version %llu: %s", (unsigned long long)s->cur_version,
                 tg_errmsg());
        return;
    }
    s->have_cur = 1;
    pthread_mutex_lock(&s->mu);
    s->st.version = s->cur_version;
    s->st.have_weights = 1;
    pthread_mutex_unlock(&s->mu);
    tg_debug("inference: weights version %llu (step %llu)", (unsigned long long)s->cur_version,
             (unsigned long long)s->cur_step);
    announce(s);
}

static void *thread_main(void *arg)
{
    tg_infer *s = arg;
    s->win_start = tg_now();
    while (!atomic_load(&s->stop)) {
        install_weights(s);
        double now = tg_now();
        if (now - s->win_start >= RATE_WINDOW_S) {
            double inst = s->win_positions / (now - s->win_start);
            s->rate = s->rate > 0 ? 0.7 * s->rate + 0.3 * inst : inst;
            s->win_positions = 0;
            s->win_start = now;
        }
        if (s->pub && s->have_cur && now - s->last_announce >= ANNOUNCE_EVERY_S)
            announce(s);
        double left = wait_left(s, now);
        if (s->nq > 0 && left <= 0) {
            evaluate(s);
            drain(s);
            continue;
        }
        long timeout_ms = s->nq > 0 ? (long)ceil(left * 1e3) : 50;
        if (timeout_ms > 50)
            timeout_ms = 50;
        zmq_pollitem_t it = {.socket = s->router, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&it, 1, timeout_ms);
        if (rc < 0 && errno != EINTR) {
            tg_error("inference: zmq_poll: %s", zmq_strerror(errno));
            break;
        }
        if (rc > 0)
            drain(s);
    }
    /* unanswered requests are dropped: clients time out and resend to a live service */
    for (int i = 0; i < s->nq; i++)
        pending_free(s->q[i]);
    s->nq = 0;
    return NULL;
}

tg_infer *tg_infer_start(const tg_infer_opts *o)
{
    tg_infer *s = calloc(1, sizeof *s);
    if (!s) {
        tg_fail("out of memory");
        return NULL;
    }
    s->o = *o;
    s->ncfg = *o->ncfg;
    pthread_mutex_init(&s->mu, NULL);
    const tg_net_config *c = &s->ncfg;
    s->net = tg_net_new(c, o->backend, o->max_batch, o->threads, o->seed);
    if (!s->net)
        goto fail;
    s->n_params = tg_net_n_params(s->net);
    s->cur = malloc(s->n_params * sizeof(float));
    s->stage = malloc(s->n_params * sizeof(float));
    size_t S3 = (size_t)c->S * c->S * c->S;
    s->in_t = malloc((size_t)o->max_batch * c->T * S3 * sizeof(float));
    s->in_s = malloc((size_t)o->max_batch * c->n_scalars * sizeof(float));
    s->out_q = malloc((size_t)o->max_batch * c->quantiles * sizeof(float));
    s->out_v = malloc((size_t)o->max_batch * sizeof(float));
    if (!s->cur || !s->stage || !s->in_t || !s->in_s || !s->out_q || !s->out_v) {
        tg_fail("out of memory");
        goto fail;
    }
    s->router = tg_sock_bind(o->sec, ZMQ_ROUTER, o->endpoint);
    if (!s->router)
        goto fail;
    tg_sock_last_endpoint(s->router, s->endpoint, sizeof s->endpoint);
    if (o->pub_endpoint && o->pub_endpoint[0]) {
        s->pub = tg_sock_bind(o->sec, ZMQ_PUB, o->pub_endpoint);
        if (!s->pub)
            goto fail;
        tg_sock_last_endpoint(s->pub, s->pub_endpoint, sizeof s->pub_endpoint);
    }
    snprintf(s->fetch_endpoint, sizeof s->fetch_endpoint, "%s",
             o->fetch_endpoint && o->fetch_endpoint[0] && !strchr(o->fetch_endpoint, '*')
                 ? o->fetch_endpoint
                 : s->endpoint);
    if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
        tg_fail("starting the inference thread failed");
        goto fail;
    }
    s->started = 1;
    return s;
fail:
    tg_fail_ctx("inference service: ");
    tg_infer_stop(s);
    return NULL;
}

void tg_infer_stop(tg_infer *s)
{
    if (!s)
        return;
    if (s->started) {
        atomic_store(&s->stop, 1);
        pthread_join(s->thread, NULL);
    }
    tg_sock_close(s->router);
    tg_sock_close(s->pub);
    tg_net_free(s->net);
    free(s->q);
    free(s->cur);
    free(s->stage);
    free(s->in_t);
    free(s->in_s);
    free(s->out_q);
    free(s->out_v);
    free(s->out_tok);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *tg_infer_endpoint(const tg_infer *s)
{
    return s->endpoint;
}

const char *tg_infer_backend(const tg_infer *s)
{
    return tg_net_backend(s->net);
}

const char *tg_infer_pub_endpoint(const tg_infer *s)
{
    return s->pub_endpoint;
}

int tg_infer_publish(tg_infer *s, const float *params, size_t n, uint64_t version, uint64_t step)
{
    if (n != s->n_params)
        return tg_fail("publishing weights: %zu parameters, the network has %zu", n, s->n_params);
    pthread_mutex_lock(&s->mu);
    memcpy(s->stage, params, n * sizeof(float));
    s->stage_version = version;
    s->stage_step = step;
    s->stage_pending = 1;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void tg_infer_get_stats(tg_infer *s, tg_infer_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    pthread_mutex_unlock(&s->mu);
}
