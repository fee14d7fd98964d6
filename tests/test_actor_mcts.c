/* The search's math against hand-computed values, and the tree: virtual loss, transpositions,
 * subtree reuse, the memory bound. */
#include "tests/test_util.h"

#include <math.h>

#include "actor/bandit.h"
#include "actor/mcts.h"
#include "common/action.h"
#include "common/fact.h"
#include "common/game.h"
#include "common/rng.h"

static const tg_mcts_params P = {1.25, 19652, 100, 1.0, 0.3, 0.0};

static void test_c_and_puct(void **state)
{
    (void)state;
    /* c(s) = c1 + log((N + c2 + 1) / c2) */
    assert_true(fabs(tg_mcts_c(0, 1.25, 19652) - 1.250050884111447) < 1e-12);
    assert_true(fabs(tg_mcts_c(16, 1.25, 19652) - 1.2508646779613537) < 1e-12);
    assert_true(fabs(tg_mcts_c(1e6, 1.25, 19652) - (1.25 + log(1019653.0 / 19652.0))) < 1e-12);
    /* 0.5 + c(16) * 0.25 * sqrt(16) / (1 + 3) */
    assert_true(fabs(tg_mcts_puct(0.5, 0.25, 16, 3, 1.25, 19652) - 0.8127161694903384) < 1e-12);
    assert_true(fabs(tg_mcts_puct(0.0, 0.5, 0, 0, 1.25, 19652)) < 1e-15);
    /* min-max normalisation */
    assert_true(fabs(tg_mcts_normalize(-3, -5, -1) - 0.5) < 1e-15);
    assert_true(fabs(tg_mcts_normalize(-1, -5, -1) - 1.0) < 1e-15);
    assert_true(fabs(tg_mcts_normalize(-4, -4, -4) - 0.5) < 1e-15);
    assert_true(tg_mcts_normalize(-9, -5, -1) == 0.0);
}

static void test_temperature_and_policy(void **state)
{
    (void)state;
    assert_true(tg_mcts_tau(50, 100) == 1.0);
    assert_true(tg_mcts_tau(100, 100) == 1.0);
    assert_true(fabs(tg_mcts_tau(1000, 100) - 1.5) < 1e-12);
    assert_true(fabs(tg_mcts_tau(10000, 100) - 2.0) < 1e-12);

    /* 1000 visits, n_bar 100: tau = 1.5, pi ~ N^(2/3) */
    int32_t v[4] = {600, 300, 100, 0};
    float pi[4];
    double tau = tg_mcts_improved_policy(v, 4, 100, pi);
    assert_true(fabs(tau - 1.5) < 1e-12);
    assert_true(fabs(pi[0] - 0.5173803698663171) < 1e-6);
    assert_true(fabs(pi[1] - 0.32592920939848397) < 1e-6);
    assert_true(fabs(pi[2] - 0.15669042073519893) < 1e-6);
    assert_true(pi[3] == 0.0f);
    /* below n_bar: plain visit frequencies */
    int32_t w[2] = {3, 1};
    tau = tg_mcts_improved_policy(w, 2, 100, pi);
    assert_true(tau == 1.0);
    assert_true(fabs(pi[0] - 0.75) < 1e-7 && fabs(pi[1] - 0.25) < 1e-7);
    /* nothing visited: all zero */
    int32_t z[3] = {0, 0, 0};
    tg_mcts_improved_policy(z, 3, 100, pi);
    assert_true(pi[0] == 0 && pi[1] == 0 && pi[2] == 0);
}

static void test_acting_rule(void **state)
{
    (void)state;
    /* most visited is child 0 (Q -4); child 2 has lower Q and is dropped, child 3 unvisited */
    int32_t v[4] = {5, 3, 2, 0};
    float q[4] = {-4, -3, -5, 0};
    float pi[4] = {0.5f, 0.3f, 0.2f, 0.0f};
    tg_rng rng;
    tg_rng_seed(&rng, 7, 0);
    int count[4] = {0, 0, 0, 0};
    for (int i = 0; i < 20000; i++) {
        int c = tg_mcts_act(v, q, pi, 4, &rng);
        assert_true(c >= 0 && c < 4);
        count[c]++;
    }
    assert_int_equal(count[2], 0);
    assert_int_equal(count[3], 0);
    /* sampled from pi restricted to {0, 1}: 0.5 / 0.8 = 0.625 */
    assert_true(fabs(count[0] / 20000.0 - 0.625) < 0.02);
    /* ties in visits go to the higher Q */
    int32_t v2[2] = {4, 4};
    float q2[2] = {-6, -2}, pi2[2] = {0.5f, 0.5f};
    for (int i = 0; i < 100; i++)
        assert_int_equal(tg_mcts_act(v2, q2, pi2, 2, &rng), 1);
    int32_t v3[2] = {0, 0};
    assert_int_equal(tg_mcts_act(v3, q2, pi2, 2, &rng), -1);
}

/* T(1,1,3): S = 3, three rank-one terms a_k = e0 (x) e_k (x) e_k. Playing a_0 then a_1 or a_1
 * then a_0 reaches the same residual: a transposition. */
#define S3 3
static void term(int k, int8_t *a)
{
    memset(a, 0, 3 * S3);
    a[0] = 1;
    a[S3 + k] = 1;
    a[2 * S3 + k] = 1;
}

typedef struct fixture {
    int32_t T[S3 * S3 * S3];
    tg_game *root, *scratch;
    tg_path path;
    int8_t acts[4 * 3 * S3];
} fixture;

static void fixture_init(fixture *f)
{
    tg_matmul_tensor((tg_dims){1, 1, 3}, S3, f->T);
    f->root = tg_game_new(f->T, S3, 0, 6, 1);
    f->scratch = tg_game_new(f->T, S3, 0, 6, 1);
    assert_non_null(f->root);
    assert_non_null(f->scratch);
    assert_int_equal(tg_path_init(&f->path, 7), 0);
    for (int k = 0; k < 3; k++)
        term(k, f->acts + k * 3 * S3);
}

static void fixture_free(fixture *f)
{
    tg_game_free(f->root);
    tg_game_free(f->scratch);
    tg_path_free(&f->path);
}

/* Runs n simulations, expanding every leaf with the three terms and value -(non-zeros). */
static int simulate(tg_tree *t, fixture *f, int n)
{
    int leaves = 0;
    for (int i = 0; i < n; i++) {
        int r = tg_tree_select(t, &P, f->root, f->scratch, &f->path);
        if (r == TG_SEL_LEAF) {
            int nnz = 0;
            const int32_t *res = tg_game_residual(f->scratch);
            for (int j = 0; j < S3 * S3 * S3; j++)
                nnz += res[j] != 0;
            tg_tree_expand(t, &P, &f->path, f->acts, 3, (float)-nnz);
            leaves++;
        } else if (r == TG_SEL_FULL) {
            break;
        } else {
            assert_int_equal(r, TG_SEL_DONE);
        }
    }
    return leaves;
}

static void test_first_selections(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    tg_tree *t = tg_tree_new(S3, 4, 1000, 1);
    assert_non_null(t);
    /* root first: a leaf with an empty path */
    assert_int_equal(tg_tree_select(t, &P, f.root, f.scratch, &f.path), TG_SEL_LEAF);
    assert_int_equal(f.path.n, 0);
    /* the root is waiting for its evaluation: a second selection is busy */
    tg_path p2;
    assert_int_equal(tg_path_init(&p2, 7), 0);
    assert_int_equal(tg_tree_select(t, &P, f.root, f.scratch, &p2), TG_SEL_BUSY);
    /* duplicates merge into priors 2/4, 1/4, 1/4 */
    int8_t four[4 * 3 * S3];
    memcpy(four, f.acts, 3 * S3);
    memcpy(four + 3 * S3, f.acts, 3 * 3 * S3);
    tg_tree_expand(t, &P, &f.path, four, 4, -3.0f);
    assert_int_equal(tg_tree_node_children(t, tg_tree_root(t)), 3);
    assert_int_equal(tg_tree_root_visits(t), 1);
    /* N = 1, all unvisited: the largest prior (term 0) is chosen */
    assert_int_equal(tg_tree_select(t, &P, f.root, f.scratch, &f.path), TG_SEL_LEAF);
    assert_int_equal(f.path.n, 1);
    assert_true(f.path.rewards[0] == -1.0f);
    int32_t expect[S3 * S3 * S3];
    memcpy(expect, f.T, sizeof expect);
    tg_tensor_add_action(expect, S3, f.acts, -1, 0);
    assert_int_equal(tg_game_hash(f.scratch), tg_tensor_hash(expect, S3));
    /* virtual loss: with term 0 pending and L = 2, term 0 scores c*sqrt(3) * 0.5 / (1 + 2) and
     * term 1 c*sqrt(3) * 0.25 / 1, so the next selection takes term 1 */
    tg_mcts_params P2 = P;
    P2.virtual_loss = 2.0;
    assert_int_equal(tg_tree_select(t, &P2, f.root, f.scratch, &p2), TG_SEL_LEAF);
    assert_int_equal(p2.n, 1);
    assert_int_not_equal(p2.edges[0], f.path.edges[0]);
    /* complete both; returns back up: edge Q = -1 + value */
    tg_tree_expand(t, &P, &f.path, f.acts, 3, -2.0f);
    tg_tree_expand(t, &P, &p2, f.acts, 3, -2.0f);
    int32_t v[4];
    float q[4];
    int n = tg_tree_root_children(t, v, q, NULL);
    assert_int_equal(n, 3);
    assert_int_equal(v[0] + v[1] + v[2], 2);
    for (int i = 0; i < 3; i++)
        if (v[i])
            assert_true(fabs(q[i] - -3.0f) < 1e-6);
    assert_int_equal(tg_tree_root_visits(t), 3);
    tg_path_free(&p2);
    tg_tree_free(t);
    fixture_free(&f);
}

static void test_transpositions_and_reuse(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    tg_tree *t = tg_tree_new(S3, 4, 1000, 2), *spare = tg_tree_new(S3, 4, 1000, 3);
    assert_non_null(t);
    assert_non_null(spare);
    int leaves = simulate(t, &f, 300);
    assert_int_equal(leaves, tg_tree_nodes(t));
    /* some node has two parents: the residual after {a0, a1} in either order */
    assert_true(tg_tree_linked_edges(t) > tg_tree_nodes(t) - 1);
    int32_t r01[S3 * S3 * S3];
    memcpy(r01, f.T, sizeof r01);
    tg_tensor_add_action(r01, S3, f.acts, -1, 0);
    tg_tensor_add_action(r01, S3, f.acts + 3 * S3, -1, 0);
    int x = tg_tree_find(t, tg_tensor_hash(r01, S3));
    assert_true(x >= 0);

    /* play the most visited move; the subtree below it is kept with its statistics */
    int32_t v[4];
    float q[4];
    const int8_t *a[4];
    int n = tg_tree_root_children(t, v, q, a);
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    int8_t mv[3 * S3];
    memcpy(mv, a[best], sizeof mv);
    uint64_t old_root = tg_game_hash(f.root);
    tg_game_play(f.root, mv);
    int child = tg_tree_find(t, tg_game_hash(f.root));
    assert_true(child >= 0);
    int child_visits = tg_tree_node_visits(t, child);
    int before = tg_tree_nodes(t);
    int kept = tg_tree_advance(t, spare, tg_game_hash(f.root));
    assert_true(kept > 0 && kept < before);
    assert_int_equal(tg_tree_nodes(t), kept);
    assert_int_equal(tg_tree_root_visits(t), child_visits);
    assert_int_equal(tg_tree_find(t, old_root), -1); /* unreachable: dropped */
    /* the kept tree searches on */
    simulate(t, &f, 50);
    assert_int_equal(tg_tree_root_visits(t), child_visits + 50);
    /* a state never searched: an empty tree */
    tg_tree_advance(t, spare, 12345);
    assert_int_equal(tg_tree_nodes(t), 0);
    assert_int_equal(tg_tree_root(t), -1);
    tg_tree_free(t);
    tg_tree_free(spare);
    fixture_free(&f);
}

static void test_memory_bound(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f);
    const int max_nodes = 20;
    tg_tree *t = tg_tree_new(S3, 4, max_nodes, 4);
    assert_non_null(t);
    int full = 0;
    for (int i = 0; i < 2000; i++) {
        int r = tg_tree_select(t, &P, f.root, f.scratch, &f.path);
        if (r == TG_SEL_LEAF)
            tg_tree_expand(t, &P, &f.path, f.acts, 3, -1.0f);
        full += r == TG_SEL_FULL;
    }
    assert_true(full > 0);
    assert_true(tg_tree_nodes(t) <= max_nodes);
    assert_true(tg_tree_bytes(t) <= tg_tree_max_bytes(S3, 4, max_nodes));
    /* the bound is what it says: nodes, edges, actions and the table */
    assert_true(tg_tree_max_bytes(S3, 4, 1000) > 1000 * (4 * (3 * S3)));
    tg_tree_free(t);
    fixture_free(&f);
}

/* The basis choice: every arm once (in any order) before any twice, then the better arm played
 * far more often, the worse still sometimes; c = 0 is uniform. */
static void test_bandit(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 3, 4);
    tg_bandit *b = tg_bandit_new(8, 2.0, 1.0);
    assert_non_null(b);
    int seen[8] = {0};
    for (int i = 0; i < 8; i++) /* started, none ended: still each arm once */
        seen[tg_bandit_pick(b, &rng)]++;
    for (int i = 0; i < 8; i++)
        assert_int_equal(seen[i], 1);
    for (int i = 0; i < 8; i++)
        tg_bandit_update(b, i, i == 5 ? -8.0 : -11.0);
    for (int it = 0; it < 400; it++) { /* arm 5 returns -8, the others -11 */
        int a = tg_bandit_pick(b, &rng);
        tg_bandit_update(b, a, a == 5 ? -8.0 : -11.0);
    }
    assert_true(tg_bandit_started(b, 5) > 250);
    for (int i = 0; i < 8; i++)
        if (i != 5) {
            assert_true(tg_bandit_started(b, i) >= 2);
            assert_true(fabs(tg_bandit_mean(b, i) + 11.0) < 1e-9);
        }
    tg_bandit_free(b);
    /* pulls in flight without rewards (more games than arms): all arms stay reachable */
    b = tg_bandit_new(4, 2.0, 1.0);
    int counts[4] = {0};
    for (int i = 0; i < 64; i++)
        counts[tg_bandit_pick(b, &rng)]++;
    for (int i = 0; i < 4; i++)
        assert_int_equal(counts[i], 16);
    tg_bandit_free(b);
    b = tg_bandit_new(4, 0.0, 1.0); /* uniform */
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 4000; i++) {
        int a = tg_bandit_pick(b, &rng);
        counts[a]++;
        tg_bandit_update(b, a, a == 0 ? 0.0 : -10.0);
    }
    for (int i = 0; i < 4; i++)
        assert_true(counts[i] > 850 && counts[i] < 1150);
    tg_bandit_free(b);
    assert_null(tg_bandit_new(0, 1.0, 1.0));
    assert_null(tg_bandit_new(4, 1.0, 0.0));
    assert_null(tg_bandit_new(4, 1.0, 1.5));

    /* arms out of play (a basis being retired) are never picked, by UCB or uniformly; a reset arm
     * is new again and tried first */
    for (int c = 0; c <= 1; c++) {
        b = tg_bandit_new(6, c ? 2.0 : 0.0, 1.0);
        for (int i = 0; i < 6; i++)
            tg_bandit_update(b, tg_bandit_pick(b, &rng), -9.0);
        tg_bandit_update(b, 2, 100.0); /* the best arm by far */
        tg_bandit_set_enabled(b, 2, 0);
        tg_bandit_set_enabled(b, 4, 0);
        tg_bandit_set_enabled(b, 4, 0); /* twice: still one arm off */
        for (int i = 0; i < 600; i++) {
            int a = tg_bandit_pick(b, &rng);
            assert_true(a != 2 && a != 4);
            tg_bandit_update(b, a, -9.0);
        }
        tg_bandit_reset_arm(b, 2);
        assert_true(tg_bandit_started(b, 2) == 0.0);
        assert_true(tg_bandit_mean(b, 2) == 0.0);
        tg_bandit_set_enabled(b, 2, 1);
        if (c) /* UCB: the new arm first */
            assert_int_equal(tg_bandit_pick(b, &rng), 2);
        for (int i = 0; i < 6; i++)
            tg_bandit_set_enabled(b, i, 0);
        int a = tg_bandit_pick(b, &rng); /* every arm off: any may be picked */
        assert_true(a >= 0 && a < 6);
        tg_bandit_free(b);
    }
}

/* Rewards that change over time (the network learns): 8 arms judged early at -20, while arm 6
 * was the best (-9); then every arm but 6 turns to -8 and arm 6 to -12. Remembering
 * everything, the early judgements stand and arm 6 keeps most games; with forgetting (0.99 per
 * pick) the others are tried again, found better, and take over. */
static int bandit_late_share(double discount)
{
    tg_rng rng;
    tg_rng_seed(&rng, 5, 4);
    tg_bandit *b = tg_bandit_new(8, 2.0, discount);
    assert_non_null(b);
    for (int it = 0; it < 300; it++) {
        int a = tg_bandit_pick(b, &rng);
        tg_bandit_update(b, a, a == 6 ? -9.0 : -20.0);
    }
    int six = 0;
    for (int it = 0; it < 1000; it++) {
        int a = tg_bandit_pick(b, &rng);
        tg_bandit_update(b, a, a == 6 ? -12.0 : -8.0);
        six += it >= 500 && a == 6;
    }
    tg_bandit_free(b);
    return six; /* of the last 500 picks */
}

static void test_bandit_discount(void **state)
{
    (void)state;
    int keep = bandit_late_share(1.0), forget = bandit_late_share(0.99);
    print_message("arm 6's share of the last 500 picks: %d remembering, %d forgetting\n", keep, forget);
    assert_true(keep > 350);
    assert_true(forget < 100);
}

/* Exploring moves sample from pi over every child, the acting rule's Q filter aside. */
static void test_explore_sample(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 5, 6);
    const float pi[4] = {0.5f, 0.0f, 0.25f, 0.25f};
    int counts[4] = {0};
    for (int i = 0; i < 8000; i++)
        counts[tg_mcts_sample(pi, 4, &rng)]++;
    assert_int_equal(counts[1], 0);
    assert_true(counts[0] > 3700 && counts[0] < 4300);
    assert_true(counts[2] > 1750 && counts[2] < 2250 && counts[3] > 1750 && counts[3] < 2250);
    const float zero[2] = {0, 0};
    assert_int_equal(tg_mcts_sample(zero, 2, &rng), -1);
    /* where the acting rule would only take child 0 (highest Q and visits), sampling takes 2 too */
    const int32_t visits[3] = {10, 0, 5};
    const float q[3] = {-7.0f, 0.0f, -9.0f}, p2[3] = {2.0f / 3, 0.0f, 1.0f / 3};
    int took2 = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(tg_mcts_act(visits, q, p2, 3, &rng), 0);
        took2 += tg_mcts_sample(p2, 3, &rng) == 2;
    }
    assert_true(took2 > 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_c_and_puct),
        cmocka_unit_test(test_temperature_and_policy),
        cmocka_unit_test(test_acting_rule),
        cmocka_unit_test(test_first_selections),
        cmocka_unit_test(test_transpositions_and_reuse),
        cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_bandit),
        cmocka_unit_test(test_bandit_discount),
        cmocka_unit_test(test_explore_sample),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
