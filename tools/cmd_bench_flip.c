/* `tg bench flip`: the flip-graph walk of actor.polish_share on its own (common/flip.h): from the
 * naive algorithm of T(n,m,p), per seed, the flips and CPU seconds to each new best rank, and
 * flips per second. One core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fact.h"
#include "common/flip.h"
#include "common/log.h"

int tg_bench_flip(int argc, char **argv); /* declared in tools/cmds.h */

static void usage(FILE *o)
{
    fprintf(o, "usage: tg bench flip [--dims n,m,p] [--rank R] [--seeds N] [--seconds S] [--bound C]\n"
               "                     [--plateau P]\n"
               "  Walks from the naive algorithm of T(n,m,p) (default 3,3,3) until rank R (default 23)\n"
               "  or S CPU seconds per seed (default 60), N seeds (default 3), coefficients within\n"
               "  [-C, C] (default 1), P flips without a reduction before a restart (default 100, as\n"
               "  actor.polish_plateau). Prints the flips and seconds to each new best rank.\n");
}

int tg_bench_flip(int argc, char **argv)
{
    tg_dims d = {3, 3, 3};
    int rank = 23, seeds = 3, bound = 1;
    double seconds = 60;
    long plateau = 100;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "tg bench flip: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "--dims")) {
            if (tg_dims_parse(v, &d)) {
                fprintf(stderr, "tg bench flip: %s\n", tg_errmsg());
                return 2;
            }
        } else if (!strcmp(a, "--rank")) {
            rank = atoi(v);
        } else if (!strcmp(a, "--seeds")) {
            seeds = atoi(v);
        } else if (!strcmp(a, "--seconds")) {
            seconds = atof(v);
        } else if (!strcmp(a, "--bound")) {
            bound = atoi(v);
        } else if (!strcmp(a, "--plateau")) {
            plateau = atol(v);
        } else {
            fprintf(stderr, "tg bench flip: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (rank < 1 || seeds < 1 || !(seconds > 0) || plateau < 1) {
        fprintf(stderr, "tg bench flip: --rank, --seeds, --seconds and --plateau must be positive\n");
        return 2;
    }
    tg_fact *naive = tg_fact_naive(d);
    if (!naive) {
        fprintf(stderr, "tg bench flip: %s\n", tg_errmsg());
        return 2;
    }
    int rc = 0, reached = 0;
    double t_sum = 0;
    printf("T(%d,%d,%d) from the naive rank %d to rank %d, coefficients in [-%d, %d], plateau %ld\n", d.n, d.m,
           d.p, tg_fact_rank(naive), rank, bound, bound, plateau);
    for (int s = 1; s <= seeds && rc == 0; s++) {
        tg_flip *f = tg_flip_new(d, tg_fact_rank(naive) + 2, bound, (uint64_t)s);
        if (!f || tg_flip_start(f, naive) != 0) {
            fprintf(stderr, "tg bench flip: %s\n", tg_errmsg());
            rc = 2;
            tg_flip_free(f);
            break;
        }
        double t0 = tg_thread_cpu(), t = 0;
        int best = tg_flip_best_rank(f);
        printf("seed %d:", s);
        while (best > rank && (t = tg_thread_cpu() - t0) < seconds) {
            int r = tg_flip_walk(f, 20000, plateau, 1, rank);
            if (r < best) {
                best = r;
                printf(" %d at %.2f s (%.1fM flips)", r, tg_thread_cpu() - t0, (double)tg_flip_flips(f) / 1e6);
                fflush(stdout);
            }
        }
        t = tg_thread_cpu() - t0;
        tg_fact *b = tg_flip_best(f);
        int ok = b && tg_fact_verify(b, 0, NULL) == 1;
        printf("; %s, %.2f s, %.2fM flips/s%s\n", best <= rank ? "reached" : "not reached", t,
               (double)tg_flip_flips(f) / 1e6 / (t > 0 ? t : 1e-9), ok ? ", verified" : ", VERIFICATION FAILED");
        if (!ok)
            rc = 1;
        if (best <= rank) {
            reached++;
            t_sum += t;
        }
        tg_fact_free(b);
        tg_flip_free(f);
    }
    if (rc == 0)
        printf("rank %d in %d of %d seeds%s", rank, reached, seeds, reached ? "" : "\n");
    if (rc == 0 && reached)
        printf(", mean %.2f CPU s where reached\n", t_sum / reached);
    tg_fact_free(naive);
    return rc;
}
