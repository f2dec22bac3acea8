/* The q8 dequantisation fused into the AVX-512 cell update (cell_template.h's RNC_Q8_UPDATE hook):
 * cells_avx512.c (dense q8 on avx512 and its children) and q8_sparse_avx512vnni.c. Include after
 * epilogue_avx512.h, in a file built with the AVX-512 flags. */
#ifndef RNC_EPILOGUE_AVX512_Q8_H
#define RNC_EPILOGUE_AVX512_Q8_H
#include "epilogue_avx512.h"

/* The q8 dequantisation fused into the cell update (cell_template.h's RNC_Q8_UPDATE hook, as the
 * AVX2 path does): each 16-unit chunk's pre-activations are made in registers from the int32
 * accumulators, pre = (float)acc * (s_v * s_w[r]) + b[r] (the generic kernel's float32 operations
 * in its order), and go straight into rnc_x86_unit16_v, instead of a pass writing gi/gh to memory
 * and one reading them back. acc_i NULL: the input part is the float gi (whole-sequence mode). */
static inline __attribute__((always_inline)) __m512 rnc_avx512_pre16(const int32_t *acc, __m512 sv,
                                                                     const float *sw, const float *b,
                                                                     const float *f, size_t o,
                                                                     __mmask16 m)
{
    if (!acc) return _mm512_maskz_loadu_ps(m, f + o);
    const __m512 a = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, acc + o));
    return _mm512_add_ps(_mm512_mul_ps(a, _mm512_mul_ps(sv, _mm512_maskz_loadu_ps(m, sw + o))),
                         _mm512_maskz_loadu_ps(m, b + o));
}

static inline __attribute__((always_inline)) void
rnc_avx512_q8_unit16(uint32_t kind, uint32_t Hp, uint32_t u, __mmask16 m, const int32_t *acc_i, __m512 svi,
                     const float *s_ih, const float *b_ih, const float *gi, const int32_t *acc_h, __m512 svh,
                     const float *s_hh, const float *b_hh, float *h, float *c, float *y)
{
    const uint32_t G = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    __m512 vi[4], vh[4];
    for (uint32_t g = 0; g < G; ++g) {
        vi[g] = rnc_avx512_pre16(acc_i, svi, s_ih, b_ih, gi, (size_t)g * Hp + u, m);
        vh[g] = rnc_avx512_pre16(acc_h, svh, s_hh, b_hh, NULL, (size_t)g * Hp + u, m);
    }
    rnc_x86_unit16_v(kind, u, m, vi, vh, h, c, y);
}

static inline __attribute__((always_inline)) void
rnc_avx512_q8_update_k(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i, float sxi,
                       const float *s_ih, const float *b_ih, const float *gi, const int32_t *acc_h,
                       float sxh, const float *s_hh, const float *b_hh, float *h, float *c, float *y)
{
    const __m512 svi = _mm512_set1_ps(sxi), svh = _mm512_set1_ps(sxh);
    uint32_t u = 0;
    for (; u + 32 <= H; u += 32) {
        rnc_avx512_q8_unit16(kind, Hp, u, RNC_EP_FULL, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, h,
                             c, y);
        rnc_avx512_q8_unit16(kind, Hp, u + 16, RNC_EP_FULL, acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh,
                             b_hh, h, c, y);
    }
    for (; u < H; u += 16)
        rnc_avx512_q8_unit16(kind, Hp, u, H - u >= 16 ? RNC_EP_FULL : (__mmask16)((1u << (H - u)) - 1u),
                             acc_i, svi, s_ih, b_ih, gi, acc_h, svh, s_hh, b_hh, h, c, y);
}

static inline void rnc_avx512_q8_update(uint32_t kind, uint32_t H, uint32_t Hp, const int32_t *acc_i,
                                        float sxi, const float *s_ih, const float *b_ih, const float *gi,
                                        const int32_t *acc_h, float sxh, const float *s_hh,
                                        const float *b_hh, float *h, float *c, float *y)
{
    switch (kind) { /* one loop per cell kind: the kind test leaves the loop */
    case RNC_RNN_TANH:
        rnc_avx512_q8_update_k(RNC_RNN_TANH, H, Hp, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, h, c, y);
        break;
    case RNC_RNN_RELU:
        rnc_avx512_q8_update_k(RNC_RNN_RELU, H, Hp, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, h, c, y);
        break;
    case RNC_GRU:
        rnc_avx512_q8_update_k(RNC_GRU, H, Hp, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, h, c, y);
        break;
    default:
        rnc_avx512_q8_update_k(RNC_LSTM, H, Hp, acc_i, sxi, s_ih, b_ih, gi, acc_h, sxh, s_hh, b_hh, h, c, y);
        break;
    }
}

#endif
