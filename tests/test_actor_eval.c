/* The remote evaluator against a misbehaving service (garbage, Error replies, wrong shapes,
 * unknown ids, silence), and the fake evaluator against malformed requests. */
#include "tests/test_util.h"

#include <pthread.h>
#include <zmq.h>

#include "actor/decode.h"
#include "actor/eval.h"
#include "actor/fake_eval.h"
#include "common/config.h"
#include "common/err.h"
#include "common/perm.h"
#include "common/rng.h"
#include "common/sock.h"
#include "common/wire.h"

typedef struct rogue {
    void *sock;
    char endpoint[256];
    pthread_t thread;
    volatile int stop;
    int n_steps;
    int requests;
    int always_error; /* answer every request with an Error (a service of another config) */
} rogue;

static void reply(rogue *r, zmq_msg_t *id, uint64_t request_id, int B, int k, int n_steps)
{
    int32_t tok[64];
    float val[16];
    for (int i = 0; i < B * k * n_steps; i++)
        tok[i] = i % 5;
    for (int i = 0; i < B; i++)
        val[i] = -1.5f - i;
    Tg__EvalResponse rs = TG__EVAL_RESPONSE__INIT;
    Tg__Array at, av;
    int64_t ts[3] = {B, k, n_steps}, tb[3], vs[1] = {B}, vb[1];
    tg_array_set(&at, TG__DTYPE__I32, 3, ts, tb, tok, (size_t)B * k * n_steps * 4);
    tg_array_set(&av, TG__DTYPE__F32, 1, vs, vb, val, (size_t)B * 4);
    rs.request_id = request_id;
    rs.model_version = 9;
    rs.tokens = &at;
    rs.values = &av;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_EVAL_RESPONSE;
    e.eval_response = &rs;
    assert_int_equal(tg_wire_send(r->sock, zmq_msg_data(id), zmq_msg_size(id), &e), 0);
}

static void *rogue_main(void *arg)
{
    rogue *r = arg;
    while (!r->stop) {
        zmq_pollitem_t it = {r->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        zmq_msg_recv(&id, r->sock, 0);
        zmq_msg_recv(&body, r->sock, 0);
        Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), 1u << 26);
        r->requests++;
        if (r->always_error) {
            tg_wire_send_error(r->sock, zmq_msg_data(&id), zmq_msg_size(&id), 400, "wrong S");
        } else if (e && e->body_case == TG__ENVELOPE__BODY_EVAL_REQUEST) {
            uint64_t rid = e->eval_request->request_id;
            int B = (int)e->eval_request->tensors->shape[0];
            if (rid == 1) {
                /* garbage, an Error, a wrong shape, an unknown id, then the answer (3 of 8) */
                zmq_send(r->sock, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
                zmq_send(r->sock, "\xff\xfe garbage", 10, 0);
                tg_wire_send_error(r->sock, zmq_msg_data(&id), zmq_msg_size(&id), 503, "busy");
                reply(r, &id, rid, B, 3, r->n_steps + 1);
                reply(r, &id, 777, B, 3, r->n_steps);
                reply(r, &id, rid, B, 3, r->n_steps);
            } else if (rid == 2 && r->requests == 2) {
                /* silence: the client must re-issue */
            } else {
                reply(r, &id, rid, B, 8, r->n_steps);
            }
        }
        tg_wire_free(e);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
    return NULL;
}

static void test_remote_misbehaving_service(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_finish(&c), 0);
    rogue r = {0};
    r.n_steps = c.game.n_steps;
    r.sock = tg_sock_bind(NULL, ZMQ_ROUTER, "tcp://127.0.0.1:*");
    assert_non_null(r.sock);
    assert_int_equal(tg_sock_last_endpoint(r.sock, r.endpoint, sizeof r.endpoint), 0);
    assert_int_equal(pthread_create(&r.thread, NULL, rogue_main, &r), 0);

    tg_eval_dims d = {c.game.S, c.game.history + 1, c.game.n_scalars, 8, c.game.n_steps, 1.0f};
    tg_evaluator *ev = tg_eval_remote_new(&c, &d, r.endpoint, 0.2);
    assert_non_null(ev);
    assert_true(ev->wants_features);
    tg_eval_batch *b1 = tg_eval_batch_new(&d, 2, 1), *b2 = tg_eval_batch_new(&d, 2, 1), *out = NULL;
    size_t S3 = (size_t)d.S * d.S * d.S;
    memset(b1->tensors, 0, 2 * d.T * S3 * sizeof(float));
    memset(b1->scalars, 0, 2 * d.n_scalars * sizeof(float));
    memcpy(b2->tensors, b1->tensors, 2 * d.T * S3 * sizeof(float));
    memcpy(b2->scalars, b1->scalars, 2 * d.n_scalars * sizeof(float));
    b1->n = b2->n = 2;

    assert_int_equal(ev->submit(ev, b1), 0);
    int got = 0;
    for (int i = 0; i < 100 && !got; i++)
        got = ev->poll(ev, 50, &out);
    assert_int_equal(got, 1);
    assert_ptr_equal(out, b1);
    assert_int_equal(b1->k, 3);
    assert_true(b1->values[1] == -2.5f);
    assert_int_equal(b1->model_version, 9);
    assert_int_equal(ev->errors, 3); /* garbage, Error, wrong shape; the unknown id is ignored */

    assert_int_equal(ev->submit(ev, b2), 0);
    got = 0;
    for (int i = 0; i < 100 && !got; i++)
        got = ev->poll(ev, 50, &out);
    assert_int_equal(got, 1);
    assert_ptr_equal(out, b2);
    assert_int_equal(b2->k, 8);
    assert_true(ev->reissued >= 1);
    assert_int_equal(ev->inflight(ev), 0);

    tg_evaluator_free(ev);
    tg_eval_batch_free(b1);
    tg_eval_batch_free(b2);
    r.stop = 1;
    pthread_join(r.thread, NULL);
    tg_sock_close(r.sock);
}

/* A service that only ever answers errors is a fatal error with its message, not a loop. */
static void test_remote_persistent_errors(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_finish(&c), 0);
    rogue r = {0};
    r.always_error = 1;
    r.sock = tg_sock_bind(NULL, ZMQ_ROUTER, "tcp://127.0.0.1:*");
    assert_non_null(r.sock);
    assert_int_equal(tg_sock_last_endpoint(r.sock, r.endpoint, sizeof r.endpoint), 0);
    assert_int_equal(pthread_create(&r.thread, NULL, rogue_main, &r), 0);
    tg_eval_dims d = {c.game.S, c.game.history + 1, c.game.n_scalars, 4, c.game.n_steps, 1.0f};
    tg_evaluator *ev = tg_eval_remote_new(&c, &d, r.endpoint, 0.005);
    assert_non_null(ev);
    tg_eval_batch *b = tg_eval_batch_new(&d, 1, 1), *out = NULL;
    memset(b->tensors, 0, (size_t)d.T * d.S * d.S * d.S * sizeof(float));
    memset(b->scalars, 0, (size_t)d.n_scalars * sizeof(float));
    b->n = 1;
    assert_int_equal(ev->submit(ev, b), 0);
    int rc = 0;
    for (int i = 0; i < 2000 && rc == 0; i++)
        rc = ev->poll(ev, 10, &out);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(tg_errmsg(), "wrong S"));
    tg_evaluator_free(ev);
    tg_eval_batch_free(b);
    r.stop = 1;
    pthread_join(r.thread, NULL);
    tg_sock_close(r.sock);
}

/* Requests nobody answers (no service at the address): submit still succeeds, poll times out,
 * nothing crashes, the request stays in flight. */
static void test_remote_no_service(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_finish(&c), 0);
    tg_eval_dims d = {c.game.S, c.game.history + 1, c.game.n_scalars, 4, c.game.n_steps, 1.0f};
    tg_evaluator *ev = tg_eval_remote_new(&c, &d, "tcp://127.0.0.1:9,tcp://127.0.0.1:10", 0.05);
    assert_non_null(ev);
    tg_eval_batch *b = tg_eval_batch_new(&d, 1, 1), *out = NULL;
    memset(b->tensors, 0, (size_t)d.T * d.S * d.S * d.S * sizeof(float));
    memset(b->scalars, 0, (size_t)d.n_scalars * sizeof(float));
    b->n = 1;
    assert_int_equal(ev->submit(ev, b), 0);
    assert_int_equal(ev->poll(ev, 200, &out), 0);
    assert_int_equal(ev->inflight(ev), 1);
    tg_evaluator_free(ev);
    tg_eval_batch_free(b);
    /* a bad endpoint is an error with a message */
    assert_null(tg_eval_remote_new(&c, &d, "nonsense://x", 1));
    assert_true(strlen(tg_errmsg()) > 0);
}

/* The fake service answers malformed requests with an Error and keeps serving. */
static void test_fake_rejects_malformed(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_finish(&c), 0);
    char ep[256];
    tg_fake_eval *fe = tg_fake_eval_start(&c, "tcp://127.0.0.1:*", ep, sizeof ep);
    assert_non_null(fe);
    void *d = tg_sock_connect(NULL, ZMQ_DEALER, ep);
    assert_non_null(d);
    int to = 5000;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &to, sizeof to);
    /* garbage */
    assert_int_equal(zmq_send(d, "xyz", 3, 0), 3);
    char buf[4096];
    int n = zmq_recv(d, buf, sizeof buf, 0);
    assert_true(n > 0);
    Tg__Envelope *e = tg_wire_decode(buf, (size_t)n, sizeof buf);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_ERROR);
    tg_wire_free(e);
    /* a request of the wrong S */
    float x[5 * 5 * 5] = {0};
    Tg__EvalRequest rq = TG__EVAL_REQUEST__INIT;
    Tg__Array at;
    int64_t sh[5] = {1, 1, 5, 5, 5}, sb[5];
    tg_array_set(&at, TG__DTYPE__F32, 5, sh, sb, x, sizeof x);
    rq.request_id = 5;
    rq.tensors = &at;
    Tg__Envelope env = TG__ENVELOPE__INIT;
    env.body_case = TG__ENVELOPE__BODY_EVAL_REQUEST;
    env.eval_request = &rq;
    assert_int_equal(tg_wire_send(d, NULL, 0, &env), 0);
    n = zmq_recv(d, buf, sizeof buf, 0);
    assert_true(n > 0);
    e = tg_wire_decode(buf, (size_t)n, sizeof buf);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_ERROR);
    tg_wire_free(e);
    /* still serving: a good request */
    int S = c.game.S;
    float *y = calloc((size_t)S * S * S, sizeof(float));
    y[0] = 1;
    int64_t sh2[5] = {1, 1, S, S, S};
    tg_array_set(&at, TG__DTYPE__F32, 5, sh2, sb, y, (size_t)S * S * S * sizeof(float));
    rq.samples = 4;
    assert_int_equal(tg_wire_send(d, NULL, 0, &env), 0);
    n = zmq_recv(d, buf, sizeof buf, 0);
    assert_true(n > 0);
    e = tg_wire_decode(buf, (size_t)n, sizeof buf);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_EVAL_RESPONSE);
    assert_int_equal(e->eval_response->request_id, 5);
    assert_int_equal(e->eval_response->tokens->shape[1], 4);
    /* a single non-zero entry: rank bound 1 */
    assert_true(((float *)e->eval_response->values->data.data)[0] == -1.0f);
    tg_wire_free(e);
    free(y);
    uint64_t errors;
    tg_fake_eval_counts(fe, NULL, NULL, NULL, &errors);
    assert_int_equal(errors, 2);
    tg_sock_close(d);
    tg_fake_eval_stop(fe);
}

/* The fused decoder equals the reference path through common/ on random samples. */
static void check_decoder(const char *coeffs, int S, const int sizes[3], int n_steps, int mod2)
{
    tg_coeffs F;
    assert_int_equal(tg_coeffs_parse(coeffs, &F), 0);
    int d, nl;
    assert_int_equal(tg_tokens_shape(S, n_steps, F.n, &d, &nl), 0);
    int canonical = !mod2 && tg_coeffs_symmetric(&F);
    tg_decoder *dec = tg_decoder_new(&F, S, n_steps, canonical);
    assert_non_null(dec);
    tg_rng rng;
    tg_rng_seed(&rng, 11, (uint64_t)S);
    int valid = 0;
    for (int it = 0; it < 20000; it++) {
        tg_sperm p, inv;
        tg_sperm_sample(&p, S, sizes, canonical, &rng);
        tg_sperm_invert(&p, &inv);
        int32_t tok[3 * TG_MAX_S];
        for (int k = 0; k < n_steps; k++)
            tok[k] = it % 97 == 0 && k == 0 ? nl : (int32_t)tg_rng_below(&rng, (uint32_t)nl);
        /* a few all-zero factors on purpose: small tokens leave leading entries at F's zero */
        if (it % 13 == 0)
            tok[0] = 0;
        int use_perm = it % 3 != 0;
        int8_t got[3 * TG_MAX_S], raw[3 * TG_MAX_S], want[3 * TG_MAX_S];
        int ok = tg_decode_action(dec, tok, use_perm ? &inv : NULL, sizes, got);
        int ref = tg_tokens_to_action(&F, S, n_steps, tok, raw) == 0;
        if (ref) {
            if (use_perm)
                tg_sperm_apply_action(&inv, raw, want);
            else
                memcpy(want, raw, (size_t)3 * S);
            for (int m = 0; m < 3; m++)
                memset(want + m * S + sizes[m], 0, (size_t)(S - sizes[m]));
            ref = tg_action_nonzero(want, S);
            if (ref && canonical)
                tg_action_canonicalize(want, S, 0);
        }
        assert_int_equal(ok, ref);
        if (ok) {
            assert_memory_equal(got, want, (size_t)3 * S);
            valid++;
        }
    }
    assert_true(valid > 1000);
    tg_decoder_free(dec);
}

static void test_decoder_matches_reference(void **state)
{
    (void)state;
    int s444[3] = {4, 4, 4}, s466[3] = {4, 6, 6}, s133[3] = {1, 3, 3};
    check_decoder("-1..1", 4, s444, 4, 0);  /* T(2,2,2), lookup table */
    check_decoder("-1..1", 6, s466, 6, 0);  /* T(2,2,3): padding in mode 0 */
    check_decoder("0,1", 4, s444, 4, 1);    /* mod 2: no signs */
    check_decoder("0,1,2", 4, s444, 4, 0);  /* asymmetric F: no canonical signs */
    check_decoder("-2..2", 3, s133, 1, 0);  /* 5^9 logits: digits computed, no table */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_misbehaving_service),
        cmocka_unit_test(test_remote_persistent_errors),
        cmocka_unit_test(test_remote_no_service),
        cmocka_unit_test(test_fake_rejects_malformed),
        cmocka_unit_test(test_decoder_matches_reference),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
