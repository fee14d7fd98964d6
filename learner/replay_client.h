/* The learner's side of the replay service: a DEALER socket that keeps `prefetch` SampleRequests
 * in flight so that batches are waiting when a training step ends, and asks for Stats now and
 * then. Every Batch is checked (dtypes, shapes, token range, finite values) before training sees
 * it; a bad one is counted and dropped.
 *
 * A thread of its own owns the socket: it receives, decodes and checks batches while the
 * network trains, so a step only pops a ready batch.
 *
 * Replay may vanish and come back: a socket monitor sees the reconnection and the lost requests
 * are sent again; requests unanswered for long are given up by replacing the socket. The
 * functions below are called from one thread (the training loop). */
#ifndef TG_REPLAY_CLIENT_H
#define TG_REPLAY_CLIENT_H

#include <stdint.h>

#include "common/sock.h"
#include "learner/net.h"

typedef struct tg_replay_client tg_replay_client;

typedef struct tg_replay_counters {
    uint64_t batches;      /* good batches received */
    uint64_t bad;          /* malformed batches or messages */
    uint64_t errors;       /* Error replies (e.g. replay not ready) */
    uint64_t reconnects;   /* connections re-established (or sockets replaced) */
    double last_reply;     /* tg_now() of the last message from replay (0: never) */
    char last_error[256];
} tg_replay_counters;

tg_replay_client *tg_replay_client_new(tg_sock_sec *sec, const char *endpoint,
                                       const tg_net_config *ncfg, int batch, int prefetch);
void tg_replay_client_free(tg_replay_client *c);
/* Waits up to timeout_ms for a batch. 1: *b points at it (valid until the next call), 0: none
 * yet. Never fails for anything replay does. */
int tg_replay_client_next(tg_replay_client *c, int timeout_ms, tg_batch_view *b);
/* Sends a StatsRequest (answered asynchronously). */
void tg_replay_client_ask_stats(tg_replay_client *c);
/* The newest Stats received: n pairs, valid until the next call of this function (0 if none
 * yet). text may be "". */
int tg_replay_client_stats(tg_replay_client *c, char ***keys, double **values, const char **text);
void tg_replay_client_counters(tg_replay_client *c, tg_replay_counters *out);

#endif
