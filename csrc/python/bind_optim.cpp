// _C bindings of the fused optimizer steps (csrc/cpu/optim.cpp): one call
// updates every parameter of a group. Array checks and GIL release only;
// python/fastnn/optim keeps the state and the hyperparameters.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "arrays.h"
#include "fastnn/optim.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__"));
}

// The tensors of one step, and references that keep their arrays alive
// while the kernel runs without the GIL.
struct StepArgs {
  std::vector<OptimTensor> tensors;
  std::vector<py::array> keep;
};

struct Named {
  const char* name;  // "params", "grads" or a state's name
  py::object list;   // a sequence of arrays, or None
};

py::sequence sequence_arg(const py::handle& obj, const char* fn, const char* name, size_t n,
                          bool first) {
  if (py::isinstance<py::str>(obj) || py::isinstance<py::array>(obj) ||
      !py::isinstance<py::sequence>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a list, got ",
                                 type_name(obj)));
  auto seq = py::reinterpret_borrow<py::sequence>(obj);
  FASTNN_CHECK(first || seq.size() == n, fn, ": argument '", name, "' must have ", n,
               " entries (one per parameter), got ", seq.size());
  return seq;
}

// The float32 data of seq[i], C-contiguous and aligned (and writeable
// when `write`) with n values of `shape`; the errors name list[i]. Messages
// are only formatted on failure: this runs for every array of every step.
struct ArrayCheck {
  const char* fn;
  const char* list;
  size_t i;
  [[noreturn]] void fail(const std::string& what, bool type) const {
    const std::string msg = str_cat(fn, ": ", list, "[", i, "] ", what);
    if (type) throw py::type_error(msg);
    throw std::invalid_argument(msg);
  }
};

py::array array_item(const py::sequence& seq, const ArrayCheck& c, const py::array* like,
                     bool write) {
  py::object item = seq[c.i];
  if (!py::isinstance<py::array>(item))
    c.fail(str_cat("must be a numpy.ndarray, got ", type_name(item)), true);
  auto x = py::reinterpret_steal<py::array>(item.release());
  if (!is_float32(x))
    c.fail(str_cat("must be float32, got ", std::string(py::str(x.dtype()))), true);
  if (!is_c_contiguous_aligned(x)) c.fail("must be C-contiguous and aligned", false);
  if (write && !x.writeable()) c.fail("must be writeable", false);
  if (like) {
    bool same = x.ndim() == like->ndim();
    for (py::ssize_t d = 0; same && d < x.ndim(); ++d) same = x.shape(d) == like->shape(d);
    if (!same)
      c.fail(str_cat("must have the shape of params[", c.i, "] ", shape_str(*like), ", got ",
                     shape_str(x)), false);
  }
  return x;
}

// Written buffers may share memory with no other buffer of the step; read
// ones (gradients) only with other read ones. Sweeps the buffers sorted by
// address, keeping the furthest end seen of all of them and of written ones.
struct Buffer {
  const char* lo;
  const char* hi;
  const char* list;
  size_t i;
  bool written;
};

void check_no_overlap(std::vector<Buffer> bufs, const char* fn) {
  std::sort(bufs.begin(), bufs.end(), [](const Buffer& x, const Buffer& y) { return x.lo < y.lo; });
  const Buffer* far_all = nullptr;
  const Buffer* far_written = nullptr;
  for (const Buffer& b : bufs) {
    if (b.lo == b.hi) continue;
    const Buffer* other = b.written ? far_all : far_written;
    if (other && other->hi > b.lo)
      FASTNN_CHECK(false, fn, ": ", other->list, "[", other->i, "] and ", b.list, "[", b.i,
                   "] share memory; every parameter and state buffer must be its own array");
    if (!far_all || b.hi > far_all->hi) far_all = &b;
    if (b.written && (!far_written || b.hi > far_written->hi)) far_written = &b;
  }
}

// params[i] (updated in place), grads[i] of its shape, the state buffers
// of its shape (updated in place; a None list is a buffer the options do
// not use) and steps[i] >= 1.
StepArgs step_args(const char* fn, const py::object& params_obj, const py::object& grads_obj,
                   const std::vector<Named>& states, const py::object& steps_obj) {
  const py::sequence params = sequence_arg(params_obj, fn, "params", 0, true);
  const size_t n = params.size();
  const py::sequence grads = sequence_arg(grads_obj, fn, "grads", n, false);
  const py::sequence steps = sequence_arg(steps_obj, fn, "steps", n, false);
  std::vector<py::sequence> state_lists;
  for (const Named& s : states)
    state_lists.push_back(s.list.is_none() ? py::sequence()
                                           : sequence_arg(s.list, fn, s.name, n, false));
  StepArgs a;
  a.tensors.reserve(n);
  a.keep.reserve(n * (2 + states.size()));
  std::vector<Buffer> bufs;
  auto keep = [&](py::array arr, const char* list, size_t i, bool written) {
    const auto* lo = static_cast<const char*>(arr.data());
    bufs.push_back({lo, lo + arr.nbytes(), list, i, written});
    a.keep.push_back(std::move(arr));
  };
  for (size_t i = 0; i < n; ++i) {
    OptimTensor t;
    py::array p = array_item(params, {fn, "params", i}, nullptr, true);
    py::array g = array_item(grads, {fn, "grads", i}, &p, false);
    t.n = int64_t(p.size());
    t.p = static_cast<float*>(p.mutable_data());
    t.g = static_cast<const float*>(g.data());
    for (size_t j = 0; j < states.size(); ++j) {
      if (states[j].list.is_none()) continue;
      py::array s = array_item(state_lists[j], {fn, states[j].name, i}, &p, true);
      t.state[j] = static_cast<float*>(s.mutable_data());
      keep(std::move(s), states[j].name, i, true);
    }
    const py::object step = steps[i];
    if (py::isinstance<py::bool_>(step) || !py::isinstance<py::int_>(step))
      throw py::type_error(str_cat(fn, ": steps[", i, "] must be an int, got ", type_name(step)));
    t.step = step.cast<int64_t>();
    FASTNN_CHECK(t.step >= 1, fn, ": steps[", i, "] must be >= 1, got ", t.step);
    keep(std::move(p), "params", i, true);
    keep(std::move(g), "grads", i, false);
    a.tensors.push_back(t);
  }
  check_no_overlap(std::move(bufs), fn);
  return a;
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "sgd_step",
      [](const py::object& params, const py::object& grads, const py::object& momentum_buffers,
         const py::object& steps, double lr, double momentum, double dampening,
         double weight_decay, bool nesterov, bool reference) {
        StepArgs a = step_args("sgd_step", params, grads, {{"momentum_buffers", momentum_buffers}},
                               steps);
        const SgdOptions o{lr, momentum, dampening, weight_decay, nesterov};
        py::gil_scoped_release release;
        sgd_step(a.tensors, o, reference);
      },
      py::arg("params"), py::arg("grads"), py::arg("momentum_buffers").none(true),
      py::arg("steps"), py::arg("lr"), py::arg("momentum"), py::arg("dampening"),
      py::arg("weight_decay"), py::arg("nesterov"), py::arg("reference") = false,
      "torch.optim.SGD's update of every params[i] in place; momentum_buffers (None without "
      "momentum) are set to the gradient on step 1");
  m.def(
      "adagrad_step",
      [](const py::object& params, const py::object& grads, const py::object& sums,
         const py::object& steps, double lr, double lr_decay, double weight_decay, double eps,
         bool reference) {
        StepArgs a = step_args("adagrad_step", params, grads, {{"sums", sums}}, steps);
        const AdagradOptions o{lr, lr_decay, weight_decay, eps};
        py::gil_scoped_release release;
        adagrad_step(a.tensors, o, reference);
      },
      py::arg("params"), py::arg("grads"), py::arg("sums"), py::arg("steps"), py::arg("lr"),
      py::arg("lr_decay"), py::arg("weight_decay"), py::arg("eps"), py::arg("reference") = false,
      "torch.optim.Adagrad's update of every params[i] and sums[i] in place");
  m.def(
      "rmsprop_step",
      [](const py::object& params, const py::object& grads, const py::object& square_avgs,
         const py::object& momentum_buffers, const py::object& grad_avgs,
         const py::object& steps, double lr, double alpha, double eps, double weight_decay,
         double momentum, bool centered, bool reference) {
        StepArgs a = step_args("rmsprop_step", params, grads,
                               {{"square_avgs", square_avgs},
                                {"momentum_buffers", momentum_buffers},
                                {"grad_avgs", grad_avgs}},
                               steps);
        const RmspropOptions o{lr, alpha, eps, weight_decay, momentum, centered};
        py::gil_scoped_release release;
        rmsprop_step(a.tensors, o, reference);
      },
      py::arg("params"), py::arg("grads"), py::arg("square_avgs"),
      py::arg("momentum_buffers").none(true), py::arg("grad_avgs").none(true), py::arg("steps"),
      py::arg("lr"), py::arg("alpha"), py::arg("eps"), py::arg("weight_decay"),
      py::arg("momentum"), py::arg("centered"), py::arg("reference") = false,
      "torch.optim.RMSprop's update in place (momentum_buffers: momentum > 0, grad_avgs: "
      "centered, else None)");
  m.def(
      "adam_step",
      [](const py::object& params, const py::object& grads, const py::object& exp_avgs,
         const py::object& exp_avg_sqs, const py::object& max_exp_avg_sqs,
         const py::object& steps, double lr, double beta1, double beta2, double eps,
         double weight_decay, bool amsgrad, bool decoupled_weight_decay, bool reference) {
        StepArgs a = step_args("adam_step", params, grads,
                               {{"exp_avgs", exp_avgs},
                                {"exp_avg_sqs", exp_avg_sqs},
                                {"max_exp_avg_sqs", max_exp_avg_sqs}},
                               steps);
        const AdamOptions o{lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled_weight_decay};
        py::gil_scoped_release release;
        adam_step(a.tensors, o, reference);
      },
      py::arg("params"), py::arg("grads"), py::arg("exp_avgs"), py::arg("exp_avg_sqs"),
      py::arg("max_exp_avg_sqs").none(true), py::arg("steps"), py::arg("lr"), py::arg("beta1"),
      py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
      py::arg("decoupled_weight_decay"), py::arg("reference") = false,
      "torch.optim.Adam's (AdamW's with decoupled_weight_decay) update in place; "
      "max_exp_avg_sqs: amsgrad, else None");
}

}  // namespace fastnn
