#include "learner/learner.h"

#include <cblas.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/sock.h"
#include "common/wire.h"
#include "learner/ckptdir.h"
#include "learner/infer.h"
#include "learner/net.h"
#include "learner/params.h"
#include "learner/replay_client.h"
#include "learner/runinfo.h"
#include "learner/tb.h"

#define STATUS_EVERY_S 1.0
#define TB_EVERY_S 1.0       /* training scalars: averaged over the steps of each second */
#define STATS_EVERY_S 5.0    /* replay stats and results.h5 */
#define RATE_WINDOW_S 5.0

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int mkdirs(const char *run_dir)
{
    const char *sub[] = {"", "/logs", "/status", "/checkpoints", "/tb"};
    char p[4200];
    for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
        snprintf(p, sizeof p, "%s%s", run_dir, sub[i]);
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return tg_fail("mkdir %s: %s", p, strerror(errno));
    }
    return 0;
}

/* RUN_DIR/config.yaml, when nobody wrote it (a learner started by hand): `tg status` and later
 * processes read the run's targets from it. link() makes "create unless present" atomic. */
static void write_run_config(const tg_config *cfg)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run.dir);
    if (access(path, F_OK) == 0)
        return;
    snprintf(tmp, sizeof tmp, "%s/.config.yaml.%d", cfg->run.dir, (int)getpid());
    if (tg_config_write(cfg, tmp) == 0 && link(tmp, path) == 0)
        tg_info("wrote %s", path);
    unlink(tmp);
}

/* The effective config as YAML text (stored in every checkpoint). */
static char *config_yaml(const tg_config *cfg, const char *run_dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/status/.learner-config.%d.yaml", run_dir, (int)getpid());
    if (tg_config_write(cfg, path) != 0)
        return strdup("");
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    if (f) {
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        fseek(f, 0, SEEK_SET);
        s = calloc(1, (size_t)(n > 0 ? n : 0) + 1);
        if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
            s[0] = 0;
        fclose(f);
    }
    unlink(path);
    return s ? s : strdup("");
}

/* ------------------------------------------------------------------ discoveries */

typedef struct best_seen {
    char key[48]; /* target/arithmetic */
    int rank;
} best_seen;

typedef struct disc_state {
    char path[4200];
    time_t mtime;
    off_t size;
    best_seen best[64];
    int n;
} disc_state;

/* Looks at results.h5 when it changed: new best ranks become TensorBoard text (with the
 * algorithm's equations) and best_rank/<target> scalars. */
static void poll_results(disc_state *d, tg_tb *tb, int64_t step, json_t *best_json)
{
    struct stat st;
    if (stat(d->path, &st) != 0 || (st.st_mtime == d->mtime && st.st_size == d->size))
        return;
    tg_result *r;
    int n;
    if (tg_results_load(d->path, &r, &n) != 0) {
        tg_warn("reading results: %s", tg_errmsg());
        return;
    }
    d->mtime = st.st_mtime;
    d->size = st.st_size;
    for (int i = 0; i < n; i++) {
        char key[48];
        snprintf(key, sizeof key, "%s/%s", r[i].target, r[i].arithmetic);
        int j;
        for (j = 0; j < d->n && strcmp(d->best[j].key, key) != 0; j++)
            ;
        if (j < d->n && d->best[j].rank <= r[i].rank)
            continue;
        if (j == d->n) {
            if (d->n == 64)
                continue;
            d->n++;
            snprintf(d->best[j].key, sizeof d->best[j].key, "%s", key);
        }
        d->best[j].rank = r[i].rank;
        char tag[96];
        snprintf(tag, sizeof tag, "best_rank/%s", key);
        if (tb)
            tg_tb_scalar(tb, tag, step, r[i].rank);
        char *eq = tg_fact_equations(r[i].fact);
        if (eq && tb) {
            /* markdown: indented lines render as a code block */
            size_t len = strlen(eq) * 2 + 512;
            char *md = malloc(len);
            if (md) {
                char when[64] = "?";
                if (isfinite(r[i].when)) {
                    time_t tt = (time_t)r[i].when;
                    struct tm tm;
                    gmtime_r(&tt, &tm);
                    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
                }
                int off = snprintf(md, len,
                                   "**T(%s)** rank **%d** (%s), found %s%s%s, model version %" PRIu64
                                   "\n\n",
                                   r[i].target, r[i].rank, r[i].arithmetic, when,
                                   r[i].actor[0] ? " by " : "", r[i].actor, r[i].model_version);
                for (const char *p = eq; *p && off < (int)len - 8;) {
                    const char *nl = strchr(p, '\n');
                    int ll = nl ? (int)(nl - p) : (int)strlen(p);
                    off += snprintf(md + off, len - (size_t)off, "    %.*s\n", ll, p);
                    p += ll + (nl ? 1 : 0);
                }
                snprintf(tag, sizeof tag, "discoveries/%s", key);
                tg_tb_text(tb, tag, step, md);
                free(md);
            }
        }
        free(eq);
        tg_info("best rank for T(%s) %s: %d", r[i].target, r[i].arithmetic, r[i].rank);
    }
    if (best_json) {
        json_object_clear(best_json);
        for (int j = 0; j < d->n; j++)
            json_object_set_new(best_json, d->best[j].key, json_integer(d->best[j].rank));
    }
    tg_results_free(r, n);
}

/* ------------------------------------------------------------------ status */

typedef struct rate {
    double t0, x0, rate;
} rate;

/* the rates a status file reports; busy: seconds of evaluation calls per second */
typedef struct status_rates {
    rate steps, samples, evals, batches, busy;
    rate t_replay, t_device, t_train, t_publish; /* s per s: shares of the wall time */
} status_rates;

static void rate_update(rate *r, double now, double x)
{
    if (r->t0 == 0) {
        r->t0 = now;
        r->x0 = x;
        return;
    }
    if (now - r->t0 >= RATE_WINDOW_S) {
        r->rate = (x - r->x0) / (now - r->t0);
        r->t0 = now;
        r->x0 = x;
    }
}

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ------------------------------------------------------------------ the learner */

typedef struct learner {
    const tg_config *cfg;
    const char *name;
    tg_net_config ncfg;
    tg_sock_sec *sec;
    tg_net *net;
    tg_share *share;
    tg_infer *infer;
    tg_replay_client *replay;
    tg_tb *tb;
    char *yaml;
    float *pbuf;
    size_t n_params;
    int64_t step, samples, last_ckpt_step;
    tg_train_stats last;
    double started_wall, started;
    disc_state disc;
    json_t *best_json;
    json_t *replay_stats;
    char state[64];
    /* where the training loop's wall time goes (s, cumulative): waiting for replay's batches,
     * waiting for the device's turn (time-sharing with inference), training steps, and
     * publishing weights and writing checkpoints; status shows them as shares of the time */
    double t_replay, t_device, t_train, t_publish;
} learner;

static int save_checkpoint(learner *L)
{
    tg_ckpt_meta m = {.step = L->step,
                      .wall_time = tg_wall(),
                      .loss_total = L->last.step ? L->last.loss.total : NAN,
                      .loss_policy = L->last.step ? L->last.loss.policy : NAN,
                      .loss_value = L->last.step ? L->last.loss.value : NAN,
                      .lr = L->last.step ? L->last.lr : NAN,
                      .samples = L->samples};
    char path[4400];
    double t0 = tg_now();
    if (tg_ckptdir_save(L->net, L->cfg->run.dir, &m, L->cfg->train.keep_checkpoints, L->yaml,
                        path, sizeof path) != 0) {
        tg_error("checkpoint at step %" PRId64 " failed: %s", L->step, tg_errmsg());
        return -1;
    }
    L->last_ckpt_step = L->step;
    tg_info("checkpoint %s (%.2f s)", path, tg_now() - t0);
    return 0;
}

static int publish(learner *L)
{
    if (tg_net_get_params(L->net, L->pbuf) != 0)
        return -1;
    return tg_infer_publish(L->infer, L->pbuf, L->n_params, (uint64_t)L->step, (uint64_t)L->step);
}

static void write_status(learner *L, status_rates *r)
{
    double now = tg_now();
    tg_infer_stats is;
    tg_infer_get_stats(L->infer, &is);
    rate_update(&r->steps, now, (double)L->step);
    rate_update(&r->samples, now, (double)L->samples);
    rate_update(&r->evals, now, (double)is.positions);
    rate_update(&r->batches, now, (double)is.batches);
    rate_update(&r->busy, now, is.busy_s);
    rate_update(&r->t_replay, now, L->t_replay);
    rate_update(&r->t_device, now, L->t_device);
    rate_update(&r->t_train, now, L->t_train);
    rate_update(&r->t_publish, now, L->t_publish);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    json_t *o = json_object();
    json_object_set_new(o, "process", json_string(L->name));
    json_object_set_new(o, "role", json_string(L->replay ? "learner" : "replica"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "host", json_string(host));
    json_object_set_new(o, "backend", json_string(tg_infer_backend(L->infer)));
    json_object_set_new(o, "started", json_real(L->started_wall));
    json_object_set_new(o, "updated", json_real(tg_wall()));
    json_object_set_new(o, "state", json_string(L->state));
    json_object_set_new(o, "step", json_integer(L->step));
    json_object_set_new(o, "samples", json_integer(L->samples));
    json_object_set_new(o, "steps_per_s", json_real(r->steps.rate));
    json_object_set_new(o, "samples_per_s", json_real(r->samples.rate));
    if (L->last.step) {
        json_t *loss = json_object();
        json_object_set_new(loss, "total", jnum(L->last.loss.total));
        json_object_set_new(loss, "policy", jnum(L->last.loss.policy));
        json_object_set_new(loss, "value", jnum(L->last.loss.value));
        json_object_set_new(o, "loss", loss);
        json_object_set_new(o, "lr", jnum(L->last.lr));
        json_object_set_new(o, "grad_norm", jnum(L->last.grad_norm));
    }
    json_object_set_new(o, "last_checkpoint_step", json_integer(L->last_ckpt_step));
    json_t *inf = json_object();
    json_object_set_new(inf, "endpoint", json_string(tg_infer_endpoint(L->infer)));
    json_object_set_new(inf, "pub_endpoint", json_string(tg_infer_pub_endpoint(L->infer)));
    json_object_set_new(inf, "model_version", json_integer((json_int_t)is.version));
    json_object_set_new(inf, "have_weights", json_boolean(is.have_weights));
    json_object_set_new(inf, "requests", json_integer((json_int_t)is.requests));
    json_object_set_new(inf, "positions", json_integer((json_int_t)is.positions));
    json_object_set_new(inf, "batches", json_integer((json_int_t)is.batches));
    json_object_set_new(inf, "bad_requests", json_integer((json_int_t)is.bad_requests));
    json_object_set_new(inf, "weights_served", json_integer((json_int_t)is.weights_served));
    json_object_set_new(inf, "evals_per_s", json_real(r->evals.rate));
    json_object_set_new(inf, "mean_batch",
                        json_real(r->batches.rate > 0 ? r->evals.rate / r->batches.rate : 0));
    json_object_set_new(inf, "busy", json_real(r->busy.rate));
    if (L->share)
        json_object_set_new(inf, "device_share", json_real(tg_share_infer_fraction(L->share)));
    json_object_set_new(o, "inference", inf);
    if (L->replay) {
        tg_replay_counters rc;
        tg_replay_client_counters(L->replay, &rc);
        json_t *rp = json_object();
        json_object_set_new(rp, "endpoint", json_string(L->cfg->replay.connect));
        json_object_set_new(rp, "batches", json_integer((json_int_t)rc.batches));
        json_object_set_new(rp, "bad", json_integer((json_int_t)rc.bad));
        json_object_set_new(rp, "errors", json_integer((json_int_t)rc.errors));
        json_object_set_new(rp, "reconnects", json_integer((json_int_t)rc.reconnects));
        json_object_set_new(rp, "last_error", json_string(rc.last_error));
        json_object_set_new(rp, "seconds_since_reply",
                            rc.last_reply > 0 ? json_real(now - rc.last_reply) : json_null());
        json_object_set(rp, "stats", L->replay_stats);
        json_object_set_new(o, "replay", rp);
        json_object_set(o, "best_rank", L->best_json);
        json_t *tm = json_object();
        json_object_set_new(tm, "replay", json_real(r->t_replay.rate));
        json_object_set_new(tm, "device_wait", json_real(r->t_device.rate));
        json_object_set_new(tm, "train", json_real(r->t_train.rate));
        json_object_set_new(tm, "publish", json_real(r->t_publish.rate));
        json_object_set_new(o, "time_shares", tm);
    }
    if (tg_runinfo_write_status(L->cfg->run.dir, L->name, o) != 0)
        tg_warn("status file: %s", tg_errmsg());
    json_decref(o);

    if (L->tb) {
        tg_tb_scalar(L->tb, "inference/evaluations_per_s", L->step, r->evals.rate);
        tg_tb_scalar(L->tb, "inference/mean_batch",
                     L->step, r->batches.rate > 0 ? r->evals.rate / r->batches.rate : 0);
        tg_tb_scalar(L->tb, "inference/busy", L->step, r->busy.rate);
        if (L->replay && (r->t_train.rate > 0 || r->t_replay.rate > 0)) {
            tg_tb_scalar(L->tb, "train/time_waiting_replay", L->step, r->t_replay.rate);
            tg_tb_scalar(L->tb, "train/time_waiting_device", L->step, r->t_device.rate);
            tg_tb_scalar(L->tb, "train/time_training", L->step, r->t_train.rate);
            tg_tb_scalar(L->tb, "train/time_publishing", L->step, r->t_publish.rate);
        }
    }
}

static void take_replay_stats(learner *L)
{
    char **keys;
    double *vals;
    const char *text;
    int n = tg_replay_client_stats(L->replay, &keys, &vals, &text);
    if (n <= 0)
        return;
    json_object_clear(L->replay_stats);
    for (int i = 0; i < n; i++) {
        json_object_set_new(L->replay_stats, keys[i], jnum(vals[i]));
        char tag[160];
        snprintf(tag, sizeof tag, "replay/%s", keys[i]);
        if (L->tb && isfinite(vals[i]))
            tg_tb_scalar(L->tb, tag, L->step, vals[i]);
    }
}

static int run_training(learner *L)
{
    const tg_config *cfg = L->cfg;
    double last_status = 0, last_tb = tg_now(), last_stats = 0, last_wait_log = tg_now();
    status_rates rates = {0};
    /* averages since the last TensorBoard write */
    double acc_total = 0, acc_pol = 0, acc_val = 0, acc_gn = 0;
    int acc_n = 0;
    int64_t acc_samples0 = L->samples;
    double acc_t0 = tg_now();
    snprintf(L->state, sizeof L->state, "waiting for replay");
    while (!g_stop) {
        double now = tg_now();
        if (cfg->run.budget_s > 0 && now - L->started >= cfg->run.budget_s) {
            tg_info("run.budget_s reached");
            break;
        }
        if (cfg->train.max_steps > 0 && L->step >= cfg->train.max_steps) {
            tg_info("train.max_steps (%" PRId64 ") reached", cfg->train.max_steps);
            break;
        }
        if (now - last_stats >= STATS_EVERY_S) {
            last_stats = now;
            take_replay_stats(L);
            tg_replay_client_ask_stats(L->replay);
            poll_results(&L->disc, L->tb, L->step, L->best_json);
        }
        if (now - last_status >= STATUS_EVERY_S) {
            last_status = now;
            write_status(L, &rates);
            if (L->tb)
                tg_tb_flush(L->tb);
        }
        tg_batch_view b;
        double tw = tg_now();
        int got = tg_replay_client_next(L->replay, 100, &b);
        L->t_replay += tg_now() - tw;
        if (got != 1) {
            if (tg_now() - last_wait_log > 30) {
                tg_replay_counters rc;
                tg_replay_client_counters(L->replay, &rc);
                tg_info("waiting for batches from replay %s%s%s", cfg->replay.connect,
                        rc.last_error[0] ? ": " : "", rc.last_error);
                last_wait_log = tg_now();
            }
            snprintf(L->state, sizeof L->state, "waiting for replay");
            continue;
        }
        snprintf(L->state, sizeof L->state, "training");
        last_wait_log = tg_now();
        tg_train_stats ts;
        double t0 = tg_now();
        if (L->share)
            tg_share_acquire(L->share, TG_SHARE_TRAIN);
        double t1 = tg_now();
        int rc = tg_net_train_step(L->net, &b, &ts);
        if (L->share)
            tg_share_release(L->share, TG_SHARE_TRAIN);
        L->t_device += t1 - t0;
        L->t_train += tg_now() - t1;
        if (rc != 0) {
            tg_error("training step failed: %s", tg_errmsg());
            return -1;
        }
        if (!isfinite(ts.loss.total)) {
            tg_error("training diverged at step %" PRId64 " (loss %g); stopping without a "
                     "checkpoint so the last good one stays newest", ts.step, ts.loss.total);
            return -1;
        }
        L->step = ts.step;
        L->samples += b.B;
        L->last = ts;
        acc_total += ts.loss.total;
        acc_pol += ts.loss.policy;
        acc_val += ts.loss.value;
        acc_gn += ts.grad_norm;
        acc_n++;
        now = tg_now();
        if (L->step % cfg->train.publish_every == 0 && publish(L) != 0)
            tg_warn("publishing weights: %s", tg_errmsg());
        if (L->step % cfg->train.checkpoint_every == 0)
            save_checkpoint(L);
        L->t_publish += tg_now() - now;
        now = tg_now();
        if (L->tb && (now - last_tb >= TB_EVERY_S || (acc_n == 1 && L->step <= 1))) {
            tg_tb_scalar(L->tb, "loss/total", L->step, acc_total / acc_n);
            tg_tb_scalar(L->tb, "loss/policy", L->step, acc_pol / acc_n);
            tg_tb_scalar(L->tb, "loss/value", L->step, acc_val / acc_n);
            tg_tb_scalar(L->tb, "train/grad_norm", L->step, acc_gn / acc_n);
            tg_tb_scalar(L->tb, "train/lr", L->step, ts.lr);
            tg_tb_scalar(L->tb, "train/samples_per_s", L->step,
                         (double)(L->samples - acc_samples0) / fmax(now - acc_t0, 1e-9));
            acc_total = acc_pol = acc_val = acc_gn = 0;
            acc_n = 0;
            acc_samples0 = L->samples;
            acc_t0 = now;
            last_tb = now;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ replica */

static int run_replica(learner *L)
{
    const tg_config *cfg = L->cfg;
    void *sub = tg_sock_connect(L->sec, ZMQ_SUB, cfg->infer.pub_connect);
    if (!sub)
        return -1;
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    char fetch_ep[TG_STR];
    snprintf(fetch_ep, sizeof fetch_ep, "%s", cfg->infer.connect);
    void *fetch = tg_sock_connect(L->sec, ZMQ_DEALER, fetch_ep);
    if (!fetch) {
        tg_sock_close(sub);
        return -1;
    }
    uint64_t have = 0, want = 0;
    int have_any = 0;
    double asked = 0, last_status = 0;
    status_rates rates = {0};
    snprintf(L->state, sizeof L->state, "waiting for weights");
    while (!g_stop) {
        double now = tg_now();
        if (now - last_status >= STATUS_EVERY_S) {
            last_status = now;
            write_status(L, &rates);
        }
        /* ask for the newest weights at start, when an announcement says there are newer
         * ones, and again when an answer is overdue */
        if ((!have_any || want > have) && now - asked > 2.0) {
            Tg__WeightsRequest r = TG__WEIGHTS_REQUEST__INIT;
            r.version = 0; /* newest: a replica that lags behind skips versions */
            Tg__Envelope e = TG__ENVELOPE__INIT;
            e.body_case = TG__ENVELOPE__BODY_WEIGHTS_REQUEST;
            e.weights_request = &r;
            if (tg_wire_send(fetch, NULL, 0, &e) != 0)
                tg_debug("replica: %s", tg_errmsg());
            asked = now;
        }
        zmq_pollitem_t it[2] = {{.socket = sub, .events = ZMQ_POLLIN},
                                {.socket = fetch, .events = ZMQ_POLLIN}};
        if (zmq_poll(it, 2, 100) <= 0)
            continue;
        for (int k = 0; k < 2; k++) {
            if (!(it[k].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, it[k].socket, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                continue;
            }
            Tg__Envelope *e = zmq_msg_more(&m) ? NULL
                              : tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), TG_WIRE_MAX_DEFAULT);
            int more = zmq_msg_more(&m);
            zmq_msg_close(&m);
            while (more) {
                zmq_msg_init(&m);
                if (zmq_msg_recv(&m, it[k].socket, 0) < 0)
                    more = 0;
                else
                    more = zmq_msg_more(&m);
                zmq_msg_close(&m);
            }
            if (!e) {
                tg_warn("replica: bad message from the learner: %s", tg_errmsg());
                continue;
            }
            if (e->body_case == TG__ENVELOPE__BODY_WEIGHTS_ANNOUNCE) {
                Tg__WeightsAnnounce *a = e->weights_announce;
                if (!have_any || a->version > have) {
                    want = a->version;
                    if (a->endpoint && a->endpoint[0] && strcmp(a->endpoint, fetch_ep) != 0) {
                        /* the learner says where to fetch: follow it */
                        void *nf = tg_sock_connect(L->sec, ZMQ_DEALER, a->endpoint);
                        if (nf) {
                            tg_sock_close(fetch);
                            fetch = nf;
                            snprintf(fetch_ep, sizeof fetch_ep, "%s", a->endpoint);
                            tg_info("replica: fetching weights from %s", fetch_ep);
                        }
                    }
                    asked = 0; /* ask now */
                }
            } else if (e->body_case == TG__ENVELOPE__BODY_WEIGHTS) {
                Tg__Weights *w = e->weights;
                int64_t shape[1] = {(int64_t)L->n_params};
                if (tg_array_check(w->params, TG__DTYPE__F32, 1, shape, "weights") != 0) {
                    tg_warn("replica: %s", tg_errmsg());
                } else {
                    uint32_t crc = tg_crc32c(w->params->data.data, w->params->data.len);
                    if (crc != w->crc32c) {
                        tg_warn("replica: weights version %" PRIu64 " fail their checksum "
                                "(%08x, expected %08x); asking again", w->version, crc, w->crc32c);
                        asked = 0;
                    } else if (!have_any || w->version >= have) {
                        memcpy(L->pbuf, w->params->data.data, w->params->data.len);
                        if (tg_infer_publish(L->infer, L->pbuf, L->n_params, w->version, w->step) == 0) {
                            if (!have_any || w->version != have)
                                tg_info("replica: weights version %" PRIu64 " (step %" PRIu64 ")",
                                        w->version, w->step);
                            have = w->version;
                            have_any = 1;
                            L->step = (int64_t)w->step;
                            if (want < have)
                                want = have;
                            snprintf(L->state, sizeof L->state, "serving");
                        }
                    }
                }
            } else if (e->body_case == TG__ENVELOPE__BODY_ERROR) {
                tg_debug("replica: learner says: %s", e->error->message);
            }
            tg_wire_free(e);
        }
    }
    tg_sock_close(sub);
    tg_sock_close(fetch);
    return 0;
}

/* ------------------------------------------------------------------ main */

int tg_learner_main(const tg_config *cfg, const tg_learner_opts *o)
{
    learner Lv, *L = &Lv;
    memset(L, 0, sizeof *L);
    L->cfg = cfg;
    /* replicas on several hosts share the run directory: one name per host by default */
    char serve_name[128] = "tg-serve-", host[64] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '-';
    strncat(serve_name, host, sizeof serve_name - strlen(serve_name) - 1);
    L->name = o->name ? o->name : o->serve_only ? serve_name : "tg-learner";
    L->started = tg_now();
    L->started_wall = tg_wall();
    int status = 1;
    char logpath[4400], ckpath[4400];

    install_signals();
    tg_log_set_process(L->name);
    if (mkdirs(cfg->run.dir) != 0) {
        tg_error("%s", tg_errmsg());
        return 1;
    }
    snprintf(logpath, sizeof logpath, "%s/logs/%s.log", cfg->run.dir, L->name);
    if (tg_log_set_file(logpath) != 0)
        tg_warn("log file %s: %s", logpath, tg_errmsg());
    if (!o->serve_only)
        write_run_config(cfg);
    L->best_json = json_object();
    L->replay_stats = json_object();
    snprintf(L->disc.path, sizeof L->disc.path, "%s/results.h5", cfg->run.dir);

    status = TG_EXIT_SETUP; /* until the network exists: nothing a restart would change */
    if (tg_net_config_from_run(cfg, &L->ncfg) != 0)
        goto fail;
    L->sec = tg_sock_sec_new(cfg, 1);
    if (!L->sec)
        goto fail;
    L->yaml = config_yaml(cfg, cfg->run.dir);
    if (o->serve_only) {
        /* a replica trains nothing: only the service's own network lives on the device */
        tg_params tab;
        if (tg_params_build(&L->ncfg, &tab) != 0)
            goto fail;
        L->n_params = tab.total;
        tg_params_free(&tab);
    } else {
        L->net = tg_net_new(&L->ncfg, cfg->train.backend, cfg->train.batch, cfg->train.threads,
                            cfg->run.seed);
        if (!L->net)
            goto fail;
        L->n_params = tg_net_n_params(L->net);
    }
    status = 1;
    L->pbuf = malloc(L->n_params * sizeof(float));
    if (!L->pbuf) {
        tg_fail("out of memory");
        goto fail;
    }
    char nc[512];
    tg_net_config_format(&L->ncfg, nc, sizeof nc);
    tg_info("%s: %zu parameters, %s", o->serve_only ? "inference replica" : "learner",
            L->n_params, nc);

    int resumed = 0, concurrent = 0;
    if (!o->serve_only) {
        tg_opt_config opt;
        tg_opt_config_from_run(cfg, &opt);
        tg_net_set_opt(L->net, &opt);
        tg_ckpt_meta meta;
        int r = tg_ckptdir_resume(L->net, cfg->run.dir, &meta, ckpath, sizeof ckpath);
        if (r < 0)
            goto fail;
        if (r == 1) {
            resumed = 1;
            int64_t ostep = 0;
            tg_net_get_opt_state(L->net, NULL, NULL, &ostep);
            L->step = ostep;
            L->samples = meta.samples;
            L->last_ckpt_step = L->step;
            tg_info("resumed from %s (step %" PRId64 ")", ckpath, L->step);
        } else {
            tg_info("no checkpoint in %s/checkpoints: starting from scratch", cfg->run.dir);
        }
        /* On the CPU backend with infer.threads > 0 inference has cores of its own: a small network's
         * training and inference each run fastest on one thread (a pool of two is slower than one at
         * batch 64), so on 2 cores they run side by side instead of taking turns on both.
         * infer.concurrent asks for the same on any backend: on the CUDA backend each net has its
         * own stream, so the GPU can overlap the two and fill the gaps of either's host work. */
        concurrent = cfg->infer.concurrent ||
                     (cfg->infer.threads > 0 && strcmp(tg_net_backend(L->net), "cpu") == 0);
        if (!concurrent && !(L->share = tg_share_new(cfg->infer.share))) {
            tg_fail("out of memory");
            goto fail;
        }
    }

    tg_infer_opts io = {.ncfg = &L->ncfg,
                        .backend = L->net ? tg_net_backend(L->net) : cfg->train.backend,
                        .threads = cfg->infer.threads > 0 ? cfg->infer.threads : cfg->train.threads,
                        .max_batch = cfg->infer.max_batch,
                        .max_wait_ms = cfg->infer.max_wait_ms,
                        .samples = cfg->infer.samples,
                        .temperature = cfg->infer.temperature,
                        .endpoint = cfg->infer.endpoint,
                        .pub_endpoint = o->serve_only ? NULL : cfg->infer.pub_endpoint,
                        .fetch_endpoint = cfg->infer.connect,
                        .share = L->share,
                        .sec = L->sec,
                        .seed = cfg->run.seed ^ 0x5eedf00dull ^ (uint64_t)getpid()};
    L->infer = tg_infer_start(&io);
    if (!L->infer)
        goto fail;
    const char *blas = getenv("OPENBLAS_CORETYPE");
    tg_info("backend %s (OpenBLAS core %s%s%s); inference service on %s%s%s", tg_infer_backend(L->infer),
            openblas_get_corename(), blas && blas[0] ? ", set by OPENBLAS_CORETYPE" : "",
            concurrent ? "; inference on its own threads, alongside training" : "", tg_infer_endpoint(L->infer),
            o->serve_only ? "" : ", weights announced on ", tg_infer_pub_endpoint(L->infer));

    char tbname[300];
    snprintf(tbname, sizeof tbname, "%s", L->name);
    L->tb = tg_tb_open(cfg->run.dir, tbname);
    if (!L->tb)
        tg_warn("%s; continuing without TensorBoard events", tg_errmsg());
    else if (resumed)
        tg_tb_session_start(L->tb, L->step + 1);

    int rc;
    if (o->serve_only) {
        rc = run_replica(L);
    } else {
        if (publish(L) != 0)
            goto fail;
        L->replay = tg_replay_client_new(L->sec, cfg->replay.connect, &L->ncfg, cfg->train.batch,
                                         cfg->train.prefetch);
        if (!L->replay)
            goto fail;
        tg_info("training from replay %s: batch %d, %d batches prefetched", cfg->replay.connect,
                cfg->train.batch, cfg->train.prefetch);
        rc = run_training(L);
        if (g_stop)
            tg_info("stop requested at step %" PRId64, L->step);
        if (rc == 0 && L->step > L->last_ckpt_step)
            rc = save_checkpoint(L);
    }
    snprintf(L->state, sizeof L->state, "stopped");
    if (L->infer) {
        status_rates z = {0};
        write_status(L, &z);
    }
    status = rc == 0 ? 0 : 1;
    goto done;
fail:
    tg_error("%s", tg_errmsg());
done:
    tg_replay_client_free(L->replay);
    tg_infer_stop(L->infer);
    if (L->tb)
        tg_tb_close(L->tb);
    tg_share_free(L->share);
    tg_net_free(L->net);
    tg_sock_sec_free(L->sec);
    free(L->pbuf);
    free(L->yaml);
    json_decref(L->best_json);
    json_decref(L->replay_stats);
    tg_info("exiting with status %d", status);
    return status;
}
