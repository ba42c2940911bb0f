// _C_cuda bindings of the LSTM and GRU kernels (csrc/cuda/rnn.h), the
// mirror of csrc/python/bind_rnn.cpp.
#include <string>

#include "cuda/rnn.h"
#include "python/cuda/device_args.h"

namespace fastnn {

using namespace py_args;
namespace cu = cuda;

namespace {

// The arguments both ops share: the cell, the input, the initial states, the weights.
struct RnnInputs {
  RnnCell cell;
  const DeviceBuffer& x;
  const DeviceBuffer* h0;
  const DeviceBuffer* c0;
  const DeviceBuffer& w_x;
  const DeviceBuffer& w_h;
};

RnnInputs rnn_inputs(const char* fn, const std::string& cell, const py::object& x,
                     const py::object& h0, const py::object& c0, const py::object& w_x,
                     const py::object& w_h) {
  return {rnn_cell(cell, fn),
          device_arg(x, fn, "x"),
          optional_device_arg(h0, fn, "h0"),
          optional_device_arg(c0, fn, "c0"),
          device_arg(w_x, fn, "w_x"),
          device_arg(w_h, fn, "w_h")};
}

}  // namespace

// The same arguments and results as fastnn._C's rnn_forward / rnn_backward
// (csrc/python/bind_rnn.cpp), on DeviceArrays.
void bind_rnn(py::module_& m) {
  m.def(
      "rnn_forward",
      [](const std::string& cell_name, const py::object& x_obj, const py::object& h0_obj,
         const py::object& c0_obj, const py::object& wx_obj, const py::object& wh_obj,
         const py::object& b_obj, bool training) {
        const char* fn = "rnn_forward";
        const RnnInputs in = rnn_inputs(fn, cell_name, x_obj, h0_obj, c0_obj, wx_obj, wh_obj);
        const DeviceBuffer& b = device_arg(b_obj, fn, "b");
        cu::RnnForwardResult r;
        {
          py::gil_scoped_release release;
          r = cu::rnn_forward(in.cell, in.x, in.h0, in.c0, in.w_x, in.w_h, b, training);
        }
        return py::make_tuple(py::cast(std::move(r.out)), py::cast(std::move(r.h_last)),
                              optional_result(r.c_last), optional_result(r.gates),
                              optional_result(r.state));
      },
      FASTNN_RNN_INPUT_ARGS, py::arg("b"), py::arg("training"),
      "(out (B,T,H), h_T, c_T or None, gates or None, state or None) of an LSTM or GRU over "
      "x (B,T,I); with training, the arrays backward needs");
  m.def(
      "rnn_backward",
      [](const std::string& cell_name, const py::object& x_obj, const py::object& h0_obj,
         const py::object& c0_obj, const py::object& wx_obj, const py::object& wh_obj,
         const py::object& out_obj, const py::object& gates_obj, const py::object& state_obj,
         const py::object& dout_obj, const py::object& dh_obj, const py::object& dc_obj,
         bool need_dx, bool need_dh0, bool need_dc0, bool need_dw_x, bool need_dw_h,
         bool need_db) {
        const char* fn = "rnn_backward";
        const RnnInputs in = rnn_inputs(fn, cell_name, x_obj, h0_obj, c0_obj, wx_obj, wh_obj);
        const DeviceBuffer& out = device_arg(out_obj, fn, "out");
        const DeviceBuffer& gates = device_arg(gates_obj, fn, "gates");
        const DeviceBuffer* state = optional_device_arg(state_obj, fn, "state");
        const DeviceBuffer* dout = optional_device_arg(dout_obj, fn, "dout");
        const DeviceBuffer* dh = optional_device_arg(dh_obj, fn, "dh");
        const DeviceBuffer* dc = optional_device_arg(dc_obj, fn, "dc");
        const bool need[6] = {need_dx, need_dh0, need_dc0, need_dw_x, need_dw_h, need_db};
        cu::RnnGradients g;
        {
          py::gil_scoped_release release;
          g = cu::rnn_backward(in.cell, in.x, in.h0, in.c0, in.w_x, in.w_h, out, gates, state, dout,
                               dh, dc, need);
        }
        return py::make_tuple(optional_result(g.dx), optional_result(g.dh0),
                              optional_result(g.dc0), optional_result(g.dw_x),
                              optional_result(g.dw_h), optional_result(g.db));
      },
      FASTNN_RNN_BACKWARD_ARGS,
      "(dx, dh0, dc0, dw_x, dw_h, db) from the forward's arrays and the gradients of out, h_T "
      "and c_T (None: zero); None where not asked for");
}

}  // namespace fastnn
