/* AVX-VNNI q8 matrix kernels (256-bit VEX vpdpbusd: Alder Lake, Sapphire Rapids, Zen 5, ...) on
 * rnncore's packed q8 layout.
 *
 * Compiled only with this file's flags: -mavx2 -mfma -mavxvnni.
 *
 * A 16-row x 4-input tile (64 bytes) is two ymm registers (rows 0-7 and 8-15); x's 4-byte group
 * is broadcast to the 8 dword lanes. vpdpbusd multiplies unsigned by signed bytes, so:
 *   gemv: sign trick, dpbusd(|q|, sign(q) * W) with vpsignb (W in [-127, 127], exact);
 *   gemm: offset trick, dpbusd(q ^ 0x80, W) - 128 * rowsum(W), the row sums made once per row
 *         block with the constant 0x80 bytes and shared by every column.
 * Each vpdpbusd lane adds four products into int32 without intermediate saturation, so the
 * accumulators equal the generic kernel's bit for bit.
 *
 * Testing on CPUs without AVX-VNNI: built with -DRNC_AVXVNNI_VIA_EVEX (plus -mavx512vl
 * -mavx512vnni), the same code uses the EVEX encoding of the identical 256-bit operation
 * (_mm256_dpbusd_epi32) and gets the function-name suffix _evex, so the C tests check this file's
 * logic on AVX-512 VNNI machines too; only the VEX encoding itself then goes unexecuted.
 */
#include "isa_target.h"
#include "kernels_avx512.h"

#if defined(RNC_AVXVNNI_VIA_EVEX)
#if defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define RNC_AVXVNNI_OK 1
#define RNC_DPBUSD256(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define RNC_AVXVNNI_FN(name) name##_evex
#endif
#elif defined(RNC_TARGET_X86_AVXVNNI)
#define RNC_AVXVNNI_OK 1
#define RNC_DPBUSD256(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define RNC_AVXVNNI_FN(name) name
#endif

#if defined(RNC_AVXVNNI_OK)
#include <immintrin.h>
#include <stddef.h>
#include <string.h>

#define RNC_AI static inline __attribute__((always_inline))

#if defined(RNC_AVXVNNI_VIA_EVEX)
void rnc_q8_gemm_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                              int32_t *Acc, int ldacc);
#endif

RNC_AI __m256i bcast_group(const int8_t *q, int K, int g, const int tail)
{
    int32_t v = 0;
    if (!tail) memcpy(&v, q + 4 * g, 4);
    else memcpy(&v, q + 4 * g, (size_t)(K - 4 * g));  /* zero-filled partial group, no over-read */
    return _mm256_set1_epi32(v);
}

/* Store rows 16b+8h .. 16b+8h+7 (half h of block b), only those < R. */
RNC_AI void store_half(int32_t *acc, int b, int h, int R, __m256i a)
{
    const int r0 = 16 * b + 8 * h, n = R - r0;
    if (n >= 8) {
        _mm256_storeu_si256((__m256i *)(acc + r0), a);
    } else if (n > 0) {
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)t, a);
        memcpy(acc + r0, t, (size_t)n * sizeof(int32_t));
    }
}

/* ------------------------------------------------------------------ gemv (sign trick) */

RNC_AI void gemv_group(const int8_t *Wb, size_t bstride, int g, __m256i xb, __m256i *a, const int MB)
{
    const __m256i xa = _mm256_abs_epi8(xb);
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) {
        const int8_t *t = Wb + (size_t)m * bstride + (size_t)g * 64;
        const __m256i w0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)t), xb);
        const __m256i w1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(t + 32)), xb);
        a[2 * m] = RNC_DPBUSD256(a[2 * m], xa, w0);
        a[2 * m + 1] = RNC_DPBUSD256(a[2 * m + 1], xa, w1);
    }
}

RNC_AI void gemv_blocks(const int8_t *Wb, size_t bstride, int G, int K, const int8_t *q, int32_t *acc,
                        int b, int R, const int MB)
{
    __m256i a[8];
#pragma GCC unroll 8
    for (int m = 0; m < 2 * MB; ++m) a[m] = _mm256_setzero_si256();
    const int Gf = K / 4;
    for (int g = 0; g < Gf; ++g) gemv_group(Wb, bstride, g, bcast_group(q, K, g, 0), a, MB);
    if (Gf < G) gemv_group(Wb, bstride, Gf, bcast_group(q, K, Gf, 1), a, MB);
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) {
        store_half(acc, b + m, 0, R, a[2 * m]);
        store_half(acc, b + m, 1, R, a[2 * m + 1]);
    }
}

static void gemv_q8(const int8_t *Wp, int R, int K, const int8_t *q, int32_t *acc)
{
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    int b = 0;
    for (; b + 4 <= B; b += 4) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 4);
    for (; b < B; ++b) gemv_blocks(Wp + (size_t)b * bs, bs, G, K, q, acc, b, R, 1);
}

/* ------------------------------------------------------------------ gemm (offset trick) */

/* 2 row blocks (4 half tiles) x NB (<= 2) columns: 8 accumulators + 4 weights fit 16 ymm. */
RNC_AI void gemm_group(const int8_t *Wb, size_t bstride, int g, int K, const int8_t *Q, size_t ldq,
                       __m256i a[4][2], const int MB, const int NB, const int tail)
{
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    __m256i w[4];
#pragma GCC unroll 4
    for (int m = 0; m < MB; ++m) {
        const int8_t *t = Wb + (size_t)m * bstride + (size_t)g * 64;
        w[2 * m] = _mm256_loadu_si256((const __m256i *)t);
        w[2 * m + 1] = _mm256_loadu_si256((const __m256i *)(t + 32));
    }
#pragma GCC unroll 2
    for (int n = 0; n < NB; ++n) {
        const __m256i xu = _mm256_xor_si256(bcast_group(Q + (size_t)n * ldq, K, g, tail), k80);
#pragma GCC unroll 4
        for (int h = 0; h < 2 * MB; ++h) a[h][n] = RNC_DPBUSD256(a[h][n], xu, w[h]);
    }
}

RNC_AI void gemm_tile(const int8_t *Wb, size_t bstride, int G, int K, const int8_t *Q, size_t ldq,
                      const int32_t *corr, int32_t *Acc, size_t ldacc, int b, int R, const int MB,
                      const int NB)
{
    __m256i a[4][2];
#pragma GCC unroll 4
    for (int h = 0; h < 2 * MB; ++h)
#pragma GCC unroll 2
        for (int n = 0; n < NB; ++n) a[h][n] = _mm256_setzero_si256();
    const int Gf = K / 4;
    for (int g = 0; g < Gf; ++g) gemm_group(Wb, bstride, g, K, Q, ldq, a, MB, NB, 0);
    if (Gf < G) gemm_group(Wb, bstride, Gf, K, Q, ldq, a, MB, NB, 1);
#pragma GCC unroll 2
    for (int n = 0; n < NB; ++n)
#pragma GCC unroll 4
        for (int h = 0; h < 2 * MB; ++h) {
            const __m256i c = _mm256_loadu_si256((const __m256i *)(corr + 8 * h));
            store_half(Acc + (size_t)n * ldacc, b + h / 2, h % 2, R, _mm256_sub_epi32(a[h][n], c));
        }
}

/* corr[8h + i] = 128 * rowsum(W) for half tile h of the MB row blocks. */
RNC_AI void row_corrections(const int8_t *Wb, size_t bstride, int G, int32_t *corr, const int MB)
{
    const __m256i k80 = _mm256_set1_epi8((char)0x80);
    __m256i c[4];
#pragma GCC unroll 4
    for (int h = 0; h < 2 * MB; ++h) c[h] = _mm256_setzero_si256();
    for (int g = 0; g < G; ++g)
#pragma GCC unroll 4
        for (int h = 0; h < 2 * MB; ++h)
            c[h] = RNC_DPBUSD256(c[h], k80,
                                 _mm256_loadu_si256((const __m256i *)(Wb + (size_t)(h / 2) * bstride +
                                                                      (size_t)g * 64 + 32 * (h % 2))));
#pragma GCC unroll 4
    for (int h = 0; h < 2 * MB; ++h) _mm256_storeu_si256((__m256i *)(corr + 8 * h), c[h]);
}

RNC_AI void gemm_rowblocks(const int8_t *Wb, size_t bs, int G, int K, int N, const int8_t *Q,
                           size_t ldq, int32_t *Acc, size_t ldacc, int b, int R, const int MB)
{
    int32_t corr[32];
    row_corrections(Wb, bs, G, corr, MB);
    int n = 0;
    for (; n + 2 <= N; n += 2)
        gemm_tile(Wb, bs, G, K, Q + (size_t)n * ldq, ldq, corr, Acc + (size_t)n * ldacc, ldacc, b, R,
                  MB, 2);
    for (; n < N; ++n)
        gemm_tile(Wb, bs, G, K, Q + (size_t)n * ldq, ldq, corr, Acc + (size_t)n * ldacc, ldacc, b, R,
                  MB, 1);
}

void RNC_AVXVNNI_FN(rnc_q8_gemm_avxvnni)(const int8_t *Wp, int R, int K, int N, const int8_t *Q,
                                          int ldq, int32_t *Acc, int ldacc)
{
    if (N < 3) {
        for (int n = 0; n < N; ++n)
            gemv_q8(Wp, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
        return;
    }
    const int G = (K + 3) / 4, B = (R + 15) / 16;
    const size_t bs = (size_t)G * 64;
    int b = 0;
    for (; b + 2 <= B; b += 2)
        gemm_rowblocks(Wp + (size_t)b * bs, bs, G, K, N, Q, (size_t)ldq, Acc, (size_t)ldacc, b, R, 2);
    for (; b < B; ++b)
        gemm_rowblocks(Wp + (size_t)b * bs, bs, G, K, N, Q, (size_t)ldq, Acc, (size_t)ldacc, b, R, 1);
}

#elif !defined(RNC_AVXVNNI_VIA_EVEX) && (defined(__x86_64__) || defined(_M_X64)) && !defined(RNC_NO_X86_AVXVNNI)
#error "q8_gemm_avxvnni.c needs AVX-VNNI and AVX2 (sources.mk X86_AVXVNNI_FLAGS) unless RNC_NO_X86_AVXVNNI"
#else
/* The AVX-VNNI group left out (-DRNC_NO_X86_AVXVNNI) or another architecture: keep the unit
 * non-empty. */
typedef int rnc_gemv_avxvnni_unused;
#endif
