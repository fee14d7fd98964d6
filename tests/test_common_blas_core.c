/* OpenBLAS core choice (common/blas_core.h): the fallback to Prescott is overridden only where the
 * CPU has AVX2 and FMA, never over a user's OPENBLAS_CORETYPE or TG_BLAS_CORE=keep; a restarted
 * process runs the core it asked for. */
#include "tests/test_util.h"

#include <cblas.h>
#include <strings.h>
#include <sys/wait.h>

#include "common/blas_core.h"

static void test_choice(void **state)
{
    (void)state;
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("TG_BLAS_CORE");
    const char *core = openblas_get_corename(), *better = tg_blas_core_better();
    __builtin_cpu_init();
    int fallback = core && strcasecmp(core, "Prescott") == 0;
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (fallback && avx2) {
        assert_non_null(better);
        assert_true(strcmp(better, "SkylakeX") == 0 || strcmp(better, "Haswell") == 0);
        if (strcmp(better, "SkylakeX") == 0)
            assert_true(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"));
    } else {
        assert_null(better);
    }
    setenv("TG_BLAS_CORE", "keep", 1);
    assert_null(tg_blas_core_better());
    unsetenv("TG_BLAS_CORE");
    setenv("OPENBLAS_CORETYPE", "Haswell", 1);
    assert_null(tg_blas_core_better());
    unsetenv("OPENBLAS_CORETYPE");
}

/* In a child: the restart through /proc/self/exe with the same arguments. The restarted test
 * binary runs only the named test, which reports the core it got through its exit status. */
static void test_restart(void **state)
{
    (void)state;
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("TG_BLAS_CORE");
    const char *better = tg_blas_core_better();
    if (!better)
        skip(); /* OpenBLAS knows this CPU: nothing to restart */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_common_blas_core", "--report-core", NULL};
        tg_blas_core_fix(argv);
        _exit(99); /* the exec failed */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), strcmp(better, "SkylakeX") == 0 ? 10 : 11);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--report-core") == 0) { /* the restarted child */
        const char *c = openblas_get_corename();
        return strcasecmp(c, "SkylakeX") == 0 ? 10 : strcasecmp(c, "Haswell") == 0 ? 11 : 12;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_restart),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
