// Affine warps of NHWC images with bilinear sampling (see fastnn/augment.h).
//
// The fast version walks each output image row by row. A sample whose four
// neighbours all lie inside the image (most of them) reads them directly;
// the others map each neighbour through the fill mode, and neighbours
// outside a "constant" image count as cval. Channels are contiguous, and the
// usual counts (1, 3, 4) get a compile-time width so the loop over them
// unrolls. Threads split the images of the batch.
#include "fastnn/augment.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "fastnn/parallel.h"

namespace fastnn {

namespace {

// Output values a thread writes before a second thread is worth its start-up.
constexpr int64_t kGrain = 16 * 1024;

// The pixel that tap i (any integer) of an axis of n pixels reads, or -1
// for FillMode::constant outside the image.
inline int64_t map_index(int64_t i, int64_t n, FillMode mode) {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case FillMode::nearest:
      return i < 0 ? 0 : n - 1;
    case FillMode::constant:
      return -1;
    case FillMode::reflect: {  // period 2n: abcd dcba abcd ...
      int64_t m = i % (2 * n);
      if (m < 0) m += 2 * n;
      return m < n ? m : 2 * n - 1 - m;
    }
    case FillMode::wrap: {
      int64_t m = i % n;
      return m < 0 ? m + n : m;
    }
  }
  return -1;
}

// floor(v) for |v| <= kMaxWarpCoordinate: std::floor is a library call at
// the baseline instruction set (SSE2 has no rounding instruction).
inline int64_t floor_index(double v) {
  const int64_t i = int64_t(v);  // rounds toward zero
  return i - int64_t(double(i) > v);
}

// A pixel as float. Bytes go through a table: one load from L1, where the
// integer conversion instruction waits on the register it merges into.
struct ByteTable {
  float v[256];
  ByteTable() {
    for (int i = 0; i < 256; ++i) v[i] = float(i);
  }
};
const ByteTable kBytes;

inline float load(const float* p) { return *p; }
inline float load(const uint8_t* p) { return kBytes.v[*p]; }

template <int64_t N>
using Width = std::integral_constant<int64_t, N>;

// o[ch] = (w00 p00[ch] + w01 p01[ch] + w10 p10[ch] + w11 p11[ch] + extra) * scale + shift
template <class T, class Channels>
inline void blend(Channels channels, const T* p00, const T* p01, const T* p10, const T* p11,
                  float w00, float w01, float w10, float w11, float extra, const float* scale,
                  const float* shift, float* o) {
  const int64_t C = channels;
  for (int64_t ch = 0; ch < C; ++ch) {
    const float top = w00 * load(p00 + ch) + w01 * load(p01 + ch);
    const float bottom = w10 * load(p10 + ch) + w11 * load(p11 + ch);
    o[ch] = (top + bottom + extra) * scale[ch] + shift[ch];
  }
}

// One output image (H, W, C) from img (H, W, C) and its matrix a (6).
template <class T, class Channels>
void warp_image(const AffineWarp& p, Channels channels, const T* img, const double* a,
                const float* scale, const float* shift, float* out) {
  const int64_t H = p.h, W = p.w, C = channels, row = W * C;
  for (int64_t r = 0; r < H; ++r) {
    const double sy_row = a[0] * double(r) + a[2], sx_row = a[3] * double(r) + a[5];
    float* o = out + r * row;
    for (int64_t col = 0; col < W; ++col, o += C) {
      const double sy = sy_row + a[1] * double(col), sx = sx_row + a[4] * double(col);
      const int64_t y0 = floor_index(sy), x0 = floor_index(sx);
      const float fy = float(sy - double(y0)), fx = float(sx - double(x0));
      float w00 = (1 - fy) * (1 - fx), w01 = (1 - fy) * fx, w10 = fy * (1 - fx), w11 = fy * fx;
      if (y0 >= 0 && y0 + 1 < H && x0 >= 0 && x0 + 1 < W) {
        const T* p00 = img + y0 * row + x0 * C;
        blend(channels, p00, p00 + C, p00 + row, p00 + row + C, w00, w01, w10, w11, 0.0f,
              scale, shift, o);
        continue;
      }
      const int64_t iy0 = map_index(y0, H, p.fill), iy1 = map_index(y0 + 1, H, p.fill);
      const int64_t ix0 = map_index(x0, W, p.fill), ix1 = map_index(x0 + 1, W, p.fill);
      float outside = 0;  // the weight of the neighbours that read cval
      auto tap = [&](int64_t iy, int64_t ix, float& w) -> const T* {
        if (iy >= 0 && ix >= 0) return img + iy * row + ix * C;
        outside += w;
        w = 0;
        return img;  // any pixel: its weight is 0
      };
      const T* p00 = tap(iy0, ix0, w00);
      const T* p01 = tap(iy0, ix1, w01);
      const T* p10 = tap(iy1, ix0, w10);
      const T* p11 = tap(iy1, ix1, w11);
      blend(channels, p00, p01, p10, p11, w00, w01, w10, w11, outside * p.cval, scale, shift, o);
    }
  }
}

// f(width) with the channel count as a compile-time constant where common.
template <class F>
void with_channels(int64_t C, const F& f) {
  switch (C) {
    case 1: f(Width<1>()); break;
    case 3: f(Width<3>()); break;
    case 4: f(Width<4>()); break;
    default: f(C);
  }
}

}  // namespace

double max_warp_coordinate(const double* a, int64_t h, int64_t w) {
  const double r = double(std::max<int64_t>(h - 1, 0)), c = double(std::max<int64_t>(w - 1, 0));
  // linear in (r, c): the largest magnitude is at a corner
  return std::max(std::abs(a[0]) * r + std::abs(a[1]) * c + std::abs(a[2]),
                  std::abs(a[3]) * r + std::abs(a[4]) * c + std::abs(a[5]));
}

template <class T>
void affine_warp(const AffineWarp& p, const T* x, const int64_t* index, const double* matrix,
                 const float* scale, const float* shift, float* out) {
  const int64_t image = p.h * p.w * p.c;
  if (p.batch == 0 || image == 0) return;
  const int threads = int(std::clamp(double(p.batch) * double(image) / double(kGrain), 1.0,
                                     double(get_num_threads())));
  with_channels(p.c, [&](auto channels) {
    parallel_for(p.batch, threads, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        warp_image(p, channels, x + index[b] * image, matrix + 6 * b, scale, shift,
                   out + b * image);
    });
  });
}

template <class T>
void affine_warp_reference(const AffineWarp& p, const T* x, const int64_t* index,
                           const double* matrix, const float* scale, const float* shift,
                           float* out) {
  const int64_t H = p.h, W = p.w, C = p.c;
  for (int64_t b = 0; b < p.batch; ++b) {
    const T* img = x + index[b] * H * W * C;
    const double* a = matrix + 6 * b;
    for (int64_t r = 0; r < H; ++r) {
      for (int64_t col = 0; col < W; ++col) {
        const double sy = a[0] * r + a[1] * col + a[2], sx = a[3] * r + a[4] * col + a[5];
        const double y0 = std::floor(sy), x0 = std::floor(sx);
        const double fy = sy - y0, fx = sx - x0;
        for (int64_t ch = 0; ch < C; ++ch) {
          double v = 0;
          for (int dy = 0; dy < 2; ++dy) {
            for (int dx = 0; dx < 2; ++dx) {
              const double w = (dy ? fy : 1 - fy) * (dx ? fx : 1 - fx);
              const int64_t iy = map_index(int64_t(y0) + dy, H, p.fill);
              const int64_t ix = map_index(int64_t(x0) + dx, W, p.fill);
              v += w * (iy < 0 || ix < 0 ? double(p.cval) : double(img[(iy * W + ix) * C + ch]));
            }
          }
          out[((b * H + r) * W + col) * C + ch] = float(v * scale[ch] + shift[ch]);
        }
      }
    }
  }
}

#define FASTNN_AFFINE_WARP(T)                                                                  \
  template void affine_warp<T>(const AffineWarp&, const T*, const int64_t*, const double*,     \
                               const float*, const float*, float*);                            \
  template void affine_warp_reference<T>(const AffineWarp&, const T*, const int64_t*,          \
                                         const double*, const float*, const float*, float*);
FASTNN_AFFINE_WARP(uint8_t)
FASTNN_AFFINE_WARP(float)
#undef FASTNN_AFFINE_WARP

}  // namespace fastnn
