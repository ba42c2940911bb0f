// _C_cuda bindings of the fused optimizer steps (csrc/cuda/optim.h), the
// mirror of csrc/python/bind_optim.cpp.
#include <algorithm>
#include <string>
#include <vector>

#include "cuda/optim.h"
#include "python/cuda/device_args.h"

namespace fastnn {

using namespace py_args;
namespace cu = cuda;

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
                       const std::vector<NamedList>& states,
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
    state_lists.push_back(st.list.is_none() ? py::sequence() : sized(st.list, st.name));
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
      if (states[j].list.is_none()) continue;
      const std::string sname = str_cat(states[j].name, "[", i, "]");
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

// The step as fastnn._C runs it, on the GPU.
void run(const std::vector<OptimTensor>& t, const SgdOptions& o) { cu::sgd_step(t, o); }
void run(const std::vector<OptimTensor>& t, const AdagradOptions& o) { cu::adagrad_step(t, o); }
void run(const std::vector<OptimTensor>& t, const RmspropOptions& o) { cu::rmsprop_step(t, o); }
void run(const std::vector<OptimTensor>& t, const AdamOptions& o) { cu::adam_step(t, o); }

}  // namespace

void bind_optim(py::module_& m) {
  static const char* const names[4] = {"sgd_step", "adagrad_step", "rmsprop_step", "adam_step"};
  def_optim_steps(m, names, [](const char* fn, const py::object& params, const py::object& grads,
                               const std::vector<NamedList>& states, const py::object& steps,
                               const auto& options) {
    DeviceStep a = device_step(fn, params, grads, states, steps);
    cuda::DeviceGuard guard(a.device);
    py::gil_scoped_release release;
    run(a.tensors, options);
  });
}

}  // namespace fastnn
