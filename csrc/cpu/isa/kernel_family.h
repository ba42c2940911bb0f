// The one selector of every kernel family. A family is a struct of function
// pointers (GemmKernels, PointwiseKernels, ...) with one table per
// instruction set, defined by csrc/cpu/isa/<family>_<isa>.cpp through its
// .inc file; its header declares it with one line,
//
//   FASTNN_KERNEL_FAMILY(WinogradKernels, winograd)
//
// which declares winograd_kernels_generic/avx2/avx512() and lets the driver
// ask `active_kernels<WinogradKernels>()` for the table of the run's
// instruction set (fastnn::isa_context(), read once from CPUID, FASTNN_ISA
// and the emulation flag). The .inc file names its table function
// FASTNN_KERNEL_TABLE(winograd). Nothing else changes: CMake compiles each
// isa/*_<isa>.cpp with its set's flags by file name.
//
// isa/*_<isa>.cpp files include this header under wide instruction-set
// flags: it defines no function they could emit (the lookup is only
// instantiated by the baseline drivers that call it).
#pragma once
#include "fastnn/runtime.h"

namespace fastnn {

template <class Table>
struct KernelFamily;  // specialised by FASTNN_KERNEL_FAMILY

// The table of `Table`'s family for instruction set `isa`.
template <class Table>
const Table& kernels_for(Isa isa) {
  return KernelFamily<Table>::tables[int(isa)]();
}

// The table of the active instruction set (fastnn::active_isa()).
template <class Table>
const Table& active_kernels() {
  return kernels_for<Table>(active_isa());
}

}  // namespace fastnn

#ifdef FASTNN_HAVE_X86_ISA
#define FASTNN_KERNEL_LIST(family) \
  family##_kernels_generic, family##_kernels_avx2, family##_kernels_avx512
#else
// Only the portable tables exist; active_isa() is then always generic.
#define FASTNN_KERNEL_LIST(family) \
  family##_kernels_generic, family##_kernels_generic, family##_kernels_generic
#endif

#define FASTNN_KERNEL_FAMILY(Table, family)                                 \
  const Table& family##_kernels_generic();                                  \
  const Table& family##_kernels_avx2();                                     \
  const Table& family##_kernels_avx512();                                   \
  template <>                                                               \
  struct KernelFamily<Table> {                                              \
    static constexpr const Table& (*tables[3])() = {FASTNN_KERNEL_LIST(family)}; \
  };

// In an isa/<family>_<isa>.cpp (FASTNN_ISA defined): the name of its table
// function, <family>_kernels_<isa>.
#define FASTNN_KERNEL_CAT2(a, b) a##b
#define FASTNN_KERNEL_CAT(a, b) FASTNN_KERNEL_CAT2(a, b)
#define FASTNN_KERNEL_TABLE(family) FASTNN_KERNEL_CAT(family##_kernels_, FASTNN_ISA)
