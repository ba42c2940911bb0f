// fastnn._C: the CPU kernels for Python. Array checks and GIL release only;
// argument conversion and friendly messages live in python/fastnn/kernels.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "fastnn/check.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"

namespace py = pybind11;
using namespace fastnn;

namespace {

std::string shape_str(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < x.ndim(); ++d) s += (d ? ", " : "") + std::to_string(x.shape(d));
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// A float32 matrix as (pointer, transposed?, leading dimension) without
// copying: row-major, or column-major (a transposed view) read as its
// transpose.
struct Matrix {
  const float* p;
  int64_t rows, cols;  // of the array as given
  bool transposed;     // the memory holds the transpose in row-major
  int64_t ld;
};

Matrix as_matrix(const py::array& x, const char* name) {
  FASTNN_CHECK(x.ndim() == 2, "gemm: argument '", name, "' must be 2-D, got shape ",
               shape_str(x));
  if (!py::isinstance<py::array_t<float>>(x) || x.dtype().kind() != 'f' || x.itemsize() != 4)
    throw py::type_error(str_cat("gemm: argument '", name, "' must be float32, got ",
                                 std::string(py::str(x.dtype()))));
  const int64_t r = x.shape(0), c = x.shape(1);
  const int64_t s0 = x.strides(0), s1 = x.strides(1);
  const auto* p = static_cast<const float*>(x.data());
  auto unit = [](int64_t stride, int64_t extent) { return stride == 4 || extent <= 1; };
  auto ld_of = [](int64_t stride, int64_t fallback) {
    return stride % 4 == 0 && stride / 4 >= fallback ? stride / 4 : int64_t(-1);
  };
  if (unit(s1, c)) {
    const int64_t ld = r <= 1 ? std::max<int64_t>(c, 1) : ld_of(s0, c);
    if (ld > 0) return {p, r, c, false, ld};
  }
  if (unit(s0, r)) {
    const int64_t ld = c <= 1 ? std::max<int64_t>(r, 1) : ld_of(s1, r);
    if (ld > 0) return {p, r, c, true, ld};
  }
  throw std::invalid_argument(str_cat("gemm: argument '", name,
                                      "' must have one unit stride, got strides (", s0, ", ",
                                      s1, ")"));
}

py::array gemm_py(const py::array& a_arr, const py::array& b_arr, bool trans_a, bool trans_b,
                  float alpha, float beta, py::array c_arr) {
  const Matrix a = as_matrix(a_arr, "a"), b = as_matrix(b_arr, "b");
  const int64_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const int64_t Kb = trans_b ? b.cols : b.rows, N = trans_b ? b.rows : b.cols;
  FASTNN_CHECK(K == Kb, "gemm: inner dimensions differ: op(a) has shape (", M, ", ", K,
               ") and op(b) has shape (", Kb, ", ", N, ")");
  FASTNN_CHECK(c_arr.ndim() == 2 && c_arr.shape(0) == M && c_arr.shape(1) == N,
               "gemm: argument 'c' must have shape (", M, ", ", N, "), got ", shape_str(c_arr));
  if (!py::isinstance<py::array_t<float>>(c_arr) || c_arr.dtype().kind() != 'f' ||
      c_arr.itemsize() != 4)
    throw py::type_error(str_cat("gemm: argument 'c' must be float32, got ",
                                 std::string(py::str(c_arr.dtype()))));
  FASTNN_CHECK(c_arr.writeable(), "gemm: argument 'c' must be writeable");
  FASTNN_CHECK((c_arr.flags() & py::array::c_style) != 0,
               "gemm: argument 'c' must be C-contiguous");
  float* c = static_cast<float*>(c_arr.mutable_data());
  {
    py::gil_scoped_release release;
    // a memory holding the transpose flips the flag
    gemm(trans_a != a.transposed, trans_b != b.transposed, M, N, K, alpha, a.p, a.ld, b.p, b.ld,
         beta, c, std::max<int64_t>(N, 1));
  }
  return c_arr;
}

py::array gemm_reference_py(const py::array& a_arr, const py::array& b_arr, bool trans_a,
                            bool trans_b, float alpha, float beta, py::array c_arr) {
  const Matrix a = as_matrix(a_arr, "a"), b = as_matrix(b_arr, "b");
  const int64_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const int64_t N = trans_b ? b.rows : b.cols;
  FASTNN_CHECK((trans_b ? b.cols : b.rows) == K, "gemm_reference: inner dimensions differ");
  FASTNN_CHECK(c_arr.ndim() == 2 && c_arr.shape(0) == M && c_arr.shape(1) == N &&
                   (c_arr.flags() & py::array::c_style) && c_arr.itemsize() == 4,
               "gemm_reference: bad c");
  float* c = static_cast<float*>(c_arr.mutable_data());
  py::gil_scoped_release release;
  gemm_reference(trans_a != a.transposed, trans_b != b.transposed, M, N, K, alpha, a.p, a.ld,
                 b.p, b.ld, beta, c, std::max<int64_t>(N, 1));
  return c_arr;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn CPU kernels";
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("trans_a"), py::arg("trans_b"),
        py::arg("alpha"), py::arg("beta"), py::arg("c"),
        "c = alpha * op(a) @ op(b) + beta * c on float32 arrays; c is updated in place");
  m.def("gemm_reference", &gemm_reference_py, py::arg("a"), py::arg("b"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("c"));
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
        py::arg("name"));
  m.def("supported_isas", [] {
    py::list out;
    for (int i = 0; i <= int(best_supported_isa()); ++i) out.append(isa_name(Isa(i)));
    return out;
  });
  m.def("build_info", [] {
    py::dict d;
    d["version"] = version();
    d["compiler"] = compiler();
    d["openmp"] = openmp_enabled();
    d["threads"] = get_num_threads();
    d["isa"] = isa_name(active_isa());
    d["isa_best"] = isa_name(best_supported_isa());
    return d;
  });
}
