/* tg bench WHAT: benchmarks of the components; each prints its figures. Adding one: a row in
 * the table below and its declaration in tools/cmds.h. */
#include <stdio.h>
#include <string.h>

#include "tools/cmds.h"

typedef struct bench {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} bench;

static const bench benches[] = {
    {"net", tg_bench_net, "network: train samples/s, evaluation positions/s (K samples)"},
    {"matmul", tg_bench_matmul, "found algorithms on the GPU (fastmm) vs cuBLAS/OpenBLAS"},
    {"game", tg_bench_game, "tensor game: copy, move, hash, features, tokens, rank bound (ns/call)"},
    {"flip", tg_bench_flip, "flip-graph walk (actor.polish_share): CPU seconds from the naive algorithm to a rank"},
    {"mcts", tg_bench_mcts, "actor search: simulations/s on one core (zero-cost evaluator), evaluations/s"},
    {"learner", tg_bench_learner, "inference service: positions/s, mean batch, latency under concurrent clients"},
    {"replay", tg_bench_replay, "replay server: acknowledged inserts/s, batches/s at paper size over sockets"},
};
#define N_BENCHES (sizeof benches / sizeof benches[0])

static void bench_usage(FILE *out)
{
    fprintf(out, "usage: tg bench WHAT [ARGS...]   (tg bench WHAT --help for its options)\n\n");
    for (size_t i = 0; i < N_BENCHES; i++)
        fprintf(out, "  %-8s %s\n", benches[i].name, benches[i].help);
}

int tg_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        bench_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_BENCHES; i++)
        if (!strcmp(benches[i].name, argv[1]))
            return benches[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tg bench: unknown benchmark '%s'\n", argv[1]);
    bench_usage(stderr);
    return 2;
}
