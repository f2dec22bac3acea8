/* The 16 x 16 product of a frame_conv (internal.h, rnc_gemm_q16_fn), AVX-512: the body of the
 * avx512 (q16_avx512.c: vpmaddwd + vpaddd) and avx512vnni (q16_avx512vnni.c: vpdpwssd) rows,
 * which define Q16_DOT(acc, w, x) as acc + the 16 int32 sums of the pairs of w * x, and
 * Q16_NAME, the row's function. The same sums as rnc_q16_gemm_generic (integers: any order).
 *
 * Each input code is split, x = 256 xh + xl with xh = x >> 8 (arithmetic: -128..127) and
 * xl = x & 255 (0..255), and the two halves' products are summed in int32 lanes, which cannot
 * overflow for any int16 weights and codes:
 *   one pair sum  |w xl + w' xl'| <= 2 * 32768 * 255 = 16,711,680,  |w xh + w' xh'| <= 8,388,608;
 *   a lane adds at most Q16_STEPS = 64 of them (32 inputs a step), then the upper eight lanes are
 *   added onto the lower eight, so a lane holds at most 128 pair sums:
 *   128 * 16,711,680 = 2,139,095,040 < 2^31 - 1 (xh: 128 * 8,388,608 = 2^30).
 * The eight lanes are then widened to int64, combined as 256 * hi + lo and summed there; every
 * Q16_STEPS steps (2048 inputs) the int32 sums start over. 4 rows x 2 columns per block, each
 * column split once per step for the four rows. */
#include <immintrin.h>

#include "../internal.h"

#define Q16_STEPS 64

/* sum of the 256 hi + lo of a block's output: the int32 lanes folded 16 -> 8, widened, summed */
static inline int64_t q16_fold(__m512i lo, __m512i hi)
{
    const __m256i l = _mm256_add_epi32(_mm512_castsi512_si256(lo), _mm512_extracti64x4_epi64(lo, 1));
    const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(hi), _mm512_extracti64x4_epi64(hi, 1));
    return _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_cvtepi32_epi64(l), _mm512_slli_epi64(_mm512_cvtepi32_epi64(h), 8)));
}

/* one step of 32 inputs at k (m: which of them: a last step may have 16) for the 4 x 2 block */
#define Q16_ROW(i)                                                                                \
    do {                                                                                          \
        const __m512i wv = _mm512_maskz_loadu_epi16(m, w##i + k);                                 \
        l##i##0 = Q16_DOT(l##i##0, wv, x0l), h##i##0 = Q16_DOT(h##i##0, wv, x0h);                 \
        l##i##1 = Q16_DOT(l##i##1, wv, x1l), h##i##1 = Q16_DOT(h##i##1, wv, x1h);                 \
    } while (0)
#define Q16_STEP                                                                                  \
    do {                                                                                          \
        const __m512i x0 = _mm512_maskz_loadu_epi16(m, q0 + k), x1 = _mm512_maskz_loadu_epi16(m, q1 + k); \
        const __m512i x0l = _mm512_and_si512(x0, low), x0h = _mm512_srai_epi16(x0, 8);             \
        const __m512i x1l = _mm512_and_si512(x1, low), x1h = _mm512_srai_epi16(x1, 8);             \
        Q16_ROW(0);                                                                               \
        Q16_ROW(1);                                                                               \
        Q16_ROW(2);                                                                               \
        Q16_ROW(3);                                                                               \
    } while (0)

/* t[2i + j] += the sum over inputs k0 .. k1-1 (at most 32 * Q16_STEPS, a multiple of 16) of row
 * wi times column qj, for i < 4, j < 2 */
static inline void q16_chunk(const int16_t *w0, const int16_t *w1, const int16_t *w2, const int16_t *w3,
                             const int16_t *q0, const int16_t *q1, size_t k0, size_t k1, int64_t *t)
{
    const __m512i low = _mm512_set1_epi16(255);
    __m512i l00 = _mm512_setzero_si512(), l01 = l00, l10 = l00, l11 = l00, l20 = l00, l21 = l00, l30 = l00,
            l31 = l00, h00 = l00, h01 = l00, h10 = l00, h11 = l00, h20 = l00, h21 = l00, h30 = l00, h31 = l00;
    size_t k = k0;
    for (; k + 32 <= k1; k += 32) {
        const __mmask32 m = 0xffffffffu;
        Q16_STEP;
    }
    if (k < k1) {
        const __mmask32 m = 0xffffu;
        Q16_STEP;
    }
    t[0] += q16_fold(l00, h00), t[1] += q16_fold(l01, h01), t[2] += q16_fold(l10, h10);
    t[3] += q16_fold(l11, h11), t[4] += q16_fold(l20, h20), t[5] += q16_fold(l21, h21);
    t[6] += q16_fold(l30, h30), t[7] += q16_fold(l31, h31);
}

/* rows r0 .. r0+nr-1 (nr <= 4) and columns n0 .. n0+nc-1 (nc <= 2); missing ones repeat the first */
static inline void q16_block(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                             int nc, int64_t *Acc, int ldacc)
{
    const int16_t *q0 = Q + (size_t)n0 * ldq, *q1 = q0 + (nc > 1 ? (size_t)ldq : 0);
    const int16_t *w[4];
    for (int i = 0; i < 4; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    int64_t t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (size_t k0 = 0; k0 < kp; k0 += 32 * Q16_STEPS)
        q16_chunk(w[0], w[1], w[2], w[3], q0, q1, k0, kp - k0 < 32 * Q16_STEPS ? kp : k0 + 32 * Q16_STEPS, t);
    for (int j = 0; j < nc; ++j)
        for (int i = 0; i < nr; ++i) Acc[(size_t)(n0 + j) * ldacc + r0 + i] = t[2 * i + j];
}

void Q16_NAME(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc, int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    for (int n = 0; n < N; n += 2)
        for (int r = 0; r < R; r += 4)
            q16_block(W, kp, r, R - r < 4 ? R - r : 4, Q, ldq, n, N - n < 2 ? N - n : 2, Acc, ldacc);
}
