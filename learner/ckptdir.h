/* The checkpoints of a run: RUN_DIR/checkpoints/step-NNNNNNNN.h5 (learner/checkpoint.h's format
 * plus attributes wall_time, loss_total, loss_policy, loss_value, lr, samples) and `latest`, a
 * symbolic link to the newest. Every file is completed under a temporary name and renamed, and
 * `latest` is replaced by a rename, so a crash at any point leaves the previous checkpoint
 * usable. Only the newest `keep` step files are kept. */
#ifndef TG_CKPTDIR_H
#define TG_CKPTDIR_H

#include <stddef.h>
#include <stdint.h>

#include "learner/net.h"

typedef struct tg_ckpt_meta {
    int64_t step;
    double wall_time;      /* seconds since the epoch */
    double loss_total, loss_policy, loss_value; /* of the last step (NAN: none) */
    double lr;
    int64_t samples;       /* training positions seen so far */
} tg_ckpt_meta;

typedef struct tg_ckpt_info {
    tg_ckpt_meta meta;
    int latest;            /* `latest` points here */
    char path[4096];
} tg_ckpt_info;

/* Saves net as checkpoints/step-<meta->step>.h5, points `latest` at it and deletes all but the
 * newest `keep` step files. path_out (may be NULL) gets the file's path. */
int tg_ckptdir_save(tg_net *net, const char *run_dir, const tg_ckpt_meta *meta, int keep,
                    const char *config_yaml, char *path_out, size_t path_len);
/* Loads the newest usable checkpoint into net: `latest` first, then step files from the newest
 * down (a file that fails to load is reported and skipped). Returns 1 (loaded; *meta filled),
 * 0 (no checkpoint), -1 (checkpoints exist but none loads: refusing to start from scratch). */
int tg_ckptdir_resume(tg_net *net, const char *run_dir, tg_ckpt_meta *meta, char *path_out,
                      size_t path_len);
/* Every step file (newest first) with its attributes (NAN / 0 where missing); *out malloc'd. */
int tg_ckptdir_list(const char *run_dir, tg_ckpt_info **out, int *n);
/* Reads the attributes of one checkpoint file. */
int tg_ckpt_read_meta(const char *path, tg_ckpt_meta *meta);

#endif
