// Pointwise and row-wise kernels on contiguous float32 buffers: activations,
// softmax, the fused softmax + cross-entropy, dropout, axpy. Each overwrites
// its output (which may be the input: in place is allowed) and runs on the
// SIMD path of fastnn::active_isa() with the kernel threads.
#pragma once
#include <cstdint>

#include "fastnn/pointwise_math.h"

namespace fastnn {

// x, y, dy, dx: (n,)
void relu_forward(int64_t n, const float* x, float* y);
void relu_backward(int64_t n, const float* y, const float* dy, float* dx);  // dx = dy * (y > 0)
void sigmoid_forward(int64_t n, const float* x, float* y);
void sigmoid_backward(int64_t n, const float* y, const float* dy, float* dx);  // dy * y * (1 - y)
void tanh_forward(int64_t n, const float* x, float* y);
void tanh_backward(int64_t n, const float* y, const float* dy, float* dx);  // dy * (1 - y^2)

// The activations of pointwise_math.h's list (elu, gelu, ...):
// y = f(x; param), and dx = dy * f'(x; param) through the input x.
using pointwise_math::Activation;
void activation_forward(Activation a, int64_t n, const float* x, float* y, float param);
void activation_backward(Activation a, int64_t n, const float* x, const float* dy, float* dx,
                         float param);

// Over the last axis of (rows, cols).
void softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
// dx = y * (dy - sum(dy * y)), y the forward output
void softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);
void log_softmax_forward(int64_t rows, int64_t cols, const float* x, float* y);
// dx = dy - exp(y) * sum(dy), y the forward output
void log_softmax_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx);

// logits: (rows, cols), labels: (rows,) in [0, cols), prob: (rows, cols).
// Returns the mean over rows of -log softmax(logits)[label] (summed in row
// order, whatever the thread count) and writes softmax(logits) to prob.
// Throws std::invalid_argument naming the first label out of range.
double cross_entropy_forward(int64_t rows, int64_t cols, const float* logits,
                             const int64_t* labels, float* prob);
// dx = scale * (prob - onehot(labels)); dx may be prob.
void cross_entropy_backward(int64_t rows, int64_t cols, const float* prob, const int64_t* labels,
                            float scale, float* dx);

// y = x * keep / (1 - rate), keep[i] drawn from (key, i) alone: the same
// key gives the same mask for any thread count, and applying it to dy with
// the forward's key is the backward. 0 <= rate < 1.
void dropout(int64_t n, const float* x, float* y, float rate, uint64_t key);

// y += alpha * x
void axpy(int64_t n, float alpha, const float* x, float* y);

}  // namespace fastnn
