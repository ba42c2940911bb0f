// GEMM microkernels for the generic instruction set (the x86-64 / any-CPU baseline).
#define FASTNN_ISA generic
#define FASTNN_VBYTES 16
#define FASTNN_MR 4
#define FASTNN_NV 3
#define FASTNN_KC 256
#define FASTNN_NC 1024
#include "gemm_microkernel.inc"
