// Max and average pooling on the GPU (see pool2d.h). One thread per output
// element in the forward, per input element in the backward, channels
// fastest so that a warp reads contiguous memory.
//
// The backward gathers instead of scattering: an input cell loops over the
// windows that cover it (row-major) and adds what each sends it. A max
// window sends its gradient to its first maximum, so the cell rescans each
// covering window to find that maximum: more reads than an argmax saved by
// the forward, but no extra memory and no atomics, and a window overlaps
// only ceil(k / stride) others per axis.
//
// The window walks and the maths are the CPU kernels' (csrc/cpu/pool2d.cpp):
// forward results match them bit for bit; the backward adds the same terms,
// possibly in another order.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/conv2d.h"
#include "cuda/pool2d.h"
#include "fastnn/check.h"

namespace fastnn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

// Shapes on the device; ph, pw: the padding before (top, left).
struct Geometry {
  int64_t n, h, w, c;
  int64_t kh, kw, sh, sw, ph, pw, oh, ow;
};

// The real (unpadded) input cells [begin, end) under output o's window
// along one axis, as the CPU's window_span.
struct Span {
  int64_t begin, end;
};

__device__ __forceinline__ Span window_span(int64_t o, int64_t stride, int64_t pad, int64_t k,
                                            int64_t in) {
  const int64_t start = o * stride - pad;
  const int64_t end = in - start < k ? in : start + k;
  return {start > 0 ? start : 0, end > 0 ? end : 0};
}

// The outputs [lo, hi] whose windows cover input cell i along one axis
// (empty when lo > hi).
__device__ __forceinline__ void covering(int64_t i, int64_t stride, int64_t pad, int64_t k,
                                         int64_t out, int64_t& lo, int64_t& hi) {
  const int64_t t = i + pad;  // i in window o  <=>  o*stride <= t < o*stride + k
  lo = t - k + 1 <= 0 ? 0 : (t - k + 1 + stride - 1) / stride;
  hi = min(t / stride, out - 1);
}

// (image, row, column, channel) of element i of an (N, rows, cols, C) array
struct Cell {
  int64_t n, y, x, c;
};

__device__ __forceinline__ Cell cell_of(int64_t i, int64_t rows, int64_t cols, int64_t c) {
  const int64_t ch = i % c, pix = i / c;
  return {pix / (rows * cols), pix % (rows * cols) / cols, pix % cols, ch};
}

// The maximum of output o's window, as the CPU: NaN counts as the largest
// (the last NaN's bits), -inf for an empty window.
__device__ __forceinline__ float window_max(const Geometry& g, const float* __restrict__ image,
                                            Span hs, Span ws, int64_t c) {
  float m = -INFINITY;
  for (int64_t ih = hs.begin; ih < hs.end; ++ih)
    for (int64_t iw = ws.begin; iw < ws.end; ++iw) {
      const float v = __ldg(image + (ih * g.w + iw) * g.c + c);
      const float larger = v > m ? v : m;
      m = v != v ? v : larger;
    }
  return m;
}

// x: (N,H,W,C) -> y: (N,OH,OW,C)
__global__ void max_pool_forward_kernel(Geometry g, const float* __restrict__ x,
                                        float* __restrict__ y) {
  const int64_t total = g.n * g.oh * g.ow * g.c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Cell o = cell_of(i, g.oh, g.ow, g.c);
    const Span hs = window_span(o.y, g.sh, g.ph, g.kh, g.h);
    const Span ws = window_span(o.x, g.sw, g.pw, g.kw, g.w);
    y[i] = window_max(g, x + o.n * g.h * g.w * g.c, hs, ws, o.c);
  }
}

// x: (N,H,W,C), dy: (N,OH,OW,C) -> dx: (N,H,W,C)
__global__ void max_pool_backward_kernel(Geometry g, const float* __restrict__ x,
                                         const float* __restrict__ dy, float* __restrict__ dx) {
  const int64_t total = g.n * g.h * g.w * g.c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Cell q = cell_of(i, g.h, g.w, g.c);
    const float* image = x + q.n * g.h * g.w * g.c;
    const float* dimage = dy + q.n * g.oh * g.ow * g.c;
    int64_t oh0, oh1, ow0, ow1;
    covering(q.y, g.sh, g.ph, g.kh, g.oh, oh0, oh1);
    covering(q.x, g.sw, g.pw, g.kw, g.ow, ow0, ow1);
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const Span hs = window_span(oh, g.sh, g.ph, g.kh, g.h);
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const Span ws = window_span(ow, g.sw, g.pw, g.kw, g.w);
        // the window's first cell holding its maximum (a NaN maximum: its
        // first NaN; no cell is NaN when the maximum is not)
        const float m = window_max(g, image, hs, ws, q.c);
        bool mine = false;
        for (int64_t ih = hs.begin; ih < hs.end; ++ih) {
          int64_t iw = ws.begin;
          for (; iw < ws.end; ++iw) {
            const float v = __ldg(image + (ih * g.w + iw) * g.c + q.c);
            if (v == m || v != v) break;
          }
          if (iw < ws.end) {
            mine = ih == q.y && iw == q.x;
            break;
          }
        }
        if (mine) sum += __ldg(dimage + (oh * g.ow + ow) * g.c + q.c);
      }
    }
    dx[i] = sum;
  }
}

// The real cells under a window, at least 1 (an empty window gives 0).
__device__ __forceinline__ float cell_count(Span hs, Span ws) {
  const int64_t n = (hs.end - hs.begin) * (ws.end - ws.begin);
  return float(n > 1 ? n : 1);
}

// x: (N,H,W,C) -> y: (N,OH,OW,C), the sum in row-major order over the count
__global__ void avg_pool_forward_kernel(Geometry g, const float* __restrict__ x,
                                        float* __restrict__ y) {
  const int64_t total = g.n * g.oh * g.ow * g.c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Cell o = cell_of(i, g.oh, g.ow, g.c);
    const Span hs = window_span(o.y, g.sh, g.ph, g.kh, g.h);
    const Span ws = window_span(o.x, g.sw, g.pw, g.kw, g.w);
    const float* image = x + o.n * g.h * g.w * g.c;
    float acc = 0.0f;
    for (int64_t ih = hs.begin; ih < hs.end; ++ih)
      for (int64_t iw = ws.begin; iw < ws.end; ++iw)
        acc += __ldg(image + (ih * g.w + iw) * g.c + o.c);
    y[i] = acc / cell_count(hs, ws);
  }
}

// dy: (N,OH,OW,C) -> dx: (N,H,W,C), each covering window's dy / count
__global__ void avg_pool_backward_kernel(Geometry g, const float* __restrict__ dy,
                                         float* __restrict__ dx) {
  const int64_t total = g.n * g.h * g.w * g.c;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const Cell q = cell_of(i, g.h, g.w, g.c);
    const float* dimage = dy + q.n * g.oh * g.ow * g.c;
    int64_t oh0, oh1, ow0, ow1;
    covering(q.y, g.sh, g.ph, g.kh, g.oh, oh0, oh1);
    covering(q.x, g.sw, g.pw, g.kw, g.ow, ow0, ow1);
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh) {
      const Span hs = window_span(oh, g.sh, g.ph, g.kh, g.h);
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        const Span ws = window_span(ow, g.sw, g.pw, g.kw, g.w);
        sum += __ldg(dimage + (oh * g.ow + ow) * g.c + q.c) / cell_count(hs, ws);
      }
    }
    dx[i] = sum;
  }
}

unsigned blocks_for(int64_t n) {
  return unsigned(std::min<int64_t>((n + kThreads - 1) / kThreads, kMaxBlocks));
}

void check_launch(const char* fn) {
  check(cudaGetLastError(), str_cat(fn, ": kernel launch").c_str());
}

// The window of a pool over x (N, H, W, C); throws naming fn.
Geometry pool_geometry(const DeviceBuffer& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                       const std::string& padding, const char* fn) {
  const std::vector<int64_t>& xs = x.shape();
  FASTNN_CHECK(x.ndim() == 4, fn, ": argument 'x' must be 4-D (N, H, W, C), got shape ",
               shape_str(xs));
  FASTNN_CHECK(padding == "valid" || padding == "same", fn,
               ": argument 'padding' must be 'valid' or 'same' for a pool, got '", padding, "'");
  Window2d s;
  try {
    s = window2d(xs[0], xs[1], xs[2], xs[3], kh, kw, sh, sw, 1, 1,
                 padding_spec(padding, 0, 0, fn), fn);
  } catch (const std::invalid_argument& e) {  // say which shapes
    throw std::invalid_argument(str_cat(e.what(), " ('x' of shape ", shape_str(xs), ", pool (",
                                        kh, ", ", kw, "))"));
  }
  return {s.n, s.h.in, s.w.in, s.c, s.h.k, s.w.k, s.h.stride, s.w.stride,
          s.h.pad_before, s.w.pad_before, s.h.out, s.w.out};
}

std::vector<int64_t> output_shape(const Geometry& g) { return {g.n, g.oh, g.ow, g.c}; }

// dy must have the forward's output shape, on x's device.
void check_dy(const DeviceBuffer& x, const DeviceBuffer& dy, const Geometry& g, const char* fn) {
  FASTNN_CHECK(dy.shape() == output_shape(g), fn,
               ": argument 'dy' must have the forward's output shape ",
               shape_str(output_shape(g)), " for 'x' of shape ", shape_str(x.shape()), ", got ",
               shape_str(dy.shape()));
  FASTNN_CHECK(dy.device() == x.device(), fn,
               ": arguments 'x' and 'dy' are on different devices (cuda:", x.device(),
               " and cuda:", dy.device(), ")");
}

using ForwardKernel = void (*)(Geometry, const float*, float*);

DeviceBuffer pool_forward(ForwardKernel kernel, const DeviceBuffer& x, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, const std::string& padding, const char* fn) {
  const Geometry g = pool_geometry(x, kh, kw, sh, sw, padding, fn);
  DeviceGuard guard(x.device());
  DeviceBuffer y(output_shape(g));
  if (y.numel() == 0) return y;
  kernel<<<blocks_for(y.numel()), kThreads, 0, cudaStreamLegacy>>>(g, x.data(), y.data());
  check_launch(fn);
  return y;
}

}  // namespace

DeviceBuffer max_pool2d(const DeviceBuffer& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        const std::string& padding) {
  return pool_forward(max_pool_forward_kernel, x, kh, kw, sh, sw, padding, "max_pool2d");
}

DeviceBuffer avg_pool2d(const DeviceBuffer& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        const std::string& padding) {
  return pool_forward(avg_pool_forward_kernel, x, kh, kw, sh, sw, padding, "avg_pool2d");
}

DeviceBuffer max_pool2d_backward(const DeviceBuffer& x, const DeviceBuffer& dy, int64_t kh,
                                 int64_t kw, int64_t sh, int64_t sw, const std::string& padding) {
  const char* fn = "max_pool2d_backward";
  const Geometry g = pool_geometry(x, kh, kw, sh, sw, padding, fn);
  check_dy(x, dy, g, fn);
  DeviceGuard guard(x.device());
  DeviceBuffer dx(x.shape());
  if (dx.numel() == 0) return dx;
  max_pool_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, cudaStreamLegacy>>>(
      g, x.data(), dy.data(), dx.data());
  check_launch(fn);
  return dx;
}

DeviceBuffer avg_pool2d_backward(const DeviceBuffer& x, const DeviceBuffer& dy, int64_t kh,
                                 int64_t kw, int64_t sh, int64_t sw, const std::string& padding) {
  const char* fn = "avg_pool2d_backward";
  const Geometry g = pool_geometry(x, kh, kw, sh, sw, padding, fn);
  check_dy(x, dy, g, fn);
  DeviceGuard guard(x.device());
  DeviceBuffer dx(x.shape());
  if (dx.numel() == 0) return dx;
  avg_pool_backward_kernel<<<blocks_for(dx.numel()), kThreads, 0, cudaStreamLegacy>>>(
      g, dy.data(), dx.data());
  check_launch(fn);
  return dx;
}

}  // namespace cuda
}  // namespace fastnn
