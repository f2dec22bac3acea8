/* AVX-512 (F/BW/VL) matrix kernels on rnncore's packed layouts: f32 with FMA, and q8 with
 * vpmaddubsw + vpmaddwd for AVX-512 CPUs without VNNI (Skylake-SP/X).
 *
 * Compiled only with this file's flags: -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma.
 *
 * f32 layout: rows padded to 16; float[(b*K + k)*16 + r] = W[16b + r, k]: the 16 rows of a block
 *   for one input are one zmm register, multiplied by x[k] broadcast (vfmadd231ps).
 * q8 layout: byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j]: a 16-row x 4-input tile is
 *   one zmm register.
 *
 * q8 exactness, the "xor trick" of q8_gemm_avx2.c on 512-bit registers: vpmaddubsw multiplies
 * unsigned by signed bytes and adds adjacent pairs into int16 WITH saturation, so the unsigned
 * operand is |x| (<= 127) and the signed one is W ^ m, m = 0xff in the bytes where x < 0 and 0
 * elsewhere. For x_k < 0, W ^ 0xff = ~W = -W - 1, so |x_k| * ~W = x_k * W - |x_k|: the sum is the
 * exact product minus C = sum of |x_k| over the negative x_k, a constant of the column (the same
 * for every row), added back by starting the accumulators at C. ~W is in [-128, 126] (weights
 * are in [-127, 127]), so each int16 pair sum is at most 2 * 127 * 128 = 32512 < 32767: no
 * saturation. vpmaddwd with ones widens the pairs to int32 and the int32 sums equal the generic
 * kernel's bit for bit (int32 wrap-around, if any, is the same modular sum). Per 16x4 tile:
 * vpxord (any vector pipe), vpmaddubsw + vpmaddwd (the multiply pipes), vpaddd; the masked
 * vpsubb negation used before cost the same op count but |x| and the sign mask were made per group.
 *
 * |x|, the mask m and C are made once per call per column (q8_prep, per chunk of 1024 inputs, zero
 * padded: the inner loop has no partial group) and read as 4-byte broadcasts. One column: four
 * row blocks in flight (4 accumulators, each fed by its own weight stream); 2..4 columns (batches,
 * sequence projections): two blocks x NC columns, each weight load feeding NC tiles. Measured on
 * AMD EPYC Zen 4 (vpmaddubsw zmm double-pumped: the same 32 MACs/cycle peak as ymm), 768x256:
 * N = 1 85 -> 111 GMAC/s (AVX2: 92), N = 8 82 -> 109 (AVX2: 101); peak loop 113.
 */
#include "kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define RNC_AI static inline __attribute__((always_inline))

/* ------------------------------------------------------------------ f32 */

RNC_AI void store_f32(float *y, int b, int R, __m512 a)
{
    const int n = R - 16 * b;
    if (n >= 16) _mm512_storeu_ps(y + 16 * b, a);
    else _mm512_mask_storeu_ps(y + 16 * b, (__mmask16)((1u << n) - 1u), a);
}

/* MB (<= 4) row blocks of one vector: MB independent FMA chains (4 chains x 4-cycle latency keep
 * one zmm FMA per cycle). Every output is the FMA chain over k = 0, 1, ..., K-1 from 0, exactly
 * as in the gemm tile below, so a product does not depend on how many columns were computed
 * with it (the step path, N = batch, and the sequence path, N = batch * T, agree bit for bit). */
RNC_AI void f32_gemv_blocks(const float *Wb, size_t bstride, int K, const float *x, float *y, int b,
                            int R, const int MB)
{
    __m512 a[4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) a[m] = _mm512_setzero_ps();
    for (int k = 0; k < K; ++k) {
        const __m512 xk = _mm512_set1_ps(x[k]);
        const float *w = Wb + (size_t)k * 16;
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) a[m] = _mm512_fmadd_ps(_mm512_loadu_ps(w + (size_t)m * bstride), xk, a[m]);
    }
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) store_f32(y, b + m, R, a[m]);
}

static void gemv_f32(const float *Wp, int R, int K, const float *x, float *y)
{
    const int B = (R + 15) / 16;
    const size_t bs = (size_t)K * 16;
    int b = 0;
    for (; b + 4 <= B; b += 4) f32_gemv_blocks(Wp + (size_t)b * bs, bs, K, x, y, b, R, 4);
    if (B - b == 3) f32_gemv_blocks(Wp + (size_t)b * bs, bs, K, x, y, b, R, 3);
    else if (B - b == 2) f32_gemv_blocks(Wp + (size_t)b * bs, bs, K, x, y, b, R, 2);
    else if (B - b == 1) f32_gemv_blocks(Wp + (size_t)b * bs, bs, K, x, y, b, R, 1);
}

/* MB row blocks x NB columns (MB, NB <= 4): 16 accumulators, 4 weight loads + 4 broadcasts per
 * 16 FMAs. */
RNC_AI void f32_gemm_tile(const float *Wb, size_t bstride, int K, const float *X, size_t ldx, float *Y,
                          size_t ldy, int b, int R, const int MB, const int NB)
{
    __m512 a[4][4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 4
        for (int n = 0; n < NB; ++n) a[m][n] = _mm512_setzero_ps();
    for (int k = 0; k < K; ++k) {
        __m512 w[4];
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) w[m] = _mm512_loadu_ps(Wb + (size_t)m * bstride + (size_t)k * 16);
#pragma GCC unroll 4
        for (int n = 0; n < NB; ++n) {
            const __m512 xv = _mm512_set1_ps(X[(size_t)n * ldx + k]);
#pragma GCC unroll 4
            for (int m = 0; m < MB; ++m) a[m][n] = _mm512_fmadd_ps(w[m], xv, a[m][n]);
        }
    }
#pragma GCC unroll 4
    for (int n = 0; n < NB; ++n)
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) store_f32(Y + (size_t)n * ldy, b + m, R, a[m][n]);
}

RNC_AI void f32_gemm_rowblocks(const float *Wb, size_t bs, int K, int N, const float *X, size_t ldx,
                               float *Y, size_t ldy, int b, int R, const int MB)
{
    int n = 0;
    for (; n + 4 <= N; n += 4)
        f32_gemm_tile(Wb, bs, K, X + (size_t)n * ldx, ldx, Y + (size_t)n * ldy, ldy, b, R, MB, 4);
    /* the last 1-3 columns in one tile: each weight load serves all of them (a batch of 3
     * sequences' recurrent product streamed its weights from L2 once per column) */
    if (N - n == 3) f32_gemm_tile(Wb, bs, K, X + (size_t)n * ldx, ldx, Y + (size_t)n * ldy, ldy, b, R, MB, 3);
    else if (N - n == 2) f32_gemm_tile(Wb, bs, K, X + (size_t)n * ldx, ldx, Y + (size_t)n * ldy, ldy, b, R, MB, 2);
    else if (N - n == 1) f32_gemm_tile(Wb, bs, K, X + (size_t)n * ldx, ldx, Y + (size_t)n * ldy, ldy, b, R, MB, 1);
}

void rnc_f32_gemm_avx512(const float *Wp, int R, int K, int N, const float *X, int ldx, float *Y,
                         int ldy)
{
    if (N < 3) {
        for (int n = 0; n < N; ++n) gemv_f32(Wp, R, K, X + (size_t)n * ldx, Y + (size_t)n * ldy);
        return;
    }
    const int B = (R + 15) / 16;
    const size_t bs = (size_t)K * 16;
    int b = 0;
    for (; b + 4 <= B; b += 4)
        f32_gemm_rowblocks(Wp + (size_t)b * bs, bs, K, N, X, (size_t)ldx, Y, (size_t)ldy, b, R, 4);
    for (; b < B; ++b)
        f32_gemm_rowblocks(Wp + (size_t)b * bs, bs, K, N, X, (size_t)ldx, Y, (size_t)ldy, b, R, 1);
}

/* ------------------------------------------------------------------ q8 (no VNNI) */

/* The input side of a column, made once per call (per chunk of at most RNC_Q8_KC inputs): |q| in
 * xa and the xor mask in xm (0xff where q < 0, else 0), zero-padded to a multiple of 4; returns the
 * chunk's correction, the sum of |q_k| over the negative q_k (see the top of the file). Masked
 * loads: nothing past n is read. */
#define RNC_Q8_KC 1024
#define RNC_Q8_NC 4 /* columns per panel */
static inline int32_t q8_prep(const int8_t *q, int n, int8_t *xa, int8_t *xm)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i sum = zero;
    for (int k = 0; k < n; k += 64) {
        const __mmask64 in = n - k >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - k)) - 1);
        const __m512i v = _mm512_maskz_loadu_epi8(in, q + k);
        const __mmask64 neg = _mm512_movepi8_mask(v);
        const __m512i a = _mm512_abs_epi8(v);
        _mm512_storeu_si512((void *)(xa + k), a);
        _mm512_storeu_si512((void *)(xm + k), _mm512_movm_epi8(neg));
        sum = _mm512_add_epi64(sum, _mm512_sad_epu8(_mm512_maskz_mov_epi8(neg, a), zero));
    }
    return (int32_t)_mm512_reduce_add_epi64(sum);
}

RNC_AI __m512i bcast4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

RNC_AI void store_rows(int32_t *dst, int rows, __m512i a)
{
    if (rows >= 16) _mm512_storeu_si512((void *)dst, a);
    else _mm512_mask_storeu_epi32(dst, (__mmask16)((1u << rows) - 1u), a);
}

RNC_AI __m512i load_rows(const int32_t *src, int rows)
{
    if (rows >= 16) return _mm512_loadu_si512((const void *)src);
    return _mm512_maskz_loadu_epi32((__mmask16)((1u << rows) - 1u), src);
}

/* MB row blocks x NC columns over the groups [g0, g0 + ng) of one K chunk: xa[c], xm[c] are column
 * c's prepared chunk, corr[c] its correction. first: the accumulators start at corr, else at the
 * partial sums already in Acc plus corr. Per 16x4 tile: vpxord, vpmaddubsw, vpmaddwd, vpaddd. */
RNC_AI void q8_tile(const int8_t *Wb, size_t bstride, int g0, int ng, int8_t (*xa)[RNC_Q8_KC],
                    int8_t (*xm)[RNC_Q8_KC], const int32_t *corr, int32_t *Acc, size_t ldacc, int rows,
                    int first, const int MB, const int NC)
{
    const __m512i ones = _mm512_set1_epi16(1);
    __m512i a[8][RNC_Q8_NC];
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            const __m512i k = _mm512_set1_epi32(corr[c]);
            a[m][c] = first ? k : _mm512_add_epi32(k, load_rows(Acc + (size_t)c * ldacc + 16 * m, rows - 16 * m));
        }
    const int8_t *w = Wb + (size_t)g0 * 64;
#pragma GCC unroll 2
    for (int g = 0; g < ng; ++g, w += 64) {
        __m512i xv[RNC_Q8_NC], mv[RNC_Q8_NC];
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) {
            xv[c] = bcast4(xa[c] + 4 * g);
            mv[c] = bcast4(xm[c] + 4 * g);
        }
#pragma GCC unroll 8
        for (int m = 0; m < MB; ++m) {
            const __m512i wv = _mm512_loadu_si512((const void *)(w + (size_t)m * bstride));
#pragma GCC unroll 4
            for (int c = 0; c < NC; ++c)
                a[m][c] = _mm512_add_epi32(
                    a[m][c], _mm512_madd_epi16(_mm512_maddubs_epi16(xv[c], _mm512_xor_si512(wv, mv[c])), ones));
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 4
        for (int c = 0; c < NC; ++c) store_rows(Acc + (size_t)c * ldacc + 16 * m, rows - 16 * m, a[m][c]);
}

/* Every row block of NC columns over one K chunk: MB_MAX blocks at a time, then fewer. */
RNC_AI void q8_panel(const int8_t *Wp, size_t bs, int nb, int R, int g0, int ng, int8_t (*xa)[RNC_Q8_KC],
                     int8_t (*xm)[RNC_Q8_KC], const int32_t *corr, int32_t *Acc, size_t ldacc, int first,
                     const int NC)
{
#define RNC_T(mb_)                                                                                  \
    q8_tile(Wp + (size_t)b * bs, bs, g0, ng, xa, xm, corr, Acc + 16 * (size_t)b, ldacc, R - 16 * b, \
            first, mb_, NC)
    int b = 0;
    if (NC == 1) {
        for (; b + 4 <= nb; b += 4) RNC_T(4);
    } else {
        for (; b + 2 <= nb; b += 2) RNC_T(2);
    }
    if (NC == 1 && b + 2 <= nb) {
        RNC_T(2);
        b += 2;
    }
    if (b < nb) RNC_T(1);
#undef RNC_T
}

RNC_AI void q8_columns(const int8_t *Wp, int R, int K, const int8_t *Q, size_t ldq, int32_t *Acc,
                       size_t ldacc, const int NC)
{
    const size_t bs = (size_t)((K + 3) / 4) * 64;
    const int nb = (R + 15) / 16;
    int8_t xa[RNC_Q8_NC][RNC_Q8_KC] __attribute__((aligned(64)));
    int8_t xm[RNC_Q8_NC][RNC_Q8_KC] __attribute__((aligned(64)));
    int32_t corr[RNC_Q8_NC];
    for (int k0 = 0; k0 < K; k0 += RNC_Q8_KC) {
        const int n = K - k0 < RNC_Q8_KC ? K - k0 : RNC_Q8_KC;
        for (int c = 0; c < NC; ++c) corr[c] = q8_prep(Q + (size_t)c * ldq + k0, n, xa[c], xm[c]);
        q8_panel(Wp, bs, nb, R, k0 / 4, (n + 3) / 4, xa, xm, corr, Acc, ldacc, k0 == 0, NC);
    }
}

#define RNC_Q8_COLS(nc_)                                                                          \
    static void q8_cols##nc_(const int8_t *Wp, int R, int K, const int8_t *Q, size_t ldq, int32_t *Acc, \
                             size_t ldacc)                                                        \
    {                                                                                             \
        q8_columns(Wp, R, K, Q, ldq, Acc, ldacc, nc_);                                            \
    }
RNC_Q8_COLS(1)
RNC_Q8_COLS(2)
RNC_Q8_COLS(3)
RNC_Q8_COLS(4)
#undef RNC_Q8_COLS

void rnc_q8_gemm_avx512(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                        int32_t *Acc, int ldacc)
{
    if (R <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int n = 0; n < N; ++n) memset(Acc + (size_t)n * ldacc, 0, sizeof(int32_t) * (size_t)R);
        return;
    }
    int n = 0;
    for (; n + 4 <= N; n += 4)
        q8_cols4(Wp, R, K, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc);
    switch (N - n) {
    case 3: q8_cols3(Wp, R, K, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc); break;
    case 2: q8_cols2(Wp, R, K, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc); break;
    case 1: q8_cols1(Wp, R, K, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc); break;
    default: break;
    }
}

#else
typedef int rnc_gemv_avx512_unused;
#endif
