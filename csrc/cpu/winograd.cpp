// Winograd convolution F(m x m, 3 x 3) (Lavin and Gray), m = 2 or 4, over
// NHWC images: for each (m+2) x (m+2) tile d of the input (overlapping by
// 2) and m x m tile of the output,
//
//   forward          y  = A^T [ U . V ] A,   U = G w G^T,  V = B^T d B
//   backward-data    the forward on dy, with the filters flipped and their
//                    C/F axes swapped, and padding 2 - p
//   backward-weight  dw = G^T [ sum over tiles V . (A dy A^T) ] G
//
// where . is, at each of the (m+2)^2 positions xi, a matrix product over
// the channels: M[xi] (tiles x F) = V[xi] (tiles x C) U[xi] (C x F). Those
// products run on the GEMM microkernels, the transforms on the per-ISA
// loops of isa/winograd_*.cpp. Tiles go in blocks small enough that a
// block's transformed input and products stay in L2 between the three
// stages.
//
// Error: each output is a sum of (m+2)^2 transformed products whose
// magnitudes grow with the transform coefficients (up to 5 and 8 for m = 4,
// 1 for m = 2), so the float32 error bound grows with m; tests/test_winograd.py
// states and checks it.
//
// Determinism: forward and backward-data tiles are computed each by one
// thread in a fixed order; backward-weight sums over the tiles in block
// order, a block's tiles in order, whatever the thread count.
#include "cpu/winograd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/isa/gemm_kernels.h"
#include "cpu/isa/winograd_kernels.h"
#include "cpu/workspace.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace fastnn {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

const WinogradKernels& winograd_kernels() { return active_kernels<WinogradKernels>(); }

// FLOPs one thread should have before a second is worth starting.
constexpr double kFlopsPerThread = 6.0e5;
int threads_for(double flops, int64_t items) {
  const double want = std::max(1.0, flops / kFlopsPerThread);
  return int(std::max<int64_t>(
      1, std::min<int64_t>({int64_t(get_num_threads()), int64_t(want), items})));
}

// A convolution as the tiles see it: an image (n, h, w, c) in, (n, oh, ow,
// f) out, output cell (y, x) reading input cells (y - ph + kh, x - pw + kw),
// zero outside the image (ph, pw may be negative: a crop).
struct Geometry {
  int64_t n, h, w, c, oh, ow, f, ph, pw;
  int64_t tiles_h(int m) const { return ceil_div(oh, m); }
  int64_t tiles_w(int m) const { return ceil_div(ow, m); }
  int64_t tiles(int m) const { return n * tiles_h(m) * tiles_w(m); }
};

// Where tile t's cells are: input cell (i, j) of an s x s tile with origin
// (y0, x0) in the image, or `zero` outside it; output cell likewise or
// `dump`.
struct TileOrigin {
  int64_t img, y0, x0;
};
TileOrigin tile_origin(const Geometry& g, int m, int64_t t) {
  const int64_t th = g.tiles_h(m), tw = g.tiles_w(m);
  return {t / (th * tw), t % (th * tw) / tw * m, t % tw * m};
}
template <class T>
void cell_pointers(T* base, int64_t img, int64_t y0, int64_t x0, int64_t H, int64_t W,
                   int64_t ch, int s, T* outside, T** cells) {
  for (int i = 0; i < s; ++i)
    for (int j = 0; j < s; ++j) {
      const int64_t y = y0 + i, x = x0 + j;
      cells[i * s + j] =
          y >= 0 && y < H && x >= 0 && x < W ? base + ((img * H + y) * W + x) * ch : outside;
    }
}

// U[xi][k][0:fp] = (G w G^T)[xi] for the filters w of input k, tap t at
// w + t * K * F + k * F (F outputs), columns F..fp-1 zero.
void transform_filters(int m, int64_t K, int64_t F, int64_t fp, const float* w, float* U) {
  const WinogradKernels& wk = winograd_kernels();
  const int A2 = (m + 2) * (m + 2);
  parallel_for(K, threads_for(double(K * F) * 100.0, K), [&](int64_t k0, int64_t k1) {
    const float* taps[9];
    for (int64_t k = k0; k < k1; ++k) {
      for (int t = 0; t < 9; ++t) taps[t] = w + (t * K + k) * F;
      float* u = U + k * fp;
      wk.filter[m == 2 ? 0 : 1](F, taps, u, K * fp);
      for (int xi = 0; xi < A2; ++xi) std::fill(u + xi * K * fp + F, u + xi * K * fp + fp, 0.0f);
    }
  });
}

// Tiles per block: the block's transformed tiles and products, (m+2)^2
// rows of (C + F) floats per tile, in about `budget` bytes, a multiple of
// `unit` in [unit, most].
int64_t tile_block(int m, int64_t C, int64_t F, int64_t budget, int64_t unit, int64_t most) {
  const int64_t per_tile = int64_t(m + 2) * (m + 2) * (C + F) * 4;
  const int64_t fit = std::max<int64_t>(1, budget / std::max<int64_t>(per_tile, 1));
  return std::max(unit, std::min(most, fit / unit * unit));
}

// out = the convolution g of `in` with transformed filters U ((m+2)^2
// planes of C x fp), + bias, then ReLU.
void winograd_run(const Geometry& g, int m, const float* in, const float* U, int64_t fp,
                  const float* bias, bool relu, float* out) {
  const WinogradKernels& wk = winograd_kernels();
  const GemmKernels& kr = gemm_kernels_active();
  const int A = m + 2, A2 = A * A, mi = m == 2 ? 0 : 1;
  const int64_t C = g.c, F = g.f, MR = kr.mr, NR = kr.nr, KC = kr.kc;
  // blocks of about 256 KiB (half of Zen 3's L2): they stay in L2 from the
  // input transform to the output transform. Filters too large to stay in
  // L2 beside them stream from L3 once per block: larger blocks then, so
  // that each filter panel serves more tiles.
  const int64_t filter_bytes = int64_t(m + 2) * (m + 2) * C * fp * 4;
  const int64_t T = g.tiles(m),
                tb = filter_bytes > (384 << 10) ? tile_block(m, C, F, 1 << 20, MR, 16 * MR)
                                                : tile_block(m, C, F, 256 << 10, MR, 8 * MR);
  const int64_t blocks = ceil_div(T, tb);
  const int nt = threads_for(2.0 * double(A2) * double(T) * double(C * F), blocks);
  const int64_t per_thread = A2 * tb * (C + F) + F;  // V, M and a scratch run
  float* buf = workspace(Slot::conv_a, checked_mul(nt, per_thread));
  float* zeros = workspace(Slot::conv_c, C);
  std::fill(zeros, zeros + C, 0.0f);
  const float* zero = zeros;
  const int64_t panels = ceil_div(F, NR);
  parallel_region(nt, [&](int t, int nt_actual) {
    float* V = buf + t * per_thread;
    float* M = V + A2 * tb * C;
    float* dump = M + A2 * tb * F;
    const float* d[36];
    float* y[16];
    for (int64_t blk = blocks * t / nt_actual; blk < blocks * (t + 1) / nt_actual; ++blk) {
      const int64_t t0 = blk * tb, nb = std::min(tb, T - t0);
      for (int64_t i = 0; i < nb; ++i) {
        const TileOrigin o = tile_origin(g, m, t0 + i);
        cell_pointers(in, o.img, o.y0 - g.ph, o.x0 - g.pw, g.h, g.w, C, A, zero, d);
        wk.input[mi](C, d, V + i * C, tb * C);
      }
      for (int xi = 0; xi < A2; ++xi) {
        const float* v = V + xi * tb * C;
        const float* u = U + xi * C * fp;
        float* mm = M + xi * tb * F;
        for (int64_t pc = 0; pc < C; pc += KC) {
          const int64_t kc = std::min(KC, C - pc);
          for (int64_t p = 0; p < panels; ++p)
            for (int64_t i0 = 0; i0 < nb; i0 += MR)
              kr.tile_strided(kc, v + i0 * C + pc, C, 1, u + pc * fp + p * NR, fp,
                              mm + i0 * F + p * NR, F, std::min(MR, nb - i0),
                              std::min(NR, F - p * NR), 1.0f, pc == 0 ? 0.0f : 1.0f);
        }
      }
      for (int64_t i = 0; i < nb; ++i) {
        const TileOrigin o = tile_origin(g, m, t0 + i);
        cell_pointers(out, o.img, o.y0, o.x0, g.oh, g.ow, F, m, dump, y);
        wk.output[mi](F, M + i * F, tb * F, bias, relu, y);
      }
    }
  });
}

Geometry forward_geometry(const Window2d& s, int64_t F) {
  return {s.n, s.h.in, s.w.in, s.c, s.h.out, s.w.out, F, s.h.pad_before, s.w.pad_before};
}

// The algorithm FASTNN_CONV_ALGORITHM asks for (auto when unset or empty),
// read at each call (a lookup costs far less than any convolution).
ConvAlgorithm environment_algorithm() {
  const char* v = std::getenv("FASTNN_CONV_ALGORITHM");
  if (v == nullptr || *v == '\0') return ConvAlgorithm::auto_;
  return parse_conv_algorithm(v, "the environment variable FASTNN_CONV_ALGORITHM");
}

// Estimated time of a pass in units of one FMA-FLOP at peak. Products
// run at the microkernel's efficiency, less for a short K and for vector
// lanes or register rows left empty by N or M; Winograd's transforms cost
// about two dozen such units per transformed element; the direct
// backward-data runs at about half the forward's rate when it gathers dy,
// a little more when it scatters window gradients.
double round_up(double a, double b) { return std::ceil(a / b) * b; }
double product_efficiency(double m, double n, double k) {
  const GemmKernels& kr = gemm_kernels_active();
  return 0.85 * k / (k + 8.0) * n / round_up(n, kr.nr) * m / round_up(m, kr.mr);
}
double direct_cost(const Window2d& s, int64_t F, ConvPass pass) {
  const GemmKernels& kr = gemm_kernels_active();
  const double C = double(s.c), K = double(s.h.k * s.w.k) * C;
  // the columns of the product: F, or for backward-data C (gathered dy)
  // or, for short channel runs, the K elements of a window (scattered)
  double cols = double(F), rate = 0.8;
  if (pass == ConvPass::backward_data) {
    const bool scatter = s.c < 16;  // conv2d.cpp's kShortRun (Winograd's windows have stride 1)
    cols = scatter ? K : C;
    rate = scatter ? 0.6 : 0.5;
  }
  return 2.0 * double(s.n * s.h.out * s.w.out) * K * double(F) /
         (rate * cols / round_up(cols, kr.nr));
}
double winograd_cost(const Window2d& s, int64_t F, ConvPass pass, int m) {
  const bool data = pass == ConvPass::backward_data;
  const Geometry g = data ? Geometry{s.n, s.h.out, s.w.out, F, s.h.in, s.w.in, s.c, 0, 0}
                          : forward_geometry(s, F);
  const double tiles = double(g.tiles(m)), a2 = double((m + 2) * (m + 2));
  const double cin = double(g.c), cout = double(g.f);
  const double eff = pass == ConvPass::backward_weight ? product_efficiency(cin, cout, 64.0)
                                                       : product_efficiency(1e9, cout, cin);
  return 2.0 * a2 * tiles * cin * cout / eff + 24.0 * a2 * tiles * (cin + cout);
}

}  // namespace

ConvAlgorithm parse_conv_algorithm(const std::string& name, const char* what) {
  if (name == "auto") return ConvAlgorithm::auto_;
  if (name == "direct") return ConvAlgorithm::direct;
  if (name == "winograd") return ConvAlgorithm::winograd;
  if (name == "winograd2") return ConvAlgorithm::winograd2;
  if (name == "winograd4") return ConvAlgorithm::winograd4;
  throw std::invalid_argument(str_cat(
      what, " must be 'auto', 'direct', 'winograd', 'winograd2' or 'winograd4', got '", name,
      "'"));
}

bool winograd_applies(const Window2d& s) {
  return s.h.k == 3 && s.w.k == 3 && s.h.stride == 1 && s.w.stride == 1 && s.h.dilation == 1 &&
         s.w.dilation == 1;
}

int conv_winograd_tile(const Window2d& s, int64_t F, ConvPass pass, ConvAlgorithm algo) {
  const bool forced = algo != ConvAlgorithm::auto_;
  if (!forced) algo = environment_algorithm();
  if (algo == ConvAlgorithm::direct) return 0;
  if (!winograd_applies(s)) {
    FASTNN_CHECK(!forced, "argument 'algorithm': Winograd needs a 3x3 window with stride 1 and "
                 "dilation 1, got ", s.h.k, "x", s.w.k, " stride (", s.h.stride, ", ", s.w.stride,
                 ") dilation (", s.h.dilation, ", ", s.w.dilation, ")");
    return 0;  // FASTNN_CONV_ALGORITHM=winograd leaves other windows to the direct path
  }
  if (s.n * s.h.out * s.w.out * s.c * F == 0) return 0;
  if (algo == ConvAlgorithm::winograd2) return 2;
  if (algo == ConvAlgorithm::winograd4) return 4;
  // F(4x4,3x3) only where clearly cheaper: F(2x2,3x3) is the more accurate
  const double c2 = winograd_cost(s, F, pass, 2), c4 = winograd_cost(s, F, pass, 4);
  const int m = c4 < 0.9 * c2 ? 4 : 2;
  if (algo == ConvAlgorithm::winograd) return m;
  return std::min(c2, c4) < direct_cost(s, F, pass) ? m : 0;
}

void winograd_forward(const Window2d& s, int64_t F, int m, const float* x, const float* w,
                      const float* b, bool relu, float* y) {
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t C = s.c, fp = ceil_div(F, kr.nr) * kr.nr;
  float* U = workspace(Slot::conv_b, checked_mul(int64_t(m + 2) * (m + 2) * C, fp));
  transform_filters(m, C, F, fp, w, U);
  winograd_run(forward_geometry(s, F), m, x, U, fp, b, relu, y);
}

void winograd_backward_data(const Window2d& s, int64_t F, int m, const float* dy,
                            const float* w, float* dx) {
  const GemmKernels& kr = gemm_kernels_active();
  const int64_t C = s.c, cp = ceil_div(C, kr.nr) * kr.nr;
  // the filters of the transposed convolution: tap 8 - t of w with its C
  // and F axes swapped
  float* wt = workspace(Slot::conv_pad, checked_mul(9 * C, F));
  for (int t = 0; t < 9; ++t)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t f = 0; f < F; ++f) wt[(t * F + f) * C + c] = w[((8 - t) * C + c) * F + f];
  float* U = workspace(Slot::conv_b, checked_mul(int64_t(m + 2) * (m + 2) * F, cp));
  transform_filters(m, F, C, cp, wt, U);
  // dx(y, x) = sum over taps of dy(y + p - kh, x + p - kw) w(kh, kw):
  // a 3x3 convolution of dy with the flipped filters and padding 2 - p
  const Geometry g{s.n, s.h.out, s.w.out, F, s.h.in, s.w.in, C, 2 - s.h.pad_before,
                   2 - s.w.pad_before};
  winograd_run(g, m, dy, U, cp, nullptr, false, dx);
}

void winograd_backward_weight(const Window2d& s, int64_t F, int m, const float* x,
                              const float* dy, float* dw) {
  const WinogradKernels& wk = winograd_kernels();
  const GemmKernels& kr = gemm_kernels_active();
  const int A = m + 2, A2 = A * A, mi = m == 2 ? 0 : 1;
  const Geometry g = forward_geometry(s, F);
  const int64_t C = s.c, MR = kr.mr, NR = kr.nr, T = g.tiles(m);
  // the tiles of a block are the K of the products: 64 to 512 of them, in
  // about 4 MiB (from L3): long products and few barriers (each costs
  // dearly when the machine is oversubscribed)
  const int64_t tb = tile_block(m, C, F, 4 << 20, 64, 512), blocks = ceil_div(T, tb);
  const int64_t strips = ceil_div(C, MR), panels = ceil_div(F, NR), items = A2 * strips;
  const int nt = threads_for(2.0 * double(A2) * double(T) * double(C * F), items);
  // V (tiles of x), D (tiles of dy, NR floats of slack: the last panel
  // reads whole rows) and the sums S[xi] (C x F)
  float* V = workspace(Slot::conv_a, checked_mul(A2 * tb, C + F) + NR);
  float* D = V + A2 * tb * C;
  float* S = workspace(Slot::conv_b, checked_mul(A2 * C, F));
  float* zeros = workspace(Slot::conv_c, std::max(C, F));
  std::fill(zeros, zeros + std::max(C, F), 0.0f);
  const float* zero = zeros;
  parallel_region(nt, [&](int t, int nt_actual) {
    const float* d[36];
    const float* gy[16];
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t t0 = blk * tb, nb = std::min(tb, T - t0);
      for (int64_t i = nb * t / nt_actual; i < nb * (t + 1) / nt_actual; ++i) {
        const TileOrigin o = tile_origin(g, m, t0 + i);
        cell_pointers(x, o.img, o.y0 - g.ph, o.x0 - g.pw, g.h, g.w, C, A, zero, d);
        wk.input[mi](C, d, V + i * C, tb * C);
        cell_pointers(dy, o.img, o.y0, o.x0, g.oh, g.ow, F, m, zero, gy);
        wk.gradient[mi](F, gy, D + i * F, tb * F);
      }
      barrier(nt_actual);
      // S[xi] (C x F) += V[xi]^T (C x nb) . D[xi] (nb x F)
      for (int64_t item = items * t / nt_actual; item < items * (t + 1) / nt_actual; ++item) {
        const int64_t xi = item / strips, c0 = item % strips * MR;
        for (int64_t p = 0; p < panels; ++p)
          kr.tile_strided(nb, V + xi * tb * C + c0, 1, C, D + xi * tb * F + p * NR, F,
                          S + (xi * C + c0) * F + p * NR, F, std::min(MR, C - c0),
                          std::min(NR, F - p * NR), 1.0f, blk == 0 ? 0.0f : 1.0f);
      }
      barrier(nt_actual);
    }
  });
  // dw = G^T S G, element by element
  const int64_t CF = C * F;
  parallel_for(ceil_div(CF, 256), threads_for(double(CF) * 40.0, ceil_div(CF, 256)),
               [&](int64_t b0, int64_t b1) {
    const float* cells[36];
    const int64_t e0 = b0 * 256, e1 = std::min(CF, b1 * 256);
    for (int xi = 0; xi < A2; ++xi) cells[xi] = S + xi * CF + e0;
    wk.filter_gradient[mi](e1 - e0, cells, dw + e0, CF);
  });
}

}  // namespace fastnn
