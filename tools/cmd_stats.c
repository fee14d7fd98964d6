/* tg stats: asks a running server (replay, or the learner's inference service) for its
 * statistics over the wire protocol and prints them, one "key value" per line. */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "common/config.h"
#include "common/err.h"
#include "common/sock.h"
#include "common/wire.h"
#include "tools/cmds.h"

int tg_cmd_stats(int argc, char **argv)
{
    tg_config cfg;
    tg_config_defaults(&cfg);
    double timeout_s = 5;
    const char *endpoint = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tg stats ENDPOINT [--config FILE] [--timeout S] [key=value ...]\n\n"
                   "Asks the server at ENDPOINT (e.g. tcp://127.0.0.1:5557, the replay server)\n"
                   "for its statistics and prints them. With --config, CURVE settings come from\n"
                   "the run's config (security.*). Exit status 1 if no answer in time.\n");
            return 0;
        }
    }
    argc = tg_config_from_args(&cfg, argc, argv);
    if (argc < 0)
        return fprintf(stderr, "tg stats: %s\n", tg_errmsg()), 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atof(argv[++i]);
        else if (argv[i][0] == '-')
            return fprintf(stderr, "tg stats: unknown option %s (see --help)\n", argv[i]), 2;
        else
            endpoint = argv[i];
    }
    if (!endpoint)
        endpoint = cfg.replay.connect;
    int rc = 1;
    tg_sock_sec *sec = tg_sock_sec_new(&cfg, 0);
    void *sock = sec ? tg_sock_connect(sec, ZMQ_DEALER, endpoint) : NULL;
    Tg__Envelope *reply = NULL;
    if (!sock) {
        fprintf(stderr, "tg stats: %s\n", tg_errmsg());
        goto out;
    }
    int sndto = (int)(timeout_s * 1000);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &sndto, sizeof sndto);
    Tg__Envelope env = TG__ENVELOPE__INIT;
    Tg__StatsRequest req = TG__STATS_REQUEST__INIT;
    env.body_case = TG__ENVELOPE__BODY_STATS_REQUEST;
    env.stats_request = &req;
    if (tg_wire_send(sock, NULL, 0, &env) != 0) { /* e.g. the server refused the handshake */
        fprintf(stderr, "tg stats: no answer from %s within %.0f s (%s)\n", endpoint, timeout_s, tg_errmsg());
        goto out;
    }
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, (long)(timeout_s * 1000)) <= 0) {
        fprintf(stderr, "tg stats: no answer from %s within %.0f s\n", endpoint, timeout_s);
        goto out;
    }
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock, 0) < 0) {
        zmq_msg_close(&msg);
        fprintf(stderr, "tg stats: receive failed: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    reply = tg_wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), TG_WIRE_MAX_DEFAULT);
    zmq_msg_close(&msg);
    if (!reply) {
        fprintf(stderr, "tg stats: bad reply: %s\n", tg_errmsg());
        goto out;
    }
    if (reply->body_case == TG__ENVELOPE__BODY_ERROR) {
        fprintf(stderr, "tg stats: server error %d: %s\n", reply->error->code,
                reply->error->message);
        goto out;
    }
    if (reply->body_case != TG__ENVELOPE__BODY_STATS) {
        fprintf(stderr, "tg stats: unexpected reply (body %d)\n", (int)reply->body_case);
        goto out;
    }
    for (size_t i = 0; i < reply->stats->n_keys && i < reply->stats->n_values; i++)
        printf("%s %.17g\n", reply->stats->keys[i], reply->stats->values[i]);
    if (reply->stats->text && reply->stats->text[0])
        printf("%s\n", reply->stats->text);
    rc = 0;
out:
    tg_wire_free(reply);
    tg_sock_close(sock);
    tg_sock_sec_free(sec);
    return rc;
}
