// The interface between the Winograd convolution (csrc/cpu/winograd.cpp)
// and its SIMD transforms, one set per instruction set
// (winograd_<isa>.cpp). Each transform works on one tile, vectorised over
// the channels. Index 0 of each array is F(2x2,3x3) (4x4 tiles), index 1 is
// F(4x4,3x3) (6x6 tiles); cells are numbered row-major in a tile.
#pragma once
#include <cstdint>

#include "kernel_family.h"

namespace fastnn {

struct WinogradKernels {
  // v[xi * vs + c] = (B^T d B)[xi] for c < C, where cell i of the
  // (m+2) x (m+2) input tile d is the run of C floats at d[i] (a run of
  // zeros for cells outside the image).
  void (*input[2])(int64_t C, const float* const* d, float* v, int64_t vs);
  // Cell i of the m x m output tile, y[i][0:F] = (A^T M A)[i] + bias, then
  // max(., 0) when relu, where M[xi] is the run of F floats at mm + xi * ms
  // (bias nullptr: none; cells outside the image point at a scratch run).
  void (*output[2])(int64_t F, const float* mm, int64_t ms, const float* bias, bool relu,
                    float* const* y);
  // v[xi * vs + f] = (A g A^T)[xi] for the m x m tile of output gradients
  // g (cell i at g[i], F floats): the weight gradient's second operand.
  void (*gradient[2])(int64_t F, const float* const* g, float* v, int64_t vs);
  // u[xi * us + f] = (G w G^T)[xi] for the 3x3 filters w (tap i at w[i],
  // F outputs).
  void (*filter[2])(int64_t F, const float* const* w, float* u, int64_t us);
  // dw[i * dws + e] = (G^T S G)[i] for e < n, the 3x3 filter gradient from
  // its transform S (cell xi at s[xi]).
  void (*filter_gradient[2])(int64_t n, const float* const* s, float* dw, int64_t dws);
};

FASTNN_KERNEL_FAMILY(WinogradKernels, winograd)

}  // namespace fastnn
