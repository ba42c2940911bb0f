// GEMM driver in the BLIS manner: the loops around the microkernel, cache
// blocking, packing and threading. The microkernels live in csrc/cpu/isa/.
#include "fastnn/gemm.h"

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "cpu/isa/gemm_kernels.h"
#include "cpu/workspace.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn {

namespace {

const GemmKernels& kernels_for(Isa isa) {
#ifdef FASTNN_HAVE_X86_ISA
  if (isa == Isa::avx512) return gemm_kernels_avx512();
  if (isa == Isa::avx2) return gemm_kernels_avx2();
#endif
  (void)isa;
  return gemm_kernels_generic();
}

struct Operand {
  const float* p;
  int64_t rs, cs;  // element (i, k) of op(A) / (k, j) of op(B) is p[i*rs + k*cs]
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

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
  const int useful = int(std::min<double>(want, std::max(1.0, flops / 4.0e5)));
  return std::max(1, useful);
}

// Splits a grid of `rows` x `cols` tiles over `nt` threads as a tm x tn
// thread grid, choosing the split that gives the busiest thread the fewest
// tiles (rows first on ties: a thread then reuses its A panel longest).
void split_grid(int64_t rows, int64_t cols, int nt, int& tm, int& tn) {
  int64_t best = -1;
  tm = nt;
  tn = 1;
  for (int m = nt; m >= 1; --m) {
    if (nt % m) continue;
    const int n = nt / m;
    const int64_t load = ceil_div(rows, m) * ceil_div(cols, n);
    if (best < 0 || load < best) {
      best = load;
      tm = m;
      tn = n;
    }
  }
}

// Range [b, e) of `n` items for part `t` of `parts`.
inline void part(int64_t n, int t, int parts, int64_t& b, int64_t& e) {
  b = n * t / parts;
  e = n * (t + 1) / parts;
}

// Whole op(B) fits in L2: no K blocking; A is read in place unless
// transposed, B in place when its rows are contiguous.
void gemm_small(const GemmKernels& kr, int nt, int64_t M, int64_t N, int64_t K, float alpha,
                Operand a, Operand b, float beta, float* C, int64_t ldc) {
  const int64_t MR = kr.mr, NR = kr.nr;
  const int64_t strips = ceil_div(M, MR), panels = ceil_div(N, NR);
  // Panels of B that are used in place (row-contiguous, full width); the
  // rest (transposed B, or the last partial panel) are packed once.
  const bool b_in_place = b.cs == 1;
  const int64_t full_panels = b_in_place ? N / NR : 0;
  const int64_t packed_panels = panels - full_panels;
  float* bp = nullptr;
  if (packed_panels > 0) {
    bp = workspace(Slot::gemm_b, checked_mul(checked_mul(packed_panels, K), NR));
    kr.pack_b(K, N - full_panels * NR, b.p + full_panels * NR * b.cs, b.rs, b.cs, bp);
  }
  int tm, tn;
  split_grid(strips, panels, nt, tm, tn);
  parallel_region(tm * tn, [&](int t, int) {
    int64_t s0, s1, p0, p1;
    part(strips, t / tn, tm, s0, s1);
    part(panels, t % tn, tn, p0, p1);
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t i = s * MR, m = std::min(MR, M - i);
      const float* ai = a.p + i * a.rs;
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j = p * NR, n = std::min(NR, N - j);
        float* c = C + i * ldc + j;
        if (p < full_panels)
          kr.tile_strided(K, ai, a.rs, a.cs, b.p + j, b.rs, c, ldc, m, n, alpha, beta);
        else
          kr.tile_strided(K, ai, a.rs, a.cs, bp + (p - full_panels) * K * NR, NR, c, ldc, m, n,
                          alpha, beta);
      }
    }
  });
}

// The five loops: jc over NC columns, pc over KC of K (B block packed by all
// threads together, then it stays in L2), then the tiles of that block split
// over the threads; each thread packs its MR x KC panel of A (L1) and runs
// it against every NR panel of B it owns.
void gemm_blocked(const GemmKernels& kr, int nt, int64_t M, int64_t N, int64_t K, float alpha,
                  Operand a, Operand b, float beta, float* C, int64_t ldc) {
  const int64_t MR = kr.mr, NR = kr.nr, KC = kr.kc;
  const int64_t NC = std::min<int64_t>(kr.nc, ceil_div(N, NR) * NR);
  const int64_t strips = ceil_div(M, MR);
  float* bp = workspace(Slot::gemm_b, checked_mul(KC, NC));
  parallel_region(nt, [&](int t, int nt_actual) {
    float* ap = workspace(Slot::gemm_a, MR * KC);
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min(NC, N - jc);
      const int64_t panels = ceil_div(nc, NR);
      int tm, tn;
      split_grid(strips, panels, nt_actual, tm, tn);
      for (int64_t pc = 0; pc < K; pc += KC) {
        const int64_t kc = std::min(KC, K - pc);
        const float beta_p = pc == 0 ? beta : 1.0f;
        {  // pack this block of B, panels split over the threads
          int64_t q0, q1;
          part(panels, t, nt_actual, q0, q1);
          if (q0 < q1)
            kr.pack_b(kc, std::min(nc, q1 * NR) - q0 * NR,
                      b.p + pc * b.rs + (jc + q0 * NR) * b.cs, b.rs, b.cs, bp + q0 * kc * NR);
        }
        barrier();
        int64_t s0, s1, p0, p1;
        part(strips, t / tn, tm, s0, s1);
        part(panels, t % tn, tn, p0, p1);
        for (int64_t s = s0; s < s1; ++s) {
          const int64_t i = s * MR, m = std::min(MR, M - i);
          kr.pack_a(m, kc, a.p + i * a.rs + pc * a.cs, a.rs, a.cs, ap);
          for (int64_t p = p0; p < p1; ++p) {
            const int64_t j = p * NR, n = std::min(NR, nc - j);
            kr.tile_packed(kc, ap, bp + p * kc * NR, NR, C + i * ldc + jc + j, ldc, m, n, alpha,
                           beta_p);
          }
        }
        barrier();  // the B block is overwritten next
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

  const GemmKernels& kr = kernels_for(active_isa());
  const Operand a{A, trans_a ? 1 : lda, trans_a ? lda : 1};
  const Operand b{B, trans_b ? 1 : ldb, trans_b ? ldb : 1};
  const int nt = threads_for(M, N, K);
  // B small enough to stay in L2 whole: skip blocking and most packing.
  if (K * N <= int64_t(kr.kc) * kr.nc)
    gemm_small(kr, nt, M, N, K, alpha, a, b, beta, C, ldc);
  else
    gemm_blocked(kr, nt, M, N, K, alpha, a, b, beta, C, ldc);
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
