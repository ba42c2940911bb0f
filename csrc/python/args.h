// Argument parsing shared by the bindings of both modules, _C
// (csrc/python/bind_<family>.cpp) and _C_cuda (csrc/python/cuda/
// bind_<family>.cpp): Python objects to C++ values, with errors that name
// the function and the argument (TypeError for a type, ValueError for a
// value). Memory safety only; value rules live in the Python layer.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "fastnn/check.h"
#include "fastnn/pointwise_math.h"

namespace fastnn::py_args {

namespace py = pybind11;

using pointwise_math::Activation;

inline std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

// One int (anything operator.index accepts: int, np.int64, ...).
inline int64_t to_int(const py::handle& item, const char* fn, const char* name) {
  if (!PyIndex_Check(item.ptr()))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must hold ints, got ",
                                 type_name(item)));
  const auto index = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
  if (!index) throw py::error_already_set();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  FASTNN_CHECK(overflow == 0, fn, ": argument '", name, "' holds ", std::string(py::str(index)),
               ", out of range");
  return int64_t(v);
}

// A sequence of ints, e.g. axes.
inline std::vector<int64_t> to_int_list(const py::handle& obj, const char* fn, const char* name) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj) ||
      !py::isinstance<py::sequence>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a sequence of ints, got ",
                                 type_name(obj)));
  std::vector<int64_t> out;
  for (const py::handle item : py::reinterpret_borrow<py::sequence>(obj))
    out.push_back(to_int(item, fn, name));
  return out;
}

// Host int64 class indices (N,) for logits of `rows` rows (rows < 0: any
// N), as a private copy taken while the GIL is held: another thread changing
// the array while the kernel runs can never slip a label past the kernels'
// range check.
inline std::vector<int64_t> labels_arg(const py::handle& obj, int64_t rows, const char* fn) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(str_cat(fn, ": argument 'labels' must be a NumPy int64 array, got ",
                                 type_name(obj)));
  const auto labels = py::reinterpret_borrow<py::array>(obj);
  // array_t's check compares the dtype with native int64 (a '>i8' array fails)
  if (!py::isinstance<py::array_t<int64_t>>(labels))
    throw py::type_error(str_cat(fn, ": argument 'labels' must be int64 in native byte order, "
                                 "got ", std::string(py::str(labels.dtype()))));
  FASTNN_CHECK(labels.ndim() == 1 && (rows < 0 || labels.shape(0) == rows), fn,
               ": argument 'labels' must have shape (", rows < 0 ? std::string("N") :
               std::to_string(rows), ",), got ", labels.ndim(), "-D with ",
               labels.ndim() ? labels.shape(0) : 0, " entries");
  FASTNN_CHECK((labels.flags() & py::array::c_style) != 0 &&
                   (labels.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0,
               fn, ": argument 'labels' must be C-contiguous and aligned");
  const auto* p = static_cast<const int64_t*>(labels.data());
  return std::vector<int64_t>(p, p + labels.shape(0));
}

// Which gradients rnn_backward computes: its keyword-only need_* flags
// (all true by default), in both modules.
struct RnnNeed {
  bool dx, dh0, dc0, dw_x, dw_h, db;
};
#define FASTNN_RNN_NEED_ARGS                                                         \
  py::kw_only(), py::arg("need_dx") = true, py::arg("need_dh0") = true,              \
      py::arg("need_dc0") = true, py::arg("need_dw_x") = true, py::arg("need_dw_h") = true, \
      py::arg("need_db") = true

// The activations of pointwise_math.h's list, the same names and keywords
// in both modules: name(x[, param]) and name_backward(x, dy[, param]), the
// gradient through the input x. `run(a, x, p, fn)` and
// `run_backward(a, x, dy, p, fn)` are the module's calls on its arrays.
template <class Run, class RunBackward>
void def_activations(py::module_& m, Run run, RunBackward run_backward) {
  struct Entry {
    const char* name;
    const char* backward_name;
    const char* param;
    double value;
  };
#define FASTNN_ACTIVATION_ENTRY(name, param, value) {#name, #name "_backward", param, value},
  static const Entry entries[] = {FASTNN_ACTIVATIONS(FASTNN_ACTIVATION_ENTRY)};
#undef FASTNN_ACTIVATION_ENTRY
  for (int i = 0; i < int(pointwise_math::Activation::count); ++i) {
    const Entry& e = entries[i];
    const auto a = pointwise_math::Activation(i);
    const char* fn = e.name;
    const char* bfn = e.backward_name;
    if (e.param != nullptr) {
      m.def(fn, [=](const py::object& x, float p) { return run(a, x, p, fn); }, py::arg("x"),
            py::arg(e.param) = e.value, "y = f(x) of the activation of this name");
      m.def(bfn, [=](const py::object& x, const py::object& dy, float p) {
        return run_backward(a, x, dy, p, bfn);
      }, py::arg("x"), py::arg("dy"), py::arg(e.param) = e.value,
         "dx = dy * f'(x), through the forward's input x");
    } else {
      m.def(fn, [=](const py::object& x) { return run(a, x, 0.0f, fn); }, py::arg("x"),
            "y = f(x) of the activation of this name");
      m.def(bfn, [=](const py::object& x, const py::object& dy) {
        return run_backward(a, x, dy, 0.0f, bfn);
      }, py::arg("x"), py::arg("dy"), "dx = dy * f'(x), through the forward's input x");
    }
  }
}

}  // namespace fastnn::py_args
