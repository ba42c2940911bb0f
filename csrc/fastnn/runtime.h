// Process-wide run-time facts: the SIMD path, threads, build information.
#pragma once
#include <string>

namespace fastnn {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

// What the SIMD paths run on, worked out once per process (CPUID, the
// FASTNN_ISA variable, the build's emulation flag); every kernel family's
// table is chosen from `active` (csrc/cpu/isa/kernel_family.h).
struct IsaContext {
  Isa best = Isa::generic;    // the widest set this CPU (and OS) runs
  Isa active = Isa::generic;  // FASTNN_ISA if set and supported, else best; set_active_isa
  // A test build whose avx512 kernels are compiled for AVX2, so that their
  // tile sizes run (and are tested) on a CPU without AVX-512.
  bool emulated = false;
};
IsaContext isa_context();

const char* isa_name(Isa isa);
Isa parse_isa(const std::string& name);  // throws on an unknown name
inline Isa active_isa() { return isa_context().active; }
inline Isa best_supported_isa() { return isa_context().best; }
void set_active_isa(Isa isa);  // throws if this CPU cannot run it

// Makes glibc's malloc keep freed memory for reuse (mmap threshold 32 MiB,
// no trimming) instead of returning it to the kernel: NumPy's large arrays
// are otherwise mmapped and unmapped every step, and each fresh 4 KiB page
// costs a fault (about 2 us here), a quarter of a CNN training step. Returns
// false where the C library has no such knobs (not glibc).
bool keep_freed_memory();

const char* version();
const char* compiler();

}  // namespace fastnn
