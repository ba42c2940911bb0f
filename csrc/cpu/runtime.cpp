#include "fastnn/runtime.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "fastnn/check.h"
#include "fastnn/parallel.h"

#if defined(__x86_64__) || defined(_M_X64)
#define FASTNN_X86 1
#endif

namespace fastnn {

// ------------------------------------------------------------------ threads

namespace {
std::atomic<int> g_threads{0};  // 0: not chosen yet
}

int get_num_threads() {
  int n = g_threads.load(std::memory_order_relaxed);
  if (n > 0) return n;
#ifdef FASTNN_OPENMP
  n = omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
  n = 1;
#endif
  return std::min(std::max(n, 1), max_threads());
}

int max_threads() {
  // OpenMP ends the process when it cannot create a thread, so requests are
  // capped well below that: oversubscription past 4x the cores only slows.
#ifdef FASTNN_OPENMP
  int cap = std::max(16, 4 * omp_get_num_procs());
  const int limit = omp_get_thread_limit();
  if (limit > 0) cap = std::min(cap, limit);
  return cap;
#else
  return 1;
#endif
}

void set_num_threads(int n) {
  FASTNN_CHECK(n >= 1 && n <= max_threads(), "set_num_threads: argument 'n' must be in [1, ",
               max_threads(), "], got ", n);
  g_threads.store(n, std::memory_order_relaxed);
}

bool openmp_enabled() {
#ifdef FASTNN_OPENMP
  return true;
#else
  return false;
#endif
}

// ------------------------------------------------------------------ ISA

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return "generic";
  }
}

Isa parse_isa(const std::string& name) {
  if (name == "generic") return Isa::generic;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  throw std::invalid_argument("isa: expected one of 'generic', 'avx2', 'avx512', got '" +
                              name + "'");
}

namespace {

Isa cpuid_best() {
#if defined(FASTNN_X86) && defined(FASTNN_HAVE_X86_ISA)
  __builtin_cpu_init();
#ifdef FASTNN_EMULATE_AVX512
  // test build: the avx512 kernels are compiled for AVX2 (see CMakeLists.txt)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx512;
#endif
  // The OS must also save the wide registers (XSAVE state), which
  // __builtin_cpu_supports checks for avx2/avx512f on current GCC and Clang.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
#endif
  return Isa::generic;
}

IsaContext initial_context() {
  IsaContext c;
  c.best = cpuid_best();
  c.active = c.best;
#ifdef FASTNN_EMULATE_AVX512
  c.emulated = true;
#endif
  const char* env = std::getenv("FASTNN_ISA");
  if (env != nullptr && *env != '\0') {
    try {
      const Isa want = parse_isa(env);
      if (int(want) < int(c.best)) c.active = want;
    } catch (const std::exception&) {
      // an unknown value must not break import; build_info shows the choice
    }
  }
  return c;
}

// CPUID and the environment, read once (on first use: no static-order issue)
const IsaContext& initial() {
  static const IsaContext c = initial_context();
  return c;
}
std::atomic<int> g_active{-1};  // set_active_isa's choice; -1: initial().active

}  // namespace

IsaContext isa_context() {
  IsaContext c = initial();
  const int v = g_active.load(std::memory_order_relaxed);
  if (v >= 0) c.active = Isa(v);
  return c;
}

void set_active_isa(Isa isa) {
  const Isa best = initial().best;
  FASTNN_CHECK(int(isa) <= int(best), "isa: this CPU cannot run '", isa_name(isa),
               "' (best supported: '", isa_name(best), "')");
  g_active.store(int(isa), std::memory_order_relaxed);
}

// ------------------------------------------------------------------ build

const char* version() {
#ifdef FASTNN_VERSION
  return FASTNN_VERSION;
#else
  return "unknown";
#endif
}

const char* compiler() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "gcc " __VERSION__;
#else
  return "unknown";
#endif
}

bool keep_freed_memory() {
#if defined(__GLIBC__)
  // 32 MiB is the largest mmap threshold glibc accepts on 64-bit systems.
  return mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#else
  return false;
#endif
}

}  // namespace fastnn
