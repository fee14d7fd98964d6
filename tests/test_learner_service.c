/* tg-learner end to end, as real processes on real sockets (127.0.0.1, ephemeral ports): this
 * program plays the replay server (a ROUTER answering SampleRequest with one fixed Batch, so that
 * training is deterministic) and the actors (DEALERs sending EvalRequests).
 *
 *  - a run stopped by SIGTERM and resumed gives, step for step, the losses of an uninterrupted
 *    run (checkpoint attributes), and the final weights are identical;
 *  - inference answers equal a direct evaluation of the checkpoint's network (quantiles, values),
 *    with the checkpoint's model version, also when requests are split and batched together, and
 *    also with infer.concurrent (no time-sharing with training);
 *  - malformed requests get Error replies and the service keeps answering;
 *  - the learner survives replay vanishing and coming back, and actors vanishing mid-request;
 *  - an inference replica (--serve-only) follows the learner's weights and answers alike, and
 *    refuses weights that fail their CRC32C (asking again). */
#include "tests/test_util.h"

#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zmq.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/wire.h"
#include "learner/checkpoint.h"
#include "learner/ckptdir.h"
#include "learner/infer.h"
#include "learner/net.h"
#include "learner/net_config.h"

/* A tiny network: the test is about the process, not the model. */
static const char *const NET_ARGS[] = {
    "game.targets=2,2,2", "game.history=1", "game.n_steps=4",    "net.c=16",
    "net.layers=1",       "net.heads=2",    "net.head_dim=8",    "net.widen=2",
    "net.p_feat=8",       "net.p_heads=2",  "net.p_layers=1",    "net.v_hidden=16",
    "net.v_layers=1",     "net.quantiles=4", "train.threads=1",  "train.batch=8",
    "train.warmup_steps=2", "train.lr=3e-3", NULL};

static void *ctx;
static pid_t children[16];
static int n_children;

/* A failed assertion leaves processes behind: kill them (ours only, by pid). */
static void kill_children(void)
{
    for (int i = 0; i < n_children; i++)
        if (children[i] > 0 && kill(children[i], 0) == 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    n_children = 0;
}

static int teardown(void **state)
{
    (void)state;
    kill_children();
    return 0;
}

static void test_config(tg_config *cfg, tg_net_config *nc)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "test";
    for (int i = 0; NET_ARGS[i]; i++)
        argv[argc++] = (char *)NET_ARGS[i];
    argv[argc] = NULL;
    if (tg_config_from_args(cfg, argc, argv) < 0)
        fail_msg("config: %s", tg_errmsg());
    if (tg_net_config_from_run(cfg, nc) != 0)
        fail_msg("net config: %s", tg_errmsg());
}

/* ------------------------------------------------------------ the replay double */

typedef struct fake_replay {
    void *sock;
    char endpoint[128];
    tg_net_config nc;
    float *tensors, *scalars, *returns;
    int32_t *tokens;
    int B;
    int served;
    int limit; /* answer at most this many SampleRequests (0 = no limit) */
} fake_replay;

static void fake_replay_bind(fake_replay *r, const char *endpoint)
{
    r->sock = zmq_socket(ctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(r->sock, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(r->sock, endpoint), 0);
    size_t len = sizeof r->endpoint;
    zmq_getsockopt(r->sock, ZMQ_LAST_ENDPOINT, r->endpoint, &len);
}

static void fake_replay_init(fake_replay *r, const tg_net_config *nc, int B)
{
    memset(r, 0, sizeof *r);
    r->nc = *nc;
    r->B = B;
    size_t S3 = (size_t)nc->S * nc->S * nc->S;
    r->tensors = malloc((size_t)B * nc->T * S3 * sizeof(float));
    r->scalars = malloc((size_t)B * nc->n_scalars * sizeof(float));
    r->tokens = malloc((size_t)B * nc->n_steps * sizeof(int32_t));
    r->returns = malloc((size_t)B * sizeof(float));
    tg_rng rng;
    tg_rng_seed(&rng, 42, 0);
    for (size_t i = 0; i < (size_t)B * nc->T * S3; i++)
        r->tensors[i] = (float)((int)tg_rng_below(&rng, 3) - 1);
    for (int i = 0; i < B * nc->n_scalars; i++)
        r->scalars[i] = (float)tg_rng_uniform(&rng);
    for (int i = 0; i < B * nc->n_steps; i++)
        r->tokens[i] = (int32_t)tg_rng_below(&rng, (uint32_t)nc->n_logits);
    for (int i = 0; i < B; i++)
        r->returns[i] = -(float)tg_rng_below(&rng, 8);
    fake_replay_bind(r, "tcp://127.0.0.1:*");
}

static void fake_replay_close(fake_replay *r)
{
    if (r->sock)
        zmq_close(r->sock);
    r->sock = NULL;
}

static void fake_replay_free(fake_replay *r)
{
    fake_replay_close(r);
    free(r->tensors);
    free(r->scalars);
    free(r->tokens);
    free(r->returns);
}

/* Answers whatever arrives within ms milliseconds. */
static void fake_replay_pump(fake_replay *r, int ms)
{
    double end = tg_now() + ms * 1e-3;
    while (r->sock) {
        int left = (int)((end - tg_now()) * 1e3);
        if (left < 0)
            left = 0;
        zmq_pollitem_t it = {.socket = r->sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, left) <= 0)
            return;
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, r->sock, 0) < 0 || zmq_msg_recv(&body, r->sock, 0) < 0) {
            zmq_msg_close(&id);
            zmq_msg_close(&body);
            continue;
        }
        Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), 1 << 28);
        assert_non_null(e);
        const tg_net_config *nc = &r->nc;
        if (e->body_case == TG__ENVELOPE__BODY_SAMPLE_REQUEST && r->limit && r->served >= r->limit) {
            /* hold it: like a rate-limited replay server */
        } else if (e->body_case == TG__ENVELOPE__BODY_SAMPLE_REQUEST) {
            int B = r->B;
            Tg__Batch b = TG__BATCH__INIT;
            Tg__Array at, as, ak, ar;
            int64_t st[5] = {B, nc->T, nc->S, nc->S, nc->S}, ss[2] = {B, nc->n_scalars},
                    sk[2] = {B, nc->n_steps}, sr[1] = {B};
            int64_t b1[5], b2[2], b3[2], b4[1];
            size_t S3 = (size_t)nc->S * nc->S * nc->S;
            tg_array_set(&at, TG__DTYPE__F32, 5, st, b1, r->tensors, (size_t)B * nc->T * S3 * 4);
            tg_array_set(&as, TG__DTYPE__F32, 2, ss, b2, r->scalars, (size_t)B * nc->n_scalars * 4);
            tg_array_set(&ak, TG__DTYPE__I32, 2, sk, b3, r->tokens, (size_t)B * nc->n_steps * 4);
            tg_array_set(&ar, TG__DTYPE__F32, 1, sr, b4, r->returns, (size_t)B * 4);
            b.tensors = &at;
            b.scalars = &as;
            b.tokens = &ak;
            b.returns = &ar;
            b.from_demos = (uint32_t)B;
            Tg__Envelope out = TG__ENVELOPE__INIT;
            out.body_case = TG__ENVELOPE__BODY_BATCH;
            out.batch = &b;
            assert_int_equal(tg_wire_send(r->sock, zmq_msg_data(&id), zmq_msg_size(&id), &out), 0);
            r->served++;
        } else if (e->body_case == TG__ENVELOPE__BODY_STATS_REQUEST) {
            char *keys[] = {"demos", "played"};
            double vals[] = {1000, (double)r->served};
            Tg__Stats s = TG__STATS__INIT;
            s.n_keys = s.n_values = 2;
            s.keys = keys;
            s.values = vals;
            s.text = "";
            Tg__Envelope out = TG__ENVELOPE__INIT;
            out.body_case = TG__ENVELOPE__BODY_STATS;
            out.stats = &s;
            tg_wire_send(r->sock, zmq_msg_data(&id), zmq_msg_size(&id), &out);
        }
        tg_wire_free(e);
        zmq_msg_close(&id);
        zmq_msg_close(&body);
    }
}

/* ------------------------------------------------------------ processes */

static pid_t spawn_learner(const char *dir, const char *replay_ep, const char *const *extra)
{
    char bin[1024], logp[1024], a_dir[1100], a_rep[300];
    snprintf(bin, sizeof bin, "%s/tg-learner", tg_test_bin());
    snprintf(logp, sizeof logp, "%s/learner.out", dir);
    snprintf(a_dir, sizeof a_dir, "run.dir=%s", dir);
    snprintf(a_rep, sizeof a_rep, "replay.connect=%s", replay_ep ? replay_ep : "tcp://127.0.0.1:9");
    char *argv[96];
    int argc = 0;
    argv[argc++] = bin;
    argv[argc++] = a_dir;
    argv[argc++] = a_rep;
    argv[argc++] = "infer.endpoint=tcp://127.0.0.1:*";
    argv[argc++] = "infer.pub_endpoint=tcp://127.0.0.1:*";
    argv[argc++] = "infer.connect=tcp://127.0.0.1:*";
    argv[argc++] = "run.log_level=debug";
    for (int i = 0; NET_ARGS[i]; i++)
        argv[argc++] = (char *)NET_ARGS[i];
    for (int i = 0; extra && extra[i]; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = freopen(logp, "a", stderr);
        (void)f;
        execv(bin, argv);
        _exit(127);
    }
    if (n_children < 16)
        children[n_children++] = pid;
    return pid;
}

static int wait_exit(pid_t pid, double timeout_s, fake_replay *r)
{
    double end = tg_now() + timeout_s;
    while (tg_now() < end) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r && r->sock)
            fake_replay_pump(r, 20);
        else
            usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("tg-learner (pid %d) did not exit within %.0f s", (int)pid, timeout_s);
    return -1;
}

/* The status file of `name` written by process pid, once `key` >= at_least (key "" = any). */
static json_t *wait_status(const char *dir, const char *name, pid_t pid, const char *key,
                           double at_least, double timeout_s, fake_replay *r)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/status/%s.json", dir, name);
    double end = tg_now() + timeout_s;
    while (tg_now() < end) {
        json_t *j = json_load_file(path, 0, NULL);
        if (j) {
            json_t *p = json_object_get(j, "pid");
            json_t *v = key[0] ? json_object_get(j, key) : NULL;
            if (p && json_integer_value(p) == pid && (!key[0] || (v && json_number_value(v) >= at_least)))
                return j;
            json_decref(j);
        }
        if (r && r->sock)
            fake_replay_pump(r, 50);
        else
            usleep(50000);
    }
    fail_msg("%s: %s did not reach %s >= %g within %.0f s", path, name, key, at_least, timeout_s);
    return NULL;
}

static const char *infer_endpoint(json_t *st)
{
    return json_string_value(json_object_get(json_object_get(st, "inference"), "endpoint"));
}

/* ------------------------------------------------------------ actors */

static void *dealer(const char *ep)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_connect(s, ep), 0);
    return s;
}

static void send_eval(void *s, const tg_net_config *nc, uint64_t id, int B, int K,
                      const float *tensors, const float *scalars)
{
    Tg__EvalRequest r = TG__EVAL_REQUEST__INIT;
    Tg__Array at, as;
    int64_t st[5] = {B, nc->T, nc->S, nc->S, nc->S}, ss[2] = {B, nc->n_scalars}, b1[5], b2[2];
    size_t S3 = (size_t)nc->S * nc->S * nc->S;
    tg_array_set(&at, TG__DTYPE__F32, 5, st, b1, tensors, (size_t)B * nc->T * S3 * 4);
    tg_array_set(&as, TG__DTYPE__F32, 2, ss, b2, scalars, (size_t)B * nc->n_scalars * 4);
    r.request_id = id;
    r.tensors = &at;
    r.scalars = &as;
    r.samples = (uint32_t)K;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_EVAL_REQUEST;
    e.eval_request = &r;
    assert_int_equal(tg_wire_send(s, NULL, 0, &e), 0);
}

static Tg__Envelope *recv_env(void *s, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = s, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, s, 0) >= 0);
    Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1 << 28);
    zmq_msg_close(&m);
    assert_non_null(e);
    return e;
}

/* Random positions of the tiny config. */
static void random_inputs(const tg_net_config *nc, int B, uint64_t seed, float **t, float **s)
{
    size_t S3 = (size_t)nc->S * nc->S * nc->S;
    *t = malloc((size_t)B * nc->T * S3 * sizeof(float));
    *s = malloc((size_t)B * nc->n_scalars * sizeof(float));
    tg_rng rng;
    tg_rng_seed(&rng, seed, 1);
    for (size_t i = 0; i < (size_t)B * nc->T * S3; i++)
        (*t)[i] = (float)((int)tg_rng_below(&rng, 3) - 1);
    for (int i = 0; i < B * nc->n_scalars; i++)
        (*s)[i] = (float)tg_rng_uniform(&rng);
}

/* Checks a response against a direct evaluation by net. */
static void check_response(Tg__Envelope *e, tg_net *net, const tg_net_config *nc, uint64_t id,
                           uint64_t version, int B, int K, const float *t, const float *s)
{
    if (e->body_case == TG__ENVELOPE__BODY_ERROR)
        fail_msg("request %llu: error %d: %s", (unsigned long long)id, e->error->code, e->error->message);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_EVAL_RESPONSE);
    Tg__EvalResponse *r = e->eval_response;
    assert_int_equal(r->request_id, id);
    assert_int_equal(r->model_version, version);
    int64_t sk[3] = {B, K, nc->n_steps}, sq[2] = {B, nc->quantiles}, sv[1] = {B};
    assert_int_equal(tg_array_check(r->tokens, TG__DTYPE__I32, 3, sk, "tokens"), 0);
    assert_int_equal(tg_array_check(r->quantiles, TG__DTYPE__F32, 2, sq, "quantiles"), 0);
    assert_int_equal(tg_array_check(r->values, TG__DTYPE__F32, 1, sv, "values"), 0);
    const int32_t *tok = (const int32_t *)r->tokens->data.data;
    for (int i = 0; i < B * K * nc->n_steps; i++)
        assert_true(tok[i] >= 0 && tok[i] < nc->n_logits);
    int32_t *gt = malloc((size_t)B * nc->n_steps * sizeof(int32_t));
    float *gq = malloc((size_t)B * nc->quantiles * sizeof(float));
    assert_int_equal(tg_net_greedy(net, t, s, B, gt, gq), 0);
    const float *q = (const float *)r->quantiles->data.data;
    const float *v = (const float *)r->values->data.data;
    for (int i = 0; i < B * nc->quantiles; i++)
        assert_float_equal(q[i], gq[i], 1e-4 * (1 + fabsf(gq[i])));
    for (int b = 0; b < B; b++)
        assert_float_equal(v[b], tg_risk_seeking_value(gq + (size_t)b * nc->quantiles, nc->quantiles),
                           1e-4);
    free(gt);
    free(gq);
}

/* ------------------------------------------------------------ tests */

static double ckpt_loss(const char *dir, int64_t step)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/checkpoints/step-%08lld.h5", dir, (long long)step);
    tg_ckpt_meta m;
    if (tg_ckpt_read_meta(p, &m) != 0)
        fail_msg("%s", tg_errmsg());
    assert_int_equal(m.step, step);
    return m.loss_total;
}

static void test_resume_matches_uninterrupted(void **state)
{
    (void)state;
    tg_config cfg;
    tg_net_config nc;
    test_config(&cfg, &nc);
    const int N = 8;
    fake_replay r;
    fake_replay_init(&r, &nc, 8);
    const char *args_full[] = {"train.max_steps=8", "train.checkpoint_every=1",
                               "train.keep_checkpoints=100", NULL};

    /* uninterrupted */
    char d1[64];
    tg_test_tmpdir(d1, sizeof d1);
    pid_t p1 = spawn_learner(d1, r.endpoint, args_full);
    assert_int_equal(wait_exit(p1, 120, &r), 0);

    /* interrupted by SIGTERM, then resumed */
    char d2[64];
    tg_test_tmpdir(d2, sizeof d2);
    const char *args_slow[] = {"train.max_steps=0", "train.checkpoint_every=1",
                               "train.keep_checkpoints=100", NULL};
    r.served = 0;
    r.limit = 3;
    pid_t p2 = spawn_learner(d2, r.endpoint, args_slow);
    json_t *st = wait_status(d2, "tg-learner", p2, "step", 3, 120, &r);
    json_decref(st);
    r.limit = 0;
    kill(p2, SIGTERM);
    assert_int_equal(wait_exit(p2, 60, &r), 0);
    tg_ckpt_meta m;
    char latest[1200];
    snprintf(latest, sizeof latest, "%s/checkpoints/latest", d2);
    assert_int_equal(tg_ckpt_read_meta(latest, &m), 0);
    int64_t stopped = m.step;
    assert_int_equal(stopped, 3);
    pid_t p3 = spawn_learner(d2, r.endpoint, args_full);
    assert_int_equal(wait_exit(p3, 120, &r), 0);

    for (int64_t s = 1; s <= N; s++) {
        double a = ckpt_loss(d1, s), b = ckpt_loss(d2, s);
        assert_true(isfinite(a));
        if (a != b)
            fail_msg("step %lld: loss %.9g uninterrupted, %.9g resumed (stopped at %lld)",
                     (long long)s, a, b, (long long)stopped);
    }
    /* and the final weights are the same */
    tg_params tab;
    assert_int_equal(tg_params_build(&nc, &tab), 0);
    float *w1 = malloc(tab.total * sizeof(float)), *w2 = malloc(tab.total * sizeof(float));
    char f1[1200], f2[1200];
    snprintf(f1, sizeof f1, "%s/checkpoints/step-%08d.h5", d1, N);
    snprintf(f2, sizeof f2, "%s/checkpoints/step-%08d.h5", d2, N);
    int64_t s1, s2;
    assert_int_equal(tg_checkpoint_read(f1, &tab, w1, NULL, NULL, NULL, &s1, NULL), 0);
    assert_int_equal(tg_checkpoint_read(f2, &tab, w2, NULL, NULL, NULL, &s2, NULL), 0);
    assert_memory_equal(w1, w2, tab.total * sizeof(float));
    /* the loss went down on the fixed batch */
    assert_true(ckpt_loss(d1, N) < ckpt_loss(d1, 1));
    free(w1);
    free(w2);
    tg_params_free(&tab);
    fake_replay_free(&r);
}

/* A checkpoint at step 5 made here; the learner (no replay) resumes it and serves it. */
static tg_net *make_checkpoint(const char *dir, const tg_net_config *nc, int64_t step)
{
    tg_net *net = tg_net_new(nc, "cpu", 64, 1, 777);
    assert_non_null(net);
    tg_opt_config opt;
    tg_opt_config_default(&opt);
    tg_net_set_opt(net, &opt);
    size_t n = tg_net_n_params(net);
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    assert_int_equal(tg_net_set_opt_state(net, m, v, step), 0);
    free(m);
    free(v);
    tg_ckpt_meta meta = {.step = step, .wall_time = tg_wall(), .loss_total = NAN,
                         .loss_policy = NAN, .loss_value = NAN, .lr = NAN};
    if (tg_ckptdir_save(net, dir, &meta, 3, "", NULL, 0) != 0)
        fail_msg("%s", tg_errmsg());
    return net;
}

/* Whether a line of the log file at path contains what (the file must exist). */
static int log_has(const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1024];
    int found = 0;
    while (fgets(line, sizeof line, f))
        found |= strstr(line, what) != NULL;
    fclose(f);
    return found;
}

/* extra: one more override (NULL: none) */
static void inference_equals_forward(const char *extra)
{
    tg_config cfg;
    tg_net_config nc;
    test_config(&cfg, &nc);
    char d[64];
    tg_test_tmpdir(d, sizeof d);
    tg_net *net = make_checkpoint(d, &nc, 5);
    const char *args[] = {"infer.max_batch=4", "infer.max_wait_ms=20", extra, NULL};
    pid_t p = spawn_learner(d, NULL, args);
    json_t *st = wait_status(d, "tg-learner", p, "", 0, 60, NULL);
    void *a = dealer(infer_endpoint(st)), *b = dealer(infer_endpoint(st));
    json_decref(st);

    float *t1, *s1, *t2, *s2;
    random_inputs(&nc, 3, 1, &t1, &s1);
    random_inputs(&nc, 6, 2, &t2, &s2); /* larger than max_batch: split */
    send_eval(a, &nc, 11, 3, 4, t1, s1);
    send_eval(b, &nc, 22, 6, 4, t2, s2);
    send_eval(a, &nc, 12, 3, 2, t1, s1); /* other K: its own batch */
    Tg__Envelope *e = recv_env(a, 30000);
    assert_non_null(e);
    Tg__Envelope *e2 = recv_env(a, 30000);
    assert_non_null(e2);
    if (e->eval_response && e->eval_response->request_id == 12) {
        Tg__Envelope *x = e;
        e = e2;
        e2 = x;
    }
    check_response(e, net, &nc, 11, 5, 3, 4, t1, s1);
    check_response(e2, net, &nc, 12, 5, 3, 2, t1, s1);
    tg_wire_free(e);
    tg_wire_free(e2);
    e = recv_env(b, 30000);
    assert_non_null(e);
    check_response(e, net, &nc, 22, 5, 6, 4, t2, s2);
    tg_wire_free(e);

    /* the weights a replica would fetch are the checkpoint's, with a matching CRC */
    Tg__WeightsRequest wr = TG__WEIGHTS_REQUEST__INIT;
    Tg__Envelope we = TG__ENVELOPE__INIT;
    we.body_case = TG__ENVELOPE__BODY_WEIGHTS_REQUEST;
    we.weights_request = &wr;
    assert_int_equal(tg_wire_send(a, NULL, 0, &we), 0);
    e = recv_env(a, 30000);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_WEIGHTS);
    assert_int_equal(e->weights->version, 5);
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof(float));
    tg_net_get_params(net, w);
    assert_int_equal(e->weights->params->data.len, n * sizeof(float));
    assert_memory_equal(e->weights->params->data.data, w, n * sizeof(float));
    free(w);
    tg_wire_free(e);

    /* the learner says which way inference and training share it */
    char logp[128];
    snprintf(logp, sizeof logp, "%s/learner.out", d);
    assert_int_equal(log_has(logp, "alongside training"), extra != NULL);

    kill(p, SIGTERM);
    assert_int_equal(wait_exit(p, 60, NULL), 0);
    zmq_close(a);
    zmq_close(b);
    free(t1);
    free(s1);
    free(t2);
    free(s2);
    tg_net_free(net);
}

static void test_inference_equals_forward(void **state)
{
    (void)state;
    inference_equals_forward(NULL);
}

/* infer.concurrent: no time-sharing (the service runs without the share lock), same answers */
static void test_inference_concurrent(void **state)
{
    (void)state;
    inference_equals_forward("infer.concurrent=true");
}

static void expect_error(void *s, const char *what)
{
    Tg__Envelope *e = recv_env(s, 30000);
    if (!e)
        fail_msg("%s: no reply", what);
    if (e->body_case != TG__ENVELOPE__BODY_ERROR)
        fail_msg("%s: reply type %d, not an Error", what, (int)e->body_case);
    print_message("%s -> error %d: %s\n", what, e->error->code, e->error->message);
    assert_true(strlen(e->error->message) > 0);
    tg_wire_free(e);
}

static void test_malformed_requests(void **state)
{
    (void)state;
    tg_config cfg;
    tg_net_config nc;
    test_config(&cfg, &nc);
    char d[64];
    tg_test_tmpdir(d, sizeof d);
    tg_net *net = make_checkpoint(d, &nc, 3);
    pid_t p = spawn_learner(d, NULL, NULL);
    json_t *st = wait_status(d, "tg-learner", p, "", 0, 60, NULL);
    void *a = dealer(infer_endpoint(st));
    json_decref(st);

    /* garbage bytes */
    assert_int_equal(zmq_send(a, "\xff\x01garbage", 9, 0), 9);
    expect_error(a, "garbage");
    /* an empty message */
    assert_int_equal(zmq_send(a, "", 0, 0), 0);
    expect_error(a, "empty");
    /* two frames */
    zmq_send(a, "x", 1, ZMQ_SNDMORE);
    zmq_send(a, "y", 1, 0);
    expect_error(a, "two frames");
    /* another protocol version */
    {
        Tg__Heartbeat hb = TG__HEARTBEAT__INIT;
        Tg__Envelope e = TG__ENVELOPE__INIT;
        e.body_case = TG__ENVELOPE__BODY_HEARTBEAT;
        e.heartbeat = &hb;
        e.version = 99;
        size_t n = tg__envelope__get_packed_size(&e);
        uint8_t *buf = malloc(n);
        tg__envelope__pack(&e, buf);
        assert_int_equal(zmq_send(a, buf, n, 0), (int)n);
        free(buf);
        expect_error(a, "protocol version 99");
    }
    /* wrong shapes and values */
    float *t, *s;
    random_inputs(&nc, 2, 3, &t, &s);
    {
        Tg__EvalRequest r = TG__EVAL_REQUEST__INIT;
        Tg__Array at, as;
        int64_t st5[5] = {2, nc.T, nc.S, nc.S, nc.S + 1}, ss[2] = {2, nc.n_scalars}, b1[5], b2[2];
        size_t S3 = (size_t)nc.S * nc.S * nc.S;
        tg_array_set(&at, TG__DTYPE__F32, 5, st5, b1, t, 2 * nc.T * S3 * 4);
        tg_array_set(&as, TG__DTYPE__F32, 2, ss, b2, s, 2 * nc.n_scalars * 4);
        r.tensors = &at;
        r.scalars = &as;
        Tg__Envelope e = TG__ENVELOPE__INIT;
        e.body_case = TG__ENVELOPE__BODY_EVAL_REQUEST;
        e.eval_request = &r;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "wrong tensor shape");
        st5[4] = nc.S;
        tg_array_set(&at, TG__DTYPE__F32, 5, st5, b1, t, 2 * nc.T * S3 * 4 - 4);
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "short tensor data");
        tg_array_set(&at, TG__DTYPE__I32, 5, st5, b1, t, 2 * nc.T * S3 * 4);
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "wrong dtype");
        tg_array_set(&at, TG__DTYPE__F32, 5, st5, b1, t, 2 * nc.T * S3 * 4);
        r.scalars = NULL;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "missing scalars");
        r.scalars = &as;
        r.temperature = -1;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "negative temperature");
        r.temperature = 0;
        t[5] = NAN;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "NaN input");
        t[5] = 0;
        r.samples = 1u << 30;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "absurd K");
        r.samples = 4096;
        int64_t big[5] = {2048, nc.T, nc.S, nc.S, nc.S}, bigs[2] = {2048, nc.n_scalars};
        float *bt = calloc((size_t)2048 * nc.T * S3, sizeof(float)), *bs = calloc(2048 * nc.n_scalars, sizeof(float));
        tg_array_set(&at, TG__DTYPE__F32, 5, big, b1, bt, (size_t)2048 * nc.T * S3 * 4);
        tg_array_set(&as, TG__DTYPE__F32, 2, bigs, b2, bs, (size_t)2048 * nc.n_scalars * 4);
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "too many actions in one request");
        free(bt);
        free(bs);
    }
    /* a message type the service does not take */
    {
        Tg__SampleRequest sr = TG__SAMPLE_REQUEST__INIT;
        Tg__Envelope e = TG__ENVELOPE__INIT;
        e.body_case = TG__ENVELOPE__BODY_SAMPLE_REQUEST;
        e.sample_request = &sr;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "sample request to inference");
    }
    /* an old weights version */
    {
        Tg__WeightsRequest wr = TG__WEIGHTS_REQUEST__INIT;
        wr.version = 2;
        Tg__Envelope e = TG__ENVELOPE__INIT;
        e.body_case = TG__ENVELOPE__BODY_WEIGHTS_REQUEST;
        e.weights_request = &wr;
        tg_wire_send(a, NULL, 0, &e);
        expect_error(a, "unknown weights version");
    }
    /* still serving */
    send_eval(a, &nc, 7, 2, 3, t, s);
    Tg__Envelope *e = recv_env(a, 30000);
    assert_non_null(e);
    check_response(e, net, &nc, 7, 3, 2, 3, t, s);
    tg_wire_free(e);
    st = wait_status(d, "tg-learner", p, "", 0, 10, NULL);
    sleep(2); /* the status file is rewritten every second */
    json_decref(st);
    st = wait_status(d, "tg-learner", p, "", 0, 10, NULL);
    json_int_t bad = json_integer_value(json_object_get(json_object_get(st, "inference"), "bad_requests"));
    assert_true(bad >= 13);
    json_decref(st);

    kill(p, SIGTERM);
    assert_int_equal(wait_exit(p, 60, NULL), 0);
    zmq_close(a);
    free(t);
    free(s);
    tg_net_free(net);
}

static void test_survives_vanishing_peers_and_replica_follows(void **state)
{
    (void)state;
    tg_config cfg;
    tg_net_config nc;
    test_config(&cfg, &nc);
    fake_replay r;
    fake_replay_init(&r, &nc, 8);
    char d[64];
    tg_test_tmpdir(d, sizeof d);
    const char *args[] = {"train.checkpoint_every=1000", "train.publish_every=1", NULL};
    pid_t p = spawn_learner(d, r.endpoint, args);
    json_t *st = wait_status(d, "tg-learner", p, "step", 3, 120, &r);
    char ep[256], pub[256];
    snprintf(ep, sizeof ep, "%s", infer_endpoint(st));
    snprintf(pub, sizeof pub, "%s",
             json_string_value(json_object_get(json_object_get(st, "inference"), "pub_endpoint")));
    json_decref(st);

    /* replay vanishes: training stalls, the learner lives; replay comes back on the same port */
    char rep_ep[128];
    snprintf(rep_ep, sizeof rep_ep, "%s", r.endpoint);
    fake_replay_close(&r);
    sleep(1);
    st = wait_status(d, "tg-learner", p, "step", 0, 10, NULL);
    json_int_t step_gone = json_integer_value(json_object_get(st, "step"));
    json_decref(st);
    sleep(2);
    assert_int_equal(waitpid(p, NULL, WNOHANG), 0);
    fake_replay_bind(&r, rep_ep);
    st = wait_status(d, "tg-learner", p, "step", (double)step_gone + 3, 60, &r);
    json_decref(st);

    /* an actor vanishes with a request in flight; another one is still served */
    float *t, *s;
    random_inputs(&nc, 4, 9, &t, &s);
    void *gone = dealer(ep);
    send_eval(gone, &nc, 1, 4, 8, t, s);
    zmq_close(gone);
    void *a = dealer(ep);
    send_eval(a, &nc, 2, 4, 8, t, s);
    Tg__Envelope *e = NULL;
    for (int i = 0; i < 600 && !e; i++) {
        fake_replay_pump(&r, 50);
        e = recv_env(a, 0);
    }
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_EVAL_RESPONSE);
    assert_int_equal(e->eval_response->request_id, 2);
    tg_wire_free(e);

    /* a replica follows the learner's weights */
    char a_pub[300], a_conn[300];
    snprintf(a_pub, sizeof a_pub, "infer.pub_connect=%s", pub);
    snprintf(a_conn, sizeof a_conn, "infer.connect=%s", ep);
    const char *rargs[] = {"--serve-only", "--name", "tg-serve", a_pub, a_conn, NULL};
    pid_t rp = spawn_learner(d, NULL, rargs);
    json_t *rs = wait_status(d, "tg-serve", rp, "step", 1, 60, &r);
    char rep_infer[256];
    snprintf(rep_infer, sizeof rep_infer, "%s", infer_endpoint(rs));
    json_decref(rs);
    /* it keeps up: a newer version than the one it first had */
    st = wait_status(d, "tg-learner", p, "step", 0, 10, &r);
    json_int_t lstep = json_integer_value(json_object_get(st, "step"));
    json_decref(st);
    rs = wait_status(d, "tg-serve", rp, "step", (double)lstep, 60, &r);
    json_decref(rs);

    /* stop training (replay gone again), then both answer alike with the same version */
    fake_replay_close(&r);
    sleep(1);
    st = wait_status(d, "tg-learner", p, "step", 0, 10, NULL);
    lstep = json_integer_value(json_object_get(st, "step"));
    json_decref(st);
    rs = wait_status(d, "tg-serve", rp, "step", (double)lstep, 60, NULL);
    json_decref(rs);
    void *ra = dealer(rep_infer);
    send_eval(a, &nc, 3, 4, 2, t, s);
    send_eval(ra, &nc, 4, 4, 2, t, s);
    Tg__Envelope *x = recv_env(a, 30000), *y = recv_env(ra, 30000);
    assert_non_null(x);
    assert_non_null(y);
    assert_int_equal(x->body_case, TG__ENVELOPE__BODY_EVAL_RESPONSE);
    assert_int_equal(y->body_case, TG__ENVELOPE__BODY_EVAL_RESPONSE);
    assert_int_equal(x->eval_response->model_version, y->eval_response->model_version);
    assert_int_equal(x->eval_response->quantiles->data.len, y->eval_response->quantiles->data.len);
    assert_memory_equal(x->eval_response->quantiles->data.data, y->eval_response->quantiles->data.data,
                        x->eval_response->quantiles->data.len);
    tg_wire_free(x);
    tg_wire_free(y);

    kill(rp, SIGTERM);
    kill(p, SIGTERM);
    assert_int_equal(wait_exit(rp, 60, NULL), 0);
    assert_int_equal(wait_exit(p, 60, NULL), 0);
    zmq_close(a);
    zmq_close(ra);
    free(t);
    free(s);
    fake_replay_free(&r);
}

/* A replica against a learner played by this test: weights that fail their CRC are refused (and
 * asked for again), good ones are served. */
static void reply_weights(void *router, tg_net *net, uint64_t version, int bad_crc)
{
    zmq_pollitem_t it = {.socket = router, .events = ZMQ_POLLIN};
    assert_true(zmq_poll(&it, 1, 30000) > 0);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    assert_true(zmq_msg_recv(&id, router, 0) >= 0);
    assert_true(zmq_msg_recv(&body, router, 0) >= 0);
    Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&body), zmq_msg_size(&body), 1 << 28);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_WEIGHTS_REQUEST);
    tg_wire_free(e);
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof(float));
    tg_net_get_params(net, w);
    Tg__Weights m = TG__WEIGHTS__INIT;
    Tg__Array a;
    int64_t shape[1] = {(int64_t)n}, sb[1];
    tg_array_set(&a, TG__DTYPE__F32, 1, shape, sb, w, n * sizeof(float));
    m.version = version;
    m.step = version;
    m.crc32c = tg_params_crc(w, n) ^ (bad_crc ? 1u : 0u);
    m.params = &a;
    Tg__Envelope out = TG__ENVELOPE__INIT;
    out.body_case = TG__ENVELOPE__BODY_WEIGHTS;
    out.weights = &m;
    assert_int_equal(tg_wire_send(router, zmq_msg_data(&id), zmq_msg_size(&id), &out), 0);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    free(w);
}

static void test_replica_checks_crc(void **state)
{
    (void)state;
    tg_config cfg;
    tg_net_config nc;
    test_config(&cfg, &nc);
    char d[64];
    tg_test_tmpdir(d, sizeof d);
    void *router = zmq_socket(ctx, ZMQ_ROUTER), *pub = zmq_socket(ctx, ZMQ_PUB);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pub, ZMQ_LINGER, &linger, sizeof linger);
    assert_int_equal(zmq_bind(router, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_bind(pub, "tcp://127.0.0.1:*"), 0);
    char rep[128], pubep[128], a_conn[200], a_pub[200];
    size_t len = sizeof rep;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, rep, &len);
    len = sizeof pubep;
    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, pubep, &len);
    snprintf(a_conn, sizeof a_conn, "infer.connect=%s", rep);
    snprintf(a_pub, sizeof a_pub, "infer.pub_connect=%s", pubep);
    const char *rargs[] = {"--serve-only", "--name", "replica", a_conn, a_pub, NULL};
    pid_t rp = spawn_learner(d, NULL, rargs);

    tg_net *net = tg_net_new(&nc, "cpu", 16, 1, 4242);
    assert_non_null(net);
    reply_weights(router, net, 7, 1); /* corrupted in transit */
    reply_weights(router, net, 7, 0); /* asked again: the good copy */
    json_t *st = wait_status(d, "replica", rp, "step", 7, 60, NULL);
    json_t *inf = json_object_get(st, "inference");
    assert_int_equal(json_integer_value(json_object_get(inf, "model_version")), 7);
    void *a = dealer(json_string_value(json_object_get(inf, "endpoint")));
    json_decref(st);
    float *t, *s;
    random_inputs(&nc, 3, 5, &t, &s);
    send_eval(a, &nc, 5, 3, 2, t, s);
    Tg__Envelope *e = recv_env(a, 30000);
    assert_non_null(e);
    check_response(e, net, &nc, 5, 7, 3, 2, t, s);
    tg_wire_free(e);
    char logp[512];
    snprintf(logp, sizeof logp, "%s/logs/replica.log", d);
    assert_true(log_has(logp, "fail their checksum"));

    kill(rp, SIGTERM);
    assert_int_equal(wait_exit(rp, 60, NULL), 0);
    zmq_close(a);
    zmq_close(router);
    zmq_close(pub);
    free(t);
    free(s);
    tg_net_free(net);
}

int main(void)
{
    tg_log_set_level(TG_LOG_WARN);
    ctx = zmq_ctx_new();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_resume_matches_uninterrupted, teardown),
        cmocka_unit_test_teardown(test_inference_equals_forward, teardown),
        cmocka_unit_test_teardown(test_inference_concurrent, teardown),
        cmocka_unit_test_teardown(test_malformed_requests, teardown),
        cmocka_unit_test_teardown(test_survives_vanishing_peers_and_replica_follows, teardown),
        cmocka_unit_test_teardown(test_replica_checks_crc, teardown),
    };
    /* the context is not terminated: a failed test may leave sockets open */
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
