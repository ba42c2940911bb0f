// Single-precision GEMM on the CPU, row-major:
//   C = alpha * op(A) * op(B) + beta * C
// op(A): (M,K) -- A is (M,K) with row stride lda, or (K,M) when trans_a.
// op(B): (K,N) -- B is (K,N) with row stride ldb, or (N,K) when trans_b.
// C: (M,N) with row stride ldc; overwritten when beta == 0 (never read,
// so it may hold NaN), otherwise accumulated into.
#pragma once
#include <cstdint>

namespace fastnn {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);

// The plain triple loop (float accumulation), kept as the readable
// definition and as a check for the fast path.
void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc);

// The machine's measured FMA peak in GFLOP/s on `threads` threads with the
// active instruction set: independent FMA chains for about `seconds`.
double peak_gflops(int threads, double seconds);

}  // namespace fastnn
