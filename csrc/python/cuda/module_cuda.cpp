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

#include "cuda/device_buffer.h"
#include "cuda/gemm.h"
#include "fastnn/check.h"
#include "python/cuda/device_args.h"

namespace py = pybind11;
using fastnn::str_cat;
using fastnn::cuda::DeviceBuffer;
using fastnn::cuda::shape_str;
using namespace fastnn::py_args;

namespace {

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
  fastnn::bind_pointwise(m);
  fastnn::bind_rnn(m);
  fastnn::bind_conv(m);
  fastnn::bind_pool(m);
  fastnn::bind_optim(m);
}