// 2-D convolution, NHWC x HWIO, as implicit GEMMs on the GEMM microkernels:
// no im2col matrix is ever built, only one strip of it (MR rows, one K
// block) per thread, gathered from the image right before the microkernel
// uses it, so the working set stays in L1/L2 whatever the image size.
//
//   forward       y (P x F)   = im2col(x) (P x K) . w (K x F)      P = N*OH*OW, K = KH*KW*C
//   backward-data dx (Q x C)  = gather(dy) (Q x Kd) . wt (Kd x C)  Q = N*H*W,   Kd = KH*KW*F
//                 or, for strides > 1 and short channel runs, the window
//                 gradients dy (P x F) . w^T (F x K) scattered into dx
//   backward-wt.  dw (K x F)  = im2col(x)^T (K x P) . dy (P x F)
//
// 1x1 windows with stride 1 and no padding are plain GEMMs on the
// activations in place; 3x3 windows with stride 1 may go to Winograd
// (winograd.cpp) when conv_winograd_tile says so.
//
// The weights (small) are packed once per call into the microkernel's
// panel layout. Each output element is computed by one thread, with its sum
// in a fixed order: results do not depend on the thread count.
#include "fastnn/conv2d.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cpu/isa/gemm_kernels.h"
#include "cpu/isa/pointwise_kernels.h"
#include "fastnn/gemm.h"
#include "cpu/winograd.h"
#include "cpu/workspace.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"

namespace fastnn {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// FLOPs one thread should have before a second is worth starting.
constexpr double kFlopsPerThread = 6.0e5;

int threads_for(double flops, int64_t parallel_items) {
  const double want = std::max(1.0, flops / kFlopsPerThread);
  return int(std::max<int64_t>(1, std::min<int64_t>({int64_t(get_num_threads()), int64_t(want),
                                                      parallel_items})));
}

// dst[0:n] = src[0:n] (or zeros when src is null). Channel runs are short
// in early layers (3 floats): a plain loop beats a memcpy call there.
inline void copy_run(float* dst, const float* src, int64_t n) {
  if (n >= 16) {
    if (src)
      std::memcpy(dst, src, size_t(n) * sizeof(float));
    else
      std::memset(dst, 0, size_t(n) * sizeof(float));
    return;
  }
  if (src)
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
  else
    for (int64_t i = 0; i < n; ++i) dst[i] = 0.0f;
}

// Channel runs shorter than this make gathering windows cost as much as
// the arithmetic on them (conv1: C = 3): such convolutions pad the image
// once and read every window in place.
constexpr int64_t kShortRun = 16;

bool has_padding(const Window2d& s) {
  return s.h.pad_before || s.h.pad_after || s.w.pad_before || s.w.pad_after;
}

// x with its zero padding written out, in the calling thread's conv_pad
// buffer, and the window of the padded image (no padding, the same output).
struct Padded {
  Window2d s;
  const float* x;
};
// N images of H x W pixels of C floats with zero borders of top, bottom,
// left and right pixels, in the calling thread's conv_pad buffer.
const float* pad_images(int64_t N, int64_t H, int64_t W, int64_t C, int64_t top, int64_t bottom,
                        int64_t left, int64_t right, const float* x) {
  const int64_t HP = H + top + bottom, row = (W + left + right) * C;
  float* xp = workspace(Slot::conv_pad, checked_mul(N * HP, row));
  const int64_t rows = N * HP;
  parallel_for(rows, threads_for(double(rows * row) * 16.0, rows), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* dst = xp + r * row;
      const int64_t n = r / HP, ih = r % HP - top;
      if (ih < 0 || ih >= H) {
        std::memset(dst, 0, size_t(row) * sizeof(float));
        continue;
      }
      std::memset(dst, 0, size_t(left * C) * sizeof(float));
      std::memcpy(dst + left * C, x + (n * H + ih) * W * C, size_t(W * C) * sizeof(float));
      std::memset(dst + (left + W) * C, 0, size_t(right * C) * sizeof(float));
    }
  });
  return xp;
}

Padded pad_image(const Window2d& s, const float* x) {
  Window2d sp = s;
  sp.h.in = s.h.in + s.h.pad_before + s.h.pad_after;
  sp.w.in = s.w.in + s.w.pad_before + s.w.pad_after;
  sp.h.pad_before = sp.h.pad_after = sp.w.pad_before = sp.w.pad_after = 0;
  return {sp, pad_images(s.n, s.h.in, s.w.in, s.c, s.h.pad_before, s.h.pad_after,
                         s.w.pad_before, s.w.pad_after, x)};
}

// Offsets of the K = KH*KW*C elements (tap, channel) of a window from its
// first cell, in an image of row width W.
std::vector<int64_t> window_offsets(const Window2d& s, int64_t W) {
  const int64_t C = s.c, K = s.h.k * s.w.k * C;
  std::vector<int64_t> koff(static_cast<size_t>(K));
  for (int64_t k = 0; k < K; ++k) {
    const int64_t t = k / C;
    koff[size_t(k)] = (t / s.w.k * s.h.dilation * W + t % s.w.k * s.w.dilation) * C + k % C;
  }
  return koff;
}

// Packs a rows x cols matrix, element (k, j) = at(k, j), into the
// microkernel's panels: bp[(p * rows + k) * NR + j'] for column p*NR + j',
// columns past `cols` zero. Rows of any K block [pc, pc+kc) of panel p then
// start at bp + (p * rows + pc) * NR with row stride NR.
template <class At>
void pack_panels(int64_t rows, int64_t cols, int64_t NR, const At& at, float* bp) {
  const int64_t panels = ceil_div(cols, NR);
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t k = 0; k < rows; ++k) {
      float* dst = bp + (p * rows + k) * NR;
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t col = p * NR + j;
        dst[j] = col < cols ? at(k, col) : 0.0f;
      }
    }
}

// No hook: strip_gemm writes its strips to out.
struct NoHook {};

// out (P x cols, row stride cols) = A . B (+ bias, then ReLU when relu),
// in strips of MR consecutive rows (output pixels, across the image's rows
// and images). B is packed by pack_panels (K rows). A strip for which
// offsets(p0, m, roff) returns true reads A in place, A(i, k) =
// src[roff[i] + koff[k]] (its windows lie inside the image; koff null: never);
// any other strip has its rows gathered by gather(pixel, k0, kc, dst)
// (A[pixel, k0 : k0+kc] to dst). The bias and ReLU are applied as the last
// K block's tiles are written. The threads split the strips.
// With a hook: groups of hook.rows rows (tiles of MR, the last one maybe
// short) are written to a scratch (rows x cols) instead, and hook(p0, m,
// scratch) takes each group from there while it is in cache (out is not
// used).
template <class Offsets, class Gather, class Hook = NoHook>
void strip_gemm(const GemmKernels& kr, int64_t P, int64_t K, int64_t cols, const float* src,
                const int64_t* koff, const Offsets& offsets, const Gather& gather,
                const float* bp, float* out, const float* bias, bool relu,
                const Hook& hook = Hook()) {
  constexpr bool hooked = !std::is_same<Hook, NoHook>::value;
  const int64_t MR = kr.mr, NR = kr.nr, KC = std::min<int64_t>(kr.kc, K);
  int64_t G = MR;  // rows an item
  if constexpr (hooked) G = hook.rows;
  constexpr int64_t kMaxMR = 32;
  FASTNN_CHECK(MR <= kMaxMR, "conv2d: register tiles of ", MR, " rows");
  const int64_t panels = ceil_div(cols, NR), items = ceil_div(P, G);
  const int nt = threads_for(2.0 * double(P) * double(K) * double(cols), items);
  // one gathered strip and one scratch group per thread, allocated here:
  // nothing may throw in the region; a gathered strip is read through the
  // offsets 0, 1, ..., KC-1
  const int64_t per_thread = MR * KC + (hooked ? G * cols : 0);
  float* a_all = workspace(Slot::conv_a, checked_mul(nt, per_thread));
  std::vector<int64_t> iota(static_cast<size_t>(KC));
  for (int64_t k = 0; k < KC; ++k) iota[size_t(k)] = k;
  parallel_region(nt, [&](int t, int nt_actual) {
    float* a = a_all + t * per_thread;
    float* scratch = a + MR * KC;
    int64_t roff[kMaxMR], goff[kMaxMR];
    for (int64_t item = items * t / nt_actual; item < items * (t + 1) / nt_actual; ++item) {
      const int64_t g0 = item * G, gm = std::min(G, P - g0);
      for (int64_t p0 = g0; p0 < g0 + gm; p0 += MR) {
        const int64_t m = std::min(MR, g0 + gm - p0);
        float* dst = hooked ? scratch + (p0 - g0) * cols : out + p0 * cols;
        const bool in_place = koff != nullptr && offsets(p0, m, roff);
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min(KC, K - pc);
          const float beta = pc == 0 ? 0.0f : 1.0f;
          const bool last = pc + kc == K;
          if (!in_place)
            for (int64_t i = 0; i < m; ++i) {
              gather(p0 + i, pc, kc, a + i * kc);
              goff[i] = i * kc;
            }
          for (int64_t p = 0; p < panels; ++p) {
            const int64_t j = p * NR, n = std::min(NR, cols - j);
            kr.tile_indexed(kc, in_place ? src : a, in_place ? roff : goff,
                            in_place ? koff + pc : iota.data(), bp + (p * K + pc) * NR, NR,
                            dst + j, cols, m, n, 1.0f, beta, last && bias ? bias + j : nullptr,
                            last && relu);
          }
        }
      }
      if constexpr (hooked) hook(g0, gm, scratch);
    }
  });
}

// Row q of im2col(x): the KH*KW taps of output pixel q, C channels each,
// zero where the window hangs over the padding.
struct Im2colRow {
  const Window2d& s;
  const float* x;
  // where output pixel q's window starts: its image's first row, and the
  // (possibly negative) top-left input cell
  struct Origin {
    int64_t image_row, ih0, iw0;
  };
  Origin origin(int64_t q) const {
    const int64_t OW = s.w.out, OHW = s.h.out * OW;
    return {q / OHW * s.h.in, q % OHW / OW * s.h.stride - s.h.pad_before,
            q % OW * s.w.stride - s.w.pad_before};
  }
  void operator()(int64_t q, int64_t k0, int64_t kc, float* dst) const {
    gather(origin(q), k0, kc, dst);
  }
  // dst[0:kc] = row[k0 : k0+kc] of the pixel at origin o
  void gather(const Origin& o, int64_t k0, int64_t kc, float* dst) const {
    const int64_t C = s.c;
    int64_t t = k0 / C, kh = t / s.w.k, kw = t % s.w.k;  // taps counted, not divided
    for (; t * C < k0 + kc; ++t, kw = kw + 1 == s.w.k ? (++kh, 0) : kw + 1) {
      const int64_t ih = o.ih0 + kh * s.h.dilation, iw = o.iw0 + kw * s.w.dilation;
      const int64_t c0 = std::max<int64_t>(k0 - t * C, 0), c1 = std::min(k0 + kc - t * C, C);
      const bool inside = ih >= 0 && ih < s.h.in && iw >= 0 && iw < s.w.in;
      copy_run(dst + t * C + c0 - k0,
               inside ? x + ((o.image_row + ih) * s.w.in + iw) * C + c0 : nullptr, c1 - c0);
    }
  }
};

// Row q (an input pixel) of the backward-data product: for each tap, the
// output gradient of the pixel whose window put this tap on q (F values),
// zero where no output pixel did (padding, or a stride skipping q).
struct DyRow {
  const Window2d& s;
  int64_t F;
  const float* dy;
  // the output index along one axis whose window tap kk covers input i, or -1
  static int64_t source(const WindowAxis& a, int64_t i, int64_t kk) {
    const int64_t num = i + a.pad_before - kk * a.dilation;
    if (num < 0) return -1;
    if (a.stride == 1) return num < a.out ? num : -1;  // no divisions in the common case
    if (num % a.stride != 0) return -1;
    const int64_t o = num / a.stride;
    return o < a.out ? o : -1;
  }
  void operator()(int64_t q, int64_t k0, int64_t kc, float* dst) const {
    const int64_t HW = s.h.in * s.w.in;
    const int64_t n = q / HW, ih = q % HW / s.w.in, iw = q % s.w.in;
    int64_t t = k0 / F, kh = t / s.w.k, kw = t % s.w.k;  // taps counted, not divided
    for (; t * F < k0 + kc; ++t, kw = kw + 1 == s.w.k ? (++kh, 0) : kw + 1) {
      const int64_t oh = source(s.h, ih, kh), ow = source(s.w, iw, kw);
      const int64_t f0 = std::max<int64_t>(k0 - t * F, 0), f1 = std::min(k0 + kc - t * F, F);
      copy_run(dst + t * F + f0 - k0,
               oh >= 0 && ow >= 0 ? dy + ((n * s.h.out + oh) * s.w.out + ow) * F + f0 : nullptr,
               f1 - f0);
    }
  }
};

// Where a fused max pool puts its results (conv2d_relu_pool_forward).
struct PoolOut {
  int64_t kh, kw;
  float* p;
  uint8_t* arg;
};

// With a pool: the output pixels are taken window by window (a window's
// kh*kw cells in row-major order, the windows in the pool's order; rows and
// columns past the last window are not computed), and each group of whole
// windows is pooled from the scratch the tiles wrote: y is not written.
void direct_forward(const Window2d& s, int64_t F, const float* x, const float* w, const float* b,
                    bool relu, float* y, const PoolOut* pool = nullptr) {
  // With padding, strips near the border would be gathered (with short
  // channel runs, slowly; on small maps, most strips): the image padded once
  // costs less.
  if (has_padding(s) && s.n * s.h.out * s.w.out * F > 0 && s.h.out * s.w.out >= 64) {
    const Padded p = pad_image(s, x);
    return direct_forward(p.s, F, p.x, w, b, relu, y, pool);
  }
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t C = s.c, H = s.h.in, W = s.w.in, OH = s.h.out, OW = s.w.out;
  const int64_t K = s.h.k * s.w.k * C;
  const int64_t cells = pool ? pool->kh * pool->kw : 1;
  const int64_t PH = pool ? OH / pool->kh : OH, PW = pool ? OW / pool->kw : OW;
  const int64_t P = s.n * PH * PW * cells;  // the pixels computed
  if (P == 0 || F == 0) return;
  if (K == 0) {  // no taps (C == 0): the bias alone
    const int64_t rows = pool ? P / cells : P;
    float* out = pool ? pool->p : y;
    for (int64_t p = 0; p < rows; ++p)
      for (int64_t f = 0; f < F; ++f) {
        const float v = b ? b[f] : 0.0f;
        out[p * F + f] = relu && v < 0.0f ? 0.0f : v;
      }
    if (pool) std::fill(pool->arg, pool->arg + rows * F, uint8_t(0));
    return;
  }
  float* bp = workspace(Slot::conv_b, checked_mul(K, ceil_div(F, kr.nr) * kr.nr));
  pack_panels(K, F, kr.nr, [&](int64_t k, int64_t f) { return w[k * F + f]; }, bp);
  // in place: tap element k = (t, c) of a window at koff[k] from its first cell
  const int64_t reach_h = (s.h.k - 1) * s.h.dilation, reach_w = (s.w.k - 1) * s.w.dilation;
  // a window wider than the image is never inside it (and its offsets
  // need not fit in 64 bits)
  const bool can_be_inside = reach_h < H && reach_w < W;
  const std::vector<int64_t> koff = can_be_inside ? window_offsets(s, W) : std::vector<int64_t>();
  // computed pixel v: cell (a, b) of pool window (ph, pw) of image n, output
  // pixel (ph * kh + a, pw * kw + b); counted up without divisions
  const int64_t kh = pool ? pool->kh : 1, kw = pool ? pool->kw : 1;
  struct Pixel {
    int64_t n, ph, pw, a, b;
  };
  auto pixel = [&](int64_t v) -> Pixel {
    const int64_t win = v / cells, j = v % cells;
    return {win / (PH * PW), win / PW % PH, win % PW, j / kw, j % kw};
  };
  auto next = [&](Pixel& q) {
    if (++q.b < kw) return;
    q.b = 0;
    if (++q.a < kh) return;
    q.a = 0;
    if (++q.pw < PW) return;
    q.pw = 0;
    if (++q.ph < PH) return;
    q.ph = 0;
    ++q.n;
  };
  // the first cells of the windows of computed pixels p0 ... p0+m-1, while all lie inside
  auto offsets = [&](int64_t p0, int64_t m, int64_t* roff) {
    Pixel q = pixel(p0);
    for (int64_t i = 0; i < m; ++i, next(q)) {
      const int64_t ih0 = (q.ph * kh + q.a) * s.h.stride - s.h.pad_before;
      const int64_t iw0 = (q.pw * kw + q.b) * s.w.stride - s.w.pad_before;
      if (ih0 < 0 || ih0 + reach_h >= H || iw0 < 0 || iw0 + reach_w >= W) return false;
      roff[i] = ((q.n * H + ih0) * W + iw0) * C;
    }
    return true;
  };
  const Im2colRow im2col{s, x};
  if (!pool)
    return strip_gemm(kr, P, K, F, x, can_be_inside ? koff.data() : nullptr, offsets, im2col, bp,
                      y, b, relu);
  auto gather = [&](int64_t v, int64_t k0, int64_t kc, float* dst) {
    const Pixel q = pixel(v);
    im2col((q.n * OH + q.ph * kh + q.a) * OW + q.pw * kw + q.b, k0, kc, dst);
  };
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  std::vector<int64_t> coff(static_cast<size_t>(cells));
  for (int64_t j = 0; j < cells; ++j) coff[size_t(j)] = j * F;
  struct Hook {
    int64_t rows;
    const PointwiseKernels& pk;
    int64_t cells, F;
    const int64_t* coff;
    const PoolOut& out;
    void operator()(int64_t g0, int64_t m, const float* scratch) const {
      const int64_t w0 = g0 / cells;
      pk.max_pool_groups(m / cells, cells, F, scratch, cells * F, coff, out.p + w0 * F,
                         out.arg + w0 * F);
    }
  };
  // groups of whole windows: whole register tiles when that takes at most 4
  // tiles, else the fewest windows that fill one tile (the last tile short)
  const int64_t MR = kr.mr, tiles_lcm = std::lcm(MR, cells);
  const int64_t rows = tiles_lcm <= 4 * MR ? tiles_lcm : ceil_div(MR, cells) * cells;
  strip_gemm(kr, P, K, F, x, can_be_inside ? koff.data() : nullptr, offsets, gather, bp, nullptr,
             b, relu, Hook{rows, pk, cells, F, coff.data(), *pool});
}

// dx for stride 1 and very few channels in and out (LeNet's first layer:
// 1 -> 6), with pixels in the vector lanes. dy is first laid out channel by
// channel, each plane with zero borders such that every tap of every input
// pixel lands inside it; then for each tap and f, the whole plane of dx's
// channel c (rows S floats apart, like dy's planes) takes w[tap, c, f]
// times dy's plane f shifted by the tap: one long axpy. The columns past W
// are scratch. Each image is one thread's, summed in a fixed order: the
// same bits for any thread count.
bool backward_data_by_planes(const Window2d& s, int64_t F) {
  return s.h.stride == 1 && s.w.stride == 1 && s.c * F <= 16 && s.w.in >= 8;
}

void backward_data_planes(const Window2d& s, int64_t F, const float* dy, const float* w,
                          float* dx) {
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  const int64_t C = s.c, H = s.h.in, W = s.w.in, OH = s.h.out, OW = s.w.out;
  const int64_t rh = (s.h.k - 1) * s.h.dilation, rw = (s.w.k - 1) * s.w.dilation;
  // dy's planes: output pixel (oh, ow) at (oh + rh, ow + rw); input pixel
  // (ih, iw) takes tap (kh, kw) from (ih + pad + rh - kh * dh, ...)
  const int64_t R = OH + 2 * rh, S = OW + 2 * rw, plane = checked_mul(R, S);
  const int nt = threads_for(2.0 * double(s.n * H * W) * double(C * F * s.h.k * s.w.k), s.n);
  // per thread: one image's planes, S floats of slack (a plane's last row is
  // read S wide), and dx's plane
  const int64_t per_thread = checked_mul(F, plane) + S + H * S;
  float* buf = workspace(Slot::conv_pad, checked_mul(nt, per_thread));
  parallel_region(nt, [&](int t, int nt_actual) {
    float* pn = buf + t * per_thread;
    float* acc = pn + F * plane + S;
    for (int64_t n = s.n * t / nt_actual; n < s.n * (t + 1) / nt_actual; ++n) {
      std::fill(pn, pn + F * plane + S, 0.0f);
      const float* dyn = dy + n * OH * OW * F;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow)
          for (int64_t f = 0; f < F; ++f)
            pn[f * plane + (oh + rh) * S + ow + rw] = dyn[(oh * OW + ow) * F + f];
      float* dxn = dx + n * H * W * C;
      for (int64_t c = 0; c < C; ++c) {
        std::fill(acc, acc + H * S, 0.0f);
        for (int64_t f = 0; f < F; ++f)
          for (int64_t kh = 0; kh < s.h.k; ++kh)
            for (int64_t kw = 0; kw < s.w.k; ++kw) {
              const int64_t at = (s.h.pad_before + rh - kh * s.h.dilation) * S +
                                 s.w.pad_before + rw - kw * s.w.dilation;
              pk.axpy(H * S, w[((kh * s.w.k + kw) * C + c) * F + f], pn + f * plane + at, acc);
            }
        for (int64_t ih = 0; ih < H; ++ih)
          for (int64_t iw = 0; iw < W; ++iw) dxn[(ih * W + iw) * C + c] = acc[ih * S + iw];
      }
    }
  });
}

// dx by scattering: for a block of output pixels of one image, their
// windows' gradients cols (pixels x K) = dy (pixels x F) . w^T (F x K),
// each then added into dx over its window. For strides > 1 and short
// channel runs, where gathering dy for each input pixel (the product's
// columns are then the C channels) wastes most of the work. The threads
// split the images (an image's windows overlap), each summed in pixel
// order: the same bits for any thread count.
void backward_data_scatter(const Window2d& s, int64_t F, const float* dy, const float* w,
                           float* dx) {
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t C = s.c, K = s.h.k * s.w.k * C, OW = s.w.out, OHW = s.h.out * OW;
  const int64_t HWC = s.h.in * s.w.in * C, MR = kr.mr, NR = kr.nr, KC = kr.kc;
  const int64_t panels = ceil_div(K, NR);
  float* bp = workspace(Slot::conv_b, checked_mul(F, panels * NR));
  pack_panels(F, K, NR, [&](int64_t f, int64_t k) { return w[k * F + f]; }, bp);
  // pixels per block: whole strips, their window gradients in about 64 KiB
  const int64_t block = std::max<int64_t>(MR, 16384 / K / MR * MR);
  const int nt = threads_for(2.0 * double(s.n * OHW) * double(K) * double(F), s.n);
  float* cols_all = workspace(Slot::conv_a, checked_mul(nt * block, K));
  parallel_region(nt, [&](int t, int nt_actual) {
    float* cols = cols_all + t * block * K;
    for (int64_t n = s.n * t / nt_actual; n < s.n * (t + 1) / nt_actual; ++n) {
      float* dxn = dx + n * HWC;
      std::fill(dxn, dxn + HWC, 0.0f);
      const float* dyn = dy + n * OHW * F;
      for (int64_t p0 = 0; p0 < OHW; p0 += block) {
        const int64_t nb = std::min(block, OHW - p0);
        for (int64_t pc = 0; pc < F; pc += KC) {
          const int64_t kc = std::min(KC, F - pc);
          for (int64_t i0 = 0; i0 < nb; i0 += MR)
            for (int64_t p = 0; p < panels; ++p)
              kr.tile_strided(kc, dyn + (p0 + i0) * F + pc, F, 1, bp + (p * F + pc) * NR, NR,
                              cols + i0 * K + p * NR, K, std::min(MR, nb - i0),
                              std::min(NR, K - p * NR), 1.0f, pc == 0 ? 0.0f : 1.0f);
        }
        for (int64_t i = 0; i < nb; ++i) {
          const int64_t oh = (p0 + i) / OW, ow = (p0 + i) % OW;
          for (int64_t kh = 0; kh < s.h.k; ++kh) {
            const int64_t ih = oh * s.h.stride - s.h.pad_before + kh * s.h.dilation;
            if (ih < 0 || ih >= s.h.in) continue;
            for (int64_t kw = 0; kw < s.w.k; ++kw) {
              const int64_t iw = ow * s.w.stride - s.w.pad_before + kw * s.w.dilation;
              if (iw < 0 || iw >= s.w.in) continue;
              float* d = dxn + (ih * s.w.in + iw) * C;
              const float* g = cols + i * K + (kh * s.w.k + kw) * C;
              for (int64_t c = 0; c < C; ++c) d[c] += g[c];
            }
          }
        }
      }
    }
  });
}

void direct_backward_data(const Window2d& s, int64_t F, const float* dy, const float* w,
                          float* dx) {
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t Q = s.n * s.h.in * s.w.in, C = s.c, T = s.h.k * s.w.k, Kd = T * F;
  if (Q == 0 || C == 0) return;
  if (Kd == 0 || s.h.out * s.w.out == 0) {
    std::fill(dx, dx + Q * C, 0.0f);
    return;
  }
  if (backward_data_by_planes(s, F)) return backward_data_planes(s, F, dy, w, dx);
  if (s.h.stride > 1 || s.w.stride > 1 || C < kShortRun)
    return backward_data_scatter(s, F, dy, w, dx);
  // Input pixels near the border take some taps from outside dy, and
  // strips holding one are gathered (on small maps, most strips): dy with
  // zero borders such that every tap lands inside costs less.
  {
    const int64_t reach_h = (s.h.k - 1) * s.h.dilation, reach_w = (s.w.k - 1) * s.w.dilation;
    const int64_t top = reach_h - s.h.pad_before, left = reach_w - s.w.pad_before;
    const int64_t bottom = s.h.in + s.h.pad_before - s.h.out;
    const int64_t right = s.w.in + s.w.pad_before - s.w.out;
    // (padding past the window's reach on a side, explicit only: gathered as it is)
    const bool fits = top >= 0 && left >= 0 && bottom >= 0 && right >= 0;
    if (fits && top + left + bottom + right > 0 && s.h.in * s.w.in >= 64) {
      // the padded problem has borders of 0 all round: this is not done again
      Window2d sp = s;
      sp.h.out = s.h.in + reach_h;
      sp.w.out = s.w.in + reach_w;
      sp.h.pad_before = sp.h.pad_after = reach_h;
      sp.w.pad_before = sp.w.pad_after = reach_w;
      return direct_backward_data(
          sp, F, pad_images(s.n, s.h.out, s.w.out, F, top, bottom, left, right, dy), w, dx);
    }
  }
  // wt (Kd x C): row (t, f), column c = w[t, c, f]
  float* bp = workspace(Slot::conv_b, checked_mul(Kd, ceil_div(C, kr.nr) * kr.nr));
  pack_panels(Kd, C, kr.nr, [&](int64_t k, int64_t c) { return w[(k / F * C + c) * F + k % F]; },
              bp);
  // With stride 1, input pixel (ih, iw) takes tap (kh, kw) from output pixel
  // (ih + pad - kh*dh, iw + pad - kw*dw): a strip whose taps all land in dy
  // reads it in place (element (t, f) at koff[k] from the pixel's origin).
  const int64_t H = s.h.in, W = s.w.in, OH = s.h.out, OW = s.w.out;
  const int64_t reach_h = (s.h.k - 1) * s.h.dilation, reach_w = (s.w.k - 1) * s.w.dilation;
  const bool can_be_inside = reach_h < OH && reach_w < OW;
  std::vector<int64_t> koff(static_cast<size_t>(Kd));
  for (int64_t k = 0; can_be_inside && k < Kd; ++k) {
    const int64_t t = k / F;
    koff[size_t(k)] = -(t / s.w.k * s.h.dilation * OW + t % s.w.k * s.w.dilation) * F + k % F;
  }
  auto offsets = [&](int64_t q0, int64_t m, int64_t* roff) {
    int64_t n = q0 / (H * W), ih = q0 / W % H, iw = q0 % W;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t oh0 = ih + s.h.pad_before, ow0 = iw + s.w.pad_before;
      if (oh0 - reach_h < 0 || oh0 >= OH || ow0 - reach_w < 0 || ow0 >= OW) return false;
      roff[i] = ((n * OH + oh0) * OW + ow0) * F;
      if (++iw == W) {
        iw = 0;
        if (++ih == H) ih = 0, ++n;
      }
    }
    return true;
  };
  strip_gemm(kr, Q, Kd, C, dy, can_be_inside ? koff.data() : nullptr, offsets, DyRow{s, F, dy},
             bp, dx, nullptr, false);
}

// The output gradient for backward_weight_by_rows, staged a group of rows
// at a time: dy itself, masked by y > 0 when y is given (the gradient
// through a fused ReLU). A group is one output row.
struct DyRows {
  const float* dy;
  const float* y;
  int64_t rows, OW, F;
  int64_t groups() const { return rows; }
  int64_t span() const { return 1; }     // output rows a group
  int64_t width() const { return OW; }   // pixels of a row that may have a gradient
  int64_t first(int64_t gi) const { return gi; }
  // g (rows Fp floats a pixel) for group gi, its column sums added to sums
  void stage(const PointwiseKernels& pk, int64_t gi, float* g, int64_t Fp, float* sums) const {
    pk.relu_mask_rows(OW, F, y ? y + gi * OW * F : nullptr, dy + gi * OW * F, F, g, Fp, sums);
  }
};

// The same through a max pool of kh x kw windows at stride (kh, kw) after
// the ReLU (PoolGrad): a group is a row of windows (kh output rows); rows
// and columns past the last window get no gradient and are left out.
struct PooledRows {
  const float* y;
  PoolGrad pool;
  int64_t N, OH, OW, F;
  int64_t PH() const { return OH / pool.kh; }
  int64_t PW() const { return OW / pool.kw; }
  int64_t groups() const { return N * PH(); }
  int64_t span() const { return pool.kh; }
  int64_t width() const { return PW() * pool.kw; }
  int64_t first(int64_t gi) const { return gi / PH() * OH + gi % PH() * pool.kh; }
  void stage(const PointwiseKernels& pk, int64_t gi, float* g, int64_t Fp, float* sums) const {
    write(pk, gi, g, Fp, OW * Fp, sums);
  }
  // g for group gi, cells g_cell floats apart, rows g_row apart
  void write(const PointwiseKernels& pk, int64_t gi, float* g, int64_t g_cell, int64_t g_row,
             float* sums) const {
    const int64_t at = gi * PW() * F;
    if (pool.arg)
      pk.pool_arg_grad(PW(), pool.kh, pool.kw, F, pool.arg + at, pool.p + at, pool.dp + at, g,
                       g_cell, g_row, sums);
    else
      pk.pool_relu_grad(PW(), pool.kh, pool.kw, F, y + first(gi) * OW * F, OW * F, pool.p + at,
                        pool.dp + at, g, g_cell, g_row, sums);
  }
};

// dw (K x F) = sum over the output rows r of A_r (K x OW) . g_r (OW x F),
// where A_r(k, ow) is element k of the window of pixel ow of row r, read in
// place from an image without padding (every window inside it): A_r's rows
// are the taps at koff[k] from the row's first window, its columns the
// pixels at stride sw*C. g comes from `rows` (DyRows, PooledRows), staged
// a group of rows at a time; db (when not null) gets g's column sums in
// the same pass. For short channel runs, where gathering windows into
// panels costs as much as the arithmetic. The groups are cut into a fixed
// number of blocks, set by the shape alone; the threads split the blocks,
// and the blocks' partial sums are added in block order: the same bits for
// any thread count.
template <class Rows>
void backward_weight_by_rows(const Window2d& s, int64_t F, const float* x, const Rows& rows,
                             float* dw, float* db) {
  const GemmKernels& kr = gemm_kernels_active();
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  const int64_t C = s.c, K = s.h.k * s.w.k * C, OW = s.w.out, groups = rows.groups();
  const int64_t span = rows.span(), width = rows.width();
  const int64_t MR = kr.mr, NR = kr.nr, Fp = ceil_div(F, NR) * NR;
  if (groups == 0 || width == 0) {  // no pixel has a gradient
    std::fill(dw, dw + K * F, 0.0f);
    if (db) std::fill(db, db + F, 0.0f);
    return;
  }
  const std::vector<int64_t> koff = window_offsets(s, s.w.in);
  // more blocks than any thread count here needs to share evenly, but their
  // partial sums in at most about 4 Mi floats
  const int64_t part = K * F + F;  // a block's dw, then its db
  const int64_t most = std::clamp<int64_t>((int64_t(4) << 20) / part, 4, 64);
  const int64_t per_block = ceil_div(groups, most), blocks = ceil_div(groups, per_block);
  const int nt = threads_for(2.0 * double(K) * double(groups * span * width) * double(F), blocks);
  float* parts = workspace(Slot::conv_c, checked_mul(blocks, part));
  // g's pixels are NR-padded (B rows must hold NR readable floats)
  const int64_t g_size = checked_mul(span * OW, Fp);
  float* g_all = workspace(Slot::conv_b, checked_mul(nt, g_size));
  parallel_region(nt, [&](int t, int nt_actual) {
    float* g = g_all + t * g_size;
    for (int64_t px = 0; px < span * OW; ++px) std::fill(g + px * Fp + F, g + (px + 1) * Fp, 0.0f);
    for (int64_t blk = blocks * t / nt_actual; blk < blocks * (t + 1) / nt_actual; ++blk) {
      float* dwb = parts + blk * part;
      float* dbb = dwb + K * F;
      std::fill(dbb, dbb + F, 0.0f);
      const int64_t g0 = blk * per_block, g1 = std::min(groups, g0 + per_block);
      for (int64_t gi = g0; gi < g1; ++gi) {
        rows.stage(pk, gi, g, Fp, dbb);
        for (int64_t i = 0; i < span; ++i) {
          const int64_t r = rows.first(gi) + i, n = r / s.h.out, oh = r % s.h.out;
          const float* a = x + (n * s.h.in + oh * s.h.stride) * s.w.in * C;
          const float beta = gi == g0 && i == 0 ? 0.0f : 1.0f;
          for (int64_t k0 = 0; k0 < K; k0 += MR)
            for (int64_t j = 0; j < F; j += NR)
              kr.tile_row_indexed(width, a, koff.data() + k0, s.w.stride * C, g + i * OW * Fp + j,
                                  Fp, dwb + k0 * F + j, F, std::min(MR, K - k0),
                                  std::min(NR, F - j), 1.0f, beta);
        }
      }
    }
  });
  // dw and db: the sums over the blocks of their parts, each element's in
  // block order; the threads split the elements
  parallel_for(part, threads_for(double(part * blocks), ceil_div(part, 1024)),
               [&](int64_t e0, int64_t e1) {
    for (int64_t e = e0; e < e1; ++e) {
      float sum = parts[e];
      for (int64_t blk = 1; blk < blocks; ++blk) sum += parts[blk * part + e];
      if (e < K * F)
        dw[e] = sum;
      else if (db)
        db[e - K * F] = sum;
    }
  });
}

// The weight gradient goes by rows (backward_weight_by_rows) for short
// channel runs on rows of at least 8 pixels.
bool weight_by_rows(const Window2d& s) { return s.c <= kShortRun && s.w.out >= 8; }

// backward_weight_by_rows on an image with padding: on a padded copy.
template <class Rows>
void weight_by_rows_padded(const Window2d& s, int64_t F, const float* x, const Rows& rows,
                           float* dw, float* db) {
  if (!has_padding(s)) return backward_weight_by_rows(s, F, x, rows, dw, db);
  const Padded p = pad_image(s, x);
  backward_weight_by_rows(p.s, F, p.x, rows, dw, db);
}

void direct_backward_weight(const Window2d& s, int64_t F, const float* x, const float* dy,
                            float* dw) {
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t C = s.c, T = s.h.k * s.w.k, K = T * C, P = s.n * s.h.out * s.w.out;
  if (weight_by_rows(s))
    return weight_by_rows_padded(s, F, x, DyRows{dy, nullptr, s.n * s.h.out, s.w.out, F}, dw,
                                 nullptr);
  // dw^T (F x K) = dy^T (F x P) . im2col(x) (P x K), over the pixels in KC
  // blocks. Each block of im2col is gathered straight into the
  // microkernel's panels (a pixel's taps are runs of C contiguous channels)
  // and used by every strip of F; the threads split the panels (columns of
  // dw^T), so nothing is gathered twice. dw^T is transposed into dw at the end.
  const int64_t MR = kr.mr, NR = kr.nr, KC = kr.kc, panels = ceil_div(K, NR);
  const int64_t f_strips = ceil_div(F, MR);
  const int nt = threads_for(2.0 * double(K) * double(P) * double(F), panels);
  float* a_all = workspace(Slot::conv_a, checked_mul(nt * MR, KC));
  float* b_all = workspace(Slot::conv_b, checked_mul(KC, panels * NR));
  float* dwt = workspace(Slot::conv_c, checked_mul(F, K));
  const Im2colRow im2col{s, x};
  std::vector<Im2colRow::Origin> origins(size_t(nt) * size_t(KC));
  // element j = (tap, c) of a pixel whose window lies inside the image is at
  // koff[j] from the window's first cell (short channel runs make the
  // gather slow: conv1 has C = 3)
  const int64_t reach_h = (s.h.k - 1) * s.h.dilation, reach_w = (s.w.k - 1) * s.w.dilation;
  const bool can_be_inside = reach_h < s.h.in && reach_w < s.w.in;
  const std::vector<int64_t> koff =
      can_be_inside ? window_offsets(s, s.w.in) : std::vector<int64_t>();
  // each panel's elements as runs contiguous in the image (a tap's
  // channels, or adjoining taps'), copied run by run: runs[first[p] ..
  // first[p+1]) are panel p's, as (first element, length)
  std::vector<std::pair<int64_t, int64_t>> runs;
  std::vector<size_t> first(static_cast<size_t>(panels) + 1, 0);
  for (int64_t p = 0; can_be_inside && p < panels; ++p) {
    const int64_t j = p * NR, end = std::min(NR, K - j) + j;
    for (int64_t k = j; k < end;) {
      int64_t n = 1;
      while (k + n < end && koff[size_t(k + n)] == koff[size_t(k)] + n) ++n;
      runs.emplace_back(k, n);
      k += n;
    }
    first[size_t(p) + 1] = runs.size();
  }
  parallel_region(nt, [&](int t, int nt_actual) {
    const int64_t p0 = panels * t / nt_actual, p1 = panels * (t + 1) / nt_actual;
    if (p0 >= p1) return;
    float* ap = a_all + t * MR * KC;
    Im2colRow::Origin* org = origins.data() + t * KC;
    for (int64_t pc = 0; pc < P; pc += KC) {
      const int64_t kc = std::min(KC, P - pc);
      for (int64_t k = 0; k < kc; ++k) org[k] = im2col.origin(pc + k);
      // panel p of this block at b_all + p * KC * NR: a thread's panels never
      // overlap another's, even when a short last block changes kc
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t j = p * NR, n = std::min(NR, K - j);
        for (int64_t k = 0; k < kc; ++k) {
          float* row = b_all + (p * KC + k) * NR;
          const Im2colRow::Origin& o = org[k];
          if (can_be_inside && o.ih0 >= 0 && o.ih0 + reach_h < s.h.in && o.iw0 >= 0 &&
              o.iw0 + reach_w < s.w.in) {  // the whole window inside: read by offsets
            const float* src = x + ((o.image_row + o.ih0) * s.w.in + o.iw0) * C;
            for (size_t r = first[size_t(p)]; r < first[size_t(p) + 1]; ++r)
              copy_run(row + runs[r].first - j, src + koff[size_t(runs[r].first)],
                       runs[r].second);
          } else {
            im2col.gather(o, j, n, row);
          }
          if (n < NR) copy_run(row + n, nullptr, NR - n);
        }
      }
      const float beta = pc == 0 ? 0.0f : 1.0f;
      for (int64_t fs = 0; fs < f_strips; ++fs) {
        const int64_t f0 = fs * MR, m = std::min(MR, F - f0);
        kr.pack_a(m, kc, dy + pc * F + f0, 1, F, ap);  // rows f of dy^T: columns of dy
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t j = p * NR, n = std::min(NR, K - j);
          kr.tile_packed(kc, ap, b_all + p * KC * NR, NR, dwt + f0 * K + j, K, m, n, 1.0f,
                         beta);
        }
      }
    }
  });
  for (int64_t k = 0; k < K; ++k)
    for (int64_t f = 0; f < F; ++f) dw[k * F + f] = dwt[f * K + k];
}

// g = dy where y > 0, else 0 (when y: the gradient through a fused ReLU),
// and db = the column sums of g (of dy when no y; when db is not nullptr),
// in one pass. The threads split fixed blocks of pixels, each summed in
// order, and the blocks' sums are added in order: the same bits for any
// thread count.
void mask_and_bias(int64_t P, int64_t F, const float* dy, const float* y, float* g, float* db) {
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  constexpr int64_t kBlock = 256;
  const int64_t blocks = ceil_div(P, kBlock);
  std::vector<float> sums(db ? size_t(blocks * F) : 0, 0.0f);
  parallel_for(blocks, threads_for(double(P * F) * 2.0, blocks), [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t p0 = b * kBlock, m = std::min(P, p0 + kBlock) - p0;
      pk.relu_mask_rows(m, F, y ? y + p0 * F : nullptr, dy + p0 * F, F, y ? g + p0 * F : nullptr,
                        F, db ? sums.data() + b * F : nullptr);
    }
  });
  if (!db) return;
  std::fill(db, db + F, 0.0f);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t f = 0; f < F; ++f) db[f] += sums[size_t(b * F + f)];
}

// A 1x1 window with stride 1 and no padding: the image is a (pixels x C)
// matrix, and every pass a plain GEMM on the activations in place.
bool is_pointwise(const Window2d& s) {
  return s.h.k == 1 && s.w.k == 1 && s.h.stride == 1 && s.w.stride == 1 && !has_padding(s);
}

}  // namespace

const char* conv2d_plan(const Window2d& s, int64_t F, ConvPass pass, ConvAlgorithm algo) {
  const int m = conv_winograd_tile(s, F, pass, algo);
  return m == 0 ? "direct" : m == 2 ? "winograd2" : "winograd4";
}

void conv2d_forward(const Window2d& s, int64_t F, const float* x, const float* w, const float* b,
                    bool relu, float* y, ConvAlgorithm algo) {
  if (const int m = conv_winograd_tile(s, F, ConvPass::forward, algo))
    return winograd_forward(s, F, m, x, w, b, relu, y);
  const int64_t P = s.n * s.h.out * s.w.out;
  if (!is_pointwise(s) || P * F == 0) return direct_forward(s, F, x, w, b, relu, y);
  gemm(false, false, P, F, s.c, 1.0f, x, s.c, w, F, 0.0f, y, F);
  if (b == nullptr && !relu) return;
  parallel_for(P, threads_for(double(P * F) * 4.0, P), [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      float* row = y + p * F;
      if (b)
        for (int64_t f = 0; f < F; ++f) row[f] += b[f];
      if (relu)
        for (int64_t f = 0; f < F; ++f) row[f] = row[f] < 0.0f ? 0.0f : row[f];
    }
  });
}

void conv2d_backward_data(const Window2d& s, int64_t F, const float* dy, const float* w,
                          float* dx, ConvAlgorithm algo) {
  if (const int m = conv_winograd_tile(s, F, ConvPass::backward_data, algo))
    return winograd_backward_data(s, F, m, dy, w, dx);
  if (is_pointwise(s))  // dx (pixels x C) = dy (pixels x F) . w^T
    return gemm(false, true, s.n * s.h.in * s.w.in, s.c, F, 1.0f, dy, F, w, F, 0.0f, dx, s.c);
  direct_backward_data(s, F, dy, w, dx);
}

void conv2d_backward_weight(const Window2d& s, int64_t F, const float* x, const float* dy,
                            float* dw, ConvAlgorithm algo) {
  const int64_t K = s.h.k * s.w.k * s.c, P = s.n * s.h.out * s.w.out;
  if (K == 0 || F == 0) return;
  if (P == 0) {
    std::fill(dw, dw + K * F, 0.0f);
    return;
  }
  if (const int m = conv_winograd_tile(s, F, ConvPass::backward_weight, algo))
    return winograd_backward_weight(s, F, m, x, dy, dw);
  if (is_pointwise(s))  // dw (C x F) = x^T (C x pixels) . dy (pixels x F)
    return gemm(true, false, s.c, F, P, 1.0f, x, s.c, dy, F, 0.0f, dw, F);
  direct_backward_weight(s, F, x, dy, dw);
}

// No dx (a first layer) and a weight gradient by rows: the output gradient
// (the ReLU's mask, the pool's routing) is staged in that pass, not written.
bool gradient_in_weight_pass(const Window2d& s, int64_t F, const float* dx, const float* dw,
                             ConvAlgorithm algo) {
  const int64_t P = s.n * s.h.out * s.w.out, K = s.h.k * s.w.k * s.c;
  return !dx && dw && P > 0 && K > 0 && F > 0 && !is_pointwise(s) && weight_by_rows(s) &&
         conv_winograd_tile(s, F, ConvPass::backward_weight, algo) == 0;
}

void conv2d_backward(const Window2d& s, int64_t F, const float* x, const float* w,
                     const float* dy, const float* y, float* dx, float* dw, float* db,
                     ConvAlgorithm algo) {
  const int64_t P = s.n * s.h.out * s.w.out;
  // the ReLU mask and the bias sums taken in the weight gradient's pass over dy
  if (gradient_in_weight_pass(s, F, dx, dw, algo))
    return weight_by_rows_padded(s, F, x, DyRows{dy, y, s.n * s.h.out, s.w.out, F}, dw, db);
  if (y && (dx || dw || db)) {
    float* g = workspace(Slot::conv_dy, checked_mul(P, F));
    mask_and_bias(P, F, dy, y, g, db);
    dy = g;
  } else if (db) {
    mask_and_bias(P, F, dy, nullptr, nullptr, db);
  }
  if (dx) conv2d_backward_data(s, F, dy, w, dx, algo);
  if (dw) conv2d_backward_weight(s, F, x, dy, dw, algo);
}

void conv2d_pool_backward(const Window2d& s, int64_t F, const float* x, const float* w,
                          const float* y, const PoolGrad& pool, float* dx, float* dw, float* db,
                          ConvAlgorithm algo) {
  const int64_t P = s.n * s.h.out * s.w.out, OW = s.w.out;
  const PooledRows rows{y, pool, s.n, s.h.out, OW, F};
  if (gradient_in_weight_pass(s, F, dx, dw, algo))
    return weight_by_rows_padded(s, F, x, rows, dw, db);
  // the convolution's output gradient written out, then its backward
  float* g = workspace(Slot::conv_dy, checked_mul(P, F));
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  const int64_t groups = rows.groups(), PH = rows.PH(), kh = pool.kh, width = rows.width();
  constexpr int64_t kBlocks = 64;
  const int64_t per_block = std::max<int64_t>(1, ceil_div(groups, kBlocks));
  const int64_t blocks = ceil_div(groups, per_block);
  std::vector<float> sums(size_t(blocks * F), 0.0f);
  if (groups == 0) std::fill(g, g + P * F, 0.0f);
  parallel_for(blocks, threads_for(double(P * F) * 4.0, blocks), [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk)
      for (int64_t gi = blk * per_block; gi < std::min(groups, (blk + 1) * per_block); ++gi) {
        float* gg = g + rows.first(gi) * OW * F;
        rows.write(pk, gi, gg, F, OW * F, sums.data() + blk * F);
        for (int64_t a = 0; a < kh; ++a)  // columns past the last window
          std::fill(gg + (a * OW + width) * F, gg + (a + 1) * OW * F, 0.0f);
        if (gi % PH == PH - 1)  // rows past the image's last row of windows
          std::fill(gg + kh * OW * F, g + (gi / PH + 1) * s.h.out * OW * F, 0.0f);
      }
  });
  if (db) {
    std::fill(db, db + F, 0.0f);
    for (int64_t blk = 0; blk < blocks; ++blk)
      for (int64_t f = 0; f < F; ++f) db[f] += sums[size_t(blk * F + f)];
  }
  if (dx || dw) conv2d_backward(s, F, x, w, g, nullptr, dx, dw, nullptr, algo);
}

void conv2d_relu_pool_forward(const Window2d& s, int64_t F, const float* x, const float* w,
                              const float* b, int64_t kh, int64_t kw, float* p, uint8_t* arg,
                              ConvAlgorithm algo) {
  const PoolOut out{kh, kw, p, arg};
  // the same sums as conv2d_forward's: the direct path pooled in its tiles'
  // scratch; Winograd and the 1x1 GEMM into a scratch, then pooled
  if (conv_winograd_tile(s, F, ConvPass::forward, algo) == 0 && !is_pointwise(s))
    return direct_forward(s, F, x, w, b, true, nullptr, &out);
  const PointwiseKernels& pk = active_kernels<PointwiseKernels>();
  const int64_t OH = s.h.out, OW = s.w.out, PH = OH / kh, PW = OW / kw, rows = s.n * PH;
  float* y = workspace(Slot::conv_dy, checked_mul(checked_mul(s.n * OH, OW), F));
  conv2d_forward(s, F, x, w, b, true, y, algo);
  std::vector<int64_t> coff(static_cast<size_t>(kh * kw));
  for (int64_t j = 0; j < kh * kw; ++j) coff[size_t(j)] = (j / kw * OW + j % kw) * F;
  parallel_for(rows, threads_for(double(rows * PW * kh * kw * F) * 2.0, rows),
               [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      pk.max_pool_groups(PW, kh * kw, F, y + (r / PH * OH + r % PH * kh) * OW * F, kw * F,
                         coff.data(), p + r * PW * F, arg + r * PW * F);
  });
}

void conv2d_forward_reference(const Window2d& s, int64_t F, const float* x, const float* w,
                              const float* b, bool relu, float* y) {
  const int64_t C = s.c;
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t oh = 0; oh < s.h.out; ++oh)
      for (int64_t ow = 0; ow < s.w.out; ++ow)
        for (int64_t f = 0; f < F; ++f) {
          double acc = b ? b[f] : 0.0;
          for (int64_t kh = 0; kh < s.h.k; ++kh)
            for (int64_t kw = 0; kw < s.w.k; ++kw) {
              const int64_t ih = oh * s.h.stride - s.h.pad_before + kh * s.h.dilation;
              const int64_t iw = ow * s.w.stride - s.w.pad_before + kw * s.w.dilation;
              if (ih < 0 || ih >= s.h.in || iw < 0 || iw >= s.w.in) continue;
              for (int64_t c = 0; c < C; ++c)
                acc += double(x[((n * s.h.in + ih) * s.w.in + iw) * C + c]) *
                       double(w[((kh * s.w.k + kw) * C + c) * F + f]);
            }
          const float v = float(acc);
          y[((n * s.h.out + oh) * s.w.out + ow) * F + f] = relu && v < 0.0f ? 0.0f : v;
        }
}

}  // namespace fastnn
