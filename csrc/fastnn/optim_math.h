// The per-element updates of the optimizers, written once for the CPU
// (scalar reference and SIMD loops) and the GPU. The formulas and their
// order are PyTorch's torch.optim ones (single-tensor versions), so a
// trajectory agrees with PyTorch's to float32 rounding.
//
// V is float or a vector of floats; M supplies M::sqrt(V) and M::max(V, V)
// (NaN-propagating, as torch.maximum) for it: sqrtf on the GPU, intrinsics
// in the SIMD files. As in pointwise_math.h, nothing here uses the standard
// library and the functions are static for the C++ compiler, so the header
// is safe to include under wide instruction-set flags.
//
// The coefficients are per tensor and step, computed once on the host in
// double precision (fastnn/optim.h) and rounded to float, as PyTorch passes
// its Python-float scalars to its float32 kernels.
#pragma once
#include "fastnn/pointwise_math.h"  // FASTNN_HD

namespace fastnn {
namespace optim_math {

struct SgdCoeffs {
  float lr, momentum, one_minus_dampening, weight_decay;
  bool has_momentum, nesterov;
  bool first;  // the momentum buffer starts as the gradient (no dampening)
};

// buf: the momentum buffer (used when has_momentum).
template <class V>
FASTNN_HD void sgd(V& p, V g, V& buf, const SgdCoeffs& c) {
  if (c.weight_decay != 0.0f) g = g + c.weight_decay * p;
  if (c.has_momentum) {
    buf = c.first ? g : buf * c.momentum + c.one_minus_dampening * g;
    g = c.nesterov ? g + c.momentum * buf : buf;
  }
  p = p - c.lr * g;
}

struct AdagradCoeffs {
  float clr;  // lr / (1 + (step - 1) * lr_decay)
  float weight_decay, eps;
};

// sum: the accumulated squared gradients.
template <class V, class M>
FASTNN_HD void adagrad(V& p, V g, V& sum, const AdagradCoeffs& c) {
  if (c.weight_decay != 0.0f) g = g + c.weight_decay * p;
  sum = sum + g * g;
  p = p - c.clr * g / (M::sqrt(sum) + c.eps);
}

struct RmspropCoeffs {
  float lr, alpha, one_minus_alpha, eps, weight_decay, momentum;
  bool has_momentum, centered;
};

// sq: the running mean of g^2; buf: the momentum buffer (has_momentum);
// gavg: the running mean of g (centered).
template <class V, class M>
FASTNN_HD void rmsprop(V& p, V g, V& sq, V& buf, V& gavg, const RmspropCoeffs& c) {
  if (c.weight_decay != 0.0f) g = g + c.weight_decay * p;
  sq = sq * c.alpha + c.one_minus_alpha * g * g;
  V avg;
  if (c.centered) {
    gavg = gavg + c.one_minus_alpha * (g - gavg);
    avg = M::sqrt(sq - gavg * gavg) + c.eps;
  } else {
    avg = M::sqrt(sq) + c.eps;
  }
  if (c.has_momentum) {
    buf = buf * c.momentum + g / avg;
    p = p - c.lr * buf;
  } else {
    p = p - c.lr * (g / avg);
  }
}

struct AdamCoeffs {
  float one_minus_beta1, beta2, one_minus_beta2, eps;
  float weight_decay;   // added to the gradient (Adam's L2); 0 for AdamW
  float decay;          // AdamW's p *= 1 - lr * weight_decay; 1 otherwise
  float step_size;      // lr / (1 - beta1^step)
  float inv_bias2_sqrt; // 1 / sqrt(1 - beta2^step)
  bool amsgrad;
};

// m, v: the first and second moment estimates; vmax: the largest v so far
// (amsgrad).
template <class V, class M>
FASTNN_HD void adam(V& p, V g, V& m, V& v, V& vmax, const AdamCoeffs& c) {
  if (c.decay != 1.0f) p = p * c.decay;
  if (c.weight_decay != 0.0f) g = g + c.weight_decay * p;
  m = m + c.one_minus_beta1 * (g - m);
  v = v * c.beta2 + c.one_minus_beta2 * g * g;
  V denom;
  if (c.amsgrad) {
    vmax = M::max(vmax, v);
    denom = M::sqrt(vmax) * c.inv_bias2_sqrt + c.eps;
  } else {
    denom = M::sqrt(v) * c.inv_bias2_sqrt + c.eps;
  }
  p = p - c.step_size * m / denom;
}

}  // namespace optim_math
}  // namespace fastnn
