// GEMM microkernels for the avx2 instruction set.
#define FASTNN_ISA avx2
#define FASTNN_VBYTES 32
#define FASTNN_MR 6
#define FASTNN_NV 2
#define FASTNN_KC 384
#define FASTNN_NC 4096
#include "gemm_microkernel.inc"
