/* q8 GEMM, AVX2 (compiled with -mavx2 -mfma only):
 * Acc[n*ldacc + r] = sum_{k<K} Wq[r,k] * Q[n*ldq + k], exact int32.
 *
 * A 16-row x 4-input tile of the packed layout is 64 bytes = two ymm registers (rows 0-7 and
 * 8-15, each 32-bit lane = 4 inputs of one row). x's 4-byte group is broadcast to every lane.
 * Exactness (no vpmaddubsw saturation): the unsigned operand is |x| (<= 127) and x's sign is
 * moved onto the weight with vpsignb (weights are in [-127, 127], never -128, so the negation
 * cannot wrap); each int16 pair sum is then at most 2 * 127 * 127 = 32258 < 32767. vpmaddwd
 * with ones widens the pairs to int32. Four 16-row blocks are kept in flight (8 accumulators).
 */
#include <immintrin.h>
#include <string.h>

#include "../internal.h"

static inline __m256i rnc_bcast_group(const int8_t *q, int g, int K)
{
    int32_t v = 0;
    const int k0 = 4 * g;
    if (k0 + 4 <= K) {
        memcpy(&v, q + k0, 4);
    } else {
        int8_t t[4] = {0, 0, 0, 0};
        for (int j = 0; k0 + j < K; ++j) t[j] = q[k0 + j];
        memcpy(&v, t, 4);
    }
    return _mm256_set1_epi32(v);
}

#define RNC_Q8_MAC(acc, wptr, xb, ax, ones)                                                       \
    acc = _mm256_add_epi32(                                                                       \
        acc, _mm256_madd_epi16(                                                                   \
                 _mm256_maddubs_epi16(                                                            \
                     ax, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(wptr)), xb)),      \
                 ones))

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

/* Two columns (vectors) at once: every weight load feeds both (halves the weight traffic for
 * batches and for the whole-sequence input projection); two blocks in flight, 8 accumulators. */
static void rnc_q8_gemm2_avx2(const int8_t *Wp, int R, int K, const int8_t *q0, const int8_t *q1,
                              int32_t *acc0, int32_t *acc1)
{
    const int groups = (K + 3) / 4;
    const size_t bstride = (size_t)groups * 64;
    const int nb = (R + 15) / 16;
    const __m256i ones = _mm256_set1_epi16(1);
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        const int8_t *w0 = Wp + (size_t)b * bstride, *w1 = w0 + bstride;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        __m256i c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int g = 0; g < groups; ++g) {
            const __m256i xb = rnc_bcast_group(q0, g, K), ax = _mm256_abs_epi8(xb);
            const __m256i yb = rnc_bcast_group(q1, g, K), ay = _mm256_abs_epi8(yb);
            const size_t o = (size_t)g * 64;
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(w0 + o));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(w0 + o + 32));
            const __m256i v2 = _mm256_loadu_si256((const __m256i *)(w1 + o));
            const __m256i v3 = _mm256_loadu_si256((const __m256i *)(w1 + o + 32));
#define RNC_MAC2(acc, v, xb_, ax_)                                                                \
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(ax_, _mm256_sign_epi8(v, xb_)), ones))
            RNC_MAC2(a0, v0, xb, ax);
            RNC_MAC2(a1, v1, xb, ax);
            RNC_MAC2(a2, v2, xb, ax);
            RNC_MAC2(a3, v3, xb, ax);
            RNC_MAC2(c0, v0, yb, ay);
            RNC_MAC2(c1, v1, yb, ay);
            RNC_MAC2(c2, v2, yb, ay);
            RNC_MAC2(c3, v3, yb, ay);
        }
        rnc_store16(acc0 + 16 * b, R - 16 * b, a0, a1);
        rnc_store16(acc0 + 16 * (b + 1), R - 16 * (b + 1), a2, a3);
        rnc_store16(acc1 + 16 * b, R - 16 * b, c0, c1);
        rnc_store16(acc1 + 16 * (b + 1), R - 16 * (b + 1), c2, c3);
    }
    for (; b < nb; ++b) {
        const int8_t *w0 = Wp + (size_t)b * bstride;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, c0 = a0, c1 = a0;
        for (int g = 0; g < groups; ++g) {
            const __m256i xb = rnc_bcast_group(q0, g, K), ax = _mm256_abs_epi8(xb);
            const __m256i yb = rnc_bcast_group(q1, g, K), ay = _mm256_abs_epi8(yb);
            const size_t o = (size_t)g * 64;
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(w0 + o));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(w0 + o + 32));
            RNC_MAC2(a0, v0, xb, ax);
            RNC_MAC2(a1, v1, xb, ax);
            RNC_MAC2(c0, v0, yb, ay);
            RNC_MAC2(c1, v1, yb, ay);
#undef RNC_MAC2
        }
        rnc_store16(acc0 + 16 * b, R - 16 * b, a0, a1);
        rnc_store16(acc1 + 16 * b, R - 16 * b, c0, c1);
    }
}

void rnc_q8_gemm_avx2(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                      int32_t *Acc, int ldacc)
{
    const int groups = (K + 3) / 4;
    const size_t bstride = (size_t)groups * 64; /* bytes per 16-row block */
    const int nb = (R + 15) / 16;
    const __m256i ones = _mm256_set1_epi16(1);
    int n0 = 0;
    for (; n0 + 2 <= N; n0 += 2)
        rnc_q8_gemm2_avx2(Wp, R, K, Q + (size_t)n0 * ldq, Q + (size_t)(n0 + 1) * ldq,
                          Acc + (size_t)n0 * ldacc, Acc + (size_t)(n0 + 1) * ldacc);
    for (int n = n0; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        int b = 0;
        for (; b + 4 <= nb; b += 4) {
            const int8_t *w0 = Wp + (size_t)b * bstride;
            const int8_t *w1 = w0 + bstride, *w2 = w1 + bstride, *w3 = w2 + bstride;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            __m256i a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int g = 0; g < groups; ++g) {
                const __m256i xb = rnc_bcast_group(q, g, K);
                const __m256i ax = _mm256_abs_epi8(xb);
                const size_t o = (size_t)g * 64;
                RNC_Q8_MAC(a0, w0 + o, xb, ax, ones);
                RNC_Q8_MAC(a1, w0 + o + 32, xb, ax, ones);
                RNC_Q8_MAC(a2, w1 + o, xb, ax, ones);
                RNC_Q8_MAC(a3, w1 + o + 32, xb, ax, ones);
                RNC_Q8_MAC(a4, w2 + o, xb, ax, ones);
                RNC_Q8_MAC(a5, w2 + o + 32, xb, ax, ones);
                RNC_Q8_MAC(a6, w3 + o, xb, ax, ones);
                RNC_Q8_MAC(a7, w3 + o + 32, xb, ax, ones);
            }
            rnc_store16(acc + 16 * b, R - 16 * b, a0, a1);
            rnc_store16(acc + 16 * (b + 1), R - 16 * (b + 1), a2, a3);
            rnc_store16(acc + 16 * (b + 2), R - 16 * (b + 2), a4, a5);
            rnc_store16(acc + 16 * (b + 3), R - 16 * (b + 3), a6, a7);
        }
        for (; b + 2 <= nb; b += 2) {
            const int8_t *w0 = Wp + (size_t)b * bstride, *w1 = w0 + bstride;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int g = 0; g < groups; ++g) {
                const __m256i xb = rnc_bcast_group(q, g, K);
                const __m256i ax = _mm256_abs_epi8(xb);
                const size_t o = (size_t)g * 64;
                RNC_Q8_MAC(a0, w0 + o, xb, ax, ones);
                RNC_Q8_MAC(a1, w0 + o + 32, xb, ax, ones);
                RNC_Q8_MAC(a2, w1 + o, xb, ax, ones);
                RNC_Q8_MAC(a3, w1 + o + 32, xb, ax, ones);
            }
            rnc_store16(acc + 16 * b, R - 16 * b, a0, a1);
            rnc_store16(acc + 16 * (b + 1), R - 16 * (b + 1), a2, a3);
        }
        for (; b < nb; ++b) {
            const int8_t *w0 = Wp + (size_t)b * bstride;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, c0 = a0, c1 = a0;
            int g = 0;
            for (; g + 2 <= groups; g += 2) { /* two independent chains */
                const __m256i xb = rnc_bcast_group(q, g, K), ax = _mm256_abs_epi8(xb);
                const __m256i xc = rnc_bcast_group(q, g + 1, K), cx = _mm256_abs_epi8(xc);
                const size_t o = (size_t)g * 64;
                RNC_Q8_MAC(a0, w0 + o, xb, ax, ones);
                RNC_Q8_MAC(a1, w0 + o + 32, xb, ax, ones);
                RNC_Q8_MAC(c0, w0 + o + 64, xc, cx, ones);
                RNC_Q8_MAC(c1, w0 + o + 96, xc, cx, ones);
            }
            for (; g < groups; ++g) {
                const __m256i xb = rnc_bcast_group(q, g, K), ax = _mm256_abs_epi8(xb);
                const size_t o = (size_t)g * 64;
                RNC_Q8_MAC(a0, w0 + o, xb, ax, ones);
                RNC_Q8_MAC(a1, w0 + o + 32, xb, ax, ones);
            }
            rnc_store16(acc + 16 * b, R - 16 * b, _mm256_add_epi32(a0, c0), _mm256_add_epi32(a1, c1));
        }
    }
}
