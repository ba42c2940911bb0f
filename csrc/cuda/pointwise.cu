// Array-level kernels on the GPU (see pointwise.h).
//
// Every elementwise op is a small functor run by one grid-stride kernel
// (map_kernel), with 64-bit indices throughout. Broadcasting, permutation and
// reductions address their operands through Strided views built on the host:
// extents plus per-operand strides, with extent-1 dims dropped and
// neighbours that are contiguous for every operand merged. The common cases
// (equal shapes, a scalar operand, reducing trailing axes) then index with
// one multiply and no division.
//
// Reductions never use atomics: each output is combined by a tree whose
// shape depends only on the array shapes (a block per output, or per 32
// outputs when the kept values are the contiguous ones), so results repeat
// bit for bit. A long reduction with few outputs is split into chunks whose
// partial results a second pass combines, so a full sum still uses the
// whole GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cuda/pointwise.h"
#include "fastnn/check.h"
#include "fastnn/pointwise_math.h"

namespace fastnn {
namespace cuda {

namespace {

namespace pm = ::fastnn::pointwise_math;

constexpr int kMaxDims = 8;              // of a Strided view, after merging
constexpr int kThreads = 256;            // elementwise kernels
constexpr int kMaxRowThreads = 512;      // a block per row
constexpr int kCols = 32;                // outputs per block when reducing columns
constexpr int kMaxColRows = 16;          // threads per column
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride loops cover the rest

// ------------------------------------------------------------ op names

template <class Op>
struct Named {
  const char* name;
  Op op;
};

const Named<UnaryOp> kUnaryOps[] = {
    {"neg", UnaryOp::neg},         {"exp", UnaryOp::exp},   {"log", UnaryOp::log},
    {"sqrt", UnaryOp::sqrt},       {"relu", UnaryOp::relu}, {"sigmoid", UnaryOp::sigmoid},
    {"tanh", UnaryOp::tanh},       {"abs", UnaryOp::abs}};
const Named<UnaryOp> kUnaryBackwardOps[] = {{"relu", UnaryOp::relu},
                                            {"sigmoid", UnaryOp::sigmoid},
                                            {"tanh", UnaryOp::tanh},
                                            {"exp", UnaryOp::exp},
                                            {"sqrt", UnaryOp::sqrt}};
const Named<BinaryOp> kBinaryOps[] = {
    {"add", BinaryOp::add},         {"sub", BinaryOp::sub},         {"mul", BinaryOp::mul},
    {"div", BinaryOp::div},         {"pow", BinaryOp::pow},         {"maximum", BinaryOp::maximum},
    {"minimum", BinaryOp::minimum}, {"eq", BinaryOp::eq},           {"gt", BinaryOp::gt},
    {"ge", BinaryOp::ge},           {"lt", BinaryOp::lt},           {"le", BinaryOp::le}};
const Named<ScalarOp> kScalarOps[] = {
    {"add", {BinaryOp::add, false}},         {"sub", {BinaryOp::sub, false}},
    {"mul", {BinaryOp::mul, false}},         {"div", {BinaryOp::div, false}},
    {"pow", {BinaryOp::pow, false}},         {"rsub", {BinaryOp::sub, true}},
    {"rdiv", {BinaryOp::div, true}},         {"rpow", {BinaryOp::pow, true}},
    {"maximum", {BinaryOp::maximum, false}}, {"minimum", {BinaryOp::minimum, false}}};

template <class Op, size_t N>
Op parse(const Named<Op> (&table)[N], const std::string& name, const char* fn) {
  std::string known;
  for (const Named<Op>& e : table) {
    if (name == e.name) return e.op;
    known += (known.empty() ? "" : ", ") + std::string(e.name);
  }
  throw std::invalid_argument(
      str_cat(fn, ": argument 'op' must be one of ", known, ", got '", name, "'"));
}

template <class Op, size_t N>
const char* name_in(const Named<Op> (&table)[N], Op op) {
  for (const Named<Op>& e : table)
    if (e.op == op) return e.name;
  return nullptr;
}

// ------------------------------------------------------------ scalar maths

__device__ __forceinline__ float apply(UnaryOp op, float x) {
  switch (op) {
    case UnaryOp::neg: return -x;
    case UnaryOp::exp: return expf(x);
    case UnaryOp::log: return logf(x);
    case UnaryOp::sqrt: return sqrtf(x);
    case UnaryOp::relu: return x < 0.0f ? 0.0f : x;  // NaN passes, as in NumPy
    case UnaryOp::sigmoid: return pm::sigmoid(x);
    case UnaryOp::tanh: return tanhf(x);
    case UnaryOp::abs: return fabsf(x);
  }
  return x;
}

// dy * f'(x) from y = f(x); the CPU kernels' formulas, in their order.
__device__ __forceinline__ float apply_backward(UnaryOp op, float y, float dy) {
  switch (op) {
    case UnaryOp::relu: return y > 0.0f ? dy : 0.0f;
    case UnaryOp::sigmoid: return dy * y * (1.0f - y);
    case UnaryOp::tanh: return dy * (1.0f - y * y);
    case UnaryOp::exp: return dy * y;
    case UnaryOp::sqrt: return dy * 0.5f / y;
    default: return 0.0f;  // unreachable: unary_backward admits only the above
  }
}

__device__ __forceinline__ float apply(BinaryOp op, float a, float b) {
  switch (op) {
    case BinaryOp::add: return a + b;
    case BinaryOp::sub: return a - b;
    case BinaryOp::mul: return a * b;
    case BinaryOp::div: return a / b;
    case BinaryOp::pow: return powf(a, b);
    case BinaryOp::maximum: return pm::nan_max(a, b);
    case BinaryOp::minimum: return pm::nan_min(a, b);
    case BinaryOp::eq: return a == b ? 1.0f : 0.0f;
    case BinaryOp::gt: return a > b ? 1.0f : 0.0f;
    case BinaryOp::ge: return a >= b ? 1.0f : 0.0f;
    case BinaryOp::lt: return a < b ? 1.0f : 0.0f;
    case BinaryOp::le: return a <= b ? 1.0f : 0.0f;
  }
  return 0.0f;
}

struct SumOp {
  static constexpr const char* kName = "sum";
  static constexpr bool kHasIdentity = true;
  __device__ static float identity() { return 0.0f; }
  __device__ static float combine(float a, float b) { return a + b; }
};

struct MaxOp {
  static constexpr const char* kName = "max";
  static constexpr bool kHasIdentity = false;  // max of nothing is an error, as in NumPy
  __device__ static float identity() { return -INFINITY; }
  __device__ static float combine(float a, float b) { return pm::nan_max(a, b); }
};

// ------------------------------------------------------------ strided views

// Up to kMaxDims dims of extents `size`, and for each of K operands its
// strides in elements: element i (C order over `size`) of the view is
// element offsets(i)[k] of operand k.
template <int K>
struct Strided {
  int ndim;
  int64_t size[kMaxDims];
  int64_t stride[K][kMaxDims];

  __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = ndim - 1; d > 0; --d) {
      const int64_t q = i / size[d], c = i - q * size[d];
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += c * stride[k][d];
      i = q;
    }
    if (ndim > 0) {
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += i * stride[k][0];
    }
  }

  __device__ __forceinline__ int64_t offset(int64_t i) const {
    static_assert(K == 1, "one operand");
    int64_t off[1];
    offsets(i, off);
    return off[0];
  }
};

// C-order strides of `shape`. Only for shapes of a non-empty array, whose
// partial products cannot overflow.
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size());
  int64_t step = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    s[d] = step;
    step *= shape[d];
  }
  return s;
}

// The view of `size` (no extent 0) with operand k's strides strides[k],
// simplified: extent-1 dims dropped, a dim merged into its outer neighbour
// when every operand steps over the pair contiguously. what() names the
// arrays for the error when more than kMaxDims dims remain.
template <int K, class What>
Strided<K> make_view(const std::vector<int64_t>& size,
                     const std::array<std::vector<int64_t>, K>& strides, const What& what) {
  std::vector<int64_t> sz;
  std::array<std::vector<int64_t>, K> st;
  for (size_t d = 0; d < size.size(); ++d) {
    if (size[d] == 1) continue;
    bool merge = !sz.empty();
    for (int k = 0; k < K && merge; ++k) merge = st[k].back() == strides[k][d] * size[d];
    if (merge) {
      sz.back() *= size[d];
      for (int k = 0; k < K; ++k) st[k].back() = strides[k][d];
    } else {
      sz.push_back(size[d]);
      for (int k = 0; k < K; ++k) st[k].push_back(strides[k][d]);
    }
  }
  FASTNN_CHECK(sz.size() <= size_t(kMaxDims), what(), " needs ", sz.size(),
               " dimensions that do not merge; at most ", kMaxDims, " are supported");
  Strided<K> v{};
  v.ndim = int(sz.size());
  for (size_t d = 0; d < sz.size(); ++d) {
    v.size[d] = sz[d];
    for (int k = 0; k < K; ++k) v.stride[k][d] = st[k][d];
  }
  return v;
}

// ------------------------------------------------------------ elementwise

// f(i) for every element i of an (n,) array (f holds the pointers).
template <class F>
__global__ void map_kernel(int64_t n, F f) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    f(i);
}

unsigned blocks_for(int64_t work_items, int64_t per_block) {
  return unsigned(std::min<int64_t>((work_items + per_block - 1) / per_block, kMaxBlocks));
}

// Throws what the launch just queued reported (a bad configuration); the
// message is only formatted then.
void check_launch(const char* fn) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) check(e, str_cat(fn, ": kernel launch").c_str());
}

// f(i) for i in [0, n), queued on the default stream.
template <class F>
void launch_map(int64_t n, const F& f, const char* fn) {
  if (n == 0) return;
  map_kernel<<<blocks_for(n, kThreads), kThreads, 0, cudaStreamLegacy>>>(n, f);
  check_launch(fn);
}

struct UnaryMap {
  UnaryOp op;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = apply(op, x[i]); }
};

struct UnaryBackwardMap {
  UnaryOp op;
  const float* y;
  const float* dy;
  float* dx;
  __device__ void operator()(int64_t i) const { dx[i] = apply_backward(op, y[i], dy[i]); }
};

// pointwise_math.h's activations, by their enum
__device__ __forceinline__ float activation_value(pm::Activation a, float x, float p, bool grad) {
  switch (a) {
#define FASTNN_ACTIVATION_CASE(name, param, value) \
  case pm::Activation::name:                      \
    return grad ? pm::name##_grad<float, pm::ActivationMath>(x, p) : pm::name<float, pm::ActivationMath>(x, p);
    FASTNN_ACTIVATIONS(FASTNN_ACTIVATION_CASE)
#undef FASTNN_ACTIVATION_CASE
    default: return x;  // unreachable: the enum's values are the list's
  }
}

// y = f(x), or with dy: dx = dy * f'(x)
struct ActivationMap {
  pm::Activation a;
  float p;
  const float* x;
  const float* dy;  // null: the forward
  float* y;
  __device__ void operator()(int64_t i) const {
    y[i] = dy ? dy[i] * activation_value(a, x[i], p, true) : activation_value(a, x[i], p, false);
  }
};

struct BinaryMap {
  BinaryOp op;
  const float* a;
  const float* b;
  float* out;
  Strided<2> view;  // out's shape; a's and b's broadcast strides
  __device__ void operator()(int64_t i) const {
    int64_t off[2];
    view.offsets(i, off);
    out[i] = apply(op, a[off[0]], b[off[1]]);
  }
};

struct ScalarMap {
  ScalarOp op;
  const float* x;
  float s;
  float* out;
  __device__ void operator()(int64_t i) const {
    out[i] = op.reversed ? apply(op.op, s, x[i]) : apply(op.op, x[i], s);
  }
};

// out[i] = x[view.offset(i)]: broadcast_to and permute
struct GatherMap {
  const float* x;
  float* out;
  Strided<1> view;
  __device__ void operator()(int64_t i) const { out[i] = x[view.offset(i)]; }
};

struct FillMap {
  float* x;
  float value;
  __device__ void operator()(int64_t i) const { x[i] = value; }
};

struct AxpyMap {
  float alpha;
  const float* x;
  float* y;
  __device__ void operator()(int64_t i) const { y[i] = y[i] + alpha * x[i]; }
};

// prob, dx: (rows, cols). As the CPU: prob * scale, minus scale at the label.
// __fmul_rn keeps the product rounded on its own (never fused with the
// subtraction), as the CPU's separate steps round it.
struct CrossEntropyBackwardMap {
  const float* prob;
  const int64_t* labels;
  int64_t cols;
  float scale;
  float* dx;
  __device__ void operator()(int64_t i) const {
    const int64_t r = i / cols;
    const float v = __fmul_rn(prob[i], scale);
    dx[i] = i - r * cols == labels[r] ? v - scale : v;
  }
};

struct DropoutMap {
  const float* x;
  float* y;
  uint32_t threshold;
  float scale;
  uint64_t key;
  __device__ void operator()(int64_t i) const {
    y[i] = pm::dropout_bits(key, i) >= threshold ? x[i] * scale : 0.0f;
  }
};

// ------------------------------------------------------------ block reductions

// The values of the block's threads combined by a fixed tree; every thread
// gets the result. 1-D blocks of a power of two <= kMaxRowThreads threads,
// all of which must call it; s: kMaxRowThreads floats of shared memory.
template <class Op>
__device__ float block_reduce(float v, float* s) {
  const unsigned t = threadIdx.x;
  s[t] = v;
  __syncthreads();
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (t < w) s[t] = Op::combine(s[t], s[t + w]);
    __syncthreads();
  }
  const float result = s[0];
  __syncthreads();  // s may be written again by the next call
  return result;
}

// One block per item; item = o * splits + p reduces values [p * chunk,
// min(length, (p + 1) * chunk)) of output o, which lie at
// x[kept.offset(o) + red.offset(r)], into out[item]. Used when the reduced
// values are the contiguous ones (the threads stride along them).
template <class Op>
__global__ void reduce_rows(const float* __restrict__ x, Strided<1> kept, Strided<1> red,
                            int64_t items, int64_t splits, int64_t length, int64_t chunk,
                            float* __restrict__ out) {
  __shared__ float s[kMaxRowThreads];
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t o = item / splits, begin = (item - o * splits) * chunk;
    const int64_t end = length - begin < chunk ? length : begin + chunk;
    const float* xo = x + kept.offset(o);
    float acc = Op::identity();
    for (int64_t r = begin + threadIdx.x; r < end; r += blockDim.x)
      acc = Op::combine(acc, xo[red.offset(r)]);
    acc = block_reduce<Op>(acc, s);
    if (threadIdx.x == 0) out[item] = acc;
  }
}

// One block per item; item = p * tiles + t reduces the values [p * chunk,
// min(length, (p + 1) * chunk)) of outputs t * kCols .. t * kCols + kCols - 1
// (threadIdx.x picks the output, threadIdx.y strides along the values) into
// out[p * outputs + o]. Used when the kept values are the contiguous ones,
// so a warp reads consecutive addresses.
template <class Op>
__global__ void reduce_cols(const float* __restrict__ x, Strided<1> kept, Strided<1> red,
                            int64_t outputs, int64_t tiles, int64_t splits, int64_t length,
                            int64_t chunk, float* __restrict__ out) {
  __shared__ float s[kMaxColRows][kCols];
  const unsigned tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t item = blockIdx.x; item < tiles * splits; item += gridDim.x) {
    const int64_t p = item / tiles, o = (item - p * tiles) * kCols + tx;
    const int64_t begin = p * chunk, end = length - begin < chunk ? length : begin + chunk;
    float acc = Op::identity();
    if (o < outputs) {
      const float* xo = x + kept.offset(o);
      for (int64_t r = begin + ty; r < end; r += blockDim.y)
        acc = Op::combine(acc, xo[red.offset(r)]);
    }
    s[ty][tx] = acc;
    __syncthreads();
    for (unsigned w = blockDim.y / 2; w > 0; w /= 2) {
      if (ty < w) s[ty][tx] = Op::combine(s[ty][tx], s[ty + w][tx]);
      __syncthreads();
    }
    if (ty == 0 && o < outputs) out[p * outputs + o] = s[0][tx];
    __syncthreads();
  }
}

// The smallest power of two >= n, clamped to [lo, hi] (powers of two).
int pow2_clamp(int64_t n, int lo, int hi) {
  int p = lo;
  while (p < hi && p < n) p *= 2;
  return p;
}

// A block reduces at least this many values before splitting a reduction
// pays for the second pass...
constexpr int64_t kMinChunk = 4096;
// ...and splitting stops at this many blocks' worth of work (enough for
// the largest GPUs).
constexpr int64_t kTargetItems = 2048;

// out[o] = the values x[kept.offset(o) + red.offset(r)], r in [0, length),
// combined, for o in [0, outputs); outputs > 0, length > 1. The launch
// shapes depend on (outputs, length, layout) alone: so does the order of
// the combination.
template <class Op>
void run_reduction(const float* x, const Strided<1>& kept, const Strided<1>& red,
                   int64_t outputs, int64_t length, float* out) {
  const bool by_rows = red.ndim > 0 && red.stride[0][red.ndim - 1] == 1;
  const int64_t units = by_rows ? outputs : (outputs + kCols - 1) / kCols;
  int64_t splits = 1;
  if (length > 2 * kMinChunk && units < kTargetItems)
    splits = std::min((length + kMinChunk - 1) / kMinChunk, kTargetItems / units);
  const int64_t chunk = (length + splits - 1) / splits;
  splits = (length + chunk - 1) / chunk;  // no empty chunk

  DeviceBuffer partial;
  float* dst = out;
  if (splits > 1) {
    partial = DeviceBuffer(std::vector<int64_t>{outputs * splits});
    dst = partial.data();
  }
  const int64_t items = units * splits;
  if (by_rows) {
    const int threads = pow2_clamp(chunk, 32, kThreads);
    reduce_rows<Op><<<blocks_for(items, 1), threads, 0, cudaStreamLegacy>>>(
        x, kept, red, items, splits, length, chunk, dst);
  } else {
    const dim3 block(kCols, pow2_clamp(chunk, 1, kMaxColRows));
    reduce_cols<Op><<<blocks_for(items, 1), block, 0, cudaStreamLegacy>>>(
        x, kept, red, outputs, units, splits, length, chunk, dst);
  }
  check_launch(Op::kName);
  if (splits == 1) return;

  // The partials: (outputs, splits) from rows, (splits, outputs) from columns.
  Strided<1> kept2{}, red2{};
  kept2.ndim = red2.ndim = 1;
  kept2.size[0] = outputs;
  red2.size[0] = splits;
  kept2.stride[0][0] = by_rows ? splits : 1;
  red2.stride[0][0] = by_rows ? 1 : outputs;
  run_reduction<Op>(partial.data(), kept2, red2, outputs, splits, out);
  // partial is freed in stream order, after the kernels that read it
}

std::string list_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

template <class Op>
DeviceBuffer reduce(const DeviceBuffer& x, const std::vector<int64_t>& axes, bool keepdims) {
  const char* fn = Op::kName;
  const int nd = x.ndim();
  for (size_t i = 0; i < axes.size(); ++i)
    FASTNN_CHECK(axes[i] >= 0 && axes[i] < nd && (i == 0 || axes[i] > axes[i - 1]), fn,
                 ": argument 'axes' must hold sorted, distinct axes in [0, ", nd,
                 ") for 'x' of shape ", shape_str(x.shape()), ", got ", list_str(axes));
  std::vector<bool> reduced(size_t(nd), false);
  for (int64_t a : axes) reduced[size_t(a)] = true;

  std::vector<int64_t> out_shape, kept_size, red_size;
  bool nothing_to_reduce = false;  // a reduced extent is 0
  for (int d = 0; d < nd; ++d) {
    const int64_t e = x.shape()[size_t(d)];
    if (reduced[size_t(d)]) {
      red_size.push_back(e);
      nothing_to_reduce = nothing_to_reduce || e == 0;
      if (keepdims) out_shape.push_back(1);
    } else {
      kept_size.push_back(e);
      out_shape.push_back(e);
    }
  }
  FASTNN_CHECK(Op::kHasIdentity || !nothing_to_reduce, fn, ": axes ", list_str(axes),
               " of 'x' of shape ", shape_str(x.shape()), " hold no elements, and ", fn,
               " of nothing is undefined");

  DeviceGuard guard(x.device());
  DeviceBuffer out(out_shape);
  if (out.numel() == 0) return out;
  if (nothing_to_reduce) {  // a sum of nothing
    out.fill_zero();
    return out;
  }
  // x is not empty now, so neither product below can overflow
  int64_t length = 1;
  for (int64_t e : red_size) length *= e;
  if (length == 1) {  // nothing to combine: the same values in the same order
    out.copy_from(x);
    return out;
  }
  const std::vector<int64_t> strides = contiguous_strides(x.shape());
  std::vector<int64_t> kept_stride, red_stride;
  for (int d = 0; d < nd; ++d)
    (reduced[size_t(d)] ? red_stride : kept_stride).push_back(strides[size_t(d)]);
  const auto what = [&] {
    return str_cat(fn, " over axes ", list_str(axes), " of shape ", shape_str(x.shape()));
  };
  const Strided<1> kept = make_view<1>(kept_size, {kept_stride}, what);
  const Strided<1> red = make_view<1>(red_size, {red_stride}, what);
  run_reduction<Op>(x.data(), kept, red, out.numel(), length, out.data());
  return out;
}

// ------------------------------------------------------------ rows

// One row of a block-per-row kernel: writes e[j] = exp(x[j] - max) (each
// thread its own columns) and returns {max, sum of e} to every thread. All
// threads of the block must call it (it synchronises).
__device__ float2 row_exp(int64_t cols, const float* __restrict__ x, float* __restrict__ e,
                          float* s) {
  float m = MaxOp::identity();
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) m = MaxOp::combine(m, x[j]);
  m = block_reduce<MaxOp>(m, s);
  float sum = 0.0f;
  for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = expf(x[j] - m);
    e[j] = v;
    sum += v;
  }
  return make_float2(m, block_reduce<SumOp>(sum, s));
}

// x, y: (rows, cols), a block per row; blockDim.x a power of two <=
// kMaxRowThreads. y = softmax(x) or log_softmax(x), the row maximum
// subtracted first.
__global__ void softmax_rows(bool take_log, int64_t rows, int64_t cols, const float* __restrict__ x,
                             float* __restrict__ y) {
  __shared__ float s[kMaxRowThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float2 ms = row_exp(cols, xr, yr, s);
    if (take_log) {
      // (x - max) - log(sum), not x - (max + log(sum)): max + log(sum) loses
      // log(sum) entirely where the logits are huge
      const float log_sum = logf(ms.y);
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] = (xr[j] - ms.x) - log_sum;
    } else {
      const float inv = 1.0f / ms.y;  // each thread rescales what it wrote
      for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) yr[j] *= inv;
    }
  }
}

// y, dy, dx: (rows, cols), block per row as above.
// softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy).
__global__ void softmax_backward_rows(bool take_log, int64_t rows, int64_t cols,
                                      const float* __restrict__ y, const float* __restrict__ dy,
                                      float* __restrict__ dx) {
  __shared__ float s[kMaxRowThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const int64_t base = r * cols;
    float d = 0.0f;
    for (int64_t j = base + threadIdx.x; j < base + cols; j += blockDim.x)
      d += take_log ? dy[j] : dy[j] * y[j];
    d = block_reduce<SumOp>(d, s);
    for (int64_t j = base + threadIdx.x; j < base + cols; j += blockDim.x)
      dx[j] = take_log ? dy[j] - expf(y[j]) * d : y[j] * (dy[j] - d);
  }
}

// x, prob: (rows, cols), labels, loss: (rows,); block per row as above.
// prob = softmax(x) by rows; loss[r] = max + log(sum exp(x - max)) - x[label]
// (log-sum-exp minus the label's logit: exact for extreme logits, where
// log(prob) would be log(0)), in double as the CPU keeps it.
__global__ void cross_entropy_rows(int64_t rows, int64_t cols, const float* __restrict__ x,
                                   const int64_t* __restrict__ labels, float* __restrict__ prob,
                                   double* __restrict__ loss) {
  __shared__ float s[kMaxRowThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * cols;
    float* pr = prob + r * cols;
    const float2 ms = row_exp(cols, xr, pr, s);
    const float inv = 1.0f / ms.y;
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) pr[j] *= inv;
    if (threadIdx.x == 0) loss[r] = double(ms.x) + double(logf(ms.y)) - double(xr[labels[r]]);
  }
}

// *out = the sum of v[0 .. n), by one block of kThreads threads in a fixed order.
__global__ void sum_doubles(int64_t n, const double* __restrict__ v, double* __restrict__ out) {
  __shared__ double s[kThreads];
  const unsigned t = threadIdx.x;
  double acc = 0.0;
  for (int64_t i = t; i < n; i += kThreads) acc += v[i];
  s[t] = acc;
  __syncthreads();
  for (unsigned w = kThreads / 2; w > 0; w /= 2) {
    if (t < w) s[t] += s[t + w];
    __syncthreads();
  }
  if (t == 0) *out = s[0];
}

// ------------------------------------------------------------ host helpers

void check_same_device(const char* fn, const DeviceBuffer& a, const char* name_a,
                       const DeviceBuffer& b, const char* name_b) {
  FASTNN_CHECK(a.device() == b.device(), fn, ": arguments '", name_a, "' and '", name_b,
               "' are on different devices (cuda:", a.device(), " and cuda:", b.device(), ")");
}

void check_same_shape(const char* fn, const DeviceBuffer& a, const char* name_a,
                      const DeviceBuffer& b, const char* name_b) {
  FASTNN_CHECK(a.shape() == b.shape(), fn, ": arguments '", name_a, "' and '", name_b,
               "' must have the same shape, got ", shape_str(a.shape()), " and ",
               shape_str(b.shape()));
  check_same_device(fn, a, name_a, b, name_b);
}

// (rows, cols) of x seen as rows of its last axis.
std::pair<int64_t, int64_t> rows_cols(const DeviceBuffer& x, const char* fn, const char* name) {
  FASTNN_CHECK(x.ndim() >= 1, fn, ": argument '", name,
               "' must have at least 1 dimension, got a scalar");
  const int64_t cols = x.shape().back();
  return {cols == 0 ? 0 : x.numel() / cols, cols};
}

// Threads of a block per row.
int row_threads(int64_t cols) { return pow2_clamp(cols, 32, kMaxRowThreads); }

// Device memory for n values of T (labels, per-row losses). A DeviceBuffer
// owns untyped device memory (cudaMalloc's alignment, 256 bytes), so it
// holds any T whose size is a multiple of a float's.
template <class T>
DeviceBuffer storage_for(int64_t n) {
  static_assert(sizeof(T) % sizeof(float) == 0, "whole floats");
  return DeviceBuffer(std::vector<int64_t>{checked_mul(n, int64_t(sizeof(T) / sizeof(float)))});
}

template <class T>
T* as(DeviceBuffer& b) {
  return reinterpret_cast<T*>(b.data());
}

// x (logits or prob) must be (rows, cols) and the n labels class indices in
// [0, cols): checked on the host, as the CPU does, naming the first bad one.
void check_labels(const char* fn, const DeviceBuffer& x, const char* name, const int64_t* labels,
                  int64_t n) {
  FASTNN_CHECK(x.ndim() == 2, fn, ": argument '", name,
               "' must be 2-D (batch, classes), got shape ", shape_str(x.shape()));
  const int64_t rows = x.shape()[0], cols = x.shape()[1];
  FASTNN_CHECK(n == rows, fn, ": argument 'labels' must have shape (", rows, ",), got (", n,
               ",)");
  for (int64_t r = 0; r < rows; ++r)
    FASTNN_CHECK(labels[r] >= 0 && labels[r] < cols, fn,
                 ": argument 'labels' must hold class indices in [0, ", cols, "), got ",
                 labels[r], " at position ", r);
}

// The checked labels, copied to the current device.
DeviceBuffer labels_on_device(const char* fn, const int64_t* labels, int64_t rows) {
  DeviceBuffer d = storage_for<int64_t>(rows);
  if (rows == 0) return d;
  const cudaError_t e =
      cudaMemcpy(as<int64_t>(d), labels, size_t(rows) * sizeof(int64_t), cudaMemcpyHostToDevice);
  if (e != cudaSuccess) check(e, str_cat(fn, ": copying the labels to the GPU").c_str());
  return d;
}

// The broadcast strides of an operand of `shape` in an output of nd dims
// (shape aligned to the right; 0 where it is repeated).
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& shape, size_t nd) {
  std::vector<int64_t> s(nd, 0);
  const std::vector<int64_t> own = contiguous_strides(shape);
  const size_t lead = nd - shape.size();
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1) s[lead + d] = own[d];
  return s;
}

DeviceBuffer softmax_forward(const DeviceBuffer& x, bool take_log) {
  const char* fn = take_log ? "log_softmax" : "softmax";
  const auto [rows, cols] = rows_cols(x, fn, "x");
  DeviceGuard guard(x.device());
  DeviceBuffer y(x.shape());
  if (rows == 0) return y;
  softmax_rows<<<blocks_for(rows, 1), row_threads(cols), 0, cudaStreamLegacy>>>(
      take_log, rows, cols, x.data(), y.data());
  check_launch(fn);
  return y;
}

DeviceBuffer softmax_backward_impl(const DeviceBuffer& y, const DeviceBuffer& dy, bool take_log) {
  const char* fn = take_log ? "log_softmax_backward" : "softmax_backward";
  check_same_shape(fn, y, "y", dy, "dy");
  const auto [rows, cols] = rows_cols(y, fn, "y");
  DeviceGuard guard(y.device());
  DeviceBuffer dx(y.shape());
  if (rows == 0) return dx;
  softmax_backward_rows<<<blocks_for(rows, 1), row_threads(cols), 0, cudaStreamLegacy>>>(
      take_log, rows, cols, y.data(), dy.data(), dx.data());
  check_launch(fn);
  return dx;
}

}  // namespace

// ------------------------------------------------------------ public entries

UnaryOp unary_op(const std::string& name) { return parse(kUnaryOps, name, "unary"); }
UnaryOp unary_backward_op(const std::string& name) {
  return parse(kUnaryBackwardOps, name, "unary_backward");
}
BinaryOp binary_op(const std::string& name) { return parse(kBinaryOps, name, "binary"); }
ScalarOp scalar_op(const std::string& name) { return parse(kScalarOps, name, "scalar"); }

DeviceBuffer unary(UnaryOp op, const DeviceBuffer& x) {
  DeviceGuard guard(x.device());
  DeviceBuffer y(x.shape());
  launch_map(x.numel(), UnaryMap{op, x.data(), y.data()}, "unary");
  return y;
}

DeviceBuffer unary_backward(UnaryOp op, const DeviceBuffer& y, const DeviceBuffer& dy) {
  const char* fn = "unary_backward";
  FASTNN_CHECK(name_in(kUnaryBackwardOps, op) != nullptr, fn, ": op '", name_in(kUnaryOps, op),
               "' has no backward through its output");
  check_same_shape(fn, y, "y", dy, "dy");
  DeviceGuard guard(y.device());
  DeviceBuffer dx(y.shape());
  launch_map(y.numel(), UnaryBackwardMap{op, y.data(), dy.data(), dx.data()}, fn);
  return dx;
}

DeviceBuffer activation(Activation a, const DeviceBuffer& x, float param) {
  DeviceGuard guard(x.device());
  DeviceBuffer y(x.shape());
  launch_map(x.numel(), ActivationMap{a, param, x.data(), nullptr, y.data()}, "activation");
  return y;
}

DeviceBuffer activation_backward(Activation a, const DeviceBuffer& x, const DeviceBuffer& dy,
                                 float param) {
  const char* fn = "activation_backward";
  check_same_shape(fn, x, "x", dy, "dy");
  DeviceGuard guard(x.device());
  DeviceBuffer dx(x.shape());
  launch_map(x.numel(), ActivationMap{a, param, x.data(), dy.data(), dx.data()}, fn);
  return dx;
}

DeviceBuffer binary(BinaryOp op, const DeviceBuffer& a, const DeviceBuffer& b) {
  const char* fn = "binary";
  check_same_device(fn, a, "a", b, "b");
  const std::vector<int64_t>& sa = a.shape();
  const std::vector<int64_t>& sb = b.shape();
  const size_t nd = std::max(sa.size(), sb.size());
  std::vector<int64_t> shape(nd);
  for (size_t d = 0; d < nd; ++d) {
    // extents aligned to the right; a missing one counts as 1
    const int64_t ea = d + sa.size() >= nd ? sa[d + sa.size() - nd] : 1;
    const int64_t eb = d + sb.size() >= nd ? sb[d + sb.size() - nd] : 1;
    FASTNN_CHECK(ea == eb || ea == 1 || eb == 1, fn, " '", name_in(kBinaryOps, op),
                 "': arguments 'a' and 'b' have shapes ", shape_str(sa), " and ", shape_str(sb),
                 ", which do not broadcast together");
    shape[d] = ea == 1 ? eb : ea;
  }
  DeviceGuard guard(a.device());
  DeviceBuffer out(shape);
  if (out.numel() == 0) return out;
  const Strided<2> view =
      make_view<2>(shape, {broadcast_strides(sa, nd), broadcast_strides(sb, nd)}, [&] {
        return str_cat(fn, " '", name_in(kBinaryOps, op), "' of shapes ", shape_str(sa), " and ",
                       shape_str(sb));
      });
  launch_map(out.numel(), BinaryMap{op, a.data(), b.data(), out.data(), view}, fn);
  return out;
}

DeviceBuffer scalar(ScalarOp op, const DeviceBuffer& x, float s) {
  DeviceGuard guard(x.device());
  DeviceBuffer out(x.shape());
  launch_map(x.numel(), ScalarMap{op, x.data(), s, out.data()}, "scalar");
  return out;
}

DeviceBuffer reduce_sum(const DeviceBuffer& x, const std::vector<int64_t>& axes, bool keepdims) {
  return reduce<SumOp>(x, axes, keepdims);
}

DeviceBuffer reduce_max(const DeviceBuffer& x, const std::vector<int64_t>& axes, bool keepdims) {
  return reduce<MaxOp>(x, axes, keepdims);
}

DeviceBuffer broadcast_to(const DeviceBuffer& x, const std::vector<int64_t>& shape) {
  const std::vector<int64_t>& sx = x.shape();
  bool ok = shape.size() >= sx.size();
  for (size_t d = 0; ok && d < sx.size(); ++d)
    ok = sx[d] == 1 || sx[d] == shape[d + shape.size() - sx.size()];
  FASTNN_CHECK(ok, "broadcast_to: argument 'x' of shape ", shape_str(sx),
               " cannot be broadcast to shape ", shape_str(shape));
  DeviceGuard guard(x.device());
  DeviceBuffer out(shape);
  if (out.numel() == 0) return out;
  const Strided<1> view = make_view<1>(shape, {broadcast_strides(sx, shape.size())}, [&] {
    return str_cat("broadcast_to from shape ", shape_str(sx), " to ", shape_str(shape));
  });
  launch_map(out.numel(), GatherMap{x.data(), out.data(), view}, "broadcast_to");
  return out;
}

DeviceBuffer permute(const DeviceBuffer& x, const std::vector<int64_t>& axes) {
  const size_t nd = x.shape().size();
  std::vector<bool> seen(nd, false);
  bool ok = axes.size() == nd;
  for (size_t i = 0; ok && i < nd; ++i) {
    ok = axes[i] >= 0 && axes[i] < int64_t(nd) && !seen[size_t(axes[i])];
    if (ok) seen[size_t(axes[i])] = true;
  }
  FASTNN_CHECK(ok, "permute: argument 'axes' must be a permutation of 0 .. ", int64_t(nd) - 1,
               " for 'x' of shape ", shape_str(x.shape()), ", got ", list_str(axes));
  std::vector<int64_t> shape(nd), strides(nd);
  for (size_t i = 0; i < nd; ++i) shape[i] = x.shape()[size_t(axes[i])];
  DeviceGuard guard(x.device());
  DeviceBuffer out(shape);
  if (out.numel() == 0) return out;
  const std::vector<int64_t> own = contiguous_strides(x.shape());
  for (size_t i = 0; i < nd; ++i) strides[i] = own[size_t(axes[i])];
  const Strided<1> view = make_view<1>(shape, {strides}, [&] {
    return str_cat("permute of shape ", shape_str(x.shape()), " by axes ", list_str(axes));
  });
  launch_map(out.numel(), GatherMap{x.data(), out.data(), view}, "permute");
  return out;
}

DeviceBuffer copy(const DeviceBuffer& x) { return reshape(x, x.shape()); }

DeviceBuffer reshape(const DeviceBuffer& x, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n = checked_mul(n, d);
  FASTNN_CHECK(n == x.numel(), "reshape: cannot reshape an array of shape ", shape_str(x.shape()),
               " into shape ", shape_str(shape));
  DeviceGuard guard(x.device());
  DeviceBuffer out(shape);
  out.copy_from(x);
  return out;
}

void fill(DeviceBuffer& x, float value) {
  DeviceGuard guard(x.device());
  launch_map(x.numel(), FillMap{x.data(), value}, "fill");
}

void axpy(float alpha, const DeviceBuffer& x, DeviceBuffer& y) {
  check_same_shape("axpy", x, "x", y, "y");
  DeviceGuard guard(y.device());
  launch_map(y.numel(), AxpyMap{alpha, x.data(), y.data()}, "axpy");
}

DeviceBuffer softmax(const DeviceBuffer& x) { return softmax_forward(x, false); }
DeviceBuffer log_softmax(const DeviceBuffer& x) { return softmax_forward(x, true); }
DeviceBuffer softmax_backward(const DeviceBuffer& y, const DeviceBuffer& dy) {
  return softmax_backward_impl(y, dy, false);
}
DeviceBuffer log_softmax_backward(const DeviceBuffer& y, const DeviceBuffer& dy) {
  return softmax_backward_impl(y, dy, true);
}

CrossEntropyResult cross_entropy(const DeviceBuffer& logits, const int64_t* labels,
                                 int64_t n_labels) {
  const char* fn = "cross_entropy";
  check_labels(fn, logits, "logits", labels, n_labels);
  DeviceGuard guard(logits.device());
  DeviceBuffer d_labels = labels_on_device(fn, labels, n_labels);
  const int64_t rows = logits.shape()[0], cols = logits.shape()[1];
  CrossEntropyResult result{std::nan(""), DeviceBuffer(logits.shape())};
  if (rows == 0) return result;
  // cols > 0 here: every label is in [0, cols)
  DeviceBuffer losses = storage_for<double>(rows + 1);  // per row, then their sum
  double* loss = as<double>(losses);
  cross_entropy_rows<<<blocks_for(rows, 1), row_threads(cols), 0, cudaStreamLegacy>>>(
      rows, cols, logits.data(), as<int64_t>(d_labels), result.prob.data(), loss);
  check_launch(fn);
  sum_doubles<<<1, kThreads, 0, cudaStreamLegacy>>>(rows, loss, loss + rows);
  check_launch(fn);
  double total = 0.0;
  check(cudaMemcpy(&total, loss + rows, sizeof(double), cudaMemcpyDeviceToHost),
        "cross_entropy: copying the loss to the host");
  result.loss = total / double(rows);
  return result;
}

DeviceBuffer cross_entropy_backward(const DeviceBuffer& prob, const int64_t* labels,
                                    int64_t n_labels, float scale) {
  const char* fn = "cross_entropy_backward";
  check_labels(fn, prob, "prob", labels, n_labels);
  DeviceGuard guard(prob.device());
  DeviceBuffer d_labels = labels_on_device(fn, labels, n_labels);
  DeviceBuffer dx(prob.shape());
  launch_map(prob.numel(),
             CrossEntropyBackwardMap{prob.data(), as<int64_t>(d_labels), prob.shape()[1], scale,
                                     dx.data()},
             fn);
  return dx;
}

DeviceBuffer dropout(const DeviceBuffer& x, float rate, uint64_t key) {
  FASTNN_CHECK(rate >= 0.0f && rate < 1.0f, "dropout: argument 'rate' must be in [0, 1), got ",
               rate);
  DeviceGuard guard(x.device());
  DeviceBuffer y(x.shape());
  launch_map(x.numel(),
             DropoutMap{x.data(), y.data(), pm::dropout_threshold(rate), pm::dropout_scale(rate),
                        key},
             "dropout");
  return y;
}

}  // namespace cuda
}  // namespace fastnn
