#include "replay/demos.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/rng.h"
#include "common/synth.h"

#define MAX_THREADS 64

struct replay_demos {
    const tg_config *c;
    replay_table *t;
    _Atomic uint64_t *next_id;
    pthread_t th[MAX_THREADS];
    int n;
    atomic_int running, stop;
    atomic_llong generated;
};

static void synth_cfg(const tg_config *c, int target, tg_synth_cfg *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->S = c->game.S;
    tg_dims_modes(c->game.dims[target], sc->sizes);
    sc->rank_min = c->replay.demos_rank_min;
    sc->rank_max = c->replay.demos_rank_max;
    sc->mod2 = c->game.mod2;
    sc->F = c->game.F;
    if (c->replay.demos_probs[0]) { /* validated by tg_config_finish */
        char buf[sizeof c->replay.demos_probs], *save = NULL;
        snprintf(buf, sizeof buf, "%s", c->replay.demos_probs);
        int i = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok && i < TG_MAX_F; tok = strtok_r(NULL, ",", &save))
            sc->probs[i++] = strtod(tok, NULL);
    }
}

replay_game *replay_demo_make(const tg_config *c, int target, tg_rng *rng)
{
    tg_synth_cfg sc;
    synth_cfg(c, target, &sc);
    int S = c->game.S, A = 3 * S;
    int8_t *acts = malloc((size_t)sc.rank_max * A);
    int32_t *tensor = malloc((size_t)S * S * S * sizeof *tensor);
    replay_game *g = NULL;
    if (acts && tensor) {
        int R = tg_synth_generate(&sc, rng, acts, tensor);
        if ((g = replay_game_alloc(S, R, 0, 0, 0))) {
            for (int k = 0; k < R; k++) { /* play order: the factor list reversed */
                memcpy(g->actions + (size_t)k * A, acts + (size_t)(R - 1 - k) * A, A);
                g->returns[k] = (float)-(R - k);
            }
            g->dims = c->game.dims[target];
            g->mod2 = c->game.mod2;
            g->solved = 1;
            g->rank = R;
            g->finished = g->started = tg_wall();
            snprintf(g->actor, sizeof g->actor, "synthetic");
        }
    }
    free(acts);
    free(tensor);
    return g;
}

typedef struct arg {
    replay_demos *d;
    int idx;
} arg;

static void *run(void *p)
{
    replay_demos *d = ((arg *)p)->d;
    int idx = ((arg *)p)->idx;
    free(p);
    tg_rng rng;
    tg_rng_seed(&rng, d->c->run.seed ^ (uint64_t)(tg_wall() * 1e6), 0x64656d6fULL + (uint64_t)idx);
    while (!atomic_load(&d->stop) && replay_table_positions(d->t) < d->c->replay.demos_size) {
        int target = (int)tg_rng_below(&rng, (uint32_t)d->c->game.n_targets);
        replay_game *g = replay_demo_make(d->c, target, &rng);
        if (!g) {
            tg_error("demos: out of memory");
            break;
        }
        g->id = atomic_fetch_add(d->next_id, 1);
        atomic_fetch_add(&d->generated, g->n_moves);
        replay_table_append(d->t, g);
    }
    atomic_fetch_sub(&d->running, 1);
    return NULL;
}

replay_demos *replay_demos_start(const tg_config *c, replay_table *t, int threads, _Atomic uint64_t *next_id)
{
    replay_demos *d = calloc(1, sizeof *d);
    if (!d) {
        tg_fail("out of memory");
        return NULL;
    }
    d->c = c;
    d->t = t;
    d->next_id = next_id;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    for (int i = 0; i < threads; i++) {
        arg *a = malloc(sizeof *a);
        if (!a)
            break;
        a->d = d;
        a->idx = i;
        atomic_fetch_add(&d->running, 1);
        if (pthread_create(&d->th[d->n], NULL, run, a)) {
            atomic_fetch_sub(&d->running, 1);
            free(a);
            break;
        }
        d->n++;
    }
    return d;
}

int replay_demos_done(replay_demos *d) { return atomic_load(&d->running) == 0; }
int64_t replay_demos_generated(replay_demos *d) { return atomic_load(&d->generated); }

void replay_demos_stop(replay_demos *d)
{
    if (!d)
        return;
    atomic_store(&d->stop, 1);
    for (int i = 0; i < d->n; i++)
        pthread_join(d->th[i], NULL);
    free(d);
}
