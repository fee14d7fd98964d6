/* tg-learner: trains the network from replay and serves evaluations to actors; with
 * --serve-only, an inference replica that follows the learner's weights. See learner/learner.h. */
#include <stdio.h>
#include <string.h>

#include "common/blas_core.h"
#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "learner/learner.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tg-learner [--config FILE] [--backend auto|cpu|cuda] [--serve-only]\n"
            "                  [--name NAME] [section.key=value ...]\n"
            "\n"
            "Trains the tensor-game network on batches from the replay server (replay.connect),\n"
            "serves batched evaluations to actors on infer.endpoint (ROUTER) with the newest\n"
            "weights, announces every weights version on infer.pub_endpoint (PUB), and writes\n"
            "RUN_DIR/checkpoints/step-NNNNNNNN.h5 (+ `latest`) every train.checkpoint_every steps,\n"
            "TensorBoard events to RUN_DIR/tb/<name>/, its log to RUN_DIR/logs/<name>.log and a\n"
            "status file RUN_DIR/status/<name>.json (read by `tg status RUN_DIR`).\n"
            "On start it resumes from the newest checkpoint; SIGTERM or SIGINT saves a checkpoint\n"
            "and exits; so do train.max_steps and run.budget_s.\n"
            "\n"
            "  --config FILE     the run configuration (YAML); keys can be overridden after it\n"
            "  --backend B       network backend: auto (CUDA where a GPU is present), cpu, cuda\n"
            "                    (same as train.backend=B)\n"
            "  --serve-only      inference replica: subscribes to infer.pub_connect, fetches each\n"
            "                    new weights version from the learner (checked by CRC32C) and\n"
            "                    serves evaluations on infer.endpoint; trains nothing\n"
            "  --name NAME       process name for logs, status and TensorBoard (default\n"
            "                    tg-learner, or tg-serve-<host> with --serve-only)\n"
            "  -h, --help        this help; `tg config --doc` lists every configuration key\n"
            "\n"
            "Keys used: run.dir run.seed run.budget_s run.log_level, game.* and net.* (the network),\n"
            "train.* (optimizer, schedule, checkpoints, prefetch, publish_every), infer.* (service),\n"
            "replay.connect, security.*.\n"
            "Exit status: 0 stopped cleanly, 2 usage, 78 a start-up error a restart cannot fix\n"
            "(the network's configuration, security keys, backend cuda without a CUDA device),\n"
            "1 any other failure.\n");
}

int main(int argc, char **argv)
{
    tg_blas_core_fix(argv); /* before any BLAS call: see common/blas_core.h */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
    tg_log_set_process("tg-learner");
    tg_config cfg;
    int n = tg_config_from_args(&cfg, argc, argv);
    if (n < 0) {
        fprintf(stderr, "tg-learner: %s\n", tg_errmsg());
        return 2;
    }
    tg_learner_opts o = {0};
    for (int i = 1; i < n; i++) {
        if (strcmp(argv[i], "--serve-only") == 0) {
            o.serve_only = 1;
        } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < n) {
            const char *b = argv[++i];
            if (strcmp(b, "auto") && strcmp(b, "cpu") && strcmp(b, "cuda")) {
                fprintf(stderr, "tg-learner: --backend: '%s' is not auto, cpu or cuda\n", b);
                return 2;
            }
            snprintf(cfg.train.backend, sizeof cfg.train.backend, "%s", b);
        } else if (strcmp(argv[i], "--name") == 0 && i + 1 < n) {
            o.name = argv[++i];
            if (!o.name[0] || strchr(o.name, '/')) {
                fprintf(stderr, "tg-learner: --name: '%s' is not a usable file name\n", o.name);
                return 2;
            }
        } else {
            fprintf(stderr, "tg-learner: unknown argument '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    enum tg_log_level lvl;
    if (tg_log_level_parse(cfg.run.log_level, &lvl) == 0)
        tg_log_set_level(lvl);
    return tg_learner_main(&cfg, &o);
}
