// Optimizer loops for the generic instruction set.
#define FASTNN_ISA generic
#define FASTNN_VBYTES 16
#include "optim_kernels.inc"
