// Drivers of the pointwise kernels: pick the SIMD loops of the active
// instruction set and split the work over the kernel threads.
#include "fastnn/pointwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/isa/pointwise_kernels.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"
#include "fastnn/pointwise_math.h"
#include "fastnn/runtime.h"

namespace fastnn {

namespace {

const PointwiseKernels& kernels() { return active_kernels<PointwiseKernels>(); }

// Elements one thread handles before a second is worth its start-up
// (a parallel region costs a few microseconds; these loops run at several
// elements per nanosecond).
constexpr int64_t kGrain = 32 * 1024;

int threads_for(int64_t work) {
  const int64_t useful = std::max<int64_t>(1, work / kGrain);
  return int(std::min<int64_t>(get_num_threads(), useful));
}

template <class F>
void split(int64_t n, const F& f) {
  parallel_for(n, threads_for(n), f);
}

// Rows are split whole; the grain counts elements.
template <class F>
void split_rows(int64_t rows, int64_t cols, const F& f) {
  parallel_for(rows, threads_for(rows * cols), f);
}

void unary(PointwiseKernels::Unary k, int64_t n, const float* x, float* y) {
  split(n, [&](int64_t b, int64_t e) { k(e - b, x + b, y + b); });
}

void unary_backward(PointwiseKernels::UnaryBackward k, int64_t n, const float* y,
                    const float* dy, float* dx) {
  split(n, [&](int64_t b, int64_t e) { k(e - b, y + b, dy + b, dx + b); });
}

void rows_op(PointwiseKernels::Rows k, int64_t rows, int64_t cols, const float* x, float* y) {
  split_rows(rows, cols, [&](int64_t b, int64_t e) { k(e - b, cols, x + b * cols, y + b * cols); });
}

void rows_backward(PointwiseKernels::RowsBackward k, int64_t rows, int64_t cols, const float* y,
                   const float* dy, float* dx) {
  split_rows(rows, cols, [&](int64_t b, int64_t e) {
    k(e - b, cols, y + b * cols, dy + b * cols, dx + b * cols);
  });
}

void check_labels(int64_t rows, int64_t cols, const int64_t* labels) {
  for (int64_t r = 0; r < rows; ++r)
    FASTNN_CHECK(labels[r] >= 0 && labels[r] < cols,
                 "cross_entropy: argument 'labels' must hold class indices in [0, ", cols,
                 "), got ", labels[r], " at position ", r);
}

}  // namespace

void relu_forward(int64_t n, const float* x, float* y) { unary(kernels().relu, n, x, y); }
void relu_backward(int64_t n, const float* y, const float* dy, float* dx) {
  unary_backward(kernels().relu_backward, n, y, dy, dx);
}
void sigmoid_forward(int64_t n, const float* x, float* y) { unary(kernels().sigmoid, n, x, y); }
void sigmoid_backward(int64_t n, const float* y, const float* dy, float* dx) {
  unary_backward(kernels().sigmoid_backward, n, y, dy, dx);
}
void tanh_forward(int64_t n, const float* x, float* y) { unary(kernels().tanh, n, x, y); }
void tanh_backward(int64_t n, const float* y, const float* dy, float* dx) {
  unary_backward(kernels().tanh_backward, n, y, dy, dx);
}

void activation_forward(Activation a, int64_t n, const float* x, float* y, float param) {
  const auto k = kernels().activation[int(a)];
  split(n, [&](int64_t b, int64_t e) { k(e - b, x + b, y + b, param); });
}
void activation_backward(Activation a, int64_t n, const float* x, const float* dy, float* dx,
                         float param) {
  const auto k = kernels().activation_backward[int(a)];
  split(n, [&](int64_t b, int64_t e) { k(e - b, x + b, dy + b, dx + b, param); });
}

void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
  rows_op(kernels().softmax, rows, cols, x, y);
}
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  rows_backward(kernels().softmax_backward, rows, cols, y, dy, dx);
}
void log_softmax_forward(int64_t rows, int64_t cols, const float* x, float* y) {
  rows_op(kernels().log_softmax, rows, cols, x, y);
}
void log_softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  rows_backward(kernels().log_softmax_backward, rows, cols, y, dy, dx);
}

double cross_entropy_forward(int64_t rows, int64_t cols, const float* logits,
                             const int64_t* labels, float* prob) {
  check_labels(rows, cols, labels);
  if (rows == 0) return std::nan("");
  std::vector<double> loss(size_t(rows), 0.0);
  const auto k = kernels().cross_entropy;
  split_rows(rows, cols, [&](int64_t b, int64_t e) {
    k(e - b, cols, logits + b * cols, labels + b, prob + b * cols, loss.data() + b);
  });
  double total = 0.0;  // in row order: the same sum for any thread count
  for (double l : loss) total += l;
  return total / double(rows);
}

void cross_entropy_backward(int64_t rows, int64_t cols, const float* prob, const int64_t* labels,
                            float scale, float* dx) {
  check_labels(rows, cols, labels);
  const auto k = kernels().cross_entropy_backward;
  split_rows(rows, cols, [&](int64_t b, int64_t e) {
    k(e - b, cols, prob + b * cols, labels + b, scale, dx + b * cols);
  });
}

void dropout(int64_t n, const float* x, float* y, float rate, uint64_t key) {
  FASTNN_CHECK(rate >= 0.0f && rate < 1.0f, "dropout: argument 'rate' must be in [0, 1), got ",
               rate);
  const uint32_t threshold = pointwise_math::dropout_threshold(rate);
  const float scale = pointwise_math::dropout_scale(rate);
  const auto k = kernels().dropout;
  // split in aligned blocks: see PointwiseKernels::dropout
  const int64_t blocks = (n + kDropoutAlign - 1) / kDropoutAlign;
  split(blocks * kDropoutAlign, [&](int64_t b, int64_t e) {
    const int64_t begin = b / kDropoutAlign * kDropoutAlign;
    const int64_t end = std::min(n, e / kDropoutAlign * kDropoutAlign);
    if (begin < end) k(begin, end, x, y, threshold, scale, key);
  });
}

void axpy(int64_t n, float alpha, const float* x, float* y) {
  const auto k = kernels().axpy;
  split(n, [&](int64_t b, int64_t e) { k(e - b, alpha, x + b, y + b); });
}

}  // namespace fastnn
