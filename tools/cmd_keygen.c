/* tg keygen: CURVE certificates for a cluster (see common/sock.h for the layout). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/sock.h"
#include "tools/cmds.h"

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return tg_fail("cannot read %s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return tg_fail("cannot write %s: %s", to, strerror(errno));
    }
    char buf[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = tg_fail("cannot write %s", to);
    fclose(in);
    if (fclose(out) != 0 && rc == 0)
        rc = tg_fail("cannot write %s", to);
    return rc;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int tg_cmd_keygen(int argc, char **argv)
{
    const char *dir = NULL, *client = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: tg keygen DIR [--client NAME]\n\n"
                   "Writes CURVE certificates for a cluster into DIR:\n"
                   "  server.key, server.key_secret   servers' certificate (replay, learner)\n"
                   "  client.key, client.key_secret   this host's client certificate\n"
                   "  clients/client.key              the allow-list the servers check\n"
                   "Existing certificates are kept. --client NAME adds a certificate for another\n"
                   "host (DIR/NAME.key_secret, to copy there as client.key_secret) and allows it.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--client") && i + 1 < argc)
            client = argv[++i];
        else if (argv[i][0] == '-')
            return fprintf(stderr, "tg keygen: unknown option %s (see --help)\n", argv[i]), 2;
        else if (!dir)
            dir = argv[i];
        else
            return fprintf(stderr, "tg keygen: one directory only (see --help)\n"), 2;
    }
    if (!dir)
        return fprintf(stderr, "tg keygen: which directory? (see --help)\n"), 2;
    char path[1024], allowed[1024];
    snprintf(path, sizeof path, "%s/clients", dir);
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || (mkdir(path, 0755) != 0 && errno != EEXIST))
        return fprintf(stderr, "tg keygen: cannot create %s: %s\n", path, strerror(errno)), 1;
    const char *names[2] = {"server", client ? client : "client"};
    for (int k = 0; k < 2; k++) {
        if (k == 0 && client)
            continue; /* adding a client: keep the server's certificate */
        snprintf(path, sizeof path, "%s/%s.key_secret", dir, names[k]);
        if (exists(path)) {
            printf("kept %s\n", path);
        } else {
            if (tg_sock_keygen(dir, names[k]) != 0)
                return fprintf(stderr, "tg keygen: %s\n", tg_errmsg()), 1;
            printf("wrote %s/%s.key and %s\n", dir, names[k], path);
        }
    }
    const char *name = client ? client : "client";
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(allowed, sizeof allowed, "%s/clients/%s.key", dir, name);
    if (copy_file(path, allowed) != 0)
        return fprintf(stderr, "tg keygen: %s\n", tg_errmsg()), 1;
    printf("allowed %s\n", allowed);
    return 0;
}
