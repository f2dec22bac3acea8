/* Fused RNN/GRU/LSTM step kernels, q8 and f32, portable C (see cell_template.h). */
#define RNC_SFX generic
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(generic)
