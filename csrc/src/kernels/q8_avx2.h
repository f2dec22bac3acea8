/* The AVX2 q8 product's building blocks, shared by the GEMM (q8_gemm_avx2.c) and the cell
 * strategies (cells_avx2.c); compiled with -mavx2 -mfma.
 *
 * The "xor trick" (exact int32 sums with vpmaddubsw): the unsigned operand is |x| and the signed
 * one W ^ m, where m = 0xff in the bytes where x < 0 and 0 elsewhere. For x_k < 0, W ^ 0xff = ~W =
 * -W - 1, so |x_k| * ~W = x_k * W - |x_k|: the sum is the exact product minus C = sum of |x_k| over
 * the negative x_k, a constant of the column (the same for every row), added back by starting the
 * accumulators at C. vpmaddubsw's int16 pair sums cannot saturate for any int8 x and W, not only
 * for the contract's [-127, 127]: where x >= 0 the pair is |x| * W with |x| <= 127, in [-32512,
 * 32258]; where x < 0, |x| <= 128 (vpabsb of -128 is 0x80, read as unsigned 128) and ~W in [-128,
 * 127], so the pair is in [-32768, 32512]; int16 holds both. vpmaddwd with ones widens the pairs
 * to int32.
 */
#ifndef RNC_Q8_AVX2_H
#define RNC_Q8_AVX2_H
#include <immintrin.h>
#include <string.h>

#include "../internal.h"

#ifndef RNC_AI
#define RNC_AI static inline __attribute__((always_inline))
#endif

RNC_AI __m256i rnc_bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

RNC_AI int32_t rnc_tail_group(const int8_t *q, int K)
{
    int8_t t[4] = {0, 0, 0, 0};
    for (int k = K / 4 * 4, j = 0; k < K; ++k, ++j) t[j] = q[k];
    int32_t v;
    memcpy(&v, t, 4);
    return v;
}

#define RNC_LD(p) _mm256_loadu_si256((const __m256i *)(p))
/* acc += maddubs(|x|, W ^ m) widened; m = 0xff in the bytes where x < 0 (see the top). */
#define RNC_MAC(acc, w, m, ax)                                                                    \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_xor_si256(w, m)), ones))

static inline void rnc_store16(int32_t *dst, int rows, __m256i lo, __m256i hi)
{
    if (rows >= 16) {
        _mm256_storeu_si256((__m256i *)dst, lo);
        _mm256_storeu_si256((__m256i *)(dst + 8), hi);
    } else {
        int32_t t[16];
        _mm256_storeu_si256((__m256i *)t, lo);
        _mm256_storeu_si256((__m256i *)(t + 8), hi);
        memcpy(dst, t, sizeof(int32_t) * (size_t)rows);
    }
}

/* The xor trick's correction for one column: the sum of |x_k| over the negative x_k (k < K). */
static inline int32_t rnc_negsum(const int8_t *q, int K)
{
    int32_t s = 0;
    for (int k = 0; k < K; ++k) s += q[k] < 0 ? -q[k] : 0;
    return s;
}

/* One column's |x| and xor mask m made once per call (in xa, xm, zero-padded to round4(K) <=
 * RNC_Q8_PREP_MAX), so that each group of 4 inputs costs two broadcast loads instead of a
 * broadcast, vpabsb and vpcmpgtb (measured: 2 x 768x256 GEMMs 4.41 -> 4.19 us). Returns the
 * column's correction (rnc_negsum). */
#define RNC_Q8_PREP_MAX 1024
static inline int32_t rnc_q8_prep(const int8_t *q, int K, int8_t *xa, int8_t *xm)
{
    const __m256i zero = _mm256_setzero_si256();
    __m256i sum = zero;
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(q + k));
        const __m256i a = _mm256_abs_epi8(v), m = _mm256_cmpgt_epi8(zero, v);
        _mm256_storeu_si256((__m256i *)(xa + k), a);
        _mm256_storeu_si256((__m256i *)(xm + k), m);
        sum = _mm256_add_epi64(sum, _mm256_sad_epu8(_mm256_and_si256(a, m), zero));
    }
    int64_t t[4];
    _mm256_storeu_si256((__m256i *)t, sum);
    int32_t corr = (int32_t)(t[0] + t[1] + t[2] + t[3]);
    for (; k < K; ++k) {
        const int8_t v = q[k];
        xa[k] = (int8_t)(v < 0 ? -v : v);
        xm[k] = (int8_t)(v < 0 ? -1 : 0);
        corr += v < 0 ? -v : 0;
    }
    for (; k < (K + 3) / 4 * 4; ++k) xa[k] = xm[k] = 0;
    return corr;
}

#endif
