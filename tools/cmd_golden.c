/* tg golden FILE: the network against golden vectors of ../shared/spec/net_reference.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "learner/golden.h"
#include "tools/cmds.h"

static void golden_usage(FILE *out)
{
    fprintf(out,
            "usage: tg golden [--backend cpu|cuda|auto] [--threads N] [--verbose] FILE\n\n"
            "Checks the network against a golden file written by net_reference.py (layout of\n"
            "../shared/spec/golden_small.h5: config in the root attributes, params/, grads/,\n"
            "inputs/, outputs/). Runs forward, losses, backward and greedy decoding in fp32 and\n"
            "prints the largest relative error (max |a - b| / max |b|) of each output, loss and\n"
            "gradient group. A file with a missing, extra or mis-shaped tensor is refused.\n\n"
            "  --backend B   network backend (default cpu)\n"
            "  --threads N   CPU threads (default 0 = all cores)\n"
            "  --tol-out X   tolerance for outputs and losses (default 1e-4)\n"
            "  --tol-grad X  tolerance for gradients (default 1e-3)\n"
            "  --verbose     also print every gradient tensor's error\n\n"
            "exit status: 0 all within tolerance and greedy tokens equal, 1 mismatch,\n"
            "2 usage error or unreadable / malformed file.\n");
}

int tg_cmd_golden(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        golden_usage(stdout);
        return 0;
    }
    const char *backend = "cpu", *path = NULL;
    int threads = 0, verbose = 0;
    tg_golden_tol tol = {1e-4, 1e-4, 1e-3};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc)
            backend = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tol-out") && i + 1 < argc)
            tol.outputs = tol.losses = atof(argv[++i]);
        else if (!strcmp(argv[i], "--tol-grad") && i + 1 < argc)
            tol.grads = atof(argv[++i]);
        else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
            verbose = 1;
        else if (argv[i][0] == '-' || path) {
            golden_usage(stderr);
            return 2;
        } else
            path = argv[i];
    }
    if (!path) {
        golden_usage(stderr);
        return 2;
    }
    tg_golden_result res;
    if (tg_golden_check(path, backend, threads, &tol, stdout, verbose, &res)) {
        fprintf(stderr, "tg golden: %s\n", tg_errmsg());
        return 2;
    }
    return res.pass ? 0 : 1;
}
