/* tg bench matmul: fastmm's block algorithms against the vendor GEMM, speed and accuracy. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "fastmm/fastmm.h"
#include "tools/cmds.h"

#ifdef TG_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#define MAX_ALGOS 16
#define MAX_SIZES 32
#define MAX_REPS 101

static const char *use =
    "usage: tg bench matmul [OPTIONS] --algo LABEL=FILE:KEY[@LEVELS] ...\n"
    "Times C = A B (square fp32 matrices of each size, N(0,1) entries) with each algorithm and\n"
    "with one plain GEMM (cuBLAS; pedantic SGEMM for fp32, i.e. no TF32), interleaved rep by rep,\n"
    "and prints the median times, the speedup over the plain GEMM, and the max-norm relative error\n"
    "of both against an fp64 reference (max|C - R| / max|R|).\n"
    "  --algo LABEL=FILE:KEY[@LEVELS]  an algorithm: FILE a factorization file (or 'builtin' with\n"
    "                   KEY strassen or naive:N,M,P), LEVELS 1, 2, ... or 'auto' (default 1);\n"
    "                   repeatable, at most 16\n"
    "  --sizes LIST     comma-separated sizes (default 8192,10240,12288,14336,16384,18432,20480)\n"
    "  --prec LIST      fp32, tf32, bf16 (comma-separated; default fp32)\n"
    "  --reps N         timed repetitions (default 10 below 12000, 5 from there on)\n"
    "  --min-block N    smallest block side for LEVELS auto (default 1536)\n"
    "  --panels N       row panels pipelined over two streams (default 0: automatic)\n"
    "  --no-accuracy    skip the fp64 reference (errors print as nan)\n"
    "  --no-tune        GPU: skip fastmm_tune_cuda (panels, levels, GEMM kernels) before timing\n"
    "  --gemm-search N  GPU fp32: cuBLASLt candidates timed per block-product shape when tuning\n"
    "                   (default 4, at most 16; 0: cuBLAS's default kernel only)\n"
    "  --gemm-configs N GPU fp32: also time up to N kernel configurations cuBLASLt accepts per\n"
    "                   shape, enumerated (algorithms x tiles x stages x CTA swizzling x\n"
    "                   options, no split-K), for the products and --best-gemm: all where\n"
    "                   that costs at most ~3 s per shape, else screened on fewer rows and\n"
    "                   the 3 fastest there run on the shape\n"
    "                   (default 64: all there are; 0: the heuristic's candidates only)\n"
    "  --best-gemm      GPU: also time one GEMM with the kernel chosen the same way (a second\n"
    "                   baseline: how much of a speedup is kernel choice alone)\n"
    "  --phases         GPU: time the phases of each algorithm (one panel) and print their\n"
    "                   memory bandwidth (combinations) and FLOP rate (products), with the\n"
    "                   chosen combination kernel and the others\n"
    "  --direct N       operands that are one block times +-2^k read in place, and products\n"
    "                   that reach one C block written into it (GPU: with the early start\n"
    "                   where untuned): -1 tuned (default), 0 never, 1 wherever the grid\n"
    "                   divides the sizes\n"
    "  --priority N     GPU, pipelined runs: 1 the combinations on a high-priority stream\n"
    "                   (described h), 2 the block products on one (p: the combinations run\n"
    "                   where the products leave SMs idle), 0 neither; -1 tuned (default)\n"
    "  --comb N         GPU: block combination kernel: -1 tuned (default: staged, then streaming\n"
    "                   and deep streaming tried on the fastest and checked), 0 staged,\n"
    "                   1 streaming, 2 deep streaming (several rows' loads in flight per\n"
    "                   thread, evict-first loads), 3 bulk (rows copied into shared memory\n"
    "                   by bulk asynchronous copies; fp32 with aligned whole blocks, else\n"
    "                   streaming; not tuned yet)\n"
    "  --comb-blocks N  GPU, streaming kernel: at most N thread blocks for the combinations\n"
    "                   that run beside block products: -1 tuned (default: 1/2, 1, 2 per\n"
    "                   multiprocessor tried on the fastest), 0 no limit; with --phases\n"
    "                   N > 0 also caps each phase's combination (its rate on N blocks)\n"
    "  --comb-threads N GPU, streaming kernel: N threads per thread block (32, 64, 128) for\n"
    "                   the combinations that run beside block products (described tN);\n"
    "                   0 = 256 (default; not tuned: thin blocks gained nothing on the H100)\n"
    "  --green N        GPU: pipelined runs on green contexts: the block products on every SM\n"
    "                   but N, the combinations beside them on those N (described GN):\n"
    "                   -1 tuned (N = the SMs above the largest multiple of 16 below the\n"
    "                   device's, 4 of 132, tried on the two fastest panel counts), 0 never\n"
    "                   (default: no gain on the H100); needs a driver with green contexts\n"
    "                   (CUDA 12.4)\n"
    "  --overlap N      GPU: the block products of consecutive panels on two streams, so that\n"
    "                   a panel's products start in the previous panel's last wave (described\n"
    "                   X): -1 tuned (tried on the fastest pipelined configuration, at the\n"
    "                   other priority and with twice the panels), 0 never (default: slower\n"
    "                   on the H100), 1 wherever there are panels\n"
    "  --tail N         GPU fp32: each block product's GEMM in balanced waves (described T):\n"
    "                   its last rows by a kernel of small tiles on a low-priority stream,\n"
    "                   queued just before the rest at high priority, so that the small\n"
    "                   tiles fill the SMs the large ones leave in their last wave; per GEMM\n"
    "                   shape the kernel search times the split and keeps it only if faster:\n"
    "                   -1 tuned (default: tried on the fastest configuration and the fastest\n"
    "                   with one panel), 0 never, 1 wherever the search kept one\n"
    "  --fused V        GPU fp32: fused products: each block product by fastmm's own SIMT GEMM\n"
    "                   kernel, which sums the operand terms as it loads them and adds into C\n"
    "                   in its epilogue (no combination passes), where the blocks are whole\n"
    "                   tiles (described FV); V the tile: 1 128x128 (k-step 8), 2 128x128 (16),\n"
    "                   3 128x256, 4 256x128; 0 off (default); -1 tuned (every variant timed\n"
    "                   on the fastest other configuration's levels, kept if faster). With\n"
    "                   V >= 1 also times that kernel as a plain GEMM (own-SGEMM) against\n"
    "                   cuBLAS's\n"
    "  --tune-report    GPU: print every configuration tuning timed (ms) per algorithm\n"
    "                   (S: streaming combinations, S2: deep streaming, D: direct operands,\n"
    "                   E: their early start, the first products overlapping B's\n"
    "                   combination; h: the combinations at high priority, p: the products;\n"
    "                   bN: the combinations beside products on N blocks; GN: green\n"
    "                   contexts, N SMs for the combinations;\n"
    "                   X: consecutive panels' products on two streams; T: balanced waves;\n"
    "                   FV: fused products of variant V)\n"
    "  --cpu            use the CPU path (OpenBLAS) even where a GPU exists\n"
    "  --csv FILE       also append one line per (precision, size, algorithm) to FILE\n";

typedef struct algo {
    char label[64];
    tg_fact *f;
    fastmm_plan *plan[3]; /* per precision */
    int levels;           /* -1 auto */
} algo;

static int parse_list(const char *s, long *out, int max)
{
    int n = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char *end;
        long v = strtol(t, &end, 10);
        if (*end || v < 1 || n >= max) {
            free(dup);
            return -1;
        }
        out[n++] = v;
    }
    free(dup);
    return n;
}

static int parse_algo(const char *spec, algo *a)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    char *eq = strchr(buf, '=');
    if (!eq) return tg_fail("--algo %s: expected LABEL=FILE:KEY[@LEVELS]", spec);
    *eq = 0;
    if (strlen(buf) >= sizeof a->label) return tg_fail("--algo %s: label too long", spec);
    memcpy(a->label, buf, strlen(buf) + 1);
    char *src = eq + 1, *at = strrchr(src, '@');
    a->levels = 1;
    if (at) {
        *at = 0;
        if (!strcmp(at + 1, "auto")) a->levels = -1;
        else {
            char *end;
            a->levels = (int)strtol(at + 1, &end, 10);
            if (*end || a->levels < 0) return tg_fail("--algo %s: bad LEVELS", spec);
        }
    }
    char *colon = strrchr(src, ':');
    if (!strncmp(src, "builtin:", 8)) colon = src + 7;
    if (!colon) return tg_fail("--algo %s: expected FILE:KEY", spec);
    *colon = 0;
    a->f = fastmm_load(src, colon + 1);
    if (!a->f) return tg_fail_ctx("--algo %s: ", spec);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n)
{
    qsort(x, n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void describe(algo *a, fastmm_plan *p, long s, int gpu, char *buf, size_t len)
{
    int L = fastmm_plan_levels(p, s, s, s);
    const tg_fact *f = L ? fastmm_plan_level_fact(p, L) : NULL;
    if (!f) {
        snprintf(buf, len, "plain");
        return;
    }
    tg_dims d = tg_fact_dims(f);
    (void)a;
    int fv = gpu ? fastmm_plan_fused(p, s, s, s) : 0;
    if (fv) { /* FV: fused products of variant V (no panels, no passes) */
        snprintf(buf, len, "%dx%dx%d r%d L%d F%d", d.n, d.m, d.p, tg_fact_rank(f), L, fv);
        return;
    }
    int P = fastmm_plan_panels(p, s, s, s);
    /* h: combinations on the high-priority stream, p: the products (where combinations run
     * beside them: panels or the early start); D: direct operands, E: their early start
     * (GPU); S: streaming combination kernel; bN: those beside products on N thread blocks,
     * tN: of N threads; GN: green contexts, N SMs for the combinations; X: consecutive
     * panels' products on two streams; T: the products' GEMMs in balanced waves */
    int dir = fastmm_plan_direct(p, s, s, s), comb = fastmm_plan_comb(p, s, s, s);
    int nb = comb ? fastmm_plan_comb_blocks(p, s, s, s) : 0;
    char bs[40] = "";
    int nt = fastmm_plan_opts(p)->comb_threads, ng = gpu ? fastmm_plan_green(p, s, s, s) : 0;
    if (gpu && nb > 0) snprintf(bs, sizeof bs, " b%d", nb);
    if (gpu && comb && nt > 0) snprintf(bs + strlen(bs), sizeof bs - strlen(bs), " t%d", nt);
    if (ng > 0) snprintf(bs + strlen(bs), sizeof bs - strlen(bs), " G%d", ng);
    if (gpu && P > 1 && fastmm_plan_overlap(p, s, s, s))
        snprintf(bs + strlen(bs), sizeof bs - strlen(bs), " X");
    if (gpu && fastmm_plan_tail(p, s, s, s))
        snprintf(bs + strlen(bs), sizeof bs - strlen(bs), " T");
    int pri = fastmm_plan_priority(p, s, s, s), early = gpu && dir && fastmm_plan_early(p, s, s, s);
    snprintf(buf, len, "%dx%dx%d r%d L%d P%d%s%s%s%s%s", d.n, d.m, d.p, tg_fact_rank(f), L, P,
             gpu && pri == 2 && (P > 1 || early) ? "p" : P > 1 && pri == 1 ? "h" : "",
             dir ? " D" : "", early ? " E" : "",
             gpu && comb ? comb == 3 ? " S3" : comb == 2 ? " S2" : " S" : "", bs); /* the CPU path has one way */
}

#ifdef TG_HAVE_CUDA
#define CUCHK(x)                                                                            \
    do {                                                                                    \
        cudaError_t e_ = (x);                                                               \
        if (e_ != cudaSuccess) {                                                            \
            tg_fail("%s: %s", #x, cudaGetErrorString(e_));                                  \
            goto fail;                                                                      \
        }                                                                                   \
    } while (0)

/* One line (and csv row) for a second plain GEMM beside cuBLAS's (mb ms, error eb): its time m,
 * speedup, error e and FLOP rate. */
static void plain_line(FILE *csv, const char *dev, fastmm_prec pr, long s, const char *label,
                       const char *desc, const char *csv_desc, double mb, double m, double e,
                       double eb)
{
    printf("  %-14s %-18s %8.2f ms  speedup %+6.1f%%  err %.1e (%.1f TFLOP/s)\n", label, desc, m,
           100.0 * mb / m - 100.0, e, 2.0 * s * s * s / m / 1e9);
    if (csv)
        fprintf(csv, "%s,%s,%ld,%s,%s,%.4f,%.4f,%.2f,%.3e,%.3e\n", dev, fastmm_prec_name(pr), s,
                label, csv_desc, mb, m, 100.0 * mb / m - 100.0, e, eb);
}

static int bench_gpu(algo *al, int na, const long *sizes, int ns, const fastmm_prec *precs,
                     int np, int reps_opt, int accuracy, int tune, int best_gemm, int search,
                     int phases, int tune_report, int own, int configs, FILE *csv)
{
    int rc = -1;
    fastmm_cuda *c = fastmm_cuda_new();
    if (!c) return -1;
    fastmm_cuda_gemm_configs(c, configs);
    cudaStream_t st = (cudaStream_t)fastmm_cuda_stream(c);
    cudaEvent_t e0, e1;
    float *A = NULL, *B = NULL, *C = NULL, *C2 = NULL;
    void *Ah = NULL, *Bh = NULL;
    double *R = NULL;
    CUCHK(cudaEventCreate(&e0));
    CUCHK(cudaEventCreate(&e1));
    struct cudaDeviceProp prop;
    CUCHK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs\n", prop.name, prop.multiProcessorCount);
    for (int si = 0; si < ns; si++) {
        long s = sizes[si];
        size_t n = (size_t)s * s;
        double t_size = tg_now();
        CUCHK(cudaMalloc((void **)&A, n * 4));
        CUCHK(cudaMalloc((void **)&B, n * 4));
        CUCHK(cudaMalloc((void **)&C, n * 4));
        CUCHK(cudaMalloc((void **)&C2, n * 4));
        if (fastmm_cuda_fill_normal(c, A, n, 2 * s) || fastmm_cuda_fill_normal(c, B, n, 2 * s + 1))
            goto fail;
        if (accuracy) {
            CUCHK(cudaMalloc((void **)&R, n * 8));
            if (fastmm_cuda_ref_dgemm(c, s, s, s, A, B, R)) goto fail;
        }
        for (int pi = 0; pi < np; pi++) {
            fastmm_prec pr = precs[pi];
            const void *xa = A, *xb = B;
            if (pr == FASTMM_BF16) {
                CUCHK(cudaMalloc(&Ah, n * 2));
                CUCHK(cudaMalloc(&Bh, n * 2));
                if (fastmm_cuda_f32_to_bf16(c, A, Ah, n) || fastmm_cuda_f32_to_bf16(c, B, Bh, n))
                    goto fail;
                xa = Ah;
                xb = Bh;
            }
            int reps = reps_opt > 0 ? reps_opt : (s > 12000 ? 5 : 10);
            double tb[MAX_REPS], tl[MAX_REPS], to[MAX_REPS], ta[MAX_ALGOS][MAX_REPS];
            /* fastmm's own SGEMM (the fused products' kernel) where it takes the size */
            int tm = 0, tn = 0, tk = 0;
            int own_ok = own > 0 && pr == FASTMM_FP32 && !fastmm_fused_tile(own, &tm, &tn, &tk) &&
                         s % tm == 0 && s % tn == 0 && s % tk == 0;
            /* warm-up (handle creation, workspace allocation, kernel loading) and tuning */
            if (fastmm_gemm_cuda_plain(c, pr, s, s, s, xa, s, xb, s, C, s)) goto fail;
            /* the tuned GEMM writes C2, so that C keeps the default GEMM's result */
            if (best_gemm && fastmm_gemm_cuda_best(c, pr, search, s, s, s, xa, s, xb, s, C2, s))
                goto fail;
            if (own_ok && fastmm_gemm_cuda_own(c, own, s, s, s, A, s, B, s, C2, s)) goto fail;
            for (int a = 0; a < na; a++)
                if ((tune ? fastmm_tune_cuda : fastmm_gemm_cuda)(c, al[a].plan[pr], s, s, s, xa, s,
                                                               xb, s, C2, s))
                    goto fail;
            CUCHK(cudaStreamSynchronize(st));
            /* one timed call (ms into dst) between events on the context's stream */
#define TIMED(dst, call)                                                                    \
    do {                                                                                    \
        float ms_;                                                                          \
        CUCHK(cudaEventRecord(e0, st));                                                     \
        if (call) goto fail;                                                                \
        CUCHK(cudaEventRecord(e1, st));                                                     \
        CUCHK(cudaEventSynchronize(e1));                                                    \
        CUCHK(cudaEventElapsedTime(&ms_, e0, e1));                                          \
        (dst) = ms_;                                                                        \
    } while (0)
            for (int r = 0; r < reps; r++) {
                TIMED(tb[r], fastmm_gemm_cuda_plain(c, pr, s, s, s, xa, s, xb, s, C, s));
                if (best_gemm)
                    TIMED(tl[r], fastmm_gemm_cuda_best(c, pr, 0, s, s, s, xa, s, xb, s, C2, s));
                if (own_ok) TIMED(to[r], fastmm_gemm_cuda_own(c, own, s, s, s, A, s, B, s, C2, s));
                for (int a = 0; a < na; a++)
                    TIMED(ta[a][r], fastmm_gemm_cuda(c, al[a].plan[pr], s, s, s, xa, s, xb, s, C2, s));
            }
#undef TIMED
            double mb = median(tb, reps), eb = NAN;
            if (accuracy && fastmm_cuda_max_rel_err(c, s, s, C, s, R, &eb)) goto fail;
            printf("%s n=%ld: GEMM %.2f ms (%.1f TFLOP/s), err %.1e\n", fastmm_prec_name(pr), s,
                   mb, 2.0 * s * s * s / mb / 1e9, eb);
            double ml = best_gemm ? median(tl, reps) : NAN;
            if (best_gemm) {
                double el = NAN;
                if (accuracy) {
                    CUCHK(cudaMemsetAsync(C2, 0xff, n * 4, st)); /* NaN poison */
                    if (fastmm_gemm_cuda_best(c, pr, 0, s, s, s, xa, s, xb, s, C2, s) ||
                        fastmm_cuda_max_rel_err(c, s, s, C2, s, R, &el))
                        goto fail;
                }
                plain_line(csv, prop.name, pr, s, "best-GEMM", "plain, kernel tuned",
                           "plain tuned", mb, ml, el, eb);
            }
            if (own_ok) {
                double mo = median(to, reps), eo = NAN;
                if (accuracy) {
                    CUCHK(cudaMemsetAsync(C2, 0xff, n * 4, st)); /* NaN poison */
                    if (fastmm_gemm_cuda_own(c, own, s, s, s, A, s, B, s, C2, s) ||
                        fastmm_cuda_max_rel_err(c, s, s, C2, s, R, &eo))
                        goto fail;
                }
                plain_line(csv, prop.name, pr, s, "own-SGEMM", "plain, own kernel", "plain own",
                           mb, mo, eo, eb);
            }
            for (int a = 0; a < na; a++) {
                double ea = NAN;
                if (accuracy) {
                    CUCHK(cudaMemsetAsync(C2, 0xff, n * 4, st)); /* NaN poison */
                    if (fastmm_gemm_cuda(c, al[a].plan[pr], s, s, s, xa, s, xb, s, C2, s) ||
                        fastmm_cuda_max_rel_err(c, s, s, C2, s, R, &ea))
                        goto fail;
                }
                double m = median(ta[a], reps);
                char desc[64];
                describe(&al[a], al[a].plan[pr], s, 1, desc, sizeof desc);
                printf("  %-14s %-18s %8.2f ms  speedup %+6.1f%%  err %.1e (GEMM %.1e)",
                       al[a].label, desc, m, 100.0 * mb / m - 100.0, ea, eb);
                if (best_gemm) printf("  vs best-GEMM %+6.1f%%", 100.0 * ml / m - 100.0);
                printf("\n");
                if (tune && tune_report) {
                    char rep[4096];
                    if (!fastmm_plan_tune_report(al[a].plan[pr], s, s, s, rep, sizeof rep))
                        printf("    tuned (ms, * chosen): %s\n", rep);
                }
                /* the chosen combination kernel first, then the other two (their bandwidth
                 * whether or not tuning chose them); the bulk kernel only where forced */
                int ck = fastmm_plan_comb(al[a].plan[pr], s, s, s), nk = ck == 3 ? 4 : 3;
                for (int k = 0; phases && k < nk; k++) {
                    double pm[4], pb[4];
                    int kind = (ck + k) % nk;
                    if (fastmm_cuda_phases_comb(c, al[a].plan[pr], kind, s, s, s, xa, s, xb, s,
                                                C2, s, pm, pb)) {
                        printf("    phases: %s\n", tg_errmsg());
                        tg_err_clear();
                        break;
                    }
                    int cap = fastmm_plan_opts(al[a].plan[pr])->comb_blocks;
                    char on[32] = "";
                    if (cap > 0 && kind > 0) snprintf(on, sizeof on, ", on %d blocks", cap);
                    printf("    phases (1 panel, %s%s%s): A %.2f ms %.2f TB/s, B %.2f ms %.2f TB/s, "
                           "products %.2f ms %.1f TFLOP/s, C %.2f ms %.2f TB/s; sum %.2f ms\n",
                           fastmm_comb_name(kind), k ? "" : ", chosen", on, pm[0], pb[0] / pm[0] / 1e9,
                           pm[1], pb[1] / pm[1] / 1e9, pm[2], pb[2] / pm[2] / 1e9, pm[3],
                           pb[3] / pm[3] / 1e9, pm[0] + pm[1] + pm[2] + pm[3]);
                }
                if (csv)
                    fprintf(csv, "%s,%s,%ld,%s,%s,%.4f,%.4f,%.2f,%.3e,%.3e\n", prop.name,
                            fastmm_prec_name(pr), s, al[a].label, desc, mb, m,
                            100.0 * mb / m - 100.0, ea, eb);
            }
            if (tune) fastmm_cuda_search_report(c, stdout, "    ");
            fflush(stdout);
            cudaFree(Ah);
            cudaFree(Bh);
            Ah = Bh = NULL;
        }
        printf("(n=%ld: %.0f s)\n", s, tg_now() - t_size);
        fflush(stdout);
        cudaFree(A);
        cudaFree(B);
        cudaFree(C);
        cudaFree(C2);
        cudaFree(R);
        A = B = C = C2 = NULL;
        R = NULL;
    }
    rc = 0;
fail:
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cudaFree(C2);
    cudaFree(R);
    cudaFree(Ah);
    cudaFree(Bh);
    fastmm_cuda_free(c);
    return rc;
}
#endif

static int bench_cpu(algo *al, int na, const long *sizes, int ns, int reps_opt, int accuracy,
                     FILE *csv)
{
    printf("device: CPU (OpenBLAS)\n");
    for (int si = 0; si < ns; si++) {
        long s = sizes[si];
        size_t n = (size_t)s * s;
        float *A = malloc(n * 4), *B = malloc(n * 4), *C = malloc(n * 4), *C2 = malloc(n * 4);
        double *R = accuracy ? malloc(n * 8) : NULL;
        if (!A || !B || !C || !C2 || (accuracy && !R)) {
            free(A);
            free(B);
            free(C);
            free(C2);
            free(R);
            return tg_fail("out of memory for size %ld", s);
        }
        tg_rng rng;
        tg_rng_seed(&rng, (uint64_t)s, 0);
        for (size_t i = 0; i < n; i++) A[i] = (float)tg_rng_normal(&rng);
        for (size_t i = 0; i < n; i++) B[i] = (float)tg_rng_normal(&rng);
        if (accuracy) fastmm_ref_dgemm(s, s, s, A, B, R);
        int reps = reps_opt > 0 ? reps_opt : 3;
        double tb[MAX_REPS], ta[MAX_ALGOS][MAX_REPS];
        fastmm_opts plain = fastmm_opts_default();
        plain.levels = 0;
        tg_fact *one = tg_fact_naive((tg_dims){1, 1, 1});
        fastmm_plan *pp = fastmm_plan_new(one, &plain);
        tg_fact_free(one);
        for (int r = 0; r < reps; r++) {
            double t = tg_now();
            fastmm_sgemm_cpu(pp, s, s, s, A, s, B, s, C, s);
            tb[r] = 1e3 * (tg_now() - t);
            for (int a = 0; a < na; a++) {
                t = tg_now();
                if (fastmm_sgemm_cpu(al[a].plan[0], s, s, s, A, s, B, s, C2, s)) return -1;
                ta[a][r] = 1e3 * (tg_now() - t);
            }
        }
        double mb = median(tb, reps), eb = accuracy ? fastmm_max_rel_err(s, s, C, s, R) : NAN;
        printf("fp32 n=%ld: GEMM %.2f ms (%.1f GFLOP/s), err %.1e\n", s, mb,
               2.0 * s * s * s / mb / 1e6, eb);
        for (int a = 0; a < na; a++) {
            fastmm_sgemm_cpu(al[a].plan[0], s, s, s, A, s, B, s, C2, s);
            double ea = accuracy ? fastmm_max_rel_err(s, s, C2, s, R) : NAN;
            double m = median(ta[a], reps);
            char desc[64];
            describe(&al[a], al[a].plan[0], s, 0, desc, sizeof desc);
            printf("  %-14s %-18s %8.2f ms  speedup %+6.1f%%  err %.1e (GEMM %.1e)\n",
                   al[a].label, desc, m, 100.0 * mb / m - 100.0, ea, eb);
            if (csv)
                fprintf(csv, "CPU,fp32,%ld,%s,%s,%.4f,%.4f,%.2f,%.3e,%.3e\n", s, al[a].label,
                        desc, mb, m, 100.0 * mb / m - 100.0, ea, eb);
        }
        fastmm_plan_free(pp);
        free(A);
        free(B);
        free(C);
        free(C2);
        free(R);
    }
    return 0;
}

int tg_bench_matmul(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    static const struct option lo[] = {
        {"algo", required_argument, 0, 'a'},  {"sizes", required_argument, 0, 's'},
        {"prec", required_argument, 0, 'p'},  {"reps", required_argument, 0, 'r'},
        {"min-block", required_argument, 0, 'm'}, {"no-accuracy", no_argument, 0, 'n'},
        {"panels", required_argument, 0, 'P'}, {"no-tune", no_argument, 0, 'T'},
        {"cpu", no_argument, 0, 'c'},         {"csv", required_argument, 0, 'o'},
        {"gemm-search", required_argument, 0, 'g'}, {"best-gemm", no_argument, 0, 'b'},
        {"phases", no_argument, 0, 'F'},      {"direct", required_argument, 0, 'D'},
        {"priority", required_argument, 0, 'Q'}, {"tune-report", no_argument, 0, 'R'},
        {"comb", required_argument, 0, 'K'}, {"comb-blocks", required_argument, 0, 'B'},
        {"comb-threads", required_argument, 0, 'H'}, {"green", required_argument, 0, 'W'},
        {"overlap", required_argument, 0, 'O'}, {"tail", required_argument, 0, 'L'},
        {"fused", required_argument, 0, 'U'}, {"gemm-configs", required_argument, 0, 'G'},
        {0, 0, 0, 0}};
    algo al[MAX_ALGOS];
    memset(al, 0, sizeof al);
    int na = 0, ns = 7, np = 0, reps = 0, accuracy = 1, cpu = 0, min_block = 1536, rc = 2;
    int panels = 0, tune = 1, search = 4, best_gemm = 0, phases = 0, direct = -1, priority = -1;
    int comb = -1, comb_blocks = -1, comb_threads = 0, fused = 0, configs = FASTMM_GEMM_CONFIGS;
    int tune_report = 0, green = 0, overlap = 0, tail = -1;
    long sizes[MAX_SIZES] = {8192, 10240, 12288, 14336, 16384, 18432, 20480};
    fastmm_prec precs[3] = {FASTMM_FP32};
    const char *csv_path = NULL;
    FILE *csv = NULL;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 'a':
            if (na >= MAX_ALGOS) {
                fprintf(stderr, "tg bench matmul: at most %d algorithms\n", MAX_ALGOS);
                goto out;
            }
            if (parse_algo(optarg, &al[na])) {
                fprintf(stderr, "tg bench matmul: %s\n", tg_errmsg());
                goto out;
            }
            na++;
            break;
        case 's':
            ns = parse_list(optarg, sizes, MAX_SIZES);
            if (ns < 1) {
                fprintf(stderr, "tg bench matmul: bad --sizes '%s'\n", optarg);
                goto out;
            }
            break;
        case 'p': {
            char *dup = strdup(optarg), *save = NULL;
            np = 0;
            for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (np >= 3 || fastmm_prec_parse(t, &precs[np])) {
                    fprintf(stderr, "tg bench matmul: --prec: %s\n", tg_errmsg());
                    free(dup);
                    goto out;
                }
                np++;
            }
            free(dup);
            break;
        }
        case 'r':
            reps = atoi(optarg);
            if (reps < 1 || reps > MAX_REPS) {
                fprintf(stderr, "tg bench matmul: --reps must be 1..%d\n", MAX_REPS);
                goto out;
            }
            break;
        case 'm': min_block = atoi(optarg); break;
        case 'P': panels = atoi(optarg); break;
        case 'T': tune = 0; break;
        case 'g':
            search = atoi(optarg);
            if (search < 0) {
                fprintf(stderr, "tg bench matmul: --gemm-search must be >= 0\n");
                goto out;
            }
            break;
        case 'G':
            configs = atoi(optarg);
            if (configs < 0) {
                fprintf(stderr, "tg bench matmul: --gemm-configs must be >= 0\n");
                goto out;
            }
            break;
        case 'b': best_gemm = 1; break;
        case 'F': phases = 1; break;
        case 'D': direct = atoi(optarg); break;
        case 'Q': priority = atoi(optarg); break;
        case 'R': tune_report = 1; break;
        case 'K': comb = atoi(optarg); break;
        case 'B': comb_blocks = atoi(optarg) < -1 ? -1 : atoi(optarg); break;
        case 'H': comb_threads = atoi(optarg); break; /* fastmm_plan_new checks it */
        case 'W': green = atoi(optarg); break; /* fastmm_plan_new checks it */
        case 'O': overlap = atoi(optarg); break; /* fastmm_plan_new checks it */
        case 'L': tail = atoi(optarg); break;    /* fastmm_plan_new checks it */
        case 'U':
            fused = atoi(optarg);
            if (fused < -1 || fused > FASTMM_FUSED_VARIANTS) {
                fprintf(stderr, "tg bench matmul: --fused must be -1..%d\n", FASTMM_FUSED_VARIANTS);
                goto out;
            }
            break;
        case 'n': accuracy = 0; break;
        case 'c': cpu = 1; break;
        case 'o': csv_path = optarg; break;
        default: fputs(use, stderr); goto out;
        }
    }
    if (optind < argc || na == 0) {
        fputs(use, stderr);
        goto out;
    }
    if (np == 0) np = 1;
    for (int a = 0; a < na; a++)
        for (int p = 0; p < 3; p++) {
            fastmm_opts op = fastmm_opts_default();
            op.levels = al[a].levels;
            op.min_block = min_block;
            op.panels = panels;
            op.gemm_search = search;
            op.direct = direct < -1 ? -1 : direct > 1 ? 1 : direct;
            op.priority = priority; /* fastmm_plan_new checks it */
            op.comb = comb < -1 ? -1 : comb > 3 ? 3 : comb;
            op.comb_blocks = comb_blocks;
            op.comb_threads = comb_threads;
            op.green = green;
            op.overlap = overlap;
            op.tail = tail;
            op.fused = fused;
            op.prec = (fastmm_prec)p;
            al[a].plan[p] = fastmm_plan_new(al[a].f, &op);
            if (!al[a].plan[p]) {
                fprintf(stderr, "tg bench matmul: %s: %s\n", al[a].label, tg_errmsg());
                goto out;
            }
        }
    if (csv_path) {
        csv = fopen(csv_path, "a");
        if (!csv) {
            fprintf(stderr, "tg bench matmul: cannot open %s\n", csv_path);
            goto out;
        }
    }
    rc = 1;
#ifdef TG_HAVE_CUDA
    if (!cpu && fastmm_cuda_device_count() > 0) {
        if (bench_gpu(al, na, sizes, ns, precs, np, reps, accuracy, tune, best_gemm, search,
                      phases, tune_report, fused, configs, csv) == 0)
            rc = 0;
        else fprintf(stderr, "tg bench matmul: %s\n", tg_errmsg());
        goto out;
    }
    if (!cpu) printf("(no CUDA device: CPU path)\n");
#endif
    (void)cpu;
    (void)tune;
    (void)best_gemm;
    (void)phases;
    (void)tune_report;
    (void)configs;
    if (bench_cpu(al, na, sizes, ns, reps, accuracy, csv) == 0) rc = 0;
    else fprintf(stderr, "tg bench matmul: %s\n", tg_errmsg());
out:
    if (csv) fclose(csv);
    for (int a = 0; a < na; a++) {
        for (int p = 0; p < 3; p++) fastmm_plan_free(al[a].plan[p]);
        tg_fact_free(al[a].f);
    }
    return rc;
}
