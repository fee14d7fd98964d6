/* fastmm: run a matrix multiplication factorization as a fast block algorithm.
 *
 * Given a factorization of T(n,m,p) of rank R (common/fact.h, convention T[i*m+j][j*p+k][k*n+i]),
 * C = A B (row-major fp32, A M x K, B K x N) is computed as
 *   A split into n x m blocks A_ij, B into m x p blocks B_jk, C into n x p blocks C_ik,
 *   S_r = sum_ij u[r][i*m+j] A_ij,  T_r = sum_jk v[r][j*p+k] B_jk,  M_r = S_r T_r,
 *   C_ik = sum_r w[r][k*n+i] M_r      (coefficients divided by the common denominator D).
 * Further levels apply the same scheme inside each block product; they are run as one level of
 * the Kronecker product factorization (f (x) inner (x) ...), which computes exactly the same
 * products with fewer passes over memory. Sizes not divisible by the block grid are zero-padded
 * virtually: blocks are read with bounds checks, never copied.
 *
 * Two paths compute the same algorithm: the CPU path (OpenBLAS cblas_sgemm for block products,
 * one term at a time, little memory) for tests and machines without a GPU; the CUDA path (fused
 * combination kernels + batched cuBLAS products), declared below under TG_HAVE_CUDA. */
#ifndef TG_FASTMM_H
#define TG_FASTMM_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "common/fact.h"

typedef enum fastmm_prec {
    FASTMM_FP32 = 0, /* true fp32 everywhere (cuBLAS pedantic math, no TF32) */
    FASTMM_TF32 = 1, /* block products on TF32 tensor cores, fp32 combinations */
    FASTMM_BF16 = 2, /* A, B, S_r, T_r in bf16; products accumulated in fp32; C fp32 */
} fastmm_prec;

const char *fastmm_prec_name(fastmm_prec p);        /* "fp32" / "tf32" / "bf16" */
int fastmm_prec_parse(const char *s, fastmm_prec *out);

typedef struct fastmm_opts {
    /* Number of levels: 1 = one level of f; each further level nests `inner` inside (2 = f with
     * inner inside each block product, ...); 0 = plain GEMM; -1 = automatic: as many levels (at
     * most max_levels) as keep every block side >= min_block; 0 if even one level does not. */
    int levels;
    int min_block;  /* automatic choice: smallest block side worth a level (default 1536) */
    int max_levels; /* automatic choice: upper bound (default 3) */
    const tg_fact *inner; /* factorization nested at levels >= 2; NULL = Strassen's */
    fastmm_prec prec;     /* CUDA path only; the CPU path is always fp32 */
    size_t workspace;     /* CUDA path: bytes of temporaries at most (0 = 3/4 of free memory) */
    /* CUDA path: row panels pipelined over two streams, so that the combinations of one panel
     * overlap the block products of the next (0 = automatic: the tuned choice for the shape, see
     * fastmm_tune_cuda, else 1). Panels change the products' shapes, hence cuBLAS's kernels. */
    int panels;
    /* CUDA path, fp32: while tuning, time the block products' GEMM with cuBLAS's default choice
     * and with up to this many of cuBLASLt's heuristic candidates, and keep the fastest per
     * product shape (0 = always cuBLAS's default). */
    int gemm_search;
    /* Direct operands: a term whose A (or B) operand is one block times +-2^k is multiplied
     * with the block read in place, no combination written for it (Strassen: 2 of 7 terms on
     * each side), the factor moved into the C coefficients (exact). Needs a block grid that
     * divides the matrices exactly and, on the GPU, all terms in one workspace chunk; the GPU's
     * products are then one pointer-array batched GEMM. -1 = the tuned choice
     * (fastmm_tune_cuda times both; off where not tuned, and on the CPU path), 0 = off, 1 = on
     * wherever it applies. */
    int direct;
    /* CUDA path: stream priorities of a pipelined run. 1 = the combinations of a run with
     * panels go to a high-priority stream, so that they get multiprocessors ahead of the
     * products' remaining thread blocks instead of after them; 2 = the block products go to
     * one (with panels or the early start) and the combinations stay at normal priority, so
     * that the combinations beside the products run where the products leave SMs idle (each
     * panel's last wave) rather than delaying a panel's first; 0 = equal priorities. -1 = the
     * tuned choice (fastmm_tune_cuda times 0 and 1 in its grid, 2 on the fastest pipelined
     * configuration and the fastest of another panel count; 1 where not tuned). */
    int priority;
    /* CUDA path: the block combination kernel. 0 = staged (a tile of every input block in
     * shared memory, CSR coefficients); 1 = streaming (the small side of the map in registers,
     * vector loads on the read-only path, evict-first stores; where the small side has at most
     * 32 blocks, else staged); 2 = deep streaming (the streaming kernel with the loads of
     * several rows in flight per thread and evict-first loads, so that a few thread blocks
     * beside the products reach the DRAM's rate and leave L2 to them); 3 = bulk (the streaming
     * sums with the input rows brought into shared memory by bulk asynchronous copies in up to 8
     * stages: ~200 KB in flight per thread block instead of ~64 KB in registers; fp32, aligned
     * whole input blocks only, else streaming; not tuned yet, forced only); -1 = the tuned choice
     * (fastmm_tune_cuda times streaming and deep streaming on the fastest staged configuration
     * and checks their products; staged where not tuned). */
    int comb;
    /* CUDA path, streaming kernel: the combinations that run beside block products (the next
     * panel's A, the previous panel's C, the early start's B) launched with at most this many
     * thread blocks, each looping over more rows, so that they hold a few multiprocessors for
     * longer instead of taking every one the products free for a short while (a memory-bound
     * kernel on every multiprocessor mostly waits for DRAM, which costs the products the same
     * multiprocessor time). -1 = the tuned choice (fastmm_tune_cuda times 1/2, 1 and 2 blocks
     * per multiprocessor on the fastest configuration; no limit where not tuned), 0 = no limit,
     * N = at most N. */
    int comb_blocks;
    /* CUDA path, streaming kernels: threads per thread block of the combinations that run
     * beside block products (0 = 256, the default; 32, 64, 128). The idea: a block of one or two
     * warps might fit on a multiprocessor beside cuBLAS's SGEMM block instead of displacing it.
     * Measured on the H100 (docs/performance.md, 2026-12-07 04:03): no gain, so forced only. */
    int comb_threads;
    /* CUDA path: green contexts for a pipelined run (panels > 1 or the early start): the
     * block products on a green context of every SM but N, the combinations beside them on
     * one of the other N (fastmm_cuda.cu, green_make; the split keeps the device's SM
     * alignment, 8 on compute capability 9.0). Why: cuBLAS's 256 x 128 SGEMM tiles of a panel's
     * products come in multiples of 128 (896 per 1024-row panel of one-level Strassen at 8192),
     * so on 128 SMs they run in whole waves, where on the H100's 132 the last wave of each
     * panel leaves 28 idle and the combinations take multiprocessors the products' next
     * blocks wait for. -1 = the tuned choice (fastmm_tune_cuda tries N = the SMs above the
     * largest multiple of 16 below the device's count, 4 of 132, on the two fastest panel
     * counts; off where not tuned), 0 = off (default: on the H100 at 8192 it gained nothing,
     * docs/performance.md 2026-12-07 07:51), N = N SMs for the combinations. Needs a driver
     * with green contexts (CUDA 12.4); where missing the tuner skips it and a forced N fails. */
    int green;
    /* CUDA path: the block products of consecutive panels (panels > 1) on two streams, so that
     * one panel's products start in the last wave of the previous panel's instead of after it
     * (described X). Why: a panel's products come as whole thread blocks of cuBLAS's SGEMM
     * (896 of 256 x 128 per 1024-row panel of one-level Strassen at 8192: 6.8 waves on 132
     * SMs), and on one stream each panel's last wave leaves SMs idle (28 of 132) that nothing
     * else is queued for; on two, the next panel's blocks (its A combined already) take them,
     * so the panels' products run as one stream of blocks and the combinations beside them
     * fill the one wave that rounding up leaves at the end. -1 = the tuned choice
     * (fastmm_tune_cuda tries it on the fastest pipelined configuration, at the other
     * priority and with twice the panels; off where not tuned), 0 = off (default: on the H100
     * at 8192 it was slower, docs/performance.md 2026-12-07 08:09), 1 = on. */
    int overlap;
    /* CUDA path, fp32: each block product's GEMM in balanced waves (described T): its last
     * rows (one or two of its kernel's row tiles) by a kernel of tiles a quarter the size or
     * less, launched just before the rest on a low-priority stream while the rest runs at high
     * priority, so that the small tiles take the SMs the large ones leave idle in their last
     * wave. Why: a GEMM of whole 256 x 128 tiles takes whole waves (the 7 products of one-level
     * Strassen at 8192 are 3584 tiles, 27.15 waves on the H100's 132 SMs, timed as 28); the
     * sums of each element are those of one kernel still. Per GEMM shape the tuner's kernel
     * search times the split (tail rows x small tiles) and keeps it only if faster than the
     * shape's fastest whole kernel. -1 = the tuned choice (fastmm_tune_cuda tries it on the
     * fastest configuration and the fastest with one panel; off where not tuned),
     * 0 = off, 1 = on where the search kept a split. Not with green contexts or opts.overlap. */
    int tail;
    /* CUDA path, fp32: fused products. 1-4 = each block product by fastmm's own SIMT GEMM
     * kernel (tile shape by variant: fastmm_fused_tile), which sums its A and B terms while
     * loading its operand tiles and adds its product into the C blocks in its epilogue (no
     * combination passes, no temporaries); where the shape allows it (one level's blocks in whole
     * tiles, at most 4 terms per operand and 8 C blocks per product, rows 16-byte aligned), else
     * the usual path. 0 = off (default): it pays only if the kernel matches cuBLAS's SGEMM
     * (fastmm_gemm_cuda_own measures that); -1 = tuned: fastmm_tune_cuda times every variant
     * that fits on the fastest other configuration's levels, checks its product against that
     * configuration's and keeps it only if faster. */
    int fused;
} fastmm_opts;

/* Defaults: levels -1, min_block 1536, max_levels 3, inner NULL, FP32, workspace 0, panels 0,
 * gemm_search 4, direct -1, priority -1, comb -1, comb_blocks -1, comb_threads 0, green 0,
 * overlap 0, tail -1, fused 0. */
fastmm_opts fastmm_opts_default(void);

/* Kronecker product of two factorizations: T(n1 n2, m1 m2, p1 p2) of rank R1 R2 with
 * denominator D1 D2; row (i1, i2) of the combined grid is i1*n2 + i2 (outer block i1, inner
 * block i2 inside it), likewise for the other modes. Integer arithmetic only. */
tg_fact *fastmm_kron(const tg_fact *outer, const tg_fact *inner);

/* Loads an algorithm named on a command line: FILE KEY from a factorization file (HDF5 or JSON,
 * common/factio.h), or FILE "builtin" with KEY "strassen" or "naive:N,M,P". */
tg_fact *fastmm_load(const char *file, const char *key);

typedef struct fastmm_plan fastmm_plan; /* opaque */

/* A plan keeps the factorization (copied; must be integer arithmetic and exact, which is
 * verified here) and the options; the level factorizations, their device copies and the tuned
 * choices are cached in it on first use, so one plan must not be used by two threads at once. */
fastmm_plan *fastmm_plan_new(const tg_fact *f, const fastmm_opts *opts);
void fastmm_plan_free(fastmm_plan *p);
const fastmm_opts *fastmm_plan_opts(const fastmm_plan *p);
const tg_fact *fastmm_plan_base(const fastmm_plan *p);

/* Levels the plan uses for an M x K by K x N product (resolves levels = -1). */
int fastmm_plan_levels(const fastmm_plan *p, long M, long K, long N);
/* The factorization applied for that many levels (0 -> NULL), owned by the plan; NULL with a
 * message if it cannot be built (e.g. grid dimension over TG_MAX_DIM is fine here, but the rank
 * would exceed FASTMM_MAX_RANK). */
#define FASTMM_MAX_RANK 4096
const tg_fact *fastmm_plan_level_fact(fastmm_plan *p, int levels);

/* Row panels the CUDA path uses for this shape (the option, else the tuned choice, else 1). */
int fastmm_plan_panels(const fastmm_plan *p, long M, long K, long N);
/* Whether the CUDA path uses direct operands for this shape / its stream priorities (0, 1 the
 * combinations first, 2 the products first: opts.priority), from the options, else the tuned
 * choices (direct also needs the geometry to allow it). */
int fastmm_plan_direct(fastmm_plan *p, long M, long K, long N);
int fastmm_plan_priority(const fastmm_plan *p, long M, long K, long N);
/* With direct operands on the CUDA path: whether the first panel's products whose B operand is
 * read in place start before B's combination, overlapping it (the tuned choice, else 1). */
int fastmm_plan_early(const fastmm_plan *p, long M, long K, long N);
/* The combination kernel the CUDA path uses for this shape (opts.comb, else the tuned choice,
 * else 0): 0 staged, 1 streaming, 2 deep streaming, 3 bulk. */
int fastmm_plan_comb(const fastmm_plan *p, long M, long K, long N);
const char *fastmm_comb_name(int comb); /* "staged" / "stream" / "deep stream" / "bulk" */
/* The fused kernel's tile for a variant (1: 128 x 128 x 8, 2: 128 x 128 x 16, 3: 128 x 256 x
 * 8, 4: 256 x 128 x 8; rows x columns x k-step): 0, or -1 with a message. */
#define FASTMM_FUSED_VARIANTS 4
int fastmm_fused_tile(int variant, int *bm, int *bn, int *bk);
/* The fused kernel variant the CUDA path runs this shape's block products with, 0 if none
 * (opts.fused, or with -1 the tuned choice; fp32, the level's geometry and terms within the
 * fused kernel's limits; the matrices' alignment is checked at the call). */
int fastmm_plan_fused(fastmm_plan *p, long M, long K, long N);
/* The most thread blocks of a combination that runs beside block products (opts.comb_blocks,
 * else the tuned choice, else 0: no limit). */
int fastmm_plan_comb_blocks(const fastmm_plan *p, long M, long K, long N);
/* The SMs of the combinations beside products on green contexts (opts.green, else the tuned
 * choice, else 0: no green contexts). */
int fastmm_plan_green(const fastmm_plan *p, long M, long K, long N);
/* Whether consecutive panels' block products run on two streams (opts.overlap, else the tuned
 * choice, else 0). */
int fastmm_plan_overlap(const fastmm_plan *p, long M, long K, long N);
/* Whether the block products' GEMMs run in balanced waves (opts.tail, else the tuned choice,
 * else 0). */
int fastmm_plan_tail(const fastmm_plan *p, long M, long K, long N);
/* Terms of the applied level (levels >= 1) whose A / B operand is read in place, and products
 * written straight into a C block, when direct operands are used; -1 with a message if the
 * level cannot be built. */
int fastmm_plan_direct_terms(fastmm_plan *p, int levels, int *na, int *nb, int *nc);
/* One line describing what tuning measured for this shape: every candidate configuration and
 * its time ("L1 P1 18.91 | L1 P2h 18.70 | L1 P2h S 18.10 | L1 P2h D E S 18.02 ...";
 * h: the combinations at high priority, p: the products (opts.priority 1 / 2);
 * D: direct operands, E: their early start, S: the streaming combination kernel, bN: the
 * combinations beside products limited to N thread blocks, GN: green contexts with N SMs for
 * those combinations, X: consecutive panels' products on two streams); 0, or -1 if not tuned. */
int fastmm_plan_tune_report(const fastmm_plan *p, long M, long K, long N, char *buf, size_t len);

/* Block geometry for a product with a given effective factorization (dims d): block sides
 * bm = ceil(M/n), bk = ceil(K/m), bn = ceil(N/p), rounded up to multiples of 8 when the
 * division is not exact (virtual zero padding). */
typedef struct fastmm_geom {
    long M, K, N;
    long bm, bk, bn;
} fastmm_geom;
fastmm_geom fastmm_geometry(tg_dims d, long M, long K, long N);

/* Multiply-adds of the algorithm for these sizes (block products only) and of plain GEMM. */
double fastmm_flops(fastmm_plan *p, long M, long K, long N);

/* CPU path: C (M x N, ldc) = A (M x K, lda) B (K x N, ldb), row-major fp32. Uses
 * fastmm_plan_levels(); levels 0 is one cblas_sgemm. Returns 0, or -1 with a message. */
int fastmm_sgemm_cpu(fastmm_plan *p, long M, long N, long K, const float *A, long lda,
                     const float *B, long ldb, float *C, long ldc);

/* Fp64 reference C = A B (fp32 inputs, double accumulation through cblas_dgemm) and error
 * helpers for accuracy reports. */
int fastmm_ref_dgemm(long M, long N, long K, const float *A, const float *B, double *C);
/* max_ij |C_ij - R_ij| / max_ij |R_ij| (row-major, C with leading dimension ldc). */
double fastmm_max_rel_err(long M, long N, const float *C, long ldc, const double *R);

/* Worst-case amplification of the algorithm: the largest sum over terms and products of
 * |u||v||w| reaching one output entry, relative to the naive algorithm (1.0). Tests scale
 * their tolerances by it. */
double fastmm_growth(const tg_fact *f);

/* Standalone readable source of the algorithm (one level of f) as a malloc'd string:
 * format "c" (cblas_sgemm for the block products) or "cuda" (CUDA kernels + cuBLAS). The
 * function it defines is named `name` (a C identifier). NULL with a message on error. */
char *fastmm_export(const tg_fact *f, const char *format, const char *name);

/* Enumerated cuBLASLt configurations per GEMM shape by default (fastmm_cuda_gemm_configs):
 * every configuration there is (35 for pedantic fp32 on the H100), large shapes screened on
 * fewer rows; 0 keeps the heuristic's candidates only. */
#define FASTMM_GEMM_CONFIGS 64

#ifdef TG_HAVE_CUDA
/* CUDA path. A context owns a cuBLAS handle, two streams and a device workspace (grown on
 * demand), on the device current when it was made. All pointers are device pointers; calls are
 * asynchronous and ordered on the context's stream (fastmm_cuda_stream). */
typedef struct fastmm_cuda fastmm_cuda;

/* Number of usable CUDA devices (0 when there is no GPU or driver; never an error). */
int fastmm_cuda_device_count(void);
fastmm_cuda *fastmm_cuda_new(void);
void fastmm_cuda_free(fastmm_cuda *c);
/* The context's stream (a cudaStream_t) so callers can order their own work with it. */
void *fastmm_cuda_stream(fastmm_cuda *c);
int fastmm_cuda_sync(fastmm_cuda *c);

/* C = A B with the plan's algorithm and precision. Types: A and B are float for FP32/TF32 and
 * bf16 (__nv_bfloat16, passed as void*) for BF16; C is always float. */
int fastmm_gemm_cuda(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                     long lda, const void *B, long ldb, float *C, long ldc);
/* Measures the candidate configurations for this product shape on the given buffers (C is
 * overwritten): the row panels (1, 2, 4), for 2 and 4 with and without the high-priority
 * combination stream, 8 on it (blocks of 4096 rows and more), with levels -1 plain GEMM and the
 * levels around the size rule's choice,
 * then the fastest of those with direct operands where they apply; the plan remembers the
 * fastest for this shape and later calls use it.
 * In fp32 each candidate's warm-up run also picks the block products' GEMM kernel per product
 * shape (opts.gemm_search; kept in the context). Costs a few products per candidate;
 * synchronizes. */
int fastmm_tune_cuda(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                     long lda, const void *B, long ldb, float *C, long ldc);
/* The baseline: one cuBLAS GEMM in the given precision (FP32: pedantic SGEMM), cuBLAS's
 * default kernel choice. */
int fastmm_gemm_cuda_plain(fastmm_cuda *c, fastmm_prec prec, long M, long N, long K,
                           const void *A, long lda, const void *B, long ldb, float *C, long ldc);
/* The same GEMM with the kernel chosen by measurement (fp32 only; other precisions: as
 * fastmm_gemm_cuda_plain): on the first call for a shape, cuBLAS's default and up to `search`
 * cuBLASLt heuristic candidates are timed (synchronizes) and the fastest is kept in the
 * context. For judging how much of a speedup is only kernel selection. */
int fastmm_gemm_cuda_best(fastmm_cuda *c, fastmm_prec prec, int search, long M, long N, long K,
                          const void *A, long lda, const void *B, long ldb, float *C, long ldc);
/* fastmm's own fp32 SIMT GEMM (the fused products' kernel of that variant with one term per
 * operand): M, N, K multiples of the variant's tile, leading dimensions of 4, 16-byte aligned
 * matrices; -1 with a message otherwise. For measuring it against cuBLAS. */
int fastmm_gemm_cuda_own(fastmm_cuda *c, int variant, long M, long N, long K, const float *A,
                         long lda, const float *B, long ldb, float *C, long ldc);
/* Every later GEMM kernel search of this context (tuning's per product shape,
 * fastmm_gemm_cuda_best's) also times up to n of the kernel configurations cuBLASLt accepts for
 * the shape, enumerated (algorithm ids x tiles x stages x CTA swizzling x custom options, no
 * split-K), besides the heuristic's few candidates: all of them where that costs at most ~3 s
 * (two runs each at the default kernel's time), else they are screened on fewer rows and the 3
 * fastest there run on the whole shape.
 * 0 = the heuristic's candidates only; default FASTMM_GEMM_CONFIGS. */
void fastmm_cuda_gemm_configs(fastmm_cuda *c, int n);
/* Prints the GEMM kernel searches done since the last call (shape, default and best time,
 * which won), one line each, indented by `indent`. */
void fastmm_cuda_search_report(fastmm_cuda *c, FILE *f, const char *indent);
/* Times the phases of one product with the plan's levels (and direct operands) for this shape,
 * one row panel, all terms in one chunk: ms[0..3] = combine A, combine B, block products,
 * combine C; bytes[0..3]
 * the DRAM traffic the combinations cannot avoid (inputs read once + outputs written once) and,
 * for [2], the products' floating-point operations. Synchronizes. -1 with a message if the
 * shape needs several chunks or the plan uses plain GEMM there. */
int fastmm_cuda_phases(fastmm_cuda *c, fastmm_plan *p, long M, long N, long K, const void *A,
                       long lda, const void *B, long ldb, float *C, long ldc, double ms[4],
                       double bytes[4]);
/* The same with the combination kernel given (0 staged, 1 streaming, 2 deep streaming, -1 the
 * plan's), so that a benchmark can show every kernel's bandwidth whichever tuning chose. With
 * opts.comb_blocks > 0 (forced) the streaming kernels run on at most that many thread blocks
 * here, in every phase: their rate per block. */
int fastmm_cuda_phases_comb(fastmm_cuda *c, fastmm_plan *p, int comb, long M, long N, long K,
                            const void *A, long lda, const void *B, long ldb, float *C, long ldc,
                            double ms[4], double bytes[4]);
/* Device helpers for benchmarks and tests: fp32 -> bf16 conversion, fp64 reference GEMM of fp32
 * (or bf16-valued, when bf16 != 0) inputs, and max |C - R| / max |R| computed on the device. */
int fastmm_cuda_fill_normal(fastmm_cuda *c, float *x, size_t n, uint64_t seed); /* N(0,1) */
int fastmm_cuda_f32_to_bf16(fastmm_cuda *c, const float *x, void *y, size_t n);
int fastmm_cuda_ref_dgemm(fastmm_cuda *c, long M, long N, long K, const float *A,
                          const float *B, double *R);
int fastmm_cuda_max_rel_err(fastmm_cuda *c, long M, long N, const float *C, long ldc,
                            const double *R, double *err);
#endif

#ifdef __cplusplus
}
#endif

#endif
