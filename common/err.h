/* Error reporting across modules: functions return 0 on success and -1 on failure after
 * recording a message in a thread-local buffer that the caller can print or forward to a peer.
 * Always-on asserts (TG_ASSERT) are only for broken invariants, never for user or peer input. */
#ifndef TG_ERR_H
#define TG_ERR_H

#include <stdio.h>
#include <stdlib.h>

/* Exit status of a process whose start-up failed on something a restart cannot change (the
 * configuration, keys, an unreadable data file, the backend on this machine): the cluster's
 * supervisor (deploy/run_cluster.sh) stops the run on it and says why, instead of restarting
 * (sysexits' EX_CONFIG). Exit status 2 is a usage error; 1 any other failure. */
#define TG_EXIT_SETUP 78

/* Record a printf-style message for this thread and return -1. */
int tg_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefix the current message with more context ("loading x.h5: " + old) and return -1. */
int tg_fail_ctx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message recorded on this thread ("" if none). */
const char *tg_errmsg(void);
void tg_err_clear(void);

#define TG_ASSERT(cond)                                                                        \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

#endif
