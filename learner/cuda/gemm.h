/* cuBLASLt GEMMs in row-major terms, with a plan cache (descriptors and the heuristic's algorithm
 * per shape) and epilogues: bias, bias+GELU (keeping the pre-activation), bias gradient. An
 * epilogue cuBLASLt rejects for a shape falls back to a plain GEMM plus a kernel of kernels.cu,
 * so callers never see the difference. C++ only. */
#ifndef TG_CUDA_GEMM_H
#define TG_CUDA_GEMM_H

#include <stdio.h>

#include "learner/cuda/cu_common.h"

typedef struct tgc_gemm tgc_gemm;

enum {
    TGC_EPI_NONE = 0,
    TGC_EPI_BIAS,      /* D = AB + beta C + bias[col] */
    TGC_EPI_GELU_BIAS, /* aux = AB + bias (bf16), D = gelu(aux); D and aux bf16 */
    TGC_EPI_BGRAD,     /* D = AB + beta C and bgrad[m] = sum_k op(A)[m, k] (weight gradients:
                          A = dY stored [rows, out] with ta = 1 gives the bias gradient) */
    TGC_EPI_DGELU,     /* D = AB * gelu'(aux): aux is the GELU pre-activation (bf16, ld = ldd),
                          read; D bf16 (the data gradient through an MLP's GELU) */
    TGC_EPI_GELU,      /* D = gelu(AB + bias), bf16, no pre-activation kept (inference) */
};

/* A GEMM in row-major terms: D[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C (C = D unless given).
 * ta/tb: 1 = the operand is stored transposed (A stored [K, M], B stored [N, K]). A and B bf16;
 * D fp32 or bf16 (ddt). bias: fp32 when D is fp32, bf16 when D is bf16. */
typedef struct tgc_mm {
    int ta, tb;
    long M, N, K;
    const bf16 *A;
    long lda;
    const bf16 *B;
    long ldb;
    void *D;
    const void *C;      /* beta != 0: C (layout of D); NULL = D in place */
    int ddt;
    long ldd;
    float alpha, beta;
    int epi;
    const void *bias;
    bf16 *aux;          /* GELU pre-activation (ld = ldd): written (GELU_BIAS) or read (DGELU) */
    float *bgrad;       /* TGC_EPI_BGRAD output [N] */
} tgc_mm;

/* Autotuning is on unless TG_CUDA_GEMM_TUNE=0: when a shape's plan is built, up to 16 of the
 * heuristic's candidates are timed on the caller's operands (outputs to scratch) and the fastest
 * is kept for the plan's life. Outputs with fewer 128 x 128 tiles than two waves of the SMs (long
 * reductions into small outputs: weight gradients) also time split-K variants of the candidates
 * (2..32 parts of at least 256 of K each, deterministic reductions, checked by
 * cublasLtMatmulAlgoCheck; at most 48 candidates in all). TG_CUDA_GEMM_SPLITK=0 leaves them out
 * (A/B runs), =force takes the fastest split-K algorithm wherever one runs (tests). */
enum { TGC_SPLITK_OFF = 0, TGC_SPLITK_ON, TGC_SPLITK_FORCE };
tgc_gemm *tgc_gemm_new(size_t workspace_bytes);
void tgc_gemm_free(tgc_gemm *g);
/* Disables the epilogues (tests compare both paths); returns the previous setting. */
int tgc_gemm_set_epilogues(tgc_gemm *g, int on);
/* Split-K variants for plans built from now on (TGC_SPLITK_*, overriding TG_CUDA_GEMM_SPLITK);
 * returns the previous setting. */
int tgc_gemm_set_splitk(tgc_gemm *g, int mode);
/* GEMMs cuBLASLt has no algorithm for (shape, alignment) run on a plain tiled kernel
 * (kernels.cu's tgc_gemm_ref), as do all of them with this on (tests; TG_CUDA_GEMM_REF=1 at
 * creation); returns the previous setting. The epilogues then run as kernels. */
int tgc_gemm_set_reference(tgc_gemm *g, int on);
/* plain GEMMs the reference kernel ran so far */
long tgc_gemm_ref_calls(const tgc_gemm *g);
/* K splits of the algorithm the last cuBLASLt call ran (1 none, 0 unknown; tests report it). */
int tgc_gemm_last_splitk(const tgc_gemm *g);
int tgc_gemm_run(tgc_gemm *g, cudaStream_t st, const tgc_mm *m);

/* Strided batched GEMM (attention's batched-GEMM path), row-major, bf16 in, fp32 or bf16 out. */
int tgc_gemm_batched(tgc_gemm *g, cudaStream_t st, int ta, int tb, long M, long N, long K,
                     const bf16 *A, long lda, long sA, const bf16 *B, long ldb, long sB, void *D,
                     int ddt, long ldd, long sD, long batch, float alpha, float beta);

/* Profile (TG_CUDA_PROFILE): events around every GEMM, charged to its plan when collected after
 * a synchronisation (keep = 0 drops them: warm-up calls); the report prints per-plan times
 * divided by per (the number of kept steps), with the tuning record of each plan (heuristic
 * candidates + split-K variants, the index taken, times, the K splits of the algorithm taken). */
int tgc_gemm_set_profile(tgc_gemm *g, int on);
void tgc_gemm_prof_collect(tgc_gemm *g, int keep);
void tgc_gemm_prof_report(const tgc_gemm *g, FILE *f, double per);

/* Counters for the report: GEMMs whose epilogue fell back to a kernel. */
long tgc_gemm_fallbacks(const tgc_gemm *g);
long tgc_gemm_fallbacks_of(const tgc_gemm *g, int epi);

#endif
