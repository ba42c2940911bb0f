// LSTM and GRU on the GPU (see rnn.h), the CPU's algorithm (csrc/cpu/rnn.cpp)
// on the CUDA GEMM (gemm.h) and rnn_math.h's gate maths:
//
//   forward   gx = x W_x for all steps (one GEMM, into the gates array), then
//             per step rec = h_{t-1} W_h (one GEMM; the textbook GRU: z, r
//             first, then (r h) Uh) and one fused kernel per pass, a thread
//             per (row, unit), that applies the nonlinearities and writes
//             the gates, the state and h_t;
//   backward  per step (last first) the fused gate backward writes da, the
//             pre-activation gradients, then dh_{t-1} = da W_h^T (one GEMM);
//             at the end dW_x = x^T da, dW_h = h_prev^T da and dx = da W_x^T
//             as GEMMs over all steps, and the bias gradient as column sums
//             of da, each a thread's loop over the rows in order.
#include <cuda_runtime.h>

#include <algorithm>
#include <vector>

#include "cuda/gemm.h"
#include "cuda/rnn.h"
#include "fastnn/check.h"
#include "fastnn/rnn_math.h"

namespace fastnn {
namespace cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

struct DeviceMath {
  __host__ __device__ static float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }
  __host__ __device__ static float tanh(float v) { return tanhf(v); }
};

// One pass over the (row, unit) elements of one step. Gates of unit j in a
// row of width G*H (and of the pre-activation gradients da, width DW) are
// at g*H + j.
struct StepArgs {
  int64_t B = 0, T = 0, H = 0, t = 0;
  const float* rec = nullptr;  // (B, rec_ld): the step's recurrent product
  int64_t rec_ld = 0;
  float* gates = nullptr;  // (B,T,G*H)
  const float* bias = nullptr;
  const float* bias_h = nullptr;  // gru_reset_after: the recurrent bias
  const float* hp = nullptr;      // h_{t-1}, rows hp_ld apart
  int64_t hp_ld = 0;
  const float* cp = nullptr;  // c_{t-1} (LSTM), rows cp_ld apart
  int64_t cp_ld = 0;
  float* out = nullptr;    // (B,T,H): h_t
  float* state = nullptr;  // (B,T,H): c_t (LSTM), n_t (reset_after) or null
  float* rh = nullptr;     // (B,H): gru, r h_{t-1}
  // backward
  const float* dout = nullptr;  // (B,T,H) or null
  float* dh = nullptr;          // (B,H)
  float* dc = nullptr;          // (B,H) LSTM
  const float* d_rh = nullptr;  // (B,H) gru
  float* rh_all = nullptr;      // (B,T,H) gru
  float* da = nullptr;          // (B,T,DW)
  int64_t DW = 0;
};

#define FOR_EACH_ELEMENT(a)                                                                  \
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < (a).B * (a).H;        \
       e += int64_t(gridDim.x) * blockDim.x)

__global__ void lstm_forward_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* rec = a.rec + i * a.rec_ld + j;
    float* g = a.gates + row * 4 * H + j;
    float gi = g[0] + rec[0] + a.bias[j];
    float gf = g[H] + rec[H] + a.bias[H + j];
    float gg = g[2 * H] + rec[2 * H] + a.bias[2 * H + j];
    float go = g[3 * H] + rec[3 * H] + a.bias[3 * H + j];
    float c, h;
    rnn_math::lstm_forward<float, DeviceMath>(gi, gf, gg, go, a.cp[i * a.cp_ld + j], c, h);
    g[0] = gi;
    g[H] = gf;
    g[2 * H] = gg;
    g[3 * H] = go;
    a.state[row * H + j] = c;
    a.out[row * H + j] = h;
  }
}

__global__ void gru_gates_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* rec = a.rec + i * a.rec_ld + j;
    float* g = a.gates + row * 3 * H + j;
    float z = g[0] + rec[0] + a.bias[j];
    float r = g[H] + rec[H] + a.bias[H + j];
    rnn_math::gru_gates<float, DeviceMath>(z, r);
    g[0] = z;
    g[H] = r;
    a.rh[i * H + j] = r * a.hp[i * a.hp_ld + j];
  }
}

__global__ void gru_output_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    float* g = a.gates + row * 3 * H + j;
    float hc = g[2 * H] + a.rec[i * a.rec_ld + j] + a.bias[2 * H + j];
    a.out[row * H + j] = rnn_math::gru_output<float, DeviceMath>(g[0], hc, a.hp[i * a.hp_ld + j]);
    g[2 * H] = hc;
  }
}

__global__ void gru_reset_after_forward_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* rec = a.rec + i * a.rec_ld + j;
    float* g = a.gates + row * 3 * H + j;
    float z = g[0] + rec[0] + (a.bias[j] + a.bias_h[j]);
    float r = g[H] + rec[H] + (a.bias[H + j] + a.bias_h[H + j]);
    rnn_math::gru_gates<float, DeviceMath>(z, r);
    const float n = rec[2 * H] + a.bias_h[2 * H + j];
    float hc = g[2 * H] + a.bias[2 * H + j] + r * n;
    a.out[row * H + j] = rnn_math::gru_output<float, DeviceMath>(z, hc, a.hp[i * a.hp_ld + j]);
    g[0] = z;
    g[H] = r;
    g[2 * H] = hc;
    if (a.state) a.state[row * H + j] = n;
  }
}

// The gradient reaching h_t: through the recurrence plus from the output.
__device__ __forceinline__ float total_dh(const StepArgs& a, int64_t i, int64_t j) {
  const float dh = a.dh[i * a.H + j];
  return a.dout ? dh + a.dout[(i * a.T + a.t) * a.H + j] : dh;
}

__global__ void lstm_backward_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* g = a.gates + row * 4 * H + j;
    float* da = a.da + row * a.DW + j;
    float dc = a.dc[i * H + j];
    rnn_math::lstm_backward<float, DeviceMath>(g[0], g[H], g[2 * H], g[3 * H],
                                               a.cp[i * a.cp_ld + j], a.state[row * H + j],
                                               total_dh(a, i, j), dc, da[0], da[H], da[2 * H],
                                               da[3 * H]);
    a.dc[i * H + j] = dc;
  }
}

__global__ void gru_backward_output_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* g = a.gates + row * 3 * H + j;
    float* da = a.da + row * a.DW + j;
    float dh_prev;
    rnn_math::gru_backward_output<float>(g[0], g[2 * H], a.hp[i * a.hp_ld + j], total_dh(a, i, j),
                                         da[0], da[2 * H], dh_prev);
    a.dh[i * H + j] = dh_prev;
  }
}

__global__ void gru_backward_reset_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float r = a.gates[row * 3 * H + H + j], hp = a.hp[i * a.hp_ld + j];
    float dh_prev = a.dh[i * H + j];
    a.da[row * a.DW + H + j] = rnn_math::gru_backward_reset<float>(r, hp, a.d_rh[i * H + j],
                                                                   dh_prev);
    a.dh[i * H + j] = dh_prev;
    a.rh_all[row * H + j] = r * hp;
  }
}

__global__ void gru_reset_after_backward_kernel(StepArgs a) {
  FOR_EACH_ELEMENT(a) {
    const int64_t i = e / a.H, j = e % a.H, H = a.H, row = i * a.T + a.t;
    const float* g = a.gates + row * 3 * H + j;
    float* da = a.da + row * a.DW + j;  // [z, r, n, h~]
    float dh_prev;
    rnn_math::gru_backward_output<float>(g[0], g[2 * H], a.hp[i * a.hp_ld + j], total_dh(a, i, j),
                                         da[0], da[3 * H], dh_prev);
    rnn_math::gru_backward_reset_after<float>(g[H], a.state[row * H + j], da[3 * H], da[H],
                                              da[2 * H]);
    a.dh[i * H + j] = dh_prev;
  }
}

// db[c] = the sum over the `rows` rows of da (width DW) of column src(c),
// rows in order. src: c itself, but for gru_reset_after, whose db is
// [input bias: z, r, h~ (da's column 3H + ...)], [recurrent bias: z, r, n].
__global__ void bias_grad_kernel(const float* da, int64_t rows, int64_t DW, int64_t H,
                                 bool reset_after, int64_t n, float* db) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < n;
       c += int64_t(gridDim.x) * blockDim.x) {
    int64_t src = c;
    if (reset_after) src = c < 2 * H ? c : (c < 3 * H ? c + H : c - 3 * H);
    float s = 0.0f;
    for (int64_t r = 0; r < rows; ++r) s += da[r * DW + src];
    db[c] = s;
  }
}

// dst (B,T,H) = the state entering each step: h0 (or zeros) at t = 0, out
// of the step before after.
__global__ void shift_states_kernel(const float* h0, const float* out, int64_t B, int64_t T,
                                    int64_t H, float* dst) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < B * T * H;
       e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = e % H, t = e / H % T, i = e / (H * T);
    dst[e] = t > 0 ? out[e - H] : (h0 ? h0[i * H + j] : 0.0f);
  }
}

// dst (B,H) = rows of src `ld` floats apart
__global__ void copy_rows_kernel(const float* src, int64_t ld, int64_t B, int64_t H, float* dst) {
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < B * H;
       e += int64_t(gridDim.x) * blockDim.x)
    dst[e] = src[e / H * ld + e % H];
}

unsigned blocks_for(int64_t n) {
  return unsigned(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads,
                                                         kMaxBlocks)));
}

void check_launch(const char* fn) { check(cudaGetLastError(), str_cat(fn, ": kernel launch").c_str()); }

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), int64_t n, const char* fn, Args... args) {
  if (n <= 0) return;
  kernel<<<blocks_for(n), kThreads, 0, cudaStreamLegacy>>>(Params(args)...);
  check_launch(fn);
}

// C = op(A) op(B) + beta C (gemm.h), nothing for an empty C; an empty K
// gives beta C (the leading dimensions of an empty operand are not checked).
void mm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
        const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  gemm(trans_a, trans_b, M, N, K, 1.0f, A, std::max<int64_t>(lda, 1), B,
       std::max<int64_t>(ldb, 1), beta, C, ldc);
}

void same_device(const DeviceBuffer& x, const DeviceBuffer* a, const char* fn, const char* name) {
  FASTNN_CHECK(!a || a->device() == x.device(), fn, ": argument '", name, "' is on cuda:",
               a ? a->device() : 0, " but 'x' is on cuda:", x.device());
}

void check_shape(const DeviceBuffer* a, const std::vector<int64_t>& want, const char* fn,
                 const char* name) {
  if (a) rnn_check_shape(a->shape(), want, fn, name);
}

// The state entering step t (h or c): the initial one, zeros, or the step
// before's row of a (B,T,H) array.
struct Rows {
  const float* p;
  int64_t ld;
};
Rows state_before(int64_t t, const DeviceBuffer* initial, const DeviceBuffer& zeros,
                  const float* seq, int64_t T, int64_t H) {
  if (t > 0) return {seq + (t - 1) * H, T * H};
  return {initial ? initial->data() : zeros.data(), H};
}

}  // namespace

RnnForwardResult rnn_forward(RnnCell cell, const DeviceBuffer& x, const DeviceBuffer* h0,
                             const DeviceBuffer* c0, const DeviceBuffer& w_x,
                             const DeviceBuffer& w_h, const DeviceBuffer& b, bool training) {
  const char* fn = "rnn_forward";
  const RnnDims d = rnn_dims(cell, x.shape(), h0 ? &h0->shape() : nullptr,
                             c0 ? &c0->shape() : nullptr, w_x.shape(), w_h.shape(), b.shape(), fn);
  for (const auto& [a, name] : {std::pair{h0, "h0"}, {c0, "c0"}, {&w_x, "w_x"}, {&w_h, "w_h"},
                                {&b, "b"}})
    same_device(x, a, fn, name);
  DeviceGuard guard(x.device());
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  const bool lstm = cell == RnnCell::lstm;
  RnnForwardResult r;
  r.out = DeviceBuffer({B, T, H});
  r.h_last = DeviceBuffer({B, H});
  if (lstm) r.c_last = DeviceBuffer({B, H});
  DeviceBuffer gates({B, T, GH});
  DeviceBuffer state;
  if (lstm || (training && cell == RnnCell::gru_reset_after)) state = DeviceBuffer({B, T, H});
  DeviceBuffer zeros = DeviceBuffer::zeros({B, H});
  DeviceBuffer rec({B, GH}), rh({B, H});

  mm(false, false, B * T, GH, I, x.data(), I, w_x.data(), GH, 0.0f, gates.data(), GH);
  StepArgs a;
  a.B = B;
  a.T = T;
  a.H = H;
  a.gates = gates.data();
  a.bias = b.data();
  a.bias_h = cell == RnnCell::gru_reset_after ? b.data() + GH : nullptr;
  a.out = r.out.data();
  a.state = state.numel() ? state.data() : nullptr;
  a.rh = rh.data();
  a.rec = rec.data();
  a.rec_ld = GH;
  for (int64_t t = 0; t < T && B * H > 0; ++t) {
    a.t = t;
    const Rows hp = state_before(t, h0, zeros, r.out.data(), T, H);
    a.hp = hp.p;
    a.hp_ld = hp.ld;
    if (lstm) {
      const Rows cp = state_before(t, c0, zeros, state.data(), T, H);
      a.cp = cp.p;
      a.cp_ld = cp.ld;
    }
    if (cell == RnnCell::gru) {
      mm(false, false, B, 2 * H, H, hp.p, hp.ld, w_h.data(), GH, 0.0f, rec.data(), GH);
      launch(gru_gates_kernel, B * H, fn, a);
      mm(false, false, B, H, H, rh.data(), H, w_h.data() + 2 * H, GH, 0.0f, rec.data(),
           GH);
      launch(gru_output_kernel, B * H, fn, a);
    } else {
      mm(false, false, B, GH, H, hp.p, hp.ld, w_h.data(), GH, 0.0f, rec.data(), GH);
      launch(lstm ? lstm_forward_kernel : gru_reset_after_forward_kernel, B * H, fn, a);
    }
  }
  const Rows h_end = state_before(T, h0, zeros, r.out.data(), T, H);
  launch(copy_rows_kernel, B * H, fn, h_end.p, h_end.ld, B, H, r.h_last.data());
  if (lstm) {
    const Rows c_end = state_before(T, c0, zeros, state.data(), T, H);
    launch(copy_rows_kernel, B * H, fn, c_end.p, c_end.ld, B, H, r.c_last->data());
  }
  if (training) {
    r.gates = std::move(gates);
    if (cell != RnnCell::gru) r.state = std::move(state);
  }
  return r;
}

RnnGradients rnn_backward(RnnCell cell, const DeviceBuffer& x, const DeviceBuffer* h0,
                          const DeviceBuffer* c0, const DeviceBuffer& w_x,
                          const DeviceBuffer& w_h, const DeviceBuffer& out,
                          const DeviceBuffer& gates, const DeviceBuffer* state,
                          const DeviceBuffer* dout, const DeviceBuffer* dh_last,
                          const DeviceBuffer* dc_last, const bool (&need)[6]) {
  const char* fn = "rnn_backward";
  RnnDims probe;
  probe.cell = cell;
  probe.hidden = w_h.ndim() >= 1 ? w_h.shape()[0] : 0;
  std::vector<int64_t> b_shape{probe.gate_width()};
  if (probe.bias_rows() == 2) b_shape.insert(b_shape.begin(), 2);
  const RnnDims d = rnn_dims(cell, x.shape(), h0 ? &h0->shape() : nullptr,
                             c0 ? &c0->shape() : nullptr, w_x.shape(), w_h.shape(), b_shape, fn);
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  check_shape(&out, {B, T, H}, fn, "out");
  check_shape(&gates, {B, T, GH}, fn, "gates");
  check_shape(state, {B, T, H}, fn, "state");
  check_shape(dout, {B, T, H}, fn, "dout");
  check_shape(dh_last, {B, H}, fn, "dh");
  check_shape(dc_last, {B, H}, fn, "dc");
  FASTNN_CHECK(!d.saves_state() || state || B * T * H == 0, fn,
               ": argument 'state' (the forward's saved states) is required for this cell");
  FASTNN_CHECK(!dc_last || d.has_cell_state(), fn, ": argument 'dc' is for the LSTM only");
  for (const auto& [a, name] : {std::pair{h0, "h0"}, {c0, "c0"}, {&w_x, "w_x"}, {&w_h, "w_h"},
                                {&out, "out"}, {&gates, "gates"}, {state, "state"},
                                {dout, "dout"}, {dh_last, "dh"}, {dc_last, "dc"}})
    same_device(x, a, fn, name);
  DeviceGuard guard(x.device());
  const bool lstm = cell == RnnCell::lstm, gru = cell == RnnCell::gru;
  const bool reset_after = cell == RnnCell::gru_reset_after;
  const int64_t DW = reset_after ? GH + H : GH, BT = B * T;

  DeviceBuffer da({B, T, DW}), zeros = DeviceBuffer::zeros({B, H});
  DeviceBuffer dh = DeviceBuffer::zeros({B, H}), dc = DeviceBuffer::zeros({B, H});
  DeviceBuffer d_rh({B, H}), rh_all;
  if (gru) rh_all = DeviceBuffer({B, T, H});
  if (dh_last) dh.copy_from(*dh_last);
  if (dc_last) dc.copy_from(*dc_last);
  StepArgs a;
  a.B = B;
  a.T = T;
  a.H = H;
  a.gates = const_cast<float*>(gates.data());  // read only in backward
  a.state = state ? const_cast<float*>(state->data()) : nullptr;
  a.dout = dout ? dout->data() : nullptr;
  a.dh = dh.data();
  a.dc = dc.data();
  a.d_rh = d_rh.data();
  a.rh_all = gru ? rh_all.data() : nullptr;
  a.da = da.data();
  a.DW = DW;
  for (int64_t t = T - 1; t >= 0 && B * H > 0; --t) {
    a.t = t;
    const Rows hp = state_before(t, h0, zeros, out.data(), T, H);
    a.hp = hp.p;
    a.hp_ld = hp.ld;
    if (lstm) {
      const Rows cp = state_before(t, c0, zeros, state->data(), T, H);
      a.cp = cp.p;
      a.cp_ld = cp.ld;
    }
    const float* da_t = da.data() + t * DW;
    if (gru) {
      launch(gru_backward_output_kernel, B * H, fn, a);
      mm(false, true, B, H, H, da_t + 2 * H, T * DW, w_h.data() + 2 * H, GH, 0.0f,
           d_rh.data(), H);
      launch(gru_backward_reset_kernel, B * H, fn, a);
      mm(false, true, B, H, 2 * H, da_t, T * DW, w_h.data(), GH, 1.0f, dh.data(), H);
    } else {
      launch(lstm ? lstm_backward_kernel : gru_reset_after_backward_kernel, B * H, fn, a);
      mm(false, true, B, H, GH, da_t, T * DW, w_h.data(), GH, lstm ? 0.0f : 1.0f,
           dh.data(), H);
    }
  }

  RnnGradients g;
  if (need[1]) g.dh0 = std::move(dh);
  if (need[2] && lstm) g.dc0 = std::move(dc);
  if (need[5]) {
    g.db = reset_after ? DeviceBuffer({2, GH}) : DeviceBuffer({GH});
    launch(bias_grad_kernel, g.db->numel(), fn, static_cast<const float*>(da.data()), BT, DW, H,
           reset_after, g.db->numel(), g.db->data());
  }
  if (need[4]) {
    g.dw_h = DeviceBuffer({H, GH});
    DeviceBuffer h_prev({B, T, H});
    launch(shift_states_kernel, BT * H, fn, h0 ? h0->data() : static_cast<const float*>(nullptr),
           out.data(), B, T, H, h_prev.data());
    if (gru) {
      mm(true, false, H, 2 * H, BT, h_prev.data(), H, da.data(), DW, 0.0f,
           g.dw_h->data(), GH);
      mm(true, false, H, H, BT, rh_all.data(), H, da.data() + 2 * H, DW, 0.0f,
           g.dw_h->data() + 2 * H, GH);
    } else {
      mm(true, false, H, GH, BT, h_prev.data(), H, da.data(), DW, 0.0f, g.dw_h->data(),
           GH);
    }
  }
  // the input side's gradients: da's [z, r] and h~ columns for reset_after
  if (need[3]) {
    g.dw_x = DeviceBuffer({I, GH});
    if (reset_after) {
      mm(true, false, I, 2 * H, BT, x.data(), I, da.data(), DW, 0.0f, g.dw_x->data(), GH);
      mm(true, false, I, H, BT, x.data(), I, da.data() + 3 * H, DW, 0.0f,
           g.dw_x->data() + 2 * H, GH);
    } else {
      mm(true, false, I, GH, BT, x.data(), I, da.data(), DW, 0.0f, g.dw_x->data(), GH);
    }
  }
  if (need[0]) {
    g.dx = DeviceBuffer({B, T, I});
    if (reset_after) {
      mm(false, true, BT, I, 2 * H, da.data(), DW, w_x.data(), GH, 0.0f, g.dx->data(), I);
      mm(false, true, BT, I, H, da.data() + 3 * H, DW, w_x.data() + 2 * H, GH, 1.0f,
           g.dx->data(), I);
    } else {
      mm(false, true, BT, I, GH, da.data(), DW, w_x.data(), GH, 0.0f, g.dx->data(), I);
    }
  }
  return g;
}

}  // namespace cuda
}  // namespace fastnn
