// Fused RNN gate passes for the avx512 instruction set.
#define FASTNN_ISA avx512
#define FASTNN_VBYTES 64
#include "rnn_kernels.inc"
