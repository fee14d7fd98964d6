/* Acknowledged delivery of finished games to the replay server (see replay_link.h). */
#include "actor/replay_link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/log.h"
#include "common/sock.h"
#include "actor/zmon.h"

typedef struct unacked {
    uint64_t seq;
    uint8_t *buf;
    size_t len;
    double sent; /* 0: not handed to ZeroMQ yet */
    int tries;
} unacked;

/* One DEALER and its messages awaiting acknowledgement. Games and discoveries use separate
 * sockets, so an acknowledgement without a sequence number is never mistaken for the other kind
 * (replay acknowledges discoveries at once, games when durable). */
typedef struct channel {
    void *sock;
    void *mon;       /* connection events: resend at once after a reconnection */
    int down;        /* a disconnection not yet followed by a connection */
    const char *what;
    unacked *q; /* oldest first */
    int n, cap;
    uint64_t acked, resent, dropped;
    double last_warn;
} channel;

#define MAX_TRIES 10 /* a message sent this often without an ack is dropped (replay rejects it) */

struct tg_replay_link {
    tg_sock_sec *sec;
    double timeout;
    uint64_t next_seq;
    channel games, disc;
};

static int try_send(void *sock, const uint8_t *buf, size_t len)
{
    for (;;) {
        if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) >= 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        return tg_fail("sending to replay: %s", zmq_strerror(errno));
    }
}

static void *connect_replay(tg_sock_sec *sec, const char *endpoint, void **mon)
{
    void *sock = tg_sock_connect(sec, ZMQ_DEALER, endpoint);
    if (!sock)
        return NULL;
    /* the reconnect backoff and heartbeat options must precede the connection: connect again */
    (void)zmq_disconnect(sock, endpoint); /* connected again below, with the options */
    int one = 1, ivl = 100, ivl_max = 5000, hb = 1000, hb_to = 5000;
    if (zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_to, sizeof hb_to) != 0) {
        tg_fail("replay socket options: %s", zmq_strerror(errno));
        tg_sock_close(sock);
        return NULL;
    }
    *mon = tg_zmon_new(sock);
    if (!*mon || zmq_connect(sock, endpoint) != 0) {
        if (*mon)
            tg_fail("cannot connect to replay at %s: %s", endpoint, zmq_strerror(errno));
        tg_sock_close(sock);
        tg_zmon_free(*mon);
        *mon = NULL;
        return NULL;
    }
    return sock;
}

static void channel_free(channel *ch)
{
    for (int i = 0; i < ch->n; i++)
        free(ch->q[i].buf);
    free(ch->q);
    tg_sock_close(ch->sock);
    tg_zmon_free(ch->mon);
}

/* Queues an encoded message (takes buf) and tries to send it. */
static int channel_push(channel *ch, uint64_t seq, uint8_t *buf, size_t len)
{
    if (ch->n == ch->cap) {
        int cap = ch->cap ? 2 * ch->cap : 16;
        unacked *q = realloc(ch->q, (size_t)cap * sizeof *q);
        if (!q) {
            free(buf);
            return tg_fail("out of memory");
        }
        ch->q = q;
        ch->cap = cap;
    }
    unacked *u = &ch->q[ch->n++];
    u->seq = seq;
    u->buf = buf;
    u->len = len;
    u->tries = 0;
    u->sent = 0;
    int rc = try_send(ch->sock, buf, len);
    if (rc < 0)
        return -1;
    if (rc) {
        u->sent = tg_now();
        u->tries = 1;
    }
    return 0;
}

static void channel_remove(channel *ch, int i)
{
    free(ch->q[i].buf);
    memmove(ch->q + i, ch->q + i + 1, (size_t)(ch->n - i - 1) * sizeof *ch->q);
    ch->n--;
}

static void channel_ack(channel *ch, uint64_t seq)
{
    int i = 0;
    if (ch->n == 0)
        return;
    if (seq != 0) { /* a server that echoes Game.seq; else the oldest */
        while (i < ch->n && ch->q[i].seq != seq)
            i++;
        if (i == ch->n)
            return; /* duplicate ack of a resent message */
    }
    channel_remove(ch, i);
    ch->acked++;
}

static int channel_poll(channel *ch, double timeout, int wait_ms)
{
    double now = tg_now();
    if (tg_zmon_reconnected(ch->mon, &ch->down) > 0) {
        /* the server came back (restarted?): what it has not acknowledged may be lost */
        int n = 0;
        for (int i = 0; i < ch->n; i++)
            if (ch->q[i].sent != 0) {
                ch->q[i].sent = 0;
                n++;
            }
        ch->resent += (uint64_t)n;
        if (n)
            tg_info("replay reconnected: sending %d unacknowledged %s%s again", n, ch->what, n > 1 ? "s" : "");
    }
    for (int i = 0; i < ch->n; i++) {
        unacked *u = &ch->q[i];
        if (u->sent != 0 && now - u->sent <= timeout)
            continue;
        if (u->sent != 0 && u->tries >= MAX_TRIES) {
            ch->dropped++;
            tg_error("replay: %s %llu not acknowledged after %d sends; dropped", ch->what,
                     (unsigned long long)u->seq, u->tries);
            channel_remove(ch, i--);
            continue;
        }
        if (u->sent != 0) {
            ch->resent++;
            if (now - ch->last_warn > 5) {
                tg_warn("replay: %s %llu not acknowledged after %.1f s; sending again (%d waiting)", ch->what,
                        (unsigned long long)u->seq, now - u->sent, ch->n);
                ch->last_warn = now;
            }
        }
        int rc = try_send(ch->sock, u->buf, u->len);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break; /* not connected: keep the order, try later */
        u->sent = now;
        u->tries++;
    }
    zmq_pollitem_t it = {ch->sock, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(&it, 1, wait_ms);
    if (rc < 0)
        return errno == EINTR ? 0 : tg_fail("zmq_poll: %s", zmq_strerror(errno));
    while (rc > 0) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, ch->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        Tg__Envelope *e = tg_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1u << 20);
        if (!e)
            tg_warn("replay: %s", tg_errmsg());
        else if (e->body_case == TG__ENVELOPE__BODY_GAME_ACK)
            channel_ack(ch, e->game_ack->seq);
        else if (e->body_case == TG__ENVELOPE__BODY_ERROR)
            tg_warn("replay answered a %s with error %d: %s", ch->what, e->error->code,
                    e->error->message ? e->error->message : "");
        tg_wire_free(e);
        zmq_msg_close(&m);
    }
    return 0;
}

tg_replay_link *tg_replay_link_new(const tg_config *c, const char *endpoint, double ack_timeout_s)
{
    tg_replay_link *l = calloc(1, sizeof *l);
    if (!l) {
        tg_fail("out of memory");
        return NULL;
    }
    l->timeout = ack_timeout_s > 0 ? ack_timeout_s : 30;
    l->games.what = "game";
    l->disc.what = "discovery";
    l->sec = tg_sock_sec_new(c, 0);
    if (!l->sec || !(l->games.sock = connect_replay(l->sec, endpoint, &l->games.mon)) ||
        !(l->disc.sock = connect_replay(l->sec, endpoint, &l->disc.mon))) {
        tg_replay_link_free(l);
        return NULL;
    }
    return l;
}

void tg_replay_link_free(tg_replay_link *l)
{
    if (!l)
        return;
    channel_free(&l->games);
    channel_free(&l->disc);
    tg_sock_sec_free(l->sec);
    free(l);
}

int tg_replay_link_send_game(tg_replay_link *l, Tg__Game *g)
{
    g->seq = ++l->next_seq;
    Tg__Envelope e = TG__ENVELOPE__INIT;
    e.body_case = TG__ENVELOPE__BODY_GAME;
    e.game = g;
    uint8_t *buf;
    size_t len = tg_wire_encode(&e, &buf);
    if (!buf)
        return -1;
    return channel_push(&l->games, g->seq, buf, len);
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
    return channel_push(&l->disc, ++l->next_seq, buf, len);
}

int tg_replay_link_poll(tg_replay_link *l, int timeout_ms)
{
    if (channel_poll(&l->disc, l->timeout, 0) != 0)
        return -1;
    return channel_poll(&l->games, l->timeout, timeout_ms);
}

int tg_replay_link_unacked(const tg_replay_link *l) { return l->games.n + l->disc.n; }

void tg_replay_link_counts(const tg_replay_link *l, uint64_t *acked, uint64_t *resent)
{
    if (acked)
        *acked = l->games.acked;
    if (resent)
        *resent = l->games.resent + l->disc.resent;
}
