/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX-512 (F/BW/VL/DQ) build of cell_template.h:
 * products in gemv_avx512.c (f32 FMA, q8 vpmaddubsw+vpmaddwd); the cell update and the
 * activation quantisation from epilogue_avx512.h (intrinsics, 16 lanes). Same float32
 * operations as every other ISA (no FP contraction), so q8 outputs equal the generic kernel's
 * bit for bit. */
#include "../internal.h"
#include "epilogue_avx512.h"
#include "kernels_avx512.h"
/* intrinsics epilogue (bit-identical, more in flight) through the template's hooks */
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_SFX avx512
#include "cell_template.h"

/* For csrc/tests/test_x86_avx512.c: the AVX-512 quantisation as a callable function. */
void rnc_x86_quantize_row_avx512_fn(const float *v, size_t n, size_t npad, float static_scale,
                                    int8_t *q, float *scale);
void rnc_x86_quantize_row_avx512_fn(const float *v, size_t n, size_t npad, float static_scale,
                                    int8_t *q, float *scale)
{
    rnc_x86_quantize_row_avx512(v, n, npad, static_scale, q, scale);
}
