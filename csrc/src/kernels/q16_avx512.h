/* The 16 x 16 product of a frame_conv (internal.h, rnc_gemm_q16_fn), AVX-512: the body of the
 * avx512 (q16_avx512.c: vpmaddwd + vpaddd) and avx512vnni (q16_avx512vnni.c: vpdpwssd) rows,
 * which define Q16_DOT(acc, w, x) as acc + the 16 int32 sums of the pairs of w * x, and
 * Q16_NAME, the row's function. The same sums as rnc_q16_gemm_generic (integers: any order).
 *
 * Each input code is split, x = 256 xh + xl with xh = x >> 8 (arithmetic: -128..127) and
 * xl = x & 255 (0..255), and the two halves' products are summed in int32 lanes, which cannot
 * overflow for any int16 weights and codes:
 *   one pair sum  |w xl + w' xl'| <= 2 * 32768 * 255 = 16,711,680,  |w xh + w' xh'| <= 8,388,608;
 *   a lane adds at most Q16_STEPS = 16 of them (32 inputs a step), then q16_reduce adds lanes
 *   pairwise three times in int32 (across the block's eight outputs, transposed), so a lane holds
 *   at most 8 * 16 = 128 pair sums: 128 * 16,711,680 = 2,139,095,040 < 2^31 - 1
 *   (xh: 128 * 8,388,608 = 2^30).
 * Those are then widened to int64, combined as 256 * hi + lo and added to the block's int64 sums;
 * every Q16_STEPS steps (512 inputs) the int32 sums start over. 4 rows x 2 columns per block, each
 * column split once per step for the four rows. (Without the split a vpmaddwd pair is exact alone,
 * 2 * 32767^2 = 2^31 - 131,070: the avx2 row widens every one.) */
#include <immintrin.h>

#include "../internal.h"

#define Q16_STEPS 16

/* The eight int32 vectors a0..a7 (a block's outputs: a0..a3 column 0's rows, a4..a7 column 1's)
 * summed, transposed: three pairwise additions of lanes in int32 (a lane then holds 8 lanes' sums),
 * then widened to int64: *c0 holds column 0's four sums twice over (two partial sums each, in the
 * two 256-bit halves), *c1 column 1's. */
static inline void q16_reduce(__m512i a0, __m512i a1, __m512i a2, __m512i a3, __m512i a4, __m512i a5,
                              __m512i a6, __m512i a7, __m512i *c0, __m512i *c1)
{
    /* per 128 bits: [a0 lanes 0+2, a1 0+2, a0 1+3, a1 1+3] */
    const __m512i t01 = _mm512_add_epi32(_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    const __m512i t23 = _mm512_add_epi32(_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    const __m512i t45 = _mm512_add_epi32(_mm512_unpacklo_epi32(a4, a5), _mm512_unpackhi_epi32(a4, a5));
    const __m512i t67 = _mm512_add_epi32(_mm512_unpacklo_epi32(a6, a7), _mm512_unpackhi_epi32(a6, a7));
    /* per 128 bits: [a0, a1, a2, a3] (u0) and [a4, a5, a6, a7] (u1), each the sum of its 4 lanes */
    const __m512i u0 = _mm512_add_epi32(_mm512_unpacklo_epi64(t01, t23), _mm512_unpackhi_epi64(t01, t23));
    const __m512i u1 = _mm512_add_epi32(_mm512_unpacklo_epi64(t45, t67), _mm512_unpackhi_epi64(t45, t67));
    /* 128-bit blocks: [u0 0+2, u0 1+3, u1 0+2, u1 1+3] */
    const __m512i v = _mm512_add_epi32(_mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(1, 0, 1, 0)),
                                       _mm512_shuffle_i32x4(u0, u1, _MM_SHUFFLE(3, 2, 3, 2)));
    *c0 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
    *c1 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
}

/* 256 hi + lo in int64 for a column's four rows (q16_reduce's two halves added) */
static inline __m256i q16_half_sum(__m512i lo, __m512i hi)
{
    const __m512i s = _mm512_add_epi64(lo, _mm512_slli_epi64(hi, 8));
    return _mm256_add_epi64(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
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

/* tj[i] += the sum over inputs k0 .. k1-1 (at most 32 * Q16_STEPS, a multiple of 16) of row wi
 * times column qj, for i < 4, j < 2 */
static inline void q16_chunk(const int16_t *w0, const int16_t *w1, const int16_t *w2, const int16_t *w3,
                             const int16_t *q0, const int16_t *q1, size_t k0, size_t k1, __m256i *t0,
                             __m256i *t1)
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
    __m512i lc0, lc1, hc0, hc1;
    q16_reduce(l00, l10, l20, l30, l01, l11, l21, l31, &lc0, &lc1);
    q16_reduce(h00, h10, h20, h30, h01, h11, h21, h31, &hc0, &hc1);
    *t0 = _mm256_add_epi64(*t0, q16_half_sum(lc0, hc0));
    *t1 = _mm256_add_epi64(*t1, q16_half_sum(lc1, hc1));
}

/* rows r0 .. r0+nr-1 (nr <= 4) and columns n0 .. n0+nc-1 (nc <= 2); missing ones repeat the first */
static inline void q16_block(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                             int nc, int64_t *Acc, int ldacc)
{
    const int16_t *q0 = Q + (size_t)n0 * ldq, *q1 = q0 + (nc > 1 ? (size_t)ldq : 0);
    const int16_t *w[4];
    for (int i = 0; i < 4; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    __m256i t[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (size_t k0 = 0; k0 < kp; k0 += 32 * Q16_STEPS)
        q16_chunk(w[0], w[1], w[2], w[3], q0, q1, k0, kp - k0 < 32 * Q16_STEPS ? kp : k0 + 32 * Q16_STEPS, &t[0],
                  &t[1]);
    for (int j = 0; j < nc; ++j) {
        int64_t *out = Acc + (size_t)(n0 + j) * ldacc + r0;
        if (nr == 4) {
            _mm256_storeu_si256((__m256i *)(void *)out, t[j]);
        } else {
            int64_t part[4];
            _mm256_storeu_si256((__m256i *)(void *)part, t[j]);
            for (int i = 0; i < nr; ++i) out[i] = part[i];
        }
    }
}

void Q16_NAME(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc, int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    for (int n = 0; n < N; n += 2)
        for (int r = 0; r < R; r += 4)
            q16_block(W, kp, r, R - r < 4 ? R - r : 4, Q, ldq, n, N - n < 2 ? N - n : 2, Acc, ldacc);
}
