// The interface between the RNN drivers (csrc/cpu/rnn.cpp) and their fused
// gate passes, one set per instruction set (rnn_<isa>.cpp). A pass works on
// one block of one time step: m rows (batch entries) by n units, every
// pointer already at the block's first row and unit, rows `*_rs` floats
// apart. In a row of gates (width G*H), gate g of unit j is at g*H + j.
// The gate maths is csrc/fastnn/rnn_math.h's.
#pragma once
#include <cstdint>

#include "kernel_family.h"

namespace fastnn {

struct RnnForwardBlock {
  int64_t m = 0, n = 0, H = 0;
  // The recurrent product: row i, gate g, unit j at rec[i*rec_rs + g*rec_gs + j]
  // (the GRU's second pass: the candidate's alone, gate 0).
  const float* rec = nullptr;
  int64_t rec_rs = 0, rec_gs = 0;
  // The input projection x W_x (no bias), gates side by side; null when the
  // recurrent product includes it (it may be `gates`: read, then overwritten).
  const float* gx = nullptr;
  int64_t gx_rs = 0;
  float* gates = nullptr;  // out: the activated gates
  int64_t gates_rs = 0;
  const float* bias = nullptr;    // gate g of unit j at bias[g*H + j]
  const float* bias_h = nullptr;  // gru_reset_after: the recurrent bias, likewise
  const float* h_prev = nullptr;  // GRU
  int64_t h_prev_rs = 0;
  const float* c_prev = nullptr;  // LSTM
  int64_t c_prev_rs = 0;
  float* h = nullptr;  // the new state (the GRU's first pass: unused)
  int64_t h_rs = 0;
  float* h2 = nullptr;  // a second copy of it, or null
  int64_t h2_rs = 0;
  float* c = nullptr;  // LSTM: the new cell state; gru_reset_after: n (null: not kept)
  int64_t c_rs = 0;
  float* rh = nullptr;  // gru, first pass: r * h_prev
  int64_t rh_rs = 0;
};

struct RnnBackwardBlock {
  int64_t m = 0, n = 0, H = 0;
  const float* gates = nullptr;  // the step's activated gates
  int64_t gates_rs = 0;
  const float* state = nullptr;  // c_t (LSTM), n_t (gru_reset_after)
  int64_t state_rs = 0;
  const float* c_prev = nullptr;  // LSTM
  int64_t c_prev_rs = 0;
  const float* h_prev = nullptr;  // GRU
  int64_t h_prev_rs = 0;
  const float* dout = nullptr;  // the gradient of the step's output; null: zero
  int64_t dout_rs = 0;
  // In: the gradient reaching h_t through the recurrence. Out (GRU): the
  // part of dh_prev that bypasses the recurrent product; the second GRU
  // pass adds the part through r * h.
  float* dh = nullptr;
  int64_t dh_rs = 0;
  float* dc = nullptr;  // LSTM: in dc_t, out dc_{t-1}
  int64_t dc_rs = 0;
  const float* d_rh = nullptr;  // gru, second pass: the gradient of r * h_prev
  int64_t d_rh_rs = 0;
  float* rh = nullptr;  // gru, second pass: r * h_prev, for dw_h
  int64_t rh_rs = 0;
  // Out: the gradients of the pre-activations, gate g of unit j at g*H + j:
  // LSTM [i, f, g, o], gru [z, r, h~], gru_reset_after [z, r, n, h~] (n:
  // the recurrent part of the candidate, h~: its input part).
  float* da = nullptr;
  int64_t da_rs = 0;
};

struct RnnKernels {
  // c[0, n) = a[0, K) times the micro-panel p (K rows of nr floats, nr a
  // multiple of the vector and at most 4 vectors), plus c[0, n) when
  // accumulate: the product of a batch of one row, for which a register
  // tile would have too few FMA chains to cover their latency.
  void (*row_product)(int64_t K, const float* a, const float* p, int64_t nr, float* c, int64_t n,
                      bool accumulate);
  using Forward = void (*)(const RnnForwardBlock&);
  using Backward = void (*)(const RnnBackwardBlock&);
  Forward lstm_forward;
  Forward gru_gates;   // z, r; rh = r * h_prev
  Forward gru_output;  // the candidate and h
  Forward gru_reset_after_forward;
  Backward lstm_backward;
  Backward gru_backward_output;  // dz, dh~, the direct part of dh_prev
  Backward gru_backward_reset;   // dr, the part of dh_prev through r * h
  Backward gru_reset_after_backward;
};

FASTNN_KERNEL_FAMILY(RnnKernels, rnn)

}  // namespace fastnn
