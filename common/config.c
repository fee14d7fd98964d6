/* The run configuration: a table of every key drives defaults, YAML loading, overrides, writing
 * and the documentation, so a key is added in exactly one place (plus its field in config.h). */
#include "common/config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "common/err.h"

enum key_type {
    KT_INT,    /* int */
    KT_I64,    /* int64_t */
    KT_U64,    /* uint64_t */
    KT_DBL,    /* double */
    KT_BOOL,   /* int 0/1 */
    KT_STR,    /* char[size] */
    KT_TARGETS, /* game.targets: char[TG_MAX_TARGETS][16] + game.n_targets */
    KT_INTLIST, /* int[TG_MAX_TARGETS], unset entries 0 */
};

typedef struct key_def {
    const char *name;    /* "section.key" */
    enum key_type type;
    size_t off, size;
    double lo, hi;       /* numeric range (inclusive) */
    const char *choices; /* strings: "a|b|c" or NULL for free text */
    const char *def;     /* default, parsed like any value */
    const char *help;
} key_def;

#define FIELD(f) offsetof(tg_config, f), sizeof(((tg_config *)0)->f)
#define KINT(n, f, lo, hi, def, help) {n, KT_INT, FIELD(f), lo, hi, NULL, def, help}
#define KI64(n, f, lo, hi, def, help) {n, KT_I64, FIELD(f), lo, hi, NULL, def, help}
#define KU64(n, f, def, help) {n, KT_U64, FIELD(f), 0, 0, NULL, def, help}
#define KDBL(n, f, lo, hi, def, help) {n, KT_DBL, FIELD(f), lo, hi, NULL, def, help}
#define KBOOL(n, f, def, help) {n, KT_BOOL, FIELD(f), 0, 1, NULL, def, help}
#define KSTR(n, f, choices, def, help) {n, KT_STR, FIELD(f), 0, 0, choices, def, help}

/* Every key. Defaults are a small local run on T(2,2,2): S = 4, F = {-1,0,1}, 4 tokens of 3
 * entries (27 logits), a small network. Keep rows grouped by section, sections in this order. */
static const key_def keys[] = {
    KSTR("run.dir", run.dir, NULL, "runs/local", "run directory (config.yaml, replay.h5, results.h5, checkpoints/, tb/, logs/)"),
    KU64("run.seed", run.seed, "1", "seed of every random stream of the run"),
    KDBL("run.budget_s", run.budget_s, 0, 1e9, "0", "stop the run after this many seconds (0 = no limit)"),
    KSTR("run.log_level", run.log_level, "debug|info|warn|error", "info", "least severe log level written"),
    KBOOL("run.stop_at_target", run.stop_at_target, "false", "stop when every target has reached its target_rank"),

    {"game.targets", KT_TARGETS, FIELD(game.targets), 0, 0, NULL, "2,2,2",
     "target tensors T(n,m,p), each \"n,m,p\" (YAML list, or one string \"2,2,2;3,3,3\")"},
    {"game.target_rank", KT_INTLIST, FIELD(game.target_rank), 0, 100000, NULL, "7",
     "rank to reach per target, in the order of targets (0 = none)"},
    KSTR("game.arithmetic", game.arithmetic, "integer|mod2", "integer", "integer, or modular arithmetic over GF(2)"),
    KSTR("game.coeffs", game.coeffs, NULL, "-1..1", "coefficient set F of actions: \"-2..2\", \"-1,0,1\", \"0,1\" (mod2 needs 0,1)"),
    KINT("game.r_limit", game.r_limit, 1, 10000, "8", "step limit R_limit of a game"),
    KINT("game.history", game.history, 0, 64, "7", "h: previous actions in the network input (T = h + 1)"),
    KINT("game.n_steps", game.n_steps, 1, 3 * TG_MAX_S, "4", "tokens per action (must divide 3S); d = 3S / n_steps, n_logits = |F|^d"),
    KINT("game.n_scalars", game.n_scalars, 1, 64, "1", "scalar inputs of the network (scalar 0 is t / R_limit)"),
    KBOOL("game.change_of_basis", game.change_of_basis, "true", "play games in randomly changed bases"),
    KDBL("game.basis_prob", game.basis_prob, 0, 1, "0.9", "probability that a game uses a non-canonical basis"),
    KINT("game.basis_pool", game.basis_pool, 1, 1000000, "1000", "bases sampled at start per target"),
    KDBL("game.basis_explore", game.basis_explore, 0, 1e6, "0",
         "choice of a game's basis: 0 = uniform over the pool; c > 0 = upper confidence bound on the mean return of each basis's games, exploration weight c (plays more the bases where games go well)"),
    KDBL("game.basis_discount", game.basis_discount, 0.5, 1, "1",
         "forgetting in the choice of basis (basis_explore > 0): each game started multiplies every basis's counts and return sums by this factor, so judgements made while the network was untrained fade and a basis left alone is tried again; 1 = remember everything"),
    KINT("game.basis_retire", game.basis_retire, 0, INT_MAX, "0",
         "replace a changed basis by a fresh random one after this many of its games end solved at no better than the best rank found (it only reproduces what is known); 0 = never"),
    KDBL("game.restart_prob", game.restart_prob, 0, 1, "0",
         "probability that a game starts part-way along one of the actor's best solved games (its first k moves replayed, k uniform in 1 .. rank-2, in that game's basis) and is searched from there: a shorter end is a better rank; 0 = every game from the start"),
    KINT("game.restart_lines", game.restart_lines, 1, 1000, "8",
         "solved games at the best rank an actor keeps per target as restart points (game.restart_prob)"),
    KINT("game.basis_max_entry", game.basis_max_entry, 1, 100, "1", "largest |entry| of a sampled change-of-basis matrix"),
    KBOOL("game.signed_perms", game.signed_perms, "true", "augment with signed permutations"),
    KINT("game.perm_pool", game.perm_pool, 1, 100000, "100", "signed permutations in the pool"),

    KINT("net.c", net.c, 1, 8192, "64", "torso width"),
    KINT("net.layers", net.layers, 1, 256, "2", "attentive-modes blocks in the torso"),
    KINT("net.heads", net.heads, 1, 256, "4", "torso attention heads"),
    KINT("net.head_dim", net.head_dim, 1, 1024, "16", "torso attention head width"),
    KINT("net.widen", net.widen, 1, 64, "4", "MLP widening in every attention block"),
    KINT("net.p_feat", net.p_feat, 1, 1024, "16", "policy head: features per head"),
    KINT("net.p_heads", net.p_heads, 1, 256, "4", "policy head: heads (width P = p_feat * p_heads)"),
    KINT("net.p_layers", net.p_layers, 1, 64, "2", "policy head: decoder layers"),
    KINT("net.v_hidden", net.v_hidden, 1, 8192, "64", "value head hidden width"),
    KINT("net.v_layers", net.v_layers, 1, 64, "2", "value head hidden layers"),
    KINT("net.quantiles", net.quantiles, 1, 1024, "8", "value head quantile outputs"),

    KSTR("train.backend", train.backend, "auto|cpu|cuda", "auto", "learner backend (auto: cuda where a GPU is present)"),
    KINT("train.batch", train.batch, 1, 1 << 20, "64", "training batch size"),
    KDBL("train.lr", train.lr, 0, 10, "1e-3", "peak learning rate (AdamW)"),
    KDBL("train.lr_min", train.lr_min, 0, 10, "1e-5", "learning rate at the end of the cosine decay"),
    KINT("train.warmup_steps", train.warmup_steps, 0, INT_MAX, "100", "linear warmup steps"),
    KINT("train.decay_steps", train.decay_steps, 1, INT_MAX, "100000", "cosine decay steps after warmup"),
    KDBL("train.weight_decay", train.weight_decay, 0, 10, "0.01", "AdamW weight decay"),
    KDBL("train.beta1", train.beta1, 0, 0.999999, "0.9", "AdamW beta1"),
    KDBL("train.beta2", train.beta2, 0, 0.999999999, "0.999", "AdamW beta2"),
    KDBL("train.eps", train.eps, 1e-30, 1, "1e-8", "AdamW epsilon"),
    KDBL("train.grad_clip", train.grad_clip, 0, 1e9, "1", "global gradient-norm clip (0 = off)"),
    KDBL("train.value_weight", train.value_weight, 0, 1e6, "1", "weight of the value loss"),
    KI64("train.max_steps", train.max_steps, 0, 1e15, "0", "stop after this many steps (0 = until stopped)"),
    KINT("train.checkpoint_every", train.checkpoint_every, 1, INT_MAX, "1000", "steps between checkpoints"),
    KINT("train.keep_checkpoints", train.keep_checkpoints, 1, 100000, "5", "checkpoints kept (older ones deleted)"),
    KINT("train.threads", train.threads, 0, 4096, "0", "CPU backend threads (0 = all cores)"),
    KINT("train.prefetch", train.prefetch, 1, 1024, "4", "batches requested ahead from replay"),
    KINT("train.publish_every", train.publish_every, 1, INT_MAX, "50", "publish weights to inference every N steps"),

    KSTR("infer.endpoint", infer.endpoint, NULL, "tcp://127.0.0.1:5555", "learner's inference ROUTER (bind address)"),
    KSTR("infer.connect", infer.connect, NULL, "tcp://127.0.0.1:5555", "where actors connect for inference"),
    KSTR("infer.pub_endpoint", infer.pub_endpoint, NULL, "tcp://127.0.0.1:5556", "weights PUB (bind address)"),
    KSTR("infer.pub_connect", infer.pub_connect, NULL, "tcp://127.0.0.1:5556", "where inference replicas subscribe"),
    KINT("infer.max_batch", infer.max_batch, 1, 1 << 20, "256", "positions per evaluation batch"),
    KDBL("infer.max_wait_ms", infer.max_wait_ms, 0, 1e6, "2", "longest a request waits for a fuller batch (ms)"),
    KDBL("infer.share", infer.share, 0, 1, "0.5", "fraction of learner time for inference when both compete"),
    KINT("infer.threads", infer.threads, 0, 4096, "0",
         "CPU backend: > 0 runs inference on this many threads of its own alongside training (no time-sharing; "
         "give train.threads + infer.threads <= the cores); 0 = time-share the training threads by infer.share"),
    KBOOL("infer.concurrent", infer.concurrent, "false",
          "run inference alongside training instead of taking turns by infer.share (the CUDA backend: "
          "each on its own stream, so the GPU overlaps them and fills the gaps of either's host work; "
          "the CPU backend: give infer.threads too, or the two pools share the cores)"),
    KINT("infer.samples", infer.samples, 1, 4096, "32", "K: actions sampled per position"),
    KDBL("infer.temperature", infer.temperature, 1e-6, 100, "1", "sampling temperature"),

    KSTR("replay.endpoint", replay.endpoint, NULL, "tcp://127.0.0.1:5557", "replay ROUTER (bind address)"),
    KSTR("replay.connect", replay.connect, NULL, "tcp://127.0.0.1:5557", "where actors and the learner connect to replay"),
    KBOOL("replay.synthetic", replay.synthetic, "true", "generate synthetic demonstrations"),
    KI64("replay.demos_size", replay.demos_size, 0, 1e12, "100000", "synthetic demonstrations generated at start"),
    KINT("replay.demos_rank_min", replay.demos_rank_min, 1, 100000, "1", "smallest rank of a synthetic demonstration"),
    KINT("replay.demos_rank_max", replay.demos_rank_max, 1, 100000, "8", "largest rank of a synthetic demonstration"),
    KSTR("replay.demos_probs", replay.demos_probs, NULL, "", "categorical over F as \"w1,w2,...\" (\"\" = uniform)"),
    KI64("replay.capacity", replay.capacity, 1, 1e12, "1000000", "positions kept in played (FIFO)"),
    KI64("replay.best_capacity", replay.best_capacity, 1, 1e12, "100000", "positions kept in best (FIFO)"),
    KDBL("replay.frac_demos", replay.frac_demos, 0, 1, "0.5", "fraction of a batch from demos"),
    KDBL("replay.frac_played", replay.frac_played, 0, 1, "0.4", "fraction of a batch from played"),
    KDBL("replay.frac_best", replay.frac_best, 0, 1, "0.1", "fraction of a batch from best"),
    KBOOL("replay.best_games", replay.best_games, "true", "retrain on the best games"),
    KBOOL("replay.best_played", replay.best_played, "false",
          "best games teach their played moves (self-imitation), not the search's policy"),
    KDBL("replay.reorder", replay.reorder, 0, 1, "0",
         "share of the positions sampled from solved played and best games that take the game's moves in a random "
         "order (the terms of a factorization commute; the target is then the next move of that order)"),
    KDBL("replay.samples_per_insert", replay.samples_per_insert, 0, 1e9, "64", "sampled played and best positions per inserted played position, over the run's life, restarts included (0 = no limit)"),
    KI64("replay.min_size", replay.min_size, 0, 1e12, "1000", "positions in played before sampling from played starts"),
    KINT("replay.flush_count", replay.flush_count, 1, 1 << 20, "16", "acknowledge inserts after this many games ..."),
    KDBL("replay.flush_ms", replay.flush_ms, 0, 1e7, "200", "... or this many milliseconds, whichever first"),
    KINT("replay.workers", replay.workers, 1, 1024, "2", "batch-building threads"),
    KINT("replay.prefetch", replay.prefetch, 1, 1024, "8", "batches built ahead"),
    KDBL("replay.checkpoint_s", replay.checkpoint_s, 1, 1e7, "300", "seconds between atomic rewrites of replay.h5 (the journal covers the gap)"),
    KI64("replay.max_message", replay.max_message, 1024, 1LL << 32, "67108864", "largest accepted request in bytes (larger ones get an error reply)"),
    KDBL("replay.stats_s", replay.stats_s, 0.1, 1e6, "10", "seconds between stats log lines and TensorBoard scalars"),

    KBOOL("actor.selfplay", actor.selfplay, "true", "play games (off: train on demonstrations only)"),
    KINT("actor.games", actor.games, 1, 1 << 20, "16", "games in flight per actor process"),
    KINT("actor.simulations", actor.simulations, 1, 1 << 24, "200", "MCTS simulations per move"),
    KDBL("actor.c1", actor.c1, 0, 1e6, "1.25", "pUCT c1"),
    KDBL("actor.c2", actor.c2, 1e-9, 1e12, "19652", "pUCT c2"),
    KINT("actor.n_bar", actor.n_bar, 1, 1 << 30, "100", "visit count above which the acting temperature adapts"),
    KINT("actor.inflight", actor.inflight, 1, 1024, "2", "evaluation requests in flight per actor"),
    KINT("actor.eval_batch", actor.eval_batch, 1, 1 << 20, "64", "leaves per evaluation request"),
    KDBL("actor.virtual_loss", actor.virtual_loss, 0, 1e6, "1", "virtual loss on pending paths"),
    KINT("actor.max_nodes", actor.max_nodes, 16, 1 << 30, "20000", "nodes per game's search arena (bounds its memory: see tg-actor's start line)"),
    KDBL("actor.dirichlet_alpha", actor.dirichlet_alpha, 0, 1e6, "0.3", "Dirichlet noise alpha at the root"),
    KDBL("actor.dirichlet_frac", actor.dirichlet_frac, 0, 1, "0.25", "weight of the Dirichlet noise at the root"),
    KINT("actor.explore_moves", actor.explore_moves, 0, 1000000, "0",
         "first moves of a game sampled from the improved policy over all children (later moves: only children whose Q is at least the most visited one's)"),
    KINT("actor.leaves_per_game", actor.leaves_per_game, 0, 1 << 16, "0", "evaluations in flight per game, under virtual loss (0 = enough to fill inflight x eval_batch)"),
    KDBL("actor.eval_timeout_s", actor.eval_timeout_s, 0.01, 1e6, "10", "re-issue an evaluation request unanswered for this long (s)"),
    KDBL("actor.ack_timeout_s", actor.ack_timeout_s, 0.01, 1e6, "30", "resend a game the replay server has not acknowledged for this long (s)"),
    KINT("actor.max_unacked", actor.max_unacked, 1, 1 << 20, "256", "pause self-play while this many finished games wait for an acknowledgement"),
    KDBL("actor.stats_s", actor.stats_s, 0.1, 1e6, "10", "seconds between the actor's stats log lines"),
    KDBL("actor.polish_share", actor.polish_share, 0, 0.95, "0",
         "share of each actor's time given to flip-graph polishing (common/flip.h): a random walk of rank-preserving flips and rank-lowering reductions, per target, from the actor's solved games at its best rank (canonical basis, coefficients within game.coeffs); a shorter scheme it finds is reported as a discovery and sent to replay as a game of actor NAME/polish, so the network trains on it; 0 = off (pure AlphaTensor: every result from the network's searches)"),
    KINT("actor.polish_plateau", actor.polish_plateau, 1, INT_MAX, "100",
         "flips without a reduction after which the polishing walk goes on from a scheme at its best rank with one plus step (one term more)"),

    KBOOL("security.curve", security.curve, "false", "CURVE encryption on every socket other hosts reach"),
    KSTR("security.keys_dir", security.keys_dir, NULL, "keys", "server and allowed client keys (tg keygen)"),
};
#define N_KEYS (sizeof keys / sizeof keys[0])

static const key_def *find_key(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* 1 if name is a section ("game" of "game.r_limit"). */
static int is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.')
            return 1;
    return 0;
}

static const char *type_name(enum key_type t)
{
    switch (t) {
    case KT_INT:
    case KT_I64:
    case KT_U64:
        return "int";
    case KT_DBL:
        return "float";
    case KT_BOOL:
        return "bool";
    case KT_STR:
        return "string";
    case KT_TARGETS:
        return "list of n,m,p";
    case KT_INTLIST:
        return "list of int";
    }
    return "?";
}

static int parse_bool(const char *s, int *out)
{
    static const char *const t[] = {"true", "yes", "on", "1"}, *const f[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0)
            return *out = 1, 0;
        if (strcasecmp(s, f[i]) == 0)
            return *out = 0, 0;
    }
    return -1;
}

/* Integers: decimal, or a float notation with an integral value ("1e6"). */
static int parse_integer(const char *s, long double *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end != s && *end == 0 && errno == 0)
        return *out = (long double)v, 0;
    errno = 0;
    long double d = strtold(s, &end);
    if (end == s || *end || errno || !isfinite(d) || d != floorl(d))
        return -1;
    return *out = d, 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    return s;
}

/* Sets a scalar key from text. For lists, `index` >= 0 sets one element (from a YAML sequence);
 * index -1 replaces the whole list from a separated string. */
static int set_value(tg_config *c, const key_def *k, const char *text, int index)
{
    char *p = (char *)c + k->off;
    switch (k->type) {
    case KT_INT:
    case KT_I64: {
        long double v;
        if (parse_integer(text, &v))
            return tg_fail("%s: '%s' is not an integer", k->name, text);
        if (v < (long double)k->lo || v > (long double)k->hi)
            return tg_fail("%s: %s is out of range [%.0f, %.0f]", k->name, text, k->lo, k->hi);
        if (k->type == KT_INT)
            *(int *)p = (int)v;
        else
            *(int64_t *)p = (int64_t)v;
        return 0;
    }
    case KT_U64: {
        char *end;
        errno = 0;
        if (text[0] == '-')
            return tg_fail("%s: '%s' is not a non-negative integer", k->name, text);
        unsigned long long v = strtoull(text, &end, 0);
        if (end == text || *end || errno)
            return tg_fail("%s: '%s' is not a non-negative integer", k->name, text);
        *(uint64_t *)p = (uint64_t)v;
        return 0;
    }
    case KT_DBL: {
        char *end;
        errno = 0;
        double v = strtod(text, &end);
        if (end == text || *end || errno || !isfinite(v))
            return tg_fail("%s: '%s' is not a number", k->name, text);
        if (v < k->lo || v > k->hi)
            return tg_fail("%s: %s is out of range [%g, %g]", k->name, text, k->lo, k->hi);
        *(double *)p = v;
        return 0;
    }
    case KT_BOOL: {
        int b;
        if (parse_bool(text, &b))
            return tg_fail("%s: '%s' is not a boolean (true/false)", k->name, text);
        *(int *)p = b;
        return 0;
    }
    case KT_STR: {
        if (strlen(text) >= k->size)
            return tg_fail("%s: value is longer than %zu characters", k->name, k->size - 1);
        if (k->choices) {
            size_t n = strlen(text);
            const char *q = k->choices;
            int ok = 0;
            while (*q && !ok) {
                const char *bar = strchr(q, '|');
                size_t len = bar ? (size_t)(bar - q) : strlen(q);
                ok = n > 0 && len == n && strncmp(q, text, n) == 0;
                q += len + (bar ? 1 : 0);
            }
            if (!ok)
                return tg_fail("%s: '%s' is not one of %s", k->name, text, k->choices);
        }
        snprintf(p, k->size, "%s", text);
        return 0;
    }
    case KT_TARGETS:
    case KT_INTLIST: {
        if (index < 0) {
            /* a whole list in one string: "2,2,2; 3,3,3" for targets, "7,23" for ranks */
            char buf[1024];
            if (strlen(text) >= sizeof buf)
                return tg_fail("%s: value too long", k->name);
            snprintf(buf, sizeof buf, "%s", text);
            const char *sep = k->type == KT_TARGETS ? ";" : ",";
            char *save = NULL;
            int i = 0;
            if (k->type == KT_TARGETS)
                c->game.n_targets = 0;
            else
                memset(p, 0, k->size);
            for (char *tok = strtok_r(buf, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
                tok = trim(tok);
                if (!*tok)
                    continue;
                if (set_value(c, k, tok, i++))
                    return -1;
            }
            if (k->type == KT_TARGETS && c->game.n_targets == 0)
                return tg_fail("%s: empty list", k->name);
            return 0;
        }
        if (index >= TG_MAX_TARGETS)
            return tg_fail("%s: more than %d entries", k->name, TG_MAX_TARGETS);
        if (k->type == KT_TARGETS) {
            tg_dims d;
            if (tg_dims_parse(text, &d) || tg_dims_check(d)) {
                if (!strpbrk(text, ",x")) /* [2,2,2] in YAML is three entries */
                    return tg_fail("%s: entry %d: '%s' is not n,m,p (quote each target: [\"2,2,2\"])", k->name,
                                   index + 1, text);
                return tg_fail_ctx("%s: entry %d: ", k->name, index + 1);
            }
            snprintf(c->game.targets[index], sizeof c->game.targets[index], "%d,%d,%d", d.n, d.m, d.p);
            c->game.n_targets = index + 1;
            return 0;
        }
        long double v;
        if (parse_integer(text, &v))
            return tg_fail("%s: entry %d: '%s' is not an integer", k->name, index + 1, text);
        if (v < (long double)k->lo || v > (long double)k->hi)
            return tg_fail("%s: entry %d: %s is out of range [%.0f, %.0f]", k->name, index + 1, text, k->lo,
                           k->hi);
        ((int *)p)[index] = (int)v;
        return 0;
    }
    }
    return tg_fail("%s: unsupported type", k->name);
}

/* Starts a list that a YAML sequence fills element by element. */
static void list_clear(tg_config *c, const key_def *k)
{
    if (k->type == KT_TARGETS)
        c->game.n_targets = 0;
    else
        memset((char *)c + k->off, 0, k->size);
}

static int is_list(const key_def *k) { return k->type == KT_TARGETS || k->type == KT_INTLIST; }

void tg_config_defaults(tg_config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_KEYS; i++) {
        int rc = set_value(c, &keys[i], keys[i].def, -1);
        if (rc) /* a bad default is a bug in the table */
            fprintf(stderr, "config: bad default: %s\n", tg_errmsg());
        TG_ASSERT(rc == 0);
    }
}

int tg_config_set(tg_config *c, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return tg_fail("override '%s': expected section.key=value", assignment);
    char name[128];
    size_t n = (size_t)(eq - assignment);
    if (n == 0 || n >= sizeof name)
        return tg_fail("override '%s': expected section.key=value", assignment);
    memcpy(name, assignment, n);
    name[n] = 0;
    char *nm = trim(name);
    const key_def *k = find_key(nm);
    if (!k)
        return tg_fail("unknown config key '%s' (see `tg config --doc`)", nm);
    char val[1024];
    snprintf(val, sizeof val, "%s", eq + 1);
    char *v = trim(val);
    /* [a, b] list syntax on the command line, as in YAML flow style */
    size_t vl = strlen(v);
    if (is_list(k) && vl >= 2 && v[0] == '[' && v[vl - 1] == ']') {
        v[vl - 1] = 0;
        v++;
        if (k->type == KT_TARGETS) /* "[2,2,2, 3,3,3]" is ambiguous; require quotes or ';' */
            return tg_fail("%s: write a list of targets as \"2,2,2;3,3,3\"", k->name);
    }
    return set_value(c, k, v, -1);
}

/* ---- YAML ---------------------------------------------------------------------------------- */

static const char *yaml_err_kind(yaml_error_type_t t)
{
    switch (t) {
    case YAML_MEMORY_ERROR:
        return "out of memory";
    case YAML_READER_ERROR:
        return "unreadable input";
    case YAML_SCANNER_ERROR:
        return "syntax error";
    case YAML_PARSER_ERROR:
        return "syntax error";
    default:
        return "error";
    }
}

/* Walks events: the document is a mapping of sections, each a mapping of keys to scalars (or
 * sequences of scalars for list keys). "section.key: value" at the top level is accepted too. */
static int load_events(tg_config *c, const char *path, yaml_parser_t *parser)
{
    int depth = 0;          /* 0 outside the document's mapping, 1 in it, 2 in a section */
    int have_key = 0;       /* a key at the current depth waits for its value */
    char section[128] = "", key[128] = "", full[300];
    const key_def *list_key = NULL;
    int list_index = 0, started = 0;

    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev))
            return tg_fail("%s:%zu:%zu: YAML %s: %s", path, parser->problem_mark.line + 1,
                           parser->problem_mark.column + 1, yaml_err_kind(parser->error),
                           parser->problem ? parser->problem : "?");
        size_t line = ev.start_mark.line + 1;
        int rc = 0;
        /* the key a value at this point belongs to */
        if (have_key && depth == 2)
            snprintf(full, sizeof full, "%s.%s", section, key);
        else if (have_key)
            snprintf(full, sizeof full, "%s", key);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            return 0;
        case YAML_DOCUMENT_START_EVENT:
            if (started)
                rc = tg_fail("%s:%zu: more than one YAML document", path, line);
            started = 1;
            break;
        case YAML_ALIAS_EVENT:
            rc = tg_fail("%s:%zu: YAML aliases are not supported in a config", path, line);
            break;
        case YAML_MAPPING_START_EVENT:
            if (depth == 0) {
                depth = 1;
            } else if (depth == 1 && have_key && !strchr(key, '.')) {
                snprintf(section, sizeof section, "%s", key);
                depth = 2;
                have_key = 0;
            } else {
                rc = tg_fail("%s:%zu: %s: unexpected mapping (a section holds key: value pairs)", path, line,
                             have_key ? full : section);
            }
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            have_key = 0;
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth == 0 || !have_key || list_key) {
                rc = tg_fail("%s:%zu: unexpected list", path, line);
            } else if (!(list_key = find_key(full))) {
                rc = tg_fail("%s:%zu: unknown config key '%s'", path, line, full);
            } else if (!is_list(list_key)) {
                rc = tg_fail("%s:%zu: %s: expected one %s value, not a list", path, line, full, type_name(list_key->type));
            } else {
                list_clear(c, list_key);
                list_index = 0;
            }
            break;
        case YAML_SEQUENCE_END_EVENT:
            if (list_key && list_key->type == KT_TARGETS && list_index == 0)
                rc = tg_fail("%s:%zu: %s: empty list", path, line, list_key->name);
            list_key = NULL;
            have_key = 0;
            break;
        case YAML_SCALAR_EVENT: {
            const char *val = (const char *)ev.data.scalar.value;
            const key_def *k;
            if (depth == 0) {
                rc = tg_fail("%s:%zu: expected a mapping of sections (run, game, net, ...)", path, line);
            } else if (list_key) {
                if (set_value(c, list_key, val, list_index++))
                    rc = tg_fail_ctx("%s:%zu: ", path, line);
            } else if (!have_key) {
                snprintf(key, sizeof key, "%s", val);
                have_key = 1;
            } else if (depth == 1 && !strchr(key, '.') && val[0] == 0 &&
                       ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
                have_key = 0; /* "section:" with nothing under it */
            } else if (depth == 1 && is_section(full)) {
                rc = tg_fail("%s:%zu: '%s' is a section, not a key: indent its 'key: value' lines under it",
                             path, line, full);
            } else if (!(k = find_key(full))) {
                rc = tg_fail("%s:%zu: unknown config key '%s'%s", path, line, full,
                             strchr(full, '.') ? "" : " (expected a section: run, game, net, train, infer, replay, actor, security)");
            } else {
                if (set_value(c, k, val, -1))
                    rc = tg_fail_ctx("%s:%zu: ", path, line);
                have_key = 0;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc)
            return rc;
    }
}

int tg_config_load(tg_config *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_fail("config %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(f);
        return tg_fail("config %s: cannot initialise the YAML parser", path);
    }
    yaml_parser_set_input_file(&parser, f);
    int rc = load_events(c, path, &parser);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

/* ---- finishing ----------------------------------------------------------------------------- */

int tg_config_finish(tg_config *c)
{
    if (c->game.n_targets < 1)
        return tg_fail("game.targets: at least one target is needed");
    int S = 0;
    for (int i = 0; i < c->game.n_targets; i++) {
        if (tg_dims_parse(c->game.targets[i], &c->game.dims[i]) || tg_dims_check(c->game.dims[i]))
            return tg_fail_ctx("game.targets: '%s': ", c->game.targets[i]);
        int modes[3];
        tg_dims_modes(c->game.dims[i], modes);
        for (int j = 0; j < 3; j++)
            if (modes[j] > S)
                S = modes[j];
    }
    if (S > TG_MAX_S)
        return tg_fail("game.targets: the largest mode is %d, more than the game's limit S <= %d", S, TG_MAX_S);
    c->game.S = S;
    for (int i = c->game.n_targets; i < TG_MAX_TARGETS; i++)
        if (c->game.target_rank[i])
            return tg_fail("game.target_rank: %d entries given for %d targets", i + 1, c->game.n_targets);

    tg_arith ar;
    if (tg_arith_parse(c->game.arithmetic, &ar))
        return tg_fail_ctx("game.arithmetic: ");
    c->game.mod2 = ar == TG_ARITH_MOD2;
    if (tg_coeffs_parse(c->game.coeffs, &c->game.F))
        return tg_fail_ctx("game.coeffs: ");
    if (c->game.F.n < 2)
        return tg_fail("game.coeffs: '%s' has fewer than 2 values", c->game.coeffs);
    if (c->game.mod2 && !(c->game.F.n == 2 && c->game.F.v[0] == 0 && c->game.F.v[1] == 1))
        return tg_fail("game.coeffs: mod2 arithmetic needs the coefficients 0,1 (got '%s')", c->game.coeffs);
    if (c->game.signed_perms && !c->game.mod2 && !tg_coeffs_symmetric(&c->game.F))
        return tg_fail("game.signed_perms: needs a symmetric coefficient set (game.coeffs '%s' is not)",
                       c->game.coeffs);
    c->actor.polish_bound = 0;
    while (c->actor.polish_bound < 127 && c->game.F.index_of[128 + c->actor.polish_bound + 1] >= 0 &&
           c->game.F.index_of[128 - c->actor.polish_bound - 1] >= 0)
        c->actor.polish_bound++;
    if (c->actor.polish_share > 0 && (c->game.mod2 || c->actor.polish_bound < 1))
        return tg_fail("actor.polish_share: polishing needs integer arithmetic and coefficients -1, 0, 1 in "
                       "game.coeffs (got %s, '%s')", c->game.arithmetic, c->game.coeffs);
    if (tg_tokens_shape(S, c->game.n_steps, c->game.F.n, &c->game.d, &c->game.n_logits))
        return tg_fail_ctx("game.n_steps: %d with S = %d and |F| = %d: ", c->game.n_steps, S, c->game.F.n);

    if (c->replay.demos_rank_min > c->replay.demos_rank_max)
        return tg_fail("replay.demos_rank_min: %d is larger than replay.demos_rank_max %d", c->replay.demos_rank_min,
                       c->replay.demos_rank_max);
    if (c->replay.demos_probs[0]) {
        char buf[sizeof c->replay.demos_probs], *save = NULL;
        snprintf(buf, sizeof buf, "%s", c->replay.demos_probs);
        int n = 0;
        double sum = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *end;
            tok = trim(tok);
            double w = strtod(tok, &end);
            if (end == tok || *end || !isfinite(w) || w < 0)
                return tg_fail("replay.demos_probs: '%s' is not a non-negative number", tok);
            sum += w;
            n++;
        }
        if (n != c->game.F.n)
            return tg_fail("replay.demos_probs: %d weights for %d coefficients in game.coeffs", n, c->game.F.n);
        if (!(sum > 0))
            return tg_fail("replay.demos_probs: the weights sum to 0");
    }
    double fr = c->replay.frac_demos + c->replay.frac_played + c->replay.frac_best;
    if (fabs(fr - 1.0) > 1e-6)
        return tg_fail("replay.frac_demos: frac_demos + frac_played + frac_best must be 1 (is %g)", fr);
    if (c->train.lr_min > c->train.lr)
        return tg_fail("train.lr_min: %g is larger than train.lr %g", c->train.lr_min, c->train.lr);
    if (c->security.curve && !c->security.keys_dir[0])
        return tg_fail("security.keys_dir: needed when security.curve is on");
    return 0;
}

/* ---- writing ------------------------------------------------------------------------------- */

static void fmt_double(double v, char *buf, size_t len)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* keep it a YAML float, not an int, so readers see the type */
    if (!strpbrk(buf, ".eEn"))
        snprintf(buf + strlen(buf), len - strlen(buf), ".0");
}

/* Text of a key's current value (lists as comma/semicolon strings). */
static void value_text(const tg_config *c, const key_def *k, char *buf, size_t len)
{
    const char *p = (const char *)c + k->off;
    switch (k->type) {
    case KT_INT:
        snprintf(buf, len, "%d", *(const int *)p);
        break;
    case KT_I64:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)p);
        break;
    case KT_U64:
        snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)p);
        break;
    case KT_DBL:
        fmt_double(*(const double *)p, buf, len);
        break;
    case KT_BOOL:
        snprintf(buf, len, "%s", *(const int *)p ? "true" : "false");
        break;
    case KT_STR:
        snprintf(buf, len, "%s", p);
        break;
    case KT_TARGETS:
    case KT_INTLIST:
        buf[0] = 0;
        break;
    }
}

static int emit(yaml_emitter_t *em, yaml_event_t *ev)
{
    return yaml_emitter_emit(em, ev) ? 0 : tg_fail("YAML emitter: %s", em->problem ? em->problem : "error");
}

static int emit_scalar(yaml_emitter_t *em, const char *s, int quoted)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                 quoted ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
    return emit(em, &ev);
}

static int write_yaml(const tg_config *c, FILE *f)
{
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        return tg_fail("cannot initialise the YAML emitter");
    yaml_emitter_set_output_file(&em, f);
    yaml_emitter_set_unicode(&em, 1);
    int rc = -1;
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    if (emit(&em, &ev))
        goto out;
    yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
    if (emit(&em, &ev))
        goto out;
    yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
    if (emit(&em, &ev))
        goto out;
    char cur[64] = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        size_t sl = (size_t)(dot - k->name);
        if (strlen(cur) != sl || strncmp(cur, k->name, sl) != 0) {
            if (cur[0]) {
                yaml_mapping_end_event_initialize(&ev);
                if (emit(&em, &ev))
                    goto out;
            }
            snprintf(cur, sizeof cur, "%.*s", (int)sl, k->name);
            if (emit_scalar(&em, cur, 0))
                goto out;
            yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
            if (emit(&em, &ev))
                goto out;
        }
        if (emit_scalar(&em, dot + 1, 0))
            goto out;
        if (is_list(k)) {
            yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE);
            if (emit(&em, &ev))
                goto out;
            int n = c->game.n_targets;
            if (k->type == KT_INTLIST) /* as many entries as targets, or more if set */
                for (int j = n; j < TG_MAX_TARGETS; j++)
                    if (((const int *)((const char *)c + k->off))[j])
                        n = j + 1;
            for (int j = 0; j < n; j++) {
                char buf[32];
                if (k->type == KT_TARGETS)
                    snprintf(buf, sizeof buf, "%s", c->game.targets[j]);
                else
                    snprintf(buf, sizeof buf, "%d", ((const int *)((const char *)c + k->off))[j]);
                if (emit_scalar(&em, buf, k->type == KT_TARGETS))
                    goto out;
            }
            yaml_sequence_end_event_initialize(&ev);
            if (emit(&em, &ev))
                goto out;
        } else {
            char buf[TG_STR + 64];
            value_text(c, k, buf, sizeof buf);
            /* strings are always quoted so "1" or "no" stay strings when read back */
            if (emit_scalar(&em, buf, k->type == KT_STR))
                goto out;
        }
    }
    if (cur[0]) {
        yaml_mapping_end_event_initialize(&ev);
        if (emit(&em, &ev))
            goto out;
    }
    yaml_mapping_end_event_initialize(&ev);
    if (emit(&em, &ev))
        goto out;
    yaml_document_end_event_initialize(&ev, 1);
    if (emit(&em, &ev))
        goto out;
    yaml_stream_end_event_initialize(&ev);
    if (emit(&em, &ev))
        goto out;
    if (!yaml_emitter_flush(&em)) {
        tg_fail("YAML emitter: cannot flush");
        goto out;
    }
    rc = 0;
out:
    yaml_emitter_delete(&em);
    return rc;
}

int tg_config_write(const tg_config *c, const char *path)
{
    if (strcmp(path, "-") == 0) {
        fprintf(stdout, "# tensorgame run configuration\n");
        if (write_yaml(c, stdout))
            return -1;
        return fflush(stdout) == 0 ? 0 : tg_fail("writing the config to stdout: %s", strerror(errno));
    }
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return tg_fail("config %s: path too long", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return tg_fail("config %s: %s", tmp, strerror(errno));
    fprintf(f, "# tensorgame run configuration (every key; `tg config --doc` explains them)\n");
    if (write_yaml(c, f)) {
        fclose(f);
        unlink(tmp);
        return tg_fail_ctx("config %s: ", path);
    }
    if (fflush(f) || ferror(f) || fsync(fileno(f))) {
        int e = errno;
        fclose(f);
        unlink(tmp);
        return tg_fail("config %s: %s", path, strerror(e));
    }
    if (fclose(f)) {
        unlink(tmp);
        return tg_fail("config %s: %s", path, strerror(errno));
    }
    if (rename(tmp, path)) {
        int e = errno;
        unlink(tmp);
        return tg_fail("config %s: %s", path, strerror(e));
    }
    return 0;
}

/* ---- documentation ------------------------------------------------------------------------- */

void tg_config_print_doc(FILE *out)
{
    fprintf(out, "# Configuration\n\n"
                 "Generated by `tg config --doc` from the key table in common/config.c; do not edit.\n\n"
                 "A run is configured by one YAML file (the run's `config.yaml`) with one mapping per\n"
                 "section; every key has a default. Any key can be overridden on the command line of\n"
                 "every binary as `section.key=value` or `--set section.key=value`, applied after the\n"
                 "file. Lists are YAML sequences (`targets: [\"2,2,2\", \"3,3,3\"]`) or one string\n"
                 "(`game.targets=2,2,2;3,3,3`, `game.target_rank=7,23`). Unknown keys and bad values are\n"
                 "errors that name the key (and the file and line).\n\n"
                 "Derived (not keys): S = the largest mode over the targets; d = 3S / n_steps;\n"
                 "n_logits = |F|^d; mod2 from arithmetic; F from coeffs.\n\n"
                 "```yaml\n"
                 "game:\n"
                 "  targets: [\"2,2,2\"]\n"
                 "  target_rank: [7]\n"
                 "  r_limit: 8\n"
                 "net:\n"
                 "  c: 64\n"
                 "```\n");
    char cur[64] = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const key_def *k = &keys[i];
        const char *dot = strchr(k->name, '.');
        size_t sl = (size_t)(dot - k->name);
        if (strlen(cur) != sl || strncmp(cur, k->name, sl) != 0) {
            snprintf(cur, sizeof cur, "%.*s", (int)sl, k->name);
            fprintf(out, "\n## %s\n\n| key | type | default | range | meaning |\n|---|---|---|---|---|\n", cur);
        }
        char range[96] = "";
        if (k->type == KT_INT || k->type == KT_I64 || k->type == KT_INTLIST)
            snprintf(range, sizeof range, "%.0f .. %.0f", k->lo, k->hi);
        else if (k->type == KT_DBL)
            snprintf(range, sizeof range, "%g .. %g", k->lo, k->hi);
        else if (k->type == KT_STR && k->choices)
            snprintf(range, sizeof range, "%s", k->choices);
        else if (k->type == KT_BOOL)
            snprintf(range, sizeof range, "true, false");
        /* '|' inside a table cell must be escaped */
        char esc[2 * sizeof range];
        size_t j = 0;
        for (const char *s = range; *s && j + 2 < sizeof esc; s++) {
            if (*s == '|')
                esc[j++] = '\\';
            esc[j++] = *s;
        }
        esc[j] = 0;
        fprintf(out, "| `%s` | %s | `%s` | %s | %s |\n", k->name, type_name(k->type), k->def, esc, k->help);
    }
}

/* ---- command line -------------------------------------------------------------------------- */

int tg_config_from_args(tg_config *c, int argc, char **argv)
{
    tg_config_defaults(c);
    /* the file first, then overrides in order, wherever they appear */
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc)
                return tg_fail("--config needs a file name");
            file = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            file = argv[i] + 9;
        }
    }
    if (file && tg_config_load(c, file))
        return -1;
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
        } else if (strncmp(a, "--config=", 9) == 0) {
        } else if (strcmp(a, "--set") == 0) {
            if (i + 1 >= argc)
                return tg_fail("--set needs section.key=value");
            if (tg_config_set(c, argv[++i]))
                return -1;
        } else if (strncmp(a, "--set=", 6) == 0) {
            if (tg_config_set(c, a + 6))
                return -1;
        } else if (a[0] != '-' && strchr(a, '=') && strchr(a, '.') && strchr(a, '.') < strchr(a, '=')) {
            if (tg_config_set(c, a))
                return -1;
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    if (tg_config_finish(c))
        return -1;
    return out;
}

int tg_config_get(const tg_config *c, const char *name, char *buf, size_t len)
{
    const key_def *k = find_key(name);
    if (!k)
        return tg_fail("unknown configuration key '%s' (tg config --doc lists them)", name);
    size_t used = 0;
    buf[0] = 0;
    if (k->type == KT_TARGETS) {
        for (int i = 0; i < c->game.n_targets && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ";" : "", c->game.targets[i]);
    } else if (k->type == KT_INTLIST) {
        const int *v = (const int *)((const char *)c + k->off);
        for (int i = 0; i < c->game.n_targets && used < len; i++)
            used += (size_t)snprintf(buf + used, len - used, "%s%d", i ? "," : "", v[i]);
    } else {
        value_text(c, k, buf, len);
    }
    return 0;
}
