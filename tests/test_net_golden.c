/* The CPU network against ../shared/spec/golden_small.h5 (forward, losses, backward, greedy),
 * and golden files with a missing, extra or mis-shaped tensor refused, naming it. */
#include "tests/test_util.h"

#include <hdf5.h>

#include "common/err.h"
#include "learner/golden.h"
#include "learner/params.h"
#include "tools/cmds.h"

static void golden_path(char *buf, size_t n)
{
    snprintf(buf, n, "%s/spec/golden_small.h5", tg_test_shared());
}

static void test_golden_small(void **state)
{
    (void)state;
    char path[1024];
    golden_path(path, sizeof path);
    tg_golden_result res;
    int rc = tg_golden_check(path, "cpu", 0, NULL, stdout, 0, &res);
    if (rc)
        fail_msg("%s", tg_errmsg());
    assert_true(res.pass);
    assert_true(res.tokens_equal);
    assert_true(res.worst_output < 1e-4);
    assert_true(res.worst_loss < 1e-4);
    assert_true(res.worst_grad < 1e-3);
    /* the tool's entry point: exit status 0 */
    char *argv[] = {"golden", "--threads", "1", path, NULL};
    assert_int_equal(tg_cmd_golden(4, argv), 0);
    char *bad_argv[] = {"golden", NULL};
    assert_int_equal(tg_cmd_golden(1, bad_argv), 2);
}

static void copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    assert_non_null(a);
    assert_non_null(b);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0)
        assert_int_equal(fwrite(buf, 1, n, b), n);
    fclose(a);
    fclose(b);
}

enum damage { DELETE, EXTRA, RESHAPE, TRUNCATE };

/* A copy of the golden file with one dataset damaged. */
static void damaged(const char *src, const char *dst, const char *dset, enum damage how)
{
    copy_file(src, dst);
    if (how == TRUNCATE) {
        assert_int_equal(truncate(dst, 4096), 0);
        return;
    }
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    if (how == DELETE || how == RESHAPE)
        assert_true(H5Ldelete(f, dset, H5P_DEFAULT) >= 0);
    if (how == EXTRA || how == RESHAPE) {
        hsize_t dims[2] = {3, 5};
        double zeros[15] = {0};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        hid_t d = H5Dcreate2(f, dset, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(d >= 0);
        assert_true(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0);
        H5Dclose(d);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

static void expect_refused(const char *path, const char *name)
{
    tg_golden_result res;
    tg_err_clear();
    assert_int_equal(tg_golden_check(path, "cpu", 1, NULL, NULL, 0, &res), -1);
    if (!strstr(tg_errmsg(), name))
        fail_msg("message '%s' does not name '%s'", tg_errmsg(), name);
}

static void test_golden_refuses_bad_files(void **state)
{
    (void)state;
    char src[1024], dir[64], dst[1200];
    golden_path(src, sizeof src);
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(dst, sizeof dst, "%s/g.h5", dir);

    damaged(src, dst, "params/torso.blocks.1.2.q.weight", DELETE);
    expect_refused(dst, "torso.blocks.1.2.q.weight");
    damaged(src, dst, "grads/policy.layers.3.norm_y.bias", DELETE);
    expect_refused(dst, "policy.layers.3.norm_y.bias");
    damaged(src, dst, "params/value.out.weight", RESHAPE);
    expect_refused(dst, "value.out.weight");
    damaged(src, dst, "grads/policy.pos", RESHAPE);
    expect_refused(dst, "policy.pos");
    damaged(src, dst, "params/torso.blocks.2.0.q.weight", EXTRA);
    expect_refused(dst, "torso.blocks.2.0.q.weight");
    damaged(src, dst, "outputs/logits", RESHAPE);
    expect_refused(dst, "logits");
    damaged(src, dst, "inputs/actions", DELETE);
    expect_refused(dst, "actions");
    damaged(src, dst, "outputs/extra_output", EXTRA);
    expect_refused(dst, "extra_output");
    damaged(src, dst, NULL, TRUNCATE);
    expect_refused(dst, dst);
    /* another config: the attribute c changed, so every torso tensor is mis-shaped */
    copy_file(src, dst);
    hid_t f = H5Fopen(dst, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t a = H5Aopen(f, "c", H5P_DEFAULT);
    long long c = 48;
    assert_true(H5Awrite(a, H5T_NATIVE_LLONG, &c) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    expect_refused(dst, "torso.in_proj.0.weight");
    /* the tool exits 2 on a refused file */
    char *argv[] = {"golden", dst, NULL};
    assert_int_equal(tg_cmd_golden(2, argv), 2);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_small),
        cmocka_unit_test(test_golden_refuses_bad_files),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
