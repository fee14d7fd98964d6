/* Checks a function exported by `tg export --format c` (compiled with -DFN=its name): random
 * matrices with padded leading dimensions against a double-precision product.
 * usage: fastmm_export_driver M K N TOL   (exit 0 if the max-norm relative error <= TOL) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int FN(long M, long N, long K, const float *A, long lda, const float *B, long ldb, float *C,
       long ldc);

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    long M = atol(argv[1]), K = atol(argv[2]), N = atol(argv[3]);
    double tol = atof(argv[4]);
    long lda = K + 1, ldb = N + 2, ldc = N + 3;
    float *A = malloc(sizeof(float) * M * lda), *B = malloc(sizeof(float) * K * ldb);
    float *C = malloc(sizeof(float) * M * ldc);
    if (!A || !B || !C) return 2;
    srand(7);
    for (long i = 0; i < M * lda; i++) A[i] = 2.0f * rand() / RAND_MAX - 1;
    for (long i = 0; i < K * ldb; i++) B[i] = 2.0f * rand() / RAND_MAX - 1;
    for (long i = 0; i < M * ldc; i++) C[i] = NAN;
    if (FN(M, N, K, A, lda, B, ldb, C, ldc)) return 3;
    if (FN(M + 1, N, K, A, lda, B, ldb, C, ldc) != -1) return 4; /* not a multiple of the grid */
    double num = 0, den = 0;
    for (long i = 0; i < M; i++)
        for (long j = 0; j < N; j++) {
            double r = 0;
            for (long k = 0; k < K; k++) r += (double)A[i * lda + k] * B[k * ldb + j];
            double e = fabs(C[i * ldc + j] - r);
            if (!(e <= num)) num = e;
            if (fabs(r) > den) den = fabs(r);
        }
    printf("%s %ldx%ldx%ld: max rel error %.2e (tolerance %.1e)\n", argv[0], M, K, N, num / den,
           tol);
    return num / den <= tol ? 0 : 1;
}
