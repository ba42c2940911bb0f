// _C_cuda bindings of the LSTM and GRU kernels (csrc/cuda/rnn.h), the
// mirror of csrc/python/bind_rnn.cpp.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "cuda/rnn.h"
#include "python/cuda/device_args.h"

namespace py = pybind11;
using fastnn::str_cat;
using fastnn::cuda::DeviceBuffer;
using namespace fastnn::py_args;
namespace cu = fastnn::cuda;

namespace fastnn {

// The same arguments and results as fastnn._C's rnn_forward / rnn_backward
// (csrc/python/bind_rnn.cpp), on DeviceArrays.
void bind_rnn(py::module_& m) {
  m.def(
      "rnn_forward",
      [](const std::string& cell_name, const py::object& x_obj, const py::object& h0_obj,
         const py::object& c0_obj, const py::object& wx_obj, const py::object& wh_obj,
         const py::object& b_obj, bool training) {
        const char* fn = "rnn_forward";
        const fastnn::RnnCell cell = fastnn::rnn_cell(cell_name, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer* h0 = optional_device_arg(h0_obj, fn, "h0");
        const DeviceBuffer* c0 = optional_device_arg(c0_obj, fn, "c0");
        const DeviceBuffer& w_x = device_arg(wx_obj, fn, "w_x");
        const DeviceBuffer& w_h = device_arg(wh_obj, fn, "w_h");
        const DeviceBuffer& b = device_arg(b_obj, fn, "b");
        cu::RnnForwardResult r;
        {
          py::gil_scoped_release release;
          r = cu::rnn_forward(cell, x, h0, c0, w_x, w_h, b, training);
        }
        return py::make_tuple(py::cast(std::move(r.out)), py::cast(std::move(r.h_last)),
                              optional_result(r.c_last), optional_result(r.gates),
                              optional_result(r.state));
      },
      py::arg("cell"), py::arg("x"), py::arg("h0").none(true), py::arg("c0").none(true),
      py::arg("w_x"), py::arg("w_h"), py::arg("b"), py::arg("training"),
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
        const fastnn::RnnCell cell = fastnn::rnn_cell(cell_name, fn);
        const DeviceBuffer& x = device_arg(x_obj, fn, "x");
        const DeviceBuffer* h0 = optional_device_arg(h0_obj, fn, "h0");
        const DeviceBuffer* c0 = optional_device_arg(c0_obj, fn, "c0");
        const DeviceBuffer& w_x = device_arg(wx_obj, fn, "w_x");
        const DeviceBuffer& w_h = device_arg(wh_obj, fn, "w_h");
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
          g = cu::rnn_backward(cell, x, h0, c0, w_x, w_h, out, gates, state, dout, dh, dc, need);
        }
        return py::make_tuple(optional_result(g.dx), optional_result(g.dh0),
                              optional_result(g.dc0), optional_result(g.dw_x),
                              optional_result(g.dw_h), optional_result(g.db));
      },
      py::arg("cell"), py::arg("x"), py::arg("h0").none(true), py::arg("c0").none(true),
      py::arg("w_x"), py::arg("w_h"), py::arg("out"), py::arg("gates"),
      py::arg("state").none(true), py::arg("dout").none(true), py::arg("dh").none(true),
      py::arg("dc").none(true), FASTNN_RNN_NEED_ARGS,
      "(dx, dh0, dc0, dw_x, dw_h, db) from the forward's arrays and the gradients of out, h_T "
      "and c_T (None: zero); None where not asked for");
}

}  // namespace fastnn
