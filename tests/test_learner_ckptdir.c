/* The checkpoint directory: step files + `latest`, pruning to the newest k, attributes read back,
 * resume from the newest loadable file when the newest is truncated or not a checkpoint, and a
 * refusal (not a silent fresh start) when none loads. */
#include "tests/test_util.h"

#include <math.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"
#include "learner/ckptdir.h"
#include "learner/net.h"
#include "learner/net_config.h"

static tg_net *tiny_net(uint64_t seed)
{
    tg_net_config c = {.S = 4, .T = 2, .n_scalars = 1, .c = 8, .layers = 1, .heads = 2,
                       .head_dim = 4, .widen = 2, .n_steps = 4, .n_logits = 27, .p_feat = 4,
                       .p_heads = 2, .p_layers = 1, .v_hidden = 8, .v_layers = 1, .quantiles = 4};
    tg_net *n = tg_net_new(&c, "cpu", 4, 1, seed);
    assert_non_null(n);
    return n;
}

static void save(tg_net *net, const char *dir, int64_t step, double loss, int keep)
{
    size_t n = tg_net_n_params(net);
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    assert_int_equal(tg_net_set_opt_state(net, m, v, step), 0);
    free(m);
    free(v);
    tg_ckpt_meta meta = {.step = step, .wall_time = 1.7e9 + (double)step, .loss_total = loss,
                         .loss_policy = loss - 1, .loss_value = 1, .lr = 1e-3, .samples = step * 8};
    char path[512];
    if (tg_ckptdir_save(net, dir, &meta, keep, "train:\n  batch: 8\n", path, sizeof path) != 0)
        fail_msg("%s", tg_errmsg());
    assert_non_null(strstr(path, "checkpoints/step-"));
}

static void corrupt(const char *dir, int64_t step, int truncate_only)
{
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints/step-%08lld.h5", dir, (long long)step);
    if (truncate_only) {
        struct stat st;
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(truncate(p, st.st_size / 2), 0);
    } else {
        FILE *f = fopen(p, "wb");
        assert_non_null(f);
        fputs("not an HDF5 file", f);
        fclose(f);
    }
}

static void test_save_list_prune(void **state)
{
    (void)state;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_net *net = tiny_net(1);
    for (int s = 10; s <= 40; s += 10)
        save(net, dir, s, 5.0 - s / 10.0, 3);
    tg_ckpt_info *info;
    int n;
    assert_int_equal(tg_ckptdir_list(dir, &info, &n), 0);
    assert_int_equal(n, 3); /* step 10 pruned */
    assert_int_equal(info[0].meta.step, 40);
    assert_true(info[0].latest);
    assert_false(info[1].latest);
    assert_int_equal(info[2].meta.step, 20);
    assert_float_equal(info[0].meta.loss_total, 1.0, 1e-12);
    assert_float_equal(info[0].meta.loss_policy, 0.0, 1e-12);
    assert_float_equal(info[0].meta.wall_time, 1.7e9 + 40, 1e-3);
    assert_int_equal(info[0].meta.samples, 320);
    free(info);
    /* no temporary files left behind */
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints/.step-00000040.h5.partial", dir);
    assert_int_not_equal(access(p, F_OK), 0);
    tg_net_free(net);
}

static void test_resume_fallback(void **state)
{
    (void)state;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_net *a = tiny_net(1);
    save(a, dir, 10, 3, 5);
    size_t n = tg_net_n_params(a);
    float *w10 = malloc(n * sizeof(float));
    tg_net_get_params(a, w10);
    tg_net *b = tiny_net(2); /* other weights at step 20 */
    save(b, dir, 20, 2, 5);

    /* nothing there: 0 */
    char empty[64];
    tg_test_tmpdir(empty, sizeof empty);
    tg_net *r = tiny_net(3);
    tg_ckpt_meta m;
    assert_int_equal(tg_ckptdir_resume(r, empty, &m, NULL, 0), 0);

    /* the newest is truncated: the one before is loaded */
    corrupt(dir, 20, 1);
    char path[512];
    assert_int_equal(tg_ckptdir_resume(r, dir, &m, path, sizeof path), 1);
    assert_int_equal(m.step, 10);
    assert_non_null(strstr(path, "step-00000010.h5"));
    float *got = malloc(n * sizeof(float));
    tg_net_get_params(r, got);
    assert_memory_equal(got, w10, n * sizeof(float));
    int64_t ostep;
    tg_net_get_opt_state(r, NULL, NULL, &ostep);
    assert_int_equal(ostep, 10);

    /* none loads: an error naming the directory, not a fresh start */
    corrupt(dir, 10, 0);
    assert_int_equal(tg_ckptdir_resume(r, dir, &m, NULL, 0), -1);
    assert_non_null(strstr(tg_errmsg(), "none loads"));
    /* listing still shows them (by name) */
    tg_ckpt_info *info;
    int k;
    assert_int_equal(tg_ckptdir_list(dir, &info, &k), 0);
    assert_int_equal(k, 2);
    assert_int_equal(info[1].meta.step, 10);
    assert_true(isnan(info[1].meta.loss_total));
    free(info);
    free(w10);
    free(got);
    tg_net_free(a);
    tg_net_free(b);
    tg_net_free(r);
}

int main(void)
{
    tg_log_set_level(TG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_list_prune),
        cmocka_unit_test(test_resume_fallback),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
