/* Shared helpers for the cmocka unit tests (tests/test_*.c). */
#ifndef TG_TEST_UTIL_H
#define TG_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* ../shared beside the repository (DeepMind's data, the golden file). */
static inline const char *tg_test_shared(void)
{
    const char *s = getenv("TG_SHARED");
    return s ? s : TG_SOURCE_DIR "/../shared";
}

/* A fresh temporary directory for one test (removed by the OS's /tmp cleaning, not by us, so
 * a failing test leaves its files for inspection). */
static inline void tg_test_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/tgtest.XXXXXX");
    if (!mkdtemp(buf))
        fail_msg("mkdtemp failed");
}

/* Directory of the built binaries (bin/ or build-san/bin), set by `make test`. */
static inline const char *tg_test_bin(void)
{
    const char *s = getenv("TG_BIN");
    return s ? s : TG_SOURCE_DIR "/bin";
}

#endif
