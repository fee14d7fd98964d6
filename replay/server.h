/* The replay service: a ZeroMQ ROUTER over the tables, the journal, the HDF5 checkpoint and the
 * results file. One thread owns the socket, the journal and the rate limiter; sampler workers,
 * demonstration generators and the checkpoint writer run beside it. Protocol: replay/README.md. */
#ifndef REPLAY_SERVER_H
#define REPLAY_SERVER_H

#include <signal.h>
#include <stdint.h>

#include "common/config.h"

/* Error codes in Error replies. */
enum {
    REPLAY_E_MALFORMED = 400,   /* not a valid Envelope, wrong version, no body, bad framing */
    REPLAY_E_UNSUPPORTED = 404, /* a message type tg-replay does not serve */
    REPLAY_E_OVERSIZED = 413,   /* larger than replay.max_message */
    REPLAY_E_INVALID = 422,     /* well-formed but wrong content (bad game, inexact discovery) */
    REPLAY_E_INTERNAL = 500,    /* our fault (disk full ...): the game was not stored */
};

typedef struct replay_server replay_server;

typedef struct replay_server_opts {
    int reset_corrupt; /* move a corrupt replay.h5 / results.h5 / journal aside and start fresh */
} replay_server_opts;

/* Loads RUN/replay.h5 and the journal, opens results.h5, starts the demonstration generators
 * and the sampler workers, binds replay.endpoint. NULL with a message; then *permanent (may be
 * NULL) is 1 when a restart would fail the same way: replay.h5, a journal or results.h5
 * unreadable (without reset_corrupt), a store written for another config, unusable security
 * keys. c must outlive it. */
replay_server *replay_server_new(const tg_config *c, const replay_server_opts *o, int *permanent);
/* The endpoint actually bound (tcp://127.0.0.1:* resolved); also written to RUN/replay.endpoint. */
const char *replay_server_endpoint(const replay_server *s);
/* Serves until *stop becomes non-zero; then flushes, acknowledges and writes a final checkpoint.
 * 0, or -1 with a message on a fatal error (the journal cannot be written). */
int replay_server_run(replay_server *s, volatile sig_atomic_t *stop);
void replay_server_free(replay_server *s);

/* Named counters and gauges (the Stats reply), for tests. -1 if no such key. */
double replay_server_stat(replay_server *s, const char *key);

#endif
