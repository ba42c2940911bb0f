// 2-D convolution on the GPU (see conv2d.h) as implicit GEMMs: no im2col
// matrix is built; each block gathers the slices of it that it needs
// straight into shared memory, zero where a window hangs over the padding.
//
//   forward       y (P x F)  = im2col(x) (P x K) . w (K x F)      P = N*OH*OW, K = KH*KW*C
//   backward-data dx (Q x C) = gather(dy) (Q x Kd) . wt (Kd x C)  Q = N*H*W,   Kd = KH*KW*F
//   backward-wt.  dw (K x F) = im2col(x)^T (K x P) . dy (P x F)
//   bias          db (F)     = column sums of dy (reduce_sum, pointwise.h)
//
// All three share one block shape: 256 threads compute a 64 x 64 tile of
// the product, 4 x 4 values each, walking the reduction in slices of 16
// staged in shared memory (k-major). Every output element is one thread's
// fmaf chain over the reduction in ascending order. The weight gradient
// reduces over all pixels, usually few outputs from many terms: the pixels
// are split into chunks fixed by the shapes alone, each chunk's partial
// tile is written out, and a second kernel adds the partials in chunk
// order. So no atomics anywhere, and the bits never depend on scheduling.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <vector>

#include "cuda/conv2d.h"
#include "cuda/pointwise.h"
#include "fastnn/check.h"

namespace fastnn {
namespace cuda {

namespace {

constexpr int kBM = 64, kBN = 64;  // tile of the product: rows x columns
constexpr int kBK = 16;            // reduction slice staged in shared memory
constexpr int kThreads = 256;      // 16 x 16 threads, 4 x 4 outputs each
constexpr int kGridYMax = 65535;   // CUDA's limit on gridDim.y and gridDim.z

// Shapes on the device. Fields of Window2d, flattened; pad_* are the
// paddings before (top, left).
struct Geometry {
  int64_t n, h, w, c, f;
  int64_t kh, kw, sh, sw, dh, dw, ph, pw, oh, ow;
};

Geometry geometry(const Window2d& s, int64_t F) {
  return {s.n,          s.h.in,          s.w.in,          s.c,        F,
          s.h.k,        s.w.k,           s.h.stride,      s.w.stride, s.h.dilation,
          s.w.dilation, s.h.pad_before,  s.w.pad_before,  s.h.out,    s.w.out};
}

// The shared operand tiles, k-major; rows padded by a float so that the
// transposing stores (s[k][x] with k varying across a warp) spread over
// the banks.
struct Tiles {
  float a[kBK][kBM + 1];
  float b[kBK][kBN + 1];
};

// acc[i][j] += sum over the slice of a[k][ty + 16 i] * b[k][tx + 16 j]
__device__ __forceinline__ void multiply_tiles(const Tiles& t, float (&acc)[4][4], int ty,
                                               int tx) {
#pragma unroll
  for (int k = 0; k < kBK; ++k) {
    float a[4], b[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) a[i] = t.a[k][ty + 16 * i];
#pragma unroll
    for (int j = 0; j < 4; ++j) b[j] = t.b[k][tx + 16 * j];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// The output index along one axis whose window tap kk covers input cell i,
// or -1 (padding, or a stride stepping over i).
__device__ __forceinline__ int64_t source(int64_t i, int64_t pad, int64_t kk, int64_t dilation,
                                          int64_t stride, int64_t out) {
  const int64_t num = i + pad - kk * dilation;
  if (num < 0 || num % stride != 0) return -1;
  const int64_t o = num / stride;
  return o < out ? o : -1;
}

// Forward. Tile rows: output pixels p; columns: filters f; reduction over
// k = (tap, c). Grid: (ceil(P / 64), ceil(F / 64)).
// x: (N,H,W,C), w: (KH,KW,C,F), b: (F,) or null -> y: (N,OH,OW,F)
__global__ void __launch_bounds__(kThreads)
conv_forward_kernel(Geometry g, const float* __restrict__ x, const float* __restrict__ w,
                    const float* __restrict__ b, bool relu, float* __restrict__ y) {
  __shared__ Tiles t;
  __shared__ int64_t row_image[kBM];  // offset of pixel m's image in x; -1 past the end
  __shared__ int64_t row_ih[kBM], row_iw[kBM];  // its window's top-left cell
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c;
  const int64_t m0 = int64_t(blockIdx.x) * kBM, n0 = int64_t(blockIdx.y) * kBN;
  if (tid < kBM) {
    const int64_t p = m0 + tid;
    row_image[tid] = -1;
    if (p < P) {
      const int64_t img = p / (g.oh * g.ow), r = p % (g.oh * g.ow);
      row_image[tid] = img * g.h * g.w * g.c;
      row_ih[tid] = r / g.ow * g.sh - g.ph;
      row_iw[tid] = r % g.ow * g.sw - g.pw;
    }
  }
  __syncthreads();
  // A: this thread loads column ka of rows ma + 16 i; B: row kb + 4 i of column nb
  const int ka = tid % kBK, ma = tid / kBK;
  const int nb = tid % kBN, kb = tid / kBN;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    const int64_t k = k0 + ka;
    if (k < K) {
      const int64_t c = k % g.c, tap = k / g.c;
      const int64_t off_h = tap / g.kw * g.dh, off_w = tap % g.kw * g.dw;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = ma + 16 * i;
        float v = 0.0f;
        if (row_image[m] >= 0) {
          const int64_t ih = row_ih[m] + off_h, iw = row_iw[m] + off_w;
          if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
            v = __ldg(x + row_image[m] + (ih * g.w + iw) * g.c + c);
        }
        t.a[ka][m] = v;
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) t.a[ka][ma + 16 * i] = 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t kk = k0 + kb + 4 * i, f = n0 + nb;
      t.b[kb + 4 * i][nb] = kk < K && f < g.f ? __ldg(w + kk * g.f + f) : 0.0f;
    }
    __syncthreads();
    multiply_tiles(t, acc, ty, tx);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t p = m0 + ty + 16 * i;
    if (p >= P) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t f = n0 + tx + 16 * j;
      if (f >= g.f) continue;
      float v = acc[i][j];
      if (b) v += b[f];
      y[p * g.f + f] = relu && v < 0.0f ? 0.0f : v;
    }
  }
}

// Backward-data. Tile rows: input pixels q; columns: input channels c;
// reduction over k = (tap, f): dy of the output pixel whose window put the
// tap on q (zero when none did) times w[tap, c, f]. Grid: (ceil(Q / 64),
// ceil(C / 64)).
// dy: (N,OH,OW,F), w: (KH,KW,C,F) -> dx: (N,H,W,C)
__global__ void __launch_bounds__(kThreads)
conv_backward_data_kernel(Geometry g, const float* __restrict__ dy, const float* __restrict__ w,
                          float* __restrict__ dx) {
  __shared__ Tiles t;
  __shared__ int64_t row_image[kBM];  // offset of pixel m's image in dy; -1 past the end
  __shared__ int64_t row_ih[kBM], row_iw[kBM];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t Q = g.n * g.h * g.w, K = g.kh * g.kw * g.f;
  const int64_t m0 = int64_t(blockIdx.x) * kBM, n0 = int64_t(blockIdx.y) * kBN;
  if (tid < kBM) {
    const int64_t q = m0 + tid;
    row_image[tid] = -1;
    if (q < Q) {
      const int64_t img = q / (g.h * g.w), r = q % (g.h * g.w);
      row_image[tid] = img * g.oh * g.ow * g.f;
      row_ih[tid] = r / g.w;
      row_iw[tid] = r % g.w;
    }
  }
  __syncthreads();
  // this thread loads column ka of A's rows ma + 16 i and row ka of B's
  // columns ma + 16 i: both are (tap, f) = ka, contiguous in f
  const int ka = tid % kBK, ma = tid / kBK;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    const int64_t k = k0 + ka;
    if (k < K) {
      const int64_t f = k % g.f, tap = k / g.f, th = tap / g.kw, tw = tap % g.kw;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int m = ma + 16 * i;
        float v = 0.0f;
        if (row_image[m] >= 0) {
          const int64_t oh = source(row_ih[m], g.ph, th, g.dh, g.sh, g.oh);
          const int64_t ow = source(row_iw[m], g.pw, tw, g.dw, g.sw, g.ow);
          if (oh >= 0 && ow >= 0) v = __ldg(dy + row_image[m] + (oh * g.ow + ow) * g.f + f);
        }
        t.a[ka][m] = v;
        const int64_t c = n0 + m;
        t.b[ka][m] = c < g.c ? __ldg(w + (tap * g.c + c) * g.f + f) : 0.0f;
      }
    } else {
#pragma unroll
      for (int i = 0; i < 4; ++i) t.a[ka][ma + 16 * i] = t.b[ka][ma + 16 * i] = 0.0f;
    }
    __syncthreads();
    multiply_tiles(t, acc, ty, tx);
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t q = m0 + ty + 16 * i;
    if (q >= Q) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = n0 + tx + 16 * j;
      if (c < g.c) dx[q * g.c + c] = acc[i][j];
    }
  }
}

// Backward-weight, one chunk of pixels per blockIdx.z. Tile rows: k =
// (tap, c); columns: filters f; reduction over the chunk's pixels p in
// ascending order. Writes out[z] (K x F): dw itself when there is one chunk.
// Grid: (ceil(K / 64), ceil(F / 64), chunks).
// x: (N,H,W,C), dy: (N,OH,OW,F) -> out: (chunks, KH*KW*C, F)
__global__ void __launch_bounds__(kThreads)
conv_backward_weight_kernel(Geometry g, const float* __restrict__ x, const float* __restrict__ dy,
                            int64_t chunk, float* __restrict__ out) {
  __shared__ Tiles t;
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c;
  const int64_t m0 = int64_t(blockIdx.x) * kBM, n0 = int64_t(blockIdx.y) * kBN;
  const int64_t p_begin = int64_t(blockIdx.z) * chunk, p_end = min(P, p_begin + chunk);

  // This thread loads A's row m0 + lane (a fixed k) and B's column n0 +
  // lane, at the pixels p_begin + pp + 4 i of each slice.
  const int lane = tid % kBM, pp = tid / kBM;
  const int64_t k = m0 + lane, f = n0 + lane;
  const bool k_ok = k < K, f_ok = f < g.f;
  const int64_t c = k_ok ? k % g.c : 0, tap = k_ok ? k / g.c : 0;
  const int64_t off_h = tap / g.kw * g.dh - g.ph, off_w = tap % g.kw * g.dw - g.pw;
  // pixel i's (image, oh, ow), stepped by kBK pixels per slice
  int64_t img[4], oh[4], ow[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t p = p_begin + pp + 4 * i;
    img[i] = p / (g.oh * g.ow);
    oh[i] = p % (g.oh * g.ow) / g.ow;
    ow[i] = p % g.ow;
  }
  float acc[4][4] = {};
  for (int64_t s0 = p_begin; s0 < p_end; s0 += kBK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int r = pp + 4 * i;
      const int64_t p = s0 + r;
      float va = 0.0f, vb = 0.0f;
      if (p < p_end) {
        const int64_t ih = oh[i] * g.sh + off_h, iw = ow[i] * g.sw + off_w;
        if (k_ok && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
          va = __ldg(x + ((img[i] * g.h + ih) * g.w + iw) * g.c + c);
        if (f_ok) vb = __ldg(dy + p * g.f + f);
      }
      t.a[r][lane] = va;
      t.b[r][lane] = vb;
      // on to pixel p + kBK (a few steps at most unless OW is tiny)
      ow[i] += kBK;
      while (ow[i] >= g.ow) {
        ow[i] -= g.ow;
        if (++oh[i] == g.oh) {
          oh[i] = 0;
          ++img[i];
        }
      }
    }
    __syncthreads();
    multiply_tiles(t, acc, ty, tx);
    __syncthreads();
  }
  float* o = out + int64_t(blockIdx.z) * K * g.f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t kr = m0 + ty + 16 * i;
    if (kr >= K) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t fc = n0 + tx + 16 * j;
      if (fc < g.f) o[kr * g.f + fc] = acc[i][j];
    }
  }
}

// dw[i] = sum over z of partial[z][i], z ascending. partial: (chunks, n)
__global__ void sum_chunks_kernel(const float* __restrict__ partial, int64_t chunks, int64_t n,
                                  float* __restrict__ dw) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float s = 0.0f;
    for (int64_t z = 0; z < chunks; ++z) s += partial[z * n + i];
    dw[i] = s;
  }
}

// Blocks wanted in flight for the weight gradient, and the fewest pixels
// worth a chunk: the split depends on the shapes alone, never on the GPU.
constexpr int64_t kTargetBlocks = 2048;
constexpr int64_t kMinChunk = 256;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check_launch(const char* fn) {
  check(cudaGetLastError(), str_cat(fn, ": kernel launch").c_str());
}

// The tile grid of an (rows x cols) product; throws when it exceeds CUDA's limits.
dim3 tile_grid(int64_t rows, int64_t cols, int64_t depth, const char* fn, const char* what) {
  const int64_t gx = ceil_div(rows, kBM), gy = ceil_div(cols, kBN);
  FASTNN_CHECK(gx <= INT_MAX && gy <= kGridYMax && depth <= kGridYMax, fn, ": ", what,
               " of ", rows, " x ", cols, " needs more thread blocks than one launch allows");
  return dim3(unsigned(gx), unsigned(gy), unsigned(depth));
}

// x: (N,H,W,C), w: (KH,KW,C,F) checked against each other and o; the window.
Window2d conv_window(const DeviceBuffer& x, const DeviceBuffer& w, const Conv2dOptions& o,
                     const char* fn) {
  const std::vector<int64_t>& xs = x.shape();
  const std::vector<int64_t>& ws = w.shape();
  FASTNN_CHECK(x.ndim() == 4, fn, ": argument 'x' must be 4-D (N, H, W, C), got shape ",
               shape_str(xs));
  FASTNN_CHECK(w.ndim() == 4, fn, ": argument 'w' must be 4-D (KH, KW, C_in, C_out), got shape ",
               shape_str(ws));
  FASTNN_CHECK(ws[2] == xs[3], fn, ": the kernel of shape ", shape_str(ws), " takes ", ws[2],
               " input channels but 'x' of shape ", shape_str(xs), " has ", xs[3]);
  FASTNN_CHECK(x.device() == w.device(), fn,
               ": arguments 'x' and 'w' are on different devices (cuda:", x.device(), " and cuda:",
               w.device(), ")");
  try {
    return window2d(xs[0], xs[1], xs[2], xs[3], ws[0], ws[1], o.sh, o.sw, o.dh, o.dw,
                    padding_spec(o.padding, o.ph, o.pw, fn), fn);
  } catch (const std::invalid_argument& e) {  // say which shapes
    throw std::invalid_argument(str_cat(e.what(), " ('x' of shape ", shape_str(xs),
                                        ", 'w' of shape ", shape_str(ws), ")"));
  }
}

// dw: (KH,KW,C,F), overwritten. x, dy as conv_backward_weight_kernel.
void backward_weight(const Geometry& g, const float* x, const float* dy, DeviceBuffer& dw) {
  const char* fn = "conv2d_backward";
  const int64_t P = g.n * g.oh * g.ow, K = g.kh * g.kw * g.c;
  if (dw.numel() == 0) return;
  if (P == 0) {  // no pixels: no gradient
    dw.fill_zero();
    return;
  }
  const int64_t tiles = ceil_div(K, kBM) * ceil_div(g.f, kBN);
  const int64_t chunks_wanted =
      std::clamp<int64_t>(ceil_div(kTargetBlocks, tiles), 1, ceil_div(P, kMinChunk));
  const int64_t chunk = ceil_div(ceil_div(P, chunks_wanted), kBK) * kBK;
  const int64_t chunks = ceil_div(P, chunk);
  const dim3 grid = tile_grid(K, g.f, chunks, fn, "the weight gradient");
  if (chunks == 1) {
    conv_backward_weight_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(g, x, dy, chunk,
                                                                          dw.data());
    check_launch(fn);
    return;
  }
  DeviceBuffer partial(std::vector<int64_t>{chunks, K, g.f});
  conv_backward_weight_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(g, x, dy, chunk,
                                                                        partial.data());
  check_launch(fn);
  const int64_t n = K * g.f;
  const unsigned blocks = unsigned(std::min<int64_t>(ceil_div(n, 256), 1 << 16));
  sum_chunks_kernel<<<blocks, 256, 0, cudaStreamLegacy>>>(partial.data(), chunks, n, dw.data());
  check_launch(fn);
  // partial is freed in stream order (or by cudaFree, which waits)
}

}  // namespace

DeviceBuffer conv2d(const DeviceBuffer& x, const DeviceBuffer& w, const DeviceBuffer* b,
                    const Conv2dOptions& o, bool relu) {
  const char* fn = "conv2d";
  const Window2d s = conv_window(x, w, o, fn);
  const int64_t F = w.shape()[3];
  if (b) {
    FASTNN_CHECK(b->ndim() == 1 && b->shape()[0] == F, fn, ": argument 'b' must have shape (", F,
                 ",), got ", shape_str(b->shape()));
    FASTNN_CHECK(b->device() == x.device(), fn,
                 ": arguments 'x' and 'b' are on different devices (cuda:", x.device(),
                 " and cuda:", b->device(), ")");
  }
  DeviceGuard guard(x.device());
  DeviceBuffer y(std::vector<int64_t>{s.n, s.h.out, s.w.out, F});
  if (y.numel() == 0) return y;
  const Geometry g = geometry(s, F);
  const dim3 grid = tile_grid(s.n * s.h.out * s.w.out, F, 1, fn, "the output");
  conv_forward_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(
      g, x.data(), w.data(), b ? b->data() : nullptr, relu, y.data());
  check_launch(fn);
  return y;
}

Conv2dGrads conv2d_backward(const DeviceBuffer& x, const DeviceBuffer& w, const DeviceBuffer& dy,
                            const Conv2dOptions& o, bool need_dx, bool need_dw, bool need_db) {
  const char* fn = "conv2d_backward";
  const Window2d s = conv_window(x, w, o, fn);
  const int64_t F = w.shape()[3];
  const std::vector<int64_t> want{s.n, s.h.out, s.w.out, F};
  FASTNN_CHECK(dy.shape() == want, fn, ": argument 'dy' must have the output's shape ",
               shape_str(want), ", got ", shape_str(dy.shape()), " ('x' of shape ",
               shape_str(x.shape()), ", 'w' of shape ", shape_str(w.shape()), ")");
  FASTNN_CHECK(dy.device() == x.device(), fn,
               ": arguments 'x' and 'dy' are on different devices (cuda:", x.device(),
               " and cuda:", dy.device(), ")");
  DeviceGuard guard(x.device());
  const Geometry g = geometry(s, F);
  Conv2dGrads out;
  if (need_dx) {
    DeviceBuffer dx(x.shape());
    if (dx.numel() > 0) {  // (F == 0 or no output pixels: the loop adds nothing, dx = 0)
      const dim3 grid = tile_grid(s.n * s.h.in * s.w.in, s.c, 1, fn, "the input gradient");
      conv_backward_data_kernel<<<grid, kThreads, 0, cudaStreamLegacy>>>(g, dy.data(), w.data(),
                                                                          dx.data());
      check_launch(fn);
    }
    out.dx = std::move(dx);
  }
  if (need_dw) {
    DeviceBuffer dw(w.shape());
    backward_weight(g, x.data(), dy.data(), dw);
    out.dw = std::move(dw);
  }
  if (need_db) out.db = reduce_sum(dy, {0, 1, 2}, false);
  return out;
}

}  // namespace cuda
}  // namespace fastnn
