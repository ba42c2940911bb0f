// GEMM driver in the BLIS manner: the loops around the microkernel, cache
// blocking, packing and threading. The microkernels live in csrc/cpu/isa/.
#include "fastnn/gemm.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "cpu/isa/gemm_kernels.h"
#include "cpu/workspace.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn {

const GemmKernels& gemm_kernels_active() { return active_kernels<GemmKernels>(); }

namespace {

struct Operand {
  const float* p;
  int64_t rs, cs;  // element (i, k) of op(A) / (k, j) of op(B) is p[i*rs + k*cs]
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Floats of op(B) that stay in L2 (512 KiB to 1 MiB per core on Zen 3/4)
// beside the strip of A and the C tile: such a B is used as one block.
constexpr int64_t kSmallB = 64 * 1024;

// C = beta * C, never reading C when beta == 0.
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* ci = C + i * ldc;
    if (beta == 0.0f)
      std::fill(ci, ci + N, 0.0f);
    else if (beta != 1.0f)
      for (int64_t j = 0; j < N; ++j) ci[j] *= beta;
  }
}

// How many threads a problem of this size is worth: a parallel region costs
// a few microseconds, so small products stay on one thread.
int threads_for(int64_t M, int64_t N, int64_t K) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const int want = get_num_threads();
  const int useful = int(std::min<double>(want, std::max(1.0, flops / 6.0e5)));
  return std::max(1, useful);
}

// Range [b, e) of `n` items for part `t` of `parts`.
inline void part(int64_t n, int t, int parts, int64_t& b, int64_t& e) {
  b = n * t / parts;
  e = n * (t + 1) / parts;
}

// The most elements of an extent `size`, cut into units of `unit` (the last
// one short), that any of `parts` parts of the units gets.
int64_t busiest_part(int64_t size, int64_t unit, int parts) {
  const int64_t units = ceil_div(size, unit);
  int64_t most = 0;
  for (int t = 0; t < parts; ++t) {
    int64_t b, e;
    part(units, t, parts, b, e);
    most = std::max(most, std::min(size, e * unit) - std::min(size, b * unit));
  }
  return most;
}

// Splits M x N, in strips of MR rows and panels of NR columns, over `nt`
// threads as a tm x tn thread grid, choosing the split that gives the
// busiest thread the fewest elements of C (rows first on ties: a thread
// then reuses its A panel longest). Elements, not tiles: a short last
// strip (M = 64 is five strips of 12 and one of 4) is counted as short.
void split_grid(int64_t M, int64_t N, int64_t MR, int64_t NR, int nt, int& tm, int& tn) {
  int64_t best = -1;
  tm = nt;
  tn = 1;
  for (int m = nt; m >= 1; --m) {
    if (nt % m) continue;
    const int n = nt / m;
    const int64_t load = busiest_part(M, MR, m) * busiest_part(N, NR, n);
    if (best < 0 || load < best) {
      best = load;
      tm = m;
      tn = n;
    }
  }
}


// N narrower than one register tile: dot products along K. Needs the rows
// of op(A) contiguous in k (the caller checks); op(B) is transposed into a
// small buffer (N x K) when its columns are not.
void gemm_narrow(const GemmKernels& kr, int nt, int64_t M, int64_t N, int64_t K, float alpha,
                 Operand a, Operand b, float beta, float* C, int64_t ldc) {
  const float* ap = a.p;
  const int64_t lda = a.rs;
  const float* bt = b.p;
  int64_t ldbt = b.cs;
  if (b.rs != 1) {  // op(B) = B: gather its columns
    float* buf = workspace(Slot::gemm_b, checked_mul(N, K));
    kr.pack_bt(K, N, b.p, b.rs, b.cs, buf);
    bt = buf;
    ldbt = K;
  }
  const int64_t DR = kr.dr, DC = kr.dc;
  const int64_t pairs = ceil_div(M, DR);
  parallel_for(pairs, nt, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t i = p * DR, m = std::min(DR, M - i);
      for (int64_t j = 0; j < N; j += DC)
        kr.tile_dot(K, ap + i * lda, lda, bt + j * ldbt, ldbt, C + i * ldc + j, ldc, m,
                    std::min(DC, N - j), alpha, beta);
    }
  });
}

// The loops around the microkernel (Goto / BLIS). jc over NC columns and
// pc over KC of K select a block of op(B), packed into NR-wide micro-panels
// by all threads together (KC x NC is a few MiB: it is streamed from L3,
// each micro-panel fetched ahead by the kernel; when the whole of a
// row-major B is small it is used in place, unpacked). The MR-row strips of
// C and the micro-panels of the block are split over a thread grid; each
// thread runs each of its strips of A against every micro-panel it owns, so
// the strip stays in L1. A strip is read in place when the rows of op(A)
// are contiguous, else packed first.
void gemm_blocked(const GemmKernels& kr, int nt, int64_t M, int64_t N, int64_t K, float alpha,
                  Operand a, Operand b, float beta, float* C, int64_t ldc) {
  const int64_t MR = kr.mr, NR = kr.nr;
  // B small enough to stay in L2 whole: one block, no K blocking, and no
  // packing when its rows are contiguous (but for a partial last panel).
  const bool one_block = K * N <= kSmallB;
  const int64_t KC = one_block ? K : std::min<int64_t>(kr.kc, K);
  const int64_t NC = one_block ? N : std::min(kr.nc / NR * NR, ceil_div(N, NR) * NR);
  const bool b_in_place = one_block && b.cs == 1;
  const bool a_in_place = a.cs == 1;
  const int64_t full_in_place = b_in_place ? N / NR : 0;  // panels read straight from B
  float* bp = nullptr;
  if (full_in_place * NR < N)
    bp = workspace(Slot::gemm_b, checked_mul(KC, ceil_div(NC, NR) * NR));
  const int64_t strips = ceil_div(M, MR);
  // one packed strip of A per thread, allocated here: nothing may throw
  // inside the parallel region
  float* ap_all = a_in_place ? nullptr : workspace(Slot::gemm_a, checked_mul(nt * MR, KC));

  parallel_region(nt, [&](int t, int nt_actual) {
    float* ap = a_in_place ? nullptr : ap_all + t * MR * KC;
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min(NC, N - jc);
      const int64_t panels = ceil_div(nc, NR);
      const int64_t packed0 = std::min(full_in_place, panels);  // first packed panel
      int tm, tn;
      split_grid(M, nc, MR, NR, nt_actual, tm, tn);
      int64_t s0, s1, p0, p1;
      part(strips, t / tn, tm, s0, s1);
      part(panels, t % tn, tn, p0, p1);
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const float beta_p = pc == 0 ? beta : 1.0f;
        if (packed0 < panels) {  // pack this block of B, its panels split over the threads
          int64_t q0, q1;
          part(panels - packed0, t, nt_actual, q0, q1);
          q0 += packed0;
          q1 += packed0;
          if (q0 < q1)
            kr.pack_b(kc, std::min(nc, q1 * NR) - q0 * NR,
                      b.p + pc * b.rs + (jc + q0 * NR) * b.cs, b.rs, b.cs,
                      bp + (q0 - packed0) * kc * NR);
          barrier(nt_actual);
        }
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t i = s * MR, m = std::min(MR, M - i);
          const float* ai = a.p + i * a.rs + pc * a.cs;
          if (!a_in_place) kr.pack_a(m, kc, ai, a.rs, a.cs, ap);
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t j = p * NR, n = std::min(NR, nc - j);
            float* c = C + i * ldc + jc + j;
            const bool in_place = p < packed0;
            const float* bj = in_place ? b.p + pc * b.rs + jc + j : bp + (p - packed0) * kc * NR;
            const int64_t b_rs = in_place ? b.rs : NR;
            if (a_in_place)
              kr.tile_strided(kc, ai, a.rs, 1, bj, b_rs, c, ldc, m, n, alpha, beta_p);
            else
              kr.tile_packed(kc, ap, bj, b_rs, c, ldc, m, n, alpha, beta_p);
          }
        }
        if (packed0 < panels) barrier(nt_actual);  // the B block is overwritten next
      }
    }
  });
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  FASTNN_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) return scale_c(M, N, beta, C, ldc);

  const GemmKernels& kr = gemm_kernels_active();
  const Operand a{A, trans_a ? 1 : lda, trans_a ? lda : 1};
  const Operand b{B, trans_b ? 1 : ldb, trans_b ? ldb : 1};
  const int nt = threads_for(M, N, K);
  // A C narrower than 4/5 of a register tile would leave that many vector
  // lanes idle: dot products along K instead.
  if (5 * N < 4 * kr.nr && K >= 16 && a.cs == 1)
    gemm_narrow(kr, nt, M, N, K, alpha, a, b, beta, C, ldc);
  else
    gemm_blocked(kr, nt, M, N, K, alpha, a, b, beta, C, ldc);
}

double peak_gflops(int threads, double seconds) {
  FASTNN_CHECK(threads >= 1 && threads <= max_threads(), "peak_gflops: argument 'threads' must be in [1, ",
               max_threads(), "], got ", threads);
  FASTNN_CHECK(seconds > 0 && seconds <= 60, "peak_gflops: argument 'seconds' must be in (0, 60], got ",
               seconds);
  const GemmKernels& kr = gemm_kernels_active();
  std::vector<double> flops(size_t(threads), 0.0);
  std::vector<float> sink(size_t(threads) * 16, 0.0f);
  using clock = std::chrono::steady_clock;
  auto run = [&](int64_t iters) {
    const auto t0 = clock::now();
    parallel_region(threads, [&](int t, int) {
      flops[size_t(t)] = kr.fma_probe(iters, &sink[size_t(t) * 16]);
    });
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    double total = 0.0;
    for (double f : flops) total += f;
    return std::make_pair(total, s);
  };
  int64_t iters = 1 << 16;
  auto r = run(iters);
  while (r.second < seconds / 4) r = run(iters *= 2);  // warm up and size
  double best = 0.0;
  for (int rep = 0; rep < 4; ++rep) {
    r = run(iters);
    best = std::max(best, r.first / r.second);
  }
  return best / 1e9;
}

void gemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                    const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                    float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float s = 0.0f;
      for (int64_t k = 0; k < K; ++k)
        s += (trans_a ? A[k * lda + i] : A[i * lda + k]) * (trans_b ? B[j * ldb + k] : B[k * ldb + j]);
      float* c = C + i * ldc + j;
      *c = beta == 0.0f ? alpha * s : alpha * s + beta * *c;
    }
}

}  // namespace fastnn
