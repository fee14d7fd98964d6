/* Factorization files in HDF5 (libhdf5) and JSON (jansson). Every HDF5 call is checked; the HDF5
 * error stack is silenced and its innermost message is folded into ours, so a user
 * sees "x.h5: truncated or corrupt HDF5 file (...)" instead of a page of library diagnostics. */
#include "common/factio.h"

#include <errno.h>
#include <hdf5.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

#define FORMAT_NAME "tensorgame-factorizations"
#define FORMAT_VERSION 1

/* ---- the list ------------------------------------------------------------------------------ */

void tg_fact_list_free(tg_fact_list *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++) {
        free(l->keys[i]);
        tg_fact_free(l->facts[i]);
    }
    free(l->keys);
    free(l->facts);
    l->n = 0;
    l->keys = NULL;
    l->facts = NULL;
}

static int key_ok(const char *key)
{
    if (!key[0] || strchr(key, '/') || strcmp(key, ".") == 0 || strlen(key) > 200)
        return tg_fail("bad key '%s' (must be 1-200 characters, no '/', not '.')", key);
    return 0;
}

int tg_fact_list_add(tg_fact_list *l, const char *key, tg_fact *f)
{
    if (key_ok(key))
        return -1;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0)
            return tg_fail("duplicate key '%s'", key);
    char **k = realloc(l->keys, (size_t)(l->n + 1) * sizeof *k);
    if (!k)
        return tg_fail("out of memory");
    l->keys = k;
    tg_fact **fs = realloc(l->facts, (size_t)(l->n + 1) * sizeof *fs);
    if (!fs)
        return tg_fail("out of memory");
    l->facts = fs;
    char *dup = strdup(key);
    if (!dup)
        return tg_fail("out of memory");
    l->keys[l->n] = dup;
    l->facts[l->n] = f;
    l->n++;
    return 0;
}

/* "2,2,3" before "2,2,10" before names that are not sizes. */
static int key_cmp(const char *a, const char *b)
{
    tg_dims da, db;
    char save[1024];
    snprintf(save, sizeof save, "%s", tg_errmsg()); /* parse failures must not clobber messages */
    int pa = tg_dims_parse(a, &da) == 0, pb = tg_dims_parse(b, &db) == 0;
    tg_fail("%s", save);
    if (pa && pb) {
        if (da.n != db.n)
            return da.n - db.n;
        if (da.m != db.m)
            return da.m - db.m;
        if (da.p != db.p)
            return da.p - db.p;
    } else if (pa != pb) {
        return pa ? -1 : 1;
    }
    return strcmp(a, b);
}

static void list_sort(tg_fact_list *l)
{
    for (int i = 1; i < l->n; i++) /* insertion sort: lists are ~100 keys */
        for (int j = i; j > 0 && key_cmp(l->keys[j - 1], l->keys[j]) > 0; j--) {
            char *k = l->keys[j];
            l->keys[j] = l->keys[j - 1];
            l->keys[j - 1] = k;
            tg_fact *f = l->facts[j];
            l->facts[j] = l->facts[j - 1];
            l->facts[j - 1] = f;
        }
}

/* Checks a factorization read from a file against its declared sizes before it is used. */
static tg_fact *new_checked(const char *path, const char *key, int n, int m, int p, long long rank,
                            long long denom, const char *arith)
{
    tg_dims d = {n, m, p};
    tg_arith ar;
    if (tg_dims_check(d)) {
        tg_fail_ctx("%s: key %s: ", path, key);
        return NULL;
    }
    if (tg_arith_parse(arith, &ar)) {
        tg_fail_ctx("%s: key %s: arithmetic: ", path, key);
        return NULL;
    }
    if (rank < 0 || rank > 1000000) {
        tg_fail("%s: key %s: rank %lld out of range", path, key, rank);
        return NULL;
    }
    tg_fact *f = tg_fact_new(d, (int)rank, (int64_t)denom, ar);
    if (!f)
        tg_fail_ctx("%s: key %s: ", path, key);
    return f;
}

/* ---- HDF5 ---------------------------------------------------------------------------------- */

/* Turns off HDF5's automatic error printing for the process: every call is checked and its
 * errors become messages. Not restored afterwards on purpose: after some corrupt-file errors
 * HDF5 1.10 keeps internal references, and with printing on it reports "infinite loop closing
 * library" at exit. */
typedef struct h5_quiet {
    int unused;
} h5_quiet;

static void quiet_once(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static void quiet_begin(h5_quiet *q)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)q;
    pthread_once(&once, quiet_once);
}

static void quiet_end(h5_quiet *q)
{
    (void)q;
    H5Eclear2(H5E_DEFAULT);
}

static herr_t walk_last(unsigned n, const H5E_error2_t *e, void *data)
{
    /* H5E_WALK_UPWARD starts at the innermost error: keep the first one seen */
    if (n == 0 && e->desc)
        snprintf((char *)data, 200, "%s", e->desc);
    return 0;
}

/* The innermost HDF5 error message, or "" (then clears the stack). */
static const char *h5_detail(void)
{
    static _Thread_local char buf[200];
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk_last, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

static int h5_fail(const char *path, const char *what)
{
    const char *d = h5_detail();
    return tg_fail("%s: %s%s%s%s", path, what, d[0] ? " (" : "", d, d[0] ? ")" : "");
}

static const unsigned char h5_sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

enum file_kind { KIND_HDF5, KIND_JSON };

/* Decides HDF5 or JSON by content; -1 with a message for a missing, empty or other file. */
static int sniff(const char *path, enum file_kind *kind)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_fail("%s: %s", path, strerror(errno));
    unsigned char buf[512];
    errno = 0;
    size_t n = fread(buf, 1, sizeof buf, f);
    int err = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (err)
        return tg_fail("%s: %s", path, strerror(err));
    if (n == 0)
        return tg_fail("%s: empty file (neither HDF5 nor JSON)", path);
    if (n >= 8 && memcmp(buf, h5_sig, 8) == 0)
        return *kind = KIND_HDF5, 0;
    size_t i = 0;
    if (n >= 3 && buf[0] == 0xef && buf[1] == 0xbb && buf[2] == 0xbf)
        i = 3; /* UTF-8 byte order mark */
    while (i < n && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
        i++;
    if (i < n && (buf[i] == '{' || buf[i] == '['))
        return *kind = KIND_JSON, 0;
    /* an HDF5 file with a user block has its signature at 512, 1024, ...: let HDF5 decide */
    h5_quiet q;
    quiet_begin(&q);
    htri_t is = H5Fis_hdf5(path);
    quiet_end(&q);
    if (is > 0)
        return *kind = KIND_HDF5, 0;
    if (n >= 4 && memcmp(buf + 1, "HDF", 3) == 0)
        return tg_fail("%s: corrupt HDF5 file (damaged signature)", path);
    return tg_fail("%s: not a factorization file (neither HDF5 nor JSON)", path);
}

static int read_int_attr(hid_t g, const char *path, const char *key, const char *name, int required,
                         long long dflt, long long *out)
{
    htri_t ex = H5Aexists(g, name);
    if (ex < 0)
        return h5_fail(path, "cannot read attributes");
    if (!ex) {
        if (required)
            return tg_fail("%s: key %s: missing attribute '%s'", path, key, name);
        *out = dflt;
        return 0;
    }
    int rc = -1;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    if (a < 0)
        return h5_fail(path, "cannot open an attribute");
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    if (t < 0 || s < 0) {
        h5_fail(path, "cannot read an attribute's type");
        goto out;
    }
    if (H5Tget_class(t) != H5T_INTEGER) {
        tg_fail("%s: key %s: attribute '%s' is not an integer", path, key, name);
        goto out;
    }
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (np != 1) {
        tg_fail("%s: key %s: attribute '%s' has %lld values, expected 1", path, key, name, (long long)np);
        goto out;
    }
    long long v;
    if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0) {
        h5_fail(path, "cannot read an attribute");
        goto out;
    }
    *out = v;
    rc = 0;
out:
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return rc;
}

static int read_str_attr(hid_t g, const char *path, const char *key, const char *name, const char *dflt,
                         char *out, size_t len)
{
    htri_t ex = H5Aexists(g, name);
    if (ex < 0)
        return h5_fail(path, "cannot read attributes");
    if (!ex) {
        snprintf(out, len, "%s", dflt);
        return 0;
    }
    int rc = -1;
    hid_t a = H5Aopen(g, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    if (a < 0)
        return h5_fail(path, "cannot open an attribute");
    t = H5Aget_type(a);
    s = H5Aget_space(a);
    if (t < 0 || s < 0) {
        h5_fail(path, "cannot read an attribute's type");
        goto out;
    }
    if (H5Tget_class(t) != H5T_STRING || H5Sget_simple_extent_npoints(s) != 1) {
        tg_fail("%s: key %s: attribute '%s' is not a string", path, key, name);
        goto out;
    }
    htri_t vl = H5Tis_variable_str(t);
    if (vl < 0) {
        h5_fail(path, "cannot read an attribute's type");
        goto out;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0) {
        h5_fail(path, "H5Tcopy");
        goto out;
    }
    if (vl) {
        char *s_val = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(t)) < 0 ||
            H5Aread(a, mt, &s_val) < 0) {
            h5_fail(path, "cannot read a string attribute");
            goto out;
        }
        snprintf(out, len, "%s", s_val ? s_val : "");
        H5free_memory(s_val);
    } else {
        size_t sz = H5Tget_size(t);
        if (sz == 0 || sz > 4096) {
            tg_fail("%s: key %s: attribute '%s' has a bad string size", path, key, name);
            goto out;
        }
        /* one byte more than stored: NULLPAD strings (h5py's fixed-length bytes) have no 0 */
        char *buf = calloc(1, sz + 2);
        if (!buf) {
            tg_fail("out of memory");
            goto out;
        }
        if (H5Tset_size(mt, sz + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 || H5Aread(a, mt, buf) < 0) {
            free(buf);
            h5_fail(path, "cannot read a string attribute");
            goto out;
        }
        snprintf(out, len, "%s", buf);
        free(buf);
    }
    rc = 0;
out:
    if (mt >= 0)
        H5Tclose(mt);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* Reads dataset `name` of group g into out[rank][cols] after checking its type and shape. */
static int read_factor(hid_t g, const char *path, const char *key, const char *name, int rank, int cols,
                       int64_t *out)
{
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex < 0)
        return h5_fail(path, "cannot read a group");
    if (!ex)
        return tg_fail("%s: key %s: missing dataset '%s'", path, key, name);
    int rc = -1;
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), t = H5I_INVALID_HID, s = H5I_INVALID_HID;
    if (d < 0) {
        char what[300];
        snprintf(what, sizeof what, "key %s: cannot open dataset '%s'", key, name);
        return h5_fail(path, what);
    }
    t = H5Dget_type(d);
    s = H5Dget_space(d);
    if (t < 0 || s < 0) {
        h5_fail(path, "cannot read a dataset's type");
        goto out;
    }
    if (H5Tget_class(t) != H5T_INTEGER) {
        tg_fail("%s: key %s: dataset '%s' is not an integer array (the format stores int64 numerators)", path,
                key, name);
        goto out;
    }
    int nd = H5Sget_simple_extent_ndims(s);
    hsize_t dims[8] = {0};
    if (nd < 0 || nd > 8 || H5Sget_simple_extent_dims(s, dims, NULL) < 0) {
        h5_fail(path, "cannot read a dataset's shape");
        goto out;
    }
    if (nd != 2 || dims[0] != (hsize_t)rank || dims[1] != (hsize_t)cols) {
        char sh[100] = "";
        size_t off = 0;
        for (int i = 0; i < nd && off < 80; i++)
            off += (size_t)snprintf(sh + off, sizeof sh - off, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
        tg_fail("%s: key %s: dataset '%s' has shape [%s], expected [%d, %d] (rank, mode size)", path, key, name, sh,
                rank, cols);
        goto out;
    }
    if (rank > 0 && H5Dread(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) {
        char what[300];
        snprintf(what, sizeof what, "key %s: cannot read dataset '%s': truncated or corrupt file", key, name);
        h5_fail(path, what);
        goto out;
    }
    rc = 0;
out:
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    H5Dclose(d);
    return rc;
}

static tg_fact *h5_read_group(hid_t file, const char *path, const char *key)
{
    H5O_info_t info;
    if (H5Oget_info_by_name(file, key, &info, H5P_DEFAULT) < 0) {
        char what[300];
        snprintf(what, sizeof what, "key %s: cannot read it: truncated or corrupt file", key);
        h5_fail(path, what);
        return NULL;
    }
    if (info.type != H5O_TYPE_GROUP) {
        tg_fail("%s: key %s is not a group (not a file in the factorization format?)", path, key);
        return NULL;
    }
    hid_t g = H5Gopen2(file, key, H5P_DEFAULT);
    if (g < 0) {
        h5_fail(path, "cannot open a group");
        return NULL;
    }
    tg_fact *f = NULL;
    long long n = 0, m = 0, p = 0, rank = 0, denom = 1;
    char arith[32];
    if (read_int_attr(g, path, key, "n", 1, 0, &n) || read_int_attr(g, path, key, "m", 1, 0, &m) ||
        read_int_attr(g, path, key, "p", 1, 0, &p) || read_int_attr(g, path, key, "rank", 1, 0, &rank) ||
        read_int_attr(g, path, key, "denominator", 0, 1, &denom) ||
        read_str_attr(g, path, key, "arithmetic", "integer", arith, sizeof arith))
        goto out;
    if (n < 1 || n > TG_MAX_DIM || m < 1 || m > TG_MAX_DIM || p < 1 || p > TG_MAX_DIM) {
        tg_fail("%s: key %s: sizes %lld,%lld,%lld out of range (1..%d)", path, key, n, m, p, TG_MAX_DIM);
        goto out;
    }
    f = new_checked(path, key, (int)n, (int)m, (int)p, rank, denom, arith);
    if (!f)
        goto out;
    if (read_factor(g, path, key, "u", (int)rank, (int)(n * m), tg_fact_u(f)) ||
        read_factor(g, path, key, "v", (int)rank, (int)(m * p), tg_fact_v(f)) ||
        read_factor(g, path, key, "w", (int)rank, (int)(p * n), tg_fact_w(f))) {
        tg_fact_free(f);
        f = NULL;
    }
out:
    H5Gclose(g);
    return f;
}

typedef struct name_list {
    int n, cap;
    char **v;
    int oom;
} name_list;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    name_list *nl = data;
    if (nl->n == nl->cap) {
        int cap = nl->cap ? 2 * nl->cap : 64;
        char **v = realloc(nl->v, (size_t)cap * sizeof *v);
        if (!v)
            return nl->oom = 1, -1;
        nl->v = v;
        nl->cap = cap;
    }
    if (!(nl->v[nl->n] = strdup(name)))
        return nl->oom = 1, -1;
    nl->n++;
    return 0;
}

static void names_free(name_list *nl)
{
    for (int i = 0; i < nl->n; i++)
        free(nl->v[i]);
    free(nl->v);
}

static hid_t h5_open(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        h5_fail(path, "cannot open: truncated or corrupt HDF5 file");
    return f;
}

static int h5_names(hid_t f, const char *path, name_list *nl)
{
    memset(nl, 0, sizeof *nl);
    hsize_t idx = 0;
    if (H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, nl) < 0) {
        if (nl->oom)
            return tg_fail("out of memory");
        return h5_fail(path, "cannot list the keys: truncated or corrupt HDF5 file");
    }
    return 0;
}

static int h5_read_all(const char *path, tg_fact_list *out)
{
    hid_t f = h5_open(path);
    if (f < 0)
        return -1;
    name_list nl;
    int rc = h5_names(f, path, &nl);
    for (int i = 0; rc == 0 && i < nl.n; i++) {
        tg_fact *fa = h5_read_group(f, path, nl.v[i]);
        if (!fa || tg_fact_list_add(out, nl.v[i], fa)) {
            tg_fact_free(fa);
            rc = -1;
        }
    }
    names_free(&nl);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = h5_fail(path, "cannot close");
    return rc;
}

static int set_attr(hid_t g, const char *name, hid_t ftype, hid_t mtype, const void *val)
{
    hid_t s = H5Screate(H5S_SCALAR);
    if (s < 0)
        return -1;
    hid_t a = H5Acreate2(g, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, mtype, val) >= 0) ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    return rc;
}

/* Fixed-length strings live inside the (checksummed) object header; h5py reads them as bytes. */
static int set_str_attr(hid_t g, const char *name, const char *val)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    int rc = (H5Tset_size(t, strlen(val) + 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
              set_attr(g, name, t, t, val) == 0) ? 0 : -1;
    H5Tclose(t);
    return rc;
}

static int write_factor(hid_t g, const char *name, int rank, int cols, const int64_t *data)
{
    hsize_t dims[2] = {(hsize_t)rank, (hsize_t)cols};
    hid_t s = H5Screate_simple(2, dims, NULL);
    if (s < 0)
        return -1;
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    int rc = -1;
    if (pl < 0)
        goto out;
    /* whole-dataset chunks, shuffled and deflated (large factors are mostly 0 and +-1), with a
     * Fletcher-32 checksum so corrupt data is an error rather than a wrong algorithm */
    if (rank > 0) {
        if (H5Pset_chunk(pl, 2, dims) < 0 || H5Pset_shuffle(pl) < 0 || H5Pset_fletcher32(pl) < 0)
            goto out;
        if (H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Pset_deflate(pl, 4) < 0)
            goto out;
    }
    hid_t d = H5Dcreate2(g, name, H5T_STD_I64LE, s, H5P_DEFAULT, pl, H5P_DEFAULT);
    if (d < 0)
        goto out;
    rc = (rank == 0 || H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0) ? 0 : -1;
    if (H5Dclose(d) < 0)
        rc = -1;
out:
    if (pl >= 0)
        H5Pclose(pl);
    H5Sclose(s);
    return rc;
}

static int h5_write(const char *tmp, const char *path, const tg_fact_list *l)
{
    /* The 1.10 file format checksums all metadata (superblock v3, object headers v2, new-style
     * groups, single-chunk indexes inside the object header), so a corrupt file is reported by
     * HDF5 instead of being misread; HDF5 does not survive every corruption of the old format's
     * unchecked metadata (found by flipping bits in tests/t_io_released.sh). */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0) {
        if (fapl >= 0)
            H5Pclose(fapl);
        return h5_fail(path, "cannot set the file format");
    }
    /* Links stay in the root's object header ("compact"), whatever their number: "dense"
     * storage keeps them in a fractal heap whose blocks carry no checksum, and HDF5 1.10 crashes
     * on some corruptions of it. */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl < 0 || H5Pset_link_phase_change(fcpl, 65535, 65535) < 0) {
        if (fcpl >= 0)
            H5Pclose(fcpl);
        H5Pclose(fapl);
        return h5_fail(path, "cannot set the group format");
    }
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0)
        return h5_fail(path, "cannot create");
    int rc = -1;
    for (int i = 0; i < l->n; i++) {
        const tg_fact *fa = l->facts[i];
        tg_dims d = tg_fact_dims(fa);
        int32_t n = d.n, m = d.m, p = d.p, rank = tg_fact_rank(fa);
        int64_t den = tg_fact_denom(fa);
        const char *ar = tg_arith_name(tg_fact_arith(fa));
        hid_t g = H5Gcreate2(f, l->keys[i], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            char what[300];
            snprintf(what, sizeof what, "cannot create group '%s'", l->keys[i]);
            h5_fail(path, what);
            goto out;
        }
        int bad = set_attr(g, "n", H5T_STD_I32LE, H5T_NATIVE_INT32, &n) ||
                  set_attr(g, "m", H5T_STD_I32LE, H5T_NATIVE_INT32, &m) ||
                  set_attr(g, "p", H5T_STD_I32LE, H5T_NATIVE_INT32, &p) ||
                  set_attr(g, "rank", H5T_STD_I32LE, H5T_NATIVE_INT32, &rank) ||
                  set_attr(g, "denominator", H5T_STD_I64LE, H5T_NATIVE_INT64, &den) ||
                  set_str_attr(g, "arithmetic", ar) ||
                  write_factor(g, "u", rank, n * m, tg_fact_cu(fa)) ||
                  write_factor(g, "v", rank, m * p, tg_fact_cv(fa)) ||
                  write_factor(g, "w", rank, p * n, tg_fact_cw(fa));
        if (H5Gclose(g) < 0)
            bad = 1;
        if (bad) {
            char what[300];
            snprintf(what, sizeof what, "cannot write key '%s'", l->keys[i]);
            h5_fail(path, what);
            goto out;
        }
    }
    rc = 0;
out:
    if (H5Fclose(f) < 0 && rc == 0)
        rc = h5_fail(path, "cannot close (disk full?)");
    return rc;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static int json_int(json_t *o, const char *path, const char *key, const char *name, int required,
                    long long dflt, long long *out)
{
    json_t *v = json_object_get(o, name);
    if (!v) {
        if (required)
            return tg_fail("%s: key %s: missing field \"%s\"", path, key, name);
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v))
        return tg_fail("%s: key %s: field \"%s\" is not an integer", path, key, name);
    *out = (long long)json_integer_value(v);
    return 0;
}

static int json_factor(json_t *o, const char *path, const char *key, const char *name, int rank, int cols,
                       int64_t *out)
{
    json_t *a = json_object_get(o, name);
    if (!a)
        return tg_fail("%s: key %s: missing field \"%s\"", path, key, name);
    if (!json_is_array(a))
        return tg_fail("%s: key %s: \"%s\" must be an array of %d rows (rank)", path, key, name, rank);
    if (json_array_size(a) != (size_t)rank)
        return tg_fail("%s: key %s: \"%s\" has %zu rows, expected %d (rank)", path, key, name,
                       json_array_size(a), rank);
    for (int r = 0; r < rank; r++) {
        json_t *row = json_array_get(a, (size_t)r);
        if (!json_is_array(row) || json_array_size(row) != (size_t)cols)
            return tg_fail("%s: key %s: %s[%d] must be an array of %d integers", path, key, name, r, cols);
        for (int c = 0; c < cols; c++) {
            json_t *x = json_array_get(row, (size_t)c);
            if (!json_is_integer(x))
                return tg_fail("%s: key %s: %s[%d][%d] is not an integer", path, key, name, r, c);
            out[(size_t)r * cols + c] = (int64_t)json_integer_value(x);
        }
    }
    return 0;
}

static tg_fact *json_one(json_t *o, const char *path, const char *key)
{
    if (!json_is_object(o)) {
        tg_fail("%s: key %s: not an object", path, key);
        return NULL;
    }
    long long n = 0, m = 0, p = 0, rank = 0, denom = 1;
    if (json_int(o, path, key, "n", 1, 0, &n) || json_int(o, path, key, "m", 1, 0, &m) ||
        json_int(o, path, key, "p", 1, 0, &p) || json_int(o, path, key, "rank", 1, 0, &rank) ||
        json_int(o, path, key, "denominator", 0, 1, &denom))
        return NULL;
    json_t *ar = json_object_get(o, "arithmetic");
    if (ar && !json_is_string(ar)) {
        tg_fail("%s: key %s: field \"arithmetic\" is not a string", path, key);
        return NULL;
    }
    if (n < 1 || n > TG_MAX_DIM || m < 1 || m > TG_MAX_DIM || p < 1 || p > TG_MAX_DIM) {
        tg_fail("%s: key %s: sizes %lld,%lld,%lld out of range (1..%d)", path, key, n, m, p, TG_MAX_DIM);
        return NULL;
    }
    tg_fact *f = new_checked(path, key, (int)n, (int)m, (int)p, rank, denom, ar ? json_string_value(ar) : "integer");
    if (!f)
        return NULL;
    if (json_factor(o, path, key, "u", (int)rank, (int)(n * m), tg_fact_u(f)) ||
        json_factor(o, path, key, "v", (int)rank, (int)(m * p), tg_fact_v(f)) ||
        json_factor(o, path, key, "w", (int)rank, (int)(p * n), tg_fact_w(f))) {
        tg_fact_free(f);
        return NULL;
    }
    return f;
}

static json_t *json_load(const char *path)
{
    json_error_t e;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        tg_fail("%s:%d:%d: malformed JSON: %s", path, e.line, e.column, e.text);
        return NULL;
    }
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version");
    if (!json_is_object(root) || !json_is_string(fmt) || strcmp(json_string_value(fmt), FORMAT_NAME) != 0) {
        tg_fail("%s: not a factorization file (JSON without \"format\": \"" FORMAT_NAME "\")", path);
        json_decref(root);
        return NULL;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != FORMAT_VERSION) {
        tg_fail("%s: unsupported format version (expected \"version\": %d)", path, FORMAT_VERSION);
        json_decref(root);
        return NULL;
    }
    if (!json_is_object(json_object_get(root, "factorizations"))) {
        tg_fail("%s: missing object \"factorizations\"", path);
        json_decref(root);
        return NULL;
    }
    return root;
}

static int json_read_all(const char *path, tg_fact_list *out)
{
    json_t *root = json_load(path);
    if (!root)
        return -1;
    json_t *facts = json_object_get(root, "factorizations");
    const char *key;
    json_t *o;
    int rc = 0;
    json_object_foreach(facts, key, o)
    {
        tg_fact *f = json_one(o, path, key);
        if (!f || tg_fact_list_add(out, key, f)) {
            if (f)
                tg_fail_ctx("%s: ", path);
            tg_fact_free(f);
            rc = -1;
            break;
        }
    }
    json_decref(root);
    return rc;
}

static json_t *json_rows(const int64_t *a, int rank, int cols)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (int r = 0; r < rank; r++) {
        json_t *row = json_array();
        if (!row || json_array_append_new(arr, row)) {
            json_decref(arr);
            return NULL;
        }
        for (int c = 0; c < cols; c++)
            if (json_array_append_new(row, json_integer((json_int_t)a[(size_t)r * cols + c]))) {
                json_decref(arr);
                return NULL;
            }
    }
    return arr;
}

static json_t *json_fact(const tg_fact *f)
{
    tg_dims d = tg_fact_dims(f);
    int rank = tg_fact_rank(f);
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (json_object_set_new(o, "n", json_integer(d.n)) || json_object_set_new(o, "m", json_integer(d.m)) ||
        json_object_set_new(o, "p", json_integer(d.p)) || json_object_set_new(o, "rank", json_integer(rank)) ||
        json_object_set_new(o, "denominator", json_integer(tg_fact_denom(f))) ||
        json_object_set_new(o, "arithmetic", json_string(tg_arith_name(tg_fact_arith(f)))) ||
        json_object_set_new(o, "u", json_rows(tg_fact_cu(f), rank, d.n * d.m)) ||
        json_object_set_new(o, "v", json_rows(tg_fact_cv(f), rank, d.m * d.p)) ||
        json_object_set_new(o, "w", json_rows(tg_fact_cw(f), rank, d.p * d.n))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* One factorization per line, each encoded by jansson on its own: a whole file of the released
 * algorithms as one jansson tree would take gigabytes. */
static int json_write(const char *tmp, const char *path, const tg_fact_list *l)
{
    FILE *out = fopen(tmp, "w");
    if (!out)
        return tg_fail("%s: cannot create: %s", path, strerror(errno));
    const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY;
    int bad = fprintf(out, "{\"format\": \"" FORMAT_NAME "\", \"version\": %d, \"factorizations\": {",
                      FORMAT_VERSION) < 0;
    for (int i = 0; i < l->n && !bad; i++) {
        json_t *k = json_string(l->keys[i]), *o = json_fact(l->facts[i]);
        if (!k || !o) {
            json_decref(k);
            json_decref(o);
            fclose(out);
            return tg_fail("%s: out of memory building JSON", path);
        }
        bad = fputs(i ? ",\n" : "\n", out) < 0 || json_dumpf(k, out, flags) || fputs(": ", out) < 0 ||
              json_dumpf(o, out, flags);
        json_decref(k);
        json_decref(o);
    }
    bad = bad || fputs("\n}}\n", out) < 0 || fflush(out) || ferror(out);
    if (fclose(out) || bad)
        return tg_fail("%s: cannot write: %s", path, strerror(errno));
    return 0;
}

/* ---- public -------------------------------------------------------------------------------- */

int tg_factio_read(const char *path, tg_fact_list *out)
{
    enum file_kind kind;
    if (sniff(path, &kind))
        return -1;
    int rc;
    if (kind == KIND_JSON) {
        rc = json_read_all(path, out);
    } else {
        h5_quiet q;
        quiet_begin(&q);
        rc = h5_read_all(path, out);
        quiet_end(&q);
    }
    if (rc)
        tg_fact_list_free(out);
    else
        list_sort(out);
    return rc;
}

static void append_keys(char *buf, size_t len, char **keys, int n)
{
    size_t off = strlen(buf);
    int i = 0;
    for (; i < n && off + strlen(keys[i]) + 40 < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? " " : "", keys[i]);
    if (i < n)
        snprintf(buf + off, len - off, " ... (%d keys in all)", n);
    if (n == 0)
        snprintf(buf + off, len - off, "(none)");
}

tg_fact *tg_factio_read_key(const char *path, const char *key)
{
    enum file_kind kind;
    if (sniff(path, &kind))
        return NULL;
    tg_fact *f = NULL;
    char present[600] = "";
    if (kind == KIND_JSON) {
        json_t *root = json_load(path);
        if (!root)
            return NULL;
        json_t *facts = json_object_get(root, "factorizations");
        json_t *o = json_object_get(facts, key);
        if (o) {
            f = json_one(o, path, key);
        } else {
            tg_fact_list l = {0};
            const char *k;
            json_t *v;
            json_object_foreach(facts, k, v)
            {
                tg_fact_list_add(&l, k, NULL);
            }
            list_sort(&l);
            append_keys(present, sizeof present, l.keys, l.n);
            tg_fact_list_free(&l);
            tg_fail("%s: no key '%s'; keys present: %s", path, key, present);
        }
        json_decref(root);
        return f;
    }
    h5_quiet q;
    quiet_begin(&q);
    hid_t file = h5_open(path);
    if (file >= 0) {
        htri_t ex = key_ok(key) == 0 ? H5Lexists(file, key, H5P_DEFAULT) : 0;
        if (ex < 0) {
            h5_fail(path, "cannot look up a key: truncated or corrupt HDF5 file");
        } else if (ex) {
            f = h5_read_group(file, path, key);
        } else {
            name_list nl;
            if (h5_names(file, path, &nl) == 0) {
                tg_fact_list l = {0};
                for (int i = 0; i < nl.n; i++)
                    tg_fact_list_add(&l, nl.v[i], NULL);
                list_sort(&l);
                append_keys(present, sizeof present, l.keys, l.n);
                tg_fact_list_free(&l);
                tg_fail("%s: no key '%s'; keys present: %s", path, key, present);
            }
            names_free(&nl);
        }
        if (H5Fclose(file) < 0 && f) {
            h5_fail(path, "cannot close");
            tg_fact_free(f);
            f = NULL;
        }
    }
    quiet_end(&q);
    return f;
}

int tg_factio_write(const char *path, const tg_fact_list *l)
{
    for (int i = 0; i < l->n; i++)
        if (key_ok(l->keys[i]))
            return tg_fail_ctx("%s: ", path);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return tg_fail("%s: path too long", path);
    size_t len = strlen(path);
    int json = len >= 5 && strcmp(path + len - 5, ".json") == 0;
    int rc;
    if (json) {
        rc = json_write(tmp, path, l);
    } else {
        h5_quiet q;
        quiet_begin(&q);
        rc = h5_write(tmp, path, l);
        quiet_end(&q);
    }
    if (rc == 0 && rename(tmp, path) != 0)
        rc = tg_fail("%s: cannot rename the temporary file into place: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}
