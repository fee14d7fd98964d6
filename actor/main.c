/* tg-actor: self-play with sampled MCTS against the learner's inference service. */
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "actor/fake_eval.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sock.h"

static volatile int g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tg-actor [--config FILE] [section.key=value ...] [options]\n"
            "\n"
            "Plays actor.games games of the tensor game at once with sampled MCTS (actor.simulations\n"
            "simulations per move), batching the leaf evaluations of all games into EvalRequests to the\n"
            "inference service(s) at infer.connect (a comma-separated list), with actor.inflight requests in\n"
            "flight. Finished games go to the replay server at replay.connect (acknowledged, resent if\n"
            "lost); a game that reaches the zero tensor is mapped back to the canonical basis, verified and\n"
            "reported (log line and Discovery message). Every actor.stats_s it logs its figures and, when\n"
            "run.dir exists, writes run.dir/status/actor-NAME.json (read by `tg status`) and TensorBoard\n"
            "scalars in run.dir/tb/actor-NAME/ (solved fraction, mean return, rates). Lost requests and\n"
            "games are re-issued after timeouts or as soon as a restarted peer is connected again.\n"
            "With actor.polish_share > 0 it also gives that share of its time to flip-graph walks from\n"
            "its best solved games; a shorter scheme is verified, reported and sent as a game by NAME/polish.\n"
            "SIGINT/SIGTERM stop it cleanly (games in progress are dropped, never half-sent).\n"
            "Exit status: 0 stopped cleanly, 2 usage, 78 a start-up error a restart cannot fix\n"
            "(unusable security keys), 1 any other failure.\n"
            "\n"
            "options:\n"
            "  --config FILE        the run's config.yaml (defaults otherwise)\n"
            "  --set KEY=VALUE      override one key (also as a bare KEY=VALUE argument)\n"
            "  --games N            stop after finishing N games (default: run until stopped)\n"
            "  --seconds S          stop after S seconds\n"
            "  --no-replay          do not send games to replay (debugging)\n"
            "  --name NAME          actor name in Game messages (default host:pid)\n"
            "  --log FILE           also append the log to FILE\n"
            "  --fake-evaluator     instead of playing, serve as a test double of the inference service\n"
            "                       on infer.endpoint (fiber actions + noise, value = -rank bound)\n"
            "  -h, --help           this help\n"
            "\n"
            "keys of section actor (see `tg config --doc` for all):\n"
            "  actor.games, actor.simulations, actor.c1, actor.c2, actor.n_bar, actor.inflight,\n"
            "  actor.eval_batch, actor.leaves_per_game, actor.virtual_loss, actor.max_nodes,\n"
            "  actor.dirichlet_alpha, actor.dirichlet_frac, actor.eval_timeout_s, actor.ack_timeout_s,\n"
            "  actor.max_unacked, actor.stats_s, actor.selfplay, actor.polish_share, actor.polish_plateau\n");
}

int main(int argc, char **argv)
{
    tg_log_set_process("tg-actor");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    tg_config cfg;
    tg_config_defaults(&cfg);
    argc = tg_config_from_args(&cfg, argc, argv);
    if (argc < 0) {
        fprintf(stderr, "tg-actor: %s\n", tg_errmsg());
        return 2;
    }
    tg_actor_opts o = {0};
    o.replay = 1;
    int fake = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--games") && i + 1 < argc) {
            o.max_games = atoll(argv[++i]);
        } else if (!strcmp(a, "--seconds") && i + 1 < argc) {
            o.max_seconds = atof(argv[++i]);
        } else if (!strcmp(a, "--no-replay")) {
            o.replay = 0;
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            o.name = argv[++i];
        } else if (!strcmp(a, "--log") && i + 1 < argc) {
            if (tg_log_set_file(argv[++i]) != 0) {
                fprintf(stderr, "tg-actor: %s\n", tg_errmsg());
                return 2;
            }
        } else if (!strcmp(a, "--fake-evaluator")) {
            fake = 1;
        } else {
            fprintf(stderr, "tg-actor: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    enum tg_log_level lvl;
    if (tg_log_level_parse(cfg.run.log_level, &lvl) == 0)
        tg_log_set_level(lvl);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (fake) {
        if (tg_fake_eval_serve(&cfg, cfg.infer.endpoint, &g_stop) != 0) {
            tg_error("%s", tg_errmsg());
            return 1;
        }
        return 0;
    }
    if (!cfg.actor.selfplay) {
        tg_info("actor.selfplay is off: nothing to do");
        return 0;
    }
    /* keys a restart cannot conjure up: say so (TG_EXIT_SETUP) rather than fail in a loop */
    tg_sock_sec *sec = tg_sock_sec_new(&cfg, 0);
    if (!sec) {
        tg_error("%s", tg_errmsg());
        return TG_EXIT_SETUP;
    }
    tg_sock_sec_free(sec);
    struct stat sb;
    if (stat(cfg.run.dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        o.status_dir = cfg.run.dir; /* status/actor-<name>.json for `tg status` */
    size_t per_game = tg_actor_game_bytes(&cfg);
    tg_info("%d games, %d simulations per move, K=%d, S=%d; memory bound %.1f MiB per game (actor.max_nodes=%d), "
            "%.1f MiB in all; inference at %s, replay at %s",
            cfg.actor.games, cfg.actor.simulations, cfg.infer.samples, cfg.game.S, per_game / 1048576.0,
            cfg.actor.max_nodes, per_game * (double)(cfg.actor.games + 1) / 1048576.0, cfg.infer.connect,
            o.replay ? cfg.replay.connect : "(none)");
    tg_actor *a = tg_actor_new(&cfg, &o);
    if (!a) {
        tg_error("%s", tg_errmsg());
        return 1;
    }
    int rc = tg_actor_run(a, &g_stop);
    if (rc != 0)
        tg_error("%s", tg_errmsg());
    tg_actor_stats st;
    tg_actor_get_stats(a, &st);
    tg_info("stopped: %llu games (%llu solved), %llu simulations, %llu evaluations in %.1f s",
            (unsigned long long)st.games, (unsigned long long)st.solved, (unsigned long long)st.simulations,
            (unsigned long long)st.positions, st.seconds);
    tg_actor_free(a);
    return rc == 0 ? 0 : 1;
}
