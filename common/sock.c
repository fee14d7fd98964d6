#include "common/sock.h"

#include <czmq.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/log.h"

struct tg_sock_sec {
    int curve;
    zcert_t *server;  /* servers: full certificate; clients: public key only needed */
    zcert_t *client;
    zactor_t *auth;
};

static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static void *ctx;

static void ctx_init(void)
{
    zsys_handler_set(NULL);
    ctx = zsys_init();
}

void *tg_sock_ctx(void)
{
    pthread_once(&ctx_once, ctx_init);
    return ctx;
}

static zcert_t *load_cert(const char *dir, const char *name, int secret)
{
    char path[TG_STR * 2];
    snprintf(path, sizeof path, "%s/%s.key%s", dir, name, secret ? "_secret" : "");
    struct stat st;
    if (stat(path, &st) != 0) {
        tg_fail("CURVE certificate %s: %s (create keys with `tg keygen %s`)", path,
                strerror(errno), dir);
        return NULL;
    }
    /* zcert_load reads NAME.key_secret when it exists, else the public file */
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    zcert_t *c = zcert_load(path);
    if (!c)
        tg_fail("CURVE certificate %s: not a valid zcert file", path);
    return c;
}

tg_sock_sec *tg_sock_sec_new(const tg_config *c, int serve)
{
    tg_sock_sec *s = calloc(1, sizeof *s);
    if (!s) {
        tg_fail("out of memory");
        return NULL;
    }
    s->curve = c->security.curve;
    if (!s->curve)
        return s;
    tg_sock_ctx();
    const char *dir = c->security.keys_dir;
    if (!(s->server = load_cert(dir, "server", serve)))
        goto fail;
    if (!(s->client = load_cert(dir, "client", 1)))
        goto fail;
    if (serve) {
        char clients[TG_STR + 16];
        snprintf(clients, sizeof clients, "%s/clients", dir);
        struct stat st;
        if (stat(clients, &st) != 0 || !S_ISDIR(st.st_mode)) {
            tg_fail("CURVE allow-list directory %s is missing (tg keygen creates it)", clients);
            goto fail;
        }
        if (!(s->auth = zactor_new(zauth, NULL))) {
            tg_fail("cannot start the CURVE authenticator");
            goto fail;
        }
        if (zstr_sendx(s->auth, "CURVE", clients, NULL) != 0 || zsock_wait(s->auth) != 0) {
            tg_fail("cannot configure the CURVE authenticator");
            goto fail;
        }
    }
    return s;
fail:
    tg_sock_sec_free(s);
    return NULL;
}

void tg_sock_sec_free(tg_sock_sec *s)
{
    if (!s)
        return;
    zactor_destroy(&s->auth);
    zcert_destroy(&s->server);
    zcert_destroy(&s->client);
    free(s);
}

int tg_sock_sec_curve(const tg_sock_sec *s) { return s && s->curve; }

static void *new_sock(int type)
{
    void *sock = zmq_socket(tg_sock_ctx(), type);
    if (!sock) {
        tg_fail("zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    return sock;
}

void *tg_sock_bind(tg_sock_sec *s, int type, const char *endpoint)
{
    void *sock = new_sock(type);
    if (!sock)
        return NULL;
    if (s && s->curve) {
        int one = 1;
        zcert_apply(s->server, sock);
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
            zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "tensorgame", 10) != 0) {
            tg_fail("CURVE server options: %s", zmq_strerror(errno));
            goto fail;
        }
    }
    if (zmq_bind(sock, endpoint) != 0) {
        tg_fail("cannot bind %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return sock;
fail:
    zmq_close(sock);
    return NULL;
}

void *tg_sock_connect(tg_sock_sec *s, int type, const char *endpoint)
{
    void *sock = new_sock(type);
    if (!sock)
        return NULL;
    /* A server that refuses this client's handshake (CURVE: no key, a key not allowed) leaves the
     * socket without a peer to queue into, and a blocking send would then wait forever (`tg
     * stats` hung so): sends give up after a while and report an error instead. */
    int sndto = TG_SOCK_SEND_TIMEOUT_MS;
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &sndto, sizeof sndto);
    if (s && s->curve) {
        zcert_apply(s->client, sock);
        const char *server_key = zcert_public_txt(s->server);
        if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_key, strlen(server_key)) != 0) {
            tg_fail("CURVE client options: %s", zmq_strerror(errno));
            goto fail;
        }
    }
    if (zmq_connect(sock, endpoint) != 0) {
        tg_fail("cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        goto fail;
    }
    return sock;
fail:
    zmq_close(sock);
    return NULL;
}

int tg_sock_last_endpoint(void *sock, char *buf, size_t len)
{
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
        return tg_fail("ZMQ_LAST_ENDPOINT: %s", zmq_strerror(errno));
    return 0;
}

void tg_sock_close(void *sock)
{
    if (sock)
        zmq_close(sock);
}

int tg_sock_keygen(const char *dir, const char *name)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return tg_fail("cannot create %s: %s", dir, strerror(errno));
    zcert_t *c = zcert_new();
    if (!c)
        return tg_fail("cannot create a certificate");
    zcert_set_meta(c, "name", "%s", name);
    char path[TG_STR * 2];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    int rc = zcert_save(c, path);
    zcert_destroy(&c);
    if (rc != 0)
        return tg_fail("cannot write %s", path);
    chmod(path, 0644);
    snprintf(path, sizeof path, "%s/%s.key_secret", dir, name);
    chmod(path, 0600);
    return 0;
}
