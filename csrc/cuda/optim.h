// Fused optimizer steps on the GPU: the CPU's steps (fastnn/optim.h) with
// the same options, coefficients and per-element formulas (optim_math.h),
// one grid-stride kernel per tensor. Every buffer of `tensors` is device
// memory on the current device; unused state buffers may be null. Work is
// queued on the legacy default stream; launch failures throw CudaError.
// Like device_buffer.h, this header names no CUDA type.
#pragma once
#include <vector>

#include "fastnn/optim.h"

namespace fastnn {
namespace cuda {

void sgd_step(const std::vector<OptimTensor>& tensors, const SgdOptions& o);
void adagrad_step(const std::vector<OptimTensor>& tensors, const AdagradOptions& o);
void rmsprop_step(const std::vector<OptimTensor>& tensors, const RmspropOptions& o);
void adam_step(const std::vector<OptimTensor>& tensors, const AdamOptions& o);

}  // namespace cuda
}  // namespace fastnn
