/* tg games: what a run's stored games say about how it plays, from its replay.h5: per table
 * (played, best) and target, how many games were solved, at what mean rank, how many at the best
 * rank in the file, and the same apart for the games in the canonical basis and in changed bases
 * (a T(3,3,3) run had 14% of its canonical games at its best rank against 0.2% of the others:
 * docs/results.md). tg status shows the actors' last seconds; this shows the stored history. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/action.h"
#include "common/err.h"
#include "common/flip.h"
#include "replay/store.h"
#include "tools/cmds.h"

static const char *games_use =
    "usage: tg games RUN_DIR|REPLAY_H5 [--newest N]\n\n"
    "Summarises the games a run's replay store holds (RUN_DIR/replay.h5, or the file given):\n"
    "per table (played, best) and target, the games, the share solved, the mean rank of the\n"
    "solved ones, how many ended at the best rank in the file, and the solved games by rank;\n"
    "each for all games, those played in the canonical basis, those in changed bases and those\n"
    "the actors' polishing found (actor NAME/polish, not played by the network); and how\n"
    "many distinct factor sets (moves in any order, per basis) the games at the best rank hold.\n"
    "  --newest N   only each table's newest N games (default: all), to see how the run plays\n"
    "               now rather than over its history\n"
    "The file is only read (a live run's checkpoint is fine: it is replaced, never rewritten).\n"
    "Exit status 2 on a usage error or an unreadable file.\n";

#define GAMES_MAX_TARGETS 16

enum { K_ALL, K_CANON, K_CHANGED, K_POLISHED, K_N };
static const char *kind_names[K_N] = {"all", "canonical basis", "changed bases", "polished"};

/* a scheme the actor's polishing walk found (actor.polish_share), sent by NAME/polish: not a
 * game the network's search played */
static int is_polished(const replay_game *g)
{
    size_t n = strnlen(g->actor, sizeof g->actor);
    return n >= TG_POLISH_SUFFIX_LEN &&
           memcmp(g->actor + n - TG_POLISH_SUFFIX_LEN, TG_POLISH_SUFFIX, TG_POLISH_SUFFIX_LEN) == 0;
}

typedef struct games_sum {
    long long games, solved, rank_sum, at_best;
    long long *by_rank; /* [max_rank + 1] solved games by rank */
} games_sum;

static int same_dims(tg_dims a, tg_dims b) { return a.n == b.n && a.m == b.m && a.p == b.p; }

/* the lowest solved rank of target d in any of the tables, 0 if none */
static int best_rank(const replay_store_tables *t, const int64_t first[REPLAY_NTABLES], tg_dims d)
{
    int best = 0;
    for (int i = REPLAY_PLAYED; i < REPLAY_NTABLES; i++)
        for (int64_t j = first[i]; j < t->n[i]; j++) {
            const replay_game *g = t->games[i][j];
            if (g->solved && same_dims(g->dims, d) && (best == 0 || g->rank < best))
                best = g->rank;
        }
    return best;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

/* A game's factor set, whatever the order of its moves and the signs within each rank-one term:
 * the hash of its sorted terms' hashes, and of its basis (the same terms in two bases are two
 * factorizations of two tensors). */
static uint64_t factor_set_hash(const replay_game *g, uint64_t *terms)
{
    int S = g->S, A = 3 * S;
    for (int j = 0; j < g->n_moves; j++) {
        int8_t a[3 * TG_MAX_S];
        memcpy(a, g->actions + (size_t)j * A, (size_t)A);
        tg_action_canonicalize(a, S, g->mod2);
        terms[j] = fnv(14695981039346656037ULL, a, (size_t)A);
    }
    qsort(terms, (size_t)g->n_moves, sizeof *terms, cmp_u64);
    uint64_t h = fnv(14695981039346656037ULL, terms, (size_t)g->n_moves * sizeof *terms);
    return g->basis ? fnv(h, g->basis, (size_t)3 * S * S * sizeof *g->basis) : h;
}

/* how many distinct factor sets the table's solved games of target d at rank `rank` hold; -1 if
 * out of memory */
static long long distinct_at(const replay_store_tables *t, int tid, int64_t first, tg_dims d, int rank)
{
    int64_t n = t->n[tid] - first;
    int moves = 1; /* the terms buffer by the games' moves, not their stored rank */
    for (int64_t j = first; j < t->n[tid]; j++)
        if (t->games[tid][j]->n_moves > moves)
            moves = t->games[tid][j]->n_moves;
    uint64_t *h = malloc((size_t)(n > 0 ? n : 1) * sizeof *h), *terms = malloc((size_t)moves * sizeof *terms);
    long long k = 0, distinct = -1;
    if (!h || !terms)
        goto done;
    for (int64_t j = first; j < t->n[tid]; j++) {
        const replay_game *g = t->games[tid][j];
        if (g->solved && g->rank == rank && same_dims(g->dims, d))
            h[k++] = factor_set_hash(g, terms);
    }
    qsort(h, (size_t)k, sizeof *h, cmp_u64);
    distinct = 0;
    for (long long i = 0; i < k; i++)
        distinct += i == 0 || h[i] != h[i - 1];
done:
    free(h);
    free(terms);
    return distinct;
}

static void print_row(const char *name, const games_sum *s, long long all, int best, int max_rank)
{
    printf("  %-16s %8lld %5.0f%% %6.0f%%", name, s->games, all ? 100.0 * s->games / all : 0.0,
           s->games ? 100.0 * s->solved / s->games : 0.0);
    if (s->solved)
        printf(" %9.2f", (double)s->rank_sum / s->solved);
    else
        printf(" %9s", "-");
    if (!best)
        printf(" %16s", "");
    if (best)
        printf(" %7lld (%5.1f%%)", s->at_best, s->games ? 100.0 * s->at_best / s->games : 0.0);
    printf(" ");
    for (int r = 0; r <= max_rank; r++)
        if (s->by_rank[r])
            printf(" %d:%lld", r, s->by_rank[r]);
    putchar('\n');
}

/* one table's games of target d (from index first on) by kind */
static int print_table(const replay_store_tables *t, int tid, int64_t first, tg_dims d, int best)
{
    int max_rank = 0;
    for (int64_t j = first; j < t->n[tid]; j++)
        if (t->games[tid][j]->rank > max_rank)
            max_rank = t->games[tid][j]->rank;
    games_sum s[K_N];
    memset(s, 0, sizeof s);
    int rc = -1;
    for (int k = 0; k < K_N; k++)
        if (!(s[k].by_rank = calloc((size_t)max_rank + 1, sizeof *s[k].by_rank)))
            goto done;
    for (int64_t j = first; j < t->n[tid]; j++) {
        const replay_game *g = t->games[tid][j];
        if (!same_dims(g->dims, d))
            continue;
        int kinds[2] = {K_ALL, is_polished(g) ? K_POLISHED : g->basis ? K_CHANGED : K_CANON};
        for (int q = 0; q < 2; q++) {
            games_sum *x = &s[kinds[q]];
            x->games++;
            if (g->solved) {
                x->solved++;
                x->rank_sum += g->rank;
                x->by_rank[g->rank]++;
                x->at_best += g->rank <= best;
            }
        }
    }
    rc = 0;
    if (s[K_ALL].games == 0)
        goto done;
    char at[32] = "";
    if (best)
        snprintf(at, sizeof at, "at rank %d", best);
    printf("%s games, T(%d,%d,%d):\n  %-16s %8s %6s %7s %9s %16s   solved by rank\n", replay_table_names[tid], d.n,
           d.m, d.p, "", "games", "share", "solved", "mean rank", at);
    for (int k = 0; k < K_N; k++)
        if (k == K_ALL || (s[k].games > 0 && s[k].games < s[K_ALL].games))
            print_row(kind_names[k], &s[k], s[K_ALL].games, best, max_rank);
    /* one line replayed, or many ways to the best rank? */
    if (best && best <= max_rank && s[K_ALL].by_rank[best]) {
        long long nd = distinct_at(t, tid, first, d, best);
        if (nd < 0) {
            rc = -1;
            goto done;
        }
        printf("  the %lld games at rank %d hold %lld distinct factor sets (moves in any order)\n",
               s[K_ALL].by_rank[best], best, nd);
    }
done:
    for (int k = 0; k < K_N; k++)
        free(s[k].by_rank);
    if (rc)
        fprintf(stderr, "tg games: out of memory\n");
    return rc;
}

int tg_cmd_games(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(games_use, stdout);
        return 0;
    }
    const char *src = NULL;
    long long newest = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--newest") == 0 && i + 1 < argc) {
            char *end;
            errno = 0;
            newest = strtoll(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || newest < 1) {
                fprintf(stderr, "tg games: --newest wants a number of games (1 or more), not '%s'\n", argv[i]);
                return 2;
            }
        } else if (argv[i][0] != '-' && !src) {
            src = argv[i];
        } else {
            fputs(games_use, stderr);
            return 2;
        }
    }
    if (!src) {
        fputs(games_use, stderr);
        return 2;
    }
    char path[4096];
    struct stat st;
    if (stat(src, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(path, sizeof path, "%s/replay.h5", src);
    else
        snprintf(path, sizeof path, "%s", src);
    if (stat(path, &st) != 0) {
        fprintf(stderr, "tg games: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    replay_store_meta meta;
    replay_store_tables t;
    if (replay_store_read(path, &meta, &t)) {
        fprintf(stderr, "tg games: %s\n", tg_errmsg());
        return 2;
    }
    int64_t first[REPLAY_NTABLES];
    for (int i = 0; i < REPLAY_NTABLES; i++)
        first[i] = newest > 0 && t.n[i] > newest ? t.n[i] - newest : 0;
    char when[64] = "";
    time_t w = (time_t)meta.written;
    struct tm tmv;
    if (gmtime_r(&w, &tmv))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tmv);
    printf("%s (written %s):", path, when);
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        long long pos = 0;
        for (int64_t j = 0; j < t.n[i]; j++)
            pos += t.games[i][j]->n_moves;
        printf("%s %s %lld games (%lld positions)", i ? "," : "", replay_table_names[i], (long long)t.n[i], pos);
    }
    printf("\n");
    if (newest > 0)
        printf("(the newest %lld games of each table)\n", newest);
    /* the targets the played and best games are of, in order of appearance */
    tg_dims dims[GAMES_MAX_TARGETS];
    int nd = 0;
    for (int i = REPLAY_PLAYED; i < REPLAY_NTABLES; i++)
        for (int64_t j = first[i]; j < t.n[i]; j++) {
            int seen = 0;
            for (int k = 0; k < nd; k++)
                seen |= same_dims(dims[k], t.games[i][j]->dims);
            if (!seen && nd < GAMES_MAX_TARGETS)
                dims[nd++] = t.games[i][j]->dims;
        }
    int rc = 0;
    if (nd == 0)
        printf("no played or best games\n");
    for (int k = 0; k < nd && rc == 0; k++) {
        int best = best_rank(&t, first, dims[k]);
        for (int i = REPLAY_PLAYED; i < REPLAY_NTABLES && rc == 0; i++)
            if (print_table(&t, i, first[i], dims[k], best))
                rc = 1;
    }
    replay_store_tables_free(&t);
    return rc;
}
