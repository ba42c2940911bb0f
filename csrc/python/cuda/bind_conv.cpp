// _C_cuda bindings of the convolution (csrc/cuda/conv2d.h), the mirror of
// csrc/python/bind_conv.cpp: x (N,H,W,C), w (KH,KW,C,F), b (F,) and dy as
// DeviceArrays; padding "valid", "same" or "explicit" (ph, pw).
#include <optional>
#include <string>

#include "cuda/conv2d.h"
#include "cuda/pointwise.h"
#include "python/cuda/device_args.h"

namespace fastnn {

using namespace py_args;
namespace cu = cuda;

namespace {
// The CPU module's algorithm argument, mirrored: the CUDA kernels have one
// algorithm, so "auto" and "direct" both name it.
void check_algorithm(const std::string& algorithm, const char* fn) {
  if (algorithm != "auto" && algorithm != "direct")
    throw std::invalid_argument(str_cat(fn, ": argument 'algorithm' must be 'auto' or 'direct' "
                                            "on the GPU (it has no Winograd kernels), got '",
                                        algorithm, "'"));
}
}  // namespace

void bind_conv(py::module_& m) {
  m.def(
      "conv2d",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& b_obj, int64_t sh,
         int64_t sw, const std::string& padding, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
         bool relu, const std::string& algorithm) {
        const char* fn = "conv2d";
        check_algorithm(algorithm, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer& w = device_arg(w_obj, fn, "w");
        const DeviceBuffer* b = b_obj.is_none() ? nullptr : &device_arg(b_obj, fn, "b");
        const cu::Conv2dOptions o{sh, sw, padding, ph, pw, dh, dw};
        py::gil_scoped_release release;
        return cu::conv2d(x, w, b, o, relu);
      },
      py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
      py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
      py::arg("relu"), py::arg("algorithm") = "auto",
      "y = conv(x, w) + b (then ReLU): NHWC x, HWIO w");
  m.def(
      "conv2d_backward",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& dy_obj, int64_t sh,
         int64_t sw, const std::string& padding, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
         bool need_dx, bool need_dw, bool need_db, const std::string& algorithm,
         const py::object& y_obj) {
        const char* fn = "conv2d_backward";
        check_algorithm(algorithm, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer& w = device_arg(w_obj, fn, "w");
        const DeviceBuffer& dy = device_arg(dy_obj, fn, "dy");
        const DeviceBuffer* y = optional_device_arg(y_obj, fn, "y");
        if (y)
          FASTNN_CHECK(y->shape() == dy.shape(), fn, ": argument 'y' must have the shape of 'dy' ",
                       shape_str(dy.shape()), ", got ", shape_str(y->shape()));
        const cu::Conv2dOptions o{sh, sw, padding, ph, pw, dh, dw};
        cu::Conv2dGrads g;
        {
          py::gil_scoped_release release;
          // the fused ReLU's gradient: dy where y > 0, by the pointwise kernel
          if (y) {
            const DeviceBuffer masked = cu::unary_backward(cu::UnaryOp::relu, *y, dy);
            g = cu::conv2d_backward(x, w, masked, o, need_dx, need_dw, need_db);
          } else {
            g = cu::conv2d_backward(x, w, dy, o, need_dx, need_dw, need_db);
          }
        }
        const auto out = [](std::optional<DeviceBuffer>& d) -> py::object {
          return d ? py::cast(std::move(*d)) : py::none();
        };
        return py::make_tuple(out(g.dx), out(g.dw), out(g.db));
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"),
      py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
      py::arg("need_dx"), py::arg("need_dw"), py::arg("need_db"), py::arg("algorithm") = "auto",
      py::arg("y").none(true) = py::none(),
      "(dx, dw, db), None where not asked for; y: conv2d's output when it fused the ReLU "
      "(its gradient then passes where y > 0)");
}

}  // namespace fastnn
