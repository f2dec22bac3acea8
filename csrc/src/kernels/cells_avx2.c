/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX2+FMA build of cell_template.h: products in
 * q8_gemm_avx2.c / f32_gemm_avx2.c, the cell update (q8: fused with the dequantisation) and the
 * activation quantisation from epilogue_avx2.h (intrinsics, 8 lanes, bit-identical to the generic code). */
#include "epilogue_avx2.h"
#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_SFX avx2
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(avx2)

/* The quantiser of the AVX2 path (and of AVX-VNNI, its child). */
void rnc_q8_quantize_avx2(const float *v, size_t n, size_t npad, float static_scale, float static_inv,
                          int8_t *q, float *scale)
{
    rnc_avx2_quantize_row(v, n, npad, static_scale, static_inv, q, scale);
}
