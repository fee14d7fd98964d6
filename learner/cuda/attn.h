/* Attention paths of the CUDA backend (see attn.cu). C++ only. */
#ifndef TG_CUDA_ATTN_H
#define TG_CUDA_ATTN_H

#include "learner/cuda/cu_common.h"
#include "learner/cuda/gemm.h"

enum { TGC_ATTN_WARP = 0, TGC_ATTN_GEMM = 1, TGC_ATTN_CUDNN = 2 };

/* Scratch bytes the batched-GEMM path needs for a shape (forward or backward). */
size_t tgc_attn_gemm_scratch(const tgc_attn_shape *s);
/* Batched-GEMM path: P [N H, Lx, Ly] bf16 probabilities kept for backward. kv_div must be 1. */
int tgc_attn_fwd_gemm(tgc_gemm *g, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                      const bf16 *k, const bf16 *v, bf16 *o, bf16 *P, void *scratch);
int tgc_attn_bwd_gemm(tgc_gemm *g, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                      const bf16 *k, const bf16 *v, const bf16 *P, const bf16 *dout, bf16 *dq,
                      bf16 *dk, bf16 *dv, void *scratch);

#endif
