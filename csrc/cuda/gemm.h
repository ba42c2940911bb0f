// Single-precision GEMM on the GPU, row-major, the same contract as the CPU
// fastnn::gemm (csrc/fastnn/gemm.h):
//   C = alpha * op(A) * op(B) + beta * C
// op(A): (M,K) -- A is (M,K) with row stride lda, or (K,M) when trans_a.
// op(B): (K,N) -- B is (K,N) with row stride ldb, or (N,K) when trans_b.
// C: (M,N) with row stride ldc; overwritten when beta == 0 (never read, so
// it may hold NaN), otherwise accumulated into. A and B are not read when
// alpha == 0 or K == 0.
// All pointers are device pointers; C must not overlap A or B. Queued on
// the legacy default stream (asynchronous); throws std::invalid_argument for
// bad sizes and fastnn::cuda::CudaError when the launch fails.
#pragma once
#include <cstdint>

namespace fastnn {
namespace cuda {

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc);

}  // namespace cuda
}  // namespace fastnn
