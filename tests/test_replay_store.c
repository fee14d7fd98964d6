/* Replay internals without sockets: FIFO tables, the HDF5 checkpoint (round trip, chunked and
 * compressed datasets), the journal (torn tail vs corruption), and batch contents (features and
 * policy targets agree under random signed permutations; the policy target follows the stored
 * improved policy; table fractions). */
#include "tests/test_util.h"

#include <fcntl.h>
#include <hdf5.h>
#include <math.h>

#include "replay/demos.h"
#include "replay/ingest.h"
#include "replay/journal.h"
#include "replay/sampler.h"
#include "replay/store.h"
#include "tests/replay_helpers.h"
#include "tools/cmds.h"

static replay_game *played_game(const tg_config *c, tg_rng *rng, int moves, int K)
{
    uint8_t *b;
    size_t n = rt_game(c, 0, moves, K, rng, &b);
    Tg__Envelope *e = tg_wire_decode(b, n, 1 << 20);
    free(b);
    replay_game *g = replay_ingest_game(c, e->game);
    tg_wire_free(e);
    assert_non_null(g);
    return g;
}

/* The fixed-size actor field keeps "/polish" (actor.polish_share's games, told apart by tg games)
 * when a long actor name is cut; other names are cut at the end. */
static void test_ingest_actor_names(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 1, 1);
    uint8_t *b;
    size_t n = rt_game(&c, 1, 0, 0, &rng, &b);
    Tg__Envelope *e = tg_wire_decode(b, n, 1 << 20);
    free(b);
    assert_non_null(e);
    char *own = e->game->actor;
    const char *names[] = {"gpu-node-17.cluster.example.org:123456/polish", "vm-3/polish",
                           "gpu-node-17.cluster.example.org:123456"};
    const char *want[] = {"gpu-node-17.cluster.exam/polish", "vm-3/polish", "gpu-node-17.cluster.example.org"};
    for (int i = 0; i < 3; i++) {
        e->game->actor = (char *)names[i];
        replay_game *g = replay_ingest_game(&c, e->game);
        assert_non_null(g);
        assert_string_equal(g->actor, want[i]);
        assert_int_equal(g->rank, 8);
        replay_game_unref(g);
    }
    e->game->actor = own;
    tg_wire_free(e);
}

static void test_table_fifo(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 1, 1);
    replay_table *t = replay_table_new(REPLAY_PLAYED, 10);
    for (int i = 0; i < 5; i++) {
        replay_game *g = played_game(&c, &rng, 3, 0);
        g->id = (uint64_t)i + 1;
        replay_table_append(t, g);
    }
    replay_table_counts k;
    replay_table_counts_get(t, &k);
    assert_int_equal(k.games, 3); /* 15 positions > 10: the two oldest went */
    assert_int_equal(k.positions, 9);
    assert_int_equal(k.evicted_games, 2);
    assert_int_equal(k.inserted_positions, 15);
    replay_table_rdlock(t);
    for (int u = 0; u < 9; u++) {
        int mv;
        const replay_game *g = replay_table_locate(t, u, &mv);
        assert_int_equal(g->id, 3 + (uint64_t)(u / 3));
        assert_int_equal(mv, u % 3);
    }
    replay_table_unlock(t);
    replay_game **snap;
    int64_t n;
    assert_int_equal(replay_table_snapshot(t, &snap, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(snap[0]->id, 3);
    for (int i = 0; i < n; i++)
        replay_game_unref(snap[i]);
    free(snap);
    replay_table_free(t);
}

static int odd_id(const replay_game *g, void *ctx)
{
    (void)ctx;
    return g->id % 2 == 1;
}

/* Games removed from the middle of a wrapped ring: the rest keep their order, positions stay
 * contiguous for sampling, counts say evicted; appending goes on after. */
static void test_table_remove_if(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 2, 2);
    replay_table *t = replay_table_new(REPLAY_BEST, 2000);
    for (int i = 0; i < 1700; i++) { /* 2 positions each: the 700 oldest evicted, the ring of
                                      * 1024 slots wraps (head 700, 1000 games) */
        replay_game *g = played_game(&c, &rng, 2, 0);
        g->id = (uint64_t)i + 1;
        replay_table_append(t, g);
    }
    assert_int_equal(replay_table_remove_if(t, odd_id, NULL), 500);
    replay_table_counts k;
    replay_table_counts_get(t, &k);
    assert_int_equal(k.games, 500);
    assert_int_equal(k.positions, 1000);
    assert_int_equal(k.evicted_games, 700 + 500);
    replay_table_rdlock(t);
    for (int u = 0; u < 1000; u++) {
        int mv;
        const replay_game *g = replay_table_locate(t, u, &mv);
        assert_int_equal(g->id, 702 + 2 * (uint64_t)(u / 2)); /* 702, 704, ... oldest first */
        assert_int_equal(mv, u % 2);
    }
    replay_table_unlock(t);
    replay_game *g = played_game(&c, &rng, 3, 0);
    g->id = 5000;
    replay_table_append(t, g);
    replay_table_rdlock(t);
    int mv;
    assert_int_equal(replay_table_locate(t, 1002, &mv)->id, 5000);
    assert_int_equal(mv, 2);
    replay_table_unlock(t);
    assert_int_equal(replay_table_remove_if(t, odd_id, NULL), 0);
    replay_table_free(t);
}

/* ng[i] games in table i (ids 100 i + j, oldest first): demonstrations, and played games of 2..6
 * moves with policies of 4 actions a move */
static void fill_tables(replay_store_tables *t, const tg_config *c, tg_rng *rng,
                        const int ng[REPLAY_NTABLES])
{
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        t->n[i] = ng[i];
        t->games[i] = calloc((size_t)ng[i], sizeof(replay_game *));
        assert_non_null(t->games[i]);
        for (int j = 0; j < ng[i]; j++) {
            replay_game *g = i == REPLAY_DEMOS ? replay_demo_make(c, 0, rng)
                                               : played_game(c, rng, 2 + j % 5, 4);
            g->id = (uint64_t)(100 * i + j);
            g->model_version = (uint64_t)j;
            t->games[i][j] = g;
        }
    }
}

static void test_store_roundtrip(void **st)
{
    (void)st;
    char dir[64], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/replay.h5", dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 2, 2);
    replay_store_tables t = {0};
    int S = c.game.S, A = 3 * S;
    static const int ng[REPLAY_NTABLES] = {7, 7, 7};
    fill_tables(&t, &c, &rng, ng);
    replay_store_meta m = {.S = S, .next_game_id = 1000, .journal_seq = 7, .written = 1.5};
    assert_int_equal(replay_store_write(path, &m, &t), 0);
    replay_store_meta m2;
    replay_store_tables t2;
    assert_int_equal(replay_store_read(path, &m2, &t2), 0);
    assert_int_equal(m2.S, S);
    assert_int_equal(m2.next_game_id, 1000);
    assert_int_equal(m2.journal_seq, 7);
    assert_int_equal(m2.has_limiter, 0); /* written without the limiter's counters */
    for (int i = 0; i < REPLAY_NTABLES; i++) {
        assert_int_equal(t2.n[i], 7);
        for (int j = 0; j < 7; j++) {
            replay_game *a = t.games[i][j], *b = t2.games[i][j];
            assert_int_equal(a->id, b->id);
            assert_int_equal(a->n_moves, b->n_moves);
            assert_int_equal(a->n_pol, b->n_pol);
            assert_int_equal(a->solved, b->solved);
            assert_int_equal(a->model_version, b->model_version);
            assert_string_equal(a->actor, b->actor);
            assert_memory_equal(a->actions, b->actions, (size_t)a->n_moves * A);
            assert_memory_equal(a->returns, b->returns, (size_t)a->n_moves * 4);
            assert_memory_equal(a->pol_off, b->pol_off, (size_t)(a->n_moves + 1) * 4);
            assert_memory_equal(a->pol_actions, b->pol_actions, (size_t)a->n_pol * A);
            assert_memory_equal(a->pol_probs, b->pol_probs, (size_t)a->n_pol * 4);
            assert_int_equal(a->initial != NULL, b->initial != NULL);
            if (a->initial)
                assert_memory_equal(a->initial, b->initial, (size_t)S * S * S * 4);
            assert_int_equal(replay_game_check(&c, b), 0);
        }
    }
    replay_store_tables_free(&t2);
    /* with them: read back as written */
    m.has_limiter = 1;
    m.limiter_inserts = 123456789012LL;
    m.limiter_samples = 987654321LL;
    assert_int_equal(replay_store_write(path, &m, &t), 0);
    assert_int_equal(replay_store_read(path, &m2, &t2), 0);
    assert_int_equal(m2.has_limiter, 1);
    assert_true(m2.limiter_inserts == 123456789012LL && m2.limiter_samples == 987654321LL);
    replay_store_tables_free(&t);
    replay_store_tables_free(&t2);
    /* datasets are chunked, extendible and filtered with shuffle + deflate */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t d = H5Dopen2(f, "played/actions", H5P_DEFAULT);
    hid_t p = H5Dget_create_plist(d);
    assert_int_equal(H5Pget_layout(p), H5D_CHUNKED);
    assert_int_equal(H5Pget_nfilters(p), 3); /* shuffle, deflate, fletcher32 */
    hid_t sp = H5Dget_space(d);
    hsize_t dims[2], maxd[2];
    H5Sget_simple_extent_dims(sp, dims, maxd);
    assert_true(maxd[0] == H5S_UNLIMITED);
    H5Sclose(sp);
    H5Pclose(p);
    H5Dclose(d);
    H5Fclose(f);
}

static int count_cb(void *ud, uint64_t id, const uint8_t *data, size_t len)
{
    int *n = ud;
    assert_int_equal(id, (uint64_t)*n + 1);
    assert_int_equal(len, 5 + (size_t)*n);
    assert_int_equal(data[0], 'r');
    (*n)++;
    return 0;
}

static void test_journal(void **st)
{
    (void)st;
    char dir[64], path[128];
    tg_test_tmpdir(dir, sizeof dir);
    replay_journal *j = replay_journal_create(dir, 3);
    assert_non_null(j);
    char rec[16] = "rrrrrrrrrrrrrrr";
    for (int i = 0; i < 3; i++)
        assert_int_equal(replay_journal_append(j, (uint64_t)i + 1, rec, 5 + (size_t)i), 0);
    assert_int_equal(replay_journal_sync(j), 0);
    replay_journal_close(j);
    assert_null(replay_journal_create(dir, 3)); /* never reused */
    snprintf(path, sizeof path, "%s/replay.wal.00000003", dir);
    /* a torn tail: a header promising more than there is */
    FILE *f = fopen(path, "ab");
    const uint8_t torn[] = {0x54, 0x47, 0x52, 0x4a, 100, 0, 0, 0, 9, 0, 0, 0};
    fwrite(torn, 1, sizeof torn, f);
    fclose(f);
    int n = 0;
    assert_int_equal(replay_journal_read(dir, 3, 0, count_cb, &n), 3);
    assert_int_equal(n, 3);
    /* a flipped byte inside the second record: corruption before the tail */
    f = fopen(path, "r+b");
    fseek(f, 8 + 24 + 5 + 24 + 2, SEEK_SET);
    fputc('X', f);
    fclose(f);
    n = 0;
    assert_int_equal(replay_journal_read(dir, 3, 0, count_cb, &n), -1);
    assert_non_null(strstr(tg_errmsg(), "CRC"));
    n = 0;
    assert_int_equal(replay_journal_read(dir, 3, 1, count_cb, &n), 1); /* keeps the readable part */
    uint64_t *seqs;
    int ns;
    assert_int_equal(replay_journal_list(dir, &seqs, &ns), 0);
    assert_int_equal(ns, 1);
    assert_int_equal(seqs[0], 3);
    free(seqs);
    replay_journal_remove_below(dir, 4);
    assert_int_equal(replay_journal_list(dir, &seqs, &ns), 0);
    assert_int_equal(ns, 0);
    free(seqs);
}

static void rank_one(float *out, int S, const int8_t *a)
{
    for (int i = 0; i < S; i++)
        for (int j = 0; j < S; j++)
            for (int k = 0; k < S; k++)
                out[((size_t)i * S + j) * S + k] = (float)a[i] * (float)a[S + j] * (float)a[2 * S + k];
}

static Tg__Envelope *build(replay_sampler *s, int B, tg_rng *rng)
{
    replay_batch *b = replay_sampler_build(s, B, rng);
    assert_non_null(b);
    Tg__Envelope *e = tg_wire_decode(b->data, b->len, (size_t)1 << 31);
    replay_batch_free(b);
    assert_non_null(e);
    assert_int_equal(e->body_case, TG__ENVELOPE__BODY_BATCH);
    return e;
}

/* The residual before the last move of a game that ends at zero is the last action: so under any
 * signed permutation the first tensor plane equals the rank-one tensor of the (decoded) target. */
static void test_features_match_targets(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.demos_rank_min=2", "replay.demos_rank_max=2", "game.signed_perms=true",
              "replay.frac_demos=1", "replay.frac_played=0", "replay.frac_best=0", NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 3, 3);
    replay_table *t[3] = {replay_table_new(0, 0), replay_table_new(1, 100), replay_table_new(2, 100)};
    for (int i = 0; i < 50; i++)
        replay_table_append(t[0], replay_demo_make(&c, 0, &rng));
    replay_sampler *s = replay_sampler_new(&c, t);
    int S = c.game.S, T = c.game.history + 1, B = 400, checked = 0;
    size_t S3 = (size_t)S * S * S;
    Tg__Envelope *e = build(s, B, &rng);
    float *want = malloc(S3 * 4), *x = malloc((size_t)T * S3 * 4);
    for (int i = 0; i < B; i++) {
        float sc;
        memcpy(&sc, e->batch->scalars->data.data + (size_t)i * c.game.n_scalars * 4, 4);
        memcpy(x, e->batch->tensors->data.data + (size_t)i * T * S3 * 4, (size_t)T * S3 * 4);
        int32_t tok[3 * TG_MAX_S];
        memcpy(tok, e->batch->tokens->data.data + (size_t)i * c.game.n_steps * 4, (size_t)c.game.n_steps * 4);
        int8_t a[3 * TG_MAX_S];
        assert_int_equal(tg_tokens_to_action(&c.game.F, S, c.game.n_steps, tok, a), 0);
        rank_one(want, S, a);
        if (fabsf(sc - 1.0f / (float)c.game.r_limit) < 1e-6f) { /* move 1 of 2: the last */
            for (size_t q = 0; q < S3; q++) /* values, not bytes: -0 == 0 */
                if (x[q] != want[q])
                    fail_msg("sample %d entry %zu: feature %g, target's rank-one %g", i, q, x[q], want[q]);
            /* history plane 1 holds the first move: residual before it = plane 0 + plane 1 */
            checked++;
        } else {
            assert_true(sc == 0); /* move 0: no history yet */
            for (size_t q = S3; q < (size_t)T * S3; q++)
                assert_true(x[q] == 0);
        }
        /* canonical target: first non-zero of u and of v positive */
        for (int m = 0; m < 2; m++)
            for (int q = 0; q < S; q++)
                if (a[m * S + q]) {
                    assert_true(a[m * S + q] > 0);
                    break;
                }
    }
    assert_true(checked > B / 4);
    free(want);
    free(x);
    tg_wire_free(e);
    replay_sampler_free(s);
    for (int i = 0; i < 3; i++)
        replay_table_free(t[i]);
}

/* A one-move game whose played move is naive term 0 and whose stored policy has two children,
 * naive terms 1 (p 0.75) and 2 (p 0.25); acts gets the naive terms. */
static replay_game *one_move_game(const tg_config *c, int8_t *acts)
{
    int S = c->game.S, A = 3 * S;
    replay_game *g = replay_game_alloc(S, 1, 2, 1, 0);
    g->dims = c->game.dims[0];
    rt_naive_actions(c, acts);
    memcpy(g->actions, acts, A);
    memcpy(g->pol_actions, acts + A, A);
    memcpy(g->pol_actions + A, acts + 2 * A, A);
    g->pol_probs[0] = 0.75f;
    g->pol_probs[1] = 0.25f;
    g->pol_off[1] = 2;
    g->returns[0] = -8;
    tg_matmul_tensor(g->dims, S, g->initial);
    return g;
}

/* One played move with children of probability 0.75 and 0.25: targets follow them. */
static void test_policy_target(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "game.signed_perms=false", "replay.min_size=1", "replay.frac_demos=0", "replay.frac_played=1",
              "replay.frac_best=0", NULL);
    int S = c.game.S, A = 3 * S;
    int8_t acts[8 * 3 * TG_MAX_S];
    replay_game *g = one_move_game(&c, acts);
    replay_table *t[3] = {replay_table_new(0, 0), replay_table_new(1, 100), replay_table_new(2, 100)};
    replay_table_append(t[1], g);
    replay_sampler *s = replay_sampler_new(&c, t);
    tg_rng rng;
    tg_rng_seed(&rng, 4, 4);
    int B = 4000, n0 = 0, n1 = 0;
    int32_t k0[3 * TG_MAX_S], k1[3 * TG_MAX_S];
    tg_action_to_tokens(&c.game.F, S, c.game.n_steps, acts + A, k0);
    tg_action_to_tokens(&c.game.F, S, c.game.n_steps, acts + 2 * A, k1);
    Tg__Envelope *e = build(s, B, &rng);
    assert_int_equal(e->batch->from_played, B);
    for (int i = 0; i < B; i++) {
        const uint8_t *tk = e->batch->tokens->data.data + (size_t)i * c.game.n_steps * 4;
        n0 += !memcmp(tk, k0, (size_t)c.game.n_steps * 4);
        n1 += !memcmp(tk, k1, (size_t)c.game.n_steps * 4);
    }
    assert_int_equal(n0 + n1, B);
    assert_true(abs(n0 - 3000) < 150); /* sd = sqrt(4000 * 0.75 * 0.25) = 27 */
    tg_wire_free(e);
    replay_sampler_free(s);
    for (int i = 0; i < 3; i++)
        replay_table_free(t[i]);
}

/* Empty demos, and game g alone in both the played and the best table (g's reference is theirs). */
static replay_sampler *sampler_on_both(const tg_config *c, replay_game *g, replay_table *t[3])
{
    t[0] = replay_table_new(0, 0);
    t[1] = replay_table_new(1, 100);
    t[2] = replay_table_new(2, 100);
    replay_game_ref(g);
    replay_table_append(t[1], g);
    replay_table_append(t[2], g);
    return replay_sampler_new(c, t);
}

/* replay.best_played: a best-table position teaches the move played there, whatever the stored
 * policy says (here it gives that move no weight); played-table positions still follow the
 * policy. */
static void test_best_played(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "game.signed_perms=false", "replay.min_size=1", "replay.frac_demos=0", "replay.frac_played=0.5",
              "replay.frac_best=0.5", "replay.best_played=true", NULL);
    int S = c.game.S, A = 3 * S;
    int8_t acts[8 * 3 * TG_MAX_S];
    replay_game *g = one_move_game(&c, acts); /* played: term 0; policy: 1, 2 */
    replay_table *t[3];
    replay_sampler *s = sampler_on_both(&c, g, t);
    tg_rng rng;
    tg_rng_seed(&rng, 6, 6);
    int B = 2000, played = 0, pol = 0;
    int32_t kp[3 * TG_MAX_S], k1[3 * TG_MAX_S], k2[3 * TG_MAX_S];
    tg_action_to_tokens(&c.game.F, S, c.game.n_steps, acts, kp);
    tg_action_to_tokens(&c.game.F, S, c.game.n_steps, acts + A, k1);
    tg_action_to_tokens(&c.game.F, S, c.game.n_steps, acts + 2 * A, k2);
    Tg__Envelope *e = build(s, B, &rng);
    assert_int_equal(e->batch->from_best, B / 2);
    assert_int_equal(e->batch->from_played, B / 2);
    for (int i = 0; i < B; i++) {
        const uint8_t *tk = e->batch->tokens->data.data + (size_t)i * c.game.n_steps * 4;
        played += !memcmp(tk, kp, (size_t)c.game.n_steps * 4);
        pol += !memcmp(tk, k1, (size_t)c.game.n_steps * 4) || !memcmp(tk, k2, (size_t)c.game.n_steps * 4);
    }
    assert_int_equal(played, B / 2); /* every best-table sample, and only those */
    assert_int_equal(pol, B / 2);
    tg_wire_free(e);
    replay_sampler_free(s);
    for (int i = 0; i < 3; i++)
        replay_table_free(t[i]);
}

/* The naive 2x2x2 game (8 moves, each a single entry of the tensor): solved, or cut after
 * `moves` moves (unsolved); no stored policy, so positions teach the played move. */
static replay_game *naive_game(const tg_config *c, int moves, int8_t *acts)
{
    int S = c->game.S, A = 3 * S;
    replay_game *g = replay_game_alloc(S, moves, 0, 1, 0);
    g->dims = c->game.dims[0];
    rt_naive_actions(c, acts);
    memcpy(g->actions, acts, (size_t)moves * A);
    for (int k = 0; k < moves; k++)
        g->returns[k] = (float)-(moves - k);
    tg_matmul_tensor(g->dims, S, g->initial);
    g->solved = moves == 8;
    g->rank = g->solved ? 8 : 0;
    return g;
}

/* replay.reorder: a solved game's positions in random orders of its moves. Every sample is still
 * a position of the game in some order: the residual is the sum of 8 - j of its moves (j from the
 * move scalar), the target one of them, the history moves outside it; and the orders vary. An
 * unsolved game keeps its order. */
static void test_reorder(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    for (int solved = 1; solved >= 0; solved--) {
        tg_config c;
        rt_config(&c, dir, "game.signed_perms=false", "replay.min_size=1", "replay.frac_demos=0",
                  "replay.frac_played=0.5", "replay.frac_best=0.5", "replay.reorder=1", NULL);
        int S = c.game.S, S3 = S * S * S, NS = c.game.n_steps, T = c.game.history + 1;
        int8_t acts[8 * 3 * TG_MAX_S];
        replay_game *g = naive_game(&c, solved ? 8 : 6, acts);
        int32_t term[8]; /* the tensor entry of each naive move */
        for (int r = 0; r < 8; r++) {
            int32_t *one = calloc((size_t)S3, sizeof *one);
            tg_tensor_add_action(one, S, acts + (size_t)r * 3 * S, +1, 0);
            for (int e = 0; e < S3; e++)
                if (one[e])
                    term[r] = e;
            free(one);
        }
        replay_table *t[3];
        replay_sampler *s = sampler_on_both(&c, g, t);
        tg_rng rng;
        tg_rng_seed(&rng, 9, 9);
        int B = 2000, reordered = 0;
        Tg__Envelope *e = build(s, B, &rng);
        const float *x = (const float *)e->batch->tensors->data.data;
        const float *sc = (const float *)e->batch->scalars->data.data;
        for (int i = 0; i < B; i++) {
            const float *xi = x + (size_t)i * T * S3;
            int j = (int)lrintf(sc[i] * (float)c.game.r_limit);
            int in[8] = {0}, n_in = 0, as_played = 1;
            for (int r = 0; r < 8; r++) {
                in[r] = xi[term[r]] == 1.0f;
                n_in += in[r];
                as_played &= in[r] == (r >= j);
            }
            int nz = 0;
            for (int q = 0; q < S3; q++)
                nz += xi[q] != 0;
            assert_int_equal(nz, n_in); /* nothing but whole moves */
            assert_int_equal(n_in, 8 - j);
            int32_t tk[16];
            memcpy(tk, e->batch->tokens->data.data + (size_t)i * NS * 4, (size_t)NS * 4);
            int8_t a[3 * TG_MAX_S];
            assert_int_equal(tg_tokens_to_action(&c.game.F, S, NS, tk, a), 0);
            int32_t *one = calloc((size_t)S3, sizeof *one);
            tg_tensor_add_action(one, S, a, +1, 0);
            int tgt = -1;
            for (int r = 0; r < 8; r++)
                if (one[term[r]] == 1)
                    tgt = r;
            free(one);
            assert_true(tgt >= 0 && in[tgt]); /* the target is one of the moves left */
            for (int h = 1; h < T && j - h >= 0; h++) {
                const float *xh = xi + (size_t)h * S3;
                int hit = -1;
                for (int r = 0; r < 8; r++)
                    if (xh[term[r]] == 1.0f)
                        hit = r;
                assert_true(hit >= 0 && !in[hit]); /* the history: moves already made */
                if (!solved)
                    assert_int_equal(hit, j - h);
            }
            if (!solved) {
                assert_true(as_played);
                assert_int_equal(tgt, j);
            }
            reordered += !as_played;
        }
        if (solved)
            assert_true(reordered > B / 2); /* j = 0 and some orders look as played */
        tg_wire_free(e);
        replay_sampler_free(s);
        for (int k = 0; k < 3; k++)
            replay_table_free(t[k]);
    }
}

static void test_split(void **st)
{
    (void)st;
    char dir[64];
    tg_test_tmpdir(dir, sizeof dir);
    tg_config c;
    rt_config(&c, dir, "replay.min_size=20", "replay.frac_demos=0.25", "replay.frac_played=0.7", "replay.frac_best=0.05",
              NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 5, 5);
    replay_table *t[3] = {replay_table_new(0, 0), replay_table_new(1, 1000), replay_table_new(2, 1000)};
    replay_sampler *s = replay_sampler_new(&c, t);
    int from[3];
    assert_int_equal(replay_sampler_split(s, 64, from), -1); /* nothing yet */
    replay_table_append(t[0], replay_demo_make(&c, 0, &rng));
    replay_table_append(t[1], played_game(&c, &rng, 5, 0));
    assert_int_equal(replay_sampler_split(s, 64, from), 0); /* played below min_size: demos only */
    assert_int_equal(from[0], 64);
    for (int i = 0; i < 4; i++)
        replay_table_append(t[1], played_game(&c, &rng, 5, 0));
    assert_int_equal(replay_sampler_split(s, 64, from), 0); /* best empty: its share goes elsewhere */
    assert_int_equal(from[0] + from[1], 64);
    assert_int_equal(from[2], 0);
    assert_true(abs(from[1] - (int)(64 * 0.7 / 0.95)) <= 1);
    replay_table_append(t[2], played_game(&c, &rng, 5, 0));
    assert_int_equal(replay_sampler_split(s, 1000, from), 0);
    assert_int_equal(from[0], 250);
    assert_int_equal(from[1], 700);
    assert_int_equal(from[2], 50);
    replay_sampler_free(s);
    for (int i = 0; i < 3; i++)
        replay_table_free(t[i]);
}

/* a corrupt replay file at bad, and the path of one that does not exist in gone */
static void bad_files(const char *dir, const char *bad, char *gone, size_t cap)
{
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    fputs("not an HDF5 file", f);
    fclose(f);
    snprintf(gone, cap, "%s/none.h5", dir);
}

/* tg trim: each table's newest whole games up to N positions (the newest one kept even if longer;
 * -1 all, 0 none), the metadata kept, the copy readable; bad input: exit 2, nothing written. */
static void test_trim(void **st)
{
    (void)st;
    char dir[64], in[128], out[128], bad[128];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/replay.h5", dir);
    snprintf(out, sizeof out, "%s/small.h5", dir);
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    tg_config c;
    rt_config(&c, dir, NULL);
    tg_rng rng;
    tg_rng_seed(&rng, 3, 2);
    replay_store_tables t = {0};
    /* played: 10 games of 2..6 moves (oldest first), best 4, demos 5 */
    static const int ng[REPLAY_NTABLES] = {5, 10, 4};
    fill_tables(&t, &c, &rng, ng);
    replay_store_meta m = {.S = c.game.S, .next_game_id = 1000, .journal_seq = 9, .written = 2.5};
    assert_int_equal(replay_store_write(in, &m, &t), 0);
    /* played games' moves, newest first (j = 9, 8, 7, ...): 6, 5, 4, ...: 13 positions hold the
     * newest 2 (11; with the third 15) */
    char *args[] = {"trim", in, out, "--played", "13", "--demos", "0", NULL};
    assert_int_equal(tg_cmd_trim(7, args), 0);
    replay_store_meta m2;
    replay_store_tables t2;
    assert_int_equal(replay_store_read(out, &m2, &t2), 0);
    assert_int_equal(m2.next_game_id, 1000);
    assert_int_equal(m2.journal_seq, 9);
    assert_int_equal(t2.n[REPLAY_DEMOS], 0);
    assert_int_equal(t2.n[REPLAY_PLAYED], 2);
    assert_int_equal(t2.games[REPLAY_PLAYED][0]->id, 108);
    assert_int_equal(t2.games[REPLAY_PLAYED][1]->id, 109);
    assert_memory_equal(t2.games[REPLAY_PLAYED][1]->actions, t.games[REPLAY_PLAYED][9]->actions,
                        (size_t)t.games[REPLAY_PLAYED][9]->n_moves * 3 * c.game.S);
    assert_int_equal(t2.n[REPLAY_BEST], 4); /* default: all */
    assert_int_equal(t2.games[REPLAY_BEST][0]->id, 200);
    replay_store_tables_free(&t2);
    /* 1 position: still the newest game; -1: everything; in place */
    char *args2[] = {"trim", in, out, "--played", "1", "--best", "0", "--demos", "-1", NULL};
    assert_int_equal(tg_cmd_trim(9, args2), 0);
    assert_int_equal(replay_store_read(out, &m2, &t2), 0);
    assert_int_equal(t2.n[REPLAY_PLAYED], 1);
    assert_int_equal(t2.games[REPLAY_PLAYED][0]->id, 109);
    assert_int_equal(t2.n[REPLAY_BEST], 0);
    assert_int_equal(t2.n[REPLAY_DEMOS], 5);
    replay_store_tables_free(&t2);
    char *args3[] = {"trim", out, out, "--played", "0", NULL};
    assert_int_equal(tg_cmd_trim(5, args3), 0);
    assert_int_equal(replay_store_read(out, &m2, &t2), 0);
    assert_int_equal(t2.n[REPLAY_PLAYED], 0);
    assert_int_equal(t2.n[REPLAY_DEMOS], 0); /* the default again */
    assert_int_equal(t2.n[REPLAY_BEST], 0);
    replay_store_tables_free(&t2);
    /* bad input: missing or corrupt file, bad counts, missing arguments: exit 2, nothing written */
    char gone[160];
    bad_files(dir, bad, gone, sizeof gone);
    char *b1[] = {"trim", gone, bad, NULL};
    assert_int_equal(tg_cmd_trim(3, b1), 2);
    char *b2[] = {"trim", bad, gone, NULL};
    assert_int_equal(tg_cmd_trim(3, b2), 2);
    assert_int_equal(access(gone, F_OK), -1);
    char *b3[] = {"trim", in, gone, "--played", "many", NULL};
    assert_int_equal(tg_cmd_trim(5, b3), 2);
    char *b4[] = {"trim", in, gone, "--best", "-5", NULL};
    assert_int_equal(tg_cmd_trim(5, b4), 2);
    char *b5[] = {"trim", in, NULL};
    assert_int_equal(tg_cmd_trim(2, b5), 2);
    char *b6[] = {"trim", in, gone, "--played", NULL};
    assert_int_equal(tg_cmd_trim(4, b6), 2);
    assert_int_equal(access(gone, F_OK), -1);
    replay_store_tables_free(&t);
}

/* a stored game of T(2,2,2) for tg games: solved at `rank` moves (0: unsolved after 6), in the
 * canonical basis or a changed one */
static replay_game *games_game(int S, int rank, int changed, uint64_t id)
{
    int moves = rank ? rank : 6;
    replay_game *g = replay_game_alloc(S, moves, 0, 1, changed);
    assert_non_null(g);
    g->id = id;
    g->dims = (tg_dims){2, 2, 2};
    g->solved = rank > 0;
    g->rank = rank;
    snprintf(g->actor, sizeof g->actor, "test");
    for (int j = 0; j < moves; j++)
        g->actions[(size_t)j * 3 * S] = 1; /* a non-zero factor */
    return g;
}

/* runs tg games with its stdout into a file; returns its exit status and the output */
static int run_games(char **args, int n, const char *outf, char *buf, size_t cap)
{
    fflush(stdout);
    int saved = dup(1), fd = open(outf, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 1);
    close(fd);
    int rc = tg_cmd_games(n, args);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *f = fopen(outf, "r");
    assert_non_null(f);
    size_t k = fread(buf, 1, cap - 1, f);
    buf[k] = 0;
    fclose(f);
    return rc;
}

static void test_games(void **st)
{
    (void)st;
    char dir[64], in[128], outf[128], bad[128], buf[8192];
    tg_test_tmpdir(dir, sizeof dir);
    snprintf(in, sizeof in, "%s/replay.h5", dir);
    snprintf(outf, sizeof outf, "%s/out.txt", dir);
    snprintf(bad, sizeof bad, "%s/bad.h5", dir);
    int S = 4;
    /* played, oldest first: a polished 7 (actor NAME/polish); canonical 8, 8, 9, unsolved;
     * changed 7, 10, 10, unsolved, unsolved; best: canonical 7 (the best rank: 7) */
    static const int ranks[] = {7, 8, 8, 9, 0, 7, 10, 10, 0, 0}, changed[] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
    replay_store_tables t = {0};
    t.n[REPLAY_PLAYED] = 10;
    t.games[REPLAY_PLAYED] = calloc(10, sizeof(replay_game *));
    t.n[REPLAY_BEST] = 3;
    t.games[REPLAY_BEST] = calloc(3, sizeof(replay_game *));
    assert_true(t.games[REPLAY_PLAYED] && t.games[REPLAY_BEST]);
    for (int j = 0; j < 10; j++)
        t.games[REPLAY_PLAYED][j] = games_game(S, ranks[j], changed[j], 100 + (uint64_t)j);
    snprintf(t.games[REPLAY_PLAYED][0]->actor, sizeof t.games[REPLAY_PLAYED][0]->actor, "vm-1/polish");
    /* best: three canonical 7s, the first two the same terms in another order (move 1 of one is
     * move 0 of the other): two distinct factor sets */
    for (int j = 0; j < 3; j++)
        t.games[REPLAY_BEST][j] = games_game(S, 7, 0, 200 + (uint64_t)j);
    t.games[REPLAY_BEST][0]->actions[(size_t)1 * 3 * S + 1] = 1;
    t.games[REPLAY_BEST][1]->actions[1] = 1;
    replay_store_meta m = {.S = S, .next_game_id = 1000, .journal_seq = 1, .written = 2.5};
    if (replay_store_write(in, &m, &t))
        fail_msg("%s", tg_errmsg());
    replay_store_tables_free(&t);

    char *a1[] = {"games", dir, NULL}; /* a run directory: its replay.h5 */
    assert_int_equal(run_games(a1, 2, outf, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "played 10 games (77 positions), best 3 games (21 positions)"));
    assert_non_null(strstr(buf, "played games, T(2,2,2):"));
    /* all: 10 games, 7 solved (7 + 8 + 8 + 9 + 7 + 10 + 10 = 59, mean 8.43), 2 at rank 7 */
    assert_non_null(strstr(buf, "  all                    10   100%     70%      8.43       2 ( 20.0%)  7:2 8:2 9:1 10:2"));
    assert_non_null(strstr(buf, "  canonical basis         4    40%     75%      8.33       0 (  0.0%)  8:2 9:1"));
    assert_non_null(strstr(buf, "  changed bases           5    50%     60%      9.00       1 ( 20.0%)  7:1 10:2"));
    assert_non_null(strstr(buf, "  polished                1    10%    100%      7.00       1 (100.0%)  7:1"));
    assert_non_null(strstr(buf, "best games, T(2,2,2):"));
    assert_non_null(strstr(buf, "  the 2 games at rank 7 hold 2 distinct factor sets (moves in any order)"));
    assert_non_null(strstr(buf, "  the 3 games at rank 7 hold 2 distinct factor sets (moves in any order)"));
    /* all best games canonical: no lines by basis */
    assert_null(strstr(strstr(buf, "best games"), "canonical basis"));
    /* the newest 4: changed 10, 10, unsolved, unsolved (all in changed bases: no lines by basis) */
    char *a2[] = {"games", in, "--newest", "4", NULL};
    assert_int_equal(run_games(a2, 4, outf, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "(the newest 4 games of each table)"));
    assert_non_null(strstr(buf, "  all                     4   100%     50%     10.00       0 (  0.0%)  10:2"));
    assert_null(strstr(buf, "changed bases"));

    /* bad input: exit 2 */
    char gone[160];
    bad_files(dir, bad, gone, sizeof gone);
    char *b1[] = {"games", gone, NULL};
    assert_int_equal(tg_cmd_games(2, b1), 2);
    char *b2[] = {"games", bad, NULL};
    assert_int_equal(tg_cmd_games(2, b2), 2);
    char *b3[] = {"games", in, "--newest", "0", NULL};
    assert_int_equal(tg_cmd_games(4, b3), 2);
    char *b4[] = {"games", NULL};
    assert_int_equal(tg_cmd_games(1, b4), 2);
    char *b5[] = {"games", in, "--newest", NULL};
    assert_int_equal(tg_cmd_games(3, b5), 2);
}

int main(void)
{
    tg_log_set_level(TG_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_fifo),
        cmocka_unit_test(test_ingest_actor_names), cmocka_unit_test(test_table_remove_if),
        cmocka_unit_test(test_store_roundtrip),
        cmocka_unit_test(test_journal),       cmocka_unit_test(test_features_match_targets),
        cmocka_unit_test(test_policy_target),
        cmocka_unit_test(test_best_played), cmocka_unit_test(test_reorder), cmocka_unit_test(test_split),
        cmocka_unit_test(test_trim),          cmocka_unit_test(test_games),
    };
    return tg_test_done(cmocka_run_group_tests(tests, NULL, NULL));
}
