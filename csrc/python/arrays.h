// Array checks shared by the _C bindings: what a kernel may read and write.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <string>
#include <vector>

#include "fastnn/check.h"
#include "fastnn/conv_shape.h"

namespace fastnn::py_arrays {

namespace py = pybind11;

inline std::string shape_str(const py::array& x) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < x.ndim(); ++d) s += (d ? ", " : "") + std::to_string(x.shape(d));
  return s + (x.ndim() == 1 ? ",)" : ")");
}

// float32 in this machine's byte order (a '>f4' array is not).
inline bool is_float32(const py::array& x) {
  const py::dtype dt = x.dtype();
  if (dt.kind() != 'f' || dt.itemsize() != 4) return false;
  const char order = dt.byteorder();
  const bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
  return order == '=' || order == '|' || order == (little ? '<' : '>');
}

inline bool is_aligned(const py::array& x) {
  return (x.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_) != 0;
}

inline bool is_c_contiguous_aligned(const py::array& x) {
  return (x.flags() & py::array::c_style) != 0 && is_aligned(x);
}

// A native float32, C-contiguous, aligned array (the Python layer makes
// them so); anything else is a TypeError / ValueError naming the argument.
inline const float* in_f32(const py::array& x, const char* fn, const char* name) {
  if (!is_float32(x))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be float32, got ",
                                 std::string(py::str(x.dtype()))));
  FASTNN_CHECK(is_c_contiguous_aligned(x), fn, ": argument '", name,
               "' must be C-contiguous and aligned");
  return static_cast<const float*>(x.data());
}

inline float* out_f32(py::array& x, const char* fn, const char* name) {
  in_f32(x, fn, name);
  FASTNN_CHECK(x.writeable(), fn, ": argument '", name, "' must be writeable");
  return static_cast<float*>(x.mutable_data());
}

inline std::vector<py::ssize_t> shape_of(const py::array& x) {
  return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim());
}

// A new float32 array of this shape. A shape whose bytes do not fit 64 bits
// is a ValueError here, before pybind11 multiplies the strides (signed
// overflow) or NumPy is asked for the memory. Zero sizes are skipped in the
// product: pybind11 multiplies the sizes behind each axis whatever they are.
inline py::array_t<float> new_f32(const std::vector<py::ssize_t>& shape, const char* fn) {
  int64_t bytes = sizeof(float);
  for (const py::ssize_t d : shape) {
    FASTNN_CHECK(d >= 0 && (d == 0 || bytes <= std::numeric_limits<int64_t>::max() / d), fn,
                 ": the result would need more than 2^63 bytes (a dimension of ", d, ")");
    if (d) bytes *= d;
  }
  return py::array_t<float>(shape);
}

// A new float32 array of x's shape.
inline py::array_t<float> empty_like(const py::array& x) { return py::array_t<float>(shape_of(x)); }

inline void check_same_shape(const py::array& a, const py::array& b, const char* fn,
                             const char* name_a, const char* name_b) {
  bool same = a.ndim() == b.ndim();
  for (py::ssize_t d = 0; same && d < a.ndim(); ++d) same = a.shape(d) == b.shape(d);
  FASTNN_CHECK(same, fn, ": arguments '", name_a, "' and '", name_b,
               "' must have the same shape, got ", shape_str(a), " and ", shape_str(b));
}

// The padding of a window op from the Python layer's normalised form:
// "valid", "same" or "explicit" with (ph, pw).
inline PaddingSpec padding_arg(const std::string& mode, int64_t ph, int64_t pw, const char* fn) {
  PaddingSpec p;
  if (mode == "valid")
    p.mode = Padding::valid;
  else if (mode == "same")
    p.mode = Padding::same;
  else if (mode == "explicit")
    p = {Padding::explicit_, ph, pw};
  else
    FASTNN_CHECK(false, fn, ": argument 'padding' must be 'valid', 'same' or explicit, got '",
                 mode, "'");
  return p;
}

// A 4-D (N, H, W, C) float32 array's data, or the error naming it.
inline const float* nhwc_arg(const py::array& x, const char* fn, const char* name) {
  FASTNN_CHECK(x.ndim() == 4, fn, ": argument '", name, "' must be 4-D (N, H, W, C), got shape ",
               shape_str(x));
  return in_f32(x, fn, name);
}

}  // namespace fastnn::py_arrays
