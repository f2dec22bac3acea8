/* Fused RNN/GRU/LSTM step kernels, AVX-VNNI build of cell_template.h: q8 products with 256-bit
 * VEX vpdpbusd (q8_gemm_avxvnni.c); f32 products are the AVX2+FMA ones (AVX-VNNI adds only int8
 * instructions). Cell update and activation quantisation from epilogue_avx2.h (the AVX2 path's
 * intrinsics, 8 lanes), the same float32 operations as every other ISA. */
#include "../internal.h"
#include "isa_target.h"

#if defined(RNC_TARGET_X86_AVXVNNI)
#include "epilogue_avx2.h"
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

/* the intrinsics epilogue through the template's hooks (bit-identical to the scalar one) */
#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_SFX avxvnni
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(avxvnni)

#elif RNC_X86 && !defined(RNC_NO_X86_AVXVNNI)
#error "cells_avxvnni.c needs AVX-VNNI and AVX2 (sources.mk X86_AVXVNNI_FLAGS) unless RNC_NO_X86_AVXVNNI"
#else
/* The AVX-VNNI group left out (-DRNC_NO_X86_AVXVNNI) or another architecture: keep the unit
 * non-empty. */
typedef int rnc_cells_avxvnni_unused;
#endif
