// Winograd transforms for the generic instruction set.
#define FASTNN_ISA generic
#define FASTNN_VBYTES 16
#include "winograd_kernels.inc"
