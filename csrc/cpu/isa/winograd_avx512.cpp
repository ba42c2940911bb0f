// Winograd transforms for the avx512 instruction set.
#define FASTNN_ISA avx512
#define FASTNN_VBYTES 64
#include "winograd_kernels.inc"
