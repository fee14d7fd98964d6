/* The tensor game: moves, rewards, hashing, features, rank bounds (against brute force). */
#include "tests/test_util.h"

#include <math.h>

#include "common/action.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/game.h"
#include "common/rng.h"

/* Action r of a factorization, padded to S. */
static void fact_action(const tg_fact *f, int r, int S, int8_t *a)
{
    assert_int_equal(tg_fact_action(f, r, S, a), 0);
}

/* tg_fact_action: the terms of T(2,3,3)'s naive algorithm in S = 9 give back the same
 * factorization through a game (tg_game_to_fact); modes over S and entries beyond int8 are refused. */
static void test_fact_action(void **state)
{
    (void)state;
    tg_dims d = {2, 3, 3};
    tg_fact *f = tg_fact_naive(d);
    const int S = 9;
    int32_t T[S * S * S];
    assert_int_equal(tg_matmul_tensor(d, S, T), 0);
    tg_game *g = tg_game_new(T, S, 0, 20, 1);
    int8_t a[3 * S];
    for (int r = 0; r < tg_fact_rank(f); r++) {
        assert_int_equal(tg_fact_action(f, r, S, a), 0);
        tg_game_play(g, a);
    }
    assert_true(tg_game_solved(g));
    tg_fact *h = tg_game_to_fact(g, d);
    assert_non_null(h);
    assert_memory_equal(tg_fact_cu(h), tg_fact_cu(f), sizeof(int64_t) * 18 * 6);
    assert_memory_equal(tg_fact_cv(h), tg_fact_cv(f), sizeof(int64_t) * 18 * 9);
    assert_memory_equal(tg_fact_cw(h), tg_fact_cw(f), sizeof(int64_t) * 18 * 6);
    int8_t small[3 * 6];
    assert_int_equal(tg_fact_action(f, 0, 6, small), -1); /* v has 9 entries */
    tg_fact_u(f)[0] = 300;
    assert_int_equal(tg_fact_action(f, 0, S, a), -1);
    tg_game_free(g);
    tg_fact_free(h);
    tg_fact_free(f);
}

static void test_strassen_game(void **state)
{
    (void)state;
    const int S = 4;
    int32_t T[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    tg_fact *f = tg_fact_strassen();
    tg_game *g = tg_game_new(T, S, 0, 10, 2);
    assert_non_null(g);
    assert_int_equal(tg_game_hash(g), tg_tensor_hash(T, S));
    assert_false(tg_game_done(g));
    int8_t a[3 * S];
    for (int r = 0; r < 7; r++) {
        assert_false(tg_game_done(g));
        fact_action(f, r, S, a);
        tg_action_canonicalize(a, S, 0);
        double rew = tg_game_play(g, a);
        assert_true(rew == -1.0);
        assert_int_equal(tg_game_step(g), r + 1);
        assert_int_equal(tg_game_hash(g), tg_tensor_hash(tg_game_residual(g), S));
    }
    assert_true(tg_game_done(g));
    assert_true(tg_game_solved(g));
    assert_int_equal(tg_game_hash(g), 0);
    tg_fact *h = tg_game_to_fact(g, (tg_dims){2, 2, 2});
    assert_non_null(h);
    assert_int_equal(tg_fact_rank(h), 7);
    assert_int_equal(tg_fact_verify(h, 0, NULL), 1);
    tg_fact_free(h);
    /* the same game mod 2 */
    tg_game *g2 = tg_game_new(T, S, 1, 7, 0);
    for (int r = 0; r < 7; r++) {
        fact_action(f, r, S, a);
        for (int i = 0; i < 3 * S; i++)
            a[i] &= 1;
        assert_true(tg_game_play(g2, a) == -1.0);
        for (int i = 0; i < S * S * S; i++)
            assert_true(tg_game_residual(g2)[i] == 0 || tg_game_residual(g2)[i] == 1);
        assert_int_equal(tg_game_hash(g2), tg_tensor_hash(tg_game_residual(g2), S));
    }
    assert_true(tg_game_solved(g2));
    h = tg_game_to_fact(g2, (tg_dims){2, 2, 2});
    assert_int_equal(tg_fact_arith(h), TG_ARITH_MOD2);
    assert_int_equal(tg_fact_verify(h, 1, NULL), 1);
    tg_fact_free(h);
    /* dims too large for S, or an action in the padding */
    assert_null(tg_game_to_fact(g2, (tg_dims){2, 3, 2}));
    tg_game_free(g2);
    tg_game_free(g);
    int32_t T5[125];
    tg_matmul_tensor((tg_dims){2, 2, 2}, 5, T5);
    g = tg_game_new(T5, 5, 0, 3, 0);
    int8_t b[15] = {0};
    b[4] = 1, b[5] = 1, b[10] = 1;
    tg_game_play(g, b);
    assert_null(tg_game_to_fact(g, (tg_dims){2, 2, 2}));
    assert_non_null(strstr(tg_errmsg(), "u[4]"));
    tg_game_free(g);
    tg_fact_free(f);
}

static void test_terminal_penalty(void **state)
{
    (void)state;
    const int S = 4;
    int32_t T[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    assert_int_equal(tg_rank_bound(T, S, 0), 8);
    assert_int_equal(tg_rank_bound(T, S, 1), 8);
    tg_fact *f = tg_fact_strassen();
    tg_game *g = tg_game_new(T, S, 0, 3, 1);
    assert_int_equal(tg_game_r_limit(g), 3);
    int8_t a[3 * S];
    double total = 0;
    for (int r = 0; r < 3; r++) {
        fact_action(f, r, S, a);
        total += tg_game_play(g, a);
    }
    assert_true(tg_game_done(g));
    assert_false(tg_game_solved(g));
    int bound = tg_rank_bound(tg_game_residual(g), S, 0);
    assert_true(bound >= 4 && bound <= 8 + 3);
    assert_true(total == -3.0 - bound);
    tg_game_free(g);
    /* reaching zero exactly at the limit has no penalty */
    g = tg_game_new(T, S, 0, 7, 0);
    total = 0;
    for (int r = 0; r < 7; r++) {
        fact_action(f, r, S, a);
        total += tg_game_play(g, a);
    }
    assert_true(total == -7.0);
    tg_game_free(g);
    tg_fact_free(f);
}

static void test_copy_and_features(void **state)
{
    (void)state;
    const int S = 4, H = 2;
    int32_t T[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    tg_fact *f = tg_fact_strassen();
    tg_game *g = tg_game_new(T, S, 0, 10, H);
    tg_game *c = tg_game_new(T, S, 0, 10, H);
    int8_t a[3 * S];
    fact_action(f, 0, S, a);
    tg_game_play(g, a);
    tg_game_copy(c, g);
    assert_int_equal(tg_game_step(c), 1);
    assert_int_equal(tg_game_hash(c), tg_game_hash(g));
    fact_action(f, 1, S, a);
    tg_game_play(c, a);
    assert_int_equal(tg_game_step(g), 1);
    assert_int_equal(tg_game_step(c), 2);
    assert_true(tg_game_hash(c) != tg_game_hash(g));
    assert_memory_equal(tg_game_actions(c), tg_game_actions(g), (size_t)3 * S);

    float feat[(H + 1) * S * S * S], sc[3];
    tg_game_features(c, feat, 3, sc);
    assert_true(sc[0] == 2.0f / 10.0f);
    assert_true(sc[1] == 0.0f && sc[2] == 0.0f);
    const int32_t *res = tg_game_residual(c);
    for (int i = 0; i < S * S * S; i++)
        assert_true(feat[i] == (float)res[i]);
    /* history: most recent first; rank-one tensors */
    for (int k = 0; k < H; k++) {
        int32_t rk1[S * S * S];
        memset(rk1, 0, sizeof rk1);
        fact_action(f, 1 - k, S, a);
        tg_tensor_add_action(rk1, S, a, 1, 0);
        for (int i = 0; i < S * S * S; i++)
            assert_true(feat[(k + 1) * S * S * S + i] == (float)rk1[i]);
    }
    /* only one move in g: the second history slot is zero */
    tg_game_features(g, feat, 1, sc);
    for (int i = 0; i < S * S * S; i++)
        assert_true(feat[2 * S * S * S + i] == 0.0f);
    tg_game_free(c);
    tg_game_free(g);
    tg_fact_free(f);
    assert_null(tg_game_new(T, 0, 0, 10, 1));
    assert_null(tg_game_new(T, S, 0, 0, 1));
}

static void test_hash_transpositions(void **state)
{
    (void)state;
    /* two move orders reaching the same residual hash equally */
    const int S = 4;
    int32_t T[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    tg_fact *f = tg_fact_strassen();
    tg_game *g1 = tg_game_new(T, S, 0, 10, 0), *g2 = tg_game_new(T, S, 0, 10, 0);
    int8_t a[3 * S];
    for (int r = 0; r < 3; r++) {
        fact_action(f, r, S, a);
        tg_game_play(g1, a);
        fact_action(f, 2 - r, S, a);
        tg_game_play(g2, a);
    }
    assert_memory_equal(tg_game_residual(g1), tg_game_residual(g2), sizeof T);
    assert_int_equal(tg_game_hash(g1), tg_game_hash(g2));
    tg_game_free(g1);
    tg_game_free(g2);
    tg_fact_free(f);
}

static void test_random_play_consistent(void **state)
{
    (void)state;
    /* the game's incremental residual, hash and termination agree with from-scratch values */
    tg_rng rng;
    tg_rng_seed(&rng, 7, 0);
    tg_coeffs F;
    tg_coeffs_parse("-2..2", &F);
    for (int mod2 = 0; mod2 < 2; mod2++)
        for (int S = 1; S <= 25; S += 4) {
            int32_t *t = calloc((size_t)S * S * S, sizeof *t), *ref = calloc((size_t)S * S * S, sizeof *t);
            for (int i = 0; i < S * S * S; i++)
                ref[i] = t[i] = mod2 ? (int32_t)tg_rng_below(&rng, 2) : (int32_t)tg_rng_below(&rng, 3) - 1;
            t[0] = ref[0] = 1;
            tg_game *g = tg_game_new(t, S, mod2, 40, 0);
            int8_t a[3 * TG_MAX_S];
            while (!tg_game_done(g)) {
                for (int i = 0; i < 3 * S; i++) {
                    a[i] = F.v[tg_rng_below(&rng, 5)];
                    if (mod2)
                        a[i] &= 1;
                }
                tg_game_play(g, a);
                tg_tensor_add_action(ref, S, a, -1, mod2);
                assert_memory_equal(tg_game_residual(g), ref, sizeof(int32_t) * S * S * S);
                assert_int_equal(tg_game_hash(g), tg_tensor_hash(ref, S));
                int zero = 1;
                for (int i = 0; i < S * S * S && zero; i++)
                    zero = ref[i] == 0;
                assert_int_equal(tg_game_solved(g), zero);
            }
            assert_true(tg_game_step(g) == 40 || tg_game_solved(g));
            tg_game_free(g);
            free(t);
            free(ref);
        }
}

/* ---- brute-force ranks ---- */

/* Exact determinant of a k x k submatrix by Laplace expansion (k <= 5). */
static long long det_sub(const int64_t *m, int cols, const int *r, const int *c, int k)
{
    if (k == 1)
        return m[r[0] * cols + c[0]];
    long long s = 0;
    int cc[8];
    for (int j = 0; j < k; j++) {
        int n = 0;
        for (int l = 0; l < k; l++)
            if (l != j)
                cc[n++] = c[l];
        long long sub = det_sub(m, cols, r + 1, cc, k - 1);
        s += (j % 2 ? -1 : 1) * m[r[0] * cols + c[j]] * sub;
    }
    return s;
}

/* Rank over Q = size of the largest non-zero minor. */
static int rank_minors(const int64_t *m, int rows, int cols)
{
    int best = 0;
    int kmax = rows < cols ? rows : cols;
    for (int k = 1; k <= kmax; k++) {
        int found = 0;
        for (unsigned rm = 0; rm < (1u << rows) && !found; rm++) {
            if (__builtin_popcount(rm) != k)
                continue;
            for (unsigned cm = 0; cm < (1u << cols) && !found; cm++) {
                if (__builtin_popcount(cm) != k)
                    continue;
                int r[8], c[8], nr = 0, nc = 0;
                for (int i = 0; i < rows; i++)
                    if (rm >> i & 1)
                        r[nr++] = i;
                for (int i = 0; i < cols; i++)
                    if (cm >> i & 1)
                        c[nc++] = i;
                found = det_sub(m, cols, r, c, k) != 0;
            }
        }
        if (!found)
            break;
        best = k;
    }
    return best;
}

/* Rank over GF(2) = log2 of the number of distinct row combinations. */
static int rank_gf2_enum(const int64_t *m, int rows, int cols)
{
    static unsigned char seen[1 << 12];
    memset(seen, 0, sizeof seen);
    int distinct = 0;
    for (unsigned s = 0; s < (1u << rows); s++) {
        unsigned v = 0;
        for (int i = 0; i < rows; i++)
            if (s >> i & 1)
                for (int j = 0; j < cols; j++)
                    v ^= (unsigned)(m[i * cols + j] & 1) << j;
        if (!seen[v]) {
            seen[v] = 1;
            distinct++;
        }
    }
    int r = 0;
    while ((1 << r) < distinct)
        r++;
    return r;
}

static void random_lowrank(tg_rng *rng, int rows, int cols, int64_t *m)
{
    /* sums of a few random rank-one matrices with small entries, to hit deficient ranks */
    int k = (int)tg_rng_below(rng, 5);
    memset(m, 0, sizeof(int64_t) * rows * cols);
    if (tg_rng_below(rng, 4) == 0) {
        for (int i = 0; i < rows * cols; i++)
            m[i] = (int64_t)tg_rng_below(rng, 7) - 3;
        return;
    }
    for (int t = 0; t < k; t++) {
        int64_t x[8], y[8];
        for (int i = 0; i < rows; i++)
            x[i] = (int64_t)tg_rng_below(rng, 5) - 2;
        for (int j = 0; j < cols; j++)
            y[j] = (int64_t)tg_rng_below(rng, 5) - 2;
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                m[i * cols + j] += x[i] * y[j];
    }
}

static void test_matrix_rank_brute(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 4, 0);
    int64_t m[64];
    int hist[6] = {0};
    for (int it = 0; it < 3000; it++) {
        int rows = 1 + (int)tg_rng_below(&rng, 5), cols = 1 + (int)tg_rng_below(&rng, 5);
        random_lowrank(&rng, rows, cols, m);
        int want = rank_minors(m, rows, cols);
        assert_int_equal(tg_matrix_rank(m, rows, cols, 0), want);
        hist[want]++;
        int rows2 = 1 + (int)tg_rng_below(&rng, 8), cols2 = 1 + (int)tg_rng_below(&rng, 8);
        random_lowrank(&rng, rows2, cols2, m);
        assert_int_equal(tg_matrix_rank(m, rows2, cols2, 1), rank_gf2_enum(m, rows2, cols2));
    }
    for (int r = 0; r <= 4; r++)
        assert_true(hist[r] > 20); /* every rank was exercised */
    assert_int_equal(tg_matrix_rank(m, 0, 3, 0), 0);
    /* wide GF(2) rows (more than 64 columns) */
    int64_t big[3 * 100] = {0};
    big[70] = 1;
    big[100 + 70] = 1;
    big[100 + 99] = 1;
    big[200 + 99] = 3;
    big[200 + 98] = 2; /* row 2 = 2 e98 + 3 e99: independent over Q, e99 = row0 + row1 mod 2 */
    assert_int_equal(tg_matrix_rank(big, 3, 100, 1), 2);
    assert_int_equal(tg_matrix_rank(big, 3, 100, 0), 3);
}

static void test_matrix_rank_overflow(void **state)
{
    (void)state;
    /* A 20x20 matrix X*Y of rank 10 with entries near 2^28: Bareiss minors exceed 64 bits. The
     * exact routine says so; the rank bound falls back to arithmetic modulo a large prime. */
    enum { N = 20, K = 10 };
    tg_rng rng;
    tg_rng_seed(&rng, 5, 0);
    int64_t X[N * K], Y[K * N], M[N * N];
    for (int i = 0; i < N * K; i++) {
        X[i] = (int64_t)tg_rng_below(&rng, 1 << 12) - (1 << 11);
        Y[i] = (int64_t)tg_rng_below(&rng, 1 << 12) - (1 << 11);
    }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++)
                s += X[i * K + k] * Y[k * N + j];
            M[i * N + j] = s;
        }
    assert_int_equal(tg_matrix_rank(M, N, N, 0), K);
    /* a multiple of the first prime 2^61-1: rank 0 modulo it, 3 over Q (det of the small
     * matrix is 7); Bareiss overflows, so this takes several primes */
    const int64_t P0 = ((int64_t)1 << 61) - 1;
    int64_t Q[9] = {P0, 2 * P0, 0, 0, P0, 3 * P0, P0, 0, P0};
    assert_int_equal(tg_matrix_rank(Q, 3, 3, 0), 3);
    int64_t Q2[9] = {P0, 2 * P0, 0, 0, P0, 3 * P0, P0, 3 * P0, 3 * P0}; /* row 2 = row 0 + row 1 */
    assert_int_equal(tg_matrix_rank(Q2, 3, 3, 0), 2);
    /* beyond every prime: random 32 x 32 entries near 2^62 */
    int64_t *H = malloc(sizeof(int64_t) * 32 * 32);
    for (int i = 0; i < 32 * 32; i++)
        H[i] = (int64_t)(tg_rng_u64(&rng) >> 1) - ((int64_t)1 << 61);
    assert_int_equal(tg_matrix_rank(H, 32, 32, 0), -1);
    assert_non_null(strstr(tg_errmsg(), "too large"));
    free(H);
    const int S = N;
    int32_t *t = calloc((size_t)S * S * S, sizeof *t);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            t[i * S + j] = (int32_t)M[i * N + j]; /* slice a = 0 */
    assert_int_equal(tg_rank_bound(t, S, 0), K);
    free(t);
}

static void test_rank_bound_brute(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 6, 0);
    const int S = 5;
    int32_t t[S * S * S];
    int64_t sl[S * S];
    for (int it = 0; it < 300; it++) {
        int mod2 = it % 2;
        int act[3];
        for (int k = 0; k < 3; k++)
            act[k] = 1 + (int)tg_rng_below(&rng, S);
        memset(t, 0, sizeof t);
        /* sums of random rank-one terms, or dense noise */
        int terms = (int)tg_rng_below(&rng, 6);
        int8_t a[3 * S];
        for (int r = 0; r < terms; r++) {
            memset(a, 0, sizeof a);
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < act[k]; i++)
                    a[k * S + i] = (int8_t)((int)tg_rng_below(&rng, 5) - 2);
            tg_tensor_add_action(t, S, a, 1, mod2);
        }
        if (it % 7 == 0)
            for (int i = 0; i < S * S * S; i++)
                t[i] = mod2 ? (int32_t)tg_rng_below(&rng, 2) : (int32_t)tg_rng_below(&rng, 5) - 2;
        int best = 1 << 30;
        for (int mode = 0; mode < 3; mode++) {
            int sum = 0;
            for (int s = 0; s < S; s++) {
                for (int x = 0; x < S; x++)
                    for (int y = 0; y < S; y++) {
                        int idx = mode == 0 ? (s * S + x) * S + y
                                  : mode == 1 ? (x * S + s) * S + y
                                              : (x * S + y) * S + s;
                        sl[x * S + y] = t[idx];
                    }
                sum += mod2 ? rank_gf2_enum(sl, S, S) : rank_minors(sl, S, S);
            }
            if (sum < best)
                best = sum;
        }
        assert_int_equal(tg_rank_bound(t, S, mod2), best);
        if (terms && it % 7)
            assert_true(best <= terms * S); /* sanity: each term adds at most rank 1 per slice */
    }
}

/* Rank by floating-point elimination with partial pivoting: an independent reference for
 * well-conditioned matrices with small entries. */
static int rank_float(const int64_t *m, int rows, int cols)
{
    double *a = malloc(sizeof(double) * rows * cols);
    double mx = 0;
    for (int i = 0; i < rows * cols; i++) {
        a[i] = (double)m[i];
        mx = fabs(a[i]) > mx ? fabs(a[i]) : mx;
    }
    int rank = 0;
    for (int c = 0; c < cols && rank < rows; c++) {
        int piv = rank;
        for (int r = rank + 1; r < rows; r++)
            if (fabs(a[r * cols + c]) > fabs(a[piv * cols + c]))
                piv = r;
        if (fabs(a[piv * cols + c]) <= 1e-9 * (mx + 1))
            continue;
        for (int j = 0; j < cols; j++) {
            double t = a[piv * cols + j];
            a[piv * cols + j] = a[rank * cols + j];
            a[rank * cols + j] = t;
        }
        for (int r = rank + 1; r < rows; r++) {
            double f = a[r * cols + c] / a[rank * cols + c];
            for (int j = c; j < cols; j++)
                a[r * cols + j] -= f * a[rank * cols + j];
        }
        rank++;
    }
    free(a);
    return rank;
}

static void test_matrix_rank_float(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 9, 0);
    int64_t *m = malloc(sizeof(int64_t) * 32 * 32), x[32 * 32], y[32 * 32];
    for (int it = 0; it < 200; it++) {
        int rows = 8 + (int)tg_rng_below(&rng, 25), cols = 8 + (int)tg_rng_below(&rng, 25);
        int k = (int)tg_rng_below(&rng, 20);
        for (int i = 0; i < 32 * 32; i++) {
            x[i] = (int64_t)tg_rng_below(&rng, 5) - 2;
            y[i] = tg_rng_below(&rng, 3) ? 0 : (int64_t)tg_rng_below(&rng, 5) - 2;
        }
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                int64_t sacc = 0;
                for (int l = 0; l < k; l++)
                    sacc += x[i * 32 + l] * y[l * 32 + j];
                m[i * cols + j] = sacc;
            }
        assert_int_equal(tg_matrix_rank(m, rows, cols, 0), rank_float(m, rows, cols));
    }
    free(m);
}

static void test_rank_bound_large(void **state)
{
    (void)state;
    /* S up to 32: the rank bound equals the slice ranks computed by tg_matrix_rank (itself
     * checked against brute force above), for sparse low-rank and dense tensors */
    tg_rng rng;
    tg_rng_seed(&rng, 8, 0);
    const int sizes[] = {25, 32, 17};
    for (int si = 0; si < 3; si++) {
        const int S = sizes[si];
        int32_t *t = malloc(sizeof(int32_t) * S * S * S);
        int64_t *sl = malloc(sizeof(int64_t) * S * S);
        int8_t a[3 * TG_MAX_S];
        for (int it = 0; it < 6; it++) {
            int mod2 = it % 2;
            memset(t, 0, sizeof(int32_t) * S * S * S);
            int terms = it < 4 ? 3 + it * 4 : 60;
            for (int r = 0; r < terms; r++) {
                for (int i = 0; i < 3 * S; i++)
                    a[i] = tg_rng_below(&rng, 3) ? 0 : (int8_t)((int)tg_rng_below(&rng, 5) - 2);
                tg_tensor_add_action(t, S, a, 1, mod2);
            }
            int best = 1 << 30;
            for (int mode = 0; mode < 3; mode++) {
                int sum = 0;
                for (int x = 0; x < S; x++) {
                    for (int i = 0; i < S; i++)
                        for (int j = 0; j < S; j++)
                            sl[i * S + j] = mode == 0   ? t[(x * S + i) * S + j]
                                            : mode == 1 ? t[(i * S + x) * S + j]
                                                        : t[(i * S + j) * S + x];
                    int r = tg_matrix_rank(sl, S, S, mod2);
                    assert_true(r >= 0);
                    sum += r;
                }
                best = sum < best ? sum : best;
            }
            assert_int_equal(tg_rank_bound(t, S, mod2), best);
        }
        free(t);
        free(sl);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fact_action),         cmocka_unit_test(test_strassen_game),       cmocka_unit_test(test_terminal_penalty),
        cmocka_unit_test(test_copy_and_features),   cmocka_unit_test(test_hash_transpositions),
        cmocka_unit_test(test_matrix_rank_brute),   cmocka_unit_test(test_matrix_rank_overflow),
        cmocka_unit_test(test_rank_bound_brute),    cmocka_unit_test(test_random_play_consistent),
        cmocka_unit_test(test_rank_bound_large),    cmocka_unit_test(test_matrix_rank_float),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
