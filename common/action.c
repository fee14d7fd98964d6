/* Coefficient sets, canonical actions and the token encoding. */
#include "common/action.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int parse_int(const char **p, long *out)
{
    while (**p == ' ')
        (*p)++;
    if (!(isdigit((unsigned char)**p) || ((**p == '-' || **p == '+') && isdigit((unsigned char)(*p)[1]))))
        return -1;
    char *end;
    errno = 0;
    long x = strtol(*p, &end, 10);
    if (errno)
        return -1;
    *p = end;
    while (**p == ' ')
        (*p)++;
    *out = x;
    return 0;
}

static int cmp_i8(const void *a, const void *b)
{
    return (int)*(const int8_t *)a - (int)*(const int8_t *)b;
}

int tg_coeffs_parse(const char *s, tg_coeffs *out)
{
    long vals[TG_MAX_F];
    int n = 0;
    const char *p = s;
    if (!s || !*s)
        return tg_fail("coefficient set: empty (expected e.g. -2..2, -1,0,1 or 0,1)");
    long lo;
    if (parse_int(&p, &lo))
        goto bad;
    if (p[0] == '.' && p[1] == '.') {
        p += 2;
        long hi;
        if (parse_int(&p, &hi) || *p)
            goto bad;
        if (hi < lo)
            return tg_fail("coefficient set '%s': empty range", s);
        if (lo < -127 || hi > 127)
            return tg_fail("coefficient set '%s': values must be in -127..127", s);
        if (hi - lo + 1 > TG_MAX_F)
            return tg_fail("coefficient set '%s': more than %d values", s, TG_MAX_F);
        for (long x = lo; x <= hi; x++)
            vals[n++] = x;
    } else {
        vals[n++] = lo;
        while (*p) {
            if (*p != ',')
                goto bad;
            p++;
            long x;
            if (parse_int(&p, &x))
                goto bad;
            if (n == TG_MAX_F)
                return tg_fail("coefficient set '%s': more than %d values", s, TG_MAX_F);
            vals[n++] = x;
        }
    }
    if (n < 2)
        return tg_fail("coefficient set '%s': needs at least two values", s);
    memset(out, 0, sizeof *out);
    for (int i = 0; i < n; i++) {
        if (vals[i] < -127 || vals[i] > 127)
            return tg_fail("coefficient set '%s': values must be in -127..127", s);
        out->v[i] = (int8_t)vals[i];
    }
    qsort(out->v, (size_t)n, 1, cmp_i8);
    for (int i = 1; i < n; i++)
        if (out->v[i] == out->v[i - 1])
            return tg_fail("coefficient set '%s': value %d repeated", s, out->v[i]);
    int has0 = 0;
    for (int i = 0; i < n; i++)
        has0 |= out->v[i] == 0;
    if (!has0)
        return tg_fail("coefficient set '%s': must contain 0", s);
    out->n = n;
    memset(out->index_of, -1, sizeof out->index_of);
    for (int i = 0; i < n; i++)
        out->index_of[out->v[i] + 128] = (int8_t)i;
    return 0;
bad:
    return tg_fail("coefficient set '%s': expected a range like -2..2 or a list like -1,0,1", s);
}

int tg_coeffs_symmetric(const tg_coeffs *F)
{
    for (int i = 0; i < F->n; i++)
        if (F->index_of[-F->v[i] + 128] < 0)
            return 0;
    return 1;
}

static inline int first_nonzero_negative(const int8_t *x, int S)
{
    for (int i = 0; i < S; i++)
        if (x[i])
            return x[i] < 0;
    return 0;
}

static inline void negate(int8_t *x, int S)
{
    for (int i = 0; i < S; i++)
        x[i] = (int8_t)-x[i];
}

int tg_action_canonicalize(int8_t *a, int S, int mod2)
{
    if (mod2)
        return 0;
    int flips = 0;
    for (int k = 0; k < 2; k++)
        if (first_nonzero_negative(a + k * S, S)) {
            negate(a + k * S, S);
            negate(a + 2 * S, S);
            flips++;
        }
    return flips;
}

int tg_action_nonzero(const int8_t *a, int S)
{
    for (int k = 0; k < 3; k++) {
        int nz = 0;
        for (int i = 0; i < S && !nz; i++)
            nz = a[k * S + i] != 0;
        if (!nz)
            return 0;
    }
    return 1;
}

int tg_tokens_shape(int S, int n_steps, int nF, int *d, int *n_logits)
{
    if (S < 1 || S > TG_MAX_S)
        return tg_fail("tokens: S=%d out of range 1..%d", S, TG_MAX_S);
    if (nF < 2 || nF > TG_MAX_F)
        return tg_fail("tokens: |F|=%d out of range 2..%d", nF, TG_MAX_F);
    if (n_steps < 1 || (3 * S) % n_steps)
        return tg_fail("tokens: n_steps=%d does not divide 3S=%d", n_steps, 3 * S);
    int dd = 3 * S / n_steps;
    long long nl = 1;
    for (int i = 0; i < dd; i++) {
        nl *= nF;
        if (nl > (1LL << 24))
            return tg_fail("tokens: |F|^d = %d^%d exceeds 2^24 logits (use more steps)", nF, dd);
    }
    if (d)
        *d = dd;
    if (n_logits)
        *n_logits = (int)nl;
    return 0;
}

int tg_action_to_tokens(const tg_coeffs *F, int S, int n_steps, const int8_t *a, int32_t *tokens)
{
    int d;
    if (tg_tokens_shape(S, n_steps, F->n, &d, NULL))
        return -1;
    const int nF = F->n;
    for (int t = 0; t < n_steps; t++) {
        int32_t tok = 0;
        for (int e = t * d; e < t * d + d; e++) {
            int idx = F->index_of[a[e] + 128];
            if (idx < 0)
                return tg_fail("action entry %d, %s[%d] = %d, is not in the coefficient set", e,
                               e < S ? "u" : e < 2 * S ? "v" : "w", e % S, a[e]);
            tok = tok * nF + idx;
        }
        tokens[t] = tok;
    }
    return 0;
}

int tg_tokens_to_action(const tg_coeffs *F, int S, int n_steps, const int32_t *tokens, int8_t *a)
{
    int d, nl;
    if (tg_tokens_shape(S, n_steps, F->n, &d, &nl))
        return -1;
    const int nF = F->n;
    for (int t = 0; t < n_steps; t++) {
        int32_t tok = tokens[t];
        if (tok < 0 || tok >= nl)
            return tg_fail("token %d = %d out of range 0..%d", t, tok, nl - 1);
        for (int e = t * d + d - 1; e >= t * d; e--) {
            a[e] = F->v[tok % nF];
            tok /= nF;
        }
    }
    return 0;
}

void tg_tensor_add_action(int32_t *t, int S, const int8_t *a, int sign, int mod2)
{
    int ia[TG_MAX_S], ib[TG_MAX_S], ic[TG_MAX_S];
    int32_t va[TG_MAX_S], vb[TG_MAX_S], vc[TG_MAX_S];
    int na = 0, nb = 0, nc = 0;
    TG_ASSERT(S >= 1 && S <= TG_MAX_S);
    for (int i = 0; i < S; i++) {
        if (a[i]) {
            ia[na] = i;
            va[na++] = a[i];
        }
        if (a[S + i]) {
            ib[nb] = i;
            vb[nb++] = a[S + i];
        }
        if (a[2 * S + i]) {
            ic[nc] = i;
            vc[nc++] = a[2 * S + i];
        }
    }
    for (int x = 0; x < na; x++)
        for (int y = 0; y < nb; y++) {
            int32_t *row = t + ((size_t)ia[x] * S + ib[y]) * S;
            if (mod2) {
                if (!((va[x] & vb[y]) & 1))
                    continue;
                for (int z = 0; z < nc; z++)
                    row[ic[z]] = (row[ic[z]] ^ vc[z]) & 1;
            } else {
                int32_t ab = sign * va[x] * vb[y];
                for (int z = 0; z < nc; z++)
                    row[ic[z]] += ab * vc[z];
            }
        }
}
