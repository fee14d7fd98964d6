/* Subcommands of the `tg` tool. Each is `int tg_cmd_<name>(int argc, char **argv)` with argv[0]
 * the subcommand's name; it prints its usage for -h/--help and returns the process exit status
 * (0 success, 1 a negative result such as a failed verification, 2 a usage or input error).
 * Adding one: declare it here and add one row to the table in tools/main.c. */
#ifndef TG_TOOLS_CMDS_H
#define TG_TOOLS_CMDS_H

/* Factorization files (tools/cmd_fact.c). */
int tg_cmd_verify(int argc, char **argv);
int tg_cmd_list(int argc, char **argv);
int tg_cmd_show(int argc, char **argv);
int tg_cmd_convert(int argc, char **argv);
/* The run configuration (tools/cmd_config.c). */
int tg_cmd_config(int argc, char **argv);

/* Benchmarks (tools/cmd_bench.c dispatches to targets): tg bench matmul (cmd_bench_matmul.c). */
int tg_cmd_bench(int argc, char **argv);
int tg_bench_matmul(int argc, char **argv);
int tg_bench_net(int argc, char **argv);     /* tools/cmd_bench_net.c */
int tg_bench_game(int argc, char **argv);    /* tools/cmd_bench_game.c */
int tg_bench_flip(int argc, char **argv);    /* tools/cmd_bench_flip.c */
int tg_bench_mcts(int argc, char **argv);    /* tools/cmd_bench_mcts.c */
int tg_bench_learner(int argc, char **argv); /* tools/cmd_bench_learner.c */
int tg_bench_replay(int argc, char **argv);  /* tools/cmd_bench_replay.c */
/* The network against golden vectors (tools/cmd_golden.c). */
int tg_cmd_golden(int argc, char **argv);

/* Cluster operations: CURVE keys (tools/cmd_keygen.c), a server's statistics (cmd_stats.c). */
int tg_cmd_keygen(int argc, char **argv);
int tg_cmd_stats(int argc, char **argv);

/* A replay store's newest games only (tools/cmd_trim.c); how its games end (cmd_games.c). */
int tg_cmd_trim(int argc, char **argv);
int tg_cmd_games(int argc, char **argv);

/* A run directory at a glance (tools/cmd_status.c). */
int tg_cmd_status(int argc, char **argv);

/* fastmm: multiply with a factorization (tools/cmd_matmul.c), export it as C/CUDA source
 * (tools/cmd_export.c). */
int tg_cmd_matmul(int argc, char **argv);
int tg_cmd_export(int argc, char **argv);

/* 1 if argv[1..] asks for help (-h or --help). */
int tg_cmd_wants_help(int argc, char **argv);

#endif
