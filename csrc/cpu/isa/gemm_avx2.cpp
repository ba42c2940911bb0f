// GEMM microkernels for the avx2 instruction set.
#define FASTNN_ISA_NS isa_avx2
#define FASTNN_VBYTES 32
#define FASTNN_MR 6
#define FASTNN_NV 2
#define FASTNN_KC 384
#define FASTNN_NC 4096
#include "gemm_microkernel.inc"

namespace fastnn {

const GemmKernels& gemm_kernels_avx2() {
  using namespace isa_avx2;
  static const GemmKernels k{"avx2", MR, NR, KC, NC, pack_a, pack_b, tile_packed, tile_strided,
                             DR, DC, pack_bt, tile_dot, fma_probe};
  return k;
}

}  // namespace fastnn
