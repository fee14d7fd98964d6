/* fastmm's fused products kernel (fastmm/fused_kernel.cuh) run on the CPU: the kernel's own
 * source, with each thread block emulated by 256 std::threads and __syncthreads by a barrier, for
 * every tile variant, on Strassen at one and two levels, against the CPU path (fastmm_sgemm_cpu)
 * and fp64. CI has no GPU; this checks the kernel's tiling, double buffering, term sums and
 * epilogue (the first product to reach a C block writes it, later ones add, nothing outside C
 * written) wherever the tests run. The GPU runs the same checks in test_fastmm_cuda's
 * test_fused. */
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

extern "C" { /* C headers without C++ guards */
#include <cmocka.h>

#include "common/fact.h"
}

/* the CUDA names the kernel uses */
struct float4 {
    float x, y, z, w;
};
static inline float4 make_float4(float a, float b, float c, float d) { return {a, b, c, d}; }
struct emu_dim3 {
    unsigned x, y, z;
};
static thread_local emu_dim3 threadIdx, blockIdx;
static std::barrier<> *emu_barrier;
#define __syncthreads() emu_barrier->arrive_and_wait()
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(a, b)
#define __align__(x) __attribute__((aligned(x)))
#define __shared__ static /* one block runs at a time */
static inline float4 __ldg(const float4 *p) { return *p; }

#include "fastmm/fastmm.h"
#include "fastmm/fused_kernel.cuh"

/* One emulated thread's share of one launch: every thread block of the grid in turn (the
 * kernel's last shared-memory read comes before its last barrier, and one more barrier ends each
 * block, so the blocks can share the static "shared" arrays). */
template <int BM, int BN, int BK, int NA, int NB>
static void emu_launch(const fu_args &a0, long bm, long bn)
{
    fu_args a = a0; /* as fused_launch_t sets them */
    a.tiles_m = (int)(bm / BM);
    a.tiles_n = (int)(bn / BN);
    for (unsigned b = 0; b < (unsigned)(a.tiles_m * a.tiles_n); b++) {
        blockIdx = {b, 0, 0};
        fused_kernel<BM, BN, BK, NA, NB>(a);
        __syncthreads();
    }
}

template <int BM, int BN, int BK>
static bool emu_product(int na, int nb, const fu_args &a, long bm, long bn)
{
    /* Strassen's terms: 1 or 2 per operand at one level, up to 4 at two */
#define EMU(x, y)                                                                               \
    if (na == x && nb == y) return emu_launch<BM, BN, BK, x, y>(a, bm, bn), true;
    EMU(1, 1) EMU(1, 2) EMU(2, 1) EMU(2, 2) EMU(1, 4) EMU(4, 1) EMU(2, 4) EMU(4, 2) EMU(4, 4)
#undef EMU
    return false;
}

static bool emu_variant(int v, int na, int nb, const fu_args &a, long bm, long bn)
{
    switch (v) {
    case 1: return emu_product<128, 128, 8>(na, nb, a, bm, bn);
    case 2: return emu_product<128, 128, 16>(na, nb, a, bm, bn);
    case 3: return emu_product<128, 256, 8>(na, nb, a, bm, bn);
    case 4: return emu_product<256, 128, 8>(na, nb, a, bm, bn);
    }
    return false;
}

struct emu_prod {
    fu_args a;
    int na, nb;
};

/* The launches of all products in order, on 256 threads (a thread block's), each running its
 * share of every block of every launch */
static void emu_run(int v, const std::vector<emu_prod> &ps, long bm, long bn)
{
    std::barrier<> bar(256);
    emu_barrier = &bar;
    std::vector<std::thread> th;
    std::vector<char> ok(256, 1);
    for (unsigned t = 0; t < 256; t++)
        th.emplace_back([&, t] {
            threadIdx = {t, 0, 0};
            for (const emu_prod &p : ps)
                if (!emu_variant(v, p.na, p.nb, p.a, bm, bn)) {
                    ok[t] = 0; /* same for every thread: they all stop here */
                    return;
                }
        });
    for (auto &x : th) x.join();
    for (char o : ok) assert_true(o);
}

/* C = A B by the fused products of plan p (variant v), emulated, against the CPU path and fp64 */
static void check(fastmm_plan *p, int v, long M, long K, long N, uint64_t seed)
{
    assert_true(fastmm_plan_fused(p, M, K, N));
    int L = fastmm_plan_levels(p, M, K, N);
    fastmm_level *l = fastmm_plan_level(p, L);
    assert_non_null(l);
    long lda = K + 4, ldb = N + 4, ldc = N + 8;
    std::vector<float> A(M * lda), B(K * ldb), C(M * ldc, NAN), Cc(M * ldc), a(M * K), b(K * N);
    std::vector<double> R(M * N);
    srand((unsigned)seed);
    for (auto &x : A) x = (float)rand() / RAND_MAX * 2 - 1;
    for (auto &x : B) x = (float)rand() / RAND_MAX * 2 - 1;
    for (long i = 0; i < M; i++) memcpy(&a[i * K], &A[i * lda], sizeof(float) * K);
    for (long i = 0; i < K; i++) memcpy(&b[i * N], &B[i * ldb], sizeof(float) * N);
    tg_dims d = tg_fact_dims(l->f);
    std::vector<unsigned char> written(l->c.nout, 0);
    std::vector<emu_prod> ps(tg_fact_rank(l->f));
    for (int r = 0; r < tg_fact_rank(l->f); r++)
        fu_product_args(l, M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, r,
                        written.data(), &ps[r].a, &ps[r].na, &ps[r].nb);
    emu_run(v, ps, M / d.n, N / d.p);
    assert_int_equal(fastmm_sgemm_cpu(p, M, N, K, A.data(), lda, B.data(), ldb, Cc.data(), ldc), 0);
    assert_int_equal(fastmm_ref_dgemm(M, N, K, a.data(), b.data(), R.data()), 0);
    double num = 0, den = 0;
    for (long i = 0; i < M; i++) {
        for (long j = 0; j < N; j++) {
            double e = fabs((double)C[i * ldc + j] - Cc[i * ldc + j]);
            if (!(e <= num)) num = e; /* NaN: never written */
            den = fmax(den, fabs(R[i * N + j]));
        }
        for (long j = N; j < ldc; j++) assert_true(std::isnan(C[i * ldc + j]));
    }
    double eg = fastmm_max_rel_err(M, N, C.data(), ldc, R.data());
    double tol = 2 * 1.1920929e-7 * fastmm_growth(l->f) * K;
    if (!(num / den <= tol) || !(eg <= tol))
        fail_msg("variant %d, %ldx%ldx%ld, %d levels: emulated-CPU %.3g, emulated %.3g "
                 "(tolerance %.3g)", v, M, K, N, L, num / den, eg, tol);
}

static void test_fused_emulated(void **state)
{
    (void)state;
    tg_fact *s = tg_fact_strassen();
    /* one level: blocks of 256 x 256 (every variant's tile), k-steps 2-4 deep; two levels:
     * 128-blocks (variants 1 and 2), terms up to 4 per operand */
    for (int v = 1; v <= FASTMM_FUSED_VARIANTS; v++) {
        fastmm_opts o = fastmm_opts_default();
        o.levels = 1;
        o.fused = v;
        fastmm_plan *p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        check(p, v, 512, 64, 512, 10 + v);
        if (v == 1) check(p, v, 2560, 16, 768, 30); /* 10 x 3 tiles a block: a group of 8 tile
                                                       rows and a partial one of 2 */
        fastmm_plan_free(p);
        if (v > 2) continue;
        o.levels = 2;
        p = fastmm_plan_new(s, &o);
        assert_non_null(p);
        check(p, v, 512, 128, 512, 20 + v);
        fastmm_plan_free(p);
    }
    tg_fact_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fused_emulated)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
