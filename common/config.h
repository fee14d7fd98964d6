/* The run configuration: one YAML file (config.yaml of a run) with sections, parsed with libyaml,
 * plus command-line overrides "section.key=value". Every key has a default, a type and a range;
 * an unknown key or a bad value is an error naming the key. Derived values (S, d, n_logits,
 * n_scalars ...) are filled by tg_config_finish.
 *
 * Adding a key: add the field here and one row to the table in config.c (name, type, offset,
 * range, default, help); docs/configuration.md is generated from that table by `tg config --doc`. */
#ifndef TG_CONFIG_H
#define TG_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "common/action.h"
#include "common/fact.h"

#define TG_MAX_TARGETS 16
#define TG_STR 256

typedef struct tg_config {
    struct {
        char dir[TG_STR];        /* run directory */
        uint64_t seed;
        double budget_s;         /* stop after this many seconds (0 = no limit) */
        char log_level[16];
        int stop_at_target;      /* stop the run when every target reaches target_rank */
    } run;
    struct {
        char targets[TG_MAX_TARGETS][16]; /* "n,m,p" */
        int n_targets;
        int target_rank[TG_MAX_TARGETS]; /* rank to reach per target (0 = none) */
        char arithmetic[16];     /* integer | mod2 */
        char coeffs[64];         /* F: "-1..1", "-2..2", "0,1" */
        int r_limit;             /* step limit per game */
        int history;             /* h: previous actions in the input */
        int n_steps;             /* tokens per action (must divide 3S) */
        int n_scalars;
        int change_of_basis;     /* ablation switch */
        double basis_prob;       /* probability that a game uses a non-canonical basis */
        int basis_pool;          /* bases sampled at start per target */
        double basis_explore;    /* 0: uniform choice of basis; > 0: UCB weight on returns per basis */
        double basis_discount;   /* UCB forgetting factor per game started (1 = none) */
        int basis_retire;        /* replace a basis after this many games at the best rank (0 = never) */
        int basis_max_entry;
        double restart_prob;     /* probability that a game replays the start of a best line */
        int restart_lines;       /* best lines kept per target and actor */
        int signed_perms;        /* ablation switch */
        int perm_pool;           /* signed permutations in the pool (100 in the paper) */
        /* derived by tg_config_finish */
        int S;
        int d, n_logits;
        tg_dims dims[TG_MAX_TARGETS];
        int mod2;
        tg_coeffs F;
    } game;
    struct {
        int c, layers, heads, head_dim, widen;
        int p_feat, p_heads, p_layers;
        int v_hidden, v_layers, quantiles;
    } net;
    struct {
        char backend[16];        /* auto | cpu | cuda */
        int batch;
        double lr, lr_min;
        int warmup_steps, decay_steps; /* linear warmup, then cosine decay to lr_min */
        double weight_decay, beta1, beta2, eps;
        double grad_clip;        /* global gradient-norm clip (0 = off) */
        double value_weight;
        int64_t max_steps;       /* 0 = until stopped */
        int checkpoint_every;
        int keep_checkpoints;
        int threads;             /* CPU backend threads (0 = all cores) */
        int prefetch;            /* batches requested ahead from replay */
        int publish_every;       /* publish weights to inference every N steps */
    } train;
    struct {
        char endpoint[TG_STR];   /* learner's inference ROUTER (bind address) */
        char connect[TG_STR];    /* what actors connect to */
        char pub_endpoint[TG_STR]; /* weights PUB (bind) */
        char pub_connect[TG_STR];
        int max_batch;           /* positions per evaluation */
        double max_wait_ms;      /* longest a request waits for a fuller batch */
        double share;            /* fraction of learner time for inference when both compete */
        int threads;             /* CPU backend: own inference threads, concurrent with training (0 = share) */
        int concurrent;          /* inference and training at once, no time-sharing (any backend) */
        int samples;             /* K: actions sampled per position */
        double temperature;      /* sampling temperature */
    } infer;
    struct {
        char endpoint[TG_STR];   /* bind */
        char connect[TG_STR];
        int synthetic;           /* ablation switch: generate synthetic demonstrations */
        int64_t demos_size;      /* demos generated at start (5,000,000 in the paper) */
        int demos_rank_min, demos_rank_max;
        char demos_probs[128];   /* categorical over F as "w1,w2,..."; "" = uniform */
        int64_t capacity;        /* positions kept in played (FIFO) */
        int64_t best_capacity;
        double frac_demos, frac_played, frac_best;
        int best_games;          /* ablation switch: retrain on best games */
        int best_played;         /* best-table positions: the played move is the policy target */
        double reorder;          /* share of solved games' positions sampled in a random order of their moves */
        double samples_per_insert;
        int64_t min_size;        /* positions in played before the rate limiter lets sampling go */
        int flush_count;         /* acknowledge inserts after this many games ... */
        double flush_ms;         /* ... or this many milliseconds, whichever first */
        int workers;             /* batch-building threads */
        int prefetch;            /* batches built ahead */
        double checkpoint_s;     /* rewrite replay.h5 (atomically) this often; the journal covers the gap */
        int64_t max_message;     /* largest accepted request in bytes (larger: error reply) */
        double stats_s;          /* log line and TensorBoard scalars this often */
    } replay;
    struct {
        int selfplay;            /* ablation switch */
        int games;               /* games in flight per actor process */
        int simulations;         /* per move */
        double c1, c2;           /* pUCT */
        int n_bar;               /* adaptive temperature threshold */
        int inflight;            /* evaluation requests in flight */
        int eval_batch;          /* leaves per evaluation request */
        double virtual_loss;
        int max_nodes;           /* per game arena bound */
        double dirichlet_alpha, dirichlet_frac;
        int explore_moves;        /* first moves sampled from the improved policy, no Q filter */
        int leaves_per_game;     /* pending evaluations per game (0 = enough to fill inflight batches) */
        double eval_timeout_s;   /* re-issue an evaluation request unanswered this long */
        double ack_timeout_s;    /* resend a game the replay server has not acknowledged this long */
        int max_unacked;         /* pause while this many games wait for an ack */
        double stats_s;          /* seconds between stats log lines */
        double polish_share;     /* share of the actor's time for flip-graph polishing (0 = off) */
        int polish_plateau;      /* flips without a reduction before the walk restarts */
        int polish_bound;        /* derived: largest c with -c..c all in game.coeffs */
    } actor;
    struct {
        int curve;               /* CURVE encryption on every socket other hosts reach */
        char keys_dir[TG_STR];   /* server and allowed client keys */
    } security;
} tg_config;

/* Defaults for every key (not yet finished). */
void tg_config_defaults(tg_config *c);
/* Loads a YAML file over *c as it is (call tg_config_defaults first). -1 with a message naming
 * the file, line and key on any error. */
int tg_config_load(tg_config *c, const char *path);
/* Applies one "section.key=value" override; -1 with a message naming the key. */
int tg_config_set(tg_config *c, const char *assignment);
/* The text of one key's value ("section.key"; lists as "2,2,2;3,3,3" and "7,23"); -1 with a
 * message for an unknown key. */
int tg_config_get(const tg_config *c, const char *name, char *buf, size_t len);
/* Validates cross-key constraints and fills derived fields; -1 with a message naming the key. */
int tg_config_finish(tg_config *c);
/* Writes the whole configuration as YAML (every key, finished or not), atomically; "-" is stdout. */
int tg_config_write(const tg_config *c, const char *path);
/* Prints one line per key: name, type, default, help (for --help and docs). */
void tg_config_print_doc(FILE *out);

/* Common command-line handling for every binary: consumes "--config FILE", "--set k=v" and bare
 * "section.key=value" arguments from argv (compacting the rest in place), loads and finishes
 * the config. Returns the new argc, or -1 with a message. */
int tg_config_from_args(tg_config *c, int argc, char **argv);

#endif
