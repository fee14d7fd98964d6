/* tg trim: a copy of a replay store (replay.h5) that keeps only each table's newest games, so
 * that a long run's state can be carried or archived where the whole file is too large (a device
 * call returns at most a few tens of MB; a T(3,3,3) run's played table reaches hundreds). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "replay/store.h"
#include "tools/cmds.h"

static const char *trim_use =
    "usage: tg trim IN OUT [--played N] [--best N] [--demos N]\n\n"
    "Copies the replay store IN (a run's replay.h5) to OUT keeping, per table, only its newest\n"
    "whole games up to N positions (the newest game is kept even if it alone is longer):\n"
    "  --played N   self-play games (default 100000 positions)\n"
    "  --best N     the best games (default -1: all)\n"
    "  --demos N    synthetic demonstrations (default 0: the replay server generates them again\n"
    "               up to replay.demos_size when it starts)\n"
    "OUT is a complete replay.h5 (written atomically; IN may be OUT) that a run restarts from:\n"
    "put it in the run directory without the old journal (replay.wal.*). Prints what it kept.\n"
    "Exit status 2 on a usage error or an unreadable IN, 1 if OUT cannot be written.\n";

/* The newest games of n (oldest first) that hold at most max positions (max < 0: all); at least
 * the newest one where max > 0. Returns the index of the first kept game. */
static int64_t trim_start(replay_game **g, int64_t n, long long max)
{
    if (max < 0) return 0;
    if (max == 0) return n;
    long long pos = 0;
    int64_t k = n;
    while (k > 0 && (k == n || pos + g[k - 1]->n_moves <= max)) {
        pos += g[k - 1]->n_moves;
        k--;
    }
    return k;
}

static long long positions(replay_game **g, int64_t n)
{
    long long p = 0;
    for (int64_t i = 0; i < n; i++) p += g[i]->n_moves;
    return p;
}

static int parse_count(const char *opt, const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < -1) {
        fprintf(stderr, "tg trim: %s wants a number of positions (-1 = all), not '%s'\n", opt, s);
        return -1;
    }
    *out = v;
    return 0;
}

int tg_cmd_trim(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(trim_use, stdout);
        return 0;
    }
    const char *in = NULL, *out = NULL;
    long long keep[REPLAY_NTABLES];
    keep[REPLAY_DEMOS] = 0;
    keep[REPLAY_PLAYED] = 100000;
    keep[REPLAY_BEST] = -1;
    for (int i = 1; i < argc; i++) {
        int tid = !strcmp(argv[i], "--played") ? REPLAY_PLAYED
                  : !strcmp(argv[i], "--best")  ? REPLAY_BEST
                  : !strcmp(argv[i], "--demos") ? REPLAY_DEMOS
                                                : -1;
        if (tid >= 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tg trim: %s needs a value\n%s", argv[i], trim_use);
                return 2;
            }
            if (parse_count(argv[i], argv[i + 1], &keep[tid])) return 2;
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "tg trim: unknown option %s\n%s", argv[i], trim_use);
            return 2;
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            fprintf(stderr, "tg trim: too many arguments\n%s", trim_use);
            return 2;
        }
    }
    if (!in || !out) {
        fputs(trim_use, stderr);
        return 2;
    }
    if (access(in, R_OK)) {
        fprintf(stderr, "tg trim: cannot read %s: %s\n", in, strerror(errno));
        return 2;
    }
    replay_store_meta meta;
    replay_store_tables t;
    if (replay_store_read(in, &meta, &t)) {
        fprintf(stderr, "tg trim: %s\n", tg_errmsg());
        return 2;
    }
    /* a view of the kept games (the read tables own them) */
    replay_store_tables view;
    memset(&view, 0, sizeof view);
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        int64_t k = trim_start(t.games[i], t.n[i], keep[i]);
        view.games[i] = t.games[i] + k;
        view.n[i] = t.n[i] - k;
    }
    int rc = 0;
    if (replay_store_write(out, &meta, &view)) {
        fprintf(stderr, "tg trim: %s\n", tg_errmsg());
        rc = 1;
    } else {
        struct stat st;
        for (int i = 0; i < REPLAY_NTABLES; i++)
            printf("%-7s kept %lld of %lld positions (%lld of %lld games)\n", replay_table_names[i],
                   positions(view.games[i], view.n[i]), positions(t.games[i], t.n[i]),
                   (long long)view.n[i], (long long)t.n[i]);
        printf("wrote %s (%.1f MB)\n", out, stat(out, &st) ? 0.0 : st.st_size / 1e6);
    }
    replay_store_tables_free(&t);
    return rc;
}
