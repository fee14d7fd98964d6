/* The CUDA backend of the network (tg_net_cuda_ops, see learner/net.h).
 *
 * Precision: fp32 master parameters, gradients and AdamW moments; a bf16 copy of the parameters
 * (refreshed by the fused AdamW kernel) feeds the GEMMs, which accumulate in fp32. The residual
 * streams stay fp32; LayerNorm writes the bf16 GEMM inputs; attention inputs and outputs are bf16.
 *
 * Memory: every device buffer (parameters in an aligned layout, activations kept for backward,
 * scratch) is carved at creation out of one allocation sized for max_batch; the decoder's KV
 * caches are sized on first use and only grow. No allocation per step.
 *
 * Torso layout: the three grids live in G [B, 3, S, S, c] (which is the torso output e
 * [B, 3 S^2, c]); each attentive-modes stage gathers its 2S-token sequences into a dense
 * [B S, 2S, c] buffer, runs the block, and scatters back. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "learner/cuda/attn.h"
#include "learner/cuda/cuda_api.h"
#include "learner/cuda/cudnn_sdpa.h"
#include "learner/cuda/gemm.h"
#include "learner/cuda/netk.h"

extern "C" {
#include "common/rng.h"
#include "learner/net.h"
}

/* tensor-core attention unless TG_CUDA_ATTN_MMA=0 (TG_CUDA_ATTN_MMA=1 forces it on) */
#define ATTN_MMA_DEFAULT 1

/* ------------------------------------------------------------------ structures */

/* the PR_DEC_ ones: the same kinds of work inside the policy head's token-by-token sampling
 * (decode_run's loop), kept apart from the torso's, which runs once per position; its GEMMs
 * split into the MLPs' and the rest (attention projections, output), its attention into self
 * (over the tokens so far) and cross (over the torso's embeddings) */
enum { PR_GEMM_FWD, PR_GEMM_DGRAD, PR_GEMM_WGRAD, PR_ATTN_FWD, PR_ATTN_BWD, PR_PATTN_FWD,
       PR_PATTN_BWD, PR_LN, PR_ELEM, PR_OPT, PR_DEC_GEMM, PR_DEC_MLP, PR_DEC_SATTN, PR_DEC_XATTN,
       PR_DEC_LN, PR_DEC_ELEM, PROF_NCAT };
static const char *const PROF_NAMES[PROF_NCAT] = {
    "GEMM forward", "GEMM data grad", "GEMM weight grad", "attention fwd", "attention bwd",
    "policy attn fwd", "policy attn bwd", "LayerNorm", "other kernels", "loss+AdamW",
    "sampling: GEMMs", "sampling: MLP GEMMs", "sampling: self-attn", "sampling: cross-attn",
    "sampling: LayerNorm", "sampling: other"};

typedef struct dlin {
    float *w32, *b32, *gw, *gb;
    bf16 *w16, *b16;
    int in, out;
} dlin;

typedef struct dln {
    float *w, *b, *gw, *gb;
    int n;
} dln;

typedef struct dblock {
    int cross, causal, cx, cy, H, D, wc, inner;
    dln nx, ny, nm;
    dlin q, k, v, o, m1, m2;
    /* the device layout keeps q, k, v weights (and biases) back to back, so one GEMM does
     * self-attention's q, k, v (qkv: out 3 inner) and cross-attention's k, v (kv: out 2 inner) */
    dlin qkv, kv;
    long ldq, ldk;  /* row strides of q and of k, v in the fused outputs */
} dblock;

/* activations kept by one block's forward for its backward */
typedef struct bsave {
    float *xin, *xmid, *xout;
    bf16 *xn, *yn, *q, *k, *v, *a, *hn, *pre, *act, *P; /* q, k, v: views of the fused GEMM
                                                         outputs (strides ldq, ldk) */
    float *mx, *rx, *my, *ry, *mm, *rm, *lse;
} bsave;

/* One captured decoding: what its kernels' arguments depend on (the shape, the temperature,
 * whether uniforms come, the output and the decoder buffers' place and layout), and the graph.
 * state 0: seen once (that call ran plain, so that GEMM plans, workspaces and caches exist
 * before any capture); 1: captured (exec); 2: the capture failed, plain from then on. */
#define DG_CAP 8
typedef struct dgraph {
    int N, K, has_u, state;
    float temp;
    const float *quant;
    const void *dec;
    long dec_rows;
    cudaGraphExec_t exec;
} dgraph;

typedef struct cuda_net {
    const tg_params *tab;
    tg_net_config cfg;
    int max_batch;
    cudaStream_t st;
    tgc_gemm *gemm;
    int attn_mode;
    int stage_fuse;          /* torso stage to stage in one copy kernel (TG_CUDA_STAGE_FUSE=0:
                                a scatter then a gather, comparisons) */
    int stage_ln;            /* that kernel also writes the next stage's first LayerNorm, so the
                                block skips it (TG_CUDA_STAGE_LN=0: the LayerNorm kernel instead,
                                comparisons) */
    int pout_pad;            /* the policy output's weight gradient over padded rows
                                (TG_CUDA_POUT_PAD=0: over the n_logits rows, comparisons) */
    int attn_mma;            /* tensor-core attention where it takes the shape (TG_CUDA_ATTN_MMA=0:
                                the older kernels, for comparisons; =1: on) */
    int ln_dy;               /* dtype of the blocks' LayerNorm-backward inputs dh, dxn, dyn, as
                                their data-gradient GEMMs write them: TGC_BF16 (half the bytes
                                written and read), TGC_F32 with TG_CUDA_LN_DY32=1 (comparisons) */
    tgc_sdpa *sdpa;          /* TG_CUDA_ATTN=cudnn: forward and backward through cuDNN where it
                                takes the shape (the kernels otherwise) */
    /* parameters, device layout (each tensor 256-byte aligned) */
    size_t *doff; /* per tensor */
    size_t dtotal;
    float *p32, *grad, *m, *v;
    bf16 *p16;
    uint8_t *decay;
    int64_t step;
    /* structure */
    dlin sp[3], inp[3];
    dblock *torso, *policy;
    float *pos, *gpos;
    dlin embed, pout, *vh, vout;
    dln pnorm;
    /* activation arena */
    void *arena;
    size_t arena_size;
    bsave *ts, *ps;          /* torso [layers*3], policy [2 p_layers] */
    float *G, *dG, *dense;   /* G [B,3,S,S,c]; dense [B S S, c] scratch */
    bf16 *xin16[3];          /* torso input grids [B S S, Fp]: S T + 1 features, zero-padded to
                                Fp (multiple of 8) */
    float *dxin[3];          /* their gradients (fp32, only the scalar column is used) */
    int32_t *tok_in, *tok_act;
    float *x0, *hp;          /* policy input [B L, P], final LN output fp32 */
    float *hp_m, *hp_r;
    bf16 *hrelu, *h0;        /* relu(hp) bf16, value input bf16 */
    float **vz;              /* value pre-activations [B, vh] fp32 */
    bf16 **va;               /* value activations bf16 */
    float *logits, *quant, *dlogits, *dquant, *loss_rows, *loss_q;
    float *d_in, *d_ret, *d_scal, *d_tens;
    uint64_t *d_seed; /* sampling's seed, for the uniforms drawn on the device */
    float *embS;             /* embedding-gradient buckets [n_logits + 1, P] */
    float *red;              /* [4]: policy sum, value sum, grad sumsq */
    /* backward scratch */
    float *DX, *DX2, *dh, *dxn, *dyn, *dtmpf, *delta, *dvf, *dvf2; /* DX2: the torso backward's
                                                   other DX (stage transitions ping-pong); dh,
                                                   dxn, dyn hold bf16 in block_bwd (ln_dy) */
    bf16 *dxb, *dact, *da, *dqkv, *dtmpb; /* dqkv: attention's dq, dk, dv (strides as q, k, v) */
    void *ascratch;
    size_t ascratch_size;
    /* decoder (inference), grown on demand */
    void *dec;
    size_t dec_size;
    long dec_rows;
    /* decoding (greedy, sampling) replayed from CUDA graphs, one per call shape (TG_CUDA_GRAPH=0: off) */
    int use_graph;
    dgraph graphs[DG_CAP];
    int n_graphs;
    bf16 *dec_ptrs[4][64];   /* per policy layer: self K/V caches, cross K/V */
    /* host staging */
    float *h_stage;
    /* TG_CUDA_PROFILE=1: device time per kind of work, printed at exit */
    int infer;               /* decoding: no activations kept for a backward */
    int prof, prof_phase, prof_cur, prof_n, prof_keep;
    int prof_dec; /* inside the sampling loop: GEMMs, LayerNorms, others counted apart */
    int prof_mlp, prof_cross; /* there: in an MLP; in a cross-attention block */
    long prof_entries[3];    /* train steps, sample calls, greedy calls seen */
    cudaEvent_t prof_ev[2 * 8192];
    int prof_cat[8192];
    double prof_ms[2][PROF_NCAT];
    long prof_calls[2];
} cuda_net;

static void prof_begin(cuda_net *n, int cat)
{
    if (!n->prof || n->prof_n >= 8192)
        return;
    if (n->prof_dec)
        cat = cat == PR_GEMM_FWD    ? (n->prof_mlp ? PR_DEC_MLP : PR_DEC_GEMM)
              : cat == PR_PATTN_FWD ? (n->prof_cross ? PR_DEC_XATTN : PR_DEC_SATTN)
              : cat == PR_LN        ? PR_DEC_LN
              : cat == PR_ELEM      ? PR_DEC_ELEM
                                    : cat;
    n->prof_cur = cat;
    cudaEventRecord(n->prof_ev[2 * n->prof_n], n->st);
}

static void prof_end(cuda_net *n)
{
    if (!n->prof || n->prof_n >= 8192)
        return;
    cudaEventRecord(n->prof_ev[2 * n->prof_n + 1], n->st);
    n->prof_cat[n->prof_n++] = n->prof_cur;
}

/* after a stream sync: fold the recorded intervals into the totals of the current phase */
static void prof_collect(cuda_net *n)
{
    if (!n->prof)
        return;
    for (int i = 0; n->prof_keep && i < n->prof_n; i++) {
        float ms = 0.f;
        cudaEventElapsedTime(&ms, n->prof_ev[2 * i], n->prof_ev[2 * i + 1]);
        n->prof_ms[n->prof_phase][n->prof_cat[i]] += ms;
    }
    n->prof_n = 0;
    tgc_gemm_prof_collect(n->gemm, n->prof_keep && n->prof_phase == 0);
}

/* At each entry point: the first calls of each kind (plan building, tuning, lazy module
 * loading) stay out of the profile; kind 0 train step, 1 sample, 2 greedy, -1 anything else. */
static void prof_enter(cuda_net *n, int kind)
{
    if (!n->prof)
        return;
    if (kind < 0) {
        n->prof_keep = 0;
        return;
    }
    n->prof_phase = kind ? 1 : 0;
    n->prof_keep = ++n->prof_entries[kind] > (kind ? 1 : 2);
    if (n->prof_keep)
        n->prof_calls[n->prof_phase]++;
}

static void prof_report(cuda_net *n)
{
    if (!n->prof)
        return;
    const char *ph[2] = {"train step", "inference call"};
    fprintf(stderr, "cuda profile: GEMM epilogues done by kernels instead: bias %ld, gelu %ld, "
            "bias-grad %ld; GEMMs cuBLASLt had no algorithm for (reference kernel): %ld\n",
            tgc_gemm_fallbacks_of(n->gemm, TGC_EPI_BIAS),
            tgc_gemm_fallbacks_of(n->gemm, TGC_EPI_GELU_BIAS),
            tgc_gemm_fallbacks_of(n->gemm, TGC_EPI_BGRAD), tgc_gemm_ref_calls(n->gemm));
    for (int p = 0; p < 2; p++) {
        if (!n->prof_calls[p])
            continue;
        double tot = 0;
        for (int c = 0; c < PROF_NCAT; c++)
            tot += n->prof_ms[p][c];
        fprintf(stderr, "cuda profile, per %s (%ld calls after warm-up): %.2f ms in kernels\n",
                ph[p], n->prof_calls[p], tot / n->prof_calls[p]);
        for (int c = 0; c < PROF_NCAT; c++)
            if (n->prof_ms[p][c] > 0)
                fprintf(stderr, "  %-22s %8.3f ms  %5.1f%%\n", PROF_NAMES[c],
                        n->prof_ms[p][c] / n->prof_calls[p], 100 * n->prof_ms[p][c] / tot);
    }
    if (n->prof_calls[0])
        tgc_gemm_prof_report(n->gemm, stderr, (double)n->prof_calls[0]);
}

#define PROF(n, cat, call)                                                                     \
    ({                                                                                         \
        prof_begin((n), (cat));                                                                \
        int r_ = (call);                                                                       \
        prof_end(n);                                                                           \
        r_;                                                                                    \
    })

#define NET_CHECK_ALLOC(p)                                                                     \
    do {                                                                                       \
        if (!(p)) {                                                                            \
            tg_fail("out of memory");                                                          \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* ------------------------------------------------------------------ parameters */

static size_t dev_off(const cuda_net *n, size_t host_off)
{
    const tg_params *t = n->tab;
    int lo = 0, hi = t->n - 1;
    while (lo < hi) { /* last tensor with offset <= host_off */
        int mid = (lo + hi + 1) / 2;
        if (t->p[mid].offset <= host_off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return n->doff[lo] + (host_off - t->p[lo].offset);
}

static void mk_lin(cuda_net *n, dlin *d, const tg_lin_off *l)
{
    size_t w = dev_off(n, l->w), b = dev_off(n, l->b);
    d->w32 = n->p32 + w;
    d->b32 = n->p32 + b;
    d->gw = n->grad + w;
    d->gb = n->grad + b;
    d->w16 = n->p16 + w;
    d->b16 = n->p16 + b;
    d->in = l->in;
    d->out = l->out;
}

static void mk_ln(cuda_net *n, dln *d, const tg_ln_off *l)
{
    size_t w = dev_off(n, l->w), b = dev_off(n, l->b);
    d->w = n->p32 + w;
    d->b = n->p32 + b;
    d->gw = n->grad + w;
    d->gb = n->grad + b;
    d->n = l->n;
}

static void mk_block(cuda_net *n, dblock *d, const tg_block_off *b)
{
    d->cross = b->cross;
    d->causal = b->causal;
    d->cx = b->cx;
    d->cy = b->cy;
    d->H = b->heads;
    d->D = b->head_dim;
    d->inner = b->heads * b->head_dim;
    d->wc = b->widen * b->cx;
    mk_ln(n, &d->nx, &b->norm_x);
    if (b->cross)
        mk_ln(n, &d->ny, &b->norm_y);
    mk_ln(n, &d->nm, &b->norm_mlp);
    mk_lin(n, &d->q, &b->q);
    mk_lin(n, &d->k, &b->k);
    mk_lin(n, &d->v, &b->v);
    mk_lin(n, &d->o, &b->o);
    mk_lin(n, &d->m1, &b->mlp_in);
    mk_lin(n, &d->m2, &b->mlp_out);
    d->qkv = d->q;
    d->qkv.out = 3 * d->inner;
    d->kv = d->k;
    d->kv.out = 2 * d->inner;
    d->ldq = d->cross ? d->inner : 3 * d->inner;
    d->ldk = d->cross ? 2 * d->inner : 3 * d->inner;
}

/* ------------------------------------------------------------------ arena */

typedef struct arena {
    char *base;
    size_t off;
} arena;

static void *take(arena *a, size_t bytes)
{
    size_t o = (a->off + 255) & ~(size_t)255;
    a->off = o + bytes;
    return a->base + o;
}
#define TAKE(a, T, count) ((T *)take((a), (size_t)(count) * sizeof(T)))

static size_t attn_scratch_need(const cuda_net *n, int B)
{
    const tg_net_config *c = &n->cfg;
    size_t need = 0;
    tgc_attn_shape s;
    memset(&s, 0, sizeof s);
    if (c->layers > 0) {
        s.N = B * c->S;
        s.Lx = s.Ly = 2 * c->S;
        s.H = c->heads;
        s.D = c->head_dim;
        need = tgc_attn_gemm_scratch(&s);
    }
    if (c->p_layers > 0) {
        s.N = B;
        s.Lx = s.Ly = c->n_steps;
        s.H = c->p_heads;
        s.D = c->p_feat;
        size_t x = tgc_attn_gemm_scratch(&s);
        need = x > need ? x : need;
        s.Ly = 3 * c->S * c->S;
        x = tgc_attn_gemm_scratch(&s);
        need = x > need ? x : need;
    }
    return need;
}

/* Carves every activation buffer for batch B out of a (base NULL = measure). */
static void carve(cuda_net *n, arena *a, int B)
{
    const tg_net_config *c = &n->cfg;
    int S = c->S, L = c->n_steps, P = tg_net_config_P(c);
    long Mt = (long)B * S * 2 * S;       /* torso stage tokens */
    long Me = (long)B * 3 * S * S;       /* torso output tokens */
    long Mp = (long)B * L;               /* policy tokens */
    for (int i = 0; i < c->layers * 3; i++) {
        dblock *d = &n->torso[i];
        bsave *s = &n->ts[i];
        s->xin = TAKE(a, float, Mt * d->cx);
        s->xmid = TAKE(a, float, Mt * d->cx);
        s->xn = TAKE(a, bf16, Mt * d->cx);
        s->q = TAKE(a, bf16, Mt * 3 * d->inner);
        s->k = s->q + d->inner;
        s->v = s->q + 2 * d->inner;
        s->a = TAKE(a, bf16, Mt * d->inner);
        s->hn = TAKE(a, bf16, Mt * d->cx);
        s->pre = TAKE(a, bf16, Mt * d->wc);
        s->act = TAKE(a, bf16, Mt * d->wc);
        s->mx = TAKE(a, float, Mt);
        s->rx = TAKE(a, float, Mt);
        s->mm = TAKE(a, float, Mt);
        s->rm = TAKE(a, float, Mt);
        s->lse = TAKE(a, float, Mt * d->H);
        s->P = n->attn_mode == TGC_ATTN_GEMM ? TAKE(a, bf16, Mt * d->H * 2 * S) : NULL;
        s->yn = s->xn;
    }
    for (int i = 0; i < c->p_layers * 2; i++) {
        dblock *d = &n->policy[i];
        bsave *s = &n->ps[i];
        long My = d->cross ? Me : Mp;
        int Ly = d->cross ? 3 * S * S : L;
        s->xin = i == 0 ? NULL : n->ps[i - 1].xout;
        s->xmid = TAKE(a, float, Mp * d->cx);
        s->xout = TAKE(a, float, Mp * d->cx);
        s->xn = TAKE(a, bf16, Mp * d->cx);
        s->yn = d->cross ? TAKE(a, bf16, My * d->cy) : s->xn;
        if (d->cross) {
            s->q = TAKE(a, bf16, Mp * d->inner);
            s->k = TAKE(a, bf16, My * 2 * d->inner);
            s->v = s->k + d->inner;
        } else {
            s->q = TAKE(a, bf16, Mp * 3 * d->inner);
            s->k = s->q + d->inner;
            s->v = s->q + 2 * d->inner;
        }
        s->a = TAKE(a, bf16, Mp * d->inner);
        s->hn = TAKE(a, bf16, Mp * d->cx);
        s->pre = TAKE(a, bf16, Mp * d->wc);
        s->act = TAKE(a, bf16, Mp * d->wc);
        s->mx = TAKE(a, float, Mp);
        s->rx = TAKE(a, float, Mp);
        s->my = d->cross ? TAKE(a, float, My) : NULL;
        s->ry = d->cross ? TAKE(a, float, My) : NULL;
        s->mm = TAKE(a, float, Mp);
        s->rm = TAKE(a, float, Mp);
        s->lse = TAKE(a, float, Mp * d->H);
        s->P = n->attn_mode == TGC_ATTN_GEMM ? TAKE(a, bf16, Mp * d->H * Ly) : NULL;
    }
    n->G = TAKE(a, float, Me * c->c);
    n->dG = TAKE(a, float, Me * c->c);
    n->dense = TAKE(a, float, (long)B * S * S * c->c);
    int F = S * c->T + 1;
    for (int g = 0; g < 3; g++) {
        n->xin16[g] = TAKE(a, bf16, (long)B * S * S * ((F + 7) & ~7));
        n->dxin[g] = TAKE(a, float, (long)B * S * S * F);
    }
    n->tok_in = TAKE(a, int32_t, Mp);
    n->tok_act = TAKE(a, int32_t, Mp);
    n->x0 = TAKE(a, float, Mp * P);
    if (c->p_layers > 0)
        n->ps[0].xin = n->x0;
    n->hp = TAKE(a, float, Mp * P);
    n->hp_m = TAKE(a, float, Mp);
    n->hp_r = TAKE(a, float, Mp);
    n->hrelu = TAKE(a, bf16, Mp * P);
    n->h0 = TAKE(a, bf16, (long)B * P);
    for (int l = 0; l < c->v_layers; l++) {
        n->vz[l] = TAKE(a, float, (long)B * c->v_hidden);
        n->va[l] = TAKE(a, bf16, (long)B * c->v_hidden);
    }
    n->logits = TAKE(a, float, Mp * c->n_logits);
    n->dlogits = TAKE(a, float, Mp * c->n_logits);
    n->quant = TAKE(a, float, (long)B * c->quantiles);
    n->dquant = TAKE(a, float, (long)B * c->quantiles);
    n->loss_rows = TAKE(a, float, Mp);
    n->loss_q = TAKE(a, float, (long)B * c->quantiles);
    n->d_tens = TAKE(a, float, (long)B * c->T * S * S * S);
    n->d_scal = TAKE(a, float, (long)B * c->n_scalars);
    n->d_ret = TAKE(a, float, B);
    n->d_seed = TAKE(a, uint64_t, 1);
    n->red = TAKE(a, float, 8);
    n->embS = TAKE(a, float, (long)(c->n_logits + 1) * P);
    /* backward scratch: the widest of torso and policy */
    long mx = Mt * c->c > Mp * P ? Mt * c->c : Mp * P;
    long mwc = Mt * c->widen * c->c > Mp * c->widen * P ? Mt * c->widen * c->c
                                                        : Mp * c->widen * P;
    long minner = Mt * c->heads * c->head_dim;
    long mi2 = Me * c->p_heads * c->p_feat;
    if (mi2 > minner)
        minner = mi2;
    if (Mp * c->p_heads * c->p_feat > minner)
        minner = Mp * c->p_heads * c->p_feat;
    long myc = Me * c->c;
    n->DX = TAKE(a, float, mx);
    n->DX2 = TAKE(a, float, mx);
    n->dh = TAKE(a, float, mx);
    n->dxn = TAKE(a, float, mx);
    n->dyn = TAKE(a, float, myc);
    long mtf = mx > myc ? mx : myc;
    if ((long)c->c * ((S * c->T + 1 + 7) & ~7) > mtf) /* the input projections' weight gradient */
        mtf = (long)c->c * ((S * c->T + 1 + 7) & ~7);
    long nlp = (c->n_logits + 7) & ~7;
    if (nlp * (P + 1) > mtf) /* the policy output's (padded rows and their bias gradient) */
        mtf = nlp * (P + 1);
    n->dtmpf = TAKE(a, float, mtf);
    n->delta = TAKE(a, float, minner);
    n->dxb = TAKE(a, bf16, mx);
    n->dact = TAKE(a, bf16, mwc);
    n->da = TAKE(a, bf16, minner);
    n->dqkv = TAKE(a, bf16, 3 * minner);
    long mt = mx > myc ? mx : myc;
    if (Mp * nlp > mt)
        mt = Mp * nlp;
    if ((long)B * c->v_hidden > mt)
        mt = (long)B * c->v_hidden;
    n->dtmpb = TAKE(a, bf16, mt);
    long vmax = (long)B * (c->v_hidden > P ? c->v_hidden : P);
    n->dvf = TAKE(a, float, vmax);
    n->dvf2 = TAKE(a, float, vmax);
    n->ascratch_size = n->attn_mode == TGC_ATTN_GEMM ? attn_scratch_need(n, B) : 0;
    n->ascratch = n->ascratch_size ? take(a, n->ascratch_size) : NULL;
}

/* ------------------------------------------------------------------ GEMM helpers */

/* y[M, out] = x[M, in] W^T + b; y fp32 (ydt) or bf16; beta/C for residual adds. */
static int linear(cuda_net *n, const dlin *l, const bf16 *x, long ldx, long M, void *y, int ydt,
                  long ldy, float beta, const void *C)
{
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 0;
    m.tb = 1;
    m.M = M;
    m.N = l->out;
    m.K = l->in;
    m.A = x;
    m.lda = ldx;
    m.B = l->w16;
    m.ldb = l->in;
    m.D = y;
    m.C = C;
    m.ddt = ydt;
    m.ldd = ldy;
    m.alpha = 1.f;
    m.beta = beta;
    m.epi = TGC_EPI_BIAS;
    m.bias = ydt == TGC_F32 ? (const void *)l->b32 : (const void *)l->b16;
    return PROF(n, PR_GEMM_FWD, tgc_gemm_run(n->gemm, n->st, &m));
}

/* act = gelu(x W^T + b); pre (x W^T + b) kept for backward unless n->infer */
static int linear_gelu(cuda_net *n, const dlin *l, const bf16 *x, long M, bf16 *pre, bf16 *act)
{
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 0;
    m.tb = 1;
    m.M = M;
    m.N = l->out;
    m.K = l->in;
    m.A = x;
    m.lda = l->in;
    m.B = l->w16;
    m.ldb = l->in;
    m.D = act;
    m.ddt = TGC_BF16;
    m.ldd = l->out;
    m.alpha = 1.f;
    m.epi = n->infer ? TGC_EPI_GELU : TGC_EPI_GELU_BIAS;
    m.bias = l->b16;
    m.aux = n->infer ? NULL : pre;
    return PROF(n, PR_GEMM_FWD, tgc_gemm_run(n->gemm, n->st, &m));
}

/* dW = dy^T x, db = colsum(dy) (written, not accumulated) */
static int wgrad(cuda_net *n, const dlin *l, const bf16 *dy, long lddy, const bf16 *x, long ldx,
                 long M)
{
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 1;
    m.tb = 0;
    m.M = l->out;
    m.N = l->in;
    m.K = M;
    m.A = dy;
    m.lda = lddy;
    m.B = x;
    m.ldb = ldx;
    m.D = l->gw;
    m.ddt = TGC_F32;
    m.ldd = l->in;
    m.alpha = 1.f;
    m.beta = 0.f;
    m.epi = TGC_EPI_BGRAD;
    m.bgrad = l->gb;
    return PROF(n, PR_GEMM_WGRAD, tgc_gemm_run(n->gemm, n->st, &m));
}

/* The input projections' weight gradient: their K = S T + 1 features make unaligned rows, on
 * which cuBLASLt has only a very slow kernel (15 ms a step for small-S9), so it runs over the
 * zero-padded input (Fp columns) into scratch and the F real columns are copied out. dy is
 * n->dtmpb [Mg, c]. */
static int wgrad_inproj(cuda_net *n, int g, long Mg)
{
    const dlin *l = &n->inp[g];
    int F = l->in, Fp = (F + 7) & ~7;
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 1;
    m.tb = 0;
    m.M = l->out;
    m.N = Fp;
    m.K = Mg;
    m.A = n->dtmpb;
    m.lda = l->out;
    m.B = n->xin16[g];
    m.ldb = Fp;
    m.D = n->dtmpf;
    m.ddt = TGC_F32;
    m.ldd = Fp;
    m.alpha = 1.f;
    m.epi = TGC_EPI_BGRAD;
    m.bgrad = l->gb;
    if (PROF(n, PR_GEMM_WGRAD, tgc_gemm_run(n->gemm, n->st, &m)))
        return -1;
    CU_CHECK(cudaMemcpy2DAsync(l->gw, F * sizeof(float), n->dtmpf, Fp * sizeof(float),
                               F * sizeof(float), l->out, cudaMemcpyDeviceToDevice, n->st));
    return 0;
}

/* The policy output layer's weight gradient: n_logits (125) rows of dy make unaligned rows, on
 * which cuBLASLt ran at 7 TFLOP/s, so dy comes zero-padded to NLp columns (dlb [Mp, NLp]) and
 * the product of NLp rows goes to scratch, whose first n_logits rows are the gradient. */
static int wgrad_pout(cuda_net *n, const bf16 *dlb, int NLp, long Mp)
{
    const dlin *l = &n->pout;
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 1;
    m.tb = 0;
    m.M = NLp;
    m.N = l->in;
    m.K = Mp;
    m.A = dlb;
    m.lda = NLp;
    m.B = n->hrelu;
    m.ldb = l->in;
    m.D = n->dtmpf;
    m.ddt = TGC_F32;
    m.ldd = l->in;
    m.alpha = 1.f;
    m.epi = TGC_EPI_BGRAD;
    m.bgrad = n->dtmpf + (size_t)NLp * l->in;
    if (PROF(n, PR_GEMM_WGRAD, tgc_gemm_run(n->gemm, n->st, &m)))
        return -1;
    CU_CHECK(cudaMemcpyAsync(l->gw, n->dtmpf, sizeof(float) * l->out * l->in,
                             cudaMemcpyDeviceToDevice, n->st));
    CU_CHECK(cudaMemcpyAsync(l->gb, n->dtmpf + (size_t)NLp * l->in, sizeof(float) * l->out,
                             cudaMemcpyDeviceToDevice, n->st));
    return 0;
}

/* dx[M, in] (+)= dy[M, out] W */
static int dgrad(cuda_net *n, const dlin *l, const bf16 *dy, long lddy, long M, void *dx, int dt,
                 long lddx, float beta)
{
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.ta = 0;
    m.tb = 0;
    m.M = M;
    m.N = l->in;
    m.K = l->out;
    m.A = dy;
    m.lda = lddy;
    m.B = l->w16;
    m.ldb = l->in;
    m.D = dx;
    m.ddt = dt;
    m.ldd = lddx;
    m.alpha = 1.f;
    m.beta = beta;
    return PROF(n, PR_GEMM_DGRAD, tgc_gemm_run(n->gemm, n->st, &m));
}

/* dx[M, in] = (dy[M, out] W) * gelu'(pre): the MLP's data gradient through its GELU, the
 * derivative applied in the GEMM's epilogue (dx, pre bf16, dense) */
static int dgrad_gelu(cuda_net *n, const dlin *l, const bf16 *dy, long lddy, long M, bf16 *dx,
                      bf16 *pre)
{
    tgc_mm m;
    memset(&m, 0, sizeof m);
    m.M = M;
    m.N = l->in;
    m.K = l->out;
    m.A = dy;
    m.lda = lddy;
    m.B = l->w16;
    m.ldb = l->in;
    m.D = dx;
    m.ddt = TGC_BF16;
    m.ldd = l->in;
    m.alpha = 1.f;
    m.epi = TGC_EPI_DGELU;
    m.aux = pre;
    return PROF(n, PR_GEMM_DGRAD, tgc_gemm_run(n->gemm, n->st, &m));
}

/* ------------------------------------------------------------------ attention dispatch */

static void attn_shape(const dblock *d, int N, int Lx, int Ly, tgc_attn_shape *s)
{
    memset(s, 0, sizeof *s);
    s->N = N;
    s->Lx = Lx;
    s->Ly = Ly;
    s->H = d->H;
    s->D = d->D;
    s->kv_div = 1;
    s->causal = d->causal;
    s->sq = (long)Lx * d->ldq;
    s->ldq = d->ldq;
    s->sk = (long)Ly * d->ldk;
    s->ldk = d->ldk;
    s->so = (long)Lx * d->inner;
    s->ldo = d->inner;
    s->scale = 1.f / sqrtf((float)d->D);
}

/* torso attention and the policy head's (self and cross) are profiled apart */
static int attn_cat(const tgc_attn_shape *s, int bwd)
{
    int policy = s->causal || s->Lx != s->Ly;
    return bwd ? (policy ? PR_PATTN_BWD : PR_ATTN_BWD) : (policy ? PR_PATTN_FWD : PR_ATTN_FWD);
}

static int attn_fwd(cuda_net *n, const tgc_attn_shape *s, bsave *sv)
{
    int cat = attn_cat(s, 0);
    if (n->attn_mode == TGC_ATTN_CUDNN) {
        int r = PROF(n, cat, tgc_sdpa_fwd(n->sdpa, n->st, s, sv->q, sv->k, sv->v, sv->a, sv->lse));
        if (r <= 0)
            return r;
        /* rejected: the fused kernels below (their backward only needs lse) */
    }
    if (n->attn_mode == TGC_ATTN_GEMM)
        return PROF(n, cat, tgc_attn_fwd_gemm(n->gemm, n->st, s, sv->q, sv->k, sv->v,
                                              sv->a, sv->P, n->ascratch));
    /* tensor-core kernels first (1: shape not taken, or TG_CUDA_ATTN_MMA=0) */
    int r = n->attn_mma
                ? PROF(n, cat, tgc_attn_fwd_mma(n->st, s, sv->q, sv->k, sv->v, sv->a, sv->lse))
                : 1;
    if (r <= 0)
        return r;
    if (tgc_attn_short_ok(s))
        return PROF(n, cat, tgc_attn_fwd_short(n->st, s, sv->q, sv->k, sv->v, sv->a, sv->lse));
    return PROF(n, cat, tgc_attn_fwd_warp(n->st, s, sv->q, sv->k, sv->v, sv->a, sv->lse));
}

static int attn_bwd(cuda_net *n, const tgc_attn_shape *s, bsave *sv, bf16 *dq, bf16 *dk,
                    bf16 *dv)
{
    int cat = attn_cat(s, 1);
    if (n->attn_mode == TGC_ATTN_CUDNN && tgc_sdpa_fwd_took(n->sdpa, s)) {
        int r = PROF(n, cat, tgc_sdpa_bwd(n->sdpa, n->st, s, sv->q, sv->k, sv->v, sv->a, n->da,
                                          sv->lse, dq, dk, dv));
        if (r <= 0)
            return r;
        /* rejected: the kernels below, on cuDNN's statistics */
    }
    if (n->attn_mode == TGC_ATTN_GEMM)
        return PROF(n, cat, tgc_attn_bwd_gemm(n->gemm, n->st, s, sv->q, sv->k, sv->v, sv->P,
                                              n->da, dq, dk, dv, n->ascratch));
    /* the mma forward wrote lse for every shape its backward takes, and the other kernels' lse
     * is the same quantity, so the paths may mix */
    int r = n->attn_mma ? PROF(n, cat, tgc_attn_bwd_mma(n->st, s, sv->q, sv->k, sv->v, sv->a,
                                                        n->da, sv->lse, dq, dk, dv))
                        : 1;
    if (r <= 0)
        return r;
    if (tgc_attn_short_ok(s))
        return PROF(n, cat, tgc_attn_bwd_short(n->st, s, sv->q, sv->k, sv->v, sv->a, n->da,
                                               sv->lse, dq, dk, dv));
    return PROF(n, cat, tgc_attn_bwd_warp(n->st, s, sv->q, sv->k, sv->v, sv->a, n->da, sv->lse,
                                          n->delta, dq, dk, dv));
}

/* ------------------------------------------------------------------ block forward / backward */

/* x: sv->xin [N Lx, cx] fp32; y (cross): fp32 [N Ly, cy]. Writes sv->xout (or xout_override). */
static int block_fwd(cuda_net *n, const dblock *d, bsave *sv, const float *y, int N, int Lx,
                     int Ly, float *xout, int xn_ready)
{
    long M = (long)N * Lx, My = (long)N * Ly;
    cudaStream_t st = n->st;
    /* xn_ready: the copy that wrote sv->xin also wrote its LayerNorm (sv->xn, mx, rx) */
    if (!xn_ready &&
        PROF(n, PR_LN, tgc_layernorm_fwd(st, sv->xin, d->cx, d->nx.w, d->nx.b, sv->xn, TGC_BF16, d->cx, sv->mx,
                          sv->rx, M, d->cx)))
        return -1;
    if (d->cross &&
        PROF(n, PR_LN, tgc_layernorm_fwd(st, y, d->cy, d->ny.w, d->ny.b, sv->yn, TGC_BF16, d->cy, sv->my, sv->ry,
                          My, d->cy)))
        return -1;
    if (d->cross ? linear(n, &d->q, sv->xn, d->cx, M, sv->q, TGC_BF16, d->ldq, 0.f, NULL) ||
                       linear(n, &d->kv, sv->yn, d->cy, My, sv->k, TGC_BF16, d->ldk, 0.f, NULL)
                 : linear(n, &d->qkv, sv->xn, d->cx, M, sv->q, TGC_BF16, d->ldq, 0.f, NULL))
        return -1;
    tgc_attn_shape s;
    attn_shape(d, N, Lx, Ly, &s);
    if (attn_fwd(n, &s, sv))
        return -1;
    if (linear(n, &d->o, sv->a, d->inner, M, sv->xmid, TGC_F32, d->cx, 1.f, sv->xin))
        return -1;
    if (PROF(n, PR_LN, tgc_layernorm_fwd(st, sv->xmid, d->cx, d->nm.w, d->nm.b, sv->hn, TGC_BF16, d->cx, sv->mm,
                          sv->rm, M, d->cx)) ||
        linear_gelu(n, &d->m1, sv->hn, M, sv->pre, sv->act) ||
        linear(n, &d->m2, sv->act, d->wc, M, xout, TGC_F32, d->cx, 1.f, sv->xmid))
        return -1;
    return 0;
}

/* n->DX holds dL/dxout [M, cx] on entry and dL/dxin on return (and in n->dxb as bf16 when
 * emit_dxb). Cross: dL/dy accumulated into dy. */
static int block_bwd(cuda_net *n, const dblock *d, bsave *sv, const float *y, float *dy, int N,
                     int Lx, int Ly, int dxb_ready, int emit_dxb)
{
    long M = (long)N * Lx, My = (long)N * Ly;
    cudaStream_t st = n->st;
    /* dh, dxn, dyn: written by a data-gradient GEMM and read once by a LayerNorm backward, in
     * bf16 by default (PyTorch's autocast does the same); the fp32 buffers have room for either,
     * and their row strides are in elements */
    const int ldt = n->ln_dy;
    /* MLP (n->dxb: bf16 copy of n->DX, made here unless the producer of DX wrote it) */
    if ((!dxb_ready && PROF(n, PR_ELEM, tgc_f2bf(st, n->DX, n->dxb, M * d->cx))) ||
        wgrad(n, &d->m2, n->dxb, d->cx, sv->act, d->wc, M) ||
        dgrad_gelu(n, &d->m2, n->dxb, d->cx, M, n->dact, sv->pre) ||
        wgrad(n, &d->m1, n->dact, d->wc, sv->hn, d->cx, M) ||
        dgrad(n, &d->m1, n->dact, d->wc, M, n->dh, ldt, d->cx, 0.f) ||
        PROF(n, PR_LN, tgc_layernorm_bwd(st, sv->xmid, d->cx, d->nm.w, sv->mm, sv->rm, n->dh, ldt, d->cx, n->DX, d->cx,
                          1, n->dxb, d->nm.gw, d->nm.gb, M, d->cx)))
        return -1;
    /* attention (n->dxb: the bf16 copy LayerNorm's backward wrote) */
    if (wgrad(n, &d->o, n->dxb, d->cx, sv->a, d->inner, M) ||
        dgrad(n, &d->o, n->dxb, d->cx, M, n->da, TGC_BF16, d->inner, 0.f))
        return -1;
    tgc_attn_shape s;
    attn_shape(d, N, Lx, Ly, &s);
    /* dq, dk, dv laid out like q, k, v: one weight- and one data-gradient GEMM for the fused
     * projections */
    bf16 *dq = n->dqkv, *dk = d->cross ? n->dqkv + M * d->ldq : n->dqkv + d->inner;
    bf16 *dv = dk + d->inner;
    if (attn_bwd(n, &s, sv, dq, dk, dv))
        return -1;
    if (d->cross) {
        if (wgrad(n, &d->q, dq, d->ldq, sv->xn, d->cx, M) ||
            wgrad(n, &d->kv, dk, d->ldk, sv->yn, d->cy, My) ||
            dgrad(n, &d->q, dq, d->ldq, M, n->dxn, ldt, d->cx, 0.f) ||
            dgrad(n, &d->kv, dk, d->ldk, My, n->dyn, ldt, d->cy, 0.f) ||
            PROF(n, PR_LN, tgc_layernorm_bwd(st, y, d->cy, d->ny.w, sv->my, sv->ry, n->dyn, ldt, d->cy, dy, d->cy, 1,
                              NULL, d->ny.gw, d->ny.gb, My, d->cy)))
            return -1;
    } else {
        if (wgrad(n, &d->qkv, dq, d->ldq, sv->xn, d->cx, M) ||
            dgrad(n, &d->qkv, dq, d->ldq, M, n->dxn, ldt, d->cx, 0.f))
            return -1;
    }
    return PROF(n, PR_LN, tgc_layernorm_bwd(st, sv->xin, d->cx, d->nx.w, sv->mx, sv->rx, n->dxn, ldt, d->cx, n->DX,
                             d->cx, 1, emit_dxb ? n->dxb : NULL, d->nx.gw, d->nx.gb, M, d->cx));
}

static const int STAGES[3][2] = {{0, 1}, {2, 0}, {1, 2}};

/* ------------------------------------------------------------------ whole network */

static int upload_inputs(cuda_net *n, const float *tensors, const float *scalars, int B)
{
    const tg_net_config *c = &n->cfg;
    CU_CHECK(cudaMemcpyAsync(n->d_tens, tensors,
                             sizeof(float) * (size_t)B * c->T * c->S * c->S * c->S,
                             cudaMemcpyHostToDevice, n->st));
    CU_CHECK(cudaMemcpyAsync(n->d_scal, scalars, sizeof(float) * (size_t)B * c->n_scalars,
                             cudaMemcpyHostToDevice, n->st));
    return 0;
}

static int torso_fwd(cuda_net *n, int B)
{
    const tg_net_config *c = &n->cfg;
    int S = c->S, F = S * c->T + 1, Fp = (F + 7) & ~7;
    long Mg = (long)B * S * S;
    for (int g = 0; g < 3; g++) {
        if (PROF(n, PR_ELEM, tgc_torso_input(n->st, n->d_tens, n->d_scal, B, S, c->T, c->n_scalars, g,
                            n->sp[g].w32, n->sp[g].b32, n->xin16[g], Fp)) ||
            linear(n, &n->inp[g], n->xin16[g], Fp, Mg, n->dense, TGC_F32, c->c, 0.f, NULL) ||
            PROF(n, PR_ELEM, tgc_grid_copy(n->st, n->G, n->dense, B, S, c->c, g, 1)))
            return -1;
    }
    /* stage i's output goes straight into stage i + 1's input (and the grid leaving into G),
     * with stage i + 1's first LayerNorm computed on the way (stage_ln) */
    const int nst = c->layers * 3;
    int xn_ready = 0;
    for (int i = 0; i < nst; i++) {
        const int *cur = STAGES[i % 3], *nx = STAGES[(i + 1) % 3];
        bsave *sv = &n->ts[i];
        int fused = n->stage_fuse && i + 1 < nst;
        if (((i == 0 || !n->stage_fuse) &&
             PROF(n, PR_ELEM, tgc_stage(n->st, n->G, sv->xin, B, S, c->c, cur[0], cur[1], 0))) ||
            block_fwd(n, &n->torso[i], sv, NULL, B * S, 2 * S, 2 * S, n->dh, xn_ready))
            return -1;
        xn_ready = 0;
        if (fused) {
            bsave *nv = &n->ts[i + 1];
            const dblock *nd = &n->torso[i + 1];
            tgc_ln_fuse f = {nd->nx.w, nd->nx.b, nv->xn, nv->mx, nv->rx};
            int r = PROF(n, PR_ELEM, tgc_stage_next(n->st, n->G, n->dh, nv->xin, NULL, B, S, c->c,
                                                    cur[0], cur[1], nx[0], nx[1],
                                                    n->stage_ln ? &f : NULL));
            if (r < 0)
                return -1;
            xn_ready = n->stage_ln && r == 0;
        } else if (PROF(n, PR_ELEM, tgc_stage(n->st, n->G, n->dh, B, S, c->c, cur[0], cur[1], 1))) {
            return -1;
        }
    }
    return 0;
}

/* Teacher-forced policy and value heads on n->tok_in; logits and quantiles on the device. */
static int heads_fwd(cuda_net *n, int B)
{
    const tg_net_config *c = &n->cfg;
    int L = c->n_steps, P = tg_net_config_P(c), S = c->S;
    long Mp = (long)B * L;
    if (PROF(n, PR_ELEM, tgc_embed(n->st, n->tok_in, Mp, L, 0, P, c->n_logits + 1, n->embed.w32, n->embed.b32,
                  n->pos, n->x0)))
        return -1;
    for (int i = 0; i < 2 * c->p_layers; i++) {
        dblock *d = &n->policy[i];
        bsave *sv = &n->ps[i];
        if (block_fwd(n, d, sv, n->G, B, L, d->cross ? 3 * S * S : L, sv->xout, 0))
            return -1;
    }
    const float *xf = c->p_layers ? n->ps[2 * c->p_layers - 1].xout : n->x0;
    if (PROF(n, PR_LN, tgc_layernorm_fwd(n->st, xf, P, n->pnorm.w, n->pnorm.b, n->hp, TGC_F32, P, n->hp_m,
                          n->hp_r, Mp, P)) ||
        PROF(n, PR_ELEM, tgc_relu_bf(n->st, n->hp, P, n->hrelu, P, Mp, P)) ||
        linear(n, &n->pout, n->hrelu, P, Mp, n->logits, TGC_F32, c->n_logits, 0.f, NULL))
        return -1;
    /* value head on h[:, 0] */
    CU_CHECK(cudaMemcpy2DAsync(n->dvf, P * sizeof(float), n->hp, (size_t)L * P * sizeof(float),
                               P * sizeof(float), B, cudaMemcpyDeviceToDevice, n->st));
    if (PROF(n, PR_ELEM, tgc_f2bf(n->st, n->dvf, n->h0, (long)B * P)))
        return -1;
    const bf16 *in = n->h0;
    int win = P;
    for (int l = 0; l < c->v_layers; l++) {
        if (linear(n, &n->vh[l], in, win, B, n->vz[l], TGC_F32, c->v_hidden, 0.f, NULL) ||
            PROF(n, PR_ELEM, tgc_relu_bf(n->st, n->vz[l], c->v_hidden, n->va[l], c->v_hidden, B, c->v_hidden)))
            return -1;
        in = n->va[l];
        win = c->v_hidden;
    }
    return linear(n, &n->vout, in, win, B, n->quant, TGC_F32, c->quantiles, 0.f, NULL);
}

static int forward_all(cuda_net *n, const tg_batch_view *b)
{
    const tg_net_config *c = &n->cfg;
    int B = b->B;
    if (upload_inputs(n, b->tensors, b->scalars, B))
        return -1;
    CU_CHECK(cudaMemcpyAsync(n->tok_act, b->tokens, sizeof(int32_t) * (size_t)B * c->n_steps,
                             cudaMemcpyHostToDevice, n->st));
    if (tgc_tokens_in(n->st, n->tok_act, B, c->n_steps, c->n_logits, n->tok_in))
        return -1;
    return torso_fwd(n, B) || heads_fwd(n, B) ? -1 : 0;
}

/* Losses (into n->red[0..1]) and every gradient (n->grad), after forward_all. */
static int backward_all(cuda_net *n, const tg_batch_view *b, double vw)
{
    const tg_net_config *c = &n->cfg;
    int B = b->B, L = c->n_steps, P = tg_net_config_P(c), S = c->S, Q = c->quantiles;
    long Mp = (long)B * L;
    cudaStream_t st = n->st;
    CU_CHECK(cudaMemcpyAsync(n->d_ret, b->returns, sizeof(float) * B, cudaMemcpyHostToDevice, st));
    CU_CHECK(cudaMemsetAsync(n->grad, 0, n->dtotal * sizeof(float), st));
    CU_CHECK(cudaMemsetAsync(n->red, 0, 8 * sizeof(float), st));
    if (PROF(n, PR_OPT, tgc_xent(st, n->logits, n->tok_act, Mp, c->n_logits, n->loss_rows, n->dlogits,
                 1.f / B)) ||
        PROF(n, PR_OPT, tgc_quantile_loss(st, n->quant, n->d_ret, B, Q, n->loss_q, n->dquant,
                          (float)(vw / ((double)B * Q)))) ||
        tgc_sum(st, n->loss_rows, Mp, &n->red[0]) || tgc_sum(st, n->loss_q, (long)B * Q, &n->red[1]))
        return -1;
    /* value head */
    bf16 *dqb = n->dtmpb;
    if (PROF(n, PR_ELEM, tgc_f2bf(st, n->dquant, dqb, (long)B * Q)))
        return -1;
    const bf16 *vin = c->v_layers ? n->va[c->v_layers - 1] : n->h0;
    int win = c->v_layers ? c->v_hidden : P;
    if (wgrad(n, &n->vout, dqb, Q, vin, win, B) ||
        dgrad(n, &n->vout, dqb, Q, B, n->dvf, TGC_F32, win, 0.f))
        return -1;
    for (int l = c->v_layers - 1; l >= 0; l--) {
        const bf16 *lin_in = l ? n->va[l - 1] : n->h0;
        int lw = l ? c->v_hidden : P;
        if (PROF(n, PR_ELEM, tgc_relu_bwd(st, n->dvf, c->v_hidden, n->vz[l], c->v_hidden, n->dvf, c->v_hidden, 0, B,
                         c->v_hidden)) ||
            PROF(n, PR_ELEM, tgc_f2bf(st, n->dvf, dqb, (long)B * c->v_hidden)) ||
            wgrad(n, &n->vh[l], dqb, c->v_hidden, lin_in, lw, B) ||
            dgrad(n, &n->vh[l], dqb, c->v_hidden, B, n->dvf2, TGC_F32, lw, 0.f))
            return -1;
        float *t = n->dvf;
        n->dvf = n->dvf2;
        n->dvf2 = t;
    }
    /* n->dvf: dL/dh0 [B, P] */
    /* policy output */
    bf16 *dlb = n->dtmpb;
    int NLp = n->pout_pad ? (c->n_logits + 7) & ~7 : c->n_logits;
    if (PROF(n, PR_ELEM, tgc_f2bf_pad(st, n->dlogits, c->n_logits, c->n_logits, dlb, NLp, Mp)) ||
        (n->pout_pad ? wgrad_pout(n, dlb, NLp, Mp)
                     : wgrad(n, &n->pout, dlb, c->n_logits, n->hrelu, P, Mp)) ||
        dgrad(n, &n->pout, dlb, NLp, Mp, n->dh, TGC_F32, P, 0.f) ||
        PROF(n, PR_ELEM, tgc_relu_bwd(st, n->dh, P, n->hp, P, n->dh, P, 0, Mp, P)) ||
        tgc_add_rows(st, n->dh, (long)L * P, n->dvf, P, B, P))
        return -1;
    const float *xf = c->p_layers ? n->ps[2 * c->p_layers - 1].xout : n->x0;
    CU_CHECK(cudaMemsetAsync(n->dG, 0, sizeof(float) * (size_t)B * 3 * S * S * c->c, st));
    if (PROF(n, PR_LN, tgc_layernorm_bwd(st, xf, P, n->pnorm.w, n->hp_m, n->hp_r, n->dh, TGC_F32, P, n->DX, P, 0,
                          n->dxb, n->pnorm.gw, n->pnorm.gb, Mp, P)))
        return -1;
    for (int i = 2 * c->p_layers - 1; i >= 0; i--) {
        dblock *d = &n->policy[i];
        if (block_bwd(n, d, &n->ps[i], n->G, n->dG, B, L, d->cross ? 3 * S * S : L, 1, 1))
            return -1;
    }
    if (PROF(n, PR_ELEM, tgc_embed_bwd(st, n->tok_in, Mp, L, P, c->n_logits + 1, n->DX, n->embed.gw, n->embed.gb,
                      n->gpos, n->embS)))
        return -1;
    /* torso, last stage first: G must be the stage input again for nothing (inputs are saved) */
    /* stage i's input gradient goes straight into stage i - 1's (DX and DX2 alternate) */
    for (int i = c->layers * 3 - 1; i >= 0; i--) {
        const int *sg = STAGES[i % 3], *pv = STAGES[(i + 2) % 3];
        int fused = n->stage_fuse && i > 0;
        if (((i == c->layers * 3 - 1 || !n->stage_fuse) &&
             PROF(n, PR_ELEM,
                  tgc_stage_bf(st, n->dG, n->DX, n->dxb, B, S, c->c, sg[0], sg[1]))) ||
            block_bwd(n, &n->torso[i], &n->ts[i], NULL, NULL, B * S, 2 * S, 2 * S, 1, 0) ||
            (fused && PROF(n, PR_ELEM, tgc_stage_next(st, n->dG, n->DX, n->DX2, n->dxb, B, S,
                                                      c->c, sg[0], sg[1], pv[0], pv[1], NULL))) ||
            (!fused && PROF(n, PR_ELEM, tgc_stage(st, n->dG, n->DX, B, S, c->c, sg[0], sg[1], 1))))
            return -1;
        if (fused) {
            float *t = n->DX;
            n->DX = n->DX2;
            n->DX2 = t;
        }
    }
    int F = S * c->T + 1;
    long Mg = (long)B * S * S;
    for (int g = 0; g < 3; g++) {
        if (PROF(n, PR_ELEM, tgc_grid_copy(st, n->dG, n->dense, B, S, c->c, g, 0)) ||
            PROF(n, PR_ELEM, tgc_f2bf(st, n->dense, n->dtmpb, Mg * c->c)) ||
            wgrad_inproj(n, g, Mg) ||
            dgrad(n, &n->inp[g], n->dtmpb, c->c, Mg, n->dxin[g], TGC_F32, F, 0.f) ||
            tgc_scalar_grad(st, n->dxin[g], F, n->d_scal, B, S * S, c->n_scalars, n->sp[g].gw,
                            n->sp[g].gb))
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ decoder (inference) */

typedef struct decbuf {
    float *x, *xmid, *hp, *logits, *logp, *u, *dvh;
    bf16 *xn, *q, *a, *hn, *pre, *act, *hrelu, *h0, *va;
    float *vz;
    bf16 **kc, **vc;   /* self-attention caches [R, L, inner] per self layer */
    bf16 **ck, **cv;   /* cross keys/values [N, 3S^2, inner] per cross layer */
    int32_t *tok, *tok_out;
} decbuf;

static int dec_carve(cuda_net *n, arena *a, decbuf *db, long N, long R)
{
    const tg_net_config *c = &n->cfg;
    int P = tg_net_config_P(c), L = c->n_steps, inner = c->p_heads * c->p_feat;
    long E = N * 3 * c->S * c->S;
    db->x = TAKE(a, float, R * P);
    db->xmid = TAKE(a, float, R * P);
    db->hp = TAKE(a, float, R * P);
    db->logits = TAKE(a, float, R * c->n_logits);
    db->logp = TAKE(a, float, R);
    db->u = TAKE(a, float, R * L);
    db->xn = TAKE(a, bf16, (R > E ? R : E) * (P > c->c ? P : c->c));
    db->q = TAKE(a, bf16, R * inner);
    db->a = TAKE(a, bf16, R * inner);
    db->hn = TAKE(a, bf16, R * P);
    db->pre = TAKE(a, bf16, R * c->widen * P);
    db->act = TAKE(a, bf16, R * c->widen * P);
    db->hrelu = TAKE(a, bf16, R * P);
    db->h0 = TAKE(a, bf16, N * P);
    db->va = TAKE(a, bf16, N * (c->v_hidden > P ? c->v_hidden : P) * 2);
    db->vz = TAKE(a, float, N * c->v_hidden);
    db->dvh = TAKE(a, float, N * P);
    db->tok = TAKE(a, int32_t, R);
    db->tok_out = TAKE(a, int32_t, R * L);
    for (int l = 0; l < c->p_layers; l++) {
        db->kc[l] = TAKE(a, bf16, R * L * inner);
        db->vc[l] = TAKE(a, bf16, R * L * inner);
        db->ck[l] = TAKE(a, bf16, E * 2 * inner); /* k and v interleaved: one fused GEMM */
        db->cv[l] = db->ck[l] + inner;
    }
    return 0;
}

static int dec_layer(cuda_net *n, const dblock *d, decbuf *db, int layer, long N, long R, int K,
                     int t)
{
    int L = n->cfg.n_steps, S = n->cfg.S;
    cudaStream_t st = n->st;
    if (PROF(n, PR_LN, tgc_layernorm_fwd(st, db->x, d->cx, d->nx.w, d->nx.b, db->xn, TGC_BF16, d->cx, NULL, NULL,
                          R, d->cx)) ||
        linear(n, &d->q, db->xn, d->cx, R, db->q, TGC_BF16, d->inner, 0.f, NULL))
        return -1;
    tgc_attn_shape s;
    memset(&s, 0, sizeof s);
    s.N = (int)R;
    s.Lx = 1;
    s.H = d->H;
    s.D = d->D;
    s.sq = s.so = d->inner;
    s.ldq = s.ldo = s.ldk = d->inner;
    s.scale = 1.f / sqrtf((float)d->D);
    const bf16 *kk, *vv;
    if (!d->cross) {
        bf16 *kc = db->kc[layer], *vc = db->vc[layer];
        if (linear(n, &d->k, db->xn, d->cx, R, kc + (long)t * d->inner, TGC_BF16,
                   (long)L * d->inner, 0.f, NULL) ||
            linear(n, &d->v, db->xn, d->cx, R, vc + (long)t * d->inner, TGC_BF16,
                   (long)L * d->inner, 0.f, NULL))
            return -1;
        s.Ly = t + 1;
        s.kv_div = 1;
        s.sk = (long)L * d->inner;
        kk = kc;
        vv = vc;
    } else {
        s.Ly = 3 * S * S;
        s.kv_div = K;
        s.ldk = d->ldk;
        s.sk = (long)s.Ly * d->ldk;
        kk = db->ck[layer];
        vv = db->cv[layer];
    }
    /* cross-attention: the tensor-core kernel streams a position's keys once for its K samples;
     * otherwise (TG_CUDA_ATTN_MMA=0, or a head width it does not take) the shared-key kernel
     * does for K >= 8, the warp-per-row kernel below that */
    int shared = d->cross && K >= 8;
    n->prof_cross = d->cross;
    int r = d->cross && n->attn_mma
                ? PROF(n, PR_PATTN_FWD, tgc_attn_fwd_mma(st, &s, db->q, kk, vv, db->a, NULL))
                : 1;
    if (r < 0)
        return -1;
    if ((r > 0 && PROF(n, PR_PATTN_FWD,
                       shared ? tgc_attn_fwd_kvshare(st, &s, db->q, kk, vv, db->a, NULL)
                              : tgc_attn_fwd_warp(st, &s, db->q, kk, vv, db->a, NULL))) ||
        linear(n, &d->o, db->a, d->inner, R, db->xmid, TGC_F32, d->cx, 1.f, db->x) ||
        PROF(n, PR_LN, tgc_layernorm_fwd(st, db->xmid, d->cx, d->nm.w, d->nm.b, db->hn, TGC_BF16, d->cx, NULL,
                          NULL, R, d->cx)))
        return -1;
    n->prof_mlp = 1;
    int rc = linear_gelu(n, &d->m1, db->hn, R, db->pre, db->act) ||
                     linear(n, &d->m2, db->act, d->wc, R, db->x, TGC_F32, d->cx, 1.f, db->xmid)
                 ? -1
                 : 0;
    n->prof_mlp = 0;
    return rc;
}

/* Torso once per position, then K actions per position token by token with KV caches, on the
 * inputs upload_inputs put on the device; has_u: sampling with uniforms [N K, n_steps] in db->u
 * (1: uploaded by the caller, 2: drawn here from the seed in n->d_seed), 0: greedy. Results stay
 * in the decbuf. Device work only (no host transfers, no synchronisation), so that it can be
 * captured into a CUDA graph. */
static int decode_run(cuda_net *n, int N, int K, float temp, int has_u, decbuf *db,
                      float *quant_out)
{
    const tg_net_config *c = &n->cfg;
    int P = tg_net_config_P(c), L = c->n_steps, S = c->S;
    long R = (long)N * K, E = (long)N * 3 * S * S;
    cudaStream_t st = n->st;
    if (torso_fwd(n, N) ||
        (has_u == 2 && PROF(n, PR_ELEM, tgc_uniforms(st, n->d_seed, N, (long)K * L, db->u))))
        return -1;
    /* cross keys/values once per position */
    for (int l = 0; l < c->p_layers; l++) {
        const dblock *d = &n->policy[2 * l + 1];
        if (PROF(n, PR_LN, tgc_layernorm_fwd(st, n->G, d->cy, d->ny.w, d->ny.b, db->xn, TGC_BF16, d->cy, NULL,
                              NULL, E, d->cy)) ||
            linear(n, &d->kv, db->xn, d->cy, E, db->ck[l], TGC_BF16, d->ldk, 0.f, NULL))
            return -1;
    }
    CU_CHECK(cudaMemsetAsync(db->logp, 0, sizeof(float) * R, st));
    n->prof_dec = 1;
    for (int t = 0; t < L; t++) {
        if (t == 0) {
            /* start token for every row */
            if (tgc_tokens_in(st, NULL, (int)R, 1, c->n_logits, db->tok))
                goto fail;
        }
        if (PROF(n, PR_ELEM, tgc_embed(st, db->tok, R, 1, t, P, c->n_logits + 1, n->embed.w32, n->embed.b32, n->pos,
                      db->x)))
            goto fail;
        for (int l = 0; l < c->p_layers; l++) {
            if (dec_layer(n, &n->policy[2 * l], db, l, N, R, K, t) ||
                dec_layer(n, &n->policy[2 * l + 1], db, l, N, R, K, t))
                goto fail;
        }
        if (PROF(n, PR_LN, tgc_layernorm_fwd(st, db->x, P, n->pnorm.w, n->pnorm.b, db->hp, TGC_F32, P, NULL, NULL,
                              R, P)))
            goto fail;
        if (t == 0 && quant_out) {
            /* value head on the first sample of each position */
            cudaError_t ce = cudaMemcpy2DAsync(db->dvh, P * sizeof(float), db->hp,
                                               (size_t)K * P * sizeof(float), P * sizeof(float), N,
                                               cudaMemcpyDeviceToDevice, st);
            if (ce != cudaSuccess) {
                tg_fail("decode: value head rows: %s", cudaGetErrorString(ce));
                goto fail;
            }
            if (PROF(n, PR_ELEM, tgc_f2bf(st, db->dvh, db->h0, (long)N * P)))
                goto fail;
            const bf16 *in = db->h0;
            int win = P;
            for (int l = 0; l < c->v_layers; l++) {
                bf16 *outb = db->va + (l % 2) * (long)N * (c->v_hidden > P ? c->v_hidden : P);
                if (linear(n, &n->vh[l], in, win, N, db->vz, TGC_F32, c->v_hidden, 0.f, NULL) ||
                    PROF(n, PR_ELEM, tgc_relu_bf(st, db->vz, c->v_hidden, outb, c->v_hidden, N, c->v_hidden)))
                    goto fail;
                in = outb;
                win = c->v_hidden;
            }
            if (linear(n, &n->vout, in, win, N, quant_out, TGC_F32, c->quantiles, 0.f, NULL))
                goto fail;
        }
        if (PROF(n, PR_ELEM, tgc_relu_bf(st, db->hp, P, db->hrelu, P, R, P)) ||
            linear(n, &n->pout, db->hrelu, P, R, db->logits, TGC_F32, c->n_logits, 0.f, NULL) ||
            PROF(n, PR_ELEM, tgc_sample(st, db->logits, R, c->n_logits, temp, has_u ? db->u + t : NULL, L,
                       db->tok, db->tok_out + t, L, db->logp, NULL, 0)))
            goto fail;
    }
    n->prof_dec = 0;
    return 0;
fail:
    n->prof_dec = 0;
    return -1;
}

static long g_graph_launches; /* decodings replayed from a graph (tests) */

static void graphs_clear(cuda_net *n)
{
    for (int i = 0; i < n->n_graphs; i++)
        if (n->graphs[i].exec)
            cudaGraphExecDestroy(n->graphs[i].exec);
    n->n_graphs = 0;
}

/* decode_run through a CUDA graph: one launch instead of hundreds of kernels and GEMMs, whose
 * launch gaps are a fifth of a greedy call of the small configs (small-S9: 24.5 ms of kernels in
 * a 30 ms call). The first call of a shape runs plain, the second is captured, later ones
 * replay it; a failed capture leaves that shape plain. */
static int decode_graph(cuda_net *n, int N, int K, float temp, int has_u, decbuf *db,
                        float *quant_out)
{
    dgraph *g = NULL;
    for (int i = 0; i < n->n_graphs && !g; i++) {
        dgraph *e = &n->graphs[i];
        if (e->N == N && e->K == K && e->has_u == has_u && e->temp == temp &&
            e->quant == quant_out && e->dec == n->dec && e->dec_rows == n->dec_rows)
            g = e;
    }
    if (!g) {
        if (n->n_graphs == DG_CAP)
            graphs_clear(n);
        g = &n->graphs[n->n_graphs++];
        memset(g, 0, sizeof *g);
        g->N = N;
        g->K = K;
        g->has_u = has_u;
        g->temp = temp;
        g->quant = quant_out;
        g->dec = n->dec;
        g->dec_rows = n->dec_rows;
        return decode_run(n, N, K, temp, has_u, db, quant_out);
    }
    if (g->state == 2)
        return decode_run(n, N, K, temp, has_u, db, quant_out);
    if (!g->exec) {
        cudaGraph_t graph = NULL;
        /* relaxed: a workspace that grows during the capture may still be allocated */
        CU_CHECK(cudaStreamBeginCapture(n->st, cudaStreamCaptureModeRelaxed));
        int rc = decode_run(n, N, K, temp, has_u, db, quant_out);
        cudaError_t e = cudaStreamEndCapture(n->st, &graph);
        if (rc == 0 && e == cudaSuccess && graph)
            e = cudaGraphInstantiate(&g->exec, graph, 0);
        if (graph)
            cudaGraphDestroy(graph);
        if (rc || e != cudaSuccess || !g->exec) {
            if (getenv("TG_CUDA_VERBOSE"))
                fprintf(stderr, "cuda: decoding N %d K %d not captured (%s; %s): plain launches\n",
                        N, K, rc ? tg_errmsg() : "", cudaGetErrorString(e));
            cudaGetLastError(); /* capture errors are not sticky: clear the last one */
            g->exec = NULL;
            g->state = 2;
            return decode_run(n, N, K, temp, has_u, db, quant_out);
        }
        g->state = 1;
    }
    CU_CHECK(cudaGraphLaunch(g->exec, n->st));
    g_graph_launches++;
    return 0;
}

/* Torso once per position, then K actions per position (decode_run), with n->infer set so that
 * nothing is kept for a backward. The inputs and the uniforms (or, with gen_u, the seed they are
 * drawn from on the device) go up first, outside any graph. */
static int decode(cuda_net *n, const float *tensors, const float *scalars, int N, int K,
                  float temp, const float *h_uniforms, int gen_u, uint64_t seed, decbuf *db,
                  float *quant_out)
{
    if (upload_inputs(n, tensors, scalars, N))
        return -1;
    if (h_uniforms)
        CU_CHECK(cudaMemcpyAsync(db->u, h_uniforms, sizeof(float) * (size_t)N * K * n->cfg.n_steps,
                                 cudaMemcpyHostToDevice, n->st));
    else if (gen_u) /* pageable source: staged before the call returns */
        CU_CHECK(cudaMemcpyAsync(n->d_seed, &seed, sizeof seed, cudaMemcpyHostToDevice, n->st));
    n->infer = 1;
    int has_u = h_uniforms ? 1 : gen_u ? 2 : 0;
    int rc = n->use_graph && !n->prof ? decode_graph(n, N, K, temp, has_u, db, quant_out)
                                      : decode_run(n, N, K, temp, has_u, db, quant_out);
    n->infer = 0;
    return rc;
}

extern "C" long tg_cuda_graph_launches(void) { return g_graph_launches; }

static int dec_prepare(cuda_net *n, long N, long R, decbuf *db)
{
    const tg_net_config *c = &n->cfg;
    if (c->p_layers > 64)
        return tg_fail("p_layers %d > 64", c->p_layers);
    db->kc = n->dec_ptrs[0];
    db->vc = n->dec_ptrs[1];
    db->ck = n->dec_ptrs[2];
    db->cv = n->dec_ptrs[3];
    arena a = {NULL, 0};
    long Nmax = n->max_batch;
    (void)N;
    if (R > n->dec_rows) {
        dec_carve(n, &a, db, Nmax, R);
        if (n->dec)
            cudaFree(n->dec);
        n->dec = NULL;
        n->dec_rows = 0;
        CU_CHECK(cudaMalloc(&n->dec, a.off + 256));
        n->dec_size = a.off + 256;
        n->dec_rows = R;
    }
    a.base = (char *)n->dec;
    a.off = 0;
    return dec_carve(n, &a, db, Nmax, n->dec_rows);
}

/* ------------------------------------------------------------------ ops */

static void cn_destroy(void *impl);
static int cn_set_params(void *impl, const float *src);

static int tensor_at(const tg_params *t, size_t off)
{
    int lo = 0, hi = t->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (t->p[mid].offset == off)
            return mid;
        if (t->p[mid].offset < off)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Device offsets of every tensor (each run 128-float aligned). Each attention block's q, k, v
 * weights go back to back, and so do their biases, so that the fused projections (dblock.qkv,
 * .kv) are single Linears; every other tensor keeps its own aligned slot. */
static int param_layout(cuda_net *n)
{
    const tg_params *t = n->tab;
    const tg_net_config *c = &n->cfg;
    int nb = c->layers * 3 + c->p_layers * 2;
    char *placed = (char *)calloc((size_t)t->n, 1);
    int *first = (int *)malloc(sizeof(int) * (size_t)t->n);
    if (!placed || !first) {
        free(placed);
        free(first);
        return tg_fail("out of memory");
    }
    for (int i = 0; i < t->n; i++)
        first[i] = -1;
    for (int b = 0; b < nb; b++) {
        const tg_block_off *bo = b < c->layers * 3 ? &t->lay.torso[b]
                                                   : &t->lay.policy[b - c->layers * 3];
        int iq = tensor_at(t, bo->q.w);
        if (iq < 0 || tensor_at(t, bo->k.w) < 0 || tensor_at(t, bo->v.w) < 0 ||
            tensor_at(t, bo->q.b) < 0 || tensor_at(t, bo->k.b) < 0 || tensor_at(t, bo->v.b) < 0) {
            free(placed);
            free(first);
            return tg_fail("parameter table: attention block %d not found", b);
        }
        first[iq] = b;
    }
    n->dtotal = 0;
    for (int i = 0; i < t->n; i++) {
        if (placed[i])
            continue;
        if (first[i] < 0) {
            n->doff[i] = n->dtotal;
            n->dtotal += (t->p[i].size + 127) & ~(size_t)127;
            placed[i] = 1;
            continue;
        }
        int b = first[i];
        const tg_block_off *bo = b < c->layers * 3 ? &t->lay.torso[b]
                                                   : &t->lay.policy[b - c->layers * 3];
        const tg_lin_off *ls[3] = {&bo->q, &bo->k, &bo->v};
        for (int part = 0; part < 2; part++) { /* weights, then biases */
            for (int j = 0; j < 3; j++) {
                int ti = tensor_at(t, part ? ls[j]->b : ls[j]->w);
                n->doff[ti] = n->dtotal;
                n->dtotal += t->p[ti].size;
                placed[ti] = 1;
            }
            n->dtotal = (n->dtotal + 127) & ~(size_t)127;
        }
    }
    free(placed);
    free(first);
    return 0;
}

static void *cn_create(const tg_params *tab, int max_batch, int threads, uint64_t seed)
{
    (void)threads;
    cuda_net *n = (cuda_net *)calloc(1, sizeof *n);
    float *host = NULL;
    if (!n) {
        tg_fail("out of memory");
        return NULL;
    }
    n->tab = tab;
    n->cfg = tab->cfg;
    n->max_batch = max_batch;
    const tg_net_config *c = &n->cfg;
    const char *am = getenv("TG_CUDA_ATTN");
    n->attn_mode = am && !strcmp(am, "gemm")    ? TGC_ATTN_GEMM
                   : am && !strcmp(am, "cudnn") ? TGC_ATTN_CUDNN
                                                : TGC_ATTN_WARP;
    const char *mm = getenv("TG_CUDA_ATTN_MMA");
    n->attn_mma = mm ? strcmp(mm, "0") != 0 : ATTN_MMA_DEFAULT;
    /* on since its kernel test passed on the H100 and it took ~1 ms off a train step (2026-12-05) */
    const char *sf = getenv("TG_CUDA_STAGE_FUSE");
    n->stage_fuse = !(sf && !strcmp(sf, "0"));
    /* on since the H100 (2026-12-05, 16:1x UTC): greedy +1.9% / +2.9% / -0.8% on paper-S4 /
     * paper-S9 / small-S9, a c = 128, S = 3 net's evaluation +7%, test_graph_decode passed */
    const char *ug = getenv("TG_CUDA_GRAPH");
    n->use_graph = !(ug && !strcmp(ug, "0"));
    const char *sl = getenv("TG_CUDA_STAGE_LN");
    n->stage_ln = !(sl && !strcmp(sl, "0"));
    const char *pp = getenv("TG_CUDA_POUT_PAD");
    n->pout_pad = !(pp && !strcmp(pp, "0"));
    const char *ly = getenv("TG_CUDA_LN_DY32");
    n->ln_dy = ly && strcmp(ly, "0") ? TGC_F32 : TGC_BF16;
    {
        int dev = 0;
        if (cudaGetDeviceCount(&dev) != cudaSuccess || dev < 1) {
            tg_fail("no CUDA device");
            goto fail;
        }
    }
    if (cudaStreamCreateWithFlags(&n->st, cudaStreamNonBlocking) != cudaSuccess) {
        tg_fail("cudaStreamCreate failed");
        goto fail;
    }
    if (getenv("TG_CUDA_PROFILE")) {
        n->prof = 1;
        for (int i = 0; i < 2 * 8192; i++)
            if (cudaEventCreate(&n->prof_ev[i]) != cudaSuccess) {
                tg_fail("cudaEventCreate failed");
                goto fail;
            }
    }
    n->gemm = tgc_gemm_new((size_t)64 << 20);
    if (!n->gemm || (n->prof && tgc_gemm_set_profile(n->gemm, 1)))
        goto fail;
    if (n->attn_mode == TGC_ATTN_CUDNN && !(n->sdpa = tgc_sdpa_new()))
        goto fail;
    /* aligned parameter layout */
    n->doff = (size_t *)calloc((size_t)tab->n, sizeof(size_t));
    NET_CHECK_ALLOC(n->doff);
    if (param_layout(n))
        goto fail;
    if (cudaMalloc(&n->p32, n->dtotal * 4) || cudaMalloc(&n->grad, n->dtotal * 4) ||
        cudaMalloc(&n->m, n->dtotal * 4) || cudaMalloc(&n->v, n->dtotal * 4) ||
        cudaMalloc(&n->p16, n->dtotal * 2) || cudaMalloc(&n->decay, n->dtotal)) {
        tg_fail("cudaMalloc of parameters (%zu floats) failed", n->dtotal);
        goto fail;
    }
    cudaMemset(n->p32, 0, n->dtotal * 4);
    cudaMemset(n->grad, 0, n->dtotal * 4);
    cudaMemset(n->m, 0, n->dtotal * 4);
    cudaMemset(n->v, 0, n->dtotal * 4);
    cudaMemset(n->decay, 0, n->dtotal);
    for (int i = 0; i < tab->n; i++)
        if (tab->p[i].decay)
            cudaMemset(n->decay + n->doff[i], 1, tab->p[i].size);
    /* structure */
    n->torso = (dblock *)calloc((size_t)c->layers * 3 + 1, sizeof(dblock));
    n->policy = (dblock *)calloc((size_t)c->p_layers * 2 + 1, sizeof(dblock));
    n->ts = (bsave *)calloc((size_t)c->layers * 3 + 1, sizeof(bsave));
    n->ps = (bsave *)calloc((size_t)c->p_layers * 2 + 1, sizeof(bsave));
    n->vh = (dlin *)calloc((size_t)c->v_layers + 1, sizeof(dlin));
    n->vz = (float **)calloc((size_t)c->v_layers + 1, sizeof(float *));
    n->va = (bf16 **)calloc((size_t)c->v_layers + 1, sizeof(bf16 *));
    NET_CHECK_ALLOC(n->torso && n->policy && n->ts && n->ps && n->vh && n->vz && n->va);
    for (int g = 0; g < 3; g++) {
        mk_lin(n, &n->sp[g], &tab->lay.scalar_proj[g]);
        mk_lin(n, &n->inp[g], &tab->lay.in_proj[g]);
    }
    for (int i = 0; i < c->layers * 3; i++)
        mk_block(n, &n->torso[i], &tab->lay.torso[i]);
    for (int i = 0; i < c->p_layers * 2; i++)
        mk_block(n, &n->policy[i], &tab->lay.policy[i]);
    n->pos = n->p32 + dev_off(n, tab->lay.pos);
    n->gpos = n->grad + dev_off(n, tab->lay.pos);
    mk_lin(n, &n->embed, &tab->lay.embed);
    mk_ln(n, &n->pnorm, &tab->lay.pnorm);
    mk_lin(n, &n->pout, &tab->lay.pout);
    for (int l = 0; l < c->v_layers; l++)
        mk_lin(n, &n->vh[l], &tab->lay.vhidden[l]);
    mk_lin(n, &n->vout, &tab->lay.vout);
    {
        arena a = {NULL, 0};
        carve(n, &a, max_batch);
        n->arena_size = a.off + 256;
        if (cudaMalloc(&n->arena, n->arena_size) != cudaSuccess) {
            tg_fail("cudaMalloc of %.1f GiB of activations for batch %d failed",
                    n->arena_size / 1073741824.0, max_batch);
            goto fail;
        }
        a.base = (char *)n->arena;
        a.off = 0;
        carve(n, &a, max_batch);
    }
    host = (float *)malloc(tab->total * sizeof(float));
    NET_CHECK_ALLOC(host);
    tg_params_init(tab, host, seed);
    if (cn_set_params((void *)n, host))
        goto fail;
    free(host);
    return n;
fail:
    free(host);
    cn_destroy(n);
    return NULL;
}

static void cn_destroy(void *impl)
{
    cuda_net *n = (cuda_net *)impl;
    if (!n)
        return;
    if (n->st)
        cudaStreamSynchronize(n->st);
    graphs_clear(n);
    if (n->prof) {
        prof_report(n);
        for (int i = 0; i < 2 * 8192; i++)
            if (n->prof_ev[i])
                cudaEventDestroy(n->prof_ev[i]);
    }
    cudaFree(n->arena);
    cudaFree(n->dec);
    cudaFree(n->p32);
    cudaFree(n->grad);
    cudaFree(n->m);
    cudaFree(n->v);
    cudaFree(n->p16);
    cudaFree(n->decay);
    tgc_gemm_free(n->gemm);
    tgc_sdpa_free(n->sdpa);
    if (n->st)
        cudaStreamDestroy(n->st);
    free(n->doff);
    free(n->torso);
    free(n->policy);
    free(n->ts);
    free(n->ps);
    free(n->vh);
    free(n->vz);
    free(n->va);
    free(n);
}

static int sync_net(cuda_net *n)
{
    CU_CHECK(cudaStreamSynchronize(n->st));
    prof_collect(n);
    return 0;
}

/* host layout <-> device layout, one tensor at a time */
static int to_dev(cuda_net *n, float *dst, const float *src)
{
    for (int i = 0; i < n->tab->n; i++)
        CU_CHECK(cudaMemcpyAsync(dst + n->doff[i], src + n->tab->p[i].offset,
                                 n->tab->p[i].size * sizeof(float), cudaMemcpyHostToDevice, n->st));
    return 0;
}

static int to_host(cuda_net *n, float *dst, const float *src)
{
    for (int i = 0; i < n->tab->n; i++)
        CU_CHECK(cudaMemcpyAsync(dst + n->tab->p[i].offset, src + n->doff[i],
                                 n->tab->p[i].size * sizeof(float), cudaMemcpyDeviceToHost, n->st));
    return sync_net(n);
}

static int cn_set_params(void *impl, const float *src)
{
    cuda_net *n = (cuda_net *)impl;
    prof_enter(n, -1);
    if (to_dev(n, n->p32, src) || PROF(n, PR_ELEM, tgc_f2bf(n->st, n->p32, n->p16, (long)n->dtotal)))
        return -1;
    return sync_net(n);
}

static int cn_get_params(void *impl, float *dst)
{
    cuda_net *n = (cuda_net *)impl;
    return to_host(n, dst, n->p32);
}

static int cn_get_opt_state(void *impl, float *m, float *v, int64_t *step)
{
    cuda_net *n = (cuda_net *)impl;
    if ((m && to_host(n, m, n->m)) || (v && to_host(n, v, n->v)))
        return -1;
    if (step)
        *step = n->step;
    return 0;
}

static int cn_set_opt_state(void *impl, const float *m, const float *v, int64_t step)
{
    cuda_net *n = (cuda_net *)impl;
    if (m && to_dev(n, n->m, m))
        return -1;
    if (v && to_dev(n, n->v, v))
        return -1;
    n->step = step;
    return sync_net(n);
}

static int read_losses(cuda_net *n, int B, double vw, tg_losses *loss, float *sumsq)
{
    float red[8];
    CU_CHECK(cudaMemcpyAsync(red, n->red, sizeof red, cudaMemcpyDeviceToHost, n->st));
    if (sync_net(n))
        return -1;
    double pol = red[0] / B, val = red[1] / ((double)B * n->cfg.quantiles);
    if (loss) {
        loss->policy = pol;
        loss->value = val;
        loss->total = pol + vw * val;
    }
    if (sumsq)
        *sumsq = red[2];
    return 0;
}

static int cn_loss_grad(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                        tg_losses *loss, float *grads)
{
    cuda_net *n = (cuda_net *)impl;
    prof_enter(n, -1);
    if (forward_all(n, b) || backward_all(n, b, opt->value_weight))
        return -1;
    if (read_losses(n, b->B, opt->value_weight, loss, NULL))
        return -1;
    if (grads && to_host(n, grads, n->grad))
        return -1;
    return 0;
}

static int cn_train_step(void *impl, const tg_opt_config *opt, const tg_batch_view *b,
                         tg_train_stats *out)
{
    cuda_net *n = (cuda_net *)impl;
    prof_enter(n, 0);
    if (forward_all(n, b) || backward_all(n, b, opt->value_weight))
        return -1;
    if (PROF(n, PR_OPT, tgc_sumsq(n->st, n->grad, (long)n->dtotal, &n->red[2])))
        return -1;
    double lr = tg_lr_at(opt, n->step);
    double t = (double)(n->step + 1);
    float bc1 = (float)(1.0 - pow(opt->beta1, t)), bc2 = (float)(1.0 - pow(opt->beta2, t));
    if (PROF(n, PR_OPT, tgc_adamw(n->st, n->p32, n->p16, n->grad, n->m, n->v, n->decay, (long)n->dtotal,
                  (float)lr, (float)opt->beta1, (float)opt->beta2, (float)opt->eps,
                  (float)opt->weight_decay, bc1, bc2, &n->red[2], (float)opt->grad_clip)))
        return -1;
    n->step++;
    float sumsq = 0.f;
    tg_losses l;
    if (read_losses(n, b->B, opt->value_weight, &l, &sumsq))
        return -1;
    if (out) {
        out->loss = l;
        out->grad_norm = sqrt((double)sumsq);
        out->lr = lr;
        out->step = n->step;
    }
    return 0;
}

static int cn_forward(void *impl, const tg_batch_view *b, float *logits, float *quantiles,
                      float *torso)
{
    cuda_net *n = (cuda_net *)impl;
    const tg_net_config *c = &n->cfg;
    if (forward_all(n, b))
        return -1;
    if (logits)
        CU_CHECK(cudaMemcpyAsync(logits, n->logits,
                                 sizeof(float) * (size_t)b->B * c->n_steps * c->n_logits,
                                 cudaMemcpyDeviceToHost, n->st));
    if (quantiles)
        CU_CHECK(cudaMemcpyAsync(quantiles, n->quant, sizeof(float) * (size_t)b->B * c->quantiles,
                                 cudaMemcpyDeviceToHost, n->st));
    if (torso)
        CU_CHECK(cudaMemcpyAsync(torso, n->G,
                                 sizeof(float) * (size_t)b->B * 3 * c->S * c->S * c->c,
                                 cudaMemcpyDeviceToHost, n->st));
    return sync_net(n);
}

static int cn_sample(void *impl, const float *tensors, const float *scalars, int N, int K,
                     float temperature, const float *uniforms, uint64_t seed, tg_eval_out *out)
{
    cuda_net *n = (cuda_net *)impl;
    const tg_net_config *c = &n->cfg;
    int L = c->n_steps;
    long R = (long)N * K;
    prof_enter(n, 1);
    /* without uniforms: the CPU backend's streams (position i draws from stream i of the seed),
     * drawn on the device (tgc_uniforms), the same bits */
    decbuf db;
    memset(&db, 0, sizeof db);
    int rc = -1;
    float *qdev = n->quant; /* [N, Q] fits: N <= max_batch */
    if (dec_prepare(n, N, R, &db) ||
        decode(n, tensors, scalars, N, K, temperature, uniforms, uniforms == NULL, seed, &db,
               qdev))
        goto done;
    if (out->tokens &&
        cudaMemcpyAsync(out->tokens, db.tok_out, sizeof(int32_t) * R * L, cudaMemcpyDeviceToHost,
                        n->st) != cudaSuccess)
        goto done;
    if (out->logp &&
        cudaMemcpyAsync(out->logp, db.logp, sizeof(float) * R, cudaMemcpyDeviceToHost, n->st) !=
            cudaSuccess)
        goto done;
    if ((out->quantiles || out->value)) {
        float *q = out->quantiles ? out->quantiles
                                  : (float *)malloc(sizeof(float) * N * c->quantiles);
        if (!q)
            goto done;
        if (cudaMemcpyAsync(q, qdev, sizeof(float) * N * c->quantiles, cudaMemcpyDeviceToHost,
                            n->st) != cudaSuccess || sync_net(n)) {
            if (!out->quantiles)
                free(q);
            goto done;
        }
        if (out->value)
            for (int i = 0; i < N; i++)
                out->value[i] = tg_risk_seeking_value(q + (long)i * c->quantiles, c->quantiles);
        if (!out->quantiles)
            free(q);
    }
    if (out->logits) {
        /* rarely wanted (tests): recompute by teacher forcing the sampled tokens */
        if (sync_net(n))
            goto done;
        int32_t *tok = (int32_t *)malloc(sizeof(int32_t) * R * L);
        float *tt = (float *)malloc(sizeof(float) * (size_t)K * c->T * c->S * c->S * c->S);
        float *ss = (float *)malloc(sizeof(float) * (size_t)K * c->n_scalars);
        if (!tok || !tt || !ss) {
            free(tok); free(tt); free(ss);
            goto done;
        }
        int bad = cudaMemcpy(tok, db.tok_out, sizeof(int32_t) * R * L, cudaMemcpyDeviceToHost) !=
                  cudaSuccess;
        size_t tsz = (size_t)c->T * c->S * c->S * c->S;
        for (int i = 0; i < N && !bad; i++) {
            for (int k = 0; k < K; k++) {
                memcpy(tt + k * tsz, tensors + i * tsz, tsz * sizeof(float));
                memcpy(ss + (size_t)k * c->n_scalars, scalars + (size_t)i * c->n_scalars,
                       c->n_scalars * sizeof(float));
            }
            tg_batch_view bv = {K, tt, ss, tok + (long)i * K * L, NULL};
            if (K > n->max_batch || cn_forward(n, &bv, out->logits + (long)i * K * L * c->n_logits,
                                               NULL, NULL))
                bad = 1;
        }
        free(tok); free(tt); free(ss);
        if (bad)
            goto done;
    }
    rc = sync_net(n);
done:
    return rc;
}

static int cn_greedy(void *impl, const float *tensors, const float *scalars, int N,
                     int32_t *tokens, float *quantiles)
{
    cuda_net *n = (cuda_net *)impl;
    const tg_net_config *c = &n->cfg;
    decbuf db;
    memset(&db, 0, sizeof db);
    prof_enter(n, 2);
    if (dec_prepare(n, N, N, &db) ||
        decode(n, tensors, scalars, N, 1, 1.f, NULL, 0, 0, &db, n->quant))
        return -1;
    if (tokens)
        CU_CHECK(cudaMemcpyAsync(tokens, db.tok_out, sizeof(int32_t) * N * c->n_steps,
                                 cudaMemcpyDeviceToHost, n->st));
    if (quantiles)
        CU_CHECK(cudaMemcpyAsync(quantiles, n->quant, sizeof(float) * N * c->quantiles,
                                 cudaMemcpyDeviceToHost, n->st));
    return sync_net(n);
}

extern "C" {

const tg_net_ops tg_net_cuda_ops = {
    "cuda",        cn_create,      cn_destroy,  cn_train_step,    cn_loss_grad,
    cn_forward,    cn_sample,      cn_greedy,   cn_get_params,    cn_set_params,
    cn_get_opt_state, cn_set_opt_state,
};

int tg_net_cuda_available(void)
{
    int n = 0;
    if (getenv("TG_NO_CUDA"))
        return 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}


}
