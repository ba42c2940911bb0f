// Shapes of the LSTM and GRU sequence kernels, shared by the CPU and CUDA
// kernels and their bindings: which cell, the four sizes, and the checks
// that turn a wrong shape into std::invalid_argument (ValueError) naming the
// argument, the shape expected and the shape received.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "fastnn/check.h"

namespace fastnn {

// The LSTM, the GRU as the textbook writes it (reset gate before the
// recurrent product), and the GRU in cuDNN's form (reset_after).
enum class RnnCell { lstm, gru, gru_reset_after };

// "lstm", "gru" or "gru_reset_after"; anything else throws naming fn.
inline RnnCell rnn_cell(const std::string& name, const char* fn) {
  if (name == "lstm") return RnnCell::lstm;
  if (name == "gru") return RnnCell::gru;
  if (name == "gru_reset_after") return RnnCell::gru_reset_after;
  FASTNN_CHECK(false, fn, ": argument 'cell' must be 'lstm', 'gru' or 'gru_reset_after', got '",
               name, "'");
  return RnnCell::lstm;
}

// batch B, time T, input features I, hidden units H. Gates G side by side
// (LSTM [i, f, g, o], GRU [z, r, h~]), so the kernels are (I, G*H) and
// (H, G*H); the bias is (G*H,), or (2, G*H) in the reset_after form.
struct RnnDims {
  RnnCell cell = RnnCell::lstm;
  int64_t batch = 0, time = 0, input = 0, hidden = 0;

  int64_t gates() const { return cell == RnnCell::lstm ? 4 : 3; }
  int64_t gate_width() const { return gates() * hidden; }  // G*H
  bool has_cell_state() const { return cell == RnnCell::lstm; }
  // Per step, besides the activated gates, the forward saves (B, H) of
  // state for backward: c (LSTM) or n = h Uh + bhh (reset_after).
  bool saves_state() const { return cell != RnnCell::gru; }
  int64_t bias_rows() const { return cell == RnnCell::gru_reset_after ? 2 : 1; }
};

inline std::string rnn_shape_str(const std::vector<int64_t>& s) {
  std::string out = "(";
  for (size_t d = 0; d < s.size(); ++d) out += (d ? ", " : "") + std::to_string(s[d]);
  return out + (s.size() == 1 ? ",)" : ")");
}

// Throws unless `got` is `want`, naming fn, the argument and both shapes.
inline void rnn_check_shape(const std::vector<int64_t>& got, const std::vector<int64_t>& want,
                            const char* fn, const char* name, const char* what = "") {
  FASTNN_CHECK(got == want, fn, ": argument '", name, "' must have shape ", rnn_shape_str(want),
               what, ", got ", rnn_shape_str(got));
}

// The sizes of a sequence call from its arguments' shapes; throws for a
// shape that does not fit. h0 and c0 may be absent (zero initial states);
// c0 is the LSTM's only.
inline RnnDims rnn_dims(RnnCell cell, const std::vector<int64_t>& x,
                        const std::vector<int64_t>* h0, const std::vector<int64_t>* c0,
                        const std::vector<int64_t>& w_x, const std::vector<int64_t>& w_h,
                        const std::vector<int64_t>& b, const char* fn) {
  RnnDims d;
  d.cell = cell;
  FASTNN_CHECK(x.size() == 3, fn, ": argument 'x' must be 3-D (batch, time, features), got shape ",
               rnn_shape_str(x));
  FASTNN_CHECK(w_h.size() == 2, fn, ": argument 'w_h' (the recurrent kernel) must be 2-D "
               "(units, gates * units), got shape ", rnn_shape_str(w_h));
  d.batch = x[0];
  d.time = x[1];
  d.input = x[2];
  d.hidden = w_h[0];
  // sizes past 2^40 cannot be allocated anyway; below it products of two fit
  constexpr int64_t kMax = int64_t(1) << 40;
  FASTNN_CHECK(d.batch <= kMax && d.time <= kMax && d.input <= kMax && d.hidden <= kMax / 4, fn,
               ": sizes out of range: 'x' of shape ", rnn_shape_str(x), ", 'w_h' of shape ",
               rnn_shape_str(w_h));
  const int64_t H = d.hidden, GH = d.gate_width();
  rnn_check_shape(w_h, {H, GH}, fn, "w_h", " (units, gates * units)");
  FASTNN_CHECK(w_x.size() == 2, fn, ": argument 'w_x' (the kernel) must be 2-D (features, ", GH,
               "), got shape ", rnn_shape_str(w_x));
  FASTNN_CHECK(w_x[0] == d.input, fn, ": 'x' of shape ", rnn_shape_str(x), " has ", d.input,
               " features but the kernel 'w_x' of shape ", rnn_shape_str(w_x), " takes ", w_x[0]);
  rnn_check_shape(w_x, {d.input, GH}, fn, "w_x", " to match 'w_h'");
  if (cell == RnnCell::gru_reset_after)
    rnn_check_shape(b, {2, GH}, fn, "b", " ([input bias, recurrent bias] for reset_after)");
  else
    rnn_check_shape(b, {GH}, fn, "b");
  if (h0) rnn_check_shape(*h0, {d.batch, H}, fn, "h0", " (batch, units)");
  if (c0) {
    FASTNN_CHECK(cell == RnnCell::lstm, fn, ": argument 'c0' is for the LSTM only");
    rnn_check_shape(*c0, {d.batch, H}, fn, "c0", " (batch, units)");
  }
  checked_mul(checked_mul(checked_mul(d.batch, d.time), GH + H), 4);  // bytes of the saved state
  return d;
}

}  // namespace fastnn
