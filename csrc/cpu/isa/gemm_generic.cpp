// GEMM microkernels for the generic instruction set (the x86-64 / any-CPU baseline).
#define FASTNN_ISA_NS isa_generic
#define FASTNN_VBYTES 16
#define FASTNN_MR 4
#define FASTNN_NV 3
#define FASTNN_KC 256
#define FASTNN_NC 1024
#include "gemm_microkernel.inc"

namespace fastnn {

const GemmKernels& gemm_kernels_generic() {
  using namespace isa_generic;
  static const GemmKernels k{"generic", MR, NR, KC, NC, pack_a, pack_b, tile_packed, tile_strided,
                             DR, DC, pack_bt, tile_dot, fma_probe};
  return k;
}

}  // namespace fastnn
