#include "learner/runinfo.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/factio.h"

static void read_attr(hid_t g, const char *name, hid_t type, void *v)
{
    if (H5Aexists(g, name) <= 0)
        return;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0)
        return;
    H5Aread(a, type, v);
    H5Aclose(a);
}

static void read_str_attr(hid_t g, const char *name, char *buf, size_t len)
{
    buf[0] = 0;
    if (H5Aexists(g, name) <= 0)
        return;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0)
        return;
    hid_t t = H5Aget_type(a);
    if (H5Tget_class(t) == H5T_STRING) {
        if (H5Tis_variable_str(t) > 0) {
            char *s = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            if (H5Aread(a, mt, &s) >= 0 && s) {
                snprintf(buf, len, "%s", s);
                H5free_memory(s);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(t);
            char *tmp = calloc(1, n + 1);
            if (tmp && H5Aread(a, t, tmp) >= 0)
                snprintf(buf, len, "%s", tmp);
            free(tmp);
        }
    }
    H5Tclose(t);
    H5Aclose(a);
}

int tg_results_load(const char *path, tg_result **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (access(path, F_OK) != 0)
        return 0;
    tg_fact_list l = {0};
    if (tg_factio_read(path, &l) != 0)
        return tg_fail_ctx("%s: ", path);
    tg_result *r = calloc(l.n ? (size_t)l.n : 1, sizeof *r);
    if (!r) {
        tg_fact_list_free(&l);
        return tg_fail("out of memory");
    }
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    for (int i = 0; i < l.n; i++) {
        tg_result *e = &r[i];
        snprintf(e->key, sizeof e->key, "%s", l.keys[i]);
        tg_dims d = tg_fact_dims(l.facts[i]);
        snprintf(e->target, sizeof e->target, "%d,%d,%d", d.n, d.m, d.p);
        snprintf(e->arithmetic, sizeof e->arithmetic, "%s", tg_arith_name(tg_fact_arith(l.facts[i])));
        e->rank = tg_fact_rank(l.facts[i]);
        e->when = NAN;
        e->fact = l.facts[i];
        l.facts[i] = NULL;
        if (f >= 0) {
            hid_t g;
            H5E_BEGIN_TRY {
                g = H5Gopen2(f, e->key, H5P_DEFAULT);
                if (g >= 0) {
                    read_attr(g, "when", H5T_NATIVE_DOUBLE, &e->when);
                    read_attr(g, "model_version", H5T_NATIVE_UINT64, &e->model_version);
                    read_str_attr(g, "actor", e->actor, sizeof e->actor);
                    H5Gclose(g);
                }
            } H5E_END_TRY;
        }
    }
    if (f >= 0)
        H5Fclose(f);
    *n = l.n;
    *out = r;
    tg_fact_list_free(&l);
    return 0;
}

void tg_results_free(tg_result *r, int n)
{
    if (!r)
        return;
    for (int i = 0; i < n; i++)
        tg_fact_free(r[i].fact);
    free(r);
}

int tg_runinfo_write_status(const char *run_dir, const char *process, json_t *obj)
{
    char dir[4096], tmp[4400], path[4400];
    snprintf(dir, sizeof dir, "%s/status", run_dir);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tg_fail("mkdir %s: %s", dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s.json", dir, process);
    snprintf(tmp, sizeof tmp, "%s/.%s.json.%d", dir, process, (int)getpid());
    if (json_dump_file(obj, tmp, JSON_INDENT(1) | JSON_SORT_KEYS) != 0) {
        unlink(tmp);
        return tg_fail("writing %s failed", tmp);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tg_fail("renaming %s: %s", tmp, strerror(e));
    }
    return 0;
}
