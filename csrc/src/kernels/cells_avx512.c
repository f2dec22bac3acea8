/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX-512 (F/BW/VL/DQ) build of cell_template.h:
 * products in gemm_avx512.c (f32 FMA, q8 vpmaddubsw+vpmaddwd); the cell update and the
 * activation quantisation from epilogue_avx512.h (intrinsics, 16 lanes), q8: the cell update
 * fused with the dequantisation (epilogue_avx512_q8.h). Same float32
 * operations as every other ISA (no FP contraction), so q8 outputs equal the generic kernel's
 * bit for bit. */
#include "../internal.h"
#include "epilogue_avx512.h"
#include "kernels_avx512.h"

#include "epilogue_avx512_q8.h"

/* intrinsics epilogue (bit-identical, more in flight) through the template's hooks */
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_Q8_UPDATE rnc_avx512_q8_update
#define RNC_SFX avx512
#include "cell_template.h"

#include "gemm_deq.h"
RNC_DEFINE_Q8_GEMM_DEQ(avx512)

/* The quantiser of the AVX-512 path (and of avx512vnni and amx, its children). */
void rnc_q8_quantize_avx512(const float *v, size_t n, size_t npad, float static_scale,
                            float static_inv, int8_t *q, float *scale)
{
    rnc_x86_quantize_row_avx512(v, n, npad, static_scale, static_inv, q, scale);
}
