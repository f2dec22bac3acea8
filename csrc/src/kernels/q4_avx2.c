/* q4 product and cells, AVX2 (q4.h; flags of X86_AVX2_SRCS).
 *
 * A 64-byte tile (16 rows x 8 inputs) is two ymm (rows 0-7, 8-15). The unsigned nibbles (`and
 * 0x0F`, and `srli 4` + `and`) are pmaddubsw's unsigned operand, the broadcast input group its
 * signed one: each int16 pair sum is at most 2 * 15 * 127 (no saturation), the two halves of a
 * tile add to at most 4 * 15 * 127 = 7620 in int16, then pmaddwd with ones widens to int32. The
 * accumulators end with - 8 * sum q (q4.h). */
#if !defined(RNC_NO_Q4) /* kernel_list.h: a build may leave these kernels out */
#include "q4.h"

#if defined(__AVX2__)
#include <immintrin.h>

#include "epilogue_avx2.h"

#define RNC_SAI static inline __attribute__((always_inline))

RNC_SAI __m256i q4_bc8(int32_t v) { return _mm256_set1_epi32(v); }

RNC_SAI void q4_store8(int32_t *acc, int r0, int R, __m256i a)
{
    const int n = R - r0;
    if (n >= 8) {
        _mm256_storeu_si256((__m256i *)(void *)(acc + r0), a);
    } else if (n > 0) {
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)(void *)t, a);
        memcpy(acc + r0, t, sizeof(int32_t) * (size_t)n);
    }
}

/* one tile half (8 rows): the int32 sums of its 8 inputs with groups xl, xh */
RNC_SAI __m256i q4_half(__m256i v, __m256i xl, __m256i xh, __m256i mask, __m256i ones)
{
    const __m256i lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
    return _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh)), ones);
}

static void q4_col(const uint8_t *W, int R, int K, const int8_t *q, int32_t *acc)
{
    const int pairs = rnc__q4_pairs(K), nb = (R + 15) / 16;
    const __m256i mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    const __m256i corr = _mm256_set1_epi32(8 * rnc__q4_qsum(q, K));
    const int full = K / 8;
    for (int b = 0; b < nb; ++b) {
        const uint8_t *t = W + (size_t)b * pairs * 64;
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, c0 = a0, c1 = a0;
        int p = 0;
        for (; p + 2 <= full; p += 2) {
            int32_t g0, g1, g2, g3;
            memcpy(&g0, q + 8 * (size_t)p, 4);
            memcpy(&g1, q + 8 * (size_t)p + 4, 4);
            memcpy(&g2, q + 8 * (size_t)p + 8, 4);
            memcpy(&g3, q + 8 * (size_t)p + 12, 4);
            const __m256i xl0 = q4_bc8(g0), xh0 = q4_bc8(g1), xl1 = q4_bc8(g2), xh1 = q4_bc8(g3);
            const uint8_t *t0 = t + 64 * (size_t)p;
            a0 = _mm256_add_epi32(a0, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)t0), xl0, xh0, mask, ones));
            a1 = _mm256_add_epi32(a1, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)(t0 + 32)), xl0, xh0, mask, ones));
            c0 = _mm256_add_epi32(c0, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)(t0 + 64)), xl1, xh1, mask, ones));
            c1 = _mm256_add_epi32(c1, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)(t0 + 96)), xl1, xh1, mask, ones));
        }
        for (; p < pairs; ++p) { /* the rest, the last tile zero past K */
            const __m256i xl = q4_bc8(rnc__q4_group(q, K, 2 * p)), xh = q4_bc8(rnc__q4_group(q, K, 2 * p + 1));
            const uint8_t *t0 = t + 64 * (size_t)p;
            a0 = _mm256_add_epi32(a0, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)t0), xl, xh, mask, ones));
            a1 = _mm256_add_epi32(a1, q4_half(_mm256_loadu_si256((const __m256i *)(const void *)(t0 + 32)), xl, xh, mask, ones));
        }
        q4_store8(acc, 16 * b, R, _mm256_sub_epi32(_mm256_add_epi32(a0, c0), corr));
        q4_store8(acc, 16 * b + 8, R, _mm256_sub_epi32(_mm256_add_epi32(a1, c1), corr));
    }
}

void rnc_q4_gemm_avx2(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                      int32_t *Acc, int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    for (int n = 0; n < N; ++n) q4_col(W, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_Q4 1
#define RNC_SFX avx2
#include "cell_template.h"

#else
typedef int rnc_q4_avx2_unused;
#endif
#else
typedef int rnc_q4_avx2_left_out;
#endif
