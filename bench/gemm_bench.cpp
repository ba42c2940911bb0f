// fastnn_bench: the native GEMM benchmarks and the FMA peak probe.
//
//   fastnn_bench [--benchmark_filter=REGEX] [--benchmark_min_time=SECONDS] ...
//
// GEMM rows report FLOPS as a rate ("92G/s" is 92 GFLOP/s), timed in wall
// clock because the work runs on OpenMP threads. Every GEMM is checked
// against fastnn::gemm_reference before it is timed: small shapes with every
// transpose, alpha and beta at start-up, then each timed shape on sampled
// rows. The binary exits non-zero when a check fails or the filter matches
// nothing, so CI can run it as a smoke test. FASTNN_ISA=generic|avx2|avx512
// picks the microkernel, as it does for Python.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace {

struct Shape {
  int64_t M, K, N;  // C(M,N) = A(M,K) B(K,N)
};

// Square sizes, then the shapes the CNN and RNN layers send: a dense layer's
// (batch, in, out) and an implicit-GEMM convolution's (pixels, kh*kw*cin, cout).
constexpr Shape kShapes[] = {{256, 256, 256},    {512, 512, 512},    {1024, 1024, 1024},
                             {2048, 2048, 2048}, {4096, 4096, 4096}, {64, 2048, 512},
                             {64, 512, 10},      {4096, 27, 32},     {16384, 288, 64}};
constexpr int kThreads[] = {1, 2};

bool g_failed = false;  // some GEMM result was wrong: main exits non-zero

// ------------------------------------------------------------------ buffers

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using Floats = std::unique_ptr<float[], FreeDeleter>;

// 64-byte aligned, as the arrays NumPy and PyTorch hand to their GEMMs.
Floats alloc_floats(size_t n) {
  const size_t bytes = (std::max<size_t>(n, 1) * sizeof(float) + 63) / 64 * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::bad_alloc();
  return Floats(p);
}

void fill_uniform(float* p, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t i = 0; i < n; ++i) p[i] = u(rng);
}

// One set of operands sized for the largest shape, allocated and touched
// once: a fresh page costs about 2 us here, and Google Benchmark calls each
// benchmark function several times while it sizes the iteration count.
struct Operands {
  Floats a, b, c;
};

const Operands& operands() {
  static const Operands ops = [] {
    size_t a = 0, b = 0, c = 0;
    for (const Shape& s : kShapes) {
      a = std::max(a, size_t(s.M * s.K));
      b = std::max(b, size_t(s.K * s.N));
      c = std::max(c, size_t(s.M * s.N));
    }
    Operands o{alloc_floats(a), alloc_floats(b), alloc_floats(c)};
    fill_uniform(o.a.get(), a, 1);
    fill_uniform(o.b.get(), b, 2);
    std::fill(o.c.get(), o.c.get() + c, 0.0f);
    return o;
  }();
  return ops;
}

// ------------------------------------------------------------------ checks

struct Problem {
  bool trans_a, trans_b;
  Shape s;
  float alpha, beta;
};

// Both sides sum in float, in different orders. With operands in [-1, 1]
// the difference stays well under K * eps, while a wrong tile or a lost K
// block is off by O(1).
float tolerance(int64_t K) {
  return 1e-5f + 4.0f * std::numeric_limits<float>::epsilon() * float(K);
}

// Runs fastnn::gemm into C (which starts as C0, or as NaN when beta is 0, so
// that a kernel reading C shows) and compares `rows` of the result with
// gemm_reference. Returns "" or what went wrong.
std::string check(const Problem& p, const float* A, const float* B, const float* C0, float* C,
                  const std::vector<int64_t>& rows) {
  const int64_t M = p.s.M, K = p.s.K, N = p.s.N;
  const int64_t lda = std::max<int64_t>(p.trans_a ? M : K, 1);
  const int64_t ldb = std::max<int64_t>(p.trans_b ? K : N, 1);
  const int64_t ldc = std::max<int64_t>(N, 1);
  if (p.beta == 0.0f)
    std::fill(C, C + M * N, std::numeric_limits<float>::quiet_NaN());
  else
    std::copy(C0, C0 + M * N, C);
  fastnn::gemm(p.trans_a, p.trans_b, M, N, K, p.alpha, A, lda, B, ldb, p.beta, C, ldc);

  std::vector<float> ref(size_t(std::max<int64_t>(N, 1)));
  const float tol = tolerance(K);
  for (int64_t i : rows) {
    // row i of op(A): row i of A, or column i when A is stored transposed
    const float* Ai = p.trans_a ? A + i : A + i * lda;
    if (p.beta != 0.0f) std::copy(C0 + i * ldc, C0 + i * ldc + N, ref.begin());
    fastnn::gemm_reference(p.trans_a, p.trans_b, 1, N, K, p.alpha, Ai, lda, B, ldb, p.beta,
                           ref.data(), ldc);
    for (int64_t j = 0; j < N; ++j) {
      const float got = C[i * ldc + j], want = ref[size_t(j)];
      if (!(std::fabs(got - want) <= tol)) {  // also catches NaN
        char msg[256];
        std::snprintf(msg, sizeof msg,
                      "wrong GEMM result: M=%lld K=%lld N=%lld trans_a=%d trans_b=%d "
                      "alpha=%g beta=%g threads=%d: C[%lld][%lld] = %g, reference %g",
                      (long long)M, (long long)K, (long long)N, int(p.trans_a),
                      int(p.trans_b), double(p.alpha), double(p.beta),
                      fastnn::get_num_threads(), (long long)i, (long long)j, double(got),
                      double(want));
        return msg;
      }
    }
  }
  return "";
}

std::vector<int64_t> all_rows(int64_t M) {
  std::vector<int64_t> r(size_t(std::max<int64_t>(M, 0)));
  for (int64_t i = 0; i < M; ++i) r[size_t(i)] = i;
  return r;
}

// The reference costs N*K per row, too slow for every row of the big
// shapes: take the edges, where partial register tiles and the last
// thread's share live, and a spread of rows in between.
std::vector<int64_t> sample_rows(int64_t M) {
  if (M <= 64) return all_rows(M);
  std::set<int64_t> r{0, 1, M - 2, M - 1};
  for (int64_t k = 1; k < 8; ++k) r.insert(M * k / 8 + k % 3);
  return {r.begin(), r.end()};
}

// ------------------------------------------------------------------ benchmarks

// C = A B, row-major, no transposes, alpha 1, beta 0: what NumPy's matmul
// and bench/run.py time.
void BM_gemm(benchmark::State& state) {
  const Shape s{state.range(0), state.range(1), state.range(2)};
  const int threads = int(state.range(3));
  fastnn::set_num_threads(threads);
  const Operands& ops = operands();
  const float *A = ops.a.get(), *B = ops.b.get();
  float* C = ops.c.get();

  // checked once per shape and thread count (the split over threads
  // differs), not on every call Google Benchmark makes while sizing
  static std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::string> checked;
  auto key = std::make_tuple(s.M, s.K, s.N, threads);
  auto it = checked.find(key);
  if (it == checked.end())
    it = checked.emplace(key, check({false, false, s, 1.0f, 0.0f}, A, B, nullptr, C,
                                    sample_rows(s.M))).first;
  if (!it->second.empty()) {
    g_failed = true;
    state.SkipWithError(it->second.c_str());
    return;
  }

  for (auto _ : state) {
    fastnn::gemm(false, false, s.M, s.N, s.K, 1.0f, A, s.K, B, s.N, 0.0f, C, s.N);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(
      2.0 * double(s.M) * double(s.N) * double(s.K) * double(state.iterations()),
      benchmark::Counter::kIsRate);
}

void gemm_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"M", "K", "N", "threads"});
  for (const Shape& s : kShapes)
    for (int t : kThreads) b->Args({s.M, s.K, s.N, t});
}
BENCHMARK(BM_gemm)->Apply(gemm_args)->UseRealTime()->Unit(benchmark::kMicrosecond);

// The FMA peak of the active instruction set from fastnn's own probe
// (independent FMA chains in registers, timed by the probe itself), the
// ceiling the GEMM rows are read against. Best of a few runs.
void BM_peak(benchmark::State& state) {
  const int threads = int(state.range(0));
  double best = 0.0;
  for (auto _ : state) best = std::max(best, fastnn::peak_gflops(threads, 0.1));
  state.counters["FLOPS"] = benchmark::Counter(best * 1e9);
}
BENCHMARK(BM_peak)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(3)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// Small odd shapes (edges everywhere, K = 0 gives beta*C), every transpose,
// with and without alpha/beta, on 1 and 2 threads: the paths the timed rows
// do not exercise.
std::string self_check() {
  constexpr Shape kSmall[] = {{1, 1, 1}, {5, 0, 3}, {7, 13, 5}, {37, 53, 29}, {65, 300, 70}};
  constexpr float kAlphaBeta[][2] = {{1.0f, 0.0f}, {0.5f, -1.5f}};
  for (const Shape& s : kSmall) {
    const size_t na = size_t(s.M * s.K), nb = size_t(s.K * s.N), nc = size_t(s.M * s.N);
    Floats A = alloc_floats(na), B = alloc_floats(nb), C0 = alloc_floats(nc),
           C = alloc_floats(nc);
    fill_uniform(A.get(), na, 3);
    fill_uniform(B.get(), nb, 4);
    fill_uniform(C0.get(), nc, 5);
    for (int threads : kThreads) {
      fastnn::set_num_threads(threads);
      for (int t = 0; t < 4; ++t)
        for (const auto& ab : kAlphaBeta) {
          const Problem p{(t & 1) != 0, (t & 2) != 0, s, ab[0], ab[1]};
          std::string err = check(p, A.get(), B.get(), C0.get(), C.get(), all_rows(s.M));
          if (!err.empty()) return err;
        }
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("fastnn_version", fastnn::version());
  benchmark::AddCustomContext("fastnn_isa", fastnn::isa_name(fastnn::active_isa()));
  benchmark::AddCustomContext("fastnn_openmp", fastnn::openmp_enabled() ? "yes" : "no");

  const std::string err = self_check();
  if (!err.empty()) {
    std::fprintf(stderr, "fastnn_bench: self-check failed: %s\n", err.c_str());
    return 1;
  }
  const size_t ran = benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  if (ran == 0) {
    std::fprintf(stderr, "fastnn_bench: no benchmark matched the filter\n");
    return 1;
  }
  if (g_failed) {
    std::fprintf(stderr, "fastnn_bench: some GEMM results were wrong (see ERROR rows)\n");
    return 1;
  }
  return 0;
}
