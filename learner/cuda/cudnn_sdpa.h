/* cuDNN SDPA forward and backward (cudnn_sdpa.cu). C++ only. */
#ifndef TG_CUDA_CUDNN_SDPA_H
#define TG_CUDA_CUDNN_SDPA_H

#include "learner/cuda/cu_common.h"

typedef struct tgc_sdpa tgc_sdpa;

/* NULL with a message when cuDNN is not 9.x or cannot start. */
tgc_sdpa *tgc_sdpa_new(void);
void tgc_sdpa_free(tgc_sdpa *sd);
/* o and lse (natural-log logsumexp of the scaled logits, [N, H, Lx]) for shape s. 0 done,
 * 1 rejected (no cuDNN engine for this shape, or kv_div != 1: use another path), -1 error. */
int tgc_sdpa_fwd(tgc_sdpa *sd, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                 const bf16 *k, const bf16 *v, bf16 *o, float *lse);
/* Whether tgc_sdpa_fwd has a cuDNN plan for shape s (it ran, or will run, through cuDNN). */
int tgc_sdpa_fwd_took(const tgc_sdpa *sd, const tgc_attn_shape *s);
/* dq, dk, dv (laid out like q, k, v) from the forward's o, its gradient dout (laid out like o) and
 * stats (the lse above). 0 done, 1 rejected (no cuDNN engine for this shape, kv_div != 1,
 * Lx = Ly = 1: nothing written, use another path), -1 error. */
int tgc_sdpa_bwd(tgc_sdpa *sd, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                 const bf16 *k, const bf16 *v, const bf16 *o, const bf16 *dout, const float *stats,
                 bf16 *dq, bf16 *dk, bf16 *dv);

#endif
