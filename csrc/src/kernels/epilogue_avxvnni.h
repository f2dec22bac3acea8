/* AVX2 (8-lane) versions of the float32 epilogue pieces of cell_template.h, for the AVX-VNNI
 * cells (cells_avxvnni.c, compiled with -mavx2 -mfma -mavxvnni; only AVX2 instructions here).
 * Same contract as epilogue_avx512.h: bit-identical to the scalar code (activations.h and util.c's
 * rnc__quantize_row) -- the same IEEE float32 operations in the same order, no contraction, and
 * every scalar select written as the vminps/vmaxps operand order with the same result, NaN
 * included. Tested against the scalar formulas in csrc/tests/test_x86_epilogue_avx2.c. */
#ifndef RNC_EPILOGUE_AVXVNNI_H
#define RNC_EPILOGUE_AVXVNNI_H
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RNC_E8_AI static inline __attribute__((always_inline))

RNC_E8_AI __m256 rnc_x86_tanh8(__m256 x)
{
    const __m256 C = _mm256_set1_ps(7.90531110763549805f);
    x = _mm256_min_ps(C, x);                                      /* x > C ? C : x */
    x = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), C), x);  /* x < -C ? -C : x */
    const __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(2.00018790482477e-13f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(-8.60467152213735e-11f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(5.12229709037114e-08f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(1.48572235717979e-05f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(6.37261928875436e-04f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), _mm256_set1_ps(4.89352455891786e-03f));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(1.18534705686654e-04f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(2.26843463243900e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), _mm256_set1_ps(4.89352518554385e-03f));
    __m256 r = _mm256_div_ps(p, q);
    r = _mm256_min_ps(_mm256_set1_ps(1.0f), r);
    r = _mm256_max_ps(_mm256_set1_ps(-1.0f), r);
    return r;
}

RNC_E8_AI __m256 rnc_x86_sigmoid8(__m256 x)
{
    const __m256 h = _mm256_set1_ps(0.5f);
    return _mm256_add_ps(h, _mm256_mul_ps(h, rnc_x86_tanh8(_mm256_mul_ps(h, x))));
}

/* lanes < n (1 <= n <= 8) as an AVX2 load/store mask */
RNC_E8_AI __m256i rnc_x86_mask8(uint32_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define RNC_E8_LD(p, m) _mm256_maskload_ps((p), (m))

RNC_E8_AI void rnc_x86_unit8(uint32_t kind, uint32_t Hp, uint32_t u, __m256i m, const float *restrict gi,
                             const float *restrict gh, float *restrict h, float *restrict c,
                             float *restrict y)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 hn;
    if (kind == RNC_RNN_TANH) {
        hn = rnc_x86_tanh8(_mm256_add_ps(RNC_E8_LD(gi + u, m), RNC_E8_LD(gh + u, m)));
    } else if (kind == RNC_RNN_RELU) {
        hn = _mm256_max_ps(_mm256_add_ps(RNC_E8_LD(gi + u, m), RNC_E8_LD(gh + u, m)), _mm256_setzero_ps());
    } else if (kind == RNC_GRU) {
        const __m256 r = rnc_x86_sigmoid8(_mm256_add_ps(RNC_E8_LD(gi + u, m), RNC_E8_LD(gh + u, m)));
        const __m256 z = rnc_x86_sigmoid8(_mm256_add_ps(RNC_E8_LD(gi + Hp + u, m), RNC_E8_LD(gh + Hp + u, m)));
        const __m256 n = rnc_x86_tanh8(_mm256_add_ps(RNC_E8_LD(gi + 2 * Hp + u, m),
                                                     _mm256_mul_ps(r, RNC_E8_LD(gh + 2 * Hp + u, m))));
        hn = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, z), n), _mm256_mul_ps(z, RNC_E8_LD(h + u, m)));
    } else {
        const __m256 i = rnc_x86_sigmoid8(_mm256_add_ps(RNC_E8_LD(gi + u, m), RNC_E8_LD(gh + u, m)));
        const __m256 f = rnc_x86_sigmoid8(_mm256_add_ps(RNC_E8_LD(gi + Hp + u, m), RNC_E8_LD(gh + Hp + u, m)));
        const __m256 g = rnc_x86_tanh8(_mm256_add_ps(RNC_E8_LD(gi + 2 * Hp + u, m), RNC_E8_LD(gh + 2 * Hp + u, m)));
        const __m256 o = rnc_x86_sigmoid8(_mm256_add_ps(RNC_E8_LD(gi + 3 * Hp + u, m), RNC_E8_LD(gh + 3 * Hp + u, m)));
        const __m256 c2 = _mm256_add_ps(_mm256_mul_ps(f, RNC_E8_LD(c + u, m)), _mm256_mul_ps(i, g));
        _mm256_maskstore_ps(c + u, m, c2);
        hn = _mm256_mul_ps(o, rnc_x86_tanh8(c2));
    }
    _mm256_maskstore_ps(h + u, m, hn);
    if (y) _mm256_maskstore_ps(y + u, m, hn);
}

RNC_E8_AI void rnc_x86_update_kind8(uint32_t kind, uint32_t H, uint32_t Hp, const float *restrict gi,
                                    const float *restrict gh, float *restrict h, float *restrict c,
                                    float *restrict y)
{
    const __m256i full = _mm256_set1_epi32(-1);
    uint32_t u = 0;
    for (; u + 16 <= H; u += 16) {
        rnc_x86_unit8(kind, Hp, u, full, gi, gh, h, c, y);
        rnc_x86_unit8(kind, Hp, u + 8, full, gi, gh, h, c, y);
    }
    for (; u < H; u += 8) rnc_x86_unit8(kind, Hp, u, rnc_x86_mask8(H - u), gi, gh, h, c, y);
}

/* The cell update of cell_template.h (rnc_cell_update_<sfx>), 8 units per vector. */
static inline void rnc_x86_cell_update_avx2(uint32_t kind, uint32_t H, uint32_t Hp, const float *restrict gi,
                                            const float *restrict gh, float *restrict h, float *restrict c,
                                            float *restrict y)
{
    switch (kind) {
    case RNC_RNN_TANH: rnc_x86_update_kind8(RNC_RNN_TANH, H, Hp, gi, gh, h, c, y); break;
    case RNC_RNN_RELU: rnc_x86_update_kind8(RNC_RNN_RELU, H, Hp, gi, gh, h, c, y); break;
    case RNC_GRU: rnc_x86_update_kind8(RNC_GRU, H, Hp, gi, gh, h, c, y); break;
    default: rnc_x86_update_kind8(RNC_LSTM, H, Hp, gi, gh, h, c, y); break;
    }
}

/* util.c's rnc__quantize_row, bit for bit. */
static inline void rnc_x86_quantize_row_avx2(const float *v, size_t n, size_t npad, float static_scale,
                                             int8_t *q, float *scale)
{
    float inv, s;
    if (static_scale > 0.0f) {
        s = static_scale;
        inv = 1.0f / static_scale;
    } else {
        __m256 mv = _mm256_setzero_ps();
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
        for (size_t i = 0; i < n; i += 8) {
            const __m256i m = rnc_x86_mask8(n - i >= 8 ? 8u : (uint32_t)(n - i));
            mv = _mm256_max_ps(_mm256_and_ps(_mm256_maskload_ps(v + i, m), absmask), mv); /* NaN never wins */
        }
        float t[8];
        _mm256_storeu_ps(t, mv);
        float m = 0.0f;
        for (int i = 0; i < 8; ++i) m = t[i] > m ? t[i] : m;
        if (m == 0.0f) {
            memset(q, 0, npad);
            *scale = 0.0f;
            return;
        }
        s = m / 127.0f;
        inv = 127.0f / m;
    }
    const __m256 vinv = _mm256_set1_ps(inv), hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    for (size_t i = 0; i < n; i += 8) {
        const size_t k = n - i >= 8 ? 8 : n - i;
        __m256 p = _mm256_mul_ps(_mm256_maskload_ps(v + i, rnc_x86_mask8((uint32_t)k)), vinv);
        p = _mm256_and_ps(p, _mm256_cmp_ps(p, p, _CMP_ORD_Q)); /* NaN -> 0 */
        p = _mm256_min_ps(hi, p);
        p = _mm256_max_ps(lo, p);
        p = _mm256_sub_ps(_mm256_add_ps(p, magic), magic);
        const __m256i w = _mm256_cvtps_epi32(p);
        const __m128i b16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        const __m128i b8 = _mm_packs_epi16(b16, b16);
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)tmp, b8);
        memcpy(q + i, tmp, k);
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
