/* The run configuration: defaults, YAML loading, overrides, errors that name the key, derived
 * fields, writing and reading back. */
#include "tests/test_util.h"

#include "common/config.h"
#include "common/err.h"

static char tmpdir[256];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

/* Loads text as a YAML config over the defaults; returns tg_config_load's result. */
static int load_text(tg_config *c, const char *text)
{
    const char *p = tmp_path("c.yaml");
    write_file(p, text);
    tg_config_defaults(c);
    return tg_config_load(c, p);
}

static void assert_err_has(const char *want)
{
    if (!strstr(tg_errmsg(), want))
        fail_msg("error '%s' does not mention '%s'", tg_errmsg(), want);
}

static void test_defaults(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_finish(&c), 0);
    assert_int_equal(c.game.n_targets, 1);
    assert_string_equal(c.game.targets[0], "2,2,2");
    assert_int_equal(c.game.target_rank[0], 7);
    assert_int_equal(c.game.S, 4);
    assert_int_equal(c.game.F.n, 3);
    assert_int_equal(c.game.F.v[0], -1);
    assert_int_equal(c.game.F.v[2], 1);
    assert_int_equal(c.game.d, 3);
    assert_int_equal(c.game.n_logits, 27);
    assert_int_equal(c.game.mod2, 0);
    assert_int_equal(c.game.dims[0].n, 2);
    assert_true(c.game.r_limit >= 7);
    assert_true(c.net.c > 0 && c.train.batch > 0 && c.actor.simulations > 0);
    assert_string_equal(c.train.backend, "auto");
    double fr = c.replay.frac_demos + c.replay.frac_played + c.replay.frac_best;
    assert_true(fr > 0.999999 && fr < 1.000001);
}

static void test_load(void **state)
{
    (void)state;
    tg_config c;
    assert_int_equal(load_text(&c, "# a run on two targets\n"
                                   "run:\n"
                                   "  seed: 42\n"
                                   "  dir: \"/tmp/x run\"\n"
                                   "game:\n"
                                   "  targets:\n"
                                   "    - \"2,2,2\"\n"
                                   "    - 3x3x3\n"
                                   "  target_rank: [7, 23]\n"
                                   "  n_steps: 9\n"
                                   "  change_of_basis: no\n"
                                   "  basis_prob: 0.25\n"
                                   "net:\n"
                                   "  c: 32\n"
                                   "replay:\n"
                                   "  demos_size: 5e6\n"
                                   "actor:\n"
                                   "train.lr: 3e-4\n"),
                     0);
    assert_int_equal(c.run.seed, 42);
    assert_string_equal(c.run.dir, "/tmp/x run");
    assert_int_equal(c.game.n_targets, 2);
    assert_string_equal(c.game.targets[1], "3,3,3");
    assert_int_equal(c.game.target_rank[1], 23);
    assert_int_equal(c.game.change_of_basis, 0);
    assert_true(c.game.basis_prob == 0.25);
    assert_int_equal(c.net.c, 32);
    assert_true(c.replay.demos_size == 5000000);
    assert_true(c.train.lr == 3e-4);
    assert_int_equal(tg_config_finish(&c), 0);
    assert_int_equal(c.game.S, 9);
    assert_int_equal(c.game.d, 3);
    assert_int_equal(c.game.n_logits, 27);
    assert_int_equal(c.game.dims[1].p, 3);

    /* an empty file keeps the defaults */
    assert_int_equal(load_text(&c, ""), 0);
    assert_int_equal(c.net.c, 64);
    /* a missing file */
    tg_config_defaults(&c);
    assert_int_equal(tg_config_load(&c, tmp_path("missing.yaml")), -1);
    assert_err_has("missing.yaml");
}

static void test_overrides(void **state)
{
    (void)state;
    tg_config c;
    tg_config_defaults(&c);
    assert_int_equal(tg_config_set(&c, "game.r_limit=12"), 0);
    assert_int_equal(c.game.r_limit, 12);
    assert_int_equal(tg_config_set(&c, " net.layers = 3 "), 0);
    assert_int_equal(c.net.layers, 3);
    assert_int_equal(tg_config_set(&c, "game.targets=2,2,2; 2,3,4"), 0);
    assert_int_equal(c.game.n_targets, 2);
    assert_string_equal(c.game.targets[1], "2,3,4");
    assert_int_equal(tg_config_set(&c, "game.target_rank=[7, 20]"), 0);
    assert_int_equal(c.game.target_rank[1], 20);
    assert_int_equal(tg_config_set(&c, "game.n_steps=12"), 0);
    assert_int_equal(tg_config_set(&c, "game.arithmetic=mod2"), 0);
    assert_int_equal(tg_config_set(&c, "game.coeffs=0,1"), 0);
    assert_int_equal(tg_config_set(&c, "run.log_level=debug"), 0);
    assert_int_equal(tg_config_finish(&c), 0);
    assert_int_equal(c.game.S, 12); /* T(2,3,4): modes 6, 12, 8 */
    assert_int_equal(c.game.mod2, 1);
    assert_int_equal(c.game.d, 3);
    assert_int_equal(c.game.n_logits, 8);

    /* from argv: --config, --set and bare assignments are consumed, the rest compacted */
    const char *p = tmp_path("args.yaml");
    write_file(p, "net:\n  c: 16\n");
    char *argv[] = {"prog", "--config", (char *)p, "--set", "net.heads=2", "input.txt", "game.r_limit=9", "-v", NULL};
    int argc = 8;
    int n = tg_config_from_args(&c, argc, argv);
    assert_int_equal(n, 3);
    assert_string_equal(argv[1], "input.txt");
    assert_string_equal(argv[2], "-v");
    assert_null(argv[3]);
    assert_int_equal(c.net.c, 16);
    assert_int_equal(c.net.heads, 2);
    assert_int_equal(c.game.r_limit, 9);
    assert_int_equal(c.game.S, 4); /* finished */
}

static void test_unknown_key(void **state)
{
    (void)state;
    tg_config c;
    assert_int_equal(load_text(&c, "game:\n  r_limit: 5\n  r_limt: 3\n"), -1);
    assert_err_has("game.r_limt");
    assert_err_has("c.yaml:3");
    assert_int_equal(load_text(&c, "gaem:\n  r_limit: 3\n"), -1);
    assert_err_has("gaem.r_limit");
    assert_int_equal(load_text(&c, "r_limit: 3\n"), -1);
    assert_err_has("'r_limit'");
    tg_config_defaults(&c);
    assert_int_equal(tg_config_set(&c, "net.widht=3"), -1);
    assert_err_has("net.widht");
    assert_int_equal(tg_config_set(&c, "net.c"), -1);
    assert_err_has("net.c");
}

static void test_bad_values(void **state)
{
    (void)state;
    tg_config c;
    struct {
        const char *yaml, *want;
    } cases[] = {
        {"game:\n  r_limit: abc\n", "game.r_limit"},
        {"game:\n  r_limit: 0\n", "out of range"},
        {"game:\n  r_limit: 2.5\n", "game.r_limit"},
        {"game:\n  basis_prob: 1.5\n", "game.basis_prob"},
        {"game:\n  change_of_basis: maybe\n", "game.change_of_basis"},
        {"game:\n  arithmetic: real\n", "game.arithmetic"},
        {"train:\n  backend: tpu\n", "train.backend"},
        {"run:\n  seed: -1\n", "run.seed"},
        {"game:\n  targets: [\"2,2,2\", \"0,2,2\"]\n", "game.targets"},
        {"game:\n  targets: []\n", "game.targets"},
        {"game:\n  r_limit: [1, 2]\n", "game.r_limit"},
        {"game:\n  targets:\n    a: 1\n", "game.targets"},
        {"game:\n  r_limit: [1\n", "c.yaml:"},
        {"game: [\n", "c.yaml:"},
        {"- 1\n- 2\n", "c.yaml:1"},
        {"run:\n  dir: &a x\n  log_level: *a\n", "alias"},
        {"game: 5\n", "'game' is a section"},
        {"game:\n  targets: [2,2,2]\n", "quote each target"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (load_text(&c, cases[i].yaml) != -1)
            fail_msg("case %zu loaded: %s", i, cases[i].yaml);
        assert_err_has(cases[i].want);
    }
    tg_config_defaults(&c);
    assert_int_equal(tg_config_set(&c, "net.c=-3"), -1);
    assert_err_has("net.c");
    assert_int_equal(tg_config_set(&c, "train.lr=nan"), -1);
    assert_err_has("train.lr");
    assert_int_equal(tg_config_set(&c, "game.target_rank=7,x"), -1);
    assert_err_has("game.target_rank");
}

static void test_finish_errors(void **state)
{
    (void)state;
    struct {
        const char *set[3], *want;
    } cases[] = {
        {{"game.n_steps=5"}, "game.n_steps"},
        {{"game.arithmetic=mod2"}, "game.coeffs"},
        {{"game.coeffs=1,2"}, "game.coeffs"},
        {{"game.target_rank=7,8"}, "game.target_rank"},
        {{"game.targets=6,6,6"}, "game.targets"},
        {{"replay.demos_rank_min=9", "replay.demos_rank_max=3"}, "replay.demos_rank_min"},
        {{"replay.demos_probs=1,2"}, "replay.demos_probs"},
        {{"replay.frac_best=0.5"}, "replay.frac"},
        {{"train.lr=1e-4", "train.lr_min=1e-3"}, "train.lr_min"},
        {{"game.coeffs=-2..2", "game.n_steps=1"}, "game.n_steps"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_config c;
        tg_config_defaults(&c);
        for (int j = 0; j < 3 && cases[i].set[j]; j++)
            assert_int_equal(tg_config_set(&c, cases[i].set[j]), 0);
        if (tg_config_finish(&c) != -1)
            fail_msg("case %zu finished", i);
        assert_err_has(cases[i].want);
    }
}

static void test_write_read(void **state)
{
    (void)state;
    tg_config a, b;
    tg_config_defaults(&a);
    assert_int_equal(tg_config_set(&a, "game.targets=2,2,2;3,3,3"), 0);
    assert_int_equal(tg_config_set(&a, "game.target_rank=7,23"), 0);
    assert_int_equal(tg_config_set(&a, "run.dir=no"), 0); /* a string that YAML would read as a bool */
    assert_int_equal(tg_config_set(&a, "train.lr=0.1"), 0);
    assert_int_equal(tg_config_set(&a, "actor.c2=19652.5"), 0);
    assert_int_equal(tg_config_set(&a, "run.seed=18446744073709551615"), 0);
    assert_int_equal(tg_config_set(&a, "game.n_steps=9"), 0);
    assert_int_equal(tg_config_finish(&a), 0);
    const char *p = tmp_path("w.yaml");
    assert_int_equal(tg_config_write(&a, p), 0);
    tg_config_defaults(&b);
    assert_int_equal(tg_config_load(&b, p), 0);
    assert_int_equal(tg_config_finish(&b), 0);
    assert_string_equal(b.run.dir, "no");
    assert_int_equal(b.game.n_targets, 2);
    assert_true(b.run.seed == UINT64_MAX);
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_doc(void **state)
{
    (void)state;
    const char *p = tmp_path("doc.md");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    tg_config_print_doc(f);
    fclose(f);
    f = fopen(p, "r");
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    assert_non_null(strstr(buf, "`game.r_limit`"));
    assert_non_null(strstr(buf, "`train.backend`"));
    assert_non_null(strstr(buf, "## replay"));
}

int main(void)
{
    tg_test_tmpdir(tmpdir, sizeof tmpdir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),     cmocka_unit_test(test_load),
        cmocka_unit_test(test_overrides),    cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_values),   cmocka_unit_test(test_finish_errors),
        cmocka_unit_test(test_write_read),   cmocka_unit_test(test_doc),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
