/* Launchers of netk.cu (network-specific data movement). C++ only. */
#ifndef TG_CUDA_NETK_H
#define TG_CUDA_NETK_H

#include "learner/cuda/cu_common.h"

/* out [B S S, ldo] bf16: the S T + 1 input features of grid g, zero in columns up to ldo (a
 * multiple of 8 keeps the input projection's GEMMs on aligned, fast kernels) */
int tgc_torso_input(cudaStream_t st, const float *tens, const float *scal, int B, int S, int T,
                    int ns, int g, const float *wsp, const float *bsp, bf16 *out, int ldo);
int tgc_grid_copy(cudaStream_t st, float *G, float *dense, int B, int S, int c, int g,
                  int to_grid);
int tgc_stage(cudaStream_t st, float *G, float *X, int B, int S, int c, int m1, int m2, int dir);
/* gather (G -> X) that also writes a dense bf16 copy Xb */
int tgc_stage_bf(cudaStream_t st, float *G, float *X, bf16 *Xb, int B, int S, int c, int m1,
                 int m2);
/* From stage (a1, a2), whose output sequences are Xs, to the next stage (b1, b2) (one grid
 * shared): Xn (and its bf16 copy Xnb when given) = the next stage's sequences, the shared grid
 * taken from Xs and the entering one from G; the grid leaving goes from Xs to G. Equals a
 * scatter of Xs into G and a gather from G, with a quarter less traffic. */
/* ln (may be NULL): also y = LayerNorm(Xn row) * w + b in bf16 [rows, c] and each row's mean and
 * rstd (both or neither), the next block's first operation, from the values in registers; taken
 * for the vector widths (c = 128 .. 512, 16-byte aligned w, b; 8-byte aligned y). Returns 1 when
 * ln was asked for but not taken (the copy is done; the caller runs the LayerNorm). */
typedef struct tgc_ln_fuse {
    const float *w, *b;
    bf16 *y;
    float *mean, *rstd;
} tgc_ln_fuse;
int tgc_stage_next(cudaStream_t st, float *G, const float *Xs, float *Xn, bf16 *Xnb, int B, int S,
                   int c, int a1, int a2, int b1, int b2, const tgc_ln_fuse *ln);
int tgc_embed(cudaStream_t st, const int32_t *tok, long rows, int L, int pos_off, int P, int nin,
              const float *W, const float *b, const float *pos, float *x);
/* scratch: [nin, P] floats */
int tgc_embed_bwd(cudaStream_t st, const int32_t *tok, long rows, int L, int P, int nin,
                  const float *dx, float *dW, float *db, float *dpos, float *scratch);
int tgc_tokens_in(cudaStream_t st, const int32_t *act, int B, int L, int start, int32_t *in);
/* u [N, per]: position i's values from tg_rng stream i of *seed (a device pointer, so that a
 * captured graph takes each call's seed), bit for bit what common/rng.c's tg_rng_uniform gives
 * the CPU backend (xoshiro256** seeded by SplitMix64; the double rounded to float). */
int tgc_uniforms(cudaStream_t st, const uint64_t *seed, int N, long per, float *u);
int tgc_scalar_grad(cudaStream_t st, const float *dX, int F, const float *scal, int B, int SS,
                    int ns, float *dW, float *db);
int tgc_add_rows(cudaStream_t st, float *dst, long ldd, const float *src, long lds, long rows,
                 int n);
int tgc_sample(cudaStream_t st, const float *logits, long rows, int n, float temp, const float *u,
               long u_stride, int32_t *tok_next, int32_t *tok_out, long out_stride, float *logp,
               float *logits_out, long lo_stride);

#endif
