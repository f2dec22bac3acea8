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
 * every Q16_STEPS steps (512 inputs) the int32 sums start over. 4 rows x 2 columns per block (a
 * last odd column: 8 rows x 1), each column split once per step for the block's rows. (Without
 * the split a vpmaddwd pair is exact alone, 2 * 32767^2 = 2^31 - 131,070: the avx2 row widens
 * every one.) */
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

/* one step of the 8 x 1 block (a last, odd column): rows w0..w7 times column q0 */
#define Q16_ROW1(i)                                                                               \
    do {                                                                                          \
        const __m512i wv = _mm512_maskz_loadu_epi16(m, w##i + k);                                 \
        l##i = Q16_DOT(l##i, wv, xl), h##i = Q16_DOT(h##i, wv, xh);                               \
    } while (0)
#define Q16_STEP1                                                                                 \
    do {                                                                                          \
        const __m512i x = _mm512_maskz_loadu_epi16(m, q0 + k);                                    \
        const __m512i xl = _mm512_and_si512(x, low), xh = _mm512_srai_epi16(x, 8);                \
        Q16_ROW1(0);                                                                              \
        Q16_ROW1(1);                                                                              \
        Q16_ROW1(2);                                                                              \
        Q16_ROW1(3);                                                                              \
        Q16_ROW1(4);                                                                              \
        Q16_ROW1(5);                                                                              \
        Q16_ROW1(6);                                                                              \
        Q16_ROW1(7);                                                                              \
    } while (0)

/* t0[i] += the sum over inputs k0 .. k1-1 (as q16_chunk) of row w[i] times column q0, t1[i] of
 * row w[4 + i], for i < 4 */
static inline void q16_chunk1(const int16_t *const *w, const int16_t *q0, size_t k0, size_t k1, __m256i *t0,
                              __m256i *t1)
{
    const int16_t *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3], *w4 = w[4], *w5 = w[5], *w6 = w[6], *w7 = w[7];
    const __m512i low = _mm512_set1_epi16(255);
    __m512i l0 = _mm512_setzero_si512(), l1 = l0, l2 = l0, l3 = l0, l4 = l0, l5 = l0, l6 = l0, l7 = l0, h0 = l0,
            h1 = l0, h2 = l0, h3 = l0, h4 = l0, h5 = l0, h6 = l0, h7 = l0;
    size_t k = k0;
    for (; k + 32 <= k1; k += 32) {
        const __mmask32 m = 0xffffffffu;
        Q16_STEP1;
    }
    if (k < k1) {
        const __mmask32 m = 0xffffu;
        Q16_STEP1;
    }
    __m512i lc0, lc1, hc0, hc1;
    q16_reduce(l0, l1, l2, l3, l4, l5, l6, l7, &lc0, &lc1);
    q16_reduce(h0, h1, h2, h3, h4, h5, h6, h7, &hc0, &hc1);
    *t0 = _mm256_add_epi64(*t0, q16_half_sum(lc0, hc0));
    *t1 = _mm256_add_epi64(*t1, q16_half_sum(lc1, hc1));
}

/* out[0 .. n-1] = the first n (<= 4) int64 of t */
static inline void q16_store(int64_t *out, __m256i t, int n)
{
    if (n == 4) {
        _mm256_storeu_si256((__m256i *)(void *)out, t);
    } else {
        int64_t part[4];
        _mm256_storeu_si256((__m256i *)(void *)part, t);
        for (int i = 0; i < n; ++i) out[i] = part[i];
    }
}

/* rows r0 .. r0+nr-1 (nr <= 4; missing ones repeat the first) and columns n0, n0 + 1 */
static inline void q16_block(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                             int64_t *Acc, int ldacc)
{
    const int16_t *q0 = Q + (size_t)n0 * ldq, *q1 = q0 + (size_t)ldq;
    const int16_t *w[4];
    for (int i = 0; i < 4; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    __m256i t[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (size_t k0 = 0; k0 < kp; k0 += 32 * Q16_STEPS)
        q16_chunk(w[0], w[1], w[2], w[3], q0, q1, k0, kp - k0 < 32 * Q16_STEPS ? kp : k0 + 32 * Q16_STEPS, &t[0],
                  &t[1]);
    for (int j = 0; j < 2; ++j) q16_store(Acc + (size_t)(n0 + j) * ldacc + r0, t[j], nr);
}

/* rows r0 .. r0+nr-1 (nr <= 8; missing ones repeat the first) and column n0 alone */
static inline void q16_block1(const int16_t *W, size_t kp, int r0, int nr, const int16_t *Q, int ldq, int n0,
                              int64_t *Acc, int ldacc)
{
    const int16_t *q0 = Q + (size_t)n0 * ldq;
    const int16_t *w[8];
    for (int i = 0; i < 8; ++i) w[i] = W + (size_t)(r0 + (i < nr ? i : 0)) * kp;
    __m256i t[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
    for (size_t k0 = 0; k0 < kp; k0 += 32 * Q16_STEPS)
        q16_chunk1(w, q0, k0, kp - k0 < 32 * Q16_STEPS ? kp : k0 + 32 * Q16_STEPS, &t[0], &t[1]);
    int64_t *out = Acc + (size_t)n0 * ldacc + r0;
    q16_store(out, t[0], nr < 4 ? nr : 4);
    if (nr > 4) q16_store(out + 4, t[1], nr - 4);
}

void Q16_NAME(const int16_t *W, int R, int K, int N, const int16_t *Q, int ldq, int64_t *Acc, int ldacc)
{
    const size_t kp = (size_t)r16((uint64_t)K);
    int n = 0;
    for (; n + 2 <= N; n += 2) /* column pairs: 4 x 2 blocks */
        for (int r = 0; r < R; r += 4) q16_block(W, kp, r, R - r < 4 ? R - r : 4, Q, ldq, n, Acc, ldacc);
    if (n < N) /* a last column: 8 x 1 blocks */
        for (int r = 0; r < R; r += 8) q16_block1(W, kp, r, R - r < 8 ? R - r : 8, Q, ldq, n, Acc, ldacc);
}
