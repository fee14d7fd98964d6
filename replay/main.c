/* tg-replay: the replay server (see replay/README.md). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "replay/server.h"

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tg-replay [--config FILE] [--set section.key=value | section.key=value ...] [--reset-corrupt]\n"
            "\n"
            "The replay server: a ZeroMQ ROUTER on replay.endpoint over the tables demos (synthetic\n"
            "demonstrations, generated at start up to replay.demos_size positions), played (self-play games,\n"
            "FIFO up to replay.capacity positions) and best (games that reached the best rank so far).\n"
            "Actors send Game (answered by GameAck once durable: replay.flush_count games or replay.flush_ms)\n"
            "and Discovery (verified exactly, appended to results.h5, answered by GameAck); the learner sends\n"
            "SampleRequest (answered by Batch, rate-limited by replay.samples_per_insert after\n"
            "replay.min_size positions); anyone may send StatsRequest (answered by Stats). Bad requests get\n"
            "an Error reply. Protocol and guarantees: replay/README.md; file layout: docs/formats.md.\n"
            "\n"
            "Files in run.dir: replay.h5 (checkpoint, rewritten atomically every replay.checkpoint_s),\n"
            "replay.wal.* (journal of acknowledged games since), results.h5, replay.endpoint (the bound\n"
            "address), logs/tg-replay.log, tb/tg-replay/ (TensorBoard scalars every replay.stats_s).\n"
            "\n"
            "options:\n"
            "  --config FILE     run configuration (YAML); keys: `tg config --doc`\n"
            "  key=value         override one key, e.g. replay.endpoint=tcp://127.0.0.1:*\n"
            "  --reset-corrupt   move an unreadable replay.h5 or results.h5 aside (FILE.corrupt-<time>) and\n"
            "                    start fresh; keep the readable part of a damaged journal\n"
            "  --help            this text\n"
            "\n"
            "SIGINT/SIGTERM stop it cleanly (acknowledge, checkpoint). kill -9 loses no acknowledged game.\n"
            "Exit status: 0 stopped cleanly, 2 usage, 78 a start-up error a restart cannot fix\n"
            "(an unreadable file without --reset-corrupt, unusable keys), 1 any other failure.\n");
}

int main(int argc, char **argv)
{
    replay_server_opts o = {0};
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    tg_log_set_process("tg-replay");
    static tg_config c;
    tg_config_defaults(&c);
    argc = tg_config_from_args(&c, argc, argv);
    if (argc < 0) {
        fprintf(stderr, "tg-replay: %s\n", tg_errmsg());
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reset-corrupt")) {
            o.reset_corrupt = 1;
        } else {
            fprintf(stderr, "tg-replay: unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    enum tg_log_level lv;
    if (tg_log_level_parse(c.run.log_level, &lv) == 0)
        tg_log_set_level(lv);
    char logs[4200], logf[4300];
    snprintf(logs, sizeof logs, "%s/logs", c.run.dir);
    mkdir(c.run.dir, 0755);
    mkdir(logs, 0755);
    snprintf(logf, sizeof logf, "%s/tg-replay.log", logs);
    if (tg_log_set_file(logf))
        tg_warn("%s", tg_errmsg());
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int permanent = 0;
    replay_server *s = replay_server_new(&c, &o, &permanent);
    if (!s) {
        tg_error("%s", tg_errmsg());
        return permanent ? TG_EXIT_SETUP : 1;
    }
    int rc = replay_server_run(s, &stop_flag);
    if (rc)
        tg_error("%s", tg_errmsg());
    replay_server_free(s);
    tg_info("stopped");
    return rc ? 1 : 0;
}
