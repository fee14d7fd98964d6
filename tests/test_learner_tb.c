/* TensorBoard event writer: CRC32C convention, TFRecord framing, events read back, corruption
 * detected, a truncated tail tolerated. (tests/t_learner_tb.sh reads real learner output with
 * TensorBoard's own reader.) */
#include "tests/test_util.h"

#include <dirent.h>
#include <sys/stat.h>

#include "common/err.h"
#include "learner/tb.h"

static void test_crc32c_vector(void **state)
{
    (void)state;
    /* the CRC32C check value (RFC 3720 / iSCSI) */
    assert_int_equal(tg_crc32c("123456789", 9), 0xe3069283u);
    assert_int_equal(tg_crc32c("", 0), 0u);
    /* 32 zero bytes: RFC 3720 B.4 */
    uint8_t z[32] = {0};
    assert_int_equal(tg_crc32c(z, 32), 0x8a9136aau);
    assert_int_equal(tg_crc32c_mask(0), 0xa282ead8u);
}

static void test_record_framing(void **state)
{
    (void)state;
    char dir[64], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/r", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(tg_tfrecord_write(f, "hello", 5), 0);
    assert_int_equal(tg_tfrecord_write(f, "", 0), 0);
    fclose(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, (12 + 5 + 4) + (12 + 0 + 4));

    f = fopen(path, "rb");
    uint8_t hdr[12];
    assert_int_equal(fread(hdr, 1, 12, f), 12);
    assert_int_equal(hdr[0], 5);
    for (int i = 1; i < 8; i++)
        assert_int_equal(hdr[i], 0);
    uint32_t lcrc = hdr[8] | hdr[9] << 8 | hdr[10] << 16 | (uint32_t)hdr[11] << 24;
    assert_int_equal(lcrc, tg_crc32c_mask(tg_crc32c(hdr, 8)));
    rewind(f);
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    assert_int_equal(tg_tfrecord_read(f, &buf, &cap, &len), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(tg_tfrecord_read(f, &buf, &cap, &len), 1);
    assert_int_equal(len, 0);
    assert_int_equal(tg_tfrecord_read(f, &buf, &cap, &len), 0);
    fclose(f);
    free(buf);
}

struct seen {
    int n;
    int64_t last_step;
    double last_value;
    char last_tag[64];
};

static void on_scalar(void *ud, const char *tag, int64_t step, double wall, double value)
{
    struct seen *s = ud;
    s->n++;
    s->last_step = step;
    s->last_value = value;
    snprintf(s->last_tag, sizeof s->last_tag, "%s", tag);
    assert_true(wall > 1e9);
}

static void find_event_file(const char *dir, char *out, size_t len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    out[0] = 0;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "events.out.tfevents.", 20) == 0)
            snprintf(out, len, "%s/%s", dir, e->d_name);
    closedir(d);
    assert_true(out[0] != 0);
}

static void test_events_roundtrip_and_corruption(void **state)
{
    (void)state;
    char dir[64], sub[128], path[512];
    tg_test_tmpdir(dir, sizeof dir);
    tg_tb *tb = tg_tb_open(dir, "tg-learner");
    assert_non_null(tb);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tg_tb_scalar(tb, "loss/total", i, 1.0 / (i + 1)), 0);
    assert_int_equal(tg_tb_text(tb, "discoveries", 9, "**2,2,2** rank 7\n\n    m1 = a11 b11"), 0);
    assert_int_equal(tg_tb_session_start(tb, 5), 0);
    assert_int_equal(tg_tb_scalar(tb, "lr", 5, 0.25), 0);
    assert_int_equal(tg_tb_flush(tb), 0);
    snprintf(sub, sizeof sub, "%s/tb/tg-learner", dir);
    find_event_file(sub, path, sizeof path);
    assert_string_equal(path, tg_tb_path(tb));

    /* readable while open (flushed) */
    struct seen s = {0};
    assert_int_equal(tg_tb_read_scalars(path, on_scalar, &s), 0);
    assert_int_equal(s.n, 11);
    assert_string_equal(s.last_tag, "lr");
    assert_int_equal(s.last_step, 5);
    assert_float_equal(s.last_value, 0.25, 1e-7);
    tg_tb_close(tb);

    /* a second writer in the same second gets its own file */
    tg_tb *tb2 = tg_tb_open(dir, "tg-learner");
    assert_non_null(tb2);
    assert_string_not_equal(tg_tb_path(tb2), path);
    tg_tb_close(tb2);

    /* truncated tail: the complete records are still read */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 3), 0);
    memset(&s, 0, sizeof s);
    assert_int_equal(tg_tb_read_scalars(path, on_scalar, &s), 0);
    assert_int_equal(s.n, 10);

    /* a flipped byte inside a record is a CRC error */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 40, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 40, SEEK_SET);
    fputc(c ^ 0x55, f);
    fclose(f);
    memset(&s, 0, sizeof s);
    assert_int_equal(tg_tb_read_scalars(path, on_scalar, &s), -1);
    assert_non_null(strstr(tg_errmsg(), "CRC"));
}

static void test_open_fails_cleanly(void **state)
{
    (void)state;
    tg_tb *tb = tg_tb_open("/proc/no/such/dir", "x");
    assert_null(tb);
    assert_non_null(strstr(tg_errmsg(), "tensorboard"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vector),
        cmocka_unit_test(test_record_framing),
        cmocka_unit_test(test_events_roundtrip_and_corruption),
        cmocka_unit_test(test_open_fails_cleanly),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
