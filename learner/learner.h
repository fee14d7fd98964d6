/* The learner process (bin/tg-learner): training loop, inference service, weights publishing,
 * checkpoints, TensorBoard events and the status file; or, with serve_only, an inference
 * replica that follows the learner's weights.
 *
 * Training: batches are prefetched from replay (learner/replay_client.h), one optimizer step
 * each; weights are handed to the inference service every train.publish_every steps (and
 * announced on PUB with their CRC32C); checkpoints every train.checkpoint_every steps
 * (learner/ckptdir.h), and on SIGTERM/SIGINT, at train.max_steps or run.budget_s, before exit.
 * On start the newest checkpoint is resumed (a SessionLog START marker goes to TensorBoard).
 *
 * Files: RUN_DIR/checkpoints/, RUN_DIR/tb/<name>/, RUN_DIR/logs/<name>.log and
 * RUN_DIR/status/<name>.json (rewritten atomically every second; `tg status` reads it). */
#ifndef TG_LEARNER_H
#define TG_LEARNER_H

#include "common/config.h"

typedef struct tg_learner_opts {
    int serve_only;
    const char *name;   /* process name for logs, status and tb (NULL: tg-learner / tg-serve-<host>) */
} tg_learner_opts;

/* Runs until stopped; returns the process exit status: 0 clean stop, TG_EXIT_SETUP
 * (common/err.h) when the network's configuration, the security keys or the backend on this
 * machine (cuda with no CUDA device) fail at start, 1 any other failure. */
int tg_learner_main(const tg_config *cfg, const tg_learner_opts *o);

#endif
