/* The inference service: a ROUTER socket that answers actors' EvalRequests with sampled actions
 * and values from the newest weights, in its own thread beside training.
 *
 * Requests from all clients are queued and evaluated together: a batch goes when it holds
 * max_batch positions, or when its oldest request has waited long enough. The wait adapts to
 * the arrival rate: at most max_wait_ms, and no longer than the queue is expected to take to
 * fill (so a lone synchronous client is not delayed for nothing). Requests with other K or
 * temperature are batched separately; a request larger than max_batch is evaluated in pieces.
 * Every answer carries the model version of the weights that produced it. Malformed requests
 * get an Error reply and a counter; nothing a peer sends stops the service.
 *
 * The same socket serves WeightsRequest (the newest weights, checked by CRC32C; replicas fetch
 * them) and StatsRequest (the service's counters). With a PUB endpoint, every new weights
 * version is announced (WeightsAnnounce) and re-announced every second for late subscribers. */
#ifndef TG_INFER_H
#define TG_INFER_H

#include <stddef.h>
#include <stdint.h>

#include "common/sock.h"
#include "learner/net.h"
#include "learner/share.h"

typedef struct tg_infer tg_infer;

typedef struct tg_infer_opts {
    const tg_net_config *ncfg;
    const char *backend;        /* net backend of the service's own network */
    int threads;                /* CPU backend threads */
    int max_batch;              /* positions per evaluation */
    double max_wait_ms;
    int samples;                /* default K */
    double temperature;         /* default temperature */
    const char *endpoint;       /* ROUTER bind address */
    const char *pub_endpoint;   /* PUB bind address, or NULL (replicas do not announce) */
    const char *fetch_endpoint; /* put in announcements: where replicas fetch (NULL: the bound
                                   ROUTER endpoint) */
    tg_share *share;            /* device sharing with training, or NULL */
    tg_sock_sec *sec;
    uint64_t seed;
} tg_infer_opts;

typedef struct tg_infer_stats {
    uint64_t requests, positions, batches; /* answered EvalRequests, their positions, batches */
    uint64_t bad_requests;      /* answered with an error */
    uint64_t weights_served;
    uint64_t version;           /* weights in use (0 before any) */
    int have_weights;
    double busy_s;              /* seconds spent evaluating */
} tg_infer_stats;

/* Creates the network and sockets and starts the thread. NULL with a message. */
tg_infer *tg_infer_start(const tg_infer_opts *o);
/* Stops the thread and frees everything. */
void tg_infer_stop(tg_infer *s);
/* Endpoints actually bound (wildcard ports resolved). */
const char *tg_infer_endpoint(const tg_infer *s);
const char *tg_infer_pub_endpoint(const tg_infer *s); /* "" without PUB */
/* Backend of the service's network ("cpu" or "cuda"). */
const char *tg_infer_backend(const tg_infer *s);
/* Hands new weights to the service (copied; thread-safe). n must be the net's n_params. The
 * service switches to them before its next batch and announces them. */
int tg_infer_publish(tg_infer *s, const float *params, size_t n, uint64_t version, uint64_t step);
void tg_infer_get_stats(tg_infer *s, tg_infer_stats *out);

/* CRC32C of a parameter buffer as it travels (little-endian f32). */
uint32_t tg_params_crc(const float *params, size_t n);

#endif
