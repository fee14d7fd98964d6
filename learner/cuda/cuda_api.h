/* C-callable surface of learner/cuda/ beyond the backend table (tg_net_cuda_ops in net.h):
 * device facts, and host-array wrappers that run one kernel family on the GPU so that
 * tests/test_cuda_*.c can compare it with a CPU reference. Only built with TG_HAVE_CUDA.
 * Every function returns 0, or -1 with a message (tg_errmsg). */
#ifndef TG_CUDA_API_H
#define TG_CUDA_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 without a driver or device; TG_NO_CUDA=1 forces 0). */
int tg_cuda_devices(void);
/* decodings (greedy, sampling) replayed from a CUDA graph so far, in this process
 * (on unless TG_CUDA_GRAPH=0; tests) */
long tg_cuda_graph_launches(void);
/* "NVIDIA H100 80GB HBM3, cc 9.0, cuDNN 91400, cuBLASLt 130100" into buf. */
int tg_cuda_describe(char *buf, int len);

/* LayerNorm forward (bf16 output returned as float) and backward; dy_bf16: dy goes to the
 * backward rounded to bf16 (nearest even), as the network's data-gradient GEMMs write it;
 * dx0 != NULL: the backward accumulates into dx = dx0; dxb != NULL: its bf16 copy of dx,
 * returned as float. */
int tg_cuda_test_layernorm(long rows, int n, const float *x, const float *w, const float *b,
                           const float *dy, int dy_bf16, const float *dx0, float *y, float *dx,
                           float *dxb, float *dw, float *db);
/* GELU (tanh) with bias: pre = x + bias (bf16), y = gelu(pre); dx = dy * gelu'(pre). */
int tg_cuda_test_gelu(long rows, int n, const float *x, const float *bias, const float *dy,
                      float *y, float *dx);
/* y [rows, ldy] = bf16(x [rows, n]) with zero columns n..ldy-1, returned as float */
int tg_cuda_test_f2bf_pad(long rows, int n, int ldy, const float *x, float *y);
/* A torso stage's copies between the grids G [B, 3, S, S, c] and the dense sequences
 * [B S, 2 S, c] of grids (m1, m2): xg (and its bf16 copy xgb, as float) gathered from g, and gs =
 * g with x scattered into it. */
int tg_cuda_test_stage(int B, int S, int c, int m1, int m2, const float *g, const float *x,
                       float *xg, float *xgb, float *gs);
/* From stage (a1, a2) with output sequences xs to stage (b1, b2): xn (and xnb) its input
 * sequences, gs = g with the grid leaving written back from xs. lnw, lnb (may be NULL): the copy
 * also writes the LayerNorm of xn (lny, bf16 as float; lnmean, lnrstd per row); returns 1 when the
 * kernel did not take it (lny etc. then untouched). */
int tg_cuda_test_stage_next(int B, int S, int c, int a1, int a2, int b1, int b2, const float *g,
                            const float *xs, float *xn, float *xnb, float *gs, const float *lnw,
                            const float *lnb, float *lny, float *lnmean, float *lnrstd);
/* out [N, per]: the sampling uniforms drawn on the device from seed (position i from stream i). */
int tg_cuda_test_uniforms(uint64_t seed, int N, long per, float *out);
/* Softmax cross-entropy rows: loss [rows], dlogits [rows, n] (scaled by gscale). */
int tg_cuda_test_xent(long rows, int n, const float *logits, const int32_t *tgt, float gscale,
                      float *loss, float *dlogits);
/* Quantile Huber loss elements [B, Q] and gradient. */
int tg_cuda_test_qloss(int B, int Q, const float *q, const float *ret, float gscale, float *loss,
                       float *dq);
/* One AdamW step over n elements (p, m, v updated in place; p16 = bf16 copy as float). */
int tg_cuda_test_adamw(long n, float *p, float *p16, const float *g, float *m, float *v,
                       const uint8_t *decay, float lr, float b1, float b2, float eps, float wd,
                       int step, float clip, float *gnorm);
/* Row-major GEMM D[M, N] = op(A) op(B) (+ bias[N]) (+ beta D) with bf16 inputs (rounded from
 * the floats given), fp32 output; epi 0 none, 1 bias, 3 bias gradient (bgrad[M] = rowsums of
 * op(A), needs ta = 1). epilogues 0 forces the kernel fallbacks. */
int tg_cuda_test_gemm(int ta, int tb, long M, long N, long K, const float *A, const float *B,
                      const float *bias, float beta, int epi, int epilogues, float *D,
                      float *bgrad);
/* The same with the epilogues on and the tuner's split-K variants set by splitk (0 off, 1 timed
 * with the rest, 2 forced: the fastest split-K algorithm wherever one runs); *sk: the K splits of
 * the algorithm that ran (1 none, 0 unknown). */
int tg_cuda_test_gemm_splitk(int ta, int tb, long M, long N, long K, const float *A,
                             const float *B, const float *bias, float beta, int epi, int splitk,
                             float *D, float *bgrad, int *sk);
/* D [M, N] (bf16, returned as float) = (A [M, K] B [K, N]) * gelu'(pre [M, N]): the GEMM's
 * GELU-gradient epilogue (epilogues 1) or its kernel fallback (0), inputs bf16-rounded. */
int tg_cuda_test_gemm_dgelu(long M, long N, long K, const float *A, const float *B,
                            const float *pre, int epilogues, float *D);
/* D [M, N] (bf16, returned as float) = gelu(A [M, K] B [K, N] + bias [N]) with no pre-activation
 * kept: the inference GELU epilogue (epilogues 1) or its kernel fallback (0). */
int tg_cuda_test_gemm_gelu(long M, long N, long K, const float *A, const float *B,
                           const float *bias, int epilogues, float *D);
/* A GEMM laid out as the network's odd widths lay them out (gemm.h's tgc_mm): every operand at
 * an element offset from a 256-byte aligned buffer (off: A, B, D, the bias or bias-gradient
 * vector, the GELU pre-activation; odd offsets give 2-byte aligned bf16 rows), leading
 * dimensions pad elements wider than the dense ones (padding filled with 1000: a GEMM that
 * reads it is wrong, one that writes into D's is reported as an error). */
typedef struct tg_cuda_gemm_case {
    int ta, tb;
    long M, N, K;
    int pad;
    int off[5];
    int d_bf16; /* D (and C, bias) bf16 instead of fp32 */
    int epi;    /* 0 none, 1 bias, 2 GELU keeping the pre-activation (bf16 D), 3 bias gradient
                   (ta 1), 4 GELU gradient (bf16 D, pre read), 5 GELU (bf16 D) */
    int mode;   /* 0 as the network runs it, 1 epilogues off (kernel fallbacks), 2 every GEMM by
                   the reference kernel (tgc_gemm_ref) */
    float beta;
} tg_cuda_gemm_case;
/* Host arrays dense: A [M, K] (ta: [K, M]), B [K, N] (tb: [N, K]), vec [N] (bias), D [M, N] (C on
 * entry when beta != 0, the result on return), pre [M, N] (read for epi 4, written for 2), bgrad
 * [M] (epi 3). Inputs go up bf16-rounded (D fp32 unless d_bf16). *ref (may be NULL): GEMMs the
 * reference kernel ran (cuBLASLt had no algorithm, or mode 2). */
int tg_cuda_test_gemm_ex(const tg_cuda_gemm_case *c, const float *A, const float *B,
                         const float *vec, float *D, float *pre, float *bgrad, long *ref);
/* Attention over q [N, Lx, H, D], k/v [N / kv_div, Ly, H, D] (packed), bf16-rounded: o and,
 * when dout != NULL (kv_div 1), dq, dk, dv. path: 0 warp-per-row kernels, 1 batched GEMMs,
 * 2 cuDNN SDPA (forward through cuDNN; backward through cuDNN's graph where it takes the shape,
 * outputs poisoned first, else the short-sequence or warp kernels), 3 short-sequence kernels,
 * 4 shared-key kernel (forward only), 5 tensor-core kernels (outputs poisoned first), 6 batched
 * GEMMs by the reference GEMM kernel instead of cuBLASLt (returns 1
 * when the path rejects the shape). bwd_lib (may be NULL): 1 when the backward ran in the library
 * (path 2: cuDNN's backward graph), else 0. */
int tg_cuda_test_attention(int path, int N, int Lx, int Ly, int H, int D, int causal, int kv_div,
                           const float *q, const float *k, const float *v, const float *dout,
                           float *o, float *dq, float *dk, float *dv, int *bwd_lib);

#ifdef __cplusplus
}
#endif

#endif
