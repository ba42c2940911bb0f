// fastnn._C_cuda: the CUDA kernels for Python. Argument checks and GIL
// release only; friendlier conversions live in python/fastnn/cuda.py.
//
// Built by the host C++ compiler: it sees the kernels only through
// csrc/cuda/*.h, which name no CUDA type. Importing it needs no GPU or
// driver (the CUDA runtime is linked statically and starts lazily);
// device_count() is then 0 and anything that touches a device raises
// RuntimeError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/conv2d.h"
#include "cuda/device_buffer.h"
#include "cuda/gemm.h"
#include "cuda/optim.h"
#include "cuda/pointwise.h"
#include "cuda/pool2d.h"
#include "cuda/rnn.h"
#include "fastnn/check.h"

namespace py = pybind11;
using fastnn::str_cat;
using fastnn::cuda::DeviceBuffer;
using fastnn::cuda::shape_str;

namespace {

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

// One extent: anything operator.index accepts (int, np.int64, ...).
int64_t to_extent(const py::handle& item, const char* fn) {
  if (!PyIndex_Check(item.ptr()))
    throw py::type_error(str_cat(fn, ": argument 'shape' must hold ints, got ", type_name(item)));
  const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long d = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (d == -1 && PyErr_Occurred()) throw py::error_already_set();
  FASTNN_CHECK(overflow == 0, fn, ": argument 'shape' holds ", std::string(py::str(index)),
               ", too large for a size");
  return int64_t(d);
}

// An integer or a sequence of them, as NumPy accepts for shapes.
std::vector<int64_t> to_shape(const py::handle& obj, const char* fn) {
  std::vector<int64_t> shape;
  const bool is_0d_array =
      py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 0;
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj)) {
    throw py::type_error(str_cat(fn, ": argument 'shape' must be an int or a tuple of ints, got ",
                                 type_name(obj)));
  } else if (is_0d_array || !py::isinstance<py::sequence>(obj)) {
    if (!PyIndex_Check(obj.ptr()))
      throw py::type_error(str_cat(fn, ": argument 'shape' must be an int or a tuple of ints, got ",
                                   type_name(obj)));
    shape.push_back(to_extent(obj, fn));
  } else {
    for (const py::handle item : py::reinterpret_borrow<py::sequence>(obj))
      shape.push_back(to_extent(item, fn));
  }
  for (int64_t d : shape)
    FASTNN_CHECK(d >= 0, fn, ": argument 'shape' must not be negative, got ", shape_str(shape));
  return shape;
}

DeviceBuffer empty(const py::object& shape_obj) {
  std::vector<int64_t> shape = to_shape(shape_obj, "DeviceArray.empty");
  py::gil_scoped_release release;
  return DeviceBuffer(std::move(shape));
}

DeviceBuffer zeros(const py::object& shape_obj) {
  std::vector<int64_t> shape = to_shape(shape_obj, "DeviceArray.zeros");
  py::gil_scoped_release release;
  return DeviceBuffer::zeros(std::move(shape));
}

// Any numeric array; converted to native float32 in C order on the host
// first (by NumPy, so a failure such as MemoryError is raised as it is).
DeviceBuffer from_numpy(const py::array& x) {
  const char kind = x.dtype().kind();
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b')
    throw py::type_error(str_cat("DeviceArray.from_numpy: argument 'x' must be an array of ",
                                 "numbers, got dtype ", std::string(py::str(x.dtype()))));
  // asarray keeps a 0-d array 0-d (ascontiguousarray would make it 1-d); a
  // byte-swapped '>f4' is not equivalent to float32, so it is converted too.
  using HostArray = py::array_t<float, py::array::c_style>;
  const py::object host_obj =
      py::module_::import("numpy").attr("asarray")(x, "float32", py::arg("order") = "C");
  if (!HostArray::check_(host_obj))
    throw std::logic_error("DeviceArray.from_numpy: numpy.asarray gave no C-order float32 array");
  const auto host = py::reinterpret_borrow<HostArray>(host_obj);
  std::vector<int64_t> shape(host.shape(), host.shape() + host.ndim());
  const float* src = host.data();
  py::gil_scoped_release release;
  return DeviceBuffer::from_host(src, std::move(shape));
}

py::array_t<float> to_numpy(const DeviceBuffer& x) {
  std::vector<py::ssize_t> shape(x.shape().begin(), x.shape().end());
  py::array_t<float> out(shape);
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    x.copy_to_host(dst, x.numel());
  }
  return out;
}

py::tuple shape_tuple(const DeviceBuffer& x) {
  py::tuple t(x.shape().size());
  for (size_t i = 0; i < x.shape().size(); ++i) t[i] = py::int_(x.shape()[i]);
  return t;
}

const DeviceBuffer& matrix_arg(const py::handle& obj, const char* name) {
  if (!py::isinstance<DeviceBuffer>(obj))
    throw py::type_error(
        str_cat("gemm: argument '", name, "' must be a DeviceArray, got ", type_name(obj)));
  const DeviceBuffer& x = obj.cast<const DeviceBuffer&>();
  FASTNN_CHECK(x.ndim() == 2, "gemm: argument '", name, "' must be 2-D, got shape ",
               shape_str(x.shape()));
  return x;
}

// c = alpha * op(a) @ op(b) + beta * c on DeviceArrays. c is updated in place
// and returned; with c None a new (M, N) array is returned (beta ignored).
py::object gemm(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b,
                float alpha, float beta, const py::object& c_obj) {
  const DeviceBuffer& a = matrix_arg(a_obj, "a");
  const DeviceBuffer& b = matrix_arg(b_obj, "b");
  const int64_t M = a.shape()[trans_a ? 1 : 0], K = a.shape()[trans_a ? 0 : 1];
  const int64_t Kb = b.shape()[trans_b ? 1 : 0], N = b.shape()[trans_b ? 0 : 1];
  FASTNN_CHECK(K == Kb, "gemm: inner dimensions differ: op(a) has shape (", M, ", ", K,
               ") and op(b) has shape (", Kb, ", ", N, ")");

  FASTNN_CHECK(a.device() == b.device(), "gemm: arguments 'a' and 'b' are on different devices (",
               "cuda:", a.device(), " and cuda:", b.device(), ")");
  if (!c_obj.is_none()) {
    const DeviceBuffer& c = matrix_arg(c_obj, "c");
    FASTNN_CHECK(c.shape()[0] == M && c.shape()[1] == N, "gemm: argument 'c' must have shape (",
                 M, ", ", N, "), got ", shape_str(c.shape()));
    FASTNN_CHECK(c.device() == a.device(), "gemm: argument 'c' is on cuda:", c.device(),
                 " but 'a' and 'b' are on cuda:", a.device());
  }
  // The operands' device is current for the call (a new c is allocated and
  // the kernel queued there), the caller's one again afterwards.
  fastnn::cuda::DeviceGuard guard(a.device());
  py::object result = c_obj;
  if (c_obj.is_none()) {
    beta = 0.f;
    result = py::cast(DeviceBuffer(std::vector<int64_t>{M, N}));
  }
  DeviceBuffer& c = result.cast<DeviceBuffer&>();

  py::gil_scoped_release release;
  // The kernel reads A and B while it writes C: an operand that is also the
  // output is read from a copy.
  DeviceBuffer a_copy, b_copy;
  const float* pa = a.data();
  const float* pb = b.data();
  if (pa != nullptr && pa == c.data()) {
    a_copy = DeviceBuffer(a.shape());
    a_copy.copy_from(a);
    pa = a_copy.data();
  }
  if (pb != nullptr && pb == c.data()) {
    b_copy = DeviceBuffer(b.shape());
    b_copy.copy_from(b);
    pb = b_copy.data();
  }
  const int64_t lda = std::max<int64_t>(1, a.shape()[1]), ldb = std::max<int64_t>(1, b.shape()[1]);
  fastnn::cuda::gemm(trans_a, trans_b, M, N, K, alpha, pa, lda, pb, ldb, beta, c.data(),
                     std::max<int64_t>(1, N));
  // The copies are freed in stream order (after the kernel), see device_buffer.cu.
  return result;
}

// ---------------------------------------------------------------- pointwise

namespace cu = fastnn::cuda;

// A DeviceArray argument; TypeError naming it otherwise.
const DeviceBuffer& device_arg(const py::handle& obj, const char* fn, const char* name) {
  if (!py::isinstance<DeviceBuffer>(obj))
    throw py::type_error(
        str_cat(fn, ": argument '", name, "' must be a DeviceArray, got ", type_name(obj)));
  return obj.cast<const DeviceBuffer&>();
}

DeviceBuffer& mutable_device_arg(const py::handle& obj, const char* fn, const char* name) {
  device_arg(obj, fn, name);
  return obj.cast<DeviceBuffer&>();
}

// A sequence of integers (anything operator.index accepts), e.g. axes.
std::vector<int64_t> to_int_list(const py::handle& obj, const char* fn, const char* name) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) ||
      !py::isinstance<py::sequence>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a sequence of ints, got ",
                                 type_name(obj)));
  std::vector<int64_t> out;
  for (const py::handle item : py::reinterpret_borrow<py::sequence>(obj)) {
    if (!PyIndex_Check(item.ptr()))
      throw py::type_error(
          str_cat(fn, ": argument '", name, "' must hold ints, got ", type_name(item)));
    const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
    if (!index) throw py::error_already_set();
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    FASTNN_CHECK(overflow == 0, fn, ": argument '", name, "' holds ",
                 std::string(py::str(index)), ", out of range");
    out.push_back(int64_t(v));
  }
  return out;
}

// Host int64 class indices, (N,), as a private copy taken while the GIL is
// held: another thread changing the array while the kernel runs can then
// never slip a label past the range check. The values are checked by the
// kernels' driver.
std::vector<int64_t> labels_arg(const py::handle& obj, const char* fn) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(str_cat(fn, ": argument 'labels' must be a NumPy int64 array on the "
                                 "host, got ", type_name(obj)));
  const auto labels = py::reinterpret_borrow<py::array>(obj);
  const py::dtype dt = labels.dtype();
  const bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
  const bool native = dt.byteorder() == '=' || dt.byteorder() == (little ? '<' : '>');
  if (!(dt.kind() == 'i' && dt.itemsize() == 8 && native))
    throw py::type_error(str_cat(fn, ": argument 'labels' must be int64, got ",
                                 std::string(py::str(dt))));
  FASTNN_CHECK(labels.ndim() == 1, fn, ": argument 'labels' must be 1-D, got ", labels.ndim(),
               " dimensions");
  FASTNN_CHECK((labels.flags() & py::array::c_style) != 0 &&
                   (labels.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0,
               fn, ": argument 'labels' must be C-contiguous and aligned");
  const auto* p = static_cast<const int64_t*>(labels.data());
  return std::vector<int64_t>(p, p + labels.shape(0));
}

void bind_pointwise(py::module_& m) {
  m.def(
      "unary",
      [](const std::string& op, const py::object& x_obj) {
        const cu::UnaryOp o = cu::unary_op(op);
        const DeviceBuffer& x = device_arg(x_obj, "unary", "x");
        py::gil_scoped_release release;
        return cu::unary(o, x);
      },
      py::arg("op"), py::arg("x"),
      "y = op(x) for op in neg, exp, log, sqrt, relu, sigmoid, tanh, abs");
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
  m.def(
      "sum",
      [](const py::object& x_obj, const py::object& axes_obj, bool keepdims) {
        const DeviceBuffer& x = device_arg(x_obj, "sum", "x");
        const std::vector<int64_t> axes = to_int_list(axes_obj, "sum", "axes");
        py::gil_scoped_release release;
        return cu::reduce_sum(x, axes, keepdims);
      },
      py::arg("x"), py::arg("axes"), py::arg("keepdims"),
      "Sum over axes (sorted, distinct, non-negative; none: a copy), deterministic");
  m.def(
      "max",
      [](const py::object& x_obj, const py::object& axes_obj, bool keepdims) {
        const DeviceBuffer& x = device_arg(x_obj, "max", "x");
        const std::vector<int64_t> axes = to_int_list(axes_obj, "max", "axes");
        py::gil_scoped_release release;
        return cu::reduce_max(x, axes, keepdims);
      },
      py::arg("x"), py::arg("axes"), py::arg("keepdims"),
      "Maximum over axes (sorted, distinct, non-negative; none: a copy); NaN propagates");
  m.def(
      "broadcast_to",
      [](const py::object& x_obj, const py::object& shape_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "broadcast_to", "x");
        std::vector<int64_t> shape = to_shape(shape_obj, "broadcast_to");
        py::gil_scoped_release release;
        return cu::broadcast_to(x, shape);
      },
      py::arg("x"), py::arg("shape"), "x broadcast to shape, as a new array");
  m.def(
      "permute",
      [](const py::object& x_obj, const py::object& axes_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "permute", "x");
        const std::vector<int64_t> axes = to_int_list(axes_obj, "permute", "axes");
        py::gil_scoped_release release;
        return cu::permute(x, axes);
      },
      py::arg("x"), py::arg("axes"), "x.transpose(axes), as a new array");
  m.def(
      "copy",
      [](const py::object& x_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "copy", "x");
        py::gil_scoped_release release;
        return cu::copy(x);
      },
      py::arg("x"), "A copy of x on its device");
  m.def(
      "reshape",
      [](const py::object& x_obj, const py::object& shape_obj) {
        const DeviceBuffer& x = device_arg(x_obj, "reshape", "x");
        std::vector<int64_t> shape = to_shape(shape_obj, "reshape");
        py::gil_scoped_release release;
        return cu::reshape(x, shape);
      },
      py::arg("x"), py::arg("shape"), "x's values as a new array of another shape (no -1)");
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
        const std::vector<int64_t> labels = labels_arg(labels_obj, fn);
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
        const std::vector<int64_t> labels = labels_arg(labels_obj, fn);
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

// ---------------------------------------------------------------- LSTM and GRU

// An optional DeviceArray argument (None: absent).
const DeviceBuffer* optional_device_arg(const py::object& obj, const char* fn, const char* name) {
  return obj.is_none() ? nullptr : &device_arg(obj, fn, name);
}

py::object optional_result(std::optional<DeviceBuffer>& d) {
  return d ? py::cast(std::move(*d)) : py::none();
}

// The same arguments and results as fastnn._C's rnn_forward / rnn_backward
// (csrc/python/bind_rnn.cpp), on DeviceArrays.
void bind_rnn(py::module_& m) {
  m.def(
      "rnn_forward",
      [](const std::string& cell_name, const py::object& x_obj, const py::object& h0_obj,
         const py::object& c0_obj, const py::object& wx_obj, const py::object& wh_obj,
         const py::object& b_obj, bool training) {
        const char* fn = "rnn_forward";
        const fastnn::RnnCell cell = fastnn::rnn_cell(cell_name, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer* h0 = optional_device_arg(h0_obj, fn, "h0");
        const DeviceBuffer* c0 = optional_device_arg(c0_obj, fn, "c0");
        const DeviceBuffer& w_x = device_arg(wx_obj, fn, "w_x");
        const DeviceBuffer& w_h = device_arg(wh_obj, fn, "w_h");
        const DeviceBuffer& b = device_arg(b_obj, fn, "b");
        cu::RnnForwardResult r;
        {
          py::gil_scoped_release release;
          r = cu::rnn_forward(cell, x, h0, c0, w_x, w_h, b, training);
        }
        return py::make_tuple(py::cast(std::move(r.out)), py::cast(std::move(r.h_last)),
                              optional_result(r.c_last), optional_result(r.gates),
                              optional_result(r.state));
      },
      py::arg("cell"), py::arg("x"), py::arg("h0").none(true), py::arg("c0").none(true),
      py::arg("w_x"), py::arg("w_h"), py::arg("b"), py::arg("training"),
      "(out (B,T,H), h_T, c_T or None, gates or None, state or None) of an LSTM or GRU over "
      "x (B,T,I); with training, the arrays backward needs");
  m.def(
      "rnn_backward",
      [](const std::string& cell_name, const py::object& x_obj, const py::object& h0_obj,
         const py::object& c0_obj, const py::object& wx_obj, const py::object& wh_obj,
         const py::object& out_obj, const py::object& gates_obj, const py::object& state_obj,
         const py::object& dout_obj, const py::object& dh_obj, const py::object& dc_obj,
         bool need_dx, bool need_dh0, bool need_dc0, bool need_dw_x, bool need_dw_h,
         bool need_db) {
        const char* fn = "rnn_backward";
        const fastnn::RnnCell cell = fastnn::rnn_cell(cell_name, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer* h0 = optional_device_arg(h0_obj, fn, "h0");
        const DeviceBuffer* c0 = optional_device_arg(c0_obj, fn, "c0");
        const DeviceBuffer& w_x = device_arg(wx_obj, fn, "w_x");
        const DeviceBuffer& w_h = device_arg(wh_obj, fn, "w_h");
        const DeviceBuffer& out = device_arg(out_obj, fn, "out");
        const DeviceBuffer& gates = device_arg(gates_obj, fn, "gates");
        const DeviceBuffer* state = optional_device_arg(state_obj, fn, "state");
        const DeviceBuffer* dout = optional_device_arg(dout_obj, fn, "dout");
        const DeviceBuffer* dh = optional_device_arg(dh_obj, fn, "dh");
        const DeviceBuffer* dc = optional_device_arg(dc_obj, fn, "dc");
        const bool need[6] = {need_dx, need_dh0, need_dc0, need_dw_x, need_dw_h, need_db};
        cu::RnnGradients g;
        {
          py::gil_scoped_release release;
          g = cu::rnn_backward(cell, x, h0, c0, w_x, w_h, out, gates, state, dout, dh, dc, need);
        }
        return py::make_tuple(optional_result(g.dx), optional_result(g.dh0),
                              optional_result(g.dc0), optional_result(g.dw_x),
                              optional_result(g.dw_h), optional_result(g.db));
      },
      py::arg("cell"), py::arg("x"), py::arg("h0").none(true), py::arg("c0").none(true),
      py::arg("w_x"), py::arg("w_h"), py::arg("out"), py::arg("gates"),
      py::arg("state").none(true), py::arg("dout").none(true), py::arg("dh").none(true),
      py::arg("dc").none(true), py::arg("need_dx"), py::arg("need_dh0"), py::arg("need_dc0"),
      py::arg("need_dw_x"), py::arg("need_dw_h"), py::arg("need_db"),
      "(dx, dh0, dc0, dw_x, dw_h, db) from the forward's arrays and the gradients of out, h_T "
      "and c_T (None: zero); None where not asked for");
}

py::dict device_info(int device) {
  const fastnn::cuda::DeviceInfo info = fastnn::cuda::device_info(device);
  py::dict d;
  d["name"] = info.name;
  d["compute_capability"] = py::make_tuple(info.major, info.minor);
  d["multiprocessors"] = info.multiprocessors;
  d["total_memory"] = info.total_memory;
  return d;
}

}  // namespace

// ---------------------------------------------------------------- optimizers
namespace {

// The tensors of one optimizer step (csrc/cuda/optim.h) from lists of
// DeviceArrays, checked as fastnn._C's optimizer bindings check theirs, all
// on one device; `keep` holds the arrays while the GIL is released.
struct DeviceStep {
  std::vector<fastnn::OptimTensor> tensors;
  std::vector<py::object> keep;
  int device = 0;
};

py::sequence list_arg(const py::object& obj, const char* fn, const char* name) {
  if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a list, got ",
                                 type_name(obj)));
  return py::reinterpret_borrow<py::sequence>(obj);
}

DeviceStep device_step(const char* fn, const py::object& params_obj, const py::object& grads_obj,
                       const std::vector<std::pair<const char*, py::object>>& states,
                       const py::object& steps_obj) {
  const py::sequence params = list_arg(params_obj, fn, "params");
  const size_t n = params.size();
  auto sized = [&](const py::object& obj, const char* name) {
    py::sequence seq = list_arg(obj, fn, name);
    FASTNN_CHECK(seq.size() == n, fn, ": argument '", name, "' must have ", n,
                 " entries (one per parameter), got ", seq.size());
    return seq;
  };
  const py::sequence grads = sized(grads_obj, "grads");
  const py::sequence steps = sized(steps_obj, "steps");
  std::vector<py::sequence> state_lists;
  for (const auto& st : states)
    state_lists.push_back(st.second.is_none() ? py::sequence() : sized(st.second, st.first));
  DeviceStep out;
  std::vector<const float*> written, read;
  for (size_t i = 0; i < n; ++i) {
    fastnn::OptimTensor t;
    const std::string pname = str_cat("params[", i, "]"), gname = str_cat("grads[", i, "]");
    const py::object p_obj = params[i], g_obj = grads[i];
    DeviceBuffer& p = mutable_device_arg(p_obj, fn, pname.c_str());
    const DeviceBuffer& g = device_arg(g_obj, fn, gname.c_str());
    if (i == 0) out.device = p.device();
    auto same = [&](const DeviceBuffer& x, const std::string& name) {
      FASTNN_CHECK(x.shape() == p.shape(), fn, ": ", name, " must have the shape of ", pname, " ",
                   shape_str(p.shape()), ", got ", shape_str(x.shape()));
      FASTNN_CHECK(x.device() == out.device, fn, ": ", name, " is on cuda:", x.device(),
                   " but params[0] on cuda:", out.device);
    };
    same(p, pname);
    same(g, gname);
    t.n = p.numel();
    t.p = p.data();
    t.g = g.data();
    written.push_back(t.p);
    read.push_back(t.g);
    for (size_t j = 0; j < states.size(); ++j) {
      if (states[j].second.is_none()) continue;
      const std::string sname = str_cat(states[j].first, "[", i, "]");
      const py::object s_obj = state_lists[j][i];
      DeviceBuffer& s = mutable_device_arg(s_obj, fn, sname.c_str());
      same(s, sname);
      t.state[j] = s.data();
      written.push_back(t.state[j]);
      out.keep.push_back(s_obj);
    }
    const py::object step = steps[i];
    if (py::isinstance<py::bool_>(step) || !py::isinstance<py::int_>(step))
      throw py::type_error(str_cat(fn, ": steps[", i, "] must be an int, got ", type_name(step)));
    t.step = step.cast<int64_t>();
    FASTNN_CHECK(t.step >= 1, fn, ": steps[", i, "] must be >= 1, got ", t.step);
    out.keep.push_back(p_obj);
    out.keep.push_back(g_obj);
    out.tensors.push_back(t);
  }
  // a written buffer may be no other buffer of the step (each DeviceArray
  // owns its memory, so sharing means being the same array)
  written.erase(std::remove(written.begin(), written.end(), nullptr), written.end());
  std::sort(written.begin(), written.end());
  FASTNN_CHECK(std::adjacent_find(written.begin(), written.end()) == written.end(), fn,
               ": a parameter or state array appears twice; each must be its own array");
  for (const float* g : read)
    FASTNN_CHECK(!g || !std::binary_search(written.begin(), written.end(), g), fn,
                 ": a gradient is also a parameter or state array");
  return out;
}

void bind_optim(py::module_& m) {
  namespace cu = fastnn::cuda;
  m.def(
      "sgd_step",
      [](const py::object& params, const py::object& grads, const py::object& momentum_buffers,
         const py::object& steps, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov) {
        DeviceStep a = device_step("sgd_step", params, grads,
                                   {{"momentum_buffers", momentum_buffers}}, steps);
        const fastnn::SgdOptions o{lr, momentum, dampening, weight_decay, nesterov};
        fastnn::cuda::DeviceGuard guard(a.device);
        py::gil_scoped_release release;
        cu::sgd_step(a.tensors, o);
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers").none(true),
      py::arg("steps"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
      py::arg("weight_decay"), py::arg("nesterov"), "fastnn._C.sgd_step on DeviceArrays");
  m.def(
      "adagrad_step",
      [](const py::object& params, const py::object& grads, const py::object& sums,
         const py::object& steps, double lr, double lr_decay, double weight_decay, double eps) {
        DeviceStep a = device_step("adagrad_step", params, grads, {{"sums", sums}}, steps);
        const fastnn::AdagradOptions o{lr, lr_decay, weight_decay, eps};
        fastnn::cuda::DeviceGuard guard(a.device);
        py::gil_scoped_release release;
        cu::adagrad_step(a.tensors, o);
      },
      py::arg("params"), py::arg("grads"), py::arg("sums"), py::arg("steps"), py::arg("lr"),
      py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"),
      "fastnn._C.adagrad_step on DeviceArrays");
  m.def(
      "rmsprop_step",
      [](const py::object& params, const py::object& grads, const py::object& square_avgs,
         const py::object& momentum_buffers, const py::object& grad_avgs,
         const py::object& steps, double lr, double alpha, double eps, double weight_decay,
         double momentum, bool centered) {
        DeviceStep a = device_step("rmsprop_step", params, grads,
                                   {{"square_avgs", square_avgs},
                                    {"momentum_buffers", momentum_buffers},
                                    {"grad_avgs", grad_avgs}},
                                   steps);
        const fastnn::RmspropOptions o{lr, alpha, eps, weight_decay, momentum, centered};
        fastnn::cuda::DeviceGuard guard(a.device);
        py::gil_scoped_release release;
        cu::rmsprop_step(a.tensors, o);
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
      py::arg("momentum_buffers").none(true), py::arg("grad_avgs").none(true), py::arg("steps"),
      py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("momentum"), py::arg("centered"), "fastnn._C.rmsprop_step on DeviceArrays");
  m.def(
      "adam_step",
      [](const py::object& params, const py::object& grads, const py::object& exp_avgs,
         const py::object& exp_avg_sqs, const py::object& max_exp_avg_sqs,
         const py::object& steps, double lr, double beta1, double beta2, double eps,
         double weight_decay, bool amsgrad, bool decoupled_weight_decay) {
        DeviceStep a = device_step("adam_step", params, grads,
                                   {{"exp_avgs", exp_avgs},
                                    {"exp_avg_sqs", exp_avg_sqs},
                                    {"max_exp_avg_sqs", max_exp_avg_sqs}},
                                   steps);
        const fastnn::AdamOptions o{lr, beta1, beta2, eps, weight_decay, amsgrad,
                                    decoupled_weight_decay};
        fastnn::cuda::DeviceGuard guard(a.device);
        py::gil_scoped_release release;
        cu::adam_step(a.tensors, o);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs").none(true), py::arg("steps"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
      py::arg("decoupled_weight_decay"), "fastnn._C.adam_step on DeviceArrays");
}

}  // namespace

PYBIND11_MODULE(_C_cuda, m) {
  m.doc() = "fastnn CUDA kernels";

  py::class_<DeviceBuffer>(m, "DeviceArray",
                           "A float32 array in GPU memory, C order. Make one with "
                           "fastnn.cuda.to_device(ndarray); .numpy() copies it back.")
      .def_static("empty", &empty, py::arg("shape"), "An uninitialised device array")
      .def_static("zeros", &zeros, py::arg("shape"))
      .def_static("from_numpy", &from_numpy, py::arg("x"),
                  "A copy of a NumPy array on the GPU (converted to float32, C order)")
      .def("numpy", &to_numpy, "A copy on the host as a float32 ndarray")
      .def_property_readonly("shape", &shape_tuple)
      .def_property_readonly("dtype", [](const DeviceBuffer&) { return py::dtype::of<float>(); })
      .def_property_readonly("ndim", &DeviceBuffer::ndim)
      .def_property_readonly("size", &DeviceBuffer::numel)
      .def_property_readonly("nbytes", &DeviceBuffer::nbytes)
      .def_property_readonly("device", [](const DeviceBuffer& x) {
        return str_cat("cuda:", x.device());
      })
      .def("__len__",
           [](const DeviceBuffer& x) {
             if (x.ndim() == 0) throw py::type_error("len() of a 0-d DeviceArray");
             return x.shape()[0];
           })
      .def("__repr__", [](const DeviceBuffer& x) {
        return str_cat("DeviceArray(shape=", shape_str(x.shape()), ", dtype=float32, device=cuda:",
                       x.device(), ")");
      });

  m.def("gemm", &gemm, py::arg("a"), py::arg("b"), py::arg("trans_a"), py::arg("trans_b"),
        py::arg("alpha"), py::arg("beta"), py::arg("c") = py::none(),
        "c = alpha * op(a) @ op(b) + beta * c on DeviceArrays; c is updated in place and "
        "returned (a new array when c is None)");
  m.def("device_count", &fastnn::cuda::device_count,
        "Number of usable GPUs; 0 when there is no driver or device");
  m.def("init_error", &fastnn::cuda::init_error,
        "Why no GPU is usable (CUDA's message), or '' when one is");
  m.def(
      "synchronize", [] {
        py::gil_scoped_release release;
        fastnn::cuda::synchronize();
      },
      "Waits for all queued GPU work; raises what it reports");
  m.def("current_device", &fastnn::cuda::current_device,
        "The calling thread's current device: new arrays are allocated there");
  m.def("set_device", &fastnn::cuda::set_device, py::arg("device"),
        "Makes `device` the calling thread's current device");
  m.def("device_info", &device_info, py::arg("device") = 0,
        "name, compute_capability, multiprocessors and total_memory of a GPU");
  bind_pointwise(m);
  bind_rnn(m);

  // Convolution and pooling (csrc/cuda/conv2d.h, pool2d.h), with fastnn._C's
  // arguments: x (N,H,W,C), w (KH,KW,C,F), b (F,) and dy as DeviceArrays;
  // padding "valid", "same" or "explicit" (ph, pw; convolutions only).
  m.def(
      "conv2d",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& b_obj, int64_t sh,
         int64_t sw, const std::string& padding, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
         bool relu) {
        const char* fn = "conv2d";
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer& w = device_arg(w_obj, fn, "w");
        const DeviceBuffer* b = b_obj.is_none() ? nullptr : &device_arg(b_obj, fn, "b");
        const cu::Conv2dOptions o{sh, sw, padding, ph, pw, dh, dw};
        py::gil_scoped_release release;
        return cu::conv2d(x, w, b, o, relu);
      },
      py::arg("x"), py::arg("w"), py::arg("b").none(true), py::arg("sh"), py::arg("sw"),
      py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
      py::arg("relu"), "y = conv(x, w) + b (then ReLU): NHWC x, HWIO w");
  m.def(
      "conv2d_backward",
      [](const py::object& x_obj, const py::object& w_obj, const py::object& dy_obj, int64_t sh,
         int64_t sw, const std::string& padding, int64_t ph, int64_t pw, int64_t dh, int64_t dw,
         bool need_dx, bool need_dw, bool need_db) {
        const char* fn = "conv2d_backward";
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer& w = device_arg(w_obj, fn, "w");
        const DeviceBuffer& dy = device_arg(dy_obj, fn, "dy");
        const cu::Conv2dOptions o{sh, sw, padding, ph, pw, dh, dw};
        cu::Conv2dGrads g;
        {
          py::gil_scoped_release release;
          g = cu::conv2d_backward(x, w, dy, o, need_dx, need_dw, need_db);
        }
        const auto out = [](std::optional<DeviceBuffer>& d) -> py::object {
          return d ? py::cast(std::move(*d)) : py::none();
        };
        return py::make_tuple(out(g.dx), out(g.dw), out(g.db));
      },
      py::arg("x"), py::arg("w"), py::arg("dy"), py::arg("sh"), py::arg("sw"),
      py::arg("padding"), py::arg("ph"), py::arg("pw"), py::arg("dh"), py::arg("dw"),
      py::arg("need_dx"), py::arg("need_dw"), py::arg("need_db"),
      "(dx, dw, db), None where not asked for");

  using PoolFn = DeviceBuffer (*)(const DeviceBuffer&, int64_t, int64_t, int64_t, int64_t,
                                  const std::string&);
  using PoolBackwardFn = DeviceBuffer (*)(const DeviceBuffer&, const DeviceBuffer&, int64_t,
                                          int64_t, int64_t, int64_t, const std::string&);
  const auto bind_pool = [&m](const char* name, PoolFn fwd, const char* bwd_name,
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
    m.def(
        bwd_name,
        [bwd_name, bwd](const py::object& x_obj, const py::object& dy_obj, int64_t kh,
                        int64_t kw, int64_t sh, int64_t sw, const std::string& padding) {
          const DeviceBuffer& x = device_arg(x_obj, bwd_name, "x");
          const DeviceBuffer& dy = device_arg(dy_obj, bwd_name, "dy");
          py::gil_scoped_release release;
          return bwd(x, dy, kh, kw, sh, sw, padding);
        },
        py::arg("x"), py::arg("dy"), py::arg("kh"), py::arg("kw"), py::arg("sh"), py::arg("sw"),
        py::arg("padding"), bwd_doc);
  };
  bind_pool("max_pool2d", &cu::max_pool2d, "max_pool2d_backward", &cu::max_pool2d_backward,
            "y (N, OH, OW, C) = the max of each window of x (N, H, W, C); NaN wins",
            "dx: each window's gradient to its first maximum, summed");
  bind_pool("avg_pool2d", &cu::avg_pool2d, "avg_pool2d_backward", &cu::avg_pool2d_backward,
            "y (N, OH, OW, C) = the mean of the real (unpadded) cells of each window of x",
            "dx: each window's gradient spread evenly over its real cells, summed");

  bind_optim(m);
}
