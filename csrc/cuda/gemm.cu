// SGEMM on the GPU: shared-memory tiling with register blocking.
//
// Each thread block computes a BM x BN tile of C, walking K in slices of
// kBK. A slice of op(A) (BM x kBK) and of op(B) (kBK x BN) is staged in
// shared memory, both stored k-major (s[k][m], s[k][n]) so that the inner
// loop reads a column of A and a row of B as float4 vectors. Each thread
// owns an 8x8 block of C in 64 registers: per k it loads 8 values of A and 8
// of B (four 128-bit shared loads) and does 64 FMAs, which keeps shared
// memory traffic well below the FMA rate.
//
// Shared memory is double-buffered: while the block computes on slice t,
// each thread has already issued its global loads for slice t+1 into
// registers; they land in the other buffer after the FMAs, so global
// latency hides behind compute and one __syncthreads per slice suffices.
//
// A thread's 8x8 block is split as 2x2 blocks of 4x4 placed 16 rows and 32
// columns apart, and a warp's 32 lanes cover a 32 x 64 region (4 x 8
// lanes). With that layout the 8 lanes of a row read 128 contiguous bytes
// of B and 4 distinct float4s of A (broadcast): no bank conflicts. Results
// are stored as float4 runs of 4 columns.
//
// Edges: every global load is guarded (out-of-range values read as 0) and
// every store is guarded, so any M, N, K works. 128-bit loads are used when
// the matrix base is 16-byte aligned and its row stride a multiple of 4
// floats; otherwise the same loop issues scalar loads.
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "cuda/device_buffer.h"
#include "cuda/gemm.h"
#include "fastnn/check.h"

namespace fastnn {
namespace cuda {
namespace {

constexpr int kBK = 8;  // K per shared-memory stage
// Shared rows are padded by 4 floats: the transposing store of a k-major
// operand (s[k][x] = g[x][k]) then hits 32 distinct banks per warp, and
// rows stay 16-byte aligned for float4 reads.
constexpr int kPad = 4;
constexpr int kTM = 8, kTN = 8;  // C values per thread, rows x columns
constexpr int kGroupM = 8;       // tile rows per band of the block swizzle

template <int BM, int BN>
struct Config {
  static_assert(BM % 32 == 0 && BN % 64 == 0, "a warp covers 32 rows x 64 columns");
  static constexpr int kWarpsM = BM / 32;
  static constexpr int kWarpsN = BN / 64;
  static constexpr int kThreads = 32 * kWarpsM * kWarpsN;
  // Resident blocks per SM promised to the compiler, which caps registers at
  // 65536 / (kThreads * kMinBlocks): 128 for the 256-thread tile (64
  // accumulators, 16 operands and the prefetch fit without spills), 170 for
  // the 64-thread tile, whose threads prefetch twice as many runs.
  static constexpr int kMinBlocks = kThreads >= 256 ? 512 / kThreads : 6;
};

// One operand's k-slices, global -> registers -> shared memory.
// X is the operand's non-K index (m for A, n for B), BX its tile extent,
// `extent` its size in the whole matrix (M or N).
// kKMajor: element (x, k) lives at g[x*ld + k] (A untransposed, B transposed);
// otherwise at g[k*ld + x] (A transposed, B untransposed).
// Shared layout either way: s[k][x], BX + kPad floats per k.
// Each thread moves kPerThread runs of 4 floats along the contiguous index;
// it keeps one pointer per run and steps it by a slice, so the hot loop
// carries no 64-bit index arithmetic (register pressure is the limit here).
template <int BX, int kThreads, bool kKMajor>
struct SliceLoader {
  static constexpr int kQuads = BX * kBK / 4;  // float4s per slice
  static constexpr int kPerThread = kQuads / kThreads;
  static_assert(kQuads % kThreads == 0, "each thread moves whole float4s");
  static constexpr int kQuadsPerLine = kKMajor ? kBK / 4 : BX / 4;

  const float* ptr[kPerThread];  // the run's first float in the next slice
  int fixed_valid[kPerThread];   // k-major: 4 if the row is in range, else 0;
                                 // else: floats of the run inside `extent`
  int64_t step;                  // floats from one slice to the next
  float4 reg[kPerThread];

  // Position of run i in the tile: (line, quad) = (x, k) when k-major, else (k, x).
  __device__ static int line_of(int tid, int i) { return (tid + i * kThreads) / kQuadsPerLine; }
  __device__ static int quad_of(int tid, int i) {
    return ((tid + i * kThreads) % kQuadsPerLine) * 4;
  }

  // g: the operand, x0: first x of this block's tile.
  __device__ __forceinline__ SliceLoader(const float* g, int64_t ld, int64_t x0, int64_t extent,
                                         int tid)
      : step(kKMajor ? kBK : kBK * ld) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int line = line_of(tid, i), quad = quad_of(tid, i);
      const int64_t x = x0 + (kKMajor ? line : quad);
      const int64_t left = extent - x;
      fixed_valid[i] = kKMajor ? (left > 0 ? 4 : 0) : int(left < 0 ? 0 : left > 4 ? 4 : left);
      ptr[i] = fixed_valid[i] > 0 ? g + (kKMajor ? x * ld + quad : line * ld + x) : g;
    }
  }

  // Loads the slice starting at k0 (out-of-range values read as 0) and steps on.
  __device__ __forceinline__ void load(int k0, int K, bool vec, int tid) {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int line = line_of(tid, i), quad = quad_of(tid, i);
      int valid;  // floats of the run in range
      if (kKMajor) {
        const int left = K - (k0 + quad);
        valid = left <= 0 ? 0 : left >= 4 ? fixed_valid[i] : min(left, fixed_valid[i]);
      } else {
        valid = k0 + line < K ? fixed_valid[i] : 0;
      }
      const float* p = ptr[i];
      if (vec && valid == 4) {
        reg[i] = __ldg(reinterpret_cast<const float4*>(p));
      } else {
        reg[i].x = valid > 0 ? __ldg(p + 0) : 0.f;
        reg[i].y = valid > 1 ? __ldg(p + 1) : 0.f;
        reg[i].z = valid > 2 ? __ldg(p + 2) : 0.f;
        reg[i].w = valid > 3 ? __ldg(p + 3) : 0.f;
      }
      ptr[i] += step;
    }
  }

  // s: (kBK, BX + kPad)
  __device__ __forceinline__ void store(float (*s)[BX + kPad], int tid) const {
#pragma unroll
    for (int i = 0; i < kPerThread; ++i) {
      const int line = line_of(tid, i), quad = quad_of(tid, i);
      if (kKMajor) {  // transpose on the way in: four k for one x
        s[quad + 0][line] = reg[i].x;
        s[quad + 1][line] = reg[i].y;
        s[quad + 2][line] = reg[i].z;
        s[quad + 3][line] = reg[i].w;
      } else {
        *reinterpret_cast<float4*>(&s[line][quad]) = reg[i];
      }
    }
  }
};

// C (M,N), row stride ldc, = alpha * op(A) op(B) + beta * C.
// A: (M,K) row stride lda when kAKMajor, else (K,M).
// B: (N,K) row stride ldb when kBKMajor, else (K,N).
// Grid: tiles_m * tiles_n blocks in one dimension, swizzled (see below).
// vec_a / vec_b / vec_c: 128-bit access is aligned for that matrix.
template <int BM, int BN, bool kAKMajor, bool kBKMajor>
__global__ void __launch_bounds__(Config<BM, BN>::kThreads, Config<BM, BN>::kMinBlocks)
sgemm_tiled(int64_t M, int64_t N, int K, float alpha, const float* __restrict__ A,
            int64_t lda, const float* __restrict__ B, int64_t ldb, float beta,
            float* __restrict__ C, int64_t ldc, int tiles_m, int tiles_n, bool vec_a,
            bool vec_b, bool vec_c) {
  using Cfg = Config<BM, BN>;
  __shared__ __align__(16) float As[2][kBK][BM + kPad];
  __shared__ __align__(16) float Bs[2][kBK][BN + kPad];

  // Swizzle: consecutive blocks sweep a band of kGroupM tile rows column by
  // column, so the blocks resident together share A rows and B columns in L2.
  const int bid = blockIdx.x;
  const int per_band = kGroupM * tiles_n;
  const int band = bid / per_band;
  const int first_m = band * kGroupM;
  const int band_rows = min(tiles_m - first_m, kGroupM);
  const int in_band = bid - band * per_band;
  const int64_t m0 = int64_t(first_m + in_band % band_rows) * BM;
  const int64_t n0 = int64_t(in_band / band_rows) * BN;

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int wm = (warp / Cfg::kWarpsN) * 32, wn = (warp % Cfg::kWarpsN) * 64;
  const int ty = lane / 8, tx = lane % 8;
  const int row_a = wm + ty * 4;  // this thread's rows: row_a + {0..3, 16..19}
  const int col_b = wn + tx * 4;  // its columns: col_b + {0..3, 32..35}

  SliceLoader<BM, Cfg::kThreads, kAKMajor> load_a(A, lda, m0, M, tid);
  SliceLoader<BN, Cfg::kThreads, kBKMajor> load_b(B, ldb, n0, N, tid);

  float acc[kTM][kTN];
#pragma unroll
  for (int i = 0; i < kTM; ++i)
#pragma unroll
    for (int j = 0; j < kTN; ++j) acc[i][j] = 0.f;

  const int slices = (K + kBK - 1) / kBK;
  load_a.load(0, K, vec_a, tid);
  load_b.load(0, K, vec_b, tid);
  load_a.store(As[0], tid);
  load_b.store(Bs[0], tid);
  __syncthreads();

  for (int t = 0; t < slices; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < slices;
    if (more) {  // in flight while the FMAs below run
      load_a.load((t + 1) * kBK, K, vec_a, tid);
      load_b.load((t + 1) * kBK, K, vec_b, tid);
    }
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(&As[cur][kk][row_a]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[cur][kk][row_a + 16]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[cur][kk][col_b]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[cur][kk][col_b + 32]);
      const float a[kTM] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[kTN] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) {
      // the other buffer was last read in iteration t-1, before its barrier
      load_a.store(As[cur ^ 1], tid);
      load_b.store(Bs[cur ^ 1], tid);
    }
    __syncthreads();
  }

  // acc[4*ii + i][4*jj + j] is C[m0 + row_a + 16*ii + i][n0 + col_b + 32*jj + j].
  const bool read_c = beta != 0.f;  // beta == 0: C may hold NaN, never read it
#pragma unroll
  for (int ii = 0; ii < 2; ++ii) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = m0 + row_a + 16 * ii + i;
      if (row >= M) continue;
      float* crow = C + row * ldc;
#pragma unroll
      for (int jj = 0; jj < 2; ++jj) {
        const int64_t col = n0 + col_b + 32 * jj;
        const float* v = &acc[4 * ii + i][4 * jj];
        if (vec_c && col + 3 < N) {
          float4* p = reinterpret_cast<float4*>(crow + col);
          float4 out = make_float4(alpha * v[0], alpha * v[1], alpha * v[2], alpha * v[3]);
          if (read_c) {
            const float4 old = *p;
            out.x = fmaf(beta, old.x, out.x);
            out.y = fmaf(beta, old.y, out.y);
            out.z = fmaf(beta, old.z, out.z);
            out.w = fmaf(beta, old.w, out.w);
          }
          *p = out;
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (col + j >= N) break;
            const float out = alpha * v[j];
            crow[col + j] = read_c ? fmaf(beta, crow[col + j], out) : out;
          }
        }
      }
    }
  }
}

// C (M,N), row stride ldc, = beta * C; zero when beta == 0 (C not read).
// For alpha == 0 or K == 0, where op(A) op(B) contributes nothing.
__global__ void scale_c(int64_t M, int64_t N, float beta, float* __restrict__ C, int64_t ldc) {
  const int64_t total = M * N;
  for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * blockDim.x) {
    float* p = C + (idx / N) * ldc + idx % N;
    *p = beta == 0.f ? 0.f : beta * *p;
  }
}

// A multiple of 4, so later chunks keep the 16-byte alignment of the first.
constexpr int64_t kMaxKPerLaunch = int64_t(1) << 30;

bool aligned16(const void* p, int64_t ld) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 4 == 0;
}

template <int BM, int BN>
void launch_tiled(bool trans_a, bool trans_b, int64_t M, int64_t N, int K, float alpha,
                  const float* A, int64_t lda, const float* B, int64_t ldb, float beta,
                  float* C, int64_t ldc) {
  const int64_t tiles_m = (M + BM - 1) / BM, tiles_n = (N + BN - 1) / BN;
  FASTNN_CHECK(tiles_m <= INT_MAX / tiles_n, "gemm: C of shape (", M, ", ", N,
               ") needs more thread blocks than one launch allows");
  const dim3 grid(unsigned(tiles_m * tiles_n)), block(Config<BM, BN>::kThreads);
  const int tm = int(tiles_m), tn = int(tiles_n);
  const bool va = aligned16(A, lda), vb = aligned16(B, ldb), vc = aligned16(C, ldc);
  // k-major: A untransposed (K contiguous), B transposed (K contiguous)
  if (!trans_a && !trans_b)
    sgemm_tiled<BM, BN, true, false><<<grid, block, 0, cudaStreamLegacy>>>(
        M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tm, tn, va, vb, vc);
  else if (!trans_a && trans_b)
    sgemm_tiled<BM, BN, true, true><<<grid, block, 0, cudaStreamLegacy>>>(
        M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tm, tn, va, vb, vc);
  else if (trans_a && !trans_b)
    sgemm_tiled<BM, BN, false, false><<<grid, block, 0, cudaStreamLegacy>>>(
        M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tm, tn, va, vb, vc);
  else
    sgemm_tiled<BM, BN, false, true><<<grid, block, 0, cudaStreamLegacy>>>(
        M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, tm, tn, va, vb, vc);
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc) {
  FASTNN_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: negative size M=", M, " N=", N, " K=", K);
  const int64_t a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  FASTNN_CHECK(lda >= std::max<int64_t>(1, a_cols), "gemm: lda=", lda, " < ", a_cols);
  FASTNN_CHECK(ldb >= std::max<int64_t>(1, b_cols), "gemm: ldb=", ldb, " < ", b_cols);
  FASTNN_CHECK(ldc >= std::max<int64_t>(1, N), "gemm: ldc=", ldc, " < ", N);
  if (M == 0 || N == 0) return;
  FASTNN_CHECK(C != nullptr, "gemm: C is null");
  if (K == 0 || alpha == 0.f) {
    const int64_t blocks = std::min<int64_t>((checked_mul(M, N) + 255) / 256, 65536);
    scale_c<<<unsigned(blocks), 256, 0, cudaStreamLegacy>>>(M, N, beta, C, ldc);
  } else {
    FASTNN_CHECK(A != nullptr && B != nullptr, "gemm: A or B is null");
    // The large tile does twice the FMAs per shared load, but a grid with
    // fewer blocks than SMs leaves most of the GPU idle: then smaller tiles.
    const int64_t big_tiles = ((M + 127) / 128) * ((N + 127) / 128);
    const auto launch =
        big_tiles >= multiprocessor_count() ? &launch_tiled<128, 128> : &launch_tiled<64, 64>;
    // The kernel counts k in 32 bits (fewer registers); a longer K runs as
    // several launches, each adding its part of the sum into C.
    for (int64_t k = 0; k < K; k += kMaxKPerLaunch) {
      const int kc = int(std::min<int64_t>(kMaxKPerLaunch, K - k));
      launch(trans_a, trans_b, M, N, kc, alpha, A + (trans_a ? k * lda : k), lda,
             B + (trans_b ? k : k * ldb), ldb, k == 0 ? beta : 1.f, C, ldc);
    }
  }
  check(cudaGetLastError(), "gemm: kernel launch");
}

}  // namespace cuda
}  // namespace fastnn
