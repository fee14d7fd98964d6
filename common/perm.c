/* Signed permutations of the three modes (data augmentation and query symmetrisation). */
#include "common/perm.h"

#include <string.h>

#include "common/err.h"

static void check_shape(int S, const int sizes[3])
{
    TG_ASSERT(S >= 1 && S <= TG_PERM_MAX_S);
    for (int k = 0; k < 3; k++)
        TG_ASSERT(sizes[k] >= 0 && sizes[k] <= S);
}

void tg_sperm_identity(tg_sperm *p, int S, const int sizes[3])
{
    check_shape(S, sizes);
    memset(p, 0, sizeof *p);
    p->S = S;
    for (int k = 0; k < 3; k++) {
        p->sizes[k] = sizes[k];
        for (int i = 0; i < S; i++) {
            p->perm[k][i] = (uint8_t)i;
            p->sign[k][i] = 1;
        }
    }
}

void tg_sperm_sample(tg_sperm *p, int S, const int sizes[3], int with_signs, tg_rng *rng)
{
    tg_sperm_identity(p, S, sizes);
    for (int k = 0; k < 3; k++) {
        for (int i = sizes[k] - 1; i > 0; i--) { /* Fisher-Yates over the active coordinates */
            int j = (int)tg_rng_below(rng, (uint32_t)i + 1);
            uint8_t t = p->perm[k][i];
            p->perm[k][i] = p->perm[k][j];
            p->perm[k][j] = t;
        }
        if (with_signs)
            for (int i = 0; i < sizes[k]; i++)
                p->sign[k][i] = (tg_rng_u64(rng) >> 63) ? -1 : 1;
    }
}

void tg_sperm_invert(const tg_sperm *p, tg_sperm *inv)
{
    tg_sperm q;
    tg_sperm_identity(&q, p->S, p->sizes);
    /* p maps x'[a] = s[a] x[perm[a]]; the inverse is y[b] = s[q(b)] x'[q(b)] with q = perm^-1 */
    for (int k = 0; k < 3; k++)
        for (int a = 0; a < p->S; a++) {
            int b = p->perm[k][a];
            q.perm[k][b] = (uint8_t)a;
            q.sign[k][b] = p->sign[k][a];
        }
    *inv = q;
}

/* Generic body for int32 and float tensors. */
#define SPERM_APPLY_TENSOR(T)                                                                  \
    const int S = p->S;                                                                        \
    for (int a = 0; a < S; a++) {                                                              \
        const int pa = p->perm[0][a], sa = p->sign[0][a];                                      \
        for (int b = 0; b < S; b++) {                                                          \
            const int pb = p->perm[1][b], sab = sa * p->sign[1][b];                            \
            const T *src = t + ((size_t)pa * S + pb) * S;                                      \
            T *dst = out + ((size_t)a * S + b) * S;                                            \
            if (sab > 0)                                                                       \
                for (int c = 0; c < S; c++)                                                    \
                    dst[c] = p->sign[2][c] > 0 ? src[p->perm[2][c]] : -src[p->perm[2][c]];     \
            else                                                                               \
                for (int c = 0; c < S; c++)                                                    \
                    dst[c] = p->sign[2][c] > 0 ? -src[p->perm[2][c]] : src[p->perm[2][c]];     \
        }                                                                                      \
    }

void tg_sperm_apply_tensor(const tg_sperm *p, const int32_t *t, int32_t *out)
{
    TG_ASSERT(t != out);
    SPERM_APPLY_TENSOR(int32_t)
}

void tg_sperm_apply_tensor_f(const tg_sperm *p, const float *t, float *out)
{
    TG_ASSERT(t != out);
    SPERM_APPLY_TENSOR(float)
}

void tg_sperm_apply_action(const tg_sperm *p, const int8_t *a, int8_t *out)
{
    TG_ASSERT(a != out);
    const int S = p->S;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < S; i++)
            out[k * S + i] = (int8_t)(p->sign[k][i] * a[k * S + p->perm[k][i]]);
}
