/* Attention forward and backward through cuDNN's graph (backend) API from C-style code: the scaled
 * dot-product attention patterns that cuDNN's fused flash-attention engines recognise.
 *
 * Forward: S = Q K^T (fp32) -> S * scale -> [causal: select(row >= col, S, -inf)] -> softmax with
 * its statistics (max, exp, sum; Stats = max + log sum, the natural-log logsumexp) -> O = P V.
 *
 * Backward (as cudnn-frontend's composite SDPA backward node lowers it for cuDNN 9 on Hopper):
 * softmax_sum = rowsum(dO * O) (fp32, in the workspace); P = exp(S * scale [masks] - Stats)
 * recomputed; dV = P^T dO; dS = (dO V^T - softmax_sum) * P * scale; dK = dS^T Q; dQ = dS K
 * accumulated in fp32 (in the workspace), then converted to bf16.
 *
 * Q, K, V, O, dO and dQ, dK, dV bf16 in the packed token-major layout [N, L, H, D] (strided 4-D
 * tensors [N, H, L, D]), Stats fp32 [N, H, Lx, 1] = the lse layout of the other attention paths, so
 * their backward kernels run on cuDNN's statistics and cuDNN's backward on theirs. Plans are cached
 * per shape; a shape that no engine takes is reported as rejected (1) and the caller falls back.
 * cuDNN's version is checked at run time (9.x). */
#include <cudnn.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learner/cuda/cudnn_sdpa.h"

#define SDPA_CACHE 64

typedef struct sdpa_plan {
    tgc_attn_shape s;
    int ok;
    cudnnBackendDescriptor_t plan;
    int64_t ws;
    int pad;         /* backward: built with the padding-mask workaround (seq_len tensors) */
    int32_t *seqlen; /* its per-sequence lengths: N of Lx, then N of Ly from a 64-int boundary
                        (device, made on first use) */
} sdpa_plan;

struct tgc_sdpa {
    cudnnHandle_t h;
    size_t ver;
    sdpa_plan plans[SDPA_CACHE];  /* forward */
    int n;
    sdpa_plan bplans[SDPA_CACHE]; /* backward */
    int nb;
    void *ws;
    size_t ws_size;
};

#define DN(x)                                                                                  \
    do {                                                                                       \
        cudnnStatus_t s_ = (x);                                                                \
        if (s_ != CUDNN_STATUS_SUCCESS) {                                                      \
            st_ = s_;                                                                          \
            where_ = #x;                                                                       \
            goto out;                                                                          \
        }                                                                                      \
    } while (0)

tgc_sdpa *tgc_sdpa_new(void)
{
    size_t v = cudnnGetVersion();
    if (v < 90000 || v >= 100000) {
        tg_fail("cuDNN %zu found, 9.x needed for the SDPA graph", v);
        return NULL;
    }
    tgc_sdpa *p = (tgc_sdpa *)calloc(1, sizeof *p);
    if (!p) {
        tg_fail("out of memory");
        return NULL;
    }
    p->ver = v;
    cudnnStatus_t s = cudnnCreate(&p->h);
    if (s != CUDNN_STATUS_SUCCESS) {
        tg_fail("cudnnCreate: %s", cudnnGetErrorString(s));
        free(p);
        return NULL;
    }
    return p;
}

void tgc_sdpa_free(tgc_sdpa *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        if (p->plans[i].plan)
            cudnnBackendDestroyDescriptor(p->plans[i].plan);
    for (int i = 0; i < p->nb; i++) {
        if (p->bplans[i].plan)
            cudnnBackendDestroyDescriptor(p->bplans[i].plan);
        cudaFree(p->bplans[i].seqlen);
    }
    cudaFree(p->ws);
    cudnnDestroy(p->h);
    free(p);
}

/* unique ids of the variant packs' tensors (forward and backward graphs are separate) */
enum {
    U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF,
    U_DO, U_DQ, U_DK, U_DV, U_ONE, U_SUM, U_DQACC, U_SEQQ, U_SEQKV,
    U_VIRT = 100
};

/* A tensor descriptor; dims/strides 4-D. */
static cudnnStatus_t tensor(cudnnBackendDescriptor_t *t, int64_t uid, cudnnDataType_t dt,
                            const int64_t *dims, const int64_t *str, int virt, int by_value)
{
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, t);
    if (s)
        return s;
    int64_t align = 16;
    bool v = virt, bv = by_value;
    if ((s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt)) ||
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims)) ||
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str)) ||
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)) ||
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1,
                                      &align)) ||
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &v)))
        return s;
    if (by_value &&
        (s = cudnnBackendSetAttribute(*t, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &bv)))
        return s;
    return cudnnBackendFinalize(*t);
}

/* A pointwise operation y = mode(x [, b] [, t]) computed in prec; axis >= 0 for GEN_INDEX. */
static cudnnStatus_t pointwise_p(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *pw,
                                 cudnnPointwiseMode_t mode, cudnnDataType_t prec,
                                 cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                                 cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y,
                                 int64_t axis)
{
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, pw);
    if (s)
        return s;
    if ((s = cudnnBackendSetAttribute(*pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1,
                                      &mode)) ||
        (s = cudnnBackendSetAttribute(*pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1,
                                      &prec)))
        return s;
    if (axis >= 0 &&
        (s = cudnnBackendSetAttribute(*pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis)))
        return s;
    if ((s = cudnnBackendFinalize(*pw)))
        return s;
    if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, op)))
        return s;
    if ((s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, pw)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)))
        return s;
    if (b && (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)))
        return s;
    if (t && (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t)))
        return s;
    return cudnnBackendFinalize(*op);
}

static cudnnStatus_t pointwise(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *pw,
                               cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                               cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                               cudnnBackendDescriptor_t y, int64_t axis)
{
    return pointwise_p(op, pw, mode, CUDNN_DATA_FLOAT, x, b, t, y, axis);
}

static cudnnStatus_t reduction(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *rd,
                               cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x,
                               cudnnBackendDescriptor_t y)
{
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, rd);
    if (s)
        return s;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    if ((s = cudnnBackendSetAttribute(*rd, CUDNN_ATTR_REDUCTION_OPERATOR,
                                      CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode)) ||
        (s = cudnnBackendSetAttribute(*rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1,
                                      &prec)) ||
        (s = cudnnBackendFinalize(*rd)))
        return s;
    if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, op)))
        return s;
    if ((s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_REDUCTION_DESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, rd)))
        return s;
    return cudnnBackendFinalize(*op);
}

/* c = a b (batched over the first two dims); mo, no, ko (may be NULL): per-sequence M, N, K
 * overrides (int32 [N, 1, 1, 1]) for the padding mask */
static cudnnStatus_t matmul_o(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *mm,
                              cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                              cudnnBackendDescriptor_t c, cudnnBackendDescriptor_t mo,
                              cudnnBackendDescriptor_t no, cudnnBackendDescriptor_t ko)
{
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_MATMUL_DESCRIPTOR, mm);
    if (s)
        return s;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
    if ((s = cudnnBackendSetAttribute(*mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1,
                                      &prec)) ||
        (s = cudnnBackendFinalize(*mm)))
        return s;
    if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, op)))
        return s;
    if ((s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_ADESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_BDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_CDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_DESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, mm)))
        return s;
    if (mo && (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mo)))
        return s;
    if (no && (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &no)))
        return s;
    if (ko && (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC,
                                            CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &ko)))
        return s;
    return cudnnBackendFinalize(*op);
}

static cudnnStatus_t matmul(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *mm,
                            cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                            cudnnBackendDescriptor_t c)
{
    return matmul_o(op, mm, a, b, c, NULL, NULL, NULL);
}

/* y = x viewed with y's dims and strides (the transposes of P, dS and K^T in the backward); no
 * operator descriptor, so *unused stays NULL (the callers create descriptors in pairs) */
static cudnnStatus_t reshape(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *unused,
                             cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y)
{
    *unused = NULL;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, op);
    if (s)
        return s;
    if ((s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x)) ||
        (s = cudnnBackendSetAttribute(*op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC,
                                      CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y)))
        return s;
    return cudnnBackendFinalize(*op);
}

/* The operation graph of ops and the first engine configuration of heuristics mode A whose plan
 * finalizes: p->plan, p->ws, p->ok = 1. Otherwise the failing call in *where and its status
 * returned (the graph is refused, not an error). */
static cudnnStatus_t find_plan(tgc_sdpa *sd, cudnnBackendDescriptor_t *ops, int no, sdpa_plan *p,
                               const char **where)
{
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    cudnnBackendDescriptor_t graph = NULL, heur = NULL, cfgs[8] = {0};
    int64_t ncfg = 0;
    DN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
    DN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR,
                                no, ops));
    DN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                &sd->h));
    DN(cudnnBackendFinalize(graph));
    DN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur));
    DN(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &graph));
    {
        cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
        DN(cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
                                    &mode));
    }
    DN(cudnnBackendFinalize(heur));
    for (int i = 0; i < 8; i++)
        DN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, &cfgs[i]));
    DN(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                CUDNN_TYPE_BACKEND_DESCRIPTOR, 8, &ncfg, cfgs));
    if (ncfg > 8)
        ncfg = 8;
    st_ = CUDNN_STATUS_NOT_SUPPORTED;
    where_ = "heuristics: no engine configuration";
    for (int i = 0; i < ncfg && !p->ok; i++) {
        cudnnBackendDescriptor_t plan;
        cudnnStatus_t s =
            cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan);
        if (s) {
            st_ = s;
            where_ = "cudnnBackendCreateDescriptor(execution plan)";
            continue;
        }
        int64_t ws = 0, got = 0;
        if ((s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE,
                                          1, &sd->h)) ||
            (s = cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                          CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i])) ||
            (s = cudnnBackendFinalize(plan)) ||
            (s = cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                          CUDNN_TYPE_INT64, 1, &got, &ws))) {
            st_ = s;
            where_ = "execution plan of each engine configuration";
            cudnnBackendDestroyDescriptor(plan);
            continue;
        }
        p->plan = plan;
        p->ws = ws;
        p->ok = 1;
        st_ = CUDNN_STATUS_SUCCESS;
    }
out:
    for (int i = 0; i < 8; i++)
        if (cfgs[i])
            cudnnBackendDestroyDescriptor(cfgs[i]);
    if (heur)
        cudnnBackendDestroyDescriptor(heur);
    if (graph)
        cudnnBackendDestroyDescriptor(graph);
    *where = where_;
    return st_;
}

#define NDESC 64

/* Builds the forward graph and a plan for shape s: p->ok = 1 with p->plan, or 0 when no engine
 * fits. */
static int build(tgc_sdpa *sd, sdpa_plan *p, const tgc_attn_shape *s)
{
    cudnnBackendDescriptor_t d[NDESC];
    int nd = 0;
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    memset(d, 0, sizeof d);
    memset(p, 0, sizeof *p);
    p->s = *s;
    int64_t N = s->N, H = s->H, Lx = s->Lx, Ly = s->Ly, D = s->D;
    int64_t dq[4] = {N, H, Lx, D}, sq[4] = {s->sq, D, s->ldq, 1};
    int64_t dkt[4] = {N, H, D, Ly}, skt[4] = {s->sk, D, 1, s->ldk};
    int64_t dv[4] = {N, H, Ly, D}, sv[4] = {s->sk, D, s->ldk, 1};
    int64_t dO[4] = {N, H, Lx, D}, so[4] = {s->so, D, s->ldo, 1};
    int64_t dS[4] = {N, H, Lx, Ly}, sS[4] = {H * Lx * Ly, Lx * Ly, Ly, 1};
    int64_t dR[4] = {N, H, Lx, 1}, sR[4] = {H * Lx, Lx, 1, 1};
    int64_t d1[4] = {1, 1, 1, 1}, s1[4] = {1, 1, 1, 1};
    int64_t vid = U_VIRT;
    cudnnBackendDescriptor_t tQ, tK, tV, tO, tStats, tScale, tNeg, tS, tS2, tS3, tRow, tCol, tMask,
        tMax, tSub, tExp, tSum, tLog, tP;
    cudnnBackendDescriptor_t ops[16];
    int no = 0;
#define T(var, ...)                                                                            \
    DN(tensor(&d[nd], __VA_ARGS__));                                                           \
    var = d[nd++]
    T(tQ, U_Q, CUDNN_DATA_BFLOAT16, dq, sq, 0, 0);
    T(tK, U_K, CUDNN_DATA_BFLOAT16, dkt, skt, 0, 0);
    T(tV, U_V, CUDNN_DATA_BFLOAT16, dv, sv, 0, 0);
    T(tO, U_O, CUDNN_DATA_BFLOAT16, dO, so, 0, 0);
    T(tStats, U_STATS, CUDNN_DATA_FLOAT, dR, sR, 0, 0);
    T(tScale, U_SCALE, CUDNN_DATA_FLOAT, d1, s1, 0, 1);
    T(tS, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tS2, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tMax, vid++, CUDNN_DATA_FLOAT, dR, sR, 1, 0);
    T(tSub, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tExp, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tSum, vid++, CUDNN_DATA_FLOAT, dR, sR, 1, 0);
    T(tLog, vid++, CUDNN_DATA_FLOAT, dR, sR, 1, 0);
    T(tP, vid++, CUDNN_DATA_BFLOAT16, dS, sS, 1, 0); /* P V: both operands bf16 */
    tS3 = tS2;
    tNeg = tRow = tCol = tMask = NULL;
    if (s->causal) {
        T(tNeg, U_NEGINF, CUDNN_DATA_FLOAT, d1, s1, 0, 1);
        T(tRow, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);
        T(tCol, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);
        T(tMask, vid++, CUDNN_DATA_BOOLEAN, dS, sS, 1, 0);
        T(tS3, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    }
#undef T
#define OP(call)                                                                               \
    DN(call);                                                                                  \
    ops[no++] = d[nd - 1]
    /* each helper creates two descriptors: the operator's and the operation's */
    OP((nd += 2, matmul(&d[nd - 1], &d[nd - 2], tQ, tK, tS)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tS, tScale, NULL, tS2,
                           -1)));
    if (s->causal) {
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS2, NULL, NULL,
                               tRow, 2)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS2, NULL, NULL,
                               tCol, 3)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_CMP_GE, tRow, tCol, NULL,
                               tMask, -1)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_BINARY_SELECT, tS2, tNeg,
                               tMask, tS3, -1)));
    }
    OP((nd += 2, reduction(&d[nd - 1], &d[nd - 2], CUDNN_REDUCE_TENSOR_MAX, tS3, tMax)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_SUB, tS3, tMax, NULL, tSub,
                           -1)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_EXP, tSub, NULL, NULL, tExp,
                           -1)));
    OP((nd += 2, reduction(&d[nd - 1], &d[nd - 2], CUDNN_REDUCE_TENSOR_ADD, tExp, tSum)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_LOG, tSum, NULL, NULL, tLog,
                           -1)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_ADD, tMax, tLog, NULL, tStats,
                           -1)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_DIV, tExp, tSum, NULL, tP, -1)));
    OP((nd += 2, matmul(&d[nd - 1], &d[nd - 2], tP, tV, tO)));
#undef OP
    st_ = find_plan(sd, ops, no, p, &where_);
out:
    if (st_ != CUDNN_STATUS_SUCCESS && getenv("TG_CUDA_VERBOSE"))
        fprintf(stderr, "cuDNN SDPA graph for N %d Lx %d Ly %d H %d D %d causal %d: %s: %s\n",
                s->N, s->Lx, s->Ly, s->H, s->D, s->causal, where_, cudnnGetErrorString(st_));
    for (int i = 0; i < nd; i++)
        if (d[i])
            cudnnBackendDestroyDescriptor(d[i]);
    return 0; /* not supported is not an error: p->ok says */
}

/* Whether cuDNN 9.0-9.15's backward takes the padding-mask workaround for shape s: cudnn-frontend
 * adds a padding mask with the full sequence lengths there when s_kv is not a multiple of 128
 * (NaN gradients otherwise, its issue 160: the padded part of the last key tile is not masked).
 * TG_CUDA_SDPA_BWD_PAD=0 leaves it out (comparisons). */
static int bwd_pad(const tgc_sdpa *sd, const tgc_attn_shape *s)
{
    const char *e = getenv("TG_CUDA_SDPA_BWD_PAD");
    if (e && !strcmp(e, "0"))
        return 0;
    return sd->ver <= 91500 && s->Ly % 128 != 0;
}

#define NDESC_B 160

/* Builds the backward graph for shape s (pad: with the padding mask, see bwd_pad): p->ok = 1 with
 * p->plan, or 0 when no engine fits. The order of the operations and the tensors' types follow
 * cudnn-frontend's composite SDPA backward node for cuDNN 9 (no dropout, no bias). */
static int build_bwd(tgc_sdpa *sd, sdpa_plan *p, const tgc_attn_shape *s, int pad)
{
    cudnnBackendDescriptor_t d[NDESC_B];
    int nd = 0;
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    memset(d, 0, sizeof d);
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->pad = pad;
    int64_t N = s->N, H = s->H, Lx = s->Lx, Ly = s->Ly, D = s->D;
    /* Q, dQ, O, dO [N, H, Lx, D]; K^T, V^T [N, H, D, Ly]; K, dK, dV [N, H, Ly, D] */
    int64_t dq[4] = {N, H, Lx, D}, sq[4] = {s->sq, D, s->ldq, 1};
    int64_t dkt[4] = {N, H, D, Ly}, skt[4] = {s->sk, D, 1, s->ldk};
    int64_t dk[4] = {N, H, Ly, D}, sk[4] = {s->sk, D, s->ldk, 1};
    int64_t so[4] = {s->so, D, s->ldo, 1};
    /* dO * O before its row sums: the layout cudnn-frontend gives that virtual tensor */
    int64_t sdoo[4] = {H * Lx * D, Lx * D, H * D, 1};
    int64_t sacc[4] = {H * Lx * D, Lx * D, D, 1}; /* dQ's fp32 accumulator, packed */
    int64_t dS[4] = {N, H, Lx, Ly}, sS[4] = {H * Lx * Ly, Lx * Ly, Ly, 1};
    int64_t dT[4] = {N, H, Ly, Lx}, sT[4] = {H * Lx * Ly, Lx * Ly, 1, Ly}; /* P^T, dS^T */
    int64_t dR[4] = {N, H, Lx, 1}, sR[4] = {H * Lx, Lx, 1, 1};
    int64_t dB[4] = {N, 1, 1, 1}, sB[4] = {1, 1, 1, 1};
    int64_t d1[4] = {1, 1, 1, 1}, s1[4] = {1, 1, 1, 1};
    int64_t vid = U_VIRT;
    /* the second padding select after the statistics: cudnn-frontend's workaround for 9.0-9.9 */
    int pad2 = pad && sd->ver < 91000;
    cudnnBackendDescriptor_t tQ, tKT, tVT, tO, tdO, tStats, tScale, tOne, tLow, tdQ, tdK, tdV,
        tSum, tAcc, tSeqQ, tSeqKV, tDOO, tRed, tS, tS2, tS3, tS4, tP, tPT, tdP, tdP2, tdP3, tdS,
        tdST, tK;
    cudnnBackendDescriptor_t ops[48];
    int no = 0;
    tLow = tSeqQ = tSeqKV = NULL;
#define T(var, ...)                                                                            \
    DN(tensor(&d[nd], __VA_ARGS__));                                                           \
    var = d[nd++]
#define OP(call)                                                                               \
    DN(call);                                                                                  \
    ops[no++] = d[nd - 1]
    T(tQ, U_Q, CUDNN_DATA_BFLOAT16, dq, sq, 0, 0);
    T(tKT, U_K, CUDNN_DATA_BFLOAT16, dkt, skt, 0, 0);
    T(tVT, U_V, CUDNN_DATA_BFLOAT16, dkt, skt, 0, 0);
    T(tO, U_O, CUDNN_DATA_BFLOAT16, dq, so, 0, 0);
    T(tdO, U_DO, CUDNN_DATA_BFLOAT16, dq, so, 0, 0);
    T(tStats, U_STATS, CUDNN_DATA_FLOAT, dR, sR, 0, 0);
    T(tScale, U_SCALE, CUDNN_DATA_FLOAT, d1, s1, 0, 1);
    T(tOne, U_ONE, CUDNN_DATA_FLOAT, d1, s1, 0, 1);
    T(tdQ, U_DQ, CUDNN_DATA_BFLOAT16, dq, sq, 0, 0);
    T(tdK, U_DK, CUDNN_DATA_BFLOAT16, dk, sk, 0, 0);
    T(tdV, U_DV, CUDNN_DATA_BFLOAT16, dk, sk, 0, 0);
    T(tSum, U_SUM, CUDNN_DATA_FLOAT, dR, sR, 0, 0);     /* softmax_sum, in the workspace */
    T(tAcc, U_DQACC, CUDNN_DATA_FLOAT, dq, sacc, 0, 0); /* dQ accumulator, in the workspace */
    if (pad || s->causal)
        T(tLow, U_NEGINF, CUDNN_DATA_FLOAT, d1, s1, 0, 1);
    if (pad) {
        T(tSeqQ, U_SEQQ, CUDNN_DATA_INT32, dB, sB, 0, 0);
        T(tSeqKV, U_SEQKV, CUDNN_DATA_INT32, dB, sB, 0, 0);
    }
    T(tDOO, vid++, CUDNN_DATA_FLOAT, dq, sdoo, 1, 0);
    T(tRed, vid++, CUDNN_DATA_FLOAT, dR, sR, 1, 0);
    T(tS, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tS2, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);

    /* softmax_sum = rowsum(dO * O) * 1 (the dropout scale's place) */
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tdO, tO, NULL, tDOO, -1)));
    OP((nd += 2, reduction(&d[nd - 1], &d[nd - 2], CUDNN_REDUCE_TENSOR_ADD, tDOO, tRed)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tRed, tOne, NULL, tSum,
                           -1)));
    /* S = Q K^T * scale */
    OP((nd += 2, matmul_o(&d[nd - 1], &d[nd - 2], tQ, tKT, tS, tSeqQ, tSeqKV, NULL)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tS, tScale, NULL, tS2,
                           -1)));
    /* padding mask: out = select(row < seq_q && col < seq_kv, in, lowest) */
#define PAD_MASK(in, out)                                                                      \
    do {                                                                                       \
        cudnnBackendDescriptor_t tR, tC, tRm, tCm, tM;                                         \
        T(tR, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);                                          \
        T(tC, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);                                          \
        T(tRm, vid++, CUDNN_DATA_BOOLEAN, dS, sS, 1, 0);                                       \
        T(tCm, vid++, CUDNN_DATA_BOOLEAN, dS, sS, 1, 0);                                       \
        T(tM, vid++, CUDNN_DATA_BOOLEAN, dS, sS, 1, 0);                                        \
        T(out, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);                                         \
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX,            \
                                 CUDNN_DATA_INT32, in, NULL, NULL, tR, 2)));                   \
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX,            \
                                 CUDNN_DATA_INT32, in, NULL, NULL, tC, 3)));                   \
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_CMP_LT,               \
                                 CUDNN_DATA_BOOLEAN, tR, tSeqQ, NULL, tRm, -1)));              \
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_CMP_LT,               \
                                 CUDNN_DATA_BOOLEAN, tC, tSeqKV, NULL, tCm, -1)));             \
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_LOGICAL_AND,          \
                                 CUDNN_DATA_BOOLEAN, tRm, tCm, NULL, tM, -1)));                \
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_BINARY_SELECT, in,      \
                               tLow, tM, out, -1)));                                           \
    } while (0)
    if (pad) {
        cudnnBackendDescriptor_t tIn = tS2;
        PAD_MASK(tIn, tS2);
    }
    /* S - Stats */
    T(tS3, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_SUB, tS2, tStats, NULL, tS3,
                           -1)));
    if (pad2) {
        cudnnBackendDescriptor_t tIn = tS3;
        PAD_MASK(tIn, tS3);
    }
#undef PAD_MASK
    /* causal (top-left diagonal): select(row >= col, S - Stats, lowest) */
    tS4 = tS3;
    if (s->causal) {
        cudnnBackendDescriptor_t tR, tC, tM;
        T(tR, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);
        T(tC, vid++, CUDNN_DATA_INT32, dS, sS, 1, 0);
        T(tM, vid++, CUDNN_DATA_BOOLEAN, dS, sS, 1, 0);
        T(tS4, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS3, NULL, NULL,
                               tR, 2)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS3, NULL, NULL,
                               tC, 3)));
        OP((nd += 2, pointwise_p(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_CMP_GE,
                                 CUDNN_DATA_BOOLEAN, tR, tC, NULL, tM, -1)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_BINARY_SELECT, tS3, tLow,
                               tM, tS4, -1)));
    }
    /* P = exp(S - Stats) (fp32); dV = P^T dO with P^T a bf16 view (matmul operands alike) */
    T(tP, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tPT, vid++, CUDNN_DATA_BFLOAT16, dT, sT, 1, 0);
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_EXP, tS4, NULL, NULL, tP, -1)));
    OP((nd += 2, reshape(&d[nd - 1], &d[nd - 2], tP, tPT)));
    OP((nd += 2, matmul_o(&d[nd - 1], &d[nd - 2], tPT, tdO, tdV, tSeqKV, NULL, tSeqQ)));
    /* dS = (dO V^T - softmax_sum) * P * scale */
    T(tdP, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tdP2, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tdP3, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    T(tdS, vid++, CUDNN_DATA_FLOAT, dS, sS, 1, 0);
    OP((nd += 2, matmul_o(&d[nd - 1], &d[nd - 2], tdO, tVT, tdP, tSeqQ, tSeqKV, NULL)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_SUB, tdP, tSum, NULL, tdP2,
                           -1)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tdP2, tP, NULL, tdP3, -1)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tdP3, tScale, NULL, tdS,
                           -1)));
    /* dK = dS^T Q with dS^T a bf16 view */
    T(tdST, vid++, CUDNN_DATA_BFLOAT16, dT, sT, 1, 0);
    OP((nd += 2, reshape(&d[nd - 1], &d[nd - 2], tdS, tdST)));
    OP((nd += 2, matmul_o(&d[nd - 1], &d[nd - 2], tdST, tQ, tdK, tSeqKV, NULL, tSeqQ)));
    /* dQ = dS K into the fp32 accumulator (K a view of K^T, fp32 like dS), then bf16 */
    T(tK, vid++, CUDNN_DATA_FLOAT, dk, sk, 1, 0);
    OP((nd += 2, reshape(&d[nd - 1], &d[nd - 2], tKT, tK)));
    OP((nd += 2, matmul_o(&d[nd - 1], &d[nd - 2], tdS, tK, tAcc, tSeqQ, NULL, tSeqKV)));
    OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_IDENTITY, tAcc, NULL, NULL, tdQ,
                           -1)));
#undef OP
#undef T
    st_ = find_plan(sd, ops, no, p, &where_);
out:
    if (st_ != CUDNN_STATUS_SUCCESS && getenv("TG_CUDA_VERBOSE"))
        fprintf(stderr,
                "cuDNN SDPA backward graph for N %d Lx %d Ly %d H %d D %d causal %d%s: %s: %s\n",
                s->N, s->Lx, s->Ly, s->H, s->D, s->causal, pad ? " (padding-mask workaround)" : "",
                where_, cudnnGetErrorString(st_));
    for (int i = 0; i < nd; i++)
        if (d[i])
            cudnnBackendDestroyDescriptor(d[i]);
    return 0; /* not supported is not an error: p->ok says */
}

static sdpa_plan *find_cached(sdpa_plan *plans, int n, const tgc_attn_shape *s)
{
    for (int i = 0; i < n; i++)
        if (!memcmp(&plans[i].s, s, sizeof *s))
            return &plans[i];
    return NULL;
}

/* at least bytes of workspace (cudaFree waits for the work that still uses the old one) */
static int ws_reserve(tgc_sdpa *sd, size_t bytes)
{
    if (bytes <= sd->ws_size)
        return 0;
    cudaFree(sd->ws);
    sd->ws = NULL;
    sd->ws_size = 0;
    CU_CHECK(cudaMalloc(&sd->ws, bytes));
    sd->ws_size = bytes;
    return 0;
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

/* Runs plan p on stream st with the nu (unique id, pointer) pairs and the shared workspace. */
static int execute(tgc_sdpa *sd, cudaStream_t st, const sdpa_plan *p, int nu, int64_t *uids,
                   void **ptrs, const char *what)
{
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    cudnnBackendDescriptor_t vp = NULL;
    DN(cudnnSetStream(sd->h, st));
    DN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp));
    DN(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, nu, uids));
    DN(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, nu,
                                ptrs));
    DN(cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1,
                                &sd->ws));
    DN(cudnnBackendFinalize(vp));
    DN(cudnnBackendExecute(sd->h, p->plan, vp));
out:
    if (vp)
        cudnnBackendDestroyDescriptor(vp);
    if (st_ != CUDNN_STATUS_SUCCESS)
        return tg_fail("%s: %s: %s", what, where_, cudnnGetErrorString(st_));
    return 0;
}

int tgc_sdpa_fwd(tgc_sdpa *sd, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                 const bf16 *k, const bf16 *v, bf16 *o, float *lse)
{
    /* the graphs declare 16-byte aligned tensors (TENSOR_BYTE_ALIGNMENT above), which cuDNN
     * cannot check against a call's pointers: odd widths (a fused projection's k at q + inner)
     * stay with the kernels */
    const void *al[4] = {q, k, v, o};
    if (s->kv_div != 1 || !lse || !tgc_attn_aligned(s, al, 4))
        return 1;
    sdpa_plan *p = find_cached(sd->plans, sd->n, s);
    if (!p) {
        if (sd->n == SDPA_CACHE)
            return 1;
        p = &sd->plans[sd->n++];
        build(sd, p, s);
    }
    if (!p->ok)
        return 1;
    if (ws_reserve(sd, (size_t)p->ws))
        return -1;
    float scale = s->scale, neg = -INFINITY;
    int64_t uids[7] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF};
    void *ptrs[7] = {(void *)q, (void *)k, (void *)v, (void *)o, (void *)lse, &scale, &neg};
    return execute(sd, st, p, s->causal ? 7 : 6, uids, ptrs, "cuDNN SDPA");
}

int tgc_sdpa_fwd_took(const tgc_sdpa *sd, const tgc_attn_shape *s)
{
    const sdpa_plan *p = find_cached((sdpa_plan *)sd->plans, sd->n, s);
    return p && p->ok;
}

int tgc_sdpa_bwd(tgc_sdpa *sd, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                 const bf16 *k, const bf16 *v, const bf16 *o, const bf16 *dout, const float *stats,
                 bf16 *dq, bf16 *dk, bf16 *dv)
{
    /* shared keys and offset queries are forward-only shapes; cudnn-frontend does not run
     * s_q = s_kv = 1 through this graph */
    const void *al[8] = {q, k, v, o, dout, dq, dk, dv};
    if (s->kv_div != 1 || s->q_off || !stats || (s->Lx == 1 && s->Ly == 1) ||
        !tgc_attn_aligned(s, al, 8))
        return 1;
    sdpa_plan *p = find_cached(sd->bplans, sd->nb, s);
    if (!p) {
        if (sd->nb == SDPA_CACHE)
            return 1;
        p = &sd->bplans[sd->nb++];
        int pad = bwd_pad(sd, s);
        build_bwd(sd, p, s, pad);
        if (!p->ok && pad) /* the plain graph then */
            build_bwd(sd, p, s, 0);
    }
    if (!p->ok)
        return 1;
    /* workspace: the plan's, then softmax_sum [N, H, Lx] and dQ's accumulator [N, H, Lx, D]
     * (fp32) */
    size_t rows = (size_t)s->N * s->H * s->Lx, acc_bytes = rows * s->D * sizeof(float);
    size_t off_sum = align256((size_t)p->ws), off_acc = off_sum + align256(rows * sizeof(float));
    if (ws_reserve(sd, off_acc + acc_bytes))
        return -1;
    /* the KV lengths start 256-byte aligned (the tensors declare 16) */
    size_t kv_off = ((size_t)s->N + 63) & ~(size_t)63;
    if (p->pad && !p->seqlen) {
        /* the padding mask's sequence lengths: all full */
        int32_t *h = (int32_t *)calloc(2 * kv_off, sizeof(int32_t));
        if (!h)
            return tg_fail("out of memory");
        for (int i = 0; i < s->N; i++) {
            h[i] = s->Lx;
            h[kv_off + i] = s->Ly;
        }
        cudaError_t e = cudaMalloc(&p->seqlen, sizeof(int32_t) * 2 * kv_off);
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(p->seqlen, h, sizeof(int32_t) * 2 * kv_off, cudaMemcpyHostToDevice, st);
        /* on the net's stream and waited for, once: a plain cudaMemcpy from pageable memory may
         * return before its DMA is done, and that stream (non-blocking) would not wait for it; no
         * device-wide sync, which fails while the inference stream is captured into a graph */
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(st);
        free(h);
        if (e != cudaSuccess) {
            cudaFree(p->seqlen);
            p->seqlen = NULL;
            return tg_fail("cuDNN SDPA backward: sequence lengths: %s", cudaGetErrorString(e));
        }
    }
    char *ws = (char *)sd->ws;
    float *sum = (float *)(ws + off_sum), *acc = (float *)(ws + off_acc);
    /* before 9.6 the engine expects a zeroed accumulator (cudnn-frontend clears it then) */
    if (sd->ver < 90600)
        CU_CHECK(cudaMemsetAsync(acc, 0, acc_bytes, st));
    float scale = s->scale, one = 1.f, low = -FLT_MAX;
    int64_t uids[16] = {U_Q, U_K, U_V, U_O, U_DO, U_STATS, U_SCALE, U_ONE, U_DQ, U_DK, U_DV, U_SUM,
                        U_DQACC};
    void *ptrs[16] = {(void *)q,     (void *)k,  (void *)v,  (void *)o,  (void *)dout,
                      (void *)stats, &scale,     &one,       (void *)dq, (void *)dk,
                      (void *)dv,    (void *)sum, (void *)acc};
    int nu = 13;
    if (p->pad || s->causal) {
        uids[nu] = U_NEGINF;
        ptrs[nu++] = &low;
    }
    if (p->pad) {
        uids[nu] = U_SEQQ;
        ptrs[nu++] = p->seqlen;
        uids[nu] = U_SEQKV;
        ptrs[nu++] = p->seqlen + kv_off;
    }
    return execute(sd, st, p, nu, uids, ptrs, "cuDNN SDPA backward");
}

/* test hook (cuda_test.cu): forward through cuDNN, backward through cuDNN's graph where it takes
 * the shape (*bwd_cudnn = 1), else with the short-sequence (or warp) kernels on cuDNN's
 * statistics (*bwd_cudnn = 0). 1 = forward rejected. */
extern "C" int tgc_sdpa_test(int N, int Lx, int Ly, int H, int D, int causal, const bf16 *q,
                             const bf16 *k, const bf16 *v, const bf16 *dout, bf16 *o, bf16 *dq,
                             bf16 *dk, bf16 *dv, int *bwd_cudnn)
{
    tgc_attn_shape s;
    memset(&s, 0, sizeof s);
    s.N = N;
    s.Lx = Lx;
    s.Ly = Ly;
    s.H = H;
    s.D = D;
    s.kv_div = 1;
    s.causal = causal;
    s.sq = s.so = (long)Lx * H * D;
    s.ldq = s.ldo = s.ldk = (long)H * D;
    s.sk = (long)Ly * H * D;
    s.scale = 1.f / sqrtf((float)D);
    if (bwd_cudnn)
        *bwd_cudnn = 0;
    tgc_sdpa *sd = tgc_sdpa_new();
    if (!sd)
        return -1;
    float *lse = NULL;
    int rc;
    size_t nq = (size_t)N * Lx * H * D * sizeof(bf16), nk = (size_t)N * Ly * H * D * sizeof(bf16);
    if (cudaMalloc(&lse, sizeof(float) * N * H * Lx) != cudaSuccess) {
        tgc_sdpa_free(sd);
        return tg_fail("cudaMalloc failed");
    }
    rc = tgc_sdpa_fwd(sd, 0, &s, q, k, v, o, lse);
    if (!rc && dout) {
        /* poisoned (bf16 NaN): cuDNN's backward must write every element */
        if (cudaMemset(dq, 0xff, nq) != cudaSuccess || cudaMemset(dk, 0xff, nk) != cudaSuccess ||
            cudaMemset(dv, 0xff, nk) != cudaSuccess)
            rc = tg_fail("cudaMemset failed");
        else
            rc = tgc_sdpa_bwd(sd, 0, &s, q, k, v, o, dout, lse, dq, dk, dv);
        if (!rc && bwd_cudnn)
            *bwd_cudnn = 1;
        if (rc == 1) {
            /* refused: the kernels, on the zeroed outputs they had before */
            if (cudaMemset(dq, 0, nq) != cudaSuccess || cudaMemset(dk, 0, nk) != cudaSuccess ||
                cudaMemset(dv, 0, nk) != cudaSuccess)
                rc = tg_fail("cudaMemset failed");
            else if (tgc_attn_short_ok(&s))
                rc = tgc_attn_bwd_short(0, &s, q, k, v, o, dout, lse, dq, dk, dv);
            else {
                float *delta = NULL;
                if (cudaMalloc(&delta, sizeof(float) * N * H * Lx) != cudaSuccess)
                    rc = tg_fail("cudaMalloc failed");
                else
                    rc = tgc_attn_bwd_warp(0, &s, q, k, v, o, dout, lse, delta, dq, dk, dv);
                cudaDeviceSynchronize();
                cudaFree(delta);
            }
        }
    }
    cudaDeviceSynchronize();
    cudaFree(lse);
    tgc_sdpa_free(sd);
    return rc;
}
