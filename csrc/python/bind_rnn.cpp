// _C bindings of the LSTM and GRU sequence kernels (csrc/cpu/rnn.cpp): shape
// checks (rnn_shape.h, the same for the CUDA module), GIL release. The cell
// is named by a string: "lstm", "gru" or "gru_reset_after".
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "args.h"
#include "arrays.h"
#include "fastnn/rnn.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

std::vector<int64_t> dims_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// An optional float32 array argument: None, or an array of `want` shape.
const float* optional_arg(const py::object& obj, const std::vector<int64_t>& want,
                          const char* fn, const char* name) {
  if (obj.is_none()) return nullptr;
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a float32 array or None"));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  rnn_check_shape(dims_of(a), want, fn, name);
  return in_f32(a, fn, name);
}

const float* required_arg(const py::array& a, const std::vector<int64_t>& want, const char* fn,
                          const char* name) {
  rnn_check_shape(dims_of(a), want, fn, name);
  return in_f32(a, fn, name);
}

py::array_t<float> new_array(std::vector<int64_t> shape) {
  return py::array_t<float>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// The sizes from the inputs, the optional states' shapes checked.
RnnDims input_dims(RnnCell cell, const py::array& x, const py::object& h0, const py::object& c0,
                   const py::array& w_x, const py::array& w_h,
                   const std::vector<int64_t>& b_shape, const char* fn) {
  std::optional<std::vector<int64_t>> h0s, c0s;
  if (!h0.is_none()) h0s = dims_of(py::reinterpret_borrow<py::array>(h0));
  if (!c0.is_none()) c0s = dims_of(py::reinterpret_borrow<py::array>(c0));
  return rnn_dims(cell, dims_of(x), h0s ? &*h0s : nullptr, c0s ? &*c0s : nullptr, dims_of(w_x),
                  dims_of(w_h), b_shape, fn);
}

void check_is_array(const py::object& obj, const char* fn, const char* name) {
  if (!obj.is_none() && !py::isinstance<py::array>(obj))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be a float32 array or None"));
}

using ForwardFn = void (*)(const RnnDims&, const float*, const float*, const float*, const float*,
                           const float*, const float*, float*, float*, RnnSaved);
using BackwardFn = void (*)(const RnnDims&, const float*, const float*, const float*,
                            const float*, const float*, const float*, const float*,
                            const float*, const float*, const float*, const float*, RnnGrads);

// (out, h_last, c_last or None, gates or None, state or None)
py::tuple forward(ForwardFn fn_ptr, const char* fn, const std::string& cell_name,
                  const py::array& x, const py::object& h0_obj, const py::object& c0_obj,
                  const py::array& w_x, const py::array& w_h, const py::array& b, bool training) {
  const RnnCell cell = rnn_cell(cell_name, fn);
  check_is_array(h0_obj, fn, "h0");
  check_is_array(c0_obj, fn, "c0");
  const RnnDims d = input_dims(cell, x, h0_obj, c0_obj, w_x, w_h, dims_of(b), fn);
  const int64_t B = d.batch, T = d.time, H = d.hidden;
  const float* xp = in_f32(x, fn, "x");
  const float* wxp = in_f32(w_x, fn, "w_x");
  const float* whp = in_f32(w_h, fn, "w_h");
  const float* bp = in_f32(b, fn, "b");
  const float* h0 = optional_arg(h0_obj, {B, H}, fn, "h0");
  const float* c0 = optional_arg(c0_obj, {B, H}, fn, "c0");
  auto out = new_array({B, T, H});
  py::object c_last = py::none(), gates = py::none(), state = py::none();
  float* c_last_p = nullptr;
  RnnSaved saved;
  if (d.has_cell_state()) {
    auto a = new_array({B, H});
    c_last_p = a.mutable_data();
    c_last = a;
  }
  if (training) {
    auto g = new_array({B, T, d.gate_width()});
    saved.gates = g.mutable_data();
    gates = g;
    if (d.saves_state()) {
      auto s = new_array({B, T, H});
      saved.state = s.mutable_data();
      state = s;
    }
  }
  float* outp = out.mutable_data();
  {
    py::gil_scoped_release release;
    fn_ptr(d, xp, h0, c0, wxp, whp, bp, outp, c_last_p, saved);
  }
  // h_T: the last step's row of out (h0 or zeros for an empty sequence)
  auto h_last = new_array({B, H});
  float* hl = h_last.mutable_data();
  for (int64_t i = 0; i < B; ++i)
    for (int64_t j = 0; j < H; ++j)
      hl[i * H + j] = T > 0 ? outp[(i * T + T - 1) * H + j] : (h0 ? h0[i * H + j] : 0.0f);
  return py::make_tuple(out, h_last, c_last, gates, state);
}

// (dx, dh0, dc0, dw_x, dw_h, db), None where not asked for (dc0 also for a GRU)
py::tuple backward(BackwardFn fn_ptr, const char* fn, const std::string& cell_name,
                   const py::array& x, const py::object& h0_obj, const py::object& c0_obj,
                   const py::array& w_x, const py::array& w_h, const py::array& out,
                   const py::array& gates, const py::object& state_obj,
                   const py::object& dout_obj, const py::object& dh_obj,
                   const py::object& dc_obj, const py_args::RnnNeed& needs) {
  const RnnCell cell = rnn_cell(cell_name, fn);
  for (const auto& [obj, name] : {std::pair{&h0_obj, "h0"}, {&c0_obj, "c0"}, {&state_obj, "state"},
                                  {&dout_obj, "dout"}, {&dh_obj, "dh"}, {&dc_obj, "dc"}})
    check_is_array(*obj, fn, name);
  RnnDims probe;
  probe.cell = cell;
  probe.hidden = w_h.ndim() >= 1 ? w_h.shape(0) : 0;
  std::vector<int64_t> b_shape{probe.gate_width()};
  if (probe.bias_rows() == 2) b_shape.insert(b_shape.begin(), 2);
  const RnnDims d = input_dims(cell, x, h0_obj, c0_obj, w_x, w_h, b_shape, fn);
  const int64_t B = d.batch, T = d.time, I = d.input, H = d.hidden, GH = d.gate_width();
  const float* xp = in_f32(x, fn, "x");
  const float* wxp = in_f32(w_x, fn, "w_x");
  const float* whp = in_f32(w_h, fn, "w_h");
  const float* h0 = optional_arg(h0_obj, {B, H}, fn, "h0");
  const float* c0 = optional_arg(c0_obj, {B, H}, fn, "c0");
  const float* outp = required_arg(out, {B, T, H}, fn, "out");
  const float* gp = required_arg(gates, {B, T, GH}, fn, "gates");
  const float* sp = optional_arg(state_obj, {B, T, H}, fn, "state");
  FASTNN_CHECK(!d.saves_state() || sp || B * T * H == 0, fn, ": argument 'state' (the forward's ",
               d.has_cell_state() ? "cell states" : "recurrent parts", ") is required for '",
               cell_name, "'");
  const float* doutp = optional_arg(dout_obj, {B, T, H}, fn, "dout");
  const float* dhp = optional_arg(dh_obj, {B, H}, fn, "dh");
  const float* dcp = optional_arg(dc_obj, {B, H}, fn, "dc");
  FASTNN_CHECK(!dcp || d.has_cell_state(), fn, ": argument 'dc' is for the LSTM only");

  RnnGrads g;
  py::object results[6] = {py::none(), py::none(), py::none(), py::none(), py::none(), py::none()};
  const bool need[6] = {needs.dx, needs.dh0, needs.dc0 && d.has_cell_state(), needs.dw_x,
                        needs.dw_h, needs.db};
  const std::vector<int64_t> shapes[6] = {
      {B, T, I}, {B, H}, {B, H}, {I, GH}, {H, GH},
      d.bias_rows() == 2 ? std::vector<int64_t>{2, GH} : std::vector<int64_t>{GH}};
  float** slots[6] = {&g.dx, &g.dh0, &g.dc0, &g.dw_x, &g.dw_h, &g.db};
  for (int k = 0; k < 6; ++k)
    if (need[k]) {
      auto a = new_array(shapes[k]);
      *slots[k] = a.mutable_data();
      results[k] = a;
    }
  {
    py::gil_scoped_release release;
    fn_ptr(d, xp, h0, c0, wxp, whp, outp, gp, sp, doutp, dhp, dcp, g);
  }
  return py::make_tuple(results[0], results[1], results[2], results[3], results[4], results[5]);
}

}  // namespace

void bind_rnn(py::module_& m) {
  const auto def_forward = [&m](const char* name, ForwardFn f, const char* doc) {
    m.def(name, [name, f](const std::string& cell, const py::array& x, const py::object& h0,
                          const py::object& c0, const py::array& w_x, const py::array& w_h,
                          const py::array& b, bool training) {
      return forward(f, name, cell, x, h0, c0, w_x, w_h, b, training);
    }, FASTNN_RNN_INPUT_ARGS, py::arg("b"), py::arg("training"), doc);
  };
  const auto def_backward = [&m](const char* name, BackwardFn f, const char* doc) {
    m.def(name, [name, f](const std::string& cell, const py::array& x, const py::object& h0,
                          const py::object& c0, const py::array& w_x, const py::array& w_h,
                          const py::array& out, const py::array& gates, const py::object& state,
                          const py::object& dout, const py::object& dh, const py::object& dc,
                          bool need_dx, bool need_dh0, bool need_dc0, bool need_dw_x,
                          bool need_dw_h, bool need_db) {
      return backward(f, name, cell, x, h0, c0, w_x, w_h, out, gates, state, dout, dh, dc,
                      {need_dx, need_dh0, need_dc0, need_dw_x, need_dw_h, need_db});
    }, FASTNN_RNN_BACKWARD_ARGS, doc);
  };
  def_forward("rnn_forward", rnn_forward,
              "(out (B,T,H), h_T, c_T or None, gates or None, state or None) of an LSTM or GRU "
              "over x (B,T,I); with training, the arrays backward needs");
  def_forward("rnn_forward_reference", rnn_forward_reference,
              "the plain-loop version of rnn_forward, for tests");
  def_backward("rnn_backward", rnn_backward,
               "(dx, dh0, dc0, dw_x, dw_h, db) from the forward's arrays and the gradients of "
               "out, h_T and c_T (None: zero); None where not asked for");
  def_backward("rnn_backward_reference", rnn_backward_reference,
               "the plain-loop version of rnn_backward, for tests");
}

}  // namespace fastnn
