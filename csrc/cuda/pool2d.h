// Max and average pooling on the GPU over NHWC float32 images, the same
// contracts as the CPU kernels (csrc/fastnn/pool2d.h): windows (kh, kw),
// strides (sh, sw), padding "valid" or "same" (Keras; padded cells never
// count), dilation 1.
//
// x and dy are C-order DeviceBuffers on one device, where the result is
// allocated and the work queued (legacy default stream, asynchronous). The
// backward computes each dx element in one thread, adding the windows that
// cover it in row-major order (no atomics): results repeat bit for bit.
// Bad arguments throw std::invalid_argument naming the argument and the
// shapes; launch failures throw CudaError. Names no CUDA type.
#pragma once
#include <cstdint>
#include <string>

#include "cuda/device_buffer.h"

namespace fastnn {
namespace cuda {

// x: (N,H,W,C) -> y: (N,OH,OW,C), each window's maximum; NaN counts as
// the largest value.
DeviceBuffer max_pool2d(const DeviceBuffer& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        const std::string& padding);
// dy: (N,OH,OW,C) -> dx: (N,H,W,C); each window's gradient goes to its first
// maximum in row-major window order (a NaN maximum: its first NaN), summed
// where windows overlap.
DeviceBuffer max_pool2d_backward(const DeviceBuffer& x, const DeviceBuffer& dy, int64_t kh,
                                 int64_t kw, int64_t sh, int64_t sw, const std::string& padding);

// The mean of the real (unpadded) cells under each window, as Keras.
DeviceBuffer avg_pool2d(const DeviceBuffer& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        const std::string& padding);
// dx: each window's gradient spread evenly over its real cells, summed. x
// is read for its shape only.
DeviceBuffer avg_pool2d_backward(const DeviceBuffer& x, const DeviceBuffer& dy, int64_t kh,
                                 int64_t kw, int64_t sh, int64_t sw, const std::string& padding);

}  // namespace cuda
}  // namespace fastnn
