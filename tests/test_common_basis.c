/* Change of basis and signed permutations: bounds, inverses and round trips of factorizations. */
#include "tests/test_util.h"

#include "common/action.h"
#include "common/basis.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/game.h"
#include "common/perm.h"
#include "common/rng.h"

/* sum_r u_r (x) v_r (x) w_r of a factorization (numerators), padded to S, in 64 bits. */
static void fact_sum(const tg_fact *f, int S, int64_t *out)
{
    int mo[3];
    tg_dims_modes(tg_fact_dims(f), mo);
    memset(out, 0, sizeof(int64_t) * (size_t)S * S * S);
    for (int r = 0; r < tg_fact_rank(f); r++) {
        const int64_t *u = tg_fact_cu(f) + (size_t)r * mo[0], *v = tg_fact_cv(f) + (size_t)r * mo[1],
                      *w = tg_fact_cw(f) + (size_t)r * mo[2];
        for (int a = 0; a < mo[0]; a++)
            for (int b = 0; b < mo[1]; b++)
                for (int c = 0; c < mo[2]; c++)
                    out[((size_t)a * S + b) * S + c] += u[a] * v[b] * w[c];
    }
}

/* u' = M u for every factor row (the factorization of (A,B,C).T). */
static tg_fact *map_forward(const tg_basis *b, const tg_fact *f)
{
    tg_fact *g = tg_fact_clone(f);
    int mo[3];
    tg_dims_modes(tg_fact_dims(f), mo);
    const int64_t *src[3] = {tg_fact_cu(f), tg_fact_cv(f), tg_fact_cw(f)};
    int64_t *dst[3] = {tg_fact_u(g), tg_fact_v(g), tg_fact_w(g)};
    for (int k = 0; k < 3; k++) {
        const int32_t *M = tg_basis_matrix(b, k, 0);
        int n = mo[k];
        for (int r = 0; r < tg_fact_rank(f); r++)
            for (int i = 0; i < n; i++) {
                int64_t s = 0;
                for (int j = 0; j < n; j++)
                    s += M[i * n + j] * src[k][(size_t)r * n + j];
                dst[k][(size_t)r * n + i] = s;
            }
    }
    return g;
}

static void check_bounds_and_inverse(const tg_basis *b, int max_entry)
{
    int mo[3];
    tg_dims_modes(tg_basis_dims(b), mo);
    for (int k = 0; k < 3; k++) {
        int n = mo[k];
        const int32_t *M = tg_basis_matrix(b, k, 0), *Mi = tg_basis_matrix(b, k, 1);
        for (int i = 0; i < n * n; i++) {
            assert_true(abs(M[i]) <= max_entry);
            assert_true(abs(Mi[i]) <= max_entry);
        }
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                long s = 0, s2 = 0;
                for (int l = 0; l < n; l++) {
                    s += (long)M[i * n + l] * Mi[l * n + j];
                    s2 += (long)Mi[i * n + l] * M[l * n + j];
                }
                assert_int_equal(s, i == j);
                assert_int_equal(s2, i == j);
            }
    }
}

static void test_basis_sample(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 10, 0);
    const tg_dims ds[] = {{2, 2, 2}, {2, 3, 4}, {3, 3, 3}, {4, 4, 4}, {2, 2, 3}, {5, 5, 5}, {1, 1, 1}};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++)
        for (int max_entry = 1; max_entry <= 3; max_entry++) {
            int nonid = 0, nonperm = 0;
            for (int it = 0; it < 20; it++) {
                tg_basis *b = tg_basis_sample(ds[i], max_entry, &rng);
                assert_non_null(b);
                check_bounds_and_inverse(b, max_entry);
                nonid += !tg_basis_is_identity(b);
                const int32_t *M = tg_basis_matrix(b, 0, 0);
                int mo[3];
                tg_dims_modes(ds[i], mo);
                int nz = 0;
                for (int e = 0; e < mo[0] * mo[0]; e++)
                    nz += M[e] != 0;
                nonperm += nz > mo[0];
                /* equal mode sizes share one matrix */
                if (mo[0] == mo[1])
                    assert_ptr_equal(tg_basis_matrix(b, 0, 0), tg_basis_matrix(b, 1, 0));
                if (mo[1] == mo[2])
                    assert_ptr_equal(tg_basis_matrix(b, 1, 1), tg_basis_matrix(b, 2, 1));
                tg_basis_free(b);
            }
            if (ds[i].n * ds[i].m > 1) {
                assert_true(nonid >= 18);
                assert_true(nonperm >= 10); /* genuinely mixes coordinates */
            }
        }
    assert_null(tg_basis_sample((tg_dims){2, 2, 2}, 0, &rng));
    assert_null(tg_basis_sample((tg_dims){2, 2, 13}, 1, &rng));
}

static void test_basis_roundtrip(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 11, 0);
    const int S = 4;
    int32_t T[S * S * S], T2[S * S * S];
    int64_t sum[S * S * S];
    tg_fact *f = tg_fact_strassen();
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    for (int it = 0; it < 50; it++) {
        tg_basis *b = tg_basis_sample((tg_dims){2, 2, 2}, 1 + it % 3, &rng);
        tg_basis_apply(b, T, S, T2);
        /* the mapped Strassen factors T' = (A,B,C).T */
        tg_fact *g = map_forward(b, f);
        fact_sum(g, S, sum);
        for (int i = 0; i < S * S * S; i++)
            assert_int_equal(sum[i], T2[i]);
        /* and map back to a factorization of T: exactly Strassen again */
        tg_fact *h = tg_basis_map_back(b, g);
        assert_non_null(h);
        assert_int_equal(tg_fact_verify(h, 0, NULL), 1);
        assert_memory_equal(tg_fact_cu(h), tg_fact_cu(f), sizeof(int64_t) * 28);
        assert_memory_equal(tg_fact_cv(h), tg_fact_cv(f), sizeof(int64_t) * 28);
        assert_memory_equal(tg_fact_cw(h), tg_fact_cw(f), sizeof(int64_t) * 28);
        /* mod 2: the reduced factors in the new basis map back to a mod-2 factorization */
        tg_fact *g2 = tg_fact_new((tg_dims){2, 2, 2}, 7, 1, TG_ARITH_MOD2);
        for (int e = 0; e < 28; e++) {
            tg_fact_u(g2)[e] = tg_fact_cu(g)[e] & 1;
            tg_fact_v(g2)[e] = tg_fact_cv(g)[e] & 1;
            tg_fact_w(g2)[e] = tg_fact_cw(g)[e] & 1;
        }
        tg_fact *h2 = tg_basis_map_back(b, g2);
        assert_int_equal(tg_fact_verify(h2, 1, NULL), 1);
        for (int e = 0; e < 28; e++)
            assert_true(tg_fact_cu(h2)[e] == 0 || tg_fact_cu(h2)[e] == 1);
        tg_fact_free(h2);
        tg_fact_free(g2);
        tg_fact_free(h);
        tg_fact_free(g);
        tg_basis_free(b);
    }
    tg_fact_free(f);

    /* a rectangular target padded to a larger S: the naive algorithm of T(2,3,4) */
    const int S2 = 12;
    tg_dims d = {2, 3, 4};
    int32_t *t = malloc(sizeof(int32_t) * S2 * S2 * S2), *t2 = malloc(sizeof(int32_t) * S2 * S2 * S2);
    int64_t *s2 = malloc(sizeof(int64_t) * S2 * S2 * S2);
    tg_matmul_tensor(d, S2, t);
    tg_fact *n = tg_fact_naive(d);
    for (int it = 0; it < 10; it++) {
        tg_basis *b = tg_basis_sample(d, 2, &rng);
        tg_basis_apply(b, t, S2, t2);
        tg_fact *g = map_forward(b, n);
        fact_sum(g, S2, s2);
        for (int i = 0; i < S2 * S2 * S2; i++)
            assert_int_equal(s2[i], t2[i]); /* includes padding staying zero */
        tg_fact *h = tg_basis_map_back(b, g);
        assert_int_equal(tg_fact_verify(h, 0, NULL), 1);
        tg_fact_free(h);
        tg_fact_free(g);
        tg_basis_free(b);
    }
    /* wrong dims */
    tg_basis *b = tg_basis_identity((tg_dims){2, 2, 2});
    assert_null(tg_basis_map_back(b, n));
    assert_non_null(strstr(tg_errmsg(), "T(2,3,4)"));
    tg_basis_free(b);
    tg_fact_free(n);
    free(t);
    free(t2);
    free(s2);
}

static void test_basis_game_pipeline(void **state)
{
    (void)state;
    /* the actor's path: a game on (A,B,C).T padded to S, played with the mapped Strassen terms
     * (canonicalised), solved, turned into a factorization, mapped back and verified */
    tg_rng rng;
    tg_rng_seed(&rng, 15, 0);
    const int S = 5;
    int32_t T[S * S * S], T2[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    tg_fact *f = tg_fact_strassen();
    int played = 0;
    for (int it = 0; it < 40; it++) {
        tg_basis *b = tg_basis_sample((tg_dims){2, 2, 2}, 1 + it % 2, &rng);
        tg_basis_apply(b, T, S, T2);
        tg_fact *g = map_forward(b, f);
        if (tg_fact_max_abs(g) > 127) { /* not representable as int8 actions */
            tg_fact_free(g);
            tg_basis_free(b);
            continue;
        }
        tg_game *game = tg_game_new(T2, S, 0, 7, 1);
        for (int r = 0; r < 7; r++) {
            int8_t a[3 * S];
            memset(a, 0, sizeof a);
            for (int i = 0; i < 4; i++) {
                a[i] = (int8_t)tg_fact_cu(g)[r * 4 + i];
                a[S + i] = (int8_t)tg_fact_cv(g)[r * 4 + i];
                a[2 * S + i] = (int8_t)tg_fact_cw(g)[r * 4 + i];
            }
            tg_action_canonicalize(a, S, 0);
            assert_false(tg_game_done(game));
            assert_true(tg_game_play(game, a) == -1.0);
        }
        assert_true(tg_game_solved(game));
        tg_fact *found = tg_game_to_fact(game, (tg_dims){2, 2, 2});
        assert_non_null(found);
        tg_fact *canon = tg_basis_map_back(b, found);
        assert_int_equal(tg_fact_verify(canon, 0, NULL), 1);
        played++;
        tg_fact_free(canon);
        tg_fact_free(found);
        tg_game_free(game);
        tg_fact_free(g);
        tg_basis_free(b);
    }
    assert_true(played >= 30);
    tg_fact_free(f);
}

static void test_basis_pool(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 12, 0);
    tg_basis_pool *p = tg_basis_pool_new((tg_dims){3, 3, 3}, 16, 2, &rng);
    assert_non_null(p);
    assert_int_equal(tg_basis_pool_size(p), 16);
    assert_true(tg_basis_is_identity(tg_basis_pool_get(p, 0)));
    for (int i = 1; i < 16; i++)
        check_bounds_and_inverse(tg_basis_pool_get(p, i), 2);
    const int S = 9;
    int32_t T[S * S * S], T2[S * S * S];
    tg_matmul_tensor((tg_dims){3, 3, 3}, S, T);
    tg_basis_apply(tg_basis_pool_get(p, 0), T, S, T2);
    assert_memory_equal(T, T2, sizeof T);
    tg_basis_pool_free(p);
    assert_null(tg_basis_pool_new((tg_dims){3, 3, 3}, 0, 2, &rng));
}

/* ---- signed permutations ---- */

static void test_sperm_roundtrip(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 13, 0);
    tg_coeffs F;
    tg_coeffs_parse("-2..2", &F);
    const int S = 6;
    const int sizes[3] = {4, 6, 5};
    int32_t t[S * S * S], t1[S * S * S], t2[S * S * S], ts[S * S * S];
    float tf[S * S * S], tf1[S * S * S];
    for (int it = 0; it < 200; it++) {
        tg_sperm p, q;
        int signs = it % 2;
        tg_sperm_sample(&p, S, sizes, signs, &rng);
        tg_sperm_invert(&p, &q);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < S; i++) {
                if (!signs)
                    assert_int_equal(p.sign[k][i], 1);
                if (i >= sizes[k]) { /* padding never moves */
                    assert_int_equal(p.perm[k][i], i);
                    assert_int_equal(p.sign[k][i], 1);
                }
            }
        /* a random factorization of a random tensor maps to a factorization of p.t */
        int8_t acts[6][3 * S], pa[3 * S], back[3 * S];
        memset(t, 0, sizeof t);
        memset(ts, 0, sizeof ts);
        for (int r = 0; r < 6; r++) {
            memset(acts[r], 0, sizeof acts[r]);
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < sizes[k]; i++)
                    acts[r][k * S + i] = F.v[tg_rng_below(&rng, (uint32_t)F.n)];
            tg_tensor_add_action(t, S, acts[r], 1, 0);
            tg_sperm_apply_action(&p, acts[r], pa);
            for (int i = 0; i < 3 * S; i++)
                assert_true(F.index_of[pa[i] + 128] >= 0);
            tg_tensor_add_action(ts, S, pa, 1, 0);
            tg_sperm_apply_action(&q, pa, back);
            assert_memory_equal(back, acts[r], sizeof back);
        }
        tg_sperm_apply_tensor(&p, t, t1);
        assert_memory_equal(t1, ts, sizeof t1);
        tg_sperm_apply_tensor(&q, t1, t2);
        assert_memory_equal(t2, t, sizeof t);
        /* the float version agrees */
        for (int i = 0; i < S * S * S; i++)
            tf[i] = (float)t[i];
        tg_sperm_apply_tensor_f(&p, tf, tf1);
        for (int i = 0; i < S * S * S; i++)
            assert_true(tf1[i] == (float)t1[i]);
    }
    /* the identity changes nothing */
    tg_sperm id;
    tg_sperm_identity(&id, S, sizes);
    tg_sperm_apply_tensor(&id, t, t1);
    assert_memory_equal(t, t1, sizeof t);
}

static void test_sperm_strassen(void **state)
{
    (void)state;
    /* permuted Strassen factors are a factorization of the permuted T(2,2,2), and the inverse
     * brings T back */
    tg_rng rng;
    tg_rng_seed(&rng, 14, 0);
    const int S = 4, sizes[3] = {4, 4, 4};
    int32_t T[S * S * S], Tp[S * S * S], R[S * S * S], back[S * S * S];
    tg_matmul_tensor((tg_dims){2, 2, 2}, S, T);
    tg_fact *f = tg_fact_strassen();
    for (int it = 0; it < 50; it++) {
        tg_sperm p, q;
        tg_sperm_sample(&p, S, sizes, 1, &rng);
        tg_sperm_invert(&p, &q);
        tg_sperm_apply_tensor(&p, T, Tp);
        memcpy(R, Tp, sizeof R);
        for (int r = 0; r < 7; r++) {
            int8_t a[3 * S], pa[3 * S];
            for (int i = 0; i < S; i++) {
                a[i] = (int8_t)tg_fact_cu(f)[r * 4 + i];
                a[S + i] = (int8_t)tg_fact_cv(f)[r * 4 + i];
                a[2 * S + i] = (int8_t)tg_fact_cw(f)[r * 4 + i];
            }
            tg_sperm_apply_action(&p, a, pa);
            tg_action_canonicalize(pa, S, 0);
            tg_tensor_add_action(R, S, pa, -1, 0);
        }
        for (int i = 0; i < S * S * S; i++)
            assert_int_equal(R[i], 0);
        tg_sperm_apply_tensor(&q, Tp, back);
        assert_memory_equal(back, T, sizeof T);
    }
    tg_fact_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basis_sample),    cmocka_unit_test(test_basis_roundtrip),
        cmocka_unit_test(test_basis_pool),      cmocka_unit_test(test_basis_game_pipeline),      cmocka_unit_test(test_sperm_roundtrip),
        cmocka_unit_test(test_sperm_strassen),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
