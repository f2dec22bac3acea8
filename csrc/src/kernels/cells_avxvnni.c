/* Fused RNN/GRU/LSTM step kernels, AVX-VNNI build of cell_template.h: q8 products with 256-bit
 * VEX vpdpbusd (gemv_avxvnni.c); f32 products are the AVX2+FMA ones (AVX-VNNI adds only int8
 * instructions). Epilogue vectorised by the compiler with 8 float lanes, same float32 operations
 * as every other ISA. */
#include "kernels_avx512.h"

void rnc_f32_gemm_avx2(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                       int ldy);
void rnc_f32_gemm_avxvnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                          int ldy);
void rnc_f32_gemm_avxvnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                          int ldy)
{
    rnc_f32_gemm_avx2(Wp, R, K, N, X, ldx, Y, ldy);
}

#define RNC_SFX avxvnni
#include "cell_template.h"
