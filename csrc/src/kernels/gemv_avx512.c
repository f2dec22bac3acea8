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
 * q8 exactness: vpmaddubsw multiplies unsigned by signed bytes and adds adjacent pairs into int16
 * WITH saturation, so the unsigned operand must be |q| (<= 127) and the sign of q is moved onto
 * the weights (sign trick: masked byte subtract 0 - W where q < 0; W in [-127, 127] so the
 * negation is exact). Then each int16 pair sum is |.| <= 2 * 127 * 127 = 32258 < 32767 (no
 * saturation), vpmaddwd with ones widens pairs to int32, and the int32 sums equal the generic
 * kernel's bit for bit.
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
    for (; n < N; ++n) f32_gemm_tile(Wb, bs, K, X + (size_t)n * ldx, ldx, Y + (size_t)n * ldy, ldy, b, R, MB, 1);
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

RNC_AI __m512i bcast_group(const int8_t *q, int K, int g, const int tail)
{
    int32_t v = 0;
    if (!tail) memcpy(&v, q + 4 * g, 4);
    else memcpy(&v, q + 4 * g, (size_t)(K - 4 * g));  /* zero-filled partial group */
    return _mm512_set1_epi32(v);
}

RNC_AI void store_i32(int32_t *acc, int b, int R, __m512i a)
{
    const int n = R - 16 * b;
    if (n >= 16) _mm512_storeu_si512((void *)(acc + 16 * b), a);
    else _mm512_mask_storeu_epi32(acc + 16 * b, (__mmask16)((1u << n) - 1u), a);
}

/* acc += sum over the 4 inputs of the tile of w * q, exactly (sign trick + maddubs + maddwd). */
RNC_AI __m512i tile_dot(__m512i acc, __m512i w, __mmask64 neg, __m512i xa)
{
    const __m512i ones = _mm512_set1_epi16(1);
    w = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
    return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(xa, w), ones));
}

/* One input group of MB row blocks x NB columns. */
RNC_AI void q8_group(const int8_t *Wb, size_t bstride, int g, int K, const int8_t *Q, size_t ldq,
                     __m512i a[4][4], const int MB, const int NB, const int tail)
{
    __m512i w[4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m)
        w[m] = _mm512_loadu_si512((const void *)(Wb + (size_t)m * bstride + (size_t)g * 64));
#pragma GCC unroll 4
    for (int n = 0; n < NB; ++n) {
        const __m512i xb = bcast_group(Q + (size_t)n * ldq, K, g, tail);
        const __mmask64 neg = _mm512_movepi8_mask(xb);
        const __m512i xa = _mm512_abs_epi8(xb);
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) a[m][n] = tile_dot(a[m][n], w[m], neg, xa);
    }
}

RNC_AI void q8_tile(const int8_t *Wb, size_t bstride, int G, int K, const int8_t *Q, size_t ldq,
                    int32_t *Acc, size_t ldacc, int b, int R, const int MB, const int NB)
{
    __m512i a[4][4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 4
        for (int n = 0; n < NB; ++n) a[m][n] = _mm512_setzero_si512();
    const int Gf = K / 4;
    for (int g = 0; g < Gf; ++g) q8_group(Wb, bstride, g, K, Q, ldq, a, MB, NB, 0);
    if (Gf < G) q8_group(Wb, bstride, Gf, K, Q, ldq, a, MB, NB, 1);
#pragma GCC unroll 4
    for (int n = 0; n < NB; ++n)
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) store_i32(Acc + (size_t)n * ldacc, b + m, R, a[m][n]);
}

static void gemv_q8(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc)
{
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    int b = 0;
    for (; b + 4 <= B; b += 4) q8_tile(Wp + (size_t)b * bs, bs, G, K, q, 0, acc, 0, b, R, 4, 1);
    if (B - b == 3) q8_tile(Wp + (size_t)b * bs, bs, G, K, q, 0, acc, 0, b, R, 3, 1);
    else if (B - b == 2) q8_tile(Wp + (size_t)b * bs, bs, G, K, q, 0, acc, 0, b, R, 2, 1);
    else if (B - b == 1) q8_tile(Wp + (size_t)b * bs, bs, G, K, q, 0, acc, 0, b, R, 1, 1);
}

void rnc_q8_gemm_avx512(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                        int32_t *Acc, int ldacc)
{
    if (N < 2) {
        if (N == 1) gemv_q8(Wp, R, K, Q, Acc);
        return;
    }
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    for (int b = 0; b < B;) {
        const int mb = B - b >= 4 ? 4 : 1;
        const int8_t *Wb = Wp + (size_t)b * bs;
        int n = 0;
        for (; n + 4 <= N; n += 4) {
            const int8_t *Qn = Q + (size_t)n * ldq;
            int32_t *An = Acc + (size_t)n * ldacc;
            if (mb == 4) q8_tile(Wb, bs, G, K, Qn, (size_t)ldq, An, (size_t)ldacc, b, R, 4, 4);
            else q8_tile(Wb, bs, G, K, Qn, (size_t)ldq, An, (size_t)ldacc, b, R, 1, 4);
        }
        for (; n < N; ++n) {
            const int8_t *Qn = Q + (size_t)n * ldq;
            int32_t *An = Acc + (size_t)n * ldacc;
            if (mb == 4) q8_tile(Wb, bs, G, K, Qn, (size_t)ldq, An, (size_t)ldacc, b, R, 4, 1);
            else q8_tile(Wb, bs, G, K, Qn, (size_t)ldq, An, (size_t)ldacc, b, R, 1, 1);
        }
        b += mb;
    }
}

#else
typedef int rnc_gemv_avx512_unused;
#endif
