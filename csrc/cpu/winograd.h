// Winograd convolution F(m x m, 3 x 3), m = 2 or 4, for 3x3 windows with
// stride 1 and dilation 1 (csrc/cpu/winograd.cpp), and the choice between
// it and the direct path (conv2d.cpp). Same shapes and contracts as
// fastnn/conv2d.h.
#pragma once
#include <cstdint>

#include "fastnn/conv2d.h"

namespace fastnn {

// Whether Winograd can compute this convolution (3x3, stride 1, dilation 1).
bool winograd_applies(const Window2d& s);

// The tile size m (2 or 4) Winograd should use for this pass, or 0 for the
// direct path: algo (auto resolved through FASTNN_CONV_ALGORITHM), then a
// cost model for auto. Throws std::invalid_argument when `winograd` is
// asked for a convolution it cannot compute.
int conv_winograd_tile(const Window2d& s, int64_t F, ConvPass pass, ConvAlgorithm algo);

void winograd_forward(const Window2d& s, int64_t F, int m, const float* x, const float* w,
                      const float* b, bool relu, float* y);
void winograd_backward_data(const Window2d& s, int64_t F, int m, const float* dy,
                            const float* w, float* dx);
void winograd_backward_weight(const Window2d& s, int64_t F, int m, const float* x,
                              const float* dy, float* dw);

}  // namespace fastnn
