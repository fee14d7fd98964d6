/* tg bench mcts: the actor's search throughput on one core, with a zero-cost in-process
 * evaluator (uniformly random actions and values) or against a running inference service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "actor/eval.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "tools/cmds.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tg bench mcts [--target n,m,p] [--seconds S] [--games N] [--fake] [--features]\n"
            "                     [--endpoint URL[,URL...]] [--config FILE] [section.key=value ...]\n\n"
            "Runs the actor (one thread, actor.games games, actor.simulations simulations per move,\n"
            "K = infer.samples) for S seconds and prints simulations/s, moves/s and games/s. Without\n"
            "--endpoint the evaluator is in-process and costs nothing (uniformly random actions and\n"
            "values; --fake: the test double's policy instead), so the figure is the search's own speed.\n"
            "With --endpoint it plays against a running inference service (tg-learner) and also prints\n"
            "evaluations/s (positions evaluated per second for this actor). No replay server is used.\n\n"
            "  --target n,m,p   the target (default 2,2,2)\n"
            "  --seconds S      measured time (default 5)\n"
            "  --games N        games in flight (default 64)\n"
            "  --fake           in-process test-double policy instead of uniform\n"
            "  --features       build the network's input features for every leaf, as for a remote\n"
            "                   evaluator (included in the figure)\n"
            "  --endpoint URL   inference service(s) to evaluate against\n");
}

int tg_bench_mcts(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    /* bench defaults first, then the user's arguments (later settings win) */
    char **av = calloc((size_t)argc + 8, sizeof *av);
    char tbuf[64] = "game.targets=2,2,2", gbuf[64] = "actor.games=64";
    const char *endpoint = NULL;
    double seconds = 5;
    int fake = 0, features = 0, n = 0;
    if (!av)
        return 1;
    av[n++] = argv[0];
    av[n++] = tbuf;
    av[n++] = gbuf;
    av[n++] = "actor.stats_s=1000000";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--target") && more) {
            snprintf(tbuf, sizeof tbuf, "game.targets=%s", argv[++i]);
        } else if (!strcmp(a, "--games") && more) {
            snprintf(gbuf, sizeof gbuf, "actor.games=%s", argv[++i]);
        } else if (!strcmp(a, "--seconds") && more) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(a, "--endpoint") && more) {
            endpoint = argv[++i];
        } else if (!strcmp(a, "--fake")) {
            fake = 1;
        } else if (!strcmp(a, "--features")) {
            features = 1;
        } else {
            av[n++] = argv[i];
        }
    }
    av[n] = NULL;
    tg_config c;
    int rest = tg_config_from_args(&c, n, av);
    if (rest < 0) {
        fprintf(stderr, "tg bench mcts: %s\n", tg_errmsg());
        free(av);
        return 2;
    }
    if (rest > 1 || seconds <= 0) {
        if (rest > 1)
            fprintf(stderr, "tg bench mcts: unknown argument '%s'\n", av[1]);
        usage(stderr);
        free(av);
        return 2;
    }
    free(av);
    tg_log_set_level(TG_LOG_WARN);
    tg_eval_dims d = {c.game.S, c.game.history + 1, c.game.n_scalars, c.infer.samples, c.game.n_steps,
                      (float)c.infer.temperature};
    tg_evaluator *ev = NULL;
    if (!endpoint) {
        ev = tg_eval_local_new(&c, &d, fake ? TG_LOCAL_FAKE : TG_LOCAL_UNIFORM, c.run.seed);
        if (!ev) {
            fprintf(stderr, "tg bench mcts: %s\n", tg_errmsg());
            return 1;
        }
        if (features)
            tg_eval_local_use_features(ev);
    }
    tg_actor_opts o = {0};
    o.eval = ev;
    o.eval_endpoints = endpoint;
    o.max_seconds = seconds;
    o.quiet = 1;
    o.name = "bench";
    tg_actor *a = tg_actor_new(&c, &o);
    if (!a) {
        fprintf(stderr, "tg bench mcts: %s\n", tg_errmsg());
        tg_evaluator_free(ev);
        return 1;
    }
    volatile int stop = 0;
    int rc = tg_actor_run(a, &stop);
    tg_actor_stats st;
    tg_actor_get_stats(a, &st);
    tg_actor_free(a);
    tg_evaluator_free(ev);
    if (rc != 0) {
        fprintf(stderr, "tg bench mcts: %s\n", tg_errmsg());
        return 1;
    }
    double s = st.seconds > 0 ? st.seconds : 1e-9;
    printf("target: %s  S=%d  K=%d  games=%d  simulations/move=%d  evaluator=%s\n", c.game.targets[0], c.game.S,
           c.infer.samples, c.actor.games, c.actor.simulations,
           endpoint ? endpoint : fake ? "in-process fake policy" : "in-process zero-cost (uniform)");
    if (!endpoint)
        printf("features: %s\n", features ? "built for every leaf (h+1 slices, signed permutation)" : "not built");
    printf("seconds: %.2f\n", st.seconds);
    printf("simulations/s: %.0f\n", st.simulations / s);
    printf("simulations per CPU-second: %.0f (%.2f s of CPU in %.2f s: below 1 means other processes shared the core)\n",
           st.cpu_seconds > 0 ? st.simulations / st.cpu_seconds : 0.0, st.cpu_seconds, st.seconds);
    printf("moves/s: %.1f\n", st.moves / s);
    printf("games/s: %.2f (solved %llu of %llu)\n", st.games / s, (unsigned long long)st.solved,
           (unsigned long long)st.games);
    printf("nodes kept by subtree reuse per move: %.1f\n", st.moves ? (double)st.reused_nodes / st.moves : 0.0);
    printf("largest tree arena: %.2f MiB (bound %.2f MiB per game at actor.max_nodes=%d)\n",
           st.tree_bytes_max / 1048576.0, tg_actor_game_bytes(&c) / 1048576.0, c.actor.max_nodes);
    if (!endpoint) /* simulations that ended the game need no evaluation */
        printf("leaf evaluations/s: %.0f (%.0f%% of simulations)\n", st.positions / s,
               st.simulations ? 100.0 * st.positions / st.simulations : 0.0);
    if (endpoint) {
        printf("evaluations/s: %.0f\n", st.positions / s);
        printf("requests: %llu (%.1f positions each), re-issued %llu\n", (unsigned long long)st.batches,
               st.batches ? (double)st.positions / st.batches : 0.0, (unsigned long long)st.reissued);
    }
    return 0;
}
