// Fused optimizer steps on the GPU (see optim.h): each thread updates
// elements of one tensor in a grid-stride loop with optim_math.h's
// formulas; the coefficients come from the host per tensor and step.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda/device_buffer.h"
#include "cuda/optim.h"
#include "fastnn/check.h"
#include "fastnn/optim_math.h"
#include "fastnn/pointwise_math.h"

namespace fastnn {
namespace cuda {

namespace {

namespace om = ::fastnn::optim_math;

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // the grid-stride loop covers the rest

// IEEE sqrtf (nvcc's default -prec-sqrt=true) and torch.maximum's NaN rule.
struct CudaMath {
  __device__ static float sqrt(float x) { return sqrtf(x); }
  __device__ static float max(float a, float b) { return pointwise_math::nan_max(a, b); }
};

// The update of one element: state buffers that are null read as 0 and
// are not written.
template <class Update, class Coeffs>
__global__ void update_kernel(int64_t n, float* p, const float* g, float* s0, float* s1,
                              float* s2, Coeffs c) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    float vp = p[i];
    float a = s0 ? s0[i] : 0.0f, b = s1 ? s1[i] : 0.0f, d = s2 ? s2[i] : 0.0f;
    Update::apply(vp, g[i], a, b, d, c);
    p[i] = vp;
    if (s0) s0[i] = a;
    if (s1) s1[i] = b;
    if (s2) s2[i] = d;
  }
}

struct Sgd {
  __device__ static void apply(float& p, float g, float& buf, float&, float&,
                               const om::SgdCoeffs& c) {
    om::sgd<float>(p, g, buf, c);
  }
};
struct Adagrad {
  __device__ static void apply(float& p, float g, float& sum, float&, float&,
                               const om::AdagradCoeffs& c) {
    om::adagrad<float, CudaMath>(p, g, sum, c);
  }
};
struct Rmsprop {
  __device__ static void apply(float& p, float g, float& sq, float& buf, float& gavg,
                               const om::RmspropCoeffs& c) {
    om::rmsprop<float, CudaMath>(p, g, sq, buf, gavg, c);
  }
};
struct Adam {
  __device__ static void apply(float& p, float g, float& m, float& v, float& vmax,
                               const om::AdamCoeffs& c) {
    om::adam<float, CudaMath>(p, g, m, v, vmax, c);
  }
};

// One launch per tensor; `used` says which state buffers the options use
// (the others are passed as null, so they are never touched).
template <class Update, class MakeCoeffs>
void run(const std::vector<OptimTensor>& ts, const bool (&used)[3], MakeCoeffs make,
         const char* fn) {
  for (const OptimTensor& t : ts) {
    if (t.n == 0) continue;
    const auto c = make(t.step);
    const unsigned blocks =
        unsigned(std::min<int64_t>((t.n + kThreads - 1) / kThreads, kMaxBlocks));
    update_kernel<Update><<<blocks, kThreads, 0, cudaStreamLegacy>>>(
        t.n, t.p, t.g, used[0] ? t.state[0] : nullptr, used[1] ? t.state[1] : nullptr,
        used[2] ? t.state[2] : nullptr, c);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) check(e, str_cat(fn, ": kernel launch").c_str());
  }
}

}  // namespace

void sgd_step(const std::vector<OptimTensor>& ts, const SgdOptions& o) {
  const bool used[3] = {o.momentum != 0.0, false, false};
  check_optim_tensors(ts, used[0], used[1], used[2], "sgd_step");
  run<Sgd>(ts, used, [&](int64_t step) { return sgd_coeffs(o, step); }, "sgd_step");
}

void adagrad_step(const std::vector<OptimTensor>& ts, const AdagradOptions& o) {
  const bool used[3] = {true, false, false};
  check_optim_tensors(ts, used[0], used[1], used[2], "adagrad_step");
  run<Adagrad>(ts, used, [&](int64_t step) { return adagrad_coeffs(o, step); }, "adagrad_step");
}

void rmsprop_step(const std::vector<OptimTensor>& ts, const RmspropOptions& o) {
  const bool used[3] = {true, o.momentum > 0.0, o.centered};
  check_optim_tensors(ts, used[0], used[1], used[2], "rmsprop_step");
  run<Rmsprop>(ts, used, [&](int64_t step) { return rmsprop_coeffs(o, step); }, "rmsprop_step");
}

void adam_step(const std::vector<OptimTensor>& ts, const AdamOptions& o) {
  const bool used[3] = {true, true, o.amsgrad};
  check_optim_tensors(ts, used[0], used[1], used[2], "adam_step");
  run<Adam>(ts, used, [&](int64_t step) { return adam_coeffs(o, step); }, "adam_step");
}

}  // namespace cuda
}  // namespace fastnn
