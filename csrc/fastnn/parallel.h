// The one place that knows about OpenMP. Without OpenMP everything runs
// serially through the same calls.
#pragma once
#include <cstdint>
#include <algorithm>
#ifdef FASTNN_OPENMP
#include <omp.h>
#endif

namespace fastnn {

int get_num_threads();       // threads a kernel may use (OMP_NUM_THREADS respected)
void set_num_threads(int n);  // n >= 1
bool openmp_enabled();

// Sets flush-to-zero / denormals-are-zero for the calling thread.
void enable_flush_to_zero();

// f(begin, end) over [0, n) split into at most `threads` contiguous chunks.
// Runs inline when one chunk suffices (no parallel region is opened).
template <class F>
void parallel_for(int64_t n, int threads, const F& f) {
  if (n <= 0) return;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
#ifdef FASTNN_OPENMP
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  f(0, n);
}

// f(thread_index, thread_count) once in each of `threads` threads; the
// body may use barrier() to wait for the others.
template <class F>
void parallel_region(int threads, const F& f) {
#ifdef FASTNN_OPENMP
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    f(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  f(0, 1);
}

inline void barrier() {
#ifdef FASTNN_OPENMP
#pragma omp barrier
#endif
}

}  // namespace fastnn
