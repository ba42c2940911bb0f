#include "cpu/workspace.h"

#include <cstdlib>
#include <new>

#include "fastnn/check.h"

namespace fastnn {

namespace {
struct Buffer {
  float* p = nullptr;
  int64_t cap = 0;
  ~Buffer() { std::free(p); }
};
thread_local Buffer t_buffers[int(Slot::count)];
}  // namespace

float* workspace(Slot slot, int64_t n) {
  Buffer& b = t_buffers[int(slot)];
  if (n > b.cap) {
    const int64_t bytes = checked_mul(n, int64_t(sizeof(float)));
    const int64_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, size_t(rounded));
    if (p == nullptr) throw std::bad_alloc();
    std::free(b.p);
    b.p = static_cast<float*>(p);
    b.cap = rounded / int64_t(sizeof(float));
  }
  return b.p;
}

}  // namespace fastnn
