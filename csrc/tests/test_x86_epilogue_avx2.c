/* Callable wrappers of the AVX2 epilogue (src/kernels/epilogue_avx2.h, used by the AVX2 and AVX-VNNI cells) for
 * tests/test_x86_avx512.c, which checks them bit for bit against the scalar formulas. Compiled with
 * -mavx2 -mfma only (the test calls them only when the CPU has AVX2). */
#include "internal.h"
#include "kernels/epilogue_avx2.h"

void rnc_test_cell_update_avx2(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi, const float *gh,
                               float *h, float *c, float *y);
void rnc_test_quantize_row_avx2(const float *v, size_t n, size_t npad, float static_scale, int8_t *q,
                                float *scale);

void rnc_test_cell_update_avx2(uint32_t kind, uint32_t H, uint32_t Hp, const float *gi, const float *gh,
                               float *h, float *c, float *y)
{
    rnc_avx2_cell_update(kind, H, Hp, gi, gh, h, c, y);
}

void rnc_test_quantize_row_avx2(const float *v, size_t n, size_t npad, float static_scale, int8_t *q,
                                float *scale)
{
    rnc_avx2_quantize_row(v, n, npad, static_scale, static_scale > 0.0f ? 1.0f / static_scale : 0.0f, q,
                          scale);
}
