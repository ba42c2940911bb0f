// The interface between the optimizer drivers (csrc/cpu/optim.cpp) and their
// SIMD loops, one set per instruction set (optim_<isa>.cpp). Each loop
// updates n contiguous float32 elements on one thread; the drivers split
// the work. The state buffers are those of fastnn/optim.h's step functions
// (null where the options leave one unused).
#pragma once
#include <cstdint>

#include "kernel_family.h"

#include "fastnn/optim_math.h"

namespace fastnn {

struct OptimKernels {
  void (*sgd)(int64_t n, float* p, const float* g, float* buf, const optim_math::SgdCoeffs& c);
  void (*adagrad)(int64_t n, float* p, const float* g, float* sum,
                  const optim_math::AdagradCoeffs& c);
  void (*rmsprop)(int64_t n, float* p, const float* g, float* sq, float* buf, float* gavg,
                  const optim_math::RmspropCoeffs& c);
  void (*adam)(int64_t n, float* p, const float* g, float* m, float* v, float* vmax,
               const optim_math::AdamCoeffs& c);
};

FASTNN_KERNEL_FAMILY(OptimKernels, optim)

}  // namespace fastnn
