/* Sampled AlphaZero search tree: flat arrays, indices instead of pointers (so arenas can grow by
 * realloc and be compacted by copying), statistics on edges, transposition table by residual
 * hash. */
#include "actor/mcts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

typedef struct node {
    uint64_t hash;
    int32_t first_edge;
    int32_t n_edges;
    int32_t N;        /* own evaluation + simulations through it */
    int32_t vl;       /* pending simulations through it */
    int32_t remap;    /* new index while advancing, else -1 */
    float value;      /* evaluator's value */
    uint8_t expanded; /* 0: awaiting evaluation */
} node;

/* What selection reads, 16 bytes (K of them are scanned per node on a path, so their size is
 * the search's memory traffic); the rest of an edge lives in parallel arrays. */
typedef struct edge {
    float Q;       /* mean return through this edge (running mean: exact enough in float) */
    float prior;
    int32_t N;
    int32_t vl;    /* pending simulations through this edge */
} edge;

enum { TERM_UNKNOWN = 0, TERM_SOLVED = 1, TERM_LIMIT = 2 };

struct tg_tree {
    int S, A, K, max_nodes;
    node *nodes;
    int n_nodes, cap_nodes;
    edge *edges;
    int32_t *echild;       /* [cap_edges] node an edge leads to, -1 until first followed */
    float *eterm;          /* [cap_edges] TERM_LIMIT: the move's reward when it is the last allowed */
    uint8_t *ekind;        /* [cap_edges] what playing the move is known to end in (TERM_*): saves
                              the move and the rank bound */
    int n_edges, cap_edges;
    int8_t *acts;          /* [cap_edges][A] */
    uint64_t *tt_keys;     /* 0 = empty */
    int32_t *tt_vals;
    int tt_cap;            /* power of two, >= 2 * cap_nodes */
    int32_t *stack;        /* [cap_nodes] for advance */
    int n_pending;         /* nodes awaiting expansion (each holds room for K edges) */
    int root;
    double qmin, qmax;     /* min-max statistics of this move's search */
    float *root_prior;     /* [K] priors with Dirichlet noise for the root */
    int root_prior_node;   /* node root_prior belongs to, -1 none */
    uint64_t *mhash;       /* [K] merge scratch */
    int32_t *mcount;       /* [K] */
    int32_t *midx;         /* [K] */
    double *noise;         /* [K] */
    tg_rng rng;
};

/* ---- math ---- */

double tg_mcts_c(double n, double c1, double c2) { return c1 + log((n + c2 + 1.0) / c2); }

double tg_mcts_puct(double qn, double prior, double n_parent, double n_child, double c1, double c2)
{
    return qn + tg_mcts_c(n_parent, c1, c2) * prior * sqrt(n_parent) / (1.0 + n_child);
}

double tg_mcts_normalize(double q, double qmin, double qmax)
{
    if (!(qmax > qmin))
        return 0.5;
    double x = (q - qmin) / (qmax - qmin);
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

double tg_mcts_tau(double n, int n_bar)
{
    if (n_bar > 1 && n > n_bar)
        return log(n) / log((double)n_bar);
    return 1.0;
}

double tg_mcts_improved_policy(const int32_t *visits, int n, int n_bar, float *out)
{
    double total = 0;
    for (int i = 0; i < n; i++)
        total += visits[i];
    double tau = tg_mcts_tau(total, n_bar);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += visits[i] > 0 ? pow(visits[i], 1.0 / tau) : 0.0;
    for (int i = 0; i < n; i++)
        out[i] = sum > 0 && visits[i] > 0 ? (float)(pow(visits[i], 1.0 / tau) / sum) : 0.0f;
    return tau;
}

int tg_mcts_act(const int32_t *visits, const float *q, const float *pi, int n, tg_rng *rng)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (visits[i] > 0 && (best < 0 || visits[i] > visits[best] ||
                              (visits[i] == visits[best] && q[i] > q[best])))
            best = i;
    if (best < 0)
        return -1;
    double total = 0;
    for (int i = 0; i < n; i++)
        if (visits[i] > 0 && q[i] >= q[best])
            total += pi[i];
    if (!(total > 0))
        return best;
    double x = tg_rng_uniform(rng) * total;
    int last = best;
    for (int i = 0; i < n; i++) {
        if (visits[i] > 0 && q[i] >= q[best]) {
            last = i;
            x -= pi[i];
            if (x < 0)
                return i;
        }
    }
    return last; /* rounding */
}

int tg_mcts_sample(const float *pi, int n, tg_rng *rng)
{
    double total = 0;
    int last = -1;
    for (int i = 0; i < n; i++)
        if (pi[i] > 0) {
            total += pi[i];
            last = i;
        }
    if (last < 0)
        return -1;
    double x = tg_rng_uniform(rng) * total;
    for (int i = 0; i < n; i++)
        if (pi[i] > 0 && (x -= pi[i]) < 0)
            return i;
    return last; /* rounding */
}

/* ---- paths ---- */

int tg_path_init(tg_path *p, int cap)
{
    memset(p, 0, sizeof *p);
    if (cap < 1)
        cap = 1;
    p->cap = cap;
    p->edges = malloc((size_t)cap * sizeof *p->edges);
    p->nodes = malloc((size_t)cap * sizeof *p->nodes);
    p->rewards = malloc((size_t)cap * sizeof *p->rewards);
    p->leaf = -1;
    if (!p->edges || !p->nodes || !p->rewards) {
        tg_path_free(p);
        return tg_fail("out of memory for a search path");
    }
    return 0;
}

void tg_path_free(tg_path *p)
{
    free(p->edges);
    free(p->nodes);
    free(p->rewards);
    memset(p, 0, sizeof *p);
}

/* ---- arena ---- */

static int pow2_at_least(int n)
{
    int c = 16;
    while (c < n)
        c *= 2;
    return c;
}

size_t tg_tree_max_bytes(int S, int K, int max_nodes)
{
    size_t nodes = (size_t)max_nodes;
    size_t edges = nodes * (size_t)K;
    size_t tt = (size_t)pow2_at_least(2 * max_nodes);
    return nodes * (sizeof(node) + sizeof(int32_t)) + edges * (sizeof(edge) + 9 + 3 * (size_t)S) +
           tt * (sizeof(uint64_t) + sizeof(int32_t)) +
           (size_t)K * (sizeof(float) + sizeof(uint64_t) + 2 * sizeof(int32_t) + sizeof(double));
}

static void tt_clear(tg_tree *t) { memset(t->tt_keys, 0, (size_t)t->tt_cap * sizeof *t->tt_keys); }

static inline uint64_t tt_key(uint64_t h) { return h ? h : 1; }

static void tt_put(tg_tree *t, uint64_t hash, int32_t v)
{
    uint64_t k = tt_key(hash);
    size_t mask = (size_t)t->tt_cap - 1, i = (size_t)(k * 0x9e3779b97f4a7c15ULL >> 17) & mask;
    while (t->tt_keys[i] && t->tt_keys[i] != k)
        i = (i + 1) & mask;
    t->tt_keys[i] = k;
    t->tt_vals[i] = v;
}

int tg_tree_find(const tg_tree *t, uint64_t hash)
{
    uint64_t k = tt_key(hash);
    size_t mask = (size_t)t->tt_cap - 1, i = (size_t)(k * 0x9e3779b97f4a7c15ULL >> 17) & mask;
    while (t->tt_keys[i]) {
        if (t->tt_keys[i] == k)
            return t->tt_vals[i];
        i = (i + 1) & mask;
    }
    return -1;
}

/* Room for `want` nodes (and their TT entries); -1 beyond the bound or out of memory. */
static int reserve_nodes(tg_tree *t, int want)
{
    if (want <= t->cap_nodes)
        return 0;
    if (want > t->max_nodes)
        return -1;
    int cap = t->cap_nodes;
    while (cap < want)
        cap *= 2;
    if (cap > t->max_nodes)
        cap = t->max_nodes;
    node *nn = realloc(t->nodes, (size_t)cap * sizeof *nn);
    if (!nn)
        return -1;
    t->nodes = nn;
    int32_t *st = realloc(t->stack, (size_t)cap * sizeof *st);
    if (!st)
        return -1;
    t->stack = st;
    int tcap = pow2_at_least(2 * cap);
    if (tcap > t->tt_cap) {
        uint64_t *k = malloc((size_t)tcap * sizeof *k);
        int32_t *v = malloc((size_t)tcap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        free(t->tt_keys);
        free(t->tt_vals);
        t->tt_keys = k;
        t->tt_vals = v;
        t->tt_cap = tcap;
        tt_clear(t);
        for (int i = 0; i < t->n_nodes; i++)
            tt_put(t, t->nodes[i].hash, i);
    }
    t->cap_nodes = cap;
    return 0;
}

static int grow_edges(tg_tree *t, int more)
{
    long need = (long)t->n_edges + more;
    if (need <= t->cap_edges)
        return 0;
    long maxe = (long)t->max_nodes * t->K;
    if (need > maxe)
        return -1;
    long cap = t->cap_edges;
    while (cap < need)
        cap *= 2;
    if (cap > maxe)
        cap = maxe;
    edge *ne = realloc(t->edges, (size_t)cap * sizeof *ne);
    if (!ne)
        return -1;
    t->edges = ne;
    int32_t *nc = realloc(t->echild, (size_t)cap * sizeof *nc);
    if (!nc)
        return -1;
    t->echild = nc;
    float *nt = realloc(t->eterm, (size_t)cap * sizeof *nt);
    if (!nt)
        return -1;
    t->eterm = nt;
    uint8_t *nk = realloc(t->ekind, (size_t)cap);
    if (!nk)
        return -1;
    t->ekind = nk;
    int8_t *na = realloc(t->acts, (size_t)cap * (size_t)t->A);
    if (!na)
        return -1;
    t->acts = na;
    t->cap_edges = (int)cap;
    return 0;
}

tg_tree *tg_tree_new(int S, int K, int max_nodes, uint64_t seed)
{
    if (S < 1 || K < 1 || max_nodes < 2) {
        tg_fail("search tree: bad sizes S=%d K=%d max_nodes=%d", S, K, max_nodes);
        return NULL;
    }
    tg_tree *t = calloc(1, sizeof *t);
    if (!t)
        goto fail;
    t->S = S;
    t->A = 3 * S;
    t->K = K;
    t->max_nodes = max_nodes;
    t->cap_nodes = max_nodes < 64 ? max_nodes : 64;
    t->cap_edges = t->cap_nodes * K;
    t->tt_cap = pow2_at_least(2 * t->cap_nodes);
    t->nodes = malloc((size_t)t->cap_nodes * sizeof *t->nodes);
    t->stack = malloc((size_t)t->cap_nodes * sizeof *t->stack);
    t->edges = malloc((size_t)t->cap_edges * sizeof *t->edges);
    t->echild = malloc((size_t)t->cap_edges * sizeof *t->echild);
    t->eterm = malloc((size_t)t->cap_edges * sizeof *t->eterm);
    t->ekind = malloc((size_t)t->cap_edges);
    t->acts = malloc((size_t)t->cap_edges * (size_t)t->A);
    t->tt_keys = malloc((size_t)t->tt_cap * sizeof *t->tt_keys);
    t->tt_vals = malloc((size_t)t->tt_cap * sizeof *t->tt_vals);
    t->root_prior = malloc((size_t)K * sizeof *t->root_prior);
    t->mhash = malloc((size_t)K * sizeof *t->mhash);
    t->mcount = malloc((size_t)K * sizeof *t->mcount);
    t->midx = malloc((size_t)K * sizeof *t->midx);
    t->noise = malloc((size_t)K * sizeof *t->noise);
    if (!t->nodes || !t->stack || !t->edges || !t->echild || !t->eterm || !t->ekind || !t->acts || !t->tt_keys || !t->tt_vals ||
        !t->root_prior || !t->mhash || !t->mcount || !t->midx || !t->noise)
        goto fail;
    tg_rng_seed(&t->rng, seed, 0x7ee);
    tg_tree_clear(t);
    return t;
fail:
    tg_tree_free(t);
    tg_fail("out of memory for a search tree");
    return NULL;
}

void tg_tree_free(tg_tree *t)
{
    if (!t)
        return;
    free(t->nodes);
    free(t->stack);
    free(t->edges);
    free(t->echild);
    free(t->eterm);
    free(t->ekind);
    free(t->acts);
    free(t->tt_keys);
    free(t->tt_vals);
    free(t->root_prior);
    free(t->mhash);
    free(t->mcount);
    free(t->midx);
    free(t->noise);
    free(t);
}

void tg_tree_clear(tg_tree *t)
{
    t->n_nodes = 0;
    t->n_edges = 0;
    t->n_pending = 0;
    t->root = -1;
    t->qmin = INFINITY;
    t->qmax = -INFINITY;
    t->root_prior_node = -1;
    tt_clear(t);
}

int tg_tree_nodes(const tg_tree *t) { return t->n_nodes; }
int tg_tree_edges(const tg_tree *t) { return t->n_edges; }
int tg_tree_root(const tg_tree *t) { return t->root; }

size_t tg_tree_bytes(const tg_tree *t)
{
    return (size_t)t->cap_nodes * (sizeof(node) + sizeof(int32_t)) +
           (size_t)t->cap_edges * (sizeof(edge) + 9 + (size_t)t->A) +
           (size_t)t->tt_cap * (sizeof(uint64_t) + sizeof(int32_t));
}

int tg_tree_node_visits(const tg_tree *t, int n) { return n >= 0 && n < t->n_nodes ? t->nodes[n].N : 0; }
int tg_tree_node_children(const tg_tree *t, int n)
{
    return n >= 0 && n < t->n_nodes ? t->nodes[n].n_edges : 0;
}

int tg_tree_linked_edges(const tg_tree *t)
{
    int n = 0;
    for (int i = 0; i < t->n_edges; i++)
        n += t->echild[i] >= 0;
    return n;
}

static int new_node(tg_tree *t, uint64_t hash)
{
    if (reserve_nodes(t, t->n_nodes + 1) != 0 || grow_edges(t, (t->n_pending + 1) * t->K) != 0)
        return -1;
    t->n_pending++;
    int i = t->n_nodes++;
    node *nd = &t->nodes[i];
    nd->hash = hash;
    nd->first_edge = 0;
    nd->n_edges = 0;
    nd->N = 0;
    nd->vl = 0;
    nd->remap = -1;
    nd->value = 0;
    nd->expanded = 0;
    tt_put(t, hash, i);
    return i;
}

/* ---- search ---- */

static inline void minmax(tg_tree *t, double q)
{
    if (q < t->qmin)
        t->qmin = q;
    if (q > t->qmax)
        t->qmax = q;
}

static void set_root_noise(tg_tree *t, const tg_mcts_params *p)
{
    node *r = &t->nodes[t->root];
    t->root_prior_node = -1;
    if (!(p->dirichlet_frac > 0) || !(p->dirichlet_alpha > 0) || r->n_edges < 2)
        return;
    tg_rng_dirichlet(&t->rng, p->dirichlet_alpha, r->n_edges, t->noise);
    for (int i = 0; i < r->n_edges; i++)
        t->root_prior[i] = (float)((1 - p->dirichlet_frac) * t->edges[r->first_edge + i].prior +
                                   p->dirichlet_frac * t->noise[i]);
    t->root_prior_node = t->root;
}

static void backup(tg_tree *t, tg_path *path, double value, int leaf)
{
    double G = value;
    if (leaf >= 0)
        t->nodes[leaf].N++;
    for (int i = path->n - 1; i >= 0; i--) {
        edge *e = &t->edges[path->edges[i]];
        node *parent = &t->nodes[path->nodes[i]];
        G += path->rewards[i];
        e->N++;
        e->Q += (float)((G - e->Q) / e->N);
        e->vl--;
        parent->N++;
        parent->vl--;
        minmax(t, e->Q);
    }
}

static void undo_virtual(tg_tree *t, tg_path *path)
{
    for (int i = 0; i < path->n; i++) {
        t->edges[path->edges[i]].vl--;
        t->nodes[path->nodes[i]].vl--;
    }
    path->n = 0;
}

static int pick_child(const tg_tree *t, const tg_mcts_params *p, int ni)
{
    const node *nd = &t->nodes[ni];
    /* with many games the trees do not fit in cache: start loading the edges before the log */
    for (int i = 0; i < nd->n_edges; i += 64 / (int)sizeof(edge))
        __builtin_prefetch(&t->edges[nd->first_edge + i]);
    double L = p->virtual_loss;
    double n_parent = nd->N + L * nd->vl;
    double c = tg_mcts_c(n_parent, p->c1, p->c2) * sqrt(n_parent);
    const float *rp = t->root_prior_node == ni ? t->root_prior : NULL;
    int best = 0;
    double best_s = -INFINITY;
    for (int i = 0; i < nd->n_edges; i++) {
        const edge *e = &t->edges[nd->first_edge + i];
        double n_eff = e->N + L * e->vl, qn = 0;
        if (e->N > 0) /* virtual visits count as the minimum (0 after normalisation) */
            qn = tg_mcts_normalize(e->Q, t->qmin, t->qmax) * e->N / n_eff;
        double s = qn + c * (rp ? rp[i] : e->prior) / (1.0 + n_eff);
        if (s > best_s) {
            best_s = s;
            best = i;
        }
    }
    return nd->first_edge + best;
}

int tg_tree_select(tg_tree *t, const tg_mcts_params *p, const tg_game *root, tg_game *scratch,
                   tg_path *path)
{
    path->n = 0;
    path->leaf = -1;
    tg_game_copy(scratch, root);
    TG_ASSERT(!tg_game_done(scratch));
    if (t->root < 0) {
        int r = new_node(t, tg_game_hash(scratch));
        if (r < 0)
            return TG_SEL_FULL;
        t->root = r;
        path->leaf = r;
        return TG_SEL_LEAF;
    }
    int cur = t->root;
    for (;;) {
        node *nd = &t->nodes[cur];
        if (!nd->expanded) {
            undo_virtual(t, path);
            return TG_SEL_BUSY;
        }
        if (nd->n_edges == 0) { /* dead end: no valid action was proposed; its value stands */
            backup(t, path, nd->value, cur);
            return TG_SEL_DONE;
        }
        int ei = pick_child(t, p, cur);
        edge *e = &t->edges[ei];
        if (t->echild[ei] >= 0) /* the next node loads while the move is played */
            __builtin_prefetch(&t->nodes[t->echild[ei]]);
        TG_ASSERT(path->n < path->cap);
        e->vl++;
        nd->vl++;
        path->edges[path->n] = ei;
        path->nodes[path->n] = cur;
        int last = tg_game_step(scratch) + 1 == tg_game_r_limit(scratch);
        uint8_t kind = t->ekind[ei];
        if (kind == TERM_SOLVED || (last && kind == TERM_LIMIT)) {
            /* a known end: no need to play it (nor to bound the residual's rank again) */
            path->rewards[path->n++] = kind == TERM_SOLVED ? -1.0f : t->eterm[ei];
            backup(t, path, 0.0, -1);
            return TG_SEL_DONE;
        }
        float r = (float)tg_game_play(scratch, t->acts + (size_t)ei * t->A);
        path->rewards[path->n++] = r;
        if (tg_game_done(scratch)) {
            if (tg_game_solved(scratch) && r == -1.0f) {
                t->ekind[ei] = TERM_SOLVED;
            } else if (last) {
                t->ekind[ei] = TERM_LIMIT;
                t->eterm[ei] = r;
            }
            backup(t, path, 0.0, -1);
            return TG_SEL_DONE;
        }
        int child = t->echild[ei];
        if (child < 0) {
            uint64_t h = tg_game_hash(scratch);
            child = tg_tree_find(t, h);
            if (child < 0) {
                child = new_node(t, h);
                if (child < 0) {
                    undo_virtual(t, path);
                    return TG_SEL_FULL;
                }
                t->echild[ei] = child;
                path->leaf = child;
                return TG_SEL_LEAF;
            }
            t->echild[ei] = child;
        }
        cur = child;
    }
}

static inline uint64_t action_hash(const int8_t *a, int A)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < A; i++)
        h = (h ^ (uint8_t)a[i]) * 0x100000001b3ULL;
    return h;
}

void tg_tree_expand(tg_tree *t, const tg_mcts_params *p, tg_path *path, const int8_t *actions,
                    int n, float value)
{
    int li = path->leaf;
    TG_ASSERT(li >= 0 && li < t->n_nodes && !t->nodes[li].expanded);
    /* merge duplicates: distinct actions in order of first appearance, counts as priors */
    int nd_ = 0, total = 0;
    for (int i = 0; i < n; i++) {
        const int8_t *a = actions + (size_t)i * t->A;
        uint64_t h = action_hash(a, t->A);
        int j = 0;
        for (; j < nd_; j++)
            if (t->mhash[j] == h && memcmp(actions + (size_t)t->midx[j] * t->A, a, (size_t)t->A) == 0)
                break;
        if (j < nd_) {
            t->mcount[j]++;
            total++;
        } else if (nd_ < t->K) {
            t->mhash[nd_] = h;
            t->midx[nd_] = i;
            t->mcount[nd_] = 1;
            nd_++;
            total++;
        }
    }
    /* new_node reserved room for K edges */
    t->n_pending--;
    node *nd = &t->nodes[li];
    nd->first_edge = t->n_edges;
    nd->n_edges = nd_;
    nd->value = value;
    nd->expanded = 1;
    for (int j = 0; j < nd_; j++) {
        edge *e = &t->edges[t->n_edges];
        t->echild[t->n_edges] = -1;
        t->eterm[t->n_edges] = 0;
        e->N = 0;
        e->Q = 0;
        e->vl = 0;
        t->ekind[t->n_edges] = TERM_UNKNOWN;
        e->prior = (float)t->mcount[j] / (float)total;
        memcpy(t->acts + (size_t)t->n_edges * t->A, actions + (size_t)t->midx[j] * t->A, (size_t)t->A);
        t->n_edges++;
    }
    backup(t, path, value, li);
    if (li == t->root)
        set_root_noise(t, p);
}

int tg_tree_root_children(const tg_tree *t, int32_t *visits, float *q, const int8_t **actions)
{
    if (t->root < 0 || !t->nodes[t->root].expanded)
        return 0;
    const node *r = &t->nodes[t->root];
    for (int i = 0; i < r->n_edges; i++) {
        const edge *e = &t->edges[r->first_edge + i];
        visits[i] = e->N;
        q[i] = e->N > 0 ? e->Q : 0.0f;
        if (actions)
            actions[i] = t->acts + (size_t)(r->first_edge + i) * t->A;
    }
    return r->n_edges;
}

int tg_tree_root_visits(const tg_tree *t) { return t->root >= 0 ? t->nodes[t->root].N : 0; }

int tg_tree_advance(tg_tree *t, tg_tree *s, uint64_t hash)
{
    TG_ASSERT(s->S == t->S && s->K == t->K && s->max_nodes == t->max_nodes);
    tg_tree_clear(s);
    int old_root = tg_tree_find(t, hash);
    int kept = 0;
    if (old_root >= 0 && t->nodes[old_root].expanded) {
        /* depth-first copy of the reachable part; indices assigned when first reached */
        for (int i = 0; i < t->n_nodes; i++)
            t->nodes[i].remap = -1;
        if (reserve_nodes(s, t->n_nodes) != 0)
            TG_ASSERT(!"spare tree smaller than the tree it copies");
        int sp = 0;
        t->stack[sp++] = old_root;
        t->nodes[old_root].remap = s->n_nodes++;
        s->nodes[0] = t->nodes[old_root];
        while (sp > 0) {
            int oi = t->stack[--sp];
            node *on = &t->nodes[oi];
            node *nn = &s->nodes[on->remap];
            TG_ASSERT(on->expanded && on->vl == 0);
            if (grow_edges(s, on->n_edges) != 0)
                TG_ASSERT(!"spare tree smaller than the tree it copies");
            nn->first_edge = s->n_edges;
            memcpy(s->edges + s->n_edges, t->edges + on->first_edge, (size_t)on->n_edges * sizeof(edge));
            memcpy(s->echild + s->n_edges, t->echild + on->first_edge, (size_t)on->n_edges * sizeof(int32_t));
            memcpy(s->eterm + s->n_edges, t->eterm + on->first_edge, (size_t)on->n_edges * sizeof(float));
            memcpy(s->ekind + s->n_edges, t->ekind + on->first_edge, (size_t)on->n_edges);
            memcpy(s->acts + (size_t)s->n_edges * s->A, t->acts + (size_t)on->first_edge * t->A,
                   (size_t)on->n_edges * t->A);
            for (int k = 0; k < on->n_edges; k++) {
                int c = t->echild[on->first_edge + k];
                if (c >= 0 && t->nodes[c].remap < 0 && t->nodes[c].expanded) {
                    TG_ASSERT(s->n_nodes < s->cap_nodes);
                    t->nodes[c].remap = s->n_nodes;
                    s->nodes[s->n_nodes++] = t->nodes[c];
                    t->stack[sp++] = c;
                }
            }
            s->n_edges += on->n_edges;
        }
        for (int i = 0; i < s->n_edges; i++) {
            int c = s->echild[i];
            s->echild[i] = c >= 0 ? t->nodes[c].remap : -1;
        }
        for (int i = 0; i < s->n_nodes; i++) {
            s->nodes[i].remap = -1;
            tt_put(s, s->nodes[i].hash, i);
        }
        s->root = 0;
        kept = s->n_nodes;
        /* this move's min-max statistics start from the reused root's children */
        const node *r = &s->nodes[0];
        for (int i = 0; i < r->n_edges; i++) {
            const edge *e = &s->edges[r->first_edge + i];
            if (e->N > 0)
                minmax(s, e->Q);
        }
    }
    /* swap arenas; each tree keeps its own random stream */
    tg_tree tmp = *t;
    *t = *s;
    *s = tmp;
    tg_rng r = t->rng;
    t->rng = s->rng;
    s->rng = r;
    return kept;
}

void tg_tree_root_refresh(tg_tree *t, const tg_mcts_params *p)
{
    if (t->root >= 0 && t->nodes[t->root].expanded)
        set_root_noise(t, p);
}
