#include "learner/ckptdir.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "learner/checkpoint.h"

static int ensure_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tg_fail("mkdir %s: %s", dir, strerror(errno));
    return 0;
}

/* A scalar attribute of file type ft from memory type mt, replacing one of that name. */
static int attr_write(hid_t loc, const char *name, hid_t ft, hid_t mt, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0)
        return tg_fail("H5Screate failed");
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t a = H5Acreate2(loc, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, mt, v) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return rc ? tg_fail("writing attribute %s failed", name) : 0;
}

static int attr_write_double(hid_t loc, const char *name, double v)
{
    return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

static int attr_write_i64(hid_t loc, const char *name, int64_t v)
{
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v);
}

/* NAN if missing or unreadable (older files, files of other tools). */
static double attr_read_double(hid_t loc, const char *name)
{
    double v = NAN;
    if (H5Aexists(loc, name) <= 0)
        return v;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return v;
    if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
        v = NAN;
    H5Aclose(a);
    return v;
}

static int attr_read_i64(hid_t loc, const char *name, int64_t *v)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    int rc = H5Aread(a, H5T_NATIVE_INT64, v) >= 0 ? 0 : -1;
    H5Aclose(a);
    return rc;
}

int tg_ckpt_read_meta(const char *path, tg_ckpt_meta *meta)
{
    hid_t f;
    memset(meta, 0, sizeof *meta);
    H5E_BEGIN_TRY { f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0)
        return tg_fail("%s: not a readable HDF5 file", path);
    int rc = 0;
    H5E_BEGIN_TRY {
        if (attr_read_i64(f, "step", &meta->step) != 0)
            rc = tg_fail("%s: no step attribute", path);
        meta->wall_time = attr_read_double(f, "wall_time");
        meta->loss_total = attr_read_double(f, "loss_total");
        meta->loss_policy = attr_read_double(f, "loss_policy");
        meta->loss_value = attr_read_double(f, "loss_value");
        meta->lr = attr_read_double(f, "lr");
        if (attr_read_i64(f, "samples", &meta->samples) != 0)
            meta->samples = 0;
    } H5E_END_TRY;
    H5Fclose(f);
    if (rc == 0 && isnan(meta->wall_time)) {
        struct stat st;
        if (stat(path, &st) == 0)
            meta->wall_time = (double)st.st_mtime;
    }
    return rc;
}

/* step from "step-NNNNNNNN.h5", or -1 */
static int64_t parse_step_name(const char *name)
{
    if (strncmp(name, "step-", 5) != 0)
        return -1;
    char *end;
    errno = 0;
    long long s = strtoll(name + 5, &end, 10);
    if (errno || end == name + 5 || strcmp(end, ".h5") != 0 || s < 0)
        return -1;
    return s;
}

typedef struct step_file {
    int64_t step;
    char name[256];
} step_file;

static int cmp_step_desc(const void *a, const void *b)
{
    int64_t x = ((const step_file *)a)->step, y = ((const step_file *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Step files of dir, newest first. */
static int scan_steps(const char *dir, step_file **out, int *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        return tg_fail("opening %s: %s", dir, strerror(errno));
    }
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = parse_step_name(e->d_name);
        if (s < 0 || strlen(e->d_name) >= sizeof((*out)->name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            step_file *nf = realloc(*out, (size_t)cap * sizeof *nf);
            if (!nf) {
                closedir(d);
                free(*out);
                *out = NULL;
                return tg_fail("out of memory");
            }
            *out = nf;
        }
        (*out)[*n].step = s;
        snprintf((*out)[*n].name, sizeof((*out)[*n].name), "%s", e->d_name);
        (*n)++;
    }
    closedir(d);
    if (*n > 1)
        qsort(*out, (size_t)*n, sizeof **out, cmp_step_desc);
    return 0;
}

/* Name `latest` points at ("" if none). */
static void read_latest(const char *dir, char *name, size_t len)
{
    char link[4096];
    name[0] = 0;
    snprintf(link, sizeof link, "%s/latest", dir);
    ssize_t k = readlink(link, name, len - 1);
    if (k < 0) {
        name[0] = 0;
        return;
    }
    name[k] = 0;
    /* keep only the base name (we write relative links) */
    char *slash = strrchr(name, '/');
    if (slash)
        memmove(name, slash + 1, strlen(slash + 1) + 1);
}

int tg_ckptdir_save(tg_net *net, const char *run_dir, const tg_ckpt_meta *meta, int keep,
                    const char *config_yaml, char *path_out, size_t path_len)
{
    char dir[4096], part[4200], final[4200], name[64], lnk[4200], lnk_tmp[4200];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    if (ensure_dir(run_dir) != 0 || ensure_dir(dir) != 0)
        return tg_fail_ctx("saving checkpoint: ");
    snprintf(name, sizeof name, "step-%08" PRId64 ".h5", meta->step);
    snprintf(final, sizeof final, "%s/%s", dir, name);
    snprintf(part, sizeof part, "%s/.%s.partial", dir, name);
    /* the checkpoint module writes part atomically; we add our attributes, then publish it
     * under its final name, so readers only ever see complete files */
    if (tg_net_save(net, part, config_yaml) != 0)
        return tg_fail_ctx("saving checkpoint %s: ", final);
    hid_t f;
    H5E_BEGIN_TRY { f = H5Fopen(part, H5F_ACC_RDWR, H5P_DEFAULT); } H5E_END_TRY;
    if (f < 0) {
        unlink(part);
        return tg_fail("saving checkpoint: reopening %s failed", part);
    }
    int rc = attr_write_double(f, "wall_time", meta->wall_time);
    rc |= attr_write_double(f, "loss_total", meta->loss_total);
    rc |= attr_write_double(f, "loss_policy", meta->loss_policy);
    rc |= attr_write_double(f, "loss_value", meta->loss_value);
    rc |= attr_write_double(f, "lr", meta->lr);
    rc |= attr_write_i64(f, "samples", meta->samples);
    if (H5Fclose(f) < 0)
        rc = -1;
    if (rc != 0) {
        unlink(part);
        return tg_fail("saving checkpoint: writing attributes to %s failed", part);
    }
    if (rename(part, final) != 0) {
        int e = errno;
        unlink(part);
        return tg_fail("saving checkpoint: renaming to %s: %s", final, strerror(e));
    }
    snprintf(lnk, sizeof lnk, "%s/latest", dir);
    snprintf(lnk_tmp, sizeof lnk_tmp, "%s/.latest.%d", dir, (int)getpid());
    unlink(lnk_tmp);
    if (symlink(name, lnk_tmp) != 0 || rename(lnk_tmp, lnk) != 0) {
        int e = errno;
        unlink(lnk_tmp);
        return tg_fail("saving checkpoint: updating %s: %s", lnk, strerror(e));
    }
    if (path_out)
        snprintf(path_out, path_len, "%s", final);

    /* keep the newest `keep` step files (by step number; `latest` is the newest) */
    step_file *files;
    int n;
    if (scan_steps(dir, &files, &n) != 0) {
        tg_warn("pruning checkpoints: %s", tg_errmsg());
        return 0;
    }
    for (int i = keep > 0 ? keep : 1; i < n; i++) {
        if (strcmp(files[i].name, name) == 0)
            continue;
        char old[4400];
        snprintf(old, sizeof old, "%s/%s", dir, files[i].name);
        if (unlink(old) != 0)
            tg_warn("deleting old checkpoint %s: %s", old, strerror(errno));
    }
    free(files);
    return 0;
}

int tg_ckptdir_resume(tg_net *net, const char *run_dir, tg_ckpt_meta *meta, char *path_out,
                      size_t path_len)
{
    char dir[4096], latest[256], path[4400];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    step_file *files;
    int n;
    if (scan_steps(dir, &files, &n) != 0)
        return -1;
    read_latest(dir, latest, sizeof latest);
    /* candidates: latest first, then every step file newest first */
    int tried = 0;
    for (int i = -1; i < n; i++) {
        const char *name = i < 0 ? latest : files[i].name;
        if (!name[0] || (i >= 0 && strcmp(name, latest) == 0))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (access(path, F_OK) != 0)
            continue;
        tried++;
        if (tg_net_load(net, path) != 0) {
            tg_warn("checkpoint %s does not load (%s); trying an older one", path, tg_errmsg());
            continue;
        }
        if (tg_ckpt_read_meta(path, meta) != 0) {
            tg_warn("checkpoint %s: %s; trying an older one", path, tg_errmsg());
            continue;
        }
        if (path_out)
            snprintf(path_out, path_len, "%s", path);
        free(files);
        return 1;
    }
    free(files);
    if (tried)
        return tg_fail("%s holds %d checkpoint(s) but none loads; refusing to start from scratch "
                       "(move them away to start a new run)", dir, tried);
    return 0;
}

int tg_ckptdir_list(const char *run_dir, tg_ckpt_info **out, int *n)
{
    char dir[3800], latest[256];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    step_file *files;
    *out = NULL;
    *n = 0;
    if (scan_steps(dir, &files, n) != 0)
        return -1;
    read_latest(dir, latest, sizeof latest);
    if (*n == 0) {
        free(files);
        return 0;
    }
    tg_ckpt_info *info = calloc((size_t)*n, sizeof *info);
    if (!info) {
        free(files);
        return tg_fail("out of memory");
    }
    for (int i = 0; i < *n; i++) {
        snprintf(info[i].path, sizeof info[i].path, "%s/%s", dir, files[i].name);
        if (tg_ckpt_read_meta(info[i].path, &info[i].meta) != 0) {
            /* unreadable (being deleted, corrupt): still listed, by its name's step */
            info[i].meta.step = files[i].step;
            info[i].meta.loss_total = info[i].meta.loss_policy = info[i].meta.loss_value = NAN;
            info[i].meta.lr = info[i].meta.wall_time = NAN;
        }
        info[i].latest = strcmp(files[i].name, latest) == 0;
    }
    free(files);
    *out = info;
    return 0;
}
