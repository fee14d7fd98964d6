/* Checking the network against golden vectors written by ../shared/spec/net_reference.py
 * (`python3 net_reference.py golden OUT.h5`): any config stored in the file's attributes.
 * Runs forward, losses, backward and greedy decoding on the chosen backend and compares. */
#ifndef TG_GOLDEN_H
#define TG_GOLDEN_H

#include <stdio.h>

typedef struct tg_golden_tol {
    double outputs;  /* torso, logits, quantiles, greedy quantiles (1e-4) */
    double losses;   /* loss_total / policy / value (1e-4) */
    double grads;    /* every gradient group (1e-3) */
} tg_golden_tol;

typedef struct tg_golden_result {
    double worst_output, worst_loss, worst_grad; /* largest relative errors */
    int tokens_equal;                            /* greedy tokens identical */
    int pass;
} tg_golden_result;

/* Relative error of a group: max |a - b| / max |b| (absolute when b is all zero). */
double tg_rel_err(const float *a, const double *b, size_t n);

/* Loads `path`, refusing a missing, extra or mis-shaped tensor (named in the message), runs
 * the network on `backend` with `threads`, prints one line per output, loss and gradient group
 * to `report` (NULL: quiet; verbose: also every gradient tensor). Returns 0 when the file was
 * checked (res->pass says whether it matched), -1 with a message when it could not be. */
int tg_golden_check(const char *path, const char *backend, int threads,
                    const tg_golden_tol *tol, FILE *report, int verbose, tg_golden_result *res);

#endif
