// Scratch buffers reused across kernel calls. Fresh pages cost about 2 us
// each on first touch here, so hot loops must not allocate per call.
// Each thread has its own buffers (kernels may run from several Python
// threads at once); a buffer grows as needed and is kept.
#pragma once
#include <cstdint>

namespace fastnn {

enum class Slot {
  gemm_a, gemm_b, conv_a, conv_b, conv_c, conv_pad,
  conv_dy,  // conv2d_backward: dy masked by a fused ReLU's output
  rnn_steps, rnn_state, rnn_small,  // rnn.cpp: per-step gates or gradients, (B,T,H) states, the rest
  count
};

// 64-byte aligned room for n floats in the calling thread's buffer `slot`;
// valid until the same thread asks for that slot again.
float* workspace(Slot slot, int64_t n);

}  // namespace fastnn
