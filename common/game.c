/* The tensor game: state, moves, rewards, network features, hashing and rank bounds.
 *
 * Hot path (the actor's search): one allocation per game holding the residual and the played
 * actions, so a copy is two memcpy's; a move touches only the non-zero pattern of u (x) v (x) w
 * and keeps the residual's non-zero count and hash up to date incrementally. */
#include "common/game.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/action.h"
#include "common/err.h"

struct tg_game {
    int S, mod2, r_limit, history;
    int step;
    int nnz;       /* non-zero entries of the residual */
    uint64_t hash; /* tg_tensor_hash of the residual, kept incrementally */
    size_t bytes;  /* size of this allocation */
    int32_t *residual; /* [S^3], points into this allocation */
    int8_t *actions;   /* [r_limit][3S], likewise */
};

/* Linear hash: H(t) = sum_i t[i] Z[i] mod 2^64 with random 64-bit keys Z, so a move updates it
 * with one multiply-add per touched entry and a from-scratch hash of the same tensor gives the
 * same value. Two tensors collide only if their difference d has d.Z = 0 mod 2^64 (chance about
 * 2^-64 for random Z, 2^(k-64) when 2^k divides every entry of d). */
#define TG_HASH_N (TG_MAX_S * TG_MAX_S * TG_MAX_S)
static uint64_t hash_keys[TG_HASH_N];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_init(void)
{
    uint64_t x = 0x7a3c9e1d5b2f4806ULL;
    for (int i = 0; i < TG_HASH_N; i++) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        hash_keys[i] = z ^ (z >> 31);
    }
}

static inline const uint64_t *hash_table(void)
{
    pthread_once(&hash_once, hash_init);
    return hash_keys;
}

uint64_t tg_tensor_hash(const int32_t *t, int S)
{
    TG_ASSERT(S >= 1 && S <= TG_MAX_S);
    const uint64_t *Z = hash_table();
    uint64_t h = 0;
    size_t n = (size_t)S * S * S;
    for (size_t i = 0; i < n; i++)
        h += (uint64_t)(int64_t)t[i] * Z[i];
    return h;
}

tg_game *tg_game_new(const int32_t *target, int S, int mod2, int r_limit, int history)
{
    if (S < 1 || S > TG_MAX_S) {
        tg_fail("game: S=%d out of range 1..%d", S, TG_MAX_S);
        return NULL;
    }
    if (r_limit < 1 || r_limit > 100000) {
        tg_fail("game: step limit %d out of range 1..100000", r_limit);
        return NULL;
    }
    if (history < 0 || history > 64) {
        tg_fail("game: history %d out of range 0..64", history);
        return NULL;
    }
    size_t n3 = (size_t)S * S * S;
    size_t head = (sizeof(tg_game) + 63) & ~(size_t)63;
    size_t bytes = head + n3 * sizeof(int32_t) + (size_t)r_limit * 3 * S;
    tg_game *g = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!g) {
        tg_fail("game: out of memory");
        return NULL;
    }
    memset(g, 0, head);
    g->S = S;
    g->mod2 = mod2 ? 1 : 0;
    g->r_limit = r_limit;
    g->history = history;
    g->bytes = bytes;
    g->residual = (int32_t *)((char *)g + head);
    g->actions = (int8_t *)(g->residual + n3);
    memset(g->actions, 0, (size_t)r_limit * 3 * S);
    for (size_t i = 0; i < n3; i++) {
        int32_t v = target[i];
        if (g->mod2)
            v &= 1;
        g->residual[i] = v;
        g->nnz += v != 0;
    }
    g->hash = tg_tensor_hash(g->residual, S);
    return g;
}

void tg_game_free(tg_game *g) { free(g); }

void tg_game_copy(tg_game *dst, const tg_game *src)
{
    TG_ASSERT(dst->S == src->S && dst->r_limit == src->r_limit && dst->history == src->history);
    if (dst == src)
        return;
    int32_t *res = dst->residual;
    int8_t *act = dst->actions;
    *dst = *src;
    dst->residual = res;
    dst->actions = act;
    memcpy(res, src->residual, sizeof(int32_t) * (size_t)src->S * src->S * src->S);
    memcpy(act, src->actions, (size_t)src->step * 3 * src->S);
}

int tg_game_S(const tg_game *g) { return g->S; }
int tg_game_step(const tg_game *g) { return g->step; }
int tg_game_r_limit(const tg_game *g) { return g->r_limit; }
int tg_game_mod2(const tg_game *g) { return g->mod2; }
const int32_t *tg_game_residual(const tg_game *g) { return g->residual; }
int tg_game_done(const tg_game *g) { return g->nnz == 0 || g->step >= g->r_limit; }
int tg_game_solved(const tg_game *g) { return g->nnz == 0; }
const int8_t *tg_game_actions(const tg_game *g) { return g->actions; }
uint64_t tg_game_hash(const tg_game *g) { return g->hash; }

double tg_game_play(tg_game *g, const int8_t *a)
{
    TG_ASSERT(!tg_game_done(g));
    const int S = g->S;
    const uint64_t *Z = hash_table();
    const int8_t *w = a + 2 * S;
    int ia[TG_MAX_S], ib[TG_MAX_S];
    int32_t va[TG_MAX_S], vb[TG_MAX_S], wc[TG_MAX_S];
    int na = 0, nb = 0, anyw = 0;
    for (int i = 0; i < S; i++) {
        if (a[i]) {
            ia[na] = i;
            va[na++] = a[i];
        }
        if (a[S + i]) {
            ib[nb] = i;
            vb[nb++] = a[S + i];
        }
        wc[i] = g->mod2 ? (w[i] & 1) : w[i];
        anyw |= wc[i];
    }
    int nnz = g->nnz;
    uint64_t h = g->hash;
    if (anyw)
        for (int x = 0; x < na; x++)
            for (int y = 0; y < nb; y++) {
                const size_t base = ((size_t)ia[x] * S + ib[y]) * S;
                int32_t *row = g->residual + base;
                const uint64_t *z = Z + base;
                const int32_t ab = va[x] * vb[y];
                int cnt = 0;
                uint64_t dh = 0;
                /* dense over c (S <= 32): branch-free, so the compiler vectorises it */
                if (g->mod2) {
                    if (!(ab & 1))
                        continue;
                    for (int c = 0; c < S; c++) {
                        const int32_t old = row[c], nv = old ^ wc[c];
                        row[c] = nv;
                        cnt += (nv != 0) - (old != 0);
                        dh += (uint64_t)(int64_t)(nv - old) * z[c];
                    }
                } else {
                    for (int c = 0; c < S; c++) {
                        const int32_t old = row[c], nv = old - ab * wc[c];
                        row[c] = nv;
                        cnt += (nv != 0) - (old != 0);
                        dh += (uint64_t)(int64_t)(nv - old) * z[c];
                    }
                }
                nnz += cnt;
                h += dh;
            }
    g->nnz = nnz;
    g->hash = h;
    memcpy(g->actions + (size_t)g->step * 3 * S, a, (size_t)3 * S);
    g->step++;
    double reward = -1.0;
    if (g->step >= g->r_limit && g->nnz)
        reward -= tg_rank_bound(g->residual, S, g->mod2);
    return reward;
}

void tg_game_features(const tg_game *g, float *out_tensors, int n_scalars, float *out_scalars)
{
    const int S = g->S;
    const size_t n3 = (size_t)S * S * S;
    const int32_t *res = g->residual;
    for (size_t i = 0; i < n3; i++)
        out_tensors[i] = (float)res[i];
    for (int k = 0; k < g->history; k++) {
        float *o = out_tensors + (size_t)(k + 1) * n3;
        int s = g->step - 1 - k; /* most recent first */
        if (s < 0) {
            memset(o, 0, n3 * sizeof(float));
            continue;
        }
        const int8_t *a = g->actions + (size_t)s * 3 * S;
        const int8_t *u = a, *v = a + S;
        float wf[TG_MAX_S];
        for (int l = 0; l < S; l++)
            wf[l] = (float)a[2 * S + l];
        for (int i = 0; i < S; i++) {
            float *oi = o + (size_t)i * S * S;
            if (!u[i]) {
                memset(oi, 0, (size_t)S * S * sizeof(float));
                continue;
            }
            for (int j = 0; j < S; j++) {
                float *oij = oi + (size_t)j * S;
                if (!v[j]) {
                    memset(oij, 0, (size_t)S * sizeof(float));
                    continue;
                }
                const float uv = (float)(u[i] * v[j]);
                for (int l = 0; l < S; l++)
                    oij[l] = uv * wf[l];
            }
        }
    }
    if (n_scalars > 0) {
        out_scalars[0] = (float)g->step / (float)g->r_limit;
        for (int i = 1; i < n_scalars; i++)
            out_scalars[i] = 0.0f;
    }
}

/* ---- ranks ---- */

/* Rank over Q of m[rows][cols] (overwritten) by fraction-free (Bareiss) elimination: after k
 * pivots every remaining entry is a (k+1)-minor of the input, so divisions by the previous pivot
 * are exact; the intermediate products are formed in 128 bits and any result that leaves 64 bits
 * is reported. */
static int rank_q_inplace(int64_t *m, int rows, int cols)
{
    int rank = 0;
    int64_t prev = 1;
    for (int c = 0; c < cols && rank < rows; c++) {
        int piv = -1;
        for (int r = rank; r < rows; r++)
            if (m[(size_t)r * cols + c]) {
                piv = r;
                break;
            }
        if (piv < 0)
            continue;
        if (piv != rank)
            for (int j = c; j < cols; j++) {
                int64_t t = m[(size_t)piv * cols + j];
                m[(size_t)piv * cols + j] = m[(size_t)rank * cols + j];
                m[(size_t)rank * cols + j] = t;
            }
        const int64_t *pr = m + (size_t)rank * cols;
        const int64_t p = pr[c];
        for (int r = rank + 1; r < rows; r++) {
            int64_t *rr = m + (size_t)r * cols;
            const int64_t f = rr[c];
            for (int j = c + 1; j < cols; j++) {
                int64_t t1, t2, d;
                /* 64-bit fast path; 128 bits only when a product or difference overflows */
                if (!__builtin_mul_overflow(p, rr[j], &t1) && !__builtin_mul_overflow(f, pr[j], &t2) &&
                    !__builtin_sub_overflow(t1, t2, &d)) {
                    rr[j] = prev == 1 ? d : d / prev;
                    continue;
                }
                __int128 x = (__int128)p * rr[j] - (__int128)f * pr[j];
                x /= prev;
                if (x > INT64_MAX || x < INT64_MIN)
                    return tg_fail("matrix rank: 64-bit overflow in fraction-free elimination");
                rr[j] = (int64_t)x;
            }
            rr[c] = 0;
        }
        prev = p;
        rank++;
    }
    return rank;
}

/* Rank over GF(2) of rows given as bitsets of `words` 64-bit words each (overwritten). */
static int rank_gf2_inplace(uint64_t *b, int rows, int words)
{
    int rank = 0;
    for (int w = 0; w < words && rank < rows; w++)
        for (int bit = 0; bit < 64 && rank < rows; bit++) {
            const uint64_t mask = 1ULL << bit;
            int piv = -1;
            for (int r = rank; r < rows; r++)
                if (b[(size_t)r * words + w] & mask) {
                    piv = r;
                    break;
                }
            if (piv < 0)
                continue;
            if (piv != rank)
                for (int j = w; j < words; j++) {
                    uint64_t t = b[(size_t)piv * words + j];
                    b[(size_t)piv * words + j] = b[(size_t)rank * words + j];
                    b[(size_t)rank * words + j] = t;
                }
            const uint64_t *pr = b + (size_t)rank * words;
            for (int r = rank + 1; r < rows; r++) {
                uint64_t *rr = b + (size_t)r * words;
                if (rr[w] & mask)
                    for (int j = w; j < words; j++)
                        rr[j] ^= pr[j];
            }
            rank++;
        }
    return rank;
}

/* ---- exact rank over Q: modular elimination certified by Hadamard's bound ----
 *
 * rank_p(M) <= rank_Q(M) for every prime p, and rank_p(M) < rank_Q(M) = r only if p divides every
 * non-zero r x r minor. A minor is bounded by Hadamard: |det| <= product of the r largest row
 * norms = H. So for distinct primes with product > H, the largest rank_p equals rank_Q exactly.
 * The primes are 2^61 - c (pseudo-Mersenne: reduction without division). */
static const uint16_t prime_c[] = {1,   31,  45,  229, 259, 283, 339, 391, 403, 465,  531,  579,
                                   675, 759, 799, 819, 829, 843, 859, 939, 985, 1015, 1153, 1195};
#define N_PRIMES ((int)(sizeof prime_c / sizeof prime_c[0]))
#define M61 ((uint64_t)0x1fffffffffffffffULL)
#define PRIME_BITS 60.99 /* every prime above is > 2^60.99 */

static inline uint64_t mulmod(uint64_t a, uint64_t b, uint64_t c, uint64_t p)
{
    unsigned __int128 x = (unsigned __int128)a * b;                  /* < 2^122 */
    unsigned __int128 y = (x >> 61) * c + (uint64_t)(x & M61);        /* = x mod p, < 2^72 */
    uint64_t r = (uint64_t)(y & M61) + (uint64_t)(y >> 61) * c;       /* < 2^61 + 2^22 < 2p */
    return r >= p ? r - p : r;
}

/* Rank of m[rows][cols] modulo prime number `pi` of the table (u: rows*cols words of work). */
static int rank_modp(const int64_t *m, int rows, int cols, int pi, uint64_t *u)
{
    const uint64_t c = prime_c[pi], p = ((uint64_t)1 << 61) - c;
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        int64_t x = m[i];
        if (x >= (int64_t)p || x <= -(int64_t)p) /* rare: avoid the division otherwise */
            x %= (int64_t)p;
        u[i] = (uint64_t)(x < 0 ? x + (int64_t)p : x);
    }
    int rank = 0;
    for (int col = 0; col < cols && rank < rows; col++) {
        int piv = -1;
        for (int r = rank; r < rows; r++)
            if (u[(size_t)r * cols + col]) {
                piv = r;
                break;
            }
        if (piv < 0)
            continue;
        if (piv != rank)
            for (int j = col; j < cols; j++) {
                uint64_t t = u[(size_t)piv * cols + j];
                u[(size_t)piv * cols + j] = u[(size_t)rank * cols + j];
                u[(size_t)rank * cols + j] = t;
            }
        /* row_r <- pv * row_r - f * row_pivot: no modular inverse needed, and scaling a row by
         * pv != 0 keeps the rank */
        const uint64_t *pr = u + (size_t)rank * cols;
        const uint64_t pv = pr[col];
        for (int r = rank + 1; r < rows; r++) {
            uint64_t *rr = u + (size_t)r * cols;
            if (!rr[col])
                continue;
            const uint64_t f = rr[col];
            for (int j = col + 1; j < cols; j++) {
                uint64_t x = mulmod(rr[j], pv, c, p), sub = mulmod(f, pr[j], c, p);
                rr[j] = x >= sub ? x - sub : x + p - sub;
            }
            rr[col] = 0;
        }
        rank++;
    }
    return rank;
}

/* log2 of Hadamard's bound on the minors of m: the sum of the k = min(rows, cols) largest
 * log2 row norms (non-zero rows have norm >= 1, so smaller minors are bounded too). */
static double hadamard_log2(const int64_t *m, int rows, int cols)
{
    double top[TG_MAX_S];
    const int k = rows < cols ? rows : cols;
    double *lg = k <= TG_MAX_S ? top : malloc(sizeof(double) * (size_t)k);
    if (!lg)
        return 1e9;
    int n = 0; /* lg[0..n) sorted descending, n <= k */
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++) {
            double x = (double)m[(size_t)r * cols + c];
            s += x * x;
        }
        if (s == 0)
            continue;
        double l = 0.5 * log2(s);
        int pos;
        if (n < k)
            pos = n++;
        else if (l > lg[k - 1])
            pos = k - 1;
        else
            continue;
        while (pos > 0 && lg[pos - 1] < l) {
            lg[pos] = lg[pos - 1];
            pos--;
        }
        lg[pos] = l;
    }
    double total = 0;
    for (int i = 0; i < n; i++)
        total += lg[i];
    if (lg != top)
        free(lg);
    return total;
}

/* Exact rank over Q of m (not modified); work holds rows*cols words. Fraction-free elimination
 * (the fastest here: few divisions on small matrices), and where its 64-bit minors overflow, as
 * many modular passes as Hadamard's bound needs. -1 with a message only when that bound is beyond
 * all N_PRIMES primes. */
static int rank_q_exact(const int64_t *m, int rows, int cols, void *work)
{
    memcpy(work, m, sizeof(int64_t) * (size_t)rows * cols);
    int r = rank_q_inplace(work, rows, cols);
    if (r >= 0)
        return r;
    const int k = rows < cols ? rows : cols;
    const double L = hadamard_log2(m, rows, cols) + 1.0; /* a bit of margin for rounding */
    const int np = (int)(L / PRIME_BITS) + 1;
    if (np > N_PRIMES)
        return tg_fail("matrix rank: entries too large for an exact rank (Hadamard bound 2^%.0f)", L);
    int best = 0;
    for (int i = 0; i < np && best < k; i++) {
        int ri = rank_modp(m, rows, cols, i, work);
        best = ri > best ? ri : best;
    }
    return best;
}

int tg_matrix_rank(const int64_t *m, int rows, int cols, int mod2)
{
    if (rows < 0 || cols < 0 || (rows && cols && (size_t)rows * cols > ((size_t)1 << 28)))
        return tg_fail("matrix rank: bad shape %d x %d", rows, cols);
    if (!rows || !cols)
        return 0;
    if (mod2) {
        int words = (cols + 63) / 64;
        uint64_t *b = calloc((size_t)rows * words, sizeof *b);
        if (!b)
            return tg_fail("matrix rank: out of memory");
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
                if (m[(size_t)r * cols + c] & 1)
                    b[(size_t)r * words + c / 64] |= 1ULL << (c % 64);
        int rk = rank_gf2_inplace(b, rows, words);
        free(b);
        return rk;
    }
    int64_t *w = malloc((size_t)rows * cols * sizeof *w);
    if (!w)
        return tg_fail("matrix rank: out of memory");
    int rk = rank_q_exact(m, rows, cols, w);
    free(w);
    return rk;
}

/* Rank over Q of slice `idx` of t along `mode`, restricted to its non-zero rows and columns. */
static int slice_rank(const int32_t *t, int S, int mode, int idx)
{
    const size_t s2 = (size_t)S * S;
    /* element (r, c) of the slice: mode 0: t[idx][r][c], 1: t[r][idx][c], 2: t[r][c][idx] */
    size_t base, rs, cs;
    switch (mode) {
    case 0: base = idx * s2; rs = S; cs = 1; break;
    case 1: base = (size_t)idx * S; rs = s2; cs = 1; break;
    default: base = idx; rs = s2; cs = S; break;
    }
    int rows[TG_MAX_S], cols[TG_MAX_S], nr = 0, nc = 0;
    uint32_t colmask = 0;
    for (int r = 0; r < S; r++) {
        int any = 0;
        for (int c = 0; c < S; c++)
            if (t[base + r * rs + c * cs]) {
                any = 1;
                colmask |= 1u << c;
            }
        if (any)
            rows[nr++] = r;
    }
    if (!nr)
        return 0;
    for (int c = 0; c < S; c++)
        if (colmask >> c & 1)
            cols[nc++] = c;
    if (nr == 1 || nc == 1)
        return 1;
    int64_t mm[TG_MAX_S * TG_MAX_S], work[TG_MAX_S * TG_MAX_S];
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++)
            mm[r * nc + c] = t[base + rows[r] * rs + cols[c] * cs];
    int rk = rank_q_exact(mm, nr, nc, work);
    /* int32 entries in at most 32 x 32 are far inside the primes' reach (2^1400) */
    TG_ASSERT(rk >= 0);
    return rk;
}

/* GF(2) rank of rows of at most 32 bits: pivots indexed by leading bit. */
static int rank_gf2_rows32(const uint32_t *m, int n)
{
    uint32_t piv[32];
    uint32_t used = 0;
    int rank = 0;
    for (int i = 0; i < n; i++) {
        uint32_t x = m[i];
        while (x) {
            int hb = 31 - __builtin_clz(x);
            if (!(used >> hb & 1)) {
                piv[hb] = x;
                used |= 1u << hb;
                rank++;
                break;
            }
            x ^= piv[hb];
        }
    }
    return rank;
}

/* GF(2): one pass over t packs every slice of every mode into 32-bit row masks (S <= 32), then
 * each slice is a tiny bit-matrix elimination. */
static int rank_bound_gf2(const int32_t *t, int S)
{
    uint32_t rows[3][TG_MAX_S * TG_MAX_S]; /* [mode][slice * S + row] */
    for (int k = 0; k < 3; k++)
        memset(rows[k], 0, sizeof(uint32_t) * (size_t)S * S);
    for (int a = 0; a < S; a++)
        for (int b = 0; b < S; b++) {
            const int32_t *tc = t + ((size_t)a * S + b) * S;
            uint32_t bits = 0;
            for (int c = 0; c < S; c++)
                bits |= (uint32_t)(tc[c] & 1) << c;
            if (!bits)
                continue;
            rows[0][a * S + b] = bits; /* slice a: rows b, columns c */
            rows[1][b * S + a] = bits; /* slice b: rows a, columns c */
            for (uint32_t x = bits; x; x &= x - 1) /* slice c: rows a, columns b */
                rows[2][__builtin_ctz(x) * S + a] |= 1u << b;
        }
    int best = -1;
    for (int mode = 0; mode < 3; mode++) {
        int sum = 0;
        for (int i = 0; i < S && (best < 0 || sum < best); i++)
            sum += rank_gf2_rows32(rows[mode] + i * S, S);
        if (best < 0 || sum < best)
            best = sum;
    }
    return best;
}

int tg_rank_bound(const int32_t *t, int S, int mod2)
{
    TG_ASSERT(S >= 1 && S <= TG_MAX_S);
    if (mod2)
        return rank_bound_gf2(t, S);
    int best = -1;
    for (int mode = 0; mode < 3; mode++) {
        int sum = 0;
        for (int i = 0; i < S && (best < 0 || sum < best); i++) {
            sum += slice_rank(t, S, mode, i);
        }
        if (best < 0 || sum < best)
            best = sum;
    }
    return best;
}

int tg_fact_action(const tg_fact *f, int r, int S, int8_t *a)
{
    int modes[3];
    tg_dims_modes(tg_fact_dims(f), modes);
    TG_ASSERT(r >= 0 && r < tg_fact_rank(f));
    const int64_t *x[3] = {tg_fact_cu(f), tg_fact_cv(f), tg_fact_cw(f)};
    memset(a, 0, (size_t)3 * S);
    for (int k = 0; k < 3; k++) {
        if (modes[k] > S)
            return tg_fail("factorization to action: mode %d has size %d > S=%d", k, modes[k], S);
        for (int i = 0; i < modes[k]; i++) {
            int64_t v = x[k][(size_t)r * modes[k] + i];
            if (v < -128 || v > 127)
                return tg_fail("factorization to action: term %d has %c[%d] = %lld", r, "uvw"[k], i,
                               (long long)v);
            a[k * S + i] = (int8_t)v;
        }
    }
    return 0;
}

tg_fact *tg_game_to_fact(const tg_game *g, tg_dims d)
{
    int modes[3];
    if (tg_dims_check(d))
        return NULL;
    tg_dims_modes(d, modes);
    const int S = g->S;
    for (int k = 0; k < 3; k++)
        if (modes[k] > S) {
            tg_fail("game to factorization: T(%d,%d,%d) mode %d has size %d > S=%d", d.n, d.m,
                    d.p, k, modes[k], S);
            return NULL;
        }
    tg_fact *f = tg_fact_new(d, g->step, 1, g->mod2 ? TG_ARITH_MOD2 : TG_ARITH_INTEGER);
    if (!f)
        return NULL;
    int64_t *out[3] = {tg_fact_u(f), tg_fact_v(f), tg_fact_w(f)};
    for (int r = 0; r < g->step; r++) {
        const int8_t *a = g->actions + (size_t)r * 3 * S;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < S; i++) {
                int8_t x = a[k * S + i];
                if (i < modes[k]) {
                    out[k][(size_t)r * modes[k] + i] = x;
                } else if (x) {
                    tg_fail("game to factorization: move %d has %c[%d] = %d beyond mode size %d",
                            r, "uvw"[k], i, x, modes[k]);
                    tg_fact_free(f);
                    return NULL;
                }
            }
    }
    return f;
}
