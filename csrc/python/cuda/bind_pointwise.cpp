// _C_cuda bindings of the pointwise kernels (csrc/cuda/pointwise.h), the
// mirror of csrc/python/bind_pointwise.cpp: the same op names and keywords,
// plus the arithmetic primitives that _C leaves to NumPy.
#include <string>
#include <vector>

#include "cuda/pointwise.h"
#include "python/cuda/device_args.h"

namespace fastnn {

using namespace py_args;
namespace cu = cuda;

void bind_pointwise(py::module_& m) {
  // relu, sigmoid, tanh as _C names them (the gradient through the output y)
  const char* through_output[][2] = {
      {"relu", "relu_backward"}, {"sigmoid", "sigmoid_backward"}, {"tanh", "tanh_backward"}};
  for (const auto& [name, bwd] : through_output) {
    const cu::UnaryOp op = cu::unary_op(name);
    m.def(name, [op, name = name](const py::object& x_obj) {
      const DeviceBuffer& x = device_arg(x_obj, name, "x");
      py::gil_scoped_release release;
      return cu::unary(op, x);
    }, py::arg("x"));
    m.def(bwd, [op, bwd = bwd](const py::object& y_obj, const py::object& dy_obj) {
      const DeviceBuffer& y = device_arg(y_obj, bwd, "y");
      const DeviceBuffer& dy = device_arg(dy_obj, bwd, "dy");
      py::gil_scoped_release release;
      return cu::unary_backward(op, y, dy);
    }, py::arg("y"), py::arg("dy"));
  }
  def_activations(
      m,
      [](Activation a, const py::object& x_obj, float p, const char* fn) {
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        py::gil_scoped_release release;
        return cu::activation(a, x, p);
      },
      [](Activation a, const py::object& x_obj, const py::object& dy_obj, float p,
         const char* fn) {
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer& dy = device_arg(dy_obj, fn, "dy");
        py::gil_scoped_release release;
        return cu::activation_backward(a, x, dy, p);
      });
  // The arithmetic primitives of the GPU namespace (_C does these in NumPy).
  m.def(
      "unary",
      [](const std::string& op, const py::object& x_obj) {
        const cu::UnaryOp o = cu::unary_op(op);
        const DeviceBuffer& x = device_arg(x_obj, "unary", "x");
        py::gil_scoped_release release;
        return cu::unary(o, x);
      },
      py::arg("op"), py::arg("x"),
      "y = op(x) for op in neg, exp, log, sqrt, abs (and relu, sigmoid, tanh)");
  m.def(
      "unary_backward",
      [](const std::string& op, const py::object& y_obj, const py::object& dy_obj) {
        const char* fn = "unary_backward";
        const cu::UnaryOp o = cu::unary_backward_op(op);
        const DeviceBuffer& y = device_arg(y_obj, fn, "y");
        const DeviceBuffer& dy = device_arg(dy_obj, fn, "dy");
        py::gil_scoped_release release;
        return cu::unary_backward(o, y, dy);
      },
      py::arg("op"), py::arg("y"), py::arg("dy"),
      "dx through the forward output y, for op in relu, sigmoid, tanh, exp, sqrt");
  m.def(
      "binary",
      [](const std::string& op, const py::object& a_obj, const py::object& b_obj) {
        const cu::BinaryOp o = cu::binary_op(op);
        const DeviceBuffer& a = device_arg(a_obj, "binary", "a");
        const DeviceBuffer& b = device_arg(b_obj, "binary", "b");
        py::gil_scoped_release release;
        return cu::binary(o, a, b);
      },
      py::arg("op"), py::arg("a"), py::arg("b"),
      "a op b with NumPy broadcasting, op in add, sub, mul, div, pow, maximum, minimum, eq, gt, "
      "ge, lt, le (comparisons give 1.0 / 0.0)");
  m.def(
      "scalar",
      [](const std::string& op, const py::object& x_obj, float s) {
        const cu::ScalarOp o = cu::scalar_op(op);
        const DeviceBuffer& x = device_arg(x_obj, "scalar", "x");
        py::gil_scoped_release release;
        return cu::scalar(o, x, s);
      },
      py::arg("op"), py::arg("x"), py::arg("s"),
      "x op s for op in add, sub, mul, div, pow, maximum, minimum; rsub, rdiv, rpow give s op x");
  using Reduce = DeviceBuffer (*)(const DeviceBuffer&, const std::vector<int64_t>&, bool);
  const struct {
    const char* name;
    Reduce f;
    const char* doc;
  } reductions[] = {
      {"sum", cu::reduce_sum,
       "Sum over axes (sorted, distinct, non-negative; none: a copy), deterministic"},
      {"max", cu::reduce_max,
       "Maximum over axes (sorted, distinct, non-negative; none: a copy); NaN propagates"}};
  for (const auto& r : reductions)
    m.def(r.name, [name = r.name, f = r.f](const py::object& x_obj, const py::object& axes_obj,
                                           bool keepdims) {
      const DeviceBuffer& x = device_arg(x_obj, name, "x");
      const std::vector<int64_t> axes = to_int_list(axes_obj, name, "axes");
      py::gil_scoped_release release;
      return f(x, axes, keepdims);
    }, py::arg("x"), py::arg("axes"), py::arg("keepdims"), r.doc);
  // layout ops: x and a shape (broadcast_to, reshape) or axes (permute), a new array
  using Layout = DeviceBuffer (*)(const DeviceBuffer&, const std::vector<int64_t>&);
  const struct {
    const char* name;
    Layout f;
    const char* arg;
    const char* doc;
  } layouts[] = {{"broadcast_to", cu::broadcast_to, "shape", "x broadcast to shape, as a new array"},
                 {"reshape", cu::reshape, "shape",
                  "x's values as a new array of another shape (no -1)"},
                 {"permute", cu::permute, "axes", "x.transpose(axes), as a new array"}};
  for (const auto& l : layouts)
    m.def(l.name, [name = l.name, f = l.f, shape = l.arg[0] == 's'](const py::object& x_obj,
                                                                       const py::object& arg) {
      const DeviceBuffer& x = device_arg(x_obj, name, "x");
      const std::vector<int64_t> v = shape ? to_shape(arg, name) : to_int_list(arg, name, "axes");
      py::gil_scoped_release release;
      return f(x, v);
    }, py::arg("x"), py::arg(l.arg), l.doc);
  m.def(
      "copy",
      [](const py::object& x_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "copy", "x");
        py::gil_scoped_release release;
        return cu::copy(x);
      },
      py::arg("x"), "A copy of x on its device");
  m.def(
      "assign",
      [](const py::object& dst_obj, const py::object& src_obj) {
        DeviceBuffer& dst = mutable_device_arg(dst_obj, "assign", "dst");
        const DeviceBuffer& src = device_arg(src_obj, "assign", "src");
        FASTNN_CHECK(dst.shape() == src.shape(), "assign: arguments 'dst' and 'src' must have "
                     "the same shape, got ", shape_str(dst.shape()), " and ",
                     shape_str(src.shape()));
        FASTNN_CHECK(dst.device() == src.device(), "assign: 'dst' is on device ", dst.device(),
                     " and 'src' on device ", src.device());
        if (&dst == &src) return;
        py::gil_scoped_release release;
        dst.copy_from(src);
      },
      py::arg("dst"), py::arg("src"), "Copies src's values into dst (same shape), in place");
  m.def(
      "fill",
      [](const py::object& x_obj, float value) {
        DeviceBuffer& x = mutable_device_arg(x_obj, "fill", "x");
        py::gil_scoped_release release;
        cu::fill(x, value);
      },
      py::arg("x"), py::arg("value"), "Sets every element of x to value, in place");
  m.def(
      "axpy",
      [](float alpha, const py::object& x_obj, const py::object& y_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "axpy", "x");
        DeviceBuffer& y = mutable_device_arg(y_obj, "axpy", "y");
        py::gil_scoped_release release;
        cu::axpy(alpha, x, y);
      },
      py::arg("alpha"), py::arg("x"), py::arg("y"), "y += alpha * x, in place");

  using RowsFn = DeviceBuffer (*)(const DeviceBuffer&);
  using RowsBackwardFn = DeviceBuffer (*)(const DeviceBuffer&, const DeviceBuffer&);
  const auto bind_rows = [&m](const char* name, RowsFn fwd, const char* bwd_name,
                              RowsBackwardFn bwd) {
    m.def(
        name,
        [name, fwd](const py::object& x_obj) {
          const DeviceBuffer& x = device_arg(x_obj, name, "x");
          py::gil_scoped_release release;
          return fwd(x);
        },
        py::arg("x"), "Over the last axis, the row maximum subtracted first");
    m.def(
        bwd_name,
        [bwd_name, bwd](const py::object& y_obj, const py::object& dy_obj) {
          const DeviceBuffer& y = device_arg(y_obj, bwd_name, "y");
          const DeviceBuffer& dy = device_arg(dy_obj, bwd_name, "dy");
          py::gil_scoped_release release;
          return bwd(y, dy);
        },
        py::arg("y"), py::arg("dy"), "dx through the forward output y");
  };
  bind_rows("softmax", &cu::softmax, "softmax_backward", &cu::softmax_backward);
  bind_rows("log_softmax", &cu::log_softmax, "log_softmax_backward", &cu::log_softmax_backward);

  m.def(
      "cross_entropy",
      [](const py::object& logits_obj, const py::object& labels_obj) {
        const char* fn = "cross_entropy";
        const DeviceBuffer& logits = device_arg(logits_obj, fn, "logits");
        const std::vector<int64_t> labels = labels_arg(labels_obj, -1, fn);
        const int64_t* lp = labels.data();
        const int64_t n = int64_t(labels.size());
        cu::CrossEntropyResult r;
        {
          py::gil_scoped_release release;
          r = cu::cross_entropy(logits, lp, n);
        }
        return py::make_tuple(r.loss, py::cast(std::move(r.prob)));
      },
      py::arg("logits"), py::arg("labels"),
      "(mean loss, softmax probabilities) of (N, C) logits and N host int64 labels");
  m.def(
      "cross_entropy_backward",
      [](const py::object& prob_obj, const py::object& labels_obj, float scale) {
        const char* fn = "cross_entropy_backward";
        const DeviceBuffer& prob = device_arg(prob_obj, fn, "prob");
        const std::vector<int64_t> labels = labels_arg(labels_obj, -1, fn);
        const int64_t* lp = labels.data();
        const int64_t n = int64_t(labels.size());
        py::gil_scoped_release release;
        return cu::cross_entropy_backward(prob, lp, n, scale);
      },
      py::arg("prob"), py::arg("labels"), py::arg("scale"), "scale * (prob - onehot(labels))");
  m.def(
      "dropout",
      [](const py::object& x_obj, float rate, uint64_t key) {
        const DeviceBuffer& x = device_arg(x_obj, "dropout", "x");
        py::gil_scoped_release release;
        return cu::dropout(x, rate, key);
      },
      py::arg("x"), py::arg("rate"), py::arg("key"),
      "x * mask / (1 - rate), the mask the CPU's (fastnn._C.dropout) for the same key");
}

}  // namespace fastnn
