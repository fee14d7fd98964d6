/* Wire messages: round trips, malformed and oversized input, protocol versions, array checks,
 * and sends over real ZeroMQ sockets. */
#include "tests/test_util.h"

#include <zmq.h>

#include "common/err.h"
#include "common/sock.h"
#include "common/wire.h"

static void assert_err_has(const char *want)
{
    if (!strstr(tg_errmsg(), want))
        fail_msg("error '%s' does not mention '%s'", tg_errmsg(), want);
}

/* A Game envelope whose arrays point into the caller's buffers. */
typedef struct game_msg {
    Tg__Envelope env;
    Tg__Game game;
    Tg__Array actions, returns;
    int64_t ashape[2], rshape[1];
    int8_t act[5 * 12];
    float ret[5];
} game_msg;

static void make_game(game_msg *m)
{
    memset(m, 0, sizeof *m);
    tg__envelope__init(&m->env);
    tg__game__init(&m->game);
    for (int i = 0; i < 60; i++)
        m->act[i] = (int8_t)(i % 3 - 1);
    for (int i = 0; i < 5; i++)
        m->ret[i] = -(float)(5 - i);
    int64_t as[2] = {5, 12}, rs[1] = {5};
    tg_array_set(&m->actions, TG__DTYPE__I8, 2, as, m->ashape, m->act, sizeof m->act);
    tg_array_set(&m->returns, TG__DTYPE__F32, 1, rs, m->rshape, m->ret, sizeof m->ret);
    m->game.target = "2,2,2";
    m->game.arithmetic = "integer";
    m->game.s = 4;
    m->game.actions = &m->actions;
    m->game.returns = &m->returns;
    m->game.solved = 1;
    m->game.rank = 5;
    m->env.body_case = TG__ENVELOPE__BODY_GAME;
    m->env.game = &m->game;
}

static void test_round_trip(void **state)
{
    (void)state;
    game_msg m;
    make_game(&m);
    uint8_t *buf;
    size_t n = tg_wire_encode(&m.env, &buf);
    assert_non_null(buf);
    assert_true(n > 60);
    Tg__Envelope *e = tg_wire_decode(buf, n, TG_WIRE_MAX_DEFAULT);
    assert_non_null(e);
    assert_int_equal(e->version, TG_PROTO_VERSION);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME);
    assert_string_equal(e->game->target, "2,2,2");
    assert_int_equal(e->game->rank, 5);
    assert_true(e->game->solved);
    int64_t want[2] = {5, 12};
    assert_int_equal(tg_array_check(e->game->actions, TG__DTYPE__I8, 2, want, "actions"), 0);
    assert_memory_equal(e->game->actions->data.data, m.act, sizeof m.act);
    int64_t any[1] = {-1};
    assert_int_equal(tg_array_check(e->game->returns, TG__DTYPE__F32, 1, any, "returns"), 0);
    assert_memory_equal(e->game->returns->data.data, m.ret, sizeof m.ret);
    assert_null(e->game->basis); /* absent = canonical */
    tg_wire_free(e);
    free(buf);
}

static void test_malformed(void **state)
{
    (void)state;
    game_msg m;
    make_game(&m);
    uint8_t *buf;
    size_t n = tg_wire_encode(&m.env, &buf);
    /* every truncation is either rejected with a message or decodes to something well-formed */
    for (size_t len = 0; len < n; len++) {
        tg_err_clear();
        Tg__Envelope *e = tg_wire_decode(buf, len, TG_WIRE_MAX_DEFAULT);
        if (e)
            tg_wire_free(e);
        else
            assert_true(tg_errmsg()[0] != 0);
    }
    /* the full message less its last byte cuts the game's submessage: malformed */
    assert_null(tg_wire_decode(buf, n - 1, TG_WIRE_MAX_DEFAULT));
    assert_err_has("malformed");
    /* random bytes */
    uint8_t junk[512];
    uint64_t x = 88172645463325252ull;
    int rejected = 0;
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        Tg__Envelope *e = tg_wire_decode(junk, 1 + (size_t)(x % sizeof junk), TG_WIRE_MAX_DEFAULT);
        if (e)
            tg_wire_free(e);
        else
            rejected++;
    }
    assert_true(rejected > 150);
    /* flipped bytes in a valid message never crash */
    for (size_t i = 0; i < n; i++) {
        uint8_t save = buf[i];
        buf[i] ^= 0xff;
        Tg__Envelope *e = tg_wire_decode(buf, n, TG_WIRE_MAX_DEFAULT);
        tg_wire_free(e);
        buf[i] = save;
    }
    free(buf);
}

static void test_oversize(void **state)
{
    (void)state;
    game_msg m;
    make_game(&m);
    uint8_t *buf;
    size_t n = tg_wire_encode(&m.env, &buf);
    assert_null(tg_wire_decode(buf, n, n - 1));
    assert_err_has("limit");
    Tg__Envelope *e = tg_wire_decode(buf, n, n);
    assert_non_null(e);
    tg_wire_free(e);
    free(buf);
}

static void test_version_and_body(void **state)
{
    (void)state;
    Tg__Heartbeat hb = TG__HEARTBEAT__INIT;
    hb.who = "test";
    Tg__Envelope env = TG__ENVELOPE__INIT;
    env.body_case = TG__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    env.version = TG_PROTO_VERSION + 1; /* packed directly, not through tg_wire_encode */
    size_t n = tg__envelope__get_packed_size(&env);
    uint8_t *buf = malloc(n);
    tg__envelope__pack(&env, buf);
    assert_null(tg_wire_decode(buf, n, TG_WIRE_MAX_DEFAULT));
    assert_err_has("version 2");
    free(buf);

    Tg__Envelope empty = TG__ENVELOPE__INIT;
    n = tg_wire_encode(&empty, &buf);
    assert_null(tg_wire_decode(buf, n, TG_WIRE_MAX_DEFAULT));
    assert_err_has("no body");
    free(buf);
}

static void test_array_checks(void **state)
{
    (void)state;
    float data[24] = {0};
    Tg__Array a;
    int64_t sb[4];
    int64_t shape[3] = {2, 3, 4};
    tg_array_set(&a, TG__DTYPE__F32, 3, shape, sb, data, sizeof data);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, shape, "x"), 0);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, NULL, "x"), 0);
    int64_t partial[3] = {-1, 3, -1};
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, partial, "x"), 0);

    assert_int_equal(tg_array_check(NULL, TG__DTYPE__F32, 3, shape, "tensors"), -1);
    assert_err_has("tensors: missing");
    assert_int_equal(tg_array_check(&a, TG__DTYPE__I32, 3, shape, "tensors"), -1);
    assert_err_has("dtype F32");
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 2, shape, "tensors"), -1);
    assert_err_has("dimensions");
    int64_t other[3] = {2, 3, 5};
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, other, "tensors"), -1);
    assert_err_has("dimension 2 is 4, expected 5");
    a.data.len -= 4; /* data shorter than the shape says */
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, NULL, "tensors"), -1);
    assert_err_has("bytes of data");
    a.data.len += 4;
    /* a shape whose element count overflows 64 bits, or is negative */
    int64_t huge[3] = {INT64_MAX, INT64_MAX, 0x7fff};
    memcpy(sb, huge, sizeof huge);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, NULL, "tensors"), -1);
    int64_t wrap[3] = {(int64_t)1 << 62, 4, 6}; /* 2^62 * 24 * 4 wraps to a small number */
    memcpy(sb, wrap, sizeof wrap);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, NULL, "tensors"), -1);
    int64_t neg[3] = {-2, -3, 4};
    memcpy(sb, neg, sizeof neg);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__F32, 3, NULL, "tensors"), -1);
    assert_err_has("negative");
    /* unknown dtype */
    memcpy(sb, shape, sizeof shape);
    a.dtype = (Tg__DType)99;
    assert_int_equal(tg_array_check(&a, (Tg__DType)99, 3, NULL, "tensors"), -1);
    /* empty arrays are fine */
    int64_t zero[2] = {0, 7};
    tg_array_set(&a, TG__DTYPE__I8, 2, zero, sb, NULL, 0);
    assert_int_equal(tg_array_check(&a, TG__DTYPE__I8, 2, zero, "x"), 0);
    assert_int_equal(tg_dtype_size(TG__DTYPE__BF16), 2);
    assert_int_equal(tg_dtype_size(TG__DTYPE__I64), 8);
}

static void test_zmq_send(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *dealer = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = 5000;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(router, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t epl = sizeof ep;
    assert_int_equal(zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, ep, &epl), 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    game_msg m;
    make_game(&m);
    assert_int_equal(tg_wire_send(dealer, NULL, 0, &m.env), 0);
    /* the router sees [identity, body] */
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    assert_true(zmq_msg_recv(&id, router, 0) > 0);
    assert_true(zmq_msg_more(&id));
    assert_true(zmq_msg_recv(&body, router, 0) > 0);
    Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), TG_WIRE_MAX_DEFAULT);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME);
    tg_wire_free(e);
    /* reply with an error to that identity */
    assert_int_equal(tg_wire_send_error(router, zmq_msg_data(&id), zmq_msg_size(&id), 400, "bad game"), 0);
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    assert_true(zmq_msg_recv(&reply, dealer, 0) > 0);
    e = tg_wire_decode(zmq_msg_data(&reply), zmq_msg_size(&reply), TG_WIRE_MAX_DEFAULT);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, 400);
    assert_string_equal(e->error->message, "bad game");
    tg_wire_free(e);
    zmq_msg_close(&reply);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    zmq_close(dealer);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

/* A client refused by a CURVE server (here: a plain client) must not block forever in a send:
 * tg_sock_connect's sockets give up after TG_SOCK_SEND_TIMEOUT_MS. */
static void test_refused_client_send(void **state)
{
    (void)state;
    void *srv = zmq_socket(tg_sock_ctx(), ZMQ_ROUTER);
    char pub[41], sec[41];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    int one = 1, linger = 0;
    zmq_setsockopt(srv, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_setsockopt(srv, ZMQ_CURVE_SERVER, &one, sizeof one), 0);
    assert_int_equal(zmq_setsockopt(srv, ZMQ_CURVE_SECRETKEY, sec, 40), 0);
    assert_int_equal(zmq_bind(srv, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t epl = sizeof ep;
    assert_int_equal(zmq_getsockopt(srv, ZMQ_LAST_ENDPOINT, ep, &epl), 0);
    void *cl = tg_sock_connect(NULL, ZMQ_DEALER, ep);
    assert_non_null(cl);
    int to = 0;
    size_t tl = sizeof to;
    assert_int_equal(zmq_getsockopt(cl, ZMQ_SNDTIMEO, &to, &tl), 0);
    assert_int_equal(to, TG_SOCK_SEND_TIMEOUT_MS);
    usleep(300 * 1000); /* the handshake fails meanwhile */
    game_msg m;
    for (int i = 0; i < 3; i++) { /* each returns: queued, or refused after the timeout */
        make_game(&m);
        int rc = tg_wire_send(cl, NULL, 0, &m.env);
        assert_true(rc == 0 || rc == -1);
    }
    zmq_pollitem_t it = {srv, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&it, 1, 200), 0); /* nothing got through */
    tg_sock_close(cl);
    zmq_close(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversize),         cmocka_unit_test(test_version_and_body),
        cmocka_unit_test(test_array_checks),     cmocka_unit_test(test_zmq_send),
        cmocka_unit_test(test_refused_client_send),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
