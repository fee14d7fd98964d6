/* tg bench learner: the inference service of tg-learner under load. C client threads (DEALER
 * sockets over TCP on 127.0.0.1, like actors) keep I requests of B positions each in flight
 * against the service (learner/infer.h, ROUTER, batching with max_batch and max_wait_ms); printed:
 * positions/s, requests/s, mean evaluated batch, request latency (p50, p99), and for comparison
 * the network alone (tg_net_sample on full max_batch batches in this thread). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/sock.h"
#include "common/wire.h"
#include "learner/infer.h"
#include "learner/net.h"
#include "tools/cmds.h"

typedef struct client {
    pthread_t th;
    const char *endpoint;
    const tg_net_config *nc;
    int B, K, inflight;
    double seconds;
    uint64_t seed;
    /* results */
    uint64_t answered, positions, errors;
    double *lat;
    size_t nlat, caplat;
} client;

static atomic_int g_go;

static void *client_main(void *arg)
{
    client *c = arg;
    const tg_net_config *nc = c->nc;
    size_t S3 = (size_t)nc->S * nc->S * nc->S, nt = (size_t)c->B * nc->T * S3;
    float *t = malloc(nt * sizeof(float)), *s = malloc((size_t)c->B * nc->n_scalars * sizeof(float));
    double *sent = calloc(1 << 16, sizeof(double));
    void *sock = tg_sock_connect(NULL, ZMQ_DEALER, c->endpoint);
    if (!t || !s || !sent || !sock) {
        fprintf(stderr, "tg bench learner: client: %s\n", tg_errmsg());
        goto done;
    }
    tg_rng r;
    tg_rng_seed(&r, c->seed, 7);
    for (size_t i = 0; i < nt; i++)
        t[i] = (float)((int)tg_rng_below(&r, 3) - 1);
    for (int i = 0; i < c->B * nc->n_scalars; i++)
        s[i] = (float)tg_rng_uniform(&r);
    while (!atomic_load(&g_go))
        ;
    Tg__EvalRequest req = TG__EVAL_REQUEST__INIT;
    Tg__Array at, as;
    int64_t st[5] = {c->B, nc->T, nc->S, nc->S, nc->S}, ss[2] = {c->B, nc->n_scalars}, b1[5], b2[2];
    tg_array_set(&at, TG__DTYPE__F32, 5, st, b1, t, nt * sizeof(float));
    tg_array_set(&as, TG__DTYPE__F32, 2, ss, b2, s, (size_t)c->B * nc->n_scalars * sizeof(float));
    req.tensors = &at;
    req.scalars = &as;
    req.samples = (uint32_t)c->K;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_EVAL_REQUEST;
    e.eval_request = &req;
    double end = tg_now() + c->seconds;
    uint64_t next_id = 1;
    int out = 0;
    while (tg_now() < end || out > 0) {
        while (out < c->inflight && tg_now() < end) {
            req.request_id = next_id;
            sent[next_id & 0xffff] = tg_now();
            next_id++;
            if (tg_wire_send(sock, NULL, 0, &e) != 0)
                goto done;
            out++;
        }
        zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 1000) <= 0) {
            if (tg_now() > end + 30)
                break; /* answers lost: give up */
            continue;
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, 0) < 0) {
            zmq_msg_close(&m);
            continue;
        }
        Tg__Envelope *a = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), TG_WIRE_MAX_DEFAULT);
        zmq_msg_close(&m);
        out--;
        if (!a || a->body_case != TG__ENVELOPE__BODY_EVAL_RESPONSE) {
            c->errors++;
        } else {
            double l = tg_now() - sent[a->eval_response->request_id & 0xffff];
            c->answered++;
            c->positions += (uint64_t)c->B;
            if (c->nlat == c->caplat) {
                c->caplat = c->caplat ? 2 * c->caplat : 1024;
                c->lat = realloc(c->lat, c->caplat * sizeof(double));
            }
            if (c->lat)
                c->lat[c->nlat++] = l;
        }
        tg_wire_free(a);
    }
done:
    tg_sock_close(sock);
    free(t);
    free(s);
    free(sent);
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tg bench learner [--seconds S] [--clients C] [--inflight I] [--batch B]\n"
            "                        [--backend auto|cpu|cuda] [--config FILE] [key=value ...]\n"
            "\n"
            "The learner's inference service under load: C client threads (like actors, over TCP\n"
            "on 127.0.0.1) keep I requests of B positions in flight (defaults: 4 clients, 2 in\n"
            "flight, batch actor.eval_batch, K = infer.samples, 5 s). Prints positions/s,\n"
            "requests/s, the mean evaluated batch, latency p50/p99, and the network alone\n"
            "(tg_net_sample on batches of infer.max_batch) for comparison. Network dimensions,\n"
            "infer.max_batch, infer.max_wait_ms and train.threads come from the config.\n");
}

int tg_bench_learner(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    tg_config cfg;
    int n = tg_config_from_args(&cfg, argc, argv);
    if (n < 0) {
        fprintf(stderr, "tg bench learner: %s\n", tg_errmsg());
        return 2;
    }
    double seconds = 5;
    int clients = 4, inflight = 2, B = cfg.actor.eval_batch;
    const char *backend = cfg.train.backend;
    for (int i = 1; i < n; i++) {
        const char *a = argv[i], *v = i + 1 < n ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "tg bench learner: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--seconds"))
            seconds = atof(v);
        else if (!strcmp(a, "--clients"))
            clients = atoi(v);
        else if (!strcmp(a, "--inflight"))
            inflight = atoi(v);
        else if (!strcmp(a, "--batch"))
            B = atoi(v);
        else if (!strcmp(a, "--backend"))
            backend = v;
        else {
            fprintf(stderr, "tg bench learner: unknown argument %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (!(seconds > 0) || clients < 1 || clients > 256 || inflight < 1 || inflight > 1024 || B < 1) {
        fprintf(stderr, "tg bench learner: bad --seconds/--clients/--inflight/--batch\n");
        return 2;
    }
    tg_log_set_level(TG_LOG_WARN);
    tg_net_config nc;
    if (tg_net_config_from_run(&cfg, &nc) != 0) {
        fprintf(stderr, "tg bench learner: %s\n", tg_errmsg());
        return 2;
    }
    int K = cfg.infer.samples, MB = cfg.infer.max_batch;

    /* the network alone */
    tg_net *net = tg_net_new(&nc, backend, MB, cfg.train.threads, 1);
    if (!net) {
        fprintf(stderr, "tg bench learner: %s\n", tg_errmsg());
        return 1;
    }
    size_t S3 = (size_t)nc.S * nc.S * nc.S;
    float *t = calloc((size_t)MB * nc.T * S3, sizeof(float)), *s = calloc((size_t)MB * nc.n_scalars, sizeof(float));
    int32_t *tok = malloc((size_t)MB * K * nc.n_steps * sizeof(int32_t));
    float *q = malloc((size_t)MB * nc.quantiles * sizeof(float)), *val = malloc((size_t)MB * sizeof(float));
    float *params = malloc(tg_net_n_params(net) * sizeof(float));
    tg_rng r;
    tg_rng_seed(&r, 3, 0);
    for (size_t i = 0; i < (size_t)MB * nc.T * S3; i++)
        t[i] = (float)((int)tg_rng_below(&r, 3) - 1);
    tg_eval_out eo = {.tokens = tok, .quantiles = q, .value = val};
    double t0 = tg_now();
    int calls = 0;
    while (tg_now() - t0 < seconds / 2 || calls < 2) {
        if (tg_net_sample(net, t, s, MB, K, 1.0f, NULL, (uint64_t)calls, &eo) != 0) {
            fprintf(stderr, "tg bench learner: %s\n", tg_errmsg());
            return 1;
        }
        calls++;
    }
    double direct = (double)calls * MB / (tg_now() - t0);
    tg_net_get_params(net, params);
    size_t n_params = tg_net_n_params(net);
    const char *bk = strcmp(tg_net_backend(net), "cuda") == 0 ? "cuda" : "cpu";

    /* the service */
    tg_infer_opts io = {.ncfg = &nc, .backend = bk, .threads = cfg.train.threads, .max_batch = MB,
                        .max_wait_ms = cfg.infer.max_wait_ms, .samples = K,
                        .temperature = cfg.infer.temperature, .endpoint = "tcp://127.0.0.1:*",
                        .pub_endpoint = NULL, .seed = 9};
    tg_net_free(net);
    tg_infer *svc = tg_infer_start(&io);
    if (!svc || tg_infer_publish(svc, params, n_params, 1, 1) != 0) {
        fprintf(stderr, "tg bench learner: %s\n", tg_errmsg());
        return 1;
    }
    client *cl = calloc((size_t)clients, sizeof *cl);
    for (int i = 0; i < clients; i++) {
        cl[i] = (client){.endpoint = tg_infer_endpoint(svc), .nc = &nc, .B = B, .K = K,
                         .inflight = inflight, .seconds = seconds, .seed = (uint64_t)i + 1};
        pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
    }
    tg_infer_stats s0, s1;
    tg_infer_get_stats(svc, &s0);
    t0 = tg_now();
    atomic_store(&g_go, 1);
    uint64_t answered = 0, positions = 0, errors = 0;
    size_t nl = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(cl[i].th, NULL);
        answered += cl[i].answered;
        positions += cl[i].positions;
        errors += cl[i].errors;
        nl += cl[i].nlat;
    }
    double dt = tg_now() - t0;
    tg_infer_get_stats(svc, &s1);
    double *lat = malloc((nl ? nl : 1) * sizeof(double));
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(lat + k, cl[i].lat, cl[i].nlat * sizeof(double));
        k += cl[i].nlat;
        free(cl[i].lat);
    }
    qsort(lat, nl, sizeof(double), cmp_d);
    double batches = (double)(s1.batches - s0.batches);
    printf("network %s: S=%d T=%d c=%d layers=%d, K=%d, max_batch=%d, max_wait_ms=%g, threads=%d\n",
           bk, nc.S, nc.T, nc.c, nc.layers, K, MB, cfg.infer.max_wait_ms, cfg.train.threads);
    printf("network alone (tg_net_sample, batch %d): %.0f positions/s\n", MB, direct);
    printf("service, %d clients x %d in flight x %d positions: %.0f positions/s, %.1f requests/s, "
           "mean batch %.1f, latency p50 %.2f ms p99 %.2f ms, %llu errors (%.0f%% of the network "
           "alone)\n",
           clients, inflight, B, positions / dt, answered / dt,
           batches > 0 ? (double)(s1.positions - s0.positions) / batches : 0,
           nl ? 1e3 * lat[nl / 2] : NAN, nl ? 1e3 * lat[(size_t)(0.99 * (double)(nl - 1))] : NAN,
           (unsigned long long)errors, 100.0 * positions / dt / direct);
    free(lat);
    free(cl);
    tg_infer_stop(svc);
    free(t);
    free(s);
    free(tok);
    free(q);
    free(val);
    free(params);
    return errors ? 1 : 0;
}
