/* Matrix multiplication tensors, factorizations and their exact verification. */
#include "common/fact.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

#define TG_FACT_MAX_RANK 1000000

struct tg_fact {
    tg_dims d;
    int rank;
    int64_t denom;
    tg_arith arith;
    int modes[3];
    int64_t *u, *v, *w; /* u points at one allocation holding all three */
};

void tg_dims_modes(tg_dims d, int modes[3])
{
    modes[0] = d.n * d.m;
    modes[1] = d.m * d.p;
    modes[2] = d.p * d.n;
}

int tg_dims_check(tg_dims d)
{
    if (d.n < 1 || d.m < 1 || d.p < 1 || d.n > TG_MAX_DIM || d.m > TG_MAX_DIM || d.p > TG_MAX_DIM)
        return tg_fail("matrix sizes %d,%d,%d out of range (each must be 1..%d)", d.n, d.m, d.p,
                       TG_MAX_DIM);
    return 0;
}

int tg_dims_parse(const char *s, tg_dims *out)
{
    int v[3];
    const char *p = s;
    if (!s)
        return tg_fail("matrix sizes: missing");
    for (int i = 0; i < 3; i++) {
        while (*p == ' ')
            p++;
        if (!isdigit((unsigned char)*p))
            return tg_fail("matrix sizes '%s': expected n,m,p (e.g. 2,2,2 or 2x2x2)", s);
        errno = 0;
        char *end;
        long x = strtol(p, &end, 10);
        if (errno || x < 1 || x > TG_MAX_DIM)
            return tg_fail("matrix sizes '%s': each must be 1..%d", s, TG_MAX_DIM);
        v[i] = (int)x;
        p = end;
        while (*p == ' ')
            p++;
        if (i < 2) {
            if (*p != ',' && *p != 'x' && *p != 'X')
                return tg_fail("matrix sizes '%s': expected n,m,p (e.g. 2,2,2 or 2x2x2)", s);
            p++;
        }
    }
    if (*p)
        return tg_fail("matrix sizes '%s': trailing characters", s);
    out->n = v[0];
    out->m = v[1];
    out->p = v[2];
    return 0;
}

int tg_matmul_tensor(tg_dims d, int S, int32_t *out)
{
    int modes[3];
    if (tg_dims_check(d))
        return -1;
    tg_dims_modes(d, modes);
    if (S < modes[0] || S < modes[1] || S < modes[2])
        return tg_fail("T(%d,%d,%d) has modes %d,%d,%d: does not fit in S=%d", d.n, d.m, d.p,
                       modes[0], modes[1], modes[2], S);
    memset(out, 0, sizeof(int32_t) * (size_t)S * S * S);
    for (int i = 0; i < d.n; i++)
        for (int j = 0; j < d.m; j++)
            for (int k = 0; k < d.p; k++) {
                size_t a = (size_t)(i * d.m + j), b = (size_t)(j * d.p + k),
                       c = (size_t)(k * d.n + i);
                out[(a * S + b) * S + c] = 1;
            }
    return 0;
}

const char *tg_arith_name(tg_arith a) { return a == TG_ARITH_MOD2 ? "mod2" : "integer"; }

int tg_arith_parse(const char *s, tg_arith *out)
{
    if (s && (!strcmp(s, "integer") || !strcmp(s, "Z") || !strcmp(s, "int"))) {
        *out = TG_ARITH_INTEGER;
        return 0;
    }
    if (s && (!strcmp(s, "mod2") || !strcmp(s, "F2") || !strcmp(s, "gf2") || !strcmp(s, "GF2"))) {
        *out = TG_ARITH_MOD2;
        return 0;
    }
    return tg_fail("arithmetic '%s': expected integer or mod2", s ? s : "(null)");
}

tg_fact *tg_fact_new(tg_dims d, int rank, int64_t denom, tg_arith arith)
{
    if (tg_dims_check(d))
        return NULL;
    if (rank < 0 || rank > TG_FACT_MAX_RANK) {
        tg_fail("rank %d out of range (0..%d)", rank, TG_FACT_MAX_RANK);
        return NULL;
    }
    if (denom < 1) {
        tg_fail("denominator %lld must be >= 1", (long long)denom);
        return NULL;
    }
    if (arith != TG_ARITH_INTEGER && arith != TG_ARITH_MOD2) {
        tg_fail("bad arithmetic %d", (int)arith);
        return NULL;
    }
    if (arith == TG_ARITH_MOD2 && denom != 1) {
        tg_fail("mod2 factorization with denominator %lld (must be 1)", (long long)denom);
        return NULL;
    }
    tg_fact *f = calloc(1, sizeof *f);
    if (!f) {
        tg_fail("out of memory");
        return NULL;
    }
    f->d = d;
    f->rank = rank;
    f->denom = denom;
    f->arith = arith;
    tg_dims_modes(d, f->modes);
    size_t tot = (size_t)rank * (size_t)(f->modes[0] + f->modes[1] + f->modes[2]);
    f->u = calloc(tot ? tot : 1, sizeof(int64_t));
    if (!f->u) {
        free(f);
        tg_fail("out of memory for a rank-%d factorization", rank);
        return NULL;
    }
    f->v = f->u + (size_t)rank * f->modes[0];
    f->w = f->v + (size_t)rank * f->modes[1];
    return f;
}

tg_fact *tg_fact_clone(const tg_fact *f)
{
    tg_fact *g = tg_fact_new(f->d, f->rank, f->denom, f->arith);
    if (!g)
        return NULL;
    size_t tot = (size_t)f->rank * (size_t)(f->modes[0] + f->modes[1] + f->modes[2]);
    memcpy(g->u, f->u, tot * sizeof(int64_t));
    return g;
}

void tg_fact_free(tg_fact *f)
{
    if (!f)
        return;
    free(f->u);
    free(f);
}

tg_dims tg_fact_dims(const tg_fact *f) { return f->d; }
int tg_fact_rank(const tg_fact *f) { return f->rank; }
int64_t tg_fact_denom(const tg_fact *f) { return f->denom; }
tg_arith tg_fact_arith(const tg_fact *f) { return f->arith; }
int64_t *tg_fact_u(tg_fact *f) { return f->u; }
int64_t *tg_fact_v(tg_fact *f) { return f->v; }
int64_t *tg_fact_w(tg_fact *f) { return f->w; }
const int64_t *tg_fact_cu(const tg_fact *f) { return f->u; }
const int64_t *tg_fact_cv(const tg_fact *f) { return f->v; }
const int64_t *tg_fact_cw(const tg_fact *f) { return f->w; }

int64_t tg_fact_max_abs(const tg_fact *f)
{
    size_t tot = (size_t)f->rank * (size_t)(f->modes[0] + f->modes[1] + f->modes[2]);
    uint64_t mx = 0;
    for (size_t i = 0; i < tot; i++) {
        int64_t x = f->u[i];
        uint64_t ax = x < 0 ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        if (ax > mx)
            mx = ax;
    }
    return mx > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)mx;
}

/* Non-zero entries of one factor row: indices and values. */
static int nonzeros(const int64_t *row, int len, int mod2, int *idx, int64_t *val)
{
    int k = 0;
    for (int i = 0; i < len; i++) {
        int64_t x = row[i];
        if (mod2)
            x &= 1; /* two's complement: odd negatives have the low bit set */
        if (x) {
            idx[k] = i;
            val[k++] = x;
        }
    }
    return k;
}

/* Sums the R rank-one terms into acc[A*B*C] (sparse: only non-zero coefficients cost work).
 * Integer: checked 64-bit arithmetic; mod2: XOR of low bits. */
static int accumulate(const tg_fact *f, int mod2, int64_t *acc)
{
    const int A = f->modes[0], B = f->modes[1], C = f->modes[2];
    int ia[TG_MAX_MODE], ib[TG_MAX_MODE], ic[TG_MAX_MODE];
    int64_t va[TG_MAX_MODE], vb[TG_MAX_MODE], vc[TG_MAX_MODE];
    for (int r = 0; r < f->rank; r++) {
        int na = nonzeros(f->u + (size_t)r * A, A, mod2, ia, va);
        int nb = nonzeros(f->v + (size_t)r * B, B, mod2, ib, vb);
        int nc = nonzeros(f->w + (size_t)r * C, C, mod2, ic, vc);
        if (!na || !nb || !nc)
            continue;
        for (int x = 0; x < na; x++)
            for (int y = 0; y < nb; y++) {
                int64_t *row = acc + ((size_t)ia[x] * B + (size_t)ib[y]) * C;
                if (mod2) {
                    for (int z = 0; z < nc; z++)
                        row[ic[z]] ^= 1;
                    continue;
                }
                int64_t ab;
                if (__builtin_mul_overflow(va[x], vb[y], &ab))
                    goto overflow;
                for (int z = 0; z < nc; z++) {
                    int64_t abc;
                    if (__builtin_mul_overflow(ab, vc[z], &abc) ||
                        __builtin_add_overflow(row[ic[z]], abc, &row[ic[z]]))
                        goto overflow;
                }
            }
    }
    return 0;
overflow:
    return tg_fail("T(%d,%d,%d) rank %d: 64-bit overflow while verifying (coefficients up to %lld)",
                   f->d.n, f->d.m, f->d.p, f->rank, (long long)tg_fact_max_abs(f));
}

int tg_fact_verify(const tg_fact *f, int mod2, tg_fact_mismatch *where)
{
    const int A = f->modes[0], B = f->modes[1], C = f->modes[2];
    int64_t scale = 1; /* D^3 */
    if (mod2 && f->denom != 1)
        return tg_fail("cannot verify mod 2 with denominator %lld", (long long)f->denom);
    if (!mod2 && (__builtin_mul_overflow(f->denom, f->denom, &scale) ||
                  __builtin_mul_overflow(scale, f->denom, &scale)))
        return tg_fail("denominator %lld: D^3 overflows 64 bits", (long long)f->denom);
    int64_t *acc = calloc((size_t)A * B * C, sizeof(int64_t));
    if (!acc)
        return tg_fail("out of memory verifying T(%d,%d,%d)", f->d.n, f->d.m, f->d.p);
    if (accumulate(f, mod2, acc)) {
        free(acc);
        return -1;
    }
    const int n = f->d.n, m = f->d.m, p = f->d.p;
    int ok = 1;
    for (int a = 0; a < A && ok; a++) {
        int i = a / m, j = a % m;
        for (int b = 0; b < B && ok; b++) {
            int j2 = b / p, k = b % p;
            for (int c = 0; c < C; c++) {
                int k2 = c / n, i2 = c % n;
                int t = (j == j2 && k == k2 && i == i2);
                int64_t want = t ? (mod2 ? 1 : scale) : 0;
                int64_t got = acc[((size_t)a * B + b) * C + c];
                if (got != want) {
                    if (where) {
                        where->a = a;
                        where->b = b;
                        where->c = c;
                        where->got = got;
                        where->want = want;
                    }
                    ok = 0;
                    break;
                }
            }
        }
    }
    free(acc);
    return ok;
}

static void fmt_value(int64_t x, int64_t d3, char *buf, size_t len)
{
    if (d3 == 1 || x == 0)
        snprintf(buf, len, "%lld", (long long)x);
    else
        snprintf(buf, len, "%lld/%lld", (long long)x, (long long)d3);
}

void tg_fact_mismatch_str(const tg_fact *f, const tg_fact_mismatch *mm, char *buf, size_t len)
{
    const int n = f->d.n, m = f->d.m, p = f->d.p;
    int64_t d3 = 1;
    if (f->denom > 1 && (__builtin_mul_overflow(f->denom, f->denom, &d3) ||
                         __builtin_mul_overflow(d3, f->denom, &d3)))
        d3 = 1;
    /* got and want are both scaled by D^3: print the factors' value as a fraction of D^3 and
     * T's entry unscaled */
    char g[64];
    fmt_value(mm->got, d3, g, sizeof g);
    snprintf(buf, len,
             "entry (%d,%d,%d) = T[%d*%d+%d][%d*%d+%d][%d*%d+%d]: factors give %s, T has %lld",
             mm->a, mm->b, mm->c, mm->a / m, m, mm->a % m, mm->b / p, p, mm->b % p, mm->c / n, n,
             mm->c % n, g, (long long)(mm->want / d3));
}

/* ---- equations ---- */

static void name_entry(FILE *o, char mat, int r, int c)
{
    if (r > 9 || c > 9)
        fprintf(o, "%c_%d_%d", mat, r, c);
    else
        fprintf(o, "%c%d%d", mat, r, c);
}

static int64_t gcd64(int64_t a, int64_t b)
{
    if (a < 0)
        a = -a;
    if (b < 0)
        b = -b;
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Writes one signed term (coefficient x / D times a name) of a linear form. */
static void write_coef(FILE *o, int64_t x, int64_t D, int first)
{
    int neg = x < 0;
    uint64_t ax = neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
    if (first)
        fputs(neg ? "-" : "", o);
    else
        fputs(neg ? " - " : " + ", o);
    int64_t g = gcd64((int64_t)(ax > INT64_MAX ? 1 : ax), D);
    uint64_t num = ax / (uint64_t)g;
    int64_t den = D / g;
    if (den == 1) {
        if (num != 1)
            fprintf(o, "%llu ", (unsigned long long)num);
    } else {
        fprintf(o, "%llu/%lld ", (unsigned long long)num, (long long)den);
    }
}

/* The linear form of one factor: x[e] times entry (e / cols + 1, e % cols + 1) of matrix `mat`. */
static void write_factor(FILE *o, const int64_t *x, int len, int cols, char mat, int64_t D)
{
    int first = 1;
    for (int e = 0; e < len; e++) {
        if (!x[e])
            continue;
        write_coef(o, x[e], D, first);
        name_entry(o, mat, e / cols + 1, e % cols + 1);
        first = 0;
    }
    if (first)
        fputs("0", o);
}

char *tg_fact_equations(const tg_fact *f)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&buf, &len);
    if (!o) {
        tg_fail("out of memory");
        return NULL;
    }
    const int n = f->d.n, m = f->d.m, p = f->d.p;
    const int A = f->modes[0], B = f->modes[1], C = f->modes[2];
    const int64_t D = f->denom;
    for (int r = 0; r < f->rank; r++) {
        fprintf(o, "m%d = (", r + 1);
        write_factor(o, f->u + (size_t)r * A, A, m, 'a', D);
        fputs(")(", o);
        write_factor(o, f->v + (size_t)r * B, B, p, 'b', D);
        fputs(")\n", o);
    }
    /* c_ik is entry k*n+i of w */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < p; k++) {
            int c = k * n + i;
            name_entry(o, 'c', i + 1, k + 1);
            fputs(" = ", o);
            int first = 1;
            for (int r = 0; r < f->rank; r++) {
                int64_t x = f->w[(size_t)r * C + c];
                if (!x)
                    continue;
                write_coef(o, x, D, first);
                fprintf(o, "m%d", r + 1);
                first = 0;
            }
            if (first)
                fputs("0", o);
            fputs("\n", o);
        }
    if (fclose(o) || !buf) {
        free(buf);
        tg_fail("out of memory formatting equations");
        return NULL;
    }
    return buf;
}

/* ---- reference algorithms ---- */

tg_fact *tg_fact_naive(tg_dims d)
{
    if (tg_dims_check(d))
        return NULL;
    tg_fact *f = tg_fact_new(d, d.n * d.m * d.p, 1, TG_ARITH_INTEGER);
    if (!f)
        return NULL;
    int r = 0;
    for (int i = 0; i < d.n; i++)
        for (int j = 0; j < d.m; j++)
            for (int k = 0; k < d.p; k++, r++) {
                f->u[(size_t)r * f->modes[0] + i * d.m + j] = 1;
                f->v[(size_t)r * f->modes[1] + j * d.p + k] = 1;
                f->w[(size_t)r * f->modes[2] + k * d.n + i] = 1;
            }
    return f;
}

tg_fact *tg_fact_strassen(void)
{
    /* u over (a11 a12 a21 a22), v over (b11 b12 b21 b22), w over (c11 c21 c12 c22): index
     * k*n+i of w is c_ik. */
    static const int8_t U[7][4] = {{1, 0, 0, 1}, {0, 0, 1, 1},  {1, 0, 0, 0}, {0, 0, 0, 1},
                                   {1, 1, 0, 0}, {-1, 0, 1, 0}, {0, 1, 0, -1}};
    static const int8_t V[7][4] = {{1, 0, 0, 1}, {1, 0, 0, 0}, {0, 1, 0, -1}, {-1, 0, 1, 0},
                                   {0, 0, 0, 1}, {1, 1, 0, 0}, {0, 0, 1, 1}};
    /* c11 = m1 + m4 - m5 + m7, c12 = m3 + m5, c21 = m2 + m4, c22 = m1 - m2 + m3 + m6 */
    static const int8_t W[7][4] = {{1, 0, 0, 1}, {0, 1, 0, -1}, {0, 0, 1, 1}, {1, 1, 0, 0},
                                   {-1, 0, 1, 0}, {0, 0, 0, 1}, {1, 0, 0, 0}};
    tg_dims d = {2, 2, 2};
    tg_fact *f = tg_fact_new(d, 7, 1, TG_ARITH_INTEGER);
    if (!f)
        return NULL;
    for (int r = 0; r < 7; r++)
        for (int x = 0; x < 4; x++) {
            f->u[r * 4 + x] = U[r][x];
            f->v[r * 4 + x] = V[r][x];
            f->w[r * 4 + x] = W[r][x];
        }
    return f;
}
