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
#include "fastnn/optim.h"
#include "fastnn/pointwise_math.h"

namespace fastnn {

// One function per kernel family and module, defined by
// csrc/python/bind_<family>.cpp (_C) and csrc/python/cuda/bind_<family>.cpp
// (_C_cuda); augment has no CUDA version.
void bind_pointwise(pybind11::module_& m);
void bind_conv(pybind11::module_& m);
void bind_pool(pybind11::module_& m);
void bind_optim(pybind11::module_& m);
void bind_rnn(pybind11::module_& m);
void bind_augment(pybind11::module_& m);

}  // namespace fastnn

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
               ", too large for a 64-bit int");
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

// rnn_forward's and rnn_backward's arguments, the same in both modules:
// the cell, the input and initial states, the weights; backward adds the
// forward's saved arrays, the gradients of its outputs and its keyword-only
// need_* flags (all true by default) saying which gradients to compute; not
// keyword-only: the autograd op passes them by position (keyword parsing
// costs about 3 us a call, 4% of a small LSTM's step).
struct RnnNeed {
  bool dx, dh0, dc0, dw_x, dw_h, db;
};
#define FASTNN_RNN_INPUT_ARGS                                                       \
  py::arg("cell"), py::arg("x"), py::arg("h0").none(true), py::arg("c0").none(true), \
      py::arg("w_x"), py::arg("w_h")
#define FASTNN_RNN_BACKWARD_ARGS                                                         \
  FASTNN_RNN_INPUT_ARGS, py::arg("out"), py::arg("gates"), py::arg("state").none(true),  \
      py::arg("dout").none(true), py::arg("dh").none(true), py::arg("dc").none(true),    \
      py::arg("need_dx") = true, py::arg("need_dh0") = true,              \
      py::arg("need_dc0") = true, py::arg("need_dw_x") = true, py::arg("need_dw_h") = true, \
      py::arg("need_db") = true

// A list argument of an optimizer step by its name (None: unused).
struct NamedList {
  const char* name;
  py::object list;
};

// Binds the four fused optimizer steps under `names` (sgd, adagrad,
// rmsprop, adam) with the arguments both modules take: lists of arrays (a
// state list None where the options leave it unused), the steps, the
// hyperparameters as fastnn/optim.h's option structs. The module's
// `step(fn, params, grads, states, steps, options)` checks the arrays and
// runs the step in place.
template <class Step>
void def_optim_steps(py::module_& m, const char* const (&names)[4], Step step) {
  using O = const py::object&;
  m.def(names[0], [fn = names[0], step](O params, O grads, O momentum_buffers, O steps, double lr,
                                         double momentum, double dampening, double weight_decay,
                                         bool nesterov) {
    step(fn, params, grads, {{"momentum_buffers", momentum_buffers}}, steps,
         SgdOptions{lr, momentum, dampening, weight_decay, nesterov});
  }, py::arg("params"), py::arg("grads"), py::arg("momentum_buffers").none(true),
     py::arg("steps"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
     py::arg("weight_decay"), py::arg("nesterov"),
     "torch.optim.SGD's update of every params[i] in place; momentum_buffers (None without "
     "momentum) are set to the gradient on step 1");
  m.def(names[1], [fn = names[1], step](O params, O grads, O sums, O steps, double lr,
                                         double lr_decay, double weight_decay, double eps) {
    step(fn, params, grads, {{"sums", sums}}, steps,
         AdagradOptions{lr, lr_decay, weight_decay, eps});
  }, py::arg("params"), py::arg("grads"), py::arg("sums"), py::arg("steps"), py::arg("lr"),
     py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"),
     "torch.optim.Adagrad's update of every params[i] and sums[i] in place");
  m.def(names[2], [fn = names[2], step](O params, O grads, O square_avgs, O momentum_buffers,
                                         O grad_avgs, O steps, double lr, double alpha,
                                         double eps, double weight_decay, double momentum,
                                         bool centered) {
    step(fn, params, grads,
         {{"square_avgs", square_avgs}, {"momentum_buffers", momentum_buffers},
          {"grad_avgs", grad_avgs}},
         steps, RmspropOptions{lr, alpha, eps, weight_decay, momentum, centered});
  }, py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
     py::arg("momentum_buffers").none(true), py::arg("grad_avgs").none(true), py::arg("steps"),
     py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
     py::arg("momentum"), py::arg("centered"),
     "torch.optim.RMSprop's update in place (momentum_buffers: momentum > 0, grad_avgs: "
     "centered, else None)");
  m.def(names[3], [fn = names[3], step](O params, O grads, O exp_avgs, O exp_avg_sqs,
                                         O max_exp_avg_sqs, O steps, double lr, double beta1,
                                         double beta2, double eps, double weight_decay,
                                         bool amsgrad, bool decoupled_weight_decay) {
    step(fn, params, grads,
         {{"exp_avgs", exp_avgs}, {"exp_avg_sqs", exp_avg_sqs},
          {"max_exp_avg_sqs", max_exp_avg_sqs}},
         steps, AdamOptions{lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled_weight_decay});
  }, py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
     py::arg("max_exp_avg_sqs").none(true), py::arg("steps"), py::arg("lr"), py::arg("beta1"),
     py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
     py::arg("decoupled_weight_decay"),
     "torch.optim.Adam's (AdamW's with decoupled_weight_decay) update in place; "
     "max_exp_avg_sqs: amsgrad, else None");
}

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
