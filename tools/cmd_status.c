/* tg status RUN_DIR: one screen about a run, from its files only (so it works on a live or a
 * finished run, from any machine that sees the directory): status/<process>.json of the learner,
 * replicas and actors, checkpoints/ (attributes of each step file, `latest`), results.h5 (best
 * rank per target and when it was found), config.yaml (targets and target ranks), and the
 * replay server's TensorBoard events (replay sizes and rates when the learner is not there). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "learner/ckptdir.h"
#include "learner/runinfo.h"
#include "learner/tb.h"
#include "tools/cmds.h"

#define STALE_S 30.0

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tg status RUN_DIR [--watch [SECONDS]] [--brief | --results | --targets-reached]\n"
            "\n"
            "One screen about a run, read from its files (live or finished): the learner's step,\n"
            "rates and losses, where its time goes (training, waiting for the device or for\n"
            "replay), inference service and replicas, checkpoints (step, time, losses; which is\n"
            "latest), replay sizes and rates, games/s, actors and how their recent games end\n"
            "(share solved, mean rank; per target also the share that ended at the best rank\n"
            "found, and the same for the games in the canonical basis where games change basis),\n"
            "and the best rank per target with when it was found;\n"
            "whether deploy/run_cluster.sh still supervises it.\n"
            "\n"
            "  --watch [S]         redraw every S seconds (default 2) until interrupted\n"
            "  --brief             one line (for logs)\n"
            "  --results           every result in results.h5 with its algorithm\n"
            "  --targets-reached   print nothing; exit 0 if every target with a target rank\n"
            "                      (game.target_rank in config.yaml) has reached it, else 1\n");
}

/* ------------------------------------------------------------------ gathering */

typedef struct proc_status {
    char name[128];
    json_t *j;
    double age; /* seconds since its last update */
} proc_status;

typedef struct run_view {
    char dir[4096];
    tg_config cfg;
    int have_cfg;
    proc_status procs[256];
    int n_procs;
    tg_ckpt_info *ckpts;
    int n_ckpts;
    tg_result *results;
    int n_results;
    char results_err[256];
    /* replay scalars from its TensorBoard events: last two values per tag */
    struct tb_last {
        char tag[96];
        double v[2], wall[2];
        int n;
    } tb[128];
    int n_tb;
} run_view;

static void on_scalar(void *ud, const char *tag, int64_t step, double wall, double value)
{
    (void)step;
    run_view *v = ud;
    int i;
    for (i = 0; i < v->n_tb && strcmp(v->tb[i].tag, tag) != 0; i++)
        ;
    if (i == v->n_tb) {
        if (v->n_tb == 128)
            return;
        snprintf(v->tb[i].tag, sizeof v->tb[i].tag, "%s", tag);
        v->tb[i].n = 0;
        v->n_tb++;
    }
    struct tb_last *t = &v->tb[i];
    t->v[0] = t->v[1];
    t->wall[0] = t->wall[1];
    t->v[1] = value;
    t->wall[1] = wall;
    if (t->n < 2)
        t->n++;
}

static struct tb_last *tb_get(run_view *v, const char *tag)
{
    for (int i = 0; i < v->n_tb; i++)
        if (strcmp(v->tb[i].tag, tag) == 0)
            return &v->tb[i];
    return NULL;
}

/* The newest event file of tb/<process>/. */
static void read_tb(run_view *v, const char *process)
{
    char d[4200], best[4600] = "";
    snprintf(d, sizeof d, "%s/tb/%s", v->dir, process);
    DIR *dir = opendir(d);
    if (!dir)
        return;
    struct dirent *e;
    time_t newest = 0;
    while ((e = readdir(dir))) {
        if (!strstr(e->d_name, "tfevents"))
            continue;
        char p[4600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", d, e->d_name);
        if (stat(p, &st) == 0 && st.st_mtime >= newest) {
            newest = st.st_mtime;
            snprintf(best, sizeof best, "%s", p);
        }
    }
    closedir(dir);
    if (best[0] && tg_tb_read_scalars(best, on_scalar, v) != 0)
        tg_err_clear(); /* a damaged file: show what was read */
}

static int cmp_proc(const void *a, const void *b)
{
    return strcmp(((const proc_status *)a)->name, ((const proc_status *)b)->name);
}

static int gather(run_view *v, const char *dir)
{
    memset(v, 0, sizeof *v);
    snprintf(v->dir, sizeof v->dir, "%s", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tg_fail("%s is not a directory", dir);
    char p[4400];
    snprintf(p, sizeof p, "%s/config.yaml", dir);
    tg_config_defaults(&v->cfg);
    if (access(p, R_OK) == 0 && tg_config_load(&v->cfg, p) == 0 && tg_config_finish(&v->cfg) == 0)
        v->have_cfg = 1;
    tg_err_clear();

    snprintf(p, sizeof p, "%s/status", dir);
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        double now = tg_wall();
        while ((e = readdir(d)) && v->n_procs < 256) {
            size_t n = strlen(e->d_name);
            if (e->d_name[0] == '.' || n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
                continue;
            char f[4800];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            json_t *j = json_load_file(f, 0, NULL);
            if (!j)
                continue;
            proc_status *ps = &v->procs[v->n_procs++];
            snprintf(ps->name, sizeof ps->name, "%.*s", (int)(n - 5), e->d_name);
            ps->j = j;
            json_t *u = json_object_get(j, "updated");
            ps->age = u ? now - json_number_value(u) : 1e9;
        }
        closedir(d);
        qsort(v->procs, (size_t)v->n_procs, sizeof *v->procs, cmp_proc);
    }
    if (tg_ckptdir_list(dir, &v->ckpts, &v->n_ckpts) != 0)
        tg_err_clear();
    snprintf(p, sizeof p, "%s/results.h5", dir);
    if (tg_results_load(p, &v->results, &v->n_results) != 0) {
        snprintf(v->results_err, sizeof v->results_err, "%s", tg_errmsg());
        v->n_results = 0;
    }
    read_tb(v, "tg-replay");
    return 0;
}

static void release(run_view *v)
{
    for (int i = 0; i < v->n_procs; i++)
        json_decref(v->procs[i].j);
    free(v->ckpts);
    tg_results_free(v->results, v->n_results);
}

/* ------------------------------------------------------------------ helpers */

static double jget(json_t *o, const char *path)
{
    /* "a.b" looks into nested objects */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return cur && json_is_number(cur) ? json_number_value(cur) : NAN;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *s = json_object_get(o, key);
    return s && json_is_string(s) ? json_string_value(s) : "";
}

static const char *role_of(const proc_status *p)
{
    return jstr(p->j, "role");
}

static void fmt_age(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, len, "?");
    else if (s < 90)
        snprintf(buf, len, "%.0f s ago", s);
    else if (s < 5400)
        snprintf(buf, len, "%.0f min ago", s / 60);
    else if (s < 172800)
        snprintf(buf, len, "%.1f h ago", s / 3600);
    else
        snprintf(buf, len, "%.1f days ago", s / 86400);
}

static void fmt_time(double wall, char *buf, size_t len)
{
    if (!isfinite(wall) || wall <= 0) {
        snprintf(buf, len, "?");
        return;
    }
    time_t t = (time_t)wall;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void fmt_num(double x, char *buf, size_t len)
{
    if (!isfinite(x))
        snprintf(buf, len, "-");
    else if (fabs(x) >= 1e6)
        snprintf(buf, len, "%.2fM", x / 1e6);
    else if (fabs(x) >= 1e4)
        snprintf(buf, len, "%.1fk", x / 1e3);
    else if (x == floor(x))
        snprintf(buf, len, "%.0f", x);
    else
        snprintf(buf, len, "%.3g", x);
}

static proc_status *find_role(run_view *v, const char *role)
{
    proc_status *best = NULL;
    for (int i = 0; i < v->n_procs; i++)
        if (strcmp(role_of(&v->procs[i]), role) == 0 && (!best || v->procs[i].age < best->age))
            best = &v->procs[i];
    return best;
}

/* A replay statistic: from the learner's copy of replay's Stats, else replay's own events. */
static double replay_stat(run_view *v, const char *key, double *age)
{
    proc_status *l = find_role(v, "learner");
    if (l) {
        json_t *s = json_object_get(json_object_get(l->j, "replay"), "stats");
        json_t *x = s ? json_object_get(s, key) : NULL;
        if (x && json_is_number(x)) {
            if (age)
                *age = l->age;
            return json_number_value(x);
        }
    }
    char tag[128];
    snprintf(tag, sizeof tag, "replay/%s", key);
    struct tb_last *t = tb_get(v, tag);
    if (t) {
        if (age)
            *age = tg_wall() - t->wall[1];
        return t->v[1];
    }
    return NAN;
}

/* games/s from replay's events (the last two samples of inserts.games). */
static double games_rate(run_view *v)
{
    struct tb_last *t = tb_get(v, "replay/inserts.games");
    if (t && t->n == 2 && t->wall[1] > t->wall[0])
        return (t->v[1] - t->v[0]) / (t->wall[1] - t->wall[0]);
    return NAN;
}

/* best result per (target, arithmetic): indices into v->results */
static int best_results(run_view *v, int *idx, int max)
{
    int n = 0;
    for (int i = 0; i < v->n_results; i++) {
        int j;
        for (j = 0; j < n; j++)
            if (strcmp(v->results[idx[j]].target, v->results[i].target) == 0 &&
                strcmp(v->results[idx[j]].arithmetic, v->results[i].arithmetic) == 0)
                break;
        if (j == n) {
            if (n == max)
                continue;
            idx[n++] = i;
        } else if (v->results[i].rank < v->results[idx[j]].rank ||
                   (v->results[i].rank == v->results[idx[j]].rank &&
                    v->results[i].when < v->results[idx[j]].when)) {
            idx[j] = i;
        }
    }
    return n;
}

/* Best rank recorded for a target named as in the config ("2, 3,3" too; 0: none), in the run's
 * arithmetic where the config is known, else in any; *which gets its result. */
static int best_rank_named(run_view *v, const char *name, const tg_result **which)
{
    int best = 0;
    *which = NULL;
    tg_dims d;
    if (tg_dims_parse(name, &d) != 0)
        return 0;
    char key[32];
    snprintf(key, sizeof key, "%d,%d,%d", d.n, d.m, d.p);
    for (int i = 0; i < v->n_results; i++) {
        const tg_result *r = &v->results[i];
        if (strcmp(r->target, key) != 0 || (v->have_cfg && strcmp(r->arithmetic, v->cfg.game.arithmetic) != 0))
            continue;
        if (!best || r->rank < best) {
            best = r->rank;
            *which = r;
        }
    }
    return best;
}

/* Best rank recorded for config target t (0: none). */
static int best_for_target(run_view *v, int t, const tg_result **which)
{
    return best_rank_named(v, v->cfg.game.targets[t], which);
}

/* ------------------------------------------------------------------ output */

static void print_brief(run_view *v, FILE *out)
{
    proc_status *l = find_role(v, "learner");
    char a[32], b[32];
    if (l) {
        fmt_num(jget(l->j, "step"), a, sizeof a);
        fmt_num(jget(l->j, "samples_per_s"), b, sizeof b);
        fprintf(out, "step %s (%s samples/s, loss %.4g)", a, b, jget(l->j, "loss.total"));
    } else {
        fprintf(out, "no learner status");
    }
    fmt_num(replay_stat(v, "played.games", NULL), a, sizeof a);
    fmt_num(games_rate(v), b, sizeof b);
    fprintf(out, "; games %s (%s/s)", a, b);
    int idx[64];
    int n = best_results(v, idx, 64);
    fprintf(out, "; best:");
    if (n == 0)
        fprintf(out, " none yet");
    for (int i = 0; i < n; i++)
        fprintf(out, " %s%s=%d", v->results[idx[i]].target,
                strcmp(v->results[idx[i]].arithmetic, "integer") ? "(mod2)" : "",
                v->results[idx[i]].rank);
    fprintf(out, "\n");
}

/* Whether deploy/run_cluster.sh supervises the run: it holds RUN_DIR/cluster.lock while it does
 * (a lock taken and dropped here finds that out without disturbing it). 1 yes, 0 no, -1 no
 * supervisor ever ran here (started by hand, or an older run). */
static int supervisor_running(const char *dir, long *pid)
{
    char p[4200];
    *pid = 0;
    snprintf(p, sizeof p, "%s/status/cluster.pid", dir);
    FILE *f = fopen(p, "r");
    if (f) {
        if (fscanf(f, "%ld", pid) != 1)
            *pid = 0;
        fclose(f);
    }
    snprintf(p, sizeof p, "%s/cluster.lock", dir);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd); /* drops our shared lock, if we took it */
    return held;
}

static int live_actor(const proc_status *p)
{
    return strcmp(role_of(p), "actor") == 0 && p->age <= STALE_S && strcmp(jstr(p->j, "state"), "stopped") != 0;
}

/* the running actors' recent games of one target (sub: one of its parts, e.g. "canonical") */
typedef struct recent_sum {
    double games, solved, rank_sum, at_best;
} recent_sum;

static recent_sum recent_target(run_view *v, const char *target, const char *sub, int best)
{
    recent_sum z = {0, 0, 0, 0};
    for (int k = 0; k < v->n_procs; k++) {
        proc_status *p = &v->procs[k];
        if (!live_actor(p))
            continue;
        json_t *t = json_object_get(json_object_get(json_object_get(p->j, "recent"), "targets"), target);
        if (sub)
            t = json_object_get(t, sub);
        double g1 = jget(t, "games"), s1 = jget(t, "solved");
        if (!isfinite(g1) || !isfinite(s1))
            continue;
        z.games += g1, z.solved += s1;
        const char *key;
        json_t *n;
        json_object_foreach(json_object_get(t, "ranks"), key, n)
        {
            int rank = atoi(key);
            double c = json_is_number(n) ? json_number_value(n) : 0;
            z.rank_sum += rank * c;
            if (best > 0 && rank <= best)
                z.at_best += c;
        }
    }
    return z;
}

static void print_recent_sum(const recent_sum *z, int best, FILE *out)
{
    fprintf(out, "%.0f%% solved", 100 * z->solved / z->games);
    if (z->solved > 0)
        fprintf(out, " at a mean rank of %.2f", z->rank_sum / z->solved);
    if (best > 0)
        fprintf(out, "; at the best rank (%d): %.1f%%", best, 100 * z->at_best / z->games);
    fputc('\n', out);
}

/* Per target, the games the running actors finished in their last interval: how many were
 * solved, at what mean rank, and how many at the best rank known (results.h5). A policy that
 * solves every game at the naive rank and one that plays the best line half the time have the
 * same solved share; this line tells them apart. Where games change basis a second line gives
 * the canonical basis's games alone (a run's best lines may all come from it). Targets come from
 * the config, or where there is none from the actors' reports. */
static void print_recent_targets(run_view *v, FILE *out)
{
    const char *names[TG_MAX_TARGETS];
    int nt = 0;
    if (v->have_cfg)
        for (; nt < v->cfg.game.n_targets; nt++)
            names[nt] = v->cfg.game.targets[nt];
    for (int k = 0; !v->have_cfg && k < v->n_procs; k++) {
        if (!live_actor(&v->procs[k]))
            continue;
        const char *key;
        json_t *t;
        json_object_foreach(json_object_get(json_object_get(v->procs[k].j, "recent"), "targets"), key, t)
        {
            int seen = 0;
            for (int i = 0; i < nt; i++)
                seen |= strcmp(names[i], key) == 0;
            if (!seen && nt < TG_MAX_TARGETS)
                names[nt++] = key;
        }
    }
    for (int i = 0; i < nt; i++) {
        const tg_result *r;
        int best = best_rank_named(v, names[i], &r);
        recent_sum all = recent_target(v, names[i], NULL, best);
        if (all.games <= 0)
            continue;
        fprintf(out, "    %-8s %.0f games, ", names[i], all.games);
        print_recent_sum(&all, best, out);
        /* where games change basis: how those in the canonical one play (a run's best lines may
         * all come from it) */
        recent_sum can = recent_target(v, names[i], "canonical", best);
        if (can.games > 0 && can.games < all.games) {
            fprintf(out, "      in the canonical basis: %.0f games (%.0f%%), ", can.games, 100 * can.games / all.games);
            print_recent_sum(&can, best, out);
        }
    }
}

static void print_full(run_view *v, FILE *out)
{
    char t1[64], t2[64], t3[64], t4[64];
    fmt_time(tg_wall(), t1, sizeof t1);
    fprintf(out, "run %s    %s UTC\n", v->dir, t1);
    if (v->have_cfg) {
        fprintf(out, "targets:");
        for (int i = 0; i < v->cfg.game.n_targets; i++) {
            fprintf(out, " %s", v->cfg.game.targets[i]);
            if (v->cfg.game.target_rank[i] > 0)
                fprintf(out, " (rank %d)", v->cfg.game.target_rank[i]);
        }
        fprintf(out, ", %s arithmetic, F = %s\n", v->cfg.game.arithmetic, v->cfg.game.coeffs);
    }
    long spid;
    int sup = supervisor_running(v->dir, &spid);
    if (sup >= 0)
        fprintf(out, "supervisor: deploy/run_cluster.sh pid %ld, %s\n", spid,
                sup ? "running" : "not running (the run is stopped)");

    /* learner */
    proc_status *l = find_role(v, "learner");
    fprintf(out, "\nlearner");
    if (!l) {
        fprintf(out, ": no status file (not started yet?)\n");
    } else {
        fmt_age(l->age, t1, sizeof t1);
        const char *state = jstr(l->j, "state");
        fprintf(out, "  %s pid %.0f on %s, %s backend, %s%s (updated %s)\n", l->name,
                jget(l->j, "pid"), jstr(l->j, "host"), jstr(l->j, "backend"),
                l->age > STALE_S && strcmp(state, "stopped") ? "NOT RESPONDING, last " : "", state, t1);
        fmt_num(jget(l->j, "step"), t1, sizeof t1);
        fmt_num(jget(l->j, "samples"), t2, sizeof t2);
        fprintf(out, "  step %s   %.2f steps/s   %.0f samples/s   %s samples seen\n", t1,
                jget(l->j, "steps_per_s"), jget(l->j, "samples_per_s"), t2);
        if (isfinite(jget(l->j, "loss.total")))
            fprintf(out, "  loss %.5g (policy %.5g, value %.5g)   lr %.3g   grad norm %.3g\n",
                    jget(l->j, "loss.total"), jget(l->j, "loss.policy"), jget(l->j, "loss.value"),
                    jget(l->j, "lr"), jget(l->j, "grad_norm"));
        /* where the training loop's time went (last few seconds): what limits the learner */
        double tt = jget(l->j, "time_shares.train"), tr = jget(l->j, "time_shares.replay");
        if (isfinite(tt) && isfinite(tr) && tt + tr > 0 && strcmp(state, "stopped") != 0)
            fprintf(out, "  time: training %.0f%%, waiting for the device %.0f%%, for replay %.0f%%, "
                         "publishing and checkpoints %.0f%%\n",
                    100 * tt, 100 * jget(l->j, "time_shares.device_wait"), 100 * tr,
                    100 * jget(l->j, "time_shares.publish"));
        /* busy: the share of wall time in evaluation calls; device share: of the time the
         * learner's device was used (absent when inference runs alongside training) */
        double busy = jget(l->j, "inference.busy"), dshare = jget(l->j, "inference.device_share");
        fprintf(out, "  inference: model version %.0f, %.0f evaluations/s, mean batch %.1f, "
                     "%.0f requests (%.0f bad)",
                jget(l->j, "inference.model_version"), jget(l->j, "inference.evals_per_s"),
                jget(l->j, "inference.mean_batch"), jget(l->j, "inference.requests"),
                jget(l->j, "inference.bad_requests"));
        if (isfinite(busy))
            fprintf(out, ", busy %.0f%%", 100 * busy);
        if (isfinite(dshare))
            fprintf(out, ", device share %.0f%%", 100 * dshare);
        fputc('\n', out);
        json_t *rp = json_object_get(l->j, "replay");
        double since = jget(l->j, "replay.seconds_since_reply");
        if (rp && (!isfinite(since) || since > 10))
            fprintf(out, "  replay: no answer %s%s%s\n",
                    isfinite(since) ? "for a while" : "yet",
                    jstr(rp, "last_error")[0] ? ": " : "", jstr(rp, "last_error"));
    }
    for (int i = 0; i < v->n_procs; i++) {
        proc_status *p = &v->procs[i];
        if (strcmp(role_of(p), "replica") != 0)
            continue;
        fmt_age(p->age, t1, sizeof t1);
        fprintf(out, "  replica %s on %s: %s, model version %.0f, %.0f evaluations/s (updated %s)\n",
                p->name, jstr(p->j, "host"), jstr(p->j, "state"), jget(p->j, "inference.model_version"),
                jget(p->j, "inference.evals_per_s"), t1);
    }

    /* checkpoints */
    fprintf(out, "\ncheckpoints");
    if (v->n_ckpts == 0)
        fprintf(out, ": none yet\n");
    else
        fprintf(out, " (%d):\n", v->n_ckpts);
    for (int i = 0; i < v->n_ckpts && i < 8; i++) {
        tg_ckpt_info *c = &v->ckpts[i];
        const char *base = strrchr(c->path, '/');
        fmt_time(c->meta.wall_time, t1, sizeof t1);
        fmt_age(tg_wall() - c->meta.wall_time, t2, sizeof t2);
        fprintf(out, "  %s %-20s %s (%s)", c->latest ? "*" : " ", base ? base + 1 : c->path, t1, t2);
        if (isfinite(c->meta.loss_total))
            fprintf(out, "  loss %.5g (policy %.5g, value %.5g)", c->meta.loss_total,
                    c->meta.loss_policy, c->meta.loss_value);
        fprintf(out, "%s\n", c->latest ? "  <- latest" : "");
    }

    /* replay and actors */
    double age = NAN;
    double demos = replay_stat(v, "demos.positions", &age);
    fprintf(out, "\nreplay");
    if (!isfinite(demos)) {
        fprintf(out, ": no statistics yet\n");
    } else {
        fmt_age(age, t4, sizeof t4);
        fmt_num(demos, t1, sizeof t1);
        fmt_num(replay_stat(v, "played.positions", NULL), t2, sizeof t2);
        fmt_num(replay_stat(v, "best.positions", NULL), t3, sizeof t3);
        fprintf(out, " (as of %s): positions: demos %s, played %s, best %s\n", t4, t1, t2, t3);
        fmt_num(replay_stat(v, "played.games", NULL), t1, sizeof t1);
        fmt_num(games_rate(v), t2, sizeof t2);
        fprintf(out, "  games %s (%s games/s)   inserts %.0f positions/s   samples %.0f positions/s"
                     "   limiter %s\n",
                t1, t2, replay_stat(v, "inserts.per_s", NULL), replay_stat(v, "samples.per_s", NULL),
                replay_stat(v, "limiter.blocked", NULL) > 0 ? "waiting for games" : "open");
    }
    int actors = 0, live = 0;
    double games = 0, sims = 0, evals = 0, rg = 0, rs = 0, rr = 0, rsec = 0, rst = 0, rsi = 0;
    double pf = 0, ps = 0, pn = 0; /* actor.polish_share: flips, seconds, better ranks found */
    for (int i = 0; i < v->n_procs; i++) {
        proc_status *p = &v->procs[i];
        if (strcmp(role_of(p), "actor") != 0)
            continue;
        actors++;
        double g = jget(p->j, "games"), st = jget(p->j, "restarts"), si = jget(p->j, "restart_improved");
        games += isfinite(g) ? g : 0;
        rst += isfinite(st) ? st : 0;
        rsi += isfinite(si) ? si : 0;
        double f1 = jget(p->j, "polish_flips"), f2 = jget(p->j, "polish_seconds"), f3 = jget(p->j, "polish_found");
        pf += isfinite(f1) ? f1 : 0;
        ps += isfinite(f2) ? f2 : 0;
        pn += isfinite(f3) ? f3 : 0;
        if (live_actor(p)) {
            live++;
            double s = jget(p->j, "simulations_per_s"), e = jget(p->j, "evals_per_s");
            sims += isfinite(s) ? s : 0;
            evals += isfinite(e) ? e : 0;
            double g1 = jget(p->j, "recent.games"), s1 = jget(p->j, "recent.solved");
            double r1 = jget(p->j, "recent.solved_rank_sum"), t1r = jget(p->j, "recent.seconds");
            if (isfinite(g1) && isfinite(s1) && isfinite(r1)) {
                rg += g1, rs += s1, rr += r1;
                if (isfinite(t1r) && t1r > rsec) rsec = t1r;
            }
        }
    }
    if (actors)
        fprintf(out, "actors: %d running (%d known), %.0f games played, %.0f simulations/s, "
                     "%.0f evaluations/s\n",
                live, actors, games, sims, evals);
    else
        fprintf(out, "actors: none reported\n");
    /* how the policy plays now: the games the running actors finished in their last interval */
    if (rg > 0) {
        fprintf(out, "  recent games: %.0f in the last %.0f s, %.0f%% solved", rg, rsec, 100 * rs / rg);
        if (rs > 0) fprintf(out, " at a mean rank of %.2f", rr / rs);
        fputc('\n', out);
        print_recent_targets(v, out);
    }
    if (rst > 0) /* game.restart_prob */
        fprintf(out, "  restarts from best lines: %.0f games, %.0f of them below the best rank they started from\n",
                rst, rsi);
    if (pf > 0) /* actor.polish_share */
        fprintf(out, "  polishing: %.1fM flips in %.0f s (%.2fM/s), %.0f better ranks found\n", pf / 1e6, ps,
                ps > 0 ? pf / 1e6 / ps : 0.0, pn);

    /* best ranks */
    fprintf(out, "\nbest rank per target");
    if (v->results_err[0])
        fprintf(out, " (results.h5 unreadable: %s)", v->results_err);
    fprintf(out, ":\n");
    int shown = 0;
    if (v->have_cfg) {
        for (int i = 0; i < v->cfg.game.n_targets; i++) {
            const tg_result *r;
            int best = best_for_target(v, i, &r);
            int want = v->cfg.game.target_rank[i];
            fprintf(out, "  %-8s ", v->cfg.game.targets[i]);
            if (!best) {
                fprintf(out, "none yet");
            } else {
                fmt_time(r->when, t1, sizeof t1);
                fmt_age(tg_wall() - r->when, t2, sizeof t2);
                fprintf(out, "rank %d, found %s (%s)%s%s, model version %llu", best, t1, t2,
                        r->actor[0] ? " by " : "", r->actor, (unsigned long long)r->model_version);
            }
            if (want > 0)
                fprintf(out, "   [target %d: %s]", want, best && best <= want ? "reached" : "not yet");
            fprintf(out, "\n");
            shown++;
        }
    }
    int idx[64];
    int n = best_results(v, idx, 64);
    for (int i = 0; i < n; i++) {
        const tg_result *r = &v->results[idx[i]];
        if (v->have_cfg && strcmp(r->arithmetic, v->cfg.game.arithmetic) == 0) {
            int known = 0;
            for (int t = 0; t < v->cfg.game.n_targets; t++) {
                tg_dims d;
                char k[32];
                if (tg_dims_parse(v->cfg.game.targets[t], &d) == 0) {
                    snprintf(k, sizeof k, "%d,%d,%d", d.n, d.m, d.p);
                    known |= strcmp(k, r->target) == 0;
                }
            }
            if (known)
                continue;
        }
        fmt_time(r->when, t1, sizeof t1);
        fprintf(out, "  %-8s rank %d (%s), found %s\n", r->target, r->rank, r->arithmetic, t1);
        shown++;
    }
    if (!shown)
        fprintf(out, "  none yet\n");
}

static void print_results(run_view *v, FILE *out)
{
    if (v->results_err[0])
        fprintf(out, "results.h5: %s\n", v->results_err);
    if (v->n_results == 0) {
        fprintf(out, "no results recorded in %s/results.h5\n", v->dir);
        return;
    }
    int idx[64];
    int n = best_results(v, idx, 64);
    fprintf(out, "%d result(s) in %s/results.h5; best per target:\n", v->n_results, v->dir);
    for (int i = 0; i < n; i++) {
        const tg_result *r = &v->results[idx[i]];
        char t1[64];
        fmt_time(r->when, t1, sizeof t1);
        fprintf(out, "\nT(%s) rank %d (%s), found %s UTC%s%s, model version %llu, key %s\n", r->target,
                r->rank, r->arithmetic, t1, r->actor[0] ? " by " : "", r->actor,
                (unsigned long long)r->model_version, r->key);
        char *eq = tg_fact_equations(r->fact);
        if (eq) {
            fprintf(out, "%s", eq);
            if (eq[0] && eq[strlen(eq) - 1] != '\n')
                fputc('\n', out);
            free(eq);
        }
    }
}

/* 0 if every target with a target rank has reached it, 1 if not, 2 if that cannot be told. */
static int targets_reached(run_view *v)
{
    if (!v->have_cfg)
        return 2;
    int any = 0;
    for (int i = 0; i < v->cfg.game.n_targets; i++) {
        int want = v->cfg.game.target_rank[i];
        if (want <= 0)
            continue;
        any = 1;
        const tg_result *r;
        int best = best_for_target(v, i, &r);
        if (!best || best > want)
            return 1;
    }
    return any ? 0 : 1;
}

static volatile sig_atomic_t g_stop;
static void on_int(int sig)
{
    (void)sig;
    g_stop = 1;
}

int tg_cmd_status(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const char *dir = NULL;
    double watch = 0;
    int brief = 0, results = 0, reached = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--watch") == 0) {
            watch = 2;
            if (i + 1 < argc && argv[i + 1][0] != '-' && atof(argv[i + 1]) > 0 &&
                strspn(argv[i + 1], "0123456789.") == strlen(argv[i + 1]))
                watch = atof(argv[++i]);
        } else if (strncmp(argv[i], "--watch=", 8) == 0) {
            watch = atof(argv[i] + 8);
            if (!(watch > 0)) {
                fprintf(stderr, "tg status: --watch needs a positive number of seconds\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--brief") == 0) {
            brief = 1;
        } else if (strcmp(argv[i], "--results") == 0) {
            results = 1;
        } else if (strcmp(argv[i], "--targets-reached") == 0) {
            reached = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tg status: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (!dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "tg status: one run directory only\n");
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    if (brief + results + reached > 1) {
        fprintf(stderr, "tg status: --brief, --results and --targets-reached exclude each other\n");
        return 2;
    }
    signal(SIGINT, on_int);
    signal(SIGTERM, on_int);
    int tty = isatty(STDOUT_FILENO);
    for (;;) {
        run_view *v = malloc(sizeof *v);
        if (!v) {
            fprintf(stderr, "tg status: out of memory\n");
            return 2;
        }
        if (gather(v, dir) != 0) {
            fprintf(stderr, "tg status: %s\n", tg_errmsg());
            free(v);
            return 2;
        }
        int rc = 0;
        if (reached) {
            rc = targets_reached(v);
        } else {
            if (watch > 0 && tty)
                fputs("\033[H\033[2J", stdout);
            if (brief)
                print_brief(v, stdout);
            else if (results)
                print_results(v, stdout);
            else
                print_full(v, stdout);
            fflush(stdout);
        }
        release(v);
        free(v);
        if (watch <= 0 || g_stop)
            return rc;
        for (double t = 0; t < watch && !g_stop; t += 0.1)
            usleep(100000);
        if (g_stop)
            return 0;
        if (!tty)
            fputs("\n", stdout);
    }
}
