/* q4 product and cells, AVX-512 VNNI (q4.h; flags of X86_AVX512VNNI_SRCS).
 *
 * A 64-byte tile (16 rows x 8 inputs) is one zmm: `and 0x0F` gives the nibbles of inputs 8p..8p+3
 * and `srli 4` + `and` those of 8p+4..8p+7, each the unsigned operand of one vpdpbusd with the
 * input group broadcast as its signed operand (the q8 tiles' form, q8_gemm_avx512vnni.c). The
 * accumulators end with - 8 * sum q (q4.h). One column: four row blocks per iteration share each
 * group's broadcast (8 accumulators); four columns at a time share each tile's unpacking. */
#if !defined(RNC_NO_Q4) /* kernel_list.h: a build may leave these kernels out */
#include "q4.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels_avx512.h"
#include "epilogue_avx512.h"

#define RNC_SAI static inline __attribute__((always_inline))

RNC_SAI __m512i q4_bc(const int8_t *q, int g)
{
    int32_t v;
    memcpy(&v, q + 4 * (size_t)g, 4);
    return _mm512_set1_epi32(v);
}

RNC_SAI void q4_store(int32_t *acc, int b, int R, __m512i a)
{
    const int n = R - 16 * b;
    if (n >= 16) _mm512_storeu_si512((void *)(acc + 16 * b), a);
    else _mm512_mask_storeu_epi32(acc + 16 * b, (__mmask16)((1u << n) - 1u), a);
}

/* sum_{k<K} q[k] with vpdpbusd on bytes of 1 */
static int32_t q4_qsum(const int8_t *q, int K)
{
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s = _mm512_setzero_si512();
    int k = 0;
    for (; k + 64 <= K; k += 64) s = _mm512_dpbusd_epi32(s, ones, _mm512_loadu_si512((const void *)(q + k)));
    if (k < K) {
        const __mmask64 m = ((__mmask64)1 << (K - k)) - 1;
        s = _mm512_dpbusd_epi32(s, ones, _mm512_maskz_loadu_epi8(m, q + k));
    }
    return _mm512_reduce_add_epi32(s);
}

/* MB row blocks of one column (MB = 1..4): each input group broadcast once for the MB tiles */
RNC_SAI void q4_blocks(const uint8_t *W, int pairs, int full, const int8_t *q, __m512i tlo, __m512i thi,
                       __m512i corr, int b, int R, int32_t *acc, const int MB)
{
    const __m512i mask = _mm512_set1_epi8(0x0F);
    const size_t bs = (size_t)pairs * 64;
    const uint8_t *t = W + (size_t)b * bs;
    __m512i a[4], c[4];
    for (int m = 0; m < MB; ++m) a[m] = c[m] = _mm512_setzero_si512();
    for (int p = 0; p < full; ++p) {
        const __m512i xl = q4_bc(q, 2 * p), xh = q4_bc(q, 2 * p + 1);
        for (int m = 0; m < MB; ++m) {
            const __m512i v = _mm512_loadu_si512((const void *)(t + m * bs + 64 * (size_t)p));
            a[m] = _mm512_dpbusd_epi32(a[m], _mm512_and_si512(v, mask), xl);
            c[m] = _mm512_dpbusd_epi32(c[m], _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), xh);
        }
    }
    if (full < pairs) /* the last, partial tile: groups zero past K */
        for (int m = 0; m < MB; ++m) {
            const __m512i v = _mm512_loadu_si512((const void *)(t + m * bs + 64 * (size_t)full));
            a[m] = _mm512_dpbusd_epi32(a[m], _mm512_and_si512(v, mask), tlo);
            c[m] = _mm512_dpbusd_epi32(c[m], _mm512_and_si512(_mm512_srli_epi16(v, 4), mask), thi);
        }
    for (int m = 0; m < MB; ++m) q4_store(acc, b + m, R, _mm512_sub_epi32(_mm512_add_epi32(a[m], c[m]), corr));
}

static void q4_col(const uint8_t *W, int R, int K, const int8_t *q, int32_t *acc)
{
    const int pairs = rnc__q4_pairs(K), full = K / 8, nb = (R + 15) / 16;
    const __m512i corr = _mm512_set1_epi32(8 * q4_qsum(q, K));
    __m512i tlo = _mm512_setzero_si512(), thi = tlo;
    if (full < pairs) {
        tlo = _mm512_set1_epi32(rnc__q4_group(q, K, 2 * full));
        thi = _mm512_set1_epi32(rnc__q4_group(q, K, 2 * full + 1));
    }
    int b = 0;
    for (; b + 4 <= nb; b += 4) q4_blocks(W, pairs, full, q, tlo, thi, corr, b, R, acc, 4);
    switch (nb - b) {
    case 3: q4_blocks(W, pairs, full, q, tlo, thi, corr, b, R, acc, 3); break;
    case 2: q4_blocks(W, pairs, full, q, tlo, thi, corr, b, R, acc, 2); break;
    case 1: q4_blocks(W, pairs, full, q, tlo, thi, corr, b, R, acc, 1); break;
    default: break;
    }
}

/* four columns: each tile unpacked once */
static void q4_cols4(const uint8_t *W, int R, int K, const int8_t *Q, size_t ldq, int32_t *Acc, size_t ldacc)
{
    const int pairs = rnc__q4_pairs(K), full = K / 8, nb = (R + 15) / 16;
    const __m512i mask = _mm512_set1_epi8(0x0F);
    const int8_t *q[4];
    __m512i corr[4], tlo[4], thi[4];
    for (int c = 0; c < 4; ++c) {
        q[c] = Q + (size_t)c * ldq;
        corr[c] = _mm512_set1_epi32(8 * q4_qsum(q[c], K));
        tlo[c] = _mm512_set1_epi32(full < pairs ? rnc__q4_group(q[c], K, 2 * full) : 0);
        thi[c] = _mm512_set1_epi32(full < pairs ? rnc__q4_group(q[c], K, 2 * full + 1) : 0);
    }
    for (int b = 0; b < nb; ++b) {
        const uint8_t *t = W + (size_t)b * pairs * 64;
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (int p = 0; p < full; ++p) {
            const __m512i v = _mm512_loadu_si512((const void *)(t + 64 * (size_t)p));
            const __m512i lo = _mm512_and_si512(v, mask), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
            a0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a0, lo, q4_bc(q[0], 2 * p)), hi, q4_bc(q[0], 2 * p + 1));
            a1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a1, lo, q4_bc(q[1], 2 * p)), hi, q4_bc(q[1], 2 * p + 1));
            a2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a2, lo, q4_bc(q[2], 2 * p)), hi, q4_bc(q[2], 2 * p + 1));
            a3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a3, lo, q4_bc(q[3], 2 * p)), hi, q4_bc(q[3], 2 * p + 1));
        }
        if (full < pairs) {
            const __m512i v = _mm512_loadu_si512((const void *)(t + 64 * (size_t)full));
            const __m512i lo = _mm512_and_si512(v, mask), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
            a0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a0, lo, tlo[0]), hi, thi[0]);
            a1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a1, lo, tlo[1]), hi, thi[1]);
            a2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a2, lo, tlo[2]), hi, thi[2]);
            a3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(a3, lo, tlo[3]), hi, thi[3]);
        }
        q4_store(Acc, b, R, _mm512_sub_epi32(a0, corr[0]));
        q4_store(Acc + ldacc, b, R, _mm512_sub_epi32(a1, corr[1]));
        q4_store(Acc + 2 * ldacc, b, R, _mm512_sub_epi32(a2, corr[2]));
        q4_store(Acc + 3 * ldacc, b, R, _mm512_sub_epi32(a3, corr[3]));
    }
}

void rnc_q4_gemm_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                            int32_t *Acc, int ldacc)
{
    const uint8_t *W = (const uint8_t *)(const void *)Wp;
    int n = 0;
    for (; n + 4 <= N; n += 4)
        q4_cols4(W, R, K, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc);
    for (; n < N; ++n) q4_col(W, R, K, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

/* the epilogue: AVX-512's cell update and quantiser, and the dequantisation fused with the
 * update from epilogue_avx2.h (the same float32 operations as every ISA's) */
#include "epilogue_avx2.h"
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_Q4 1
#define RNC_SFX avx512vnni
#include "cell_template.h"

#else
typedef int rnc_q4_avx512vnni_unused;
#endif
#else
typedef int rnc_q4_avx512vnni_left_out;
#endif
