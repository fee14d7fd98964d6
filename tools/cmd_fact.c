/* tg verify, list, show, convert: factorization files (common/factio.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/fact.h"
#include "common/factio.h"
#include "tools/cmds.h"

static void size_str(const tg_fact *f, char *buf, size_t len)
{
    tg_dims d = tg_fact_dims(f);
    snprintf(buf, len, "%dx%dx%d", d.n, d.m, d.p);
}

/* Reads the whole file, or only the keys named on the command line (in that order). */
static int read_selected(const char *path, int nsel, char **sel, tg_fact_list *l)
{
    if (nsel == 0)
        return tg_factio_read(path, l);
    for (int s = 0; s < nsel; s++) {
        tg_fact *f = tg_factio_read_key(path, sel[s]);
        if (!f || tg_fact_list_add(l, sel[s], f)) {
            tg_fact_free(f);
            tg_fact_list_free(l);
            return -1;
        }
    }
    return 0;
}

int tg_cmd_verify(int argc, char **argv)
{
    const char *use = "usage: tg verify FILE [KEY...] [--mod2 | --integer]\n"
                      "Verifies every factorization in FILE (HDF5 or JSON), or the KEYs named, exactly:\n"
                      "sum_r u_r (x) v_r (x) w_r = D^3 T(n,m,p), over the integers or modulo 2.\n"
                      "Prints one line per key: size, rank, arithmetic, and ok or the first wrong entry.\n"
                      "  --mod2     verify every key modulo 2\n"
                      "  --integer  verify every key over the integers (also the mod-2 ones)\n"
                      "  (default: each key in the arithmetic recorded with it)\n"
                      "Exit status: 0 if every one verifies, 1 if one does not, 2 on a usage or file error.\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    int force = -1; /* -1: own arithmetic, 0: integer, 1: mod 2 */
    const char *path = NULL;
    char **sel = calloc((size_t)argc, sizeof *sel);
    int nsel = 0;
    if (!sel) {
        fprintf(stderr, "tg verify: out of memory\n");
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mod2") == 0)
            force = 1;
        else if (strcmp(argv[i], "--integer") == 0)
            force = 0;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "tg verify: unknown option '%s'\n%s", argv[i], use);
            free(sel);
            return 2;
        } else if (!path)
            path = argv[i];
        else
            sel[nsel++] = argv[i];
    }
    if (!path) {
        fputs(use, stderr);
        free(sel);
        return 2;
    }
    tg_fact_list l = {0};
    if (read_selected(path, nsel, sel, &l)) {
        fprintf(stderr, "tg verify: %s\n", tg_errmsg());
        tg_fact_list_free(&l);
        free(sel);
        return 2;
    }
    free(sel);
    int bad = 0;
    for (int i = 0; i < l.n; i++) {
        const tg_fact *f = l.facts[i];
        int mod2 = force >= 0 ? force : tg_fact_arith(f) == TG_ARITH_MOD2;
        char sz[32], den[32] = "";
        size_str(f, sz, sizeof sz);
        if (tg_fact_denom(f) != 1)
            snprintf(den, sizeof den, "denominator %lld", (long long)tg_fact_denom(f));
        tg_fact_mismatch mm;
        int r = tg_fact_verify(f, mod2, &mm);
        printf("%-10s %-9s rank %4d  %-7s %-14s ", l.keys[i], sz, tg_fact_rank(f), mod2 ? "mod2" : "integer", den);
        if (r == 1) {
            printf("ok\n");
        } else if (r == 0) {
            char msg[256];
            tg_fact_mismatch_str(f, &mm, msg, sizeof msg);
            printf("FAIL: %s\n", msg);
            bad++;
        } else {
            printf("ERROR: %s\n", tg_errmsg());
            bad++;
        }
    }
    printf("%d of %d verified%s\n", l.n - bad, l.n, bad ? "" : ": all ok");
    tg_fact_list_free(&l);
    return bad ? 1 : 0;
}

static long long nonzeros(const tg_fact *f)
{
    tg_dims d = tg_fact_dims(f);
    size_t r = (size_t)tg_fact_rank(f);
    const int64_t *a[3] = {tg_fact_cu(f), tg_fact_cv(f), tg_fact_cw(f)};
    size_t len[3] = {r * (size_t)(d.n * d.m), r * (size_t)(d.m * d.p), r * (size_t)(d.p * d.n)};
    long long nz = 0;
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < len[k]; i++)
            nz += a[k][i] != 0;
    return nz;
}

int tg_cmd_list(int argc, char **argv)
{
    const char *use = "usage: tg list FILE\n"
                      "Lists the factorizations in FILE (HDF5 or JSON): key, size n x m x p, rank,\n"
                      "arithmetic, common denominator, non-zero coefficients and the largest |coefficient|.\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(use, stderr);
        return 2;
    }
    tg_fact_list l = {0};
    if (tg_factio_read(argv[1], &l)) {
        fprintf(stderr, "tg list: %s\n", tg_errmsg());
        return 2;
    }
    printf("%-10s %-9s %5s  %-7s %5s %9s %7s\n", "key", "size", "rank", "arith", "denom", "nonzeros", "max|c|");
    for (int i = 0; i < l.n; i++) {
        char sz[32];
        size_str(l.facts[i], sz, sizeof sz);
        printf("%-10s %-9s %5d  %-7s %5lld %9lld %7lld\n", l.keys[i], sz, tg_fact_rank(l.facts[i]),
               tg_arith_name(tg_fact_arith(l.facts[i])), (long long)tg_fact_denom(l.facts[i]),
               nonzeros(l.facts[i]), (long long)tg_fact_max_abs(l.facts[i]));
    }
    printf("%d factorizations\n", l.n);
    tg_fact_list_free(&l);
    return 0;
}

int tg_cmd_show(int argc, char **argv)
{
    const char *use = "usage: tg show FILE KEY\n"
                      "Prints factorization KEY of FILE as an algorithm: the products m1..mR of sums of\n"
                      "entries of A (n x m) and B (m x p), then each entry of C = AB as a sum of products.\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    if (argc != 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        fputs(use, stderr);
        return 2;
    }
    tg_fact *f = tg_factio_read_key(argv[1], argv[2]);
    if (!f) {
        fprintf(stderr, "tg show: %s\n", tg_errmsg());
        return 2;
    }
    char *eq = tg_fact_equations(f);
    if (!eq) {
        fprintf(stderr, "tg show: %s\n", tg_errmsg());
        tg_fact_free(f);
        return 2;
    }
    tg_dims d = tg_fact_dims(f);
    printf("# %s: C = AB with A %dx%d, B %dx%d in %d multiplications (%s", argv[2], d.n, d.m, d.m, d.p,
           tg_fact_rank(f), tg_arith_name(tg_fact_arith(f)));
    if (tg_fact_denom(f) != 1)
        printf(", coefficients over %lld", (long long)tg_fact_denom(f));
    printf(")\n%s", eq);
    free(eq);
    tg_fact_free(f);
    return 0;
}

int tg_cmd_convert(int argc, char **argv)
{
    const char *use = "usage: tg convert IN OUT [KEY...]\n"
                      "Converts a factorization file between HDF5 and JSON: IN is read by content, OUT is\n"
                      "written as JSON if its name ends in .json, else HDF5 (replaced atomically). With\n"
                      "KEYs, only those are written, in that order.\n";
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    if (argc < 3 || argv[1][0] == '-' || argv[2][0] == '-') {
        fputs(use, stderr);
        return 2;
    }
    tg_fact_list l = {0};
    if (read_selected(argv[1], argc - 3, argv + 3, &l) || tg_factio_write(argv[2], &l)) {
        fprintf(stderr, "tg convert: %s\n", tg_errmsg());
        tg_fact_list_free(&l);
        return 2;
    }
    printf("%s: %d factorizations\n", argv[2], l.n);
    tg_fact_list_free(&l);
    return 0;
}
