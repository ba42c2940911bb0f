// The one place that knows about OpenMP. Without OpenMP everything runs
// serially through the same calls.
#pragma once
#include <cstdint>
#include <algorithm>
#ifdef FASTNN_OPENMP
#include <omp.h>
#endif
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FASTNN_HAVE_MXCSR 1
#endif

namespace fastnn {

// Flush-to-zero and denormals-are-zero for the scope, then the caller's
// mode back: a denormal operand or result costs about a hundred cycles on
// many x86 cores (RNN steps slow down 10-20x on such inputs). Every kernel
// thread runs under one (parallel_for / parallel_region set it), so the
// Python thread's own floating-point mode is never changed for good.
class FlushDenormals {
 public:
#ifdef FASTNN_HAVE_MXCSR
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
#else
  FlushDenormals() {}
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
#ifdef FASTNN_HAVE_MXCSR
  unsigned saved_;
#endif
};

int get_num_threads();        // threads a kernel may use (OMP_NUM_THREADS respected)
void set_num_threads(int n);   // 1 <= n <= max_threads()
int max_threads();             // the most a kernel may ask for (4x the cores, at least 16)
bool openmp_enabled();

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
      FlushDenormals ftz;
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      if (b < e) f(b, e);
    }
    return;
  }
#endif
  FlushDenormals ftz;
  f(0, n);
}

// f(thread_index, thread_count) once in each of `threads` threads; the
// body may call barrier(thread_count) to wait for the others. Inside an
// enclosing parallel region (a kernel called from a parallel loop) it runs
// once, inline, with thread_count 1.
template <class F>
void parallel_region(int threads, const F& f) {
#ifdef FASTNN_OPENMP
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      FlushDenormals ftz;
      f(omp_get_thread_num(), omp_get_num_threads());
    }
    return;
  }
#endif
  FlushDenormals ftz;
  f(0, 1);
}

// Waits for the other threads of a parallel_region of `thread_count`
// threads. With one thread it does nothing: the region then runs inline and
// an OpenMP barrier would bind to an enclosing team, which is not waiting.
inline void barrier(int thread_count) {
#ifdef FASTNN_OPENMP
  if (thread_count > 1) {
#pragma omp barrier
  }
#else
  (void)thread_count;
#endif
}

}  // namespace fastnn
