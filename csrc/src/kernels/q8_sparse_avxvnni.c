/* Block-sparse q8 product and cells, AVX-VNNI (256-bit VEX vpdpbusd; q8_sparse.h; flags of
 * X86_AVXVNNI_SRCS).
 *
 * An 8 x 4 block is one ymm, a 16 x 4 block two; the input group, offset (q ^ 0x80, unsigned),
 * is broadcast to every dword lane and vpdpbusd adds the 4 products of each row; the stored row
 * sums take the 128 * rowsum off. Exact, as on AVX-512 VNNI (q8_sparse_avx512vnni.c).
 *
 * Testing on CPUs without AVX-VNNI: built with -DRNC_AVXVNNI_VIA_EVEX (plus -mavx512vl
 * -mavx512vnni), the same code uses the EVEX encoding of the identical operation and its
 * functions get the suffix _evex (csrc/tests/test_sparse.c runs them, make test). */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "isa_target.h"
#include "q8_sparse.h"

#if defined(RNC_AVXVNNI_VIA_EVEX)
#if defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define SP_OK 1
#define SP_DPBUSD(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define SP_SFX avxvnni_evex
void rnc_q8_gemm_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq, int32_t *Acc,
                              int ldacc);
void rnc_q8_gemm_sparse_avxvnni_evex(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                     int32_t *Acc, int ldacc);
void rnc_q8_rnn_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_q8_gru_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_q8_lstm_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_f32_rnn_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_f32_gru_step_sparse_avxvnni_evex(const rnc_cell_args *a);
void rnc_f32_lstm_step_sparse_avxvnni_evex(const rnc_cell_args *a);
#endif
#elif defined(RNC_TARGET_X86_AVXVNNI)
#define SP_OK 1
#define SP_DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define SP_SFX avxvnni
#endif

#if defined(SP_OK)
#include <immintrin.h>

#include "epilogue_avx2.h"

#define SP_CAT_(a, b) a##b
#define SP_CAT(a, b) SP_CAT_(a, b)
#define SP_AI static inline __attribute__((always_inline))
#define SP_LD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

SP_AI __m256i sp_x(const int8_t *q, uint16_t g)
{
    return _mm256_set1_epi32(rnc__group4(q, g) ^ (int32_t)0x80808080u);
}

/* rows r0 .. r0+7 (those < R): acc - 128 * sums */
SP_AI void sp_store8(int32_t *acc, const int32_t *sums, int r0, int R, __m256i a)
{
    const __m256i v = _mm256_sub_epi32(a, _mm256_slli_epi32(SP_LD(sums + r0), 7));
    const int n = R - r0;
    if (n >= 8) {
        _mm256_storeu_si256((__m256i *)(void *)(acc + r0), v);
    } else if (n > 0) {
        int32_t t[8];
        _mm256_storeu_si256((__m256i *)(void *)t, v);
        memcpy(acc + r0, t, sizeof(int32_t) * (size_t)n);
    }
}

static void sp_col(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc)
{
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    const uint32_t bh = S->bh;
    for (uint32_t b = 0; b < S->row_blocks && (int)(bh * b) < R; ++b) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        uint32_t i = S->rowptr[b];
        const uint32_t e = S->rowptr[b + 1];
        if (bh == 16) {
            for (; i + 2 <= e; i += 2) {
                const __m256i x0 = sp_x(q, c[i]), x1 = sp_x(q, c[i + 1]);
                const int8_t *t = w + 64 * (size_t)i;
                a0 = SP_DPBUSD(a0, x0, SP_LD(t));
                a1 = SP_DPBUSD(a1, x0, SP_LD(t + 32));
                a2 = SP_DPBUSD(a2, x1, SP_LD(t + 64));
                a3 = SP_DPBUSD(a3, x1, SP_LD(t + 96));
            }
            for (; i < e; ++i) {
                const __m256i x0 = sp_x(q, c[i]);
                a0 = SP_DPBUSD(a0, x0, SP_LD(w + 64 * (size_t)i));
                a1 = SP_DPBUSD(a1, x0, SP_LD(w + 64 * (size_t)i + 32));
            }
            sp_store8(acc, S->sums, 16 * (int)b, R, _mm256_add_epi32(a0, a2));
            sp_store8(acc, S->sums, 16 * (int)b + 8, R, _mm256_add_epi32(a1, a3));
        } else {
            for (; i + 4 <= e; i += 4) {
                const int8_t *t = w + 32 * (size_t)i;
                a0 = SP_DPBUSD(a0, sp_x(q, c[i]), SP_LD(t));
                a1 = SP_DPBUSD(a1, sp_x(q, c[i + 1]), SP_LD(t + 32));
                a2 = SP_DPBUSD(a2, sp_x(q, c[i + 2]), SP_LD(t + 64));
                a3 = SP_DPBUSD(a3, sp_x(q, c[i + 3]), SP_LD(t + 96));
            }
            for (; i < e; ++i) a0 = SP_DPBUSD(a0, sp_x(q, c[i]), SP_LD(w + 32 * (size_t)i));
            sp_store8(acc, S->sums, 8 * (int)b, R, _mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)));
        }
    }
}

void SP_CAT(rnc_q8_gemm_sparse_, SP_SFX)(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                         int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        SP_CAT(rnc_q8_gemm_, SP_SFX)(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    for (int n = 0; n < N; ++n) sp_col(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#if defined(RNC_AVXVNNI_VIA_EVEX)
#define RNC_SFX sparse_avxvnni_evex
#define rnc_f32_gemm_sparse_avxvnni_evex rnc_f32_gemm_avx2
#else
#define RNC_SFX sparse_avxvnni
#define rnc_f32_gemm_sparse_avxvnni rnc_f32_gemm_avx2
#endif
#include "cell_template.h"

#elif RNC_X86 && !defined(RNC_NO_X86_AVXVNNI) && !defined(RNC_AVXVNNI_VIA_EVEX)
#error "q8_sparse_avxvnni.c needs AVX-VNNI and AVX2 (sources.mk X86_AVXVNNI_FLAGS) unless RNC_NO_X86_AVXVNNI"
#else
typedef int rnc_q8_sparse_avxvnni_unused;
#endif
#else
typedef int rnc_q8_sparse_avxvnni_left_out;
#endif
