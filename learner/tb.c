#include "learner/tb.h"

#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "proto/tensorboard.pb-c.h"

#define TB_MAX_RECORD (64u << 20) /* larger records are corruption, not events we write */

struct tg_tb {
    FILE *f;
    char path[4096];
    pthread_mutex_t mu;
    int failed; /* a write failed: later writes are dropped (logged once) */
};

/* isa-l's crc32_iscsi neither presets nor inverts: the standard CRC32C is ~f(buf, ~0). */
uint32_t tg_crc32c(const void *data, size_t len)
{
    uint32_t crc = 0xffffffffu;
    const unsigned char *p = data;
    /* crc32_iscsi takes an int length: feed huge buffers in pieces */
    while (len > 0) {
        size_t n = len > (1u << 30) ? (1u << 30) : len;
        crc = crc32_iscsi((unsigned char *)p, (int)n, crc);
        p += n;
        len -= n;
    }
    return ~crc;
}

uint32_t tg_crc32c_mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_u64le(uint8_t *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32le(uint8_t *b, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64le(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

static uint32_t get_u32le(const uint8_t *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

int tg_tfrecord_write(FILE *f, const void *data, size_t len)
{
    uint8_t head[12], foot[4];
    put_u64le(head, len);
    put_u32le(head + 8, tg_crc32c_mask(tg_crc32c(head, 8)));
    put_u32le(foot, tg_crc32c_mask(tg_crc32c(data, len)));
    if (fwrite(head, 1, 12, f) != 12 || (len && fwrite(data, 1, len, f) != len) ||
        fwrite(foot, 1, 4, f) != 4)
        return tg_fail("writing event record: %s", strerror(errno));
    return 0;
}

int tg_tfrecord_read(FILE *f, uint8_t **buf, size_t *cap, size_t *len)
{
    uint8_t head[12], foot[4];
    size_t got = fread(head, 1, 12, f);
    if (got < 12)
        return 0; /* end of file, or a header still being written */
    if (get_u32le(head + 8) != tg_crc32c_mask(tg_crc32c(head, 8)))
        return tg_fail("event record: length CRC mismatch");
    uint64_t n = get_u64le(head);
    if (n > TB_MAX_RECORD)
        return tg_fail("event record: length %llu too large", (unsigned long long)n);
    if (*cap < n + 1) {
        uint8_t *nb = realloc(*buf, n + 1);
        if (!nb)
            return tg_fail("out of memory");
        *buf = nb;
        *cap = n + 1;
    }
    if (fread(*buf, 1, n, f) != n || fread(foot, 1, 4, f) != 4)
        return 0; /* truncated tail */
    if (get_u32le(foot) != tg_crc32c_mask(tg_crc32c(*buf, n)))
        return tg_fail("event record: data CRC mismatch");
    *len = n;
    return 1;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return tg_fail("path too long: %s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
            return tg_fail("mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0777) != 0 && errno != EEXIST)
        return tg_fail("mkdir %s: %s", tmp, strerror(errno));
    return 0;
}

/* Packs and frames one event under the lock. */
static int tb_write_event(tg_tb *tb, Tensorboard__Event *ev)
{
    size_t n = tensorboard__event__get_packed_size(ev);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return tg_fail("out of memory");
    tensorboard__event__pack(ev, buf);
    int rc = 0;
    pthread_mutex_lock(&tb->mu);
    if (!tb->failed) {
        rc = tg_tfrecord_write(tb->f, buf, n);
        if (rc != 0) {
            tb->failed = 1;
            tg_error("tensorboard: %s (%s); further events are dropped", tg_errmsg(), tb->path);
        }
    }
    pthread_mutex_unlock(&tb->mu);
    free(buf);
    return rc;
}

tg_tb *tg_tb_open(const char *run_dir, const char *process)
{
    tg_tb *tb = calloc(1, sizeof *tb);
    char dir[4096], host[256] = "localhost";
    if (!tb) {
        tg_fail("out of memory");
        return NULL;
    }
    pthread_mutex_init(&tb->mu, NULL);
    if (snprintf(dir, sizeof dir, "%s/tb/%s", run_dir, process) >= (int)sizeof dir) {
        tg_fail("tensorboard directory name too long");
        goto fail;
    }
    if (mkdir_p(dir) != 0)
        goto fail;
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *p = host; *p; p++)
        if (*p == '/')
            *p = '_';
    long now = (long)time(NULL);
    /* A restart within the same second must not overwrite the previous file: O_EXCL + suffix. */
    for (int k = 0; k < 1000 && !tb->f; k++) {
        int len = k == 0 ? snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%010ld.%s",
                                    dir, now, host)
                         : snprintf(tb->path, sizeof tb->path,
                                    "%s/events.out.tfevents.%010ld.%s.%d", dir, now, host, k);
        if (len >= (int)sizeof tb->path) {
            tg_fail("tensorboard file name too long");
            goto fail;
        }
        int fd = open(tb->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            tg_fail("creating %s: %s", tb->path, strerror(errno));
            goto fail;
        }
        tb->f = fdopen(fd, "wb");
        if (!tb->f) {
            close(fd);
            tg_fail("fdopen %s: %s", tb->path, strerror(errno));
            goto fail;
        }
    }
    if (!tb->f) {
        tg_fail("no free event file name in %s", dir);
        goto fail;
    }
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    ev.wall_time = tg_wall();
    ev.what_case = TENSORBOARD__EVENT__WHAT_FILE_VERSION;
    ev.file_version = "brain.Event:2";
    if (tb_write_event(tb, &ev) != 0 || tg_tb_flush(tb) != 0)
        goto fail;
    return tb;
fail:
    tg_fail_ctx("tensorboard: ");
    tg_tb_close(tb);
    return NULL;
}

const char *tg_tb_path(const tg_tb *tb)
{
    return tb->path;
}

int tg_tb_scalar(tg_tb *tb, const char *tag, int64_t step, double value)
{
    Tensorboard__Summary__Value val = TENSORBOARD__SUMMARY__VALUE__INIT;
    Tensorboard__Summary__Value *vals[1] = {&val};
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    val.tag = (char *)tag;
    val.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    val.simple_value = (float)value;
    sum.n_value = 1;
    sum.value = vals;
    ev.wall_time = tg_wall();
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    return tb_write_event(tb, &ev);
}

int tg_tb_text(tg_tb *tb, const char *tag, int64_t step, const char *text)
{
    /* The text plugin reads a DT_STRING tensor (here a scalar: shape []) whose value metadata
     * names plugin "text"; its content (TextPluginData) may be empty. */
    Tensorboard__SummaryMetadata__PluginData pd = TENSORBOARD__SUMMARY_METADATA__PLUGIN_DATA__INIT;
    Tensorboard__SummaryMetadata md = TENSORBOARD__SUMMARY_METADATA__INIT;
    Tensorboard__TensorShapeProto shape = TENSORBOARD__TENSOR_SHAPE_PROTO__INIT;
    Tensorboard__TensorProto t = TENSORBOARD__TENSOR_PROTO__INIT;
    ProtobufCBinaryData s = {strlen(text), (uint8_t *)text};
    Tensorboard__Summary__Value val = TENSORBOARD__SUMMARY__VALUE__INIT;
    Tensorboard__Summary__Value *vals[1] = {&val};
    Tensorboard__Summary sum = TENSORBOARD__SUMMARY__INIT;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    pd.plugin_name = "text";
    md.plugin_data = &pd;
    md.data_class = TENSORBOARD__DATA_CLASS__DATA_CLASS_TENSOR;
    t.dtype = TENSORBOARD__DATA_TYPE__DT_STRING;
    t.tensor_shape = &shape;
    t.n_string_val = 1;
    t.string_val = &s;
    val.tag = (char *)tag;
    val.metadata = &md;
    val.value_case = TENSORBOARD__SUMMARY__VALUE__VALUE_TENSOR;
    val.tensor = &t;
    sum.n_value = 1;
    sum.value = vals;
    ev.wall_time = tg_wall();
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SUMMARY;
    ev.summary = &sum;
    return tb_write_event(tb, &ev);
}

int tg_tb_session_start(tg_tb *tb, int64_t step)
{
    Tensorboard__SessionLog sl = TENSORBOARD__SESSION_LOG__INIT;
    Tensorboard__Event ev = TENSORBOARD__EVENT__INIT;
    sl.status = TENSORBOARD__SESSION_LOG__SESSION_STATUS__START;
    ev.wall_time = tg_wall();
    ev.step = step;
    ev.what_case = TENSORBOARD__EVENT__WHAT_SESSION_LOG;
    ev.session_log = &sl;
    return tb_write_event(tb, &ev);
}

int tg_tb_flush(tg_tb *tb)
{
    int rc = 0;
    pthread_mutex_lock(&tb->mu);
    if (tb->f && fflush(tb->f) != 0)
        rc = tg_fail("flushing %s: %s", tb->path, strerror(errno));
    pthread_mutex_unlock(&tb->mu);
    return rc;
}

void tg_tb_close(tg_tb *tb)
{
    if (!tb)
        return;
    if (tb->f && fclose(tb->f) != 0)
        tg_warn("closing %s: %s", tb->path, strerror(errno));
    pthread_mutex_destroy(&tb->mu);
    free(tb);
}

int tg_tb_read_scalars(const char *path, tg_tb_scalar_fn fn, void *ud)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_fail("opening %s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    int rc, ret = 0;
    while ((rc = tg_tfrecord_read(f, &buf, &cap, &len)) == 1) {
        Tensorboard__Event *ev = tensorboard__event__unpack(NULL, len, buf);
        if (!ev) {
            ret = tg_fail("%s: record is not an Event", path);
            break;
        }
        if (ev->what_case == TENSORBOARD__EVENT__WHAT_SUMMARY && ev->summary) {
            for (size_t i = 0; i < ev->summary->n_value; i++) {
                Tensorboard__Summary__Value *v = ev->summary->value[i];
                if (v->value_case == TENSORBOARD__SUMMARY__VALUE__VALUE_SIMPLE_VALUE)
                    fn(ud, v->tag, ev->step, ev->wall_time, v->simple_value);
            }
        }
        tensorboard__event__free_unpacked(ev, NULL);
    }
    if (rc < 0)
        ret = tg_fail_ctx("%s: ", path);
    free(buf);
    fclose(f);
    return ret;
}
