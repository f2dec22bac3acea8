/* Block-sparse q8 product and cells, ARM NEON without the dot product (q8_sparse.h; flags of
 * ARM_NEON_SRCS: armv7 with -mfpu=neon, aarch64 baseline, e.g. Cortex-A53/A72).
 *
 * A 16 x 4 block is four 16-byte registers, register k holding rows 4k..4k+3 (4 inputs each);
 * an 8 x 4 block two. The input group is broadcast to every 32-bit lane and each register goes
 * through q8_sparse_neon.h's smull + sadalp (as gemm_neon.c's dense kernel), two blocks of one row
 * block through one int16 step (`smlal`). Exact int32 sums: the same integers as every other
 * ISA. */
#if !defined(RNC_NO_SPARSE) /* kernel_list.h: a build may leave these kernels out */
#include "arm_kernels.h"

#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#include <arm_neon.h>

#include "neon_int.h"
#include "q8_sparse.h"
#include "q8_sparse_neon.h"

RNC_DECLARE_ISA(neon)

static void sp_col(const rnc_sparse_q8 *S, int R, const int8_t *q, int32_t *acc)
{
    const uint16_t *c = S->cols;
    const int8_t *w = S->blocks;
    const uint32_t bh = S->bh;
    for (uint32_t b = 0; b < S->row_blocks && (int)(bh * b) < R; ++b) {
        int32x4_t l0 = vdupq_n_s32(0), h0 = l0, l1 = l0, h1 = l0, l2 = l0, h2 = l0, l3 = l0, h3 = l0;
        uint32_t i = S->rowptr[b];
        const uint32_t e = S->rowptr[b + 1];
        if (bh == 16) {
            for (; i + 2 <= e; i += 2) {
                const sp_x x0 = sp_bcast(q, c[i]), x1 = sp_bcast(q, c[i + 1]);
                const int8_t *w0 = w + 64 * (size_t)i, *w1 = w0 + 64;
                SP_TWO(vld1q_s8(w0), x0, vld1q_s8(w1), x1, l0, h0);
                SP_TWO(vld1q_s8(w0 + 16), x0, vld1q_s8(w1 + 16), x1, l1, h1);
                SP_TWO(vld1q_s8(w0 + 32), x0, vld1q_s8(w1 + 32), x1, l2, h2);
                SP_TWO(vld1q_s8(w0 + 48), x0, vld1q_s8(w1 + 48), x1, l3, h3);
            }
            for (; i < e; ++i) {
                const sp_x x0 = sp_bcast(q, c[i]);
                const int8_t *w0 = w + 64 * (size_t)i;
                SP_ONE(vld1q_s8(w0), x0, l0, h0);
                SP_ONE(vld1q_s8(w0 + 16), x0, l1, h1);
                SP_ONE(vld1q_s8(w0 + 32), x0, l2, h2);
                SP_ONE(vld1q_s8(w0 + 48), x0, l3, h3);
            }
        } else {
            for (; i + 2 <= e; i += 2) {
                const sp_x x0 = sp_bcast(q, c[i]), x1 = sp_bcast(q, c[i + 1]);
                const int8_t *w0 = w + 32 * (size_t)i, *w1 = w0 + 32; /* blocks i and i + 1 */
                SP_TWO(vld1q_s8(w0), x0, vld1q_s8(w1), x1, l0, h0);
                SP_TWO(vld1q_s8(w0 + 16), x0, vld1q_s8(w1 + 16), x1, l1, h1);
            }
            for (; i < e; ++i) {
                const sp_x x0 = sp_bcast(q, c[i]);
                const int8_t *w0 = w + 32 * (size_t)i;
                SP_ONE(vld1q_s8(w0), x0, l0, h0);
                SP_ONE(vld1q_s8(w0 + 16), x0, l1, h1);
            }
        }
        const int rows = rnc__sparse_rows(S, b, R);
        int32_t *dst = acc + bh * b;
        rnc_neon_store_rows4(dst, rows, rnc_neon_pair_reduce(l0, h0));
        rnc_neon_store_rows4(dst + 4, rows - 4, rnc_neon_pair_reduce(l1, h1));
        if (bh == 16) {
            rnc_neon_store_rows4(dst + 8, rows - 8, rnc_neon_pair_reduce(l2, h2));
            rnc_neon_store_rows4(dst + 12, rows - 12, rnc_neon_pair_reduce(l3, h3));
        }
    }
}

void rnc_q8_gemm_sparse_neon(const int8_t *Wp, int R, int K, int N, const int8_t *Q, int ldq,
                             int32_t *Acc, int ldacc)
{
    const rnc_sparse_q8 *S = rnc__sparse_of(Wp);
    if (!S->bh) {
        rnc_q8_gemm_neon(S->dense, R, K, N, Q, ldq, Acc, ldacc);
        return;
    }
    for (int n = 0; n < N; ++n) sp_col(S, R, Q + (size_t)n * ldq, Acc + (size_t)n * ldacc);
}

#include "epilogue_neon_hooks.h" /* aarch64: the intrinsics epilogue (the same bits) */
#define RNC_SFX sparse_neon
#define rnc_f32_gemm_sparse_neon rnc_f32_gemm_neon
#include "cell_template.h"

#else
typedef int rnc_q8_sparse_neon_unused;
#endif
#else
typedef int rnc_q8_sparse_neon_left_out;
#endif
