// _C bindings of the fused optimizer steps (csrc/cpu/optim.cpp): one call
// updates every parameter of a group. Array checks and GIL release only;
// python/fastnn/optim keeps the state and the hyperparameters.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "args.h"
#include "arrays.h"
#include "fastnn/optim.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;
using py_args::NamedList;
using py_args::type_name;

// The tensors of one step, and references that keep their arrays alive
// while the kernel runs without the GIL.
struct StepArgs {
  std::vector<OptimTensor> tensors;
  std::vector<py::array> keep;
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
                   const std::vector<NamedList>& states, const py::object& steps_obj) {
  const py::sequence params = sequence_arg(params_obj, fn, "params", 0, true);
  const size_t n = params.size();
  const py::sequence grads = sequence_arg(grads_obj, fn, "grads", n, false);
  const py::sequence steps = sequence_arg(steps_obj, fn, "steps", n, false);
  std::vector<py::sequence> state_lists;
  for (const NamedList& s : states)
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

// The same step on the SIMD loops, or (reference) on the plain scalar loop.
void run(const std::vector<OptimTensor>& t, const SgdOptions& o, bool r) { sgd_step(t, o, r); }
void run(const std::vector<OptimTensor>& t, const AdagradOptions& o, bool r) {
  adagrad_step(t, o, r);
}
void run(const std::vector<OptimTensor>& t, const RmspropOptions& o, bool r) {
  rmsprop_step(t, o, r);
}
void run(const std::vector<OptimTensor>& t, const AdamOptions& o, bool r) { adam_step(t, o, r); }

}  // namespace

void bind_optim(py::module_& m) {
  for (const bool reference : {false, true}) {
    static const char* const fast[4] = {"sgd_step", "adagrad_step", "rmsprop_step", "adam_step"};
    static const char* const plain[4] = {"sgd_step_reference", "adagrad_step_reference",
                                         "rmsprop_step_reference", "adam_step_reference"};
    py_args::def_optim_steps(
        m, reference ? plain : fast,
        [reference](const char* fn, const py::object& params, const py::object& grads,
                    const std::vector<NamedList>& states, const py::object& steps,
                    const auto& options) {
          StepArgs a = step_args(fn, params, grads, states, steps);
          py::gil_scoped_release release;
          run(a.tensors, options, reference);
        });
  }
}

}  // namespace fastnn
