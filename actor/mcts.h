/* Sampled AlphaZero search tree of one game (see actor/README.md).
 *
 * Nodes are expanded states, edges the K sampled actions of a node (duplicates merged, prior =
 * empirical frequency). Statistics live on edges (visits N, return sum W), so a state reached by
 * several paths (the transposition table is keyed by the residual's hash) is one node of a DAG.
 * Everything lives in flat arrays of one arena per tree (grown by doubling, bounded by max_nodes
 * nodes and max_nodes * K edges); there is no allocation per node. Moving the root (subtree reuse)
 * copies the part reachable from the new root into a spare tree and swaps the two, so garbage of
 * earlier moves never accumulates.
 *
 * Selection is pUCT with MuZero's c(s) on min-max normalised Q (unvisited children count as the
 * minimum, 0); pending simulations put virtual loss on their path so many leaves of one tree can
 * be evaluated in one batch. */
#ifndef TG_MCTS_H
#define TG_MCTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/game.h"
#include "common/rng.h"

typedef struct tg_mcts_params {
    double c1, c2;          /* pUCT: c(s) = c1 + log((N(s) + c2 + 1) / c2) */
    int n_bar;              /* adaptive temperature threshold */
    double virtual_loss;    /* virtual visits (valued as the minimum) per pending simulation */
    double dirichlet_alpha; /* root noise; dirichlet_frac = 0 turns it off */
    double dirichlet_frac;
} tg_mcts_params;

/* ---- The math, exposed for tests ---- */

/* c(s) for a node with n visits. */
double tg_mcts_c(double n, double c1, double c2);
/* pUCT score of a child: qn + c(N) * prior * sqrt(N) / (1 + n_child). */
double tg_mcts_puct(double qn, double prior, double n_parent, double n_child, double c1, double c2);
/* Min-max normalisation of q into [0, 1] given the extremes seen; 0.5 while max <= min. */
double tg_mcts_normalize(double q, double qmin, double qmax);
/* Adaptive temperature: log(n) / log(n_bar) when n > n_bar, else 1. */
double tg_mcts_tau(double n, int n_bar);
/* Improved policy over n children: pi(a) = N(a)^(1/tau) / sum_b N(b)^(1/tau) with tau from the
 * total visits. Writes out[n] (all zero if no child was visited) and returns tau. */
double tg_mcts_improved_policy(const int32_t *visits, int n, int n_bar, float *out);
/* Acting rule: drops children not visited or with Q below the Q of the most visited child
 * (ties in visits go to the higher Q), then samples from pi over the rest. Returns the index, or
 * -1 if no child was visited. */
int tg_mcts_act(const int32_t *visits, const float *q, const float *pi, int n, tg_rng *rng);
/* Exploring moves (the first actor.explore_moves of a game): samples from pi over all children,
 * without the acting rule's Q filter. -1 if pi is all zero. */
int tg_mcts_sample(const float *pi, int n, tg_rng *rng);

/* ---- The tree ---- */

typedef struct tg_tree tg_tree; /* opaque */

/* A selected path from the root: edges taken, the reward of each move and the node index
 * waiting for evaluation. Allocated once with room for r_limit moves. */
typedef struct tg_path {
    int n, cap;
    int32_t *edges;   /* [cap] edge indices */
    int32_t *nodes;   /* [cap] the node each edge leaves */
    float *rewards;   /* [cap] reward of each move */
    int32_t leaf;     /* node awaiting evaluation (TG_SEL_LEAF) */
} tg_path;

int tg_path_init(tg_path *p, int cap);
void tg_path_free(tg_path *p);

/* Bytes a tree uses at most (its stated memory bound): nodes, edges, actions and the
 * transposition table at max_nodes. */
size_t tg_tree_max_bytes(int S, int K, int max_nodes);

/* A tree for actions of length 3S, at most K children per node and max_nodes nodes. */
tg_tree *tg_tree_new(int S, int K, int max_nodes, uint64_t seed);
void tg_tree_free(tg_tree *t);
/* Empties the tree (a new game); the arena keeps its memory. */
void tg_tree_clear(tg_tree *t);
int tg_tree_nodes(const tg_tree *t);
int tg_tree_edges(const tg_tree *t);
size_t tg_tree_bytes(const tg_tree *t); /* memory held now */
int tg_tree_root(const tg_tree *t);     /* root node index, -1 if none yet */

enum {
    TG_SEL_LEAF = 0, /* path->leaf is a new node: evaluate scratch's state and call expand */
    TG_SEL_DONE = 1, /* reached the end of the game (or a dead end): simulation complete */
    TG_SEL_BUSY = 2, /* reached a node already awaiting evaluation: nothing done */
    TG_SEL_FULL = 3, /* the arena is full: nothing done */
};

/* One selection from the root, whose state is `root` (copied into scratch and played down the
 * path). Virtual loss is left on the path of a LEAF until tg_tree_expand. */
int tg_tree_select(tg_tree *t, const tg_mcts_params *p, const tg_game *root, tg_game *scratch,
                   tg_path *path);
/* Expands path->leaf with n actions a[n][3S] (canonical, non-zero; duplicates are merged here,
 * at most K distinct kept) and the evaluator's value, then backs the value up the path. */
void tg_tree_expand(tg_tree *t, const tg_mcts_params *p, tg_path *path, const int8_t *actions,
                    int n, float value);

/* The root's children: visits[i], q[i] (mean return, 0 if unvisited) and a pointer to each
 * action (valid until the tree changes). Returns the number of children (<= K). */
int tg_tree_root_children(const tg_tree *t, int32_t *visits, float *q, const int8_t **actions);
/* Visits of the root node (its own evaluation plus every simulation through it). */
int tg_tree_root_visits(const tg_tree *t);

/* Moves the root to the state with residual hash `hash` (the position after the move just
 * played), keeping what was searched below it: the reachable part is copied into `spare` (same
 * S, K, max_nodes), then the two trees swap arenas. Needs no pending simulations. Returns the
 * nodes kept. */
int tg_tree_advance(tg_tree *t, tg_tree *spare, uint64_t hash);

/* Draws fresh Dirichlet noise for the root's priors (call when a reused root starts a move). */
void tg_tree_root_refresh(tg_tree *t, const tg_mcts_params *p);

/* Node lookup by residual hash (transposition table); -1 if absent. For tests. */
int tg_tree_find(const tg_tree *t, uint64_t hash);
/* Visits and number of children of a node (tests). */
int tg_tree_node_visits(const tg_tree *t, int node);
int tg_tree_node_children(const tg_tree *t, int node);
/* Edges that lead to a node; more than nodes - 1 means some node has several parents. */
int tg_tree_linked_edges(const tg_tree *t);

#endif
