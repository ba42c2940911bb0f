// Checks that throw. pybind11 turns std::invalid_argument into ValueError,
// so a bad argument never reaches a kernel and nothing aborts the process.
#pragma once
#include <cstdint>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>

namespace fastnn {

template <class... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

#define FASTNN_CHECK(cond, ...)                                        \
  do {                                                                 \
    if (!(cond)) throw std::invalid_argument(::fastnn::str_cat(__VA_ARGS__)); \
  } while (0)

// a * b for non-negative sizes, throwing instead of overflowing.
inline int64_t checked_mul(int64_t a, int64_t b) {
  FASTNN_CHECK(a >= 0 && b >= 0, "negative size ", a, " x ", b);
  if (a != 0 && b > std::numeric_limits<int64_t>::max() / a)
    throw std::overflow_error(str_cat("size ", a, " x ", b, " overflows 64 bits"));
  return a * b;
}

}  // namespace fastnn
