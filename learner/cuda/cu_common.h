/* Shared by the CUDA backend's translation units (C++ only, never included by C files): error
 * checks that turn CUDA / cuBLAS / cuDNN failures into tg_fail messages, bf16 helpers, and the
 * launch wrappers of the kernels in kernels.cu. The C-callable surface is cuda_api.h. */
#ifndef TG_CU_COMMON_H
#define TG_CU_COMMON_H

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "common/err.h"
}

typedef __nv_bfloat16 bf16;

/* Each returns -1 from the enclosing function (after tg_fail) on error. */
#define CU_CHECK(x)                                                                            \
    do {                                                                                       \
        cudaError_t e_ = (x);                                                                  \
        if (e_ != cudaSuccess)                                                                 \
            return tg_fail("%s:%d: %s: %s", __FILE__, __LINE__, #x, cudaGetErrorString(e_));   \
    } while (0)
#define CU_LAUNCH_CHECK() CU_CHECK(cudaGetLastError())
#define CUBLAS_CHECK(x)                                                                        \
    do {                                                                                       \
        cublasStatus_t s_ = (x);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            return tg_fail("%s:%d: %s: cuBLAS status %d (%s)", __FILE__, __LINE__, #x, (int)s_,  \
                           cublasGetStatusString(s_));                                         \
    } while (0)

static inline unsigned cdiv(long a, long b) { return (unsigned)((a + b - 1) / b); }

/* ---- kernels.cu launchers: all on `st`, all return 0 or -1 (launch error) ---- */
enum { TGC_F32 = 0, TGC_BF16 = 1 };

/* y = LayerNorm(x) * w + b over rows of n; x fp32 (row stride ldx), y fp32 or bf16 (ydt),
 * mean/rstd [rows] saved for backward (may be NULL). */
int tgc_layernorm_fwd(cudaStream_t st, const float *x, long ldx, const float *w, const float *b,
                      void *y, int ydt, long ldy, float *mean, float *rstd, long rows, int n);
/* Backward of LayerNorm: dx (+)= dLN/dx * dy, dw/db partial sums accumulated with atomics into
 * dw, db (which the caller zeroes). dy fp32 or bf16 (dydt; row stride ldy in elements).
 * accumulate: dx += instead of =. dxb (may be NULL): also a dense bf16 copy [rows, n] of the
 * final dx. */
int tgc_layernorm_bwd(cudaStream_t st, const float *x, long ldx, const float *w, const float *mean,
                      const float *rstd, const void *dy, int dydt, long ldy, float *dx, long lddx,
                      int accumulate, bf16 *dxb, float *dw, float *db, long rows, int n);
/* y (bf16) = gelu_tanh(pre + bias) and pre (bf16) = pre + bias, in place on pre when bias != NULL */
int tgc_bias_gelu(cudaStream_t st, bf16 *pre, const bf16 *bias, bf16 *y, long rows, int n);
/* d (bf16, in place) *= gelu'(pre) */
int tgc_gelu_bwd(cudaStream_t st, bf16 *d, const bf16 *pre, long n);
/* y[r, :] += bias (fp32 or bf16 y per dt) */
int tgc_bias_add(cudaStream_t st, void *y, int dt, long ldy, const void *bias, long rows, int n);
/* out[c] (+)= sum_r x[r, c] (x fp32 or bf16), for bias gradients. */
int tgc_colsum(cudaStream_t st, const void *x, int dt, long ldx, long rows, int n, float *out,
               int accumulate);
/* D = alpha op(A) op(B) + beta C (C NULL: D in place) for `batch` GEMMs at strides sA, sB, sD,
 * in gemm.h's row-major terms (ta/tb: operand stored transposed); bf16 operands, fp32
 * accumulation, D fp32 or bf16 (ddt). A plain tiled kernel with no alignment or ld
 * requirements: gemm.cu's fallback where cuBLASLt has no algorithm, and the tests' reference. */
int tgc_gemm_ref(cudaStream_t st, int ta, int tb, long M, long N, long K, const bf16 *A, long lda,
                 long sA, const bf16 *B, long ldb, long sB, void *D, int ddt, long ldd, long sD,
                 const void *C, float alpha, float beta, long batch);
/* fp32 -> bf16 conversion of n elements; and of a strided matrix */
int tgc_f2bf(cudaStream_t st, const float *x, bf16 *y, long n);
/* y [rows, ldy] bf16 = x [rows, n] (row stride ldx) with columns n..ldy-1 zero: aligned rows for
 * GEMMs over an unaligned width (the policy output's n_logits) */
int tgc_f2bf_pad(cudaStream_t st, const float *x, long ldx, int n, bf16 *y, int ldy, long rows);
int tgc_relu_bf(cudaStream_t st, const float *x, long ldx, bf16 *y, long ldy, long rows, int n);
/* dx (fp32) = dy * (x > 0) ; dy fp32 with ld, x fp32 */
int tgc_relu_bwd(cudaStream_t st, const float *dy, long lddy, const float *x, long ldx, float *dx,
                 long lddx, int accumulate, long rows, int n);
/* Softmax cross-entropy over rows of n logits (fp32): loss_rows[r] = -log p[target]; dlogits =
 * (p - onehot) * gscale (may be NULL). */
int tgc_xent(cudaStream_t st, const float *logits, const int32_t *tgt, long rows, int n,
             float *loss_rows, float *dlogits, float gscale);
/* Quantile Huber loss (kappa 1) per (b, q): loss_el [B, Q] (unscaled, element losses); dq =
 * d loss_mean / dq * gscale (may be NULL). */
int tgc_quantile_loss(cudaStream_t st, const float *q, const float *ret, int B, int Q,
                      float *loss_el, float *dq, float gscale);
/* Sum of n floats into out[0] (out zeroed by the kernel's first block? no: caller zeroes). */
int tgc_sum(cudaStream_t st, const float *x, long n, float *out);
int tgc_sumsq(cudaStream_t st, const float *x, long n, float *out);
/* AdamW over n elements; the clip scale is min(1, clip / sqrt(*sumsq)) when clip > 0. */
int tgc_adamw(cudaStream_t st, float *p, bf16 *p16, const float *g, float *m, float *v,
              const uint8_t *decay, long n, float lr, float b1, float b2, float eps, float wd,
              float bc1, float bc2, const float *sumsq, float clip);

/* Attention over packed rows: q [N, Lx, H, D] (row stride ldq within a sequence, sequence stride
 * sq), k/v [Nkv, Ly, H, D] (ldk, sk), kv sequence of query sequence n is n / kv_div; o like q.
 * lse [N, H, Lx] saved for backward (may be NULL). Lx rows may be offset: query row i sits at
 * absolute position i + q_off (for causal masking in KV-cached decoding). bf16 in and out. */
typedef struct tgc_attn_shape {
    int N, Lx, Ly, H, D, kv_div, causal, q_off;
    long sq, ldq, sk, ldk, so, ldo;
    float scale;
} tgc_attn_shape;
/* Whether the attention of shape s may use 16-byte accesses: head width and every stride multiples
 * of 8 elements and the n pointers (NULL ones skipped) 16-byte aligned (kernels.cu's vector
 * loads; cudnn_sdpa.cu's graphs, which declare that alignment). */
int tgc_attn_aligned(const tgc_attn_shape *s, const void *const *ptrs, int n);
int tgc_attn_fwd_warp(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                      const bf16 *v, bf16 *o, float *lse);
/* Backward (flash-attention-2 style, recomputing probabilities from lse): dq, dk, dv written
 * (dk, dv require kv_div == 1). delta [N, H, Lx] scratch. */
int tgc_attn_bwd_warp(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                      const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse,
                      float *delta, bf16 *dq, bf16 *dk, bf16 *dv);

/* Short sequences (the torso's 2S tokens, the policy's n_steps): whole (sequence, head) pairs in
 * shared memory; tgc_attn_short_ok says whether a shape fits (kv_div 1). lse as above. Head
 * widths 32 (and 64 forward) with aligned rows take register-resident row kernels; the
 * backward's o is the forward's output (for delta = rowsum(dO * O)). */
int tgc_attn_short_ok(const tgc_attn_shape *s);
int tgc_attn_fwd_short(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                       const bf16 *v, bf16 *o, float *lse);
int tgc_attn_bwd_short(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                       const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse, bf16 *dq,
                       bf16 *dk, bf16 *dv);

/* Shared keys (decoding's cross-attention, kv_div = K samples): forward only. */
int tgc_attn_fwd_kvshare(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                         const bf16 *v, bf16 *o, float *lse);

/* Tensor-core attention (attn_mma.cu: mma.sync bf16, fp32 accumulation) for head widths 32 and
 * 64 with 16-byte aligned rows: packed self-attention for Lx = Ly <= 32, keys streamed in blocks
 * of 16 otherwise (any kv_div forward; kv_div 1 and Lx <= 32 backward). Return 1 without doing
 * anything when they do not take the shape (callers fall back to the kernels above). */
int tgc_attn_fwd_mma(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                     const bf16 *v, bf16 *o, float *lse);
int tgc_attn_bwd_mma(cudaStream_t st, const tgc_attn_shape *s, const bf16 *q, const bf16 *k,
                     const bf16 *v, const bf16 *o, const bf16 *dout, const float *lse, bf16 *dq,
                     bf16 *dk, bf16 *dv);

/* Row softmax with scale and optional causal mask, fp32 logits [batch, Lx, Ly] in, bf16 probs out
 * (batched-GEMM attention path) and its backward. */
int tgc_softmax_fwd(cudaStream_t st, const float *s, bf16 *p, long batch, int Lx, int Ly,
                    float scale, int causal);
int tgc_softmax_bwd(cudaStream_t st, const bf16 *p, const float *dp, bf16 *ds, long batch, int Lx,
                    int Ly, float scale);
/* [N, L, H, D] (row stride ld, sequence stride sseq) <-> [N, H, L, D] contiguous. */
int tgc_heads_split(cudaStream_t st, const bf16 *x, long sseq, long ld, bf16 *y, int N, int L,
                    int H, int D);
int tgc_heads_merge(cudaStream_t st, const bf16 *y, bf16 *x, long sseq, long ld, int N, int L,
                    int H, int D);

#endif
