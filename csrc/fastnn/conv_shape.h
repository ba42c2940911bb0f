// Shape arithmetic of 2-D convolution and pooling windows over NHWC images,
// shared by the CPU and CUDA kernels and their bindings. Padding follows
// Keras: "valid" (none), "same" (output = ceil(input / stride); the padding
// needed is split with the extra cell after, so even kernels and strides
// > 1 pad asymmetrically), or explicit symmetric (ph, pw).
#pragma once
#include <cstdint>
#include <string>

#include "fastnn/check.h"

namespace fastnn {

enum class Padding { valid, same, explicit_ };

struct PaddingSpec {
  Padding mode = Padding::valid;
  int64_t ph = 0, pw = 0;  // for explicit_
};

// One spatial axis of a window op: input extent, window, stride, dilation
// -> output extent and the padding before/after.
struct WindowAxis {
  int64_t in = 0, k = 1, stride = 1, dilation = 1;
  int64_t pad_before = 0, pad_after = 0, out = 0;
};

// The window's reach: (k - 1) * dilation + 1 input cells.
inline int64_t effective_window(int64_t k, int64_t dilation) { return (k - 1) * dilation + 1; }

// Fills pad_before/pad_after/out; throws std::invalid_argument (named after
// fn and the axis) when the window does not fit a "valid" input, or for
// bad sizes.
inline void resolve_axis(WindowAxis& a, Padding mode, int64_t explicit_pad, const char* fn,
                         const char* axis) {
  // Window sizes, strides, dilations and pads up to 2^31 - 1: every product
  // below then fits in 64 bits (a window reaches at most 2^62 cells).
  constexpr int64_t kMax = (int64_t(1) << 31) - 1;
  FASTNN_CHECK(a.k >= 1 && a.k <= kMax, fn, ": the window's ", axis, " must be in [1, ", kMax,
               "], got ", a.k);
  FASTNN_CHECK(a.stride >= 1 && a.stride <= kMax, fn, ": argument 'stride' must be in [1, ", kMax,
               "], got ", a.stride, " (", axis, ")");
  FASTNN_CHECK(a.dilation >= 1 && a.dilation <= kMax, fn, ": argument 'dilation' must be in [1, ",
               kMax, "], got ", a.dilation, " (", axis, ")");
  FASTNN_CHECK(a.in >= 0 && a.in <= (int64_t(1) << 48), fn, ": input ", axis, " ", a.in,
               " out of range");
  const int64_t span = effective_window(a.k, a.dilation);
  switch (mode) {
    case Padding::valid:
      FASTNN_CHECK(a.in >= span, fn, ": the window spans ", span, " cells along the ", axis,
                   " but the input has ", a.in, " (padding 'valid')");
      a.pad_before = a.pad_after = 0;
      a.out = (a.in - span) / a.stride + 1;
      break;
    case Padding::same: {
      a.out = a.in == 0 ? 0 : (a.in - 1) / a.stride + 1;  // ceil(in / stride)
      const int64_t need = a.out == 0 ? 0 : (a.out - 1) * a.stride + span - a.in;
      const int64_t total = need > 0 ? need : 0;
      a.pad_before = total / 2;
      a.pad_after = total - a.pad_before;
      break;
    }
    case Padding::explicit_:
      FASTNN_CHECK(explicit_pad >= 0 && explicit_pad <= kMax, fn,
                   ": argument 'padding' must be in [0, ", kMax, "], got ", explicit_pad, " (",
                   axis, ")");
      a.pad_before = a.pad_after = explicit_pad;
      FASTNN_CHECK(a.in + 2 * explicit_pad >= span, fn, ": the window spans ", span,
                   " cells along the ", axis, " but the padded input has ",
                   a.in + 2 * explicit_pad);
      a.out = (a.in + 2 * explicit_pad - span) / a.stride + 1;
      break;
  }
}

// x: (N, H, W, C), window (KH, KW), output (N, OH, OW, F or C).
struct Window2d {
  int64_t n = 0, c = 0;
  WindowAxis h, w;
};

inline Window2d window2d(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t dh, int64_t dw, const PaddingSpec& pad,
                         const char* fn) {
  Window2d s;
  s.n = n;
  s.c = c;
  s.h = {h, kh, sh, dh};
  s.w = {w, kw, sw, dw};
  resolve_axis(s.h, pad.mode, pad.ph, fn, "height");
  resolve_axis(s.w, pad.mode, pad.pw, fn, "width");
  return s;
}

}  // namespace fastnn
