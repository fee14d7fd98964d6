/* HDF5 checkpoints of the network (see checkpoint.h). */
#include "learner/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

#define CKPT_FORMAT "tensorgame-checkpoint-1"

/* ---------------------------------------------------------------- tensor groups */

typedef struct extra_ctx {
    const tg_params *tab;
    char first[256];
    int n;
} extra_ctx;

static herr_t find_extra(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g, (void)info;
    extra_ctx *x = op;
    if (tg_params_find(x->tab, name) < 0) {
        if (x->n++ == 0)
            snprintf(x->first, sizeof x->first, "%s", name);
    }
    return 0;
}

int tg_params_check_h5(int64_t file, const char *grp, const tg_params *tab, const char *what)
{
    hid_t g = -1;
    H5E_BEGIN_TRY { g = H5Gopen2((hid_t)file, grp, H5P_DEFAULT); } H5E_END_TRY;
    if (g < 0)
        return tg_fail("%s: group '%s' missing", what, grp);
    int rc = -1;
    for (int i = 0; i < tab->n; i++) {
        const tg_param *p = &tab->p[i];
        htri_t ex = -1;
        H5E_BEGIN_TRY { ex = H5Lexists(g, p->name, H5P_DEFAULT); } H5E_END_TRY;
        if (ex <= 0) {
            tg_fail("%s: tensor '%s/%s' missing", what, grp, p->name);
            goto out;
        }
        hid_t d = -1;
        H5E_BEGIN_TRY { d = H5Dopen2(g, p->name, H5P_DEFAULT); } H5E_END_TRY;
        if (d < 0) {
            tg_fail("%s: '%s/%s' is not a dataset", what, grp, p->name);
            goto out;
        }
        hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        hsize_t dims[8] = {0};
        if (nd >= 0 && nd <= 8)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        int cls = ty >= 0 ? H5Tget_class(ty) : -1;
        if (sp >= 0)
            H5Sclose(sp);
        if (ty >= 0)
            H5Tclose(ty);
        H5Dclose(d);
        int ok = nd == p->ndim && (hsize_t)p->shape[0] == dims[0] &&
                 (p->ndim == 1 || (hsize_t)p->shape[1] == dims[1]);
        if (!ok) {
            char have[128] = "", want[64];
            int n = 0;
            for (int k = 0; k < nd && k < 8 && n < (int)sizeof have - 24; k++)
                n += snprintf(have + n, sizeof have - n, "%s%llu", k ? ", " : "",
                              (unsigned long long)dims[k]);
            if (p->ndim == 1)
                snprintf(want, sizeof want, "%d", p->shape[0]);
            else
                snprintf(want, sizeof want, "%d, %d", p->shape[0], p->shape[1]);
            tg_fail("%s: tensor '%s/%s' has shape [%s], expected [%s]", what, grp, p->name,
                    have, want);
            goto out;
        }
        if (cls != H5T_FLOAT) {
            tg_fail("%s: tensor '%s/%s' is not floating point", what, grp, p->name);
            goto out;
        }
    }
    extra_ctx x = {.tab = tab};
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, find_extra, &x) < 0) {
        tg_fail("%s: cannot list group '%s'", what, grp);
        goto out;
    }
    if (x.n) {
        tg_fail("%s: unexpected tensor '%s/%s'%s (not in the network of this config)", what,
                grp, x.first, x.n > 1 ? " and others" : "");
        goto out;
    }
    rc = 0;
out:
    H5Gclose(g);
    return rc;
}

int tg_params_read_h5(int64_t file, const char *grp, const tg_params *tab, float *buf,
                      const char *what)
{
    if (tg_params_check_h5(file, grp, tab, what))
        return -1;
    hid_t g = H5Gopen2((hid_t)file, grp, H5P_DEFAULT);
    if (g < 0)
        return tg_fail("%s: cannot open group '%s'", what, grp);
    for (int i = 0; i < tab->n; i++) {
        const tg_param *p = &tab->p[i];
        hid_t d = H5Dopen2(g, p->name, H5P_DEFAULT);
        herr_t e = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                        buf + p->offset);
        if (d >= 0)
            H5Dclose(d);
        if (e < 0) {
            H5Gclose(g);
            return tg_fail("%s: cannot read tensor '%s/%s'", what, grp, p->name);
        }
    }
    H5Gclose(g);
    return 0;
}

static int write_group(hid_t f, const char *grp, const tg_params *tab, const float *buf)
{
    hid_t g = H5Gcreate2(f, grp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return tg_fail("cannot create group '%s'", grp);
    for (int i = 0; i < tab->n; i++) {
        const tg_param *p = &tab->p[i];
        hsize_t dims[2] = {(hsize_t)p->shape[0], (hsize_t)p->shape[1]};
        hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
        hid_t d = sp < 0 ? -1 : H5Dcreate2(g, p->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT,
                                           H5P_DEFAULT, H5P_DEFAULT);
        herr_t e = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                                         buf + p->offset);
        if (d >= 0)
            H5Dclose(d);
        if (sp >= 0)
            H5Sclose(sp);
        if (e < 0) {
            H5Gclose(g);
            return tg_fail("cannot write tensor '%s/%s'", grp, p->name);
        }
    }
    H5Gclose(g);
    return 0;
}

/* ---------------------------------------------------------------- attributes */

static int write_str_attr(hid_t loc, const char *name, const char *s)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, H5T_VARIABLE);
    H5Tset_cset(ty, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *p = s ? s : "";
    herr_t e = a < 0 ? -1 : H5Awrite(a, ty, &p);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    return e < 0 ? tg_fail("cannot write attribute '%s'", name) : 0;
}

/* malloc'd copy of a string attribute (variable or fixed length), or NULL with a message. */
static char *read_str_attr(hid_t loc, const char *name)
{
    hid_t a = -1;
    H5E_BEGIN_TRY { a = H5Aopen(loc, name, H5P_DEFAULT); } H5E_END_TRY;
    if (a < 0) {
        tg_fail("attribute '%s' missing", name);
        return NULL;
    }
    char *out = NULL;
    hid_t ft = H5Aget_type(a);
    if (ft >= 0 && H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            char *p = NULL;
            if (H5Aread(a, mt, &p) >= 0 && p) {
                out = strdup(p);
                H5free_memory(p);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(ft);
            out = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(ft);
            if (out && H5Aread(a, mt, out) < 0) {
                free(out);
                out = NULL;
            }
            H5Tclose(mt);
        }
    }
    if (ft >= 0)
        H5Tclose(ft);
    H5Aclose(a);
    if (!out)
        tg_fail("attribute '%s' is not a readable string", name);
    return out;
}

/* ---------------------------------------------------------------- files */

int tg_checkpoint_write(const char *path, const tg_params *tab, const float *params,
                        const float *m, const float *v, int64_t step, const char *config_yaml)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return tg_fail("checkpoint path too long: %s", path);
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0)
        return tg_fail("cannot create checkpoint %s", tmp);
    long long st = step;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, "step", H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int ok = a >= 0 && H5Awrite(a, H5T_NATIVE_LLONG, &st) >= 0;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    if (!ok) {
        tg_fail("cannot write attribute 'step'");
        goto fail;
    }
    if (tg_net_config_write_h5(f, &tab->cfg) || write_str_attr(f, "format", CKPT_FORMAT) ||
        write_str_attr(f, "config_yaml", config_yaml) || write_group(f, "params", tab, params) ||
        (m && write_group(f, "adam_m", tab, m)) || (v && write_group(f, "adam_v", tab, v)))
        goto fail;
    if (H5Fclose(f) < 0) {
        f = -1;
        tg_fail("cannot close %s", tmp);
        goto fail;
    }
    f = -1;
    int fd = open(tmp, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        if (fd >= 0)
            close(fd);
        tg_fail("cannot sync %s", tmp);
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        tg_fail("cannot rename %s to %s", tmp, path);
        goto fail;
    }
    return 0;
fail:
    if (f >= 0)
        H5Fclose(f);
    unlink(tmp);
    return tg_fail_ctx("writing checkpoint %s: ", path);
}

int tg_checkpoint_read(const char *path, const tg_params *tab, float *params, float *m,
                       float *v, int *have_moments, int64_t *step, char **config_yaml)
{
    if (config_yaml)
        *config_yaml = NULL;
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0)
        return tg_fail("checkpoint %s: cannot open as HDF5 (missing, truncated or corrupt)",
                       path);
    tg_net_config have;
    int rc = -1;
    if (tg_params_check_h5(f, "params", tab, path))
        goto out;
    if (tg_net_config_read_h5(f, &have) || tg_net_config_compare(&have, &tab->cfg)) {
        tg_fail_ctx("checkpoint %s: ", path);
        goto out;
    }
    if (tg_params_read_h5(f, "params", tab, params, path))
        goto out;
    int moments = 0;
    if (m || v) {
        htri_t hm = -1, hv = -1;
        H5E_BEGIN_TRY {
            hm = H5Lexists(f, "adam_m", H5P_DEFAULT);
            hv = H5Lexists(f, "adam_v", H5P_DEFAULT);
        } H5E_END_TRY;
        if (hm > 0 && hv > 0) {
            if ((m && tg_params_read_h5(f, "adam_m", tab, m, path)) ||
                (v && tg_params_read_h5(f, "adam_v", tab, v, path)))
                goto out;
            moments = 1;
        } else if (hm > 0 || hv > 0) {
            tg_fail("checkpoint %s: only one of adam_m, adam_v present", path);
            goto out;
        } else {
            if (m)
                memset(m, 0, tab->total * sizeof *m);
            if (v)
                memset(v, 0, tab->total * sizeof *v);
        }
    }
    if (have_moments)
        *have_moments = moments;
    if (step) {
        long long st = 0;
        hid_t a = -1;
        H5E_BEGIN_TRY { a = H5Aopen(f, "step", H5P_DEFAULT); } H5E_END_TRY;
        int ok = a >= 0 && H5Aread(a, H5T_NATIVE_LLONG, &st) >= 0 && st >= 0;
        if (a >= 0)
            H5Aclose(a);
        if (!ok) {
            tg_fail("checkpoint %s: attribute 'step' missing or invalid", path);
            goto out;
        }
        *step = st;
    }
    if (config_yaml) {
        *config_yaml = read_str_attr(f, "config_yaml");
        if (!*config_yaml) {
            tg_fail_ctx("checkpoint %s: ", path);
            goto out;
        }
    }
    rc = 0;
out:
    H5Fclose(f);
    if (rc && config_yaml && *config_yaml) {
        free(*config_yaml);
        *config_yaml = NULL;
    }
    return rc;
}

int tg_net_save(tg_net *net, const char *path, const char *config_yaml)
{
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof *w), *m = malloc(n * sizeof *m), *v = malloc(n * sizeof *v);
    int64_t step = 0;
    int rc = -1;
    if (!w || !m || !v) {
        tg_fail("out of memory");
        goto out;
    }
    if (tg_net_get_params(net, w) || tg_net_get_opt_state(net, m, v, &step))
        goto out;
    rc = tg_checkpoint_write(path, tg_net_params(net), w, m, v, step, config_yaml);
out:
    free(w);
    free(m);
    free(v);
    return rc;
}

int tg_net_load(tg_net *net, const char *path)
{
    size_t n = tg_net_n_params(net);
    float *w = malloc(n * sizeof *w), *m = malloc(n * sizeof *m), *v = malloc(n * sizeof *v);
    int64_t step = 0;
    int have = 0, rc = -1;
    if (!w || !m || !v) {
        tg_fail("out of memory");
        goto out;
    }
    if (tg_checkpoint_read(path, tg_net_params(net), w, m, v, &have, &step, NULL))
        goto out;
    if (tg_net_set_params(net, w)) {
        tg_fail_ctx("checkpoint %s: ", path);
        goto out;
    }
    rc = tg_net_set_opt_state(net, have ? m : NULL, have ? v : NULL, step);
out:
    free(w);
    free(m);
    free(v);
    return rc;
}
