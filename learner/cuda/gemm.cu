/* cuBLASLt GEMMs with a plan cache (see gemm.h). Row-major D[M, N] = op(A) op(B) is computed as
 * the column-major D^T[N, M] = op(B)^T op(A)^T, so cuBLASLt's "A" is our B and vice versa; a
 * Linear's forward (X W^T) becomes cuBLASLt's TN GEMM, its fastest layout. */
#include <stdlib.h>
#include <string.h>

#include "learner/cuda/gemm.h"

#define PLAN_CAP 1024

typedef struct plan_key {
    int ta, tb, ddt, epi, has_beta, batched;
    long M, N, K, lda, ldb, ldd, sA, sB, sD, batch;
    int alA, alB, alD, alX;
} plan_key;

typedef struct plan {
    plan_key key;
    int ok; /* 0: cuBLASLt has no algorithm for it (fall back) */
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} plan;

struct tgc_gemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_size;
    plan *plans;
    int n_plans;
    int epilogues;
    long fallbacks, fb_epi[4];
};

tgc_gemm *tgc_gemm_new(size_t workspace_bytes)
{
    tgc_gemm *g = (tgc_gemm *)calloc(1, sizeof *g);
    if (!g) {
        tg_fail("out of memory");
        return NULL;
    }
    g->epilogues = getenv("TG_CUDA_NO_EPILOGUE") ? 0 : 1;
    g->plans = (plan *)calloc(PLAN_CAP, sizeof(plan));
    cublasStatus_t s = cublasLtCreate(&g->lt);
    if (!g->plans || s != CUBLAS_STATUS_SUCCESS) {
        tg_fail("cublasLtCreate: status %d", (int)s);
        free(g->plans);
        free(g);
        return NULL;
    }
    g->ws_size = workspace_bytes;
    if (cudaMalloc(&g->ws, workspace_bytes) != cudaSuccess) {
        tg_fail("cudaMalloc of %zu bytes of GEMM workspace failed", workspace_bytes);
        cublasLtDestroy(g->lt);
        free(g->plans);
        free(g);
        return NULL;
    }
    return g;
}

static void plan_release(plan *p)
{
    if (p->desc)
        cublasLtMatmulDescDestroy(p->desc);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
    memset(p, 0, sizeof *p);
}

void tgc_gemm_free(tgc_gemm *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_plans; i++)
        plan_release(&g->plans[i]);
    free(g->plans);
    cudaFree(g->ws);
    cublasLtDestroy(g->lt);
    free(g);
}

int tgc_gemm_set_epilogues(tgc_gemm *g, int on)
{
    int old = g->epilogues;
    g->epilogues = on;
    return old;
}

long tgc_gemm_fallbacks(const tgc_gemm *g) { return g->fallbacks; }
long tgc_gemm_fallbacks_of(const tgc_gemm *g, int epi) { return g->fb_epi[epi & 3]; }

static int align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % al))
        al >>= 1;
    return al;
}

static cublasLtEpilogue_t lt_epi(int epi)
{
    switch (epi) {
    case TGC_EPI_BIAS: return CUBLASLT_EPILOGUE_BIAS;
    case TGC_EPI_GELU_BIAS: return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case TGC_EPI_BGRAD: return CUBLASLT_EPILOGUE_BGRADB;
    default: return CUBLASLT_EPILOGUE_DEFAULT;
    }
}

#define LT(x)                                                                                  \
    do {                                                                                       \
        cublasStatus_t s_ = (x);                                                               \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                     \
            tg_fail("%s: cuBLASLt status %d", #x, (int)s_);                                    \
            plan_release(p);                                                                   \
            return -1;                                                                         \
        }                                                                                      \
    } while (0)

/* Builds descriptors and asks the heuristic; p->ok = 0 if no algorithm fits. */
static int plan_build(tgc_gemm *g, plan *p, const plan_key *k)
{
    memset(p, 0, sizeof *p);
    p->key = *k;
    cudaDataType_t dty = k->ddt == TGC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    LT(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    /* column-major: lt A = our B, lt B = our A */
    cublasOperation_t opa = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    cublasLtEpilogue_t e = lt_epi(k->epi);
    LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    if (k->epi == TGC_EPI_GELU_BIAS) {
        int64_t ld = k->ldd;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld,
                                          sizeof ld));
    }
    if (k->epi == TGC_EPI_BGRAD) {
        int32_t bt = CUDA_R_32F;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                          sizeof bt));
    }
    long m = k->N, n = k->M, kk = k->K;
    /* lt A (our B): op N -> stored [m, k] ld=ldb ; op T -> stored [k, m] */
    LT(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, k->tb ? kk : m, k->tb ? m : kk, k->ldb));
    LT(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, k->ta ? n : kk, k->ta ? kk : n, k->lda));
    LT(cublasLtMatrixLayoutCreate(&p->ld, dty, m, n, k->ldd));
    if (k->batched) {
        int32_t bc = (int32_t)k->batch;
        int64_t sa = k->sB, sb = k->sA, sd = k->sD;
        LT(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(p->ld, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LT(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa));
        LT(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb));
        LT(cublasLtMatrixLayoutSetAttribute(p->ld, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sd, sizeof sd));
    }
    cublasLtMatmulPreference_t pref;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = g->ws_size;
    uint32_t aA = k->alB, aB = k->alA, aD = k->alD; /* swapped like the operands */
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aA, sizeof aA);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &aB, sizeof aB);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &aD, sizeof aD);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &aD, sizeof aD);
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->ld, p->ld,
                                                      pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (s == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        p->algo = res.algo;
        p->ok = 1;
    } else {
        p->ok = 0;
    }
    return 0;
}

static plan *plan_get(tgc_gemm *g, const plan_key *k)
{
    for (int i = 0; i < g->n_plans; i++)
        if (!memcmp(&g->plans[i].key, k, sizeof *k))
            return &g->plans[i];
    if (g->n_plans == PLAN_CAP) { /* evict everything: shapes changed wholesale */
        for (int i = 0; i < g->n_plans; i++)
            plan_release(&g->plans[i]);
        g->n_plans = 0;
    }
    plan *p = &g->plans[g->n_plans];
    if (plan_build(g, p, k))
        return NULL;
    g->n_plans++;
    return p;
}

static int run_plan(tgc_gemm *g, cudaStream_t st, plan *p, const tgc_mm *m)
{
    if (m->epi == TGC_EPI_BIAS || m->epi == TGC_EPI_GELU_BIAS || m->epi == TGC_EPI_BGRAD) {
        const void *bp = m->epi == TGC_EPI_BGRAD ? (const void *)m->bgrad : m->bias;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bp, sizeof bp));
    }
    if (m->epi == TGC_EPI_GELU_BIAS) {
        void *ap = m->aux;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &ap, sizeof ap));
    }
    float alpha = m->alpha, beta = m->beta;
    const void *C = m->C && beta != 0.f ? m->C : m->D;
    CUBLAS_CHECK(cublasLtMatmul(g->lt, p->desc, &alpha, m->B, p->la, m->A, p->lb, &beta, C,
                                p->ld, m->D, p->ld, &p->algo, g->ws, g->ws_size, st));
    return 0;
}

static void key_of(const tgc_mm *m, int epi, plan_key *k)
{
    memset(k, 0, sizeof *k);
    k->ta = m->ta;
    k->tb = m->tb;
    k->ddt = m->ddt;
    k->epi = epi;
    k->has_beta = m->beta != 0.f;
    k->M = m->M;
    k->N = m->N;
    k->K = m->K;
    k->lda = m->lda;
    k->ldb = m->ldb;
    k->ldd = m->ldd;
    k->alA = align_of(m->A);
    k->alB = align_of(m->B);
    k->alD = align_of(m->D);
    if (m->C && m->beta != 0.f && align_of(m->C) < k->alD)
        k->alD = align_of(m->C);
    if (epi == TGC_EPI_GELU_BIAS)
        k->alX = align_of(m->aux);
    else if (epi == TGC_EPI_BIAS)
        k->alX = align_of(m->bias);
    else if (epi == TGC_EPI_BGRAD)
        k->alX = align_of(m->bgrad);
}

int tgc_gemm_run(tgc_gemm *g, cudaStream_t st, const tgc_mm *m)
{
    if (m->M <= 0 || m->N <= 0)
        return 0;
    if (m->K <= 0)
        return tg_fail("GEMM with K = 0");
    plan_key k;
    if (m->epi != TGC_EPI_NONE && g->epilogues) {
        key_of(m, m->epi, &k);
        plan *p = plan_get(g, &k);
        if (!p)
            return -1;
        if (p->ok)
            return run_plan(g, st, p, m);
    }
    /* plain GEMM, then the epilogue as a kernel */
    tgc_mm plain = *m;
    plain.epi = TGC_EPI_NONE;
    if (m->epi == TGC_EPI_GELU_BIAS) {
        plain.D = m->aux;
        if (m->beta != 0.f)
            return tg_fail("GELU epilogue with beta != 0");
    }
    key_of(&plain, TGC_EPI_NONE, &k);
    plan *p = plan_get(g, &k);
    if (!p)
        return -1;
    if (!p->ok)
        return tg_fail("cuBLASLt has no algorithm for GEMM %ldx%ldx%ld (ta %d tb %d)", m->M,
                       m->N, m->K, m->ta, m->tb);
    if (run_plan(g, st, p, &plain))
        return -1;
    if (m->epi != TGC_EPI_NONE && g->epilogues) {
        g->fallbacks++;
        g->fb_epi[m->epi & 3]++;
    }
    switch (m->epi) {
    case TGC_EPI_BIAS:
        return tgc_bias_add(st, m->D, m->ddt, m->ldd, m->bias, m->M, (int)m->N);
    case TGC_EPI_GELU_BIAS:
        if (m->ddt != TGC_BF16)
            return tg_fail("GELU epilogue needs a bf16 output");
        if (m->ldd != m->N)
            return tg_fail("GELU fallback needs a dense output");
        return tgc_bias_gelu(st, m->aux, (const bf16 *)m->bias, (bf16 *)m->D, m->M, (int)m->N);
    case TGC_EPI_BGRAD:
        if (!m->ta)
            return tg_fail("bias-gradient epilogue needs A stored transposed");
        return tgc_colsum(st, m->A, TGC_BF16, m->lda, m->K, (int)m->M, m->bgrad, 0);
    default:
        return 0;
    }
}

int tgc_gemm_batched(tgc_gemm *g, cudaStream_t st, int ta, int tb, long M, long N, long K,
                     const bf16 *A, long lda, long sA, const bf16 *B, long ldb, long sB, void *D,
                     int ddt, long ldd, long sD, long batch, float alpha, float beta)
{
    if (batch <= 0 || M <= 0 || N <= 0)
        return 0;
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = ta;
    m.tb = tb;
    m.M = M;
    m.N = N;
    m.K = K;
    m.A = A;
    m.lda = lda;
    m.B = B;
    m.ldb = ldb;
    m.D = D;
    m.ddt = ddt;
    m.ldd = ldd;
    m.alpha = alpha;
    m.beta = beta;
    plan_key k;
    key_of(&m, TGC_EPI_NONE, &k);
    k.batched = 1;
    k.sA = sA;
    k.sB = sB;
    k.sD = sD;
    k.batch = batch;
    plan *p = plan_get(g, &k);
    if (!p)
        return -1;
    if (!p->ok)
        return tg_fail("cuBLASLt has no algorithm for batched GEMM %ldx%ldx%ld x %ld", M, N, K,
                       batch);
    return run_plan(g, st, p, &m);
}
