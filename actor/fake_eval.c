/* Test double of the inference service (see fake_eval.h). */
#include "actor/fake_eval.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/game.h"
#include "common/log.h"
#include "common/sock.h"
#include "common/wire.h"

void tg_fake_policy_init(tg_fake_policy *p, const tg_config *c, double noise)
{
    memset(p, 0, sizeof *p);
    p->S = c->game.S;
    p->n_steps = c->game.n_steps;
    p->mod2 = c->game.mod2;
    p->F = c->game.F;
    p->noise = noise;
}

static int in_F(const tg_coeffs *F, int32_t v) { return v >= -128 && v <= 127 && F->index_of[v + 128] >= 0; }

void tg_fake_policy_eval(const tg_fake_policy *p, const int32_t *R, int K, tg_rng *rng, int32_t *tokens,
                         float *value)
{
    const int S = p->S, A = 3 * S;
    /* non-zero fibers along each mode (index of the two fixed coordinates) and the support */
    int nfib[3] = {0, 0, 0};
    uint16_t fib[3][TG_MAX_S * TG_MAX_S];
    uint8_t sup[3][TG_MAX_S];
    memset(sup, 0, sizeof sup);
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++)
            for (int c = 0; c < S; c++)
                if (R[(a * S + b) * S + c]) {
                    sup[0][a] = sup[1][b] = sup[2][c] = 1;
                }
    for (int x = 0; x < S; x++)
        for (int y = 0; y < S; y++) {
            int nz0 = 0, nz1 = 0, nz2 = 0;
            for (int z = 0; z < S; z++) {
                nz0 |= R[(z * S + x) * S + y] != 0; /* mode 0 fiber: R[:][x][y] */
                nz1 |= R[(x * S + z) * S + y] != 0; /* mode 1: R[x][:][y] */
                nz2 |= R[(x * S + y) * S + z] != 0; /* mode 2: R[x][y][:] */
            }
            if (nz0)
                fib[0][nfib[0]++] = (uint16_t)(x * S + y);
            if (nz1)
                fib[1][nfib[1]++] = (uint16_t)(x * S + y);
            if (nz2)
                fib[2][nfib[2]++] = (uint16_t)(x * S + y);
        }
    int8_t act[3 * TG_MAX_S];
    for (int k = 0; k < K; k++) {
        int ok = 0;
        if (tg_rng_uniform(rng) >= p->noise) {
            int mode = (int)tg_rng_below(rng, 3);
            if (nfib[mode] > 0) {
                int f = fib[mode][tg_rng_below(rng, (uint32_t)nfib[mode])];
                int x = f / S, y = f % S;
                memset(act, 0, (size_t)A);
                ok = 1;
                for (int z = 0; z < S && ok; z++) {
                    int32_t v = mode == 0 ? R[(z * S + x) * S + y] : mode == 1 ? R[(x * S + z) * S + y]
                                                                               : R[(x * S + y) * S + z];
                    if (!in_F(&p->F, v))
                        ok = 0;
                    else
                        act[mode * S + z] = (int8_t)v;
                }
                /* the two fixed coordinates become unit vectors of the other modes */
                int m1 = mode == 0 ? 1 : 0, m2 = mode == 2 ? 1 : 2;
                act[m1 * S + x] = 1;
                act[m2 * S + y] = 1;
            }
        }
        if (!ok) { /* uniform over F on the support, each of u, v, w non-zero */
            for (int tries = 0; tries < 16 && !ok; tries++) {
                for (int m = 0; m < 3; m++)
                    for (int i = 0; i < S; i++)
                        act[m * S + i] = sup[m][i] ? p->F.v[tg_rng_below(rng, (uint32_t)p->F.n)] : 0;
                ok = tg_action_nonzero(act, S);
            }
        }
        if (tg_action_to_tokens(&p->F, S, p->n_steps, act, tokens + (size_t)k * p->n_steps) != 0)
            memset(tokens + (size_t)k * p->n_steps, 0, (size_t)p->n_steps * sizeof(int32_t));
    }
    *value = -(float)tg_rank_bound(R, S, p->mod2);
}

/* ---- the service ---- */

struct tg_fake_eval {
    tg_config cfg;
    void *sock;
    pthread_t thread;
    int started;
    volatile int stop;
    atomic_int drop_every;
    atomic_ullong version, requests, positions, dropped, errors;
};

static void serve_one(tg_fake_eval *f, const tg_fake_policy *pol, tg_rng *rng, zmq_msg_t *id, const void *data,
                      size_t len, int32_t **tok_buf, float **val_buf, int32_t **res_buf, size_t *cap)
{
    Tg__Envelope *e = tg_wire_decode(data, len, TG_WIRE_MAX_DEFAULT);
    const int S = pol->S, S3 = S * S * S;
    if (!e || e->body_case != TG__ENVELOPE__BODY_EVAL_REQUEST) {
        atomic_fetch_add(&f->errors, 1);
        tg_wire_send_error(f->sock, zmq_msg_data(id), zmq_msg_size(id), 400,
                           e ? "fake evaluator: expected an EvalRequest" : tg_errmsg());
        tg_wire_free(e);
        return;
    }
    Tg__EvalRequest *rq = e->eval_request;
    int64_t shape[5] = {-1, -1, S, S, S};
    if (tg_array_check(rq->tensors, TG__DTYPE__F32, 5, shape, "EvalRequest.tensors") != 0 ||
        rq->tensors->shape[1] < 1) {
        atomic_fetch_add(&f->errors, 1);
        tg_wire_send_error(f->sock, zmq_msg_data(id), zmq_msg_size(id), 400, tg_errmsg());
        tg_wire_free(e);
        return;
    }
    uint64_t nreq = atomic_fetch_add(&f->requests, 1) + 1;
    int every = atomic_load(&f->drop_every);
    if (every > 0 && nreq % (uint64_t)every == 0) {
        atomic_fetch_add(&f->dropped, 1);
        tg_wire_free(e);
        return;
    }
    int B = (int)rq->tensors->shape[0], T = (int)rq->tensors->shape[1];
    int K = rq->samples ? (int)rq->samples : f->cfg.infer.samples;
    if (K > 4096)
        K = 4096;
    size_t need = (size_t)B * K * pol->n_steps;
    if (need > *cap || (size_t)B > *cap) {
        *cap = need > (size_t)B ? need : (size_t)B;
        free(*tok_buf);
        free(*val_buf);
        free(*res_buf);
        *tok_buf = malloc(*cap * sizeof **tok_buf);
        *val_buf = malloc(*cap * sizeof **val_buf);
        *res_buf = malloc((size_t)S3 * sizeof **res_buf);
        TG_ASSERT(*tok_buf && *val_buf && *res_buf);
    }
    const float *x = (const float *)rq->tensors->data.data;
    for (int b = 0; b < B; b++) {
        const float *r = x + (size_t)b * T * S3; /* slice 0: the residual */
        for (int i = 0; i < S3; i++)
            (*res_buf)[i] = (int32_t)lrintf(r[i]);
        tg_fake_policy_eval(pol, *res_buf, K, rng, *tok_buf + (size_t)b * K * pol->n_steps, *val_buf + b);
    }
    atomic_fetch_add(&f->positions, (unsigned long long)B);
    Tg__EvalResponse rs = TG__EVAL_RESPONSE__INIT;
    Tg__Array tok, q, val;
    int64_t tshape[3] = {B, K, pol->n_steps}, tsb[3], qshape[2] = {B, 1}, qsb[2], vshape[1] = {B}, vsb[1];
    tg_array_set(&tok, TG__DTYPE__I32, 3, tshape, tsb, *tok_buf, need * sizeof(int32_t));
    tg_array_set(&q, TG__DTYPE__F32, 2, qshape, qsb, *val_buf, (size_t)B * sizeof(float));
    tg_array_set(&val, TG__DTYPE__F32, 1, vshape, vsb, *val_buf, (size_t)B * sizeof(float));
    rs.request_id = rq->request_id;
    rs.model_version = atomic_load(&f->version);
    rs.tokens = &tok;
    rs.quantiles = &q;
    rs.values = &val;
    Tg__Envelope out = TG__ENVELOPE__INIT;
    out.body_case = TG__ENVELOPE__BODY_EVAL_RESPONSE;
    out.eval_response = &rs;
    if (tg_wire_send(f->sock, zmq_msg_data(id), zmq_msg_size(id), &out) != 0)
        tg_warn("fake evaluator: %s", tg_errmsg());
    tg_wire_free(e);
}

static int serve_loop(tg_fake_eval *f, volatile int *stop)
{
    tg_fake_policy pol;
    tg_fake_policy_init(&pol, &f->cfg, 0.25);
    tg_rng rng;
    tg_rng_seed(&rng, f->cfg.run.seed, 0xfa4e);
    int32_t *tok = NULL, *res = NULL;
    float *val = NULL;
    size_t cap = 0;
    while (!*stop) {
        zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, 50);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (rc == 0)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, f->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            continue;
        }
        /* the last frame is the body; anything between (e.g. an empty delimiter) is ignored */
        int more = zmq_msg_more(&id);
        while (more) {
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, f->sock, 0) < 0)
                break;
            more = zmq_msg_more(&body);
        }
        serve_one(f, &pol, &rng, &id, zmq_msg_data(&body), zmq_msg_size(&body), &tok, &val, &res, &cap);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    free(tok);
    free(val);
    free(res);
    return 0;
}

static void *thread_main(void *arg)
{
    tg_fake_eval *f = arg;
    serve_loop(f, &f->stop);
    return NULL;
}

static tg_fake_eval *fake_new(const tg_config *c, const char *endpoint)
{
    tg_fake_eval *f = calloc(1, sizeof *f);
    if (!f) {
        tg_fail("out of memory");
        return NULL;
    }
    f->cfg = *c;
    atomic_init(&f->version, 1);
    f->sock = tg_sock_bind(NULL, ZMQ_ROUTER, endpoint);
    if (!f->sock) {
        free(f);
        return NULL;
    }
    return f;
}

tg_fake_eval *tg_fake_eval_start(const tg_config *c, const char *endpoint, char *bound, size_t len)
{
    tg_fake_eval *f = fake_new(c, endpoint);
    if (!f)
        return NULL;
    if (bound && tg_sock_last_endpoint(f->sock, bound, len) != 0)
        goto fail;
    if (pthread_create(&f->thread, NULL, thread_main, f) != 0) {
        tg_fail("cannot start the fake evaluator's thread");
        goto fail;
    }
    f->started = 1;
    return f;
fail:
    tg_sock_close(f->sock);
    free(f);
    return NULL;
}

void tg_fake_eval_set_drop(tg_fake_eval *f, int every) { atomic_store(&f->drop_every, every); }
void tg_fake_eval_set_version(tg_fake_eval *f, uint64_t v) { atomic_store(&f->version, v); }

void tg_fake_eval_counts(tg_fake_eval *f, uint64_t *requests, uint64_t *positions, uint64_t *dropped,
                         uint64_t *errors)
{
    if (requests)
        *requests = atomic_load(&f->requests);
    if (positions)
        *positions = atomic_load(&f->positions);
    if (dropped)
        *dropped = atomic_load(&f->dropped);
    if (errors)
        *errors = atomic_load(&f->errors);
}

void tg_fake_eval_stop(tg_fake_eval *f)
{
    if (!f)
        return;
    f->stop = 1;
    if (f->started)
        pthread_join(f->thread, NULL);
    tg_sock_close(f->sock);
    free(f);
}

int tg_fake_eval_serve(const tg_config *c, const char *endpoint, volatile int *stop)
{
    tg_fake_eval *f = fake_new(c, endpoint);
    if (!f)
        return -1;
    tg_info("fake evaluator serving on %s (S=%d, K=%d)", endpoint, c->game.S, c->infer.samples);
    serve_loop(f, stop);
    tg_sock_close(f->sock);
    free(f);
    return 0;
}
