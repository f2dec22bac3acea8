/* Block-sparse q8 product and cells, AVX-512 VNNI (q8_sparse.h; flags of X86_AVX512VNNI_SRCS).
 *
 * A 16 x 4 block is one zmm (an 8 x 4 block one ymm): input group g of the column is broadcast to
 * every dword lane and one vpdpbusd adds the 4 products of each row. vpdpbusd takes unsigned x
 * signed bytes; the offset trick makes the input unsigned: dpbusd(q ^ 0x80, W) = W q + 128 rowsum,
 * and the stored row sums (spq8 "sums") take the 128 rowsum off at the end. Exact: every partial
 * sum is a 32-bit sum of four products, |sum| <= Kp * 255 * 127 < 2^31. Four accumulators per row
 * block hide the multiply latency. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__) && defined(__AVX512VL__)
#include <immintrin.h>

#include "kernels_avx512.h"
#include "epilogue_avx512.h"

#define RNC_SAI static inline __attribute__((always_inline))

/* Input group g of q as every dword lane, XORed with `off`: 0x80808080 makes a signed input the
 * unsigned operand of vpdpbusd; 0 for an input already offset. Inlined with a constant `off`. */
RNC_SAI __m512i sp_x16(const int8_t *q, uint16_t g, int32_t off)
{
    return _mm512_set1_epi32(rnc__group4(q, g) ^ off);
}

RNC_SAI __m256i sp_x8(const int8_t *q, uint16_t g)
{
    return _mm256_set1_epi32(rnc__group4(q, g) ^ (int32_t)0x80808080u);
}

/* Row block b's 16 sums (s: every row's W q + 128 rowsum) less 128 rowsum, stored below row R. */
RNC_SAI void sp_store16(const rnc_sparse_q8 *S, uint32_t b, int R, __m512i s, int32_t *acc)
{
    const int rows = rnc__sparse_rows(S, b, R);
    const __mmask16 m = rows >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rows) - 1u);
    const __m512i corr = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m, S->sums + 16 * b), 7);
    _mm512_mask_storeu_epi32(acc + 16 * b, m, _mm512_sub_epi32(s, corr));
}

/* Row block b of one column, 16-row blocks; `off` as sp_x16's (0x80808080: q signed; 0: q already
 * offset). Pointers walk the row block's column indices and blocks (no index arithmetic per block). */
RNC_SAI void sp_row16(const rnc_sparse_q8 *S, uint32_t b, int R, const int8_t *q, int32_t *acc, int32_t off)
{
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + 64 * (size_t)S->rowptr[b];
    __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
    __m512i a2 = _mm512_setzero_si512(), a3 = _mm512_setzero_si512();
    for (; ce - c >= 4; c += 4, t += 256) {
        a0 = _mm512_dpbusd_epi32(a0, sp_x16(q, c[0], off), _mm512_loadu_si512((const void *)t));
        a1 = _mm512_dpbusd_epi32(a1, sp_x16(q, c[1], off), _mm512_loadu_si512((const void *)(t + 64)));
        a2 = _mm512_dpbusd_epi32(a2, sp_x16(q, c[2], off), _mm512_loadu_si512((const void *)(t + 128)));
        a3 = _mm512_dpbusd_epi32(a3, sp_x16(q, c[3], off), _mm512_loadu_si512((const void *)(t + 192)));
        /* an empty asm per accumulator: without it GCC 12 copied three of them between
         * registers in every iteration (as in cells_avx512vnni.c) */
        __asm__("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3));
    }
    for (; c < ce; ++c, t += 64)
        a0 = _mm512_dpbusd_epi32(a0, sp_x16(q, c[0], off), _mm512_loadu_si512((const void *)t));
    sp_store16(S, b, R, _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)), acc);
}

/* One column, 16-row blocks, `off` as sp_row16's. */
RNC_SAI void sp_col16(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc, int32_t off)
{
    for (uint32_t b = 0; b < S->row_blocks && 16 * (int)b < R; ++b) sp_row16(S, b, R, q, acc, off);
}

#include "q8_sparse_avx512vnni.h"

/* Four columns at once (sequence projections): each block's weights loaded once for all four. */
static void sp_cols16x4(const rnc_sparse_q8 *S, int R, const int8_t *Q, size_t ldq, int32_t *Acc, size_t ldacc)
{
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    const int8_t *q0 = Q, *q1 = Q + ldq, *q2 = Q + 2 * ldq, *q3 = Q + 3 * ldq;
    for (uint32_t b = 0; b < S->row_blocks && 16 * (int)b < R; ++b) {
        __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
        for (uint32_t i = S->rowptr[b]; i < S->rowptr[b + 1]; ++i) {
            const __m512i wv = _mm512_loadu_si512((const void *)(w + 64 * (size_t)i));
            const int32_t off = (int32_t)0x80808080u;
            a0 = _mm512_dpbusd_epi32(a0, sp_x16(q0, c[i], off), wv);
            a1 = _mm512_dpbusd_epi32(a1, sp_x16(q1, c[i], off), wv);
            a2 = _mm512_dpbusd_epi32(a2, sp_x16(q2, c[i], off), wv);
            a3 = _mm512_dpbusd_epi32(a3, sp_x16(q3, c[i], off), wv);
        }
        sp_store16(S, b, R, a0, Acc);
        sp_store16(S, b, R, a1, Acc + ldacc);
        sp_store16(S, b, R, a2, Acc + 2 * ldacc);
        sp_store16(S, b, R, a3, Acc + 3 * ldacc);
    }
}

static void sp_col8(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc)
{
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    for (uint32_t b = 0; b < S->row_blocks && 8 * (int)b < R; ++b) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        uint32_t i = S->rowptr[b];
        const uint32_t e = S->rowptr[b + 1];
        for (; i + 4 <= e; i += 4) {
            a0 = _mm256_dpbusd_epi32(a0, sp_x8(q, c[i]), _mm256_loadu_si256((const void *)(w + 32 * (size_t)i)));
            a1 = _mm256_dpbusd_epi32(a1, sp_x8(q, c[i + 1]), _mm256_loadu_si256((const void *)(w + 32 * (size_t)i + 32)));
            a2 = _mm256_dpbusd_epi32(a2, sp_x8(q, c[i + 2]), _mm256_loadu_si256((const void *)(w + 32 * (size_t)i + 64)));
            a3 = _mm256_dpbusd_epi32(a3, sp_x8(q, c[i + 3]), _mm256_loadu_si256((const void *)(w + 32 * (size_t)i + 96)));
        }
        for (; i < e; ++i)
            a0 = _mm256_dpbusd_epi32(a0, sp_x8(q, c[i]), _mm256_loadu_si256((const void *)(w + 32 * (size_t)i)));
        const int rows = rnc__sparse_rows(S, b, R);
        const __mmask8 m = rows >= 8 ? (__mmask8)0xFF : (__mmask8)((1u << rows) - 1u);
        const __m256i corr = _mm256_slli_epi32(_mm256_maskz_loadu_epi32(m, S->sums + 8 * b), 7);
        const __m256i s = _mm256_sub_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)), corr);
        _mm256_mask_storeu_epi32(acc + 8 * b, m, s);
    }
}

void rnc_q8_gemm_sparse_avx512vnni(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                                   int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        rnc_q8_gemm_avx512vnni(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    int n = 0;
    if (S->bh == 16)
        for (; n + 4 <= N; n += 4)
            sp_cols16x4(S, R, Q + (size_t)n * ldq, (size_t)ldq, Acc + (size_t)n * ldacc, (size_t)ldacc);
    /* one column with K <= SP_XBUF: q ^ 0x80 made once into a stack buffer, so that each
     * block's input group is a plain broadcast load */
    const size_t kp = ((size_t)K + 3) & ~(size_t)3;
    if (S->bh == 16 && kp <= SP_XBUF) {
        int8_t qx[SP_XBUF] __attribute__((aligned(64)));
        for (; n < N; ++n) {
            sp_offset(Q + (size_t)n * ldq, kp, qx);
            sp_col16(S, R, qx, Acc + (size_t)n * ldacc, 0);
        }
        return;
    }
    for (; n < N; ++n) {
        if (S->bh == 16) sp_col16(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc, (int32_t)0x80808080u);
        else sp_col8(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
    }
}

/* the epilogue: AVX-512's cell update and quantiser, and its dequantisation fused with the
 * update, 16 units a vector (epilogue_avx512_q8.h; the same float32 operations as every ISA's) */
#include "epilogue_avx512_q8.h"
#define RNC_CELL_UPDATE rnc_x86_cell_update_avx512
#define RNC_QUANTIZE_ROW rnc_x86_quantize_row_avx512
#define RNC_Q8_UPDATE rnc_avx512_q8_update
#define RNC_SFX sparse_avx512vnni_t
#define rnc_f32_gemm_sparse_avx512vnni_t rnc_f32_gemm_avx512
#define rnc_q8_gemm_sparse_avx512vnni_t rnc_q8_gemm_sparse_avx512vnni
#include "cell_template.h"

/* Batch 1, W_hh stored with 16-row blocks, every cell but GRU reset_after=0: the template's
 * steps in its order, except that after row block j of the last gate of W_hh comes the cell
 * update of unit block j - 1 (whose pre-activations are all known by then), so the update runs
 * under the remaining products' weight loads instead of after them (GRU/LSTM H = 256, d = 0.5 and
 * 0.3: 2.5-4.5 % faster steps, docs/performance.md). The update of unit block j is
 * rnc_avx512_q8_unit16 at units 16 j.., the operations of the template's RNC_Q8_UPDATE on those
 * units: the same bits. */
static void sp_cell_b1(const rnc_cell_args *a)
{
    const uint32_t H = a->H, Hp = a->Hp, G = a->G;
    const size_t ghp = (size_t)G * Hp, kh = RNC_ALIGN_UP((size_t)H, 4);
    const rnc_q8_areas ar = rnc__q8_areas(a);
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    int8_t qx[SP_XBUF] __attribute__((aligned(64)));
    if (!a->gi)
        rnc_q8_gemm_sparse_avx512vnni((const int8_t *)a->w_ih, (int)ghp, (int)a->I, 1, a->xq, (int)a->ldxq,
                                      ar.acc_i, (int)ghp);
    rnc__q8_quantize_h(a, RNC_QUANTIZE_ROW, H, ar.hq, ar.sh);
    sp_offset(ar.hq, kh, qx);
    const uint32_t units = Hp / 16, last = (G - 1) * units;
    for (uint32_t b = 0; b < last; ++b) sp_row16(S, b, (int)ghp, qx, ar.acc_h, 0);
    const __m512 svi = _mm512_set1_ps(a->gi ? 0.0f : a->sx[0]), svh = _mm512_set1_ps(ar.sh[0]);
    const int32_t *acc_i = a->gi ? NULL : ar.acc_i;
    for (uint32_t j = 0; j <= units; ++j) { /* row block j, then the update of unit block j - 1 */
        if (j < units) sp_row16(S, last + j, (int)ghp, qx, ar.acc_h, 0);
        if (!j) continue;
        const uint32_t u = 16 * (j - 1);
        if (u >= H) break;
        const __mmask16 m = H - u >= 16 ? RNC_EP_FULL : (__mmask16)((1u << (H - u)) - 1u);
        switch (a->kind) {
        case RNC_GRU:
            rnc_avx512_q8_unit16(RNC_GRU, Hp, u, m, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh,
                                 a->b_hh, a->h, a->c, a->y);
            break;
        case RNC_LSTM:
            rnc_avx512_q8_unit16(RNC_LSTM, Hp, u, m, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh,
                                 a->b_hh, a->h, a->c, a->y);
            break;
        case RNC_RNN_TANH:
            rnc_avx512_q8_unit16(RNC_RNN_TANH, Hp, u, m, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh,
                                 a->s_hh, a->b_hh, a->h, a->c, a->y);
            break;
        default: /* RNC_RNN_RELU */
            rnc_avx512_q8_unit16(RNC_RNN_RELU, Hp, u, m, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh,
                                 a->s_hh, a->b_hh, a->h, a->c, a->y);
            break;
        }
    }
}

static int sp_b1_ok(const rnc_cell_args *a)
{
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    return a->batch == 1 && (!a->active || a->active[0]) && S->bh == 16 && a->Hp % 16 == 0 &&
           RNC_ALIGN_UP((size_t)a->H, 4) <= SP_XBUF && !(a->kind == RNC_GRU && !a->reset_after);
}

void rnc_q8_rnn_step_sparse_avx512vnni(const rnc_cell_args *a)
{
    if (sp_b1_ok(a)) sp_cell_b1(a);
    else rnc_q8_rnn_step_sparse_avx512vnni_t(a);
}
void rnc_q8_gru_step_sparse_avx512vnni(const rnc_cell_args *a)
{
    if (sp_b1_ok(a)) sp_cell_b1(a);
    else rnc_q8_gru_step_sparse_avx512vnni_t(a);
}
void rnc_q8_lstm_step_sparse_avx512vnni(const rnc_cell_args *a)
{
    if (sp_b1_ok(a)) sp_cell_b1(a);
    else rnc_q8_lstm_step_sparse_avx512vnni_t(a);
}

#else
typedef int rnc_q8_sparse_avx512vnni_unused;
#endif
#else
typedef int rnc_q8_sparse_avx512vnni_left_out;
#endif
