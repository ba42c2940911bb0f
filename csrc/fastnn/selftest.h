// Self-checks of the kernels in situations a NumPy test cannot set up.
#pragma once
#include <cstdint>

namespace fastnn {

// Runs `outer` GEMMs at once, each from a thread of one OpenMP parallel
// region, on (m+t, k) x (k, n+2t) for thread t, and returns the largest
// absolute difference from gemm_reference. A kernel that opened a barrier
// inside the enclosing region would hang here instead.
double gemm_nested_selftest(int outer, int64_t m, int64_t k, int64_t n);

}  // namespace fastnn
