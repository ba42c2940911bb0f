// _C_cuda bindings of the pooling kernels (csrc/cuda/pool2d.h), the mirror
// of csrc/python/bind_pool.cpp.
#include <string>

#include "cuda/pool2d.h"
#include "python/cuda/device_args.h"

namespace fastnn {

using namespace py_args;
namespace cu = cuda;

void bind_pool(py::module_& m) {
  using PoolFn = DeviceBuffer (*)(const DeviceBuffer&, int64_t, int64_t, int64_t, int64_t,
                                  const std::string&);
  using PoolBackwardFn = DeviceBuffer (*)(const DeviceBuffer&, const DeviceBuffer&, int64_t,
                                          int64_t, int64_t, int64_t, const std::string&);
  const auto def_pool = [&m](const char* name, PoolFn fwd, const char* bwd_name,
                              PoolBackwardFn bwd, const char* doc, const char* bwd_doc) {
    m.def(
        name,
        [name, fwd](const py::object& x_obj, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                    const std::string& padding) {
          const DeviceBuffer& x = device_arg(x_obj, name, "x");
          py::gil_scoped_release release;
          return fwd(x, kh, kw, sh, sw, padding);
        },
        py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("padding"), doc);
    const auto backward = [bwd_name, bwd](const py::object& x_obj, const py::object& dy_obj,
                                          int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                          const std::string& padding) {
      const DeviceBuffer& x = device_arg(x_obj, bwd_name, "x");
      const DeviceBuffer& dy = device_arg(dy_obj, bwd_name, "dy");
      py::gil_scoped_release release;
      return bwd(x, dy, kh, kw, sh, sw, padding);
    };
    if (std::string(bwd_name) != "max_pool2d_backward") {
      m.def(bwd_name, backward, py::arg("x"), py::arg("dy"), py::arg("kh"), py::arg("kw"),
            py::arg("sh"), py::arg("sw"), py::arg("padding"), bwd_doc);
      return;
    }
    // y, the forward's output, as on the CPU: checked, then unused (the
    // GPU kernel finds each window's maximum as it routes the gradient)
    m.def(
        bwd_name,
        [bwd_name, backward](const py::object& x_obj, const py::object& dy_obj, int64_t kh,
                             int64_t kw, int64_t sh, int64_t sw, const std::string& padding,
                             const py::object& y_obj) {
          const DeviceBuffer* y = optional_device_arg(y_obj, bwd_name, "y");
          const DeviceBuffer& dy = device_arg(dy_obj, bwd_name, "dy");
          if (y)
            FASTNN_CHECK(y->shape() == dy.shape(), bwd_name, ": argument 'y' must have the "
                         "shape of 'dy' ", shape_str(dy.shape()), ", got ", shape_str(y->shape()));
          return backward(x_obj, dy_obj, kh, kw, sh, sw, padding);
        },
        py::arg("x"), py::arg("dy"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("padding"), py::arg("y").none(true) = py::none(), bwd_doc);
  };
  def_pool("max_pool2d", &cu::max_pool2d, "max_pool2d_backward", &cu::max_pool2d_backward,
            "y (N, OH, OW, C) = the max of each window of x (N, H, W, C); NaN wins",
            "dx: each window's gradient to its first maximum, summed; y: max_pool2d(x)'s "
            "output or None");
  def_pool("avg_pool2d", &cu::avg_pool2d, "avg_pool2d_backward", &cu::avg_pool2d_backward,
            "y (N, OH, OW, C) = the mean of the real (unpadded) cells of each window of x",
            "dx: each window's gradient spread evenly over its real cells, summed");
}

}  // namespace fastnn
