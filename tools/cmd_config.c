/* tg config: the configuration's documentation, and checking a config file. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "tools/cmds.h"

int tg_cmd_config(int argc, char **argv)
{
    const char *use = "usage: tg config --doc\n"
                      "       tg config --check [FILE] [section.key=value | --set section.key=value ...]\n"
                      "                 [--write OUT] [--get KEY]\n"
                      "--doc prints every configuration key (markdown; docs/configuration.md is this).\n"
                      "--check loads FILE (or the defaults) and the overrides, validates them and prints\n"
                      "the finished configuration as YAML with the derived values as comments.\n"
                      "--write OUT writes it to OUT instead (atomically: a temporary file, then rename).\n"
                      "--get KEY prints only that key's value (lists as 2,2,2;3,3,3 and 7,23).\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--doc") == 0) {
        tg_config_print_doc(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "--check") != 0) {
        fputs(use, stderr);
        return 2;
    }
    /* the file is the one positional argument: hand it to tg_config_from_args as --config */
    char *args[argc + 2];
    int n = 0;
    args[n++] = argv[0];
    const char *file = NULL, *out = NULL, *get = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--write") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--get") == 0 && i + 1 < argc) {
            get = argv[++i];
        } else if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) {
            args[n++] = argv[i++];
            args[n++] = argv[i];
        } else if (argv[i][0] != '-' && !strchr(argv[i], '=')) {
            if (file) {
                fprintf(stderr, "tg config: more than one file given\n%s", use);
                return 2;
            }
            file = argv[i];
        } else {
            args[n++] = argv[i];
        }
    }
    char opt[] = "--config";
    if (file) {
        args[n++] = opt;
        args[n++] = (char *)file;
    }
    args[n] = NULL;
    tg_config c;
    int rest = tg_config_from_args(&c, n, args);
    if (rest < 0) {
        fprintf(stderr, "tg config: %s\n", tg_errmsg());
        return 2;
    }
    if (rest > 1) {
        fprintf(stderr, "tg config: unexpected argument '%s'\n%s", args[1], use);
        return 2;
    }
    if (get) {
        char buf[4096];
        if (tg_config_get(&c, get, buf, sizeof buf) != 0) {
            fprintf(stderr, "tg config: %s\n", tg_errmsg());
            return 2;
        }
        printf("%s\n", buf);
        return 0;
    }
    if (out) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp.%d", out, (int)getpid());
        if (tg_config_write(&c, tmp) != 0 || rename(tmp, out) != 0) {
            fprintf(stderr, "tg config: cannot write %s: %s\n", out, tg_errmsg());
            remove(tmp);
            return 2;
        }
        return 0;
    }
    printf("# derived: S=%d d=%d n_logits=%d |F|=%d mod2=%d\n", c.game.S, c.game.d, c.game.n_logits, c.game.F.n,
           c.game.mod2);
    if (tg_config_write(&c, "-")) {
        fprintf(stderr, "tg config: %s\n", tg_errmsg());
        return 2;
    }
    return 0;
}
