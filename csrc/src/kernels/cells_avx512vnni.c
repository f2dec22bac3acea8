/* Fused RNN/GRU/LSTM step kernels, AVX-512 VNNI build of cell_template.h: q8 products with
 * 512-bit vpdpbusd (gemv_avx512vnni.c); f32 products are the AVX-512F ones (VNNI adds only int8
 * instructions). Cell update and activation quantisation from epilogue_avx512.h; its float32
 * operations are those of every other ISA, so q8 outputs equal the generic kernel's exactly. */
#include "../internal.h"
#include "epilogue_avx512.h"
#include "kernels_avx512.h"

void rnc_f32_gemm_avx512vnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                             int ldy);
void rnc_f32_gemm_avx512vnni(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                             int ldy)
{
    rnc_f32_gemm_avx512(Wp, R, K, N, X, ldx, Y, ldy);
}

/* intrinsics epilogue (bit-identical, more in flight) through the template's hooks */
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_SFX avx512vnni
#include "cell_template.h"
