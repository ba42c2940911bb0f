// GEMM microkernels for the avx512 instruction set.
#define FASTNN_ISA_NS isa_avx512
#define FASTNN_VBYTES 64
#define FASTNN_MR 12
#define FASTNN_NV 2
#define FASTNN_KC 384
#define FASTNN_NC 4096
#include "gemm_microkernel.inc"

namespace fastnn {

const GemmKernels& gemm_kernels_avx512() {
  using namespace isa_avx512;
  static const GemmKernels k{"avx512", MR, NR, KC, NC, pack_a, pack_b, tile_packed, tile_strided,
                             DR, DC, pack_bt, tile_dot, fma_probe};
  return k;
}

}  // namespace fastnn
