/* The 16 x 16 product of a frame_conv (internal.h, rnc_gemm_q16_fn), AVX2: vpmaddwd pairs (two
 * products of codes |.| <= 32767 sum below 2^31: exact in int32), each pair widened to int64 and
 * summed there; 4 rows x 2 columns per block, 16 inputs a step. The same sums as
 * rnc_q16_gemm_generic (integers: any order). */
#if !defined(RNC_NO_Q16) /* kernel_list.h: a build may leave these kernels out */
#include <immintrin.h>

#include "../internal.h"

/* acc += the 8 int32 pairs of p, widened */
static inline __m256i q16_widen_add(__m256i acc, __m256i p)
{
    acc = _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(p)));
    return _mm256_add_epi64(acc, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(p, 1)));
}

static inline int64_t q16_hsum(__m256i v)
{
    const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

/* rows r0 .. r0+nr-1 (nr <= 4) and columns n0 .. n0+nc-1 (nc <= 2) */
static inline void q16_block(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                             int nc, int64_t *Acc, int ldacc)
{
    __m256i a[4][2];
    for (int i = 0; i < 4; ++i) a[i][0] = a[i][1] = _mm256_setzero_si256();
    const int16_t *q0 = Q + (size_t)n0 * ldq, *q1 = q0 + (nc > 1 ? (size_t)ldq : 0);
    const int16_t *w[4];
    for (int i = 0; i < 4; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    for (size_t k = 0; k < kp; k += 16) {
        const __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(q0 + k));
        const __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(q1 + k));
        for (int i = 0; i < 4; ++i) {
            const __m256i wv = _mm256_loadu_si256((const __m256i *)(const void *)(w[i] + k));
            a[i][0] = q16_widen_add(a[i][0], _mm256_madd_epi16(wv, x0));
            a[i][1] = q16_widen_add(a[i][1], _mm256_madd_epi16(wv, x1));
        }
    }
    for (int j = 0; j < nc; ++j)
        for (int i = 0; i < nr; ++i) Acc[(size_t)(n0 + j) * ldacc + r0 + i] = q16_hsum(a[i][j]);
}

void rnc_q16_gemm_avx2(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc,
                       int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    for (int n = 0; n < N; n += 2)
        for (int r = 0; r < R; r += 4)
            q16_block(W, kp, r, R - r < 4 ? R - r : 4, Q, ldq, n, N - n < 2 ? N - n : 2, Acc, ldacc);
}
#else
typedef int rnc_q16_avx2_left_out; /* ISO C: a translation unit is not empty */
#endif
