#include "replay/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

#define FILE_MAGIC "TGWAL001"
#define REC_MAGIC 0x4a524754u
#define HDR 24
#define MAX_RECORD (1u << 30)

struct replay_journal {
    int fd;
    uint64_t seq, bytes;
    char path[4096];
};

static void path_of(char *buf, size_t len, const char *dir, uint64_t seq)
{
    snprintf(buf, len, "%s/replay.wal.%08llu", dir, (unsigned long long)seq);
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

replay_journal *replay_journal_create(const char *run_dir, uint64_t seq)
{
    replay_journal *j = calloc(1, sizeof *j);
    if (!j) {
        tg_fail("out of memory");
        return NULL;
    }
    path_of(j->path, sizeof j->path, run_dir, seq);
    j->seq = seq;
    j->fd = open(j->path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0 || write_all(j->fd, FILE_MAGIC, 8) || fdatasync(j->fd)) {
        tg_fail("cannot create journal %s: %s", j->path, strerror(errno));
        if (j->fd >= 0)
            close(j->fd);
        free(j);
        return NULL;
    }
    j->bytes = 8;
    /* the new file's directory entry must survive too */
    int dfd = open(run_dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return j;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static uint32_t rec_crc(const uint8_t *idbytes, const uint8_t *data, size_t len)
{
    uint32_t c = crc32_iscsi((unsigned char *)idbytes, 8, 0xffffffffu);
    return crc32_iscsi((unsigned char *)data, (int)len, c);
}

int replay_journal_append(replay_journal *j, uint64_t id, const void *data, size_t len)
{
    if (len > MAX_RECORD)
        return tg_fail("journal record of %zu bytes is too large", len);
    uint8_t h[HDR];
    put32(h, REC_MAGIC);
    put32(h + 4, (uint32_t)len);
    put64(h + 8, id);
    put32(h + 16, rec_crc(h + 8, data, len));
    put32(h + 20, 0);
    /* one writev-like call would be nicer; two writes are fine: a torn record is detected */
    uint8_t *buf = malloc(HDR + len);
    if (!buf)
        return tg_fail("out of memory");
    memcpy(buf, h, HDR);
    memcpy(buf + HDR, data, len);
    int rc = write_all(j->fd, buf, HDR + len);
    free(buf);
    if (rc)
        return tg_fail("writing journal %s: %s", j->path, strerror(errno));
    j->bytes += HDR + len;
    return 0;
}

int replay_journal_sync(replay_journal *j)
{
    if (fdatasync(j->fd))
        return tg_fail("fdatasync of journal %s: %s", j->path, strerror(errno));
    return 0;
}

uint64_t replay_journal_seq(const replay_journal *j) { return j->seq; }
uint64_t replay_journal_bytes(const replay_journal *j) { return j->bytes; }

void replay_journal_close(replay_journal *j)
{
    if (!j)
        return;
    fdatasync(j->fd);
    close(j->fd);
    free(j);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int replay_journal_list(const char *run_dir, uint64_t **seqs, int *n)
{
    *seqs = NULL;
    *n = 0;
    DIR *d = opendir(run_dir);
    if (!d)
        return tg_fail("cannot list %s: %s", run_dir, strerror(errno));
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned long long s;
        char tail;
        if (strncmp(e->d_name, "replay.wal.", 11) != 0 || sscanf(e->d_name + 11, "%llu%c", &s, &tail) != 1)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 8;
            uint64_t *ns = realloc(*seqs, (size_t)cap * sizeof *ns);
            if (!ns) {
                closedir(d);
                return tg_fail("out of memory");
            }
            *seqs = ns;
        }
        (*seqs)[(*n)++] = s;
    }
    closedir(d);
    if (*n)
        qsort(*seqs, (size_t)*n, sizeof **seqs, cmp_u64);
    return 0;
}

int64_t replay_journal_read(const char *run_dir, uint64_t seq, int skip_corrupt, replay_journal_fn fn, void *ud)
{
    char path[4096];
    path_of(path, sizeof path, run_dir, seq);
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_fail("cannot open journal %s: %s", path, strerror(errno));
    struct stat st;
    fstat(fileno(f), &st);
    int64_t size = st.st_size, off = 8, count = 0;
    char magic[8];
    uint8_t *buf = NULL;
    int64_t rc = -1;
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, FILE_MAGIC, 8) != 0) {
        if (size < 8) { /* crashed while creating it: nothing was acknowledged from it */
            rc = 0;
            goto out;
        }
        tg_fail("journal %s does not start with %s", path, FILE_MAGIC);
        goto corrupt;
    }
    while (off < size) {
        uint8_t h[HDR];
        if (size - off < HDR || fread(h, 1, HDR, f) != HDR)
            break; /* torn tail */
        uint32_t len = get32(h + 4);
        if (get32(h) != REC_MAGIC || len > MAX_RECORD) {
            tg_fail("journal %s: bad record header at offset %lld", path, (long long)off);
            goto corrupt;
        }
        if (off + HDR + (int64_t)len > size)
            break; /* torn tail */
        uint8_t *nb = realloc(buf, len ? len : 1);
        if (!nb) {
            tg_fail("out of memory");
            goto out;
        }
        buf = nb;
        if (fread(buf, 1, len, f) != len)
            break;
        if (rec_crc(h + 8, buf, len) != get32(h + 16)) {
            if (off + HDR + (int64_t)len == size)
                break; /* torn tail */
            tg_fail("journal %s: CRC mismatch in the record at offset %lld", path, (long long)off);
            goto corrupt;
        }
        if (fn(ud, get64(h + 8), buf, len) < 0)
            goto out;
        count++;
        off += HDR + len;
    }
    if (off < size)
        tg_warn("journal %s: ignoring a torn last record at offset %lld (%lld bytes; never acknowledged)",
                path, (long long)off, (long long)(size - off));
    rc = count;
    goto out;
corrupt:
    if (skip_corrupt) {
        tg_warn("%s; keeping the %lld records before it", tg_errmsg(), (long long)count);
        rc = count;
    }
out:
    free(buf);
    fclose(f);
    return rc;
}

int replay_journal_remove_below(const char *run_dir, uint64_t below)
{
    uint64_t *s;
    int n;
    if (replay_journal_list(run_dir, &s, &n))
        return -1;
    char path[4096];
    for (int i = 0; i < n; i++)
        if (s[i] < below) {
            path_of(path, sizeof path, run_dir, s[i]);
            if (unlink(path) && errno != ENOENT)
                tg_warn("cannot remove %s: %s", path, strerror(errno));
        }
    free(s);
    return 0;
}
