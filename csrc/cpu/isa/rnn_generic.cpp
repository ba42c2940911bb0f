// Fused RNN gate passes for the generic instruction set.
#define FASTNN_ISA generic
#define FASTNN_VBYTES 16
#include "rnn_kernels.inc"
