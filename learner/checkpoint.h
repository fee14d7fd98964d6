/* Network checkpoints in HDF5 (h5py-readable):
 *   /params/<name>   float32, the spec's parameter names and shapes (tg_params table)
 *   /adam_m/<name>, /adam_v/<name>   float32 AdamW moments (optional on load)
 *   root attributes: the 16 net config integers (tg_net_config_names), "step" (int64),
 *   "config_yaml" (the run's whole config.yaml as a string; may be ""), "format" = "tensorgame-
 *   checkpoint-1".
 * Saving writes PATH.tmp.<pid> and renames it over PATH, so a reader never sees a partial file.
 * Loading refuses a missing, extra or mis-shaped tensor, or a different net config, with a
 * message naming the tensor (or the config key). */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include <stdint.h>

#include "learner/net.h"
#include "learner/params.h"

/* Low level: buffers in the layout of tab. m and v may be NULL (then not written). */
int tg_checkpoint_write(const char *path, const tg_params *tab, const float *params,
                        const float *m, const float *v, int64_t step, const char *config_yaml);
/* Reads into buffers of tab's layout; m/v may be NULL (not read; if non-NULL and the file has
 * no moments they are zeroed and *have_moments = 0). config_yaml: malloc'd string or NULL. */
int tg_checkpoint_read(const char *path, const tg_params *tab, float *params, float *m,
                       float *v, int *have_moments, int64_t *step, char **config_yaml);

/* Whole net: parameters, optimizer moments and step. */
int tg_net_save(tg_net *net, const char *path, const char *config_yaml);
int tg_net_load(tg_net *net, const char *path);

/* Checks that group `grp` of an open HDF5 file holds exactly the tensors of tab with their
 * shapes (any float type); -1 naming the first missing, extra or mis-shaped tensor.
 * file is an hid_t. Used by checkpoints and the golden check. */
int tg_params_check_h5(int64_t file, const char *grp, const tg_params *tab, const char *what);
/* Reads group `grp` into buf (converted to float32), after tg_params_check_h5. */
int tg_params_read_h5(int64_t file, const char *grp, const tg_params *tab, float *buf,
                      const char *what);

#endif
