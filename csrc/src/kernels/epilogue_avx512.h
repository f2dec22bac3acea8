/* AVX-512 versions of the float32 epilogue pieces of cell_template.h, written with intrinsics so
 * that several independent dependency chains (the rational tanh, its division) are in flight,
 * which the compiler's auto-vectorised loop does not achieve. Included by cells_avx512*.c
 * (AVX-512F/BW flags) and plugged into the template through its RNC_CELL_UPDATE /
 * RNC_QUANTIZE_ROW hooks.
 *
 * Bit-identical to the scalar code (activations.h, util.c's rnc_q8_quantize_generic): the same IEEE
 * float32 operations in the same order, no contraction (files compiled with -ffp-contract=off),
 * and each scalar select written as the min/max operand order that has the same result,
 * NaN included: x > C ? C : x == vminps(C, x); x < -C ? -C : x == vmaxps(-C, x);
 * a > m ? a : m == vmaxps(a, m). csrc/tests/test_x86_avx512.c checks the q8 cells bit for bit
 * against the generic ones and the quantisation against rnc_q8_quantize_generic. */
#ifndef RNC_EPILOGUE_AVX512_H
#define RNC_EPILOGUE_AVX512_H
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "activations.h"
#define RNC_EP_AI static inline __attribute__((always_inline))
RNC_EP_AI __m512 rnc_x86_tanh16(__m512 x)
{
    const __m512 C = _mm512_set1_ps(7.90531110763549805f);
    x = _mm512_min_ps(C, x);                                   /* x > C ? C : x (NaN kept) */
    x = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), C), x); /* x < -C ? -C : x */
    const __m512 x2 = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(RNC_TANH_P0);
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P1));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P2));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P3));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P4));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P5));
    p = _mm512_add_ps(_mm512_mul_ps(p, x2), _mm512_set1_ps(RNC_TANH_P6));
    p = _mm512_mul_ps(p, x);
    __m512 q = _mm512_set1_ps(RNC_TANH_Q0);
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(RNC_TANH_Q1));
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(RNC_TANH_Q2));
    q = _mm512_add_ps(_mm512_mul_ps(q, x2), _mm512_set1_ps(RNC_TANH_Q3));
    /* no final clamp to [-1, 1]: the quotient never leaves it (activations.h) */
    return _mm512_div_ps(p, q);
}
/* rnc_reluf on 16 lanes: max(x, 0) where x is a number (-0 gives +0), x itself where it is NaN */
RNC_EP_AI __m512 rnc_x86_relu16(__m512 x)
{
    return _mm512_mask_max_ps(x, _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q), x, _mm512_setzero_ps());
}
RNC_EP_AI __m512 rnc_x86_sigmoid16(__m512 x)
{
    const __m512 h = _mm512_set1_ps(0.5f);
    return _mm512_add_ps(h, _mm512_mul_ps(h, rnc_x86_tanh16(_mm512_mul_ps(h, x))));
}

/* The cell update of cell_template.h (rnc_cell_update_<sfx>): 16 units per vector, two vectors
 * per loop iteration (independent dependency chains for the out-of-order core), masked tail.
 * kind: RNC_RNN_TANH, RNC_RNN_RELU, RNC_GRU (reset_after=1 form), RNC_LSTM. */
#define RNC_EP_LD(p, m) _mm512_maskz_loadu_ps((m), (p))
#define RNC_EP_FULL ((__mmask16)0xFFFF)

/* The cell update of 16 units (u .. u+15, lanes in m) from pre-activations already in registers:
 * gi[g], gh[g] = gate g's input and recurrent parts (incl. biases). The q8 batch kernel of
 * cells_avx512vnni.c calls it straight from its accumulators; rnc_x86_unit16 after loading them. */
RNC_EP_AI void rnc_x86_unit16_v(uint32_t kind, uint32_t u, __mmask16 m, const __m512 *gi, const __m512 *gh,
                                float *restrict h, float *restrict c, float *restrict y)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 hn;
    if (kind == RNC_RNN_TANH) {
        hn = rnc_x86_tanh16(_mm512_add_ps(gi[0], gh[0]));
    } else if (kind == RNC_RNN_RELU) {
        hn = rnc_x86_relu16(_mm512_add_ps(gi[0], gh[0]));
    } else if (kind == RNC_GRU) {
        const __m512 r = rnc_x86_sigmoid16(_mm512_add_ps(gi[0], gh[0]));
        const __m512 z = rnc_x86_sigmoid16(_mm512_add_ps(gi[1], gh[1]));
        const __m512 n = rnc_x86_tanh16(_mm512_add_ps(gi[2], _mm512_mul_ps(r, gh[2])));
        hn = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, z), n), _mm512_mul_ps(z, RNC_EP_LD(h + u, m)));
    } else {
        const __m512 i = rnc_x86_sigmoid16(_mm512_add_ps(gi[0], gh[0]));
        const __m512 f = rnc_x86_sigmoid16(_mm512_add_ps(gi[1], gh[1]));
        const __m512 g = rnc_x86_tanh16(_mm512_add_ps(gi[2], gh[2]));
        const __m512 o = rnc_x86_sigmoid16(_mm512_add_ps(gi[3], gh[3]));
        const __m512 c2 = _mm512_add_ps(_mm512_mul_ps(f, RNC_EP_LD(c + u, m)), _mm512_mul_ps(i, g));
        _mm512_mask_storeu_ps(c + u, m, c2);
        hn = _mm512_mul_ps(o, rnc_x86_tanh16(c2));
    }
    _mm512_mask_storeu_ps(h + u, m, hn);
    if (y) _mm512_mask_storeu_ps(y + u, m, hn);
}

RNC_EP_AI void rnc_x86_unit16(uint32_t kind, uint32_t Hp, uint32_t u, __mmask16 m, const float *restrict gi,
                              const float *restrict gh, float *restrict h, float *restrict c,
                              float *restrict y)
{
    const uint32_t G = kind == RNC_GRU ? 3 : kind == RNC_LSTM ? 4 : 1;
    __m512 vi[4], vh[4];
    for (uint32_t g = 0; g < G; ++g) {
        vi[g] = RNC_EP_LD(gi + g * Hp + u, m);
        vh[g] = RNC_EP_LD(gh + g * Hp + u, m);
    }
    rnc_x86_unit16_v(kind, u, m, vi, vh, h, c, y);
}

RNC_EP_AI void rnc_x86_update_kind(uint32_t kind, uint32_t H, uint32_t Hp, const float *restrict gi,
                                   const float *restrict gh, float *restrict h, float *restrict c,
                                   float *restrict y)
{
    uint32_t u = 0;
    for (; u + 32 <= H; u += 32) {
        rnc_x86_unit16(kind, Hp, u, RNC_EP_FULL, gi, gh, h, c, y);
        rnc_x86_unit16(kind, Hp, u + 16, RNC_EP_FULL, gi, gh, h, c, y);
    }
    for (; u < H; u += 16)
        rnc_x86_unit16(kind, Hp, u, H - u >= 16 ? RNC_EP_FULL : (__mmask16)((1u << (H - u)) - 1u), gi, gh, h,
                       c, y);
}

static inline void rnc_x86_cell_update_avx512(uint32_t kind, uint32_t H, uint32_t Hp,
                                              const float *restrict gi, const float *restrict gh,
                                              float *restrict h, float *restrict c, float *restrict y)
{
    switch (kind) { /* one loop per cell kind: the kind test leaves the loop */
    case RNC_RNN_TANH: rnc_x86_update_kind(RNC_RNN_TANH, H, Hp, gi, gh, h, c, y); break;
    case RNC_RNN_RELU: rnc_x86_update_kind(RNC_RNN_RELU, H, Hp, gi, gh, h, c, y); break;
    case RNC_GRU: rnc_x86_update_kind(RNC_GRU, H, Hp, gi, gh, h, c, y); break;
    default: rnc_x86_update_kind(RNC_LSTM, H, Hp, gi, gh, h, c, y); break;
    }
}

/* util.c's rnc_q8_quantize_generic, bit for bit (max |v| ignoring NaN, v * (127 / m), NaN -> 0, clamp to
 * +-127, round half to even, zero padding to npad). */
static inline void rnc_x86_quantize_row_avx512(const float *v, size_t n, size_t npad, float static_scale,
                                               float static_inv, int8_t *q, float *scale)
{
    float inv, s;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = static_inv > 0.0f ? static_inv : 1.0f / static_scale; /* a caller without it */
    } else {
        __m512 mv = _mm512_setzero_ps();
        const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
        for (size_t i = 0; i < n; i += 16) {
            const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
            const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, v + i)), absmask));
            mv = _mm512_max_ps(a, mv); /* a > m ? a : m: NaN never wins */
        }
        const float m = _mm512_reduce_max_ps(mv);
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    const __m512 vinv = _mm512_set1_ps(inv), hi = _mm512_set1_ps(127.0f), lo = _mm512_set1_ps(-127.0f);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + i), vinv);
        /* min/max return their second operand when one is NaN: NaN stays NaN, +-Inf clamps */
        p = _mm512_max_ps(lo, _mm512_min_ps(hi, p));
        /* round to nearest, ties to even (embedded, whatever MXCSR says): the generic rounding for
         * |p| <= 127; NaN converts to 0x80000000, whose low byte (vpmovdb truncates) is 0: the
         * generic NaN -> 0 */
        const __m512i r = _mm512_cvt_roundps_epi32(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_mask_storeu_epi8(q + i, m, _mm512_cvtepi32_epi8(r));
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
