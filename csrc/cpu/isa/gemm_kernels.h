// The interface between the GEMM driver (csrc/cpu/gemm.cpp) and the SIMD
// microkernels, one set per instruction set (gemm_generic/avx2/avx512.cpp).
//
// Matrices are addressed by strides so one kernel serves all four transpose
// combinations: element (i, k) of op(A) is a[i*rs + k*cs].
#pragma once
#include <cstdint>

#include "kernel_family.h"

namespace fastnn {

struct GemmKernels {
  const char* name;
  int mr, nr;      // register tile: mr rows of C by nr columns (nr in vector lanes)
  int kc, nc;      // cache blocking: packed blocks of B are kc x nc

  // Packs rows [0, m) (m <= mr), k in [0, kc) of op(A) into one micro-panel
  // ap[k*mr + i], rows m..mr-1 zero.
  void (*pack_a)(int64_t m, int64_t kc, const float* a, int64_t rs, int64_t cs, float* ap);

  // Packs columns [0, n), k in [0, kc) of op(B) into ceil(n/nr) micro-panels
  // bp[p*kc*nr + k*nr + j], columns past n zero.
  void (*pack_b)(int64_t kc, int64_t n, const float* b, int64_t rs, int64_t cs, float* bp);

  // One register tile, C[0:m, 0:n] = alpha * A B + beta * C (C is not read
  // when beta == 0), m <= mr, n <= nr.
  // B row k is b + k*b_rs and must hold nr readable floats (padded panels or
  // full columns). A is a packed micro-panel (tile_packed) or read in place
  // through strides (tile_strided), rows [0, m) only.
  void (*tile_packed)(int64_t kc, const float* ap, const float* b, int64_t b_rs, float* c,
                      int64_t ldc, int64_t m, int64_t n, float alpha, float beta);
  void (*tile_strided)(int64_t kc, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                       int64_t b_rs, float* c, int64_t ldc, int64_t m, int64_t n, float alpha,
                       float beta);
  // The same with A's element (i, k) at a[roff[i] + koff[k]]: a convolution
  // reading the windows of MR output pixels straight from its image. Its
  // epilogue, fused into the write of C: then + bias[j] (when bias is not
  // null; n readable floats), then max(., 0) when relu.
  void (*tile_indexed)(int64_t kc, const float* a, const int64_t* roff, const int64_t* koff,
                       const float* b, int64_t b_rs, float* c, int64_t ldc, int64_t m, int64_t n,
                       float alpha, float beta, const float* bias, bool relu);

  // The same with A's element (i, k) at a[roff[i] + k*a_cs]: rows at any
  // offsets, such as the taps of a convolution's window along a row of pixels.
  void (*tile_row_indexed)(int64_t kc, const float* a, const int64_t* roff, int64_t a_cs,
                           const float* b, int64_t b_rs, float* c, int64_t ldc, int64_t m,
                           int64_t n, float alpha, float beta);

  // Narrow tiles as dot products along K (K in the vector lanes):
  // C[i, j] for i < m <= dr, j < n <= dc, rows of A at a + i*lda and rows of
  // B^T at bt + j*ldbt, both contiguous along k.
  int dr, dc;
  // op(B) (K x n) transposed into bt (n x K) for tile_dot.
  void (*pack_bt)(int64_t K, int64_t n, const float* b, int64_t rs, int64_t cs, float* bt);
  void (*tile_dot)(int64_t K, const float* a, int64_t lda, const float* bt, int64_t ldbt,
                   float* c, int64_t ldc, int64_t m, int64_t n, float alpha, float beta);

  // A loop of independent FMAs at this width, for measuring the peak:
  // returns the FLOPs it did.
  double (*fma_probe)(int64_t iters, float* sink);
};

FASTNN_KERNEL_FAMILY(GemmKernels, gemm)
// The active set: for kernels built on the GEMM microkernels, such as the
// convolutions.
const GemmKernels& gemm_kernels_active();

}  // namespace fastnn
