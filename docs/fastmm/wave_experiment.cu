// The wave-quantization experiment behind fastmm's balanced waves (opts.tail): 7 batched 4096^3
// pedantic SGEMMs on cuBLASLt, whole against a main part plus a tail of small tiles on a second
// stream. Built with nvcc -O2 -arch=sm_90 -o wave wave_experiment.cu -lcublasLt; run on the H100
// 2026-12-07 09:44 UTC, output in h100l-09h44-wave-wave.log. Not part of the build.
// `wave REPS order`: only the launch-order question (idle and busy GPU, tail or main first, the
// tail at low or high stream priority); run on two H100s 2026-12-07 15:51 and 16:02 UTC
// (h100o-15h51-wave-order.log, the first without the priority axis; h100p-16h02-wave-order.log):
// busy, as in a plan, neither order nor priority matters (17.74 ms tile 18, 18.02 tile 20).
// Wave-quantization experiment: 7 batched 4096^3 SGEMMs (pedantic fp32) on cuBLASLt, whole vs a main
// part in 256x128 tiles plus a tail of columns in small tiles / split-K on a second stream.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>
#include <algorithm>
#define CK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) { printf("CUDA %s line %d\n", cudaGetErrorString(e_), __LINE__); exit(1);} } while (0)
#define LK(x) do { cublasStatus_t e_ = (x); if (e_ != CUBLAS_STATUS_SUCCESS) { printf("cublasLt %d line %d\n", (int)e_, __LINE__); exit(1);} } while (0)
static cublasLtHandle_t lt;
static void *ws; static const size_t WS = 256u << 20;
static const int NB = 7, S = 4096;
struct G { cublasLtMatmulDesc_t d; cublasLtMatrixLayout_t a, b, c; cublasLtMatmulAlgo_t algo; int ok; };
static G make(int n, int tile, int swz, int splitk, int algo_id)
{
    G g; g.ok = 0;
    LK(cublasLtMatmulDescCreate(&g.d, CUBLAS_COMPUTE_32F_PEDANTIC, CUDA_R_32F));
    LK(cublasLtMatrixLayoutCreate(&g.a, CUDA_R_32F, S, S, S));
    LK(cublasLtMatrixLayoutCreate(&g.b, CUDA_R_32F, S, n, S));
    LK(cublasLtMatrixLayoutCreate(&g.c, CUDA_R_32F, S, n, S));
    int32_t bc = NB; int64_t st = (int64_t)S * S;
    cublasLtMatrixLayout_t l[3] = {g.a, g.b, g.c};
    for (int i = 0; i < 3; i++) {
        LK(cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc));
        LK(cublasLtMatrixLayoutSetAttribute(l[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &st, sizeof st));
    }
    if (cublasLtMatmulAlgoInit(lt, CUBLAS_COMPUTE_32F_PEDANTIC, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, CUDA_R_32F, algo_id, &g.algo) != CUBLAS_STATUS_SUCCESS) return g;
    uint32_t t = tile, stg = 31, sw = swz, sk = splitk, red = CUBLASLT_REDUCTION_SCHEME_NONE;
    cublasLtMatmulAlgoConfigSetAttribute(&g.algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &t, sizeof t);
    cublasLtMatmulAlgoConfigSetAttribute(&g.algo, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stg, sizeof stg);
    cublasLtMatmulAlgoConfigSetAttribute(&g.algo, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &sw, sizeof sw);
    cublasLtMatmulAlgoConfigSetAttribute(&g.algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk, sizeof sk);
    if (splitk > 1) red = CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    cublasLtMatmulAlgoConfigSetAttribute(&g.algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &red, sizeof red);
    cublasLtMatmulHeuristicResult_t r;
    if (cublasLtMatmulAlgoCheck(lt, g.d, g.a, g.b, g.c, g.c, &g.algo, &r) != CUBLAS_STATUS_SUCCESS) return g;
    if (r.workspaceSize > WS) return g;
    g.ok = 1;
    return g;
}
static float *A, *B, *C;
static void run(const G &g, long coloff, cudaStream_t s)
{
    const float one = 1, zero = 0;
    LK(cublasLtMatmul(lt, g.d, &one, A, g.a, B + coloff * S, g.b, &zero, C + coloff * S, g.c, C + coloff * S, g.c, &g.algo, s == 0 ? ws : (char *)ws + 0, WS, s));
}
static float med(std::vector<float> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }
// Holds one SM for about `cycles` clocks: with it queued ahead, both parts of a split are queued
// before their start event fires (as in fastmm's plans, where the host runs ahead), instead of
// the first one starting on an idle GPU before the second is launched.
__global__ void spin(long long cycles) { long long t = clock64(); while (clock64() - t < cycles) {} }
int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 7;
    LK(cublasLtCreate(&lt));
    size_t nb = (size_t)NB * S * S * sizeof(float);
    CK(cudaMalloc(&A, nb)); CK(cudaMalloc(&B, nb)); CK(cudaMalloc(&C, nb)); CK(cudaMalloc(&ws, WS));
    CK(cudaMemset(A, 0, nb)); CK(cudaMemset(B, 0, nb));
    int lo, hi; CK(cudaDeviceGetStreamPriorityRange(&lo, &hi));
    cudaStream_t s1, s2; CK(cudaStreamCreateWithPriority(&s1, cudaStreamNonBlocking, hi));
    CK(cudaStreamCreateWithPriority(&s2, cudaStreamNonBlocking, lo));
    cudaEvent_t e0, e1, ej; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1)); CK(cudaEventCreate(&ej));
    // fill with something finite
    std::vector<float> h((size_t)S * S); for (size_t i = 0; i < h.size(); i++) h[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    for (int b = 0; b < NB; b++) { CK(cudaMemcpy(A + (size_t)b * S * S, h.data(), h.size() * 4, cudaMemcpyHostToDevice)); CK(cudaMemcpy(B + (size_t)b * S * S, h.data(), h.size() * 4, cudaMemcpyHostToDevice)); }
    auto time1 = [&](const G &g) { std::vector<float> v; for (int r = 0; r < reps + 1; r++) { CK(cudaEventRecord(e0, s1)); run(g, 0, s1); CK(cudaEventRecord(e1, s1)); CK(cudaEventSynchronize(e1)); float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); if (r) v.push_back(ms);} return med(v); };
    // the split's runs, sorted; busy: a spin kernel queued ahead of each (see spin)
    // tailhi: the tail on the high-priority stream s1 and the main part on s2 (else the reverse)
    auto runs2 = [&](const G &gm, const G &gt, long toff, int tailfirst, int busy, int tailhi) { std::vector<float> v;
        cudaStream_t sm = tailhi ? s2 : s1, st = tailhi ? s1 : s2;
        for (int r = 0; r < reps + 1; r++) {
            if (busy) spin<<<1, 1, 0, sm>>>(4000000);
            CK(cudaEventRecord(e0, sm)); CK(cudaStreamWaitEvent(st, e0, 0));
            if (tailfirst) { run(gt, toff, st); run(gm, 0, sm); } else { run(gm, 0, sm); run(gt, toff, st); }
            CK(cudaEventRecord(ej, st)); CK(cudaStreamWaitEvent(sm, ej, 0)); CK(cudaEventRecord(e1, sm)); CK(cudaEventSynchronize(e1));
            float ms; CK(cudaEventElapsedTime(&ms, e0, e1)); if (r) v.push_back(ms);
        }
        std::sort(v.begin(), v.end()); return v; };
    auto time2 = [&](const G &gm, const G &gt, long toff, int tailfirst) { return med(runs2(gm, gt, toff, tailfirst, 0, 0)); };
    int algo = 55;
    if (argc > 2 && argv[2][0] == 'o') {
        // "order": does the balanced split depend on which part is launched first and on whether
        // the GPU is idle at launch? (fastmm's one-panel T plans: 18.2-18.4 ms on one H100,
        // 18.5-19.7 on others, 2026-12-07.) The 128-column tail, small tiles, idle and busy.
        const int t = 128;
        G gm = make(S - t, 24, 1, 1, algo);
        if (!gm.ok) { printf("main refused\n"); return 1; }
        printf("main n=%d alone %.3f ms\n", S - t, time1(gm));
        for (int tile : {18, 20}) {
            G gt = make(t, tile, 1, 1, algo);
            if (!gt.ok) { printf("tail tile%d refused\n", tile); continue; }
            for (int k = 0; k < 8; k++) { // tail priority x GPU busy x tail first
                int hi = k / 4, busy = k / 2 % 2, tf = 1 - k % 2;
                std::vector<float> v = runs2(gm, gt, S - t, tf, busy, hi);
                printf("  tail tile%d at %s priority, %s, %s first: median %.3f ms (min %.3f, max %.3f, %zu runs)\n", tile,
                       hi ? "high" : "low", busy ? "busy (both queued before the start)" : "idle", tf ? "tail" : "main",
                       v[v.size() / 2], v.front(), v.back(), v.size());
            }
        }
        return 0;
    }
    for (int sw = 0; sw < 2; sw++) { G f = make(S, 24, sw, 1, algo); if (f.ok) printf("full 7x4096^3 tile24 swz%d: %.3f ms\n", sw, time1(f)); }
    G f20 = make(S, 20, 1, 1, algo); if (f20.ok) printf("full tile20 swz1: %.3f ms\n", time1(f20));
    int tails[] = {128, 256, 384, 512, 768};
    int ttiles[][2] = {{24, 1}, {20, 1}, {18, 1}, {24, 2}, {24, 4}, {20, 2}, {20, 4}, {18, 2}};
    for (int ti = 0; ti < 5; ti++) {
        int t = tails[ti];
        G gm = make(S - t, 24, 1, 1, algo);
        if (!gm.ok) { printf("main n=%d refused\n", S - t); continue; }
        float mm = time1(gm);
        printf("tail %d: main n=%d alone %.3f ms\n", t, S - t, mm);
        for (auto &tt : ttiles) {
            G gt = make(t, tt[0], 1, tt[1], algo);
            if (!gt.ok) { printf("  tail tile%d splitk%d refused\n", tt[0], tt[1]); continue; }
            float ta = time1(gt), both = time2(gm, gt, S - t, 0), tf = time2(gm, gt, S - t, 1);
            printf("  tail tile%d splitk%d: alone %.3f ms, main+tail beside %.3f ms (tail first %.3f)\n", tt[0], tt[1], ta, both, tf);
        }
    }
    for (int sw = 0; sw < 2; sw++) { G f = make(S, 24, sw, 1, algo); if (f.ok) printf("full again tile24 swz%d: %.3f ms\n", sw, time1(f)); }
    return 0;
}
