// LSTM and GRU layers on the CPU: a whole sequence per call, forward and
// backward through time. A single cell step is the sequence of length 1.
//
// Shapes (RnnDims, rnn_shape.h): x (B,T,I) batch first; h0, c0 (B,H);
// w_x (I,G*H); w_h (H,G*H); b (G*H,) or, for gru_reset_after, (2,G*H) =
// [input bias, recurrent bias]. All arrays are C-contiguous float32.
//
// The forward runs per step the product of all gates on the GEMM
// microkernels against weights packed once per call, and one fused pass
// that applies the gate nonlinearities and updates the state. The input
// projection x W_x is part of the step's product for batches of a register
// tile or more, one GEMM over all steps first for smaller ones. The
// backward runs per step the fused gate backward and the product for dh
// (and dx), and the weight gradients as GEMMs over all steps at the end.
// Results do not depend on the thread count.
#pragma once
#include <cstdint>

#include "fastnn/rnn_shape.h"

namespace fastnn {

// What the forward saves for backward (training); all null for inference.
//   gates: (B,T,G*H) the activated gates of every step
//   state: (B,T,H) c_t (LSTM) or n_t = h_{t-1} Uh + bhh (gru_reset_after);
//          unused (may be null) for gru
struct RnnSaved {
  float* gates = nullptr;
  float* state = nullptr;
};

// h0, c0: (B,H) or null for zeros (c0: LSTM only).
// out: (B,T,H), overwritten with h_1 .. h_T.
// c_last: (B,H) (LSTM; null otherwise), overwritten with c_T (c0 when T = 0).
void rnn_forward(const RnnDims& d, const float* x, const float* h0, const float* c0,
                 const float* w_x, const float* w_h, const float* b, float* out, float* c_last,
                 RnnSaved saved);

// The gradients to compute, each overwritten; null where not wanted.
//   dx (B,T,I), dh0 (B,H), dc0 (B,H) (LSTM), dw_x (I,G*H), dw_h (H,G*H),
//   db: the bias's shape
struct RnnGrads {
  float* dx = nullptr;
  float* dh0 = nullptr;
  float* dc0 = nullptr;
  float* dw_x = nullptr;
  float* dw_h = nullptr;
  float* db = nullptr;
};

// From the forward's inputs, out and saved arrays, and the gradients of its
// outputs: dout (B,T,H) of out, dh_last (B,H) of h_T, dc_last (B,H) of c_T
// (LSTM), each null for zero.
void rnn_backward(const RnnDims& d, const float* x, const float* h0, const float* c0,
                  const float* w_x, const float* w_h, const float* out, const float* gates,
                  const float* state, const float* dout, const float* dh_last,
                  const float* dc_last, RnnGrads grads);

// The same, step by step with plain loops and scalar maths: the readable
// definition and a check of the fast path. gates and state as above (both
// required for the backward's inputs, where the cell has them).
void rnn_forward_reference(const RnnDims& d, const float* x, const float* h0, const float* c0,
                           const float* w_x, const float* w_h, const float* b, float* out,
                           float* c_last, RnnSaved saved);
void rnn_backward_reference(const RnnDims& d, const float* x, const float* h0, const float* c0,
                            const float* w_x, const float* w_h, const float* out,
                            const float* gates, const float* state, const float* dout,
                            const float* dh_last, const float* dc_last, RnnGrads grads);

}  // namespace fastnn
