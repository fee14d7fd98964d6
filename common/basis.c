/* Change of basis by unimodular integer matrices with bounded entries. */
#include "common/basis.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

struct tg_basis {
    tg_dims d;
    int modes[3];
    int slot[3];        /* which stored pair each mode uses (equal sizes share one) */
    int identity;
    int32_t *mat[3][2]; /* [slot][0 = M, 1 = M^-1], row-major size x size; NULL if unused */
};

static void set_identity(int32_t *m, int n)
{
    memset(m, 0, sizeof(int32_t) * (size_t)n * n);
    for (int i = 0; i < n; i++)
        m[(size_t)i * n + i] = 1;
}

static tg_basis *basis_alloc(tg_dims d)
{
    if (tg_dims_check(d))
        return NULL;
    tg_basis *b = calloc(1, sizeof *b);
    if (!b) {
        tg_fail("basis: out of memory");
        return NULL;
    }
    b->d = d;
    b->identity = 1;
    tg_dims_modes(d, b->modes);
    for (int k = 0; k < 3; k++) {
        b->slot[k] = k;
        for (int j = 0; j < k; j++)
            if (b->modes[j] == b->modes[k]) {
                b->slot[k] = b->slot[j];
                break;
            }
        if (b->slot[k] != k)
            continue;
        int n = b->modes[k];
        for (int x = 0; x < 2; x++) {
            b->mat[k][x] = malloc(sizeof(int32_t) * (size_t)n * n);
            if (!b->mat[k][x]) {
                tg_basis_free(b);
                tg_fail("basis: out of memory");
                return NULL;
            }
            set_identity(b->mat[k][x], n);
        }
    }
    return b;
}

tg_basis *tg_basis_identity(tg_dims d) { return basis_alloc(d); }

void tg_basis_free(tg_basis *b)
{
    if (!b)
        return;
    for (int k = 0; k < 3; k++)
        for (int x = 0; x < 2; x++)
            free(b->mat[k][x]);
    free(b);
}

/* Random walk of elementary operations M <- (I + s e_i e_j^T) M, keeping M^-1 in step
 * (M^-1 <- M^-1 (I - s e_i e_j^T)); a step that would push an entry of either past the bound is
 * skipped, so both stay bounded by construction. Row/column sign flips and swaps are mixed in so
 * the walk also reaches signed permutation matrices. */
static void sample_unimodular(int32_t *M, int32_t *Mi, int n, int max_entry, tg_rng *rng)
{
    set_identity(M, n);
    set_identity(Mi, n);
    if (n < 2) {
        if (tg_rng_u64(rng) >> 63)
            M[0] = Mi[0] = -1;
        return;
    }
    const int steps = 4 * n + 8;
    for (int st = 0; st < steps; st++) {
        int i = (int)tg_rng_below(rng, (uint32_t)n);
        int j = (int)tg_rng_below(rng, (uint32_t)n - 1);
        if (j >= i)
            j++;
        uint32_t kind = tg_rng_below(rng, 8);
        if (kind == 0) { /* negate row i of M and column i of M^-1 */
            for (int c = 0; c < n; c++)
                M[(size_t)i * n + c] = -M[(size_t)i * n + c];
            for (int r = 0; r < n; r++)
                Mi[(size_t)r * n + i] = -Mi[(size_t)r * n + i];
            continue;
        }
        if (kind == 1) { /* swap rows i, j of M and columns i, j of M^-1 */
            for (int c = 0; c < n; c++) {
                int32_t t = M[(size_t)i * n + c];
                M[(size_t)i * n + c] = M[(size_t)j * n + c];
                M[(size_t)j * n + c] = t;
            }
            for (int r = 0; r < n; r++) {
                int32_t t = Mi[(size_t)r * n + i];
                Mi[(size_t)r * n + i] = Mi[(size_t)r * n + j];
                Mi[(size_t)r * n + j] = t;
            }
            continue;
        }
        const int s = (tg_rng_u64(rng) >> 63) ? -1 : 1;
        int ok = 1;
        for (int c = 0; c < n && ok; c++) {
            int64_t v = (int64_t)M[(size_t)i * n + c] + s * M[(size_t)j * n + c];
            ok = v <= max_entry && v >= -max_entry;
        }
        for (int r = 0; r < n && ok; r++) {
            int64_t v = (int64_t)Mi[(size_t)r * n + j] - s * Mi[(size_t)r * n + i];
            ok = v <= max_entry && v >= -max_entry;
        }
        if (!ok)
            continue;
        for (int c = 0; c < n; c++)
            M[(size_t)i * n + c] += s * M[(size_t)j * n + c];
        for (int r = 0; r < n; r++)
            Mi[(size_t)r * n + j] -= s * Mi[(size_t)r * n + i];
    }
}

tg_basis *tg_basis_sample(tg_dims d, int max_entry, tg_rng *rng)
{
    if (max_entry < 1 || max_entry > 100) { /* <= 100 keeps every entry of (A,B,C).T in int32 */
        tg_fail("basis: max_entry %d out of range 1..100", max_entry);
        return NULL;
    }
    tg_basis *b = basis_alloc(d);
    if (!b)
        return NULL;
    for (int k = 0; k < 3; k++)
        if (b->slot[k] == k)
            sample_unimodular(b->mat[k][0], b->mat[k][1], b->modes[k], max_entry, rng);
    b->identity = 1;
    for (int k = 0; k < 3 && b->identity; k++) {
        const int32_t *m = b->mat[b->slot[k]][0];
        int n = b->modes[k];
        for (int i = 0; i < n * n && b->identity; i++)
            b->identity = m[i] == (i / n == i % n);
    }
    return b;
}

tg_dims tg_basis_dims(const tg_basis *b) { return b->d; }
int tg_basis_is_identity(const tg_basis *b) { return b->identity; }

const int32_t *tg_basis_matrix(const tg_basis *b, int mode, int inv)
{
    TG_ASSERT(mode >= 0 && mode < 3);
    return b->mat[b->slot[mode]][inv ? 1 : 0];
}

void tg_basis_apply(const tg_basis *b, const int32_t *t, int S, int32_t *out)
{
    const int A = b->modes[0], B = b->modes[1], C = b->modes[2];
    TG_ASSERT(S >= A && S >= B && S >= C);
    const size_t s3 = (size_t)S * S * S;
    if (b->identity) {
        memcpy(out, t, s3 * sizeof *out);
        return;
    }
    /* three mode products over the active block, in 64 bits */
    int64_t *x = malloc(sizeof(int64_t) * (size_t)A * B * C);
    int64_t *y = malloc(sizeof(int64_t) * (size_t)A * B * C);
    TG_ASSERT(x && y);
    const int32_t *MA = tg_basis_matrix(b, 0, 0), *MB = tg_basis_matrix(b, 1, 0),
                  *MC = tg_basis_matrix(b, 2, 0);
    /* x[i][j][c] = sum_k C[c][k] t[i][j][k] */
    for (int i = 0; i < A; i++)
        for (int j = 0; j < B; j++) {
            const int32_t *src = t + ((size_t)i * S + j) * S;
            int64_t *dst = x + ((size_t)i * B + j) * C;
            for (int c = 0; c < C; c++) {
                int64_t s = 0;
                for (int k = 0; k < C; k++)
                    s += (int64_t)MC[(size_t)c * C + k] * src[k];
                dst[c] = s;
            }
        }
    /* y[i][b][c] = sum_j B[b][j] x[i][j][c] */
    memset(y, 0, sizeof(int64_t) * (size_t)A * B * C);
    for (int i = 0; i < A; i++)
        for (int bb = 0; bb < B; bb++) {
            int64_t *dst = y + ((size_t)i * B + bb) * C;
            for (int j = 0; j < B; j++) {
                int64_t m = MB[(size_t)bb * B + j];
                if (!m)
                    continue;
                const int64_t *src = x + ((size_t)i * B + j) * C;
                for (int c = 0; c < C; c++)
                    dst[c] += m * src[c];
            }
        }
    /* out[a][b][c] = sum_i A[a][i] y[i][b][c] */
    memset(out, 0, s3 * sizeof *out);
    for (int a = 0; a < A; a++) {
        memset(x, 0, sizeof(int64_t) * (size_t)B * C);
        for (int i = 0; i < A; i++) {
            int64_t m = MA[(size_t)a * A + i];
            if (!m)
                continue;
            const int64_t *src = y + (size_t)i * B * C;
            for (size_t e = 0; e < (size_t)B * C; e++)
                x[e] += m * src[e];
        }
        for (int bb = 0; bb < B; bb++)
            for (int c = 0; c < C; c++) {
                int64_t v = x[(size_t)bb * C + c];
                TG_ASSERT(v >= INT32_MIN && v <= INT32_MAX);
                out[((size_t)a * S + bb) * S + c] = (int32_t)v;
            }
    }
    free(x);
    free(y);
}

tg_fact *tg_basis_map_back(const tg_basis *b, const tg_fact *f)
{
    tg_dims d = tg_fact_dims(f);
    if (d.n != b->d.n || d.m != b->d.m || d.p != b->d.p) {
        tg_fail("basis for T(%d,%d,%d) cannot map back a factorization of T(%d,%d,%d)", b->d.n,
                b->d.m, b->d.p, d.n, d.m, d.p);
        return NULL;
    }
    tg_fact *g = tg_fact_new(d, tg_fact_rank(f), tg_fact_denom(f), tg_fact_arith(f));
    if (!g)
        return NULL;
    const int mod2 = tg_fact_arith(f) == TG_ARITH_MOD2;
    const int64_t *src[3] = {tg_fact_cu(f), tg_fact_cv(f), tg_fact_cw(f)};
    int64_t *dst[3] = {tg_fact_u(g), tg_fact_v(g), tg_fact_w(g)};
    const int R = tg_fact_rank(f);
    for (int k = 0; k < 3; k++) {
        const int n = b->modes[k];
        const int32_t *Mi = tg_basis_matrix(b, k, 1);
        for (int r = 0; r < R; r++) {
            const int64_t *x = src[k] + (size_t)r * n;
            int64_t *y = dst[k] + (size_t)r * n;
            for (int i = 0; i < n; i++) {
                int64_t s = 0;
                for (int j = 0; j < n; j++) {
                    int64_t t;
                    if (__builtin_mul_overflow((int64_t)Mi[(size_t)i * n + j], x[j], &t) ||
                        __builtin_add_overflow(s, t, &s)) {
                        tg_fact_free(g);
                        tg_fail("basis: 64-bit overflow mapping term %d back", r);
                        return NULL;
                    }
                }
                y[i] = mod2 ? (s & 1) : s;
            }
        }
    }
    return g;
}

struct tg_basis_pool {
    int n;
    tg_basis **b;
};

tg_basis_pool *tg_basis_pool_new(tg_dims d, int n, int max_entry, tg_rng *rng)
{
    if (n < 1 || n > 1000000) {
        tg_fail("basis pool: size %d out of range 1..1000000", n);
        return NULL;
    }
    tg_basis_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->b = calloc((size_t)n, sizeof *p->b))) {
        free(p);
        tg_fail("basis pool: out of memory");
        return NULL;
    }
    p->n = n;
    for (int i = 0; i < n; i++) {
        p->b[i] = i == 0 ? tg_basis_identity(d) : tg_basis_sample(d, max_entry, rng);
        if (!p->b[i]) {
            tg_basis_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void tg_basis_pool_free(tg_basis_pool *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        tg_basis_free(p->b[i]);
    free(p->b);
    free(p);
}

int tg_basis_pool_size(const tg_basis_pool *p) { return p->n; }

int tg_basis_pool_replace(tg_basis_pool *p, int i, int max_entry, tg_rng *rng)
{
    TG_ASSERT(i > 0 && i < p->n);
    tg_basis *b = tg_basis_sample(tg_basis_dims(p->b[i]), max_entry, rng);
    if (!b)
        return -1;
    tg_basis_free(p->b[i]);
    p->b[i] = b;
    return 0;
}

const tg_basis *tg_basis_pool_get(const tg_basis_pool *p, int i)
{
    TG_ASSERT(i >= 0 && i < p->n);
    return p->b[i];
}
