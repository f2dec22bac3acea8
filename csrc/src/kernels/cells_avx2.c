/* Fused RNN/GRU/LSTM step kernels, q8 and f32, AVX2+FMA build of cell_template.h: products in
 * q8_gemm_avx2.c / f32_gemm_avx2.c, the cell update and the activation quantisation from
 * epilogue_avx2.h (intrinsics, 8 lanes, bit-identical to the generic code). */
#include "epilogue_avx2.h"
#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_SFX avx2
#include "cell_template.h"
