/* q8 GEMM, AVX2 (compiled with -mavx2 -mfma only):
 * Acc[n*ldacc + r] = sum_{k<K} Wq[r,k] * Q[n*ldq + k], exact int32.
 *
 * A 16-row x 4-input tile of the packed layout is 64 bytes = two ymm registers (rows 0-7 and
 * 8-15, each 32-bit lane = 4 inputs of one row). x's 4-byte group is broadcast to every lane.
 *
 * Exact int32 sums with vpmaddubsw by the xor trick (q8_avx2.h: its pair sums never saturate).
 * Against the earlier vpsignb form (W with x's sign), the xor runs on any vector ALU pipe, while
 * vpsignb competes with vpmaddubsw/vpmaddwd for the two multiply pipes on AMD Zen 4: the GEMM
 * went from ~73 to ~89 GMAC/s (768x256, N=1).
 *
 * One column: four 16-row blocks in flight (8 accumulators), the group loop unrolled by two.
 * Two columns: two blocks x two columns, each weight load feeding both. For K <= 1024, each
 * column's |x| and m are made once per call into stack buffers (rnc_q8_prep). Full 4-input groups are
 * read directly; a partial last group (K % 4) is assembled once per column, so no input past K
 * is read.
 */
#include "q8_avx2.h"

/* NB blocks (1, 2 or 4) of one column; the group loop is unrolled by two. With xa/xm (pre = 1,
 * a constant after inlining): |x| and m from rnc_q8_prep, else made per group from q. */
RNC_AI void rnc_q8_blocks(const int8_t *w0, size_t bstride, int NB, int K, const int8_t *q,
                          int32_t *acc, int rows_left, int32_t corr, int pre, const int8_t *xa,
                          const int8_t *xm)
{
    const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
    const int gfull = K / 4, groups = (K + 3) / 4;
    const int8_t *w1 = w0 + bstride, *w2 = w1 + bstride, *w3 = w2 + bstride;
    __m256i a0 = _mm256_set1_epi32(corr), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#define RNC_GROUP(g_, xb_)                                                                        \
    do {                                                                                          \
        const __m256i xb = pre ? zero : (xb_);                                                    \
        const __m256i ax = pre ? rnc_bcast4(xa + 4 * (g_)) : _mm256_abs_epi8(xb);                 \
        const __m256i m = pre ? rnc_bcast4(xm + 4 * (g_)) : _mm256_cmpgt_epi8(zero, xb);          \
        const size_t o = (size_t)(g_) * 64;                                                       \
        RNC_MAC(a0, RNC_LD(w0 + o), m, ax);                                                       \
        RNC_MAC(a1, RNC_LD(w0 + o + 32), m, ax);                                                  \
        if (NB >= 2) {                                                                            \
            RNC_MAC(a2, RNC_LD(w1 + o), m, ax);                                                   \
            RNC_MAC(a3, RNC_LD(w1 + o + 32), m, ax);                                              \
        }                                                                                         \
        if (NB >= 4) {                                                                            \
            RNC_MAC(a4, RNC_LD(w2 + o), m, ax);                                                   \
            RNC_MAC(a5, RNC_LD(w2 + o + 32), m, ax);                                              \
            RNC_MAC(a6, RNC_LD(w3 + o), m, ax);                                                   \
            RNC_MAC(a7, RNC_LD(w3 + o + 32), m, ax);                                              \
        }                                                                                         \
    } while (0)
    int g = 0;
    for (; g + 2 <= gfull; g += 2) {
        RNC_GROUP(g, rnc_bcast4(q + 4 * g));
        RNC_GROUP(g + 1, rnc_bcast4(q + 4 * g + 4));
    }
    if (g < gfull) RNC_GROUP(g, rnc_bcast4(q + 4 * g));
    if (groups > gfull) RNC_GROUP(gfull, pre ? zero : _mm256_set1_epi32(rnc_tail_group(q, K)));
#undef RNC_GROUP
    rnc_store16(acc, rows_left, a0, a1);
    if (NB >= 2) rnc_store16(acc + 16, rows_left - 16, a2, a3);
    if (NB >= 4) {
        rnc_store16(acc + 32, rows_left - 32, a4, a5);
        rnc_store16(acc + 48, rows_left - 48, a6, a7);
    }
}

/* NB blocks (1 or 2) of two columns sharing every weight load; pre as in rnc_q8_blocks, with
 * xa[0], xm[0] for column 0 and xa[1], xm[1] for column 1. */
RNC_AI void rnc_q8_blocks2(const int8_t *w0, size_t bstride, int NB, int K, const int8_t *q0,
                           const int8_t *q1, int32_t *acc0, int32_t *acc1, int rows_left,
                           int32_t corr0, int32_t corr1, int pre, const int8_t *const *xa,
                           const int8_t *const *xm)
{
    const __m256i ones = _mm256_set1_epi16(1), zero = _mm256_setzero_si256();
    const int gfull = K / 4, groups = (K + 3) / 4;
    const int8_t *w1 = w0 + bstride;
    __m256i a0 = _mm256_set1_epi32(corr0), a1 = a0, a2 = a0, a3 = a0;
    __m256i c0 = _mm256_set1_epi32(corr1), c1 = c0, c2 = c0, c3 = c0;
    for (int g = 0; g < groups; ++g) {
        __m256i ax, ay, mx, my;
        if (pre) {
            ax = rnc_bcast4(xa[0] + 4 * g), mx = rnc_bcast4(xm[0] + 4 * g);
            ay = rnc_bcast4(xa[1] + 4 * g), my = rnc_bcast4(xm[1] + 4 * g);
        } else {
            const int full = g < gfull;
            const __m256i xb = full ? rnc_bcast4(q0 + 4 * g) : _mm256_set1_epi32(rnc_tail_group(q0, K));
            const __m256i yb = full ? rnc_bcast4(q1 + 4 * g) : _mm256_set1_epi32(rnc_tail_group(q1, K));
            ax = _mm256_abs_epi8(xb), ay = _mm256_abs_epi8(yb);
            mx = _mm256_cmpgt_epi8(zero, xb), my = _mm256_cmpgt_epi8(zero, yb);
        }
        const size_t o = (size_t)g * 64;
        const __m256i v0 = RNC_LD(w0 + o), v1 = RNC_LD(w0 + o + 32);
        RNC_MAC(a0, v0, mx, ax);
        RNC_MAC(a1, v1, mx, ax);
        RNC_MAC(c0, v0, my, ay);
        RNC_MAC(c1, v1, my, ay);
        if (NB >= 2) {
            const __m256i v2 = RNC_LD(w1 + o), v3 = RNC_LD(w1 + o + 32);
            RNC_MAC(a2, v2, mx, ax);
            RNC_MAC(a3, v3, mx, ax);
            RNC_MAC(c2, v2, my, ay);
            RNC_MAC(c3, v3, my, ay);
        }
    }
    rnc_store16(acc0, rows_left, a0, a1);
    rnc_store16(acc1, rows_left, c0, c1);
    if (NB >= 2) {
        rnc_store16(acc0 + 16, rows_left - 16, a2, a3);
        rnc_store16(acc1 + 16, rows_left - 16, c2, c3);
    }
}

/* One column, every block: four at a time, then two, then one. */
#define RNC_Q8_COLUMN(pre, xa, xm)                                                                \
    do {                                                                                          \
        int b = 0;                                                                                \
        for (; b + 4 <= nb; b += 4)                                                               \
            rnc_q8_blocks(Wp + (size_t)b * bstride, bstride, 4, K, q, acc + 16 * b, R - 16 * b,    \
                          corr, pre, xa, xm);                                                     \
        for (; b + 2 <= nb; b += 2)                                                               \
            rnc_q8_blocks(Wp + (size_t)b * bstride, bstride, 2, K, q, acc + 16 * b, R - 16 * b,    \
                          corr, pre, xa, xm);                                                     \
        for (; b < nb; ++b)                                                                       \
            rnc_q8_blocks(Wp + (size_t)b * bstride, bstride, 1, K, q, acc + 16 * b, R - 16 * b,    \
                          corr, pre, xa, xm);                                                     \
    } while (0)

/* Two columns, every block: two at a time, then one. */
#define RNC_Q8_COLUMNS2(pre, xa, xm)                                                              \
    do {                                                                                          \
        int b = 0;                                                                                \
        for (; b + 2 <= nb; b += 2)                                                               \
            rnc_q8_blocks2(Wp + (size_t)b * bstride, bstride, 2, K, q0, q1, c0 + 16 * b,           \
                           c1 + 16 * b, R - 16 * b, k0, k1, pre, xa, xm);                         \
        for (; b < nb; ++b)                                                                       \
            rnc_q8_blocks2(Wp + (size_t)b * bstride, bstride, 1, K, q0, q1, c0 + 16 * b,           \
                           c1 + 16 * b, R - 16 * b, k0, k1, pre, xa, xm);                         \
    } while (0)

void rnc_q8_gemm_avx2(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                      int32_t *Acc, int ldacc)
{
    const size_t bstride = (size_t)((K + 3) / 4) * 64; /* bytes per 16-row block */
    const int nb = (R + 15) / 16;
    int n = 0;
    for (; n + 2 <= N; n += 2) {
        const int8_t *q0 = Q + (size_t)n * ldq, *q1 = q0 + ldq;
        int32_t *c0 = Acc + (size_t)n * ldacc, *c1 = c0 + ldacc;
        if (K <= (int)RNC_Q8_PREP_MAX) {
            int8_t a0[RNC_Q8_PREP_MAX], m0[RNC_Q8_PREP_MAX], a1[RNC_Q8_PREP_MAX], m1[RNC_Q8_PREP_MAX];
            const int8_t *xa[2] = {a0, a1}, *xm[2] = {m0, m1};
            const int32_t k0 = rnc_q8_prep(q0, K, a0, m0), k1 = rnc_q8_prep(q1, K, a1, m1);
            RNC_Q8_COLUMNS2(1, xa, xm);
        } else {
            const int32_t k0 = rnc_negsum(q0, K), k1 = rnc_negsum(q1, K);
            RNC_Q8_COLUMNS2(0, NULL, NULL);
        }
    }
    for (; n < N; ++n) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        if (K <= (int)RNC_Q8_PREP_MAX) {
            int8_t xa[RNC_Q8_PREP_MAX], xm[RNC_Q8_PREP_MAX];
            const int32_t corr = rnc_q8_prep(q, K, xa, xm);
            RNC_Q8_COLUMN(1, xa, xm);
        } else {
            const int32_t corr = rnc_negsum(q, K);
            RNC_Q8_COLUMN(0, NULL, NULL);
        }
    }
}
