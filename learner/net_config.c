/* Network dimensions: from the run config, from HDF5 attributes, checks. */
#include "learner/net_config.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

const char *const tg_net_config_names[TG_NET_CONFIG_NFIELDS] = {
    "S",      "T",        "n_scalars", "c",      "layers",  "heads",    "head_dim", "widen",
    "n_steps", "n_logits", "p_feat",   "p_heads", "p_layers", "v_hidden", "v_layers", "quantiles"};

int *tg_net_config_field(tg_net_config *cfg, int i)
{
    int *f[TG_NET_CONFIG_NFIELDS] = {
        &cfg->S,       &cfg->T,        &cfg->n_scalars, &cfg->c,       &cfg->layers,  &cfg->heads,
        &cfg->head_dim, &cfg->widen,   &cfg->n_steps,   &cfg->n_logits, &cfg->p_feat, &cfg->p_heads,
        &cfg->p_layers, &cfg->v_hidden, &cfg->v_layers, &cfg->quantiles};
    TG_ASSERT(i >= 0 && i < TG_NET_CONFIG_NFIELDS);
    return f[i];
}

int tg_net_config_get(const tg_net_config *cfg, int i)
{
    return *tg_net_config_field((tg_net_config *)cfg, i);
}

int tg_net_config_check(const tg_net_config *cfg)
{
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS; i++) {
        int v = tg_net_config_get(cfg, i);
        /* n_steps may be 1; layer counts may be 0 only for p_layers/layers (a degenerate but
         * well-defined network); everything else must be positive. */
        int min = (!strcmp(tg_net_config_names[i], "layers") ||
                   !strcmp(tg_net_config_names[i], "p_layers") ||
                   !strcmp(tg_net_config_names[i], "v_layers")) ? 0 : 1;
        if (v < min || v > (1 << 24))
            return tg_fail("net config: %s = %d out of range [%d, %d]", tg_net_config_names[i], v,
                           min, 1 << 24);
    }
    if (cfg->v_layers == 0 && cfg->v_hidden != tg_net_config_P(cfg))
        return tg_fail("net config: v_layers = 0 needs v_hidden = P = %d", tg_net_config_P(cfg));
    return 0;
}

int tg_net_config_from_run(const tg_config *run, tg_net_config *out)
{
    memset(out, 0, sizeof *out);
    out->S = run->game.S;
    out->T = run->game.history + 1;
    out->n_scalars = run->game.n_scalars;
    out->n_steps = run->game.n_steps;
    out->n_logits = run->game.n_logits;
    out->c = run->net.c;
    out->layers = run->net.layers;
    out->heads = run->net.heads;
    out->head_dim = run->net.head_dim;
    out->widen = run->net.widen;
    out->p_feat = run->net.p_feat;
    out->p_heads = run->net.p_heads;
    out->p_layers = run->net.p_layers;
    out->v_hidden = run->net.v_hidden;
    out->v_layers = run->net.v_layers;
    out->quantiles = run->net.quantiles;
    return tg_net_config_check(out);
}

int tg_net_config_compare(const tg_net_config *have, const tg_net_config *want)
{
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS; i++)
        if (tg_net_config_get(have, i) != tg_net_config_get(want, i))
            return tg_fail("net config differs: %s = %d, expected %d", tg_net_config_names[i],
                           tg_net_config_get(have, i), tg_net_config_get(want, i));
    return 0;
}

void tg_net_config_format(const tg_net_config *cfg, char *buf, int len)
{
    int n = 0;
    buf[0] = 0;
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS && n < len; i++)
        n += snprintf(buf + n, len - n, "%s%s=%d", i ? " " : "", tg_net_config_names[i],
                      tg_net_config_get(cfg, i));
}

int tg_net_config_read_h5(int64_t loc, tg_net_config *out)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS; i++) {
        const char *name = tg_net_config_names[i];
        htri_t ex = H5Aexists_by_name((hid_t)loc, ".", name, H5P_DEFAULT);
        if (ex <= 0)
            return tg_fail("net config attribute '%s' missing", name);
        hid_t a = H5Aopen_by_name((hid_t)loc, ".", name, H5P_DEFAULT, H5P_DEFAULT);
        if (a < 0)
            return tg_fail("cannot open attribute '%s'", name);
        hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
        int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_INTEGER &&
                 H5Sget_simple_extent_npoints(sp) == 1;
        long long v = 0;
        if (ok)
            ok = H5Aread(a, H5T_NATIVE_LLONG, &v) >= 0;
        if (t >= 0)
            H5Tclose(t);
        if (sp >= 0)
            H5Sclose(sp);
        H5Aclose(a);
        if (!ok)
            return tg_fail("net config attribute '%s' is not one integer", name);
        if (v < 0 || v > (1 << 24))
            return tg_fail("net config attribute '%s' = %lld out of range", name, v);
        *tg_net_config_field(out, i) = (int)v;
    }
    return tg_net_config_check(out);
}

int tg_net_config_write_h5(int64_t loc, const tg_net_config *cfg)
{
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS; i++) {
        long long v = tg_net_config_get(cfg, i);
        hid_t sp = H5Screate(H5S_SCALAR);
        if (sp < 0)
            return tg_fail("H5Screate failed");
        hid_t a = H5Acreate2((hid_t)loc, tg_net_config_names[i], H5T_STD_I64LE, sp, H5P_DEFAULT,
                             H5P_DEFAULT);
        int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &v) >= 0;
        if (a >= 0)
            H5Aclose(a);
        H5Sclose(sp);
        if (!ok)
            return tg_fail("cannot write attribute '%s'", tg_net_config_names[i]);
    }
    return 0;
}

int tg_net_config_load_file(const char *path, tg_net_config *out)
{
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0)
        return tg_fail("%s: cannot open as HDF5", path);
    int rc = tg_net_config_read_h5(f, out);
    H5Fclose(f);
    if (rc)
        return tg_fail_ctx("%s: ", path);
    return 0;
}

void tg_net_config_golden(tg_net_config *cfg)
{
    *cfg = (tg_net_config){.S = 4, .T = 3, .n_scalars = 2, .c = 32, .layers = 2, .heads = 2,
                           .head_dim = 8, .widen = 2, .n_steps = 4, .n_logits = 125, .p_feat = 8,
                           .p_heads = 2, .p_layers = 2, .v_hidden = 32, .v_layers = 3,
                           .quantiles = 8};
}

int tg_net_config_preset(const char *name, tg_net_config *cfg, int *batch)
{
    /* the spec's Config defaults (the paper's network) */
    tg_net_config paper = {.S = 4, .T = 8, .n_scalars = 1, .c = 512, .layers = 8, .heads = 16,
                           .head_dim = 32, .widen = 4, .n_steps = 4, .n_logits = 125,
                           .p_feat = 64, .p_heads = 32, .p_layers = 2, .v_hidden = 512,
                           .v_layers = 3, .quantiles = 8};
    int b = 64;
    if (!strcmp(name, "golden")) {
        tg_net_config_golden(cfg);
        b = 3;
    } else if (!strcmp(name, "tiny")) {
        *cfg = (tg_net_config){.S = 2, .T = 2, .n_scalars = 2, .c = 8, .layers = 1, .heads = 2,
                               .head_dim = 4, .widen = 2, .n_steps = 3, .n_logits = 5,
                               .p_feat = 4, .p_heads = 2, .p_layers = 1, .v_hidden = 8,
                               .v_layers = 2, .quantiles = 4};
        b = 3;
    } else if (!strcmp(name, "cpu-small")) {
        *cfg = (tg_net_config){.S = 4, .T = 8, .n_scalars = 1, .c = 64, .layers = 2, .heads = 4,
                               .head_dim = 16, .widen = 4, .n_steps = 4, .n_logits = 125,
                               .p_feat = 16, .p_heads = 4, .p_layers = 2, .v_hidden = 64,
                               .v_layers = 3, .quantiles = 8};
        b = 64;
    } else if (!strcmp(name, "paper-S4")) {
        *cfg = paper;
        b = 1024;
    } else if (!strcmp(name, "paper-S9")) {
        *cfg = paper;
        cfg->S = 9;
        cfg->n_steps = 9;
        b = 256;
    } else if (!strcmp(name, "small-S9")) {
        *cfg = paper;
        cfg->S = 9, cfg->c = 256, cfg->layers = 4, cfg->heads = 8, cfg->head_dim = 32;
        cfg->n_steps = 9, cfg->p_feat = 32, cfg->p_heads = 16, cfg->v_hidden = 256;
        b = 1024;
    } else {
        return tg_fail("unknown network preset '%s' (golden, tiny, cpu-small, paper-S4, "
                       "paper-S9, small-S9)", name);
    }
    if (batch)
        *batch = b;
    return 0;
}

int tg_net_config_set(tg_net_config *cfg, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return tg_fail("expected key=value, got '%s'", assignment);
    for (int i = 0; i < TG_NET_CONFIG_NFIELDS; i++) {
        const char *k = tg_net_config_names[i];
        if (strlen(k) == (size_t)(eq - assignment) && !strncmp(k, assignment, strlen(k))) {
            char *end;
            long v = strtol(eq + 1, &end, 10);
            if (*end || end == eq + 1 || v < 0 || v > (1 << 24))
                return tg_fail("net config %s: bad value '%s'", k, eq + 1);
            *tg_net_config_field(cfg, i) = (int)v;
            return 0;
        }
    }
    return tg_fail("unknown net config key in '%s'", assignment);
}
