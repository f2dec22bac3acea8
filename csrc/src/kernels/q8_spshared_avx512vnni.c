/* Gate-shared block-sparse q8 product and cells, AVX-512 VNNI (q8_sparse.h; flags of
 * X86_AVX512VNNI_SRCS). An entry of a unit block holds the G gates' 16 x 4 blocks of one input
 * group: one index load and one input broadcast serve G vpdpbusd, one per gate's zmm accumulator
 * (the offset trick of q8_sparse_avx512vnni.c: dpbusd(q ^ 0x80, W) = W q + 128 rowsum, the stored
 * row sums take 128 rowsum off). Two entries in flight, 2G accumulators; G is a constant in each
 * inlined copy (3: GRU, 4: LSTM), so they stay in registers. Exact int32 sums as every ISA's. A
 * matrix in another layout runs rnc_q8_gemm_sparse_avx512vnni. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels_avx512.h"
#include "epilogue_avx512.h"

#define RNC_SAI static inline __attribute__((always_inline))
#include "q8_sparse_avx512vnni.h"

/* Unit block b of one column into acc (rows g*hp + 16 b ..): `off` 0 with q already offset
 * (q ^ 0x80), 0x80808080 with q signed. */
RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, int32_t off,
                     const uint32_t G)
{
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + (size_t)64 * G * S->rowptr[b];
    __m512i a[2 * RNC_SPSHARED_MAX_GATES];
#pragma GCC unroll 8
    for (uint32_t g = 0; g < 2 * G; ++g) a[g] = _mm512_setzero_si512();
    for (; ce - c >= 2; c += 2, t += 128 * G) {
        const __m512i x0 = _mm512_set1_epi32(rnc__group4(q, c[0]) ^ off);
        const __m512i x1 = _mm512_set1_epi32(rnc__group4(q, c[1]) ^ off);
#pragma GCC unroll 4
        for (uint32_t g = 0; g < G; ++g) {
            a[g] = _mm512_dpbusd_epi32(a[g], x0, _mm512_loadu_si512((const void *)(t + 64 * g)));
            a[G + g] = _mm512_dpbusd_epi32(a[G + g], x1, _mm512_loadu_si512((const void *)(t + 64 * (G + g))));
        }
    }
    if (c < ce) {
        const __m512i x0 = _mm512_set1_epi32(rnc__group4(q, c[0]) ^ off);
#pragma GCC unroll 4
        for (uint32_t g = 0; g < G; ++g)
            a[g] = _mm512_dpbusd_epi32(a[g], x0, _mm512_loadu_si512((const void *)(t + 64 * g)));
    }
#pragma GCC unroll 4
    for (uint32_t g = 0; g < G; ++g) {
        const size_t r0 = (size_t)g * 16 * S->row_blocks + 16 * (size_t)b;
        const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(S->sums + r0)), 7);
        _mm512_storeu_si512((void *)(acc + r0), _mm512_sub_epi32(_mm512_add_epi32(a[g], a[G + g]), corr));
    }
}

RNC_SAI void sh_col_g(const rnc_sparse_q8 *S, const int8_t *q, int32_t *acc, int32_t off, const uint32_t G)
{
    for (uint32_t b = 0; b < S->row_blocks; ++b) sh_unit(S, b, q, acc, off, G);
}

static void sh_col(const rnc_sparse_q8 *S, const int8_t *q, int32_t *acc, int32_t off)
{
    if (S->gates == 3) sh_col_g(S, q, acc, off, 3);
    else if (S->gates == 4) sh_col_g(S, q, acc, off, 4);
    else
        for (uint32_t b = 0; b < S->row_blocks; ++b) sh_unit(S, b, q, acc, off, S->gates);
}

/* Four columns at once (sequence projections): each entry's G weight vectors loaded once for all
 * four columns, 4G accumulators. */
RNC_SAI void sh_cols4_g(const rnc_sparse_q8 *S, const int8_t *Q, size_t ldq, int32_t *Acc, size_t ldacc,
                        const uint32_t G)
{
    const int32_t off = (int32_t)0x80808080u;
    for (uint32_t b = 0; b < S->row_blocks; ++b) {
        __m512i a[4 * RNC_SPSHARED_MAX_GATES];
#pragma GCC unroll 16
        for (uint32_t g = 0; g < 4 * G; ++g) a[g] = _mm512_setzero_si512();
        for (uint32_t i = S->rowptr[b]; i < S->rowptr[b + 1]; ++i) {
            const int8_t *t = S->blocks + (size_t)64 * G * i;
            const uint16_t c = S->cols[i];
            __m512i x[4];
#pragma GCC unroll 4
            for (uint32_t n = 0; n < 4; ++n) x[n] = _mm512_set1_epi32(rnc__group4(Q + n * ldq, c) ^ off);
#pragma GCC unroll 4
            for (uint32_t g = 0; g < G; ++g) {
                const __m512i w = _mm512_loadu_si512((const void *)(t + 64 * g));
#pragma GCC unroll 4
                for (uint32_t n = 0; n < 4; ++n) a[n * G + g] = _mm512_dpbusd_epi32(a[n * G + g], x[n], w);
            }
        }
#pragma GCC unroll 4
        for (uint32_t g = 0; g < G; ++g) {
            const size_t r0 = (size_t)g * 16 * S->row_blocks + 16 * (size_t)b;
            const __m512i corr = _mm512_slli_epi32(_mm512_loadu_si512((const void *)(S->sums + r0)), 7);
#pragma GCC unroll 4
            for (uint32_t n = 0; n < 4; ++n)
                _mm512_storeu_si512((void *)(Acc + n * ldacc + r0), _mm512_sub_epi32(a[n * G + g], corr));
        }
    }
}

/* The loader gives R = G*hp for a gate-shared matrix: every unit block's rows are stored. */
void rnc_q8_gemm_spshared_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                     int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->gates || (size_t)R < (size_t)S->gates * 16 * S->row_blocks) {
        if (S->gates) rnc_q8_gemm_spshared_generic(Wp, R, K, N, Q, ldq, Acc, ldacc);
        else rnc_q8_gemm_sparse_avx512vnni(Wp, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    int n = 0;
    for (; n + 4 <= N; n += 4) {
        const int8_t *q = Q + (size_t)n * ldq;
        int32_t *acc = Acc + (size_t)n * ldacc;
        if (S->gates == 3) sh_cols4_g(S, q, (size_t)ldq, acc, (size_t)ldacc, 3);
        else if (S->gates == 4) sh_cols4_g(S, q, (size_t)ldq, acc, (size_t)ldacc, 4);
        else break;
    }
    const size_t kp = ((size_t)K + 3) & ~(size_t)3;
    if (kp <= SP_XBUF) { /* q ^ 0x80 made once per column: each broadcast a plain load */
        int8_t qx[SP_XBUF] __attribute__((aligned(64)));
        for (; n < N; ++n) {
            sp_offset(Q + (size_t)n * ldq, kp, qx);
            sh_col(S, qx, Acc + (size_t)n * ldacc, 0);
        }
        return;
    }
    for (; n < N; ++n) sh_col(S, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc, (int32_t)0x80808080u);
}

/* the epilogue: AVX-512's cell update and quantiser, and its dequantisation fused with the
 * update, 16 units a vector (epilogue_avx512_q8.h; the same float32 operations as every ISA's) */
#include "epilogue_avx512_q8.h"
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_Q8_UPDATE rnc_avx512_q8_update
#define RNC_SFX spshared_avx512vnni_t
#define rnc_f32_gemm_spshared_avx512vnni_t rnc_f32_gemm_avx512
#define rnc_q8_gemm_spshared_avx512vnni_t rnc_q8_gemm_spshared_avx512vnni
#include "cell_template.h"

/* Batch 1, W_hh gate-shared, GRU (reset_after) or LSTM: the template's steps in its order, except
 * that W_hh's product runs unit block by unit block (all gates of a unit block at once) and after
 * unit block j comes the cell update of unit block j - 1, so the update runs under the remaining
 * blocks' weight loads. The update of unit block j is rnc_avx512_q8_unit16 at units 16 j.., the
 * operations of the template's RNC_Q8_UPDATE on those units: the same bits. */
RNC_SAI void sh_cell_b1(const rnc_cell_args *a, const uint32_t kind, const uint32_t G)
{
    const uint32_t H = a->H, Hp = a->Hp;
    const size_t ghp = (size_t)G * Hp, kh = RNC_ALIGN_UP((size_t)H, 4);
    const rnc_q8_areas ar = rnc__q8_areas(a);
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    int8_t qx[SP_XBUF] __attribute__((aligned(64)));
    if (!a->gi)
        rnc_q8_gemm_spshared_avx512vnni((const int8_t *)a->w_ih, (int)ghp, (int)a->I, 1, a->xq, (int)a->ldxq,
                                        ar.acc_i, (int)ghp);
    rnc__q8_quantize_h(a, RNC_QUANTIZE_ROW, H, ar.hq, ar.sh);
    sp_offset(ar.hq, kh, qx);
    const uint32_t units = Hp / 16;
    const __m512 svi = _mm512_set1_ps(a->gi ? 0.0f : a->sx[0]), svh = _mm512_set1_ps(ar.sh[0]);
    const int32_t *acc_i = a->gi ? NULL : ar.acc_i;
    for (uint32_t j = 0; j <= units; ++j) { /* unit block j, then the update of unit block j - 1 */
        if (j < units) sh_unit(S, j, qx, ar.acc_h, 0, G);
        if (!j) continue;
        const uint32_t u = 16 * (j - 1);
        if (u >= H) break;
        const __mmask16 m = H - u >= 16 ? RNC_EP_FULL : (__mmask16)((1u << (H - u)) - 1u);
        rnc_avx512_q8_unit16(kind, Hp, u, m, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh, a->b_hh,
                             a->h, a->c, a->y);
    }
}

static int sh_b1_ok(const rnc_cell_args *a, uint32_t G)
{
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    return a->batch == 1 && (!a->active || a->active[0]) && S->gates == G && 16 * S->row_blocks == a->Hp &&
           a->Hp % 16 == 0 && RNC_ALIGN_UP((size_t)a->H, 4) <= SP_XBUF && a->G == G &&
           !(a->kind == RNC_GRU && !a->reset_after);
}

void rnc_q8_gru_step_spshared_avx512vnni(const rnc_cell_args *a)
{
    if (sh_b1_ok(a, 3)) sh_cell_b1(a, RNC_GRU, 3);
    else rnc_q8_gru_step_spshared_avx512vnni_t(a);
}
void rnc_q8_lstm_step_spshared_avx512vnni(const rnc_cell_args *a)
{
    if (sh_b1_ok(a, 4)) sh_cell_b1(a, RNC_LSTM, 4);
    else rnc_q8_lstm_step_spshared_avx512vnni_t(a);
}

#else
typedef int rnc_q8_spshared_avx512vnni_unused;
#endif
#else
typedef int rnc_q8_spshared_avx512vnni_left_out;
#endif
