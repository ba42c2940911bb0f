// Fused optimizer steps (PyTorch's torch.optim formulas): one pass over each
// parameter updates it and its optimizer state in place. A step takes all
// the tensors of a parameter group at once and splits their elements over
// the kernel threads in one parallel region; the result does not depend on
// the thread count (every element is updated on its own).
//
// The options and per-tensor coefficients below are shared with the CUDA
// kernels (csrc/cuda/optim.cu); the per-element maths is in optim_math.h.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "fastnn/check.h"
#include "fastnn/optim_math.h"

namespace fastnn {

// One parameter tensor of a step: n float32 values of the parameter p and
// of its gradient g, and up to three state buffers of n values each (which
// ones an optimizer uses is said at its step function; unused ones may be
// null). p and the state buffers are overwritten.
struct OptimTensor {
  int64_t n = 0;
  float* p = nullptr;
  const float* g = nullptr;
  float* state[3] = {nullptr, nullptr, nullptr};
  int64_t step = 1;  // this tensor's step count, this step included (>= 1)
};

struct SgdOptions {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
};
struct AdagradOptions {
  double lr, lr_decay, weight_decay, eps;
};
struct RmspropOptions {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};
struct AdamOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad;
  bool decoupled_weight_decay;  // AdamW
};

// state[0]: the momentum buffer (when momentum != 0); on step 1 it is set
// to the gradient.
void sgd_step(const std::vector<OptimTensor>& tensors, const SgdOptions& o, bool reference = false);
// state[0]: the sum of squared gradients.
void adagrad_step(const std::vector<OptimTensor>& tensors, const AdagradOptions& o,
                  bool reference = false);
// state[0]: the mean square, state[1]: the momentum buffer (momentum > 0),
// state[2]: the mean gradient (centered).
void rmsprop_step(const std::vector<OptimTensor>& tensors, const RmspropOptions& o,
                  bool reference = false);
// state[0]: exp_avg, state[1]: exp_avg_sq, state[2]: max_exp_avg_sq (amsgrad).
void adam_step(const std::vector<OptimTensor>& tensors, const AdamOptions& o,
               bool reference = false);
// `reference`: the plain scalar loop on one thread instead of the SIMD
// kernels (for the tests).

// Throws std::invalid_argument naming the first tensor whose buffers are
// missing for the options, or whose step is < 1 (the CPU and GPU drivers
// check with it).
inline void check_optim_tensors(const std::vector<OptimTensor>& tensors, bool needs_state0,
                                bool needs_state1, bool needs_state2, const char* fn) {
  const bool needs[3] = {needs_state0, needs_state1, needs_state2};
  for (size_t t = 0; t < tensors.size(); ++t) {
    const OptimTensor& x = tensors[t];
    FASTNN_CHECK(x.n >= 0, fn, ": tensor ", t, " has a negative size ", x.n);
    FASTNN_CHECK(x.step >= 1, fn, ": tensor ", t, " has step ", x.step, ", expected >= 1");
    if (x.n == 0) continue;
    FASTNN_CHECK(x.p && x.g, fn, ": tensor ", t, " has no parameter or gradient buffer");
    for (int j = 0; j < 3; ++j)
      FASTNN_CHECK(!needs[j] || x.state[j], fn, ": tensor ", t, " lacks state buffer ", j,
                   " that these options use");
  }
}

// ---------------------------------------------------------------- coefficients
// Per tensor and step, in double precision and then rounded to float, as
// PyTorch computes them in Python floats.

inline optim_math::SgdCoeffs sgd_coeffs(const SgdOptions& o, int64_t step) {
  return {float(o.lr), float(o.momentum), float(1.0 - o.dampening), float(o.weight_decay),
          o.momentum != 0.0, o.nesterov, step == 1};
}

inline optim_math::AdagradCoeffs adagrad_coeffs(const AdagradOptions& o, int64_t step) {
  return {float(o.lr / (1.0 + double(step - 1) * o.lr_decay)), float(o.weight_decay),
          float(o.eps)};
}

inline optim_math::RmspropCoeffs rmsprop_coeffs(const RmspropOptions& o, int64_t) {
  return {float(o.lr),       float(o.alpha),         float(1.0 - o.alpha),
          float(o.eps),      float(o.weight_decay),  float(o.momentum),
          o.momentum > 0.0,  o.centered};
}

inline optim_math::AdamCoeffs adam_coeffs(const AdamOptions& o, int64_t step) {
  const double bias1 = 1.0 - std::pow(o.beta1, double(step));
  const double bias2 = 1.0 - std::pow(o.beta2, double(step));
  const bool decoupled = o.decoupled_weight_decay;
  return {float(1.0 - o.beta1),
          float(o.beta2),
          float(1.0 - o.beta2),
          float(o.eps),
          decoupled ? 0.0f : float(o.weight_decay),
          decoupled ? float(1.0 - o.lr * o.weight_decay) : 1.0f,
          float(o.lr / bias1),
          float(1.0 / std::sqrt(bias2)),
          o.amsgrad};
}

}  // namespace fastnn
