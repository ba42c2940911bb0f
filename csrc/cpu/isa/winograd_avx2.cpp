// Winograd transforms for the avx2 instruction set.
#define FASTNN_ISA avx2
#define FASTNN_VBYTES 32
#include "winograd_kernels.inc"
