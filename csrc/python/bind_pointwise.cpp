// _C bindings of the pointwise kernels (csrc/cpu/pointwise.cpp): array
// checks and GIL release. Row-wise ops work over the last axis.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "args.h"
#include "arrays.h"
#include "fastnn/pointwise.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

using UnaryFn = void (*)(int64_t, const float*, float*);
using UnaryBackwardFn = void (*)(int64_t, const float*, const float*, float*);
using RowsFn = void (*)(int64_t, int64_t, const float*, float*);
using RowsBackwardFn = void (*)(int64_t, int64_t, const float*, const float*, float*);

// (rows, cols) of x seen as rows of its last axis
std::pair<int64_t, int64_t> rows_cols(const py::array& x, const char* fn) {
  FASTNN_CHECK(x.ndim() >= 1, fn, ": argument 'x' must have at least 1 dimension, got a scalar");
  const int64_t cols = x.shape(x.ndim() - 1);
  return {cols == 0 ? 0 : int64_t(x.size()) / cols, cols};
}

// name(x) -> y and bwd_name(y, dy) -> dx over the rows of x's last axis
// (by_rows), or over the whole array as one row.
void bind_pair(py::module_& m, const char* name, RowsFn fwd, const char* bwd_name,
               RowsBackwardFn bwd, bool by_rows) {
  const auto shape = [by_rows](const py::array& a, const char* fn) {
    return by_rows ? rows_cols(a, fn) : std::pair<int64_t, int64_t>{1, int64_t(a.size())};
  };
  m.def(name, [name, fwd, shape](const py::array& x) {
    const float* xp = in_f32(x, name, "x");
    const auto [rows, cols] = shape(x, name);
    auto y = empty_like(x);
    float* yp = y.mutable_data();
    py::gil_scoped_release release;
    fwd(rows, cols, xp, yp);
    return y;
  }, py::arg("x"));
  m.def(bwd_name, [bwd_name, bwd, shape](const py::array& y, const py::array& dy) {
    check_same_shape(y, dy, bwd_name, "y", "dy");
    const float* yp = in_f32(y, bwd_name, "y");
    const float* dyp = in_f32(dy, bwd_name, "dy");
    const auto [rows, cols] = shape(y, bwd_name);
    auto dx = empty_like(y);
    float* dxp = dx.mutable_data();
    py::gil_scoped_release release;
    bwd(rows, cols, yp, dyp, dxp);
    return dx;
  }, py::arg("y"), py::arg("dy"));
}

// An elementwise kernel as a RowsFn over rows * cols elements.
template <UnaryFn F>
void whole(int64_t rows, int64_t cols, const float* x, float* y) {
  F(rows * cols, x, y);
}
template <UnaryBackwardFn F>
void whole_backward(int64_t rows, int64_t cols, const float* y, const float* dy, float* dx) {
  F(rows * cols, y, dy, dx);
}

// The labels of (rows, cols) logits, a private copy (py_args::labels_arg).
std::vector<int64_t> labels_for(const py::array& logits, const py::array& labels, const char* fn) {
  FASTNN_CHECK(logits.ndim() == 2, fn, ": argument 'logits' must be 2-D (batch, classes), got shape ",
               shape_str(logits));
  return py_args::labels_arg(labels, logits.shape(0), fn);
}

}  // namespace

void bind_pointwise(py::module_& m) {
  bind_pair(m, "relu", whole<relu_forward>, "relu_backward", whole_backward<relu_backward>,
            false);
  bind_pair(m, "sigmoid", whole<sigmoid_forward>, "sigmoid_backward",
            whole_backward<sigmoid_backward>, false);
  bind_pair(m, "tanh", whole<tanh_forward>, "tanh_backward", whole_backward<tanh_backward>,
            false);
  py_args::def_activations(
      m,
      [](Activation a, const py::object& x_obj, float p, const char* fn) {
        const py::array x = py::array::ensure(x_obj);
        if (!x) throw py::type_error(str_cat(fn, ": argument 'x' must be a float32 array"));
        const float* xp = in_f32(x, fn, "x");
        auto y = empty_like(x);
        float* yp = y.mutable_data();
        py::gil_scoped_release release;
        activation_forward(a, int64_t(x.size()), xp, yp, p);
        return y;
      },
      [](Activation a, const py::object& x_obj, const py::object& dy_obj, float p,
         const char* fn) {
        const py::array x = py::array::ensure(x_obj), dy = py::array::ensure(dy_obj);
        if (!x || !dy)
          throw py::type_error(str_cat(fn, ": arguments 'x' and 'dy' must be float32 arrays"));
        check_same_shape(x, dy, fn, "x", "dy");
        const float* xp = in_f32(x, fn, "x");
        const float* dyp = in_f32(dy, fn, "dy");
        auto dx = empty_like(x);
        float* dxp = dx.mutable_data();
        py::gil_scoped_release release;
        activation_backward(a, int64_t(x.size()), xp, dyp, dxp, p);
        return dx;
      });
  bind_pair(m, "softmax", softmax_forward, "softmax_backward", softmax_backward, true);
  bind_pair(m, "log_softmax", log_softmax_forward, "log_softmax_backward", log_softmax_backward,
            true);

  m.def("cross_entropy", [](const py::array& logits, const py::array& labels) {
    const char* fn = "cross_entropy";
    const float* xp = in_f32(logits, fn, "logits");
    const std::vector<int64_t> lab = labels_for(logits, labels, fn);
    const int64_t* lp = lab.data();
    auto prob = empty_like(logits);
    float* pp = prob.mutable_data();
    double loss;
    {
      py::gil_scoped_release release;
      loss = cross_entropy_forward(logits.shape(0), logits.shape(1), xp, lp, pp);
    }
    return py::make_tuple(loss, prob);
  }, py::arg("logits"), py::arg("labels"),
     "(mean loss, softmax probabilities) of integer-labelled logits");

  m.def("cross_entropy_backward", [](const py::array& prob, const py::array& labels,
                                     float scale) {
    const char* fn = "cross_entropy_backward";
    const float* pp = in_f32(prob, fn, "prob");
    const std::vector<int64_t> lab = labels_for(prob, labels, fn);
    const int64_t* lp = lab.data();
    auto dx = empty_like(prob);
    float* dxp = dx.mutable_data();
    py::gil_scoped_release release;
    cross_entropy_backward(prob.shape(0), prob.shape(1), pp, lp, scale, dxp);
    return dx;
  }, py::arg("prob"), py::arg("labels"), py::arg("scale"),
     "scale * (prob - onehot(labels))");

  m.def("dropout", [](const py::array& x, float rate, uint64_t key) {
    const float* xp = in_f32(x, "dropout", "x");
    auto y = empty_like(x);
    float* yp = y.mutable_data();
    py::gil_scoped_release release;
    dropout(int64_t(x.size()), xp, yp, rate, key);
    return y;
  }, py::arg("x"), py::arg("rate"), py::arg("key"),
     "x * mask / (1 - rate), the mask a function of (key, index) only");

  m.def("axpy", [](float alpha, const py::array& x, py::array& y) {
    check_same_shape(x, y, "axpy", "x", "y");
    const float* xp = in_f32(x, "axpy", "x");
    float* yp = out_f32(y, "axpy", "y");
    py::gil_scoped_release release;
    axpy(int64_t(x.size()), alpha, xp, yp);
  }, py::arg("alpha"), py::arg("x"), py::arg("y"), "y += alpha * x, in place");
}

}  // namespace fastnn
