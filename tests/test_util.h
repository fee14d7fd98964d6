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
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ../shared beside the repository (DeepMind's data, the golden file). */
static inline const char *tg_test_shared(void)
{
    const char *s = getenv("TG_SHARED");
    return s ? s : TG_SOURCE_DIR "/../shared";
}

/* A fresh temporary directory for one test. The test program removes its directories when
 * every test passed (tg_test_done) and keeps them when one failed, for inspection. */
#define TG_TEST_MAX_TMPDIRS 64
static char tg_test_tmpdirs[TG_TEST_MAX_TMPDIRS][64];
static int tg_test_n_tmpdirs;

static inline void tg_test_tmpdir(char *buf, size_t len)
{
    snprintf(buf, len, "/tmp/tgtest.XXXXXX");
    if (!mkdtemp(buf))
        fail_msg("mkdtemp failed");
    if (tg_test_n_tmpdirs < TG_TEST_MAX_TMPDIRS && strlen(buf) < sizeof tg_test_tmpdirs[0])
        strcpy(tg_test_tmpdirs[tg_test_n_tmpdirs++], buf);
}

/* main's return value: cmocka's failure count; on 0 the temporary directories go (rm -rf). */
static inline int tg_test_done(int failures)
{
    extern char **environ;
    char *argv[TG_TEST_MAX_TMPDIRS + 3] = {"rm", "-rf"};
    int st = 0;
    pid_t pid;
    if (failures || !tg_test_n_tmpdirs)
        return failures;
    for (int i = 0; i < tg_test_n_tmpdirs; i++)
        argv[2 + i] = tg_test_tmpdirs[i];
    if (posix_spawnp(&pid, "rm", NULL, NULL, argv, environ) != 0 || waitpid(pid, &st, 0) != pid || st != 0)
        fprintf(stderr, "could not remove this test's temporary directories (%s ...)\n", tg_test_tmpdirs[0]);
    return failures;
}

/* Directory of the built binaries (bin/ or build-san/bin), set by `make test`. */
static inline const char *tg_test_bin(void)
{
    const char *s = getenv("TG_BIN");
    return s ? s : TG_SOURCE_DIR "/bin";
}

#endif
