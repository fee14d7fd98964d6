/* tg: the tensorgame command-line tool. Dispatches to subcommands (tools/cmds.h); adding one is
 * one row in the table below. */
#include <stdio.h>
#include <string.h>

#include "common/blas_core.h"
#include "tools/cmds.h"

typedef struct tg_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help; /* one line */
} tg_command;

static const tg_command commands[] = {
    {"verify", tg_cmd_verify, "verify every factorization in a file exactly (exit 0 only if all are correct)"},
    {"list", tg_cmd_list, "list the factorizations in a file: size, rank, arithmetic, coefficients"},
    {"show", tg_cmd_show, "print one factorization as an algorithm (m1 = (a11 + a22)(b11 + b22) ...)"},
    {"convert", tg_cmd_convert, "convert factorization files between HDF5 and JSON (by extension)"},
    {"bench", tg_cmd_bench, "benchmarks: tg bench net|matmul (tg bench --help lists them)"},
    {"golden", tg_cmd_golden, "check the network against golden vectors of net_reference.py"},
    {"keygen", tg_cmd_keygen, "write CURVE certificates for a cluster (server, clients, allow-list)"},
    {"stats", tg_cmd_stats, "ask a running replay server (or other service) for its statistics"},
    {"status", tg_cmd_status, "one screen about a run directory (learner, checkpoints, replay, actors, best ranks)"},
    {"trim", tg_cmd_trim, "copy a replay.h5 keeping each table's newest games (to carry a run's state)"},
    {"games", tg_cmd_games, "how a run's stored games end: solved, ranks, canonical against changed bases"},
    {"matmul", tg_cmd_matmul, "multiply random matrices with a factorization (fastmm): time, accuracy"},
    {"export", tg_cmd_export, "write a factorization as standalone C or CUDA source"},
    {"config", tg_cmd_config, "document the configuration keys, or check and print a config file"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: tg COMMAND [ARGS...]\n"
                 "       tg help COMMAND    (or tg COMMAND --help)\n\n"
                 "tensorgame: discovering matrix multiplication algorithms by reinforcement learning.\n\n"
                 "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
}

static const tg_command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    tg_blas_core_fix(argv); /* before any BLAS call: see common/blas_core.h */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        const tg_command *c = find(argv[2]);
        if (!c) {
            fprintf(stderr, "tg: unknown command '%s' (tg --help lists them)\n", argv[2]);
            return 2;
        }
        char *hargv[] = {argv[2], "--help", NULL};
        return c->run(2, hargv);
    }
    const tg_command *c = find(name);
    if (!c) {
        fprintf(stderr, "tg: unknown command '%s' (tg --help lists them)\n", name);
        return 2;
    }
    return c->run(argc - 1, argv + 1);
}
