/* Factorizations the fastmm tests share: DeepMind's released ones
 * (../shared/data/factorizations_r.npz, converted by scripts/npz2h5.py into a temporary HDF5
 * file and read back) and a sign-flipped Strassen. */
#ifndef TG_TEST_RELEASED_H
#define TG_TEST_RELEASED_H

#include "common/err.h"
#include "common/factio.h"
#include "tests/test_util.h"

/* The sources and the Python with numpy + h5py (overridable where the tree was copied, as on
 * the GPU machine). */
static inline const char *tg_test_src_dir(void)
{
    const char *s = getenv("TG_SOURCE_DIR");
    return s ? s : TG_SOURCE_DIR;
}

static inline void tg_test_read_released(tg_fact_list *l)
{
    const char *py = getenv("TG_PYTHON");
    char dir[256], cmd[1024], path[300];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/r.h5", dir);
    snprintf(cmd, sizeof cmd, "%s %s/scripts/npz2h5.py %s/data/factorizations_r.npz %s >/dev/null",
             py ? py : "/usr/bin/python3", tg_test_src_dir(), tg_test_shared(), path);
    assert_int_equal(system(cmd), 0);
    if (tg_factio_read(path, l))
        fail_msg("%s", tg_errmsg());
}

/* Strassen with every term's u and w negated: the same algorithm, but its products that reach
 * one C block (m6, m7) have coefficient -1 there (the direct path must move it into an
 * operand). */
static inline tg_fact *tg_test_strassen_negated(void)
{
    tg_fact *f = tg_fact_strassen();
    assert_non_null(f);
    tg_dims d = tg_fact_dims(f);
    for (int r = 0; r < tg_fact_rank(f); r++) {
        for (int i = 0; i < d.n * d.m; i++) tg_fact_u(f)[r * d.n * d.m + i] *= -1;
        for (int i = 0; i < d.p * d.n; i++) tg_fact_w(f)[r * d.p * d.n + i] *= -1;
    }
    assert_int_equal(tg_fact_verify(f, 0, NULL), 1);
    return f;
}

#endif
