// Checks a function exported by `tg export --format cuda` (compiled with -DFN=its name) on the
// GPU: random matrices with padded leading dimensions against a double-precision product.
// usage: fastmm_export_driver_cuda M K N TOL   (exit 0 if the max-norm relative error <= TOL)
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int FN(cublasHandle_t h, long M, long N, long K, const float *A, long lda, const float *B,
       long ldb, float *C, long ldc);

int main(int argc, char **argv)
{
    if (argc != 5) return 2;
    long M = atol(argv[1]), K = atol(argv[2]), N = atol(argv[3]);
    double tol = atof(argv[4]);
    long lda = K + 1, ldb = N + 2, ldc = N + 3;
    float *A = (float *)malloc(sizeof(float) * M * lda), *B = (float *)malloc(sizeof(float) * K * ldb);
    float *C = (float *)malloc(sizeof(float) * M * ldc), *dA, *dB, *dC;
    srand(7);
    for (long i = 0; i < M * lda; i++) A[i] = 2.0f * rand() / RAND_MAX - 1;
    for (long i = 0; i < K * ldb; i++) B[i] = 2.0f * rand() / RAND_MAX - 1;
    for (long i = 0; i < M * ldc; i++) C[i] = NAN;
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS ||
        cudaMalloc(&dA, sizeof(float) * M * lda) || cudaMalloc(&dB, sizeof(float) * K * ldb) ||
        cudaMalloc(&dC, sizeof(float) * M * ldc) ||
        cudaMemcpy(dA, A, sizeof(float) * M * lda, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dB, B, sizeof(float) * K * ldb, cudaMemcpyHostToDevice) ||
        cudaMemcpy(dC, C, sizeof(float) * M * ldc, cudaMemcpyHostToDevice))
        return 2;
    if (FN(h, M, N, K, dA, lda, dB, ldb, dC, ldc)) return 3;
    if (cudaMemcpy(C, dC, sizeof(float) * M * ldc, cudaMemcpyDeviceToHost)) return 2;
    double num = 0, den = 0;
    for (long i = 0; i < M; i++) {
        for (long j = 0; j < N; j++) {
            double r = 0;
            for (long k = 0; k < K; k++) r += (double)A[i * lda + k] * B[k * ldb + j];
            double e = fabs(C[i * ldc + j] - r);
            if (!(e <= num)) num = e;
            if (fabs(r) > den) den = fabs(r);
        }
        for (long j = N; j < ldc; j++)
            if (!isnan(C[i * ldc + j])) return 5; // outside C: untouched
    }
    printf("%s %ldx%ldx%ld: max rel error %.2e (tolerance %.1e)\n", argv[0], M, K, N, num / den,
           tol);
    cublasDestroy(h);
    return num / den <= tol ? 0 : 1;
}
