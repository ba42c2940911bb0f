// 2-D convolution on the GPU: NHWC float32 images, HWIO kernels, the same
// contracts as the CPU kernels (csrc/fastnn/conv2d.h) with the shapes from
// window2d() (csrc/fastnn/conv_shape.h).
//
// Every array is a C-order DeviceBuffer; all arguments must be on one
// device, where the results are allocated and the work is queued (legacy
// default stream, asynchronous), whichever device the caller has selected.
// Bad arguments throw std::invalid_argument naming the argument and the
// shapes; launch failures throw CudaError. Each output element is summed
// by one thread in a fixed order (no atomics): results repeat bit for bit.
// Like device_buffer.h, this header names no CUDA type.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "cuda/device_buffer.h"
#include "fastnn/check.h"
#include "fastnn/conv_shape.h"

namespace fastnn {
namespace cuda {

// Strides, padding ("valid", "same", or "explicit" with ph, pw cells on
// each side) and dilations, as the bindings take them.
struct Conv2dOptions {
  int64_t sh = 1, sw = 1;
  std::string padding = "valid";
  int64_t ph = 0, pw = 0;
  int64_t dh = 1, dw = 1;
};

// x: (N,H,W,C), w: (KH,KW,C,F), b: (F,) or nullptr -> y: (N,OH,OW,F).
// y = conv(x, w) + b, then max(y, 0) when relu (NaN passes).
DeviceBuffer conv2d(const DeviceBuffer& x, const DeviceBuffer& w, const DeviceBuffer* b,
                    const Conv2dOptions& o, bool relu);

// The gradients asked for; the others are empty.
struct Conv2dGrads {
  std::optional<DeviceBuffer> dx;  // (N,H,W,C)
  std::optional<DeviceBuffer> dw;  // (KH,KW,C,F)
  std::optional<DeviceBuffer> db;  // (F,)
};

// x: (N,H,W,C), w: (KH,KW,C,F), dy: (N,OH,OW,F), the forward's output shape.
Conv2dGrads conv2d_backward(const DeviceBuffer& x, const DeviceBuffer& w, const DeviceBuffer& dy,
                            const Conv2dOptions& o, bool need_dx, bool need_dw, bool need_db);

// A padding mode by name ("valid", "same", "explicit" with ph, pw); any
// other name throws naming fn.
inline PaddingSpec padding_spec(const std::string& mode, int64_t ph, int64_t pw, const char* fn) {
  if (mode == "valid") return {Padding::valid, 0, 0};
  if (mode == "same") return {Padding::same, 0, 0};
  FASTNN_CHECK(mode == "explicit", fn,
               ": argument 'padding' must be 'valid', 'same' or 'explicit', got '", mode, "'");
  return {Padding::explicit_, ph, pw};
}

}  // namespace cuda
}  // namespace fastnn
