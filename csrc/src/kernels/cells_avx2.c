/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX2+FMA build of cell_template.h (products in
 * q8_gemm_avx2.c / f32_gemm_avx2.c; the epilogue vectorised by the compiler, 8 lanes). */
#define RNC_SFX avx2
#include "cell_template.h"
