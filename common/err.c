#include "common/err.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char tg_err_buf[1024];

int tg_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tg_err_buf, sizeof tg_err_buf, fmt, ap);
    va_end(ap);
    return -1;
}

int tg_fail_ctx(const char *fmt, ...)
{
    char old[sizeof tg_err_buf];
    memcpy(old, tg_err_buf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tg_err_buf, sizeof tg_err_buf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof tg_err_buf)
        snprintf(tg_err_buf + n, sizeof tg_err_buf - (size_t)n, "%s", old);
    return -1;
}

const char *tg_errmsg(void) { return tg_err_buf; }

void tg_err_clear(void) { tg_err_buf[0] = 0; }
