// _C_cuda bindings of the fused optimizer steps (csrc/cuda/optim.h), the
// mirror of csrc/python/bind_optim.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <vector>

#include "cuda/optim.h"
#include "python/cuda/device_args.h"

namespace py = pybind11;
using fastnn::str_cat;
using fastnn::cuda::DeviceBuffer;
using fastnn::cuda::shape_str;
using namespace fastnn::py_args;
namespace cu = fastnn::cuda;

namespace fastnn {

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

}  // namespace

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

}  // namespace fastnn
