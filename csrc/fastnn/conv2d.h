// 2-D convolution over NHWC images with HWIO kernels, forward and backward.
// Shapes come from window2d() (conv_shape.h). Every output is overwritten.
#pragma once
#include <cstdint>
#include <string>

#include "fastnn/conv_shape.h"

namespace fastnn {

// How a convolution is computed: direct (implicit GEMM, any window) or
// Winograd (3x3, stride 1, dilation 1 only; its tile size chosen, or forced
// to F(2x2,3x3) / F(4x4,3x3)); auto picks per shape and pass (or takes
// FASTNN_CONV_ALGORITHM when that is set).
enum class ConvAlgorithm { auto_, direct, winograd, winograd2, winograd4 };

// "auto" | "direct" | "winograd" | "winograd2" | "winograd4"; throws
// std::invalid_argument naming `what`.
ConvAlgorithm parse_conv_algorithm(const std::string& name, const char* what);

enum class ConvPass { forward, backward_data, backward_weight };

// What a pass of this convolution runs under `algo`: "direct", "winograd2"
// or "winograd4" (for benchmarks and tests).
const char* conv2d_plan(const Window2d& s, int64_t F, ConvPass pass, ConvAlgorithm algo);

// x: (N,H,W,C), w: (KH,KW,C,F), b: (F,) or nullptr, y: (N,OH,OW,F).
// y = conv(x, w) + b, then max(y, 0) when relu.
void conv2d_forward(const Window2d& s, int64_t F, const float* x, const float* w, const float* b,
                    bool relu, float* y, ConvAlgorithm algo = ConvAlgorithm::auto_);

// dy: (N,OH,OW,F), w: (KH,KW,C,F) -> dx: (N,H,W,C).
void conv2d_backward_data(const Window2d& s, int64_t F, const float* dy, const float* w,
                          float* dx, ConvAlgorithm algo = ConvAlgorithm::auto_);

// x: (N,H,W,C), dy: (N,OH,OW,F) -> dw: (KH,KW,C,F). The sums run in a fixed
// order: the same bits for any thread count.
void conv2d_backward_weight(const Window2d& s, int64_t F, const float* x, const float* dy,
                            float* dw, ConvAlgorithm algo = ConvAlgorithm::auto_);

// The whole backward: dx, dw and db (each nullptr when not wanted) for the
// output gradient dy. y: the forward's output when it fused a ReLU (else
// nullptr): dy is then masked by y > 0 first, in the same pass as db's sums.
void conv2d_backward(const Window2d& s, int64_t F, const float* x, const float* w,
                     const float* dy, const float* y, float* dx, float* dw, float* db,
                     ConvAlgorithm algo = ConvAlgorithm::auto_);

// A max pool of kh x kw windows at stride (kh, kw), without padding, on the
// output y of a convolution with a fused ReLU: p (N, OH/kh, OW/kw, F) its
// output, dp the gradient of p.
struct PoolGrad {
  int64_t kh, kw;
  const float* p;
  const float* dp;
  // when not null, the index of each window's first maximum
  // (conv2d_relu_pool_forward): y is then not read (and may be null)
  const uint8_t* arg = nullptr;
};
// conv2d_backward of the convolution, ReLU and pool together, from dp: the
// convolution's output gradient (each window's dp at its first maximum
// when that is > 0, else 0) is taken in one pass over y, and not written
// out at all when only dw and db are wanted on few input channels.
void conv2d_pool_backward(const Window2d& s, int64_t F, const float* x, const float* w,
                          const float* y, const PoolGrad& pool, float* dx, float* dw, float* db,
                          ConvAlgorithm algo = ConvAlgorithm::auto_);
// conv2d_forward with a fused ReLU followed by a max pool of kh x kw
// windows at stride (kh, kw) without padding: p (N, OH/kh, OW/kw, F) the
// pool's output, arg (the same shape) the index of each window's first
// maximum (row-major in the window; of the first NaN) for
// conv2d_pool_backward. On the direct path the convolution's output is
// pooled from the register tiles' scratch and never written out.
void conv2d_relu_pool_forward(const Window2d& s, int64_t F, const float* x, const float* w,
                              const float* b, int64_t kh, int64_t kw, float* p, uint8_t* arg,
                              ConvAlgorithm algo = ConvAlgorithm::auto_);
// Plain loops, for tests: the same contracts, one thread.
void conv2d_forward_reference(const Window2d& s, int64_t F, const float* x, const float* w,
                              const float* b, bool relu, float* y);

}  // namespace fastnn
