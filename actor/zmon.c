/* Socket connection events through libzmq's monitor (a PAIR socket on an inproc endpoint). */
#include "actor/zmon.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/err.h"
#include "common/sock.h"

void *tg_zmon_new(void *sock)
{
    static atomic_int counter;
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://tg-actor-monitor-%d", atomic_fetch_add(&counter, 1));
    if (zmq_socket_monitor(sock, ep, ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED) != 0) {
        tg_fail("zmq_socket_monitor: %s", zmq_strerror(errno));
        return NULL;
    }
    void *mon = zmq_socket(tg_sock_ctx(), ZMQ_PAIR);
    if (!mon) {
        tg_fail("zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(mon, ep) != 0) {
        tg_fail("connecting the monitor %s: %s", ep, zmq_strerror(errno));
        zmq_close(mon);
        return NULL;
    }
    return mon;
}

int tg_zmon_reconnected(void *mon, int *down)
{
    int n = 0;
    if (!mon)
        return 0;
    for (;;) {
        /* an event is two frames: [uint16 event, uint32 value] and the peer's address */
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return n;
        }
        uint16_t ev = 0;
        if (zmq_msg_size(&m) >= 2)
            memcpy(&ev, zmq_msg_data(&m), 2);
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, mon, 0) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == ZMQ_EVENT_CONNECTED && *down) {
            n++;
            *down = 0;
        } else if (ev == ZMQ_EVENT_DISCONNECTED) {
            *down = 1;
        }
    }
}

void tg_zmon_free(void *mon)
{
    if (mon)
        zmq_close(mon);
}
