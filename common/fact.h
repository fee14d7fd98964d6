/* Matrix multiplication tensors and their factorizations.
 *
 * T(n,m,p) has shape [n*m, m*p, p*n] with T[i*m+j][j*p+k][k*n+i] = 1: the convention of
 * DeepMind's released factorizations (the bilinear map (A, B) -> (AB)^T). Dense tensors in this
 * project are int32 arrays indexed [a][b][c] -> a*S*S + b*S + c, padded with zeros to S.
 *
 * A factorization holds R rank-one terms u_r (x) v_r (x) w_r with u_r of length n*m, v_r of
 * length m*p, w_r of length p*n. Coefficients are integer numerators over one common
 * denominator D >= 1 (D = 1 for nearly all algorithms; a few released ones need 2 or 8), so the
 * exact identity checked is  sum_r U_r (x) V_r (x) W_r = D^3 T.  Over GF(2) (mod2) D must be 1
 * and the identity is checked modulo 2. */
#ifndef TG_FACT_H
#define TG_FACT_H

#include <stddef.h>
#include <stdint.h>

#define TG_MAX_DIM 12   /* largest n, m or p */
#define TG_MAX_MODE 144 /* largest n*m */

typedef struct tg_dims {
    int n, m, p;
} tg_dims;

/* Mode sizes of T(n,m,p): {n*m, m*p, p*n}. */
void tg_dims_modes(tg_dims d, int modes[3]);
/* 0 if 1 <= n,m,p <= TG_MAX_DIM, else -1 with a message. */
int tg_dims_check(tg_dims d);
/* Parses "n,m,p" (also "nxmxp"); -1 with a message on anything else. */
int tg_dims_parse(const char *s, tg_dims *out);

/* Writes T(n,m,p) padded to S (S >= every mode) into out[S*S*S] (zeroed first). */
int tg_matmul_tensor(tg_dims d, int S, int32_t *out);

typedef enum tg_arith { TG_ARITH_INTEGER = 0, TG_ARITH_MOD2 = 1 } tg_arith;
const char *tg_arith_name(tg_arith a);              /* "integer" / "mod2" */
int tg_arith_parse(const char *s, tg_arith *out);   /* also accepts "Z", "F2", "gf2" */

typedef struct tg_fact tg_fact; /* opaque */

/* New factorization with all coefficients zero; NULL (with a message) on bad sizes. */
tg_fact *tg_fact_new(tg_dims d, int rank, int64_t denom, tg_arith arith);
tg_fact *tg_fact_clone(const tg_fact *f);
void tg_fact_free(tg_fact *f);

tg_dims tg_fact_dims(const tg_fact *f);
int tg_fact_rank(const tg_fact *f);
int64_t tg_fact_denom(const tg_fact *f);
tg_arith tg_fact_arith(const tg_fact *f);
/* Factor arrays, row r = term r: u is [rank][n*m], v [rank][m*p], w [rank][p*n]. Writable. */
int64_t *tg_fact_u(tg_fact *f);
int64_t *tg_fact_v(tg_fact *f);
int64_t *tg_fact_w(tg_fact *f);
const int64_t *tg_fact_cu(const tg_fact *f);
const int64_t *tg_fact_cv(const tg_fact *f);
const int64_t *tg_fact_cw(const tg_fact *f);
/* Largest |coefficient| over u, v, w. */
int64_t tg_fact_max_abs(const tg_fact *f);

/* Where a verification failed: tensor entry (a, b, c) of mode sizes, what the factors sum to
 * there (scaled by D^3; reduced mod 2 in mod2) and what T holds there. */
typedef struct tg_fact_mismatch {
    int a, b, c;
    int64_t got, want;
} tg_fact_mismatch;

/* 1 if the factorization is exact (over the integers, or mod 2 when mod2 != 0), 0 if not (and
 * *where, if non-NULL, names the first wrong entry in a, b, c order), -1 on an internal error
 * such as an overflow of 64-bit arithmetic (with a message). */
int tg_fact_verify(const tg_fact *f, int mod2, tg_fact_mismatch *where);

/* Formats a mismatch as "entry (a,b,c) = T[i*m+j][j*p+k][k*n+i]: factors give X, T has Y". */
void tg_fact_mismatch_str(const tg_fact *f, const tg_fact_mismatch *mm, char *buf, size_t len);

/* The algorithm as equations, one per line, into a malloc'd string:
 *   m1 = (a11 + a22)(b11 + b22)
 *   ...
 *   c11 = m1 + m4 - m5 + m7
 * where a_ij are entries of the n x m matrix A, b_jk of the m x p matrix B, and c_ik of C = AB
 * (the factors describe (A,B) -> (AB)^T, so w's index k*n+i is c_ik). Coefficients other than
 * +-1 are written as "2 a11" or "1/2 a11". Indices above 9 are written a_10_11. */
char *tg_fact_equations(const tg_fact *f);

/* Reference algorithms (for tests, demos and tools): the naive algorithm for T(d), rank n*m*p,
 * and Strassen's rank-7 algorithm for T(2,2,2). NULL with a message on bad sizes. */
tg_fact *tg_fact_naive(tg_dims d);
tg_fact *tg_fact_strassen(void);

#endif
