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

// The gradients a backward was asked for: new arrays shaped as x, w and
// (F,), None where not asked for.
struct Grads {
  py::object dx_obj = py::none(), dw_obj = py::none(), db_obj = py::none();
  float *dx = nullptr, *dw = nullptr, *db = nullptr;
  Grads(const py::array& x, const py::array& w, int64_t F, bool need_dx, bool need_dw,
        bool need_db) {
    if (need_dx) {
      auto arr = empty_like(x);
      dx = arr.mutable_data();
      dx_obj = arr;
    }
    if (need_dw) {
      auto arr = empty_like(w);
      dw = arr.mutable_data();
      dw_obj = arr;
    }
    if (need_db) {
      auto arr = py::array_t<float>(std::vector<py::ssize_t>{F});
      db = arr.mutable_data();
      db_obj = arr;
    }
  }
  py::tuple tuple() const { return py::make_tuple(dx_obj, dw_obj, db_obj); }
};

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

ConvAlgorithm algorithm_arg(const std::string& name, const char* fn) {
  return parse_conv_algorithm(name, str_cat(fn, ": argument 'algorithm'").c_str());
}

template <class Forward>
py::array conv_forward(const Forward& fwd, const char* fn, const py::array& x,
                       const py::array& w, const py::object& b_obj, int64_t sh, int64_t sw,
                       const std::string& mode, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                       bool relu) {
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
                     int64_t dw, bool relu, const std::string& algorithm) {
    const ConvAlgorithm algo = algorithm_arg(algorithm, "conv2d");
    return conv_forward([algo](const Window2d& s, int64_t F, const float* x, const float* w,
                               const float* b, bool relu, float* y) {
      conv2d_forward(s, F, x, w, b, relu, y, algo);
    }, "conv2d", x, w, b, sh, sw, mode, ph, pw, dh, dw, relu);
  }, py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
     py::arg("relu"), py::arg("algorithm") = "auto",
     "y = conv(x, w) + b (then ReLU): NHWC x, HWIO w; algorithm 'auto', 'direct' or 'winograd'");

  m.def("conv2d_plan", [](const py::array& x, const py::array& w, int64_t sh, int64_t sw,
                          const std::string& mode, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                          const std::string& algorithm) {
    const char* fn = "conv2d_plan";
    const ConvAlgorithm algo = algorithm_arg(algorithm, fn);
    const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
    return py::make_tuple(conv2d_plan(a.s, a.F, ConvPass::forward, algo),
                          conv2d_plan(a.s, a.F, ConvPass::backward_data, algo),
                          conv2d_plan(a.s, a.F, ConvPass::backward_weight, algo));
  }, py::arg("x"), py::arg("w"), py::arg("sh"), py::arg("sw"), py::arg("padding"), py::arg("ph"),
     py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("algorithm") = "auto",
     "what (forward, backward-data, backward-weight) of conv2d run: 'direct', 'winograd2' or "
     "'winograd4'");

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
                              bool need_db, const std::string& algorithm, const py::object& y) {
    const char* fn = "conv2d_backward";
    const ConvAlgorithm algo = algorithm_arg(algorithm, fn);
    const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
    const std::vector<py::ssize_t> want{a.s.n, a.s.h.out, a.s.w.out, a.F};
    const auto output_shaped = [&](const py::array& arr, const char* name) {
      FASTNN_CHECK(arr.ndim() == 4 && std::equal(want.begin(), want.end(), arr.shape()), fn,
                   ": argument '", name, "' must have the output's shape (", a.s.n, ", ",
                   a.s.h.out, ", ", a.s.w.out, ", ", a.F, "), got ", shape_str(arr));
      return in_f32(arr, fn, name);
    };
    const float* dyp = output_shaped(dy, "dy");
    const float* yp = nullptr;
    if (!y.is_none()) {
      if (!py::isinstance<py::array>(y))
        throw py::type_error(str_cat(fn, ": argument 'y' must be a float32 array or None"));
      yp = output_shaped(py::reinterpret_borrow<py::array>(y), "y");
    }
    Grads g(x, w, a.F, need_dx, need_dw, need_db);
    {
      py::gil_scoped_release release;
      conv2d_backward(a.s, a.F, a.x, a.w, dyp, yp, g.dx, g.dw, g.db, algo);
    }
    return g.tuple();
  }, py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"), py::arg("padding"),
     py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("need_dx"),
     py::arg("need_dw"), py::arg("need_db"), py::arg("algorithm") = "auto",
     py::arg("y").none(true) = py::none(),
     "(dx, dw, db), None where not asked for; y: conv2d's output when it fused the ReLU "
     "(its gradient then passes where y > 0)");

  m.def("_conv2d_relu_max_pool", [](const py::array& x, const py::array& w,
                                    const py::object& b_obj, int64_t sh, int64_t sw,
                                    const std::string& mode, int64_t ph, int64_t pw, int64_t dh,
                                    int64_t dw, int64_t kh, int64_t kw,
                                    const std::string& algorithm) {
    const char* fn = "_conv2d_relu_max_pool";
    const ConvAlgorithm algo = algorithm_arg(algorithm, fn);
    const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
    const float* bp = bias_arg(b_obj, a.F, fn);
    FASTNN_CHECK(kh >= 1 && kw >= 1 && kh * kw <= 255, fn,
                 ": the pool window must be 1x1 to 255 cells, got ", kh, "x", kw);
    FASTNN_CHECK(a.s.h.out >= kh && a.s.w.out >= kw, fn, ": the pool window ", kh, "x", kw,
                 " does not fit the convolution's output of ", a.s.h.out, "x", a.s.w.out);
    const std::vector<py::ssize_t> shape{a.s.n, a.s.h.out / kh, a.s.w.out / kw, a.F};
    auto p = new_f32(shape, fn);
    auto arg = py::array_t<uint8_t>(shape);
    {
      py::gil_scoped_release release;
      conv2d_relu_pool_forward(a.s, a.F, a.x, a.w, bp, kh, kw, p.mutable_data(),
                               arg.mutable_data(), algo);
    }
    return py::make_tuple(p, arg);
  }, py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
     py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
     py::arg("kh"), py::arg("kw"), py::arg("algorithm") = "auto",
     "conv2d with a fused ReLU, then a max pool of kh x kw windows at stride (kh, kw) without "
     "padding: (p, arg), the pool's output and the index (uint8, row-major in the window) of "
     "each window's first maximum, for _conv2d_pool_backward");

  m.def("_conv2d_pool_backward", [](const py::array& x, const py::array& w, const py::object& y,
                                    const py::array& p, const py::array& dp, int64_t kh,
                                    int64_t kw, int64_t sh, int64_t sw, const std::string& mode,
                                    int64_t ph, int64_t pw, int64_t dh, int64_t dw, bool need_dx,
                                    bool need_dw, bool need_db, const std::string& algorithm,
                                    const py::object& arg) {
    const char* fn = "_conv2d_pool_backward";
    const ConvAlgorithm algo = algorithm_arg(algorithm, fn);
    const ConvArgs a = conv_args(x, w, sh, sw, mode, ph, pw, dh, dw, fn);
    FASTNN_CHECK(kh >= 1 && kw >= 1, fn, ": the pool window must be at least 1x1, got ", kh, "x",
                 kw);
    const auto shaped = [&](const py::array& arr, const char* name, int64_t h, int64_t wd) {
      FASTNN_CHECK(arr.ndim() == 4 && arr.shape(0) == a.s.n && arr.shape(1) == h &&
                       arr.shape(2) == wd && arr.shape(3) == a.F,
                   fn, ": argument '", name, "' must have shape (", a.s.n, ", ", h, ", ", wd,
                   ", ", a.F, "), got ", shape_str(arr));
      return in_f32(arr, fn, name);
    };
    PoolGrad pool{kh, kw, shaped(p, "p", a.s.h.out / kh, a.s.w.out / kw),
                  shaped(dp, "dp", a.s.h.out / kh, a.s.w.out / kw)};
    const float* yp = nullptr;
    if (!arg.is_none()) {  // the maxima's places instead of y (an index past the
                           // window's cells matches none: that window passes nothing)
      if (!py::isinstance<py::array_t<uint8_t>>(arg))
        throw py::type_error(str_cat(fn, ": argument 'arg' must be a uint8 array or None"));
      const auto arr = py::reinterpret_borrow<py::array>(arg);
      FASTNN_CHECK(arr.ndim() == 4 && std::equal(p.shape(), p.shape() + 4, arr.shape()) &&
                       is_c_contiguous_aligned(arr),
                   fn, ": argument 'arg' must be C-contiguous and of p's shape ", shape_str(p),
                   ", got ", shape_str(arr));
      pool.arg = static_cast<const uint8_t*>(arr.data());
    } else {
      if (!py::isinstance<py::array>(y))
        throw py::type_error(str_cat(fn, ": argument 'y' must be a float32 array when 'arg' "
                                         "is None"));
      yp = shaped(py::reinterpret_borrow<py::array>(y), "y", a.s.h.out, a.s.w.out);
    }
    Grads g(x, w, a.F, need_dx, need_dw, need_db);
    {
      py::gil_scoped_release release;
      conv2d_pool_backward(a.s, a.F, a.x, a.w, yp, pool, g.dx, g.dw, g.db, algo);
    }
    return g.tuple();
  }, py::arg("x"), py::arg("w"), py::arg("y").none(true), py::arg("p"), py::arg("dp"), py::arg("kh"),
     py::arg("kw"), py::arg("sh"), py::arg("sw"), py::arg("padding"), py::arg("ph"),
     py::arg("pw"), py::arg("dh"), py::arg("dw"), py::arg("need_dx"), py::arg("need_dw"),
     py::arg("need_db"), py::arg("algorithm") = "auto", py::arg("arg").none(true) = py::none(),
     "conv2d_backward of a convolution with a fused ReLU (output y) followed by a max pool of "
     "kh x kw windows at stride (kh, kw) without padding (output p), from dp, the gradient of "
     "p: (dx, dw, db), None where not asked for; arg (from _conv2d_relu_max_pool) may stand "
     "for y");
}

}  // namespace fastnn
