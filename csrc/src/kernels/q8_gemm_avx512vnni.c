/* AVX-512 VNNI q8 matrix kernels (512-bit vpdpbusd) on rnncore's packed q8 layout.
 *
 * Compiled only with this file's flags: -mavx512f -mavx512bw -mavx512vl -mavx512vnni.
 *
 * Layout (docs/q8-contract.md): rows padded to 16, inputs to Kp = roundup(K, 4);
 *   byte[(b*Kp/4 + g)*64 + r*4 + j] = Wq[16b + r, 4g + j].
 * A 16-row x 4-input tile is exactly one zmm register; x's 4-byte group is broadcast to all 16
 * dword lanes, and one vpdpbusd adds the 4 products of each row into that row's int32 lane.
 *
 * vpdpbusd multiplies UNSIGNED bytes (first source) by SIGNED bytes (second source), and both
 * our operands are signed (Wq and q in [-127, 127]). Two exact ways are used:
 *
 *   gemv (one vector): the sign trick. dpbusd(|q|, sign(q) * W): |q| <= 127 is a valid unsigned
 *     byte, and sign(q)*W is again in [-127, 127] (never -128, so negation cannot overflow). The
 *     sign is applied with one masked byte subtract (mask = sign bits of the broadcast group),
 *     shared by nothing but cheap: the kernel is bound by the weight stream (L1/L2 bandwidth).
 *   gemm (several vectors): the offset trick. dpbusd(q + 128, W) - 128 * sum_k W[r,k]: q + 128 is
 *     q XOR 0x80 read as unsigned, and the per-row correction 128 * rowsum(W) is one more
 *     vpdpbusd pass with the constant 0x80 bytes, made once per row block and shared by every
 *     column, so its cost is 1/N of the product.
 * Every partial sum of vpdpbusd is a 32-bit sum of four products (no intermediate saturation),
 * and |sum| <= Kp * 255 * 127 < 2^31 for every K the format allows, so the int32 accumulators
 * equal the generic kernel's bit for bit.
 *
 * Four row blocks are kept in flight (independent accumulators) to hide the multiply latency;
 * the gemm micro-kernel holds 4 row blocks x 4 columns = 16 accumulators (~98% of the measured
 * vpdpbusd peak on Zen 4 for L1-resident blocks).
 */
#include "kernels_avx512.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define RNC_AI static inline __attribute__((always_inline))

/* The 4-byte group g of q broadcast to 16 dword lanes. The last, partial group (tail != 0) is
 * zero-filled: the padded weights there are zero, so the filler never matters, but q is never
 * over-read. `tail` is a compile-time constant after inlining, so the hot loop has no branch. */
RNC_AI __m512i bcast_group(const int8_t *q, int K, int g, const int tail)
{
    int32_t v = 0;
    if (!tail) memcpy(&v, q + 4 * g, 4);
    else memcpy(&v, q + 4 * g, (size_t)(K - 4 * g));
    return _mm512_set1_epi32(v);
}

RNC_AI void store_rows(int32_t *acc, int b, int R, __m512i a)
{
    const int n = R - 16 * b;
    if (n >= 16) _mm512_storeu_si512((void *)(acc + 16 * b), a);
    else _mm512_mask_storeu_epi32(acc + 16 * b, (__mmask16)((1u << n) - 1u), a);
}

/* One input group of MB row blocks, sign trick: a[m] += dpbusd(|q|, sign(q) * W). */
RNC_AI void gemv_group(const int8_t *Wb, size_t bstride, int g, __m512i xb, __m512i *a, const int MB)
{
    const __m512i zero = _mm512_setzero_si512();
    const __mmask64 neg = _mm512_movepi8_mask(xb);  /* bytes where q < 0 */
    const __m512i xa = _mm512_abs_epi8(xb);           /* |q| <= 127 */
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) {
        __m512i w = _mm512_loadu_si512((const void *)(Wb + (size_t)m * bstride + (size_t)g * 64));
        w = _mm512_mask_sub_epi8(w, neg, zero, w);    /* sign(q) * W, still in [-127, 127] */
        a[m] = _mm512_dpbusd_epi32(a[m], xa, w);
    }
}

/* MB row blocks (MB <= 4) of one vector. */
RNC_AI void gemv_blocks(const int8_t *Wb, size_t bstride, int G, int K, const int8_t *q,
                        int32_t *acc, int b, int R, const int MB)
{
    __m512i a[4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) a[m] = _mm512_setzero_si512();
    const int Gf = K / 4;
    for (int g = 0; g < Gf; ++g) gemv_group(Wb, bstride, g, bcast_group(q, K, g, 0), a, MB);
    if (Gf < G) gemv_group(Wb, bstride, Gf, bcast_group(q, K, Gf, 1), a, MB);
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) store_rows(acc, b + m, R, a[m]);
}

static void gemv_q8(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc)
{
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    int b = 0;
    for (; b + 4 <= B; b += 4) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 4);
    if (B - b == 3) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 3);
    else if (B - b == 2) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 2);
    else if (B - b == 1) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 1);
}

/* corr[m] = 128 * rowsum(W) of row block m, as int32 lanes. */
RNC_AI void row_corrections(const int8_t *Wb, size_t bstride, int G, __m512i *corr, const int MB)
{
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) corr[m] = _mm512_setzero_si512();
    for (int g = 0; g < G; ++g) {
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m)
            corr[m] = _mm512_dpbusd_epi32(
                corr[m], k80, _mm512_loadu_si512((const void *)(Wb + (size_t)m * bstride + (size_t)g * 64)));
    }
}

/* One input group of MB row blocks x NB columns, offset trick: a[m][n] += dpbusd(q_n ^ 0x80, W_m). */
RNC_AI void gemm_group(const int8_t *Wb, size_t bstride, int g, int K, const int8_t *Q, size_t ldq,
                       __m512i a[4][4], const int MB, const int NB, const int tail)
{
    const __m512i k80 = _mm512_set1_epi8((char)0x80);
    __m512i w[4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m)
        w[m] = _mm512_loadu_si512((const void *)(Wb + (size_t)m * bstride + (size_t)g * 64));
#pragma GCC unroll 4
    for (int n = 0; n < NB; ++n) {
        const __m512i xu = _mm512_xor_si512(bcast_group(Q + (size_t)n * ldq, K, g, tail), k80);
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) a[m][n] = _mm512_dpbusd_epi32(a[m][n], xu, w[m]);
    }
}

/* Dequantised output (rnc_q8_gemm_deq_avx512vnni): Y = (float)acc * (sx[n] * sw[r]) + bias[r], the
 * float32 operations of the sequence path's scalar loop (model.c), in the same order. */
typedef struct {
    const float *sx, *sw, *bias;
} deq_out;

RNC_AI void store_deq(float *y, const deq_out *d, int n, int b, int R, __m512i a)
{
    const int r = 16 * b, left = R - r;
    const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
    const __m512 v = _mm512_add_ps(
        _mm512_mul_ps(_mm512_cvtepi32_ps(a), _mm512_mul_ps(_mm512_set1_ps(d->sx[n]), _mm512_maskz_loadu_ps(m, d->sw + r))),
        _mm512_maskz_loadu_ps(m, d->bias + r));
    _mm512_mask_storeu_ps(y + r, m, v);
}

/* MB row blocks x NB columns (MB, NB <= 4); d != NULL: dequantised float output (Acc is a float
 * array then; column n0 + n's scale is d->sx[n0 + n], the caller passes d with sx at n0). */
RNC_AI void gemm_tile(const int8_t *Wb, size_t bstride, int G, int K, const int8_t *Q, size_t ldq,
                      const __m512i *corr, int32_t *Acc, size_t ldacc, int b, int R, const int MB,
                      const int NB, const deq_out *d)
{
    __m512i a[4][4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m)
#pragma GCC unroll 4
        for (int n = 0; n < NB; ++n) a[m][n] = _mm512_setzero_si512();
    const int Gf = K / 4;
    for (int g = 0; g < Gf; ++g) gemm_group(Wb, bstride, g, K, Q, ldq, a, MB, NB, 0);
    if (Gf < G) gemm_group(Wb, bstride, Gf, K, Q, ldq, a, MB, NB, 1);
#pragma GCC unroll 4
    for (int n = 0; n < NB; ++n)
#pragma GCC unroll 4
        for (int m = 0; m < MB; ++m) {
            if (d) store_deq((float *)(void *)(Acc + (size_t)n * ldacc), d, n, b + m, R, _mm512_sub_epi32(a[m][n], corr[m]));
            else store_rows(Acc + (size_t)n * ldacc, b + m, R, _mm512_sub_epi32(a[m][n], corr[m]));
        }
}

RNC_AI void gemm_rowblocks(const int8_t *Wb, size_t bs, int G, int K, int N, const int8_t *Q,
                           size_t ldq, int32_t *Acc, size_t ldacc, int b, int R, const int MB,
                           const deq_out *d0)
{
    __m512i corr[4];
    row_corrections(Wb, bs, G, corr, MB);
    deq_out dn;
    const deq_out *d = NULL;
    if (d0) {
        dn = *d0;
        d = &dn;
    }
    int n = 0;
    for (; n + 4 <= N; n += 4) {
        if (d0) dn.sx = d0->sx + n;
        gemm_tile(Wb, bs, G, K, Q + (size_t)n * ldq, ldq, corr, Acc + (size_t)n * ldacc, ldacc, b, R,
                  MB, 4, d);
    }
    for (; n < N; ++n) {
        if (d0) dn.sx = d0->sx + n;
        gemm_tile(Wb, bs, G, K, Q + (size_t)n * ldq, ldq, corr, Acc + (size_t)n * ldacc, ldacc, b, R,
                  MB, 1, d);
    }
}

RNC_AI void gemm_q8(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc, int ldacc,
                    const deq_out *d0)
{
    if (N < 3) {  /* too few columns to pay for the row corrections */
        for (int n = 0; n < N; ++n) {
            int32_t *acc = Acc + (size_t)n * ldacc;
            gemv_q8(Wp, R, K, Q + (size_t)n * ldq, acc);
            if (d0) /* in place: each 16-lane group is read before it is overwritten */
                for (int b = 0; 16 * b < R; ++b) {
                    const int left = R - 16 * b;
                    const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
                    store_deq((float *)(void *)acc, d0, n, b, R, _mm512_maskz_loadu_epi32(m, acc + 16 * b));
                }
        }
        return;
    }
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    /* Column panels of about 16 KB of Q stay in L1 while every row block streams past them
     * from L2 (a whole sequence's input projection has thousands of columns). */
    int nc = (int)(16384 / (size_t)(G * 4)) & ~3;
    nc = nc < 16 ? 16 : nc;
    for (int n0 = 0; n0 < N; n0 += nc) {
        const int nn = N - n0 < nc ? N - n0 : nc;
        const int8_t *Qp = Q + (size_t)n0 * ldq;
        int32_t *Ap = Acc + (size_t)n0 * ldacc;
        deq_out dp;
        if (d0) {
            dp = *d0;
            dp.sx = d0->sx + n0;
        }
        int b = 0;
        for (; b + 4 <= B; b += 4)
            gemm_rowblocks(Wp + (size_t)b * bs, bs, G, K, nn, Qp, (size_t)ldq, Ap, (size_t)ldacc, b, R, 4,
                           d0 ? &dp : NULL);
        for (; b < B; ++b)
            gemm_rowblocks(Wp + (size_t)b * bs, bs, G, K, nn, Qp, (size_t)ldq, Ap, (size_t)ldacc, b, R, 1,
                           d0 ? &dp : NULL);
    }
}

void rnc_q8_gemm_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                            int32_t *Acc, int ldacc)
{
    gemm_q8(Wp, R, K, N, Q, ldq, Acc, ldacc, NULL);
}

void rnc_q8_gemm_deq_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                const float *sx, const float *sw, const float *bias, float *Y, int ldy)
{
    const deq_out d = {sx, sw, bias};
    gemm_q8(Wp, R, K, N, Q, ldq, (int32_t *)(void *)Y, ldy, &d);
}

#else
/* Built without AVX-512 VNNI flags (another architecture or compiler): keep the unit non-empty. */
typedef int rnc_gemv_avx512vnni_unused;
#endif
