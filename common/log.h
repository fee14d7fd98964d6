/* Logging: one line per event, "2026-11-25T00:00:00.123Z LEVEL process: message", to stderr and
 * optionally to a file (logs/<process>.log of a run). Thread-safe. */
#ifndef TG_LOG_H
#define TG_LOG_H

enum tg_log_level { TG_LOG_DEBUG = 0, TG_LOG_INFO = 1, TG_LOG_WARN = 2, TG_LOG_ERROR = 3 };

/* Name shown in every line (e.g. "tg-replay"); default "tg". */
void tg_log_set_process(const char *name);
void tg_log_set_level(enum tg_log_level level);
/* Parses "debug", "info", "warn", "error"; returns -1 (with tg_fail) otherwise. */
int tg_log_level_parse(const char *s, enum tg_log_level *out);
/* Also append to this file (created with parents' existence assumed); NULL stops file logging. */
int tg_log_set_file(const char *path);
void tg_log(enum tg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define tg_debug(...) tg_log(TG_LOG_DEBUG, __VA_ARGS__)
#define tg_info(...) tg_log(TG_LOG_INFO, __VA_ARGS__)
#define tg_warn(...) tg_log(TG_LOG_WARN, __VA_ARGS__)
#define tg_error(...) tg_log(TG_LOG_ERROR, __VA_ARGS__)

/* Monotonic seconds, wall-clock seconds since the epoch, and the calling thread's CPU seconds
 * (benchmarks that must not count time other processes took). */
double tg_now(void);
double tg_wall(void);
double tg_thread_cpu(void);

#endif
