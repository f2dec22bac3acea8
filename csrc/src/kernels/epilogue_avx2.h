/* AVX2 versions of the float32 epilogue pieces of cell_template.h (the cell update and the
 * activation quantiser), written with intrinsics because GCC does not if-convert the scalar
 * clamps (x > C ? C : x) into vector code. Included by cells_avx2.c (-mavx2 -mfma) and plugged
 * into the template through its RNC_CELL_UPDATE / RNC_QUANTIZE_ROW hooks.
 *
 * Bit-identical to the scalar code (activations.h, util.c's rnc__quantize_row): the same IEEE
 * float32 operations in the same order, no FMA (the file is compiled with -ffp-contract=off and
 * uses separate mul/add intrinsics), each scalar select written as the min/max operand order with
 * the same result, NaN included: x > C ? C : x == vminps(C, x); x < -C ? -C : x == vmaxps(-C, x);
 * a > m ? a : m == vmaxps(a, m); x > 0 ? x : 0 == vmaxps(x, 0) (second operand on NaN... and
 * relu(NaN) = 0 in both). The C tests compare the AVX2 cells with the generic ones bit for bit.
 *
 * Over-reads: gi/gh are read in 8-lane vectors up to round8(H) <= Hp (in bounds: those arrays
 * have G*Hp entries); h, c, y are accessed with masks past H. */
#ifndef RNC_EPILOGUE_AVX2_H
#define RNC_EPILOGUE_AVX2_H
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../internal.h"

#define RNC_AVX2_AI static inline __attribute__((always_inline))

RNC_AVX2_AI __m256 rnc_avx2_tanh8(__m256 x)
{
    const __m256 C = _mm256_set1_ps(7.90531110763549805f);
    x = _mm256_min_ps(C, x);
    x = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), C), x);
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

RNC_AVX2_AI __m256 rnc_avx2_sigmoid8(__m256 x)
{
    const __m256 h = _mm256_set1_ps(0.5f);
    return _mm256_add_ps(h, _mm256_mul_ps(h, rnc_avx2_tanh8(_mm256_mul_ps(h, x))));
}

RNC_AVX2_AI __m256i rnc_avx2_mask(size_t left)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int k = left >= 8 ? 8 : (int)left;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), idx);
}

static inline void rnc_avx2_cell_update(uint32_t kind, uint32_t H, uint32_t Hp, const float *restrict gi,
                                        const float *restrict gh, float *restrict h, float *restrict c,
                                        float *restrict y)
{
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    (void)Hp;
    for (uint32_t u = 0; u < H; u += 8) {
        const __m256i m = rnc_avx2_mask(H - u);
        __m256 hn;
#define LD(p) _mm256_loadu_ps(p)
        switch (kind) {
        case RNC_RNN_TANH: hn = rnc_avx2_tanh8(_mm256_add_ps(LD(gi + u), LD(gh + u))); break;
        case RNC_RNN_RELU: hn = _mm256_max_ps(_mm256_add_ps(LD(gi + u), LD(gh + u)), zero); break;
        case RNC_GRU: {
            const __m256 r = rnc_avx2_sigmoid8(_mm256_add_ps(LD(gi + u), LD(gh + u)));
            const __m256 z = rnc_avx2_sigmoid8(_mm256_add_ps(LD(gi + Hp + u), LD(gh + Hp + u)));
            const __m256 n = rnc_avx2_tanh8(
                _mm256_add_ps(LD(gi + 2 * Hp + u), _mm256_mul_ps(r, LD(gh + 2 * Hp + u))));
            hn = _mm256_add_ps(_mm256_mul_ps(_mm256_sub_ps(one, z), n),
                               _mm256_mul_ps(z, _mm256_maskload_ps(h + u, m)));
            break;
        }
        default: {
            const __m256 i = rnc_avx2_sigmoid8(_mm256_add_ps(LD(gi + u), LD(gh + u)));
            const __m256 f = rnc_avx2_sigmoid8(_mm256_add_ps(LD(gi + Hp + u), LD(gh + Hp + u)));
            const __m256 g = rnc_avx2_tanh8(_mm256_add_ps(LD(gi + 2 * Hp + u), LD(gh + 2 * Hp + u)));
            const __m256 o = rnc_avx2_sigmoid8(_mm256_add_ps(LD(gi + 3 * Hp + u), LD(gh + 3 * Hp + u)));
            const __m256 c2 = _mm256_add_ps(_mm256_mul_ps(f, _mm256_maskload_ps(c + u, m)),
                                            _mm256_mul_ps(i, g));
            _mm256_maskstore_ps(c + u, m, c2);
            hn = _mm256_mul_ps(o, rnc_avx2_tanh8(c2));
            break;
        }
        }
#undef LD
        _mm256_maskstore_ps(h + u, m, hn);
        if (y) _mm256_maskstore_ps(y + u, m, hn);
    }
}

/* util.c's rnc__quantize_row, bit for bit. */
static inline void rnc_avx2_quantize_row(const float *v, size_t n, size_t npad, float static_scale,
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
            const __m256 a = _mm256_and_ps(_mm256_maskload_ps(v + i, rnc_avx2_mask(n - i)), absmask);
            mv = _mm256_max_ps(a, mv); /* a > m ? a : m: NaN never wins */
        }
        float t[8];
        _mm256_storeu_ps(t, mv);
        float m = 0.0f;
        for (int j = 0; j < 8; ++j) m = t[j] > m ? t[j] : m;
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
        __m256 p = _mm256_mul_ps(_mm256_maskload_ps(v + i, rnc_avx2_mask(n - i)), vinv);
        p = _mm256_and_ps(p, _mm256_cmp_ps(p, p, _CMP_ORD_Q)); /* NaN -> 0 */
        p = _mm256_min_ps(hi, p);
        p = _mm256_max_ps(lo, p);
        p = _mm256_sub_ps(_mm256_add_ps(p, magic), magic);
        const __m256i w = _mm256_cvtps_epi32(p);
        const __m128i h16 = _mm_packs_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
        const __m128i b8 = _mm_packs_epi16(h16, h16);
        if (n - i >= 8) {
            _mm_storel_epi64((__m128i *)(q + i), b8);
        } else {
            int8_t t[16];
            _mm_storeu_si128((__m128i *)t, b8);
            memcpy(q + i, t, n - i);
        }
    }
    if (npad > n) memset(q + n, 0, npad - n);
    *scale = s;
}

#endif
