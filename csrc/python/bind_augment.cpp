// _C bindings of the augmentation warps (csrc/cpu/augment.cpp): array
// checks and GIL release. The per-image indices and matrices are copied
// while the GIL is held, so no other thread can change them after they are
// checked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>
#include <vector>

#include "arrays.h"
#include "fastnn/augment.h"

namespace py = pybind11;

namespace fastnn {

namespace {

using namespace py_arrays;

FillMode fill_mode_arg(const std::string& mode, const char* fn) {
  if (mode == "nearest") return FillMode::nearest;
  if (mode == "constant") return FillMode::constant;
  if (mode == "reflect") return FillMode::reflect;
  if (mode == "wrap") return FillMode::wrap;
  FASTNN_CHECK(false, fn, ": argument 'fill_mode' must be 'nearest', 'constant', 'reflect' or "
               "'wrap', got '", mode, "'");
  return FillMode::nearest;
}

bool is_native(const py::dtype& dt, char kind, int size) {
  if (dt.kind() != kind || dt.itemsize() != size) return false;
  const char order = dt.byteorder();
  const bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
  return size == 1 || order == '=' || order == '|' || order == (little ? '<' : '>');
}

// A private copy of a 1-D / 2-D native array of T (kind, size) of `shape`.
template <class T>
std::vector<T> copy_arg(const py::array& a, char kind, const std::vector<py::ssize_t>& shape,
                        const char* fn, const char* name, const char* dtype_name) {
  if (!is_native(a.dtype(), kind, sizeof(T)))
    throw py::type_error(str_cat(fn, ": argument '", name, "' must be ", dtype_name, ", got ",
                                 std::string(py::str(a.dtype()))));
  bool ok = a.ndim() == py::ssize_t(shape.size());
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = a.shape(d) == shape[d];
  std::string want = "(";
  for (size_t d = 0; d < shape.size(); ++d) want += (d ? ", " : "") + std::to_string(shape[d]);
  want += shape.size() == 1 ? ",)" : ")";
  FASTNN_CHECK(ok, fn, ": argument '", name, "' must have shape ", want, ", got ", shape_str(a));
  FASTNN_CHECK(is_c_contiguous_aligned(a), fn, ": argument '", name,
               "' must be C-contiguous and aligned");
  const T* p = static_cast<const T*>(a.data());
  return std::vector<T>(p, p + a.size());
}

py::array_t<float> warp_py(const char* fn, bool reference, const py::array& x,
                           const py::array& index, const py::array& matrix,
                           const py::array& scale, const py::array& shift,
                           const std::string& fill_mode, float cval) {
  FASTNN_CHECK(x.ndim() == 4, fn, ": argument 'x' must be 4-D (N, H, W, C), got shape ",
               shape_str(x));
  const bool u8 = is_native(x.dtype(), 'u', 1);
  if (!u8 && !is_float32(x))
    throw py::type_error(str_cat(fn, ": argument 'x' must be uint8 or float32, got ",
                                 std::string(py::str(x.dtype()))));
  FASTNN_CHECK(is_c_contiguous_aligned(x), fn, ": argument 'x' must be C-contiguous and aligned");
  AffineWarp p;
  p.n = x.shape(0);
  p.h = x.shape(1);
  p.w = x.shape(2);
  p.c = x.shape(3);
  p.fill = fill_mode_arg(fill_mode, fn);
  p.cval = cval;
  FASTNN_CHECK(std::isfinite(cval), fn, ": argument 'cval' must be finite, got ", cval);
  FASTNN_CHECK(index.ndim() == 1, fn, ": argument 'index' must be 1-D, got shape ",
               shape_str(index));
  p.batch = index.shape(0);
  const auto idx = copy_arg<int64_t>(index, 'i', {p.batch}, fn, "index", "int64");
  for (int64_t b = 0; b < p.batch; ++b)
    FASTNN_CHECK(idx[b] >= 0 && idx[b] < p.n, fn, ": argument 'index' must hold rows of 'x' in [0, ",
                 p.n, "), got ", idx[b], " at position ", b);
  const auto mat = copy_arg<double>(matrix, 'f', {p.batch, 6}, fn, "matrix", "float64");
  for (int64_t b = 0; b < p.batch; ++b) {
    const double reach = max_warp_coordinate(mat.data() + 6 * b, p.h, p.w);
    FASTNN_CHECK(reach <= kMaxWarpCoordinate, fn, ": argument 'matrix' must be finite and sample "
                 "within ", kMaxWarpCoordinate, " pixels of the origin, row ", b, " reaches ", reach);
  }
  const auto sc = copy_arg<float>(scale, 'f', {p.c}, fn, "scale", "float32");
  const auto sh = copy_arg<float>(shift, 'f', {p.c}, fn, "shift", "float32");
  const int64_t image = checked_mul(checked_mul(p.h, p.w), p.c);
  checked_mul(std::max<int64_t>(p.batch, p.n), image);
  py::array_t<float> out(std::vector<py::ssize_t>{p.batch, p.h, p.w, p.c});
  float* op = out.mutable_data();
  const void* xp = x.data();
  py::gil_scoped_release release;
  if (u8) {
    const auto* xu = static_cast<const uint8_t*>(xp);
    (reference ? affine_warp_reference<uint8_t> : affine_warp<uint8_t>)(
        p, xu, idx.data(), mat.data(), sc.data(), sh.data(), op);
  } else {
    const auto* xf = static_cast<const float*>(xp);
    (reference ? affine_warp_reference<float> : affine_warp<float>)(
        p, xf, idx.data(), mat.data(), sc.data(), sh.data(), op);
  }
  return out;
}

}  // namespace

void bind_augment(py::module_& m) {
  const char* doc =
      "out (B, H, W, C) float32 = scale * (x[index] warped by matrix) + shift: x (N, H, W, C) "
      "uint8 or float32, index (B,) int64, matrix (B, 6) float64 [a00 a01 a02 a10 a11 a12] "
      "(output pixel (r, c) samples x at row a00 r + a01 c + a02, column a10 r + a11 c + a12, "
      "bilinear), scale and shift (C,) float32";
  m.def("affine_warp", [](const py::array& x, const py::array& index, const py::array& matrix,
                          const py::array& scale, const py::array& shift,
                          const std::string& fill_mode, float cval) {
    return warp_py("affine_warp", false, x, index, matrix, scale, shift, fill_mode, cval);
  }, py::arg("x"), py::arg("index"), py::arg("matrix"), py::arg("scale"), py::arg("shift"),
     py::arg("fill_mode"), py::arg("cval"), doc);
  m.def("affine_warp_reference", [](const py::array& x, const py::array& index,
                                    const py::array& matrix, const py::array& scale,
                                    const py::array& shift, const std::string& fill_mode,
                                    float cval) {
    return warp_py("affine_warp_reference", true, x, index, matrix, scale, shift, fill_mode, cval);
  }, py::arg("x"), py::arg("index"), py::arg("matrix"), py::arg("scale"), py::arg("shift"),
     py::arg("fill_mode"), py::arg("cval"), "the plain loop version of affine_warp, for tests");
}

}  // namespace fastnn
