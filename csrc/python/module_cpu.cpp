// fastnn._C: the CPU kernels for Python. Array checks and GIL release only;
// argument conversion and friendly messages live in python/fastnn/kernels.py.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "fastnn/check.h"
#include "fastnn/gemm.h"
#include "fastnn/parallel.h"
#include "fastnn/runtime.h"
#include "fastnn/selftest.h"
#include "args.h"
#include "arrays.h"

namespace py = pybind11;
using namespace fastnn;
using namespace fastnn::py_arrays;


namespace {

// A float32 matrix as (pointer, transposed?, leading dimension) without
// copying: row-major, or column-major (a transposed view) read as its
// transpose. Anything else is copied to row-major into `keep`.
struct Matrix {
  const float* p;
  int64_t rows, cols;  // of the array as given
  bool transposed;     // the memory holds the transpose in row-major
  int64_t ld;
  const char* begin() const { return reinterpret_cast<const char*>(p); }
  const char* end() const {  // one past the last byte that may be read
    const int64_t outer = transposed ? cols : rows, inner = transposed ? rows : cols;
    return reinterpret_cast<const char*>(p + (outer > 0 ? (outer - 1) * ld + inner : 0));
  }
};

// A row-major, aligned float32 copy; errors (MemoryError...) propagate.
// (np.ascontiguousarray would hand back a contiguous misaligned array as it is.)
py::array contiguous_copy(const py::array& x) {
  return py::module_::import("numpy").attr("array")(x, "float32", py::arg("order") = "C");
}

Matrix as_matrix(py::array& x, const char* fn, const char* name) {
  FASTNN_CHECK(x.ndim() == 2, fn, ": argument '", name, "' must be 2-D, got shape ",
               shape_str(x));
  if (!is_float32(x))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be float32, got ",
                                 std::string(py::str(x.dtype()))));
  const int64_t r = x.shape(0), c = x.shape(1);
  if (!is_aligned(x)) x = contiguous_copy(x);
  const int64_t s0 = x.strides(0), s1 = x.strides(1);
  const auto* p = static_cast<const float*>(x.data());
  auto unit = [](int64_t stride, int64_t extent) { return stride == 4 || extent <= 1; };
  auto ld_of = [](int64_t stride, int64_t inner) {
    return stride % 4 == 0 && stride / 4 >= inner ? stride / 4 : int64_t(-1);
  };
  if (unit(s1, c)) {
    const int64_t ld = r <= 1 ? std::max<int64_t>(c, 1) : ld_of(s0, c);
    if (ld > 0) return {p, r, c, false, ld};
  }
  if (unit(s0, r)) {
    const int64_t ld = c <= 1 ? std::max<int64_t>(r, 1) : ld_of(s1, r);
    if (ld > 0) return {p, r, c, true, ld};
  }
  // strided both ways (or negative strides): work on a row-major copy
  x = contiguous_copy(x);
  return {static_cast<const float*>(x.data()), r, c, false, std::max<int64_t>(c, 1)};
}

bool overlaps(const Matrix& m, const char* lo, const char* hi) {
  return m.begin() < hi && lo < m.end();
}

// The output of a kernel: a given float32 array of shape (M, N), C-contiguous,
// aligned and writeable.
py::array check_c(const py::object& c_obj, int64_t M, int64_t N, const char* fn) {
  if (!py::isinstance<py::array>(c_obj))
    throw py::type_error(str_cat(fn, ": argument 'c' must be a numpy.ndarray, got ",
                                 std::string(py::str(py::type::handle_of(c_obj).attr("__name__")))));
  auto c_arr = py::reinterpret_borrow<py::array>(c_obj);
  if (!is_float32(c_arr))
    throw py::type_error(str_cat(fn, ": argument 'c' must be float32 in native byte order, got ",
                                 std::string(py::str(c_arr.dtype()))));
  FASTNN_CHECK(c_arr.ndim() == 2 && c_arr.shape(0) == M && c_arr.shape(1) == N, fn,
               ": argument 'c' must have shape (", M, ", ", N, "), got ", shape_str(c_arr));
  FASTNN_CHECK((c_arr.flags() & py::array::c_style) != 0, fn,
               ": argument 'c' must be C-contiguous");
  FASTNN_CHECK(is_aligned(c_arr), fn, ": argument 'c' must be aligned to 4 bytes");
  FASTNN_CHECK(c_arr.writeable(), fn, ": argument 'c' must be writeable");
  return c_arr;
}

py::array gemm_py(py::array a_arr, py::array b_arr, bool trans_a, bool trans_b, float alpha,
                  float beta, py::object c_obj) {
  Matrix a = as_matrix(a_arr, "gemm", "a"), b = as_matrix(b_arr, "gemm", "b");
  const int64_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const int64_t Kb = trans_b ? b.cols : b.rows, N = trans_b ? b.rows : b.cols;
  FASTNN_CHECK(K == Kb, "gemm: inner dimensions differ: op(a) has shape (", M, ", ", K,
               ") and op(b) has shape (", Kb, ", ", N, ")");
  py::array c_arr;
  if (c_obj.is_none()) {
    c_arr = py::array_t<float>({M, N});
    beta = 0.0f;
  } else {
    c_arr = check_c(c_obj, M, N, "gemm");
  }
  float* c = static_cast<float*>(c_arr.mutable_data());
  // The kernel reads a and b while it writes c: never let them overlap.
  const char* c_lo = reinterpret_cast<const char*>(c);
  const char* c_hi = c_lo + c_arr.nbytes();
  if (overlaps(a, c_lo, c_hi)) {
    a_arr = a_arr.attr("copy")();
    a = as_matrix(a_arr, "gemm", "a");
  }
  if (overlaps(b, c_lo, c_hi)) {
    b_arr = b_arr.attr("copy")();
    b = as_matrix(b_arr, "gemm", "b");
  }
  {
    py::gil_scoped_release release;
    // a memory holding the transpose flips the flag
    gemm(trans_a != a.transposed, trans_b != b.transposed, M, N, K, alpha, a.p, a.ld, b.p, b.ld,
         beta, c, std::max<int64_t>(N, 1));
  }
  return c_arr;
}

// For tests only: no overlap handling, c must not alias a or b.
py::array gemm_reference_py(py::array a_arr, py::array b_arr, bool trans_a, bool trans_b,
                            float alpha, float beta, py::object c_obj) {
  const Matrix a = as_matrix(a_arr, "gemm_reference", "a");
  const Matrix b = as_matrix(b_arr, "gemm_reference", "b");
  const int64_t M = trans_a ? a.cols : a.rows, K = trans_a ? a.rows : a.cols;
  const int64_t N = trans_b ? b.rows : b.cols;
  FASTNN_CHECK((trans_b ? b.cols : b.rows) == K, "gemm_reference: inner dimensions differ");
  py::array c_arr = check_c(c_obj, M, N, "gemm_reference");
  float* c = static_cast<float*>(c_arr.mutable_data());
  py::gil_scoped_release release;
  gemm_reference(trans_a != a.transposed, trans_b != b.transposed, M, N, K, alpha, a.p, a.ld,
                 b.p, b.ld, beta, c, std::max<int64_t>(N, 1));
  return c_arr;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastnn CPU kernels";
  bind_pointwise(m);
  bind_conv(m);
  bind_pool(m);
  bind_optim(m);
  bind_augment(m);
  bind_rnn(m);
  m.def("gemm", &gemm_py, py::arg("a"), py::arg("b"), py::arg("trans_a"), py::arg("trans_b"),
        py::arg("alpha"), py::arg("beta"), py::arg("c").none(true),
        "c = alpha * op(a) @ op(b) + beta * c on float32 arrays; c is updated in place");
  m.def("gemm_reference", &gemm_reference_py, py::arg("a"), py::arg("b"), py::arg("trans_a"),
        py::arg("trans_b"), py::arg("alpha"), py::arg("beta"), py::arg("c"));
  m.def("peak_gflops", [](int threads, double seconds) {
    py::gil_scoped_release release;
    return peak_gflops(threads, seconds);
  }, py::arg("threads") = 1, py::arg("seconds") = 0.2,
     "measured FMA peak in GFLOP/s of the active instruction set");
  m.def("set_num_threads", &set_num_threads, py::arg("n"));
  m.def("max_threads", &max_threads);
  m.def("_nested_gemm_check", [](int outer, int64_t m, int64_t k, int64_t n) {
    py::gil_scoped_release release;
    return gemm_nested_selftest(outer, m, k, n);
  }, py::arg("outer"), py::arg("m"), py::arg("k"), py::arg("n"));
  m.def("get_num_threads", &get_num_threads);
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_active_isa(parse_isa(name)); },
        py::arg("name"));
  m.def("supported_isas", [] {
    py::list out;
    for (int i = 0; i <= int(best_supported_isa()); ++i) out.append(isa_name(Isa(i)));
    return out;
  });
  m.def("keep_freed_memory", &keep_freed_memory);
  m.def("build_info", [] {
    py::dict d;
    d["version"] = version();
    d["compiler"] = compiler();
    d["openmp"] = openmp_enabled();
    d["threads"] = get_num_threads();
    const IsaContext isa = isa_context();
    d["isa"] = isa_name(isa.active);
    d["isa_best"] = isa_name(isa.best);
    d["isa_emulated"] = isa.emulated;
    return d;
  });
}
