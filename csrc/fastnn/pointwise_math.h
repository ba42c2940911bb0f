// Maths of the pointwise kernels, written once for the CPU (scalar and SIMD
// code) and the GPU: under nvcc these are __host__ __device__ functions.
//
// The dropout hash gives the same mask bit for bit on every device and SIMD
// path (a model trained on one and checked on another draws the same mask
// for the same key). dropout_mix is a template so the CPU's vector loops
// hash whole vectors with this same code.
//
// For the C++ compiler the functions are static (internal to each file) and
// use nothing from the standard library: csrc/cpu/isa/ files include this
// header under wide instruction-set flags, and an inline function shared
// between files could otherwise be merged by the linker into a copy built
// for the wrong instruction set.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define FASTNN_HD __host__ __device__ __forceinline__
#else
#define FASTNN_HD static inline
#endif

namespace fastnn {
namespace pointwise_math {

// A 32-bit avalanche hash (xor-shift-multiply): every input bit flips each
// output bit with probability close to 1/2. U: uint32_t or a vector of them.
template <class U>
FASTNN_HD U dropout_mix(U h) {
  h ^= h >> 16;
  h *= 0x21f0aaadu;
  h ^= h >> 15;
  h *= 0x735a2d97u;
  h ^= h >> 15;
  return h;
}

// The two words of `key` for the elements whose index has the high word of
// i: the high word of the index (arrays past 2^32 elements) goes into the key.
struct DropoutKey {
  uint32_t k0, k1;
};
FASTNN_HD DropoutKey dropout_key(uint64_t key, int64_t i) {
  const uint64_t hi = uint64_t(i) >> 32;
  return {uint32_t(key) ^ uint32_t(hi * 0x9E3779B97F4A7C15ull), uint32_t(key >> 32)};
}

// The uniform 32-bit draw for element i (its index in the whole array) under
// `key`. U: the low words of the indices (uint32_t, or a vector of them that
// share one high word).
template <class U>
FASTNN_HD U dropout_bits(DropoutKey k, U low) {
  return dropout_mix<U>(dropout_mix<U>(low ^ k.k0) + k.k1);
}
FASTNN_HD uint32_t dropout_bits(uint64_t key, int64_t i) {
  return dropout_bits<uint32_t>(dropout_key(key, i), uint32_t(uint64_t(i)));
}

// An element is kept when its draw is >= this, i.e. with probability 1 - rate.
// 0 <= rate < 1 (the callers check).
FASTNN_HD uint32_t dropout_threshold(float rate) {
  const double t = double(rate) * 4294967296.0;
  return t < 4294967295.0 ? uint32_t(t) : 4294967295u;
}

// What a kept element is multiplied by.
FASTNN_HD float dropout_scale(float rate) { return 1.0f / (1.0f - rate); }

#if defined(__CUDACC__)
FASTNN_HD float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }
#endif

// ---------------------------------------------------------------- activations
// Keras's activations with their derivatives, PyTorch's formulas. Each is
// one line of this list, (name, keyword of its parameter or nullptr, the
// parameter's default), and a pair of functions below,
//   V name(V x, float p)        the activation
//   V name_grad(V x, float p)   its derivative at the input x
// V is float or a vector of floats (the CPU's SIMD loops); M supplies exp,
// expm1, log1p, tanh, erfc, abs and splat for V. The CPU loops, the CUDA
// kernels and both modules' bindings are made from this list: a new
// activation needs its line and its two functions here, and nothing else
// below the Python layer.
#define FASTNN_ACTIVATIONS(X)        \
  X(elu, "alpha", 1.0)               \
  X(selu, nullptr, 0.0)             \
  X(gelu, nullptr, 0.0)             \
  X(gelu_tanh, nullptr, 0.0)        \
  X(silu, nullptr, 0.0)             \
  X(softplus, nullptr, 0.0)         \
  X(softsign, nullptr, 0.0)         \
  X(leaky_relu, "negative_slope", 0.2) \
  X(hard_sigmoid, nullptr, 0.0)     \
  X(exponential, nullptr, 0.0)

#define FASTNN_ACTIVATION_ENUM(name, param, value) name,
enum class Activation { FASTNN_ACTIVATIONS(FASTNN_ACTIVATION_ENUM) count };
#undef FASTNN_ACTIVATION_ENUM

// A NaN input gives NaN wherever PyTorch's formula does: comparisons with
// NaN are false, so the branch taken is the one that carries x along.

// alpha * (e^x - 1) for x <= 0
template <class V, class M>
FASTNN_HD V elu(V x, float alpha) { return x > 0.0f ? x : alpha * M::expm1(x); }
template <class V, class M>
FASTNN_HD V elu_grad(V x, float alpha) { return x > 0.0f ? M::splat(1.0f) : alpha * M::exp(x); }

constexpr float kSeluAlpha = 1.6732632423543772f, kSeluScale = 1.0507009873554805f;
template <class V, class M>
FASTNN_HD V selu(V x, float) { return kSeluScale * elu<V, M>(x, kSeluAlpha); }
template <class V, class M>
FASTNN_HD V selu_grad(V x, float) { return kSeluScale * elu_grad<V, M>(x, kSeluAlpha); }

// The normal distribution's CDF, Phi(x) = erfc(-x / sqrt 2) / 2, with full
// relative precision in the lower tail.
template <class V, class M>
FASTNN_HD V normal_cdf(V x) {
  const V c = 0.5f * M::erfc(M::abs(x) * 0.70710678118654752f);
  return x < 0.0f ? c : 1.0f - c;
}
// x * Phi(x)
template <class V, class M>
FASTNN_HD V gelu(V x, float) { return x * normal_cdf<V, M>(x); }
template <class V, class M>
FASTNN_HD V gelu_grad(V x, float) {
  return normal_cdf<V, M>(x) + x * 0.39894228040143268f * M::exp(-0.5f * x * x);
}

// x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
constexpr float kGeluK0 = 0.7978845608028654f, kGeluK1 = 0.044715f;
template <class V, class M>
FASTNN_HD V gelu_tanh(V x, float) {
  return 0.5f * x * (1.0f + M::tanh(kGeluK0 * (x + kGeluK1 * x * x * x)));
}
template <class V, class M>
FASTNN_HD V gelu_tanh_grad(V x, float) {
  const V t = M::tanh(kGeluK0 * (x + kGeluK1 * x * x * x));
  return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kGeluK0 * (1.0f + 3.0f * kGeluK1 * x * x);
}

template <class V, class M>
FASTNN_HD V logistic(V x) { return 1.0f / (1.0f + M::exp(-x)); }

// x sigmoid(x) (Keras's swish)
template <class V, class M>
FASTNN_HD V silu(V x, float) { return x * logistic<V, M>(x); }
template <class V, class M>
FASTNN_HD V silu_grad(V x, float) {
  const V s = logistic<V, M>(x);
  return s * (1.0f + x * (1.0f - s));
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|), exact at both ends
template <class V, class M>
FASTNN_HD V softplus(V x, float) {
  return (x > 0.0f ? x : M::splat(0.0f)) + M::log1p(M::exp(-M::abs(x)));
}
template <class V, class M>
FASTNN_HD V softplus_grad(V x, float) { return logistic<V, M>(x); }

template <class V, class M>
FASTNN_HD V softsign(V x, float) { return x / (1.0f + M::abs(x)); }
template <class V, class M>
FASTNN_HD V softsign_grad(V x, float) {
  const V d = 1.0f + M::abs(x);
  return 1.0f / (d * d);
}

template <class V, class M>
FASTNN_HD V leaky_relu(V x, float slope) { return x > 0.0f ? x : slope * x; }
template <class V, class M>
FASTNN_HD V leaky_relu_grad(V x, float slope) {
  return x > 0.0f ? M::splat(1.0f) : M::splat(slope);
}

// relu6(x + 3) / 6 (Keras 3, PyTorch's hardsigmoid)
template <class V, class M>
FASTNN_HD V hard_sigmoid(V x, float) {
  V v = x + 3.0f;
  v = v < 0.0f ? M::splat(0.0f) : v;  // NaN stays
  v = v > 6.0f ? M::splat(6.0f) : v;
  return v * (1.0f / 6.0f);
}
template <class V, class M>
FASTNN_HD V hard_sigmoid_grad(V x, float) {
  return (x > -3.0f && x < 3.0f) ? M::splat(1.0f / 6.0f) : M::splat(0.0f);
}

template <class V, class M>
FASTNN_HD V exponential(V x, float) { return M::exp(x); }
template <class V, class M>
FASTNN_HD V exponential_grad(V x, float) { return M::exp(x); }

#if defined(__CUDACC__)
// M for float on the GPU: CUDA's maths library.
struct ActivationMath {
  __device__ static float exp(float x) { return expf(x); }
  __device__ static float expm1(float x) { return expm1f(x); }
  __device__ static float log1p(float x) { return log1pf(x); }
  __device__ static float tanh(float x) { return tanhf(x); }
  __device__ static float erfc(float x) { return erfcf(x); }
  __device__ static float abs(float x) { return fabsf(x); }
  __device__ static float splat(float x) { return x; }
};
#endif

// NumPy's maximum / minimum: a NaN in either operand gives NaN.
FASTNN_HD float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }
FASTNN_HD float nan_min(float a, float b) { return (a < b || a != a) ? a : b; }

}  // namespace pointwise_math
}  // namespace fastnn
