/* Golden-vector check of the network (see golden.h). */
#include "learner/golden.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "learner/checkpoint.h"
#include "learner/net.h"

double tg_rel_err(const float *a, const double *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= num)) /* NaN propagates */
            num = d;
        if (fabs(b[i]) > den)
            den = fabs(b[i]);
    }
    return den > 0 ? num / den : num;
}

typedef struct ds_spec {
    const char *name; /* inside its group */
    int ndim;
    long dims[5];
    int integer;      /* 1: integer dataset, else float */
} ds_spec;

typedef struct list_ctx {
    const ds_spec *spec;
    int n;
    char extra[256];
} list_ctx;

static herr_t list_extra(hid_t g, const char *name, const H5L_info_t *info, void *op)
{
    (void)g, (void)info;
    list_ctx *x = op;
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->spec[i].name, name))
            return 0;
    if (!x->extra[0])
        snprintf(x->extra, sizeof x->extra, "%s", name);
    return 0;
}

/* Exactly the datasets of spec, with those shapes, in group grp. */
static int check_group(hid_t f, const char *path, const char *grp, const ds_spec *spec, int n)
{
    hid_t g = -1;
    H5E_BEGIN_TRY { g = H5Gopen2(f, grp, H5P_DEFAULT); } H5E_END_TRY;
    if (g < 0)
        return tg_fail("%s: group '%s' missing", path, grp);
    int rc = -1;
    for (int i = 0; i < n; i++) {
        const ds_spec *s = &spec[i];
        hid_t d = -1;
        H5E_BEGIN_TRY { d = H5Dopen2(g, s->name, H5P_DEFAULT); } H5E_END_TRY;
        if (d < 0) {
            tg_fail("%s: dataset '%s/%s' missing", path, grp, s->name);
            goto out;
        }
        hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
        int nd = H5Sget_simple_extent_ndims(sp);
        hsize_t dims[8] = {0};
        if (nd >= 0 && nd <= 8)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        int cls = H5Tget_class(ty);
        H5Sclose(sp);
        H5Tclose(ty);
        H5Dclose(d);
        int ok = nd == s->ndim;
        for (int k = 0; ok && k < nd; k++)
            ok = (long)dims[k] == s->dims[k];
        if (!ok) {
            char have[96] = "", want[96] = "";
            int a = 0, b = 0;
            for (int k = 0; k < nd && k < 8 && a < 70; k++)
                a += snprintf(have + a, sizeof have - a, "%s%llu", k ? ", " : "",
                              (unsigned long long)dims[k]);
            for (int k = 0; k < s->ndim && b < 70; k++)
                b += snprintf(want + b, sizeof want - b, "%s%ld", k ? ", " : "", s->dims[k]);
            tg_fail("%s: dataset '%s/%s' has shape [%s], expected [%s]", path, grp, s->name,
                    have, want);
            goto out;
        }
        if ((s->integer && cls != H5T_INTEGER) || (!s->integer && cls != H5T_FLOAT &&
                                                   cls != H5T_INTEGER)) {
            tg_fail("%s: dataset '%s/%s' has the wrong type", path, grp, s->name);
            goto out;
        }
    }
    list_ctx x = {.spec = spec, .n = n};
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, list_extra, &x) < 0) {
        tg_fail("%s: cannot list group '%s'", path, grp);
        goto out;
    }
    if (x.extra[0]) {
        tg_fail("%s: unexpected dataset '%s/%s'", path, grp, x.extra);
        goto out;
    }
    rc = 0;
out:
    H5Gclose(g);
    return rc;
}

static int read_ds(hid_t f, const char *path, const char *name, hid_t mtype, void *buf)
{
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    herr_t e = d < 0 ? -1 : H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0)
        H5Dclose(d);
    return e < 0 ? tg_fail("%s: cannot read '%s'", path, name) : 0;
}

static int line(FILE *out, const char *what, double err, double tol)
{
    int ok = err <= tol;
    if (out)
        fprintf(out, "  %-34s rel err %.3e  (tol %.0e)  %s\n", what, err, tol, ok ? "ok" : "FAIL");
    return ok;
}

int tg_golden_check(const char *path, const char *backend, int threads,
                    const tg_golden_tol *tolp, FILE *out, int verbose, tg_golden_result *res)
{
    tg_golden_tol tol = tolp ? *tolp : (tg_golden_tol){1e-4, 1e-4, 1e-3};
    memset(res, 0, sizeof *res);
    hid_t f = -1;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0)
        return tg_fail("%s: cannot open as HDF5", path);
    tg_net_config cfg;
    tg_params tab = {0};
    tg_net *net = NULL;
    int rc = -1;
    float *w = NULL, *grads = NULL, *tensors = NULL, *scalars = NULL, *returns = NULL;
    float *logits = NULL, *quant = NULL, *torso = NULL, *gq = NULL;
    double *gw = NULL, *ref = NULL;
    int32_t *actions = NULL, *gtok = NULL, *rtok = NULL;
    if (tg_net_config_read_h5(f, &cfg)) {
        tg_fail_ctx("%s: ", path);
        goto out;
    }
    if (tg_params_build(&cfg, &tab))
        goto out;
    /* batch size from the inputs */
    long B = 0;
    {
        hid_t d = -1;
        H5E_BEGIN_TRY { d = H5Dopen2(f, "inputs/returns", H5P_DEFAULT); } H5E_END_TRY;
        if (d < 0) {
            tg_fail("%s: dataset 'inputs/returns' missing", path);
            goto out;
        }
        hid_t sp = H5Dget_space(d);
        hsize_t dims[8] = {0};
        int nd = H5Sget_simple_extent_ndims(sp);
        if (nd == 1)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        H5Dclose(d);
        B = (long)dims[0];
        if (nd != 1 || B < 1 || B > 1 << 20) {
            tg_fail("%s: dataset 'inputs/returns' must be a non-empty vector", path);
            goto out;
        }
    }
    int S = cfg.S, L = cfg.n_steps, NL = cfg.n_logits, Q = cfg.quantiles;
    ds_spec in_spec[] = {
        {"tensors", 5, {B, cfg.T, S, S, S}, 0},
        {"scalars", 2, {B, cfg.n_scalars}, 0},
        {"actions", 2, {B, L}, 1},
        {"returns", 1, {B}, 0},
    };
    ds_spec out_spec[] = {
        {"torso", 3, {B, 3L * S * S, cfg.c}, 0},
        {"logits", 3, {B, L, NL}, 0},
        {"quantiles", 2, {B, Q}, 0},
        {"loss_total", 0, {0}, 0},
        {"loss_policy", 0, {0}, 0},
        {"loss_value", 0, {0}, 0},
        {"greedy_tokens", 2, {B, L}, 1},
        {"greedy_quantiles", 2, {B, Q}, 0},
    };
    if (tg_params_check_h5(f, "params", &tab, path) || tg_params_check_h5(f, "grads", &tab, path) ||
        check_group(f, path, "inputs", in_spec, 4) || check_group(f, path, "outputs", out_spec, 8))
        goto out;
    size_t np = tab.total, nt = (size_t)B * cfg.T * S * S * S, ne = (size_t)B * 3 * S * S * cfg.c;
    size_t nlog = (size_t)B * L * NL;
    w = malloc(np * sizeof *w);
    grads = malloc(np * sizeof *grads);
    gw = malloc(np * sizeof *gw);
    tensors = malloc(nt * sizeof *tensors);
    scalars = malloc((size_t)B * cfg.n_scalars * sizeof *scalars);
    returns = malloc((size_t)B * sizeof *returns);
    actions = malloc((size_t)B * L * sizeof *actions);
    logits = malloc(nlog * sizeof *logits);
    quant = malloc((size_t)B * Q * sizeof *quant);
    gq = malloc((size_t)B * Q * sizeof *gq);
    torso = malloc(ne * sizeof *torso);
    gtok = malloc((size_t)B * L * sizeof *gtok);
    rtok = malloc((size_t)B * L * sizeof *rtok);
    size_t refn = ne > nlog ? ne : nlog;
    if (refn < np)
        refn = np;
    ref = malloc(refn * sizeof *ref);
    if (!w || !grads || !gw || !tensors || !scalars || !returns || !actions || !logits ||
        !quant || !gq || !torso || !gtok || !rtok || !ref) {
        tg_fail("out of memory");
        goto out;
    }
    if (tg_params_read_h5(f, "params", &tab, w, path) ||
        read_ds(f, path, "inputs/tensors", H5T_NATIVE_FLOAT, tensors) ||
        read_ds(f, path, "inputs/scalars", H5T_NATIVE_FLOAT, scalars) ||
        read_ds(f, path, "inputs/returns", H5T_NATIVE_FLOAT, returns) ||
        read_ds(f, path, "inputs/actions", H5T_NATIVE_INT32, actions))
        goto out;
    for (long i = 0; i < B * L; i++)
        if (actions[i] < 0 || actions[i] >= NL) {
            tg_fail("%s: inputs/actions[%ld] = %d outside [0, %d)", path, i, actions[i], NL);
            goto out;
        }
    net = tg_net_new(&cfg, backend, (int)B, threads, 1);
    if (!net || tg_net_set_params(net, w))
        goto out;
    tg_opt_config opt;
    tg_opt_config_default(&opt);
    tg_net_set_opt(net, &opt);
    tg_batch_view bv = {.B = (int)B, .tensors = tensors, .scalars = scalars, .tokens = actions,
                        .returns = returns};
    tg_losses loss;
    if (tg_net_forward(net, &bv, logits, quant, torso) ||
        tg_net_loss_grad(net, &bv, &loss, grads) ||
        tg_net_greedy(net, tensors, scalars, (int)B, gtok, gq))
        goto out;
    if (out) {
        char cs[512];
        tg_net_config_format(&cfg, cs, sizeof cs);
        fprintf(out, "golden %s: backend %s, batch %ld, %zu parameters\n  config %s\n", path,
                tg_net_backend(net), B, np, cs);
    }
    int ok = 1;
    struct { const char *name; float *have; size_t n; } outs[] = {
        {"outputs/torso", torso, ne},
        {"outputs/logits", logits, nlog},
        {"outputs/quantiles", quant, (size_t)B * Q},
        {"outputs/greedy_quantiles", gq, (size_t)B * Q},
    };
    for (int i = 0; i < 4; i++) {
        if (read_ds(f, path, outs[i].name, H5T_NATIVE_DOUBLE, ref))
            goto out;
        double e = tg_rel_err(outs[i].have, ref, outs[i].n);
        ok &= line(out, outs[i].name + 8, e, tol.outputs);
        if (!(e <= res->worst_output))
            res->worst_output = e;
    }
    struct { const char *name; double have; } ls[] = {
        {"outputs/loss_total", loss.total},
        {"outputs/loss_policy", loss.policy},
        {"outputs/loss_value", loss.value},
    };
    for (int i = 0; i < 3; i++) {
        double r;
        if (read_ds(f, path, ls[i].name, H5T_NATIVE_DOUBLE, &r))
            goto out;
        double e = fabs(ls[i].have - r) / (fabs(r) > 0 ? fabs(r) : 1.0);
        if (isnan(ls[i].have))
            e = INFINITY;
        ok &= line(out, ls[i].name + 8, e, tol.losses);
        if (!(e <= res->worst_loss))
            res->worst_loss = e;
    }
    if (read_ds(f, path, "outputs/greedy_tokens", H5T_NATIVE_INT32, rtok))
        goto out;
    res->tokens_equal = !memcmp(gtok, rtok, (size_t)B * L * sizeof *gtok);
    if (out) {
        fprintf(out, "  %-34s %s\n", "greedy_tokens", res->tokens_equal ? "equal  ok" : "DIFFER  FAIL");
        if (!res->tokens_equal)
            for (long b = 0; b < B; b++)
                for (int t = 0; t < L; t++)
                    if (gtok[b * L + t] != rtok[b * L + t])
                        fprintf(out, "    sample %ld step %d: %d, expected %d\n", b, t,
                                gtok[b * L + t], rtok[b * L + t]);
    }
    ok &= res->tokens_equal;
    /* gradients, per group */
    {
        hid_t g = H5Gopen2(f, "grads", H5P_DEFAULT);
        for (int i = 0; i < tab.n; i++) {
            hid_t d = H5Dopen2(g, tab.p[i].name, H5P_DEFAULT);
            herr_t e = d < 0 ? -1 : H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL,
                                            H5P_DEFAULT, gw + tab.p[i].offset);
            if (d >= 0)
                H5Dclose(d);
            if (e < 0) {
                H5Gclose(g);
                tg_fail("%s: cannot read grads/%s", path, tab.p[i].name);
                goto out;
            }
        }
        H5Gclose(g);
        for (int i = 0; i < tab.n;) {
            char grp[TG_PARAM_NAME], other[TG_PARAM_NAME];
            tg_params_group(&tab, i, grp, sizeof grp);
            int j = i;
            size_t lo = tab.p[i].offset;
            for (; j < tab.n; j++) {
                tg_params_group(&tab, j, other, sizeof other);
                if (strcmp(grp, other))
                    break;
            }
            size_t hi = tab.p[j - 1].offset + tab.p[j - 1].size;
            double e = tg_rel_err(grads + lo, gw + lo, hi - lo);
            char what[TG_PARAM_NAME + 8];
            snprintf(what, sizeof what, "grad %s", grp);
            ok &= line(out, what, e, tol.grads);
            if (!(e <= res->worst_grad))
                res->worst_grad = e;
            if (verbose && out)
                for (int k = i; k < j; k++)
                    fprintf(out, "      %-40s %.3e\n", tab.p[k].name,
                            tg_rel_err(grads + tab.p[k].offset, gw + tab.p[k].offset,
                                       tab.p[k].size));
            i = j;
        }
    }
    res->pass = ok;
    if (out)
        fprintf(out, "%s: largest relative errors: outputs %.3e, losses %.3e, gradients %.3e; "
                     "greedy tokens %s\n", ok ? "PASS" : "FAIL", res->worst_output,
                res->worst_loss, res->worst_grad, res->tokens_equal ? "equal" : "differ");
    rc = 0;
out:
    tg_net_free(net);
    tg_params_free(&tab);
    H5Fclose(f);
    free(w), free(grads), free(gw), free(tensors), free(scalars), free(returns), free(actions);
    free(logits), free(quant), free(gq), free(torso), free(gtok), free(rtok), free(ref);
    return rc;
}
