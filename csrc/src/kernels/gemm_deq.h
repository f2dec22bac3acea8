/* The q8 input projection with its dequantisation (rnc_gemm_deq_fn, internal.h) for an ISA whose
 * only fused form is its q8 product: the product's exact int32 accumulators written into Y, then
 * dequantised in place, for n < N, r < R:
 *   Y[n*ldy + r] = (float)acc[n][r] * (sx[n] * sw[r]) + bias[r]
 * in the float32 order every row of the op follows (no contraction: -ffp-contract=off), so every
 * instance gives the generic row's bits. RNC_DEFINE_Q8_GEMM_DEQ(sfx) defines
 * rnc_q8_gemm_deq_<sfx> over rnc_q8_gemm_<sfx> (in the ISA's cells file, with its flags). */
#ifndef RNC_GEMM_DEQ_H
#define RNC_GEMM_DEQ_H
#include "../internal.h"

static inline void rnc__dequant_in_place(float *Y, int R, int N, int ldy, const float *sx,
                                         const float *sw, const float *bias)
{
    for (int n = 0; n < N; ++n) {
        float *y = Y + (size_t)n * ldy;
        const int32_t *acc = (const int32_t *)(const void *)y;
        const float sv = sx[n];
        for (int r = 0; r < R; ++r) y[r] = (float)acc[r] * (sv * sw[r]) + bias[r];
    }
}

#define RNC_DEFINE_Q8_GEMM_DEQ(sfx)                                                               \
    void rnc_q8_gemm_deq_##sfx(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,   \
                               const float *sx, const float *sw, const float *bias, float *Y,     \
                               int ldy)                                                           \
    {                                                                                             \
        rnc_q8_gemm_##sfx(Wp, R, K, N, Q, ldq, (int32_t *)(void *)Y, ldy);                        \
        rnc__dequant_in_place(Y, R, N, ldy, sx, sw, bias);                                        \
    }

#endif
