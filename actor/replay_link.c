/* Acknowledged delivery of finished games to the replay server (see replay_link.h). */
#include "actor/replay_link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/sock.h"

typedef struct unacked {
    uint64_t seq;
    uint8_t *buf;
    size_t len;
    double sent; /* 0: not handed to ZeroMQ yet */
} unacked;

struct tg_replay_link {
    void *sock;
    tg_sock_sec *sec;
    double timeout;
    uint64_t next_seq;
    unacked *q; /* oldest first */
    int n, cap;
    uint64_t acked, resent;
    double last_warn;
};

static int try_send(tg_replay_link *l, const uint8_t *buf, size_t len)
{
    for (;;) {
        if (zmq_send(l->sock, buf, len, ZMQ_DONTWAIT) >= 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        return tg_fail("sending to replay: %s", zmq_strerror(errno));
    }
}

tg_replay_link *tg_replay_link_new(const tg_config *c, const char *endpoint, double ack_timeout_s)
{
    tg_replay_link *l = calloc(1, sizeof *l);
    if (!l) {
        tg_fail("out of memory");
        return NULL;
    }
    l->timeout = ack_timeout_s > 0 ? ack_timeout_s : 30;
    l->sec = tg_sock_sec_new(c, 0);
    if (!l->sec)
        goto fail;
    l->sock = tg_sock_connect(l->sec, ZMQ_DEALER, endpoint);
    if (!l->sock)
        goto fail;
    /* options for the reconnect backoff must precede the connection: connect again */
    zmq_disconnect(l->sock, endpoint);
    int one = 1, ivl = 100, ivl_max = 5000, hb = 1000, hb_to = 5000;
    if (zmq_setsockopt(l->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to) != 0) {
        tg_fail("replay socket options: %s", zmq_strerror(errno));
        goto fail;
    }
    if (zmq_connect(l->sock, endpoint) != 0) {
        tg_fail("cannot connect to replay at %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return l;
fail:
    tg_replay_link_free(l);
    return NULL;
}

void tg_replay_link_free(tg_replay_link *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n; i++)
        free(l->q[i].buf);
    free(l->q);
    tg_sock_close(l->sock);
    tg_sock_sec_free(l->sec);
    free(l);
}

int tg_replay_link_send_game(tg_replay_link *l, Tg__Game *g)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        unacked *q = realloc(l->q, (size_t)cap * sizeof *q);
        if (!q)
            return tg_fail("out of memory");
        l->q = q;
        l->cap = cap;
    }
    g->seq = ++l->next_seq;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME;
    e.game = g;
    unacked *u = &l->q[l->n];
    u->seq = g->seq;
    u->len = tg_wire_encode(&e, &u->buf);
    if (!u->buf)
        return -1;
    l->n++;
    int rc = try_send(l, u->buf, u->len);
    if (rc < 0)
        return -1;
    u->sent = rc ? tg_now() : 0;
    return 0;
}

int tg_replay_link_send_discovery(tg_replay_link *l, Tg__Discovery *d)
{
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_DISCOVERY;
    e.discovery = d;
    uint8_t *buf;
    size_t len = tg_wire_encode(&e, &buf);
    if (!buf)
        return -1;
    int rc = try_send(l, buf, len);
    free(buf);
    if (rc == 0)
        tg_warn("replay not connected: discovery not delivered (it is in this actor's log)");
    return rc < 0 ? -1 : 0;
}

static void ack(tg_replay_link *l, uint64_t seq)
{
    int i = 0;
    if (seq == 0) {
        if (l->n == 0)
            return;
    } else {
        while (i < l->n && l->q[i].seq != seq)
            i++;
        if (i == l->n)
            return; /* duplicate ack of a resent game */
    }
    free(l->q[i].buf);
    memmove(l->q + i, l->q + i + 1, (size_t)(l->n - i - 1) * sizeof *l->q);
    l->n--;
    l->acked++;
}

int tg_replay_link_poll(tg_replay_link *l, int timeout_ms)
{
    double now = tg_now();
    for (int i = 0; i < l->n; i++) {
        unacked *u = &l->q[i];
        if (u->sent == 0 || now - u->sent > l->timeout) {
            if (u->sent != 0) {
                l->resent++;
                if (now - l->last_warn > 5) {
                    tg_warn("replay: game %llu not acknowledged after %.1f s; sending again (%d waiting)",
                            (unsigned long long)u->seq, now - u->sent, l->n);
                    l->last_warn = now;
                }
            }
            int rc = try_send(l, u->buf, u->len);
            if (rc < 0)
                return -1;
            if (rc == 0)
                break; /* not connected: keep the order, try later */
            u->sent = now;
        }
    }
    zmq_pollitem_t it = {l->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : tg_fail("zmq_poll: %s", zmq_strerror(errno));
    while (rc > 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, l->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1u << 20);
        if (!e)
            tg_warn("replay: %s", tg_errmsg());
        else if (e->body_case == TG__ENVELOPE__BODY_GAME_ACK)
            ack(l, e->game_ack->seq);
        else if (e->body_case == TG__ENVELOPE__BODY_ERROR)
            tg_warn("replay answered error %d: %s", e->error->code, e->error->message ? e->error->message : "");
        tg_wire_free(e);
        zmq_msg_close(&m);
    }
    return 0;
}

int tg_replay_link_unacked(const tg_replay_link *l) { return l->n; }

void tg_replay_link_counts(const tg_replay_link *l, uint64_t *acked, uint64_t *resent)
{
    if (acked)
        *acked = l->acked;
    if (resent)
        *resent = l->resent;
}
