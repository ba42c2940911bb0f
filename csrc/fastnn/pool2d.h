// Max and average pooling over NHWC images, forward and backward; channels
// are independent. Shapes come from window2d() (conv_shape.h) with
// dilation 1. Every output is overwritten.
#pragma once
#include <cstdint>

#include "fastnn/conv_shape.h"

namespace fastnn {

// x: (N,H,W,C) -> y: (N,OH,OW,C); padded cells never win.
void max_pool2d_forward(const Window2d& s, const float* x, float* y);
// dx: (N,H,W,C); each window's gradient goes to its first maximum (in
// row-major order within the window), summed where windows overlap.
// y: the forward's output (the maxima, not searched for again) or nullptr.
void max_pool2d_backward(const Window2d& s, const float* x, const float* y, const float* dy,
                         float* dx);
// The mean of the real (unpadded) cells under each window, as Keras.
void avg_pool2d_forward(const Window2d& s, const float* x, float* y);
void avg_pool2d_backward(const Window2d& s, const float* dy, float* dx);

}  // namespace fastnn
