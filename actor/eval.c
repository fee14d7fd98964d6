/* Evaluators (see eval.h): in-process ones for tests and benchmarks, and the remote one that
 * speaks EvalRequest/EvalResponse to the learner's inference ROUTERs. */
#include "actor/eval.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "actor/fake_eval.h"
#include "actor/zmon.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/sock.h"
#include "common/wire.h"

tg_eval_batch *tg_eval_batch_new(const tg_eval_dims *d, int cap, int features)
{
    size_t S3 = (size_t)d->S * d->S * d->S;
    tg_eval_batch *b = calloc(1, sizeof *b);
    if (!b)
        goto fail;
    b->cap = cap;
    if (features) {
        b->tensors = malloc((size_t)cap * d->T * S3 * sizeof(float));
        b->scalars = malloc((size_t)cap * (d->n_scalars > 0 ? d->n_scalars : 1) * sizeof(float));
        if (!b->tensors || !b->scalars)
            goto fail;
    } else {
        b->residuals = malloc((size_t)cap * S3 * sizeof(int32_t));
        if (!b->residuals)
            goto fail;
    }
    b->tokens = malloc((size_t)cap * d->K * d->n_steps * sizeof(int32_t));
    b->values = malloc((size_t)cap * sizeof(float));
    if (!b->tokens || !b->values)
        goto fail;
    return b;
fail:
    tg_eval_batch_free(b);
    tg_fail("out of memory for an evaluation batch of %d positions", cap);
    return NULL;
}

void tg_eval_batch_free(tg_eval_batch *b)
{
    if (!b)
        return;
    free(b->tensors);
    free(b->scalars);
    free(b->residuals);
    free(b->tokens);
    free(b->values);
    free(b);
}

/* ---- local evaluators: answer at submit, hand back at poll ---- */

typedef struct local_eval {
    tg_evaluator base;
    tg_eval_dims d;
    enum tg_local_kind kind;
    tg_fake_policy pol;
    int n_logits, r_limit;
    tg_rng rng;
    tg_eval_batch **ready;
    int nready, cap;
    uint64_t next_id;
    int32_t *res; /* [S^3] residual read back from features */
} local_eval;

void tg_eval_local_use_features(tg_evaluator *ev) { ev->wants_features = 1; }

static int local_submit(tg_evaluator *ev, tg_eval_batch *b)
{
    local_eval *l = (local_eval *)ev;
    const int K = l->d.K, ns = l->d.n_steps;
    size_t S3 = (size_t)l->d.S * l->d.S * l->d.S;
    b->id = ++l->next_id;
    b->k = K;
    b->model_version = 0;
    for (int i = 0; i < b->n; i++) {
        int32_t *tok = b->tokens + (size_t)i * K * ns;
        if (l->kind == TG_LOCAL_FAKE) {
            const int32_t *res = b->residuals ? b->residuals + i * S3 : l->res;
            if (!b->residuals) /* slice 0 of the features is the residual */
                for (size_t j = 0; j < S3; j++)
                    l->res[j] = (int32_t)b->tensors[(size_t)i * l->d.T * S3 + j];
            tg_fake_policy_eval(&l->pol, res, K, &l->rng, tok, &b->values[i]);
        } else {
            if (l->n_logits <= (1 << 16)) { /* four tokens per random word (multiply-shift) */
                for (int j = 0; j < K * ns; j += 4) {
                    uint64_t x = tg_rng_u64(&l->rng);
                    for (int q = 0; q < 4 && j + q < K * ns; q++, x >>= 16)
                        tok[j + q] = (int32_t)(((x & 0xffff) * (uint64_t)l->n_logits) >> 16);
                }
            } else {
                for (int j = 0; j < K * ns; j++)
                    tok[j] = (int32_t)tg_rng_below(&l->rng, (uint32_t)l->n_logits);
            }
            b->values[i] = -(float)(tg_rng_uniform(&l->rng) * l->r_limit);
        }
    }
    if (l->nready == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        tg_eval_batch **r = realloc(l->ready, (size_t)cap * sizeof *r);
        if (!r)
            return tg_fail("out of memory");
        l->ready = r;
        l->cap = cap;
    }
    l->ready[l->nready++] = b;
    ev->positions += (uint64_t)b->n;
    ev->batches++;
    return 0;
}

static int local_poll(tg_evaluator *ev, int timeout_ms, tg_eval_batch **out)
{
    (void)timeout_ms;
    local_eval *l = (local_eval *)ev;
    if (l->nready == 0)
        return 0;
    *out = l->ready[0];
    memmove(l->ready, l->ready + 1, (size_t)(l->nready - 1) * sizeof *l->ready);
    l->nready--;
    return 1;
}

static int local_inflight(const tg_evaluator *ev) { return ((const local_eval *)ev)->nready; }

static void local_free(tg_evaluator *ev)
{
    local_eval *l = (local_eval *)ev;
    free(l->ready);
    free(l->res);
    free(l);
}

tg_evaluator *tg_eval_local_new(const tg_config *c, const tg_eval_dims *d, enum tg_local_kind kind, uint64_t seed)
{
    local_eval *l = calloc(1, sizeof *l);
    if (!l) {
        tg_fail("out of memory");
        return NULL;
    }
    l->base.wants_features = 0;
    l->base.submit = local_submit;
    l->base.poll = local_poll;
    l->base.inflight = local_inflight;
    l->base.free = local_free;
    l->d = *d;
    l->kind = kind;
    l->n_logits = c->game.n_logits;
    l->r_limit = c->game.r_limit;
    tg_fake_policy_init(&l->pol, c, 0.25);
    tg_rng_seed(&l->rng, seed, 0x10ca1);
    l->res = malloc((size_t)d->S * d->S * d->S * sizeof(int32_t));
    if (!l->res) {
        free(l);
        tg_fail("out of memory");
        return NULL;
    }
    return &l->base;
}

/* ---- remote evaluator ---- */

typedef struct pending_rq {
    tg_eval_batch *b;
    uint8_t *buf; /* encoded request, kept for re-issue */
    size_t len;
    double sent;  /* 0: not handed to ZeroMQ yet */
} pending_rq;

typedef struct remote_eval {
    tg_evaluator base;
    tg_eval_dims d;
    void *sock;
    tg_sock_sec *sec;
    double timeout;
    uint64_t next_id;
    pending_rq *rq;
    int n, cap;
    double last_warn;
    int bad_in_row;  /* invalid answers since the last valid one */
    void *mon;       /* connection events: re-issue at once after a reconnection */
    int down;        /* a disconnection not yet followed by a connection */
    char last_bad[512];
} remote_eval;

/* This many invalid answers in a row (and none valid) mean the service speaks another
 * configuration (S, n_steps, K ...): a fatal error rather than an endless re-issue loop. */
#define MAX_BAD_IN_ROW 50

static int try_send(remote_eval *r, pending_rq *p)
{
    for (;;) {
        if (zmq_send(r->sock, p->buf, p->len, ZMQ_DONTWAIT) >= 0) {
            p->sent = tg_now();
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) /* no inference service connected yet: keep it and retry */
            return 0;
        return tg_fail("sending an evaluation request: %s", zmq_strerror(errno));
    }
}

static int remote_submit(tg_evaluator *ev, tg_eval_batch *b)
{
    remote_eval *r = (remote_eval *)ev;
    const tg_eval_dims *d = &r->d;
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 8;
        pending_rq *q = realloc(r->rq, (size_t)cap * sizeof *q);
        if (!q)
            return tg_fail("out of memory");
        r->rq = q;
        r->cap = cap;
    }
    b->id = ++r->next_id;
    size_t S3 = (size_t)d->S * d->S * d->S;
    Tg__EvalRequest req = TG__EVAL_REQUEST__INIT;
    Tg__Array ten, sca;
    int64_t tshape[5] = {b->n, d->T, d->S, d->S, d->S}, tsb[5], sshape[2] = {b->n, d->n_scalars}, ssb[2];
    tg_array_set(&ten, TG__DTYPE__F32, 5, tshape, tsb, b->tensors, (size_t)b->n * d->T * S3 * sizeof(float));
    tg_array_set(&sca, TG__DTYPE__F32, 2, sshape, ssb, b->scalars, (size_t)b->n * d->n_scalars * sizeof(float));
    req.request_id = b->id;
    req.tensors = &ten;
    req.scalars = &sca;
    req.samples = (uint32_t)d->K;
    req.temperature = d->temperature;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_EVAL_REQUEST;
    e.eval_request = &req;
    pending_rq *p = &r->rq[r->n];
    p->b = b;
    p->sent = 0;
    p->len = tg_wire_encode(&e, &p->buf);
    if (!p->buf)
        return -1;
    r->n++;
    ev->batches++;
    return try_send(r, p);
}

/* Checks and copies a response into its batch; 1 if it completed one (index *done), 0 if it was
 * stale (an answer to a request already answered) or invalid. */
static int take_response(remote_eval *r, const Tg__EvalResponse *rs, int *done)
{
    int i = 0;
    while (i < r->n && r->rq[i].b->id != rs->request_id)
        i++;
    if (i == r->n)
        return 0; /* late answer to a re-issued request */
    tg_eval_batch *b = r->rq[i].b;
    int64_t tshape[3] = {b->n, -1, r->d.n_steps}, vshape[1] = {b->n};
    if (tg_array_check(rs->tokens, TG__DTYPE__I32, 3, tshape, "EvalResponse.tokens") != 0 ||
        tg_array_check(rs->values, TG__DTYPE__F32, 1, vshape, "EvalResponse.values") != 0)
        return -1;
    int k = (int)rs->tokens->shape[1];
    if (k < 1 || k > r->d.K)
        return tg_fail("EvalResponse.tokens: %d samples per position, expected 1..%d", k, r->d.K);
    /* tokens [n][k][n_steps] -> the batch's [n][K][n_steps] */
    const int32_t *src = (const int32_t *)rs->tokens->data.data;
    size_t row = (size_t)k * r->d.n_steps, rowK = (size_t)r->d.K * r->d.n_steps;
    for (int j = 0; j < b->n; j++)
        memcpy(b->tokens + j * rowK, src + j * row, row * sizeof(int32_t));
    memcpy(b->values, rs->values->data.data, (size_t)b->n * sizeof(float));
    b->k = k;
    b->model_version = rs->model_version;
    *done = i;
    return 1;
}

static void warn_limited(remote_eval *r, const char *what)
{
    snprintf(r->last_bad, sizeof r->last_bad, "%s", what);
    double now = tg_now();
    if (now - r->last_warn > 5.0) {
        tg_warn("inference: %s", what);
        r->last_warn = now;
    }
}

static int remote_poll(tg_evaluator *ev, int timeout_ms, tg_eval_batch **out)
{
    remote_eval *r = (remote_eval *)ev;
    double deadline = tg_now() + timeout_ms / 1000.0;
    for (;;) {
        double now = tg_now();
        if (tg_zmon_reconnected(r->mon, &r->down) > 0) {
            /* a service came back after a disconnection: what was sent before may be lost */
            int n = 0;
            for (int i = 0; i < r->n; i++)
                if (r->rq[i].sent != 0) {
                    r->rq[i].sent = 0;
                    n++;
                }
            ev->reissued += (uint64_t)n;
            if (n)
                tg_info("inference reconnected: re-issuing %d request%s", n, n > 1 ? "s" : "");
        }
        /* hand unsent requests to ZeroMQ; re-issue the ones unanswered for too long */
        double next = deadline;
        for (int i = 0; i < r->n; i++) {
            pending_rq *p = &r->rq[i];
            if (p->sent == 0) {
                if (try_send(r, p) != 0)
                    return -1;
            } else if (now - p->sent > r->timeout) {
                ev->reissued++;
                char msg[128];
                snprintf(msg, sizeof msg, "request %llu unanswered after %.1f s; re-issuing",
                         (unsigned long long)p->b->id, now - p->sent);
                warn_limited(r, msg);
                p->sent = 0;
                if (try_send(r, p) != 0)
                    return -1;
            }
            double due = p->sent > 0 ? p->sent + r->timeout : now + 0.01;
            if (due < next)
                next = due;
        }
        int wait = (int)((next - now) * 1000.0 + 0.999);
        if (wait < 0)
            wait = 0;
        zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, wait);
        if (rc < 0 && errno != EINTR)
            return tg_fail("zmq_poll: %s", zmq_strerror(errno));
        if (rc > 0) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, r->sock, ZMQ_DONTWAIT) >= 0) {
                Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), TG_WIRE_MAX_DEFAULT);
                int got = 0, idx = -1;
                if (!e) {
                    ev->errors++;
                    warn_limited(r, tg_errmsg());
                } else if (e->body_case == TG__ENVELOPE__BODY_EVAL_RESPONSE) {
                    got = take_response(r, e->eval_response, &idx);
                    if (got < 0) {
                        ev->errors++;
                        warn_limited(r, tg_errmsg());
                    }
                } else if (e->body_case == TG__ENVELOPE__BODY_ERROR) {
                    ev->errors++;
                    char msg[300];
                    snprintf(msg, sizeof msg, "service answered error %d: %s", e->error->code,
                             e->error->message ? e->error->message : "");
                    warn_limited(r, msg);
                } else {
                    ev->errors++;
                    warn_limited(r, "unexpected message type from the inference service");
                }
                int bad = got < 0 || !e || e->body_case != TG__ENVELOPE__BODY_EVAL_RESPONSE;
                tg_wire_free(e);
                zmq_msg_close(&m);
                if (got > 0)
                    r->bad_in_row = 0;
                else if (bad)
                    r->bad_in_row++;
                if (r->bad_in_row >= MAX_BAD_IN_ROW)
                    return tg_fail("the inference service gave %d invalid answers in a row (last: %s); "
                                   "does it run the same configuration (game.*, infer.samples)?",
                                   r->bad_in_row, r->last_bad);
                if (got > 0) {
                    *out = r->rq[idx].b;
                    free(r->rq[idx].buf);
                    r->rq[idx] = r->rq[--r->n];
                    ev->positions += (uint64_t)(*out)->n;
                    return 1;
                }
                continue;
            }
            zmq_msg_close(&m);
        }
        if (tg_now() >= deadline)
            return 0;
    }
}

static int remote_inflight(const tg_evaluator *ev) { return ((const remote_eval *)ev)->n; }

static void remote_free(tg_evaluator *ev)
{
    remote_eval *r = (remote_eval *)ev;
    for (int i = 0; i < r->n; i++)
        free(r->rq[i].buf);
    free(r->rq);
    tg_sock_close(r->sock);
    tg_zmon_free(r->mon);
    tg_sock_sec_free(r->sec);
    free(r);
}

tg_evaluator *tg_eval_remote_new(const tg_config *c, const tg_eval_dims *d, const char *endpoints, double timeout_s)
{
    remote_eval *r = calloc(1, sizeof *r);
    char list[TG_STR * 4];
    if (!r) {
        tg_fail("out of memory");
        return NULL;
    }
    r->base.wants_features = 1;
    r->base.submit = remote_submit;
    r->base.poll = remote_poll;
    r->base.inflight = remote_inflight;
    r->base.free = remote_free;
    r->d = *d;
    r->timeout = timeout_s > 0 ? timeout_s : 10.0;
    snprintf(list, sizeof list, "%s", endpoints);
    char *save = NULL, *first = strtok_r(list, ", ", &save);
    if (!first) {
        tg_fail("no inference endpoint given");
        goto fail;
    }
    r->sec = tg_sock_sec_new(c, 0);
    if (!r->sec)
        goto fail;
    /* tg_sock_connect applies the security settings; the connection options (reconnect backoff,
     * heartbeats, queueing only to live peers) must precede zmq_connect, so connect again */
    r->sock = tg_sock_connect(r->sec, ZMQ_DEALER, first);
    if (!r->sock)
        goto fail;
    (void)zmq_disconnect(r->sock, first); /* connected again below, with the options */
    int one = 1, ivl = 100, ivl_max = 5000, hb = 1000, hb_to = 5000;
    if (zmq_setsockopt(r->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(r->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(r->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0 ||
        zmq_setsockopt(r->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(r->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to) != 0) {
        tg_fail("inference socket options: %s", zmq_strerror(errno));
        goto fail;
    }
    r->mon = tg_zmon_new(r->sock);
    if (!r->mon)
        goto fail;
    for (char *ep = first; ep; ep = strtok_r(NULL, ", ", &save))
        if (zmq_connect(r->sock, ep) != 0) {
            tg_fail("cannot connect to inference endpoint %s: %s", ep, zmq_strerror(errno));
            goto fail;
        }
    return &r->base;
fail:
    remote_free(&r->base);
    return NULL;
}
