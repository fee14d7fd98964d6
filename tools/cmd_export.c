/* tg export: a factorization as standalone C or CUDA source (fastmm/fastmm_export.c). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "fastmm/fastmm.h"
#include "tools/cmds.h"

int tg_cmd_export(int argc, char **argv)
{
    const char *use =
        "usage: tg export --format c|cuda [--name NAME] [-o OUT] FILE KEY\n"
        "Writes readable standalone source of the algorithm KEY of FILE (HDF5 or JSON; FILE\n"
        "'builtin' with KEY strassen or naive:N,M,P): C = A B for row-major fp32 matrices split\n"
        "into the algorithm's block grid, one block product per term (cblas_sgemm for c,\n"
        "cublasSgemm for cuda), the block equations in its leading comment.\n"
        "  --format c|cuda  the language (required)\n"
        "  --name NAME      the function's name (default fastmm_NxMxP_rR)\n"
        "  -o OUT           write to OUT instead of standard output\n"
        "The factorization is verified exactly first. Exit status 0, or 2 on a usage or input error.\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    static const struct option lo[] = {{"format", required_argument, 0, 'f'},
                                       {"name", required_argument, 0, 'n'},
                                       {0, 0, 0, 0}};
    const char *format = NULL, *name = NULL, *out = NULL;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
        switch (o) {
        case 'f': format = optarg; break;
        case 'n': name = optarg; break;
        case 'o': out = optarg; break;
        default: fputs(use, stderr); return 2;
        }
    }
    if (!format || argc - optind != 2) {
        fputs(use, stderr);
        return 2;
    }
    tg_fact *f = fastmm_load(argv[optind], argv[optind + 1]);
    if (!f) {
        fprintf(stderr, "tg export: %s\n", tg_errmsg());
        return 2;
    }
    char defname[64];
    tg_dims d = tg_fact_dims(f);
    snprintf(defname, sizeof defname, "fastmm_%dx%dx%d_r%d", d.n, d.m, d.p, tg_fact_rank(f));
    char *src = fastmm_export(f, format, name ? name : defname);
    tg_fact_free(f);
    if (!src) {
        fprintf(stderr, "tg export: %s\n", tg_errmsg());
        return 2;
    }
    int rc = 0;
    FILE *fo = out ? fopen(out, "w") : stdout;
    if (!fo || fputs(src, fo) < 0 || (out && fclose(fo))) {
        fprintf(stderr, "tg export: cannot write %s\n", out ? out : "standard output");
        rc = 2;
    }
    free(src);
    return rc;
}
