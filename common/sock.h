/* ZeroMQ sockets of every process, with optional CURVE security.
 *
 * All sockets of a process live in one libzmq context (CZMQ's, so that CZMQ's ZAP authenticator
 * sees them). With security.curve on, servers (sockets other hosts connect to: replay, the
 * learner's inference ROUTER and weights PUB) use the server certificate of security.keys_dir and
 * accept only clients whose public certificates are in keys_dir/clients/ (an allow-list; files
 * can be added while the run goes on); clients use keys_dir/client.key_secret and the server's
 * public key. `tg keygen` writes these files. With curve off, sockets are plain TCP/IPC.
 *
 *   keys_dir/server.key, server.key_secret   the servers' certificate (same on every host)
 *   keys_dir/client.key, client.key_secret   this host's client certificate
 *   keys_dir/clients/NAME.key                public certificates of allowed clients */
#ifndef TG_SOCK_H
#define TG_SOCK_H

#include "common/config.h"

typedef struct tg_sock_sec tg_sock_sec; /* opaque */

/* The process-wide libzmq context (created on first use; CZMQ's signal handler disabled, the
 * processes handle SIGINT/SIGTERM themselves). */
void *tg_sock_ctx(void);

/* Security settings from the config; with curve on, loads the certificates (error naming the
 * missing file) and, when serve != 0, starts the authenticator with the allow-list. */
tg_sock_sec *tg_sock_sec_new(const tg_config *c, int serve);
void tg_sock_sec_free(tg_sock_sec *s);
int tg_sock_sec_curve(const tg_sock_sec *s);

/* A socket of `type` (ZMQ_ROUTER, ...) bound to endpoint as a server, or connected as a client;
 * linger set to 0 so that shutdown never blocks on a vanished peer. A client's blocking sends
 * give up after TG_SOCK_SEND_TIMEOUT_MS (EAGAIN) where no peer takes them (a server that refused
 * the handshake). NULL with a message. */
#define TG_SOCK_SEND_TIMEOUT_MS 2000
void *tg_sock_bind(tg_sock_sec *s, int type, const char *endpoint);
void *tg_sock_connect(tg_sock_sec *s, int type, const char *endpoint);
/* The endpoint a socket actually bound (resolves tcp://127.0.0.1:* to the chosen port). */
int tg_sock_last_endpoint(void *sock, char *buf, size_t len);
void tg_sock_close(void *sock);

/* Writes a new certificate pair as DIR/NAME.key and DIR/NAME.key_secret (zcert format). */
int tg_sock_keygen(const char *dir, const char *name);

#endif
