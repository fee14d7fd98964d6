/* Attention forward through cuDNN's graph (backend) API from C-style code: the scaled dot-product
 * attention pattern that cuDNN's fused flash-attention engines recognise,
 *
 *   S = Q K^T (fp32) -> S * scale -> [causal: select(row >= col, S, -inf)] -> softmax with its
 *   statistics (max, exp, sum; Stats = max + log sum, the natural-log logsumexp) -> O = P V,
 *
 * Q, K, V and O bf16 in the packed token-major layout [N, L, H, D] (strided 4-D tensors
 * [N, H, L, D]), Stats fp32 [N, H, Lx, 1] = the lse layout of the other attention paths, so their
 * backward kernels run on cuDNN's statistics. Plans are cached per shape; a shape that no engine
 * takes is reported as rejected (1) and the caller falls back. cuDNN's version is checked at run
 * time (9.x). */
#include <cudnn.h>
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
} sdpa_plan;

struct tgc_sdpa {
    cudnnHandle_t h;
    sdpa_plan plans[SDPA_CACHE];
    int n;
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
    cudaFree(p->ws);
    cudnnDestroy(p->h);
    free(p);
}

enum { U_Q = 1, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF, U_VIRT = 100 };

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

/* A pointwise operation y = mode(x [, b] [, t]); axis >= 0 for GEN_INDEX. */
static cudnnStatus_t pointwise(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *pw,
                               cudnnPointwiseMode_t mode, cudnnBackendDescriptor_t x,
                               cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t t,
                               cudnnBackendDescriptor_t y, int64_t axis)
{
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, pw);
    if (s)
        return s;
    cudnnDataType_t prec = CUDNN_DATA_FLOAT;
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

static cudnnStatus_t matmul(cudnnBackendDescriptor_t *op, cudnnBackendDescriptor_t *mm,
                            cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b,
                            cudnnBackendDescriptor_t c)
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
    return cudnnBackendFinalize(*op);
}

#define NDESC 64

/* Builds the graph and a plan for shape s: p->ok = 1 with p->plan, or 0 when no engine fits. */
static int build(tgc_sdpa *sd, sdpa_plan *p, const tgc_attn_shape *s)
{
    cudnnBackendDescriptor_t d[NDESC];
    int nd = 0;
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    cudnnBackendDescriptor_t heur = NULL, graph = NULL, cfgs[8] = {0};
    int64_t ncfg = 0;
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
    {
        cudnnBackendDescriptor_t ops[16];
        int no = 0;
#define OP(call)                                                                               \
    DN(call);                                                                                  \
    ops[no++] = d[nd - 1]
        /* each helper creates two descriptors: the operator's and the operation's */
        OP((nd += 2, matmul(&d[nd - 1], &d[nd - 2], tQ, tK, tS)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_MUL, tS, tScale, NULL, tS2,
                               -1)));
        if (s->causal) {
            OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS2, NULL,
                                   NULL, tRow, 2)));
            OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_GEN_INDEX, tS2, NULL,
                                   NULL, tCol, 3)));
            OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_CMP_GE, tRow, tCol,
                                   NULL, tMask, -1)));
            OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_BINARY_SELECT, tS2,
                                   tNeg, tMask, tS3, -1)));
        }
        OP((nd += 2, reduction(&d[nd - 1], &d[nd - 2], CUDNN_REDUCE_TENSOR_MAX, tS3, tMax)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_SUB, tS3, tMax, NULL, tSub,
                               -1)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_EXP, tSub, NULL, NULL, tExp,
                               -1)));
        OP((nd += 2, reduction(&d[nd - 1], &d[nd - 2], CUDNN_REDUCE_TENSOR_ADD, tExp, tSum)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_LOG, tSum, NULL, NULL, tLog,
                               -1)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_ADD, tMax, tLog, NULL,
                               tStats, -1)));
        OP((nd += 2, pointwise(&d[nd - 1], &d[nd - 2], CUDNN_POINTWISE_DIV, tExp, tSum, NULL, tP,
                               -1)));
        OP((nd += 2, matmul(&d[nd - 1], &d[nd - 2], tP, tV, tO)));
#undef OP
        DN(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &graph));
        DN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                    CUDNN_TYPE_BACKEND_DESCRIPTOR, no, ops));
        DN(cudnnBackendSetAttribute(graph, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                    &sd->h));
        DN(cudnnBackendFinalize(graph));
    }
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
    for (int i = 0; i < ncfg && !p->ok; i++) {
        cudnnBackendDescriptor_t plan;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan))
            continue;
        if (cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                     &sd->h) ||
            cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]) ||
            cudnnBackendFinalize(plan)) {
            cudnnBackendDestroyDescriptor(plan);
            continue;
        }
        int64_t ws = 0, got = 0;
        cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64,
                                 1, &got, &ws);
        p->plan = plan;
        p->ws = ws;
        p->ok = 1;
    }
out:
    if (st_ != CUDNN_STATUS_SUCCESS && getenv("TG_CUDA_VERBOSE"))
        fprintf(stderr, "cuDNN SDPA graph for N %d Lx %d Ly %d H %d D %d causal %d: %s: %s\n",
                s->N, s->Lx, s->Ly, s->H, s->D, s->causal, where_, cudnnGetErrorString(st_));
    for (int i = 0; i < 8; i++)
        if (cfgs[i])
            cudnnBackendDestroyDescriptor(cfgs[i]);
    if (heur)
        cudnnBackendDestroyDescriptor(heur);
    if (graph)
        cudnnBackendDestroyDescriptor(graph);
    for (int i = 0; i < nd; i++)
        if (d[i])
            cudnnBackendDestroyDescriptor(d[i]);
    return 0; /* not supported is not an error: p->ok says */
}

int tgc_sdpa_fwd(tgc_sdpa *sd, cudaStream_t st, const tgc_attn_shape *s, const bf16 *q,
                 const bf16 *k, const bf16 *v, bf16 *o, float *lse)
{
    if (s->kv_div != 1 || !lse)
        return 1;
    sdpa_plan *p = NULL;
    for (int i = 0; i < sd->n; i++)
        if (!memcmp(&sd->plans[i].s, s, sizeof *s))
            p = &sd->plans[i];
    if (!p) {
        if (sd->n == SDPA_CACHE)
            return 1;
        p = &sd->plans[sd->n++];
        build(sd, p, s);
    }
    if (!p->ok)
        return 1;
    if ((size_t)p->ws > sd->ws_size) {
        cudaFree(sd->ws);
        sd->ws = NULL;
        sd->ws_size = 0;
        CU_CHECK(cudaMalloc(&sd->ws, (size_t)p->ws));
        sd->ws_size = (size_t)p->ws;
    }
    cudnnStatus_t st_ = CUDNN_STATUS_SUCCESS;
    const char *where_ = "";
    cudnnBackendDescriptor_t vp = NULL;
    float scale = s->scale, neg = -INFINITY;
    int64_t uids[7] = {U_Q, U_K, U_V, U_O, U_STATS, U_SCALE, U_NEGINF};
    void *ptrs[7] = {(void *)q, (void *)k, (void *)v, (void *)o, (void *)lse, &scale, &neg};
    int nu = s->causal ? 7 : 6;
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
        return tg_fail("cuDNN SDPA: %s: %s", where_, cudnnGetErrorString(st_));
    return 0;
}

/* test hook (cuda_test.cu): forward through cuDNN, backward with the short-sequence kernels on
 * cuDNN's statistics. 1 = rejected. */
extern "C" int tgc_sdpa_test(int N, int Lx, int Ly, int H, int D, int causal, const bf16 *q,
                             const bf16 *k, const bf16 *v, const bf16 *dout, bf16 *o, bf16 *dq,
                             bf16 *dk, bf16 *dv)
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
    tgc_sdpa *sd = tgc_sdpa_new();
    if (!sd)
        return -1;
    float *lse = NULL;
    int rc;
    if (cudaMalloc(&lse, sizeof(float) * N * H * Lx) != cudaSuccess) {
        tgc_sdpa_free(sd);
        return tg_fail("cudaMalloc failed");
    }
    rc = tgc_sdpa_fwd(sd, 0, &s, q, k, v, o, lse);
    if (!rc && dout) {
        if (tgc_attn_short_ok(&s))
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
    cudaDeviceSynchronize();
    cudaFree(lse);
    tgc_sdpa_free(sd);
    return rc;
}
