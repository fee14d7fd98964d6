#include "common/blas_core.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char *tg_blas_core_better(void)
{
    const char *set = getenv("OPENBLAS_CORETYPE"), *keep = getenv("TG_BLAS_CORE");
    if ((set && set[0]) || (keep && strcmp(keep, "keep") == 0))
        return NULL;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "Prescott") != 0) /* OpenBLAS knows this CPU */
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
    return NULL;
}

void tg_blas_core_fix(char **argv)
{
    const char *core = tg_blas_core_better();
    if (!core)
        return;
    /* Also marks the restart: the new process finds OPENBLAS_CORETYPE set and goes on. */
    if (setenv("OPENBLAS_CORETYPE", core, 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    fprintf(stderr, "warning: OpenBLAS uses its slow Prescott kernels on this CPU and restarting with "
                    "OPENBLAS_CORETYPE=%s failed; set it by hand\n", core);
}
