// GEMM microkernels for the avx512 instruction set.
#define FASTNN_ISA avx512
#define FASTNN_VBYTES 64
#define FASTNN_MR 12
#define FASTNN_NV 2
#define FASTNN_KC 384
#define FASTNN_NC 4096
#include "gemm_microkernel.inc"
