// Float32 memory on the GPU, shared by every CUDA kernel family (GEMM,
// convolution, RNN, optimizers).
//
// This header names no CUDA type, so host-only code (the pybind11 module,
// compiled by the C++ compiler) can use it without the CUDA headers. All
// work runs on the legacy default stream of the current device: launches
// are asynchronous, copies to the host wait for the work before them.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace fastnn {
namespace cuda {

// A CUDA runtime error. pybind11 turns it into RuntimeError.
class CudaError : public std::runtime_error {
 public:
  CudaError(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

// Throws CudaError with `what` and CUDA's own words when `status` (a
// cudaError_t) is not cudaSuccess. Clears the (non-sticky) error state.
void check(int status, const char* what);

// GPUs usable by this process; 0, never an error, when there is no driver
// or no device (e.g. cudaErrorInsufficientDriver on a machine without one).
int device_count();

// Why device_count() is 0: CUDA's message for the error cudaGetDeviceCount
// returned, or "" when it succeeded.
std::string init_error();

// Waits for all work queued on the current device; throws what it reports
// (an asynchronous kernel fault shows up here).
void synchronize();

// The calling thread's current device, and setting it (ValueError-style
// std::invalid_argument for an index out of range).
int current_device();
void set_device(int device);

// Streaming multiprocessors of the current device, cached per device.
int multiprocessor_count();

// Makes `device` the calling thread's current device for the scope and puts
// the previous one back at its end, so work on a buffer is queued (and
// memory allocated) on the device it lives on, whichever device the caller
// last selected.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

struct DeviceInfo {
  std::string name;
  int major = 0, minor = 0;  // compute capability
  int multiprocessors = 0;
  int64_t total_memory = 0;  // bytes
};
DeviceInfo device_info(int device);

// Owns one device allocation of numel(shape) float32 values, C order.
// Move-only: a copy would either alias or silently allocate. An empty
// shape means a scalar (one value); a zero extent means no allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Uninitialised contents; throws for negative extents, a size that
  // overflows 64 bits, or when the device is out of memory.
  explicit DeviceBuffer(std::vector<int64_t> shape);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  static DeviceBuffer zeros(std::vector<int64_t> shape);
  // A new buffer holding a copy of `src`, numel(shape) contiguous floats.
  static DeviceBuffer from_host(const float* src, std::vector<int64_t> shape);

  float* data() { return data_; }
  const float* data() const { return data_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t numel() const { return numel_; }
  int64_t nbytes() const { return numel_ * int64_t(sizeof(float)); }
  int device() const { return device_; }

  // Copies numel() floats; `n` must equal numel() (checked, so a caller's
  // size mistake is an exception rather than an overrun).
  void copy_from_host(const float* src, int64_t n);
  void copy_to_host(float* dst, int64_t n) const;
  void copy_from(const DeviceBuffer& src);  // same numel, device to device
  void fill_zero();

 private:
  void release() noexcept;

  float* data_ = nullptr;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  int device_ = 0;
};

// "(2, 3)", "(5,)", "()" as NumPy writes shapes, for messages.
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace cuda
}  // namespace fastnn
