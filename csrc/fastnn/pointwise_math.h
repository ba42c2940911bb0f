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

// NumPy's maximum / minimum: a NaN in either operand gives NaN.
FASTNN_HD float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }
FASTNN_HD float nan_min(float a, float b) { return (a < b || a != a) ? a : b; }

}  // namespace pointwise_math
}  // namespace fastnn
