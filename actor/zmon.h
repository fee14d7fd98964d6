/* Connection events of a ZeroMQ socket (zmq_socket_monitor), so the actor can resend at once
 * what a restarted peer lost instead of waiting for a timeout. */
#ifndef TG_ZMON_H
#define TG_ZMON_H

/* Starts monitoring sock's connections (call before zmq_connect, so the first one is seen).
 * Returns the monitor, or NULL with a message. */
void *tg_zmon_new(void *sock);
/* Drains pending events without blocking, in order; returns how many connections were
 * established after a disconnection (re-connections). *down carries, from call to call, whether a
 * disconnection is still waiting for its connection: the first connection and a disconnection
 * drained in one call are not a re-connection (what is sent next may still be lost). */
int tg_zmon_reconnected(void *mon, int *down);
void tg_zmon_free(void *mon);

#endif
