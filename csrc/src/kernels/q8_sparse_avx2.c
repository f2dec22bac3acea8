/* Block-sparse q8 product and cells, AVX2 (q8_sparse.h; flags of X86_AVX2_SRCS).
 *
 * An 8 x 4 block is one ymm (a 16 x 4 block two): input group g is broadcast to every dword lane,
 * vpmaddubsw(|x|, sign(x) * W) makes int16 pair sums (at most 2 * 127 * 127 = 32258: no
 * saturation; vpsignb also zeroes W where x = 0) and vpmaddwd with ones widens them to int32, so
 * the sums are exact. Two accumulators per 8 rows hide the latency. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

#if defined(__AVX2__)
#include <immintrin.h>

#include "epilogue_avx2.h"

#define RNC_SAI static inline __attribute__((always_inline))
#include "q8_sparse_avx2.h"

RNC_SAI void sp_store(int32_t *dst, int rows, __m256i v)
{
    if (rows >= 8) {
        _mm256_storeu_si256((__m256i *)(void *)dst, v);
    } else {
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)(void *)t, v);
        memcpy(dst, t, sizeof(int32_t) * (size_t)rows);
    }
}

static void sp_col(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    const uint32_t bh = S->bh;
    for (uint32_t b = 0; b < S->row_blocks && (int)(bh * b) < R; ++b) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        uint32_t i = S->rowptr[b];
        const uint32_t e = S->rowptr[b + 1];
        if (bh == 16) {
            for (; i + 2 <= e; i += 2) {
                const __m256i x0 = _mm256_set1_epi32(rnc__group4(q, c[i])), x1 = _mm256_set1_epi32(rnc__group4(q, c[i + 1]));
                const __m256i ax0 = _mm256_abs_epi8(x0), ax1 = _mm256_abs_epi8(x1);
                const int8_t *t = w + 64 * (size_t)i;
                a0 = sp_mac(a0, SP_LD(t), x0, ax0, ones);
                a1 = sp_mac(a1, SP_LD(t + 32), x0, ax0, ones);
                a2 = sp_mac(a2, SP_LD(t + 64), x1, ax1, ones);
                a3 = sp_mac(a3, SP_LD(t + 96), x1, ax1, ones);
            }
            for (; i < e; ++i) {
                const __m256i x0 = _mm256_set1_epi32(rnc__group4(q, c[i])), ax0 = _mm256_abs_epi8(x0);
                const int8_t *t = w + 64 * (size_t)i;
                a0 = sp_mac(a0, SP_LD(t), x0, ax0, ones);
                a1 = sp_mac(a1, SP_LD(t + 32), x0, ax0, ones);
            }
            const int rows = rnc__sparse_rows(S, b, R);
            sp_store(acc + 16 * b, rows, _mm256_add_epi32(a0, a2));
            if (rows > 8) sp_store(acc + 16 * b + 8, rows - 8, _mm256_add_epi32(a1, a3));
        } else {
            for (; i + 4 <= e; i += 4) {
                const int8_t *t = w + 32 * (size_t)i;
                for (int u = 0; u < 4; ++u) {
                    const __m256i x = _mm256_set1_epi32(rnc__group4(q, c[i + (uint32_t)u]));
                    const __m256i v = sp_mac(u == 0 ? a0 : u == 1 ? a1 : u == 2 ? a2 : a3, SP_LD(t + 32 * u), x,
                                             _mm256_abs_epi8(x), ones);
                    if (u == 0) a0 = v;
                    else if (u == 1) a1 = v;
                    else if (u == 2) a2 = v;
                    else a3 = v;
                }
            }
            for (; i < e; ++i) {
                const __m256i x = _mm256_set1_epi32(rnc__group4(q, c[i]));
                a0 = sp_mac(a0, SP_LD(w + 32 * (size_t)i), x, _mm256_abs_epi8(x), ones);
            }
            sp_store(acc + 8 * b, rnc__sparse_rows(S, b, R),
                     _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
        }
    }
}

void rnc_q8_gemm_sparse_avx2(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                             int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        rnc_q8_gemm_avx2(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    for (int n = 0; n < N; ++n) sp_col(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_SFX sparse_avx2
#define rnc_f32_gemm_sparse_avx2 rnc_f32_gemm_avx2
#include "cell_template.h"

#else
typedef int rnc_q8_sparse_avx2_unused;
#endif
#else
typedef int rnc_q8_sparse_avx2_left_out;
#endif
