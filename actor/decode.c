/* Fused decoding of sampled actions (see decode.h). */
#include "actor/decode.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

struct tg_decoder {
    tg_coeffs F;
    int S, n_steps, d, n_logits, canonical;
    int8_t *table; /* [n_logits][d] entries of each token, or NULL (too large: digits computed) */
};

tg_decoder *tg_decoder_new(const tg_coeffs *F, int S, int n_steps, int canonical)
{
    int d, nl;
    if (tg_tokens_shape(S, n_steps, F->n, &d, &nl) != 0)
        return NULL;
    tg_decoder *x = calloc(1, sizeof *x);
    if (!x) {
        tg_fail("out of memory");
        return NULL;
    }
    x->F = *F;
    x->S = S;
    x->n_steps = n_steps;
    x->d = d;
    x->n_logits = nl;
    x->canonical = canonical;
    if ((long)nl * d <= (1L << 22)) {
        x->table = malloc((size_t)nl * d);
        if (!x->table) {
            free(x);
            tg_fail("out of memory");
            return NULL;
        }
        for (int t = 0; t < nl; t++) /* first entry most significant */
            for (int j = d - 1, v = t; j >= 0; j--, v /= F->n)
                x->table[(size_t)t * d + j] = F->v[v % F->n];
    }
    return x;
}

void tg_decoder_free(tg_decoder *d)
{
    if (!d)
        return;
    free(d->table);
    free(d);
}

int tg_decode_action(const tg_decoder *x, const int32_t *tok, const tg_sperm *inv, const int sizes[3], int8_t *out)
{
    const int S = x->S, d = x->d;
    int8_t raw[3 * TG_MAX_S];
    for (int s = 0; s < x->n_steps; s++) {
        int32_t t = tok[s];
        if (t < 0 || t >= x->n_logits)
            return 0;
        if (x->table) {
            memcpy(raw + s * d, x->table + (size_t)t * d, (size_t)d);
        } else {
            for (int j = d - 1; j >= 0; j--, t /= x->F.n)
                raw[s * d + j] = x->F.v[t % x->F.n];
        }
    }
    int neg[3] = {0, 0, 0};
    for (int m = 0; m < 3; m++) {
        const int8_t *src = raw + m * S;
        int8_t *dst = out + m * S;
        int n = sizes[m], first = 0;
        if (inv) {
            for (int i = 0; i < n; i++)
                dst[i] = (int8_t)(inv->sign[m][i] * src[inv->perm[m][i]]);
        } else {
            memcpy(dst, src, (size_t)n);
        }
        memset(dst + n, 0, (size_t)(S - n));
        for (int i = 0; i < n && !first; i++)
            first = dst[i];
        if (!first)
            return 0;
        neg[m] = first < 0;
    }
    if (x->canonical) { /* first non-zero of u and of v positive, the signs moved into w */
        for (int m = 0; m < 2; m++)
            if (neg[m])
                for (int i = 0; i < sizes[m]; i++)
                    out[m * S + i] = (int8_t)-out[m * S + i];
        if (neg[0] != neg[1])
            for (int i = 0; i < sizes[2]; i++)
                out[2 * S + i] = (int8_t)-out[2 * S + i];
    }
    return 1;
}
