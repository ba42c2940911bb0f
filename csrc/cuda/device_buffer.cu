// Device memory and the CUDA runtime facts the kernels need.
//
// Allocation goes through the stream-ordered allocator (cudaMallocAsync)
// where the device supports memory pools: a freed block goes back to the
// pool without the device-wide synchronisation that cudaFree implies, so a
// training loop that creates and drops temporaries every step does not
// stall the GPU. The pool keeps what it holds (release threshold raised),
// much as PyTorch's caching allocator does. Plain cudaMalloc otherwise.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <utility>

#include "cuda/device_buffer.h"
#include "fastnn/check.h"

namespace fastnn {
namespace cuda {

void check(int status, const char* what) {
  if (status == cudaSuccess) return;
  const auto e = static_cast<cudaError_t>(status);
  cudaGetLastError();  // a non-sticky error must not fail the next, unrelated call
  throw CudaError(status, str_cat(what, ": ", cudaGetErrorName(e), " (",
                                  cudaGetErrorString(e), ")"));
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

std::string init_error() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaSuccess) return n > 0 ? "" : "no CUDA device found";
  cudaGetLastError();
  return str_cat(cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

namespace {

constexpr int kMaxDevices = 64;

// Per-device facts that never change, looked up once. 0 means "not yet".
std::atomic<int> g_sm_count[kMaxDevices];
// 1: memory pools (set up), 2: plain cudaMalloc, 0: not yet decided.
std::atomic<int> g_alloc_mode[kMaxDevices];

bool use_pool(int device) {
  if (device < 0 || device >= kMaxDevices) return false;
  int mode = g_alloc_mode[device].load(std::memory_order_acquire);
  if (mode == 0) {
    int supported = 0;
    check(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device),
          "cudaDeviceGetAttribute(MemoryPoolsSupported)");
    mode = 2;
    if (supported) {
      cudaMemPool_t pool;
      check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool");
      // Without this the pool returns freed memory to the driver at every
      // synchronisation, and the next allocation pays for it again.
      uint64_t keep = std::numeric_limits<uint64_t>::max();
      check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep),
            "cudaMemPoolSetAttribute(ReleaseThreshold)");
      mode = 1;
    }
    g_alloc_mode[device].store(mode, std::memory_order_release);
  }
  return mode == 1;
}

float* allocate(int64_t bytes, int device, const std::vector<int64_t>& shape) {
  void* p = nullptr;
  cudaError_t e;
  if (use_pool(device)) {
    e = cudaMallocAsync(&p, size_t(bytes), cudaStreamLegacy);
    if (e == cudaErrorMemoryAllocation) {
      // The pool may hold freed blocks that are not yet reusable (still in
      // flight in stream order): wait for them, hand them back, retry once.
      cudaGetLastError();
      cudaDeviceSynchronize();
      cudaMemPool_t pool;
      if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
      e = cudaMallocAsync(&p, size_t(bytes), cudaStreamLegacy);
    }
  } else {
    e = cudaMalloc(&p, size_t(bytes));
  }
  if (e != cudaSuccess) {
    const std::string what = str_cat("allocating ", bytes, " bytes on the GPU for shape ",
                                     shape_str(shape));
    check(e, what.c_str());
  }
  return static_cast<float*>(p);
}

}  // namespace

int current_device() {
  int d = 0;
  check(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

void set_device(int device) {
  const int n = device_count();
  FASTNN_CHECK(device >= 0 && device < n, "device index ", device, " out of range: ", n,
               " CUDA device(s) found");
  check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceGuard::DeviceGuard(int device) : previous_(current_device()) {
  if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
}

// Never throws (it runs during unwinding): a failure to switch back leaves
// the device as it is.
DeviceGuard::~DeviceGuard() {
  int now = 0;
  if (cudaGetDevice(&now) != cudaSuccess ||
      (now != previous_ && cudaSetDevice(previous_) != cudaSuccess))
    cudaGetLastError();  // not left behind to fail the next, unrelated call
}

int multiprocessor_count() {
  const int d = current_device();
  if (d < 0 || d >= kMaxDevices) return device_info(d).multiprocessors;
  int n = g_sm_count[d].load(std::memory_order_relaxed);
  if (n == 0) {
    check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, d),
          "cudaDeviceGetAttribute(MultiProcessorCount)");
    g_sm_count[d].store(n, std::memory_order_relaxed);
  }
  return n;
}

DeviceInfo device_info(int device) {
  const int n = device_count();
  FASTNN_CHECK(device >= 0 && device < n, "device index ", device, " out of range: ", n,
               " CUDA device(s) found");
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  DeviceInfo info;
  info.name = prop.name;
  info.major = prop.major;
  info.minor = prop.minor;
  info.multiprocessors = prop.multiProcessorCount;
  info.total_memory = int64_t(prop.totalGlobalMem);
  return info;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + (shape.size() == 1 ? ",)" : ")");
}

// ------------------------------------------------------------ DeviceBuffer

DeviceBuffer::DeviceBuffer(std::vector<int64_t> shape) : shape_(std::move(shape)) {
  int64_t n = 1;
  for (int64_t d : shape_) {
    FASTNN_CHECK(d >= 0, "device array shape ", shape_str(shape_), " has a negative extent");
    n = checked_mul(n, d);
  }
  // bytes must fit in 64 bits too
  checked_mul(n, int64_t(sizeof(float)));
  numel_ = n;
  device_ = current_device();
  if (numel_ > 0) data_ = allocate(nbytes(), device_, shape_);
}

DeviceBuffer::~DeviceBuffer() { release(); }

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      shape_(std::move(other.shape_)),
      numel_(std::exchange(other.numel_, 0)),
      device_(other.device_) {
  other.shape_.clear();
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    shape_ = std::move(other.shape_);
    other.shape_.clear();
    numel_ = std::exchange(other.numel_, 0);
    device_ = other.device_;
  }
  return *this;
}

// Never throws: it runs in destructors, also at interpreter exit when the
// CUDA runtime may already be shutting down (its errors are then ignored).
void DeviceBuffer::release() noexcept {
  if (data_ == nullptr) return;
  try {
    DeviceGuard guard(device_);
    const bool pooled = device_ >= 0 && device_ < kMaxDevices &&
                        g_alloc_mode[device_].load(std::memory_order_acquire) == 1;
    if (pooled)
      cudaFreeAsync(data_, cudaStreamLegacy);
    else
      cudaFree(data_);
  } catch (...) {
  }
  cudaGetLastError();
  data_ = nullptr;
}

DeviceBuffer DeviceBuffer::zeros(std::vector<int64_t> shape) {
  DeviceBuffer b(std::move(shape));
  b.fill_zero();
  return b;
}

DeviceBuffer DeviceBuffer::from_host(const float* src, std::vector<int64_t> shape) {
  DeviceBuffer b(std::move(shape));
  b.copy_from_host(src, b.numel());
  return b;
}

void DeviceBuffer::copy_from_host(const float* src, int64_t n) {
  FASTNN_CHECK(n == numel_, "copy to the GPU: ", n, " values for a device array of shape ",
               shape_str(shape_));
  if (n == 0) return;
  DeviceGuard guard(device_);
  check(cudaMemcpy(data_, src, size_t(nbytes()), cudaMemcpyHostToDevice),
        "cudaMemcpy host to device");
}

void DeviceBuffer::copy_to_host(float* dst, int64_t n) const {
  FASTNN_CHECK(n == numel_, "copy from the GPU: room for ", n,
               " values, device array of shape ", shape_str(shape_));
  if (n == 0) return;
  DeviceGuard guard(device_);
  // On the legacy stream, so it waits for the kernels that wrote the data.
  check(cudaMemcpy(dst, data_, size_t(nbytes()), cudaMemcpyDeviceToHost),
        "cudaMemcpy device to host");
}

void DeviceBuffer::copy_from(const DeviceBuffer& src) {
  FASTNN_CHECK(src.numel_ == numel_, "device copy: source of shape ", shape_str(src.shape_),
               " into a device array of shape ", shape_str(shape_));
  if (numel_ == 0) return;
  DeviceGuard guard(device_);
  check(cudaMemcpyAsync(data_, src.data_, size_t(nbytes()), cudaMemcpyDeviceToDevice,
                        cudaStreamLegacy),
        "cudaMemcpy device to device");
}

void DeviceBuffer::fill_zero() {
  if (numel_ == 0) return;
  DeviceGuard guard(device_);
  check(cudaMemsetAsync(data_, 0, size_t(nbytes()), cudaStreamLegacy), "cudaMemset");
}

}  // namespace cuda
}  // namespace fastnn
