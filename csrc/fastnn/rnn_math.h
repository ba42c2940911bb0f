// Gate maths of the LSTM and GRU cells, written once for the CPU (the plain
// reference on floats, the SIMD passes on whole vectors) and the GPU.
//
// V is the value type (float, or a GCC vector of floats: the arithmetic
// reads the same); M supplies sigmoid(V) and tanh(V) for it. Each function
// works on one unit of one row: the pre-activations come in, the cell's
// activations and new state go out (the activations are what backward
// needs, so the forward writes them and backward reads them back).
//
// The formulas follow docs/api.md: LSTM gates [i, f, g, o], c' = f c + i g,
// h' = o tanh(c'); GRU gates [z, r, h~], h' = (1 - z) h + z h~, with the
// reset gate applied before the recurrent product (default) or after it
// (reset_after, cuDNN's form: h~ = tanh(xWh + bxh + r (hUh + bhh))).
//
// As in pointwise_math.h, for the C++ compiler these are static (internal
// to each file, so code built for a wide instruction set is never shared
// with a baseline caller) and use nothing from the standard library.
#pragma once

#if defined(__CUDACC__)
#define FASTNN_RNN_HD __host__ __device__ __forceinline__
#else
#define FASTNN_RNN_HD static inline
#endif

namespace fastnn {
namespace rnn_math {

// ---------------------------------------------------------------- LSTM
// In: pre-activations i, f, g, o and the previous cell state. Out: the
// activations (in place), the new cell state c and the output h.
template <class V, class M>
FASTNN_RNN_HD void lstm_forward(V& i, V& f, V& g, V& o, V c_prev, V& c, V& h) {
  i = M::sigmoid(i);
  f = M::sigmoid(f);
  g = M::tanh(g);
  o = M::sigmoid(o);
  c = f * c_prev + i * g;
  h = o * M::tanh(c);
}

// In: the activations, c_prev and c of the step, dh (all of the gradient
// reaching h') and dc (the gradient reaching c' from the step after).
// Out: the gradients of the four pre-activations and, in dc, the gradient
// reaching c_prev.
template <class V, class M>
FASTNN_RNN_HD void lstm_backward(V i, V f, V g, V o, V c_prev, V c, V dh, V& dc, V& di, V& df,
                                 V& dg, V& d_o) {
  const V tc = M::tanh(c);
  const V dct = dc + dh * o * (1.0f - tc * tc);
  d_o = dh * tc * o * (1.0f - o);
  di = dct * g * i * (1.0f - i);
  df = dct * c_prev * f * (1.0f - f);
  dg = dct * i * (1.0f - g * g);
  dc = dct * f;
}

// ---------------------------------------------------------------- GRU
// The update and reset gates from their pre-activations (in place).
template <class V, class M>
FASTNN_RNN_HD void gru_gates(V& z, V& r) {
  z = M::sigmoid(z);
  r = M::sigmoid(r);
}

// The candidate from its pre-activation (in place) and the new state.
template <class V, class M>
FASTNN_RNN_HD V gru_output(V z, V& hc, V h_prev) {
  hc = M::tanh(hc);
  return (1.0f - z) * h_prev + z * hc;
}

// Backward through h' = (1 - z) h + z h~ and h~'s tanh, for the gradient
// dh reaching h'. Out: dz, dhc (of the candidate's pre-activation) and the
// gradient reaching h_prev directly (not through the gates).
template <class V>
FASTNN_RNN_HD void gru_backward_output(V z, V hc, V h_prev, V dh, V& dz, V& dhc,
                                       V& dh_prev) {
  dz = dh * (hc - h_prev) * z * (1.0f - z);
  dhc = dh * z * (1.0f - hc * hc);
  dh_prev = dh * (1.0f - z);
}

// Backward through the reset gate (default form: h~ uses (r h) Uh), for
// d_rh, the gradient of r h: the reset gate's pre-activation gradient, and
// what reaches h_prev through r h (added to dh_prev).
template <class V>
FASTNN_RNN_HD V gru_backward_reset(V r, V h_prev, V d_rh, V& dh_prev) {
  dh_prev = dh_prev + d_rh * r;
  return d_rh * h_prev * r * (1.0f - r);
}

// Backward through the reset gate, reset_after form: n = h Uh + bhh (the
// forward's saved recurrent part). Out: the reset gate's pre-activation
// gradient dr, and dn, the gradient of n.
template <class V>
FASTNN_RNN_HD void gru_backward_reset_after(V r, V n, V dhc, V& dr, V& dn) {
  dn = dhc * r;
  dr = dhc * n * r * (1.0f - r);
}

}  // namespace rnn_math
}  // namespace fastnn
