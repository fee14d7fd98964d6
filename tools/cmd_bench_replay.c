/* `tg bench replay`: the replay server's throughput over real sockets, in this process (server
 * thread + clients on 127.0.0.1): acknowledged inserts/s of played games, then training batches/s
 * at paper size (2048 positions, T(3,3,3): S = 9, T = h + 1 = 8) with the learner's pattern of
 * several requests in flight, and the single-thread time to build one batch. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/sock.h"
#include "common/wire.h"
#include "replay/demos.h"
#include "replay/sampler.h"
#include "replay/server.h"

int tg_bench_replay(int argc, char **argv); /* declared in tools/cmds.h */

static void usage(FILE *o)
{
    fprintf(o, "usage: tg bench replay [--demos N] [--batch B] [--seconds S] [--workers W] [--inflight K]\n"
               "                       [--children C] [--flush-count N] [key=value ...]\n"
               "  Starts a replay server in this process on T(3,3,3) (S = 9, h = 7: T = 8, F = -2..2)\n"
               "  with N synthetic demonstration positions (default 1000000), then measures for S seconds\n"
               "  each (default 5): acknowledged game inserts/s (games of 8-12 moves with C = 16 sampled\n"
               "  children per move, acks after flush-count = 64 games or 10 ms) and batches/s of B = 2048\n"
               "  positions with K = 4 requests in flight and W sampler workers (default: cores).\n");
}

typedef struct srv_arg {
    replay_server *s;
    volatile sig_atomic_t stop;
} srv_arg;

static void *srv_main(void *a)
{
    srv_arg *x = a;
    if (replay_server_run(x->s, &x->stop))
        fprintf(stderr, "tg bench replay: server: %s\n", tg_errmsg());
    return NULL;
}

static size_t make_game(const tg_config *c, tg_rng *rng, int K, uint8_t **out)
{
    int S = c->game.S, A = 3 * S, moves = 8 + (int)tg_rng_below(rng, 5);
    int8_t *acts = calloc((size_t)moves * A, 1), *pa = calloc((size_t)moves * K * A, 1);
    float *ret = malloc((size_t)moves * 4), *pp = malloc((size_t)moves * K * 4);
    int32_t *init = calloc((size_t)S * S * S, 4);
    tg_matmul_tensor(c->game.dims[0], S, init);
    int8_t *all[2] = {acts, pa};
    int cnt[2] = {moves, moves * K};
    for (int w = 0; w < 2; w++)
        for (int j = 0; j < cnt[w]; j++)
            for (int m = 0; m < 3; m++) {
                int8_t *a = all[w] + (size_t)j * A + m * S;
                for (int i = 0; i < 9; i++)
                    a[i] = (int8_t)((int)tg_rng_below(rng, 5) - 2);
                a[0] = a[0] ? a[0] : 1;
            }
    for (int j = 0; j < moves; j++) {
        ret[j] = (float)-(moves - j) - 3;
        for (int k = 0; k < K; k++)
            pp[j * K + k] = 1.0f / (float)K;
    }
    Tg__Game g = TG__GAME__INIT;
    Tg__Array aa, ar, apa, app, ai;
    int64_t sa[2] = {moves, A}, sr[1] = {moves}, spa[3] = {moves, K, A}, spp[2] = {moves, K}, si[3] = {S, S, S};
    int64_t b1[2], b2[1], b3[3], b4[2], b5[3];
    tg_array_set(&aa, TG__DTYPE__I8, 2, sa, b1, acts, (size_t)moves * A);
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, b2, ret, (size_t)moves * 4);
    tg_array_set(&apa, TG__DTYPE__I8, 3, spa, b3, pa, (size_t)moves * K * A);
    tg_array_set(&app, TG__DTYPE__F32, 2, spp, b4, pp, (size_t)moves * K * 4);
    tg_array_set(&ai, TG__DTYPE__I32, 3, si, b5, init, (size_t)S * S * S * 4);
    g.target = (char *)c->game.targets[0];
    g.arithmetic = "integer";
    g.s = (uint32_t)S;
    g.actions = &aa;
    g.returns = &ar;
    g.policy_actions = &apa;
    g.policy_probs = &app;
    g.initial = &ai;
    g.actor = "bench";
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME;
    e.game = &g;
    size_t n = tg_wire_encode(&e, out);
    free(acts), free(pa), free(ret), free(pp), free(init);
    return n;
}

static Tg__Envelope *recv_env(void *sock)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), (size_t)1 << 31);
    zmq_msg_close(&m);
    return e;
}

int tg_bench_replay(int argc, char **argv)
{
    long demos = 1000000;
    int B = 2048, inflight = 4, K = 16, flush = 64;
    double seconds = 5;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = ncpu > 0 ? (int)ncpu : 2;
    static tg_config c;
    tg_config_defaults(&c);
    char dir[] = "/tmp/tgbenchreplay.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char kv[256];
    const char *base[] = {"game.targets=3,3,3", "game.coeffs=-2..2", "game.r_limit=12", "game.history=7",
                          "game.n_steps=9", "replay.endpoint=tcp://127.0.0.1:*", "replay.samples_per_insert=0",
                          "replay.min_size=1", "replay.demos_rank_max=12", "replay.checkpoint_s=1e6",
                          "replay.stats_s=1e6", "replay.flush_ms=10", "run.log_level=warn", NULL};
    for (int i = 0; base[i]; i++)
        if (tg_config_set(&c, base[i])) {
            fprintf(stderr, "tg bench replay: %s\n", tg_errmsg());
            return 2;
        }
    snprintf(kv, sizeof kv, "run.dir=%s", dir);
    tg_config_set(&c, kv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && !strcmp(a, "--demos")) {
            demos = atol(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--batch")) {
            B = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--seconds")) {
            seconds = atof(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--workers")) {
            workers = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--inflight")) {
            inflight = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--children")) {
            K = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(a, "--flush-count")) {
            flush = atoi(argv[++i]);
        } else if (strchr(a, '=') && tg_config_set(&c, a) == 0) {
            continue;
        } else {
            fprintf(stderr, "tg bench replay: bad argument '%s': %s\n", a, tg_errmsg());
            usage(stderr);
            return 2;
        }
    }
    if (B < 1 || inflight < 1 || K < 1 || workers < 1 || seconds <= 0) {
        fprintf(stderr, "tg bench replay: bad option value\n");
        return 2;
    }
    snprintf(kv, sizeof kv, "replay.demos_size=%ld", demos);
    tg_config_set(&c, kv);
    snprintf(kv, sizeof kv, "replay.workers=%d", workers);
    tg_config_set(&c, kv);
    snprintf(kv, sizeof kv, "replay.prefetch=%d", inflight + workers);
    tg_config_set(&c, kv);
    snprintf(kv, sizeof kv, "replay.flush_count=%d", flush);
    tg_config_set(&c, kv);
    snprintf(kv, sizeof kv, "train.batch=%d", B);
    tg_config_set(&c, kv);
    if (tg_config_finish(&c)) {
        fprintf(stderr, "tg bench replay: %s\n", tg_errmsg());
        return 2;
    }
    tg_log_set_level(TG_LOG_WARN);
    printf("replay benchmark: T(3,3,3) S=%d T=%d F=%s, batch %d, %d workers, %d in flight, %ld cores\n", c.game.S,
           c.game.history + 1, c.game.coeffs, B, workers, inflight, ncpu);
    double t0 = tg_now();
    replay_server_opts o = {0};
    srv_arg sa = {.s = replay_server_new(&c, &o, NULL)};
    if (!sa.s) {
        fprintf(stderr, "tg bench replay: %s\n", tg_errmsg());
        return 1;
    }
    pthread_t th;
    pthread_create(&th, NULL, srv_main, &sa);
    void *cl = zmq_socket(tg_sock_ctx(), ZMQ_DEALER);
    int to = 60000, zero = 0;
    zmq_setsockopt(cl, ZMQ_RCVTIMEO, &to, sizeof to);
    zmq_setsockopt(cl, ZMQ_LINGER, &zero, sizeof zero);
    zmq_connect(cl, replay_server_endpoint(sa.s));
    /* wait for the demonstrations and their checkpoint */
    uint8_t *buf;
    size_t len;
    double demos_have = 0, t_demos = 0;
    for (;;) {
        Tg__Envelope e = TG__ENVELOPE__INIT;
        Tg__StatsRequest sr = TG__STATS_REQUEST__INIT;
        e.body_case = TG__ENVELOPE__BODY_STATS_REQUEST;
        e.stats_request = &sr;
        len = tg_wire_encode(&e, &buf);
        zmq_send(cl, buf, len, 0);
        free(buf);
        Tg__Envelope *r = recv_env(cl);
        double gen = 1, ckpts = 0;
        for (size_t i = 0; r && r->body_case == TG__ENVELOPE__BODY_STATS && i < r->stats->n_keys; i++) {
            if (!strcmp(r->stats->keys[i], "demos.positions"))
                demos_have = r->stats->values[i];
            if (!strcmp(r->stats->keys[i], "demos.generating"))
                gen = r->stats->values[i];
            if (!strcmp(r->stats->keys[i], "checkpoints"))
                ckpts = r->stats->values[i];
        }
        tg_wire_free(r);
        if (gen == 0 && t_demos == 0) {
            t_demos = tg_now();
            printf("demos: %.0f positions generated in %.2f s (%.0f positions/s)\n", demos_have, t_demos - t0,
                   demos_have / (t_demos - t0));
        }
        if (ckpts >= 1)
            break;
        usleep(20000);
    }
    char h5[300];
    struct stat sb;
    snprintf(h5, sizeof h5, "%s/replay.h5", dir);
    printf("checkpoint: replay.h5 with the demos written in %.2f s (%.1f MB, atomically replaced)\n",
           tg_now() - t_demos, stat(h5, &sb) ? 0.0 : (double)sb.st_size / 1e6);

    /* inserts: a pipeline of games, acknowledged in flush groups */
    tg_rng rng;
    tg_rng_seed(&rng, 7, 7);
    enum { POOL = 256 };
    uint8_t *games[POOL];
    size_t glen[POOL];
    double bytes = 0;
    for (int i = 0; i < POOL; i++) {
        glen[i] = make_game(&c, &rng, K, &games[i]);
        bytes += (double)glen[i];
    }
    long sent = 0, acked = 0, window = 4L * flush;
    t0 = tg_now();
    while (tg_now() - t0 < seconds) {
        while (sent - acked < window) {
            zmq_send(cl, games[sent % POOL], glen[sent % POOL], 0);
            sent++;
        }
        Tg__Envelope *r = recv_env(cl);
        if (!r || r->body_case != TG__ENVELOPE__BODY_GAME_ACK) {
            fprintf(stderr, "tg bench replay: unexpected reply to a game\n");
            return 1;
        }
        acked++;
        tg_wire_free(r);
    }
    while (acked < sent) {
        tg_wire_free(recv_env(cl));
        acked++;
    }
    double dt = tg_now() - t0;
    printf("inserts: %.0f games/s acknowledged (%.0f positions/s, %.1f MB/s of Game messages, %d children/move, "
           "flush %d games or %.0f ms)\n",
           (double)acked / dt, (double)acked * 10 / dt, (double)acked * (bytes / POOL) / dt / 1e6, K, flush,
           c.replay.flush_ms);
    for (int i = 0; i < POOL; i++)
        free(games[i]);

    /* batches: K requests in flight, like the learner's prefetch */
    Tg__Envelope e = TG__ENVELOPE__INIT;
    Tg__SampleRequest sq = TG__SAMPLE_REQUEST__INIT;
    sq.batch = (uint32_t)B;
    e.body_case = TG__ENVELOPE__BODY_SAMPLE_REQUEST;
    e.sample_request = &sq;
    len = tg_wire_encode(&e, &buf);
    for (int i = 0; i < inflight; i++)
        zmq_send(cl, buf, len, 0);
    long got = 0, from[3] = {0, 0, 0};
    double mb = 0;
    t0 = tg_now();
    while (tg_now() - t0 < seconds) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, cl, 0) < 0) {
            fprintf(stderr, "tg bench replay: no batch\n");
            return 1;
        }
        mb += (double)zmq_msg_size(&m) / 1e6;
        Tg__Envelope *r = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), (size_t)1 << 31);
        zmq_msg_close(&m);
        if (!r || r->body_case != TG__ENVELOPE__BODY_BATCH) {
            fprintf(stderr, "tg bench replay: unexpected reply to a sample request\n");
            return 1;
        }
        from[0] += r->batch->from_demos, from[1] += r->batch->from_played, from[2] += r->batch->from_best;
        tg_wire_free(r);
        got++;
        zmq_send(cl, buf, len, 0);
    }
    dt = tg_now() - t0;
    printf("batches: %.2f batches/s of %d positions (%.0f positions/s, %.0f MB/s; demos/played/best %.2f/%.2f/%.2f)\n",
           (double)got / dt, B, (double)got * B / dt, mb / dt, (double)from[0] / (got * B), (double)from[1] / (got * B),
           (double)from[2] / (got * B));
    free(buf);
    zmq_close(cl);
    sa.stop = 1;
    pthread_join(th, NULL);
    replay_server_free(sa.s);

    /* one batch built on one thread, for reference */
    replay_table *t[3] = {replay_table_new(0, 0), replay_table_new(1, 0), replay_table_new(2, 0)};
    for (int i = 0; i < 20000; i++)
        replay_table_append(t[0], replay_demo_make(&c, 0, &rng));
    replay_sampler *smp = replay_sampler_new(&c, t);
    int reps = 5;
    t0 = tg_now();
    for (int i = 0; i < reps; i++)
        replay_batch_free(replay_sampler_build(smp, B, &rng));
    printf("build: %.1f ms per batch of %d on one thread (features, permutation, tokens, packing)\n",
           (tg_now() - t0) / reps * 1e3, B);
    replay_sampler_free(smp);
    for (int i = 0; i < 3; i++)
        replay_table_free(t[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "tg bench replay: could not remove %s\n", dir);
    return 0;
}
