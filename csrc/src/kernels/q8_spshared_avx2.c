/* Gate-shared block-sparse q8 product and cells, AVX2 (q8_sparse.h; flags of X86_AVX2_SRCS). An
 * entry of a unit block holds the G gates' 16 x 4 blocks of one input group: one index load, one
 * input broadcast and its absolute value serve 2G weight vectors (a 16 x 4 block is two ymm), one
 * ymm accumulator each. Each product is q8_sparse_avx2.c's: vpmaddubsw(|x|, sign(x) * W) makes
 * int16 pair sums (at most 2 * 127 * 127 = 32258: no saturation) and vpmaddwd with ones widens
 * them to int32, so the sums are exact, the same integers as every ISA's. G is a constant in each
 * inlined copy (3: GRU, 4: LSTM), so the 2G accumulators stay in registers; the only chain
 * between entries is the vpaddd. A matrix in another layout runs rnc_q8_gemm_sparse_avx2. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "q8_sparse.h"

#if defined(__AVX2__)
#include <immintrin.h>

#include "epilogue_avx2.h"

#define RNC_SAI static inline __attribute__((always_inline))
#include "q8_sparse_avx2.h"

/* Unit block b of one column into acc (rows g*hp + 16 b + r, r < 16, g < G). */
RNC_SAI void sh_unit(const rnc_sparse_q8 *S, uint32_t b, const int8_t *q, int32_t *acc, const uint32_t G)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const uint16_t *c = S->cols + S->rowptr[b], *const ce = S->cols + S->rowptr[b + 1];
    const int8_t *t = S->blocks + (size_t)64 * G * S->rowptr[b];
    __m256i a[2 * RNC_SPSHARED_MAX_GATES];
#pragma GCC unroll 8
    for (uint32_t g = 0; g < 2 * G; ++g) a[g] = _mm256_setzero_si256();
    for (; c < ce; ++c, t += 64 * G) {
        const __m256i x = _mm256_set1_epi32(rnc__group4(q, *c)), ax = _mm256_abs_epi8(x);
#pragma GCC unroll 8
        for (uint32_t g = 0; g < 2 * G; ++g) a[g] = sp_mac(a[g], SP_LD(t + 32 * g), x, ax, ones);
    }
#pragma GCC unroll 4
    for (uint32_t g = 0; g < G; ++g) {
        int32_t *d = acc + (size_t)g * 16 * S->row_blocks + 16 * (size_t)b;
        _mm256_storeu_si256((__m256i *)(void *)d, a[2 * g]);
        _mm256_storeu_si256((__m256i *)(void *)(d + 8), a[2 * g + 1]);
    }
}

RNC_SPSHARED_GEMM(avx2, rnc_q8_gemm_sparse_avx2)

/* the epilogue: AVX2's cell update and quantiser, and its dequantisation fused with the update
 * (epilogue_avx2.h; the same float32 operations as every ISA's) */
#define RNC_CELL_UPDATE rnc_avx2_cell_update
#define RNC_QUANTIZE_ROW rnc_avx2_quantize_row
#define RNC_Q8_UPDATE rnc_avx2_q8_update
#define RNC_SFX spshared_avx2_t
#define rnc_f32_gemm_spshared_avx2_t rnc_f32_gemm_avx2
#define rnc_q8_gemm_spshared_avx2_t rnc_q8_gemm_spshared_avx2
#include "cell_template.h"

/* Batch 1, W_hh gate-shared, GRU (reset_after) or LSTM: the template's steps in its order, except
 * that W_hh's product runs unit block by unit block (all gates of a unit block at once) and after
 * unit block j comes the cell update of unit block j - 1, so the update runs under the remaining
 * blocks' weight loads. The update of a unit block is rnc_avx2_update_n on its full 8-unit chunks
 * and rnc_avx2_update_tail on a last partial one: the operations of the template's RNC_Q8_UPDATE
 * (rnc_avx2_update_k) on those units, the same bits. */
RNC_SAI void sh_cell_b1(const rnc_cell_args *a, const uint32_t kind, const uint32_t G)
{
    const uint32_t H = a->H, Hp = a->Hp;
    const size_t ghp = (size_t)G * Hp;
    const rnc_q8_areas ar = rnc__q8_areas(a);
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    if (!a->gi)
        rnc_q8_gemm_spshared_avx2((const int8_t *)a->w_ih, (int)ghp, (int)a->I, 1, a->xq, (int)a->ldxq, ar.acc_i,
                                  (int)ghp);
    rnc__q8_quantize_h(a, RNC_QUANTIZE_ROW, H, ar.hq, ar.sh);
    const uint32_t units = Hp / 16;
    const __m256 svi = _mm256_set1_ps(a->gi ? 0.0f : a->sx[0]), svh = _mm256_set1_ps(ar.sh[0]);
    const int32_t *acc_i = a->gi ? NULL : ar.acc_i;
    for (uint32_t j = 0; j <= units; ++j) { /* unit block j, then the update of unit block j - 1 */
        if (j < units) sh_unit(S, j, ar.hq, ar.acc_h, G);
        if (!j) continue;
        uint32_t u = 16 * (j - 1);
        if (u >= H) break;
        if (H - u >= 16) {
            rnc_avx2_update_n(kind, 2, Hp, u, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh, a->b_hh,
                              NULL, a->h, a->c, a->y, 0);
            continue;
        }
        if (H - u >= 8) {
            rnc_avx2_update_n(kind, 1, Hp, u, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh, a->b_hh,
                              NULL, a->h, a->c, a->y, 0);
            u += 8;
        }
        if (u < H)
            rnc_avx2_update_tail(kind, H, Hp, u, acc_i, svi, a->s_ih, a->b_ih, a->gi, ar.acc_h, svh, a->s_hh,
                                 a->b_hh, NULL, a->h, a->c, a->y);
    }
}

static int sh_b1_ok(const rnc_cell_args *a, uint32_t G)
{
    const rnc_sparse_q8 *S = rnc__sparse_of((const int8_t *)a->w_hh);
    return a->batch == 1 && (!a->active || a->active[0]) && S->gates == G && 16 * S->row_blocks == a->Hp &&
           a->Hp % 16 == 0 && a->G == G && !(a->kind == RNC_GRU && !a->reset_after);
}

void rnc_q8_gru_step_spshared_avx2(const rnc_cell_args *a)
{
    if (sh_b1_ok(a, 3)) sh_cell_b1(a, RNC_GRU, 3);
    else rnc_q8_gru_step_spshared_avx2_t(a);
}
void rnc_q8_lstm_step_spshared_avx2(const rnc_cell_args *a)
{
    if (sh_b1_ok(a, 4)) sh_cell_b1(a, RNC_LSTM, 4);
    else rnc_q8_lstm_step_spshared_avx2_t(a);
}

#else
typedef int rnc_q8_spshared_avx2_unused;
#endif
#else
typedef int rnc_q8_spshared_avx2_left_out;
#endif
