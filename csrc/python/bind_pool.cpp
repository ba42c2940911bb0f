// _C bindings of the pooling kernels (csrc/cpu/pool2d.cpp): array checks,
// the window's shape and GIL release. Pools take "valid" or "same" padding.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "arrays.h"
#include "fastnn/conv_shape.h"
#include "fastnn/pool2d.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

// The window of a pool over x (N, H, W, C); throws naming fn.
Window2d pool_window(const py::array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                     const std::string& padding, const char* fn) {
  nhwc_arg(x, fn, "x");
  FASTNN_CHECK(padding == "valid" || padding == "same", fn,
               ": argument 'padding' must be 'valid' or 'same' for a pool, got '", padding, "'");
  try {
    return window2d(x.shape(0), x.shape(1), x.shape(2), x.shape(3), kh, kw, sh, sw, 1, 1,
                    padding_arg(padding, 0, 0, fn), fn);
  } catch (const std::invalid_argument& e) {  // say which shapes
    throw std::invalid_argument(str_cat(e.what(), " ('x' of shape ", shape_str(x), ", pool (", kh,
                                        ", ", kw, "))"));
  }
}

py::array_t<float> pool_output(const Window2d& s) {
  return py::array_t<float>(std::vector<py::ssize_t>{s.n, s.h.out, s.w.out, s.c});
}

// The data of argument `name` (dy, or the forward's y) once it has the
// forward's output shape for x.
const float* dy_arg(const py::array& dy, const py::array& x, const Window2d& s, const char* fn,
                    const char* name) {
  const bool ok = dy.ndim() == 4 && dy.shape(0) == s.n && dy.shape(1) == s.h.out &&
                  dy.shape(2) == s.w.out && dy.shape(3) == s.c;
  FASTNN_CHECK(ok, fn, ": argument '", name, "' must have the forward's output shape (", s.n,
               ", ", s.h.out, ", ", s.w.out, ", ", s.c, ") for 'x' of shape ", shape_str(x),
               ", got ", shape_str(dy));
  return in_f32(dy, fn, name);
}

using ForwardFn = void (*)(const Window2d&, const float*, float*);

void bind_forward(py::module_& m, const char* name, ForwardFn fwd, const char* doc) {
  m.def(name, [name, fwd](const py::array& x, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          const std::string& padding) {
    const Window2d s = pool_window(x, kh, kw, sh, sw, padding, name);
    const float* xp = in_f32(x, name, "x");
    auto y = pool_output(s);
    float* yp = y.mutable_data();
    py::gil_scoped_release release;
    fwd(s, xp, yp);
    return y;
  }, py::arg("x"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), doc);
}

}  // namespace

void bind_pool(py::module_& m) {
  bind_forward(m, "max_pool2d", max_pool2d_forward,
               "y (N, OH, OW, C) = the max of each window of x (N, H, W, C); NaN wins");
  bind_forward(m, "avg_pool2d", avg_pool2d_forward,
               "y (N, OH, OW, C) = the mean of the real (unpadded) cells of each window of x");

  m.def("max_pool2d_backward", [](const py::array& x, const py::array& dy, int64_t kh,
                                  int64_t kw, int64_t sh, int64_t sw, const std::string& padding,
                                  const py::object& y) {
    const char* fn = "max_pool2d_backward";
    const Window2d s = pool_window(x, kh, kw, sh, sw, padding, fn);
    const float* xp = in_f32(x, fn, "x");
    const float* dyp = dy_arg(dy, x, s, fn, "dy");
    const float* yp = nullptr;
    if (!y.is_none()) {
      if (!py::isinstance<py::array>(y))
        throw py::type_error(str_cat(fn, ": argument 'y' must be a float32 array or None"));
      yp = dy_arg(py::reinterpret_borrow<py::array>(y), x, s, fn, "y");
    }
    auto dx = empty_like(x);
    float* dxp = dx.mutable_data();
    py::gil_scoped_release release;
    max_pool2d_backward(s, xp, yp, dyp, dxp);
    return dx;
  }, py::arg("x"), py::arg("dy"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), py::arg("y").none(true) = py::none(),
     "dx: each window's gradient to its first maximum, summed; y: max_pool2d(x)'s output "
     "(then the maxima are not searched for again) or None");

  m.def("avg_pool2d_backward", [](const py::array& x, const py::array& dy, int64_t kh,
                                  int64_t kw, int64_t sh, int64_t sw, const std::string& padding) {
    const char* fn = "avg_pool2d_backward";
    const Window2d s = pool_window(x, kh, kw, sh, sw, padding, fn);  // x: for its shape only
    const float* dyp = dy_arg(dy, x, s, fn, "dy");
    auto dx = empty_like(x);
    float* dxp = dx.mutable_data();
    py::gil_scoped_release release;
    avg_pool2d_backward(s, dyp, dxp);
    return dx;
  }, py::arg("x"), py::arg("dy"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), "dx: each window's gradient spread evenly over its real cells, summed");
}

}  // namespace fastnn
