// LSTM and GRU sequence kernels on the GPU, the same contracts as the CPU
// kernels (csrc/fastnn/rnn.h) with the shapes of rnn_shape.h: x (B,T,I),
// h0, c0 (B,H) or absent (zeros), w_x (I,G*H), w_h (H,G*H), b (G*H,) or
// (2,G*H) for gru_reset_after.
//
// Every array is a C-order DeviceBuffer; all must be on one device, where
// the results are allocated and the work is queued (legacy default stream,
// asynchronous). Bad arguments throw std::invalid_argument naming the
// argument and the shapes; launch failures throw CudaError. Each value is
// computed by one thread in a fixed order (no atomics): results repeat bit
// for bit. Like device_buffer.h, this header names no CUDA type.
#pragma once
#include <optional>

#include "cuda/device_buffer.h"
#include "fastnn/rnn_shape.h"

namespace fastnn {
namespace cuda {

struct RnnForwardResult {
  DeviceBuffer out;     // (B,T,H): h_1 .. h_T
  DeviceBuffer h_last;  // (B,H): h_T (h0 or zeros when T = 0)
  std::optional<DeviceBuffer> c_last;  // (B,H), LSTM
  // training only: what rnn_backward needs, as the CPU's RnnSaved
  std::optional<DeviceBuffer> gates;  // (B,T,G*H) the activated gates
  std::optional<DeviceBuffer> state;  // (B,T,H) c_t (LSTM), n_t (gru_reset_after)
};

RnnForwardResult rnn_forward(RnnCell cell, const DeviceBuffer& x, const DeviceBuffer* h0,
                             const DeviceBuffer* c0, const DeviceBuffer& w_x,
                             const DeviceBuffer& w_h, const DeviceBuffer& b, bool training);

// The gradients asked for (need: dx, dh0, dc0, dw_x, dw_h, db); the others
// are empty (dc0 also for a GRU).
struct RnnGradients {
  std::optional<DeviceBuffer> dx, dh0, dc0, dw_x, dw_h, db;
};

// From the forward's inputs, out, gates and state (null for gru), and the
// gradients of out (B,T,H), h_T and c_T (B,H), each null for zero.
RnnGradients rnn_backward(RnnCell cell, const DeviceBuffer& x, const DeviceBuffer* h0,
                          const DeviceBuffer* c0, const DeviceBuffer& w_x,
                          const DeviceBuffer& w_h, const DeviceBuffer& out,
                          const DeviceBuffer& gates, const DeviceBuffer* state,
                          const DeviceBuffer* dout, const DeviceBuffer* dh_last,
                          const DeviceBuffer* dc_last, const bool (&need)[6]);

}  // namespace cuda
}  // namespace fastnn
