// Max and average pooling over NHWC images. Channels are contiguous, so
// every inner loop runs over c and GCC vectorises it at the baseline
// (SSE2); the windows themselves are walked in row-major order.
//
// Threads split the output rows (n, oh). Forward rows are independent. In
// the backward, windows of neighbouring output rows overlap when the window
// is taller than the stride, so rows are grouped into blocks that write
// disjoint input rows every other block (see for_each_backward_row); every
// dx element then receives its contributions in one fixed order, and the
// result is the same bit for bit for any thread count.
#include "fastnn/pool2d.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <type_traits>

#include "fastnn/parallel.h"

namespace fastnn {

namespace {

// Input cells a thread reads before a second thread is worth its start-up
// (a parallel region costs a few microseconds).
constexpr int64_t kGrain = 32 * 1024;

// The real (unpadded) input cells [begin, end) under output o's window
// along one axis; empty only for explicit padding wider than the window.
struct Span {
  int64_t begin, end;
};

Span window_span(const WindowAxis& a, int64_t o) {
  const int64_t start = o * a.stride - a.pad_before;
  // start + k may overflow for absurd windows; in - start may not
  const int64_t end = a.in - start < a.k ? a.in : start + a.k;
  return {std::max<int64_t>(start, 0), std::max<int64_t>(end, 0)};
}

// (work in double: rows x window cells may pass 2^63 for absurd windows)
int threads_for(double work) {
  return int(std::clamp(work / double(kGrain), 1.0, double(get_num_threads())));
}

// Input cells read for one output row (the window clipped to the input).
double row_work(const Window2d& s) {
  const int64_t kh = std::min(s.h.k, s.h.in), kw = std::min(s.w.k, s.w.in);
  return double(s.w.out) * double(kh) * double(kw) * double(s.c);
}

bool empty_output(const Window2d& s) {
  return s.n == 0 || s.c == 0 || s.h.out == 0 || s.w.out == 0;
}

// row(n, oh) for every output row, split over the kernel threads.
template <class Row>
void for_each_output_row(const Window2d& s, const Row& row) {
  const int64_t rows = s.n * s.h.out;
  parallel_for(rows, threads_for(double(rows) * row_work(s)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) row(r / s.h.out, r % s.h.out);
  });
}

// Zero-fills the cells of one input row (W, C) under no window (windows
// no wider than the stride: gaps between them, and the row's ends).
void zero_uncovered_columns(const Window2d& s, float* row) {
  int64_t next = 0;  // the first column not yet filled or covered
  for (int64_t ow = 0; ow < s.w.out; ++ow) {
    const Span ws = window_span(s.w, ow);
    if (next < ws.begin) std::fill(row + next * s.c, row + ws.begin * s.c, 0.0f);
    next = std::max(next, ws.end);
  }
  std::fill(row + next * s.c, row + s.w.in * s.c, 0.0f);
}

// The real input cells of the windows get their gradient from row(n, oh,
// overwrite) for every output row; the rest of dx is zero-filled. No two
// threads ever write one element:
// - windows no taller than the stride never share an input row: each
//   output row owns the input rows from its window's first row to the next
//   output row's (the first and last reaching the image's edges), and all
//   rows run in parallel. If the windows are no wider than the stride
//   either, no cell is under two windows: row() then stores each cell's
//   gradient (overwrite is std::true_type) and only the cells under no
//   window are zero-filled; otherwise the owned rows are zero-filled and
//   row() adds into them;
// - otherwise dx is zero-filled, and output rows are grouped in blocks of
//   B = ceil(kh / stride) rows; block i only shares input rows with blocks
//   i - 1 and i + 1: even blocks run in parallel, then odd ones, each
//   block's rows in order.
template <class Row>
void for_each_backward_row(const Window2d& s, float* dx, const Row& row) {
  const int64_t H = s.h.in, OH = s.h.out;
  const int64_t in_row = s.w.in * s.c;  // floats in one input row
  if (empty_output(s)) {
    // any dx element left (none with "valid"/"same" shapes) gets no gradient
    std::fill(dx, dx + s.n * H * in_row, 0.0f);
    return;
  }
  const double work = row_work(s);
  if (s.h.k <= s.h.stride) {
    const bool disjoint = s.w.k <= s.w.stride;
    const int64_t rows = s.n * OH;
    auto first_row = [&](int64_t oh) {
      return oh == 0 ? 0 : std::clamp<int64_t>(oh * s.h.stride - s.h.pad_before, 0, H);
    };
    parallel_for(rows, threads_for(double(rows) * work), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / OH, oh = r % OH;
        const int64_t lo = first_row(oh), hi = oh + 1 == OH ? H : first_row(oh + 1);
        float* image = dx + n * H * in_row;
        if (!disjoint) {
          std::fill(image + lo * in_row, image + hi * in_row, 0.0f);
          row(n, oh, std::false_type());
          continue;
        }
        const Span hs = window_span(s.h, oh);
        std::fill(image + lo * in_row, image + hs.begin * in_row, 0.0f);
        for (int64_t ih = hs.begin; ih < hs.end; ++ih) zero_uncovered_columns(s, image + ih * in_row);
        std::fill(image + hs.end * in_row, image + hi * in_row, 0.0f);
        row(n, oh, std::true_type());
      }
    });
    return;
  }
  const int64_t total = s.n * H * in_row;
  parallel_for(total, threads_for(double(total)), [&](int64_t b, int64_t e) {
    std::fill(dx + b, dx + e, 0.0f);
  });
  const int64_t B = (s.h.k + s.h.stride - 1) / s.h.stride;
  const int64_t blocks = (OH + B - 1) / B;  // per image
  for (int64_t parity = 0; parity < 2; ++parity) {
    const int64_t per_image = (blocks - parity + 1) / 2;  // blocks of this parity
    const int64_t tasks = s.n * per_image;
    parallel_for(tasks, threads_for(double(tasks * B) * work), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t n = t / per_image, block = 2 * (t % per_image) + parity;
        const int64_t end = std::min(OH, (block + 1) * B);
        for (int64_t oh = block * B; oh < end; ++oh) row(n, oh, std::false_type());
      }
    });
  }
}

// Channels per block: a window is walked once per block of channels, with
// the block's accumulators in SSE registers (eight for 32 lanes). Full
// blocks have a compile-time width: GCC vectorises their loops over c,
// then unrolls them completely. (At 16 or fewer lanes GCC unrolls first
// and then fails to vectorise the selects.) The last block takes the
// remaining channels; up to 4 of them also get a compile-time width.
constexpr int64_t kLanes = 32;

template <int64_t N>
using Lanes = std::integral_constant<int64_t, N>;

// f(c0, width) for each block of channels [c0, c0 + width).
template <class F>
void for_each_channel_block(int64_t C, const F& f) {
  int64_t c0 = 0;
  for (; c0 + kLanes <= C; c0 += kLanes) f(c0, Lanes<kLanes>());
  switch (C - c0) {  // few channels: straight-line code without loop overheads
    case 0: break;
    case 1: f(c0, Lanes<1>()); break;
    case 2: f(c0, Lanes<2>()); break;
    case 3: f(c0, Lanes<3>()); break;
    case 4: f(c0, Lanes<4>()); break;
    default: f(c0, C - c0);
  }
}

// f(offset) for each real input cell under the window (hs, ws), in
// row-major order; offset: the cell's in its (H,W,C) image.
template <class F>
void for_each_cell(const Window2d& s, Span hs, Span ws, const F& f) {
  for (int64_t ih = hs.begin; ih < hs.end; ++ih)
    for (int64_t iw = ws.begin; iw < ws.end; ++iw) f((ih * s.w.in + iw) * s.c);
}

// f(ow, hs, ws) for each output pixel of row oh with its window's spans.
template <class F>
void for_each_window(const Window2d& s, int64_t oh, const F& f) {
  const Span hs = window_span(s.h, oh);
  for (int64_t ow = 0; ow < s.w.out; ++ow) f(ow, hs, window_span(s.w, ow));
}

int64_t cell_count(Span hs, Span ws) { return (hs.end - hs.begin) * (ws.end - ws.begin); }

// The loops over c below take the width as a template argument (a
// std::integral_constant for full blocks).
uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class Width>
void set_all(float* __restrict a, float value, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) a[c] = value;
}

// The max with NaN as the largest value, keeping the first of equals.
template <class Width>
void max_into(float* __restrict m, const float* __restrict v, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) {
    const float vc = v[c], mc = m[c];
    const float larger = vc > mc ? vc : mc;  // maxps: keeps a NaN mc
    m[c] = vc != vc ? vc : larger;
  }
}

// Gives the gradient g still to route to the cells v equal to the maximum
// m (or NaN, which only a NaN maximum has), then clears g there; the other
// cells get 0. Overwrite: store into d, else add to it. The selects are
// masks on the bits, which GCC keeps branch-free (a branch per channel
// would be mispredicted half the time) and vectorises.
template <class Overwrite, class Width>
void route_max(const float* __restrict v, const float* __restrict m, float* __restrict g,
               float* __restrict d, Overwrite, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) {
    const float vc = v[c];
    const uint32_t hit = 0u - uint32_t((vc == m[c]) | (vc != vc));  // all ones or zero
    const uint32_t gc = bits_of(g[c]);
    const float take = float_of(gc & hit);
    if constexpr (Overwrite::value)
      d[c] = take;
    else
      d[c] += take;
    g[c] = float_of(gc & ~hit);
  }
}

// d = g (overwrite) or d += g
template <class Overwrite, class Width>
void give(float* __restrict d, const float* __restrict g, Overwrite, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) {
    if constexpr (Overwrite::value)
      d[c] = g[c];
    else
      d[c] += g[c];
  }
}

template <class Width>
void add_into(float* __restrict acc, const float* __restrict v, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) acc[c] += v[c];
}

template <class Width>
void copy_from(float* __restrict a, const float* __restrict b, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) a[c] = b[c];
}

// a = b / divisor
template <class Width>
void divide(float* __restrict a, const float* __restrict b, float divisor, Width width) {
  for (int64_t c = 0; c < int64_t(width); ++c) a[c] = b[c] / divisor;
}

}  // namespace

// x: (N,H,W,C) -> y: (N,OH,OW,C)
void max_pool2d_forward(const Window2d& s, const float* x, float* y) {
  if (empty_output(s)) return;
  const int64_t C = s.c;
  for_each_output_row(s, [&](int64_t n, int64_t oh) {
    const float* image = x + n * s.h.in * s.w.in * C;
    float* yrow = y + (n * s.h.out + oh) * s.w.out * C;
    for_each_window(s, oh, [&](int64_t ow, Span hs, Span ws) {
      for_each_channel_block(C, [&](int64_t c0, auto width) {
        float m[kLanes];
        set_all(m, -std::numeric_limits<float>::infinity(), width);
        for_each_cell(s, hs, ws, [&](int64_t cell) { max_into(m, image + cell + c0, width); });
        copy_from(yrow + ow * C + c0, m, width);
      });
    });
  });
}

// x: (N,H,W,C), y: (N,OH,OW,C) or nullptr, dy: (N,OH,OW,C) -> dx: (N,H,W,C), overwritten
void max_pool2d_backward(const Window2d& s, const float* x, const float* y, const float* dy,
                         float* dx) {
  const int64_t C = s.c, image_size = s.h.in * s.w.in * C;
  for_each_backward_row(s, dx, [&](int64_t n, int64_t oh, auto overwrite) {
    const float* image = x + n * image_size;
    float* dimage = dx + n * image_size;
    const int64_t row = (n * s.h.out + oh) * s.w.out * C;
    const float* dyrow = dy + row;
    for_each_window(s, oh, [&](int64_t ow, Span hs, Span ws) {
      for_each_channel_block(C, [&](int64_t c0, auto width) {
        // the window's maximum: the forward's, or found as the forward does
        float found[kLanes], g[kLanes];
        const float* m = found;
        if (y) {
          m = y + row + ow * C + c0;
        } else {
          set_all(found, -std::numeric_limits<float>::infinity(), width);
          for_each_cell(s, hs, ws,
                        [&](int64_t cell) { max_into(found, image + cell + c0, width); });
        }
        // the gradient goes to the first cell holding it (a NaN maximum:
        // the first NaN; no cell is NaN when the maximum is not)
        copy_from(g, dyrow + ow * C + c0, width);
        for_each_cell(s, hs, ws, [&](int64_t cell) {
          route_max(image + cell + c0, m, g, dimage + cell + c0, overwrite, width);
        });
      });
    });
  });
}

// x: (N,H,W,C) -> y: (N,OH,OW,C)
void avg_pool2d_forward(const Window2d& s, const float* x, float* y) {
  if (empty_output(s)) return;
  const int64_t C = s.c;
  for_each_output_row(s, [&](int64_t n, int64_t oh) {
    const float* image = x + n * s.h.in * s.w.in * C;
    float* yrow = y + (n * s.h.out + oh) * s.w.out * C;
    for_each_window(s, oh, [&](int64_t ow, Span hs, Span ws) {
      // (an empty window, only possible with explicit padding, gives 0)
      const float count = float(std::max<int64_t>(cell_count(hs, ws), 1));
      for_each_channel_block(C, [&](int64_t c0, auto width) {
        float acc[kLanes];
        set_all(acc, 0.0f, width);
        for_each_cell(s, hs, ws, [&](int64_t cell) { add_into(acc, image + cell + c0, width); });
        divide(yrow + ow * C + c0, acc, count, width);
      });
    });
  });
}

// dy: (N,OH,OW,C) -> dx: (N,H,W,C), overwritten
void avg_pool2d_backward(const Window2d& s, const float* dy, float* dx) {
  const int64_t C = s.c, image_size = s.h.in * s.w.in * C;
  for_each_backward_row(s, dx, [&](int64_t n, int64_t oh, auto overwrite) {
    float* dimage = dx + n * image_size;
    const float* dyrow = dy + (n * s.h.out + oh) * s.w.out * C;
    for_each_window(s, oh, [&](int64_t ow, Span hs, Span ws) {
      const float count = float(std::max<int64_t>(cell_count(hs, ws), 1));
      for_each_channel_block(C, [&](int64_t c0, auto width) {
        float g[kLanes];
        divide(g, dyrow + ow * C + c0, count, width);
        for_each_cell(s, hs, ws,
                      [&](int64_t cell) { give(dimage + cell + c0, g, overwrite, width); });
      });
    });
  });
}

}  // namespace fastnn
