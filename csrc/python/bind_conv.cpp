// _C bindings of the convolution kernels (csrc/cpu/conv2d.cpp): shape
// checks, GIL release. The Python layer (fastnn.kernels) normalises the
// arguments: strides and dilations as two ints, padding as a mode string
// ("valid", "same", "explicit") and two ints.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "arrays.h"
#include "fastnn/conv2d.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

struct ConvArgs {
  Window2d s;
  int64_t F = 0;
  const float* x = nullptr;
  const float* w = nullptr;
};

// x: (N,H,W,C), w: (KH,KW,C,F), checked against each other.
ConvArgs conv_args(const py::array& x, const py::array& w, int64_t sh, int64_t sw,
                   const std::string& mode, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                   const char* fn) {
  ConvArgs a;
  a.x = nhwc_arg(x, fn, "x");
  FASTNN_CHECK(w.ndim() == 4, fn, ": argument 'w' must be 4-D (KH, KW, C_in, C_out), got shape ",
               shape_str(w));
  a.w = in_f32(w, fn, "w");
  FASTNN_CHECK(w.shape(2) == x.shape(3), fn, ": the kernel of shape ", shape_str(w), " takes ",
               w.shape(2), " input channels but 'x' of shape ", shape_str(x), " has ", x.shape(3));
  a.F = w.shape(3);
  try {
    a.s = window2d(x.shape(0), x.shape(1), x.shape(2), x.shape(3), w.shape(0), w.shape(1), sh, sw,
                   dh, dw, padding_arg(mode, ph, pw, fn), fn);
  } catch (const std::invalid_argument& e) {  // say which shapes
    throw std::invalid_argument(str_cat(e.what(), " ('x' of shape ", shape_str(x),
                                        ", 'w' of shape ", shape_str(w), ")"));
  }
  return a;
}

py::array_t<float> nhwc_out(const Window2d& s, int64_t channels, const char* fn) {
  return new_f32({s.n, s.h.out, s.w.out, channels}, fn);
}

const float* bias_arg(const py::object& b_obj, int64_t F, const char* fn) {
  if (b_obj.is_none()) return nullptr;
  if (!py::isinstance<py::array>(b_obj))
    throw py::type_error(str_cat(fn, ": argument 'b' must be a float32 array or None"));
  const auto b = py::reinterpret_borrow<py::array>(b_obj);
  FASTNN_CHECK(b.ndim() == 1 && b.shape(0) == F, fn, ": argument 'b' must have shape (", F,
               ",), got ", shape_str(b));
  return in_f32(b, fn, "b");
}

using ForwardFn = void (*)(const Window2d&, int64_t, const float*, const float*, const float*,
                           bool, float*);

py::array conv_forward(ForwardFn fwd, const char* fn, const py::array& x, const py::array& w,
                       const py::object& b_obj, int64_t sh, int64_t sw, const std::string& mode,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dw, bool relu) {
  const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
  const float* b = bias_arg(b_obj, a.F, fn);
  auto y = nhwc_out(a.s, a.F, fn);
  float* yp = y.mutable_data();
  py::gil_scoped_release release;
  fwd(a.s, a.F, a.x, a.w, b, relu, yp);
  return y;
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d", [](const py::array& x, const py::array& w, const py::object& b, int64_t sh,
                     int64_t sw, const std::string& mode, int64_t ph, int64_t pw, int64_t dh,
                     int64_t dw, bool relu) {
    return conv_forward(conv2d_forward, "conv2d", x, w, b, sh, sw, mode, ph, pw, dh, dw, relu);
  }, py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
     py::arg("relu"), "y = conv(x, w) + b (then ReLU): NHWC x, HWIO w");

  m.def("conv2d_reference", [](const py::array& x, const py::array& w, const py::object& b,
                               int64_t sh, int64_t sw, const std::string& mode, int64_t ph,
                               int64_t pw, int64_t dh, int64_t dw, bool relu) {
    return conv_forward(conv2d_forward_reference, "conv2d_reference", x, w, b, sh, sw, mode, ph,
                        pw, dh, dw, relu);
  }, py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
     py::arg("relu"), "the plain-loop version of conv2d, for tests");

  m.def("conv2d_backward", [](const py::array& x, const py::array& w, const py::array& dy,
                              int64_t sh, int64_t sw, const std::string& mode, int64_t ph,
                              int64_t pw, int64_t dh, int64_t dw, bool need_dx, bool need_dw,
                              bool need_db) {
    const char* fn = "conv2d_backward";
    const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
    const std::vector<py::ssize_t> want{a.s.n, a.s.h.out, a.s.w.out, a.F};
    FASTNN_CHECK(dy.ndim() == 4 && std::equal(want.begin(), want.end(), dy.shape()), fn,
                 ": argument 'dy' must have the output's shape (", a.s.n, ", ", a.s.h.out, ", ",
                 a.s.w.out, ", ", a.F, "), got ", shape_str(dy));
    const float* dyp = in_f32(dy, fn, "dy");
    py::object dx = py::none(), dwt = py::none(), db = py::none();
    float *dxp = nullptr, *dwp = nullptr, *dbp = nullptr;
    if (need_dx) {
      auto arr = empty_like(x);
      dxp = arr.mutable_data();
      dx = arr;
    }
    if (need_dw) {
      auto arr = empty_like(w);
      dwp = arr.mutable_data();
      dwt = arr;
    }
    if (need_db) {
      auto arr = py::array_t<float>(std::vector<py::ssize_t>{a.F});
      dbp = arr.mutable_data();
      db = arr;
    }
    {
      py::gil_scoped_release release;
      if (dxp) conv2d_backward_data(a.s, a.F, dyp, a.w, dxp);
      if (dwp || dbp) {
        if (dwp) {
          conv2d_backward_weight(a.s, a.F, a.x, dyp, dwp, dbp);
        } else {
          conv2d_backward_bias(a.s.n * a.s.h.out * a.s.w.out, a.F, dyp, dbp);
        }
      }
    }
    return py::make_tuple(dx, dwt, db);
  }, py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"), py::arg("padding"),
     py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("need_dx"),
     py::arg("need_dw"), py::arg("need_db"), "(dx, dw, db), None where not asked for");
}

}  // namespace fastnn
