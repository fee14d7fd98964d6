/* `tg bench game`: throughput of the tensor-game operations the actor's search runs per node
 * (copy, move, hash, features, tokens, canonical form) and of the terminal rank bound. Prints
 * one line per operation: nanoseconds per call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/action.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/game.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/synth.h"

int tg_bench_game(int argc, char **argv); /* declared in tools/cmds.h */

static void usage(FILE *o)
{
    fprintf(o, "usage: tg bench game [--dims n,m,p] [--F SET] [--iters N]\n"
               "  Times the game operations of one search step on T(n,m,p) (default 3,3,3, F -2..2)\n"
               "  with random actions and prints ns per call.\n");
}

int tg_bench_game(int argc, char **argv)
{
    tg_dims d = {3, 3, 3};
    const char *fs = "-2..2";
    long iters = 200000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--dims") && i + 1 < argc) {
            if (tg_dims_parse(argv[++i], &d)) {
                fprintf(stderr, "tg bench game: %s\n", tg_errmsg());
                return 2;
            }
        } else if (!strcmp(argv[i], "--F") && i + 1 < argc) {
            fs = argv[++i];
        } else if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = atol(argv[++i]);
            if (iters < 1) {
                fprintf(stderr, "tg bench game: --iters must be >= 1\n");
                return 2;
            }
        } else {
            fprintf(stderr, "tg bench game: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    tg_coeffs F;
    if (tg_coeffs_parse(fs, &F)) {
        fprintf(stderr, "tg bench game: %s\n", tg_errmsg());
        return 2;
    }
    int modes[3];
    tg_dims_modes(d, modes);
    int S = modes[0];
    for (int k = 1; k < 3; k++)
        S = modes[k] > S ? modes[k] : S;
    if (S > TG_MAX_S) {
        fprintf(stderr, "tg bench game: S=%d is above the game's limit %d\n", S, TG_MAX_S);
        return 2;
    }
    const size_t n3 = (size_t)S * S * S;
    int32_t *T = malloc(n3 * sizeof *T);
    const int H = 7, NA = 1024, r_limit = 100000;
    int8_t *acts = malloc((size_t)NA * 3 * S);
    float *feat = malloc((size_t)(H + 1) * n3 * sizeof(float));
    int32_t tokens[3 * TG_MAX_S];
    tg_rng rng;
    tg_rng_seed(&rng, 1, 0);
    tg_matmul_tensor(d, S, T);
    for (int i = 0; i < NA; i++) {
        int8_t *a = acts + (size_t)i * 3 * S;
        memset(a, 0, (size_t)3 * S);
        for (int k = 0; k < 3; k++)
            for (int j = 0; j < modes[k]; j++)
                a[k * S + j] = F.v[tg_rng_below(&rng, (uint32_t)F.n)];
    }
    tg_game *g = tg_game_new(T, S, 0, r_limit, H), *c = tg_game_new(T, S, 0, r_limit, H);
    if (!g || !c) {
        fprintf(stderr, "tg bench game: %s\n", tg_errmsg());
        return 1;
    }
    /* a few moves in, as in a real search */
    for (int i = 0; i < 8; i++)
        tg_game_play(g, acts + (size_t)i * 3 * S);
    printf("T(%d,%d,%d) S=%d F=%s history=%d\n", d.n, d.m, d.p, S, fs, H);
    volatile uint64_t sink = 0;
    double t0 = tg_thread_cpu();
    for (long i = 0; i < iters; i++) {
        tg_game_copy(c, g);
        sink += tg_game_hash(c);
    }
    double t1 = tg_thread_cpu();
    printf("game_copy          %10.1f ns\n", 1e9 * (t1 - t0) / iters);
    t0 = tg_thread_cpu();
    for (long i = 0; i < iters; i++) {
        if (tg_game_step(c) > r_limit - 2)
            tg_game_copy(c, g);
        tg_game_play(c, acts + (size_t)(i % NA) * 3 * S);
        sink += tg_game_hash(c);
    }
    t1 = tg_thread_cpu();
    printf("game_play+hash     %10.1f ns\n", 1e9 * (t1 - t0) / iters);
    t0 = tg_thread_cpu();
    for (long i = 0; i < iters; i++) {
        int8_t a[3 * TG_MAX_S];
        memcpy(a, acts + (size_t)(i % NA) * 3 * S, (size_t)3 * S);
        sink += (uint64_t)tg_action_canonicalize(a, S, 0);
    }
    t1 = tg_thread_cpu();
    printf("canonicalize       %10.1f ns\n", 1e9 * (t1 - t0) / iters);
    int n_steps = S; /* 3 entries per token */
    t0 = tg_thread_cpu();
    for (long i = 0; i < iters; i++) {
        tg_action_to_tokens(&F, S, n_steps, acts + (size_t)(i % NA) * 3 * S, tokens);
        sink += (uint64_t)tokens[0];
    }
    t1 = tg_thread_cpu();
    printf("action_to_tokens   %10.1f ns  (n_steps=%d)\n", 1e9 * (t1 - t0) / iters, n_steps);
    long fi = iters / 20 + 1;
    t0 = tg_thread_cpu();
    for (long i = 0; i < fi; i++) {
        float sc[2];
        tg_game_features(g, feat, 2, sc);
        sink += (uint64_t)feat[i % n3];
    }
    t1 = tg_thread_cpu();
    printf("game_features      %10.1f ns\n", 1e9 * (t1 - t0) / fi);
    /* rank bound of a residual 12 random moves from T (the terminal penalty) */
    tg_game *r = tg_game_new(T, S, 0, 12, 0);
    for (int i = 0; i < 12; i++)
        tg_game_play(r, acts + (size_t)(100 + i) * 3 * S);
    long ri = iters / 50 + 1;
    t0 = tg_thread_cpu();
    for (long i = 0; i < ri; i++)
        sink += (uint64_t)tg_rank_bound(tg_game_residual(r), S, 0);
    t1 = tg_thread_cpu();
    printf("rank_bound (Q)     %10.1f ns\n", 1e9 * (t1 - t0) / ri);
    int32_t *m2 = malloc(n3 * sizeof *m2);
    for (size_t i = 0; i < n3; i++)
        m2[i] = tg_game_residual(r)[i] & 1;
    t0 = tg_thread_cpu();
    for (long i = 0; i < ri; i++)
        sink += (uint64_t)tg_rank_bound(m2, S, 1);
    t1 = tg_thread_cpu();
    printf("rank_bound (GF2)   %10.1f ns\n", 1e9 * (t1 - t0) / ri);
    (void)sink;
    free(m2);
    tg_game_free(r);
    tg_game_free(g);
    tg_game_free(c);
    free(T);
    free(acts);
    free(feat);
    return 0;
}
