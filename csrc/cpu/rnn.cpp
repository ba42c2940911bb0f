// LSTM and GRU sequence kernels on the CPU (see fastnn/rnn.h).
//
// Forward: per step the product of all gates, [x_t, h_{t-1}] [W_x; W_h],
// runs on the GEMM microkernels against the weights packed once per call
// into the microkernel's panels, one register tile (MR rows by NR units of
// one gate) at a time into a small buffer; the fused pass
// (csrc/cpu/isa/rnn_kernels.inc) turns the tiles of all gates of those rows
// and units, with the bias, into the activated gates, the new cell state
// and h_t while they are in L1. A batch smaller than a register tile makes
// the product bound by reading the weights: then x W_x for all steps is one
// GEMM first (written where the gates go), and the step's product is
// h_{t-1} W_h alone.
//
// Threads: the rows of the batch never interact, so with rows for two
// register tiles a thread, each thread runs the whole recurrence of its
// rows, with no barrier. A smaller batch is split by blocks of NR units
// instead, each thread computing all gates of its units: a step then waits
// at one barrier (the next step's product reads every unit of h_t), two
// for the textbook GRU (whose candidate multiplies r h, all units of it,
// by Uh). Each value is computed by the same code whatever the thread
// count, so results do not depend on it.
//
// Backward: per step (last first) the fused gate backward writes the
// gradients of the pre-activations (da); then da W_h^T (W_h^T packed once)
// gives the gradient reaching h_{t-1}, and, with the fused input
// projection, da W_x^T the step's dx. At the end the weight gradients
// dW_x = x^T da and dW_h = h_prev^T da are products over all steps (each
// block of da packed once for both), the bias gradient da's column sums,
// and, without the fusion, dx = da W_x^T; each thread takes a share of
// each of them.
#include "fastnn/rnn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <vector>

#include "cpu/isa/gemm_kernels.h"
#include "cpu/isa/rnn_kernels.h"
#include "cpu/workspace.h"
#include "fastnn/check.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/rnn_math.h"
#include "fastnn/runtime.h"

namespace fastnn {

namespace {

const RnnKernels& rnn_kernels() { return active_kernels<RnnKernels>(); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Range [b, e) of `n` items for part `t` of `parts`.
void part(int64_t n, int t, int parts, int64_t& b, int64_t& e) {
  b = n * t / parts;
  e = n * (t + 1) / parts;
}

// Scratch of the calling thread: its workspace slot, kept for the next call
// (fresh pages cost about 2 us each), or, past kKeepFloats, memory of its
// own, freed on return, so that one huge sequence does not hold its
// scratch for good.
constexpr int64_t kKeepFloats = int64_t(1) << 26;  // 256 MiB

class Scratch {
 public:
  float* get(Slot slot, int64_t n) {
    if (n <= kKeepFloats) return workspace(slot, n);
    const int64_t bytes = checked_mul(ceil_div(n, 16), 64);
    owned_.reset(static_cast<float*>(std::aligned_alloc(64, size_t(bytes))));
    if (!owned_) throw std::bad_alloc();
    return owned_.get();
  }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float, Free> owned_;
};

// Several buffers cut from one scratch, each 64-byte aligned.
class Carve {
 public:
  // Sizes first (add), then one allocation (done), then the pieces in the
  // same order (take).
  void add(int64_t n) { total_ = checked_mul(ceil_div(n, 16), 16) + total_; }
  void done(Slot slot) { next_ = scratch_.get(slot, std::max<int64_t>(total_, 16)); }
  float* take(int64_t n) {
    float* p = next_;
    next_ += ceil_div(n, 16) * 16;
    return p;
  }

 private:
  int64_t total_ = 0;
  float* next_ = nullptr;
  Scratch scratch_;
};

// Rows [i, i + m) of strip s of `strips` of rows [r0, r0 + rows): rows go
// through the register tiles in strips of nearly equal height (at most
// MR). Even heights keep every tile's FMA chains long enough to cover the
// latency; a short last strip (32 rows as 5 x 6 + 2) would run at a
// fraction of the FMA rate. A row's results do not depend on the strip it
// is in (each output element is the same chain of FMAs over k).
struct Strip {
  int64_t i, m;
};
Strip strip(int64_t r0, int64_t rows, int64_t strips, int64_t s) {
  const int64_t q = rows / strips, r = rows % strips;  // the first r strips get q + 1 rows
  return {r0 + s * q + std::min(s, r), q + (s < r ? 1 : 0)};
}

// C (m rows, ldc apart; n <= NR columns) = A (m rows, lda apart; K) times
// K rows of a packed micro-panel, + beta C. A batch of one row takes the
// RNN kernels' row product, which keeps more FMA chains than a tile of one
// row has (m is 1 for that batch only: strips are at least half a tile
// high otherwise, so results never depend on how rows fall into strips).
void panel_product(const GemmKernels& gk, const RnnKernels& rk, int64_t K, const float* a,
                   int64_t lda, const float* panel, float* c, int64_t ldc, int64_t m, int64_t n,
                   float beta) {
  if (m == 1)
    rk.row_product(K, a, panel, gk.nr, c, n, beta != 0.0f);
  else
    gk.tile_strided(K, a, lda, 1, panel, gk.nr, c, ldc, m, n, 1.0f, beta);
}

// How the step loop is split over threads. The rows of the batch never
// interact: threads owning rows run their recurrences side by side with no
// barrier at all (each reads all of the packed weights). That takes rows
// for two register tiles a thread. A smaller batch is split by
// units instead: a thread then owns all gates of a range of units, and
// every step waits at a barrier for the others (the next product reads all
// of h_t). Each thread must get enough work per step to pay for it.
struct Split {
  int threads;
  bool by_rows;
};
Split step_split(int64_t B, int64_t MR, int64_t blocks, double flops_per_step, int64_t steps) {
  const int64_t want = get_num_threads();
  const int64_t by_rows = std::min(want, B / (2 * MR));
  if (by_rows >= 2 && flops_per_step * double(steps) >= 4.0e6) return {int(by_rows), true};
  const int64_t useful = std::max<int64_t>(1, int64_t(flops_per_step / 4.0e5));
  return {int(std::max<int64_t>(1, std::min<int64_t>({want, blocks, useful}))), false};
}

// The rows [r0, r1) (in `strips` strips of at most MR) and the unit
// blocks [u0, u1) that thread `tid` of `nth` owns.
struct Share {
  int64_t r0, r1, strips, u0, u1;
  Strip operator[](int64_t s) const { return strip(r0, r1 - r0, strips, s); }
};
Share share(const Split& split, int64_t B, int64_t MR, int64_t blocks, int tid, int nth) {
  Share sh{0, B, 0, 0, blocks};
  if (split.by_rows)
    part(B, tid, nth, sh.r0, sh.r1);
  else
    part(blocks, tid, nth, sh.u0, sh.u1);
  sh.strips = ceil_div(sh.r1 - sh.r0, MR);
  return sh;
}

// (B,H) rows: a pointer and the distance between rows.
struct Rows {
  const float* p;
  int64_t rs;
};

// The state entering step t: the given initial one (or zeros) at t = 0,
// else the step before's row of a (B,T,H) array.
Rows state_before(int64_t t, const float* initial, const float* zeros, const float* seq,
                  int64_t T, int64_t H) {
  if (t > 0) return {seq + (t - 1) * H, T * H};
  return {initial ? initial : zeros, H};
}

// The forward's weights packed for the product [x_t, h_{t-1}] [W_x; W_h]:
// for each block u of NR units and each gate g, the micro-panel of the NR
// columns g*H + u*NR ... over the KX rows of W_x (KX = I when the product
// includes the input projection, else 0), then the H rows of W_h, zero
// past the last unit: panel (u, g) at ((u*G + g) * (KX + H)) * NR. The
// weights are read row by row, each row once and in order (the panels'
// rows are NR floats of rows G*H floats apart: gathering a panel at a time
// would walk memory across pages).
void pack_forward(const GemmKernels& gk, const RnnDims& d, int64_t KX, const float* w_x,
                  const float* w_h, float* wp) {
  const int64_t H = d.hidden, G = d.gates(), GH = d.gate_width(), NR = gk.nr, K = KX + H;
  const int64_t blocks = ceil_div(H, NR), tail = H - (blocks - 1) * NR;
  parallel_for(K, std::min<int64_t>(get_num_threads(), ceil_div(K * GH, 1 << 16)),
               [&](int64_t k0, int64_t k1) {
                 for (int64_t k = k0; k < k1; ++k) {
                   const float* row = k < KX ? w_x + k * GH : w_h + (k - KX) * GH;
                   for (int64_t g = 0; g < G; ++g)
                     for (int64_t u = 0; u < blocks; ++u) {
                       float* dst = wp + ((u * G + g) * K + k) * NR;
                       const int64_t n = u + 1 < blocks ? NR : tail;
                       std::memcpy(dst, row + g * H + u * NR, size_t(n) * sizeof(float));
                       std::fill(dst + n, dst + NR, 0.0f);
                     }
                 }
               });
}

// Whether the step's product includes the input projection x_t W_x (the
// x rows then share the register tiles with the h rows, and x W_x never
// goes through memory). For a small batch the product is bound by reading
// the weights, and W_x read again every step would cost more than one GEMM
// over all steps at the start.
bool fuse_input(const GemmKernels& gk, const RnnDims& d) {
  return d.batch >= gk.mr && 4 * d.batch >= d.input;
}

// W^T packed for the backward's products da W_h^T and da W_x^T: W (units,
// G*H) row-major, block u of NR units one micro-panel over all G*H rows,
// at u * G*H * NR, zero past the last unit. A transpose: each row of W (a
// unit) becomes a column of its panel; the panel is filled a few hundred
// rows at a time, so that the part being written stays in L1 while the NR
// rows of W are read through.
void pack_transposed(const GemmKernels& gk, int64_t units, int64_t GH, const float* w,
                     float* wp) {
  const int64_t NR = gk.nr, blocks = ceil_div(units, NR);
  constexpr int64_t kRows = 256;
  parallel_for(blocks, std::min<int64_t>(get_num_threads(), ceil_div(blocks * GH * NR, 1 << 16)),
               [&](int64_t u0, int64_t u1) {
                 for (int64_t u = u0; u < u1; ++u) {
                   float* panel = wp + u * GH * NR;
                   const int64_t n = std::min(NR, units - u * NR);
                   for (int64_t k0 = 0; k0 < GH; k0 += kRows) {
                     const int64_t k1 = std::min(GH, k0 + kRows);
                     for (int64_t j = 0; j < n; ++j) {
                       const float* row = w + (u * NR + j) * GH;
                       for (int64_t k = k0; k < k1; ++k) panel[k * NR + j] = row[k];
                     }
                     for (int64_t k = k0; k < k1; ++k)
                       std::fill(panel + k * NR + n, panel + (k + 1) * NR, 0.0f);
                   }
                 }
               });
}

// weight_gradient's blocking: a KC-deep block of A^T of up to kWeightRows
// rows (a multiple of every MR) stays in L2 packed; B is packed in blocks
// of KC rows by up to kWeightCols columns.
constexpr int64_t kWeightRows = 264;
constexpr int64_t kWeightCols = 1024;

// Floats of scratch weight_gradient needs.
int64_t weight_gradient_scratch(const GemmKernels& gk) {
  return checked_mul(kWeightRows + kWeightCols + gk.nr, gk.kc);
}

// One product of weight_gradient: C (M, N; rows ldc apart) = A^T B, A (K,
// M; rows M apart).
struct WeightTarget {
  const float* a;
  int64_t m;
  float* c;
};

// Weight gradients A^T B for each target, all against the same B (K, N;
// ldb), K the batch's rows over all steps (long), M the features or units.
// B is da: packing its blocks once for all the targets (dW_x and dW_h read
// the same columns) saves a pass over it. Each KC-deep block of B is
// packed a row at a time (its rows are contiguous); a target's block of
// A^T, all its rows packed into strips, stays in L2 while each micro-panel
// of B goes through L1 once against every strip. scratch:
// weight_gradient_scratch floats.
void weight_gradient(const GemmKernels& gk, const WeightTarget* targets, int64_t count,
                     int64_t N, int64_t K, const float* B, int64_t ldb, int64_t ldc,
                     float* scratch) {
  const int64_t MR = gk.mr, NR = gk.nr, KC = gk.kc, NC = kWeightCols / NR * NR;
  if (K == 0) {
    for (int64_t t = 0; t < count; ++t)
      for (int64_t i = 0; i < targets[t].m; ++i)
        std::fill(targets[t].c + i * ldc, targets[t].c + i * ldc + N, 0.0f);
    return;
  }
  float* ap = scratch;
  float* bp = scratch + kWeightRows * KC;
  for (int64_t pc = 0; pc < K; pc += KC) {
    const int64_t kc = std::min(KC, K - pc);
    const float beta = pc == 0 ? 0.0f : 1.0f;
    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = std::min(NC, N - jc);
      gk.pack_b(kc, nc, B + pc * ldb + jc, ldb, 1, bp);
      for (int64_t t = 0; t < count; ++t) {
        const WeightTarget& w = targets[t];
        for (int64_t i0 = 0; i0 < w.m; i0 += kWeightRows) {
          const int64_t mc = std::min(kWeightRows, w.m - i0), strips = ceil_div(mc, MR);
          for (int64_t s = 0; s < strips; ++s)
            gk.pack_a(std::min(MR, mc - s * MR), kc, w.a + pc * w.m + i0 + s * MR, 1, w.m,
                      ap + s * MR * kc);
          for (int64_t j = 0; j < nc; j += NR)
            for (int64_t s = 0; s < strips; ++s)
              gk.tile_packed(kc, ap + s * MR * kc, bp + j * kc, NR,
                             w.c + (i0 + s * MR) * ldc + jc + j, ldc, std::min(MR, mc - s * MR),
                             std::min(NR, nc - j), 1.0f, beta);
        }
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------- forward

void rnn_forward(const RnnDims& d, const float* x, const float* h0, const float* c0,
                 const float* w_x, const float* w_h, const float* b, float* out, float* c_last,
                 RnnSaved saved) {
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden;
  const int64_t G = d.gates(), GH = d.gate_width();
  const bool lstm = d.cell == RnnCell::lstm, reset_after = d.cell == RnnCell::gru_reset_after;
  if (B == 0 || H == 0) return;
  if (T == 0) {
    if (c_last) {
      if (c0)
        std::memcpy(c_last, c0, size_t(B * H) * sizeof(float));
      else
        std::fill(c_last, c_last + B * H, 0.0f);
    }
    return;
  }
  const RnnKernels& rk = rnn_kernels();
  const GemmKernels& gk = gemm_kernels_active();
  const int64_t MR = gk.mr, NR = gk.nr, BT = checked_mul(B, T);
  const int64_t blocks = ceil_div(H, NR);
  const bool fused = fuse_input(gk, d);
  // the product's A: [x_t, h_{t-1}] (KX = I) or h_{t-1} alone (KX = 0),
  // rows XH floats long, in one of two buffers (step t reads t % 2)
  const int64_t KX = fused ? I : 0, XH = KX + H;
  const Split split = step_split(B, MR, blocks, 2.0 * double(B) * double(XH) * double(GH), T);
  const int nt = split.threads;
  // reset_after's candidate keeps its input part apart: a fourth tile
  const int64_t slots = reset_after && fused ? G + 1 : G;

  // The gates of every step (training) or of one (fused inference); the
  // input projection of every step, unfused, goes there first.
  Scratch gates_scratch, state_scratch;
  float* gates = saved.gates;
  if (!gates) gates = gates_scratch.get(Slot::rnn_steps, checked_mul(fused ? B : BT, GH));
  const int64_t gates_step = saved.gates || !fused ? GH : 0;
  const int64_t gates_rs = saved.gates || !fused ? T * GH : GH;
  // LSTM: c_t of every step (the saved array or scratch); reset_after: n_t when training
  float* state = saved.state;
  if (lstm && !state) state = state_scratch.get(Slot::rnn_state, checked_mul(BT, H));
  Carve carve;
  carve.add(checked_mul(blocks * G * XH, NR));  // packed weights
  carve.add(2 * B * XH);                        // [x_t, h_{t-1}], two steps
  carve.add(B * H);                             // zeros: an absent initial c
  carve.add(B * H);                             // gru: r * h_{t-1}
  carve.add(checked_mul(nt, slots * MR * NR));  // a tile buffer per thread
  carve.done(Slot::rnn_small);
  float* wp = carve.take(blocks * G * XH * NR);
  float* xh = carve.take(2 * B * XH);
  float* zeros = carve.take(B * H);
  float* rh = carve.take(B * H);
  float* tiles = carve.take(nt * slots * MR * NR);
  std::fill(zeros, zeros + B * H, 0.0f);
  for (int64_t i = 0; i < B; ++i) {
    float* row = xh + i * XH;
    if (fused) std::memcpy(row, x + i * T * I, size_t(I) * sizeof(float));
    if (h0)
      std::memcpy(row + KX, h0 + i * H, size_t(H) * sizeof(float));
    else
      std::fill(row + KX, row + XH, 0.0f);
  }

  if (!fused) gemm(false, false, BT, GH, I, 1.0f, x, I, w_x, GH, 0.0f, gates, GH);
  pack_forward(gk, d, KX, w_x, w_h, wp);
  const float* bias_h = reset_after ? b + GH : nullptr;

  parallel_region(nt, [&](int tid, int nth) {
    const Share sh = share(split, B, MR, blocks, tid, nth);
    const int64_t u0 = sh.u0, u1 = sh.u1;
    // the rows of x_{t+1} this thread copies: its own, or a share
    int64_t r0 = sh.r0, r1 = sh.r1;
    if (!split.by_rows) part(B, tid, nth, r0, r1);
    // waits for the other threads when they share the step's units
    auto sync = [&] {
      if (!split.by_rows) barrier(nth);
    };
    float* tb = tiles + tid * slots * MR * NR;
    // tile `slot` = rows [i, i + m) of `a` (K columns, rows lda apart) times
    // rows k0 .. k0 + K of panel (u, g), + beta times the tile
    auto product = [&](const float* a, int64_t lda, int64_t i, int64_t m, int64_t u, int64_t g,
                       int64_t k0, int64_t K, int64_t slot, float beta) {
      panel_product(gk, rk, K, a + i * lda, lda, wp + ((u * G + g) * XH + k0) * NR,
                    tb + slot * MR * NR, NR, m, NR, beta);
    };
    for (int64_t t = 0; t < T; ++t) {
      const float* cur = xh + (t % 2) * B * XH;
      float* next = xh + ((t + 1) % 2) * B * XH;
      const Rows cp = lstm ? state_before(t, c0, zeros, state, T, H) : Rows{nullptr, 0};
      // one block: rows [i, i + m), units [u*NR, +n), pointers set
      auto block = [&](int64_t i, int64_t m, int64_t u) {
        const int64_t j = u * NR;
        RnnForwardBlock a;
        a.m = m;
        a.n = std::min(NR, H - j);
        a.H = H;
        a.rec = tb;
        a.rec_rs = NR;
        a.rec_gs = MR * NR;
        a.gates = gates + i * gates_rs + t * gates_step + j;
        a.gates_rs = gates_rs;
        if (!fused) {
          a.gx = a.gates;
          a.gx_rs = gates_rs;
        }
        a.bias = b + j;
        a.bias_h = bias_h ? bias_h + j : nullptr;
        a.h_prev = cur + i * XH + KX + j;
        a.h_prev_rs = XH;
        if (lstm) {
          a.c_prev = cp.p + i * cp.rs + j;
          a.c_prev_rs = cp.rs;
        }
        a.h = out + (i * T + t) * H + j;
        a.h_rs = T * H;
        a.h2 = next + i * XH + KX + j;
        a.h2_rs = XH;
        if (state) {
          a.c = state + (i * T + t) * H + j;
          a.c_rs = T * H;
        }
        a.rh = rh + i * H + j;
        a.rh_rs = H;
        return a;
      };
      if (d.cell == RnnCell::gru) {
        for (int64_t u = u0; u < u1; ++u)
          for (int64_t s = 0; s < sh.strips; ++s) {
            const auto [i, m] = sh[s];
            for (int64_t g = 0; g < 2; ++g) product(cur, XH, i, m, u, g, 0, XH, g, 0.0f);
            rk.gru_gates(block(i, m, u));
          }
        sync();  // the candidate's product reads r h of every unit
        for (int64_t u = u0; u < u1; ++u)
          for (int64_t s = 0; s < sh.strips; ++s) {
            const auto [i, m] = sh[s];
            if (fused) product(cur, XH, i, m, u, 2, 0, KX, 0, 0.0f);
            product(rh, H, i, m, u, 2, KX, H, 0, fused ? 1.0f : 0.0f);
            rk.gru_output(block(i, m, u));
          }
      } else {
        const auto pass = lstm ? rk.lstm_forward : rk.gru_reset_after_forward;
        // reset_after: the candidate's recurrent part alone in slot 2, its
        // input part in slot 3
        const int64_t whole = reset_after ? 2 : G;
        for (int64_t u = u0; u < u1; ++u)
          for (int64_t s = 0; s < sh.strips; ++s) {
            const auto [i, m] = sh[s];
            for (int64_t g = 0; g < whole; ++g) product(cur, XH, i, m, u, g, 0, XH, g, 0.0f);
            if (reset_after) {
              product(cur + KX, XH, i, m, u, 2, KX, H, 2, 0.0f);
              if (fused) product(cur, XH, i, m, u, 2, 0, KX, 3, 0.0f);
            }
            pass(block(i, m, u));
          }
      }
      if (fused && t + 1 < T)
        for (int64_t i = r0; i < r1; ++i)
          std::memcpy(next + i * XH, x + (i * T + t + 1) * I, size_t(I) * sizeof(float));
      sync();  // the next step's product reads h_t of every unit
    }
  });
  if (c_last)
    for (int64_t i = 0; i < B; ++i)
      std::memcpy(c_last + i * H, state + (i * T + T - 1) * H, size_t(H) * sizeof(float));
}

// ---------------------------------------------------------------- backward

namespace {

// The gradients when no step runs (T, B or H zero): what enters the
// sequence passes through, the rest is zero.
void backward_without_steps(const RnnDims& d, const float* dh_last, const float* dc_last,
                            RnnGrads g) {
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  auto fill = [](float* p, int64_t n, const float* from) {
    if (!p) return;
    if (from)
      std::memcpy(p, from, size_t(n) * sizeof(float));
    else
      std::fill(p, p + n, 0.0f);
  };
  fill(g.dx, B * T * I, nullptr);
  fill(g.dh0, B * H, dh_last);
  fill(g.dc0, B * H, dc_last);
  fill(g.dw_x, I * GH, nullptr);
  fill(g.dw_h, H * GH, nullptr);
  fill(g.db, d.bias_rows() * GH, nullptr);
}

}  // namespace

void rnn_backward(const RnnDims& d, const float* x, const float* h0, const float* c0,
                  const float* w_x, const float* w_h, const float* out, const float* gates,
                  const float* state, const float* dout, const float* dh_last,
                  const float* dc_last, RnnGrads g) {
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden;
  const int64_t GH = d.gate_width();
  if (B == 0 || T == 0 || H == 0) return backward_without_steps(d, dh_last, dc_last, g);
  const bool lstm = d.cell == RnnCell::lstm, gru = d.cell == RnnCell::gru;
  const bool reset_after = d.cell == RnnCell::gru_reset_after;
  const RnnKernels& rk = rnn_kernels();
  const GemmKernels& gk = gemm_kernels_active();
  const int64_t MR = gk.mr, NR = gk.nr, BT = checked_mul(B, T);
  const int64_t blocks = ceil_div(H, NR);
  // da: the pre-activation gradients, [z, r, n, h~] for reset_after
  const int64_t DW = reset_after ? GH + H : GH;
  // dx = da W_x^T joins the step's product when the forward's input
  // projection joined it (a batch of a register tile or more): the step's
  // da is then still in cache, and the product runs at the step loop's rate
  const bool fused_dx = g.dx && fuse_input(gk, d);
  const int64_t xblocks = ceil_div(I, NR);
  const double step_flops = 2.0 * double(B) * double(GH) * double(H + (fused_dx ? I : 0));
  const Split split = step_split(B, MR, blocks, step_flops, T);
  const int nt = split.threads;

  // the GEMMs at the end: threads, each with its scratch
  const int64_t col_units = ceil_div(GH, NR);
  const int tail_threads = int(std::max<int64_t>(
      1, std::min<int64_t>({int64_t(get_num_threads()), col_units,
                            int64_t(double(BT) * double(GH) * double(I + H) / 1.0e6)})));

  Scratch da_scratch;
  float* da = da_scratch.get(Slot::rnn_steps, checked_mul(BT, DW));
  Carve big;  // (B,T,H): gru: r h_{t-1} of every step; h_{t-1} of every step for dw_h
  if (gru) big.add(checked_mul(BT, H));
  if (g.dw_h) big.add(checked_mul(BT, H));
  big.done(Slot::rnn_state);
  float* rh_all = gru ? big.take(BT * H) : nullptr;
  float* h_prev_all = g.dw_h ? big.take(BT * H) : nullptr;
  Carve carve;
  carve.add(checked_mul(blocks * GH, NR));  // packed W_h^T
  carve.add(fused_dx ? checked_mul(xblocks * GH, NR) : 0);  // packed W_x^T
  carve.add(B * H);                         // zeros
  carve.add(B * H);                         // dh: reaching h_t through the recurrence
  carve.add(B * H);                         // dc (LSTM)
  carve.add(B * H);                         // gru: the gradient of r h
  carve.add(DW);                            // the bias gradients: da's column sums
  carve.add(checked_mul(tail_threads, weight_gradient_scratch(gk)));
  carve.done(Slot::rnn_small);
  float* wpt = carve.take(blocks * GH * NR);
  float* wxt = carve.take(fused_dx ? xblocks * GH * NR : 0);
  float* zeros = carve.take(B * H);
  float* dh = carve.take(B * H);
  float* dc = carve.take(B * H);
  float* d_rh = carve.take(B * H);
  float* dbs = carve.take(DW);
  float* tail_scratch = carve.take(tail_threads * weight_gradient_scratch(gk));
  std::fill(zeros, zeros + B * H, 0.0f);
  if (dh_last)
    std::memcpy(dh, dh_last, size_t(B * H) * sizeof(float));
  else
    std::fill(dh, dh + B * H, 0.0f);
  if (lstm) {
    if (dc_last)
      std::memcpy(dc, dc_last, size_t(B * H) * sizeof(float));
    else
      std::fill(dc, dc + B * H, 0.0f);
  }
  pack_transposed(gk, H, GH, w_h, wpt);
  if (fused_dx) pack_transposed(gk, I, GH, w_x, wxt);

  // The input side's pre-activation gradients: da's columns [src, src + n)
  // go with W_x's (and dW_x's) columns [dst, dst + n). reset_after's input
  // side reads da's h~ columns instead of n.
  struct Piece {
    int64_t dst, src, n;
  };
  const Piece pieces_ra[] = {{0, 0, 2 * H}, {2 * H, 3 * H, H}}, pieces_all[] = {{0, 0, GH}};
  const Piece* input_pieces = reset_after ? pieces_ra : pieces_all;
  const int input_count = reset_after ? 2 : 1;
  parallel_region(nt, [&](int tid, int nth) {
    const Share sh = share(split, B, MR, blocks, tid, nth);
    const int64_t u0 = sh.u0, u1 = sh.u1;
    auto sync = [&] {
      if (!split.by_rows) barrier(nth);
    };
    // dst[own rows, own units] = beta dst + da[:, t, k0 : k0 + K] W_h[units, k0 : k0 + K]^T
    auto product = [&](int64_t t, int64_t k0, int64_t K, float* dst, float beta) {
      for (int64_t u = u0; u < u1; ++u)
        for (int64_t s = 0; s < sh.strips; ++s) {
          const auto [i, m] = sh[s];
          panel_product(gk, rk, K, da + (i * T + t) * DW + k0, T * DW, wpt + (u * GH + k0) * NR,
                        dst + i * H + u * NR, H, m, std::min(NR, H - u * NR), beta);
        }
    };
    // dx[own rows, t] = the input side of da[:, t] times W_x^T: own input
    // units when the threads share the step's units, else all of them
    int64_t v0 = 0, v1 = xblocks;
    if (!split.by_rows) part(xblocks, tid, nth, v0, v1);
    auto input_product = [&](int64_t t) {
      for (int64_t v = v0; v < v1; ++v)
        for (int64_t s = 0; s < sh.strips; ++s) {
          const auto [i, m] = sh[s];
          float beta = 0.0f;
          for (int q = 0; q < input_count; ++q) {
            const Piece& p = input_pieces[q];
            panel_product(gk, rk, p.n, da + (i * T + t) * DW + p.src, T * DW,
                          wxt + (v * GH + p.dst) * NR, g.dx + (i * T + t) * I + v * NR, T * I, m,
                          std::min(NR, I - v * NR), beta);
            beta = 1.0f;
          }
        }
    };
    // a gate pass over each own strip, own units
    auto pass = [&](RnnKernels::Backward kernel, int64_t t) {
      const Rows hp = state_before(t, h0, zeros, out, T, H);
      const Rows cp = lstm ? state_before(t, c0, zeros, state, T, H) : Rows{nullptr, 0};
      const int64_t j = u0 * NR;
      for (int64_t s = 0; s < sh.strips; ++s) {
        const auto [i, m] = sh[s];
        RnnBackwardBlock a;
        a.m = m;
        a.n = std::min(u1 * NR, H) - j;
        a.H = H;
        a.gates = gates + (i * T + t) * GH + j;
        a.gates_rs = T * GH;
        if (state) {
          a.state = state + (i * T + t) * H + j;
          a.state_rs = T * H;
        }
        if (lstm) {
          a.c_prev = cp.p + i * cp.rs + j;
          a.c_prev_rs = cp.rs;
          a.dc = dc + i * H + j;
          a.dc_rs = H;
        }
        a.h_prev = hp.p + i * hp.rs + j;
        a.h_prev_rs = hp.rs;
        if (dout) {
          a.dout = dout + (i * T + t) * H + j;
          a.dout_rs = T * H;
        }
        a.dh = dh + i * H + j;
        a.dh_rs = H;
        a.d_rh = d_rh + i * H + j;
        a.d_rh_rs = H;
        if (rh_all) {
          a.rh = rh_all + (i * T + t) * H + j;
          a.rh_rs = T * H;
        }
        a.da = da + (i * T + t) * DW + j;
        a.da_rs = T * DW;
        kernel(a);
      }
    };
    for (int64_t t = T - 1; t >= 0; --t) {
      if (gru) {
        pass(rk.gru_backward_output, t);
        sync();  // the product reads dh~ of every unit
        product(t, 2 * H, H, d_rh, 0.0f);
        pass(rk.gru_backward_reset, t);
        sync();  // the product reads dr of every unit
        product(t, 0, 2 * H, dh, 1.0f);
      } else {
        pass(lstm ? rk.lstm_backward : rk.gru_reset_after_backward, t);
        sync();  // the product reads da of every unit
        product(t, 0, GH, dh, lstm ? 0.0f : 1.0f);
      }
      if (fused_dx) input_product(t);
    }
  });
  if (g.dh0) std::memcpy(g.dh0, dh, size_t(B * H) * sizeof(float));
  if (g.dc0) std::memcpy(g.dc0, dc, size_t(B * H) * sizeof(float));
  if (g.dw_h)
    for (int64_t i = 0; i < B; ++i) {
      float* dst = h_prev_all + i * T * H;
      std::memcpy(dst, h0 ? h0 + i * H : zeros, size_t(H) * sizeof(float));
      std::memcpy(dst + H, out + i * T * H, size_t((T - 1) * H) * sizeof(float));
    }
  // Each thread takes a share of every GEMM (dW's columns, dx's rows) and
  // runs it alone: the GEMMs' own threads would meet at a barrier for each
  // block of K, and each barrier costs a scheduler time slice whenever the
  // machine has more work than cores. Shares of columns start at multiples
  // of the register tile's width; each thread packs its own columns of da.
  auto tail_share = [&](int tid, int nth) {
    int64_t c0, c1, r0, r1;
    part(col_units, tid, nth, c0, c1);
    c0 = std::min(c0 * NR, GH);
    c1 = std::min(c1 * NR, GH);
    part(BT, tid, nth, r0, r1);
    if (g.db) {  // da's column sums, rows in order: a share of the columns
      int64_t d0, d1;
      part(DW, tid, nth, d0, d1);
      std::fill(dbs + d0, dbs + d1, 0.0f);
      for (int64_t r = 0; r < BT; ++r) {
        const float* row = da + r * DW;
        for (int64_t c = d0; c < d1; ++c) dbs[c] += row[c];
      }
    }
    // The weight gradients over da's columns: each column range of da goes
    // to dW_x (from x) and dW_h (from h_{t-1}, or r h_{t-1} for the textbook
    // GRU's candidate) at the columns given; -1: not there. This thread
    // takes the columns [c0, c1) of the G*H of dW.
    struct Range {
      int64_t src, n, x_dst, h_dst;
      const float* h_rows;
    };
    const Range ranges_gru[] = {{0, 2 * H, 0, 0, h_prev_all}, {2 * H, H, 2 * H, 2 * H, rh_all}};
    const Range ranges_ra[] = {{0, 2 * H, 0, 0, h_prev_all}, {2 * H, H, -1, 2 * H, h_prev_all},
                               {3 * H, H, 2 * H, -1, nullptr}};
    const Range ranges_lstm[] = {{0, GH, 0, 0, h_prev_all}};
    const Range* ranges = gru ? ranges_gru : reset_after ? ranges_ra : ranges_lstm;
    const int range_count = gru ? 2 : reset_after ? 3 : 1;
    float* scratch = tail_scratch + tid * weight_gradient_scratch(gk);
    for (int q = 0; q < range_count; ++q) {
      const Range& r = ranges[q];
      // the thread's share of this range, in dW's columns (x's and h's agree but for reset_after)
      const int64_t base = r.x_dst >= 0 ? r.x_dst : r.h_dst;
      const int64_t lo = std::max(c0, base), hi = std::min(c1, base + r.n);
      if (lo >= hi) continue;
      WeightTarget targets[2];
      int64_t count = 0;
      if (g.dw_x && r.x_dst >= 0) targets[count++] = {x, I, g.dw_x + r.x_dst + (lo - base)};
      if (g.dw_h && r.h_dst >= 0) targets[count++] = {r.h_rows, H, g.dw_h + r.h_dst + (lo - base)};
      if (count)
        weight_gradient(gk, targets, count, hi - lo, BT, da + r.src + (lo - base), DW, GH,
                        scratch);
    }
    if (g.dx && !fused_dx && r0 < r1) {  // dx[r0:r1] = da[r0:r1] W_x^T, the input side's columns
      float beta = 0.0f;
      for (int q = 0; q < input_count; ++q) {
        const Piece& p = input_pieces[q];
        gemm(false, true, r1 - r0, I, p.n, 1.0f, da + r0 * DW + p.src, DW, w_x + p.dst, GH, beta,
             g.dx + r0 * I, I);
        beta = 1.0f;
      }
    }
  };
  // A GEMM allocates its scratch and may throw (out of memory): no
  // exception may leave a parallel region, so the first is kept and
  // rethrown after it.
  std::exception_ptr failure;
  parallel_region(tail_threads, [&](int tid, int nth) {
    try {
      tail_share(tid, nth);
    } catch (...) {
#ifdef FASTNN_OPENMP
#pragma omp critical(fastnn_rnn_failure)
#endif
      if (!failure) failure = std::current_exception();
    }
  });
  if (failure) std::rethrow_exception(failure);
  if (g.db) {
    if (reset_after) {  // [input bias: z, r, h~], [recurrent bias: z, r, n]
      std::memcpy(g.db, dbs, size_t(2 * H) * sizeof(float));
      std::memcpy(g.db + 2 * H, dbs + 3 * H, size_t(H) * sizeof(float));
      std::memcpy(g.db + GH, dbs, size_t(GH) * sizeof(float));
    } else {
      std::memcpy(g.db, dbs, size_t(GH) * sizeof(float));
    }
  }
}

// ---------------------------------------------------------------- reference

namespace {

struct ScalarMath {
  static float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }
  static float tanh(float v) { return std::tanh(v); }
};

// y[n] = a[k] W[k, col0 + n] summed over k < K, W with rows of `ld` floats
void vec_mat(const float* a, const float* w, int64_t ld, int64_t col0, int64_t K, int64_t N,
             float* y) {
  for (int64_t n = 0; n < N; ++n) {
    float s = 0.0f;
    for (int64_t k = 0; k < K; ++k) s += a[k] * w[k * ld + col0 + n];
    y[n] = s;
  }
}

// y[k] = sum over n < N of a[n] W[k, col0 + n], k < K: a times W's columns transposed
void vec_mat_t(const float* a, const float* w, int64_t ld, int64_t col0, int64_t K, int64_t N,
               float* y) {
  for (int64_t k = 0; k < K; ++k) {
    float s = 0.0f;
    for (int64_t n = 0; n < N; ++n) s += a[n] * w[k * ld + col0 + n];
    y[k] = s;
  }
}

}  // namespace

void rnn_forward_reference(const RnnDims& d, const float* x, const float* h0, const float* c0,
                           const float* w_x, const float* w_h, const float* b, float* out,
                           float* c_last, RnnSaved saved) {
  namespace m = rnn_math;
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  std::vector<float> h(H), c(H), ax(GH), ah(GH), rh(H);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < H; ++j) {
      h[j] = h0 ? h0[i * H + j] : 0.0f;
      c[j] = c0 ? c0[i * H + j] : 0.0f;
    }
    for (int64_t t = 0; t < T; ++t) {
      const int64_t row = i * T + t;
      vec_mat(x + row * I, w_x, GH, 0, I, GH, ax.data());
      vec_mat(h.data(), w_h, GH, 0, H, GH, ah.data());
      float* gs = saved.gates ? saved.gates + row * GH : nullptr;
      float* st = saved.state ? saved.state + row * H : nullptr;
      if (d.cell == RnnCell::lstm) {
        for (int64_t j = 0; j < H; ++j) {
          float a[4];
          for (int q = 0; q < 4; ++q) a[q] = ax[q * H + j] + ah[q * H + j] + b[q * H + j];
          float cn, hn;
          m::lstm_forward<float, ScalarMath>(a[0], a[1], a[2], a[3], c[j], cn, hn);
          c[j] = cn;
          h[j] = hn;
          if (gs)
            for (int q = 0; q < 4; ++q) gs[q * H + j] = a[q];
          if (st) st[j] = cn;
        }
      } else {
        const bool after = d.cell == RnnCell::gru_reset_after;
        const float* bh = after ? b + GH : nullptr;
        std::vector<float> z(H), r(H), n(H), hc(H);
        for (int64_t j = 0; j < H; ++j) {
          z[j] = ax[j] + ah[j] + b[j] + (after ? bh[j] : 0.0f);
          r[j] = ax[H + j] + ah[H + j] + b[H + j] + (after ? bh[H + j] : 0.0f);
          m::gru_gates<float, ScalarMath>(z[j], r[j]);
          rh[j] = r[j] * h[j];
        }
        if (after) {
          for (int64_t j = 0; j < H; ++j) {
            n[j] = ah[2 * H + j] + bh[2 * H + j];
            hc[j] = ax[2 * H + j] + b[2 * H + j] + r[j] * n[j];
          }
        } else {
          vec_mat(rh.data(), w_h, GH, 2 * H, H, H, hc.data());
          for (int64_t j = 0; j < H; ++j) hc[j] += ax[2 * H + j] + b[2 * H + j];
        }
        for (int64_t j = 0; j < H; ++j) {
          h[j] = m::gru_output<float, ScalarMath>(z[j], hc[j], h[j]);
          if (gs) {
            gs[j] = z[j];
            gs[H + j] = r[j];
            gs[2 * H + j] = hc[j];
          }
          if (st && after) st[j] = n[j];
        }
      }
      std::memcpy(out + row * H, h.data(), size_t(H) * sizeof(float));
    }
    if (c_last) std::memcpy(c_last + i * H, c.data(), size_t(H) * sizeof(float));
  }
}

void rnn_backward_reference(const RnnDims& d, const float* x, const float* h0, const float* c0,
                            const float* w_x, const float* w_h, const float* out,
                            const float* gates, const float* state, const float* dout,
                            const float* dh_last, const float* dc_last, RnnGrads g) {
  namespace m = rnn_math;
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  const bool after = d.cell == RnnCell::gru_reset_after;
  std::vector<float> dw_x(size_t(I * GH), 0.0f), dw_h(size_t(H * GH), 0.0f);
  std::vector<float> db(size_t(d.bias_rows() * GH), 0.0f);
  std::vector<float> dh(H), dc(H), dax(GH), dah(GH);
  std::vector<float> hp(H), cp(H), rh(H), d_rh(H), back(H);
  for (int64_t i = 0; i < B; ++i) {
    for (int64_t j = 0; j < H; ++j) {
      dh[j] = dh_last ? dh_last[i * H + j] : 0.0f;
      dc[j] = dc_last ? dc_last[i * H + j] : 0.0f;
    }
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t row = i * T + t;
      const float* gs = gates + row * GH;
      for (int64_t j = 0; j < H; ++j) {
        hp[j] = t > 0 ? out[(row - 1) * H + j] : (h0 ? h0[i * H + j] : 0.0f);
        if (d.cell == RnnCell::lstm)
          cp[j] = t > 0 ? state[(row - 1) * H + j] : (c0 ? c0[i * H + j] : 0.0f);
        if (dout) dh[j] += dout[row * H + j];
      }
      // dax: the input side's pre-activation gradients; dah: the recurrent
      // product's; back: what reaches h_{t-1} outside the recurrent product
      if (d.cell == RnnCell::lstm) {
        for (int64_t j = 0; j < H; ++j) {
          float q[4];
          m::lstm_backward<float, ScalarMath>(gs[j], gs[H + j], gs[2 * H + j], gs[3 * H + j],
                                              cp[j], state[row * H + j], dh[j], dc[j], q[0], q[1],
                                              q[2], q[3]);
          for (int k = 0; k < 4; ++k) dax[k * H + j] = dah[k * H + j] = q[k];
          back[j] = 0.0f;
        }
      } else {
        for (int64_t j = 0; j < H; ++j) {
          float dz, dhc;
          m::gru_backward_output<float>(gs[j], gs[2 * H + j], hp[j], dh[j], dz, dhc, back[j]);
          dax[j] = dah[j] = dz;
          dax[2 * H + j] = dhc;
          if (after) {
            float dr, dn;
            m::gru_backward_reset_after<float>(gs[H + j], state[row * H + j], dhc, dr, dn);
            dax[H + j] = dah[H + j] = dr;
            dah[2 * H + j] = dn;
          }
        }
        if (!after) {
          vec_mat_t(dax.data() + 2 * H, w_h, GH, 2 * H, H, H, d_rh.data());
          for (int64_t j = 0; j < H; ++j) {
            const float r = gs[H + j];
            dax[H + j] = dah[H + j] = m::gru_backward_reset<float>(r, hp[j], d_rh[j], back[j]);
            rh[j] = r * hp[j];
            dah[2 * H + j] = dax[2 * H + j];
          }
        }
      }
      // weights: the candidate's recurrent product multiplies r h in the textbook GRU
      for (int64_t k = 0; k < H; ++k)
        for (int64_t n = 0; n < GH; ++n) {
          const bool via_rh = d.cell == RnnCell::gru && n >= 2 * H;
          dw_h[k * GH + n] += (via_rh ? rh[k] : hp[k]) * dah[n];
        }
      for (int64_t k = 0; k < I; ++k)
        for (int64_t n = 0; n < GH; ++n) dw_x[k * GH + n] += x[row * I + k] * dax[n];
      for (int64_t n = 0; n < GH; ++n) {
        db[n] += dax[n];
        if (after) db[GH + n] += dah[n];
      }
      if (g.dx) vec_mat_t(dax.data(), w_x, GH, 0, I, GH, g.dx + row * I);
      // dh_{t-1}: the recurrent product (the textbook GRU's candidate part went
      // into back through r h already)
      const int64_t through = d.cell == RnnCell::gru ? 2 * H : GH;
      vec_mat_t(dah.data(), w_h, GH, 0, H, through, dh.data());
      for (int64_t j = 0; j < H; ++j) dh[j] += back[j];
    }
    if (g.dh0) std::memcpy(g.dh0 + i * H, dh.data(), size_t(H) * sizeof(float));
    if (g.dc0) std::memcpy(g.dc0 + i * H, dc.data(), size_t(H) * sizeof(float));
  }
  if (g.dw_x) std::copy(dw_x.begin(), dw_x.end(), g.dw_x);
  if (g.dw_h) std::copy(dw_h.begin(), dw_h.end(), g.dw_h);
  if (g.db) std::copy(db.begin(), db.end(), g.db);
}

}  // namespace fastnn
