/* DeepMind's released factorizations (../shared/data/factorizations_r.npz) for the fastmm tests,
 * converted by scripts/npz2h5.py into a temporary HDF5 file and read back. */
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

#endif
