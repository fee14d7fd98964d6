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
    /* tuning record (heuristic's first choice vs the one taken) and profile */
    int n_cand, n_sk, pick; /* heuristic candidates, split-K variants added, index timed fastest */
    float ms_first, ms_pick;
    int sk; /* K splits of the algorithm taken (1 none; 0 unknown) */
    int split; /* BGRAD: 0 undecided, 1 the epilogue, 2 a plain GEMM plus the column-sum kernel
                  (faster where the epilogue rules out split-K on these long reductions) */
    int warned; /* !ok: TG_CUDA_VERBOSE said so once */
    double prof_ms;
    long prof_calls;
} plan;

#define TUNE_CAND 16 /* heuristic candidates asked for */
#define TUNE_MAX 48  /* candidates timed in all, split-K variants included */
#define SK_MIN_K 256 /* split-K: each part keeps at least this much of the reduction */
#define SK_MIN_LONG 8192 /* split-K variants only for reductions at least this long */
#define PROF_EV 8192

struct tgc_gemm {
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_size;
    plan *plans;
    int n_plans;
    int epilogues;
    long fallbacks, fb_epi[8];
    /* plain GEMMs by the reference kernel (kernels.cu's tgc_gemm_ref): where cuBLASLt has no
     * algorithm, or all of them with ref set (TG_CUDA_GEMM_REF=1, tests) */
    int ref;
    long ref_calls;
    /* autotuning: scratch outputs the candidates write (grown on demand, plan building only) */
    int tune;
    int splitk; /* split-K variants: 0 off, 1 timed with the rest, 2 forced (see gemm.h) */
    int n_sm, last_sk;
    void *tscratch;
    size_t tscratch_size;
    cudaEvent_t tev[2];
    /* profile: events around each cublasLtMatmul, charged to its plan at collection */
    int prof, prof_n;
    cudaEvent_t *pev;
    int *pplan;
};

tgc_gemm *tgc_gemm_new(size_t workspace_bytes)
{
    tgc_gemm *g = (tgc_gemm *)calloc(1, sizeof *g);
    if (!g) {
        tg_fail("out of memory");
        return NULL;
    }
    g->epilogues = getenv("TG_CUDA_NO_EPILOGUE") ? 0 : 1;
    {
        const char *r = getenv("TG_CUDA_GEMM_REF");
        g->ref = r && strcmp(r, "0") != 0;
    }
    {
        const char *t = getenv("TG_CUDA_GEMM_TUNE");
        g->tune = !(t && !strcmp(t, "0"));
        t = getenv("TG_CUDA_GEMM_SPLITK");
        g->splitk = t && !strcmp(t, "0") ? TGC_SPLITK_OFF
                    : t && !strcmp(t, "force") ? TGC_SPLITK_FORCE : TGC_SPLITK_ON;
    }
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
    if (cudaEventCreate(&g->tev[0]) != cudaSuccess || cudaEventCreate(&g->tev[1]) != cudaSuccess) {
        tg_fail("cudaEventCreate failed");
        tgc_gemm_free(g);
        return NULL;
    }
    /* the SM count decides which shapes are offered split-K variants */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&g->n_sm, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        g->n_sm < 1) {
        tg_fail("cannot read the device's SM count");
        tgc_gemm_free(g);
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
    cudaFree(g->tscratch);
    for (int i = 0; i < 2; i++)
        if (g->tev[i])
            cudaEventDestroy(g->tev[i]);
    if (g->pev)
        for (int i = 0; i < 2 * PROF_EV; i++)
            cudaEventDestroy(g->pev[i]);
    free(g->pev);
    free(g->pplan);
    if (g->lt)
        cublasLtDestroy(g->lt);
    free(g);
}

int tgc_gemm_set_epilogues(tgc_gemm *g, int on)
{
    int old = g->epilogues;
    g->epilogues = on;
    return old;
}

int tgc_gemm_set_splitk(tgc_gemm *g, int mode)
{
    int old = g->splitk;
    g->splitk = mode;
    return old;
}

int tgc_gemm_last_splitk(const tgc_gemm *g) { return g->last_sk; }

int tgc_gemm_set_reference(tgc_gemm *g, int on)
{
    int old = g->ref;
    g->ref = on;
    return old;
}

long tgc_gemm_ref_calls(const tgc_gemm *g) { return g->ref_calls; }

long tgc_gemm_fallbacks(const tgc_gemm *g) { return g->fallbacks; }
long tgc_gemm_fallbacks_of(const tgc_gemm *g, int epi) { return g->fb_epi[epi & 7]; }

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
    case TGC_EPI_DGELU: return CUBLASLT_EPILOGUE_DGELU;
    case TGC_EPI_GELU: return CUBLASLT_EPILOGUE_GELU_BIAS;
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

/* Output bytes a GEMM of key k writes (D, the GELU pre-activation, the bias gradient). */
static size_t out_elems(const plan_key *k)
{
    size_t e = (size_t)(k->M - 1) * k->ldd + k->N;
    if (k->batched)
        e += (size_t)(k->batch - 1) * k->sD;
    return e;
}

static int set_ptrs(plan *p, int epi, const void *bias, void *aux, float *bgrad)
{
    if (epi == TGC_EPI_BIAS || epi == TGC_EPI_GELU_BIAS || epi == TGC_EPI_BGRAD ||
        epi == TGC_EPI_GELU) {
        const void *bp = epi == TGC_EPI_BGRAD ? (const void *)bgrad : bias;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bp, sizeof bp));
    }
    if (epi == TGC_EPI_GELU_BIAS || epi == TGC_EPI_DGELU)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
            p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
    return 0;
}

/* Times one algorithm on the caller's operands, writing scratch outputs (C is read, never
 * written, so in-place residual GEMMs are left intact). ms < 0: the algorithm failed to run. */
static int time_algo(tgc_gemm *g, cudaStream_t st, plan *p, const tgc_mm *m,
                     const cublasLtMatmulAlgo_t *algo, void *D, void *aux, float *bgrad, float *ms)
{
    *ms = -1.f;
    /* DGELU reads the real pre-activation; the other epilogues write scratch */
    if (set_ptrs(p, p->key.epi, m->bias, p->key.epi == TGC_EPI_DGELU ? m->aux : aux, bgrad))
        return -1;
    float alpha = m->alpha, beta = m->beta;
    const void *C = m->C && beta != 0.f ? m->C : m->D;
    if (cublasLtMatmul(g->lt, p->desc, &alpha, m->B, p->la, m->A, p->lb, &beta, C, p->ld, D,
                       p->ld, algo, g->ws, g->ws_size, st) != CUBLAS_STATUS_SUCCESS) {
        cudaGetLastError();
        return 0;
    }
    const int reps = 3;
    CU_CHECK(cudaEventRecord(g->tev[0], st));
    for (int r = 0; r < reps; r++)
        if (cublasLtMatmul(g->lt, p->desc, &alpha, m->B, p->la, m->A, p->lb, &beta, C, p->ld, D,
                           p->ld, algo, g->ws, g->ws_size, st) != CUBLAS_STATUS_SUCCESS) {
            cudaGetLastError();
            return 0;
        }
    CU_CHECK(cudaEventRecord(g->tev[1], st));
    CU_CHECK(cudaEventSynchronize(g->tev[1]));
    float t = 0.f;
    CU_CHECK(cudaEventElapsedTime(&t, g->tev[0], g->tev[1]));
    *ms = t / reps;
    return 0;
}

/* K splits an algorithm is configured with: 1 none, 0 when the library cannot tell. */
static int algo_splitk(const cublasLtMatmulAlgo_t *a)
{
    int32_t s = 1;
    size_t w = 0;
    if (cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &s, sizeof s, &w) !=
        CUBLAS_STATUS_SUCCESS)
        return 0;
    return s > 1 ? (int)s : 1;
}

/* Split-K copies of the heuristic's candidates c[0, n), for outputs too small to fill the GPU:
 * fewer 128 x 128 tiles (batches included) than two waves of the SMs, e.g. a 512 x 512 weight
 * gradient over K = 41472 (16 tiles on 132 SMs), where the heuristic's few candidates leave most
 * SMs idle. Splits 2, 4, .. 32 while each part keeps SK_MIN_K of the reduction and the tiles stay
 * within four waves. Reductions with a fixed order (deterministic) and fp32 partial sums only:
 * COMPUTE_TYPE; for fp32 outputs also INPLACE (sequenced by counters in the workspace), and
 * OUTPUT_TYPE where COMPUTE_TYPE is missing (the same fp32 partials then). Each copy must pass
 * cublasLtMatmulAlgoCheck with a workspace that fits; epilogues that rule split-K out fail it.
 * Appended to c up to cap entries; returns the new count. */
static int add_splitk(const tgc_gemm *g, const plan *p, cublasLtMatmulHeuristicResult_t *c, int n,
                      int cap)
{
    static const int32_t SPLITS[] = {2, 4, 8, 16, 32};
    const plan_key *k = &p->key;
    long tiles = ((k->M + 127) / 128) * ((k->N + 127) / 128) * (k->batched ? k->batch : 1);
    /* long reductions only (the weight gradients over a batch's rows): on the H100 a variant
     * was picked and won there (512 x 2048 over K = 41472, -3%); inference, whose GEMMs reduce
     * over K <= 4096, was 2.4% slower with variants on (one same-call A/B of greedy paper-S4) */
    if (tiles >= 2L * g->n_sm || k->K < SK_MIN_LONG)
        return n;
    int nh = n;
    for (int i = 0; i < nh && n < cap; i++) {
        int32_t sup = 0;
        uint32_t mask = 0;
        size_t w = 0;
        if (cublasLtMatmulAlgoCapGetAttribute(&c[i].algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &sup,
                                              sizeof sup, &w) != CUBLAS_STATUS_SUCCESS ||
            cublasLtMatmulAlgoCapGetAttribute(&c[i].algo, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK,
                                              &mask, sizeof mask, &w) != CUBLAS_STATUS_SUCCESS ||
            !sup || algo_splitk(&c[i].algo) != 1)
            continue; /* no split-K, or the heuristic split this one already */
        uint32_t red[2];
        int nr = 0;
        if (mask & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE)
            red[nr++] = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
        else if (k->ddt == TGC_F32 && (mask & CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE))
            red[nr++] = CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
        if (k->ddt == TGC_F32 && (mask & CUBLASLT_REDUCTION_SCHEME_INPLACE))
            red[nr++] = CUBLASLT_REDUCTION_SCHEME_INPLACE;
        for (size_t j = 0; j < sizeof SPLITS / sizeof SPLITS[0] && n < cap; j++) {
            int32_t sp = SPLITS[j];
            if (k->K / sp < SK_MIN_K || tiles * sp > 4L * g->n_sm)
                break;
            for (int r = 0; r < nr && n < cap; r++) {
                cublasLtMatmulHeuristicResult_t v = c[i], chk;
                memset(&chk, 0, sizeof chk);
                if (cublasLtMatmulAlgoConfigSetAttribute(&v.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM,
                                                         &sp, sizeof sp) != CUBLAS_STATUS_SUCCESS ||
                    cublasLtMatmulAlgoConfigSetAttribute(&v.algo,
                                                         CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                         &red[r], sizeof red[r]) !=
                        CUBLAS_STATUS_SUCCESS ||
                    cublasLtMatmulAlgoCheck(g->lt, p->desc, p->la, p->lb, p->ld, p->ld, &v.algo,
                                            &chk) != CUBLAS_STATUS_SUCCESS ||
                    chk.workspaceSize > g->ws_size)
                    continue; /* unsupported here (shape, epilogue, device) or too much workspace */
                int dup = 0; /* the heuristic may have offered this very configuration */
                for (int q = 0; q < n && !dup; q++)
                    dup = !memcmp(&c[q].algo, &v.algo, sizeof v.algo);
                if (dup)
                    continue;
                v.workspaceSize = chk.workspaceSize;
                v.wavesCount = chk.wavesCount;
                v.state = CUBLAS_STATUS_SUCCESS;
                c[n++] = v;
            }
        }
    }
    return n;
}

/* Builds descriptors and asks the heuristic; p->ok = 0 if no algorithm fits. With tuning on and
 * the operands at hand (m), the heuristic's first TUNE_CAND candidates, plus split-K variants for
 * small outputs over long reductions (add_splitk), are timed on them and the fastest is kept: the
 * heuristic's first choice is often not the fastest for these skinny shapes. */
static int plan_build(tgc_gemm *g, plan *p, const plan_key *k, const tgc_mm *m, cudaStream_t st)
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
    if (k->epi == TGC_EPI_GELU_BIAS || k->epi == TGC_EPI_DGELU) {
        int64_t ld = k->ldd;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld,
                                          sizeof ld));
    }
    if (k->epi == TGC_EPI_BGRAD) {
        int32_t bt = CUDA_R_32F;
        LT(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt,
                                          sizeof bt));
    }
    long mm = k->N, n = k->M, kk = k->K;
    /* lt A (our B): op N -> stored [m, k] ld=ldb ; op T -> stored [k, m] */
    LT(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, k->tb ? kk : mm, k->tb ? mm : kk, k->ldb));
    LT(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, k->ta ? n : kk, k->ta ? kk : n, k->lda));
    LT(cublasLtMatrixLayoutCreate(&p->ld, dty, mm, n, k->ldd));
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
    cublasLtMatmulHeuristicResult_t res[TUNE_MAX];
    int found = 0, want = g->tune && m ? TUNE_CAND : 1;
    cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(g->lt, p->desc, p->la, p->lb, p->ld, p->ld,
                                                      pref, want, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    int nv = 0;
    if (s == CUBLAS_STATUS_SUCCESS)
        for (int i = 0; i < found; i++)
            if (res[i].state == CUBLAS_STATUS_SUCCESS)
                res[nv++] = res[i];
    p->ok = nv > 0;
    if (!p->ok)
        return 0;
    p->algo = res[0].algo;
    p->n_cand = nv;
    p->sk = algo_splitk(&p->algo);
    if (!(g->tune && m))
        return 0;
    int nt = nv;
    if (g->splitk != TGC_SPLITK_OFF) {
        /* the epilogue's pointers set, so that the check sees the descriptor as it will run */
        if (set_ptrs(p, k->epi, m->bias, m->aux, m->bgrad)) {
            plan_release(p);
            return -1;
        }
        nt = add_splitk(g, p, res, nv, TUNE_MAX);
    }
    p->n_sk = nt - nv;
    /* one candidate needs no timing, except under the bias-gradient epilogue with split-K on:
     * decide_split weighs its time against a plain GEMM, which may split K where it cannot */
    if (nt < 2 && !(k->epi == TGC_EPI_BGRAD && g->splitk != TGC_SPLITK_OFF))
        return 0;
    /* tuning scratch: D, the GELU pre-activation, the bias gradient; each as aligned as the real
     * one (dofs, xofs below 256 bytes), so that what runs on the scratch also runs on the real
     * buffers (cublasLtMatmulAlgoCheck cannot see pointers) */
    size_t es = k->ddt == TGC_BF16 ? 2 : 4, oe = out_elems(k);
    size_t dofs = k->alD < 256 ? (size_t)k->alD : 0, xofs = k->alX < 256 ? (size_t)k->alX : 0;
    size_t offx = (dofs + oe * es + 255) & ~(size_t)255;
    size_t offg = offx + ((xofs + oe * 2 + 255) & ~(size_t)255);
    size_t need = offg + xofs + (size_t)k->M * 4 + 256;
    if (need > g->tscratch_size) {
        cudaFree(g->tscratch);
        g->tscratch = NULL;
        g->tscratch_size = 0;
        if (cudaMalloc(&g->tscratch, need) != cudaSuccess) {
            cudaGetLastError();
            return 0; /* no tuning: keep the heuristic's choice */
        }
        g->tscratch_size = need;
    }
    char *sb = (char *)g->tscratch;
    int best = -1, bsk = -1; /* fastest of all, fastest that splits K */
    int ran = 0;             /* candidates cublasLtMatmul accepted */
    float bms = 0.f, bskms = 0.f;
    for (int i = 0; i < nt; i++) {
        float ms;
        if (time_algo(g, st, p, m, &res[i].algo, sb + dofs, sb + offx + xofs,
                      (float *)(sb + offg + xofs), &ms)) {
            plan_release(p);
            return -1;
        }
        if (i == 0)
            p->ms_first = ms;
        ran += ms >= 0.f;
        if (ms <= 0.f)
            continue;
        if (best < 0 || ms < bms) {
            best = i;
            bms = ms;
        }
        if (algo_splitk(&res[i].algo) > 1 && (bsk < 0 || ms < bskms)) {
            bsk = i;
            bskms = ms;
        }
    }
    if (!ran) { /* every candidate refused to run: as if there were none (fallbacks) */
        p->ok = 0;
        return 0;
    }
    if (g->splitk == TGC_SPLITK_FORCE && bsk >= 0) { /* tests: make sure split-K runs */
        best = bsk;
        bms = bskms;
    }
    if (best >= 0) {
        p->algo = res[best].algo;
        p->pick = best;
        p->ms_pick = bms;
        p->sk = algo_splitk(&p->algo);
    }
    return 0;
}

static plan *plan_get(tgc_gemm *g, const plan_key *k, const tgc_mm *m, cudaStream_t st)
{
    for (int i = 0; i < g->n_plans; i++)
        if (!memcmp(&g->plans[i].key, k, sizeof *k))
            return &g->plans[i];
    if (g->n_plans == PLAN_CAP) { /* evict everything: shapes changed wholesale */
        for (int i = 0; i < g->n_plans; i++)
            plan_release(&g->plans[i]);
        g->n_plans = 0;
        g->prof_n = 0;
    }
    plan *p = &g->plans[g->n_plans];
    if (plan_build(g, p, k, m, st))
        return NULL;
    g->n_plans++;
    return p;
}

static int run_plan(tgc_gemm *g, cudaStream_t st, plan *p, const tgc_mm *m)
{
    if (set_ptrs(p, m->epi, m->bias, m->aux, m->bgrad))
        return -1;
    float alpha = m->alpha, beta = m->beta;
    const void *C = m->C && beta != 0.f ? m->C : m->D;
    int pi = g->prof && g->prof_n < PROF_EV ? g->prof_n++ : -1;
    if (pi >= 0) {
        g->pplan[pi] = (int)(p - g->plans);
        CU_CHECK(cudaEventRecord(g->pev[2 * pi], st));
    }
    CUBLAS_CHECK(cublasLtMatmul(g->lt, p->desc, &alpha, m->B, p->la, m->A, p->lb, &beta, C,
                                p->ld, m->D, p->ld, &p->algo, g->ws, g->ws_size, st));
    g->last_sk = p->sk;
    if (pi >= 0)
        CU_CHECK(cudaEventRecord(g->pev[2 * pi + 1], st));
    return 0;
}

int tgc_gemm_set_profile(tgc_gemm *g, int on)
{
    if (on && !g->pev) {
        g->pev = (cudaEvent_t *)calloc(2 * PROF_EV, sizeof(cudaEvent_t));
        g->pplan = (int *)calloc(PROF_EV, sizeof(int));
        if (!g->pev || !g->pplan)
            return tg_fail("out of memory");
        for (int i = 0; i < 2 * PROF_EV; i++)
            CU_CHECK(cudaEventCreate(&g->pev[i]));
    }
    g->prof = on;
    g->prof_n = 0;
    return 0;
}

void tgc_gemm_prof_collect(tgc_gemm *g, int keep)
{
    for (int i = 0; keep && i < g->prof_n; i++) {
        float ms = 0.f;
        if (cudaEventElapsedTime(&ms, g->pev[2 * i], g->pev[2 * i + 1]) == cudaSuccess) {
            g->plans[g->pplan[i]].prof_ms += ms;
            g->plans[g->pplan[i]].prof_calls++;
        }
    }
    cudaGetLastError();
    g->prof_n = 0;
}

void tgc_gemm_prof_report(const tgc_gemm *g, FILE *f, double per)
{
    int idx[PLAN_CAP], n = 0;
    double tot = 0;
    for (int i = 0; i < g->n_plans; i++)
        if (g->plans[i].prof_calls) {
            idx[n++] = i;
            tot += g->plans[i].prof_ms;
        }
    for (int i = 1; i < n; i++) /* by time, largest first */
        for (int j = i; j > 0 && g->plans[idx[j]].prof_ms > g->plans[idx[j - 1]].prof_ms; j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    static const char *const EN[8] = {"-", "bias", "gelu", "bgrad", "dgelu", "gelu0", "?", "?"};
    fprintf(f, "cuda gemm profile (per step; %.2f ms in GEMMs): M N K ta tb epi out beta batch | "
            "calls ms TFLOP/s | candidates(+split-K) pick first-ms pick-ms sk (bgrad: split)\n",
            tot / per);
    for (int r = 0; r < n && r < 48; r++) {
        const plan *p = &g->plans[idx[r]];
        const plan_key *k = &p->key;
        double fl = 2.0 * k->M * k->N * k->K * (k->batched ? k->batch : 1) * p->prof_calls;
        fprintf(f, "  %6ld %5ld %5ld %d %d %-5s %s %d %4ld | %5.1f %7.3f %6.1f | %d+%d %d %.4f %.4f "
                "%d %d\n",
                k->M, k->N, k->K, k->ta, k->tb, EN[k->epi & 7], k->ddt == TGC_BF16 ? "bf16" : "f32 ",
                k->has_beta, k->batched ? k->batch : 1, p->prof_calls / per, p->prof_ms / per,
                fl / (p->prof_ms * 1e9), p->n_cand, p->n_sk, p->pick, p->ms_first, p->ms_pick,
                p->sk, p->split);
    }
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
    if (epi == TGC_EPI_GELU_BIAS || epi == TGC_EPI_DGELU)
        k->alX = align_of(m->aux);
    else if (epi == TGC_EPI_BIAS || epi == TGC_EPI_GELU)
        k->alX = align_of(m->bias);
    else if (epi == TGC_EPI_BGRAD)
        k->alX = align_of(m->bgrad);
}

/* Times the plain GEMM plus the bias-gradient kernel against the BGRAD epilogue's plan p (both
 * on scratch outputs) and records the faster in p->split. */
static int decide_split(tgc_gemm *g, cudaStream_t st, plan *p, const tgc_mm *m)
{
    p->split = 1;
    if (g->n_plans >= PLAN_CAP - 1 || p->ms_pick <= 0.f || !m->ta)
        return 0;
    tgc_mm plain = *m;
    plain.epi = TGC_EPI_NONE;
    plan_key k;
    key_of(&plain, TGC_EPI_NONE, &k);
    plan *q = plan_get(g, &k, &plain, st);
    if (!q)
        return -1;
    if (!q->ok || q->ms_pick <= 0.f || g->tscratch_size < (size_t)m->M * 4)
        return 0;
    const int reps = 3;
    CU_CHECK(cudaEventRecord(g->tev[0], st));
    for (int r = 0; r < reps; r++)
        if (tgc_colsum(st, m->A, TGC_BF16, m->lda, m->K, (int)m->M, (float *)g->tscratch, 0))
            return -1;
    CU_CHECK(cudaEventRecord(g->tev[1], st));
    CU_CHECK(cudaEventSynchronize(g->tev[1]));
    float t = 0.f;
    CU_CHECK(cudaEventElapsedTime(&t, g->tev[0], g->tev[1]));
    if (q->ms_pick + t / reps < 0.97f * p->ms_pick)
        p->split = 2;
    return 0;
}

/* Whether cuBLASLt's epilogue may be asked for: its bias / bias-gradient vector and GELU
 * pre-activation 16-byte aligned (the heuristic is told the operands' alignments, not these)
 * and the pre-activation's ld a multiple of 8 (cuBLASLt's rule for EPILOGUE_AUX_LD). Odd widths
 * break both (a fused projection's k bias sits at q's bias + inner; an MLP of width 12 or 18):
 * those GEMMs take the kernel fallback; every width a multiple of 8 passes as before. */
static int epi_aligned(const tgc_mm *m)
{
    const void *vec = m->epi == TGC_EPI_BGRAD ? (const void *)m->bgrad : m->bias;
    if (m->epi != TGC_EPI_DGELU && vec && align_of(vec) < 16)
        return 0;
    if ((m->epi == TGC_EPI_GELU_BIAS || m->epi == TGC_EPI_DGELU) &&
        (m->ldd % 8 || align_of(m->aux) < 16))
        return 0;
    return 1;
}

/* The plain GEMM m (batch of them at strides sA, sB, sD) by the reference kernel. */
static int run_ref(tgc_gemm *g, cudaStream_t st, const tgc_mm *m, long sA, long sB, long sD,
                   long batch)
{
    g->ref_calls++;
    g->last_sk = 1;
    const void *C = m->C && m->beta != 0.f ? m->C : m->D;
    return tgc_gemm_ref(st, m->ta, m->tb, m->M, m->N, m->K, m->A, m->lda, sA, m->B, m->ldb, sB,
                        m->D, m->ddt, m->ldd, sD, C, m->alpha, m->beta, batch);
}

/* A plan cuBLASLt had no algorithm for: said once under TG_CUDA_VERBOSE (the reference kernel
 * runs it, correct but slow). */
static void no_algo_note(plan *p)
{
    if (p->warned)
        return;
    p->warned = 1;
    if (getenv("TG_CUDA_VERBOSE"))
        fprintf(stderr,
                "cuda: cuBLASLt has no algorithm for GEMM %ldx%ldx%ld (ta %d tb %d, ld %ld %ld "
                "%ld, alignment %d %d %d, batch %ld): reference kernel\n",
                p->key.M, p->key.N, p->key.K, p->key.ta, p->key.tb, p->key.lda, p->key.ldb,
                p->key.ldd, p->key.alA, p->key.alB, p->key.alD,
                p->key.batched ? p->key.batch : 1);
}

int tgc_gemm_run(tgc_gemm *g, cudaStream_t st, const tgc_mm *m)
{
    if (m->M <= 0 || m->N <= 0)
        return 0;
    if (m->K <= 0)
        return tg_fail("GEMM with K = 0");
    plan_key k;
    int chose_split = 0;
    if (m->epi != TGC_EPI_NONE && g->epilogues && !g->ref && epi_aligned(m)) {
        key_of(m, m->epi, &k);
        plan *p = plan_get(g, &k, m, st);
        if (!p)
            return -1;
        if (p->ok && m->epi == TGC_EPI_BGRAD && !p->split && g->tune &&
            decide_split(g, st, p, m))
            return -1;
        if (p->ok && p->split != 2)
            return run_plan(g, st, p, m);
        chose_split = p->ok;
    }
    /* plain GEMM, then the epilogue as a kernel */
    tgc_mm plain = *m;
    plain.epi = TGC_EPI_NONE;
    if (m->epi == TGC_EPI_GELU_BIAS) {
        plain.D = m->aux;
        if (m->beta != 0.f)
            return tg_fail("GELU epilogue with beta != 0");
    }
    if (g->ref) {
        if (run_ref(g, st, &plain, 0, 0, 0, 1))
            return -1;
    } else {
        key_of(&plain, TGC_EPI_NONE, &k);
        plan *p = plan_get(g, &k, &plain, st);
        if (!p)
            return -1;
        if (!p->ok)
            no_algo_note(p);
        if (p->ok ? run_plan(g, st, p, &plain) : run_ref(g, st, &plain, 0, 0, 0, 1))
            return -1;
    }
    if (m->epi != TGC_EPI_NONE && g->epilogues && !chose_split) {
        g->fallbacks++;
        g->fb_epi[m->epi & 7]++;
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
    case TGC_EPI_GELU:
        if (m->ddt != TGC_BF16 || m->ldd != m->N || m->beta != 0.f)
            return tg_fail("GELU epilogue needs a dense bf16 output and beta = 0");
        return tgc_bias_gelu(st, (bf16 *)m->D, (const bf16 *)m->bias, (bf16 *)m->D, m->M,
                             (int)m->N);
    case TGC_EPI_DGELU:
        if (m->ddt != TGC_BF16 || m->ldd != m->N || m->beta != 0.f)
            return tg_fail("GELU-gradient epilogue needs a dense bf16 output and beta = 0");
        return tgc_gelu_bwd(st, (bf16 *)m->D, m->aux, m->M * m->N);
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
    if (g->ref)
        return run_ref(g, st, &m, sA, sB, sD, batch);
    plan_key k;
    key_of(&m, TGC_EPI_NONE, &k);
    k.batched = 1;
    k.sA = sA;
    k.sB = sB;
    k.sD = sD;
    k.batch = batch;
    plan *p = plan_get(g, &k, &m, st);
    if (!p)
        return -1;
    if (!p->ok) {
        no_algo_note(p);
        return run_ref(g, st, &m, sA, sB, sD, batch);
    }
    return run_plan(g, st, p, &m);
}
