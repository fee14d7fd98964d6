/* tg bench net: network training and evaluation throughput on random data. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "learner/net.h"
#include "tools/cmds.h"

/* CPU seconds of the whole process: on a shared machine, wall time includes other programs'
 * time slices; per-thread CPU time is the figure that does not (printed beside wall time). */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void bench_net_usage(FILE *out)
{
    fprintf(out,
            "usage: tg bench net [--config NAME] [key=value ...] [--backend B] [--threads N]\n"
            "                    [--batch B] [--eval-batch N] [--samples K] [--steps N]\n\n"
            "Trains and evaluates the network on random data and prints train samples/s\n"
            "(forward, backward, AdamW) and evaluation positions/s (torso once per position, K\n"
            "actions sampled with the KV cache) and greedy positions/s.\n\n"
            "  --config NAME   golden, tiny, cpu-small (default), paper-S4, paper-S9, small-S9\n"
            "  key=value       override a network dimension (S=9, c=128, layers=4, ...)\n"
            "  --backend B     cpu (default), cuda or auto\n"
            "  --threads N     CPU threads (default 0 = all cores)\n"
            "  --batch B       training batch (default: the preset's)\n"
            "  --eval-batch N  positions per evaluation call (default: the training batch)\n"
            "  --samples K     actions sampled per position (default 32)\n"
            "  --steps N       timed training steps and evaluation calls (default 10)\n"
            "  --only WHAT     train, eval or greedy: time only that part (for profiling)\n");
}

int tg_bench_net(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        bench_net_usage(stdout);
        return 0;
    }
    const char *preset = "cpu-small", *backend = "cpu", *only = NULL;
    int threads = 0, batch = 0, ebatch = 0, K = 32, steps = 10;
    tg_net_config cfg;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            preset = argv[i + 1];
    int pbatch;
    if (tg_net_config_preset(preset, &cfg, &pbatch)) {
        fprintf(stderr, "tg bench net: %s\n", tg_errmsg());
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--config") && more)
            i++;
        else if (!strcmp(a, "--backend") && more)
            backend = argv[++i];
        else if (!strcmp(a, "--threads") && more)
            threads = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && more)
            batch = atoi(argv[++i]);
        else if (!strcmp(a, "--eval-batch") && more)
            ebatch = atoi(argv[++i]);
        else if (!strcmp(a, "--samples") && more)
            K = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && more)
            steps = atoi(argv[++i]);
        else if (!strcmp(a, "--only") && more)
            only = argv[++i];
        else if (strchr(a, '=') && a[0] != '-') {
            if (tg_net_config_set(&cfg, a)) {
                fprintf(stderr, "tg bench net: %s\n", tg_errmsg());
                return 2;
            }
        } else {
            bench_net_usage(stderr);
            return 2;
        }
    }
    if (!batch)
        batch = pbatch;
    if (!ebatch)
        ebatch = batch;
    if (batch < 1 || ebatch < 1 || K < 1 || steps < 1) {
        fprintf(stderr, "tg bench net: batch, eval batch, samples and steps must be >= 1\n");
        return 2;
    }
    int maxb = batch > ebatch ? batch : ebatch;
    tg_net *net = tg_net_new(&cfg, backend, maxb, threads, 1);
    if (!net) {
        fprintf(stderr, "tg bench net: %s\n", tg_errmsg());
        return 2;
    }
    int S = cfg.S, L = cfg.n_steps;
    size_t nt = (size_t)maxb * cfg.T * S * S * S;
    float *tensors = malloc(nt * sizeof *tensors);
    float *scalars = malloc((size_t)maxb * cfg.n_scalars * sizeof *scalars);
    float *returns = malloc((size_t)maxb * sizeof *returns);
    int32_t *tokens = malloc((size_t)maxb * L * sizeof *tokens);
    int32_t *stok = malloc((size_t)ebatch * K * L * sizeof *stok);
    float *value = malloc((size_t)ebatch * sizeof *value);
    int rc = 2;
    if (!tensors || !scalars || !returns || !tokens || !stok || !value) {
        fprintf(stderr, "tg bench net: out of memory\n");
        goto out;
    }
    tg_rng r;
    tg_rng_seed(&r, 7, 0);
    for (size_t i = 0; i < nt; i++)
        tensors[i] = (float)((int)tg_rng_below(&r, 5) - 2);
    for (int i = 0; i < maxb * cfg.n_scalars; i++)
        scalars[i] = (float)tg_rng_uniform(&r);
    for (int i = 0; i < maxb; i++)
        returns[i] = -(float)(1 + tg_rng_below(&r, 29));
    for (int i = 0; i < maxb * L; i++)
        tokens[i] = (int32_t)tg_rng_below(&r, (uint32_t)cfg.n_logits);
    tg_opt_config opt;
    tg_opt_config_default(&opt);
    opt.lr = 1e-4;
    opt.weight_decay = 1e-5;
    tg_net_set_opt(net, &opt);
    char cs[512];
    tg_net_config_format(&cfg, cs, sizeof cs);
    printf("net bench: backend %s, threads %d, OpenBLAS core %s, config %s (%s), %zu parameters\n",
           tg_net_backend(net), threads, openblas_get_corename(), preset, cs, tg_net_n_params(net));
    tg_batch_view bv = {.B = batch, .tensors = tensors, .scalars = scalars, .tokens = tokens,
                        .returns = returns};
    tg_train_stats st;
    double first = 0, t0, c0, dt, ct;
    if (only && strcmp(only, "train"))
        goto eval;
    for (int i = 0; i < 2; i++) /* warm-up: workspaces, caches, BLAS threads */
        if (tg_net_train_step(net, &bv, &st))
            goto fail;
    first = st.loss.total;
    t0 = tg_now(), c0 = cpu_now();
    for (int i = 0; i < steps; i++)
        if (tg_net_train_step(net, &bv, &st))
            goto fail;
    dt = (tg_now() - t0) / steps, ct = (cpu_now() - c0) / steps;
    printf("train: batch %d, %d steps, %.4f s/step, %.1f samples/s; %.4f CPU s/step, %.1f "
           "samples per CPU second (loss %.3f -> %.3f)\n", batch, steps, dt, batch / dt, ct,
           batch / ct, first, st.loss.total);
    if (only)
        goto done;
eval:;
    tg_eval_out eo = {.tokens = stok, .value = value};
    if (only && strcmp(only, "eval"))
        goto greedy;
    for (int i = 0; i < 2; i++) /* warm-up (the CUDA net captures a graph on the second) */
        if (tg_net_sample(net, tensors, scalars, ebatch, K, 1.0f, NULL, 1, &eo))
            goto fail;
    t0 = tg_now(), c0 = cpu_now();
    for (int i = 0; i < steps; i++)
        if (tg_net_sample(net, tensors, scalars, ebatch, K, 1.0f, NULL, (uint64_t)i, &eo))
            goto fail;
    dt = (tg_now() - t0) / steps, ct = (cpu_now() - c0) / steps;
    printf("eval: %d positions x K=%d samples, %.4f s/call, %.1f positions/s (%.0f actions/s); "
           "%.1f positions per CPU second\n", ebatch, K, dt, ebatch / dt, ebatch * (double)K / dt,
           ebatch / ct);
    if (only)
        goto done;
greedy:
    for (int i = 0; i < 2; i++) /* warm-up, as above */
        if (tg_net_greedy(net, tensors, scalars, ebatch, stok, NULL))
            goto fail;
    t0 = tg_now(), c0 = cpu_now();
    for (int i = 0; i < steps; i++)
        if (tg_net_greedy(net, tensors, scalars, ebatch, stok, NULL))
            goto fail;
    dt = (tg_now() - t0) / steps, ct = (cpu_now() - c0) / steps;
    printf("greedy: %d positions, %.4f s/call, %.1f positions/s; %.1f positions per CPU "
           "second\n", ebatch, dt, ebatch / dt, ebatch / ct);
done:
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "tg bench net: %s\n", tg_errmsg());
out:
    tg_net_free(net);
    free(tensors), free(scalars), free(returns), free(tokens), free(stok), free(value);
    return rc;
}
