#include "replay/results.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "replay/store.h"

typedef struct entry {
    tg_fact *f;
    uint64_t model_version;
    char actor[64];
    double when;
} entry;

struct replay_results {
    char path[4096];
    entry *e;
    int n, cap;
};

static int put_mat(hid_t g, const char *name, const int64_t *d, int rows, int cols)
{
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (ds >= 0 && H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, d) >= 0)
                 ? 0
                 : tg_fail("cannot write dataset %s", name);
    if (ds >= 0)
        H5Dclose(ds);
    H5Sclose(sp);
    return rc;
}

static void key_of(const entry *e, int i, char *buf, size_t len)
{
    tg_dims d = tg_fact_dims(e->f);
    snprintf(buf, len, "%d,%d,%d_rank%d_%s_%06d", d.n, d.m, d.p, tg_fact_rank(e->f),
             tg_arith_name(tg_fact_arith(e->f)), i + 1);
}

static int write_file(const replay_results *r)
{
    char tmp[4200], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", r->path);
    snprintf(dir, sizeof dir, "%s", r->path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110); /* checksummed metadata */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return tg_fail("cannot create %s", tmp);
    int rc = replay_h5_attr_str(f, "format", "tensorgame-results");
    for (int i = 0; i < r->n && rc == 0; i++) {
        const entry *e = &r->e[i];
        char key[128];
        key_of(e, i, key, sizeof key);
        hid_t g = H5Gcreate2(f, key, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            rc = tg_fail("cannot create group %s", key);
            break;
        }
        tg_dims d = tg_fact_dims(e->f);
        int32_t n = d.n, m = d.m, p = d.p, rank = tg_fact_rank(e->f);
        int64_t den = tg_fact_denom(e->f);
        char target[48];
        snprintf(target, sizeof target, "%d,%d,%d", d.n, d.m, d.p);
        rc = replay_h5_attr(g, "n", H5T_NATIVE_INT32, &n) || replay_h5_attr(g, "m", H5T_NATIVE_INT32, &m) ||
             replay_h5_attr(g, "p", H5T_NATIVE_INT32, &p) || replay_h5_attr(g, "rank", H5T_NATIVE_INT32, &rank) ||
             replay_h5_attr(g, "denominator", H5T_NATIVE_INT64, &den) ||
             replay_h5_attr_str(g, "arithmetic", tg_arith_name(tg_fact_arith(e->f))) || replay_h5_attr_str(g, "target", target) ||
             replay_h5_attr(g, "model_version", H5T_NATIVE_UINT64, &e->model_version) ||
             replay_h5_attr_str(g, "actor", e->actor) || replay_h5_attr(g, "when", H5T_NATIVE_DOUBLE, &e->when) ||
             put_mat(g, "u", tg_fact_cu(e->f), rank, n * m) || put_mat(g, "v", tg_fact_cv(e->f), rank, m * p) ||
             put_mat(g, "w", tg_fact_cw(e->f), rank, p * n);
        H5Gclose(g);
    }
    if (H5Fclose(f) < 0 && rc == 0)
        rc = tg_fail("cannot close %s", tmp);
    int fd = rc == 0 ? open(tmp, O_RDONLY) : -1;
    if (rc == 0 && (fd < 0 || fsync(fd)))
        rc = tg_fail("fsync %s: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (rc == 0 && rename(tmp, r->path))
        rc = tg_fail("cannot rename %s to %s: %s", tmp, r->path, strerror(errno));
    if (rc) {
        unlink(tmp);
        return tg_fail_ctx("writing %s: ", r->path);
    }
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int push(replay_results *r, tg_fact *f, uint64_t mv, const char *actor, double when)
{
    if (r->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 16;
        entry *ne = realloc(r->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return tg_fail("out of memory");
        r->e = ne;
        r->cap = nc;
    }
    entry *e = &r->e[r->n++];
    e->f = f;
    e->model_version = mv;
    snprintf(e->actor, sizeof e->actor, "%s", actor ? actor : "");
    e->when = when;
    return 0;
}

static int get_attr(hid_t obj, const char *name, hid_t type, void *v)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return tg_fail("attribute %s is missing", name);
    int rc = H5Aread(a, type, v) < 0 ? tg_fail("cannot read attribute %s", name) : 0;
    H5Aclose(a);
    return rc;
}

static int get_str(hid_t obj, const char *name, char *buf, size_t len)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return tg_fail("attribute %s is missing", name);
    hid_t t = H5Aget_type(a);
    int rc = 0;
    if (H5Tget_class(t) != H5T_STRING || H5Tis_variable_str(t) > 0 || H5Tget_size(t) >= len)
        rc = tg_fail("attribute %s is not a short fixed-length string", name);
    else {
        memset(buf, 0, len);
        rc = H5Aread(a, t, buf) < 0 ? tg_fail("cannot read attribute %s", name) : 0;
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int get_mat(hid_t g, const char *name, int64_t *out, int rows, int cols)
{
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT);
    if (ds < 0)
        return tg_fail("dataset %s is missing", name);
    hid_t sp = H5Dget_space(ds);
    hsize_t d[2] = {0, 0};
    int rc = 0;
    if (H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, d, NULL) < 0 ||
        d[0] != (hsize_t)rows || d[1] != (hsize_t)cols)
        rc = tg_fail("dataset %s has shape [%llu, %llu], expected [%d, %d]", name, (unsigned long long)d[0],
                     (unsigned long long)d[1], rows, cols);
    else if (H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
        rc = tg_fail("cannot read dataset %s", name);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc;
}

static herr_t load_one(hid_t root, const char *name, const H5L_info_t *info, void *ud)
{
    (void)info;
    replay_results *r = ud;
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0) {
        tg_fail("%s is not a group", name);
        return -1;
    }
    int32_t n, m, p, rank;
    int64_t den;
    uint64_t mv = 0;
    double when = 0;
    char ar[32], actor[64] = "";
    tg_arith arith;
    tg_fact *f = NULL;
    int rc = -1;
    if (get_attr(g, "n", H5T_NATIVE_INT32, &n) || get_attr(g, "m", H5T_NATIVE_INT32, &m) ||
        get_attr(g, "p", H5T_NATIVE_INT32, &p) || get_attr(g, "rank", H5T_NATIVE_INT32, &rank) ||
        get_attr(g, "denominator", H5T_NATIVE_INT64, &den) || get_str(g, "arithmetic", ar, sizeof ar) ||
        tg_arith_parse(ar, &arith))
        goto out;
    get_attr(g, "model_version", H5T_NATIVE_UINT64, &mv);
    get_attr(g, "when", H5T_NATIVE_DOUBLE, &when);
    get_str(g, "actor", actor, sizeof actor);
    tg_dims d = {n, m, p};
    if (!(f = tg_fact_new(d, rank, den, arith)))
        goto out;
    if (get_mat(g, "u", tg_fact_u(f), rank, n * m) || get_mat(g, "v", tg_fact_v(f), rank, m * p) ||
        get_mat(g, "w", tg_fact_w(f), rank, p * n))
        goto out;
    if (push(r, f, mv, actor, when))
        goto out;
    f = NULL;
    rc = 0;
out:
    if (rc)
        tg_fail_ctx("group %s: ", name);
    tg_fact_free(f);
    H5Gclose(g);
    return rc;
}

static int load(replay_results *r)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (H5Fis_hdf5(r->path) <= 0)
        return tg_fail("%s is not an HDF5 file (corrupt or truncated)", r->path);
    hid_t f = H5Fopen(r->path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return tg_fail("cannot open %s (corrupt HDF5 file)", r->path);
    hsize_t idx = 0;
    tg_err_clear();
    herr_t rc = H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, load_one, r);
    H5Fclose(f);
    if (rc < 0)
        return tg_fail_ctx("reading %s: ", r->path);
    return 0;
}

replay_results *replay_results_open(const char *path, int reset_corrupt)
{
    replay_results *r = calloc(1, sizeof *r);
    if (!r) {
        tg_fail("out of memory");
        return NULL;
    }
    snprintf(r->path, sizeof r->path, "%s", path);
    pthread_mutex_lock(&replay_hdf5_mu);
    int lrc = access(path, F_OK) == 0 ? load(r) : 0;
    pthread_mutex_unlock(&replay_hdf5_mu);
    if (lrc) {
        if (!reset_corrupt) {
            tg_fail_ctx("results file is unreadable (start with --reset-corrupt to move it aside): ");
            replay_results_free(r);
            return NULL;
        }
        char aside[4300];
        snprintf(aside, sizeof aside, "%s.corrupt-%ld", path, (long)tg_wall());
        tg_warn("%s; moving it to %s and starting a fresh results file", tg_errmsg(), aside);
        if (rename(path, aside)) {
            tg_fail("cannot move %s aside: %s", path, strerror(errno));
            replay_results_free(r);
            return NULL;
        }
        for (int i = 0; i < r->n; i++)
            tg_fact_free(r->e[i].f);
        r->n = 0;
    }
    return r;
}

void replay_results_free(replay_results *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        tg_fact_free(r->e[i].f);
    free(r->e);
    free(r);
}

static int same_fact(const tg_fact *a, const tg_fact *b)
{
    tg_dims x = tg_fact_dims(a), y = tg_fact_dims(b);
    if (x.n != y.n || x.m != y.m || x.p != y.p || tg_fact_rank(a) != tg_fact_rank(b) ||
        tg_fact_denom(a) != tg_fact_denom(b) || tg_fact_arith(a) != tg_fact_arith(b))
        return 0;
    int r = tg_fact_rank(a);
    return !memcmp(tg_fact_cu(a), tg_fact_cu(b), (size_t)r * x.n * x.m * 8) &&
           !memcmp(tg_fact_cv(a), tg_fact_cv(b), (size_t)r * x.m * x.p * 8) &&
           !memcmp(tg_fact_cw(a), tg_fact_cw(b), (size_t)r * x.p * x.n * 8);
}

int replay_results_add(replay_results *r, const tg_fact *f, uint64_t model_version, const char *actor, double when)
{
    for (int i = 0; i < r->n; i++) /* a resent discovery is recorded once */
        if (same_fact(r->e[i].f, f))
            return i;
    tg_fact *c = tg_fact_clone(f);
    if (!c || push(r, c, model_version, actor, when)) {
        tg_fact_free(c);
        return -1;
    }
    pthread_mutex_lock(&replay_hdf5_mu);
    int wrc = write_file(r);
    pthread_mutex_unlock(&replay_hdf5_mu);
    if (wrc) {
        tg_fact_free(r->e[--r->n].f); /* not recorded: the caller reports the failure */
        return -1;
    }
    return r->n - 1;
}

int replay_results_count(const replay_results *r) { return r->n; }

const tg_fact *replay_results_fact(const replay_results *r, int i)
{
    TG_ASSERT(i >= 0 && i < r->n);
    return r->e[i].f;
}

double replay_results_when(const replay_results *r, int i)
{
    TG_ASSERT(i >= 0 && i < r->n);
    return r->e[i].when;
}

int replay_results_best(const replay_results *r, tg_dims d, int mod2)
{
    int best = 0;
    for (int i = 0; i < r->n; i++) {
        tg_dims e = tg_fact_dims(r->e[i].f);
        if (e.n == d.n && e.m == d.m && e.p == d.p && (tg_fact_arith(r->e[i].f) == TG_ARITH_MOD2) == (mod2 != 0) &&
            (best == 0 || tg_fact_rank(r->e[i].f) < best))
            best = tg_fact_rank(r->e[i].f);
    }
    return best;
}
