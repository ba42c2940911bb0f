// The interface between the pointwise drivers (csrc/cpu/pointwise.cpp) and
// their SIMD loops, one set per instruction set (pointwise_<isa>.cpp). Each
// loop runs on one thread over the range it is given; the drivers split the
// work. Buffers are contiguous float32.
#pragma once
#include <cstdint>

#include "fastnn/pointwise_math.h"
#include "kernel_family.h"

namespace fastnn {

// Dropout ranges start at multiples of this (a multiple of every vector
// length and a divisor of 2^32).
constexpr int64_t kDropoutAlign = 64;

struct PointwiseKernels {
  // y = f(x) over n elements
  using Unary = void (*)(int64_t n, const float* x, float* y);
  // dx = dy * f'(x), written through the forward output y
  using UnaryBackward = void (*)(int64_t n, const float* y, const float* dy, float* dx);
  // over the last axis of (rows, cols)
  using Rows = void (*)(int64_t rows, int64_t cols, const float* x, float* y);
  using RowsBackward = void (*)(int64_t rows, int64_t cols, const float* y, const float* dy,
                                float* dx);

  Unary relu, sigmoid, tanh;
  UnaryBackward relu_backward, sigmoid_backward, tanh_backward;
  Rows softmax, log_softmax;
  RowsBackward softmax_backward, log_softmax_backward;
  // prob = softmax(logits), loss[r] = -log softmax(logits)[r, labels[r]]
  void (*cross_entropy)(int64_t rows, int64_t cols, const float* logits, const int64_t* labels,
                        float* prob, double* loss);
  void (*cross_entropy_backward)(int64_t rows, int64_t cols, const float* prob,
                                 const int64_t* labels, float scale, float* dx);
  // elements [begin, end) of the whole array: y[i] = x[i] * keep(key, i) * scale;
  // begin a multiple of kDropoutAlign
  void (*dropout)(int64_t begin, int64_t end, const float* x, float* y, uint32_t threshold,
                  float scale, uint64_t key);
  void (*axpy)(int64_t n, float alpha, const float* x, float* y);
  // The gradient through a ReLU for rows x cols, rows ld floats apart:
  // g = dy where y > 0, else 0 (g = dy when y is null; g rows ldg apart; g
  // may be dy itself when ldg == ld, or null: not written); sums[j] += the
  // column sums of g (when sums is not null), each summed in a fixed order
  // (row order, or for narrow rows stored back to back, by periods).
  void (*relu_mask_rows)(int64_t rows, int64_t cols, const float* y, const float* dy,
                         int64_t ld, float* g, int64_t ldg, float* sums);
  // A row of `windows` kh x kw max-pool windows at stride (kh, kw) over a
  // ReLU's output y, with F channels a cell: cell (a, b) of window i at
  // y + a * y_row + (i * kw + b) * F. p and dp: the windows' maxima and the
  // gradient of those (windows x F). The gradient through the pool and the
  // ReLU, g (cells g_cell floats apart, rows g_row apart): dp at each
  // window's first cell holding its maximum when that maximum is > 0, else
  // 0 (so NaN maxima pass nothing); sums[f] += those dp, window by window.
  void (*pool_relu_grad)(int64_t windows, int64_t kh, int64_t kw, int64_t F, const float* y,
                         int64_t y_row, const float* p, const float* dp, float* g,
                         int64_t g_cell, int64_t g_row, float* sums);
  // The same from the index of each window's first maximum (arg, windows x
  // F, 0 .. kh*kw-1 in row-major order) instead of y.
  void (*pool_arg_grad)(int64_t windows, int64_t kh, int64_t kw, int64_t F, const uint8_t* arg,
                        const float* p, const float* dp, float* g, int64_t g_cell, int64_t g_row,
                        float* sums);
  // Max pooling of `groups` windows of `cells` cells of F values each, cell
  // j of window i at src + i * stride + coff[j]: p (groups x F) the maxima
  // (NaN if any cell is NaN), arg the index of the first cell holding each
  // (of the first NaN).
  void (*max_pool_groups)(int64_t groups, int64_t cells, int64_t F, const float* src,
                          int64_t stride, const int64_t* coff, float* p, uint8_t* arg);

  // The activations of pointwise_math.h's list, indexed by Activation:
  // y = f(x; param) and dx = dy * f'(x; param), through the input x.
  using Activation = void (*)(int64_t n, const float* x, float* y, float param);
  using ActivationBackward = void (*)(int64_t n, const float* x, const float* dy, float* dx,
                                      float param);
  Activation activation[int(pointwise_math::Activation::count)];
  ActivationBackward activation_backward[int(pointwise_math::Activation::count)];
};

FASTNN_KERNEL_FAMILY(PointwiseKernels, pointwise)

}  // namespace fastnn
