/* Attention paths of the CUDA backend, all on the packed token-major layout [N, L, H, D]:
 *   TGC_ATTN_WARP:  fused kernels (kernels.cu), one warp per query row; no logits in memory.
 *                   Best for this network's short sequences (2S tokens, n_steps queries).
 *   TGC_ATTN_GEMM:  batched GEMMs over N*H (cuBLASLt strided batches) with a softmax kernel;
 *                   keeps the probabilities [N H, Lx, Ly] for backward. Any length.
 *   TGC_ATTN_CUDNN: cuDNN's SDPA (cudnn_sdpa.cu), where the library accepts the shape.
 * tgc_attention_* pick the path and fall back from cuDNN when it rejects a shape. */
#include "learner/cuda/attn.h"

static int split3(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                  const bf16 *v, bf16 *Qh, bf16 *Kh, bf16 *Vh)
{
    if (tgc_heads_split(st, q, s->sq, s->ldq, Qh, s->N, s->Lx, s->H, s->D) ||
        tgc_heads_split(st, k, s->sk, s->ldk, Kh, s->N, s->Ly, s->H, s->D) ||
        tgc_heads_split(st, v, s->sk, s->ldk, Vh, s->N, s->Ly, s->H, s->D))
        return -1;
    return 0;
}

size_t tgc_attn_gemm_scratch(const tgc_attn_shape *s)
{
    size_t nh = (size_t)s->N * s->H;
    size_t e = nh * (size_t)s->D * (2 * (size_t)s->Lx + 2 * (size_t)s->Ly) * sizeof(bf16);
    size_t l = nh * (size_t)s->Lx * (size_t)s->Ly;
    return e * 2 + l * (sizeof(float) + sizeof(bf16)) + 4096;
}

int tgc_attn_fwd_gemm(tgc_gemm *g, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                      const bf16 *k, const bf16 *v, bf16 *o, bf16 *P, void *scratch)
{
    if (s->kv_div != 1 || s->q_off != 0)
        return tg_fail("batched-GEMM attention: shared or offset keys unsupported");
    long nh = (long)s->N * s->H, Lx = s->Lx, Ly = s->Ly, D = s->D;
    bf16 *Qh = (bf16 *)scratch, *Kh = Qh + nh * Lx * D, *Vh = Kh + nh * Ly * D,
         *Oh = Vh + nh * Ly * D;
    float *S = (float *)(Oh + nh * Lx * D + 128);
    S = (float *)(((uintptr_t)S + 255) & ~(uintptr_t)255);
    if (split3(st, s, q, k, v, Qh, Kh, Vh))
        return -1;
    if (tgc_gemm_batched(g, st, 0, 1, Lx, Ly, D, Qh, D, Lx * D, Kh, D, Ly * D, S, TGC_F32, Ly,
                         Lx * Ly, nh, 1.f, 0.f) ||
        tgc_softmax_fwd(st, S, P, nh, (int)Lx, (int)Ly, s->scale, s->causal) ||
        tgc_gemm_batched(g, st, 0, 0, Lx, D, Ly, P, Ly, Lx * Ly, Vh, D, Ly * D, Oh, TGC_BF16, D,
                         Lx * D, nh, 1.f, 0.f) ||
        tgc_heads_merge(st, Oh, o, s->so, s->ldo, s->N, s->Lx, s->H, s->D))
        return -1;
    return 0;
}

int tgc_attn_bwd_gemm(tgc_gemm *g, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                      const bf16 *k, const bf16 *v, const bf16 *P, const bf16 *dout, bf16 *dq,
                      bf16 *dk, bf16 *dv, void *scratch)
{
    long nh = (long)s->N * s->H, Lx = s->Lx, Ly = s->Ly, D = s->D;
    bf16 *Qh = (bf16 *)scratch, *Kh = Qh + nh * Lx * D, *Vh = Kh + nh * Ly * D,
         *dOh = Vh + nh * Ly * D;
    bf16 *dQh = dOh + nh * Lx * D, *dKh = dQh + nh * Lx * D, *dVh = dKh + nh * Ly * D;
    float *dP = (float *)(dVh + nh * Ly * D + 128);
    dP = (float *)(((uintptr_t)dP + 255) & ~(uintptr_t)255);
    bf16 *dS = (bf16 *)(dP + nh * Lx * Ly + 64);
    dS = (bf16 *)(((uintptr_t)dS + 255) & ~(uintptr_t)255);
    if (split3(st, s, q, k, v, Qh, Kh, Vh) ||
        tgc_heads_split(st, dout, s->so, s->ldo, dOh, s->N, s->Lx, s->H, s->D))
        return -1;
    if (tgc_gemm_batched(g, st, 0, 1, Lx, Ly, D, dOh, D, Lx * D, Vh, D, Ly * D, dP, TGC_F32, Ly,
                         Lx * Ly, nh, 1.f, 0.f) ||
        tgc_softmax_bwd(st, P, dP, dS, nh, (int)Lx, (int)Ly, s->scale) ||
        tgc_gemm_batched(g, st, 0, 0, Lx, D, Ly, dS, Ly, Lx * Ly, Kh, D, Ly * D, dQh, TGC_BF16,
                         D, Lx * D, nh, 1.f, 0.f) ||
        tgc_gemm_batched(g, st, 1, 0, Ly, D, Lx, dS, Ly, Lx * Ly, Qh, D, Lx * D, dKh, TGC_BF16,
                         D, Ly * D, nh, 1.f, 0.f) ||
        tgc_gemm_batched(g, st, 1, 0, Ly, D, Lx, P, Ly, Lx * Ly, dOh, D, Lx * D, dVh, TGC_BF16,
                         D, Ly * D, nh, 1.f, 0.f) ||
        tgc_heads_merge(st, dQh, dq, s->sq, s->ldq, s->N, s->Lx, s->H, s->D) ||
        tgc_heads_merge(st, dKh, dk, s->sk, s->ldk, s->N, s->Ly, s->H, s->D) ||
        tgc_heads_merge(st, dVh, dv, s->sk, s->ldk, s->N, s->Ly, s->H, s->D))
        return -1;
    return 0;
}
