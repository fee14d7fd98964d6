/* bin/tg-replay as a real process: kill -9 while games stream in (every acknowledged game is
 * there after the restart, also across checkpoints), and corrupt or truncated replay.h5 files
 * (a clear error, or --reset-corrupt moves them aside). */
#include "tests/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "learner/tb.h"
#include "replay/store.h"
#include "tests/replay_helpers.h"

/* Starts tg-replay on dir; returns the pid, endpoint in ep (empty if it exited first). */
static pid_t start(const char *dir, char *ep, size_t eplen, const char *extra)
{
    char epf[256], out[256];
    snprintf(epf, sizeof epf, "%s/replay.endpoint", dir);
    snprintf(out, sizeof out, "%s/replay.out", dir);
    unlink(epf);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        char bin[4096], rd[300];
        snprintf(bin, sizeof bin, "%s/tg-replay", tg_test_bin());
        snprintf(rd, sizeof rd, "run.dir=%s", dir);
        const char *argv[] = {bin, rd, "replay.endpoint=tcp://127.0.0.1:*", "game.targets=2,2,2", "game.r_limit=8",
                              "game.history=3", "replay.demos_size=1000", "replay.flush_count=4",
                              "replay.flush_ms=20", "replay.checkpoint_s=1", "replay.stats_s=1", extra, NULL};
        execv(bin, (char **)argv);
        _exit(127);
    }
    ep[0] = 0;
    for (int i = 0; i < 600; i++) {
        FILE *f = fopen(epf, "r");
        if (f) {
            if (fgets(ep, (int)eplen, f))
                ep[strcspn(ep, "\n")] = 0;
            fclose(f);
            if (ep[0])
                return pid;
        }
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return -WEXITSTATUS(st) - 1000; /* exited */
        usleep(20000);
    }
    fail_msg("tg-replay did not start");
    return -1;
}

static int stop(pid_t pid, int sig)
{
    int st;
    kill(pid, sig);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
}

typedef struct acked {
    uint64_t *ids;
    int n;
} acked;

/* Streams games for `seconds`, collecting acknowledged ids; returns the number sent. */
static int stream(const tg_config *c, const char *ep, double seconds, acked *a, tg_rng *rng)
{
    void *cl = rt_client(ep);
    int t = 100;
    zmq_setsockopt(cl, ZMQ_RCVTIMEO, &t, sizeof t);
    double t0 = tg_now();
    int sent = 0;
    while (tg_now() - t0 < seconds) {
        uint8_t *b;
        size_t n = rt_game(c, sent % 5 == 0, 4 + sent % 4, 3, rng, &b);
        rt_send_free(cl, b, n);
        sent++;
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, cl, sent % 8 ? ZMQ_DONTWAIT : 0) >= 0) {
            Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1 << 20);
            assert_non_null(e);
            assert_int_equal(e->body_case, TG__ENVELOPE__BODY_GAME_ACK);
            a->ids = realloc(a->ids, (size_t)(a->n + 1) * sizeof *a->ids);
            a->ids[a->n++] = e->game_ack->game_id;
            tg_wire_free(e);
            zmq_msg_close(&m);
            zmq_msg_init(&m);
        }
        zmq_msg_close(&m);
    }
    zmq_close(cl);
    return sent;
}

static int has_id(replay_game **g, int64_t n, uint64_t id)
{
    for (int64_t i = 0; i < n; i++)
        if (g[i]->id == id)
            return 1;
    return 0;
}

static void count_played(void *ud, const char *tag, int64_t step, double wall, double value)
{
    (void)step, (void)wall, (void)value;
    if (!strcmp(tag, "replay/played.positions"))
        (*(int *)ud)++;
}

static void test_kill9(void **st)
{
    (void)st;
    char dir[64], ep[256];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 9, 9);
    acked a = {0};
    int sent = 0;
    for (int round = 0; round < 3; round++) {
        pid_t pid = start(dir, ep, sizeof ep, "run.log_level=info");
        assert_true(pid > 0);
        void *cl = rt_client(ep);
        int games = (int)rt_stat(cl, "played.games");
        zmq_close(cl);
        assert_true(games >= a.n); /* everything acknowledged before the kill is back */
        assert_true(games <= sent);
        /* 1.3-2.2 s of inserts spans checkpoints (checkpoint_s = 1); then kill -9 mid-stream */
        sent += stream(&c, ep, 1.3 + 0.3 * round, &a, &rng);
        assert_int_equal(stop(pid, SIGKILL), -SIGKILL);
    }
    assert_true(a.n > 20);
    /* a clean stop writes the final checkpoint: every acknowledged id is in replay.h5 */
    pid_t pid = start(dir, ep, sizeof ep, "run.log_level=info");
    assert_true(pid > 0);
    assert_int_equal(stop(pid, SIGTERM), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/replay.h5", dir);
    replay_store_meta meta;
    replay_store_tables t;
    assert_int_equal(replay_store_read(path, &meta, &t), 0);
    assert_true(t.n[REPLAY_PLAYED] >= a.n);
    for (int i = 0; i < a.n; i++)
        if (!has_id(t.games[REPLAY_PLAYED], t.n[REPLAY_PLAYED], a.ids[i]))
            fail_msg("acknowledged game %llu is missing", (unsigned long long)a.ids[i]);
    assert_true(t.n[REPLAY_DEMOS] > 0);
    replay_store_tables_free(&t);
    /* h5py reads it, and the layout is the documented one */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/scripts/check_replay_h5.py %s %d", TG_SOURCE_DIR, dir, a.n);
    assert_int_equal(system(cmd), 0);
    /* TensorBoard scalars were written */
    char tbdir[128], ev[512] = "";
    snprintf(tbdir, sizeof tbdir, "%s/tb/tg-replay", dir);
    DIR *d = opendir(tbdir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, "events.out.tfevents.", 20))
            snprintf(ev, sizeof ev, "%s/%s", tbdir, de->d_name);
    closedir(d);
    int n_played = 0;
    assert_int_equal(tg_tb_read_scalars(ev, count_played, &n_played), 0);
    assert_true(n_played > 0);
    free(a.ids);
}

static int count_aside(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strstr(e->d_name, "replay.h5.corrupt-") != NULL;
    closedir(d);
    return n;
}

static int log_has(const char *dir, const char *what)
{
    char path[128], line[4096];
    snprintf(path, sizeof path, "%s/replay.out", dir);
    FILE *f = fopen(path, "r");
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void test_corrupt(void **st)
{
    (void)st;
    char dir[64], ep[256], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/replay.h5", dir);
    /* a valid file first, then truncated to half */
    pid_t pid = start(dir, ep, sizeof ep, "replay.demos_size=3000");
    assert_true(pid > 0);
    usleep(300000);
    assert_int_equal(stop(pid, SIGTERM), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size / 2), 0);
    pid = start(dir, ep, sizeof ep, "run.log_level=info");
    /* exit status 78: a restart cannot fix it (the cluster stops the run and says why) */
    assert_int_equal(pid, -TG_EXIT_SETUP - 1000);
    assert_true(log_has(dir, "replay store is unreadable"));
    assert_true(log_has(dir, "--reset-corrupt"));
    /* garbage */
    FILE *f = fopen(path, "w");
    fputs("this is not an HDF5 file", f);
    fclose(f);
    pid = start(dir, ep, sizeof ep, "run.log_level=info");
    assert_int_equal(pid, -TG_EXIT_SETUP - 1000);
    assert_int_equal(count_aside(dir), 0); /* nothing moved without the option */
    /* --reset-corrupt: moved aside, fresh start */
    pid = start(dir, ep, sizeof ep, "--reset-corrupt");
    assert_true(pid > 0);
    assert_int_equal(count_aside(dir), 1);
    void *cl = rt_client(ep);
    assert_int_equal(rt_stat(cl, "played.games"), 0);
    zmq_close(cl);
    assert_int_equal(stop(pid, SIGTERM), 0);
    /* a corrupt results.h5: an error naming it; --reset-corrupt moves it aside */
    char res[128];
    snprintf(res, sizeof res, "%s/results.h5", dir);
    f = fopen(res, "w");
    fputs("garbage", f);
    fclose(f);
    pid = start(dir, ep, sizeof ep, "run.log_level=info");
    assert_int_equal(pid, -TG_EXIT_SETUP - 1000);
    assert_true(log_has(dir, "results file is unreadable"));
    pid = start(dir, ep, sizeof ep, "--reset-corrupt");
    assert_true(pid > 0);
    assert_int_equal(stop(pid, SIGTERM), 0);
    assert_true(log_has(dir, "results.h5.corrupt-"));
    /* a second instance on the same run directory is refused */
    pid = start(dir, ep, sizeof ep, "run.log_level=info");
    assert_true(pid > 0);
    pid_t pid2 = start(dir, ep, sizeof ep, "run.log_level=info");
    assert_int_equal(pid2, -1 - 1000);
    assert_true(log_has(dir, "in use by another tg-replay"));
    assert_int_equal(stop(pid, SIGTERM), 0);
}

int main(void)
{
    tg_log_set_level(TG_LOG_WARN);
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_corrupt),
    };
    int rc = tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
    fflush(stdout);
    if (rc) /* a failed test may leave a server thread and sockets behind: do not hang in exit */
        _exit(rc);
    return 0;
}
