#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/err.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_process[64] = "tg";
static enum tg_log_level log_level = TG_LOG_INFO;
static FILE *log_file;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void tg_log_set_process(const char *name)
{
    pthread_mutex_lock(&log_mu);
    snprintf(log_process, sizeof log_process, "%s", name);
    pthread_mutex_unlock(&log_mu);
}

void tg_log_set_level(enum tg_log_level level) { log_level = level; }

int tg_log_level_parse(const char *s, enum tg_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum tg_log_level)i;
            return 0;
        }
    if (strcasecmp(s, "warning") == 0) {
        *out = TG_LOG_WARN;
        return 0;
    }
    return tg_fail("unknown log level '%s' (debug, info, warn, error)", s);
}

int tg_log_set_file(const char *path)
{
    FILE *f = NULL;
    if (path && !(f = fopen(path, "a")))
        return tg_fail("cannot open log file %s: %m", path);
    if (f)
        setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&log_mu);
    if (log_file)
        fclose(log_file);
    log_file = f;
    pthread_mutex_unlock(&log_mu);
    return 0;
}

void tg_log(enum tg_log_level level, const char *fmt, ...)
{
    if (level < log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    pthread_mutex_lock(&log_mu);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000, level_names[level],
            log_process, msg);
    if (log_file)
        fprintf(log_file, "%s.%03ldZ %s %s: %s\n", stamp, ts.tv_nsec / 1000000,
                level_names[level], log_process, msg);
    pthread_mutex_unlock(&log_mu);
}

double tg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tg_thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double tg_wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
