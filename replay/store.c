#include "replay/store.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/action.h"
#include "common/err.h"

#define CHUNK_BYTES (256 * 1024)

pthread_mutex_t replay_hdf5_mu = PTHREAD_MUTEX_INITIALIZER;
#define DEFLATE_LEVEL 1 /* fast: the checkpoint is rewritten periodically */

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* ---- writing ---------------------------------------------------------------------------- */

/* Creates a chunked, extendible (unlimited first dimension), shuffled and deflated dataset and
 * writes all rows. */
static int write_ds(hid_t g, const char *name, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data)
{
    hsize_t maxd[4], chunk[4];
    size_t row = H5Tget_size(mtype);
    for (int i = 1; i < rank; i++)
        row *= dims[i];
    for (int i = 0; i < rank; i++) {
        maxd[i] = i == 0 ? H5S_UNLIMITED : dims[i];
        chunk[i] = dims[i];
    }
    chunk[0] = CHUNK_BYTES / (row ? row : 1);
    if (chunk[0] < 1)
        chunk[0] = 1;
    int rc = -1;
    hid_t sp = -1, dcpl = -1, ds = -1;
    if ((sp = H5Screate_simple(rank, dims, maxd)) < 0 || (dcpl = H5Pcreate(H5P_DATASET_CREATE)) < 0 ||
        H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 ||
        H5Pset_deflate(dcpl, DEFLATE_LEVEL) < 0 || H5Pset_fletcher32(dcpl) < 0) {
        tg_fail("cannot set up dataset %s", name);
        goto fail;
    }
    if ((ds = H5Dcreate2(g, name, mtype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0) {
        tg_fail("cannot create dataset %s", name);
        goto fail;
    }
    if (dims[0] > 0 && H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        tg_fail("cannot write dataset %s", name);
        goto fail;
    }
    rc = 0;
fail:
    if (ds >= 0)
        H5Dclose(ds);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return rc;
}

int replay_h5_attr(hid_t obj, const char *name, hid_t type, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, v) >= 0) ? 0 : tg_fail("cannot write attribute %s", name);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

int replay_h5_attr_str(hid_t obj, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) + 1);
    int rc = replay_h5_attr(obj, name, t, s);
    H5Tclose(t);
    return rc;
}

static hid_t actor_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, REPLAY_ACTOR_LEN);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    return t;
}

/* A table's columns in memory, as written and read (NULL where a table has none). */
typedef struct table_cols {
    uint64_t *id, *mv;
    int32_t *dims, *nm, *rk, *pc, *init, *bas;
    uint8_t *ar, *so, *hb;
    int64_t *mo, *po;
    double *t0, *t1;
    char *act;
    int8_t *acts, *pa;
    float *ret, *pp;
} table_cols;

static void table_cols_free(table_cols *c)
{
    free(c->id), free(c->mv), free(c->dims), free(c->nm), free(c->rk), free(c->pc), free(c->init);
    free(c->bas), free(c->ar), free(c->so), free(c->hb), free(c->mo), free(c->po), free(c->t0);
    free(c->t1), free(c->act), free(c->acts), free(c->pa), free(c->ret), free(c->pp);
}

static int write_table(hid_t file, int tid, int S, replay_game **games, int64_t G)
{
    int rc = -1;
    int with_policy = tid != REPLAY_DEMOS;
    size_t A = 3 * (size_t)S, S3 = (size_t)S * S * S;
    int64_t M = 0, P = 0;
    for (int64_t i = 0; i < G; i++) {
        M += games[i]->n_moves;
        P += games[i]->n_pol;
        if (with_policy && !games[i]->initial)
            return tg_fail("table %s: game %llu has no initial residual", replay_table_names[tid],
                           (unsigned long long)games[i]->id);
    }
    hid_t g = H5Gcreate2(file, replay_table_names[tid], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return tg_fail("cannot create group %s", replay_table_names[tid]);
    hid_t st = actor_type();
    size_t gz = (size_t)(G ? G : 1), mz = (size_t)(M ? M : 1), pz = (size_t)(P ? P : 1);
    table_cols c = {0};
    c.id = malloc(gz * 8), c.mv = malloc(gz * 8);
    c.dims = malloc(gz * 12), c.nm = malloc(gz * 4), c.rk = malloc(gz * 4);
    c.ar = malloc(gz), c.so = malloc(gz), c.hb = malloc(gz);
    c.mo = malloc(gz * 8);
    c.t0 = malloc(gz * 8), c.t1 = malloc(gz * 8);
    c.act = calloc(gz, REPLAY_ACTOR_LEN);
    c.acts = malloc(mz * A);
    c.ret = malloc(mz * 4);
    if (with_policy) {
        c.po = malloc(mz * 8), c.pc = malloc(mz * 4), c.pa = malloc(pz * A), c.pp = malloc(pz * 4);
        c.init = malloc(gz * S3 * 4), c.bas = calloc(gz * 3 * S * S, 4);
    }
    if (!c.id || !c.mv || !c.dims || !c.nm || !c.rk || !c.ar || !c.so || !c.hb || !c.mo || !c.t0 ||
        !c.t1 || !c.act || !c.acts || !c.ret ||
        (with_policy && (!c.po || !c.pc || !c.pa || !c.pp || !c.init || !c.bas))) {
        tg_fail("out of memory writing table %s", replay_table_names[tid]);
        goto fail;
    }
    int64_t m = 0, p = 0;
    for (int64_t i = 0; i < G; i++) {
        const replay_game *x = games[i];
        c.id[i] = x->id;
        c.mv[i] = x->model_version;
        c.dims[3 * i] = x->dims.n, c.dims[3 * i + 1] = x->dims.m, c.dims[3 * i + 2] = x->dims.p;
        c.nm[i] = x->n_moves;
        c.rk[i] = x->rank;
        c.ar[i] = (uint8_t)x->mod2;
        c.so[i] = (uint8_t)x->solved;
        c.hb[i] = x->basis != NULL;
        c.mo[i] = m;
        c.t0[i] = x->started;
        c.t1[i] = x->finished;
        memcpy(c.act + i * REPLAY_ACTOR_LEN, x->actor, REPLAY_ACTOR_LEN);
        memcpy(c.acts + m * A, x->actions, (size_t)x->n_moves * A);
        memcpy(c.ret + m, x->returns, (size_t)x->n_moves * 4);
        if (with_policy) {
            for (int j = 0; j < x->n_moves; j++) {
                c.po[m + j] = p + x->pol_off[j];
                c.pc[m + j] = x->pol_off[j + 1] - x->pol_off[j];
            }
            memcpy(c.pa + p * A, x->pol_actions, (size_t)x->n_pol * A);
            memcpy(c.pp + p, x->pol_probs, (size_t)x->n_pol * 4);
            memcpy(c.init + i * S3, x->initial, S3 * 4);
            if (x->basis)
                memcpy(c.bas + i * 3 * S * S, x->basis, 3 * (size_t)S * S * 4);
        }
        m += x->n_moves;
        p += x->n_pol;
    }
    hsize_t d1[1] = {(hsize_t)G}, d2[2] = {(hsize_t)G, 3}, dm[2] = {(hsize_t)M, A}, dm1[1] = {(hsize_t)M},
            dp[2] = {(hsize_t)P, A}, dp1[1] = {(hsize_t)P}, di[4] = {(hsize_t)G, S, S, S},
            db[4] = {(hsize_t)G, 3, S, S};
    if (write_ds(g, "game_id", H5T_NATIVE_UINT64, 1, d1, c.id) || write_ds(g, "dims", H5T_NATIVE_INT32, 2, d2, c.dims) ||
        write_ds(g, "arithmetic", H5T_NATIVE_UINT8, 1, d1, c.ar) || write_ds(g, "n_moves", H5T_NATIVE_INT32, 1, d1, c.nm) ||
        write_ds(g, "move_offset", H5T_NATIVE_INT64, 1, d1, c.mo) || write_ds(g, "solved", H5T_NATIVE_UINT8, 1, d1, c.so) ||
        write_ds(g, "rank", H5T_NATIVE_INT32, 1, d1, c.rk) ||
        write_ds(g, "model_version", H5T_NATIVE_UINT64, 1, d1, c.mv) || write_ds(g, "actor", st, 1, d1, c.act) ||
        write_ds(g, "started", H5T_NATIVE_DOUBLE, 1, d1, c.t0) || write_ds(g, "finished", H5T_NATIVE_DOUBLE, 1, d1, c.t1) ||
        write_ds(g, "actions", H5T_NATIVE_INT8, 2, dm, c.acts) || write_ds(g, "returns", H5T_NATIVE_FLOAT, 1, dm1, c.ret))
        goto fail;
    if (with_policy &&
        (write_ds(g, "has_basis", H5T_NATIVE_UINT8, 1, d1, c.hb) || write_ds(g, "initial", H5T_NATIVE_INT32, 4, di, c.init) ||
         write_ds(g, "basis", H5T_NATIVE_INT32, 4, db, c.bas) ||
         write_ds(g, "policy_offset", H5T_NATIVE_INT64, 1, dm1, c.po) ||
         write_ds(g, "policy_count", H5T_NATIVE_INT32, 1, dm1, c.pc) ||
         write_ds(g, "policy_actions", H5T_NATIVE_INT8, 2, dp, c.pa) ||
         write_ds(g, "policy_probs", H5T_NATIVE_FLOAT, 1, dp1, c.pp)))
        goto fail;
    rc = 0;
fail:
    if (rc)
        tg_fail_ctx("table %s: ", replay_table_names[tid]);
    table_cols_free(&c);
    H5Tclose(st);
    H5Gclose(g);
    return rc;
}

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0)
        return tg_fail("cannot open %s: %s", path, strerror(errno));
    int rc = fsync(fd) ? tg_fail("fsync %s: %s", path, strerror(errno)) : 0;
    close(fd);
    return rc;
}

static int store_write(const char *path, const replay_store_meta *meta, const replay_store_tables *t);

int replay_store_write(const char *path, const replay_store_meta *meta, const replay_store_tables *t)
{
    pthread_mutex_lock(&replay_hdf5_mu);
    int rc = store_write(path, meta, t);
    pthread_mutex_unlock(&replay_hdf5_mu);
    return rc;
}

static int store_write(const char *path, const replay_store_meta *meta, const replay_store_tables *t)
{
    quiet_hdf5();
    char tmp[4096], dir[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(dir, sizeof dir, "%s", path);
    unlink(tmp);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* the 1.10 format: checksums on all metadata, so damage is reported, never misread */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return tg_fail("cannot create %s", tmp);
    int rc = -1;
    int32_t S = meta->S, ver = REPLAY_STORE_VERSION;
    if (replay_h5_attr_str(f, "format", "tensorgame-replay") || replay_h5_attr(f, "version", H5T_NATIVE_INT32, &ver) ||
        replay_h5_attr(f, "S", H5T_NATIVE_INT32, &S) ||
        replay_h5_attr(f, "next_game_id", H5T_NATIVE_UINT64, &meta->next_game_id) ||
        replay_h5_attr(f, "journal_seq", H5T_NATIVE_UINT64, &meta->journal_seq) ||
        replay_h5_attr(f, "written", H5T_NATIVE_DOUBLE, &meta->written))
        goto fail;
    if (meta->has_limiter &&
        (replay_h5_attr(f, "limiter_inserts", H5T_NATIVE_INT64, &meta->limiter_inserts) ||
         replay_h5_attr(f, "limiter_samples", H5T_NATIVE_INT64, &meta->limiter_samples)))
        goto fail;
    for (int i = 0; i < REPLAY_NTABLES; i++)
        if (write_table(f, i, meta->S, t->games[i], t->n[i]))
            goto fail;
    rc = 0;
fail:
    if (H5Fclose(f) < 0 && rc == 0)
        rc = tg_fail("cannot close %s", tmp);
    if (rc == 0 && fsync_path(tmp, 0) == 0 && rename(tmp, path) == 0)
        return fsync_path(dirname(dir), 1);
    if (rc == 0)
        tg_fail("cannot replace %s: %s", path, strerror(errno));
    unlink(tmp);
    return tg_fail_ctx("writing %s: ", path);
}

/* ---- reading ---------------------------------------------------------------------------- */

/* Reads a whole dataset after checking its rank and trailing dimensions (-1 = any); *rows gets
 * the first dimension. Returns a malloc'd buffer (at least 1 byte) or NULL with a message. */
static void *read_ds(hid_t g, const char *name, hid_t mtype, int rank, const hsize_t *inner, int64_t *rows)
{
    void *buf = NULL;
    hid_t ds = H5Dopen2(g, name, H5P_DEFAULT), sp = -1, ft = -1;
    if (ds < 0) {
        tg_fail("dataset %s is missing", name);
        return NULL;
    }
    sp = H5Dget_space(ds);
    hsize_t d[8];
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (r != rank || r > 8 || H5Sget_simple_extent_dims(sp, d, NULL) < 0) {
        tg_fail("dataset %s has rank %d, expected %d", name, r, rank);
        goto out;
    }
    for (int i = 1; i < rank; i++)
        if (d[i] != inner[i - 1]) {
            tg_fail("dataset %s has dimension %d of size %llu, expected %llu", name, i,
                    (unsigned long long)d[i], (unsigned long long)inner[i - 1]);
            goto out;
        }
    ft = H5Dget_type(ds);
    if (ft < 0 || H5Tget_class(ft) != H5Tget_class(mtype)) {
        tg_fail("dataset %s has the wrong type class", name);
        goto out;
    }
    size_t n = H5Tget_size(mtype);
    for (int i = 0; i < rank; i++)
        n *= d[i];
    if (!(buf = malloc(n ? n : 1))) {
        tg_fail("out of memory reading %s", name);
        goto out;
    }
    if (d[0] > 0 && H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        tg_fail("cannot read dataset %s (corrupt data?)", name);
        free(buf);
        buf = NULL;
        goto out;
    }
    *rows = (int64_t)d[0];
out:
    if (ft >= 0)
        H5Tclose(ft);
    if (sp >= 0)
        H5Sclose(sp);
    H5Dclose(ds);
    return buf;
}

static int read_attr(hid_t obj, const char *name, hid_t type, void *v)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return tg_fail("attribute %s is missing", name);
    int rc = H5Aread(a, type, v) < 0 ? tg_fail("cannot read attribute %s", name) : 0;
    H5Aclose(a);
    return rc;
}

static int read_table(hid_t file, int tid, int S, replay_store_tables *t)
{
    int with_policy = tid != REPLAY_DEMOS;
    hsize_t A = 3 * (hsize_t)S;
    hid_t g = H5Gopen2(file, replay_table_names[tid], H5P_DEFAULT);
    if (g < 0)
        return tg_fail("group %s is missing", replay_table_names[tid]);
    int rc = -1;
    int64_t G = 0, n, M = 0, P = 0;
    hsize_t i3[1] = {3}, iA[1] = {A}, iS[3] = {(hsize_t)S, (hsize_t)S, (hsize_t)S}, iB[3] = {3, (hsize_t)S, (hsize_t)S};
    hid_t st = actor_type();
    table_cols c = {0};
#define RD(var, name, type, rank, inner, want)                                                     \
    do {                                                                                           \
        if (!(var = read_ds(g, name, type, rank, inner, &n)))                                      \
            goto fail;                                                                             \
        if ((want) >= 0 && n != (want)) {                                                          \
            tg_fail("dataset %s has %lld rows, expected %lld", name, (long long)n, (long long)(want)); \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)
    RD(c.id, "game_id", H5T_NATIVE_UINT64, 1, NULL, -1);
    G = n;
    RD(c.mv, "model_version", H5T_NATIVE_UINT64, 1, NULL, G);
    RD(c.dims, "dims", H5T_NATIVE_INT32, 2, i3, G);
    RD(c.nm, "n_moves", H5T_NATIVE_INT32, 1, NULL, G);
    RD(c.rk, "rank", H5T_NATIVE_INT32, 1, NULL, G);
    RD(c.ar, "arithmetic", H5T_NATIVE_UINT8, 1, NULL, G);
    RD(c.so, "solved", H5T_NATIVE_UINT8, 1, NULL, G);
    RD(c.mo, "move_offset", H5T_NATIVE_INT64, 1, NULL, G);
    RD(c.t0, "started", H5T_NATIVE_DOUBLE, 1, NULL, G);
    RD(c.t1, "finished", H5T_NATIVE_DOUBLE, 1, NULL, G);
    RD(c.act, "actor", st, 1, NULL, G);
    RD(c.acts, "actions", H5T_NATIVE_INT8, 2, iA, -1);
    M = n;
    RD(c.ret, "returns", H5T_NATIVE_FLOAT, 1, NULL, M);
    if (with_policy) {
        RD(c.hb, "has_basis", H5T_NATIVE_UINT8, 1, NULL, G);
        RD(c.init, "initial", H5T_NATIVE_INT32, 4, iS, G);
        RD(c.bas, "basis", H5T_NATIVE_INT32, 4, iB, G);
        RD(c.po, "policy_offset", H5T_NATIVE_INT64, 1, NULL, M);
        RD(c.pc, "policy_count", H5T_NATIVE_INT32, 1, NULL, M);
        RD(c.pa, "policy_actions", H5T_NATIVE_INT8, 2, iA, -1);
        P = n;
        RD(c.pp, "policy_probs", H5T_NATIVE_FLOAT, 1, NULL, P);
    }
#undef RD
    if (!(t->games[tid] = calloc((size_t)G + 1, sizeof(replay_game *)))) {
        tg_fail("out of memory");
        goto fail;
    }
    int64_t m = 0;
    size_t S3 = (size_t)S * S * S;
    for (int64_t i = 0; i < G; i++) {
        if (c.nm[i] < 1 || c.mo[i] != m || m + c.nm[i] > M) {
            tg_fail("game %lld has inconsistent moves (offset %lld, count %d of %lld)", (long long)i,
                    (long long)c.mo[i], c.nm[i], (long long)M);
            goto fail;
        }
        tg_dims d = {c.dims[3 * i], c.dims[3 * i + 1], c.dims[3 * i + 2]};
        int modes[3];
        if (tg_dims_check(d)) {
            tg_fail_ctx("game %lld: ", (long long)i);
            goto fail;
        }
        tg_dims_modes(d, modes);
        if (modes[0] > S || modes[1] > S || modes[2] > S) {
            tg_fail("game %lld: target %d,%d,%d does not fit S = %d", (long long)i, d.n, d.m, d.p, S);
            goto fail;
        }
        int64_t np = 0, p0 = with_policy ? c.po[m] : 0;
        if (with_policy)
            for (int j = 0; j < c.nm[i]; j++) {
                if (c.pc[m + j] < 0 || c.po[m + j] != p0 + np || p0 + np + c.pc[m + j] > P) {
                    tg_fail("game %lld move %d has an inconsistent policy range", (long long)i, j);
                    goto fail;
                }
                np += c.pc[m + j];
            }
        replay_game *x = replay_game_alloc(S, c.nm[i], (int)np, with_policy, with_policy && c.hb[i]);
        if (!x) {
            tg_fail("out of memory");
            goto fail;
        }
        t->games[tid][i] = x;
        t->n[tid] = i + 1;
        x->id = c.id[i];
        x->dims = d;
        x->mod2 = c.ar[i] != 0;
        x->solved = c.so[i] != 0;
        x->rank = c.rk[i];
        x->model_version = c.mv[i];
        x->started = c.t0[i];
        x->finished = c.t1[i];
        memcpy(x->actor, c.act + i * REPLAY_ACTOR_LEN, REPLAY_ACTOR_LEN);
        x->actor[REPLAY_ACTOR_LEN - 1] = 0;
        memcpy(x->actions, c.acts + m * A, (size_t)c.nm[i] * A);
        memcpy(x->returns, c.ret + m, (size_t)c.nm[i] * 4);
        if (with_policy) {
            for (int j = 0; j <= c.nm[i]; j++)
                x->pol_off[j] = j < c.nm[i] ? (int32_t)(c.po[m + j] - p0) : (int32_t)np;
            memcpy(x->pol_actions, c.pa + p0 * A, (size_t)np * A);
            memcpy(x->pol_probs, c.pp + p0, (size_t)np * 4);
            memcpy(x->initial, c.init + i * S3, S3 * 4);
            if (x->basis)
                memcpy(x->basis, c.bas + i * 3 * S * S, 3 * (size_t)S * S * 4);
        }
        m += c.nm[i];
    }
    if (m != M) {
        tg_fail("%lld moves stored but games use %lld", (long long)M, (long long)m);
        goto fail;
    }
    rc = 0;
fail:
    if (rc)
        tg_fail_ctx("table %s: ", replay_table_names[tid]);
    table_cols_free(&c);
    H5Tclose(st);
    H5Gclose(g);
    return rc;
}

static int store_read(const char *path, replay_store_meta *meta, replay_store_tables *t);

int replay_store_read(const char *path, replay_store_meta *meta, replay_store_tables *t)
{
    pthread_mutex_lock(&replay_hdf5_mu);
    int rc = store_read(path, meta, t);
    pthread_mutex_unlock(&replay_hdf5_mu);
    return rc;
}

static int store_read(const char *path, replay_store_meta *meta, replay_store_tables *t)
{
    quiet_hdf5();
    memset(t, 0, sizeof *t);
    memset(meta, 0, sizeof *meta);
    if (H5Fis_hdf5(path) <= 0)
        return tg_fail("%s is not an HDF5 file (corrupt or truncated)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return tg_fail("cannot open %s (corrupt or truncated HDF5 file)", path);
    int rc = -1;
    int32_t ver = 0, S = 0;
    char fmt[64] = "";
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, sizeof fmt);
    hid_t a = H5Aopen(f, "format", H5P_DEFAULT);
    hid_t at = a >= 0 ? H5Aget_type(a) : -1;
    if (a < 0 || at < 0 || H5Tget_class(at) != H5T_STRING || H5Tget_size(at) >= sizeof fmt ||
        H5Aread(a, at, fmt) < 0 || strcmp(fmt, "tensorgame-replay") != 0) {
        tg_fail("not a tensorgame replay file (attribute format is not \"tensorgame-replay\")");
        goto fail;
    }
    if (read_attr(f, "version", H5T_NATIVE_INT32, &ver) || read_attr(f, "S", H5T_NATIVE_INT32, &S) ||
        read_attr(f, "next_game_id", H5T_NATIVE_UINT64, &meta->next_game_id) ||
        read_attr(f, "journal_seq", H5T_NATIVE_UINT64, &meta->journal_seq) ||
        read_attr(f, "written", H5T_NATIVE_DOUBLE, &meta->written))
        goto fail;
    /* optional: files of earlier versions of this program lack them */
    meta->has_limiter = H5Aexists(f, "limiter_inserts") > 0 && H5Aexists(f, "limiter_samples") > 0;
    if (meta->has_limiter && (read_attr(f, "limiter_inserts", H5T_NATIVE_INT64, &meta->limiter_inserts) ||
                              read_attr(f, "limiter_samples", H5T_NATIVE_INT64, &meta->limiter_samples)))
        goto fail;
    if (!meta->has_limiter)
        meta->limiter_inserts = meta->limiter_samples = 0;
    if (ver != REPLAY_STORE_VERSION) {
        tg_fail("format version %d, this program reads version %d", ver, REPLAY_STORE_VERSION);
        goto fail;
    }
    if (S < 1 || S > TG_MAX_S) {
        tg_fail("S = %d is out of range", S);
        goto fail;
    }
    meta->S = S;
    for (int i = 0; i < REPLAY_NTABLES; i++)
        if (read_table(f, i, S, t))
            goto fail;
    rc = 0;
fail:
    if (at >= 0)
        H5Tclose(at);
    if (a >= 0)
        H5Aclose(a);
    H5Tclose(st);
    H5Fclose(f);
    if (rc) {
        replay_store_tables_free(t);
        return tg_fail_ctx("reading %s: ", path);
    }
    return 0;
}

void replay_store_tables_free(replay_store_tables *t)
{
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        for (int64_t j = 0; j < t->n[i]; j++)
            replay_game_unref(t->games[i][j]);
        free(t->games[i]);
        t->games[i] = NULL;
        t->n[i] = 0;
    }
}
