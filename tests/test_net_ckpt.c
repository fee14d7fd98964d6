/* Checkpoints: bit-exact round trip (parameters, AdamW moments, step, config YAML), identical
 * training after a reload, atomic writes, and refusal of damaged or foreign checkpoints naming
 * the tensor or config key, leaving the network unchanged. */
#include "tests/test_util.h"

#include <dirent.h>
#include <hdf5.h>

#include "common/err.h"
#include "common/rng.h"
#include "learner/checkpoint.h"
#include "learner/net.h"
#include "tests/net_test_batch.h"

/* same batches as before: seed 17, tensor entries in [-1, 1], returns down to -9 */
static void mk_batch(const tg_net_config *c, int B, batch *b) { mk_batch_seeded(c, B, b, 17, 1, 9); }

static tg_net *mk_net(const tg_net_config *cfg, uint64_t seed)
{
    tg_net *n = tg_net_new(cfg, "cpu", 4, 1, seed);
    if (!n)
        fail_msg("%s", tg_errmsg());
    tg_opt_config o;
    tg_opt_config_default(&o);
    o.lr = 1e-3, o.weight_decay = 0.01, o.warmup_steps = 2, o.decay_steps = 10, o.lr_min = 1e-4;
    o.grad_clip = 1.0;
    tg_net_set_opt(n, &o);
    return n;
}

typedef struct state_copy {
    float *w, *m, *v;
    int64_t step;
} state_copy;

static void snapshot(tg_net *n, state_copy *s)
{
    size_t np = tg_net_n_params(n);
    s->w = malloc(np * 4), s->m = malloc(np * 4), s->v = malloc(np * 4);
    assert_int_equal(tg_net_get_params(n, s->w), 0);
    assert_int_equal(tg_net_get_opt_state(n, s->m, s->v, &s->step), 0);
}

static void assert_same_state(tg_net *n, const state_copy *s)
{
    state_copy t;
    snapshot(n, &t);
    size_t bytes = tg_net_n_params(n) * 4;
    assert_memory_equal(t.w, s->w, bytes);
    assert_memory_equal(t.m, s->m, bytes);
    assert_memory_equal(t.v, s->v, bytes);
    assert_int_equal(t.step, s->step);
    free(t.w), free(t.m), free(t.v);
}

static void free_state(state_copy *s)
{
    free(s->w), free(s->m), free(s->v);
}

static void test_round_trip(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("golden", &cfg, NULL);
    tg_net *a = mk_net(&cfg, 1), *b = mk_net(&cfg, 2);
    batch bt;
    mk_batch(&cfg, 4, &bt);
    tg_batch_view bv = {.B = 4, .tensors = bt.t, .scalars = bt.s, .tokens = bt.a, .returns = bt.r};
    tg_train_stats st;
    for (int i = 0; i < 3; i++)
        assert_int_equal(tg_net_train_step(a, &bv, &st), 0);
    char dir[64], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/step-00000003.h5", dir);
    const char *yaml = "run:\n  seed: 7\nnet:\n  c: 32\n";
    assert_int_equal(tg_net_save(a, path, yaml), 0);
    /* only the final file: the temporary was renamed */
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            files++;
            assert_string_equal(e->d_name, "step-00000003.h5");
        }
    closedir(d);
    assert_int_equal(files, 1);
    /* h5py-visible layout: params/<spec name> as float32 */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t ds = H5Dopen2(f, "params/torso.blocks.0.1.q.weight", H5P_DEFAULT);
    assert_true(ds >= 0);
    hid_t ty = H5Dget_type(ds);
    assert_true(H5Tequal(ty, H5T_IEEE_F32LE) > 0);
    H5Tclose(ty);
    H5Dclose(ds);
    assert_true(H5Lexists(f, "adam_v/policy.pos", H5P_DEFAULT) > 0);
    H5Fclose(f);

    state_copy sa;
    snapshot(a, &sa);
    assert_int_equal(sa.step, 3);
    assert_int_equal(tg_net_load(b, path), 0);
    assert_same_state(b, &sa);
    char *y = NULL;
    int64_t step = -1;
    size_t np = tg_net_n_params(a);
    float *w = malloc(np * 4);
    assert_int_equal(tg_checkpoint_read(path, tg_net_params(a), w, NULL, NULL, NULL, &step, &y),
                     0);
    assert_string_equal(y, yaml);
    assert_int_equal(step, 3);
    free(y);
    free(w);
    /* the reloaded net trains exactly like the original */
    tg_train_stats sb;
    assert_int_equal(tg_net_train_step(a, &bv, &st), 0);
    assert_int_equal(tg_net_train_step(b, &bv, &sb), 0);
    assert_true(st.loss.total == sb.loss.total);
    assert_true(st.lr == sb.lr);
    state_copy s2;
    snapshot(a, &s2);
    assert_same_state(b, &s2);
    free_state(&sa);
    free_state(&s2);
    free_batch(&bt);
    tg_net_free(a);
    tg_net_free(b);
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

static void expect_refused(tg_net *n, const char *path, const char *name, const state_copy *s)
{
    tg_err_clear();
    assert_int_equal(tg_net_load(n, path), -1);
    if (!strstr(tg_errmsg(), name))
        fail_msg("message '%s' does not name '%s'", tg_errmsg(), name);
    assert_same_state(n, s); /* nothing changed */
}

static void replace(const char *path, const char *dset, int ndim, hsize_t d0, hsize_t d1)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    H5E_BEGIN_TRY { H5Ldelete(f, dset, H5P_DEFAULT); } H5E_END_TRY;
    if (ndim > 0) {
        hsize_t dims[2] = {d0, d1};
        hid_t sp = H5Screate_simple(ndim, dims, NULL);
        hid_t d = H5Dcreate2(f, dset, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(d >= 0);
        float *z = calloc(d0 * d1, 4);
        H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
        free(z);
        H5Dclose(d);
        H5Sclose(sp);
    }
    H5Fclose(f);
}

static void test_refusals(void **state)
{
    (void)state;
    tg_net_config cfg;
    tg_net_config_preset("golden", &cfg, NULL);
    tg_net *a = mk_net(&cfg, 1), *b = mk_net(&cfg, 2);
    char dir[64], good[128], bad[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    assert_int_equal(tg_net_save(a, good, ""), 0);
    state_copy sb;
    snapshot(b, &sb);

    copy_file(good, bad);
    replace(bad, "params/policy.layers.1.norm_y.weight", 0, 0, 0);
    expect_refused(b, bad, "policy.layers.1.norm_y.weight", &sb);
    copy_file(good, bad);
    replace(bad, "params/torso.blocks.1.2.mlp_in.weight", 2, 64, 31);
    expect_refused(b, bad, "torso.blocks.1.2.mlp_in.weight", &sb);
    copy_file(good, bad);
    replace(bad, "adam_m/value.hidden.1.bias", 1, 33, 1);
    expect_refused(b, bad, "value.hidden.1.bias", &sb);
    copy_file(good, bad);
    replace(bad, "params/value.hidden.9.weight", 2, 4, 4);
    expect_refused(b, bad, "value.hidden.9.weight", &sb);
    /* same shapes, another config: heads x head_dim kept, heads changed */
    copy_file(good, bad);
    hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT);
    long long v = 4;
    hid_t at = H5Aopen(f, "heads", H5P_DEFAULT);
    H5Awrite(at, H5T_NATIVE_LLONG, &v);
    H5Aclose(at);
    H5Fclose(f);
    expect_refused(b, bad, "heads", &sb);
    /* a net of another config refuses the good file, naming the first mis-shaped tensor */
    tg_net_config other = cfg;
    other.c = 48;
    tg_net *c = mk_net(&other, 3);
    state_copy sc;
    snapshot(c, &sc);
    expect_refused(c, good, "torso.in_proj.0.weight", &sc);
    /* truncated and missing files */
    copy_file(good, bad);
    assert_int_equal(truncate(bad, 2000), 0);
    expect_refused(b, bad, "bad.h5", &sb);
    expect_refused(b, "/nonexistent/ck.h5", "/nonexistent/ck.h5", &sb);
    /* an unwritable destination fails cleanly */
    assert_int_equal(tg_net_save(a, "/nonexistent/dir/ck.h5", ""), -1);
    assert_non_null(strstr(tg_errmsg(), "/nonexistent/dir/ck.h5"));
    free_state(&sb);
    free_state(&sc);
    tg_net_free(a);
    tg_net_free(b);
    tg_net_free(c);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
