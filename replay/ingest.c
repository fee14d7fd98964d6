#include "replay/ingest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/action.h"
#include "common/err.h"
#include "common/flip.h"
#include "common/wire.h"

int replay_target_index(const tg_config *c, tg_dims d)
{
    for (int i = 0; i < c->game.n_targets; i++)
        if (c->game.dims[i].n == d.n && c->game.dims[i].m == d.m && c->game.dims[i].p == d.p)
            return i;
    return -1;
}

/* Entries in F, zero beyond the mode sizes, u, v and w non-zero. */
static int check_action(const tg_config *c, const int sizes[3], const int8_t *a, const char *what, int idx)
{
    int S = c->game.S;
    for (int m = 0; m < 3; m++)
        for (int i = 0; i < S; i++) {
            int8_t x = a[m * S + i];
            if (i >= sizes[m] && x != 0)
                return tg_fail("%s %d: entry %d of %c is %d beyond the mode size %d", what, idx, i, "uvw"[m], x, sizes[m]);
            if (c->game.F.index_of[x + 128] < 0)
                return tg_fail("%s %d: entry %d of %c is %d, not in the coefficient set %s", what, idx, i, "uvw"[m], x,
                               c->game.coeffs);
        }
    if (!tg_action_nonzero(a, S))
        return tg_fail("%s %d: u, v or w is all zero", what, idx);
    return 0;
}

static int check_residual(const int32_t *t, int S, const int sizes[3], const char *what)
{
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++)
            for (int k = 0; k < S; k++) {
                int32_t x = t[((size_t)a * S + b) * S + k];
                if (x != 0 && (a >= sizes[0] || b >= sizes[1] || k >= sizes[2]))
                    return tg_fail("%s: non-zero entry (%d,%d,%d) in the padding", what, a, b, k);
                if (x > 32767 || x < -32767)
                    return tg_fail("%s: entry (%d,%d,%d) = %d is out of range", what, a, b, k, x);
            }
    return 0;
}

replay_game *replay_ingest_game(const tg_config *c, const Tg__Game *m)
{
    int S = c->game.S, A = 3 * S;
    size_t S3 = (size_t)S * S * S;
    tg_dims d;
    tg_arith ar;
    replay_game *g = NULL;
    if (!m->target || tg_dims_parse(m->target, &d)) {
        tg_fail_ctx("game target: ");
        return NULL;
    }
    if (replay_target_index(c, d) < 0) {
        tg_fail("game target %s is not one of this run's targets", m->target);
        return NULL;
    }
    if (!m->arithmetic || tg_arith_parse(m->arithmetic, &ar)) {
        tg_fail_ctx("game arithmetic: ");
        return NULL;
    }
    if ((ar == TG_ARITH_MOD2) != (c->game.mod2 != 0)) {
        tg_fail("game arithmetic %s differs from the run's %s", m->arithmetic, c->game.arithmetic);
        return NULL;
    }
    if (m->s != (uint32_t)S) {
        tg_fail("game S = %u, the run's S is %d", m->s, S);
        return NULL;
    }
    int64_t sh_a[2] = {-1, A};
    if (tg_array_check(m->actions, TG__DTYPE__I8, 2, sh_a, "game actions"))
        return NULL;
    int64_t moves = m->actions->shape[0];
    if (moves < 1 || moves > c->game.r_limit) {
        tg_fail("game has %lld moves (1 .. r_limit = %d)", (long long)moves, c->game.r_limit);
        return NULL;
    }
    int64_t sh_r[1] = {moves};
    if (tg_array_check(m->returns, TG__DTYPE__F32, 1, sh_r, "game returns"))
        return NULL;
    int64_t K = 0;
    if (m->policy_actions || m->policy_probs) {
        int64_t sh_pa[3] = {moves, -1, A};
        if (tg_array_check(m->policy_actions, TG__DTYPE__I8, 3, sh_pa, "game policy_actions"))
            return NULL;
        K = m->policy_actions->shape[1];
        int64_t sh_pp[2] = {moves, K};
        if (tg_array_check(m->policy_probs, TG__DTYPE__F32, 2, sh_pp, "game policy_probs"))
            return NULL;
    }
    int sizes[3];
    tg_dims_modes(d, sizes);
    if (m->basis) {
        int64_t sh_b[3] = {3, -1, -1};
        if (tg_array_check(m->basis, TG__DTYPE__I32, 3, sh_b, "game basis"))
            return NULL;
        if (m->basis->shape[1] != m->basis->shape[2] || m->basis->shape[1] > S || m->basis->shape[1] < 1) {
            tg_fail("game basis: shape [3, %lld, %lld], expected [3, s, s] with s <= S = %d",
                    (long long)m->basis->shape[1], (long long)m->basis->shape[2], S);
            return NULL;
        }
        if (!m->initial) {
            tg_fail("game has a basis but no initial residual");
            return NULL;
        }
    }
    if (m->initial) {
        int64_t sh_i[3] = {S, S, S};
        if (tg_array_check(m->initial, TG__DTYPE__I32, 3, sh_i, "game initial"))
            return NULL;
    }
    /* count the children with positive probability */
    const float *pp = NULL;
    float *probs = NULL;
    int n_pol = 0;
    if (K > 0) {
        probs = malloc((size_t)(moves * K) * sizeof *probs);
        if (!probs) {
            tg_fail("out of memory");
            return NULL;
        }
        memcpy(probs, m->policy_probs->data.data, (size_t)(moves * K) * sizeof *probs);
        pp = probs;
        for (int64_t i = 0; i < moves * K; i++) {
            if (!isfinite(pp[i]) || pp[i] < 0) {
                tg_fail("game policy_probs: entry %lld is %g (must be finite and >= 0)", (long long)i, pp[i]);
                free(probs);
                return NULL;
            }
            n_pol += pp[i] > 0;
        }
    }
    g = replay_game_alloc(S, (int)moves, n_pol, 1, m->basis != NULL);
    if (!g) {
        free(probs);
        tg_fail("out of memory");
        return NULL;
    }
    g->dims = d;
    g->mod2 = c->game.mod2;
    g->model_version = m->model_version;
    g->started = m->started;
    g->finished = m->finished;
    snprintf(g->actor, sizeof g->actor, "%s", m->actor ? m->actor : "");
    /* a long name loses its end in the fixed-size field, but "/polish" (actor.polish_share's
     * games) must stay: it tells them from the network's (tg games) */
    size_t an = m->actor ? strlen(m->actor) : 0;
    if (an >= sizeof g->actor && strcmp(m->actor + an - TG_POLISH_SUFFIX_LEN, TG_POLISH_SUFFIX) == 0)
        memcpy(g->actor + sizeof g->actor - 1 - TG_POLISH_SUFFIX_LEN, TG_POLISH_SUFFIX, TG_POLISH_SUFFIX_LEN + 1);
    memcpy(g->actions, m->actions->data.data, (size_t)moves * A);
    memcpy(g->returns, m->returns->data.data, (size_t)moves * sizeof(float));
    for (int64_t i = 0; i < moves; i++) {
        if (check_action(c, sizes, g->actions + i * A, "game move", (int)i))
            goto fail;
        if (!isfinite(g->returns[i])) {
            tg_fail("game returns: entry %lld is not finite", (long long)i);
            goto fail;
        }
    }
    int k = 0;
    for (int64_t i = 0; i < moves; i++) {
        g->pol_off[i] = k;
        for (int64_t j = 0; j < K; j++) {
            if (!(pp[i * K + j] > 0))
                continue;
            const int8_t *a = (const int8_t *)m->policy_actions->data.data + (size_t)(i * K + j) * A;
            if (check_action(c, sizes, a, "game policy child of move", (int)i))
                goto fail;
            memcpy(g->pol_actions + (size_t)k * A, a, A);
            g->pol_probs[k++] = pp[i * K + j];
        }
    }
    g->pol_off[moves] = k;
    if (m->initial) {
        memcpy(g->initial, m->initial->data.data, S3 * sizeof(int32_t));
        if (check_residual(g->initial, S, sizes, "game initial"))
            goto fail;
    } else if (tg_matmul_tensor(d, S, g->initial)) {
        goto fail;
    }
    if (m->basis) {
        int s = (int)m->basis->shape[1];
        const uint8_t *b = m->basis->data.data;
        for (int mode = 0; mode < 3; mode++)
            for (int r = 0; r < s; r++)
                memcpy(g->basis + ((size_t)mode * S + r) * S, b + (((size_t)mode * s + r) * s) * 4, (size_t)s * 4);
    }
    /* solved is recomputed, never trusted */
    g->solved = replay_game_ends_at_zero(g);
    g->rank = g->solved ? g->n_moves : 0;
    free(probs);
    return g;
fail:
    free(probs);
    replay_game_unref(g);
    return NULL;
}

int replay_game_check(const tg_config *c, const replay_game *g)
{
    int S = c->game.S, A = 3 * S;
    if (g->S != S)
        return tg_fail("game %llu: S = %d, the run's S is %d", (unsigned long long)g->id, g->S, S);
    if (replay_target_index(c, g->dims) < 0)
        return tg_fail("game %llu: target %d,%d,%d is not one of this run's targets", (unsigned long long)g->id,
                       g->dims.n, g->dims.m, g->dims.p);
    if (g->mod2 != c->game.mod2)
        return tg_fail("game %llu: arithmetic differs from the run's %s", (unsigned long long)g->id, c->game.arithmetic);
    int sizes[3];
    tg_dims_modes(g->dims, sizes);
    for (int i = 0; i < g->n_moves; i++)
        if (check_action(c, sizes, g->actions + (size_t)i * A, "move", i))
            return tg_fail_ctx("game %llu: ", (unsigned long long)g->id);
    for (int i = 0; i < g->n_pol; i++)
        if (check_action(c, sizes, g->pol_actions + (size_t)i * A, "policy child", i))
            return tg_fail_ctx("game %llu: ", (unsigned long long)g->id);
    if (g->initial && check_residual(g->initial, S, sizes, "initial"))
        return tg_fail_ctx("game %llu: ", (unsigned long long)g->id);
    return 0;
}

tg_fact *replay_ingest_discovery(const tg_config *c, const Tg__Discovery *m)
{
    tg_dims d;
    tg_arith ar;
    if (!m->target || tg_dims_parse(m->target, &d)) {
        tg_fail_ctx("discovery target: ");
        return NULL;
    }
    if (!m->arithmetic || tg_arith_parse(m->arithmetic, &ar)) {
        tg_fail_ctx("discovery arithmetic: ");
        return NULL;
    }
    (void)c;
    if (m->rank < 1 || m->rank > 100000) {
        tg_fail("discovery rank %d is out of range", m->rank);
        return NULL;
    }
    int modes[3];
    tg_dims_modes(d, modes);
    int64_t su[2] = {m->rank, modes[0]}, sv[2] = {m->rank, modes[1]}, sw[2] = {m->rank, modes[2]};
    if (tg_array_check(m->u, TG__DTYPE__I64, 2, su, "discovery u") ||
        tg_array_check(m->v, TG__DTYPE__I64, 2, sv, "discovery v") ||
        tg_array_check(m->w, TG__DTYPE__I64, 2, sw, "discovery w"))
        return NULL;
    tg_fact *f = tg_fact_new(d, m->rank, 1, ar);
    if (!f)
        return NULL;
    memcpy(tg_fact_u(f), m->u->data.data, m->u->data.len);
    memcpy(tg_fact_v(f), m->v->data.data, m->v->data.len);
    memcpy(tg_fact_w(f), m->w->data.data, m->w->data.len);
    tg_fact_mismatch mm;
    int ok = tg_fact_verify(f, ar == TG_ARITH_MOD2, &mm);
    if (ok == 1)
        return f;
    if (ok == 0) {
        char buf[256];
        tg_fact_mismatch_str(f, &mm, buf, sizeof buf);
        tg_fail("discovery for %s of rank %d is not exact: %s", m->target, m->rank, buf);
    } else {
        tg_fail_ctx("verifying the discovery: ");
    }
    tg_fact_free(f);
    return NULL;
}
