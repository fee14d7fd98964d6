/* Factorization files: HDF5 and JSON round trips, key lookups, and the checks on what is read. */
#include "tests/test_util.h"

#include "common/err.h"
#include "common/fact.h"
#include "common/factio.h"

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[2][512];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void assert_err_has(const char *want)
{
    if (!strstr(tg_errmsg(), want))
        fail_msg("error '%s' does not mention '%s'", tg_errmsg(), want);
}

static void assert_same(const tg_fact *a, const tg_fact *b)
{
    tg_dims da = tg_fact_dims(a), db = tg_fact_dims(b);
    assert_int_equal(da.n, db.n);
    assert_int_equal(da.m, db.m);
    assert_int_equal(da.p, db.p);
    assert_int_equal(tg_fact_rank(a), tg_fact_rank(b));
    assert_int_equal(tg_fact_denom(a), tg_fact_denom(b));
    assert_int_equal(tg_fact_arith(a), tg_fact_arith(b));
    size_t r = (size_t)tg_fact_rank(a);
    assert_memory_equal(tg_fact_cu(a), tg_fact_cu(b), r * (size_t)(da.n * da.m) * 8);
    assert_memory_equal(tg_fact_cv(a), tg_fact_cv(b), r * (size_t)(da.m * da.p) * 8);
    assert_memory_equal(tg_fact_cw(a), tg_fact_cw(b), r * (size_t)(da.p * da.n) * 8);
}

/* Strassen, the naive 2x3x4, a scaled one with denominator 2 and large coefficients, a mod-2
 * copy and an empty one. */
static void make_list(tg_fact_list *l)
{
    memset(l, 0, sizeof *l);
    assert_int_equal(tg_fact_list_add(l, "2,2,2", tg_fact_strassen()), 0);
    tg_dims d = {2, 3, 4};
    assert_int_equal(tg_fact_list_add(l, "2,3,4", tg_fact_naive(d)), 0);
    tg_fact *s = tg_fact_strassen();
    tg_fact *h = tg_fact_new(tg_fact_dims(s), 7, 2, TG_ARITH_INTEGER);
    for (int i = 0; i < 28; i++) {
        tg_fact_u(h)[i] = 2 * tg_fact_cu(s)[i];
        tg_fact_v(h)[i] = tg_fact_cv(s)[i];
        tg_fact_w(h)[i] = tg_fact_cw(s)[i];
    }
    tg_fact_u(h)[0] = INT64_C(1) << 40; /* breaks the identity but must survive the files */
    assert_int_equal(tg_fact_list_add(l, "half", h), 0);
    tg_fact *m = tg_fact_new(tg_fact_dims(s), 7, 1, TG_ARITH_MOD2);
    for (int i = 0; i < 28; i++) {
        tg_fact_u(m)[i] = tg_fact_cu(s)[i] & 1;
        tg_fact_v(m)[i] = tg_fact_cv(s)[i] & 1;
        tg_fact_w(m)[i] = tg_fact_cw(s)[i] & 1;
    }
    assert_int_equal(tg_fact_list_add(l, "strassen mod 2", m), 0);
    tg_dims one = {1, 1, 1};
    assert_int_equal(tg_fact_list_add(l, "empty", tg_fact_new(one, 0, 1, TG_ARITH_INTEGER)), 0);
    tg_fact_free(s);
}

static const tg_fact *find(const tg_fact_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0)
            return l->facts[i];
    fail_msg("key %s missing", key);
    return NULL;
}

static void round_trip(const char *name)
{
    tg_fact_list a, b = {0};
    make_list(&a);
    const char *p = tmp_path(name);
    assert_int_equal(tg_factio_write(p, &a), 0);
    if (tg_factio_read(p, &b))
        fail_msg("%s", tg_errmsg());
    assert_int_equal(b.n, a.n);
    for (int i = 0; i < a.n; i++)
        assert_same(a.facts[i], find(&b, a.keys[i]));
    /* sizes first, in numeric order, then other names */
    assert_string_equal(b.keys[0], "2,2,2");
    assert_string_equal(b.keys[1], "2,3,4");
    assert_int_equal(tg_fact_verify(find(&b, "2,2,2"), 0, NULL), 1);
    assert_int_equal(tg_fact_verify(find(&b, "strassen mod 2"), 1, NULL), 1);
    tg_fact *one = tg_factio_read_key(p, "2,3,4");
    assert_non_null(one);
    assert_same(one, a.facts[1]);
    tg_fact_free(one);
    assert_null(tg_factio_read_key(p, "3,3,3"));
    assert_err_has("no key '3,3,3'; keys present: 2,2,2 2,3,4");
    tg_fact_list_free(&a);
    tg_fact_list_free(&b);
    assert_int_equal(b.n, 0);
}

static void test_hdf5(void **state)
{
    (void)state;
    round_trip("f.h5");
}

static void test_json(void **state)
{
    (void)state;
    round_trip("f.json");
}

static void test_list(void **state)
{
    (void)state;
    tg_fact_list l = {0};
    assert_int_equal(tg_fact_list_add(&l, "a", tg_fact_strassen()), 0);
    tg_fact *f = tg_fact_strassen();
    assert_int_equal(tg_fact_list_add(&l, "a", f), -1);
    assert_err_has("duplicate key 'a'");
    assert_int_equal(tg_fact_list_add(&l, "a/b", f), -1);
    assert_err_has("'a/b'");
    assert_int_equal(tg_fact_list_add(&l, "", f), -1);
    tg_fact_free(f);
    tg_fact_list_free(&l);
}

static void test_errors(void **state)
{
    (void)state;
    tg_fact_list l = {0};
    assert_int_equal(tg_factio_read(tmp_path("none.h5"), &l), -1);
    assert_err_has("No such file");
    FILE *f = fopen(tmp_path("junk.h5"), "w");
    fputs("junk", f);
    fclose(f);
    assert_int_equal(tg_factio_read(tmp_path("junk.h5"), &l), -1);
    assert_err_has("not a factorization file");
    f = fopen(tmp_path("bad.json"), "w");
    fputs("{\"format\": \"tensorgame-factorizations\", \"version\": 1, \"factorizations\": {\"k\": {\"n\": 2, "
          "\"m\": 2, \"p\": 2, \"rank\": 1, \"u\": [[1, 0, 0, 1]], \"v\": [[1, 0, 0, 1]], \"w\": [[1, 0, 0]]}}}",
          f);
    fclose(f);
    assert_int_equal(tg_factio_read(tmp_path("bad.json"), &l), -1);
    assert_err_has("key k: w[0] must be an array of 4 integers");
    assert_int_equal(l.n, 0);
    /* a truncated HDF5 file */
    tg_fact_list a;
    make_list(&a);
    assert_int_equal(tg_factio_write(tmp_path("t.h5"), &a), 0);
    tg_fact_list_free(&a);
    f = fopen(tmp_path("t.h5"), "r+");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), 1000), 0);
    fclose(f);
    assert_int_equal(tg_factio_read(tmp_path("t.h5"), &l), -1);
    assert_err_has("truncated");
    assert_null(tg_factio_read_key(tmp_path("t.h5"), "2,2,2"));
    assert_err_has("truncated");
    /* writing where no directory exists */
    make_list(&a);
    assert_int_equal(tg_factio_write(tmp_path("no/dir.h5"), &a), -1);
    assert_int_equal(tg_factio_write(tmp_path("no/dir.json"), &a), -1);
    tg_fact_list_free(&a);
}

int main(void)
{
    tg_test_tmpdir(tmpdir, sizeof tmpdir);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdf5),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_errors),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
