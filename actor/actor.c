/* The actor's driver: game slots, leaf batching, moves, finished games and discoveries. */
#include "actor/actor.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actor/bandit.h"
#include "actor/decode.h"
#include "actor/mcts.h"
#include "actor/replay_link.h"
#include "common/action.h"
#include "common/basis.h"
#include "common/err.h"
#include "common/fact.h"
#include "common/flip.h"
#include "common/game.h"
#include "common/log.h"
#include "common/perm.h"
#include "common/rng.h"
#include "learner/runinfo.h"
#include "learner/tb.h"

typedef struct target {
    tg_dims dims;
    int sizes[3];
    int32_t *tensor;        /* canonical T(n,m,p) padded to S */
    tg_basis_pool *bases;   /* entry 0 is the identity */
    tg_bandit *basis_choice; /* over the non-canonical bases (arm i = basis i + 1) */
    int *basis_live;        /* [pool] games in play per basis */
    int *basis_at_best;     /* [pool] games solved at no better than the best rank known */
    char *basis_retiring;   /* [pool] out of the choice; replaced once its games are over */
    tg_sperm *perms, *inv;  /* [n_perms]; entry 0 is the identity */
    int n_perms;
    /* best lines (game.restart_prob): this actor's solved games at its best rank, each in the
     * basis it was played in, as restart points */
    int8_t *lines;          /* [restart_lines][r_limit][3S] */
    int *line_basis, *line_moves;
    int n_lines;
    /* actor.polish_share: a flip-graph walk over the factorizations of the canonical tensor, fed
     * with this actor's solved games at its best rank (NULL when off) */
    tg_flip *walker;
} target;

typedef struct slot {
    int active;
    tg_game *game;
    tg_tree *tree;
    int target, basis;      /* basis index in the target's pool */
    int sims, pending, busy, full;
    int moves;
    int restart;            /* moves replayed from a best line at the start (0: a fresh game) */
    int restart_best;       /* the best rank known when a restarted game began */
    uint64_t version;
    double started;
    int32_t *initial;       /* [S^3] */
    int8_t *pol_actions;    /* [r_limit][K][3S] */
    float *pol_probs;       /* [r_limit][K] */
    float *rewards;         /* [r_limit] */
} slot;

typedef struct leaf {
    int slot, perm;
    tg_path path;
} leaf;

struct tg_actor {
    tg_config cfg;
    tg_actor_opts opts;
    char name[128];
    char status_dir[TG_STR];
    double started_wall;
    uint64_t version;       /* newest model version seen */
    tg_tb *tb;              /* run.dir/tb/actor-<name>/ scalars, with status_dir */
    uint64_t int_games, int_solved, int_moves; /* since the last stats line */
    double int_return;
    uint64_t int_root_n, int_root_moves, int_first_n, int_first_moves; /* distinct root children */
    uint64_t int_solved_rank_sum; /* solved games' ranks */
    int *basis_games;       /* [basis_pool] this interval's finished games per basis (target 0) */
    int n_basis_games;
    /* this interval's finished games per target, and the solved ones by rank ([kind][target][r_limit
     * + 1]): how often the best rank is played, which the mean rank hides (tg status); kind 0 all
     * games, 1 those in the canonical basis (where a run's best lines may come from) */
    uint64_t t_games[2][TG_MAX_TARGETS];
    uint32_t *t_by_rank;
    int S, S3, A, K, T, ns, n_steps;
    tg_mcts_params mp;
    target targets[TG_MAX_TARGETS];
    int n_targets;
    slot *slots;
    int n_slots, rr;
    tg_tree *spare;
    tg_game *scratch;
    leaf *leaves;
    int *leaf_free, n_leaf_free, n_leaves, lpg;
    tg_evaluator *ev;
    int own_ev;
    tg_eval_batch **batches;
    int *batch_free, n_batch_free, n_batches;
    tg_eval_batch *cur;
    tg_replay_link *link;
    tg_rng rng;
    float *ftmp;            /* [T][S^3] features before the permutation */
    int8_t *acts;           /* [K][3S] decoded actions */
    tg_decoder *dec;        /* tokens -> actions */
    int32_t *visits;        /* [K] root statistics at a move */
    float *q, *pi;
    const int8_t **actp;
    int64_t started_games;
    int stopping;
    tg_actor_stats st;
    double t0, last_stats;
    uint64_t last_sims, last_pos;
    int polish_next;        /* the target the next polishing slice goes to */
};

size_t tg_actor_game_bytes(const tg_config *c)
{
    int S = c->game.S, K = c->infer.samples, R = c->game.r_limit;
    return tg_tree_max_bytes(S, K, c->actor.max_nodes) + (size_t)S * S * S * 4 * 2 /* game, initial */ +
           (size_t)R * K * (3 * S + 4) + (size_t)R * (4 + 3 * S);
}

/* ---- set-up ---- */

static int target_init(tg_actor *a, target *t, tg_dims d)
{
    const tg_config *c = &a->cfg;
    t->dims = d;
    tg_dims_modes(d, t->sizes);
    t->tensor = calloc((size_t)a->S3, sizeof(int32_t));
    if (!t->tensor || tg_matmul_tensor(d, a->S, t->tensor) != 0)
        return tg_fail_ctx("target %d,%d,%d: ", d.n, d.m, d.p);
    int nb = c->game.change_of_basis ? (c->game.basis_pool > 1 ? c->game.basis_pool : 2) : 1;
    t->bases = tg_basis_pool_new(d, nb, c->game.basis_max_entry > 0 ? c->game.basis_max_entry : 1, &a->rng);
    if (!t->bases)
        return tg_fail_ctx("change of basis for %d,%d,%d: ", d.n, d.m, d.p);
    /* The same target is easier to factorise in some bases than in others (where its low-rank
     * factorizations are sparse, like the demonstrations): game.basis_explore plays those more,
     * judged by the returns of the agent's own games in each basis. */
    if (nb > 1 && !(t->basis_choice = tg_bandit_new(nb - 1, c->game.basis_explore, c->game.basis_discount)))
        return -1;
    t->basis_live = calloc((size_t)nb, sizeof *t->basis_live);
    t->basis_at_best = calloc((size_t)nb, sizeof *t->basis_at_best);
    t->basis_retiring = calloc((size_t)nb, 1);
    if (!t->basis_live || !t->basis_at_best || !t->basis_retiring)
        return tg_fail("out of memory");
    int nl = c->game.restart_lines > 0 ? c->game.restart_lines : 1;
    t->lines = calloc((size_t)nl * c->game.r_limit * a->A, 1);
    t->line_basis = calloc((size_t)nl, sizeof *t->line_basis);
    t->line_moves = calloc((size_t)nl, sizeof *t->line_moves);
    if (!t->lines || !t->line_basis || !t->line_moves)
        return tg_fail("out of memory");
    t->n_perms = c->game.signed_perms ? (c->game.perm_pool > 1 ? c->game.perm_pool : 2) : 1;
    t->perms = calloc((size_t)t->n_perms, sizeof *t->perms);
    t->inv = calloc((size_t)t->n_perms, sizeof *t->inv);
    if (!t->perms || !t->inv)
        return tg_fail("out of memory");
    int signs = !c->game.mod2 && tg_coeffs_symmetric(&c->game.F);
    tg_sperm_identity(&t->perms[0], a->S, t->sizes);
    for (int i = 1; i < t->n_perms; i++)
        tg_sperm_sample(&t->perms[i], a->S, t->sizes, signs, &a->rng);
    for (int i = 0; i < t->n_perms; i++)
        tg_sperm_invert(&t->perms[i], &t->inv[i]);
    /* room for the plus steps above the longest game */
    if (c->actor.polish_share > 0 &&
        !(t->walker = tg_flip_new(d, c->game.r_limit + 2, c->actor.polish_bound, tg_rng_u64(&a->rng))))
        return -1;
    return 0;
}

static void target_free(target *t)
{
    free(t->tensor);
    tg_basis_pool_free(t->bases);
    tg_bandit_free(t->basis_choice);
    free(t->basis_live);
    free(t->basis_at_best);
    free(t->basis_retiring);
    free(t->perms);
    free(t->inv);
    free(t->lines);
    free(t->line_basis);
    free(t->line_moves);
    tg_flip_free(t->walker);
}

tg_actor *tg_actor_new(const tg_config *c, const tg_actor_opts *o)
{
    tg_actor *a = calloc(1, sizeof *a);
    if (!a) {
        tg_fail("out of memory");
        return NULL;
    }
    a->cfg = *c;
    if (o)
        a->opts = *o;
    if (a->opts.name) {
        snprintf(a->name, sizeof a->name, "%s", a->opts.name);
    } else {
        char host[64] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(a->name, sizeof a->name, "%s:%d", host, (int)getpid());
    }
    a->opts.name = NULL;
    if (a->opts.status_dir)
        snprintf(a->status_dir, sizeof a->status_dir, "%s", a->opts.status_dir);
    a->opts.status_dir = NULL;
    a->S = c->game.S;
    a->S3 = a->S * a->S * a->S;
    a->A = 3 * a->S;
    a->K = c->infer.samples;
    a->T = c->game.history + 1;
    a->ns = c->game.n_scalars;
    a->n_steps = c->game.n_steps;
    a->mp.c1 = c->actor.c1;
    a->mp.c2 = c->actor.c2;
    a->mp.n_bar = c->actor.n_bar;
    a->mp.virtual_loss = c->actor.virtual_loss;
    a->mp.dirichlet_alpha = c->actor.dirichlet_alpha;
    a->mp.dirichlet_frac = c->actor.dirichlet_frac;
    uint64_t stream = 0;
    for (const char *p = a->name; *p; p++)
        stream = stream * 131 + (uint8_t)*p;
    tg_rng_seed(&a->rng, c->run.seed, stream);

    a->n_targets = c->game.n_targets;
    for (int i = 0; i < a->n_targets; i++)
        if (target_init(a, &a->targets[i], c->game.dims[i]) != 0)
            goto fail;

    /* evaluator and batches */
    if (a->opts.eval) {
        a->ev = a->opts.eval;
    } else {
        tg_eval_dims d = {a->S, a->T, a->ns, a->K, a->n_steps, (float)c->infer.temperature};
        a->ev = tg_eval_remote_new(c, &d, a->opts.eval_endpoints ? a->opts.eval_endpoints : c->infer.connect,
                                   c->actor.eval_timeout_s);
        if (!a->ev)
            goto fail;
        a->own_ev = 1;
    }
    a->n_slots = c->actor.games;
    int eb = c->actor.eval_batch, inflight = c->actor.inflight;
    a->lpg = c->actor.leaves_per_game;
    if (a->lpg <= 0) /* enough pending leaves to fill every batch in flight plus the one filling */
        a->lpg = (int)(((long)(inflight + 1) * eb + a->n_slots - 1) / a->n_slots);
    if (a->lpg > c->actor.simulations)
        a->lpg = c->actor.simulations;
    if (a->lpg < 1)
        a->lpg = 1;
    a->n_batches = inflight + 1;
    a->batches = calloc((size_t)a->n_batches, sizeof *a->batches);
    a->batch_free = calloc((size_t)a->n_batches, sizeof *a->batch_free);
    if (!a->batches || !a->batch_free)
        goto nomem;
    tg_eval_dims d = {a->S, a->T, a->ns, a->K, a->n_steps, (float)c->infer.temperature};
    for (int i = 0; i < a->n_batches; i++) {
        a->batches[i] = tg_eval_batch_new(&d, eb, a->ev->wants_features);
        if (!a->batches[i])
            goto fail;
        a->batches[i]->user = calloc((size_t)eb, sizeof(int));
        if (!a->batches[i]->user)
            goto nomem;
        a->batch_free[a->n_batch_free++] = i;
    }

    /* leaves, slots, trees */
    a->n_leaves = a->n_slots * a->lpg;
    a->leaves = calloc((size_t)a->n_leaves, sizeof *a->leaves);
    a->leaf_free = calloc((size_t)a->n_leaves, sizeof *a->leaf_free);
    if (!a->leaves || !a->leaf_free)
        goto nomem;
    for (int i = 0; i < a->n_leaves; i++) {
        if (tg_path_init(&a->leaves[i].path, c->game.r_limit + 1) != 0)
            goto fail;
        a->leaf_free[a->n_leaf_free++] = a->n_leaves - 1 - i;
    }
    a->slots = calloc((size_t)a->n_slots, sizeof *a->slots);
    if (!a->slots)
        goto nomem;
    int R = c->game.r_limit;
    for (int i = 0; i < a->n_slots; i++) {
        slot *s = &a->slots[i];
        s->tree = tg_tree_new(a->S, a->K, c->actor.max_nodes, tg_rng_u64(&a->rng));
        if (!s->tree)
            goto fail;
        s->initial = calloc((size_t)a->S3, sizeof(int32_t));
        s->pol_actions = calloc((size_t)R * a->K * a->A, 1);
        s->pol_probs = calloc((size_t)R * a->K, sizeof(float));
        s->rewards = calloc((size_t)R, sizeof(float));
        if (!s->initial || !s->pol_actions || !s->pol_probs || !s->rewards)
            goto nomem;
    }
    a->spare = tg_tree_new(a->S, a->K, c->actor.max_nodes, tg_rng_u64(&a->rng));
    if (!a->spare)
        goto fail;
    a->scratch = tg_game_new(a->targets[0].tensor, a->S, c->game.mod2, R, c->game.history);
    a->ftmp = malloc((size_t)a->T * a->S3 * sizeof(float));
    a->acts = malloc((size_t)a->K * a->A);
    a->visits = malloc((size_t)a->K * sizeof *a->visits);
    a->q = malloc((size_t)a->K * sizeof *a->q);
    a->pi = malloc((size_t)a->K * sizeof *a->pi);
    a->actp = malloc((size_t)a->K * sizeof *a->actp);
    a->n_basis_games = tg_basis_pool_size(a->targets[0].bases);
    a->basis_games = calloc((size_t)a->n_basis_games, sizeof *a->basis_games);
    a->t_by_rank = calloc(2 * (size_t)a->n_targets * (size_t)(c->game.r_limit + 1), sizeof *a->t_by_rank);
    if (!a->scratch || !a->ftmp || !a->acts || !a->visits || !a->q || !a->pi || !a->actp || !a->basis_games ||
        !a->t_by_rank)
        goto nomem;
    a->dec = tg_decoder_new(&c->game.F, a->S, a->n_steps, !c->game.mod2 && tg_coeffs_symmetric(&c->game.F));
    if (!a->dec)
        goto fail;
    if (a->opts.replay) {
        a->link = tg_replay_link_new(c, a->opts.replay_endpoint ? a->opts.replay_endpoint : c->replay.connect,
                                     c->actor.ack_timeout_s);
        if (!a->link)
            goto fail;
    }
    return a;
nomem:
    tg_fail("out of memory setting up %d games", a->n_slots);
fail:
    tg_actor_free(a);
    return NULL;
}

void tg_actor_free(tg_actor *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n_targets; i++)
        target_free(&a->targets[i]);
    if (a->slots)
        for (int i = 0; i < a->n_slots; i++) {
            slot *s = &a->slots[i];
            tg_game_free(s->game);
            tg_tree_free(s->tree);
            free(s->initial);
            free(s->pol_actions);
            free(s->pol_probs);
            free(s->rewards);
        }
    free(a->slots);
    free(a->basis_games);
    free(a->t_by_rank);
    if (a->leaves)
        for (int i = 0; i < a->n_leaves; i++)
            tg_path_free(&a->leaves[i].path);
    free(a->leaves);
    free(a->leaf_free);
    if (a->batches)
        for (int i = 0; i < a->n_batches; i++)
            if (a->batches[i]) {
                free(a->batches[i]->user);
                tg_eval_batch_free(a->batches[i]);
            }
    free(a->batches);
    free(a->batch_free);
    if (a->own_ev)
        tg_evaluator_free(a->ev);
    tg_replay_link_free(a->link);
    tg_tb_close(a->tb);
    tg_tree_free(a->spare);
    tg_game_free(a->scratch);
    free(a->ftmp);
    free(a->acts);
    tg_decoder_free(a->dec);
    free(a->visits);
    free(a->q);
    free(a->pi);
    free(a->actp);
    free(a);
}

void tg_actor_get_stats(const tg_actor *a, tg_actor_stats *s)
{
    *s = a->st;
    s->positions = a->ev->positions;
    s->batches = a->ev->batches;
    s->reissued = a->ev->reissued;
    if (a->link)
        tg_replay_link_counts(a->link, &s->acked, &s->resent);
}

/* ---- games ---- */

/* Plays the first k moves of best line `line` (k uniform in 1 .. moves - 2, so that at least two
 * moves are left to be bettered by one) in slot s's fresh game, each recorded with the played
 * move as its whole policy, as in a best game of replay. The residual after them has rank at
 * most moves - k; the search goes on from there. */
static void replay_line(tg_actor *a, slot *s, target *t, int line)
{
    int M = t->line_moves[line], K = a->K, A = a->A;
    TG_ASSERT(M >= 3 && M <= a->cfg.game.r_limit);
    int k = 1 + (int)tg_rng_below(&a->rng, (uint32_t)(M - 2));
    const int8_t *acts = t->lines + (size_t)line * a->cfg.game.r_limit * A;
    for (int i = 0; i < k; i++) {
        int8_t *pa = s->pol_actions + (size_t)i * K * A;
        float *pp = s->pol_probs + (size_t)i * K;
        memset(pa, 0, (size_t)K * A);
        memset(pp, 0, (size_t)K * sizeof(float));
        memcpy(pa, acts + (size_t)i * A, (size_t)A);
        pp[0] = 1;
        s->rewards[i] = (float)tg_game_play(s->game, acts + (size_t)i * A);
        TG_ASSERT(!tg_game_done(s->game)); /* a line solves its tensor in M > k moves, no sooner */
    }
    s->moves = s->restart = k;
    s->restart_best = a->st.best_rank[s->target];
    a->st.restarts++;
}

/* Keeps slot s's solved game as a best line of its target (game.restart_prob): a better rank
 * replaces the lines, an equal one joins them (a random one gives way when they are full). */
static void keep_line(tg_actor *a, slot *s, int best_before)
{
    target *t = &a->targets[s->target];
    int M = s->moves, nl = a->cfg.game.restart_lines, R = a->cfg.game.r_limit;
    if (a->cfg.game.restart_prob <= 0 || M < 3 || (best_before > 0 && M > best_before))
        return;
    if (best_before == 0 || M < best_before)
        t->n_lines = 0;
    int i = t->n_lines < nl ? t->n_lines++ : (int)tg_rng_below(&a->rng, (uint32_t)nl);
    memcpy(t->lines + (size_t)i * R * a->A, tg_game_actions(s->game), (size_t)M * a->A);
    t->line_basis[i] = s->basis;
    t->line_moves[i] = M;
}

/* Drops the best lines played in basis b (it is being replaced by a fresh one). */
static void drop_lines(target *t, int b, int R, int A)
{
    for (int i = 0; i < t->n_lines;)
        if (t->line_basis[i] == b) {
            int last = --t->n_lines;
            if (i != last) {
                memcpy(t->lines + (size_t)i * R * A, t->lines + (size_t)last * R * A, (size_t)R * A);
                t->line_basis[i] = t->line_basis[last];
                t->line_moves[i] = t->line_moves[last];
            }
        } else {
            i++;
        }
}

static int new_game(tg_actor *a, slot *s)
{
    const tg_config *c = &a->cfg;
    s->active = 0;
    if (a->stopping || (a->opts.max_games > 0 && a->started_games >= a->opts.max_games))
        return 0;
    s->target = (int)tg_rng_below(&a->rng, (uint32_t)a->n_targets);
    target *t = &a->targets[s->target];
    int nb = tg_basis_pool_size(t->bases);
    /* A restart: part-way along one of the best lines, in its basis (never one being retired,
     * whose replacement would change the tensor under the line). */
    int line = -1;
    if (c->game.restart_prob > 0 && t->n_lines > 0 && tg_rng_uniform(&a->rng) < c->game.restart_prob) {
        line = (int)tg_rng_below(&a->rng, (uint32_t)t->n_lines);
        if (t->basis_retiring[t->line_basis[line]])
            line = -1;
    }
    s->basis = 0;
    if (line >= 0)
        s->basis = t->line_basis[line];
    else if (c->game.change_of_basis && nb > 1 && tg_rng_uniform(&a->rng) < c->game.basis_prob)
        s->basis = 1 + tg_bandit_pick(t->basis_choice, &a->rng);
    t->basis_live[s->basis]++;
    const tg_basis *b = tg_basis_pool_get(t->bases, s->basis);
    if (tg_basis_is_identity(b))
        memcpy(s->initial, t->tensor, (size_t)a->S3 * sizeof(int32_t));
    else
        tg_basis_apply(b, t->tensor, a->S, s->initial);
    tg_game_free(s->game);
    s->game = tg_game_new(s->initial, a->S, c->game.mod2, c->game.r_limit, c->game.history);
    if (!s->game)
        return -1;
    tg_tree_clear(s->tree);
    s->sims = s->pending = s->busy = s->full = s->moves = 0;
    s->restart = 0;
    if (line >= 0)
        replay_line(a, s, t, line);
    s->version = 0;
    s->started = tg_wall();
    s->active = 1;
    a->started_games++;
    return 0;
}

/* A verified factorization of target ti (canonical basis) to replay's results, found by `who`. */
static void send_discovery(tg_actor *a, int ti, const tg_fact *f, uint64_t version, const char *who)
{
    tg_dims d = a->targets[ti].dims;
    int rank = tg_fact_rank(f);
    int64_t su[2] = {rank, d.n * d.m}, sv[2] = {rank, d.m * d.p}, sw[2] = {rank, d.p * d.n};
    int64_t bu[2], bv[2], bw[2];
    Tg__Array au, av, aw;
    tg_array_set(&au, TG__DTYPE__I64, 2, su, bu, tg_fact_cu(f), (size_t)(su[0] * su[1]) * 8);
    tg_array_set(&av, TG__DTYPE__I64, 2, sv, bv, tg_fact_cv(f), (size_t)(sv[0] * sv[1]) * 8);
    tg_array_set(&aw, TG__DTYPE__I64, 2, sw, bw, tg_fact_cw(f), (size_t)(sw[0] * sw[1]) * 8);
    Tg__Discovery dm = TG__DISCOVERY__INIT;
    dm.target = a->cfg.game.targets[ti];
    dm.arithmetic = a->cfg.game.arithmetic;
    dm.rank = rank;
    dm.u = &au;
    dm.v = &av;
    dm.w = &aw;
    dm.model_version = version;
    dm.actor = (char *)who;
    dm.when = tg_wall();
    if (tg_replay_link_send_discovery(a->link, &dm) != 0)
        tg_warn("discovery not sent: %s", tg_errmsg());
}

static int report_solved(tg_actor *a, slot *s)
{
    target *t = &a->targets[s->target];
    const tg_basis *b = tg_basis_pool_get(t->bases, s->basis);
    tg_fact *f = tg_game_to_fact(s->game, t->dims), *canon = NULL;
    if (!f) {
        a->st.verify_failed++;
        tg_error("solved game of %s cannot be read as a factorization: %s", a->cfg.game.targets[s->target],
                 tg_errmsg());
        return 0;
    }
    canon = tg_basis_is_identity(b) ? f : tg_basis_map_back(b, f);
    tg_fact_mismatch mm;
    int ok = canon ? tg_fact_verify(canon, a->cfg.game.mod2, &mm) : -1;
    if (ok != 1) {
        a->st.verify_failed++;
        char buf[256] = "";
        if (ok == 0)
            tg_fact_mismatch_str(canon, &mm, buf, sizeof buf);
        tg_error("solved game of %s (rank %d) FAILED verification in the canonical basis: %s",
                 a->cfg.game.targets[s->target], s->moves, ok == 0 ? buf : tg_errmsg());
        goto done;
    }
    int rank = tg_fact_rank(canon);
    /* the polishing walk takes the actor's games at its best rank (in the canonical basis, where
     * their coefficients stay within the action set) */
    if (t->walker && tg_flip_offer(t->walker, canon) < 0) /* e.g. a coefficient above the bound */
        tg_debug("polishing: game not taken: %s", tg_errmsg());
    int *best = &a->st.best_rank[s->target];
    if (*best == 0 || rank < *best) {
        *best = rank;
        a->st.discoveries++;
        tg_info("found T(%s) rank %d (%s, %s basis, model version %llu), verified", a->cfg.game.targets[s->target],
                rank, a->cfg.game.arithmetic, s->basis ? "changed" : "canonical", (unsigned long long)s->version);
        if (a->link)
            send_discovery(a, s->target, canon, s->version, a->name);
    }
done:
    if (canon != f)
        tg_fact_free(canon);
    tg_fact_free(f);
    return 0;
}

static int send_game(tg_actor *a, slot *s)
{
    const int S = a->S, M = s->moves, K = a->K;
    target *t = &a->targets[s->target];
    const tg_basis *b = tg_basis_pool_get(t->bases, s->basis);
    float *returns = malloc((size_t)(M > 0 ? M : 1) * sizeof(float));
    int32_t *basis = NULL;
    if (!returns)
        return tg_fail("out of memory");
    double G = 0;
    for (int i = M - 1; i >= 0; i--)
        returns[i] = (float)(G += s->rewards[i]);
    Tg__Game g = TG__GAME__INIT;
    Tg__Array ab, aa, pa, pp, ar, ai;
    int64_t sb[3] = {3, S, S}, bb[3], sa[2] = {M, 3 * S}, ba[2], spa[3] = {M, K, 3 * S}, bpa[3], spp[2] = {M, K},
            bpp[2], sr[1] = {M}, br[1], si[3] = {S, S, S}, bi[3];
    if (!tg_basis_is_identity(b)) { /* per mode, zero-padded to S x S */
        basis = calloc((size_t)3 * S * S, sizeof(int32_t));
        if (!basis) {
            free(returns);
            return tg_fail("out of memory");
        }
        for (int m = 0; m < 3; m++) {
            const int32_t *mat = tg_basis_matrix(b, m, 0);
            int n = t->sizes[m];
            for (int i = 0; i < n; i++)
                memcpy(basis + ((size_t)m * S + i) * S, mat + (size_t)i * n, (size_t)n * sizeof(int32_t));
        }
        tg_array_set(&ab, TG__DTYPE__I32, 3, sb, bb, basis, (size_t)3 * S * S * sizeof(int32_t));
        g.basis = &ab;
    }
    tg_array_set(&aa, TG__DTYPE__I8, 2, sa, ba, tg_game_actions(s->game), (size_t)M * 3 * S);
    tg_array_set(&pa, TG__DTYPE__I8, 3, spa, bpa, s->pol_actions, (size_t)M * K * 3 * S);
    tg_array_set(&pp, TG__DTYPE__F32, 2, spp, bpp, s->pol_probs, (size_t)M * K * sizeof(float));
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, br, returns, (size_t)M * sizeof(float));
    tg_array_set(&ai, TG__DTYPE__I32, 3, si, bi, s->initial, (size_t)a->S3 * sizeof(int32_t));
    g.target = a->cfg.game.targets[s->target];
    g.arithmetic = a->cfg.game.arithmetic;
    g.s = (uint32_t)S;
    g.actions = &aa;
    g.policy_actions = &pa;
    g.policy_probs = &pp;
    g.returns = &ar;
    g.model_version = s->version;
    g.actor = a->name;
    g.started = s->started;
    g.finished = tg_wall();
    g.solved = tg_game_solved(s->game);
    g.rank = g.solved ? M : 0;
    g.initial = &ai;
    int rc = tg_replay_link_send_game(a->link, &g);
    free(returns);
    free(basis);
    return rc;
}

/* A scheme of target ti the polishing walk found (canonical basis) as a game for replay: its terms
 * as moves, no search statistics (the moves are the policy targets), -1 a move. */
static int send_polished(tg_actor *a, int ti, const tg_fact *f, const char *who)
{
    const int S = a->S, M = tg_fact_rank(f);
    target *t = &a->targets[ti];
    int8_t *acts = calloc((size_t)M * a->A, 1);
    float *returns = malloc((size_t)M * sizeof(float));
    int rc = -1;
    if (!acts || !returns) {
        tg_fail("out of memory");
        goto done;
    }
    for (int r = 0; r < M; r++) {
        if (tg_fact_action(f, r, S, acts + (size_t)r * a->A) != 0)
            goto done;
        tg_action_canonicalize(acts + (size_t)r * a->A, S, 0);
        returns[r] = (float)-(M - r);
    }
    Tg__Game g = TG__GAME__INIT;
    Tg__Array aa, ar, ai;
    int64_t sa[2] = {M, 3 * S}, ba[2], sr[1] = {M}, br[1], si[3] = {S, S, S}, bi[3];
    tg_array_set(&aa, TG__DTYPE__I8, 2, sa, ba, acts, (size_t)M * 3 * S);
    tg_array_set(&ar, TG__DTYPE__F32, 1, sr, br, returns, (size_t)M * sizeof(float));
    tg_array_set(&ai, TG__DTYPE__I32, 3, si, bi, t->tensor, (size_t)a->S3 * sizeof(int32_t));
    g.target = a->cfg.game.targets[ti];
    g.arithmetic = a->cfg.game.arithmetic;
    g.s = (uint32_t)S;
    g.actions = &aa;
    g.returns = &ar;
    g.model_version = a->version;
    g.actor = (char *)who;
    g.started = g.finished = tg_wall();
    g.solved = 1;
    g.rank = M;
    g.initial = &ai;
    rc = tg_replay_link_send_game(a->link, &g);
done:
    free(acts);
    free(returns);
    return rc;
}

/* The polishing walk of target ti beat the actor's best rank: verified, reported as a discovery
 * and sent as a game (actor NAME/polish), so the learner trains on it like a played best game. */
static int report_polished(tg_actor *a, int ti)
{
    target *t = &a->targets[ti];
    tg_fact *f = tg_flip_best(t->walker);
    if (!f)
        return -1;
    tg_fact_mismatch mm;
    int ok = tg_fact_verify(f, 0, &mm), rank = tg_fact_rank(f);
    if (ok != 1) { /* every step keeps the sum exact: a failure here is a bug */
        char buf[256] = "";
        if (ok == 0)
            tg_fact_mismatch_str(f, &mm, buf, sizeof buf);
        tg_error("polished scheme of %s (rank %d) FAILED verification: %s", a->cfg.game.targets[ti], rank,
                 ok == 0 ? buf : tg_errmsg());
        a->st.verify_failed++;
        tg_fact_free(f);
        return 0;
    }
    a->st.best_rank[ti] = rank;
    a->st.discoveries++;
    a->st.polish_found++;
    tg_info("found T(%s) rank %d (%s, flip-graph polish of this actor's solved games, %ld flips), verified",
            a->cfg.game.targets[ti], rank, a->cfg.game.arithmetic, tg_flip_flips(t->walker));
    if (a->link) {
        char who[sizeof a->name + TG_POLISH_SUFFIX_LEN];
        snprintf(who, sizeof who, "%s" TG_POLISH_SUFFIX, a->name);
        send_discovery(a, ti, f, a->version, who);
        if (send_polished(a, ti, f, who) != 0)
            tg_warn("polished game not sent: %s", tg_errmsg());
    }
    tg_fact_free(f);
    return 0;
}

/* One slice of polishing (actor.polish_share of the time since the start), round robin over the
 * targets whose walk has a scheme and where neither it nor the actor has reached the target rank. */
static int polish(tg_actor *a)
{
    const tg_config *c = &a->cfg;
    if (c->actor.polish_share <= 0)
        return 0;
    double now = tg_now();
    if (a->st.polish_seconds >= c->actor.polish_share * (now - a->t0))
        return 0;
    for (int k = 0; k < a->n_targets; k++) {
        int ti = (a->polish_next + k) % a->n_targets;
        target *t = &a->targets[ti];
        int want = c->game.target_rank[ti], best = tg_flip_best_rank(t->walker), mine = a->st.best_rank[ti];
        if (best == 0 || (want > 0 && (best <= want || (mine > 0 && mine <= want))))
            continue;
        a->polish_next = (ti + 1) % a->n_targets;
        long before = tg_flip_flips(t->walker);
        tg_flip_walk(t->walker, 20000, c->actor.polish_plateau, 1, want > 0 ? want : 0);
        a->st.polish_flips += (uint64_t)(tg_flip_flips(t->walker) - before);
        a->st.polish_seconds += tg_now() - now;
        best = tg_flip_best_rank(t->walker);
        if (a->st.best_rank[ti] == 0 || best < a->st.best_rank[ti])
            return report_polished(a, ti);
        return 0;
    }
    return 0;
}

/* The game of slot s leaves its basis. A changed basis whose games keep ending at the best rank
 * known (game.basis_retire of them) only reproduces what is known: it leaves the choice and, once
 * its last game is over, is replaced by a fresh random basis, a new arm of the choice. The policy
 * collapses onto the line it found in a basis; in a new one it searches afresh. */
static int release_basis(tg_actor *a, slot *s, int at_best)
{
    target *t = &a->targets[s->target];
    int b = s->basis, lim = a->cfg.game.basis_retire;
    t->basis_live[b]--;
    if (b == 0 || lim <= 0)
        return 0;
    if (at_best && ++t->basis_at_best[b] >= lim && !t->basis_retiring[b]) {
        t->basis_retiring[b] = 1;
        tg_bandit_set_enabled(t->basis_choice, b - 1, 0);
    }
    if (!t->basis_retiring[b] || t->basis_live[b] > 0)
        return 0;
    drop_lines(t, b, a->cfg.game.r_limit, a->A);
    if (tg_basis_pool_replace(t->bases, b, a->cfg.game.basis_max_entry > 0 ? a->cfg.game.basis_max_entry : 1,
                              &a->rng) != 0)
        return -1;
    tg_bandit_reset_arm(t->basis_choice, b - 1);
    tg_bandit_set_enabled(t->basis_choice, b - 1, 1);
    t->basis_at_best[b] = 0;
    t->basis_retiring[b] = 0;
    a->st.bases_retired++;
    tg_debug("T(%s): basis %d retired after %d games at rank %d or more; a new one in its place",
             a->cfg.game.targets[s->target], b, lim, a->st.best_rank[s->target]);
    return 0;
}

/* this interval's solved games of target i by rank, [r_limit + 1]; kind 1: canonical basis only */
static uint32_t *by_rank(tg_actor *a, int kind, int i)
{
    return a->t_by_rank + ((size_t)kind * (size_t)a->n_targets + (size_t)i) * (size_t)(a->cfg.game.r_limit + 1);
}

static int finish_game(tg_actor *a, slot *s)
{
    a->st.games++;
    a->int_games++;
    a->int_moves += (uint64_t)s->moves;
    double G = 0; /* the game's return: stats, logs, the basis choice */
    for (int i = 0; i < s->moves; i++)
        G += s->rewards[i];
    a->int_return += G;
    a->int_solved += tg_game_solved(s->game) ? 1 : 0;
    for (int k = 0; k < (s->basis == 0 ? 2 : 1); k++) {
        a->t_games[k][s->target]++;
        if (tg_game_solved(s->game)) {
            TG_ASSERT(s->moves <= a->cfg.game.r_limit); /* a game ends at the step limit */
            by_rank(a, k, s->target)[s->moves]++;
        }
    }
    if (tg_game_solved(s->game))
        a->int_solved_rank_sum += (uint64_t)s->moves;
    if (s->target == 0)
        a->basis_games[s->basis]++;
    /* a restarted game says how its line ends, not how its basis plays: it leaves the choice of
     * basis and its retirement alone */
    if (s->basis > 0 && !s->restart)
        tg_bandit_update(a->targets[s->target].basis_choice, s->basis - 1, G);
    tg_debug("game over: T(%s) return %g in %d moves%s", a->cfg.game.targets[s->target], G, s->moves,
             tg_game_solved(s->game) ? ", solved" : "");
    int best = a->st.best_rank[s->target]; /* before this game: a new best is not "at best" */
    int at_best = !s->restart && tg_game_solved(s->game) && best > 0 && s->moves >= best;
    if (tg_game_solved(s->game)) {
        a->st.solved++;
        if (s->restart && s->restart_best > 0 && s->moves < s->restart_best)
            a->st.restart_improved++;
        report_solved(a, s);
        keep_line(a, s, best);
    }
    if (a->link && send_game(a, s) != 0)
        return -1;
    if (release_basis(a, s, at_best) != 0)
        return -1;
    return new_game(a, s);
}

/* The search of this move is over: pick, record and play the move. */
static int make_move(tg_actor *a, slot *s)
{
    int32_t *visits = a->visits;
    float *q = a->q, *pi = a->pi;
    const int8_t **acts = a->actp;
    int n = tg_tree_root_children(s->tree, visits, q, acts);
    int total = 0;
    for (int i = 0; i < n; i++)
        total += visits[i];
    if (n == 0 || total == 0) { /* no valid action was ever proposed here */
        a->st.dropped_games++;
        if (release_basis(a, s, 0) != 0)
            return -1;
        return new_game(a, s);
    }
    /* The search's breadth: a policy that has collapsed onto one line samples the same action K
     * times, and a root with one child explores nothing. */
    a->int_root_n += (uint64_t)n;
    a->int_root_moves++;
    if (s->moves == 0) {
        a->int_first_n += (uint64_t)n;
        a->int_first_moves++;
    }
    tg_mcts_improved_policy(visits, n, a->mp.n_bar, pi);
    int mv = s->moves, K = a->K, A = a->A;
    int8_t *pa = s->pol_actions + (size_t)mv * K * A;
    float *pp = s->pol_probs + (size_t)mv * K;
    memset(pa, 0, (size_t)K * A);
    memset(pp, 0, (size_t)K * sizeof(float));
    for (int i = 0; i < n; i++) {
        memcpy(pa + (size_t)i * A, acts[i], (size_t)A);
        pp[i] = pi[i];
    }
    int ch = mv - s->restart < a->cfg.actor.explore_moves ? tg_mcts_sample(pi, n, &a->rng) : tg_mcts_act(visits, q, pi, n, &a->rng);
    s->rewards[mv] = (float)tg_game_play(s->game, acts[ch]);
    s->moves++;
    a->st.moves++;
    if (tg_game_done(s->game))
        return finish_game(a, s);
    a->st.reused_nodes += (uint64_t)tg_tree_advance(s->tree, a->spare, tg_game_hash(s->game));
    tg_tree_root_refresh(s->tree, &a->mp);
    s->sims = s->busy = s->full = 0;
    return 0;
}

/* Puts the leaf's position into the batch being filled, under a random signed permutation. */
static void add_query(tg_actor *a, int li)
{
    leaf *l = &a->leaves[li];
    slot *s = &a->slots[l->slot];
    target *t = &a->targets[s->target];
    tg_eval_batch *b = a->cur;
    int i = b->n++;
    ((int *)b->user)[i] = li;
    l->perm = t->n_perms > 1 ? (int)tg_rng_below(&a->rng, (uint32_t)t->n_perms) : 0;
    const tg_sperm *p = &t->perms[l->perm];
    if (a->ev->wants_features) {
        float *dst = b->tensors + (size_t)i * a->T * a->S3;
        tg_game_features(a->scratch, l->perm ? a->ftmp : dst, a->ns, b->scalars + (size_t)i * a->ns);
        if (l->perm)
            for (int k = 0; k < a->T; k++)
                tg_sperm_apply_tensor_f(p, a->ftmp + (size_t)k * a->S3, dst + (size_t)k * a->S3);
    } else {
        int32_t *dst = b->residuals + (size_t)i * a->S3;
        if (l->perm)
            tg_sperm_apply_tensor(p, tg_game_residual(a->scratch), dst);
        else
            memcpy(dst, tg_game_residual(a->scratch), (size_t)a->S3 * sizeof(int32_t));
    }
}

/* One step of a game: a leaf for the batch, a finished simulation, or a move. >0 if it did
 * anything. */
static int step_slot(tg_actor *a, slot *s, int si)
{
    if (!s->active)
        return 0;
    if (s->pending == 0 && (s->sims >= a->cfg.actor.simulations || s->full)) {
        if (make_move(a, s) != 0)
            return -1;
        return 1;
    }
    if (s->busy || s->full || s->pending >= a->lpg || s->sims + s->pending >= a->cfg.actor.simulations ||
        a->n_leaf_free == 0)
        return 0;
    int li = a->leaf_free[a->n_leaf_free - 1];
    leaf *l = &a->leaves[li];
    int r = tg_tree_select(s->tree, &a->mp, s->game, a->scratch, &l->path);
    switch (r) {
    case TG_SEL_LEAF:
        a->n_leaf_free--;
        l->slot = si;
        s->pending++;
        add_query(a, li);
        return 1;
    case TG_SEL_DONE:
        s->sims++;
        a->st.simulations++;
        return 1;
    case TG_SEL_BUSY:
        s->busy = 1;
        a->st.busy++;
        return 0;
    default:
        s->full = 1;
        a->st.arena_full++;
        return 0;
    }
}

/* Fills the current batch from the games, round robin. Returns the work done, -1 on error. */
static int produce(tg_actor *a)
{
    if (!a->cur) {
        if (a->n_batch_free == 0)
            return 0;
        a->cur = a->batches[a->batch_free[--a->n_batch_free]];
        a->cur->n = 0;
    }
    int work = 0, idle = 0;
    while (a->cur->n < a->cur->cap && idle < a->n_slots) {
        int si = a->rr, done = 0, r;
        a->rr = (a->rr + 1) % a->n_slots;
        /* a few steps of one game in a row while its tree is in cache */
        while (done < 32 && a->cur->n < a->cur->cap && (r = step_slot(a, &a->slots[si], si)) != 0) {
            if (r < 0)
                return -1;
            done += r;
        }
        if (done > 0) {
            work += done;
            idle = 0;
        } else {
            idle++;
        }
    }
    return work;
}

static void consume(tg_actor *a, tg_eval_batch *b)
{
    const int A = a->A, k = b->k;
    for (int i = 0; i < b->n; i++) {
        int li = ((int *)b->user)[i];
        leaf *l = &a->leaves[li];
        slot *s = &a->slots[l->slot];
        target *t = &a->targets[s->target];
        const int32_t *tok = b->tokens + (size_t)i * a->K * a->n_steps;
        int n = 0;
        for (int j = 0; j < k; j++) /* back to the game's frame; invalid samples dropped */
            n += tg_decode_action(a->dec, tok + (size_t)j * a->n_steps, l->perm ? &t->inv[l->perm] : NULL, t->sizes,
                                  a->acts + (size_t)n * A);
        float v = isfinite(b->values[i]) ? b->values[i] : 0.0f;
        tg_tree_expand(s->tree, &a->mp, &l->path, a->acts, n, v);
        size_t bytes = tg_tree_bytes(s->tree);
        if (bytes > a->st.tree_bytes_max)
            a->st.tree_bytes_max = bytes;
        s->pending--;
        s->sims++;
        s->busy = 0;
        if (b->model_version > s->version)
            s->version = b->model_version;
        if (b->model_version > a->version)
            a->version = b->model_version;
        a->st.simulations++;
        a->leaf_free[a->n_leaf_free++] = li;
    }
    for (int i = 0; i < a->n_batches; i++)
        if (a->batches[i] == b)
            a->batch_free[a->n_batch_free++] = i;
}

/* "actor-<name>", usable as a file name (status file, TensorBoard directory). */
static void process_name(const tg_actor *a, char *buf, size_t len)
{
    snprintf(buf, len, "actor-%s", a->name);
    for (char *p = buf; *p; p++)
        if (*p == '/' || *p == ':')
            *p = '-';
}

/* one target's finished games of this interval as JSON (kind 1: the canonical basis's) */
static json_t *recent_json(tg_actor *a, int kind, int i)
{
    json_t *t = json_object(), *ranks = json_object();
    const uint32_t *h = by_rank(a, kind, i);
    uint64_t solved = 0;
    for (int r = 0; ranks && r <= a->cfg.game.r_limit; r++)
        if (h[r]) {
            char k[16];
            snprintf(k, sizeof k, "%d", r);
            json_object_set_new(ranks, k, json_integer(h[r]));
            solved += h[r];
        }
    json_object_set_new(t, "games", json_integer((json_int_t)a->t_games[kind][i]));
    json_object_set_new(t, "solved", json_integer((json_int_t)solved));
    json_object_set_new(t, "ranks", ranks);
    return t;
}

static void write_status(tg_actor *a, double dt, double sims_rate, double evals_rate, const char *state)
{
    char host[64] = "localhost", proc[200];
    gethostname(host, sizeof host - 1);
    json_t *o = json_object(), *best = json_object();
    if (!o || !best) {
        json_decref(o);
        json_decref(best);
        return;
    }
    for (int i = 0; i < a->n_targets; i++)
        json_object_set_new(best, a->cfg.game.targets[i], json_integer(a->st.best_rank[i]));
    json_object_set_new(o, "process", json_string(a->name));
    json_object_set_new(o, "role", json_string("actor"));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "host", json_string(host));
    json_object_set_new(o, "started", json_real(a->started_wall));
    json_object_set_new(o, "updated", json_real(tg_wall()));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "games", json_integer((json_int_t)a->st.games));
    json_object_set_new(o, "solved", json_integer((json_int_t)a->st.solved));
    json_object_set_new(o, "simulations", json_integer((json_int_t)a->st.simulations));
    json_object_set_new(o, "simulations_per_s", json_real(sims_rate));
    json_object_set_new(o, "evals_per_s", json_real(evals_rate));
    json_object_set_new(o, "requests_in_flight", json_integer(a->ev->inflight(a->ev)));
    json_object_set_new(o, "reissued", json_integer((json_int_t)a->ev->reissued));
    json_object_set_new(o, "unacked", json_integer(a->link ? tg_replay_link_unacked(a->link) : 0));
    json_object_set_new(o, "model_version", json_integer((json_int_t)a->version));
    json_object_set_new(o, "verify_failed", json_integer((json_int_t)a->st.verify_failed));
    json_object_set_new(o, "bases_retired", json_integer((json_int_t)a->st.bases_retired));
    json_object_set_new(o, "restarts", json_integer((json_int_t)a->st.restarts));
    json_object_set_new(o, "restart_improved", json_integer((json_int_t)a->st.restart_improved));
    if (a->cfg.actor.polish_share > 0) {
        json_object_set_new(o, "polish_flips", json_integer((json_int_t)a->st.polish_flips));
        json_object_set_new(o, "polish_seconds", json_real(a->st.polish_seconds));
        json_object_set_new(o, "polish_found", json_integer((json_int_t)a->st.polish_found));
    }
    json_object_set_new(o, "best_rank", best);
    /* the games finished since the last stats line: how the policy plays now (tg status sums them
     * over the actors) */
    json_t *rec = json_object();
    json_object_set_new(rec, "seconds", json_real(dt));
    json_object_set_new(rec, "games", json_integer((json_int_t)a->int_games));
    json_object_set_new(rec, "solved", json_integer((json_int_t)a->int_solved));
    json_object_set_new(rec, "solved_rank_sum", json_integer((json_int_t)a->int_solved_rank_sum));
    /* {"2,3,3": {"games": g, "solved": s, "ranks": {"17": n, ...}, "canonical": {the same for the
     * games in the canonical basis}}}, "canonical" only where games change basis */
    json_t *per = json_object();
    for (int i = 0; per && i < a->n_targets; i++) {
        json_t *t = recent_json(a, 0, i);
        if (t && a->cfg.game.change_of_basis)
            json_object_set_new(t, "canonical", recent_json(a, 1, i));
        json_object_set_new(per, a->cfg.game.targets[i], t);
    }
    json_object_set_new(rec, "targets", per);
    json_object_set_new(o, "recent", rec);
    process_name(a, proc, sizeof proc);
    if (tg_runinfo_write_status(a->status_dir, proc, o) != 0)
        tg_debug("status file: %s", tg_errmsg());
    json_decref(o);
}

static void write_tb(tg_actor *a, double dt, double sims_rate, double evals_rate, int top_games)
{
    int64_t step = (int64_t)a->st.games;
    tg_tb_scalar(a->tb, "actor/simulations_per_s", step, sims_rate);
    tg_tb_scalar(a->tb, "actor/evaluations_per_s", step, evals_rate);
    tg_tb_scalar(a->tb, "actor/games_per_s", step, (double)a->int_games / dt);
    tg_tb_scalar(a->tb, "actor/model_version", step, (double)a->version);
    if (a->cfg.game.restart_prob > 0) { /* totals, like best_rank */
        tg_tb_scalar(a->tb, "actor/restarts", step, (double)a->st.restarts);
        tg_tb_scalar(a->tb, "actor/restart_improved", step, (double)a->st.restart_improved);
    }
    if (a->int_games > 0) { /* this interval's finished games */
        tg_tb_scalar(a->tb, "actor/solved_fraction", step, (double)a->int_solved / (double)a->int_games);
        tg_tb_scalar(a->tb, "actor/mean_return", step, a->int_return / (double)a->int_games);
        tg_tb_scalar(a->tb, "actor/mean_moves", step, (double)a->int_moves / (double)a->int_games);
        tg_tb_scalar(a->tb, "actor/top_basis_share", step, (double)top_games / (double)a->int_games);
    }
    if (a->int_solved > 0)
        tg_tb_scalar(a->tb, "actor/solved_mean_rank", step, (double)a->int_solved_rank_sum / (double)a->int_solved);
    for (int i = 0; a->n_targets > 1 && i < a->n_targets; i++) { /* the totals above mix the targets */
        char tag[80];
        int R = a->cfg.game.r_limit;
        const uint32_t *h = by_rank(a, 0, i);
        uint64_t sum = 0, solved = 0;
        for (int r = 0; r <= R; r++) {
            sum += (uint64_t)r * h[r];
            solved += h[r];
        }
        if (a->t_games[0][i] > 0) {
            snprintf(tag, sizeof tag, "actor/solved_fraction/%s", a->cfg.game.targets[i]);
            tg_tb_scalar(a->tb, tag, step, (double)solved / (double)a->t_games[0][i]);
        }
        if (solved > 0) {
            snprintf(tag, sizeof tag, "actor/solved_mean_rank/%s", a->cfg.game.targets[i]);
            tg_tb_scalar(a->tb, tag, step, (double)sum / (double)solved);
        }
    }
    if (a->int_root_moves > 0)
        tg_tb_scalar(a->tb, "actor/root_children", step, (double)a->int_root_n / (double)a->int_root_moves);
    if (a->int_first_moves > 0)
        tg_tb_scalar(a->tb, "actor/root_children_first_move", step,
                     (double)a->int_first_n / (double)a->int_first_moves);
    for (int i = 0; i < a->n_targets; i++)
        if (a->st.best_rank[i] > 0) {
            char tag[64];
            snprintf(tag, sizeof tag, "actor/best_rank/%s", a->cfg.game.targets[i]);
            tg_tb_scalar(a->tb, tag, step, a->st.best_rank[i]);
        }
    if (a->cfg.actor.polish_share > 0) {
        tg_tb_scalar(a->tb, "actor/polish_flips", step, (double)a->st.polish_flips);
        tg_tb_scalar(a->tb, "actor/polish_found", step, (double)a->st.polish_found);
    }
    if (tg_tb_flush(a->tb) != 0)
        tg_debug("tensorboard: %s", tg_errmsg());
}

static void log_stats(tg_actor *a, double now, const char *state)
{
    double dt = now - a->last_stats;
    if (dt <= 0)
        dt = 1e-9;
    double sims_rate = (double)(a->st.simulations - a->last_sims) / dt;
    double evals_rate = (double)(a->ev->positions - a->last_pos) / dt;
    int top = 0; /* the most played basis of target 0 in this interval */
    for (int i = 1; i < a->n_basis_games; i++)
        if (a->basis_games[i] > a->basis_games[top])
            top = i;
    if (a->status_dir[0])
        write_status(a, dt, sims_rate, evals_rate, state);
    if (a->tb)
        write_tb(a, dt, sims_rate, evals_rate, a->basis_games[top]);
    char pol[160] = "";
    if (a->cfg.actor.polish_share > 0) { /* the walks' best ranks: where polishing stands */
        size_t o = (size_t)snprintf(pol, sizeof pol, "; polish %.1fM flips in %.0f s, walks at",
                                    (double)a->st.polish_flips / 1e6, a->st.polish_seconds);
        for (int i = 0; i < a->n_targets && o < sizeof pol - 24; i++)
            o += (size_t)snprintf(pol + o, sizeof pol - o, " %s:%d", a->cfg.game.targets[i],
                                  tg_flip_best_rank(a->targets[i].walker));
    }
    char breadth[400];
    snprintf(breadth, sizeof breadth,
             "; last %.0f s: %llu games, solved %llu (mean rank %.2f), basis %d has %d, root children %.1f "
             "(first move %.1f); %llu bases retired%s",
             dt, (unsigned long long)a->int_games, (unsigned long long)a->int_solved,
             a->int_solved ? (double)a->int_solved_rank_sum / (double)a->int_solved : 0.0, top,
             a->basis_games[top],
             a->int_root_moves ? (double)a->int_root_n / (double)a->int_root_moves : 0.0,
             a->int_first_moves ? (double)a->int_first_n / (double)a->int_first_moves : 0.0,
             (unsigned long long)a->st.bases_retired, pol);
    a->int_games = a->int_solved = a->int_moves = 0;
    a->int_return = 0;
    a->int_root_n = a->int_root_moves = a->int_first_n = a->int_first_moves = 0;
    a->int_solved_rank_sum = 0;
    memset(a->basis_games, 0, (size_t)a->n_basis_games * sizeof *a->basis_games);
    memset(a->t_games, 0, sizeof a->t_games);
    memset(a->t_by_rank, 0, 2 * (size_t)a->n_targets * (size_t)(a->cfg.game.r_limit + 1) * sizeof *a->t_by_rank);
    a->last_stats = now;
    a->last_sims = a->st.simulations;
    a->last_pos = a->ev->positions;
    if (a->opts.quiet)
        return;
    char best[256] = "";
    size_t off = 0;
    for (int i = 0; i < a->n_targets && off < sizeof best - 32; i++)
        off += (size_t)snprintf(best + off, sizeof best - off, "%s%s:%d", i ? " " : "", a->cfg.game.targets[i],
                                a->st.best_rank[i]);
    tg_info("games %llu (solved %llu, best %s), %.0f simulations/s, %.0f evaluations/s, %d requests in flight, "
            "%llu re-issued, %d games unacked, model version %llu%s",
            (unsigned long long)a->st.games, (unsigned long long)a->st.solved, best, sims_rate, evals_rate,
            a->ev->inflight(a->ev), (unsigned long long)a->ev->reissued,
            a->link ? tg_replay_link_unacked(a->link) : 0, (unsigned long long)a->version, breadth);
}

int tg_actor_run(tg_actor *a, volatile int *stop)
{
    const tg_config *c = &a->cfg;
    double cpu0 = tg_thread_cpu();
    if (a->status_dir[0] && !a->tb) {
        char proc[200];
        process_name(a, proc, sizeof proc);
        if (!(a->tb = tg_tb_open(a->status_dir, proc)))
            tg_warn("no TensorBoard scalars: %s", tg_errmsg());
    }
    a->t0 = a->last_stats = tg_now();
    a->started_wall = tg_wall();
    for (int i = 0; i < a->n_slots; i++)
        if (!a->slots[i].active && new_game(a, &a->slots[i]) != 0)
            return -1;
    int rc = 0, paused = 0;
    double last_replay = 0;
    while (!(stop && *stop)) {
        double now = tg_now();
        if (a->opts.max_seconds > 0 && now - a->t0 >= a->opts.max_seconds)
            break;
        if (a->opts.max_games > 0 && (int64_t)a->st.games >= a->opts.max_games)
            break;
        int any = 0;
        for (int i = 0; i < a->n_slots && !any; i++)
            any = a->slots[i].active;
        if (!any)
            break;
        int work = 0;
        int backlog = a->link && tg_replay_link_unacked(a->link) >= c->actor.max_unacked;
        if (backlog && !paused)
            tg_warn("replay has not acknowledged %d games: pausing self-play", tg_replay_link_unacked(a->link));
        paused = backlog;
        if (!backlog) {
            work = produce(a);
            if (work < 0) {
                rc = -1;
                break;
            }
        }
        /* send the batch when full, or when no game can add to it */
        if (a->cur && a->cur->n > 0 && (a->cur->n == a->cur->cap || work == 0) &&
            a->ev->inflight(a->ev) < c->actor.inflight) {
            if (a->ev->submit(a->ev, a->cur) != 0) {
                rc = -1;
                break;
            }
            a->cur = NULL;
            work++;
        }
        tg_eval_batch *b;
        int timeout = work > 0 ? 0 : 20, pr;
        while ((pr = a->ev->poll(a->ev, timeout, &b)) == 1) {
            consume(a, b);
            timeout = 0;
        }
        if (pr < 0) {
            rc = -1;
            break;
        }
        if (a->link && (now - last_replay > 0.05 || backlog)) {
            if (tg_replay_link_poll(a->link, backlog ? 20 : 0) != 0) {
                rc = -1;
                break;
            }
            last_replay = now;
        }
        if (polish(a) != 0) {
            rc = -1;
            break;
        }
        if (now - a->last_stats >= c->actor.stats_s)
            log_stats(a, now, backlog ? "waiting for replay" : "playing");
    }
    a->stopping = 1;
    /* give the replay server a moment to acknowledge the finished games */
    if (a->link && rc == 0) {
        double t = tg_now();
        while (tg_replay_link_unacked(a->link) > 0 && tg_now() - t < 5.0)
            if (tg_replay_link_poll(a->link, 50) != 0)
                break;
        if (tg_replay_link_unacked(a->link) > 0)
            tg_warn("%d finished games were not acknowledged by replay", tg_replay_link_unacked(a->link));
    }
    a->st.seconds += tg_now() - a->t0;
    a->st.cpu_seconds += tg_thread_cpu() - cpu0;
    if (a->status_dir[0])
        log_stats(a, tg_now(), rc == 0 ? "stopped" : "failed");
    return rc;
}
