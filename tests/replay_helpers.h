/* Helpers shared by the replay tests: configs, Game/Discovery messages, a DEALER client, an
 * in-process server thread. */
#ifndef TG_REPLAY_HELPERS_H
#define TG_REPLAY_HELPERS_H

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <zmq.h>

#include "common/action.h"
#include "common/config.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/sock.h"
#include "common/wire.h"
#include "replay/server.h"

/* Defaults for a small, fast run in dir, then the NULL-terminated "key=value" overrides. */
static inline void rt_config(tg_config *c, const char *dir, ...)
{
    tg_config_defaults(c);
    char kv[4200];
    snprintf(kv, sizeof kv, "run.dir=%s", dir);
    const char *base[] = {kv, "replay.endpoint=tcp://127.0.0.1:*", "game.targets=2,2,2", "game.coeffs=-1..1",
                          "game.r_limit=8", "game.history=3", "game.n_steps=4", "replay.demos_size=2000",
                          "replay.workers=2", "replay.prefetch=2", "replay.stats_s=0.5", "run.log_level=warn", NULL};
    for (int i = 0; base[i]; i++)
        if (tg_config_set(c, base[i]))
            fail_msg("config %s: %s", base[i], tg_errmsg());
    va_list ap;
    va_start(ap, dir);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (tg_config_set(c, s))
            fail_msg("config %s: %s", s, tg_errmsg());
    va_end(ap);
    if (tg_config_finish(c))
        fail_msg("config: %s", tg_errmsg());
}

/* The naive algorithm for T(2,2,2) as a solved game of 8 moves (in the canonical basis). */
static inline void rt_naive_actions(const tg_config *c, int8_t *acts)
{
    int S = c->game.S, n = 2, m = 2, p = 2, r = 0;
    memset(acts, 0, (size_t)8 * 3 * S);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++)
            for (int k = 0; k < p; k++, r++) {
                int8_t *a = acts + (size_t)r * 3 * S;
                a[i * m + j] = 1;
                a[S + j * p + k] = 1;
                a[2 * S + k * n + i] = 1;
            }
}

/* A random action for T(2,2,2) (active size 4 per mode), no mode all zero. */
static inline void rt_rand_action(int S, tg_rng *rng, int8_t *a)
{
    memset(a, 0, (size_t)3 * S);
    for (int m = 0; m < 3; m++) {
        int nz = 0;
        for (int i = 0; i < 4; i++)
            nz |= (a[m * S + i] = (int8_t)((int)tg_rng_below(rng, 3) - 1)) != 0;
        if (!nz)
            a[m * S] = 1;
    }
}

/* Packs a Game envelope; solved = the naive 8 moves, else `moves` random actions. With K > 0
 * every move has K children: the played action with probability probs0, the rest random. */
static inline size_t rt_game(const tg_config *c, int solved, int moves, int K, tg_rng *rng, uint8_t **out)
{
    int S = c->game.S, A = 3 * S;
    if (solved)
        moves = 8;
    int8_t *acts = calloc((size_t)moves * A, 1), *pa = calloc((size_t)(moves * (K ? K : 1)) * A, 1);
    float *ret = calloc((size_t)moves, sizeof(float)), *pp = calloc((size_t)moves * (K ? K : 1), sizeof(float));
    if (solved)
        rt_naive_actions(c, acts);
    else
        for (int j = 0; j < moves; j++)
            rt_rand_action(S, rng, acts + (size_t)j * A);
    for (int j = 0; j < moves; j++) {
        ret[j] = (float)-(moves - j);
        for (int k = 0; k < K; k++) {
            int8_t *ch = pa + ((size_t)j * K + k) * A;
            if (k == 0)
                memcpy(ch, acts + (size_t)j * A, A);
            else
                rt_rand_action(S, rng, ch);
            pp[(size_t)j * K + k] = k == 0 ? 0.5f : 0.5f / (float)(K - 1);
        }
    }
    Tg__Game g = TG__GAME__INIT;
    Tg__Array aa, ar, apa, app;
    int64_t sa[2] = {moves, A}, sr[1] = {moves}, spa[3] = {moves, K, A}, spp[2] = {moves, K}, b1[2], b2[1], b3[3], b4[2];
    g.target = "2,2,2";
    g.arithmetic = "integer";
    g.s = (uint32_t)S;
    tg_array_set(&aa, TG__DTYPE__I8, 2, sa, b1, acts, (size_t)moves * A);
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, b2, ret, (size_t)moves * 4);
    g.actions = &aa;
    g.returns = &ar;
    if (K > 0) {
        tg_array_set(&apa, TG__DTYPE__I8, 3, spa, b3, pa, (size_t)moves * K * A);
        tg_array_set(&app, TG__DTYPE__F32, 2, spp, b4, pp, (size_t)moves * K * 4);
        g.policy_actions = &apa;
        g.policy_probs = &app;
    }
    g.actor = "test";
    g.model_version = 3;
    g.solved = solved;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME;
    e.game = &g;
    size_t n = tg_wire_encode(&e, out);
    free(acts), free(pa), free(ret), free(pp);
    return n;
}

/* A Discovery of the naive 2x2 algorithm (rank 8); with corrupt != 0 one coefficient is wrong. */
static inline size_t rt_discovery(int corrupt, uint8_t **out)
{
    int64_t u[8 * 4] = {0}, v[8 * 4] = {0}, w[8 * 4] = {0};
    int r = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 2; k++, r++) {
                u[r * 4 + i * 2 + j] = 1;
                v[r * 4 + j * 2 + k] = 1;
                w[r * 4 + k * 2 + i] = 1;
            }
    if (corrupt)
        w[5] += 1;
    Tg__Discovery d = TG__DISCOVERY__INIT;
    Tg__Array au, av, aw;
    int64_t sh[2] = {8, 4}, b1[2], b2[2], b3[2];
    tg_array_set(&au, TG__DTYPE__I64, 2, sh, b1, u, sizeof u);
    tg_array_set(&av, TG__DTYPE__I64, 2, sh, b2, v, sizeof v);
    tg_array_set(&aw, TG__DTYPE__I64, 2, sh, b3, w, sizeof w);
    d.target = "2,2,2";
    d.arithmetic = "integer";
    d.rank = 8;
    d.u = &au;
    d.v = &av;
    d.w = &aw;
    d.actor = "test";
    d.model_version = 5;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_DISCOVERY;
    e.discovery = &d;
    return tg_wire_encode(&e, out);
}

static inline size_t rt_simple(int body_case, uint32_t batch, uint8_t **out)
{
    Tg__Envelope e = TG__ENVELOPE__INIT;
    Tg__SampleRequest sr = TG__SAMPLE_REQUEST__INIT;
    Tg__StatsRequest st = TG__STATS_REQUEST__INIT;
    Tg__EvalRequest ev = TG__EVAL_REQUEST__INIT;
    e.body_case = (Tg__Envelope__BodyCase)body_case;
    if (body_case == TG__ENVELOPE__BODY_SAMPLE_REQUEST) {
        sr.batch = batch;
        e.sample_request = &sr;
    } else if (body_case == TG__ENVELOPE__BODY_STATS_REQUEST) {
        e.stats_request = &st;
    } else {
        e.eval_request = &ev;
    }
    return tg_wire_encode(&e, out);
}

static inline void *rt_client(const char *endpoint)
{
    void *s = zmq_socket(tg_sock_ctx(), ZMQ_DEALER);
    int t = 20000, z = 0;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &t, sizeof t);
    zmq_setsockopt(s, ZMQ_LINGER, &z, sizeof z);
    assert_int_equal(zmq_connect(s, endpoint), 0);
    return s;
}

static inline void rt_send(void *sock, const void *data, size_t len)
{
    assert_true(zmq_send(sock, data, len, 0) == (int)len);
}

static inline void rt_send_free(void *sock, uint8_t *data, size_t len)
{
    rt_send(sock, data, len);
    free(data);
}

/* Next reply (fails the test after the socket's receive timeout). */
static inline Tg__Envelope *rt_recv(void *sock)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    int rc = zmq_msg_recv(&m, sock, 0);
    if (rc < 0)
        fail_msg("no reply: %s", zmq_strerror(errno));
    Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), (size_t)1 << 31);
    zmq_msg_close(&m);
    if (!e)
        fail_msg("bad reply: %s", tg_errmsg());
    return e;
}

/* Asks for Stats and returns the value of key (fails if missing). */
static inline double rt_stat(void *sock, const char *key)
{
    uint8_t *b;
    size_t n = rt_simple(TG__ENVELOPE__BODY_STATS_REQUEST, 0, &b);
    rt_send_free(sock, b, n);
    Tg__Envelope *e = rt_recv(sock);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_STATS);
    double v = -12345;
    for (size_t i = 0; i < e->stats->n_keys; i++)
        if (!strcmp(e->stats->keys[i], key))
            v = e->stats->values[i];
    tg_wire_free(e);
    if (v == -12345)
        fail_msg("no stat %s", key);
    return v;
}

/* In-process server thread. */
typedef struct rt_server {
    replay_server *s;
    volatile sig_atomic_t stop;
    pthread_t th;
    int rc;
} rt_server;

static inline void *rt_server_main(void *a)
{
    rt_server *x = a;
    x->rc = replay_server_run(x->s, &x->stop);
    return NULL;
}

static inline rt_server *rt_server_start(const tg_config *c)
{
    rt_server *x = calloc(1, sizeof *x);
    replay_server_opts o = {0};
    x->s = replay_server_new(c, &o, NULL);
    if (!x->s)
        fail_msg("server: %s", tg_errmsg());
    pthread_create(&x->th, NULL, rt_server_main, x);
    return x;
}

static inline void rt_server_stop(rt_server *x)
{
    x->stop = 1;
    pthread_join(x->th, NULL);
    assert_int_equal(x->rc, 0);
    replay_server_free(x->s);
    free(x);
}

/* Waits until the demos table holds demos_size positions. */
static inline void rt_wait_demos(void *sock, double want)
{
    for (int i = 0; i < 400 && rt_stat(sock, "demos.positions") < want; i++)
        usleep(25000);
    assert_true(rt_stat(sock, "demos.positions") >= want);
}

#endif
