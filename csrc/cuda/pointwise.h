// Array-level kernels on the GPU for the autograd layer: elementwise maths
// with NumPy broadcasting, reductions, layout copies, the row-wise softmax
// family, the fused cross-entropy and dropout. The CPU versions of the
// shared ones are in csrc/fastnn/pointwise.h; the formulas are the same.
//
// Every array is a C-order float32 DeviceBuffer. A function that returns a
// DeviceBuffer allocates it on its inputs' device (all inputs must be on
// one device) and never writes its inputs; fill and axpy work in place.
// Work is queued on the legacy default stream (asynchronous) on the inputs'
// device, whichever device the caller has selected. Bad arguments throw
// std::invalid_argument naming the argument and the shapes; launch failures
// throw CudaError. Like device_buffer.h, this header names no CUDA type.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "fastnn/pointwise_math.h"

namespace fastnn {
namespace cuda {

enum class UnaryOp { neg, exp, log, sqrt, relu, sigmoid, tanh, abs };
// The comparisons give 1.0 for true, 0.0 for false.
enum class BinaryOp { add, sub, mul, div, pow, maximum, minimum, eq, gt, ge, lt, le };

// The ops by their Python names; an unknown name throws std::invalid_argument
// listing the known ones.
UnaryOp unary_op(const std::string& name);
// relu, sigmoid, tanh, exp, sqrt: those whose derivative is a function of
// their output.
UnaryOp unary_backward_op(const std::string& name);
BinaryOp binary_op(const std::string& name);
// x op s: add, sub, mul, div, pow, maximum, minimum; rsub, rdiv, rpow give
// s op x (`reversed`).
struct ScalarOp {
  BinaryOp op;
  bool reversed;
};
ScalarOp scalar_op(const std::string& name);

// y = f(x), any shape.
DeviceBuffer unary(UnaryOp op, const DeviceBuffer& x);
// dx = dy * f'(x) through the forward output y: relu dy*(y>0), sigmoid
// dy*y*(1-y), tanh dy*(1-y^2), exp dy*y, sqrt dy*0.5/y. y, dy: same shape.
DeviceBuffer unary_backward(UnaryOp op, const DeviceBuffer& y, const DeviceBuffer& dy);
// The activations of fastnn/pointwise_math.h's list: y = f(x; param), and
// dx = dy * f'(x; param) through the input x (x, dy: same shape).
using pointwise_math::Activation;
DeviceBuffer activation(Activation a, const DeviceBuffer& x, float param);
DeviceBuffer activation_backward(Activation a, const DeviceBuffer& x, const DeviceBuffer& dy,
                                 float param);
// a op b with NumPy broadcasting; the result has the broadcast shape.
DeviceBuffer binary(BinaryOp op, const DeviceBuffer& a, const DeviceBuffer& b);
// x op s (s op x when op.reversed), x's shape.
DeviceBuffer scalar(ScalarOp op, const DeviceBuffer& x, float s);

// Sum / max over `axes` (sorted, distinct, in [0, ndim)); the reduced axes
// are dropped, or kept as extent 1 with keepdims. No axes: a copy. Each
// output is reduced in an order fixed by the shapes alone, so the results
// repeat bit for bit. max over an axis of extent 0 throws, as in NumPy; max
// propagates NaN.
DeviceBuffer reduce_sum(const DeviceBuffer& x, const std::vector<int64_t>& axes, bool keepdims);
DeviceBuffer reduce_max(const DeviceBuffer& x, const std::vector<int64_t>& axes, bool keepdims);

// x repeated to `shape` by NumPy's broadcast_to rules, materialised.
DeviceBuffer broadcast_to(const DeviceBuffer& x, const std::vector<int64_t>& shape);
// out.shape[i] = x.shape[axes[i]], materialised; axes a permutation of
// 0 .. ndim-1.
DeviceBuffer permute(const DeviceBuffer& x, const std::vector<int64_t>& axes);
DeviceBuffer copy(const DeviceBuffer& x);
// x's values in a new array of `shape` (the same number of elements; no -1).
DeviceBuffer reshape(const DeviceBuffer& x, const std::vector<int64_t>& shape);
// In place: every element of x = value.
void fill(DeviceBuffer& x, float value);
// In place: y += alpha * x; x and y of the same shape (they may be one array).
void axpy(float alpha, const DeviceBuffer& x, DeviceBuffer& y);

// Over the last axis of x (at least 1-D); numerically stable (the row's
// maximum is subtracted first).
DeviceBuffer softmax(const DeviceBuffer& x);
DeviceBuffer log_softmax(const DeviceBuffer& x);
// y the forward output: dx = y * (dy - sum(dy * y))
DeviceBuffer softmax_backward(const DeviceBuffer& y, const DeviceBuffer& dy);
// y the forward output: dx = dy - exp(y) * sum(dy)
DeviceBuffer log_softmax_backward(const DeviceBuffer& y, const DeviceBuffer& dy);

// logits: (N, C); labels: N class indices on the host, each in [0, C)
// (checked first: std::invalid_argument names the first bad one).
struct CrossEntropyResult {
  double loss;        // mean over rows of -log softmax(logits)[label], the rows' losses
                      // summed in double in a fixed order; NaN for N == 0
  DeviceBuffer prob;  // softmax(logits), (N, C)
};
CrossEntropyResult cross_entropy(const DeviceBuffer& logits, const int64_t* labels,
                                 int64_t n_labels);
// dx = scale * (prob - onehot(labels)); prob: (N, C), labels as above.
DeviceBuffer cross_entropy_backward(const DeviceBuffer& prob, const int64_t* labels,
                                    int64_t n_labels, float scale);

// y = x * keep / (1 - rate), keep drawn from (key, element index) alone by
// the CPU kernel's hash (fastnn/pointwise_math.h): the same mask as
// fastnn::dropout for the same key. 0 <= rate < 1.
DeviceBuffer dropout(const DeviceBuffer& x, float rate, uint64_t key);

}  // namespace cuda
}  // namespace fastnn
