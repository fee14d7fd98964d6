/* tg-replay over real ZeroMQ sockets (127.0.0.1, ephemeral port), server in a thread of this
 * process: error replies and counters, acknowledged inserts, batch composition and contents, the
 * rate limiter, discoveries, restart from the checkpoint. */
#include <hdf5.h>

#include "tests/test_util.h"

#include "common/game.h"
#include "replay/results.h"
#include "tests/replay_helpers.h"

static void expect_error(void *cl, int code)
{
    Tg__Envelope *e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, code);
    assert_true(strlen(e->error->message) > 0);
    tg_wire_free(e);
}

static void test_bad_messages(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.max_message=4096", NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));

    rt_send(cl, "definitely not protobuf \xff\xff\xff", 27); /* malformed */
    expect_error(cl, REPLAY_E_MALFORMED);
    uint8_t big[10000];
    memset(big, 7, sizeof big); /* oversized */
    rt_send(cl, big, sizeof big);
    expect_error(cl, REPLAY_E_OVERSIZED);
    uint8_t *b;
    size_t n = rt_simple(TG__ENVELOPE__BODY_EVAL_REQUEST, 0, &b); /* a type replay does not serve */
    rt_send_free(cl, b, n);
    expect_error(cl, REPLAY_E_UNSUPPORTED);
    /* version 1 and a body field this program does not know (field 99, varint 1) */
    const uint8_t unknown[] = {0x08, 0x01, 0x98, 0x06, 0x01};
    rt_send(cl, unknown, sizeof unknown);
    expect_error(cl, REPLAY_E_MALFORMED);
    /* wrong protocol version */
    const uint8_t v9[] = {0x08, 0x09};
    rt_send(cl, v9, sizeof v9);
    expect_error(cl, REPLAY_E_MALFORMED);
    /* two body frames */
    zmq_send(cl, "a", 1, ZMQ_SNDMORE);
    zmq_send(cl, "b", 1, 0);
    expect_error(cl, REPLAY_E_MALFORMED);
    /* a game with a coefficient outside F */
    tg_rng rng;
    tg_rng_seed(&rng, 1, 1);
    n = rt_game(&c, 0, 3, 0, &rng, &b);
    Tg__Envelope *ge = tg_wire_decode(b, n, 1 << 20);
    free(b);
    ((int8_t *)ge->game->actions->data.data)[1] = 2;
    n = tg_wire_encode(ge, &b);
    tg_wire_free(ge);
    rt_send_free(cl, b, n);
    expect_error(cl, REPLAY_E_INVALID);
    /* a game with a wrong shape */
    n = rt_game(&c, 0, 3, 0, &rng, &b);
    ge = tg_wire_decode(b, n, 1 << 20);
    free(b);
    ge->game->returns->shape[0] = 2;
    n = tg_wire_encode(ge, &b);
    tg_wire_free(ge);
    rt_send_free(cl, b, n);
    expect_error(cl, REPLAY_E_INVALID);
    /* a sample request that is too large */
    n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 1u << 30, &b);
    rt_send_free(cl, b, n);
    expect_error(cl, REPLAY_E_INVALID);

    assert_int_equal(rt_stat(cl, "errors.malformed"), 4);
    assert_int_equal(rt_stat(cl, "errors.oversized"), 1);
    assert_int_equal(rt_stat(cl, "errors.unsupported"), 1);
    assert_int_equal(rt_stat(cl, "errors.invalid"), 3);
    assert_int_equal(rt_stat(cl, "played.games"), 0);
    /* still serving */
    n = rt_game(&c, 0, 3, 0, &rng, &b);
    rt_send_free(cl, b, n);
    Tg__Envelope *e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
    tg_wire_free(e);
    zmq_close(cl);
    rt_server_stop(srv);
}

static void test_insert_ack_restart(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.flush_count=4", "replay.flush_ms=50", NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    tg_rng rng;
    tg_rng_seed(&rng, 2, 2);
    uint8_t *b;
    int N = 10, moves = 0;
    for (int i = 0; i < N; i++) {
        size_t n = rt_game(&c, i % 3 == 0, 5, 3, &rng, &b);
        Tg__Envelope *ge = tg_wire_decode(b, n, 1 << 20);
        free(b);
        ge->game->seq = 100 + (uint64_t)i;
        n = tg_wire_encode(ge, &b);
        tg_wire_free(ge);
        moves += i % 3 == 0 ? 8 : 5;
        rt_send_free(cl, b, n);
    }
    uint64_t last = 0;
    for (int i = 0; i < N; i++) { /* 10 = 4 + 4 by count, the last 2 after flush_ms */
        Tg__Envelope *e = rt_recv(cl);
        assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
        assert_true(e->game_ack->durable);
        assert_true(e->game_ack->game_id > last);
        assert_int_equal(e->game_ack->seq, 100 + (uint64_t)i); /* the sender's seq is echoed */
        last = e->game_ack->game_id;
        tg_wire_free(e);
    }
    assert_int_equal(rt_stat(cl, "played.games"), N);
    assert_int_equal(rt_stat(cl, "played.positions"), moves);
    assert_int_equal(rt_stat(cl, "best.games"), 4); /* the solved ones, rank 8 = best */
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 8);
    zmq_close(cl);
    rt_server_stop(srv); /* final checkpoint */

    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "played.games"), N);
    assert_int_equal(rt_stat(cl, "played.positions"), moves);
    assert_int_equal(rt_stat(cl, "best.games"), 4);
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 8);
    assert_true(rt_stat(cl, "demos.positions") >= 2000);
    size_t n = rt_game(&c, 0, 2, 0, &rng, &b);
    rt_send_free(cl, b, n);
    Tg__Envelope *e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
    assert_true(e->game_ack->game_id > last); /* ids are never reused */
    tg_wire_free(e);
    zmq_close(cl);
    rt_server_stop(srv);
}

static void test_batches(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.samples_per_insert=0", "replay.min_size=1", "replay.frac_demos=0.5",
              "replay.frac_played=0.3", "replay.frac_best=0.2", NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    rt_wait_demos(cl, 2000);
    tg_rng rng;
    tg_rng_seed(&rng, 3, 3);
    uint8_t *b;
    for (int i = 0; i < 6; i++) {
        size_t n = rt_game(&c, i < 2, 6, 4, &rng, &b);
        rt_send_free(cl, b, n);
        tg_wire_free(rt_recv(cl));
    }
    int S = c.game.S, T = c.game.history + 1, B = 100;
    long tot[3] = {0, 0, 0};
    for (int k = 0; k < 5; k++) {
        size_t n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, (uint32_t)B, &b);
        rt_send_free(cl, b, n);
        Tg__Envelope *e = rt_recv(cl);
        assert_int_equal(e->body_case, TG__ENVELOPE__BODY_BATCH);
        Tg__Batch *bt = e->batch;
        if (bt->from_played == 0) { /* built before the games arrived: prefetched demos-only batch */
            tg_wire_free(e);
            continue;
        }
        int64_t sh_t[5] = {B, T, S, S, S}, sh_s[2] = {B, c.game.n_scalars}, sh_k[2] = {B, c.game.n_steps}, sh_r[1] = {B};
        assert_int_equal(tg_array_check(bt->tensors, TG__DTYPE__F32, 5, sh_t, "tensors"), 0);
        assert_int_equal(tg_array_check(bt->scalars, TG__DTYPE__F32, 2, sh_s, "scalars"), 0);
        assert_int_equal(tg_array_check(bt->tokens, TG__DTYPE__I32, 2, sh_k, "tokens"), 0);
        assert_int_equal(tg_array_check(bt->returns, TG__DTYPE__F32, 1, sh_r, "returns"), 0);
        /* exact split by the configured fractions */
        assert_int_equal(bt->from_demos, 50);
        assert_int_equal(bt->from_played, 30);
        assert_int_equal(bt->from_best, 20);
        tot[0] += bt->from_demos, tot[1] += bt->from_played, tot[2] += bt->from_best;
        for (int i = 0; i < B; i++) {
            float sc, r;
            memcpy(&sc, bt->scalars->data.data + (size_t)i * c.game.n_scalars * 4, 4);
            memcpy(&r, bt->returns->data.data + (size_t)i * 4, 4);
            assert_true(sc >= 0 && sc < 1);
            assert_true(r <= -1);
            for (int t = 0; t < c.game.n_steps; t++) {
                int32_t tk;
                memcpy(&tk, bt->tokens->data.data + ((size_t)i * c.game.n_steps + t) * 4, 4);
                assert_true(tk >= 0 && tk < c.game.n_logits);
            }
            /* the residual is non-zero (every sampled position is before the end) and integral */
            float any = 0;
            for (int e2 = 0; e2 < S * S * S; e2++) {
                float x;
                memcpy(&x, bt->tensors->data.data + ((size_t)i * T * S * S * S + e2) * 4, 4);
                assert_true(x == (float)(int)x);
                any += x * x;
            }
            assert_true(any > 0);
        }
        tg_wire_free(e);
    }
    assert_true(tot[0] > 0);
    assert_true(rt_stat(cl, "batches") >= 5);
    zmq_close(cl);
    rt_server_stop(srv);
}

static void test_rate_limiter(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    /* one sampled position per inserted one, after 10 positions; batches all from played once open */
    rt_config(&c, dir, "replay.samples_per_insert=1", "replay.min_size=10", "replay.frac_demos=0",
              "replay.frac_played=1", "replay.frac_best=0", "replay.flush_count=1", NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    rt_wait_demos(cl, 2000);
    uint8_t *b;
    /* only demos: never blocked, batches come from demos */
    size_t n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 4, &b);
    rt_send_free(cl, b, n);
    Tg__Envelope *e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_BATCH);
    assert_int_equal(e->batch->from_demos, 4);
    tg_wire_free(e);
    /* 12 positions: budget 1 * (12 - 10) = 2 < 4 positions of a batch: blocked */
    tg_rng rng;
    tg_rng_seed(&rng, 4, 4);
    for (int i = 0; i < 2; i++) {
        n = rt_game(&c, 0, 6, 0, &rng, &b);
        rt_send_free(cl, b, n);
        tg_wire_free(rt_recv(cl));
    }
    n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 4, &b);
    rt_send_free(cl, b, n);
    void *cs = rt_client(replay_server_endpoint(srv->s)); /* stats on their own socket */
    int got_blocked = 0;
    for (int i = 0; i < 200 && !got_blocked; i++) {
        got_blocked = rt_stat(cs, "limiter.blocked") == 1 && rt_stat(cs, "requests.waiting") == 1;
        if (!got_blocked)
            usleep(20000);
    }
    assert_true(got_blocked);
    /* the blocked request gets no reply yet */
    zmq_pollitem_t pi = {cl, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&pi, 1, 200), 0);
    assert_int_equal(rt_stat(cs, "limiter.budget"), 2);
    /* 6 more positions: budget 8, the waiting request is served (the stats reply may come first) */
    n = rt_game(&c, 0, 6, 0, &rng, &b);
    rt_send_free(cl, b, n);
    int acked = 0, batch = 0;
    while (!acked || !batch) {
        e = rt_recv(cl);
        if (e->body_case == TG__ENVELOPE__BODY_GAME_ACK)
            acked = 1;
        else if (e->body_case == TG__ENVELOPE__BODY_BATCH) {
            assert_int_equal(e->batch->from_played, 4);
            batch = 1;
        } else
            fail_msg("unexpected reply %d", e->body_case);
        tg_wire_free(e);
    }
    assert_int_equal(rt_stat(cs, "limiter.samples"), 4);
    assert_int_equal(rt_stat(cs, "limiter.budget"), 4);
    assert_int_equal(rt_stat(cs, "limiter.blocked"), 0);
    zmq_close(cs);
    zmq_close(cl);
    rt_server_stop(srv);

    /* after a restart the limiter goes on where it stood (18 inserts, 4 samples): one batch of 4,
     * then blocked until new games come, not 1 x every loaded position at once */
    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "limiter.inserts"), 18);
    assert_int_equal(rt_stat(cl, "limiter.samples"), 4);
    assert_int_equal(rt_stat(cl, "limiter.budget"), 4);
    n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 4, &b);
    rt_send_free(cl, b, n);
    e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_BATCH);
    assert_int_equal(e->batch->from_played, 4);
    tg_wire_free(e);
    assert_int_equal(rt_stat(cl, "limiter.budget"), 0);
    n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 4, &b);
    rt_send_free(cl, b, n);
    pi.socket = cl;
    assert_int_equal(zmq_poll(&pi, 1, 200), 0); /* blocked */
    zmq_close(cl);
    rt_server_stop(srv);

    /* a replay.h5 written without the counters (an earlier version): its played positions count
     * as unsampled inserts, so sampling goes on at once */
    char path[128];
    snprintf(path, sizeof path, "%s/replay.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Adelete(f, "limiter_inserts") >= 0 && H5Adelete(f, "limiter_samples") >= 0);
    H5Fclose(f);
    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "limiter.inserts"), 18);
    assert_int_equal(rt_stat(cl, "limiter.budget"), 8);
    zmq_close(cl);
    rt_server_stop(srv);
}

static void test_discoveries(void **st)
{
    (void)st;
    char dir[64], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    uint8_t *b;
    size_t n = rt_discovery(1, &b);
    rt_send_free(cl, b, n);
    expect_error(cl, REPLAY_E_INVALID);
    for (int i = 0; i < 2; i++) { /* the second is a resend: recorded once */
        n = rt_discovery(0, &b);
        rt_send_free(cl, b, n);
        Tg__Envelope *e = rt_recv(cl);
        assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
        assert_int_equal(e->game_ack->game_id, 1);
        tg_wire_free(e);
    }
    assert_int_equal(rt_stat(cl, "discoveries"), 2);
    assert_int_equal(rt_stat(cl, "results"), 1);
    assert_int_equal(rt_stat(cl, "discoveries.rejected"), 1);
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 8);
    zmq_close(cl);
    rt_server_stop(srv);
    snprintf(path, sizeof path, "%s/results.h5", dir);
    replay_results *r = replay_results_open(path, 0);
    assert_non_null(r);
    assert_int_equal(replay_results_count(r), 1);
    tg_dims d = {2, 2, 2};
    assert_int_equal(replay_results_best(r, d, 0), 8);
    replay_results_free(r);
    /* a new server knows the best rank from results.h5, and since its replay file holds no best
     * game, it makes the recorded rank-8 factorization one (8 positions) */
    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 8);
    assert_int_equal(rt_stat(cl, "results"), 1);
    assert_int_equal(rt_stat(cl, "best.games"), 1);
    assert_int_equal(rt_stat(cl, "best.positions"), 8);
    zmq_close(cl);
    rt_server_stop(srv);
    /* a further restart: still one game (checkpointed with the rest, or rebuilt), never two */
    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "best.games"), 1);
    zmq_close(cl);
    rt_server_stop(srv);
    /* with the replay file gone too (a run carried without it): the same, and batches draw
     * from that game (valid tokens, non-zero residuals) */
    snprintf(path, sizeof path, "%s/replay.h5", dir);
    assert_int_equal(unlink(path), 0);
    tg_config c1;
    rt_config(&c1, dir, "replay.samples_per_insert=0", "replay.min_size=0", "replay.frac_demos=0.5",
              "replay.frac_played=0", "replay.frac_best=0.5", NULL);
    srv = rt_server_start(&c1);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "best.games"), 1);
    assert_int_equal(rt_stat(cl, "played.games"), 0);
    rt_wait_demos(cl, 2000);
    tg_rng rng; /* best positions are sampled once played games are there */
    tg_rng_seed(&rng, 5, 5);
    n = rt_game(&c1, 0, 3, 0, &rng, &b);
    rt_send_free(cl, b, n);
    tg_wire_free(rt_recv(cl));
    int from_best = 0;
    for (int k = 0; k < 8; k++) { /* the first may have been built before the game came */
        n = rt_simple(TG__ENVELOPE__BODY_SAMPLE_REQUEST, 16, &b);
        rt_send_free(cl, b, n);
        Tg__Envelope *e = rt_recv(cl);
        assert_int_equal(e->body_case, TG__ENVELOPE__BODY_BATCH);
        from_best += (int)e->batch->from_best;
        for (int i = 0; i < 16 * c1.game.n_steps; i++) {
            int32_t tk;
            memcpy(&tk, e->batch->tokens->data.data + (size_t)i * 4, 4);
            assert_true(tk >= 0 && tk < c1.game.n_logits);
        }
        tg_wire_free(e);
    }
    assert_true(from_best > 0);
    zmq_close(cl);
    rt_server_stop(srv);
    /* best-game retraining off: nothing added */
    tg_config c2;
    rt_config(&c2, dir, "replay.best_games=false", NULL);
    assert_int_equal(unlink(path), 0);
    srv = rt_server_start(&c2);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_int_equal(rt_stat(cl, "best.games"), 0);
    zmq_close(cl);
    rt_server_stop(srv);
}

/* A solved Game of a factorization's terms (2x2x2 in the run's S). */
static size_t fact_game(const tg_config *c, const tg_fact *f, uint8_t **out)
{
    int S = c->game.S, A = 3 * S, R = tg_fact_rank(f);
    int8_t *acts = calloc((size_t)R * A, 1);
    float *ret = calloc((size_t)R, sizeof(float));
    for (int r = 0; r < R; r++) {
        assert_int_equal(tg_fact_action(f, r, S, acts + (size_t)r * A), 0);
        ret[r] = (float)-(R - r);
    }
    Tg__Game g = TG__GAME__INIT;
    Tg__Array aa, ar;
    int64_t sa[2] = {R, A}, sr[1] = {R}, b1[2], b2[1];
    tg_array_set(&aa, TG__DTYPE__I8, 2, sa, b1, acts, (size_t)R * A);
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, b2, ret, (size_t)R * 4);
    g.target = "2,2,2";
    g.arithmetic = "integer";
    g.s = (uint32_t)S;
    g.actions = &aa;
    g.returns = &ar;
    g.actor = "test";
    g.solved = 1;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME;
    e.game = &g;
    size_t n = tg_wire_encode(&e, out);
    free(acts);
    free(ret);
    return n;
}

/* Best-game retraining works on the best rank's games: three naive (rank 8) games fill the best
 * table, Strassen's (rank 7) then replaces them; a later rank-8 game stays out. */
static void test_best_table_follows_best_rank(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    tg_rng rng;
    tg_rng_seed(&rng, 7, 7);
    uint8_t *b;
    for (int i = 0; i < 3; i++) {
        size_t n = rt_game(&c, 1, 8, 0, &rng, &b);
        rt_send_free(cl, b, n);
        tg_wire_free(rt_recv(cl));
    }
    assert_int_equal(rt_stat(cl, "best.games"), 3);
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 8);
    tg_fact *sf = tg_fact_strassen();
    size_t n = fact_game(&c, sf, &b);
    tg_fact_free(sf);
    rt_send_free(cl, b, n);
    Tg__Envelope *e = rt_recv(cl);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
    tg_wire_free(e);
    assert_int_equal(rt_stat(cl, "best_rank.2,2,2"), 7);
    assert_int_equal(rt_stat(cl, "best.games"), 1);
    assert_int_equal(rt_stat(cl, "best.positions"), 7);
    assert_int_equal(rt_stat(cl, "best.evicted_positions"), 24);
    n = rt_game(&c, 1, 8, 0, &rng, &b);
    rt_send_free(cl, b, n);
    tg_wire_free(rt_recv(cl));
    assert_int_equal(rt_stat(cl, "best.games"), 1);
    assert_int_equal(rt_stat(cl, "played.games"), 5);
    zmq_close(cl);
    rt_server_stop(srv);
}

/* Random bytes and randomly mutated Game messages: every one gets exactly one reply (an Error, or
 * whatever the mutated message validly asks for) and the server keeps serving. */
static void test_fuzz(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.flush_count=1", "replay.max_message=65536", NULL);
    rt_server *srv = rt_server_start(&c);
    void *cl = rt_client(replay_server_endpoint(srv->s));
    rt_wait_demos(cl, 2000);
    tg_rng rng;
    tg_rng_seed(&rng, 6, 6);
    int sent = 0;
    for (int i = 0; i < 300; i++) {
        uint8_t *b;
        size_t n;
        if (i % 3 == 0) {
            n = 1 + tg_rng_below(&rng, 300);
            b = malloc(n);
            for (size_t k = 0; k < n; k++)
                b[k] = (uint8_t)tg_rng_below(&rng, 256);
            if (n > 2) { /* often a valid version prefix */
                b[0] = 0x08;
                b[1] = 0x01;
            }
        } else {
            n = rt_game(&c, i % 5 == 0, 1 + (int)tg_rng_below(&rng, 8), 3, &rng, &b);
            int flips = 1 + (int)tg_rng_below(&rng, 4);
            for (int k = 0; k < flips; k++)
                b[tg_rng_below(&rng, (uint32_t)n)] ^= (uint8_t)(1u << tg_rng_below(&rng, 8));
        }
        rt_send_free(cl, b, n);
        sent++;
    }
    for (int i = 0; i < sent; i++)
        tg_wire_free(rt_recv(cl));
    zmq_pollitem_t pi = {cl, 0, ZMQ_POLLIN, 0};
    assert_int_equal(zmq_poll(&pi, 1, 300), 0); /* exactly one reply each */
    double errors = rt_stat(cl, "errors.malformed") + rt_stat(cl, "errors.invalid") +
                    rt_stat(cl, "errors.unsupported") + rt_stat(cl, "errors.oversized");
    assert_true(errors >= 100);
    assert_int_equal(rt_stat(cl, "errors.internal"), 0);
    zmq_close(cl);
    rt_server_stop(srv);
    /* what was accepted reloads */
    srv = rt_server_start(&c);
    cl = rt_client(replay_server_endpoint(srv->s));
    assert_true(rt_stat(cl, "played.games") >= 0);
    zmq_close(cl);
    rt_server_stop(srv);
}

int main(void)
{
    tg_log_set_level(TG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_messages), cmocka_unit_test(test_insert_ack_restart),
        cmocka_unit_test(test_batches),      cmocka_unit_test(test_rate_limiter),
        cmocka_unit_test(test_discoveries), cmocka_unit_test(test_best_table_follows_best_rank),  cmocka_unit_test(test_fuzz),
    };
    int rc = tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
    fflush(stdout);
    if (rc) /* a failed test may leave a server thread and sockets behind: do not hang in exit */
        _exit(rc);
    return 0;
}
