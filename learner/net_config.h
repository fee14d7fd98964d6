/* The network's dimensions (the Config of ../shared/spec/net_reference.py), filled from the run
 * config or from the attributes of an HDF5 file (golden file, checkpoint). Every size used by
 * the network code comes from here; nothing assumes a particular config. */
#ifndef TG_NET_CONFIG_H
#define TG_NET_CONFIG_H

#include <stdint.h>

#include "common/config.h"

typedef struct tg_net_config {
    int S;          /* padded tensor side */
    int T;          /* tensors in the input: current state + history */
    int n_scalars;  /* scalar inputs (scalar 0 = t / R_limit) */
    int c;          /* torso width */
    int layers;     /* attentive-modes blocks (3 attention blocks each) */
    int heads, head_dim; /* torso attention */
    int widen;      /* MLP widening in every attention block */
    int n_steps;    /* tokens per action */
    int n_logits;   /* token values (|F|^d); n_logits is also the start token */
    int p_feat, p_heads, p_layers; /* policy head: P = p_feat * p_heads; p_layers x (self + cross) */
    int v_hidden, v_layers;        /* value head MLP */
    int quantiles;  /* value head outputs at levels (2i + 1) / (2 quantiles) */
} tg_net_config;

/* Number of int fields and their names, in struct order (for attributes, printing, comparing). */
#define TG_NET_CONFIG_NFIELDS 16
extern const char *const tg_net_config_names[TG_NET_CONFIG_NFIELDS];
/* Field i of cfg (0 <= i < TG_NET_CONFIG_NFIELDS), in the order of tg_net_config_names. */
int *tg_net_config_field(tg_net_config *cfg, int i);
int tg_net_config_get(const tg_net_config *cfg, int i);

/* Policy head width P = p_feat * p_heads. */
static inline int tg_net_config_P(const tg_net_config *cfg)
{
    return cfg->p_feat * cfg->p_heads;
}

/* From a finished run config: game.S, game.history + 1, game.n_scalars, game.n_steps,
 * game.n_logits and the net section. -1 with a message if the result is invalid. */
int tg_net_config_from_run(const tg_config *run, tg_net_config *out);
/* Checks every field (positive, n_steps >= 1, ...); -1 with a message naming the field. */
int tg_net_config_check(const tg_net_config *cfg);
/* 0 if equal; else -1 with a message naming the first differing field ("c: 64 vs 32"). */
int tg_net_config_compare(const tg_net_config *have, const tg_net_config *want);
/* One line "S=4 T=3 ... quantiles=8" into buf. */
void tg_net_config_format(const tg_net_config *cfg, char *buf, int len);

/* Reads the 16 integer attributes of an HDF5 object (file root, group) by the names above; extra
 * attributes are ignored. -1 with a message naming a missing or non-integer attribute.
 * loc is an hid_t (int64_t here so this header does not pull in hdf5.h). */
int tg_net_config_read_h5(int64_t loc, tg_net_config *out);
/* Writes them as int64 attributes (the golden file's layout). */
int tg_net_config_write_h5(int64_t loc, const tg_net_config *cfg);
/* Opens an HDF5 file and reads the attributes of its root. */
int tg_net_config_load_file(const char *path, tg_net_config *out);

/* Named configs for tests and benchmarks (not assumed anywhere else): "golden" (GOLDEN of
 * net_reference.py), "tiny" (gradient checks), "cpu-small" (CPU benchmark), and the configs of
 * ../shared/bench/torch_peer.py: "paper-S4", "paper-S9", "small-S9". *batch (may be NULL) gets
 * the preset's benchmark batch. -1 with a message listing the names if unknown. */
int tg_net_config_preset(const char *name, tg_net_config *cfg, int *batch);
void tg_net_config_golden(tg_net_config *cfg);
/* Applies "key=value" (a tg_net_config_names key); -1 with a message naming it. */
int tg_net_config_set(tg_net_config *cfg, const char *assignment);

#endif
