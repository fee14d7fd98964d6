/* tg matmul: multiply random matrices with a factorization's block algorithm (fastmm), report
 * time and accuracy against plain GEMM and an fp64 reference. */
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

static const char *use =
    "usage: tg matmul [OPTIONS] FILE KEY\n"
    "Multiplies random fp32 matrices (N(0,1) entries) C = A B with the block algorithm KEY of\n"
    "FILE (HDF5 or JSON; FILE 'builtin' with KEY strassen or naive:N,M,P) and prints the median\n"
    "time of the algorithm and of one plain GEMM, the speedup, and the max-norm relative errors\n"
    "max|C - R| / max|R| of both against an fp64 reference R.\n"
    "  --size M,K,N     A is M x K, B is K x N (default 4096,4096,4096; one number: square)\n"
    "  --levels L       1 = one level of the algorithm, 2 = Strassen inside each block product,\n"
    "                   ..., 0 = plain GEMM, auto (default) = chosen by size (and tuned on GPU)\n"
    "  --min-block N    smallest block side for --levels auto (default 1536)\n"
    "  --prec P         GPU: fp32 (default; pedantic, no TF32), tf32 or bf16\n"
    "  --reps N         timed repetitions (default 5)\n"
    "  --cpu            use the CPU path (OpenBLAS) even where a GPU exists\n"
    "  --seed S         random seed (default 1)\n"
    "Exit status 0, 1 if the result is wrong (error over 1e-2 in fp32), 2 on bad input.\n";

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double med(double *x, int n)
{
    qsort(x, n, sizeof *x, cmp_d);
    return x[n / 2];
}

static void report(fastmm_plan *p, long M, long K, long N, const char *dev, double tb, double ta,
                   double eb, double ea)
{
    int L = fastmm_plan_levels(p, M, K, N);
    const tg_fact *f = L ? fastmm_plan_level_fact(p, L) : NULL;
    printf("%s, %s, C = A B with A %ldx%ld, B %ldx%ld\n", dev,
           fastmm_prec_name(fastmm_plan_opts(p)->prec), M, K, K, N);
    if (f) {
        tg_dims d = tg_fact_dims(f);
        char dir[96] = "";
        int na, nb, nc;
        if (fastmm_plan_direct(p, M, K, N) && !fastmm_plan_direct_terms(p, L, &na, &nb, &nc))
            snprintf(dir, sizeof dir, ", in place: %d A and %d B operands, %d products into C",
                     na, nb, nc);
        printf("algorithm: %dx%dx%d rank %d (%d level%s, %d panel%s%s), %.1f%% of GEMM's "
               "multiplications\n",
               d.n, d.m, d.p, tg_fact_rank(f), L, L > 1 ? "s" : "", fastmm_plan_panels(p, M, K, N),
               fastmm_plan_panels(p, M, K, N) > 1 ? "s" : "", dir,
               100.0 * fastmm_flops(p, M, K, N) / (2.0 * M * K * N));
    } else {
        printf("algorithm: plain GEMM (blocks would be under --min-block)\n");
    }
    printf("GEMM       %10.3f ms  max rel error %.2e\n", tb, eb);
    printf("algorithm  %10.3f ms  max rel error %.2e  speedup %+.1f%%\n", ta, ea,
           100.0 * tb / ta - 100.0);
}

#ifdef TG_HAVE_CUDA
static int run_gpu(fastmm_plan *p, long M, long K, long N, int reps, uint64_t seed)
{
    fastmm_cuda *c = fastmm_cuda_new();
    if (!c) return -1;
    fastmm_prec pr = fastmm_plan_opts(p)->prec;
    float *A = NULL, *B = NULL, *C = NULL, *C2 = NULL;
    void *Ah = NULL, *Bh = NULL;
    double *R = NULL, tb[64], ta[64], eb = NAN, ea = NAN;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = -1;
    const void *xa, *xb;
    if (cudaMalloc((void **)&A, 4 * M * K) || cudaMalloc((void **)&B, 4 * K * N) ||
        cudaMalloc((void **)&C, 4 * M * N) || cudaMalloc((void **)&C2, 4 * M * N) ||
        cudaMalloc((void **)&R, 8 * M * N) || cudaEventCreate(&e0) || cudaEventCreate(&e1)) {
        tg_fail("out of device memory for %ldx%ldx%ld", M, K, N);
        goto out;
    }
    if (fastmm_cuda_fill_normal(c, A, M * K, 2 * seed) ||
        fastmm_cuda_fill_normal(c, B, K * N, 2 * seed + 1) ||
        fastmm_cuda_ref_dgemm(c, M, N, K, A, B, R))
        goto out;
    xa = A;
    xb = B;
    if (pr == FASTMM_BF16) {
        if (cudaMalloc(&Ah, 2 * M * K) || cudaMalloc(&Bh, 2 * K * N)) {
            tg_fail("out of device memory");
            goto out;
        }
        if (fastmm_cuda_f32_to_bf16(c, A, Ah, M * K) || fastmm_cuda_f32_to_bf16(c, B, Bh, K * N))
            goto out;
        xa = Ah;
        xb = Bh;
    }
    if (fastmm_gemm_cuda_plain(c, pr, M, N, K, xa, K, xb, N, C, N) ||
        fastmm_tune_cuda(c, p, M, N, K, xa, K, xb, N, C2, N))
        goto out;
    for (int r = 0; r < reps; r++) {
        float ms;
        cudaStream_t st = (cudaStream_t)fastmm_cuda_stream(c);
        cudaEventRecord(e0, st);
        if (fastmm_gemm_cuda_plain(c, pr, M, N, K, xa, K, xb, N, C, N)) goto out;
        cudaEventRecord(e1, st);
        cudaEventSynchronize(e1);
        cudaEventElapsedTime(&ms, e0, e1);
        tb[r] = ms;
        cudaEventRecord(e0, st);
        if (fastmm_gemm_cuda(c, p, M, N, K, xa, K, xb, N, C2, N)) goto out;
        cudaEventRecord(e1, st);
        if (cudaEventSynchronize(e1) != cudaSuccess) {
            tg_fail("CUDA error while timing");
            goto out;
        }
        cudaEventElapsedTime(&ms, e0, e1);
        ta[r] = ms;
    }
    if (fastmm_cuda_max_rel_err(c, M, N, C, N, R, &eb) ||
        fastmm_cuda_max_rel_err(c, M, N, C2, N, R, &ea))
        goto out;
    {
        struct cudaDeviceProp prop;
        cudaGetDeviceProperties(&prop, 0);
        report(p, M, K, N, prop.name, med(tb, reps), med(ta, reps), eb, ea);
    }
    rc = ea <= (pr == FASTMM_FP32 ? 1e-2 : 0.5) ? 0 : 1;
out:
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cudaFree(C2);
    cudaFree(R);
    cudaFree(Ah);
    cudaFree(Bh);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    fastmm_cuda_free(c);
    return rc;
}
#endif

static int run_cpu(fastmm_plan *p, long M, long K, long N, int reps, uint64_t seed)
{
    float *A = malloc(4 * M * K), *B = malloc(4 * K * N), *C = malloc(4 * M * N),
          *C2 = malloc(4 * M * N);
    double *R = malloc(8 * M * N), tb[64], ta[64];
    fastmm_opts po = fastmm_opts_default();
    po.levels = 0;
    tg_fact *one = tg_fact_naive((tg_dims){1, 1, 1});
    fastmm_plan *plain = one ? fastmm_plan_new(one, &po) : NULL;
    tg_fact_free(one);
    int rc = -1;
    if (!A || !B || !C || !C2 || !R || !plain) {
        tg_fail("out of memory for %ldx%ldx%ld", M, K, N);
        goto out;
    }
    tg_rng rng;
    tg_rng_seed(&rng, seed, 0);
    for (long i = 0; i < M * K; i++) A[i] = (float)tg_rng_normal(&rng);
    for (long i = 0; i < K * N; i++) B[i] = (float)tg_rng_normal(&rng);
    if (fastmm_ref_dgemm(M, N, K, A, B, R)) goto out;
    for (int r = 0; r < reps; r++) {
        double t = tg_now();
        if (fastmm_sgemm_cpu(plain, M, N, K, A, K, B, N, C, N)) goto out;
        tb[r] = 1e3 * (tg_now() - t);
        t = tg_now();
        if (fastmm_sgemm_cpu(p, M, N, K, A, K, B, N, C2, N)) goto out;
        ta[r] = 1e3 * (tg_now() - t);
    }
    double ea = fastmm_max_rel_err(M, N, C2, N, R);
    report(p, M, K, N, "CPU (OpenBLAS)", med(tb, reps), med(ta, reps),
           fastmm_max_rel_err(M, N, C, N, R), ea);
    rc = ea <= 1e-2 ? 0 : 1;
out:
    free(A);
    free(B);
    free(C);
    free(C2);
    free(R);
    fastmm_plan_free(plain);
    return rc;
}

int tg_cmd_matmul(int argc, char **argv)
{
    if (tg_cmd_wants_help(argc, argv)) {
        fputs(use, stdout);
        return 0;
    }
    static const struct option lo[] = {
        {"size", required_argument, 0, 's'},   {"levels", required_argument, 0, 'l'},
        {"min-block", required_argument, 0, 'm'}, {"prec", required_argument, 0, 'p'},
        {"reps", required_argument, 0, 'r'},   {"cpu", no_argument, 0, 'c'},
        {"seed", required_argument, 0, 'S'},   {0, 0, 0, 0}};
    long M = 4096, K = 4096, N = 4096;
    int reps = 5, cpu = 0;
    uint64_t seed = 1;
    fastmm_opts op = fastmm_opts_default();
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (o) {
        case 's': {
            int k = sscanf(optarg, "%ld,%ld,%ld", &M, &K, &N);
            if (k == 1) K = N = M;
            else if (k != 3 || M < 1 || K < 1 || N < 1) {
                fprintf(stderr, "tg matmul: --size M,K,N or --size N\n");
                return 2;
            }
            if (M < 1 || K < 1 || N < 1) {
                fprintf(stderr, "tg matmul: sizes must be positive\n");
                return 2;
            }
            break;
        }
        case 'l':
            if (!strcmp(optarg, "auto")) op.levels = -1;
            else {
                char *end;
                op.levels = (int)strtol(optarg, &end, 10);
                if (*end || op.levels < 0) {
                    fprintf(stderr, "tg matmul: --levels: a number >= 0 or auto\n");
                    return 2;
                }
            }
            break;
        case 'm': op.min_block = atoi(optarg); break;
        case 'p':
            if (fastmm_prec_parse(optarg, &op.prec)) {
                fprintf(stderr, "tg matmul: %s\n", tg_errmsg());
                return 2;
            }
            break;
        case 'r':
            reps = atoi(optarg);
            if (reps < 1 || reps > 64) {
                fprintf(stderr, "tg matmul: --reps must be 1..64\n");
                return 2;
            }
            break;
        case 'c': cpu = 1; break;
        case 'S': seed = strtoull(optarg, NULL, 10); break;
        default: fputs(use, stderr); return 2;
        }
    }
    if (argc - optind != 2) {
        fputs(use, stderr);
        return 2;
    }
    tg_fact *f = fastmm_load(argv[optind], argv[optind + 1]);
    fastmm_plan *p = f ? fastmm_plan_new(f, &op) : NULL;
    tg_fact_free(f);
    if (!p) {
        fprintf(stderr, "tg matmul: %s\n", tg_errmsg());
        return 2;
    }
    int rc;
#ifdef TG_HAVE_CUDA
    if (!cpu && fastmm_cuda_device_count() > 0) rc = run_gpu(p, M, K, N, reps, seed);
    else
#endif
    {
        (void)cpu;
        if (op.prec != FASTMM_FP32) printf("(CPU path: fp32)\n");
        rc = run_cpu(p, M, K, N, reps, seed);
    }
    if (rc < 0) fprintf(stderr, "tg matmul: %s\n", tg_errmsg());
    fastmm_plan_free(p);
    return rc < 0 ? 2 : rc;
}
