// Argument parsing of the _C_cuda bindings (csrc/python/cuda/bind_<family>.cpp),
// beside the parsing both modules share (csrc/python/args.h): DeviceArray
// arguments and shapes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <string>
#include <vector>

#include "cuda/device_buffer.h"
#include "fastnn/check.h"
#include "python/args.h"

namespace fastnn::py_args {

using cuda::DeviceBuffer;
using cuda::shape_str;

// A DeviceArray argument; TypeError naming it otherwise.
inline const DeviceBuffer& device_arg(const py::handle& obj, const char* fn, const char* name) {
  if (!py::isinstance<DeviceBuffer>(obj))
    throw py::type_error(
        str_cat(fn, ": argument '", name, "' must be a DeviceArray, got ", type_name(obj)));
  return obj.cast<const DeviceBuffer&>();
}

inline DeviceBuffer& mutable_device_arg(const py::handle& obj, const char* fn, const char* name) {
  device_arg(obj, fn, name);
  return obj.cast<DeviceBuffer&>();
}

// An optional DeviceArray argument (None: absent).
inline const DeviceBuffer* optional_device_arg(const py::object& obj, const char* fn,
                                               const char* name) {
  return obj.is_none() ? nullptr : &device_arg(obj, fn, name);
}

inline py::object optional_result(std::optional<DeviceBuffer>& d) {
  return d ? py::cast(std::move(*d)) : py::none();
}

// An integer or a sequence of them, as NumPy accepts for shapes.
inline std::vector<int64_t> to_shape(const py::handle& obj, const char* fn) {
  std::vector<int64_t> shape;
  const bool is_0d_array =
      py::isinstance<py::array>(obj) && py::reinterpret_borrow<py::array>(obj).ndim() == 0;
  if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj)) {
    throw py::type_error(str_cat(fn, ": argument 'shape' must be an int or a tuple of ints, got ",
                                 type_name(obj)));
  } else if (is_0d_array || !py::isinstance<py::sequence>(obj)) {
    if (!PyIndex_Check(obj.ptr()))
      throw py::type_error(str_cat(fn, ": argument 'shape' must be an int or a tuple of ints, got ",
                                   type_name(obj)));
    shape.push_back(to_int(obj, fn, "shape"));
  } else {
    for (const py::handle item : py::reinterpret_borrow<py::sequence>(obj))
      shape.push_back(to_int(item, fn, "shape"));
  }
  for (int64_t d : shape)
    FASTNN_CHECK(d >= 0, fn, ": argument 'shape' must not be negative, got ",
                 cuda::shape_str(shape));
  return shape;
}

}  // namespace fastnn::py_args
