// Drivers of the fused optimizer steps: the per-tensor coefficients, then
// every element of every tensor of the step in one parallel region, on the
// SIMD loops of the active instruction set (or the plain scalar loop).
#include "fastnn/optim.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "cpu/isa/optim_kernels.h"
#include "fastnn/check.h"
#include "fastnn/parallel.h"
#include "fastnn/pointwise_math.h"
#include "fastnn/runtime.h"

namespace fastnn {

namespace {

const OptimKernels& kernels() { return active_kernels<OptimKernels>(); }

// Elements one thread updates before a second is worth its start-up (the
// loops run at about one element per nanosecond and thread).
constexpr int64_t kGrain = 32 * 1024;
// The threads take chunks of the concatenated elements in turn, so a thread
// the OS has descheduled (these machines are shared) delays a step by about
// one chunk, not by its whole share. A multiple of 16 values (a 64-byte
// cache line): no two threads write one line.
constexpr int64_t kChunk = 16 * 1024;

// k(tensor index, begin, end) for every tensor's part of the elements,
// spread over the kernel threads.
template <class K>
void for_each_range(const std::vector<OptimTensor>& ts, bool reference, const K& k) {
  std::vector<int64_t> offset(ts.size() + 1, 0);
  for (size_t t = 0; t < ts.size(); ++t) offset[t + 1] = offset[t] + ts[t].n;
  const int64_t total = offset.back();
  const int64_t chunks = (total + kChunk - 1) / kChunk;
  const int64_t useful = std::max<int64_t>(1, total / kGrain);
  const int threads = reference ? 1 : int(std::min<int64_t>(get_num_threads(), useful));
  std::atomic<int64_t> next{0};
  parallel_region(threads, [&](int, int) {
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      const int64_t lo = c * kChunk, hi = std::min(total, lo + kChunk);
      // the first tensor that ends after lo
      size_t t = size_t(std::upper_bound(offset.begin(), offset.end(), lo) - offset.begin()) - 1;
      for (; t < ts.size() && offset[t] < hi; ++t) {
        const int64_t begin = std::max(lo, offset[t]) - offset[t];
        const int64_t end = std::min(hi, offset[t + 1]) - offset[t];
        if (begin < end) k(t, begin, end);
      }
    }
  });
}

// The buffers of tensor t from element `at` on.
struct Slice {
  float* p;
  const float* g;
  float* s[3];
};
Slice slice(const OptimTensor& t, int64_t at) {
  auto shift = [at](float* q) { return q ? q + at : nullptr; };
  return {t.p + at, t.g + at, {shift(t.state[0]), shift(t.state[1]), shift(t.state[2])}};
}

// The scalar loop: optim_math's formulas one element at a time.
struct ScalarMath {
  static float sqrt(float x) { return std::sqrt(x); }
  static float max(float a, float b) { return pointwise_math::nan_max(a, b); }
};

template <class F>
void scalar_update(int64_t n, Slice s, F f) {
  float zero[3] = {0.0f, 0.0f, 0.0f};
  for (int64_t i = 0; i < n; ++i) {
    float* st[3];
    for (int j = 0; j < 3; ++j) {
      zero[j] = 0.0f;
      st[j] = s.s[j] ? s.s[j] + i : &zero[j];
    }
    f(s.p[i], s.g[i], *st[0], *st[1], *st[2]);
  }
}

// The coefficients of every tensor, then the update, SIMD or scalar.
template <class Coeffs, class MakeCoeffs, class Simd, class Scalar>
void run(const std::vector<OptimTensor>& ts, bool reference, MakeCoeffs make, Simd simd,
         Scalar scalar) {
  std::vector<Coeffs> coeffs;
  coeffs.reserve(ts.size());
  for (const OptimTensor& t : ts) coeffs.push_back(make(t.step));
  for_each_range(ts, reference, [&](size_t t, int64_t begin, int64_t end) {
    const Slice s = slice(ts[t], begin);
    if (reference)
      scalar_update(end - begin, s, [&](float& p, float g, float& a, float& b, float& c) {
        scalar(p, g, a, b, c, coeffs[t]);
      });
    else
      simd(end - begin, s, coeffs[t]);
  });
}

}  // namespace

void sgd_step(const std::vector<OptimTensor>& ts, const SgdOptions& o, bool reference) {
  check_optim_tensors(ts, o.momentum != 0.0, false, false, "sgd_step");
  const auto k = kernels().sgd;
  run<optim_math::SgdCoeffs>(
      ts, reference, [&](int64_t step) { return sgd_coeffs(o, step); },
      [k](int64_t n, const Slice& s, const optim_math::SgdCoeffs& c) { k(n, s.p, s.g, s.s[0], c); },
      [](float& p, float g, float& buf, float&, float&, const optim_math::SgdCoeffs& c) {
        optim_math::sgd<float>(p, g, buf, c);
      });
}

void adagrad_step(const std::vector<OptimTensor>& ts, const AdagradOptions& o, bool reference) {
  check_optim_tensors(ts, true, false, false, "adagrad_step");
  const auto k = kernels().adagrad;
  run<optim_math::AdagradCoeffs>(
      ts, reference, [&](int64_t step) { return adagrad_coeffs(o, step); },
      [k](int64_t n, const Slice& s, const optim_math::AdagradCoeffs& c) {
        k(n, s.p, s.g, s.s[0], c);
      },
      [](float& p, float g, float& sum, float&, float&, const optim_math::AdagradCoeffs& c) {
        optim_math::adagrad<float, ScalarMath>(p, g, sum, c);
      });
}

void rmsprop_step(const std::vector<OptimTensor>& ts, const RmspropOptions& o, bool reference) {
  check_optim_tensors(ts, true, o.momentum > 0.0, o.centered, "rmsprop_step");
  const auto k = kernels().rmsprop;
  run<optim_math::RmspropCoeffs>(
      ts, reference, [&](int64_t step) { return rmsprop_coeffs(o, step); },
      [k](int64_t n, const Slice& s, const optim_math::RmspropCoeffs& c) {
        k(n, s.p, s.g, s.s[0], s.s[1], s.s[2], c);
      },
      [](float& p, float g, float& sq, float& buf, float& gavg,
         const optim_math::RmspropCoeffs& c) {
        optim_math::rmsprop<float, ScalarMath>(p, g, sq, buf, gavg, c);
      });
}

void adam_step(const std::vector<OptimTensor>& ts, const AdamOptions& o, bool reference) {
  check_optim_tensors(ts, true, true, o.amsgrad, "adam_step");
  const auto k = kernels().adam;
  run<optim_math::AdamCoeffs>(
      ts, reference, [&](int64_t step) { return adam_coeffs(o, step); },
      [k](int64_t n, const Slice& s, const optim_math::AdamCoeffs& c) {
        k(n, s.p, s.g, s.s[0], s.s[1], s.s[2], c);
      },
      [](float& p, float g, float& m, float& v, float& vmax, const optim_math::AdamCoeffs& c) {
        optim_math::adam<float, ScalarMath>(p, g, m, v, vmax, c);
      });
}

}  // namespace fastnn
