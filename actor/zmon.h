/* Connection events of a ZeroMQ socket (zmq_socket_monitor), so the actor can resend at once
 * what a restarted peer lost instead of waiting for a timeout. */
#ifndef TG_ZMON_H
#define TG_ZMON_H

/* Starts monitoring sock's connections (call before zmq_connect, so the first one is seen).
 * Returns the monitor, or NULL with a message. */
void *tg_zmon_new(void *sock);
/* Drains pending events without blocking; returns how many connections were (re-)established
 * since the last call, and adds the disconnections to *dropped when non-NULL. */
int tg_zmon_connected(void *mon, int *dropped);
void tg_zmon_free(void *mon);

#endif
