/* fastmm internals shared by the CPU path (fastmm.c) and the CUDA path (fastmm_cuda.cu). */
#ifndef TG_FASTMM_INT_H
#define TG_FASTMM_INT_H

#include "fastmm/fastmm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A sparse linear map from nin input blocks to nout output blocks, rows in CSR form:
 * out[o] = sum_{e in ptr[o]..ptr[o+1]} val[e] * in[idx[e]]. */
typedef struct fastmm_csr {
    int nin, nout, nnz;
    int *ptr; /* nout + 1 */
    int *idx; /* nnz */
    float *val;
} fastmm_csr;

/* Direct operands of a level: a term whose A operand is a single block times +-2^k (Strassen:
 * m3 = A11 (B12 - B22)) needs no combination: the product reads the block in place and the
 * factor moves into the products' coefficients in c (exact: a power of two). Likewise for B.
 * And products written straight into C: a product that reaches a single C block (Strassen: m6
 * only C22, m7 only C11) is written into that block by its GEMM, at most one per block, its
 * coefficient (+-2^k) moved into an operand the combinations compute; the block's C combination
 * then adds the other products to what the GEMM wrote (no temporary for that product).
 *   da[r], db[r]: the A / B block term r reads in place, or -1
 *   dc[r]: the C block product r is written into, or -1; mc[r]: else its cell among the
 *          products kept in temporaries (0..R-ndc-1), -1 for the written ones
 *   cacc[o]: whether C block o holds a product written into it (its combination accumulates)
 *   a, b: the level's maps with the in-place terms' rows left empty (nothing to write) and the
 *         written products' factors folded in
 *   c: the level's c map with the factors folded in (written products: coefficient 1)
 *   cg: c without the written products, inputs numbered by cell (the GPU's C combination)
 * Used only where the block grid divides the matrices exactly (no virtual padding). */
typedef struct fastmm_direct {
    int *da, *db, *dc, *mc, *cacc;
    int nda, ndb, ndc;
    fastmm_csr a, b, c, cg;
    void *dev; /* CUDA path's copy, or NULL */
} fastmm_direct;

/* One applied level count: its factorization and the three maps
 *   a: n*m A blocks (i*m+j)  -> R operands S_r
 *   b: m*p B blocks (j*p+k)  -> R operands T_r
 *   c: R products M_r        -> n*p C blocks (i*p+k, row-major grid)
 * with the denominator folded into the coefficients; dir: its direct operands (NULL: none). */
typedef struct fastmm_level {
    tg_fact *f;
    fastmm_csr a, b, c;
    void *dev; /* CUDA path's copy (fastmm_cuda.cu), or NULL */
    fastmm_direct *dir;
} fastmm_level;

#define FASTMM_LEVELS_MAX 4

/* A configuration: levels, row panels, combinations on the high-priority stream, direct
 * operands, combination kernel (0 staged, 1 streaming, 2 deep streaming, 3 bulk; fastmm_cuda.cu),
 * and with direct
 * operands the early start (the first panel's terms whose B operand is read in place are
 * multiplied while B's combination runs, instead of after it), and the most thread blocks of a
 * combination beside products (0: no limit; opts.comb_blocks). */
typedef struct fastmm_cfg {
    int levels, panels, prio, direct, comb, early, blocks;
    int green; /* 0, or the SMs of the combinations beside products (opts.green) */
    int overlap; /* consecutive panels' products on two streams (opts.overlap) */
    int tail;    /* the products' GEMMs in balanced waves (opts.tail) */
    int fused; /* 0, or the fused products' variant (1-4; the others do not apply then) */
} fastmm_cfg;

/* The configuration chosen by measurement (fastmm_tune_cuda) for one product shape, and every
 * candidate's time (for reports). */
#define FASTMM_TUNE_CAND 48
/* how many of the grid's fastest configurations the tuner refines (streaming, direct, ...) */
#define FASTMM_TUNE_BASES 2
typedef struct fastmm_tuned {
    long M, K, N;
    int levels, panels, prio, direct, comb, early, blocks, fused, green, overlap, tail;
    int ncand;
    fastmm_cfg cand[FASTMM_TUNE_CAND];
    float cand_ms[FASTMM_TUNE_CAND];
    float runoff_ms[FASTMM_TUNE_CAND]; /* the runoff's score (FASTMM_RUNOFF_RANK), 0 if not in it */
} fastmm_tuned;
/* The runoff after the candidates' single timings: the fastest few, timed again in interleaved
 * rounds; each scored by its FASTMM_RUNOFF_RANK-th fastest round (0-based: the fifth of seven,
 * so a plan wins only if it is fast in most rounds, not in a lucky half), the lowest chosen. */
#define FASTMM_RUNOFF 3
#define FASTMM_RUNOFF_ROUNDS 7
#define FASTMM_RUNOFF_RANK 4
#define FASTMM_TUNED_MAX 32

struct fastmm_plan {
    tg_fact *base;
    tg_fact *inner;
    fastmm_opts opts;
    fastmm_level *lv[FASTMM_LEVELS_MAX + 1];
    fastmm_tuned tuned[FASTMM_TUNED_MAX];
    int ntuned;
};

/* The tuned entry for a shape, or NULL. */
const fastmm_tuned *fastmm_plan_tuned(const fastmm_plan *p, long M, long K, long N);
/* Levels by the size rule alone (ignores tuning). */
int fastmm_plan_levels_rule(const fastmm_plan *p, long M, long K, long N);

/* Builds (once) and returns the level structure, or NULL with a message. */
fastmm_level *fastmm_plan_level(fastmm_plan *p, int levels);

/* Whether the direct operands can be used for this geometry: the level has some and the grid
 * divides M, K, N exactly. */
int fastmm_direct_fits(const fastmm_level *l, long M, long K, long N);

#ifdef TG_HAVE_CUDA
void fastmm_cuda_level_release(void *dev);
#endif

/* The fused products' kernel (opts.fused): operand terms per product, C blocks per product, C
 * blocks in all. */
#define FASTMM_FUSED_TERMS 4
#define FASTMM_FUSED_TARGETS 8
#define FASTMM_FUSED_MAXC 1024

/* Whether the fused products' kernel of this variant takes this product with `levels` levels of
 * the plan (the shape rule of fastmm_plan_fused, for any variant and level count). */
int fastmm_fused_fits_shape(fastmm_plan *p, int variant, int levels, long M, long K, long N);

#ifdef TG_HAVE_CUDA
/* Block products run by the fused kernel so far (tests). */
extern long fastmm_cuda_nfused;
#endif

#ifdef TG_HAVE_CUDA
/* The enumeration's cost bound (fastmm_cuda_gemm_configs; default ~3000 ms): a shape's search
 * times every enumerated configuration where two runs each at its default kernel's time fit in
 * it, else screens them on fewer rows and times the 3 fastest there (tests set 0 or a large
 * bound). */
void fastmm_cuda_gemm_configs_budget(fastmm_cuda *c, double ms);
/* Tests: the kernel search keeps a cuBLASLt kernel even where cuBLAS's default is faster, and
 * a balanced split (opts.tail) even where the whole kernel is faster, so that the split runs
 * on any shape it fits (shapes searched from now on). */
void fastmm_cuda_tail_force(fastmm_cuda *c, int on);
#endif

#ifdef TG_HAVE_CUDA
/* Launches of the bulk combination kernel so far (opts.comb 3; tests check that it ran where it
 * applies, since elsewhere the streaming kernel stands in for it). */
extern long fastmm_cuda_nbulk;
/* Launches of the streaming kernels with fewer than 256 threads a block (opts.comb_threads;
 * tests check that the thin blocks ran). */
extern long fastmm_cuda_nthin;
/* Runs on green contexts so far (opts.green; tests check that they ran). */
extern long fastmm_cuda_ngreen;
/* Runs with consecutive panels' products on two streams so far (opts.overlap; tests). */
extern long fastmm_cuda_noverlap;
/* GEMMs run as a balanced split so far (opts.tail; tests). */
extern long fastmm_cuda_ntail;
/* Runs with the block products at high priority, the combinations at normal (opts.priority 2;
 * tests). */
extern long fastmm_cuda_nprodfirst;
#endif

#ifdef __cplusplus
}
#endif

#endif
