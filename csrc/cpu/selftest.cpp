// Checks that need OpenMP around the kernels, exposed to the tests.
#include "fastnn/selftest.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fastnn/check.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"

namespace fastnn {

double gemm_nested_selftest(int outer, int64_t m, int64_t k, int64_t n) {
  FASTNN_CHECK(outer >= 1 && outer <= max_threads(), "gemm_nested_selftest: outer must be in [1, ",
               max_threads(), "], got ", outer);
  FASTNN_CHECK(m >= 0 && k >= 0 && n >= 0 && m * k <= (1 << 24) && k * n <= (1 << 24) &&
                   m * n <= (1 << 24),
               "gemm_nested_selftest: sizes out of range");
  std::vector<double> err(size_t(outer), 0.0);
  // Each thread of the outer team runs its own product with its own data;
  // the kernel sees omp_in_parallel() and must run inline without a barrier.
  auto body = [&](int t, int) {
    const int64_t mt = m + t, nt = n + 2 * t;  // different shapes per thread
    std::vector<float> a(size_t(mt * k)), b(size_t(k * nt)), c(size_t(mt * nt)), r(c.size());
    for (size_t i = 0; i < a.size(); ++i) a[i] = float((i * 7 + t) % 13) / 13.0f - 0.5f;
    for (size_t i = 0; i < b.size(); ++i) b[i] = float((i * 5 + 3 * t) % 11) / 11.0f - 0.5f;
    gemm(false, false, mt, nt, k, 1.0f, a.data(), k, b.data(), nt, 0.0f, c.data(), nt);
    gemm_reference(false, false, mt, nt, k, 1.0f, a.data(), k, b.data(), nt, 0.0f, r.data(), nt);
    double e = 0.0;
    for (size_t i = 0; i < c.size(); ++i) e = std::max(e, double(std::fabs(c[i] - r[i])));
    err[size_t(t)] = e;
  };
#ifdef FASTNN_OPENMP
#pragma omp parallel num_threads(outer)
  body(omp_get_thread_num(), omp_get_num_threads());
#else
  body(0, 1);
#endif
  return *std::max_element(err.begin(), err.end());
}

}  // namespace fastnn
